"""Evaluation design for a living-lab pilot: power, minimum detectable effect, DiD, stepped wedge.

The capstone asks "how would we know the pilot worked?". This module holds the numbers
behind the answer, in small functions built on statsmodels:

- **how many people, how small an effect** -- :func:`required_n` and
  :func:`minimum_detectable_effect` for a difference of two means (statsmodels
  ``TTestIndPower`` or ``NormalIndPower``), :func:`required_n_proportions` and
  :func:`minimum_detectable_proportion` for two proportions (Cohen's *h*, statsmodels
  ``proportion_effectsize``); all inflate for clustering with :func:`cluster_design_effect`;
- **did it change more than elsewhere** -- :func:`did_estimate`, a difference-in-differences
  with statsmodels OLS (the group x period interaction), cluster-robust when clusters are
  given;
- **rolling it out district by district** -- :func:`stepped_wedge_schedule` (random order of
  cross-over) and the power of a stepped-wedge design by the formula of Hussey & Hughes
  (2007): :func:`stepped_wedge_variance`, :func:`stepped_wedge_power`,
  :func:`stepped_wedge_mde`;
- **a pilot to practise on** -- :func:`simulate_pilot_panel`, a SYNTHETIC three-round panel
  of pilot and comparison clusters, with a pilot effect and an optional violation of
  parallel trends;
- **when to stop for safety** -- :func:`poisson_rate_interval`, the exact (Garwood) interval
  of an incident rate, two-sided or one-sided.

Conventions
-----------
- Tests are two-sided. ``alpha`` is the type I error, ``power`` is 1 - type II error.
- ``n_per_arm`` counts *people* in the first (control) arm; the second arm has
  ``ratio * n_per_arm``. With clusters of ``cluster_size`` people and intra-cluster
  correlation ``icc``, the people count is divided by the design effect
  ``1 + (cluster_size - 1) * icc`` (Donner & Klar 2000) before the power calculation, so
  the answer stays in people, not clusters.
- Effects are returned on the outcome's scale (``sd`` times the standardised effect *d*),
  proportions on the 0-1 scale.
- Stepped-wedge variances follow Hussey & Hughes (2007), *Contemporary Clinical Trials* 28,
  182-191: a linear mixed model with a random cluster intercept and fixed period effects,
  cross-sectional samples of ``cluster_period_size`` people per cluster and period, and
  the variance components known. Their power ignores the far tail:
  ``Phi(theta / se - z_{1-alpha/2})``.

Everything is deterministic: the random functions, :func:`stepped_wedge_schedule` and
:func:`simulate_pilot_panel`, take an explicit seed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import proportion_effectsize

__all__ = [
    "DidResult",
    "cluster_design_effect",
    "did_estimate",
    "minimum_detectable_effect",
    "minimum_detectable_proportion",
    "poisson_rate_interval",
    "required_n",
    "required_n_proportions",
    "simulate_pilot_panel",
    "stepped_wedge_mde",
    "stepped_wedge_power",
    "stepped_wedge_schedule",
    "stepped_wedge_variance",
]

TESTS = ("t", "normal")


# ------------------------------------------------------------------------------ validation
def _scalar(value) -> float:
    """statsmodels' solve_power returns a float or, from some root finders, a 1-element array."""
    return float(np.asarray(value, dtype=float).reshape(-1)[0])


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"{name} must be a number, not {type(value).__name__}. / {name} は数値で指定してください。"
        )
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, not {value}. / {name} は有限の値にしてください。")
    return value


def _positive(value, name: str) -> float:
    value = _number(value, name)
    if value <= 0:
        raise ValueError(f"{name} must be positive, not {value:g}. / {name} は正の値にしてください。")
    return value


def _probability(value, name: str) -> float:
    value = _number(value, name)
    if not 0 < value < 1:
        raise ValueError(
            f"{name} must be strictly between 0 and 1, not {value:g}. "
            f"/ {name} は 0 より大きく 1 より小さい値にしてください。"
        )
    return value


