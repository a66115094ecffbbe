"""Social impact bonds: stepped outcome payments and the investor's return.

In a social impact bond (SIB) private investors fund a service up front; the city pays only
for measured outcomes, by a schedule fixed in the contract, and the service provider repays
the investors from those payments. Two things decide what everybody gets:

- the **payout schedule**: a ladder of outcome thresholds, each with a payment. It is a
  *step* function: an outcome between two thresholds earns the lower step's payment, never
  a share interpolated between them (:class:`PayoutSchedule`);
- the **investor's return** on the money put in: a simple return (payout / outlay - 1) for
  one payment, an internal rate of return (:func:`irr`) when money moves at several times.

Japan's first SIB, Hachioji City's colorectal-cancer screening (Tokyo, 2017-2019; service
provider Cancerscan, intermediary Keisuri; city budget cap ¥9,762,000), is built in
(:func:`hachioji_schedules`, :data:`HACHIOJI_OUTCOMES`). Published results:

================================  ==============  ========================================
outcome                           achieved        payment
================================  ==============  ========================================
screening rate of the invited     26.8 %          ¥2,441,000 (full; top target 19 %,
                                  (baseline 9 %)  baseline 9 % in FY2015)
follow-up (精密検査) exam rate     82.1 %          ¥2,960,000 of ¥4,880,000 (targets
                                                  79 % lower, 87 % upper)
additional early cancers found    target (>= 1)   ¥0
                                  not met
total                                             ¥5,401,000 (about ¥5.40M of ¥9.762M)
================================  ==============  ========================================

Sources: Hachioji City, Cancerscan and Keisuri, final report of the project (November 2020),
as reported by Nikkei BP (新・公民連携最前線, 7 Dec 2020,
https://project.nikkeibp.co.jp/atclppp/PPP/news/120701799/) and 事業構想 (Nov 2020, "540万円",
https://www.projectdesign.jp/199902/news/008736.php);
first payment: Nikkei BP, 28 Oct 2018 (https://project.nikkeibp.co.jp/atclppp/PPP/news/102800929/);
Ministry of Economy, Trade and Industry and Keisuri, 『八王子市における大腸がん検診・精密検査受診率
向上事業 最終評価結果を踏まえた事業総括』 (March 2021); budget cap: SIIF's case study
(https://siif.or.jp/case_study/sib_hachioji, 事業費 9,762千円).

What is **assumed**: the sources give the targets, the caps and the payments actually made,
not every rung of the ladders. Each :class:`Step` says where it comes from (``source``):

- screening: full payment at >= 19 % is published; the rungs below (one per whole
  percentage point above the 9 % baseline, ¥244,100 each) are assumed;
- follow-up: payment from the 79 % lower target and the full ¥4,880,000 at 87 % are
  published, and 82.1 % earned ¥2,960,000; the rungs are assumed as one per whole
  percentage point with equal increments of ¥384,000 -- the only equal ladder through both
  published payments (¥1,808,000 at 79 %);
- early cancers: the cap ¥2,441,000 is derived (9,762,000 - 2,441,000 - 4,880,000); a single
  step at the target of 1 is assumed.

Linear interpolation between the follow-up targets would pay
4,880,000 x (82.1 - 79) / (87 - 79) = ¥1,891,000, not the ¥2,960,000 actually paid:
:meth:`PayoutSchedule.linear_payout` computes that wrong reading for comparison.

Examples
--------
>>> schedules = hachioji_schedules()
>>> schedules["follow_up"].payout(82.1)
2960000.0
>>> round(schedules["follow_up"].linear_payout(82.1))
1891000
>>> int(outcome_payments(schedules, HACHIOJI_OUTCOMES)["payment"].sum())
5401000
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "HACHIOJI_CITY_CAP_YEN",
    "HACHIOJI_OUTCOMES",
    "PayoutSchedule",
    "Step",
    "hachioji_schedules",
    "irr",
    "irr_all",
    "npv",
    "outcome_payments",
    "simple_return",
]

HACHIOJI_CITY_CAP_YEN = 9_762_000
#: Outcomes Hachioji's SIB achieved: rates in percent, early cancers as a count (target >= 1
#: not met, so fewer than 1).
HACHIOJI_OUTCOMES = {"screening": 26.8, "follow_up": 82.1, "early_cancers": 0}


def _real(value, what: str, what_ja: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number; got {value!r}. "
                         f"/ {what_ja}は有限の数値にしてください（{value!r} が渡されました）。")
    return float(value)


@dataclass(frozen=True)
class Step:
    """One rung of a payout ladder: an outcome of at least ``threshold`` earns ``payment``.

    ``source`` says where the rung comes from: ``"published"``, ``"derived"`` (arithmetic on
    published figures) or ``"assumed"``.
    """

    threshold: float
    payment: float
    source: str = "assumed"


class PayoutSchedule:
    """A stepped outcome-payment schedule: thresholds -> payment, no interpolation.

    Parameters
    ----------
    steps : iterable of Step or (threshold, payment) or (threshold, payment, source)
        Thresholds strictly increasing, payments non-decreasing and >= 0. An outcome below
        the first threshold earns 0.
    name : str
        What is measured, e.g. ``"follow-up exam rate"``.
    unit : str
        Unit of the outcome, e.g. ``"%"``.
    baseline : float, optional
        The outcome without the service (for tables and plots only).

    Examples
    --------
    >>> s = PayoutSchedule([(10, 100), (20, 300)], name="rate", unit="%")
    >>> s.payout(9.9), s.payout(10), s.payout(19.9), s.payout(25)
    (0.0, 100.0, 100.0, 300.0)
    """

    def __init__(self, steps, *, name: str = "outcome", unit: str = "", baseline: float | None = None):
        parsed = []
        for i, step in enumerate(steps):
            if not isinstance(step, Step):
                try:
                    step = Step(*step)
                except TypeError:
                    raise ValueError(
                        f"step {i} must be a Step or a (threshold, payment[, source]) tuple; got {step!r}. "
                        f"/ step {i} は Step か (閾値, 支払額[, 出典]) の組にしてください。") from None
            threshold = _real(step.threshold, f"step {i}'s threshold", f"step {i} の閾値")
            payment = _real(step.payment, f"step {i}'s payment", f"step {i} の支払額")
            if payment < 0:
                raise ValueError(f"step {i}'s payment must be >= 0; got {payment}. "
                                 f"/ step {i} の支払額は 0 以上にしてください。")
            if step.source not in ("published", "derived", "assumed"):
                raise ValueError(f"step {i}'s source must be 'published', 'derived' or 'assumed'; got "
                                 f"{step.source!r}. / step {i} の出典は 'published'、'derived'、"
                                 f"'assumed' のいずれかにしてください。")
            parsed.append(Step(threshold, payment, step.source))
        if not parsed:
            raise ValueError("A schedule needs at least one step. / 支払表には少なくとも 1 段が必要です。")
        for before, after in zip(parsed, parsed[1:], strict=False):
            if after.threshold <= before.threshold:
                raise ValueError(
                    f"Thresholds must increase strictly: {after.threshold} follows {before.threshold}. "
                    f"/ 閾値は厳密に増加する順に並べてください"
                    f"（{before.threshold} の次が {after.threshold}）。")
            if after.payment < before.payment:
                raise ValueError(
                    f"A better outcome must not pay less: {after.payment} at {after.threshold} is below "
                    f"{before.payment} at {before.threshold}. / 成果が良いほど支払額が減る支払表は"
                    f"作れません（{after.threshold} で {after.payment} < {before.payment}）。")
        self.steps: tuple[Step, ...] = tuple(parsed)
        self.name = name
        self.unit = unit
        self.baseline = None if baseline is None else _real(baseline, "baseline", "基準値")

    @property
    def cap(self) -> float:
        """The largest payment (the top rung)."""
        return self.steps[-1].payment

    def payout(self, outcome) -> float:
        """Payment for ``outcome``: the payment of the highest threshold at or below it (0 below all)."""
        outcome = _real(outcome, "outcome", "成果")
        paid = 0.0
        for step in self.steps:
            if outcome >= step.threshold:
                paid = step.payment
        return paid

    def linear_payout(self, outcome, start: float | None = None, full: float | None = None) -> float:
        """The *wrong* reading of the contract, for comparison: linear between two targets.

        0 at ``start`` (default: the first threshold), :attr:`cap` at ``full`` (default: the
        last threshold), a straight line between, clipped outside. A one-step schedule has
        nothing to interpolate and pays as :meth:`payout`.
        """
        outcome = _real(outcome, "outcome", "成果")
        start = self.steps[0].threshold if start is None else _real(start, "start", "start")
        full = self.steps[-1].threshold if full is None else _real(full, "full", "full")
        if len(self.steps) == 1 and start == full:
            return self.payout(outcome)  # one rung: nothing to interpolate
        if full <= start:
            raise ValueError(f"full ({full}) must be above start ({start}). "
                             f"/ full（{full}）は start（{start}）より大きくしてください。")
        share = min(max((outcome - start) / (full - start), 0.0), 1.0)
        return self.cap * share

    def table(self) -> pd.DataFrame:
        """The ladder as a DataFrame: ``threshold``, ``payment``, ``share_of_cap``, ``source``."""
        frame = pd.DataFrame([{"threshold": s.threshold, "payment": s.payment, "source": s.source}
                              for s in self.steps])
        frame.insert(2, "share_of_cap", frame["payment"] / self.cap if self.cap else 0.0)
        return frame

    def plot(self, ax=None, achieved: float | None = None, linear: bool = True):
        """Draw the step schedule (and the linear misreading) with matplotlib; returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        low = min(self.steps[0].threshold, self.baseline if self.baseline is not None else np.inf)
        span = self.steps[-1].threshold - low or 1.0
        xs = np.linspace(low - 0.1 * span, self.steps[-1].threshold + 0.3 * span, 400)
        ax.step(xs, [self.payout(x) for x in xs], where="post", label="contract (steps) / 契約（階段）")
        if linear:
            ax.plot(xs, [self.linear_payout(x) for x in xs], "--", label="linear (wrong) / 線形補間（誤り）")
        if achieved is not None:
            ax.plot([achieved], [self.payout(achieved)], "o", color="black",
                    label=f"achieved {achieved:g} {self.unit}".rstrip())
        if self.baseline is not None:
            ax.axvline(self.baseline, color="grey", lw=0.8, ls=":")
        ax.set_xlabel(f"{self.name} ({self.unit})" if self.unit else self.name)
        ax.set_ylabel("payment / 支払額")
        ax.legend(fontsize="small")
        return ax

    def __repr__(self) -> str:
        return f"PayoutSchedule({self.name!r}, {len(self.steps)} steps, cap={self.cap:,.0f})"


