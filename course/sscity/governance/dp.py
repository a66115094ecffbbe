"""Differential privacy with the OpenDP library: counts, sums and means per group under a budget.

Every noisy number here is drawn by OpenDP (``opendp`` 0.16, its Context API); this module
only prepares the data, asks OpenDP for the noise scale of each release, and converts that
scale into an accuracy with OpenDP's own accuracy functions
(``dp.discrete_laplacian_scale_to_accuracy`` for whole-number results,
``dp.laplacian_scale_to_accuracy`` for real-valued ones).

- :class:`PrivacyBudget` -- a small accountant: a total epsilon, what each release spent,
  what remains, and a refusal (:class:`BudgetExceededError`) before a release would overspend;
- :func:`dp_counts`, :func:`dp_sums`, :func:`dp_means` -- one release per call, one row per
  group (e.g. per district), each row with its noisy ``estimate``, the noise ``scale`` and the
  ``accuracy`` at a confidence level (a :class:`DPRelease`);
- :func:`compare_with_sampling_error` and :func:`smallest_epsilon` -- set the DP noise of a
  district mean beside the survey's own sampling error (module 01, :mod:`sscity.survey`), so
  that epsilon is chosen with a reason, not by habit.

Conventions
-----------
- **Privacy unit**: one row is one person, who appears once (``dp.unit_of(contributions=1)``,
  OpenDP's symmetric distance 1). Data where a person has several rows need a larger unit.
- **Groups are public**: the list of groups (districts) must be given (``groups=``) or be the
  declared categories of a categorical column -- never read off the data, because which groups
  occur is itself private. Rows in other groups are left out.
- **One epsilon for all groups of a release**: each person is in one group, so the groups'
  releases touch disjoint people and together cost the epsilon of one group (*parallel
  composition*, McSherry 2009, "Privacy integrated queries", SIGMOD). For counts OpenDP proves
  this itself (``count_by_categories``); for sums and means each group gets its own OpenDP
  Context with the release's epsilon and the accountant charges it once. (OpenDP's Polars API
  does the same with ``group_by`` and public keys, but needs polars 1.36.1; the course's
  environment has a newer polars that samplics requires.)
- **Bounds are public**: values are clamped to ``bounds`` before summing; choose them from the
  questionnaire (happiness is 0-10), never from the data.
- **No seed**: OpenDP draws its noise from a cryptographically secure generator and offers no
  seed, on purpose -- anyone who knew the seed could subtract the noise. Releases therefore
  differ run to run; the budgets, and the scales and accuracies of counts and sums, do not,
  and those are what to check. A mean's scale is the exception: it is computed from the
  released (noisy) count ``n_dp``, so it varies a little between runs; ``scale * n_dp`` is fixed.
- Missing values in ``value`` are left out (dropping rows is 1-stable, so it costs nothing
  extra); a missing group is an error.

References: Dwork & Roth (2014), *The Algorithmic Foundations of Differential Privacy*;
OpenDP documentation, "Aggregation: Mean" (the resize recipe of :func:`dp_means`),
https://docs.opendp.org/ .
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "BudgetExceededError",
    "DPRelease",
    "PrivacyBudget",
    "compare_with_sampling_error",
    "dp_counts",
    "dp_means",
    "dp_sums",
    "smallest_epsilon",
]

# Spending is compared with this slack so that 0.1 + 0.2 + 0.7 fits a budget of 1.0.
_EPSILON_SLACK = 1e-9


def _opendp():
    """OpenDP's prelude with the "contrib" features on (the Context API needs them)."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


# --------------------------------------------------------------------------- validation


def _check_epsilon(epsilon, name: str = "epsilon") -> float:
    try:
        value = float(epsilon)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a number such as 1.0, not {epsilon!r}. / "
            f"{name} は 1.0 のような数で指定してください。"
        ) from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"{name} must be a positive finite number (e.g. 0.5 or 1.0), not {epsilon!r}. / "
            f"{name} は正の有限の数（例: 0.5, 1.0）にしてください。"
        )
    return value