def _alpha_power(alpha, power) -> tuple[float, float]:
    alpha = _probability(alpha, "alpha")
    power = _probability(power, "power")
    if power <= alpha:
        raise ValueError(
            f"power ({power:g}) must exceed alpha ({alpha:g}); a test with less power "
            "than its type I error is useless. / 検出力は有意水準より大きくしてください。"
        )
    return alpha, power


def _test(test: str):
    if test not in TESTS:
        raise ValueError(
            f"test must be one of {TESTS}, not {test!r}. / test は {TESTS} のいずれかにしてください。"
        )
    return TTestIndPower() if test == "t" else NormalIndPower()


def _cluster_size(cluster_size) -> int:
    if isinstance(cluster_size, bool) or not isinstance(cluster_size, (int, np.integer)) or cluster_size < 1:
        raise ValueError(
            f"cluster_size must be a whole number of people >= 1, not {cluster_size!r}. "
            "/ cluster_size は 1 以上の整数（人数）にしてください。"
        )
    return int(cluster_size)


def cluster_design_effect(cluster_size: int, icc: float) -> float:
    """Variance inflation of a cluster sample, ``1 + (cluster_size - 1) * icc``.

    Parameters
    ----------
    cluster_size : int
        People per cluster (``1`` means individual randomisation).
    icc : float
        Intra-cluster correlation, in [0, 1].

    Returns
    -------
    float
        The design effect (Donner & Klar 2000); divide a people count by it to get the
        effective sample size. (Not :func:`sscity.survey.design_effect`, which is Kish's
        design effect of unequal *weights*; the two multiply when both apply.)

    Examples
    --------
    >>> cluster_design_effect(21, 0.05)
    2.0
    """
    m = _cluster_size(cluster_size)
    icc = _number(icc, "icc")
    if not 0 <= icc <= 1:
        raise ValueError(f"icc must be between 0 and 1, not {icc:g}. / icc は 0 以上 1 以下にしてください。")
    return 1.0 + (m - 1) * icc


# ------------------------------------------------------------------------ two-group power
def required_n(
    effect: float,
    sd: float = 1.0,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    icc: float = 0.0,
    cluster_size: int = 1,
    test: str = "t",
) -> int:
    """People needed in the first arm to detect a difference of means ``effect``.

    Parameters
    ----------
    effect : float
        The difference of means to detect, on the outcome's scale (its sign is ignored).
    sd : float
        Standard deviation of the outcome (within arms). ``sd=1`` makes ``effect`` Cohen's *d*.
    alpha, power : float
        Two-sided type I error and the power wanted.
    ratio : float
        Size of the second arm relative to the first.
    icc, cluster_size : float, int
        Intra-cluster correlation and people per cluster; the answer is multiplied by
        :func:`cluster_design_effect`.
    test : {"t", "normal"}
        ``"t"`` for the two-sample t-test (``TTestIndPower``), ``"normal"`` for the normal
        approximation ``n = (1 + 1/ratio) (z_{1-alpha/2} + z_{power})^2 sd^2 / effect^2``
        (``NormalIndPower``).

    Returns
    -------
    int
        People in the first arm, rounded up (the second arm needs ``ceil(ratio * n)``);
        a value within 0.001 of a whole number is not rounded up (root-finder tolerance).

    Examples
    --------
    >>> required_n(0.5)                     # Cohen (1988), Table 2.4.1: 64 per group
    64
    >>> required_n(0.5, test="normal")
    63
    """
    effect = _number(effect, "effect")
    if effect == 0:
        raise ValueError(
            "effect must not be zero: no sample detects a zero difference. / 効果量 0 は検出できません。"
        )
    sd = _positive(sd, "sd")
    alpha, power = _alpha_power(alpha, power)
    ratio = _positive(ratio, "ratio")
    deff = cluster_design_effect(cluster_size, icc)
    n_eff = _test(test).solve_power(
        effect_size=abs(effect) / sd,
        nobs1=None,
        alpha=alpha,
        power=power,
        ratio=ratio,
        alternative="two-sided",
    )
    # statsmodels' root finder is accurate to ~1e-4 people: do not round 30.0001 up to 31
    return int(math.ceil(_scalar(n_eff) * deff - 1e-3))