def hachioji_schedules() -> dict[str, PayoutSchedule]:
    """Hachioji City's SIB (2017-2019) as three payout schedules (see the module notes on sources).

    Returns ``{"screening": ..., "follow_up": ..., "early_cancers": ...}``; rates in percent.
    """
    screening = [Step(9.0 + k, 244_100.0 * k, "assumed") for k in range(1, 10)]
    screening.append(Step(19.0, 2_441_000.0, "published"))
    # One rung per whole point from the 79 % lower target; ¥384,000 apart so that the ladder
    # passes through both published payments (82.1 % -> ¥2,960,000; >= 87 % -> ¥4,880,000).
    follow_up = [Step(float(rate), 1_808_000.0 + 384_000.0 * k, "assumed")
                 for k, rate in enumerate(range(79, 87))]
    follow_up[3] = Step(82.0, 2_960_000.0, "published")  # the payment 82.1 % earned; rung at 82 assumed
    follow_up.append(Step(87.0, 4_880_000.0, "published"))
    early = [Step(1.0, float(HACHIOJI_CITY_CAP_YEN - 2_441_000 - 4_880_000), "derived")]
    return {
        "screening": PayoutSchedule(screening, name="screening rate of the invited", unit="%", baseline=9.0),
        "follow_up": PayoutSchedule(follow_up, name="follow-up exam rate", unit="%"),
        "early_cancers": PayoutSchedule(early, name="additional early cancers found", unit="people"),
    }


