"""Survey analytics: weights, effective sample sizes, intervals and weighted tables.

The machinery behind module 01 (the residents' happiness survey), in small pure
functions that take pandas objects or arrays and return new ones:

- **weights** -- :func:`design_weights` (stratified, ``N_h / n_h``) with
  :func:`row_weights` to put them on the rows; :func:`nonresponse_adjustment`
  (weighting classes); :func:`rake` (iterative proportional fitting to population
  margins such as district and age group);
- **how much information is left** -- :func:`kish_effective_n` and
  :func:`design_effect`;
- **intervals for a proportion** -- :func:`wilson_interval` and :func:`logit_interval`;
- **estimates** -- :func:`weighted_mean`, :func:`weighted_proportion` (each returns an
  :class:`Estimate`), :func:`group_estimates` (one row per district, ready for a map),
  :func:`multiple_response_table` ("choose all that apply") and
  :func:`weighted_crosstab`.

Conventions
-----------
- ``weights=None`` means every respondent weighs 1. Weights must be finite and not
  negative. A row with weight 0 counts as *not in the sample* (e.g. a non-respondent
  after :func:`nonresponse_adjustment`): it adds nothing to sums and is not counted in
  ``n``.
- Missing values (NaN) in the variable being estimated are left out (item
  non-response); missing values in a weighting or grouping variable are an error, because
  silently dropping them changes who the weights stand for.
- Proportions from :func:`weighted_proportion` and :func:`group_estimates` are on the
  0-1 scale; the tables (:func:`multiple_response_table`, :func:`weighted_crosstab`)
  report percentages (0-100).
- The variance formulas treat the respondents as drawn *with replacement* from one
  stratum. That ignores stratification and the finite-population correction, which
  usually makes the intervals slightly conservative -- good enough for teaching, and
  said plainly where it matters.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "Estimate",
    "LogitEdgeWarning",
    "design_effect",
    "design_weights",
    "group_estimates",
    "kish_effective_n",
    "logit_interval",
    "multiple_response_table",
    "nonresponse_adjustment",
    "rake",
    "row_weights",
    "weighted_crosstab",
    "weighted_mean",
    "weighted_proportion",
    "wilson_interval",
]

INTERVAL_METHODS = ("wilson", "logit")


class LogitEdgeWarning(UserWarning):
    """:func:`logit_interval` met ``k = 0`` or ``k = n`` and returned the Wilson interval there.

    The log-odds of 0 or 1 are infinite, so the logit formula has no interval at the edges.
    Silence it with ``warnings.simplefilter("ignore", LogitEdgeWarning)`` once you know.
    """


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Estimate:
    """One estimate with its confidence interval.

    Attributes
    ----------
    estimate : float
        The point estimate (a mean, or a proportion on the 0-1 scale).
    lower, upper : float
        Bounds of the confidence interval.
    n : int
        Respondents used (unweighted count, rows with a value and a positive weight).
    n_eff : float
        Kish effective sample size of those respondents, ``(sum w)**2 / sum w**2``.
    level : float
        Confidence level, e.g. 0.95.
    method : str
        How the interval was computed.
    se : float
        Standard error of the estimate (NaN when the method does not define one).
    """

    estimate: float
    lower: float
    upper: float
    n: int
    n_eff: float
    level: float
    method: str
    se: float = math.nan

    def __str__(self) -> str:
        pct = f"{100 * self.level:g}%"
        return (
            f"{self.estimate:.4g} ({pct} CI {self.lower:.4g} to {self.upper:.4g}; "
            f"n = {self.n}, effective n = {self.n_eff:.1f}; {self.method})"
        )

    def as_dict(self) -> dict:
        """The fields as a plain ``dict`` (e.g. one row of a DataFrame)."""
        return asdict(self)


# --------------------------------------------------------------------------- validation


def _check_level(level: float) -> float:
    try:
        level = float(level)
    except (TypeError, ValueError):
        raise TypeError(f"level must be a number such as 0.95, not {level!r}.") from None
    if not 0 < level < 1:
        raise ValueError(
            f"level must be between 0 and 1 (a 95% interval is level=0.95), not {level}."
        )
    return level


def _z(level: float) -> float:
    return float(stats.norm.ppf(0.5 + level / 2))


def _check_method(method: str) -> str:
    if method not in INTERVAL_METHODS:
        raise ValueError(f"method must be one of {INTERVAL_METHODS}, not {method!r}.")
    return method


def _as_float_array(values, name: str) -> np.ndarray:
    """A 1-D float array from a Series, list or array; NaN allowed (checked by callers)."""
    if isinstance(values, pd.DataFrame):
        raise TypeError(f"{name} must be one column (a Series or 1-D array), not a whole DataFrame.")
    if isinstance(values, pd.Series):
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype(object)
        values = values.to_numpy(dtype=object, na_value=np.nan)
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must hold numbers (use 0/1 or True/False for yes/no answers); "
            f"convert text answers first, e.g. series.map({{'yes': 1, 'no': 0}})."
        ) from None
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {array.shape}.")
    return array


def _check_weights(weights, n: int, name: str = "weights") -> np.ndarray:
    """Weights as a float array of length n: finite, not negative, not all zero."""
    if weights is None:
        return np.ones(n)
    w = _as_float_array(weights, name)
    if w.size != n:
        raise ValueError(f"{name} has {w.size} values but there are {n} rows; give one weight per row.")
    bad = ~np.isfinite(w)
    if bad.any():
        raise ValueError(
            f"{name} has {int(bad.sum())} missing or infinite values (first at position "
            f"{int(np.flatnonzero(bad)[0])}); every row needs a weight."
        )
    if (w < 0).any():
        raise ValueError(f"{name} must not be negative; the smallest is {w.min():g}.")
    if n and w.sum() <= 0:
        raise ValueError(f"{name} are all zero; at least one respondent needs a positive weight.")
    return w


def _check_aligned(values, weights, what: str = "values") -> None:
    if (
        isinstance(values, pd.Series)
        and isinstance(weights, pd.Series)
        and not values.index.equals(weights.index)
    ):
        raise ValueError(
            f"{what} and weights are Series with different index labels, so their rows may not "
            "match. Take both from the same DataFrame, or pass arrays (.to_numpy())."
        )


def _data_weights(data: pd.DataFrame, weights, name: str = "weights") -> np.ndarray:
    """Weights given as None, a column name of ``data`` or one value per row."""
    if isinstance(weights, str):
        if weights not in data.columns:
            raise KeyError(f"There is no weight column {weights!r}; the columns are {list(data.columns)}.")
        weights = data[weights]
    elif isinstance(weights, pd.Series) and not weights.index.equals(data.index):
        raise ValueError(
            f"{name} is a Series whose index does not match the data's; take it from the same "
            "DataFrame, or pass the name of the weight column."
        )
    return _check_weights(weights, len(data), name)


def _check_data(data, columns: Sequence[str]) -> pd.DataFrame:
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, not {type(data).__name__}.")
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise KeyError(f"Column(s) {missing} are not in the data; the columns are {list(data.columns)}.")
    return data


def _check_binary(x: np.ndarray, name: str) -> None:
    seen = x[~np.isnan(x)]
    odd = np.setdiff1d(np.unique(seen), [0.0, 1.0])
    if odd.size:
        raise ValueError(
            f"{name} must be 0/1 (or True/False) with NaN for no answer; it also holds "
            f"{odd[:5].tolist()}. Recode it, e.g. (happiness >= 6).astype(int)."
        )


# --------------------------------------------------------------------------- intervals


def _check_counts(k, n) -> tuple[np.ndarray, np.ndarray]:
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    if not (np.isfinite(k).all() and np.isfinite(n).all()):
        raise ValueError("k and n must be finite numbers (no NaN or infinity).")
    if (n <= 0).any():
        raise ValueError(f"n must be positive (the number of respondents); got {n.min():g}.")
    if (k < 0).any() or (k > n).any():
        raise ValueError(
            "k must be between 0 and n (k respondents out of n said yes); "
            f"got k = {k.tolist()} with n = {n.tolist()}."
        )
    return k, n


def _unwrap(*arrays: np.ndarray):
    if all(a.ndim == 0 for a in arrays):
        return tuple(float(a) for a in arrays)
    return arrays


def wilson_interval(k, n, level: float = 0.95):
    """Wilson score interval for a proportion ``k / n``.

    Parameters
    ----------
    k : float or array-like
        Number of "yes" answers. May be a non-integer *effective* count
        (``p * n_eff``) for weighted data.
    n : float or array-like
        Number of respondents (or an effective sample size). ``0 <= k <= n``, ``n > 0``.
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    (lower, upper) : tuple of float, or of arrays if ``k`` or ``n`` are arrays

    Notes
    -----
    With ``p = k/n`` and ``z`` the normal quantile,
    ``(p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``. Unlike the textbook
    ``p ± z sqrt(p(1-p)/n)`` it never leaves [0, 1] and behaves well near 0 and 1.

    Examples
    --------
    >>> lo, hi = wilson_interval(1069, 1481)
    >>> round(lo, 4), round(hi, 4)
    (0.6984, 0.744)
    """
    level = _check_level(level)
    k, n = _check_counts(k, n)
    z = _z(level)
    p = k / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z / denom * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    # Exactly 0 (or 1) when nobody (or everybody) said yes, not a rounding error away.
    lower = np.where(k == 0, 0.0, np.clip(centre - half, 0.0, 1.0))
    upper = np.where(k == n, 1.0, np.clip(centre + half, 0.0, 1.0))
    return _unwrap(lower, upper)


def logit_interval(k, n, level: float = 0.95):
    """Logit (log-odds) interval for a proportion ``k / n``.

    The Wald interval on the log-odds scale, transformed back:
    ``expit(logit(p) ± z / sqrt(n p (1-p)))``. It stays inside (0, 1) and is symmetric on
    the log-odds scale. This is R ``survey::svyciprop(method = "logit")`` when ``n`` is the
    effective sample size.

    Parameters
    ----------
    k : float or array-like
        Number of "yes" answers; may be a non-integer effective count.
    n : float or array-like
        Number of respondents (or effective sample size). ``0 <= k <= n``, ``n > 0``.
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    (lower, upper) : tuple of float, or of arrays if ``k`` or ``n`` are arrays

    Warns
    -----
    LogitEdgeWarning
        When some ``k`` is 0 or equals ``n`` (see Notes).

    Notes
    -----
    When ``k = 0`` or ``k = n`` the log-odds are infinite and the formula has no answer;
    for those entries the **Wilson interval is returned instead** (it gives ``[0, u]`` or
    ``[l, 1]``), so the result is always a usable interval, and a
    :class:`LogitEdgeWarning` says so: at the edges the "logit" column is Wilson's.
    """
    level = _check_level(level)
    k, n = _check_counts(k, n)
    k, n = np.broadcast_arrays(k, n)
    z = _z(level)
    edge = (k == 0) | (k == n)
    p = np.where(edge, 0.5, k / n)  # placeholder at the edges, replaced below
    centre = np.log(p / (1 - p))
    half = z / np.sqrt(n * p * (1 - p))
    lower = 1 / (1 + np.exp(-(centre - half)))
    upper = 1 / (1 + np.exp(-(centre + half)))
    if edge.any():
        warnings.warn(
            f"logit_interval: {int(edge.sum())} of {edge.size} intervals have k = 0 or k = n, "
            "where the log-odds are infinite; the Wilson interval is returned for those. / "
            f"logit_interval：{edge.size} 個のうち {int(edge.sum())} 個の区間で k = 0 または k = n "
            "のため対数オッズが無限大になります。それらには Wilson 区間を返します。",
            LogitEdgeWarning, stacklevel=2)
        w_lower, w_upper = (np.asarray(a) for a in wilson_interval(k, n, level))
        lower = np.where(edge, w_lower, lower)
        upper = np.where(edge, w_upper, upper)
    return _unwrap(np.asarray(lower), np.asarray(upper))


def _interval(k, n, method: str, level: float):
    return (wilson_interval if method == "wilson" else logit_interval)(k, n, level)


# --------------------------------------------------------------------------- weights


def _as_series(values, name: str) -> pd.Series:
    if isinstance(values, pd.Series):
        return values
    if isinstance(values, Mapping):
        return pd.Series(dict(values), dtype=float)
    raise TypeError(
        f"{name} must be a pandas Series or a dict {{category: number}}, not {type(values).__name__}."
    )


def design_weights(sample_sizes, population_sizes) -> pd.Series:
    """Stratified design weights ``N_h / n_h``, one per stratum.

    In a stratified sample each of the ``n_h`` people drawn in stratum ``h`` stands for
    ``N_h / n_h`` people of that stratum's population ``N_h``.

    Parameters
    ----------
    sample_sizes : Series or dict
        ``n_h`` by stratum, e.g. ``df["district"].value_counts()`` or the number of
        questionnaires mailed per district.
    population_sizes : Series or dict
        ``N_h`` by stratum (e.g. adults per district from the resident register).

    Returns
    -------
    Series
        ``N_h / n_h`` indexed by stratum (in the order of ``population_sizes``), named
        ``"design_weight"``. Put it on the rows with :func:`row_weights`.

    Raises
    ------
    ValueError
        If a stratum appears in only one of the inputs, if ``n_h`` is 0 (nobody sampled
        there), or if ``n_h > N_h``.
    """
    n_h = _as_series(sample_sizes, "sample_sizes")
    big_n = _as_series(population_sizes, "population_sizes")
    for name, s in (("sample_sizes", n_h), ("population_sizes", big_n)):
        if s.index.has_duplicates:
            raise ValueError(f"{name} lists a stratum twice: {s.index[s.index.duplicated()].tolist()}.")
        values = pd.to_numeric(s, errors="coerce")
        if values.isna().any() or (values < 0).any():
            bad = s[values.isna() | (values < 0)].to_dict()
            raise ValueError(f"{name} must be counts (numbers >= 0); check {bad}.")
    only_sample = n_h.index.difference(big_n.index).tolist()
    if only_sample:
        raise ValueError(
            f"No population size for stratum {only_sample}; add it to population_sizes "
            f"(which has {big_n.index.tolist()})."
        )
    empty = [h for h in big_n.index if h not in n_h.index or n_h[h] == 0]
    if empty:
        raise ValueError(
            f"Nobody was sampled in stratum {empty}, so it has no design weight. Collapse it "
            "with a similar stratum (add up both n_h and N_h), or leave it out of the population."
        )
    n_h = n_h.reindex(big_n.index).astype(float)
    too_many = n_h > big_n
    if too_many.any():
        raise ValueError(
            f"More people sampled than live in stratum {too_many[too_many].index.tolist()} "
            "(n_h > N_h): check that the two inputs count the same people."
        )
    return (big_n.astype(float) / n_h).rename("design_weight")


def row_weights(strata, weights_by_stratum) -> pd.Series:
    """Put one weight per stratum onto each row (respondent).

    Parameters
    ----------
    strata : Series or array-like
        The stratum of every row, e.g. ``df["district"]``.
    weights_by_stratum : Series or dict
        A weight per stratum, e.g. the result of :func:`design_weights`.

    Returns
    -------
    Series
        One float weight per row (index of ``strata`` if it is a Series), named
        ``"weight"``.
    """
    by = _as_series(weights_by_stratum, "weights_by_stratum")
    labels = strata if isinstance(strata, pd.Series) else pd.Series(np.asarray(strata, dtype=object))
    if labels.isna().any():
        raise ValueError(f"{int(labels.isna().sum())} rows have no stratum (NaN); fill them in first.")
    labels_obj = labels.astype(object)
    unknown = sorted(set(labels_obj.unique()) - set(by.index), key=str)
    if unknown:
        raise ValueError(f"No weight for stratum {unknown}; weights are given for {by.index.tolist()}.")
    mapped = labels_obj.map(dict(zip(by.index, by.astype(float), strict=True)))
    return pd.Series(mapped.to_numpy(dtype=float), index=labels.index, name="weight")


def nonresponse_adjustment(sample: pd.DataFrame, responded, weights=None, classes=None) -> pd.Series:
    """Weighting-class non-response adjustment.

    Within each class ``c`` (e.g. district x age group), the responders' weights are
    multiplied by ``sum of w over everyone sampled in c / sum of w over responders in c``,
    so responders also stand for the non-responders who resemble them. Non-responders
    get weight **0** (they stay in the table but count for nothing), so the adjusted
    weights of each class add up to the same total as before.

    Parameters
    ----------
    sample : DataFrame
        Everyone who was sampled (responders and non-responders).
    responded : str or array-like
        Column name or one value per row: True/1 if the person responded.
    weights : None, str or array-like, default None
        Design weights (column name or one per row); ``None`` means 1 each.
    classes : None, str or list of str, default None
        Column(s) that define the adjustment classes; ``None`` means one class.

    Returns
    -------
    Series
        Adjusted weights, aligned with ``sample.index``, named ``"weight"``.

    Raises
    ------
    ValueError
        If a class has nobody who responded: then there is no one to carry its weight, so
        collapse it with a similar class and try again.
    """
    cols = [] if classes is None else [classes] if isinstance(classes, str) else list(classes)
    _check_data(sample, cols + ([responded] if isinstance(responded, str) else []))
    w = _data_weights(sample, weights)
    r_raw = sample[responded] if isinstance(responded, str) else responded
    if isinstance(r_raw, pd.Series) and not r_raw.index.equals(sample.index):
        raise ValueError("responded is a Series whose index does not match the sample's; pass a column name.")
    r = _as_float_array(r_raw, "responded")
    if r.size != len(sample):
        raise ValueError(f"responded has {r.size} values but the sample has {len(sample)} rows.")
    if np.isnan(r).any():
        raise ValueError("responded has missing values; mark every sampled person as 1 (responded) or 0.")
    _check_binary(r, "responded")
    for c in cols:
        if sample[c].isna().any():
            raise ValueError(f"Class column {c!r} has missing values; give every sampled person a class.")
    if cols:
        key = pd.MultiIndex.from_frame(sample[cols].astype(object)) if len(cols) > 1 else sample[cols[0]]
        codes, uniques = pd.factorize(key, sort=True)
    else:
        codes, uniques = np.zeros(len(sample), dtype=int), pd.Index(["all"])
    k = len(uniques)
    total = np.bincount(codes, weights=w, minlength=k)
    resp = np.bincount(codes, weights=w * r, minlength=k)
    empty = (resp == 0) & (total > 0)
    if empty.any():
        names = [uniques[i] for i in np.flatnonzero(empty)]
        raise ValueError(
            f"Nobody responded in class {names}, so no one can carry its weight. Collapse it with "
            "a similar class (e.g. merge neighbouring age groups) and try again."
        )
    factor = np.divide(total, resp, out=np.ones(k), where=resp > 0)
    return pd.Series(w * r * factor[codes], index=sample.index, name="weight")


def _margin_series(column: str, margin) -> pd.Series:
    if isinstance(margin, Mapping):
        margin = pd.Series(dict(margin))
    if not isinstance(margin, pd.Series):
        raise TypeError(
            f"The margin for {column!r} must be a Series (or dict) of population totals indexed "
            f"by category, not {type(margin).__name__}."
        )
    if margin.index.has_duplicates:
        raise ValueError(
            f"The margin for {column!r} lists a category twice: "
            f"{margin.index[margin.index.duplicated()].tolist()}; add them up first."
        )
    totals = pd.to_numeric(margin, errors="coerce").astype(float)
    bad = ~np.isfinite(totals.to_numpy()) | (totals.to_numpy() <= 0)
    if bad.any():
        raise ValueError(
            f"The margin for {column!r} must hold positive population totals; check "
            f"{margin[bad].to_dict()}."
        )
    return totals


def rake(data: pd.DataFrame, margins: Mapping, weights=None, max_iter: int = 100,
         tol: float = 1e-8) -> pd.Series:
    """Rake weights to known population margins (iterative proportional fitting).

    Raking adjusts the weights, one variable at a time, so that the weighted count of
    each category equals its population total (e.g. adults per district from the
    register, then per age group, then per district again ...) until all margins hold at
    once. Each pass multiplies the weights of category ``c`` of variable ``v`` by
    ``target[v][c] / (current weighted count of c)``.

    Parameters
    ----------
    data : DataFrame
        One row per respondent, with a column for each raking variable.
    margins : dict of {column: Series}
        Population totals of each variable, indexed by category, e.g.
        ``{"district": register.groupby("district")["adults"].sum(), ...}``. All margins
        must add up to the same population total.
    weights : None, str or array-like, default None
        Starting weights (column name or one per row), e.g. design weights after a
        non-response adjustment. Must be positive. ``None`` means 1 each.
    max_iter : int, default 100
        Maximum number of passes over all margins.
    tol : float, default 1e-8
        Stop when every weighted category count is within ``tol`` (relative) of its
        target.

    Returns
    -------
    Series
        Raked weights aligned with ``data.index``, named ``"weight"``.

    Raises
    ------
    ValueError
        If a raking column has missing values; if a category occurs in the data but not in
        its margin, or in a margin but among no respondents; if margins add up to
        different totals; if a starting weight is not positive.

    Warns
    -----
    RuntimeWarning
        If the margins are not reached within ``max_iter`` passes.

    Notes
    -----
    Raking preserves the starting weights' *relative* sizes within every cross-classified
    cell; it is the same algorithm as ``ipfn`` and ``samplics``' ``SampleWeight.rake``.
    Very large or small resulting weights (``w.max() / w.min()``) are a warning sign:
    look at :func:`design_effect`.
    """
    if not isinstance(margins, Mapping) or not margins:
        raise TypeError("margins must be a non-empty dict {column name: Series of population totals}.")
    columns = list(margins)
    _check_data(data, columns)
    if not (isinstance(max_iter, int | np.integer) and max_iter >= 1):
        raise ValueError(f"max_iter must be a whole number >= 1, not {max_iter!r}.")
    if not tol > 0:
        raise ValueError(f"tol must be positive, not {tol!r}.")
    w = _data_weights(data, weights, "starting weights").copy()
    if (w <= 0).any():
        raise ValueError(
            f"Starting weights must be positive: {int((w <= 0).sum())} are zero or negative "
            f"(smallest {w.min():g}). Drop rows that should not count (e.g. non-responders) before raking."
        )

    codes, targets = [], []
    for column in columns:
        target = _margin_series(column, margins[column])
        values = data[column]
        if values.isna().any():
            where = values.index[values.isna()][:5].tolist()
            raise ValueError(
                f"Raking column {column!r} has {int(values.isna().sum())} missing values (rows "
                f"{where} ...). Impute them or drop those rows before raking."
            )
        labels = values.astype(object).to_numpy()
        code = pd.Index(target.index, dtype=object).get_indexer(labels)
        unknown = sorted(set(labels[code == -1]), key=str)
        if unknown:
            raise ValueError(
                f"Column {column!r} has categories that are not in its margin: {unknown}. The margin "
                f"has {target.index.tolist()}. Fix the labels (same spelling and type) or add them."
            )
        counts = np.bincount(code, minlength=len(target))
        empty = target.index[counts == 0].tolist()
        if empty:
            raise ValueError(
                f"Margin category {empty} of {column!r} has no respondents, so no weight can reach "
                "its total. Collapse it with a neighbouring category (in the data and the margin)."
            )
        codes.append(code.astype(np.intp))
        targets.append(target.to_numpy())

    totals = [t.sum() for t in targets]
    if not np.allclose(totals, totals[0], rtol=1e-6, atol=0):
        listed = ", ".join(f"{c}: {t:,.6g}" for c, t in zip(columns, totals, strict=True))
        raise ValueError(
            f"The margins add up to different population totals ({listed}), so no weights can "
            "match them all. Use margins for the same population and date, or rescale one, "
            "e.g. margin * (total_a / total_b)."
        )

    def worst(w: np.ndarray) -> float:
        return max(
            float(np.max(np.abs(np.bincount(c, weights=w, minlength=t.size) / t - 1)))
            for c, t in zip(codes, targets, strict=True)
        )

    deviation = math.inf
    for _ in range(max_iter):
        for c, t in zip(codes, targets, strict=True):
            current = np.bincount(c, weights=w, minlength=t.size)
            w = w * (t / current)[c]
        deviation = worst(w)
        if deviation <= tol:
            break
    else:
        warnings.warn(
            f"Raking did not converge in {max_iter} passes: a weighted category count is still "
            f"{deviation:.2g} (relative) away from its target. Increase max_iter, or check for "
            "sparse combinations of categories (collapse categories with few respondents).",
            RuntimeWarning,
            stacklevel=2,
        )
    return pd.Series(w, index=data.index, name="weight")


def kish_effective_n(weights) -> float:
    """Kish's effective sample size ``(sum w)**2 / sum w**2``.

    How many respondents with equal weights would give the same precision as these
    unequally weighted ones. Equal weights give ``n``; the more the weights vary, the
    smaller it gets. Zero weights add nothing.

    Examples
    --------
    >>> kish_effective_n([1, 1, 1, 1])
    4.0
    >>> kish_effective_n([1, 1, 1, 3])  # (1+1+1+3)**2 / (1+1+1+9)
    3.0
    """
    w = _as_float_array(weights, "weights")
    w = _check_weights(w, w.size)
    return float(w.sum() ** 2 / np.sum(w**2))


def design_effect(weights) -> float:
    """Kish's design effect due to unequal weighting, ``n / n_eff = n sum w**2 / (sum w)**2``.

    ``n`` counts the respondents with a positive weight. 1 means no loss; 2 means the
    weighted sample is worth half as many respondents. It equals ``1 + CV²`` of the
    weights.
    """
    w = _as_float_array(weights, "weights")
    w = _check_weights(w, w.size)
    return float(np.count_nonzero(w) / kish_effective_n(w))


# --------------------------------------------------------------------------- estimates


def _pair(values, weights, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Values and weights of the rows that count: value present and weight > 0."""
    _check_aligned(values, weights, name)
    x = _as_float_array(values, name)
    w = _check_weights(weights, x.size)
    keep = ~np.isnan(x) & (w > 0)
    return x[keep], w[keep]


def weighted_mean(values, weights=None, level: float = 0.95) -> Estimate:
    """Weighted mean with a linearisation (Taylor) confidence interval.

    Parameters
    ----------
    values : Series or array-like
        The variable, e.g. happiness 0-10. NaN (no answer) is left out.
    weights : Series or array-like, optional
        One weight per value; ``None`` means 1 each.
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    Estimate
        ``se`` is the linearised standard error; the interval is ``mean ± t se`` with
        ``n - 1`` degrees of freedom.

    Notes
    -----
    The weighted mean is a ratio ``ȳ = Σ w y / Σ w``. Treating respondents as drawn with
    replacement, its linearised variance is

        ``v(ȳ) = n / (n - 1) · Σ w_i² (y_i - ȳ)² / (Σ w)²``,

    as in ``samplics.TaylorEstimator`` and R ``survey::svymean`` without strata or
    clusters. With equal weights it is the familiar ``s² / n``.
    """
    level = _check_level(level)
    x, w = _pair(values, weights, "values")
    n = x.size
    if n < 2:
        raise ValueError(f"A mean with an interval needs at least 2 answers; there are {n}.")
    total = w.sum()
    mean = float(np.sum(w * x) / total)
    var = n / (n - 1) * np.sum(w**2 * (x - mean) ** 2) / total**2
    se = float(np.sqrt(var))
    t = float(stats.t.ppf(0.5 + level / 2, df=n - 1))
    return Estimate(mean, mean - t * se, mean + t * se, n, kish_effective_n(w), level,
                    "linearisation (t, df = n - 1)", se)


def weighted_proportion(indicator, weights=None, method: str = "wilson", level: float = 0.95) -> Estimate:
    """Weighted proportion with a Wilson or logit interval on the effective sample size.

    Parameters
    ----------
    indicator : Series or array-like
        1/True for "yes", 0/False for "no", NaN for no answer (left out).
    weights : Series or array-like, optional
        One weight per value; ``None`` means 1 each.
    method : {"wilson", "logit"}, default "wilson"
        Interval formula, see :func:`wilson_interval` and :func:`logit_interval`.
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    Estimate
        ``estimate`` on the 0-1 scale; ``se = sqrt(p (1 - p) / n_eff)``.

    Notes
    -----
    The *effective sample size* approach: with the weighted proportion ``p`` and Kish's
    ``n_eff``, the interval is the unweighted formula applied to ``k = p · n_eff`` "yes"
    out of ``n_eff``. This is an approximation in the spirit of R
    ``survey::svyciprop`` (methods "wilson"/"logit") and the Korn-Graubard intervals, which
    take ``n_eff = p (1 - p) / var(p)`` from the design-based variance instead; Kish's
    ``n_eff`` only accounts for the loss of precision from unequal weights. With equal
    weights it is exactly the ordinary Wilson (or logit) interval.
    """
    method = _check_method(method)
    level = _check_level(level)
    x, w = _pair(indicator, weights, "indicator")
    _check_binary(x, "indicator")
    if x.size == 0:
        raise ValueError("There are no answers to estimate a proportion from (all missing or weight 0).")
    p = float(np.sum(w * x) / w.sum())
    n_eff = kish_effective_n(w)
    lower, upper = _interval(p * n_eff, n_eff, method, level)
    se = math.sqrt(p * (1 - p) / n_eff)
    return Estimate(p, lower, upper, int(x.size), n_eff, level, f"{method}, Kish effective n", se)


def multiple_response_table(data: pd.DataFrame, columns: Sequence[str], weights=None, labels=None,
                            method: str = "wilson", level: float = 0.95) -> pd.DataFrame:
    """Table of a "choose all that apply" question, as % of respondents.

    Parameters
    ----------
    data : DataFrame
        One row per respondent, one 0/1 column per option (1 = ticked). A row with NaN
        in any option column did not answer the question and is left out.
    columns : list of str
        The option columns, e.g. ``["weigh_health", "weigh_family", ...]``.
    weights : None, str or array-like, default None
        Column name or one weight per row; ``None`` means 1 each.
    labels : dict or list of str, optional
        Display names of the options (``{column: label}`` or one per column); default the
        column names.
    method : {"wilson", "logit"}, default "wilson"
        Interval formula (effective-sample-size approach, as in
        :func:`weighted_proportion`).
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    DataFrame
        Indexed by option (name ``"option"``), sorted by ``pct_of_respondents``
        (largest first), with columns ``respondents`` (weighted count who ticked it),
        ``pct_of_respondents``, ``lower``, ``upper`` (interval, in percent) and
        ``mentions_share_pct`` (share of all ticks). ``attrs`` holds ``"respondents"``
        (weighted denominator), ``"n"`` and ``"n_eff"``.

    Notes
    -----
    The question asks each person about every option, so the natural question is "what
    share of residents weigh health?" -- the denominator is the people who answered,
    and the percentages add up to more than 100 (people tick several options). Dividing
    by the number of *mentions* (ticks) instead answers "what share of all ticks went to
    health?", which shrinks as people tick more boxes and cannot be compared between
    surveys or groups; it is shown only as ``mentions_share_pct``.
    """
    method = _check_method(method)
    level = _check_level(level)
    columns = list([columns] if isinstance(columns, str) else columns)
    if not columns:
        raise ValueError("Give at least one option column.")
    if len(set(columns)) != len(columns):
        raise ValueError(f"An option column is listed twice: {columns}.")
    _check_data(data, columns)
    if labels is None:
        names = columns
    elif isinstance(labels, Mapping):
        names = [labels.get(c, c) for c in columns]
    else:
        names = list(labels)
        if len(names) != len(columns):
            raise ValueError(f"Give one label per column: {len(names)} labels for {len(columns)} columns.")
    w_all = _data_weights(data, weights)
    x = np.column_stack([_as_float_array(data[c], c) for c in columns])
    for j, c in enumerate(columns):
        _check_binary(x[:, j], f"option column {c!r}")
    keep = ~np.isnan(x).any(axis=1) & (w_all > 0)
    if not keep.any():
        raise ValueError("Nobody answered this question (every row has a NaN option or weight 0).")
    x, w = x[keep], w_all[keep]
    base = w.sum()
    n_eff = kish_effective_n(w)
    ticked = w @ x
    p = ticked / base
    lower, upper = _interval(p * n_eff, np.full_like(p, n_eff), method, level)
    mentions = ticked.sum()
    share = 100 * ticked / mentions if mentions > 0 else np.full_like(ticked, np.nan)
    table = pd.DataFrame(
        {
            "respondents": ticked,
            "pct_of_respondents": 100 * p,
            "lower": 100 * np.asarray(lower),
            "upper": 100 * np.asarray(upper),
            "mentions_share_pct": share,
        },
        index=pd.Index(names, name="option"),
    )
    table = table.sort_values("pct_of_respondents", ascending=False, kind="stable")
    table.attrs.update({"respondents": float(base), "n": int(keep.sum()), "n_eff": n_eff,
                        "level": level, "method": method})
    return table


def weighted_crosstab(data: pd.DataFrame, row: str, col: str, weights=None, normalize: str = "row",
                      method: str = "wilson", level: float = 0.95) -> pd.DataFrame:
    """Weighted cross-tabulation in tidy (long) form, with an interval for each percentage.

    Parameters
    ----------
    data : DataFrame
        One row per respondent. Rows with NaN in ``row`` or ``col`` are left out.
    row, col : str
        The two categorical columns, e.g. ``"district"`` and ``"happy"``.
    weights : None, str or array-like, default None
        Column name or one weight per row; ``None`` means 1 each.
    normalize : {"row", "col", "all"}, default "row"
        Percentages within each ``row`` category, each ``col`` category, or of everyone.
    method : {"wilson", "logit"}, default "wilson"
        Interval formula (effective-sample-size approach, as in
        :func:`weighted_proportion`).
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    DataFrame
        One row per combination (including empty ones), with columns ``row``, ``col``,
        ``weighted_count``, ``pct``, ``lower``, ``upper`` (percent), and ``n`` and
        ``n_eff`` (unweighted and Kish effective size of the group that forms the
        denominator: the row group for ``normalize="row"``).
    """
    method = _check_method(method)
    level = _check_level(level)
    if normalize not in ("row", "col", "all"):
        raise ValueError(f"normalize must be 'row', 'col' or 'all', not {normalize!r}.")
    if row == col:
        raise ValueError("row and col must be two different columns.")
    _check_data(data, [row, col])
    w_all = _data_weights(data, weights)
    keep = data[row].notna().to_numpy() & data[col].notna().to_numpy() & (w_all > 0)
    if not keep.any():
        raise ValueError(f"No rows have both {row!r} and {col!r} (and a positive weight).")
    r_codes, r_levels = _factorize(data[row][keep])
    c_codes, c_levels = _factorize(data[col][keep])
    w = w_all[keep]
    nr, nc = len(r_levels), len(c_levels)
    cell = np.bincount(r_codes * nc + c_codes, weights=w, minlength=nr * nc).reshape(nr, nc)
    if normalize == "row":
        group = np.repeat(np.arange(nr), nc)
        g_codes = r_codes
    elif normalize == "col":
        group = np.tile(np.arange(nc), nr)
        g_codes = c_codes
    else:
        group = np.zeros(nr * nc, dtype=int)
        g_codes = np.zeros(r_codes.size, dtype=int)
    g_n = np.bincount(g_codes)
    g_sum = np.bincount(g_codes, weights=w)
    g_sum2 = np.bincount(g_codes, weights=w**2)
    g_eff = g_sum**2 / g_sum2
    counts = cell.ravel()
    p = counts / g_sum[group]
    lower, upper = _interval(p * g_eff[group], g_eff[group], method, level)
    return pd.DataFrame(
        {
            row: np.repeat(np.asarray(r_levels, dtype=object), nc),
            col: np.tile(np.asarray(c_levels, dtype=object), nr),
            "weighted_count": counts,
            "pct": 100 * p,
            "lower": 100 * np.asarray(lower),
            "upper": 100 * np.asarray(upper),
            "n": g_n[group],
            "n_eff": g_eff[group],
        }
    )


def _factorize(values: pd.Series) -> tuple[np.ndarray, list]:
    """Codes and levels; a categorical keeps its category order (only observed levels)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.cat.remove_unused_categories()
        return values.cat.codes.to_numpy(dtype=np.intp), list(values.cat.categories)
    codes, levels = pd.factorize(values, sort=True)
    return codes.astype(np.intp), list(levels)


def group_estimates(data: pd.DataFrame, by: str, value: str, weights=None, kind: str = "mean",
                    method: str = "wilson", level: float = 0.95) -> pd.DataFrame:
    """One :class:`Estimate` per group (e.g. per district), as a DataFrame for tables and maps.

    Parameters
    ----------
    data : DataFrame
        One row per respondent. Rows with NaN in ``by`` are an error; NaN in ``value`` is
        left out.
    by : str
        The grouping column, e.g. ``"district"``.
    value : str
        The variable: numbers for ``kind="mean"``, 0/1 for ``kind="proportion"``.
    weights : None, str or array-like, default None
        Column name or one weight per row; ``None`` means 1 each.
    kind : {"mean", "proportion"}, default "mean"
        :func:`weighted_mean` or :func:`weighted_proportion` in each group.
    method : {"wilson", "logit"}, default "wilson"
        Interval formula for proportions (ignored for means).
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    DataFrame
        Indexed by group (name ``by``), in category order (or sorted), with the
        :class:`Estimate` fields as columns: ``estimate``, ``lower``, ``upper``, ``n``,
        ``n_eff``, ``level``, ``method``, ``se``. Join it to a GeoDataFrame and draw it
        with :func:`sscity.plotting.choropleth`.

    Notes
    -----
    Each group is estimated on its own (a *direct* estimate): small districts get wide
    intervals. Model-based small-area estimates (Fay-Herriot) borrow strength between
    districts and can use the ``se`` column as the sampling error.
    """
    if kind not in ("mean", "proportion"):
        raise ValueError(f"kind must be 'mean' or 'proportion', not {kind!r}.")
    method = _check_method(method)
    level = _check_level(level)
    _check_data(data, [by, value])
    w = _data_weights(data, weights)
    if data[by].isna().any():
        raise ValueError(
            f"{int(data[by].isna().sum())} rows have no {by!r} (NaN); fill them in or drop them first."
        )
    codes, levels = _factorize(data[by])
    values = data[value]
    rows = []
    for i, level_name in enumerate(levels):
        mask = codes == i
        try:
            if kind == "mean":
                est = weighted_mean(values[mask], w[mask], level=level)
            else:
                est = weighted_proportion(values[mask], w[mask], method=method, level=level)
        except ValueError as error:
            raise ValueError(f"Group {by} = {level_name!r}: {error}") from None
        rows.append(est.as_dict())
    return pd.DataFrame(rows, index=pd.Index(levels, name=by))