def minimum_detectable_effect(
    n_per_arm: float,
    sd: float = 1.0,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    icc: float = 0.0,
    cluster_size: int = 1,
    test: str = "t",
) -> float:
    """Smallest difference of means that ``n_per_arm`` people detect with the given power.

    Parameters
    ----------
    n_per_arm : float
        People in the first arm (the second has ``ratio * n_per_arm``).
    sd, alpha, power, ratio, icc, cluster_size, test
        As in :func:`required_n`.

    Returns
    -------
    float
        The minimum detectable effect on the outcome's scale (``sd`` times Cohen's *d*).

    Examples
    --------
    >>> round(minimum_detectable_effect(64), 2)
    0.5
    """
    n = _positive(n_per_arm, "n_per_arm")
    sd = _positive(sd, "sd")
    alpha, power = _alpha_power(alpha, power)
    ratio = _positive(ratio, "ratio")
    n_eff = n / cluster_design_effect(cluster_size, icc)
    if test == "t" and n_eff * min(1.0, ratio) < 2:
        raise ValueError(
            f"the effective sample is too small for a t-test ({n_eff:.2f} per arm after "
            "the design effect); recruit more people or clusters. "
            "/ 実効サンプルサイズが小さすぎて t 検定ができません。"
        )
    d = _test(test).solve_power(
        effect_size=None, nobs1=n_eff, alpha=alpha, power=power, ratio=ratio, alternative="two-sided"
    )
    return _scalar(d) * sd


def required_n_proportions(
    p_control: float,
    p_treated: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    icc: float = 0.0,
    cluster_size: int = 1,
) -> int:
    """People needed in the control arm to tell two proportions apart (Cohen's *h*).

    Uses the arcsine effect size ``h = 2 asin(sqrt(p_treated)) - 2 asin(sqrt(p_control))``
    (statsmodels ``proportion_effectsize``) and the normal approximation
    (``NormalIndPower``), times :func:`cluster_design_effect` for clusters.

    Parameters
    ----------
    p_control, p_treated : float
        Expected proportions (0-1 scale) without and with the intervention.
    alpha, power, ratio, icc, cluster_size
        As in :func:`required_n`.

    Returns
    -------
    int
        People in the control arm, rounded up.
    """
    p0 = _probability(p_control, "p_control")
    p1 = _probability(p_treated, "p_treated")
    if p0 == p1:
        raise ValueError(
            "p_control and p_treated are equal: there is no difference to detect. "
            "/ 2 つの割合が等しいため、検出する差がありません。"
        )
    h = float(proportion_effectsize(p1, p0))
    return required_n(
        h, sd=1.0, alpha=alpha, power=power, ratio=ratio, icc=icc, cluster_size=cluster_size, test="normal"
    )


def minimum_detectable_proportion(
    p_control: float,
    n_per_arm: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    icc: float = 0.0,
    cluster_size: int = 1,
    direction: str = "increase",
) -> float:
    """The treated-arm proportion that ``n_per_arm`` people per arm would detect.

    Solves Cohen's *h* with ``NormalIndPower`` and maps it back:
    ``p = sin^2(asin(sqrt(p_control)) +- h/2)``.

    Parameters
    ----------
    p_control : float
        Expected proportion without the intervention (0-1 scale).
    n_per_arm : float
        People in the control arm.
    alpha, power, ratio, icc, cluster_size
        As in :func:`required_n`.
    direction : {"increase", "decrease"}
        Whether the intervention is expected to raise or lower the proportion.

    Returns
    -------
    float
        The detectable proportion in the treated arm.

    Raises
    ------
    ValueError
        If no proportion in (0, 1) is far enough from ``p_control`` in that direction.
    """
    p0 = _probability(p_control, "p_control")
    if direction not in ("increase", "decrease"):
        raise ValueError(
            f"direction must be 'increase' or 'decrease', not {direction!r}. "
            "/ direction は 'increase' か 'decrease' にしてください。"
        )
    h = minimum_detectable_effect(n_per_arm, 1.0, alpha, power, ratio, icc, cluster_size, "normal")
    phi = math.asin(math.sqrt(p0)) + (h / 2 if direction == "increase" else -h / 2)
    if not 0 < phi < math.pi / 2:
        raise ValueError(
            f"with this sample no proportion can be told apart from {p0:g} in the "
            f"'{direction}' direction (h = {h:.3f}); recruit more people. "
            "/ このサンプルサイズでは検出可能な割合がありません。"
        )
    return math.sin(phi) ** 2