def _check_level(level) -> float:
    try:
        value = float(level)
    except (TypeError, ValueError):
        raise TypeError(
            f"level must be a number such as 0.95, not {level!r}. / "
            "level は 0.95 のような数で指定してください。"
        ) from None
    if not 0 < value < 1:
        raise ValueError(
            f"level must be between 0 and 1 (95% is level=0.95), not {level!r}. / "
            "level は 0 と 1 の間（95% なら 0.95）にしてください。"
        )
    return value


def _check_bounds(bounds) -> tuple:
    try:
        lower, upper = bounds
    except (TypeError, ValueError):
        raise TypeError(
            f"bounds must be a pair (lower, upper) such as (0, 10), not {bounds!r}. / "
            "bounds は (0, 10) のような (下限, 上限) の組で指定してください。"
        ) from None
    for b in (lower, upper):
        if isinstance(b, bool) or not isinstance(b, (int, float, np.integer, np.floating)):
            raise TypeError(
                f"bounds must hold numbers, not {b!r}. / bounds には数を指定してください。"
            )
        if not math.isfinite(float(b)):
            raise ValueError(
                f"bounds must be finite; {bounds!r} is not. / bounds は有限の数にしてください。"
            )
    if not lower < upper:
        raise ValueError(
            f"bounds must have lower < upper, got {bounds!r}; take them from the questionnaire "
            "(e.g. happiness 0-10), not from the data. / bounds は下限 < 上限にしてください"
            "（データからではなく調査票の範囲から。例: 幸福度は 0〜10）。"
        )
    return lower, upper


def _check_frame(data, columns: Sequence[str]) -> pd.DataFrame:
    if not isinstance(data, pd.DataFrame):
        raise TypeError(
            f"data must be a pandas DataFrame, not {type(data).__name__}. / "
            "data には pandas の DataFrame を渡してください。"
        )
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise KeyError(
            f"Column(s) {missing} are not in the data; the columns are {list(data.columns)}. / "
            f"列 {missing} がデータにありません。"
        )
    return data


def _public_groups(data: pd.DataFrame, by: str, groups) -> list:
    """The public list of groups: given, or the declared categories of a categorical column."""
    if groups is None:
        column = data[by]
        if isinstance(column.dtype, pd.CategoricalDtype):
            return list(column.cat.categories)
        raise ValueError(
            f"Give the public list of groups, e.g. groups=['tsukuba', 'oho', ...]: the groups "
            f"that occur in {by!r} are themselves private, so they cannot be read off the data "
            "(a categorical column's declared categories are accepted). / "
            f"groups= に公開のグループ一覧を指定してください。{by!r} に現れる値そのものが"
            "個人情報になり得るため、データから読み取れません（カテゴリ型の列なら定義済みの"
            "カテゴリを使います）。"
        )
    groups = list(groups)
    if not groups:
        raise ValueError("groups is empty; list at least one group. / groups が空です。")
    if len(set(groups)) != len(groups):
        raise ValueError(
            f"groups has duplicates: {groups}. / groups に重複があります。"
        )
    return groups


def _group_column(data: pd.DataFrame, by: str) -> pd.Series:
    if data[by].isna().any():
        raise ValueError(
            f"{int(data[by].isna().sum())} rows have no {by!r} (NaN); fill them in or drop them "
            f"first. / {by!r} が欠けている行が {int(data[by].isna().sum())} 行あります。"
            "補うか除いてから使ってください。"
        )
    return data[by].astype(object)


def _numeric_values(data: pd.DataFrame, value: str) -> pd.Series:
    column = data[value]
    if pd.api.types.is_bool_dtype(column):
        return column.astype(int)
    if not pd.api.types.is_numeric_dtype(column):
        raise TypeError(
            f"{value!r} must hold numbers, not {column.dtype}; recode answers first. / "
            f"{value!r} は数値の列にしてください（回答を数値に直してから）。"
        )
    return column


# --------------------------------------------------------------------------- accountant


