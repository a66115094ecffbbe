"""Module 02: the numbers its prose quotes from the (synthetic) data are what the code computes.

Each case quotes the exact phrase of a lesson, assignment or README cell and recomputes the
number from ``datasets/tsukuba-city-sensors`` with the course's own loaders and the same
ellipsoidal distance the lesson uses (``pyproj.Geod``; see ``tests/prose_facts.py``).
Real-world claims that come from sources, not data, are listed with their sources in the
module README's facts table.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
from prose_facts import check_quoted, module_text
from pyproj import Geod
from sscity.data import load_city_sensors
from sscity.data.citysensors import TSUKUBA_STATION_LONLAT

MODULE = "02-data-platform"
GEOD = Geod(ellps="WGS84")


@cache
def _table(name: str) -> pd.DataFrame:
    return load_city_sensors(name)


def _facilities_with_distance() -> pd.DataFrame:
    table = _table("facilities").copy()
    n = len(table)
    _, _, metres = GEOD.inv(np.full(n, TSUKUBA_STATION_LONLAT[0]), np.full(n, TSUKUBA_STATION_LONLAT[1]),
                            table["lon"].to_numpy(), table["lat"].to_numpy())
    return table.assign(distance_m=metres)


def _metres(facility_id: str) -> float:
    table = _facilities_with_distance().set_index("facility_id")
    return float(table.loc[facility_id, "distance_m"])


def _accessible_within(radius_m: float) -> list[str]:
    table = _facilities_with_distance()
    chosen = table[(table["distance_m"] <= radius_m) & (table["wheelchair_accessible"] == "可")]
    return sorted(chosen["facility_id"])


def _hourly_no2() -> pd.Series:
    air = _table("air_quality")
    return air.groupby(pd.to_datetime(air["observed_at"]).dt.hour)["no2"].mean()


def _peak_hour(hours) -> float:
    profile = _hourly_no2()
    return float(profile.loc[list(hours)].idxmax())


def _missing_hours(sensor: str) -> pd.DatetimeIndex:
    air = _table("air_quality")
    hours = pd.date_range(air["observed_at"].min(), air["observed_at"].max(), freq="h")
    seen = pd.to_datetime(air.loc[air["sensor_id"] == sensor, "observed_at"])
    return hours.difference(seen)


def _crowded() -> pd.DataFrame:
    crowd = _table("crowd_flow")
    return crowd[crowd["occupancy"] >= 0.8]


CASES = [
    # lesson, section 3 and the assignment: sizes of the synthetic tables
    ("First the 40 (synthetic) public facilities", "40", lambda: len(_table("facilities"))),
    ("loads the 40 (synthetic) facilities into tenant `a02-geo`", "40", lambda: len(_table("facilities"))),
    ("the 64 spots of `parking_spots`", "64", lambda: len(_table("parking_spots"))),
    ("40 facilities come back as a first page of 20", "40", lambda: len(_table("facilities"))),
    # lesson, section 4 and README outcome 3: the sharp edge at 500 m
    ("facility-009 is at 495.7 m", "495.7", lambda: _metres("facility-009")),
    ("facility-011 — also 可 — at 531.5 m", "531.5", lambda: _metres("facility-011")),
    ("-009 at 495.7 m; facility-011 at 531.5 m is just outside", "495.7", lambda: _metres("facility-009")),
    ("-009 at 495.7 m; facility-011 at 531.5 m is just outside", "531.5", lambda: _metres("facility-011")),
    ("495.7 m の -009。531.5 m の", "495.7", lambda: _metres("facility-009")),
    ("495.7 m の -009。531.5 m の", "531.5", lambda: _metres("facility-011")),
    # lesson, section 5: readings in the history and the outage
    ("Six sensors × 72 hours would be 432 readings", "432",
     lambda: _table("air_quality")["sensor_id"].nunique() * _table("air_quality")["observed_at"].nunique()),
    ("the platform holds 428 because `aq-04` has 4 hours fewer", "428", lambda: len(_table("air_quality"))),
    ("the platform holds 428 because `aq-04` has 4 hours fewer", "4", lambda: len(_missing_hours("aq-04"))),
    ("6センサー × 72時間なら432件のはずですが、基盤にあるのは428件です", "428",
     lambda: len(_table("air_quality"))),
    # lesson, figure of the NO2 history: the daily peaks
    ("a morning peak near 23:00 UTC", "23", lambda: _peak_hour([20, 21, 22, 23, 0, 1, 2])),
    ("an evening peak near 09:00 UTC", "09", lambda: _peak_hour(range(5, 15))),
    # README facts table
    ("| 40, 21, 64, 24 |", "21", lambda: int((_table("facilities")["wheelchair_accessible"] == "可").sum())),
    ("| 40, 21, 64, 24 |", "64", lambda: len(_table("parking_spots"))),
    ("| 40, 21, 64, 24 |", "24", lambda: len(_table("bookings"))),
    ("| 495.7 m, 531.5 m |", "495.7", lambda: _metres("facility-009")),
    ("| 495.7 m, 531.5 m |", "531.5", lambda: _metres("facility-011")),
    ("| 432, 428, 4 hours |", "428", lambda: len(_table("air_quality"))),
    ("| 6 |", "6", lambda: len(_crowded())),
]


@pytest.mark.parametrize(("quote", "number", "compute"), CASES, ids=[f"{q[:40]}|{n}" for q, n, _ in CASES])
def test_quoted_number_matches_the_computation(quote, number, compute):
    check_quoted(MODULE, quote, number, float(compute()))


def test_three_accessible_facilities_within_500_m():
    """Lesson summary and README outcome 3: 'exactly three', facility-002, -005 and -009."""
    text = module_text(MODULE)
    assert "finds the three accessible facilities facility-002, facility-005 and facility-009" in text
    assert "exactly three are wheelchair-accessible (facility-002, -005 and -009" in text
    assert _accessible_within(500) == ["facility-002", "facility-005", "facility-009"]


def test_the_aq04_outage_is_0300_to_0600_utc_on_2_may():
    """Lesson sections 5 and 10, README outcome 4: aq-04 has no readings 03:00–06:00 UTC on 2 May."""
    text = module_text(MODULE)
    assert "aq-04 has no readings 03:00–06:00 UTC on 2 May" in text
    assert "(aq-04, 03:00–06:00 UTC on 2 May)" in text
    missing = _missing_hours("aq-04")
    assert [f"{t:%m-%d %H:%M}" for t in missing] == [
        "05-02 03:00", "05-02 04:00", "05-02 05:00", "05-02 06:00"]
    others = [s for s in sorted(_table("air_quality")["sensor_id"].unique()) if s != "aq-04"]
    assert all(len(_missing_hours(s)) == 0 for s in others)


def test_six_crowded_counts_all_at_the_station_plaza():
    """README outcome 5 ('six counts at the station plaza on 3 May') and the crowd figure's text
    (only the station plaza crosses the line; cf-04 never does)."""
    text = module_text(MODULE)
    assert "six counts at the station plaza on 3 May" in text
    assert "only the station plaza's midday event crosses the line" in text
    crowded = _crowded()
    assert len(crowded) == 6 and set(crowded["point_id"]) == {"cf-01"}
    names = _table("crowd_flow").drop_duplicates("point_id").set_index("point_id")["name_en"]
    assert "Station plaza" in names["cf-01"]
    times = pd.to_datetime(crowded["observed_at"]).dt.tz_convert("Asia/Tokyo")
    assert times.dt.date.astype(str).unique().tolist() == ["2024-05-03"]
    assert all(10 <= t.hour < 15 for t in times)  # midday


def test_the_latest_reading_and_the_replayed_window():
    """Lesson: 'the last hour in the file, 3 May 23:00 UTC'; the crowd replay covers 3 May
    08:00–20:00 JST; the NO2 of the 3 May holiday is lower than on the other days."""
    text = module_text(MODULE)
    assert "the last hour in the file, 3 May 23:00 UTC" in text
    assert _table("air_quality")["observed_at"].max() == "2024-05-03T23:00:00Z"
    assert "Now replay 3 May 2024, 08:00–20:00 JST" in text
    times = pd.to_datetime(_table("crowd_flow")["observed_at"]).dt.tz_convert("Asia/Tokyo")
    first, last = times.min().strftime("%Y-%m-%d %H:%M"), times.max().strftime("%H:%M")
    assert (first, last) == ("2024-05-03 08:00", "20:00")
    assert "lower on the 3 May holiday" in text
    air = _table("air_quality")
    by_day = air.groupby(air["observed_at"].str[:10])["no2"].mean()
    assert by_day["2024-05-03"] < min(by_day["2024-05-01"], by_day["2024-05-02"])


def test_no_stale_claims_remain():
    """The corrections of issue 12 stay corrected: city OS deployments are not all NGSI-LD, the
    clinic-to-bus flow is Maebashi's, and つくパス's consent model is an assumption."""
    text = module_text(MODULE)
    assert "deployments speak" not in text
    assert "The deck's worked example" not in text
    assert "NGSI v2" in text and "めぶくID" in text
    assert "assume" in text and "仮定" in text
