"""Windowed features of sensor streams, and an IsolationForest outlier detector.

A device does not send (or classify) every raw sample: it cuts the stream into windows
and summarises each one in a handful of numbers. :func:`window_features` does that for a
table of samples such as ``sscity.data.load_ride_imu()`` (SIMULATED ride IMU): one row per
window per run, never a window across two runs. Any other table works the same way with
``group=`` naming its runs, e.g. ``group="station_id"`` for ``campus-sensors`` (pass
``sample_rate_hz=1/600`` for ten-minute readings).

Per channel and window (``x`` is the window's samples, ``n`` of them):

==============  =================================================================================
``_mean``       ``mean(x)``
``_std``        ``sqrt(mean((x - mean(x))**2))`` (population standard deviation, ``ddof=0``)
``_rms``        ``sqrt(mean(x**2))``: a sine of amplitude A around 0 has RMS ``A / sqrt(2)``
``_ptp``        ``max(x) - min(x)`` (peak to peak)
``_band_power`` power of ``x - mean(x)`` between ``band_hz[0]`` (included) and ``band_hz[1]``
                (excluded), from the one-sided spectrum ``P_k = c_k |X_k|**2 / n**2`` with
                ``X = numpy.fft.rfft(x - mean(x))`` and ``c_k = 2`` except at 0 Hz and at the
                Nyquist frequency (``c_k = 1``). The ``P_k`` of all bins sum to the variance
                (Parseval), so a sine of amplitude A whose frequency falls on a bin inside the
                band has band power ``A**2 / 2``.
``_peak_hz``    frequency of the largest ``P_k`` above 0 Hz (the dominant vibration)
==============  =================================================================================

:func:`isolation_forest_flags` fits scikit-learn's ``IsolationForest`` [1]_ and flags the
points it isolates with few splits. It needs no labels and no threshold in the units of the
data, unlike the z-score and EWMA charts of :mod:`sscity.sensing.filters`; score it against
labels the same way, with :func:`sscity.sensing.filters.detection_scores`::

    from sscity.data import load_campus_sensors
    from sscity.sensing.filters import detection_scores
    stations, readings, faults = load_campus_sensors()
    one = readings[readings["station_id"] == "cs-02"].set_index("time")
    X = one[["temperature_c", "humidity_pct", "pm25_ugm3", "noise_dba"]].dropna()
    flags = isolation_forest_flags(X, contamination=0.01, seed=0)
    labels = ...  # True inside that station's labelled faults (faults.csv), on X's index
    detection_scores(flags, labels)

On ``campus-sensors`` a forest catches every single-reading spike but no stuck value: a
stuck value is an ordinary value, repeated (:func:`sscity.sensing.filters.stuck_flags`
finds those).

References
----------
.. [1] F. T. Liu, K. M. Ting, Z.-H. Zhou, "Isolation forest", Proc. IEEE ICDM 2008,
   doi:10.1109/ICDM.2008.17; scikit-learn's ``sklearn.ensemble.IsolationForest``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["FEATURES", "IMU_COLUMNS", "isolation_forest_flags", "window_features"]

#: Feature suffixes, in the order of the output columns (per channel).
FEATURES = ("mean", "std", "rms", "ptp", "band_power", "peak_hz")
#: The channels of ``ride-imu``, used when ``columns`` is not given and they are all present.
IMU_COLUMNS = ("ax_mps2", "ay_mps2", "az_mps2", "gx_radps", "gy_radps", "gz_radps")
_GROUP, _LABEL, _TIME = "run_id", "surface", "t_s"
_NOT_CHANNELS = {_GROUP, _LABEL, _TIME, "speed_mps"}


def _check_int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be a whole number of samples >= {low}; got {value!r}. / "
                         f"{name} は {low} 以上の整数（サンプル数）にしてください（{value!r}）。")
    return int(value)


def _channels(frame: pd.DataFrame, columns, not_channels: set) -> list[str]:
    if columns is None:
        if all(c in frame.columns for c in IMU_COLUMNS):
            return list(IMU_COLUMNS)
        columns = [c for c in frame.columns
                   if c not in not_channels and pd.api.types.is_numeric_dtype(frame[c])]
        if not columns:
            raise ValueError("frame has no numeric channel to summarise; pass columns=[...]. / "
                             "要約できる数値の列がありません。columns=[...] を指定してください。")
        return columns
    if isinstance(columns, str):
        columns = [columns]
    columns = list(columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"columns {missing} are not in the frame; it has {list(frame.columns)}. / "
                       f"列 {missing} がありません（あるのは {list(frame.columns)}）。")
    not_numeric = [c for c in columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if not_numeric:
        raise ValueError(f"columns {not_numeric} are not numeric; choose sensor channels. / "
                         f"列 {not_numeric} は数値ではありません。センサーの列を選んでください。")
    if not columns:
        raise ValueError("columns is empty; name at least one channel. / columns が空です。")
    return columns


def _sample_rate(frame: pd.DataFrame, sample_rate_hz, group: str | None) -> float:
    if sample_rate_hz is not None:
        rate = float(sample_rate_hz)
        if not rate > 0:
            raise ValueError(f"sample_rate_hz must be > 0; got {sample_rate_hz!r}. / "
                             f"sample_rate_hz は正の値にしてください。")
        return rate
    if _TIME not in frame.columns:
        raise ValueError("Give sample_rate_hz (the frame has no t_s column to infer it from). / "
                         "sample_rate_hz を指定してください（t_s 列がないため推定できません）。")
    runs = frame.groupby(group, sort=False)[_TIME] if group is not None else [(None, frame[_TIME])]
    steps = np.concatenate([np.diff(np.asarray(t, dtype=float)) for _, t in runs])
    if steps.size == 0 or not np.all(steps > 0):
        raise ValueError("t_s must increase within each run to infer the sample rate; sort the frame "
                         "or pass sample_rate_hz. / 各ランの t_s は増加している必要があります。並べ替えるか "
                         "sample_rate_hz を指定してください。")
    # Rounded: 1 / 0.01 s is 99.99999999999999 in floating point, not 100.
    return round(float(1.0 / np.median(steps)), 6)


def _optional_column(frame: pd.DataFrame, name: str | None, default: str, what: str) -> str | None:
    """``name`` if given (it must exist), else ``default`` when the frame has it, else None."""
    if name is None:
        return default if default in frame.columns else None
    if name not in frame.columns:
        raise KeyError(f"{what}={name!r} is not a column of the frame; it has {list(frame.columns)}. / "
                       f"{what}={name!r} という列がありません（あるのは {list(frame.columns)}）。")
    return name


def window_features(frame: pd.DataFrame, window: int = 100, step: int | None = None, columns=None, *,
                    sample_rate_hz: float | None = None, band_hz: tuple[float, float] = (5.0, 20.0),
                    group: str | None = None, label: str | None = None) -> pd.DataFrame:
    """Summarise each window of each run in a few numbers per channel.

    Parameters
    ----------
    frame : pandas.DataFrame
        Samples in time order. With a ``run_id`` column (or the ``group`` column), windows are
        cut within each run (runs in order of first appearance); without it, the whole frame
        is one run.
    window : int, default 100
        Samples per window (1 s at 100 Hz).
    step : int, optional
        Samples from one window's start to the next; default ``window`` (no overlap). A
        run's last samples that do not fill a window are dropped.
    columns : list of str, optional
        Channels to summarise; default the six IMU channels of ``ride-imu`` if present,
        otherwise every numeric column except ``run_id``, ``t_s`` and ``speed_mps``.
    sample_rate_hz : float, optional
        Samples per second, for the spectral features; default inferred from ``t_s``.
    band_hz : (low, high), default (5, 20)
        The band of ``_band_power``, in Hz; ``high`` at most the Nyquist frequency.
    group : str, optional
        The column that names the run (e.g. ``"station_id"`` for ``campus-sensors``);
        default ``run_id`` when present.
    label : str, optional
        A column carried over to each window, which must be constant within a run; default
        ``surface`` when present.

    Returns
    -------
    pandas.DataFrame
        One row per window: the group and label columns (``run_id``, ``surface``), ``start``
        (the window's first sample, counted from the run's first), ``t_start_s`` (when the
        frame has ``t_s``), then ``<channel>_<feature>`` for each channel and each of
        :data:`FEATURES` (see the module docstring).

    Raises
    ------
    ValueError
        A window longer than a run, NaNs in a channel, a run with more than one
        ``surface``, a bad window, step or band.
    KeyError
        A named column is missing.

    Examples
    --------
    >>> t = np.arange(200) / 100
    >>> frame = pd.DataFrame({"t_s": t, "x": 2 * np.sin(2 * np.pi * 10 * t)})
    >>> features = window_features(frame, window=100)
    >>> features["x_rms"].round(4).tolist(), features["x_peak_hz"].tolist()
    ([1.4142, 1.4142], [10.0, 10.0])
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame of samples; got {type(frame).__name__}. / "
                        "frame にはサンプルの pandas DataFrame を渡してください。")
    window = _check_int(window, "window", 2)
    step = window if step is None else _check_int(step, "step", 1)
    group = _optional_column(frame, group, _GROUP, "group")
    label = _optional_column(frame, label, _LABEL, "label")
    channels = _channels(frame, columns, _NOT_CHANNELS | {group, label})
    rate = _sample_rate(frame, sample_rate_hz, group)
    low, high = (float(b) for b in band_hz)
    nyquist = rate / 2
    if not (0 <= low < high <= nyquist):
        raise ValueError(f"band_hz must satisfy 0 <= low < high <= {nyquist:g} Hz (the Nyquist frequency "
                         f"at {rate:g} Hz); got {band_hz!r}. / band_hz は 0 <= 下限 < 上限 <= {nyquist:g} Hz "
                         f"にしてください。")
    values = frame[channels].to_numpy(dtype=float)
    if np.isnan(values).any():
        bad = [c for c in channels if frame[c].isna().any()]
        raise ValueError(f"channels {bad} contain NaN; fill or drop the missing samples first "
                         f"(e.g. frame.dropna()). / 列 {bad} に欠損値 (NaN) があります。先に補間するか "
                         f"削除してください。")

    if group is not None:
        codes, run_ids = pd.factorize(frame[group], sort=False)
        runs = [(run_id, np.flatnonzero(codes == k)) for k, run_id in enumerate(run_ids)]
    else:
        runs = [(None, np.arange(len(frame)))]
    frequencies = np.fft.rfftfreq(window, d=1.0 / rate)
    weights = np.full(frequencies.size, 2.0)
    weights[0] = 1.0
    if window % 2 == 0:
        weights[-1] = 1.0  # the Nyquist bin appears once
    in_band = (frequencies >= low) & (frequencies < high)

    pieces = []
    for run_id, rows in runs:
        if rows.size < window:
            where = f"run {run_id!r}" if run_id is not None else "the frame"
            raise ValueError(f"{where} has {rows.size} samples, fewer than window={window}; use a "
                             f"shorter window or drop short runs. / {where} のサンプル数 {rows.size} が "
                             f"window={window} より少ないです。window を短くするか短いランを除いてください。")
        starts = np.arange(0, rows.size - window + 1, step)
        blocks = np.lib.stride_tricks.sliding_window_view(values[rows], window, axis=0)[starts]
        # blocks: (n_windows, n_channels, window)
        mean = blocks.mean(axis=2)
        centred = blocks - mean[:, :, None]
        power = weights * np.abs(np.fft.rfft(centred, axis=2)) ** 2 / window**2
        peak = frequencies[1:][np.argmax(power[:, :, 1:], axis=2)]
        stats = {
            "mean": mean,
            "std": np.sqrt(np.mean(centred**2, axis=2)),
            "rms": np.sqrt(np.mean(blocks**2, axis=2)),
            "ptp": blocks.max(axis=2) - blocks.min(axis=2),
            "band_power": power[:, :, in_band].sum(axis=2),
            "peak_hz": peak,
        }
        piece = {}
        if run_id is not None:
            piece[group] = np.repeat(run_id, starts.size)
        if label is not None:
            labels = frame[label].to_numpy()[rows]
            if len(pd.unique(labels)) > 1:
                found = sorted(map(str, set(labels)))
                raise ValueError(f"run {run_id!r} has more than one {label} ({found}); give each labelled "
                                 f"segment its own {group or 'run_id'}. / ラン {run_id!r} に複数の {label} が"
                                 f"あります。区間ごとに別の {group or 'run_id'} を付けてください。")
            piece[label] = np.repeat(labels[0], starts.size)
        piece["start"] = starts
        if _TIME in frame.columns:
            piece["t_start_s"] = frame[_TIME].to_numpy(dtype=float)[rows][starts]
        for j, channel in enumerate(channels):
            for name in FEATURES:
                piece[f"{channel}_{name}"] = stats[name][:, j]
        pieces.append(pd.DataFrame(piece))
    return pd.concat(pieces, ignore_index=True)


