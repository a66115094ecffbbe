"""sscity.sensing.filters against reference libraries and the textbook formulas.

References used here (none written in this project):

- pandas ``rolling(...).mean()/.median()`` and ``ewm(adjust=False)`` for the filters;
- ``scipy.signal.medfilt`` for the centred median, ``scipy.stats.zscore`` and
  ``scipy.stats.norm`` for the z-score detector;
- a Hampel reference built in this file from pandas rolling windows (median, then the
  median absolute deviation about it, times 1.4826);
- ``sklearn.metrics`` precision/recall/F1 for the sample-level scores;
- the EWMA control chart of D. C. Montgomery, *Introduction to Statistical Quality
  Control* (Wiley; section "The exponentially weighted moving average control chart"),
  computed step by step below: z_i = lam x_i + (1 - lam) z_(i-1), z_0 = mu_0, limits
  mu_0 +- L sigma sqrt(lam / (2 - lam) (1 - (1 - lam)^(2i))).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.signal
import scipy.stats
from sscity.sensing.filters import (
    MAD_TO_SIGMA,
    detection_scores,
    ewma_chart,
    ewma_chart_flags,
    exponential,
    gap_flags,
    hampel,
    moving_average,
    rolling_median,
    stuck_flags,
    zscore_flags,
)


def _signal(n: int = 300, seed: int = 13, nan_fraction: float = 0.0) -> pd.Series:
    """Noisy diurnal-like temperature on a 10-minute grid, optionally with NaNs."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2026-04-01", periods=n, freq="10min")
    t = np.arange(n)
    values = 18 + 4 * np.sin(2 * np.pi * t / 144) + rng.normal(0, 0.5, n)
    if nan_fraction:
        values[rng.random(n) < nan_fraction] = np.nan
    return pd.Series(values, index=index, name="temperature")


# ----------------------------------------------------------------------------- filters


@pytest.mark.parametrize("window", [1, 2, 3, 4, 7, 10, 1000])
@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("nan_fraction", [0.0, 0.15])
def test_moving_average_matches_pandas_rolling_mean(window, center, nan_fraction):
    x = _signal(nan_fraction=nan_fraction)
    expected = x.rolling(window, min_periods=1, center=center).mean()
    result = moving_average(x, window, center=center)
    pd.testing.assert_series_equal(result, expected, check_exact=False, rtol=1e-12)


def test_moving_average_keeps_arrays_as_arrays_and_window_one_is_identity():
    x = _signal().to_numpy()
    result = moving_average(x, 1)
    assert isinstance(result, np.ndarray)
    np.testing.assert_allclose(result, x)
    # A window longer than the data never fills: it is the running (cumulative) mean.
    np.testing.assert_allclose(moving_average(x[:5], 50), np.cumsum(x[:5]) / np.arange(1, 6))


@pytest.mark.parametrize("alpha", [0.05, 0.3, 0.9, 1.0])
def test_exponential_matches_pandas_ewm_adjust_false(alpha):
    x = _signal()
    expected = x.ewm(alpha=alpha, adjust=False).mean()
    pd.testing.assert_series_equal(exponential(x, alpha), expected, check_exact=False, rtol=1e-12)


def test_exponential_holds_state_over_nans_like_pandas_ignore_na():
    x = _signal(nan_fraction=0.2)
    x.iloc[:3] = np.nan  # leading gap stays NaN
    expected = x.ewm(alpha=0.25, adjust=False, ignore_na=True).mean()
    result = exponential(x, 0.25)
    pd.testing.assert_series_equal(result, expected, check_exact=False, rtol=1e-12)
    assert result.iloc[:3].isna().all()
    # Hand check: [1, NaN, 3] with alpha 0.5 -> 1, 1 (held), 0.5 * 3 + 0.5 * 1 = 2.
    np.testing.assert_allclose(exponential([1.0, np.nan, 3.0], 0.5), [1.0, 1.0, 2.0])


@pytest.mark.parametrize("window", [1, 3, 4, 9, 1000])
@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("nan_fraction", [0.0, 0.15])
def test_rolling_median_matches_pandas_rolling_median(window, center, nan_fraction):
    x = _signal(nan_fraction=nan_fraction)
    expected = x.rolling(window, min_periods=1, center=center).median()
    pd.testing.assert_series_equal(rolling_median(x, window, center=center), expected)


