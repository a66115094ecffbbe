"""sscity.sensing.features: window features checked against numpy and scipy on hand-made
signals, runs never mixed in a window, clear errors; IsolationForest flags checked against
planted outliers, scikit-learn itself and the campus-sensors fault labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.signal import periodogram
from sklearn.ensemble import IsolationForest
from sscity.sensing.features import FEATURES, IMU_COLUMNS, isolation_forest_flags, window_features
from sscity.sensing.filters import detection_scores

RATE = 100.0


@pytest.fixture(scope="module")
def campus():
    from sscity.data import load_campus_sensors

    return load_campus_sensors()


def _tone(n=400, amplitude=2.0, frequency=10.0, offset=0.0, rate=RATE):
    t = np.arange(n) / rate
    return t, offset + amplitude * np.cos(2 * np.pi * frequency * t)


# --------------------------------------------------------------------------- the features


def test_a_tone_has_the_textbook_rms_std_ptp_and_its_power_in_the_right_band():
    amplitude, frequency, offset = 2.0, 10.0, 0.5
    t, x = _tone(amplitude=amplitude, frequency=frequency, offset=offset)
    frame = pd.DataFrame({"t_s": t, "x": x})
    features = window_features(frame, window=100, band_hz=(5, 20))
    assert len(features) == 4
    # 10 Hz at 100 Hz is 10 whole periods per window: the textbook values hold exactly.
    assert np.allclose(features["x_mean"], offset)
    assert np.allclose(features["x_std"], amplitude / np.sqrt(2))
    assert np.allclose(features["x_rms"], np.sqrt(offset**2 + amplitude**2 / 2))
    assert np.allclose(features["x_ptp"], 2 * amplitude)  # the cosine is sampled at 0 and pi
    assert np.allclose(features["x_band_power"], amplitude**2 / 2)
    assert np.allclose(features["x_peak_hz"], frequency)
    outside = window_features(frame, window=100, band_hz=(20, 50))
    assert np.allclose(outside["x_band_power"], 0.0, atol=1e-20)
    offset_only = window_features(frame, window=100, band_hz=(0, 5))
    assert np.allclose(offset_only["x_band_power"], 0.0, atol=1e-20)  # the mean is removed first


def test_features_equal_direct_numpy_and_scipy_on_noise():
    rng = np.random.default_rng(3)
    x = rng.normal(1.0, 2.0, 512)
    frame = pd.DataFrame({"x": x})
    window, step = 128, 64
    features = window_features(frame, window=window, step=step, sample_rate_hz=RATE, band_hz=(7.5, 31))
    assert len(features) == (512 - window) // step + 1
    for row, start in enumerate(range(0, 512 - window + 1, step)):
        block = x[start:start + window]
        got = features.iloc[row]
        assert got["start"] == start
        assert got["x_mean"] == pytest.approx(np.mean(block))
        assert got["x_std"] == pytest.approx(np.std(block))
        assert got["x_rms"] == pytest.approx(np.sqrt(np.mean(block**2)))
        assert got["x_ptp"] == pytest.approx(np.ptp(block))
        frequencies, power = periodogram(block, fs=RATE, window="boxcar", detrend="constant",
                                         scaling="spectrum")
        band = (frequencies >= 7.5) & (frequencies < 31)
        assert got["x_band_power"] == pytest.approx(power[band].sum())
        assert got["x_peak_hz"] == pytest.approx(frequencies[1:][np.argmax(power[1:])])
    # Parseval: a band over every bin but 0 Hz and Nyquist holds the variance minus the Nyquist bin.
    whole = window_features(frame, window=window, sample_rate_hz=RATE, band_hz=(0, 50))
    nyquist_power = [periodogram(x[s:s + window], fs=RATE, window="boxcar", scaling="spectrum")[1][-1]
                     for s in range(0, 512 - window + 1, window)]
    assert np.allclose(whole["x_band_power"] + nyquist_power, whole["x_std"] ** 2)


def test_windows_never_cross_a_run_and_keep_run_order_and_labels():
    frame = pd.DataFrame({
        "run_id": [7] * 250 + [3] * 130,
        "surface": ["gravel"] * 250 + ["smooth"] * 130,
        "t_s": np.r_[np.arange(250), np.arange(130)] / RATE,
        "x": np.r_[np.zeros(250), np.full(130, 10.0)],
    })
    features = window_features(frame, window=100, step=50)
    assert features["run_id"].tolist() == [7, 7, 7, 7, 3]  # (250-100)/50+1 = 4, (130-100)/50+1 = 1
    assert features["surface"].tolist() == ["gravel"] * 4 + ["smooth"]
    assert features["start"].tolist() == [0, 50, 100, 150, 0]
    assert features["t_start_s"].tolist() == [0.0, 0.5, 1.0, 1.5, 0.0]
    assert (features["x_ptp"] == 0).all()  # a window across the 0 -> 10 boundary would show 10
    assert features["x_mean"].tolist() == [0, 0, 0, 0, 10]


def test_default_columns_are_the_imu_channels_and_the_sample_rate_comes_from_t_s():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 6)), columns=list(IMU_COLUMNS))
    frame.insert(0, "t_s", np.arange(300) / RATE)
    frame.insert(0, "speed_mps", 0.5)
    frame.insert(0, "run_id", 1)
    features = window_features(frame)
    expected = [f"{c}_{f}" for c in IMU_COLUMNS for f in FEATURES]
    assert list(features.columns) == ["run_id", "start", "t_start_s", *expected]
    assert len(features) == 3
    at_50_hz = window_features(frame.assign(t_s=np.arange(300) / 50.0), band_hz=(5, 25))
    assert at_50_hz["ax_mps2_peak_hz"].max() <= 25  # the inferred rate sets the frequency axis


def test_other_groups_and_labels_such_as_campus_stations(campus):
    _, readings, _ = campus
    two = readings[readings["station_id"].isin(["cs-01", "cs-21"])].dropna()
    two = two.assign(kind=two["station_id"].str[-2:].map({"01": "campus", "21": "station"}))
    day = 144  # ten-minute readings: one window per day
    features = window_features(two, window=day, columns=["temperature_c", "noise_dba"],
                               sample_rate_hz=1 / 600, band_hz=(0, 1 / 1200), group="station_id",
                               label="kind")
    assert list(features.columns[:3]) == ["station_id", "kind", "start"]
    for station_id, rows in two.groupby("station_id"):
        got = features[features["station_id"] == station_id]
        assert len(got) == len(rows) // day
        first = rows["temperature_c"].to_numpy()[:day]
        assert got["temperature_c_ptp"].iloc[0] == pytest.approx(np.ptp(first))
        # The strongest slow rhythm of temperature is the day itself: one cycle per 144 readings.
        assert got["temperature_c_peak_hz"].median() == pytest.approx(1 / 86_400)
    with pytest.raises(KeyError, match="group='station'"):
        window_features(two, window=day, sample_rate_hz=1 / 600, band_hz=(0, 1 / 1200), group="station")
    with pytest.raises(ValueError, match="more than one kind"):
        window_features(two.assign(station_id="all"), window=day, columns=["noise_dba"],
                        sample_rate_hz=1 / 600, band_hz=(0, 1 / 1200), group="station_id", label="kind")


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"window": 301}, ValueError, "fewer than window=301"),
    ({"window": 1}, ValueError, "window must be a whole number"),
    ({"window": 2.5}, ValueError, "window must be a whole number"),
    ({"window": True}, ValueError, "window must be a whole number"),
    ({"step": 0}, ValueError, "step must be a whole number"),
    ({"columns": ["x", "nope"]}, KeyError, "nope"),
    ({"columns": ["label"]}, ValueError, "not numeric"),
    ({"band_hz": (10, 60)}, ValueError, "Nyquist"),
    ({"band_hz": (20, 10)}, ValueError, "band_hz"),
])
def test_bad_arguments_say_what_to_fix(kwargs, error, match):
    frame = pd.DataFrame({"t_s": np.arange(300) / RATE, "x": np.ones(300), "label": "a"})
    with pytest.raises(error, match=match):
        window_features(frame, **{"window": 100, **kwargs})


def test_bad_frames_say_what_to_fix():
    good = pd.DataFrame({"t_s": np.arange(200) / RATE, "x": np.ones(200)})
    with pytest.raises(ValueError, match="NaN"):
        window_features(good.assign(x=np.r_[np.ones(199), np.nan]), window=100)
    with pytest.raises(TypeError, match="DataFrame"):
        window_features(good["x"].to_numpy(), window=100)
    with pytest.raises(ValueError, match="sample_rate_hz"):
        window_features(good.drop(columns="t_s"), window=100)
    with pytest.raises(ValueError, match="increase"):
        window_features(good.assign(t_s=0.0), window=100)
    mixed = good.assign(run_id=1, surface=["smooth"] * 150 + ["ramp"] * 50)
    with pytest.raises(ValueError, match="more than one surface"):
        window_features(mixed, window=100)
    with pytest.raises(ValueError, match="run 2"):
        window_features(good.assign(run_id=[1] * 150 + [2] * 50), window=100)


# --------------------------------------------------------------------------- isolation forest


def _planted(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    planted = np.array([17, 250, 611, 802, 990])
    X[planted] = rng.normal(size=(5, 3)) + 9 * rng.choice([-1, 1], size=(5, 3))
    return X, planted


def test_isolation_forest_finds_planted_outliers():
    X, planted = _planted()
    flags = isolation_forest_flags(X, contamination=0.005, seed=0)
    assert isinstance(flags, np.ndarray) and flags.dtype == bool and flags.shape == (1000,)
    assert flags[planted].all()
    assert set(np.flatnonzero(flags)) == set(planted)
    scores = detection_scores(flags, np.isin(np.arange(1000), planted))
    assert scores.precision == scores.recall == 1.0


def test_isolation_forest_is_deterministic_and_is_scikit_learns():
    X, _ = _planted()
    first = isolation_forest_flags(X, contamination=0.02, seed=7)
    assert np.array_equal(first, isolation_forest_flags(X, contamination=0.02, seed=7))
    reference = IsolationForest(contamination=0.02, random_state=7).fit_predict(X) == -1
    assert np.array_equal(first, reference)
    auto = isolation_forest_flags(X, seed=7)
    assert np.array_equal(auto, IsolationForest(random_state=7).fit_predict(X) == -1)


def test_isolation_forest_keeps_the_index_of_frames_and_takes_one_signal():
    X, planted = _planted()
    index = pd.date_range("2025-06-09", periods=1000, freq="10min", tz="UTC")
    frame = pd.DataFrame(X, index=index, columns=["a", "b", "c"])
    flags = isolation_forest_flags(frame, contamination=0.005, seed=0)
    assert isinstance(flags, pd.Series) and flags.index.equals(index) and flags.dtype == bool
    noise = np.random.default_rng(1).normal(0, 1, 1000)
    signal = pd.Series(np.r_[np.zeros(500), 50.0, np.zeros(499)] + noise)
    one = isolation_forest_flags(signal, contamination=0.001, seed=0)
    assert one.sum() == 1 and one.iloc[500]


def test_isolation_forest_bad_inputs_say_what_to_fix():
    X = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.raises(ValueError, match="NaN"):
        isolation_forest_flags(np.r_[X, [[np.nan, 0, 0]]])
    with pytest.raises(ValueError, match="contamination"):
        isolation_forest_flags(X, contamination=0.7)
    with pytest.raises(ValueError, match="contamination"):
        isolation_forest_flags(X, contamination="lots")
    with pytest.raises(ValueError, match="2-D"):
        isolation_forest_flags(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="not numeric"):
        isolation_forest_flags(pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}))


def test_isolation_forest_on_campus_sensors_catches_every_spike_and_misses_stuck_values(campus):
    _, readings, faults = campus
    channels = ["temperature_c", "humidity_pct", "pm25_ugm3", "noise_dba"]

    def scores(station_id):
        one = readings[readings["station_id"] == station_id].set_index("time")[channels].dropna()
        labels = pd.Series(False, index=one.index)
        for fault in faults[faults["station_id"] == station_id].itertuples():
            labels[(labels.index >= fault.start) & (labels.index <= fault.end)] = True
        return detection_scores(isolation_forest_flags(one, contamination=0.01, seed=0), labels)

    spikes = faults.loc[faults["kind"] == "spike", "station_id"].unique()
    for station_id in spikes:
        result = scores(station_id)
        assert result.n_events == 3 and result.events_detected == 3, station_id
    # A stuck value is an ordinary value repeated: no forest isolates it (filters.stuck_flags does).
    stuck = faults.loc[faults["kind"] == "stuck", "station_id"].iloc[0]
    assert scores(stuck).events_detected == 0
