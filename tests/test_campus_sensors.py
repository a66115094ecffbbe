"""campus-sensors: a deterministic SYNTHETIC edge-sensor network whose labelled faults are all
visible in the data, and whose mesh codes and positions are consistent."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sscity.data import dataset_path
from sscity.data.campussensors import (
    ANCHORS,
    CAMPUS_SENSORS_FILES,
    CHANNELS,
    FAULT_KINDS,
    ROWS_PER_STATION,
    load_campus_sensors,
    write_campus_sensors,
)
from sscity.sensing.mesh import to_meshcode


@pytest.fixture(scope="module")
def tables():
    return load_campus_sensors()


@pytest.fixture(scope="module")
def clean(tables):
    """Readings with every labelled fault span blanked out (what the sensors should have said)."""
    _, readings, faults = tables
    readings = readings.copy()
    for fault in faults.itertuples():
        rows = (readings["station_id"] == fault.station_id) & readings["time"].between(fault.start, fault.end)
        readings.loc[rows, list(CHANNELS)] = np.nan
    return readings


def test_two_builds_write_identical_bytes_equal_to_the_committed_files(tmp_path):
    write_campus_sensors(tmp_path / "a")
    write_campus_sensors(tmp_path / "b")
    for name in CAMPUS_SENSORS_FILES:
        first = (tmp_path / "a" / name).read_bytes()
        assert first == (tmp_path / "b" / name).read_bytes()
        assert first == dataset_path("campus-sensors", name).read_bytes()


def test_shapes_and_columns(tables):
    stations, readings, faults = tables
    assert len(stations) == 40 and stations["station_id"].is_unique
    assert set(stations["kind"]) == {"campus", "station"}
    assert list(readings.columns) == ["station_id", "time", *CHANNELS]
    assert readings.groupby("station_id").size().eq(ROWS_PER_STATION).all() and ROWS_PER_STATION == 2016
    assert str(readings["time"].dt.tz) == "UTC"
    steps = readings.groupby("station_id")["time"].diff().dropna()
    assert (steps == pd.Timedelta(minutes=10)).all()
    jst = readings["time"].dt.tz_convert("Asia/Tokyo")
    assert jst.min() == pd.Timestamp("2025-06-09 00:00", tz="Asia/Tokyo")
    assert jst.max() == pd.Timestamp("2025-06-22 23:50", tz="Asia/Tokyo")
    assert set(faults["kind"]) == set(FAULT_KINDS)
    assert set(faults["station_id"]) <= set(stations["station_id"])
    assert (faults["start"] <= faults["end"]).all()
    size = sum(dataset_path("campus-sensors", n).stat().st_size for n in CAMPUS_SENSORS_FILES)
    assert size < 8_000_000


def test_values_are_plausible_outside_faults_at_sensor_resolution(clean):
    limits = {"temperature_c": (12, 36), "humidity_pct": (25, 100), "pm25_ugm3": (0, 80),
              "noise_dba": (25, 95), "people_count": (0, 400)}
    for channel, (low, high) in limits.items():
        values = clean[channel].dropna()
        assert values.between(low, high).all(), channel
    for channel in ("temperature_c", "humidity_pct", "pm25_ugm3", "noise_dba"):
        values = clean[channel].dropna()
        assert np.allclose(values, values.round(1)), channel  # 0.1 resolution
    assert clean["people_count"].isna().sum() == clean["temperature_c"].isna().sum()


def test_diurnal_and_weekly_cycles(clean, tables):
    stations = tables[0]
    jst = clean["time"].dt.tz_convert("Asia/Tokyo")
    at = clean.assign(hour=jst.dt.hour, weekend=jst.dt.day_of_week >= 5,
                      kind=clean["station_id"].map(stations.set_index("station_id")["kind"]))
    by_hour = at.groupby("hour")[["temperature_c", "humidity_pct", "noise_dba"]].mean()
    assert by_hour.loc[14, "temperature_c"] > by_hour.loc[4, "temperature_c"] + 2
    assert by_hour.loc[4, "humidity_pct"] > by_hour.loc[14, "humidity_pct"] + 5  # RH peaks at night
    assert by_hour.loc[12, "noise_dba"] > by_hour.loc[3, "noise_dba"]
    daytime = at[at["hour"].between(8, 18)]
    people = daytime.groupby(["kind", "weekend"])["people_count"].mean()
    assert people[("campus", False)] > 3 * people[("campus", True)]  # lectures on weekdays only
    assert people[("station", False)] > people[("station", True)]
    station_weekday = at[(at["kind"] == "station") & ~at["weekend"]].groupby("hour")["people_count"].mean()
    assert station_weekday.loc[8] > station_weekday.loc[11]  # morning commute


def test_weather_is_shared_between_stations(clean):
    wide = clean.pivot(index="time", columns="station_id", values="temperature_c")
    correlation = wide.corr().to_numpy()[np.triu_indices(wide.shape[1], 1)]
    assert np.nanmin(correlation) > 0.9


def _span(readings, fault):
    station = readings[readings["station_id"] == fault.station_id]
    inside = station["time"].between(fault.start, fault.end)
    return station, inside


def test_every_labelled_fault_is_visible(tables, clean):
    _, readings, faults = tables
    consensus = clean.groupby("time")[list(CHANNELS)].median()
    for fault in faults.itertuples():
        station, inside = _span(readings, fault)
        span = station[inside]
        assert len(span) >= 1
        if fault.kind == "stuck":
            assert len(span) >= 6 and span[fault.channel].nunique() == 1, fault.fault_id
        elif fault.kind == "spike":
            series = station[fault.channel]
            median = series.rolling(13, center=True, min_periods=5).median()
            residual = (series - median).abs()
            mad = residual[~inside].median()
            assert (residual[inside] > 20 * mad).all(), fault.fault_id
        elif fault.kind == "drift":
            residual = span.set_index("time")[fault.channel] - consensus[fault.channel].reindex(span["time"])
            growth = residual.iloc[-36:].mean() - residual.iloc[:36].mean()
            threshold = {"temperature_c": 2.5, "humidity_pct": 10, "pm25_ugm3": 15}[fault.channel]
            assert abs(growth) > threshold, fault.fault_id
        elif fault.kind == "gap":
            assert span[list(CHANNELS)].isna().all().all(), fault.fault_id
        elif fault.kind == "swap":
            assert (span["temperature_c"] > 40).all() and (span["humidity_pct"] < 40).all(), fault.fault_id
        else:
            raise AssertionError(f"unknown fault kind {fault.kind}")


def test_nothing_outside_a_labelled_gap_is_missing(clean, tables):
    _, readings, faults = tables
    missing = readings[list(CHANNELS)].isna().any(axis=1).sum()
    gaps = faults[faults["kind"] == "gap"]
    labelled = sum(_span(readings, g)[1].sum() for g in gaps.itertuples())
    assert missing == labelled > 0


def test_mesh_codes_equal_to_meshcode_of_the_coordinates(tables):
    stations = tables[0]
    for row in stations.itertuples():
        assert row.mesh3 == to_meshcode(row.lat, row.lon, level=3)
        assert row.mesh5 == to_meshcode(row.lat, row.lon, level=5)
        assert len(row.mesh3) == 8 and len(row.mesh5) == 10 and row.mesh5.startswith(row.mesh3)
    # Hand check of the JIS X 0410 rule for Tsukuba Station (36.0828 N, 140.1114 E):
    # level 1: floor(36.0828 * 1.5) = 54, floor(140.1114) - 100 = 40 -> 5440;
    # level 2: rests 0.0828 deg / 5' = 0.99 -> 0 and 0.1114 deg / 7.5' = 0.89 -> 0;
    # level 3: rests 0.0828 deg / 30" = 9.94 -> 9 and 0.1114 deg / 45" = 8.91 -> 8.
    assert to_meshcode(36.0828, 140.1114, level=3) == "54400098"


def test_stations_lie_near_their_anchor(tables):
    stations = tables[0]
    for row in stations.itertuples():
        lat0, lon0 = ANCHORS[row.anchor]
        north = (row.lat - lat0) * 110_574.0
        east = (row.lon - lon0) * 111_320.0 * math.cos(math.radians(lat0))
        assert math.hypot(east, north) < 3_000, row.station_id
    assert (stations["kind"] == "campus").sum() == 20
    assert stations.loc[stations["kind"] == "station", "anchor"].value_counts().eq(5).all()


def test_loader_says_what_to_do_when_files_are_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="sscity data build"):
        load_campus_sensors(tmp_path)