@pytest.mark.parametrize("window", [3, 5, 11])
def test_centred_rolling_median_matches_scipy_medfilt_away_from_the_ends(window):
    x = _signal().to_numpy()
    half = window // 2
    expected = scipy.signal.medfilt(x, kernel_size=window)
    result = rolling_median(x, window, center=True)
    # medfilt pads with zeros, so only the interior is comparable.
    np.testing.assert_allclose(result[half:-half], expected[half:-half])


def _hampel_reference(x: pd.Series, window: int, n_sigmas: float, center: bool):
    """Hampel filter built by hand from pandas rolling windows (not from sscity)."""
    rolling = x.rolling(window, min_periods=1, center=center)
    median = rolling.median()
    mad = rolling.apply(
        lambda w: np.nanmedian(np.abs(w - np.nanmedian(w))) if np.isfinite(w).any() else np.nan,
        raw=True,
    )
    is_outlier = ((x - median).abs() > n_sigmas * 1.4826 * mad).fillna(False)
    cleaned = x.where(~is_outlier, median)
    return cleaned, is_outlier


@pytest.mark.parametrize("window", [5, 7, 12])
@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("nan_fraction", [0.0, 0.1])
def test_hampel_matches_a_pandas_rolling_median_and_mad_reference(window, center, nan_fraction):
    x = _signal(nan_fraction=nan_fraction)
    spikes = [20, 75, 76, 150, 299]
    x.iloc[spikes] += 6.0
    cleaned, is_outlier = hampel(x, window, 3, center=center)
    ref_cleaned, ref_outlier = _hampel_reference(x, window, 3, center)
    pd.testing.assert_series_equal(is_outlier, ref_outlier.astype(bool))
    pd.testing.assert_series_equal(cleaned, ref_cleaned)
    # The injected +6 (12 sigma) spikes are found (the last one only by the causal window,
    # which does not need samples after it).
    assert is_outlier.iloc[[20, 75, 150]].all()


def test_hampel_scale_factor_and_constant_series():
    assert MAD_TO_SIGMA == pytest.approx(1 / scipy.stats.norm.ppf(0.75), rel=1e-4)
    flat = np.full(20, 21.5)
    cleaned, is_outlier = hampel(flat, 5)
    assert not is_outlier.any()  # MAD = 0 and nothing differs from the median
    np.testing.assert_array_equal(cleaned, flat)
    # With MAD = 0 any departure is an outlier ...
    stepped = flat.copy()
    stepped[10] = 21.6
    _, is_outlier = hampel(stepped, 5, center=True)
    assert is_outlier.tolist() == [i == 10 for i in range(20)]
    # ... unless a floor on the scale (e.g. the sensor resolution) is given.
    _, is_outlier = hampel(stepped, 5, center=True, min_scale=0.1)
    assert not is_outlier.any()


@pytest.mark.parametrize(
    "call",
    [
        lambda x: moving_average(x, 3),
        lambda x: exponential(x, 0.5),
        lambda x: rolling_median(x, 4, center=True),
        lambda x: hampel(x, 3)[1],
        lambda x: zscore_flags(x, 3, window=3),
        lambda x: ewma_chart_flags(x, 0.2, 3, target=0, sigma=1),
        lambda x: stuck_flags(x, 2),
    ],
)
def test_empty_and_all_nan_inputs_give_same_length_outputs(call):
    assert len(call(np.array([]))) == 0
    result = np.asarray(call(np.full(4, np.nan)))
    assert result.shape == (4,)
    assert (np.isnan(result) if result.dtype.kind == "f" else ~result).all()


def test_hampel_leaves_nans_alone_and_window_larger_than_data():
    x = np.array([1.0, np.nan, 1.1, 0.9, 50.0, 1.0])
    cleaned, is_outlier = hampel(x, 100)
    assert np.isnan(cleaned[1]) and not is_outlier[1]
    assert is_outlier[4] and cleaned[4] == pytest.approx(np.median([1.0, 1.1, 0.9, 50.0]))


# --------------------------------------------------------------------------- detectors


def test_zscore_global_matches_scipy_and_the_three_sigma_false_alarm_rate():
    x = _signal()
    x.iloc[[40, 200]] += 10
    z = scipy.stats.zscore(x.to_numpy(), ddof=1)
    np.testing.assert_array_equal(zscore_flags(x, 3).to_numpy(), np.abs(z) > 3)
    # On Gaussian noise the 3-sigma rule flags 2 (1 - Phi(3)) = 0.27 % of samples.
    noise = np.random.default_rng(0).normal(size=400_000)
    rate = zscore_flags(noise, 3).mean()
    assert rate == pytest.approx(2 * scipy.stats.norm.sf(3), abs=3e-4)