class BudgetExceededError(ValueError):
    """A release would spend more epsilon than the :class:`PrivacyBudget` has left."""


@dataclass
class PrivacyBudget:
    """A total privacy budget (pure epsilon-DP) and the releases that spent it.

    Sequential composition: the epsilons of releases on the same people add up
    (Dwork & Roth 2014, Theorem 3.14). The budget refuses a release that would overspend,
    before any noise is drawn.

    Parameters
    ----------
    epsilon : float
        The total epsilon the data holder allows for all releases.

    Examples
    --------
    >>> budget = PrivacyBudget(1.0)
    >>> budget.split_evenly(2)
    0.5
    >>> budget.spend(0.5, "counts per district")
    >>> budget.remaining
    0.5
    """

    epsilon: float
    _spent: list[tuple[str, float]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self):
        self.epsilon = _check_epsilon(self.epsilon, "the total epsilon")

    @property
    def spent(self) -> float:
        """Epsilon spent so far."""
        return math.fsum(e for _, e in self._spent)

    @property
    def remaining(self) -> float:
        """Epsilon left (never below 0)."""
        return max(self.epsilon - self.spent, 0.0)

    def split_evenly(self, releases: int) -> float:
        """The epsilon of each of ``releases`` equal releases from what remains."""
        if isinstance(releases, bool) or not isinstance(releases, (int, np.integer)) or releases < 1:
            raise ValueError(
                f"releases must be a whole number >= 1, not {releases!r}. / "
                "releases は 1 以上の整数にしてください。"
            )
        return self.remaining / int(releases)

    def can_spend(self, epsilon: float) -> bool:
        """Whether a release of ``epsilon`` still fits."""
        return _check_epsilon(epsilon) <= self.remaining + _EPSILON_SLACK

    def spend(self, epsilon: float, label: str = "release") -> None:
        """Record a release of ``epsilon``; refuse with :class:`BudgetExceededError` if it does not fit."""
        epsilon = _check_epsilon(epsilon)
        if not self.can_spend(epsilon):
            raise BudgetExceededError(
                f"The release {label!r} needs epsilon = {epsilon:g} but only {self.remaining:g} "
                f"of {self.epsilon:g} is left (spent {self.spent:g}); release less, with a "
                "smaller epsilon, or not at all -- the budget cannot be refilled for the same "
                f"people. / 公開 {label!r} には ε = {epsilon:g} が必要ですが、残りは "
                f"{self.epsilon:g} のうち {self.remaining:g} です（使用済み {self.spent:g}）。"
                "ε を小さくするか公開を減らしてください。同じ人々について予算は戻せません。"
            )
        self._spent.append((str(label), epsilon))

    @property
    def ledger(self) -> pd.DataFrame:
        """One row per release: ``release``, ``epsilon``, ``spent_after``, ``remaining_after``."""
        rows, total = [], 0.0
        for label, epsilon in self._spent:
            total += epsilon
            rows.append(
                {
                    "release": label,
                    "epsilon": epsilon,
                    "spent_after": total,
                    "remaining_after": max(self.epsilon - total, 0.0),
                }
            )
        return pd.DataFrame(rows, columns=["release", "epsilon", "spent_after", "remaining_after"])

    def __str__(self) -> str:
        return (
            f"privacy budget epsilon = {self.epsilon:g}: spent {self.spent:g} in "
            f"{len(self._spent)} release(s), {self.remaining:g} left"
        )


# --------------------------------------------------------------------------- releases