# ------------------------------------------------------------------- difference in differences
@dataclass(frozen=True)
class DidResult:
    """A difference-in-differences estimate with its interval.

    Attributes
    ----------
    estimate : float
        ``(treated after - treated before) - (comparison after - comparison before)``.
    se : float
        Its standard error (classical OLS, or cluster-robust when clusters were given).
    lower, upper : float
        Confidence interval.
    level : float
        Confidence level, e.g. 0.95.
    n : int
        Rows used.
    n_clusters : int or None
        Clusters for the robust variance (None without clusters).
    method : str
        How the standard error was computed.
    """

    estimate: float
    se: float
    lower: float
    upper: float
    level: float
    n: int
    n_clusters: int | None
    method: str

    def as_dict(self) -> dict:
        """The fields as a plain dict."""
        return asdict(self)


def _binary(frame: pd.DataFrame, column: str) -> np.ndarray:
    values = frame[column]
    if values.isna().any():
        raise ValueError(
            f"column {column!r} has missing values; every row needs one. / 列 {column!r} に欠損値があります。"
        )
    uniq = set(pd.unique(values))
    if not uniq <= {0, 1}:
        raise ValueError(
            f"column {column!r} must be 0/1 or False/True, found {sorted(map(str, uniq))}. "
            f"/ 列 {column!r} は 0/1（または False/True）にしてください。"
        )
    return values.to_numpy().astype(float)


