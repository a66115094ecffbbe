"""The aggregated temporal representation (ETSI GS CIM 009 v1.8, clause 4.5.19; annex C.5.14).

``GET /temporal/entities...?options=aggregatedValues&aggrMethods=avg,max&aggrPeriodDuration=P1D``
answers, for each attribute, one list per method of ``[aggregate, startAt, endAt]`` triples,
one triple per period that holds at least one instance::

    "no2": {"type": "Property",
            "avg": [[20.5, "2024-05-01T00:00:00.000Z", "2024-05-02T00:00:00.000Z"], ...],
            "max": [[41, "2024-05-01T00:00:00.000Z", "2024-05-02T00:00:00.000Z"], ...]}

What each method counts (the values of a period, in observation order):

``totalCount``
    every instance; ``distinctCount`` the distinct values (JSON-equal values are one value).
``sum``, ``avg``, ``sumsq``, ``stddev``
    the numeric values only (JSON numbers; ``true``/``false`` are not numbers here);
    ``null`` for a period without one. ``stddev`` is the **sample** standard deviation
    (divisor n - 1), as PostgreSQL's ``stddev`` computes it for the PostgreSQL-based brokers
    (the specification's table names only "standard deviation"); ``null`` below two values.
``min``, ``max``
    the numbers of the period if it has any, else its strings (in code-point order, which is
    time order for the broker's canonical DateTimes); ``null`` if it has neither.

Periods are laid end to end from the start of the window (``timeAt`` for ``after`` and
``between``, else the first instance's time), each ``[startAt, endAt)``; months and years
are calendar months and years. A zero duration (``PT0S``, ``P0D``; the default) is one
period over the whole window.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta

from .errors import bad_data

METHODS = ("totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq")

# P[n]Y[n]M[n]DT[n]H[n]M[n]S or P[n]W (ISO 8601 durations; combined date-time forms are not allowed).
_DURATION = re.compile(r"P(?:(?P<weeks>\d+)W|(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<days>\d+)D)?"
                       r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?)\Z")


class Duration:
    """An ISO 8601 duration: whole calendar months plus an exact time span.

    Parameters
    ----------
    text : str
        E.g. ``"P1D"``, ``"PT15M"``, ``"P1M"``, ``"P2W"``; ``"PT0S"`` / ``"P0D"`` is zero.
    """

    def __init__(self, text: str):
        match = _DURATION.match(text) if isinstance(text, str) and text != "P" else None
        if match is None or (text.endswith("T")):
            raise bad_data(f"aggrPeriodDuration={str(text)[:40]!r} is not an ISO 8601 duration such as "
                           "P1D, PT1H, PT15M, P1M or P1W (clause 4.5.19); PT0S means the whole window.")
        part = {key: (float(value) if key == "seconds" else int(value)) if value else 0
                for key, value in match.groupdict().items()}
        self.text = text
        self.months = part["years"] * 12 + part["months"]
        self.span = timedelta(weeks=part["weeks"], days=part["days"], hours=part["hours"],
                              minutes=part["minutes"], seconds=part["seconds"])
        if self.months > 12 * 1000 or self.span > timedelta(days=366 * 1000):
            raise bad_data(f"aggrPeriodDuration={text!r} is longer than 1000 years.")

    @property
    def zero(self) -> bool:
        """True for a duration of nothing: one period over the whole window."""
        return self.months == 0 and self.span == timedelta(0)

    def after(self, moment: datetime) -> datetime:
        """``moment`` plus this duration (months first, clamped to the month's last day)."""
        if self.months:
            month_index = moment.month - 1 + self.months
            year, month = moment.year + month_index // 12, month_index % 12 + 1
            if year > 9999:
                return datetime.max.replace(tzinfo=UTC)
            day = min(moment.day, _days_in_month(year, month))
            moment = moment.replace(year=year, month=month, day=day)
        try:
            return moment + self.span
        except OverflowError:
            return datetime.max.replace(tzinfo=UTC)


def _days_in_month(year: int, month: int) -> int:
    following = datetime(year + (month == 12), month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def parse_methods(text: str) -> tuple[str, ...]:
    """The methods of ``aggrMethods`` (comma-separated), in the order given, without repeats."""
    names = [name.strip() for name in text.split(",")]
    unknown = [name for name in names if name not in METHODS]
    if unknown or not names:
        raise bad_data(f"aggrMethods: {unknown[0][:40]!r} is not an aggregation method; use "
                       f"{', '.join(METHODS)} (clause 4.5.19)." if unknown else "aggrMethods is empty.")
    return tuple(dict.fromkeys(names))


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def _format(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _value(instance: dict):
    """The value an instance contributes (``value``, ``object``, ``languageMap``...)."""
    for member in ("value", "object", "languageMap", "json", "vocab", "valueList", "objectList"):
        if member in instance:
            return instance[member]
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def compute(values: list, method: str):
    """One aggregation ``method`` over ``values`` (clause 4.5.19; see the module docstring)."""
    if method == "totalCount":
        return len(values)
    if method == "distinctCount":
        return len({json.dumps(value, sort_keys=True) for value in values})
    numbers = [value for value in values if _is_number(value)]
    if method in ("min", "max"):
        pool = numbers or [value for value in values if isinstance(value, str)]
        if not pool:
            return None
        return min(pool) if method == "min" else max(pool)
    if not numbers:
        return None
    if method == "sum":
        return math.fsum(numbers)
    if method == "sumsq":
        return math.fsum(number * number for number in numbers)
    mean = math.fsum(numbers) / len(numbers)
    if method == "avg":
        return mean
    # stddev: the sample standard deviation (n - 1), by the two-pass formula for accuracy.
    if len(numbers) < 2:
        return None
    return math.sqrt(math.fsum((number - mean) ** 2 for number in numbers) / (len(numbers) - 1))


def aggregate(items: list[dict], methods: tuple[str, ...], period: Duration, start: str | None,
              end: str | None) -> dict[str, list]:
    """The aggregated values of one attribute's instances (oldest first).

    Parameters
    ----------
    items : list of dict
        The attribute's instances in the window, sorted by ``observedAt``.
    methods : tuple of str
        Methods from :data:`METHODS`.
    period : Duration
        Length of each period (zero: the whole window is one period).
    start, end : str or None
        The window's bounds if the request gave them (canonical timestamps); otherwise the
        first instance's time starts it and, for a zero period, the last instance's ends it.

    Returns
    -------
    dict
        ``{method: [[aggregate, startAt, endAt], ...]}``, periods without instances left out.
    """
    out: dict[str, list] = {method: [] for method in methods}
    if not items:
        return out
    first = _parse(start if start is not None else items[0]["observedAt"])
    groups: list[tuple[datetime, datetime, list]] = []
    if period.zero:
        last = _parse(end) if end is not None else _parse(items[-1]["observedAt"])
        groups.append((first, last, [_value(item) for item in items]))
    else:
        period_start, period_end = first, period.after(first)
        # Canonical timestamps sort as text: compare strings, parse only at period changes.
        end_text = _format(period_end)
        current: list = []
        for item in items:
            if item["observedAt"] >= end_text:
                moment = _parse(item["observedAt"])
                while moment >= period_end:
                    if current:
                        groups.append((period_start, period_end, current))
                        current = []
                    # Jump over empty periods in one step when the period is an exact span.
                    if not period.months and period.span and moment - period_end > period.span:
                        skipped = (moment - period_end) // period.span
                        period_end = period_end + skipped * period.span
                    period_start, period_end = period_end, period.after(period_end)
                end_text = _format(period_end)
            current.append(_value(item))
        if current:
            groups.append((period_start, period_end, current))
    for method in methods:
        out[method] = [[compute(values, method), _format(lo), _format(hi)] for lo, hi, values in groups]
    return out