@dataclass(frozen=True)
class DPRelease:
    """One differentially private release: a row per group.

    Attributes
    ----------
    statistic : {"count", "sum", "mean"}
    by : str
        The grouping column.
    value : str or None
        The variable summed or averaged (``None`` for counts).
    epsilon : float
        Epsilon of the whole release (all groups together, parallel composition).
    level : float
        Confidence level of ``accuracy``.
    mechanism : str
        OpenDP's noise, e.g. "discrete Laplace".
    bounds : tuple or None
        Clamping bounds (public).
    table : DataFrame
        Indexed by group: ``estimate`` (noisy), ``lower`` and ``upper``
        (``estimate ± accuracy``), ``scale`` (noise scale b), ``accuracy`` (with probability
        ``level`` the noise is smaller than this); :func:`dp_means` adds ``n_dp`` (the noisy
        count used to size the mean).
    """

    statistic: str
    by: str
    value: str | None
    epsilon: float
    level: float
    mechanism: str
    bounds: tuple | None
    table: pd.DataFrame

    def title(self) -> str:
        what = self.statistic if self.value is None else f"{self.statistic} of {self.value}"
        bounds = "" if self.bounds is None else f", clamped to {tuple(self.bounds)}"
        return (
            f"DP {what} by {self.by} (epsilon = {self.epsilon:g}, {self.mechanism}{bounds}; "
            f"accuracy at {100 * self.level:g}%)"
        )

    def __str__(self) -> str:
        return f"{self.title()}\n{self.table.to_string()}"

    def _repr_html_(self) -> str:
        return f"<p><b>{self.title()}</b></p>{self.table.to_html(float_format=lambda v: f'{v:.4g}')}"


def _table(rows: list[dict], groups: list, by: str) -> pd.DataFrame:
    """The release table, with the interval ``estimate ± accuracy`` for plotting."""
    table = pd.DataFrame(rows, index=pd.Index(groups, name=by))
    table.insert(1, "lower", table["estimate"] - table["accuracy"])
    table.insert(2, "upper", table["estimate"] + table["accuracy"])
    return table


def _accuracy(dp, scale: float, alpha: float, discrete: bool) -> float:
    if discrete:
        return float(dp.discrete_laplacian_scale_to_accuracy(scale, alpha))
    return float(dp.laplacian_scale_to_accuracy(scale, alpha))


def _context(dp, values: list, epsilon: float, kind: type, **split):
    """An OpenDP Context over a list of ``kind`` (int, float or str), one person per row."""
    # The domain is stated, not inferred: floats must be free of NaN to be clamped, and an
    # empty group has no element from which OpenDP could infer a type.
    atom = dp.atom_domain(T=float, nan=False) if kind is float else dp.atom_domain(T=kind)
    return dp.Context.compositor(
        data=values,
        privacy_unit=dp.unit_of(contributions=1),
        privacy_loss=dp.loss_of(epsilon=epsilon),
        domain=dp.vector_domain(atom),
        **split,
    )


def _values_by_group(data, by, value, groups) -> dict:
    """For each public group, its non-missing values of ``value`` (other groups left out)."""
    labels = _group_column(data, by)
    column = _numeric_values(data, value)
    keep = column.notna()
    return {g: column[keep & (labels == g)].tolist() for g in groups}


def _charge(budget, epsilon: float, label: str) -> None:
    if budget is None:
        return
    if not isinstance(budget, PrivacyBudget):
        raise TypeError(
            f"budget must be a PrivacyBudget, not {type(budget).__name__}. / "
            "budget には PrivacyBudget を渡してください。"
        )
    budget.spend(epsilon, label)


