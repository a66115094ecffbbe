"""Generator of the SYNTHETIC city-platform data of module 02 (``tsukuba-city-sensors``).

What is real and what is not:

- **real (approximate)**: the positions of the four TX stations (``tsukuba-geo``), the six
  districts' names, the kinds of things a city data platform holds (Smart Data Models
  AirQualityObserved, CrowdFlowObserved, ParkingSpot; Japan's Digital Agency area-data
  model for public facilities, with ``wheelchairAccessible`` 可/不可/未確認), and the
  shape of the numbers: NO2 peaking in the morning and evening rush, PM2.5 drifting slowly,
  a crowd gathering at the station plaza for a holiday event.
- **SYNTHETIC**: every facility, sensor, counting point, parking spot and booking, every
  position other than the stations, and every reading. Names are generic ("Community
  Centre 3") so that nobody mistakes them for real places. The bookings are invented
  personal data: pseudonymous residents booking clinic visits, used to teach consent.

``write_city_sensors(folder)`` writes the five CSV files byte for byte the same for the same
seed (``sscity data build``). Times are UTC (ISO 8601 with ``Z``); Japan is UTC+9.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["CITY_SENSORS_FILES", "CITY_SENSORS_SEED", "TSUKUBA_STATION_LONLAT", "make_city_sensors",
           "write_city_sensors"]

CITY_SENSORS_SEED = 20240503
CITY_SENSORS_FILES = ("facilities.csv", "air_quality.csv", "crowd_flow.csv", "parking_spots.csv",
                      "bookings.csv")
TSUKUBA_STATION_LONLAT = (140.1114, 36.0828)  # tx_stations.csv (real, approximate)
_STATIONS = {  # tx_stations.csv
    "tsukuba": (140.1114, 36.0828),
    "kenkyu-gakuen": (140.0824, 36.0821),
    "banpaku-kinenkoen": (140.0593, 36.0584),
    "midorino": (140.0560, 36.0301),
}
_M_PER_DEG_LAT = 110_574.0


def _offset(lonlat, east_m: float, north_m: float) -> tuple[float, float]:
    """The point ``east_m``/``north_m`` metres from ``lonlat`` (local flat-earth step, < 0.1 % error here)."""
    lon, lat = lonlat
    m_per_deg_lon = 111_320.0 * math.cos(math.radians(lat))
    return round(lon + east_m / m_per_deg_lon, 6), round(lat + north_m / _M_PER_DEG_LAT, 6)


_CATEGORIES = (  # (category, English, Japanese)
    ("city-office", "City Service Office", "市民窓口"),
    ("library", "Library", "図書館"),
    ("community-centre", "Community Centre", "交流センター"),
    ("clinic", "Clinic", "診療所"),
    ("museum", "Science Museum", "科学館"),
    ("public-toilet", "Public Toilet", "公衆トイレ"),
    ("gymnasium", "Gymnasium", "体育館"),
    ("childcare", "Childcare Support Centre", "子育て支援センター"),
)
_ACCESS = ("可", "不可", "未確認")


def _facilities(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    counters: dict[str, int] = {}
    # Around Tsukuba Station: distances chosen so that some lie just inside and some just
    # outside 500 m, which separates metres from degrees and `near` from a bounding box.
    near_station = [120, 210, 260, 330, 380, 420, 455, 480, 495, 510, 530, 580, 640, 760, 900, 1150]
    plans = [("tsukuba", d) for d in near_station]
    for station, count in (("kenkyu-gakuen", 9), ("banpaku-kinenkoen", 7), ("midorino", 8)):
        plans += [(station, float(rng.uniform(150, 1800))) for _ in range(count)]
    for number, (station, distance) in enumerate(plans, start=1):
        category, name_en, name_ja = _CATEGORIES[int(rng.integers(len(_CATEGORIES)))]
        counters[category] = counters.get(category, 0) + 1
        bearing = float(rng.uniform(0, 2 * math.pi))
        lon, lat = _offset(_STATIONS[station], distance * math.sin(bearing), distance * math.cos(bearing))
        access = _ACCESS[int(rng.choice(3, p=(0.6, 0.2, 0.2)))]
        toilet = int(access == "可" and rng.random() < 0.7)
        rows.append({
            "facility_id": f"facility-{number:03d}",
            "name_en": f"{name_en} {counters[category]}",
            "name_ja": f"{name_ja}{counters[category]}",
            "category": category,
            "nearest_station": station,
            "lon": lon, "lat": lat,
            "wheelchair_accessible": access,
            "multipurpose_toilet": toilet,
        })
    return pd.DataFrame(rows)


def _air_quality(rng: np.random.Generator) -> pd.DataFrame:
    sensors = [  # (id, station, east m, north m, traffic factor)
        ("aq-01", "tsukuba", 150, -80, 1.35),
        ("aq-02", "tsukuba", -600, 900, 0.85),
        ("aq-03", "kenkyu-gakuen", 200, 120, 1.15),
        ("aq-04", "banpaku-kinenkoen", -300, 400, 0.7),
        ("aq-05", "midorino", 250, -200, 1.0),
        ("aq-06", "tsukuba", 1400, -1100, 1.2),
    ]
    hours = pd.date_range("2024-05-01T00:00Z", "2024-05-03T23:00Z", freq="h")
    local_hour = ((hours.hour + 9) % 24).to_numpy()
    rush = np.exp(-((local_hour - 8) ** 2) / 3.0) + 0.8 * np.exp(-((local_hour - 18) ** 2) / 4.0)
    holiday = (hours + pd.Timedelta(hours=9)).day == 3  # 3 May: Constitution Day, less traffic
    drift = np.cumsum(rng.normal(0, 0.35, len(hours)))
    outage = (pd.Timestamp("2024-05-02T03:00Z"), pd.Timestamp("2024-05-02T06:00Z"))
    rows = []
    for sensor_id, station, east, north, factor in sensors:
        lon, lat = _offset(_STATIONS[station], east, north)
        no2 = factor * (9 + 22 * rush * np.where(holiday, 0.55, 1.0)) + rng.normal(0, 2.0, len(hours))
        pm25 = 9 + 0.3 * drift + 1.5 * factor * rush + rng.normal(0, 1.0, len(hours))
        for when, n, p in zip(hours, no2, pm25, strict=True):
            if sensor_id == "aq-04" and outage[0] <= when <= outage[1]:
                continue  # an outage: no rows, as a real feed would show
            rows.append({"sensor_id": sensor_id, "lon": lon, "lat": lat,
                         "observed_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "no2": round(max(float(n), 1.0), 1), "pm25": round(max(float(p), 1.0), 1)})
    return pd.DataFrame(rows)


def _crowd_flow(rng: np.random.Generator) -> pd.DataFrame:
    points = [  # (id, English, Japanese, station, east, north, capacity, event weight)
        ("cf-01", "Station plaza (deck level)", "駅前広場（デッキ）", "tsukuba", 40, 60, 400, 1.0),
        ("cf-02", "Bus terminal", "バスターミナル", "tsukuba", -60, -40, 250, 0.45),
        ("cf-03", "Park entrance", "公園入口", "tsukuba", -150, 260, 300, 0.6),
        ("cf-04", "Kenkyu-gakuen station square", "研究学園駅前", "kenkyu-gakuen", 30, 40, 300, 0.0),
    ]
    # 3 May 2024 (a holiday), 08:00-20:00 JST every 15 min, in UTC.
    times = pd.date_range("2024-05-02T23:00Z", "2024-05-03T11:00Z", freq="15min")
    local = (times.hour + 9) % 24 + times.minute / 60
    base = 0.18 + 0.12 * np.sin(np.clip((local - 8) / 12, 0, 1) * math.pi)
    event = np.exp(-((local - 13.0) ** 2) / 1.8)  # a plaza event peaking at 13:00 JST
    rows = []
    for point_id, name_en, name_ja, station, east, north, capacity, weight in points:
        lon, lat = _offset(_STATIONS[station], east, north)
        occupancy = np.clip(base + 0.72 * weight * event + rng.normal(0, 0.03, len(times)), 0.02, 0.99)
        for when, occ in zip(times, occupancy, strict=True):
            people = int(round(occ * capacity))
            speed = round(float(np.clip(1.35 * (1 - occ) ** 0.8 + rng.normal(0, 0.03), 0.1, 1.5)), 2)
            rows.append({"point_id": point_id, "name_en": name_en, "name_ja": name_ja, "lon": lon, "lat": lat,
                         "observed_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "people_count": people,
                         "occupancy": round(people / capacity, 3), "average_crowd_speed": speed})
    return pd.DataFrame(rows)


def _parking_spots(rng: np.random.Generator) -> pd.DataFrame:
    sites = [  # (id, English, Japanese, station, east, north, category, spots)
        ("site-center", "Tsukuba Center car park", "つくばセンター駐車場", "tsukuba", 120, -150,
         "offStreet", 28),
        ("site-avenue", "East avenue on-street bays", "東大通り路上駐車区画", "tsukuba", 380, 200,
         "onStreet", 14),
        ("site-kenkyu", "Kenkyu-gakuen station car park", "研究学園駅駐車場", "kenkyu-gakuen", -100, 90,
         "offStreet", 22),
    ]
    rows = []
    for site_id, name_en, name_ja, station, east, north, category, count in sites:
        for number in range(1, count + 1):
            column, row = (number - 1) % 7, (number - 1) // 7
            lon, lat = _offset(_STATIONS[station], east + 3.0 * column, north + 6.0 * row)
            status = ("free", "occupied", "closed", "unknown")[int(rng.choice(4, p=(0.38, 0.52, 0.05, 0.05)))]
            rows.append({"spot_id": f"{site_id}-{number:02d}", "parking_site_id": site_id,
                         "parking_site_name_en": name_en, "parking_site_name_ja": name_ja,
                         "category": category, "for_disabled": int(number <= 3), "lon": lon, "lat": lat,
                         "status": status, "observed_at": "2024-05-03T03:00:00Z"})
    return pd.DataFrame(rows)


def _bookings(rng: np.random.Generator, facilities: pd.DataFrame) -> pd.DataFrame:
    from .tsukuba import DISTRICTS

    clinics = facilities.loc[facilities["category"] == "clinic", "facility_id"].tolist()
    district_codes = [d.code for d in DISTRICTS]
    rows = []
    for number in range(1, 25):
        day = int(rng.integers(7, 11))
        hour_jst = int(rng.choice([9, 10, 11, 14, 15, 16]))
        start = pd.Timestamp(f"2024-05-{day:02d}T{hour_jst:02d}:00:00") - pd.Timedelta(hours=9)
        rows.append({"booking_id": f"booking-{number:03d}",
                     "resident_id": f"resident-{int(rng.integers(1, 19)):03d}",
                     "facility_id": clinics[int(rng.integers(len(clinics)))],
                     "start_at": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "needs_wheelchair_vehicle": int(rng.random() < 0.3),
                     "pickup_district": district_codes[int(rng.integers(len(district_codes)))]})
    return pd.DataFrame(rows).sort_values(["start_at", "booking_id"], ignore_index=True)


def make_city_sensors(seed: int = CITY_SENSORS_SEED) -> dict[str, pd.DataFrame]:
    """The five SYNTHETIC tables of ``tsukuba-city-sensors``, keyed by file name."""
    rng = np.random.default_rng(seed)
    facilities = _facilities(rng)
    return {
        "facilities.csv": facilities,
        "air_quality.csv": _air_quality(rng),
        "crowd_flow.csv": _crowd_flow(rng),
        "parking_spots.csv": _parking_spots(rng),
        "bookings.csv": _bookings(rng, facilities),
    }


def write_city_sensors(folder: Path, seed: int = CITY_SENSORS_SEED) -> None:
    """Write the five CSV files into ``folder`` (UTF-8, LF line ends, same bytes for the same seed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in make_city_sensors(seed).items():
        table.to_csv(folder / name, index=False, lineterminator="\n")
