"""Module 03: the numbers its prose quotes are what ``sscity.sensing`` computes.

Each case quotes the exact phrase of a lesson or README cell and recomputes the number with
the course's own code (see ``tests/prose_facts.py``): the synthetic ``campus-sensors``
stations scored with ``sscity.sensing.filters``, the LoRa budget of ``sscity.sensing.lora``,
the mesh codes and suppressed cells of ``sscity.sensing.mesh``. Real-world figures that come
from standards and papers are listed, with their sources, in the module README's facts table.
The lesson's choices are repeated here (station cs-02, windows of 7 samples, the Hampel floor
0.3 °C, the EWMA chart with λ 0.2 and L 3 on the residual, 6 equal samples for stuck, the slot
2025-06-19 07:00 UTC, k = 5); when the lesson changes them, this file must follow.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pandas as pd
import pytest
from prose_facts import check_quoted, module_text
from scipy.stats import norm
from sscity.data import dataset_path, load_campus_sensors
from sscity.sensing.filters import (
    detection_scores,
    ewma_chart_flags,
    hampel,
    moving_average,
    rolling_median,
    stuck_flags,
    zscore_flags,
)
from sscity.sensing.lora import battery_life_days, lorawan_time_on_air, max_payload
from sscity.sensing.mesh import k_suppressed_counts, to_meshcode

MODULE = "03-edge-sensing"
STATION = "cs-02"
HAMPEL_FLOOR_C = 0.3


@cache
def _data():
    return load_campus_sensors()


@cache
def _temperature() -> pd.DataFrame:
    _, readings, _ = _data()
    return readings.pivot(index="time", columns="station_id", values="temperature_c")


def _labels(station_id: str, channel: str = "temperature_c") -> pd.Series:
    _, _, faults = _data()
    temperature = _temperature()
    labels = pd.Series(False, index=temperature.index)
    for fault in faults[faults["station_id"] == station_id].itertuples():
        if fault.channel == "all" or channel in fault.channel.split("+"):
            labels[(labels.index >= fault.start) & (labels.index <= fault.end)] = True
    return labels


def _residual(station_id: str) -> pd.Series:
    temperature = _temperature()
    return temperature[station_id] - temperature.drop(columns=station_id).median(axis=1)


def _ewma_flags(station_id: str) -> pd.Series:
    residual = _residual(station_id)
    centre = residual.median()
    sigma = 1.4826 * (residual - centre).abs().median()
    return ewma_chart_flags(residual, 0.2, 3.0, target=centre, sigma=sigma)


def _first_spike() -> pd.Timestamp:
    _, _, faults = _data()
    return faults.loc[faults["station_id"] == STATION, "start"].min()


# --- section 2: filters and detectors -----------------------------------------------------


def test_filters_at_the_first_spike():
    raw = _temperature()[STATION]
    at = _first_spike()
    check_quoted(MODULE, "The spike itself, 53.8 °C, is far above", "53.8", raw[at])
    check_quoted(MODULE, "(27.4 °C at the spike)", "27.4", moving_average(raw, 7)[at])
    check_quoted(MODULE, "pass straight through it at 23.1 °C", "23.1", rolling_median(raw, 7)[at])
    cleaned, _ = hampel(raw, 7, n_sigmas=3.0, min_scale=HAMPEL_FLOOR_C)
    assert cleaned[at] == pytest.approx(23.1)
    # "about 4 °C too warm": the average's plateau against the median's value
    check_quoted(MODULE, "a 70-minute plateau about 4 °C too warm", "4",
                 moving_average(raw, 7)[at] - rolling_median(raw, 7)[at])


def test_hampel_flags_on_the_lesson_station():
    raw = _temperature()[STATION]
    _, flags = hampel(raw, 7, n_sigmas=3.0, min_scale=HAMPEL_FLOOR_C)
    score = detection_scores(flags, _labels(STATION))
    assert score.recall == 1.0 and score.events_detected == 3
    check_quoted(MODULE, "with 5 false alarms: precision", "5", int(flags.sum()) - 3)
    check_quoted(MODULE, "false alarms: precision 0.375", "0.375", score.precision)


def test_gaussian_three_sigma_share():
    check_quoted(MODULE, "(on Gaussian noise 0.27 % of samples)", "0.27", 2 * norm.sf(3), percent=True)


def test_ewma_chart_on_the_drift():
    score = detection_scores(_ewma_flags("cs-25"), _labels("cs-25"))
    check_quoted(MODULE, "The EWMA chart finds 88.4 % of the drift's samples", "88.4", score.recall,
                 percent=True)
    check_quoted(MODULE, "(precision 0.967, first flag after 8 hours)", "0.967", score.precision)
    check_quoted(MODULE, "(precision 0.967, first flag after 8 hours)", "8",
                 score.mean_delay / pd.Timedelta(hours=1))
    check_quoted(MODULE, "leaves its dashed control limits about 8 hours in", "8",
                 score.mean_delay / pd.Timedelta(hours=1))


def test_zscore_on_the_drift_residual():
    score = detection_scores(zscore_flags(_residual("cs-25"), 3.0), _labels("cs-25"))
    check_quoted(MODULE, "the z-score on the residual finds 15.3 %", "15.3", score.recall, percent=True)
    assert score.mean_delay > pd.Timedelta(days=2)  # "needs more than two days"


def test_stuck_detector():
    flags = stuck_flags(_temperature()["cs-40"], 6)
    score = detection_scores(flags, _labels("cs-40"))
    check_quoted(MODULE, "the stuck detector flags 86.1 % of the stuck period", "86.1", score.recall,
                 percent=True)
    assert score.precision == 1.0  # "with no false alarm on the faulty station"
    assert score.mean_delay == pd.Timedelta(minutes=50)  # first flag one hour in (6th sample)
    assert "freezes at one value for six hours" in module_text(MODULE)
    labelled = _labels("cs-40")
    span = labelled[labelled].index
    assert span[-1] - span[0] + pd.Timedelta(minutes=10) == pd.Timedelta(hours=6)


def test_false_alarms_on_the_healthy_station():
    assert not _labels("cs-01").any()
    check_quoted(MODULE, "also raises 221 alarms on cs-01", "221", int(_ewma_flags("cs-01").sum()))


def test_gap_and_drift_spans():
    gap = _labels("cs-20")
    assert gap.sum() == 144  # "a 24-hour gap"
    check_quoted(MODULE, "cs-20: a 24-hour gap in the curve", "24", gap.sum() / 6)
    _, _, faults = _data()
    drift = faults[faults["station_id"] == "cs-25"].iloc[0]
    check_quoted(MODULE, "climbs from about 0 to 4 °C over three days", "4",
                 _residual("cs-25")[drift.end] - _residual("cs-25").median())


# --- section 3: sending less ----------------------------------------------------------------


def test_bytes_per_day():
    raw_bytes, summary_bytes = 86_400 * 4, 144 * 4 * 2
    check_quoted(MODULE, "That is 345,600 against 1,152 bytes a day: 300 times less", "345,600", raw_bytes)
    check_quoted(MODULE, "That is 345,600 against 1,152 bytes a day: 300 times less", "1,152", summary_bytes)
    check_quoted(MODULE, "That is 345,600 against 1,152 bytes a day: 300 times less", "300",
                 raw_bytes / summary_bytes)


def test_one_byte_quantisation():
    step = 60 / 255
    check_quoted(MODULE, "a step of $60 / 255 = 0.235$ °C", "0.235", step)
    check_quoted(MODULE, "half a step, 0.118 °C", "0.118", step / 2)
    # the bound is reached on the lesson's day (what the code cell prints)
    day = _temperature()[STATION]["2025-06-10T15:00Z":"2025-06-11T14:50Z"]
    decoded = -10 + np.round((day + 10) / step) * step
    assert np.max(np.abs(decoded - day)) == pytest.approx(step / 2, abs=5e-4)


# --- section 4: radio and energy ------------------------------------------------------------


@pytest.mark.parametrize(("quote", "number", "payload", "data_rate"), [
    ("24 bytes take 82.2 ms at SF7", "82.2", 24, 5),
    ("and 1974.3 ms at SF12", "1974.3", 24, 0),
    ("at SF10 the compact frame (370.7 ms) stays", "370.7", 10, 2),
    ("and the full frame (452.6 ms) does not", "452.6", 20, 2),
])
def test_airtimes(quote, number, payload, data_rate):
    check_quoted(MODULE, quote, number, 1000 * lorawan_time_on_air(payload, data_rate))


def test_nothing_fits_from_sf11():
    assert 1000 * lorawan_time_on_air(0, 1) > 400  # even an empty SF11 uplink
    assert max_payload(1, True) is None and max_payload(0, True) is None
    check_quoted(MODULE, "DR2 (SF10) carries at most 11 bytes", "11", max_payload(2, True))


def test_arib_hourly_budget():
    toa = lorawan_time_on_air(10, 2)
    check_quoted(MODULE, "(2.2 s of the 360 s per hour)", "2.2", toa * 3600 / 600)
    check_quoted(MODULE, "breaks the hourly budget (444.8 s)", "444.8", toa * 3600 / 3)


def test_battery_life():
    def life(minutes):
        return battery_life_days(2000, 120, 1.5, 60 * minutes, 10)

    check_quoted(MODULE, "Every 10 minutes gives 269 days, every minute 28 days", "269", life(10))
    check_quoted(MODULE, "Every 10 minutes gives 269 days, every minute 28 days", "28", life(1))
    check_quoted(MODULE, "(8,333 days)", "8,333", 2000 / 0.010 / 24)
    # one year: solve 120 mA * 1.5 s / T + 0.01 mA = 2000 mAh / 8760 h for T
    one_year_s = 120 * 1.5 / (2000 / (365 * 24) - 0.010)
    check_quoted(MODULE, "crosses one year near a 14-minute interval", "14", one_year_s / 60)
    assert life(one_year_s / 60) == pytest.approx(365, rel=1e-3)  # the burst displaces a little sleep
    check_quoted(MODULE, "269 days every 10 min, 28 days every minute, one year near 14 min", "269", life(10))


# --- section 5: privacy, mesh codes, suppression --------------------------------------------


def test_addresses_per_oui():
    assert "$2^{24} = 16{,}777{,}216$ addresses remain" in module_text(MODULE)
    assert 2**24 == 16_777_216
    check_quoted(MODULE, "2²⁴ = 16,777,216 addresses per OUI", "16,777,216", 2**24)


@pytest.mark.parametrize(("name", "code"), [
    ("Tsukuba", "54400098"), ("Kenkyu-gakuen", "54400096"),
    ("Banpaku-kinenkoen", "54400074"), ("Midorino", "54400034"),
])
def test_tx_station_mesh_codes(name, code):
    tx = pd.read_csv(dataset_path("tsukuba-geo") / "tx_stations.csv").set_index("name_en")
    assert to_meshcode(tx.loc[name, "lat"], tx.loc[name, "lon"], 3) == code
    check_quoted(MODULE, f"{name} {code}" if name != "Tsukuba" else f"Tsukuba is {code}", code, int(code))


@cache
def _cells() -> pd.DataFrame:
    stations, readings, _ = _data()
    slot = pd.Timestamp("2025-06-19T07:00Z")
    counts = readings[readings["time"] == slot].merge(stations, on="station_id")
    return k_suppressed_counts(counts, "lat", "lon", level=3, k=5, count_col="people_count")


def test_suppressed_cells():
    cells = _cells()
    check_quoted(MODULE, "The 19 one-kilometre mesh cells", "19", len(cells))
    below = cells[cells["reason"] == "below_k"]["mesh_code"].tolist()
    second = cells[cells["reason"] == "complementary"]["mesh_code"].tolist()
    assert "Two cells fall below 5" in module_text(MODULE)
    assert len(below) == 2
    assert sorted(second) == ["54400024", "54401008"]
    check_quoted(MODULE, "(54401008 north of Tsukuba Station and 54400024 south of Midorino)", "54401008",
                 int("54401008"))
    # one hidden cell on the campus (a station of kind campus), one near Banpaku-kinenkoen
    stations, _, _ = _data()
    stations = stations.assign(mesh3=to_meshcode(stations["lat"], stations["lon"], 3))
    anchors = sorted(stations[stations["mesh3"].isin(below)]["anchor"].unique())
    assert anchors == ["banpaku-kinenkoen", "campus"]
    # each pair shares its 10 km parent, so the parent total reveals only their sum
    assert {code[:6] for code in below} == {code[:6] for code in second}


def test_ewma_limits_formula():
    # "limits that widen towards ±Lσ√(λ/(2−λ)) = ±Lσ/3" for λ = 0.2
    assert math.sqrt(0.2 / (2 - 0.2)) == pytest.approx(1 / 3)


# --- section 2: the IsolationForest ---------------------------------------------------------


@cache
def _forest_flags(station_id: str) -> pd.Series:
    from sscity.sensing.features import isolation_forest_flags, window_features

    arrived = _residual(station_id).dropna()
    samples = pd.DataFrame({"t_s": (arrived.index - arrived.index[0]).total_seconds(),
                            "residual": arrived.to_numpy()})
    hourly = window_features(samples, window=6, step=1, columns=["residual"], band_hz=(0, 1 / 1200))
    outlier = isolation_forest_flags(hourly[["residual_mean", "residual_std", "residual_ptp"]],
                                     contamination=0.01, seed=0)
    flags = pd.Series(outlier.to_numpy(), index=arrived.index[hourly["start"].to_numpy() + 5])
    return flags.reindex(_temperature().index, fill_value=False)


def test_isolation_forest():
    counts = {sid: int(_forest_flags(sid).sum()) for sid in ("cs-02", "cs-25", "cs-40", "cs-20", "cs-01")}
    assert all(abs(n - 20) <= 2 for n in counts.values()), counts  # "about 20 samples on every station"
    spike = detection_scores(_forest_flags("cs-02"), _labels("cs-02"))
    assert spike.events_detected == 3  # "It finds all three spikes"
    drift = detection_scores(_forest_flags("cs-25"), _labels("cs-25"))
    check_quoted(MODULE, "touches the drift (2.1 % of its samples", "2.1", drift.recall, percent=True)
    assert drift.mean_delay > pd.Timedelta(days=1)  # "first after more than a day"
    assert detection_scores(_forest_flags("cs-40"), _labels("cs-40")).events_detected == 1
    assert detection_scores(_forest_flags("cs-20"), _labels("cs-20")).events_detected == 0
    check_quoted(MODULE, "raises 20 false alarms on healthy cs-01", "20", counts["cs-01"])


# --- section 6: the surface classifier ------------------------------------------------------


@cache
def _surface_model():
    from sklearn.ensemble import RandomForestClassifier
    from sscity.data import load_ride_imu
    from sscity.sensing.features import window_features

    windows = window_features(load_ride_imu(), window=100, step=50)
    features = [c for c in windows.columns if c not in ("run_id", "surface", "start", "t_start_s")]
    held_out = windows["run_id"] % 4 == 0
    model = RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0)
    model.fit(windows.loc[~held_out, features], windows.loc[~held_out, "surface"])
    return model, windows.loc[held_out, features], windows.loc[held_out, "surface"]


def test_raw_imu_rate():
    from sscity.data import load_ride_imu

    imu = load_ride_imu()
    channels = [c for c in imu.columns if c.endswith(("_mps2", "_radps"))]
    rate_hz = 1 / np.median(np.diff(imu.loc[imu["run_id"] == 1, "t_s"]))
    check_quoted(MODULE, "(6 channels of 4-byte floats, 2,400 bytes a second)", "2,400",
                 round(rate_hz) * len(channels) * 4)
    assert len(channels) == 6


def test_surface_classifier():
    model, X_test, y_test = _surface_model()
    right = int(np.sum(model.predict(X_test) == y_test))
    check_quoted(MODULE, "The diagonal holds 222 of the 225 windows", "222", right)
    check_quoted(MODULE, "The diagonal holds 222 of the 225 windows", "225", len(X_test))
    check_quoted(MODULE, "(accuracy 0.987)", "0.987", right / len(X_test))
    predicted = model.predict(X_test)
    mistakes = [(t, p) for t, p in zip(y_test, predicted, strict=True) if t != p]
    assert len(mistakes) == 3 and all("curb_cut" in pair for pair in mistakes), mistakes
    assert "all three mistakes involve the curb cut" in module_text(MODULE)
    check_quoted(MODULE, "on the 225 windows of the 15 held-out", "15",
                 (np.arange(1, 61) % 4 == 0).sum())


def test_compiled_forest():
    from sscity.sensing.embedded import CompilerNotFound, compile_and_predict, cross_compile_arm

    model, X_test, _ = _surface_model()
    try:
        in_c = compile_and_predict(model, X_test)
    except CompilerNotFound:
        pytest.skip("no C compiler")
    assert np.all(in_c == model.predict(X_test))  # "agrees with scikit-learn on every held-out window"
    try:
        arm = cross_compile_arm(model, "surface_model")
    except CompilerNotFound:
        pytest.skip("no arm-none-eabi-gcc")
    check_quoted(MODULE, "the Cortex-M4 build is about 0.5 % of an nRF52840's", "0.5",
                 arm["flash"] / 2**20, percent=True)
    assert arm["ram"] == 0  # "no RAM of its own"


# --- section 7: the message path (the gateway's counts; MQTT is not needed for them) ------


def test_gateway_counts():
    from sscity.platform import Client
    from sscity.sensing.gateway import DEFAULT_TOPIC_PREFIX, Gateway
    from sscity.sensing.payload import pack_reading

    stations, readings, _ = _data()
    around = stations[stations["anchor"] == "tsukuba"]
    gateway = Gateway(Client(), tenant="facts-03-gateway",
                      stations={int(r.station_id[3:]): (r.lon, r.lat) for r in around.itertuples()})
    start = pd.Timestamp("2025-06-19T08:00Z")
    hour = readings[readings["station_id"].isin(around["station_id"]) & (readings["time"] >= start)
                    & (readings["time"] < start + pd.Timedelta(hours=1))]
    frames = []
    for row in hour.sort_values("time").itertuples():
        number = int(row.station_id[3:])
        frames.append((number, pack_reading({
            "station_id": number, "timestamp": row.time, "temperature_c": row.temperature_c,
            "humidity_pct": row.humidity_pct, "pm25_ugm3": row.pm25_ugm3, "noise_dba": row.noise_dba,
            "people_count": None if pd.isna(row.people_count) else int(row.people_count)})))
    last = frames[-1][1]
    broken = [(21, last[:13]), (21, last[:1] + bytes([last[1] ^ 0xFF]) + last[2:]),
              (99, pack_reading({"station_id": 99, "timestamp": start, "pm25_ugm3": 5.0})),
              (22, frames[0][1])]
    for number, frame in frames + broken:
        gateway.handle(DEFAULT_TOPIC_PREFIX + str(number), frame)
    stats = gateway.stats
    quote = "34 received, 30 stored, 4 dead-lettered"
    check_quoted(MODULE, quote, "34", stats["received"])
    check_quoted(MODULE, quote, "30", stats["stored"])
    check_quoted(MODULE, quote, "4", stats["dead_lettered"])
    assert [d.reason for d in gateway.dead_letters] == ["truncated", "bad_crc", "unknown_station",
                                                         "station_mismatch"]


# --- counts and sizes quoted along the way ------------------------------------------------------


def test_dataset_sizes_and_spans():
    stations, readings, faults = _data()
    check_quoted(MODULE, "40 stations every 10 minutes over a rainy-season fortnight", "40", len(stations))
    check_quoted(MODULE, "with 21 faults planted and labelled", "21", len(faults))
    spikes = _temperature()[STATION][faults.loc[faults["station_id"] == STATION, "start"]]
    check_quoted(MODULE, "three one-sample spikes above 45 °C", "45", 45)
    assert len(spikes) == 3 and (spikes > 45).all()
    drift = faults[faults["station_id"] == "cs-25"].iloc[0]
    # "over three days"
    assert drift["end"] + pd.Timedelta(minutes=10) - drift["start"] == pd.Timedelta(days=3)
    slot = pd.Timestamp("2025-06-19T07:00Z").tz_convert("Asia/Tokyo")
    assert (slot.day_name(), slot.hour) == ("Thursday", 16)  # "Thursday 19 June, 16:00 JST"
    assert "(Thursday 19 June, 16:00 JST)" in module_text(MODULE)
    last = pd.Timestamp("2025-06-19T08:50Z").tz_convert("Asia/Tokyo")
    assert (last.hour, last.minute) == (17, 50)  # "the latest reading of each station ... (17:50 JST)"


def test_frame_sizes():
    from sscity.sensing.payload import frame_size

    check_quoted(MODULE, "into a 20-byte frame: a version byte", "20", frame_size())
    check_quoted(MODULE, "Three measurements make 10 bytes", "10",
                 frame_size(["temperature_c", "humidity_pct", "pm25_ugm3"]))


def test_ride_imu_shape():
    from sscity.data import load_ride_imu

    imu = load_ride_imu()
    runs = imu.groupby("run_id")["t_s"].agg(["size", "max"])
    quote = "60 runs of 8 s at 100 Hz"
    check_quoted(MODULE, quote, "60", len(runs))
    check_quoted(MODULE, quote, "8", runs["size"].iloc[0] / 100)
    assert (runs["size"] == 800).all() and runs["max"].iloc[0] == pytest.approx(7.99)