def dp_counts(data: pd.DataFrame, by: str, epsilon: float, *, groups=None, level: float = 0.95,
              budget: PrivacyBudget | None = None) -> DPRelease:
    """Noisy number of rows per group, from OpenDP's ``count_by_categories`` and Laplace noise.

    Parameters
    ----------
    data : DataFrame
        One row per person.
    by : str
        The grouping column, e.g. ``"district_code"``.
    epsilon : float
        Epsilon of this release (all groups together).
    groups : sequence, optional
        The public list of groups; default the declared categories of ``data[by]``.
    level : float, default 0.95
        Confidence level of the accuracy.
    budget : PrivacyBudget, optional
        Charged ``epsilon`` before the release; refuses if it does not fit.

    Returns
    -------
    DPRelease
        Whole-number counts with discrete Laplace noise of scale ``1 / epsilon`` (one person
        changes one group's count by 1).

    Examples
    --------
    With ``epsilon=0.5`` (a budget of 1 split evenly over 2 releases) the scale is 2.0.
    """
    dp = _opendp()
    epsilon = _check_epsilon(epsilon)
    level = _check_level(level)
    _check_frame(data, [by])
    groups = _public_groups(data, by, groups)
    labels = _group_column(data, by)
    # OpenDP counts strings; the public categories are matched as text.
    text = {str(g) for g in groups}
    if len(text) != len(groups):
        raise ValueError(f"groups {groups} are not distinct as text. / groups が文字列として重複します。")
    _charge(budget, epsilon, f"counts by {by}")
    context = _context(dp, labels.map(str).tolist(), epsilon, str, split_evenly_over=1)
    query = context.query().count_by_categories(categories=[str(g) for g in groups],
                                                null_category=False).laplace()
    scale = float(query.param())
    counts = query.release()
    accuracy = _accuracy(dp, scale, 1 - level, discrete=True)
    table = _table([{"estimate": int(c), "scale": scale, "accuracy": accuracy} for c in counts],
                   groups, by)
    return DPRelease("count", by, None, epsilon, level, "discrete Laplace", None, table)


def _is_integer_release(column: pd.Series, bounds) -> bool:
    return pd.api.types.is_integer_dtype(column) and all(
        isinstance(b, (int, np.integer)) and not isinstance(b, bool) for b in bounds
    )


def dp_sums(data: pd.DataFrame, by: str, value: str, bounds, epsilon: float, *, groups=None,
            level: float = 0.95, budget: PrivacyBudget | None = None) -> DPRelease:
    """Noisy sum of ``value`` per group, each value clamped to ``bounds`` first.

    One OpenDP Context per group (``clamp(bounds).sum().laplace()``), all with ``epsilon``:
    the groups hold different people, so the release costs ``epsilon`` once.

    Parameters
    ----------
    data, by, groups, level, budget
        As in :func:`dp_counts`.
    value : str
        The column to sum; NaN is left out.
    bounds : (lower, upper)
        Public clamping bounds. Whole numbers on a whole-number column give an exact integer
        sum with discrete Laplace noise; otherwise a float sum with Laplace noise (OpenDP adds
        a hair to the scale for floating-point rounding).
    epsilon : float
        Epsilon of this release.

    Returns
    -------
    DPRelease
        The scale is ``max(|lower|, |upper|) / epsilon``: 20.0 for bounds (0, 10) and
        epsilon 0.5.
    """
    dp = _opendp()
    epsilon = _check_epsilon(epsilon)
    level = _check_level(level)
    bounds = _check_bounds(bounds)
    _check_frame(data, [by, value])
    groups = _public_groups(data, by, groups)
    integer = _is_integer_release(_numeric_values(data, value), bounds)
    values = _values_by_group(data, by, value, groups)
    _charge(budget, epsilon, f"sums of {value} by {by}")
    rows = []
    for g in groups:
        if integer:
            group_values, clamp = [int(v) for v in values[g]], (int(bounds[0]), int(bounds[1]))
        else:
            group_values, clamp = [float(v) for v in values[g]], (float(bounds[0]), float(bounds[1]))
        context = _context(dp, group_values, epsilon, int if integer else float,
                           split_evenly_over=1)
        query = context.query().clamp(clamp).sum().laplace()
        scale = float(query.param())
        rows.append({"estimate": query.release(), "scale": scale,
                     "accuracy": _accuracy(dp, scale, 1 - level, discrete=integer)})
    table = _table(rows, groups, by)
    mechanism = "discrete Laplace" if integer else "Laplace"
    return DPRelease("sum", by, value, epsilon, level, mechanism, tuple(bounds), table)


def _check_share(count_share) -> float:
    try:
        share = float(count_share)
    except (TypeError, ValueError):
        share = math.nan
    if not 0 < share < 1:
        raise ValueError(
            f"count_share must be between 0 and 1 (the part of epsilon for the count), not "
            f"{count_share!r}. / count_share は 0 と 1 の間（件数に使う ε の割合）にしてください。"
        )
    return share