def isolation_forest_flags(X, contamination="auto", seed: int = 0, n_estimators: int = 100):
    """Fit an IsolationForest on ``X`` and flag its outliers (fit and flag on the same data).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), or one signal (1-D / Series)
        Feature rows, e.g. readings of several channels or :func:`window_features` output.
        No NaN: drop or fill gaps first (a gap is found by
        :func:`sscity.sensing.filters.gap_flags`, not by a forest).
    contamination : "auto" or float in (0, 0.5], default "auto"
        Expected share of outliers; it sets the threshold (``"auto"``: the original paper's
        score threshold).
    seed : int, default 0
        ``random_state`` of the forest: the same seed gives the same flags.
    n_estimators : int, default 100
        Number of trees.

    Returns
    -------
    pandas.Series of bool (index of ``X``) if ``X`` is a DataFrame or Series, else numpy array.
        True = outlier.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(500, 2))
    >>> X[[10, 20]] = [[8, 8], [-9, 7]]
    >>> flags = isolation_forest_flags(X, contamination=0.01, seed=0)
    >>> bool(flags[10] and flags[20])
    True
    """
    from sklearn.ensemble import IsolationForest

    index = X.index if isinstance(X, (pd.DataFrame, pd.Series)) else None
    if isinstance(X, pd.DataFrame):
        not_numeric = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        if not_numeric:
            raise ValueError(f"columns {not_numeric} are not numeric; pass feature columns only. / "
                             f"列 {not_numeric} は数値ではありません。特徴量の列だけを渡してください。")
    array = np.asarray(X, dtype=float)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 1:
        raise ValueError(f"X must be 2-D (samples x features) with at least 2 rows; got shape "
                         f"{array.shape}. / X は 2 行以上の 2 次元配列（サンプル×特徴量）にしてください。")
    if not np.isfinite(array).all():
        raise ValueError("X contains NaN or infinite values; drop or fill them first (e.g. X.dropna()). / "
                         "X に NaN または無限大があります。先に削除するか補ってください（例: X.dropna()）。")
    is_share = (isinstance(contamination, (int, float)) and not isinstance(contamination, bool)
                and 0 < contamination <= 0.5)
    if not (contamination == "auto" or is_share):
        raise ValueError(f"contamination must be 'auto' or a share in (0, 0.5]; got {contamination!r}. / "
                         f"contamination は 'auto' か (0, 0.5] の割合にしてください。")
    n_estimators = _check_int(n_estimators, "n_estimators", 1)
    forest = IsolationForest(n_estimators=n_estimators, contamination=contamination, random_state=seed)
    flags = forest.fit_predict(array) == -1
    if index is not None:
        return pd.Series(flags, index=index, name="outlier")
    return flags
