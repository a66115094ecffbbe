"""Loaders: the course's datasets as pandas / geopandas objects with tidy types.

Every loader reads through :func:`sscity.data.dataset_path`, so notebooks work wherever
nbgrader runs them. Categorical columns come back ordered where order means something
(age groups young to old; districts north to south).
"""

from __future__ import annotations

import pandas as pd

from . import dataset_path
from .tsukuba import AGE_GROUPS, DISTRICTS

__all__ = [
    "AGE_GROUPS",
    "CITY_SENSOR_TABLES",
    "DISTRICT_CODES",
    "load_city_sensors",
    "load_districts",
    "load_landmarks",
    "load_mailed_sample",
    "load_register",
    "load_stations",
    "load_survey",
]

DISTRICT_CODES = tuple(d.code for d in DISTRICTS)
WAVES = (2015, 2017, 2019)


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    if "age_group" in frame:
        frame["age_group"] = pd.Categorical(frame["age_group"], AGE_GROUPS, ordered=True)
    if "district_code" in frame:
        frame["district_code"] = pd.Categorical(frame["district_code"], DISTRICT_CODES, ordered=True)
    return frame


def load_survey(wave: int = 2019) -> pd.DataFrame:
    """Respondents of one wave of the SYNTHETIC happiness survey (2015, 2017 or 2019).

    One row per respondent; ``happiness`` 0-10; ``weigh_*`` 0/1 (multiple answers);
    ``design_weight`` = adults in the district / questionnaires mailed there.
    """
    if wave not in WAVES:
        raise ValueError(f"There is no {wave} wave; the survey waves are {WAVES}.")
    return _ordered(pd.read_csv(dataset_path("happiness-survey", f"happiness_{wave}.csv")))


def load_mailed_sample() -> pd.DataFrame:
    """Everyone the 2019 questionnaire was mailed to (SYNTHETIC), with ``responded`` 0/1."""
    frame = pd.read_csv(dataset_path("happiness-survey", "happiness_2019_mailed.csv"),
                        dtype={"respondent_id": "string"})
    return _ordered(frame)


def load_register() -> pd.DataFrame:
    """SYNTHETIC 2019 register counts of adults by district x age group x sex."""
    return _ordered(pd.read_csv(dataset_path("tsukuba-register", "register_2019.csv")))


def load_districts():
    """The six districts as a GeoDataFrame in EPSG:4326 (SCHEMATIC polygons)."""
    import geopandas as gpd

    frame = gpd.read_file(dataset_path("tsukuba-geo", "districts.geojson"))
    frame = frame.sort_values("order_north_to_south", ignore_index=True)
    return _ordered(frame)


def _points(file: str):
    import geopandas as gpd

    table = pd.read_csv(dataset_path("tsukuba-geo", file))
    return gpd.GeoDataFrame(table, geometry=gpd.points_from_xy(table["lon"], table["lat"]),
                            crs="EPSG:4326")


def load_stations():
    """The four TX stations in Tsukuba (real positions) as a GeoDataFrame, north to south."""
    return _points("tx_stations.csv").sort_values("order_north_to_south", ignore_index=True)


def load_landmarks():
    """Landmarks (the University of Tsukuba main campus, approximate) as a GeoDataFrame."""
    return _points("landmarks.csv")


CITY_SENSOR_TABLES = ("facilities", "air_quality", "crowd_flow", "parking_spots", "bookings")


def load_city_sensors(table: str) -> pd.DataFrame:
    """One table of the SYNTHETIC city-platform data of module 02 (``tsukuba-city-sensors``).

    Parameters
    ----------
    table : {"facilities", "air_quality", "crowd_flow", "parking_spots", "bookings"}
        ``bookings`` holds invented *personal* data (pseudonymous clinic bookings) for the
        consent exercises; never publish it.

    Returns
    -------
    pandas.DataFrame
        As stored: times are ISO 8601 strings in UTC (what NGSI-LD's ``observedAt`` takes),
        positions are ``lon`` and ``lat`` in WGS 84.
    """
    if table not in CITY_SENSOR_TABLES:
        raise ValueError(f"Unknown table {table!r}; choose one of {list(CITY_SENSOR_TABLES)}. "
                         f"/ 不明な表 {table!r} です。{list(CITY_SENSOR_TABLES)} から選んでください。")
    return pd.read_csv(dataset_path("tsukuba-city-sensors", f"{table}.csv"),
                       dtype={"observed_at": str, "start_at": str})
