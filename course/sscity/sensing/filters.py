"""Smoothing and despiking filters, fault detectors, and their evaluation against labels.

Every function takes a 1-D numpy array (or list) or a pandas Series, typically with a
DatetimeIndex, and gives back the same kind: a Series keeps the input's index and name, an
array stays an array. Flags are booleans (``True`` = "this sample looks faulty").

=====================  =====================================================================
filters                :func:`moving_average`, :func:`exponential` (EWMA smoothing),
                       :func:`rolling_median`, :func:`hampel` (median/MAD despiking)
fault detectors        :func:`zscore_flags`, :func:`ewma_chart` / :func:`ewma_chart_flags`
                       (EWMA control chart), :func:`stuck_flags`, :func:`gap_flags`
evaluation             :func:`detection_scores`: sample precision, recall and F1, and per
                       fault *event* detection and delay
=====================  =====================================================================

**Causal by default.** A station filters samples as they arrive, so the windowed filters
look only at the current sample and the ``window - 1`` before it; ``center=True`` gives the
offline (look-ahead) version, with the same window placement as pandas' ``center=True``.
At the start of the series the window is shorter (pandas' ``min_periods=1``), so a window
longer than the data is allowed: it simply never fills.

**Missing samples (NaN) are handled explicitly, the same way everywhere:**

- windowed filters skip NaNs inside a window (the statistic is taken over the valid
  samples) and give NaN only where a window holds no valid sample;
- :func:`exponential` and :func:`ewma_chart` *hold* their state over a NaN (the output at a
  NaN is the last smoothed value), as pandas' ``ewm(adjust=False, ignore_na=True)``;
- detectors never flag a NaN sample as a spike, stuck value or out-of-control point:
  a missing sample is a gap, which :func:`gap_flags` reports.

References: EWMA smoothing: Roberts, "Control chart tests based on geometric moving
averages", Technometrics 1(3), 1959. EWMA control chart with exact (time-varying) limits:
D. C. Montgomery, *Introduction to Statistical Quality Control*, Wiley, section "The
exponentially weighted moving average control chart" (chapter 9 of the 6th and 7th
editions).
Hampel filter and the MAD scale factor 1.4826 (= 1 / Phi^-1(3/4), which makes the median
absolute deviation a consistent estimate of sigma for Gaussian data): F. R. Hampel, "The
influence curve and its role in robust estimation", JASA 69(346), 1974; Pearson, Neuvo,
Astola, Gabbouj, "Generalized Hampel filters", EURASIP J. Adv. Signal Process. 2016:87.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "MAD_TO_SIGMA",
    "DetectionScores",
    "detection_scores",
    "ewma_chart",
    "ewma_chart_flags",
    "exponential",
    "gap_flags",
    "hampel",
    "moving_average",
    "rolling_median",
    "stuck_flags",
    "zscore_flags",
]

#: Scale factor that turns a median absolute deviation into a standard deviation for
#: Gaussian data: 1 / Phi^-1(0.75) = 1.4826 (Hampel 1974).
MAD_TO_SIGMA = 1.4826


# --------------------------------------------------------------------------- validation


def _as_values(x, name: str = "x") -> tuple[np.ndarray, pd.Index | None, object]:
    """Return (float values, index or None, series name) for an array-like or Series."""
    if isinstance(x, pd.DataFrame):
        raise TypeError(
            f"{name} must be one signal (a Series or 1-D array), not a DataFrame; "
            f"pick a column, e.g. df['temperature']. / {name} は 1 つの信号（Series または "
            f"1 次元配列）にしてください。DataFrame の場合は df['temperature'] のように列を選んでください。"
        )
    index = x.index if isinstance(x, pd.Series) else None
    series_name = x.name if isinstance(x, pd.Series) else None
    try:
        values = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{name} must hold numbers; could not convert it to float ({error}). / "
            f"{name} は数値の並びにしてください（float に変換できません）。"
        ) from None
    if values.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one value per sample); got shape {values.shape}. / "
            f"{name} は 1 次元（1 サンプルに 1 値）にしてください（形状: {values.shape}）。"
        )
    return values, index, series_name


def _like_input(values: np.ndarray, index, series_name):
    """Wrap ``values`` back into a Series when the input was one."""
    if index is None:
        return values
    return pd.Series(values, index=index, name=series_name)


def _check_window(window, name: str = "window") -> int:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(
            f"{name} must be an integer >= 1 (a number of samples); got {window!r}. / "
            f"{name} は 1 以上の整数（サンプル数）にしてください（受け取った値: {window!r}）。"
        )
    return int(window)


def _check_unit_interval(value, name: str, meaning: str) -> float:
    """Check 0 < value <= 1 (smoothing constants)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (0.0 < number <= 1.0):
        raise ValueError(
            f"{name} must be in (0, 1] ({meaning}); got {value!r}. / "
            f"{name} は 0 より大きく 1 以下にしてください（{value!r} を受け取りました）。"
        )
    return number