def did_estimate(
    frame: pd.DataFrame,
    outcome: str,
    group: str,
    period: str,
    cluster: str | None = None,
    level: float = 0.95,
) -> DidResult:
    """Difference-in-differences by OLS: ``outcome ~ group + period + group:period``.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per observation (a person, or a person-period).
    outcome : str
        Numeric outcome column, no missing values.
    group : str
        1/True for the pilot (treated) group, 0/False for the comparison group.
    period : str
        1/True after the pilot started, 0/False before.
    cluster : str, optional
        Column naming the cluster (e.g. district). When given, the standard error is
        cluster-robust (statsmodels ``cov_type="cluster"``) and the interval uses a t
        distribution with ``n_clusters - 1`` degrees of freedom.
    level : float
        Confidence level.

    Returns
    -------
    DidResult
        The interaction coefficient, which equals the 2x2 difference of the four cell means.

    Notes
    -----
    The estimate is causal only under *parallel trends*: without the pilot, both groups
    would have changed by the same amount. Check pre-pilot trends; the function cannot.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError("Pass a pandas DataFrame. / pandas の DataFrame を渡してください。")
    level = _probability(level, "level")
    columns = [outcome, group, period] + ([cluster] if cluster is not None else [])
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the frame. / 列 {missing} がありません。")
    y = pd.to_numeric(frame[outcome], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(y).all():
        raise ValueError(
            f"outcome {outcome!r} has missing or non-numeric values; drop or impute them "
            f"first. / 結果変数 {outcome!r} に欠損値または数値でない値があります。"
        )
    g = _binary(frame, group)
    p = _binary(frame, period)
    cells = pd.crosstab(g, p).reindex(index=[0.0, 1.0], columns=[0.0, 1.0], fill_value=0)
    if (cells.to_numpy() == 0).any():
        raise ValueError(
            "each of the four cells (group 0/1 x period 0/1) needs at least one row. "
            "/ 群と時期の 4 つの組み合わせすべてにデータが必要です。"
        )
    X = np.column_stack([np.ones_like(g), g, p, g * p])
    model = sm.OLS(y, X)
    if cluster is None:
        if len(y) <= 4:
            raise ValueError(
                "need more than 4 rows to estimate a standard error. "
                "/ 標準誤差の推定には 5 行以上が必要です。"
            )
        fit = model.fit()
        n_clusters, method = None, "OLS, classical standard error"
    else:
        if frame[cluster].isna().any():
            raise ValueError(
                f"cluster column {cluster!r} has missing values. "
                f"/ クラスター列 {cluster!r} に欠損値があります。"
            )
        codes = pd.factorize(frame[cluster])[0]
        n_clusters = int(codes.max()) + 1
        if n_clusters < 2:
            raise ValueError(
                "cluster-robust standard errors need at least 2 clusters. "
                "/ クラスター頑健標準誤差には 2 つ以上のクラスターが必要です。"
            )
        fit = model.fit(cov_type="cluster", cov_kwds={"groups": codes}, use_t=True)
        method = f"OLS, cluster-robust standard error ({n_clusters} clusters, t with {n_clusters - 1} df)"
    lower, upper = fit.conf_int(alpha=1 - level)[3]
    return DidResult(
        estimate=float(fit.params[3]),
        se=float(fit.bse[3]),
        lower=float(lower),
        upper=float(upper),
        level=level,
        n=len(y),
        n_clusters=n_clusters,
        method=method,
    )


# ------------------------------------------------------------------------------ stepped wedge
def stepped_wedge_schedule(n_clusters: int, n_steps: int, seed: int) -> pd.DataFrame:
    """A random stepped-wedge roll-out: which cluster has the intervention in which period.

    Period 0 is a baseline with every cluster in control; at each of the ``n_steps`` steps
    about ``n_clusters / n_steps`` clusters cross over (as evenly as possible), and stay
    crossed over, so in the last period every cluster has the intervention. The order in
    which clusters cross over is a random permutation.

    Parameters
    ----------
    n_clusters : int
        Clusters (e.g. districts or neighbourhoods), at least ``n_steps``.
    n_steps : int
        Steps (cross-over times), at least 1; there are ``n_steps + 1`` periods.
    seed : int
        Seed for ``numpy.random.default_rng``.

    Returns
    -------
    pandas.DataFrame
        ``n_clusters`` rows (index ``cluster`` = 0..n_clusters-1) by ``n_steps + 1`` columns
        (``period`` = 0..n_steps) of 0/1, plus nothing else.
    """
    for value, name in ((n_clusters, "n_clusters"), (n_steps, "n_steps"), (seed, "seed")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, not {value!r}. / {name} は整数にしてください。")
    if n_steps < 1:
        raise ValueError(f"n_steps must be at least 1, not {n_steps}. / n_steps は 1 以上にしてください。")
    if n_clusters < n_steps:
        raise ValueError(
            f"n_clusters ({n_clusters}) must be at least n_steps ({n_steps}) so that "
            "a cluster crosses over at every step. / クラスター数はステップ数以上にしてください。"
        )
    rng = np.random.default_rng(seed)
    first_treated = 1 + (np.arange(n_clusters) * n_steps) // n_clusters  # 1..n_steps, balanced
    first_treated = first_treated[rng.permutation(n_clusters)]
    periods = np.arange(n_steps + 1)
    matrix = (periods[None, :] >= first_treated[:, None]).astype(int)
    return pd.DataFrame(
        matrix,
        index=pd.RangeIndex(n_clusters, name="cluster"),
        columns=pd.RangeIndex(n_steps + 1, name="period"),
    )


def _schedule_matrix(schedule) -> np.ndarray:
    X = np.asarray(schedule.to_numpy() if isinstance(schedule, pd.DataFrame) else schedule)
    if X.ndim != 2 or X.size == 0:
        raise ValueError(
            "schedule must be a non-empty 2-D table (clusters x periods). "
            "/ schedule はクラスター×時期の 2 次元表にしてください。"
        )
    if not np.isin(X, (0, 1)).all():
        raise ValueError(
            "schedule must hold only 0 (control) and 1 (intervention). "
            "/ schedule は 0（対照）と 1（介入）だけにしてください。"
        )
    if X.shape[0] < 2:
        raise ValueError("schedule needs at least 2 clusters. / クラスターは 2 つ以上必要です。")
    return X.astype(float)


def stepped_wedge_variance(schedule, sd: float, icc: float, cluster_period_size: int) -> float:
    """Variance of the treatment effect in a cluster design, by Hussey & Hughes (2007).

    ``Var = I s2 (s2 + T tau2) / ((I U - W) s2 + (U^2 + I T U - T W - I V) tau2)``, with
    ``I`` clusters, ``T`` periods, ``s2 = sd^2 (1 - icc) / cluster_period_size`` (variance of
    a cluster-period mean), ``tau2 = sd^2 icc`` (between-cluster variance),
    ``U = sum X_ij``, ``W = sum_j (sum_i X_ij)^2`` and ``V = sum_i (sum_j X_ij)^2``.

    Parameters
    ----------
    schedule : pandas.DataFrame or array-like
        Clusters x periods of 0/1 (e.g. from :func:`stepped_wedge_schedule`); any design
        works, including a parallel one (one period, half the clusters treated).
    sd : float
        Total standard deviation of an individual outcome.
    icc : float
        Intra-cluster correlation, in [0, 1).
    cluster_period_size : int
        People measured per cluster and period (cross-sectional samples).

    Returns
    -------
    float
        The variance of the estimated treatment effect.
    """
    X = _schedule_matrix(schedule)
    sd = _positive(sd, "sd")
    m = _cluster_size(cluster_period_size)
    icc = _number(icc, "icc")
    if not 0 <= icc < 1:
        raise ValueError(f"icc must be in [0, 1), not {icc:g}. / icc は 0 以上 1 未満にしてください。")
    n_clusters, n_periods = X.shape
    s2 = sd**2 * (1 - icc) / m
    tau2 = sd**2 * icc
    U = X.sum()
    W = float((X.sum(axis=0) ** 2).sum())
    V = float((X.sum(axis=1) ** 2).sum())
    denom = (n_clusters * U - W) * s2 + (
        U**2 + n_clusters * n_periods * U - n_periods * W - n_clusters * V
    ) * tau2
    if denom <= 1e-12 * max(1.0, abs(n_clusters * U * s2)):
        raise ValueError(
            "the schedule cannot separate the intervention from the periods (e.g. every "
            "cluster crosses over at the same time); vary the cross-over times. "
            "/ この割り付けでは介入効果を時期の効果と区別できません。"
        )
    return float(n_clusters * s2 * (s2 + n_periods * tau2) / denom)


def stepped_wedge_power(
    effect: float, schedule, sd: float, icc: float, cluster_period_size: int, alpha: float = 0.05
) -> float:
    """Power of a stepped-wedge (or any cluster) design, Hussey & Hughes (2007).

    ``power = Phi(|effect| / sqrt(Var) - z_{1-alpha/2})`` with ``Var`` from
    :func:`stepped_wedge_variance`.

    Parameters
    ----------
    effect : float
        Treatment effect on the outcome's scale.
    schedule, sd, icc, cluster_period_size
        As in :func:`stepped_wedge_variance`.
    alpha : float
        Two-sided type I error.

    Returns
    -------
    float
        The power, in (0, 1).
    """
    effect = _number(effect, "effect")
    alpha = _probability(alpha, "alpha")
    var = stepped_wedge_variance(schedule, sd, icc, cluster_period_size)
    return float(stats.norm.cdf(abs(effect) / math.sqrt(var) - stats.norm.ppf(1 - alpha / 2)))


def stepped_wedge_mde(
    schedule, sd: float, icc: float, cluster_period_size: int, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Minimum detectable effect of a stepped-wedge design: ``(z_{1-alpha/2} + z_power) sqrt(Var)``.

    Parameters
    ----------
    schedule, sd, icc, cluster_period_size
        As in :func:`stepped_wedge_variance`.
    alpha, power : float
        Two-sided type I error and the power wanted.

    Returns
    -------
    float
        The effect (outcome scale) that :func:`stepped_wedge_power` detects with ``power``.
    """
    alpha, power = _alpha_power(alpha, power)
    var = stepped_wedge_variance(schedule, sd, icc, cluster_period_size)
    return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * math.sqrt(var))