def _mean_in_group(dp, values: list, bounds, epsilon: float, count_share: float, n=None):
    """OpenDP's recipe for a mean of unknown size: a DP count, then resize and mean.

    With ``n`` given (planning), no count is released and only the mean's scale is read.
    Returns (n used, mean query).
    """
    lower, upper = float(bounds[0]), float(bounds[1])
    context = _context(dp, [float(v) for v in values], epsilon, float,
                       split_by_weights=[count_share, 1.0 - count_share])
    if n is None:
        n = int(context.query().count().laplace().release())
    # Post-processing of the noisy count: a dataset needs at least one row.
    size = max(int(n), 1)
    query = (
        context.query()
        .clamp((lower, upper))
        .resize(size=size, constant=(lower + upper) / 2)
        .mean()
        .laplace()
    )
    return size, query


def dp_means(data: pd.DataFrame, by: str, value: str, bounds, epsilon: float, *, groups=None,
             count_share: float = 0.5, level: float = 0.95,
             budget: PrivacyBudget | None = None) -> DPRelease:
    """Noisy mean of ``value`` per group (OpenDP's resize recipe for an unknown group size).

    In each group, one OpenDP Context with ``epsilon`` split by weights
    ``[count_share, 1 - count_share]``: first a noisy count ``n_dp``; then the values are
    clamped to ``bounds``, resized to ``n_dp`` rows (rows dropped at random, or padded with
    the midpoint of ``bounds``) and averaged with Laplace noise of scale
    ``(upper - lower) / (n_dp * epsilon * (1 - count_share))``.

    Parameters
    ----------
    data, by, value, bounds, groups, level, budget
        As in :func:`dp_sums`.
    epsilon : float
        Epsilon of this release (count and mean together; all groups together).
    count_share : float, default 0.5
        Part of ``epsilon`` spent on the count that sizes the mean.

    Returns
    -------
    DPRelease
        ``table`` adds ``n_dp``. ``accuracy`` covers the Laplace noise of the mean only; when
        ``n_dp`` is off the true count, resizing also pulls the mean slightly towards the
        midpoint of ``bounds`` (small when groups have hundreds of rows).
    """
    dp = _opendp()
    epsilon = _check_epsilon(epsilon)
    level = _check_level(level)
    bounds = _check_bounds(bounds)
    count_share = _check_share(count_share)
    _check_frame(data, [by, value])
    groups = _public_groups(data, by, groups)
    values = _values_by_group(data, by, value, groups)
    _charge(budget, epsilon, f"means of {value} by {by}")
    rows = []
    for g in groups:
        size, query = _mean_in_group(dp, values[g], bounds, epsilon, count_share)
        scale = float(query.param())
        rows.append({"estimate": float(query.release()), "scale": scale,
                     "accuracy": _accuracy(dp, scale, 1 - level, discrete=False), "n_dp": size})
    table = _table(rows, groups, by)
    return DPRelease("mean", by, value, epsilon, level, "Laplace (after a DP count and resize)",
                     tuple(bounds), table)


# --------------------------------------------------------------------------- choosing epsilon