def outcome_payments(schedules: dict, outcomes: dict, cap: float | None = None) -> pd.DataFrame:
    """What each outcome earns under its schedule: one row per schedule.

    Parameters
    ----------
    schedules : dict of str to PayoutSchedule
    outcomes : dict of str to float
        The achieved outcome for every schedule.
    cap : float, optional
        A budget cap on the total (e.g. :data:`HACHIOJI_CITY_CAP_YEN`); the total is checked
        against it.

    Returns
    -------
    DataFrame
        ``outcome``, ``achieved``, ``payment``, ``max_payment``, ``linear_payment`` (the wrong
        reading, for comparison), indexed by schedule name. ``frame["payment"].sum()`` is the
        total.
    """
    missing = sorted(set(schedules) - set(outcomes))
    if missing:
        raise ValueError(f"No achieved outcome for {missing}. / {missing} の成果の実績値がありません。")
    rows = {}
    for key, schedule in schedules.items():
        achieved = _real(outcomes[key], f"outcome {key!r}", f"成果 {key!r}")
        rows[key] = {"outcome": schedule.name, "achieved": achieved, "payment": schedule.payout(achieved),
                     "max_payment": schedule.cap, "linear_payment": schedule.linear_payout(achieved)}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    if cap is not None and frame["max_payment"].sum() > _real(cap, "cap", "上限") + 1e-9:
        raise ValueError(f"The schedules can pay {frame['max_payment'].sum():,.0f}, more than the cap "
                         f"{cap:,.0f}. / 支払表の最大額 {frame['max_payment'].sum():,.0f} が上限 "
                         f"{cap:,.0f} を超えています。")
    return frame