# ------------------------------------------------------------------------- a synthetic pilot
#: Common change of the mean per survey round in both arms (a secular trend), and how much
#: lower the pilot arm starts than the comparison arm, in :func:`simulate_pilot_panel`.
PANEL_COMMON_TREND = 0.25
PANEL_ARM_GAP = -0.4


def _whole(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {value!r}. / {name} は整数にしてください。")
    if value < minimum:
        raise ValueError(
            f"{name} must be at least {minimum}, not {value}. / {name} は {minimum} 以上にしてください。"
        )
    return int(value)


def simulate_pilot_panel(
    seed: int,
    *,
    effect: float = 0.5,
    pre_trend: float = 0.0,
    n_clusters_per_arm: int = 4,
    people_per_cluster: int = 30,
    sd: float = 2.0,
    icc: float = 0.05,
    baseline: float = 6.5,
) -> pd.DataFrame:
    """A SYNTHETIC panel of a pilot: the same people surveyed in three rounds, two arms.

    Neighbourhood clusters are in the pilot arm (``group`` 1) or the comparison arm
    (``group`` 0); the same residents answer in rounds -1 and 0 (before the pilot) and
    round 1 (after it started). The outcome is a 0-10 wellbeing score built as

        ``baseline + PANEL_ARM_GAP * group + PANEL_COMMON_TREND * round
        + pre_trend * group * (round + 1) + effect * group * after
        + cluster effect + person effect + noise``,

    then clipped to [0, 10] (a continuous score, not rounded). The cluster effect has
    variance ``icc * sd**2``; the rest, ``(1 - icc) * sd**2``, is split equally between a
    person effect (the same in all rounds) and round-to-round noise. So both arms change by
    ``PANEL_COMMON_TREND`` per round (a before/after comparison in the pilot arm alone is
    biased by it), the pilot arm starts ``PANEL_ARM_GAP`` lower, and ``pre_trend`` is how
    much more the pilot arm rises per round even without the pilot (a violation of parallel
    trends, visible between rounds -1 and 0).

    Parameters
    ----------
    seed : int
        Seed for ``numpy.random.default_rng``; the same seed gives the same panel.
    effect : float
        The pilot's effect on wellbeing in round 1, pilot arm (before clipping).
    pre_trend : float
        Extra rise of the pilot arm per round, with or without the pilot.
    n_clusters_per_arm : int
        Clusters in each arm, at least 2.
    people_per_cluster : int
        Residents per cluster, at least 2.
    sd : float
        Total standard deviation of a single answer around its arm-round mean (before clipping).
    icc : float
        Intra-cluster correlation, in [0, 1).
    baseline : float
        Mean of the comparison arm in round 0.

    Returns
    -------
    pandas.DataFrame
        One row per person and round, sorted by ``person_id`` then ``round``: ``person_id``
        (int), ``cluster`` (str, e.g. ``"P1"`` pilot, ``"C1"`` comparison), ``group`` (int
        0/1), ``round`` (int -1, 0, 1), ``after`` (bool, ``round == 1``), ``wellbeing``
        (float in [0, 10]).

    Notes
    -----
    Clipping pulls scores near 0 and 10 in, so the difference of means can be a little
    smaller than ``effect``; with the defaults very few answers are clipped.

    Examples
    --------
    >>> panel = simulate_pilot_panel(1)
    >>> panel.shape
    (720, 6)
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, not {seed!r}. / seed は整数にしてください。")
    effect = _number(effect, "effect")
    pre_trend = _number(pre_trend, "pre_trend")
    k = _whole(n_clusters_per_arm, "n_clusters_per_arm", 2)
    m = _whole(people_per_cluster, "people_per_cluster", 2)
    sd = _positive(sd, "sd")
    icc = _number(icc, "icc")
    if not 0 <= icc < 1:
        raise ValueError(f"icc must be in [0, 1), not {icc:g}. / icc は 0 以上 1 未満にしてください。")
    baseline = _number(baseline, "baseline")
    rng = np.random.default_rng(seed)
    n_clusters, rounds = 2 * k, np.array([-1, 0, 1])
    group_of_cluster = np.repeat([1, 0], k)
    names = [f"P{i + 1}" for i in range(k)] + [f"C{i + 1}" for i in range(k)]
    cluster_effect = rng.normal(0.0, sd * math.sqrt(icc), n_clusters)
    person_cluster = np.repeat(np.arange(n_clusters), m)
    person_effect = rng.normal(0.0, sd * math.sqrt((1 - icc) / 2), n_clusters * m)
    noise = rng.normal(0.0, sd * math.sqrt((1 - icc) / 2), (n_clusters * m, rounds.size))
    g = group_of_cluster[person_cluster][:, None]
    r = rounds[None, :]
    mean = (
        baseline
        + PANEL_ARM_GAP * g
        + PANEL_COMMON_TREND * r
        + pre_trend * g * (r + 1)
        + effect * g * (r == 1)
    )
    score = mean + cluster_effect[person_cluster][:, None] + person_effect[:, None] + noise
    n = n_clusters * m
    return pd.DataFrame(
        {
            "person_id": np.repeat(np.arange(1, n + 1), rounds.size),
            "cluster": np.repeat(np.array(names)[person_cluster], rounds.size),
            "group": np.repeat(group_of_cluster[person_cluster], rounds.size),
            "round": np.tile(rounds, n),
            "after": np.tile(rounds == 1, n),
            "wellbeing": np.clip(score, 0.0, 10.0).ravel(),
        }
    )


# ------------------------------------------------------------------- exact Poisson intervals
SIDES = ("two-sided", "lower", "upper")


def poisson_rate_interval(events, exposure, level: float = 0.95, side: str = "two-sided"):
    """Exact (Garwood 1936) confidence interval for a rate ``events / exposure``.

    Parameters
    ----------
    events : int
        Events counted (e.g. falls), a whole number >= 0.
    exposure : float
        Exposure in the unit the rate is wanted per (e.g. thousands of km ridden), > 0.
    level : float
        Confidence level, e.g. 0.95.
    side : {"two-sided", "lower", "upper"}
        ``"two-sided"``: each tail has ``(1 - level) / 2``. ``"lower"``: a one-sided lower
        bound (the rate is at least ``lower`` with confidence ``level``; ``upper`` is
        ``inf``). ``"upper"``: a one-sided upper bound (``lower`` is 0).

    Returns
    -------
    tuple of float
        ``(lower, upper)``, per unit of exposure.

    Notes
    -----
    With ``k`` events and tail probability ``a`` (``(1 - level) / 2`` two-sided,
    ``1 - level`` one-sided), the bounds on the expected count are
    ``chi2.ppf(a, 2k) / 2`` (0 when ``k = 0``) and ``chi2.ppf(1 - a, 2k + 2) / 2``: the
    counts at which ``P(X >= k) = a`` and ``P(X <= k) = a``. Dividing by ``exposure``
    gives the rate. The interval is conservative: it covers at least ``level``.

    Examples
    --------
    >>> lower, upper = poisson_rate_interval(0, 1.0)
    >>> lower, round(upper, 3)
    (0.0, 3.689)
    """
    if isinstance(events, bool) or not isinstance(events, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"events must be a number, not {type(events).__name__}. / events は数値で指定してください。"
        )
    if not (math.isfinite(events) and events >= 0 and float(events).is_integer()):
        raise ValueError(
            f"events must be a whole number >= 0, not {events!r}. / events は 0 以上の整数にしてください。"
        )
    k = int(events)
    exposure = _positive(exposure, "exposure")
    level = _probability(level, "level")
    if side not in SIDES:
        raise ValueError(
            f"side must be one of {SIDES}, not {side!r}. / side は {SIDES} のいずれかにしてください。"
        )
    a = (1 - level) / 2 if side == "two-sided" else 1 - level
    lower = float(stats.chi2.ppf(a, 2 * k) / 2) if k > 0 else 0.0
    upper = float(stats.chi2.ppf(1 - a, 2 * k + 2) / 2)
    if side == "lower":
        upper = math.inf
    elif side == "upper":
        lower = 0.0
    return lower / exposure, upper / exposure