@pytest.mark.parametrize("window", [6, 20])
def test_zscore_rolling_uses_the_window_before_each_sample(window):
    x = _signal(nan_fraction=0.1)
    x.iloc[[60, 61, 180]] += 5
    baseline = x.shift(1).rolling(window, min_periods=max(2, window // 2))
    mean, std = baseline.mean(), baseline.std(ddof=1)
    expected = ((x - mean).abs() > 2.5 * std).fillna(False)
    pd.testing.assert_series_equal(zscore_flags(x, 2.5, window=window), expected.astype(bool))
    assert zscore_flags(x, 3, window=window).iloc[[60, 180]].all()


def test_zscore_flat_baseline_flags_any_departure_and_nans_are_never_flagged():
    x = np.array([5.0, 5, 5, 5, 5.1, np.nan, 5])
    assert zscore_flags(x, 3, window=4).tolist() == [False] * 4 + [True, False, False]
    assert not zscore_flags(np.full(10, 2.0), 3).any()


def _montgomery_ewma(x, lam, L, mu0, sigma):
    """Montgomery's EWMA chart, one step at a time, exact time-varying limits."""
    z_prev = mu0
    z, lcl, ucl = [], [], []
    for i, xi in enumerate(x, start=1):
        z_i = lam * xi + (1 - lam) * z_prev
        width = L * sigma * math.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * i)))
        z.append(z_i)
        lcl.append(mu0 - width)
        ucl.append(mu0 + width)
        z_prev = z_i
    return np.array(z), np.array(lcl), np.array(ucl)


@pytest.mark.parametrize(("lam", "L"), [(0.1, 2.7), (0.2, 3.0), (0.05, 2.6), (1.0, 3.0)])
def test_ewma_chart_matches_the_textbook_formula_step_by_step(lam, L):
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(10, 1, 40), rng.normal(11, 1, 20)])  # shift of 1 sigma
    statistic, lower, upper = ewma_chart(x, lam, L, target=10, sigma=1)
    z, lcl, ucl = _montgomery_ewma(x, lam, L, 10, 1)
    np.testing.assert_allclose(statistic, z, rtol=1e-12)
    np.testing.assert_allclose(lower, lcl, rtol=1e-12)
    np.testing.assert_allclose(upper, ucl, rtol=1e-12)
    np.testing.assert_array_equal(ewma_chart_flags(x, lam, L, 10, 1), (z > ucl) | (z < lcl))


def test_ewma_chart_limits_widen_to_the_asymptote():
    # lam = 0.2: sigma_z = sigma sqrt(0.2 / 1.8) = sigma / 3, limits +- 3 sigma_z = +- sigma.
    _, lower, upper = ewma_chart(np.zeros(200), 0.2, 3, target=0, sigma=1)
    assert upper[0] == pytest.approx(3 * 0.2)  # i = 1: L sigma lam
    assert upper[-1] == pytest.approx(1.0) and lower[-1] == pytest.approx(-1.0)
    assert np.all(np.diff(upper[:20]) > 0) and np.all(np.diff(upper) >= 0)
    # lam = 1 is a Shewhart chart for individuals: constant +- L sigma.
    _, lower, upper = ewma_chart(np.zeros(5), 1.0, 3, target=0, sigma=2)
    np.testing.assert_allclose(upper, 6.0)


def test_ewma_chart_detects_a_small_shift_and_holds_over_nans():
    x = np.random.default_rng(3).normal(0, 1, 200)
    x[120:] += 1.0
    flags = ewma_chart_flags(x, 0.1, 2.7, target=0, sigma=1)
    assert flags[120:].mean() > 0.5
    assert flags[:120].mean() < 0.05
    # A NaN holds z and does not advance i; it is never flagged.
    with_gap = np.array([0.5, np.nan, 0.5])
    statistic, _, upper = ewma_chart(with_gap, 0.5, 3, target=0, sigma=1)
    z, _, ucl = _montgomery_ewma([0.5, 0.5], 0.5, 3, 0, 1)
    np.testing.assert_allclose(statistic[[0, 2]], z)
    np.testing.assert_allclose(upper[[0, 2]], ucl)
    assert np.isnan(statistic[1]) and not ewma_chart_flags(with_gap, 0.5, 3, 0, 1)[1]