def compare_with_sampling_error(data: pd.DataFrame, by: str, value: str, bounds,
                                epsilons=(0.1, 0.2, 0.5, 1.0, 2.0, 5.0), *, groups=None,
                                weights=None, count_share: float = 0.5,
                                level: float = 0.95) -> pd.DataFrame:
    """How much error DP adds to a district mean, beside the survey's own sampling error.

    Nothing is released: for each group and each epsilon, OpenDP builds the query of
    :func:`dp_means` with the group's actual size and reports its noise scale and accuracy;
    :func:`sscity.survey.group_estimates` gives the sampling error of the same mean.

    Parameters
    ----------
    data, by, value, bounds, groups, count_share, level
        As in :func:`dp_means`.
    epsilons : sequence of float
        The epsilons to compare.
    weights : None, str or array-like
        Survey weights for the sampling error (as in :mod:`sscity.survey`). The DP mean is
        unweighted; the two agree when weights are constant within a group (module 01's design
        weights are constant within a district).

    Returns
    -------
    DataFrame
        One row per (group, epsilon): ``n``, ``estimate`` (the survey mean), ``sampling_se``,
        ``sampling_halfwidth`` (half the confidence interval), ``dp_scale``,
        ``dp_halfwidth`` (OpenDP's accuracy at ``level``), ``ratio``
        (``dp_halfwidth / sampling_halfwidth``) and ``sd_inflation``
        (``sqrt(se² + 2 b²) / se``: how much the total standard deviation grows, a Laplace
        variable of scale b having variance 2 b²).

    Notes
    -----
    This is a *planning* table for the data holder: it uses the true group sizes and the
    survey's confidential answers, so it must not be published itself.
    """
    from sscity import survey

    dp = _opendp()
    level = _check_level(level)
    bounds = _check_bounds(bounds)
    count_share = _check_share(count_share)
    eps_list = [_check_epsilon(e, "each epsilon") for e in np.atleast_1d(epsilons)]
    _check_frame(data, [by, value])
    groups = _public_groups(data, by, groups)
    labels = _group_column(data, by)
    if weights is not None and not isinstance(weights, str):
        # One weight per row of data, kept aligned when the other groups are left out.
        weights = pd.Series(np.asarray(weights, dtype=float), index=data.index)
    inside = labels.isin(groups).to_numpy()
    subset = data[inside].assign(**{by: labels[inside]})
    sampling = survey.group_estimates(
        subset, by, value, weights=weights[inside] if isinstance(weights, pd.Series) else weights,
        level=level,
    )
    values = _values_by_group(data, by, value, groups)
    rows = []
    for g in groups:
        if g not in sampling.index:
            raise ValueError(
                f"Group {g!r} has no answers in {value!r}; the comparison needs at least 2. / "
                f"グループ {g!r} に {value!r} の回答がありません（2 件以上必要です）。"
            )
        s = sampling.loc[g]
        halfwidth = (s["upper"] - s["lower"]) / 2
        for eps in eps_list:
            _, query = _mean_in_group(dp, values[g], bounds, eps, count_share, n=len(values[g]))
            scale = float(query.param())
            accuracy = _accuracy(dp, scale, 1 - level, discrete=False)
            rows.append(
                {
                    by: g,
                    "epsilon": eps,
                    "n": int(s["n"]),
                    "estimate": float(s["estimate"]),
                    "sampling_se": float(s["se"]),
                    "sampling_halfwidth": float(halfwidth),
                    "dp_scale": scale,
                    "dp_halfwidth": accuracy,
                    "ratio": accuracy / halfwidth,
                    "sd_inflation": math.sqrt(s["se"] ** 2 + 2 * scale**2) / s["se"],
                }
            )
    return pd.DataFrame(rows)


def smallest_epsilon(comparison: pd.DataFrame, max_ratio: float = 0.5) -> float:
    """The smallest epsilon in ``comparison`` whose DP error is at most ``max_ratio`` of the
    sampling error in *every* group.

    With the default 0.5, at 95% the DP noise's standard deviation is under half the sampling
    standard error, so the total uncertainty grows by about 10% at most: the release is then
    limited by the survey, not by privacy.

    Returns
    -------
    float
        ``nan`` if no epsilon in the table is enough (compare larger ones, or accept more noise).
    """
    if not isinstance(comparison, pd.DataFrame) or not {"epsilon", "ratio"} <= set(comparison.columns):
        raise TypeError(
            "comparison must be the table from compare_with_sampling_error. / "
            "comparison には compare_with_sampling_error の表を渡してください。"
        )
    max_ratio = _check_epsilon(max_ratio, "max_ratio")
    worst = comparison.groupby("epsilon")["ratio"].max()
    fine = worst[worst <= max_ratio]
    return float(fine.index.min()) if len(fine) else math.nan