def simple_return(outlay, payout) -> float:
    """Simple return on one investment repaid once: ``payout / outlay - 1`` (0.1 = 10 %).

    Examples
    --------
    >>> simple_return(1_000_000, 1_080_000)
    0.08
    """
    outlay = _real(outlay, "outlay", "出資額")
    payout = _real(payout, "payout", "償還額")
    if outlay <= 0:
        raise ValueError(f"outlay must be positive; got {outlay}. / 出資額は正の値にしてください。")
    if payout < 0:
        raise ValueError(f"payout must be >= 0; got {payout}. / 償還額は 0 以上にしてください。")
    return round(payout / outlay - 1, 12)


def _cashflows(cashflows, times):
    flows = np.asarray([_real(c, "each cash flow", "各キャッシュフロー") for c in cashflows], dtype=float)
    if flows.size < 2:
        raise ValueError("Give at least two cash flows (money out, then money back). "
                         "/ キャッシュフローは 2 つ以上（出資と回収）にしてください。")
    if times is None:
        when = np.arange(flows.size, dtype=float)
    else:
        when = np.asarray([_real(t, "each time", "各時点") for t in times], dtype=float)
        if when.shape != flows.shape:
            raise ValueError(f"times has {when.size} entries for {flows.size} cash flows. "
                             f"/ times の数（{when.size}）がキャッシュフローの数（{flows.size}）と違います。")
        if np.any(np.diff(when) < 0) or when[0] < 0:
            raise ValueError("times must be >= 0 and in order. / times は 0 以上で昇順にしてください。")
    return flows, when