def test_ewma_chart_estimates_target_and_sigma_when_not_given():
    x = _signal()
    statistic, lower, upper = ewma_chart(x, 0.2, 3)
    z, lcl, ucl = _montgomery_ewma(x.to_numpy(), 0.2, 3, x.mean(), x.std(ddof=1))
    np.testing.assert_allclose(statistic.to_numpy(), z)
    np.testing.assert_allclose(upper.to_numpy(), ucl)
    assert statistic.index.equals(x.index)


def test_stuck_flags_is_causal_and_breaks_runs_at_nans():
    x = [1.0, 2, 2, 2, 2, 3, 3, np.nan, 3, 3, 3]
    assert stuck_flags(x, 3).tolist() == [
        False, False, False, True, True, False, False, False, False, False, True,
    ]  # fmt: skip
    jitter = [5.0, 5.01, 4.99, 5.0, 7.0]
    assert stuck_flags(jitter, 3).tolist() == [False] * 5
    assert stuck_flags(jitter, 3, tolerance=0.02).tolist() == [False, False, True, True, False]
    assert not stuck_flags(np.arange(3.0), 10).any()  # window longer than the data


def test_gap_flags_on_a_regular_grid():
    index = pd.date_range("2026-04-01", periods=8, freq="10min")
    x = pd.Series(np.arange(8.0), index=index, name="pm25")
    x.iloc[3] = np.nan
    x = x.drop(index[[5, 6]])
    flags = gap_flags(x)
    assert flags.index.equals(index) and flags.name == "pm25"
    assert flags.tolist() == [False, False, False, True, False, True, True, False]
    assert gap_flags(x, "5min").sum() == 15 - 5  # 15 slots on a 5-minute grid, 5 valid
    assert gap_flags(np.array([1.0, np.nan, 2.0])).tolist() == [False, True, False]
    jittered = pd.Series([1.0, 2.0, 3.0], index=index[:3] + pd.to_timedelta([0, 0, 61], unit="s"))
    with pytest.raises(ValueError, match="not on the .* grid.*格子"):
        gap_flags(jittered, "10min")


# -------------------------------------------------------------------------- evaluation


def test_detection_scores_sample_level_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(11)
    labels = rng.random(500) < 0.1
    flags = labels & (rng.random(500) < 0.7) | (rng.random(500) < 0.05)
    scores = detection_scores(flags, labels)
    assert scores.precision == pytest.approx(metrics.precision_score(labels, flags))
    assert scores.recall == pytest.approx(metrics.recall_score(labels, flags))
    assert scores.f1 == pytest.approx(metrics.f1_score(labels, flags))
    none = detection_scores(np.zeros(5, bool), [0, 1, 1, 0, 0])
    assert none.precision == metrics.precision_score([0, 1, 1, 0, 0], [0] * 5, zero_division=0)


