"""Timestamps: NGSI-LD DateTime strings, stored in one canonical, sortable UTC form."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

from .errors import bad_data

_LOOKS_LIKE_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def now_iso() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SS.fffZ``."""
    return _format(datetime.now(UTC))


def _format(moment: datetime) -> str:
    # Millisecond precision, as Orion-LD writes timestamps; fixed width keeps them sortable.
    m = moment
    return (f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}."
            f"{m.microsecond // 1000:03d}Z")


@lru_cache(maxsize=4096)
def _canonical(text: str) -> str | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # NGSI-LD DateTime without an offset is UTC
    return _format(moment.astimezone(UTC))


def canonical_datetime(text, where: str) -> str:
    """``text`` as a canonical UTC timestamp; BadRequestData if it is not an ISO 8601 DateTime.

    Parameters
    ----------
    text : object
        The value given by the client, e.g. ``"2024-05-01T09:00:00+09:00"``.
    where : str
        Names the field in the error message.
    """
    if not isinstance(text, str) or not _LOOKS_LIKE_DATETIME.match(text):
        raise bad_data(f"{where} must be an ISO 8601 DateTime such as 2024-05-01T09:00:00Z, got {text!r}.")
    canonical = _canonical(text)
    if canonical is None:
        raise bad_data(f"{where} must be an ISO 8601 DateTime such as 2024-05-01T09:00:00Z, got {text!r}.")
    return canonical


def maybe_datetime(text: str) -> str | None:
    """The canonical form of ``text`` if it is a DateTime, else None (used by q comparisons)."""
    if _LOOKS_LIKE_DATETIME.match(text):
        return _canonical(text)
    return None