def npv(rate, cashflows, times=None) -> float:
    """Net present value ``sum(c_t / (1 + rate) ** t)``; ``times`` in years (default 0, 1, 2, ...)."""
    rate = _real(rate, "rate", "割引率")
    if rate <= -1:
        raise ValueError(f"rate must be above -1 (-100 %); got {rate}. "
                         "/ 割引率は -1 より大きくしてください。")
    flows, when = _cashflows(cashflows, times)
    return float(np.sum(flows / (1.0 + rate) ** when))


def _bisect(flows, when, low: float, high: float, tol: float) -> float:
    f_low = npv(low, flows, when)
    while high - low > tol:
        mid = (low + high) / 2
        f_mid = npv(mid, flows, when)
        if f_mid == 0:
            return mid
        if np.sign(f_mid) == np.sign(f_low):
            low, f_low = mid, f_mid
        else:
            high = mid
    return (low + high) / 2


def irr_all(cashflows, times=None, low: float = -0.99, high: float = 10.0, tol: float = 1e-12) -> list[float]:
    """Every internal rate of return in ``[low, high]``, ascending.

    Cash flows that change sign more than once (money out, back, out again) can have several
    IRRs (Descartes' rule of signs bounds their number by the sign changes); then no single
    "the" return exists and an NPV at a chosen discount rate says more. The NPV is scanned
    on a fine grid and each sign change refined by bisection; two roots closer than the
    grid spacing (about 0.001) may be seen as none.
    """
    flows, when = _cashflows(cashflows, times)
    if not (np.any(flows > 0) and np.any(flows < 0)):
        raise ValueError("An IRR needs money both out (-) and back (+). "
                         "/ IRR には出資（負）と回収（正）の両方が必要です。")
    low, high = _real(low, "low", "low"), _real(high, "high", "high")
    if not -1 < low < high:
        raise ValueError(f"Need -1 < low < high; got low={low}, high={high}. "
                         f"/ -1 < low < high にしてください。")
    grid = np.unique(np.concatenate([np.linspace(low, min(high, 1.0), 2001),
                                     np.geomspace(1.0, high, 400) if high > 1.0 else []]))
    values = np.array([npv(r, flows, when) for r in grid])
    roots = [float(r) for r, v in zip(grid, values, strict=True) if v == 0]
    for i in np.flatnonzero(np.sign(values[:-1]) * np.sign(values[1:]) < 0):
        roots.append(_bisect(flows, when, float(grid[i]), float(grid[i + 1]), tol))
    return sorted(roots)


def irr(cashflows, times=None, low: float = -0.99, high: float = 10.0, tol: float = 1e-12) -> float:
    """Internal rate of return: the rate at which :func:`npv` is 0 (bisection).

    If the flows have several IRRs (see :func:`irr_all`), the one closest to 0 is returned,
    as numpy-financial's ``irr`` does.

    Parameters
    ----------
    cashflows : sequence of float
        Money in (+) and out (-) of the investor, e.g. ``[-outlay, 0, payout]``.
    times : sequence of float, optional
        When each flow happens, in years (default 0, 1, 2, ...); irregular times allowed.
    low, high : float
        The range searched, per year (``-1 < low < high``).
    tol : float
        Width of the final bisection bracket.

    Returns
    -------
    float
        The rate per year (0.1 = 10 %).

    Examples
    --------
    >>> round(irr([-100, 110]), 10)
    0.1
    >>> round(irr([-100, 39, 59, 55, 20]), 5)   # numpy-financial's documented example
    0.28095
    """
    roots = irr_all(cashflows, times, low, high, tol)
    if not roots:
        raise ValueError(f"The NPV does not reach 0 between {low} and {high}: no IRR in that range. "
                         f"/ {low} と {high} の間で NPV が 0 にならないため、その範囲に IRR はありません。")
    return min(roots, key=abs)