def _check_positive(value, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (number > 0.0 and math.isfinite(number)):
        raise ValueError(
            f"{name} must be a finite number > 0; got {value!r}. / "
            f"{name} は 0 より大きい有限の数にしてください（受け取った値: {value!r}）。"
        )
    return number


def _windows(values: np.ndarray, window: int, center: bool) -> np.ndarray:
    """(n, window) view of the window ending at (or centred on) each sample, NaN-padded.

    Centred windows are placed as pandas places them: ``(window - 1) // 2`` samples ahead,
    the rest behind.
    """
    if values.size == 0:
        return np.empty((0, window))
    ahead = (window - 1) // 2 if center else 0
    behind = window - 1 - ahead
    padded = np.concatenate([np.full(behind, np.nan), values, np.full(ahead, np.nan)])
    return np.lib.stride_tricks.sliding_window_view(padded, window)


def _nan_reduce(function, array: np.ndarray, **kwargs) -> np.ndarray:
    # An all-NaN window is expected (leading gaps) and gives NaN; numpy warns about it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return function(array, **kwargs)


# ---------------------------------------------------------------------------- filters


def moving_average(x, window: int, *, center: bool = False):
    """Mean of the last ``window`` samples (simple moving average).

    Parameters
    ----------
    x : array-like or pandas.Series
        The signal.
    window : int
        Number of samples in the window, >= 1 (1 returns the signal unchanged).
    center : bool, default False
        False: causal, the window ends at the current sample. True: centred (looks ahead).

    Returns
    -------
    numpy.ndarray or pandas.Series
        Same length and kind as ``x``. NaNs inside a window are skipped; the result is NaN
        only where the window holds no valid sample. Equals pandas'
        ``x.rolling(window, min_periods=1, center=center).mean()``.
    """
    window = _check_window(window)
    values, index, series_name = _as_values(x)
    # Cumulative sums of values and of valid counts give every window's sum in O(n).
    valid = ~np.isnan(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(valid, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(valid)])
    n = values.size
    ahead = (window - 1) // 2 if center else 0
    behind = window - 1 - ahead
    positions = np.arange(n)
    ends = np.minimum(positions + ahead + 1, n)  # exclusive
    starts = np.maximum(positions - behind, 0)
    window_counts = counts[ends] - counts[starts]
    with np.errstate(invalid="ignore", divide="ignore"):
        result = (sums[ends] - sums[starts]) / window_counts
    result[window_counts == 0] = np.nan
    return _like_input(result, index, series_name)


def exponential(x, alpha: float):
    """Exponentially weighted moving average: ``s_t = alpha * x_t + (1 - alpha) * s_(t-1)``.

    Parameters
    ----------
    x : array-like or pandas.Series
        The signal.
    alpha : float
        Smoothing constant in (0, 1]: the weight of the newest sample (1 = no smoothing).
        ``alpha = 2 / (span + 1)`` matches a moving average of ``span`` samples in lag.

    Returns
    -------
    numpy.ndarray or pandas.Series
        Starts at the first valid sample (``s_0 = x_0``). Over a NaN the filter holds its
        state; leading NaNs stay NaN. Equals pandas'
        ``x.ewm(alpha=alpha, adjust=False, ignore_na=True).mean()``.
    """
    alpha = _check_unit_interval(alpha, "alpha", "the weight of the newest sample; 1 = no smoothing")
    values, index, series_name = _as_values(x)
    result = np.full(values.size, np.nan)
    valid = np.flatnonzero(~np.isnan(values))
    if valid.size:
        from scipy.signal import lfilter

        observed = values[valid]
        # First-order IIR filter; the initial state makes s_0 = x_0 (no pull towards 0).
        smoothed, _ = lfilter([alpha], [1.0, alpha - 1.0], observed, zi=[(1.0 - alpha) * observed[0]])
        result[valid] = smoothed
        # Hold the last smoothed value over gaps (forward fill after the first valid one).
        held = pd.Series(result).ffill().to_numpy()
        result[valid[0] :] = held[valid[0] :]
    return _like_input(result, index, series_name)


def rolling_median(x, window: int, *, center: bool = False):
    """Median of the last ``window`` samples: removes short spikes, keeps steps sharp.

    Parameters
    ----------
    x : array-like or pandas.Series
        The signal.
    window : int
        Number of samples in the window, >= 1. A spike of up to ``(window - 1) // 2``
        samples is removed entirely.
    center : bool, default False
        False: causal, the window ends at the current sample. True: centred (looks ahead).

    Returns
    -------
    numpy.ndarray or pandas.Series
        NaNs in a window are skipped; NaN only where a window holds no valid sample. Equals
        pandas' ``x.rolling(window, min_periods=1, center=center).median()``; with
        ``center=True``, an odd window and no NaN, it equals ``scipy.signal.medfilt`` away
        from the ends (medfilt pads with zeros).
    """
    window = _check_window(window)
    values, index, series_name = _as_values(x)
    result = _nan_reduce(np.nanmedian, _windows(values, window, center), axis=1)
    return _like_input(result, index, series_name)


def hampel(x, window: int, n_sigmas: float = 3.0, *, center: bool = False, min_scale: float = 0.0):
    """Hampel filter: replace samples far from their window's median by that median.

    A sample is an outlier when ``|x_t - median_t| > n_sigmas * 1.4826 * MAD_t``, where
    ``median_t`` and ``MAD_t = median(|x_i - median_t|)`` are taken over the sample's window
    (the median absolute deviation is scaled by :data:`MAD_TO_SIGMA` to estimate sigma).

    Parameters
    ----------
    x : array-like or pandas.Series
        The signal.
    window : int
        Number of samples in the window, >= 1 (the classic filter uses ``2k + 1`` centred).
    n_sigmas : float, default 3
        Threshold in robust standard deviations, > 0.
    center : bool, default False
        False: causal, the window ends at the sample (works on a device). True: centred.
    min_scale : float, default 0
        Floor on the robust sigma, in signal units. When most of a window is one value
        (a constant or coarsely quantised signal), MAD = 0 and *any* deviation from the
        median is flagged; a floor such as the sensor's resolution prevents that.

    Returns
    -------
    cleaned : numpy.ndarray or pandas.Series
        ``x`` with outliers replaced by their window median. NaNs stay NaN.
    is_outlier : numpy.ndarray or pandas.Series of bool
        True where a sample was replaced; never True at a NaN. A constant series has
        MAD = 0 and no outliers (no sample differs from the median).
    """
    window = _check_window(window)
    n_sigmas = _check_positive(n_sigmas, "n_sigmas")
    if not (float(min_scale) >= 0.0):
        raise ValueError(
            f"min_scale must be >= 0 (signal units); got {min_scale!r}. / "
            f"min_scale は 0 以上（信号の単位）にしてください（受け取った値: {min_scale!r}）。"
        )
    values, index, series_name = _as_values(x)
    windows = _windows(values, window, center)
    median = _nan_reduce(np.nanmedian, windows, axis=1)
    # MAD about the window's own median (not about each neighbour's rolling median).
    mad = _nan_reduce(np.nanmedian, np.abs(windows - median[:, None]), axis=1)
    scale = np.maximum(MAD_TO_SIGMA * mad, float(min_scale))
    with np.errstate(invalid="ignore"):
        is_outlier = np.abs(values - median) > n_sigmas * scale
    is_outlier &= ~np.isnan(values)
    cleaned = np.where(is_outlier, median, values)
    return _like_input(cleaned, index, series_name), _like_input(is_outlier, index, series_name)


# --------------------------------------------------------------------------- detectors


def zscore_flags(x, threshold: float = 3.0, window: int | None = None):
    """Flag samples more than ``threshold`` standard deviations from the mean.

    Parameters
    ----------
    x : array-like or pandas.Series
        The signal.
    threshold : float, default 3
        In standard deviations, > 0. On Gaussian noise, 3 flags 0.27 % of samples
        (``2 * (1 - Phi(3))``).
    window : int or None, default None
        None: one mean and standard deviation (ddof=1) for the whole series (offline).
        An integer: a rolling baseline of the ``window`` samples *before* each sample, so a
        spike does not inflate its own standard deviation; a sample is judged only once its
        baseline has at least ``max(2, window // 2)`` valid samples (earlier ones: False).

    Returns
    -------
    numpy.ndarray or pandas.Series of bool
        True where ``|x - mean| > threshold * std``. NaN samples are False. Where the
        baseline standard deviation is 0 (a flat signal), any departure from it is flagged.
    """
    threshold = _check_positive(threshold, "threshold")
    values, index, series_name = _as_values(x)
    if window is None:
        valid = values[~np.isnan(values)]
        if valid.size < 2:
            return _like_input(np.zeros(values.size, dtype=bool), index, series_name)
        mean = np.full(values.size, valid.mean())
        std = np.full(values.size, valid.std(ddof=1))
    else:
        window = _check_window(window)
        # Baseline window: the `window` samples strictly before t.
        previous = np.concatenate([[np.nan], values])[:-1]
        windows = _windows(previous, window, center=False)
        counts = np.sum(~np.isnan(windows), axis=1)
        mean = _nan_reduce(np.nanmean, windows, axis=1)
        std = _nan_reduce(np.nanstd, windows, axis=1, ddof=1)
        enough = counts >= max(2, window // 2)
        mean[~enough] = np.nan
        std[~enough] = np.nan
    deviation = np.abs(values - mean)
    with np.errstate(invalid="ignore"):
        flags = np.where(std > 0, deviation > threshold * std, deviation > 0)
    flags &= ~np.isnan(values) & ~np.isnan(std)
    return _like_input(flags.astype(bool), index, series_name)


def ewma_chart(x, lam: float, L: float, target: float | None = None, sigma: float | None = None):
    """EWMA control chart statistic and its exact time-varying control limits.

    From Montgomery, *Introduction to Statistical Quality Control* (section on the EWMA
    control chart)::

        z_i   = lam * x_i + (1 - lam) * z_(i-1),        z_0 = target
        UCL_i = target + L * sigma * sqrt(lam / (2 - lam) * (1 - (1 - lam)^(2 i)))
        LCL_i = target - L * sigma * sqrt(lam / (2 - lam) * (1 - (1 - lam)^(2 i)))

    for i = 1, 2, ... The limits widen towards ``target +- L * sigma * sqrt(lam / (2 - lam))``
    (for lam = 0.2 that is +- L * sigma / 3).

    Parameters
    ----------
    x : array-like or pandas.Series
        Individual observations.
    lam : float
        Smoothing constant in (0, 1]; small values (0.05-0.25) detect small shifts.
        lam = 1 is a Shewhart chart for individuals.
    L : float
        Width of the limits in sigma units, > 0 (e.g. 3, or 2.7 with lam = 0.1).
    target, sigma : float or None
        In-control mean and standard deviation of one observation. None estimates them from
        the whole series (mean, std with ddof=1), which is only fair when the series is
        mostly in control; better pass values from a clean period ("phase I").

    Returns
    -------
    statistic, lower, upper : numpy.ndarray or pandas.Series
        ``z_i``, ``LCL_i``, ``UCL_i``. A NaN observation holds ``z`` and does not advance
        ``i``; the statistic and limits are NaN there.
    """
    lam = _check_unit_interval(lam, "lam", "the EWMA weight of the newest observation")
    L = _check_positive(L, "L")
    values, index, series_name = _as_values(x)
    valid = ~np.isnan(values)
    observed = values[valid]
    if target is None:
        if observed.size == 0:
            raise ValueError(
                "x has no valid sample to estimate target from; pass target=. / "
                "x に有効なサンプルがないため target を推定できません。target= を指定してください。"
            )
        target = float(observed.mean())
    if sigma is None:
        if observed.size < 2:
            raise ValueError(
                "x needs >= 2 valid samples to estimate sigma; pass sigma=. / "
                "sigma の推定には有効なサンプルが 2 つ以上必要です。sigma= を指定してください。"
            )
        sigma = float(observed.std(ddof=1))
    sigma = _check_positive(sigma, "sigma")
    target = float(target)

    statistic = np.full(values.size, np.nan)
    lower = np.full(values.size, np.nan)
    upper = np.full(values.size, np.nan)
    if observed.size:
        from scipy.signal import lfilter

        z, _ = lfilter([lam], [1.0, lam - 1.0], observed, zi=[(1.0 - lam) * target])
        i = np.arange(1, observed.size + 1)
        half_width = L * sigma * np.sqrt(lam / (2.0 - lam) * (1.0 - (1.0 - lam) ** (2 * i)))
        statistic[valid] = z
        lower[valid] = target - half_width
        upper[valid] = target + half_width
    return (
        _like_input(statistic, index, series_name),
        _like_input(lower, index, series_name),
        _like_input(upper, index, series_name),
    )


def ewma_chart_flags(x, lam: float, L: float, target: float | None = None, sigma: float | None = None):
    """Flag samples where the EWMA chart statistic leaves its exact control limits.

    Parameters are those of :func:`ewma_chart`. Returns a boolean array or Series, True
    where ``z_i > UCL_i`` or ``z_i < LCL_i``; NaN samples are False. The chart responds to
    sustained shifts (drift, offset) rather than to single spikes.
    """
    statistic, lower, upper = (np.asarray(a, dtype=float) for a in ewma_chart(x, lam, L, target, sigma))
    with np.errstate(invalid="ignore"):
        flags = (statistic > upper) | (statistic < lower)
    _, index, series_name = _as_values(x)
    return _like_input(flags, index, series_name)


def stuck_flags(x, min_run: int, *, tolerance: float = 0.0):
    """Flag a sensor that repeats the same value for ``min_run`` samples or more.

    Parameters
    ----------
    x : array-like or pandas.Series
        The signal.
    min_run : int
        Run length that counts as stuck, >= 2.
    tolerance : float, default 0
        Consecutive samples within ``tolerance`` of each other count as "the same value".

    Returns
    -------
    numpy.ndarray or pandas.Series of bool
        Causal, as a device would see it: True from the ``min_run``-th sample of a run to
        its end (the first ``min_run - 1`` samples of the run cannot yet be told from a
        steady reading). A NaN breaks a run and is never flagged.
    """
    min_run = _check_window(min_run, "min_run")
    if min_run < 2:
        raise ValueError(
            f"min_run must be >= 2 (one sample is always a run of 1); got {min_run}. / "
            f"min_run は 2 以上にしてください（受け取った値: {min_run}）。"
        )
    if not (float(tolerance) >= 0.0):
        raise ValueError(f"tolerance must be >= 0; got {tolerance!r}. / tolerance は 0 以上にしてください。")
    values, index, series_name = _as_values(x)
    with np.errstate(invalid="ignore"):
        same_as_previous = np.abs(np.diff(values)) <= float(tolerance)
    # A run starts wherever the value changes (a NaN compares unequal, so it breaks runs);
    # each sample's 1-based position in its run is its distance from the run's start + 1.
    starts_run = np.concatenate([[True], ~same_as_previous])
    run_start = np.maximum.accumulate(np.where(starts_run, np.arange(values.size), 0))
    run_length = np.arange(values.size) - run_start + 1
    run_length[np.isnan(values)] = 0
    return _like_input(run_length >= min_run, index, series_name)


def gap_flags(x, freq=None):
    """Flag the samples missing from a regular sampling grid.

    Parameters
    ----------
    x : pandas.Series with a DatetimeIndex, or array-like
        A Series is compared with the regular grid from its first to its last timestamp;
        an array is taken to be on the grid already, so only its NaNs are gaps.
    freq : str or pandas.Timedelta, optional
        Sampling interval of the grid, e.g. ``"10min"``. None takes the most common interval
        between consecutive timestamps.

    Returns
    -------
    pandas.Series of bool (on the full grid) or numpy.ndarray of bool
        True where a grid slot has no sample or a NaN value. For a Series the result is
        indexed by the full grid, so it is longer than ``x`` when samples are absent.

    Raises
    ------
    ValueError
        If timestamps are not sorted, repeat, or fall off the grid.
    """
    if not isinstance(x, pd.Series):
        values, _, _ = _as_values(x)
        return np.isnan(values)
    if not isinstance(x.index, pd.DatetimeIndex):
        raise TypeError(
            "gap_flags needs a Series with a DatetimeIndex (or a plain array already on the "
            "grid). / gap_flags には DatetimeIndex を持つ Series"
            "（またはすでに等間隔の配列）を渡してください。"
        )
    values, index, series_name = _as_values(x)
    if not (index.is_monotonic_increasing and index.is_unique):
        raise ValueError(
            "x's timestamps must be sorted and unique; use x.sort_index() and drop "
            "duplicates first. / x のタイムスタンプは昇順かつ重複なしにしてください"
            "（x.sort_index() と重複の削除を先に）。"
        )
    if len(index) < 2 and freq is None:
        return pd.Series(np.isnan(values), index=index, name=series_name)
    if freq is None:
        # Most common interval (index arithmetic keeps the index's time resolution).
        freq = pd.Series(index[1:] - index[:-1]).mode().iloc[0]
    step = pd.Timedelta(freq)
    if step <= pd.Timedelta(0):
        raise ValueError(f"freq must be > 0; got {freq!r}. / freq は正の間隔にしてください。")
    grid = pd.date_range(index[0], index[-1], freq=step)
    if not index.isin(grid).all():
        off = index[~index.isin(grid)][0]
        raise ValueError(
            f"timestamp {off} is not on the {step} grid starting at {index[0]}; resample or "
            f"round the timestamps first (e.g. x.index.round('{step}')). / タイムスタンプ {off} が "
            f"{index[0]} から {step} 間隔の格子上にありません。先に丸めるか再標本化してください。"
        )
    on_grid = pd.Series(values, index=index).reindex(grid)
    return pd.Series(on_grid.isna().to_numpy(), index=grid, name=series_name)


# -------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class DetectionScores:
    """Scores of boolean fault flags against ground-truth labels.

    Attributes
    ----------
    precision, recall, f1 : float
        Sample-level scores (as ``sklearn.metrics`` with ``zero_division=0``).
    n_events : int
        Labelled fault events: runs of consecutive labelled samples.
    events_detected : int
        Events with at least one flag inside them.
    event_recall : float
        ``events_detected / n_events`` (NaN when there is no event).
    mean_delay : float or pandas.Timedelta
        Mean over detected events of the time from the event's first sample to its first
        flag: in samples, or in the index's units when an index is given. NaN (NaT for
        times) when no event is detected. Missed events do not enter the mean; they are
        counted in ``n_events - events_detected``.
    delays : tuple
        Delay of each event in order, None for a missed event.
    """

    precision: float
    recall: float
    f1: float
    n_events: int
    events_detected: int
    event_recall: float
    mean_delay: object
    delays: tuple

    @property
    def events_missed(self) -> int:
        return self.n_events - self.events_detected


def _as_bool(x, name: str) -> tuple[np.ndarray, pd.Index | None]:
    index = x.index if isinstance(x, pd.Series) else None
    array = np.asarray(x)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {array.shape}. / {name} は 1 次元にしてください。")
    if array.dtype != bool:
        numeric = array.astype(float) if array.dtype.kind in "iuf" else None
        if numeric is None or np.isnan(numeric).any() or not np.isin(numeric, (0.0, 1.0)).all():
            raise ValueError(
                f"{name} must be booleans (or 0/1) with no missing values; fill NaNs first, "
                f"e.g. {name}.fillna(False). / {name} は欠損のない真偽値（または 0/1）にしてください"
                f"（例: {name}.fillna(False)）。"
            )
        array = numeric.astype(bool)
    return array, index


def detection_scores(flags, labels, index=None) -> DetectionScores:
    """Score fault flags against labels, per sample and per fault event.

    Parameters
    ----------
    flags : array-like or pandas.Series of bool
        A detector's output (True = flagged).
    labels : array-like or pandas.Series of bool
        Ground truth (True = faulty sample), same length. Consecutive True samples form
        one *event*.
    index : array-like, optional
        Time of each sample, used for delays (a DatetimeIndex gives Timedelta delays).
        None takes the index of ``labels`` (or ``flags``) when it is a DatetimeIndex,
        otherwise delays are in samples.

    Returns
    -------
    DetectionScores
        Sample precision, recall and F1; event count, events detected, event recall and
        the mean detection delay (from the event start to the first flag inside it).
    """
    flag_values, flag_index = _as_bool(flags, "flags")
    label_values, label_index = _as_bool(labels, "labels")
    if flag_values.size != label_values.size:
        raise ValueError(
            f"flags and labels must have the same length; got {flag_values.size} and "
            f"{label_values.size}. / flags と labels の長さをそろえてください"
            f"（{flag_values.size} と {label_values.size}）。"
        )
    if flag_index is not None and label_index is not None and not flag_index.equals(label_index):
        raise ValueError(
            "flags and labels are Series with different indexes; align them first, e.g. "
            "flags.reindex(labels.index, fill_value=False). / flags と labels の index が"
            "異なります。先にそろえてください（例: flags.reindex(labels.index, fill_value=False)）。"
        )
    if index is None:
        for candidate in (label_index, flag_index):
            if isinstance(candidate, pd.DatetimeIndex):
                index = candidate
                break
    if index is not None and len(index) != label_values.size:
        raise ValueError(
            f"index must have one entry per sample ({label_values.size}); got {len(index)}. / "
            f"index の長さはサンプル数（{label_values.size}）と同じにしてください。"
        )

    true_positive = int(np.sum(flag_values & label_values))
    flagged = int(flag_values.sum())
    labelled = int(label_values.sum())
    precision = true_positive / flagged if flagged else 0.0
    recall = true_positive / labelled if labelled else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    # Event boundaries: where the label switches on and off.
    edges = np.diff(np.concatenate([[0], label_values.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)  # exclusive
    delays = []
    for start, end in zip(starts, ends, strict=True):
        hits = np.flatnonzero(flag_values[start:end])
        if hits.size == 0:
            delays.append(None)
        elif index is None:
            delays.append(int(hits[0]))
        else:
            delays.append(index[start + hits[0]] - index[start])
    detected = [delay for delay in delays if delay is not None]
    if not detected:
        time_like = isinstance(index, pd.DatetimeIndex)
        mean_delay = pd.NaT if time_like else math.nan
    elif isinstance(detected[0], pd.Timedelta):
        mean_delay = pd.to_timedelta(pd.Series(detected)).mean()
    else:
        mean_delay = float(np.mean(detected))
    n_events = int(starts.size)
    return DetectionScores(
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
        n_events=n_events,
        events_detected=len(detected),
        event_recall=len(detected) / n_events if n_events else math.nan,
        mean_delay=mean_delay,
        delays=tuple(delays),
    )