def test_detection_scores_events_and_delays():
    #        event 1 (0-based 2..5)    event 2 (9..10)   event 3 (13)
    labels = [0, 0, 1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 1, 0]
    flags = [0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    scores = detection_scores(flags, labels)
    assert (scores.n_events, scores.events_detected, scores.events_missed) == (3, 2, 1)
    assert scores.delays == (2, 0, None)
    assert scores.mean_delay == pytest.approx(1.0)
    assert scores.event_recall == pytest.approx(2 / 3)
    assert scores.precision == pytest.approx(3 / 5) and scores.recall == pytest.approx(3 / 7)
    # With a 10-minute DatetimeIndex on the labels, delays are Timedeltas.
    index = pd.date_range("2026-04-01", periods=15, freq="10min")
    timed = detection_scores(pd.Series(flags, index=index, dtype=bool), pd.Series(labels, index=index))
    assert timed.delays == (pd.Timedelta("20min"), pd.Timedelta(0), None)
    assert timed.mean_delay == pd.Timedelta("10min")
    missed = detection_scores([0, 0, 0], [0, 1, 1], index=index[:3])
    assert missed.events_detected == 0 and pd.isna(missed.mean_delay)
    empty = detection_scores([0, 1], [0, 0])
    assert empty.n_events == 0 and math.isnan(empty.event_recall)


def test_detectors_and_scores_compose_on_a_station_with_injected_faults():
    x = _signal(n=1000, seed=5)
    labels = pd.Series(False, index=x.index)
    x.iloc[[100, 400, 700]] += 8.0  # spikes
    labels.iloc[[100, 400, 700]] = True
    x.iloc[500:530] = x.iloc[500]  # stuck for 30 samples (5 hours)
    labels.iloc[501:530] = True  # the first sample of the run is still a real reading
    # Offline cleaning: a centred window of 15 and 4 robust sigmas. (A short causal window
    # raises many false alarms: a MAD from a few samples is itself very noisy.)
    _, spikes = hampel(x, 15, 4, center=True)
    stuck = stuck_flags(x, 6)
    scores = detection_scores(spikes | stuck, labels)
    assert (scores.n_events, scores.events_detected) == (4, 4)
    assert scores.delays[:2] == (pd.Timedelta(0), pd.Timedelta(0))
    assert scores.delays[2] == pd.Timedelta("40min")  # stuck: 6th equal sample = 5th labelled
    assert scores.precision > 0.85 and scores.recall > 0.8, scores


# -------------------------------------------------------------------------- bad input


BILINGUAL = r"must .*/ .*(ください|必要)"


@pytest.mark.parametrize("window", [0, -3, 2.5, True, None, "5"])
def test_window_must_be_a_positive_integer(window):
    for call in (moving_average, rolling_median, lambda x, w: hampel(x, w)):
        with pytest.raises(ValueError, match=r"window must be an integer >= 1.*/ window は 1 以上"):
            call([1.0, 2.0, 3.0], window)
    if window is not None:  # zscore_flags(window=None) means one global baseline
        with pytest.raises(ValueError, match=BILINGUAL):
            zscore_flags([1.0, 2.0, 3.0], 3, window=window)


@pytest.mark.parametrize("alpha", [0, -0.1, 1.5, float("nan"), "a"])
def test_alpha_must_be_in_the_unit_interval(alpha):
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\].*/ alpha は 0 より大きく 1 以下"):
        exponential([1.0, 2.0], alpha)


@pytest.mark.parametrize("lam", [0, -0.5, 1.01])
def test_lam_must_be_in_the_unit_interval(lam):
    with pytest.raises(ValueError, match=r"lam must be in \(0, 1\].*/ lam は"):
        ewma_chart_flags([1.0, 2.0], lam, 3, target=0, sigma=1)


def test_other_bad_inputs_say_what_to_fix():
    with pytest.raises(ValueError, match=r"L must be .*> 0.*/ L は"):
        ewma_chart([1.0, 2.0], 0.2, 0, target=0, sigma=1)
    with pytest.raises(ValueError, match=r"sigma must be .*/ sigma は"):
        ewma_chart([1.0, 2.0], 0.2, 3, target=0, sigma=0)
    with pytest.raises(ValueError, match=r"sigma=.*/ .*sigma="):
        ewma_chart([1.0, np.nan], 0.2, 3, target=0)
    with pytest.raises(ValueError, match=r"min_run must be >= 2.*/ min_run は 2 以上"):
        stuck_flags([1.0, 1.0], 1)
    with pytest.raises(ValueError, match=r"1-D.*/ .*1 次元"):
        moving_average(np.ones((3, 2)), 2)
    with pytest.raises(TypeError, match=r"DataFrame.*/ .*DataFrame"):
        moving_average(pd.DataFrame({"a": [1.0]}), 2)
    with pytest.raises(TypeError, match=r"numbers.*/ .*数値"):
        moving_average(["a", "b"], 2)
    with pytest.raises(ValueError, match=r"n_sigmas must be .*/ n_sigmas は"):
        hampel([1.0, 2.0], 3, n_sigmas=-1)
    with pytest.raises(ValueError, match=r"same length.*/ .*長さ"):
        detection_scores([True, False], [True])
    with pytest.raises(ValueError, match=r"booleans.*fillna.*/ .*真偽値"):
        detection_scores([1.0, np.nan], [1, 0])
    index = pd.date_range("2026-04-01", periods=2, freq="h")
    with pytest.raises(ValueError, match=r"different indexes.*/ .*index"):
        detection_scores(pd.Series([True, False], index=index), pd.Series([True, False]))
    with pytest.raises(TypeError, match=r"DatetimeIndex.*/ .*DatetimeIndex"):
        gap_flags(pd.Series([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"sorted and unique.*/ .*昇順"):
        gap_flags(pd.Series([1.0, 2.0], index=index[::-1]))
