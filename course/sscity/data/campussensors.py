"""Generator of the SYNTHETIC edge-sensor network of module 03 (``campus-sensors``).

What is real and what is not:

- **real (approximate)**: the centre of the University of Tsukuba campus (36.11 N, 140.10 E)
  and the positions of the four Tsukuba Express stations (``tsukuba-geo``); the JIS X 0410
  mesh codes, computed from the (synthetic) positions with :func:`sscity.sensing.mesh.to_meshcode`;
  the shape of the numbers: a rainy-season (梅雨) fortnight in June, the afternoon temperature
  peak and the night humidity peak, commuter peaks at stations on weekdays, lectures on
  campus on weekdays only.
- **SYNTHETIC**: every station, position, reading and fault. The climate levels are
  *assumed* (daily mean about 21 °C, daily range 4-9 °C, humid), close to what one expects of
  Tsukuba in June, not taken from any observation.

The model: one seeded regional weather process (daily mean temperature, cloudiness, dew point
and a PM2.5 background, interpolated to 10 minutes) is shared by every station; each station
adds its own fixed offsets, its local activity (people, traffic noise) and sensor noise.
Then faults are injected and labelled in ``faults.csv`` (the ground truth for a
fault-detection exercise):

``stuck``
    The channel repeats the value it had at ``start`` until ``end`` (zero variance).
``spike``
    One reading (``start == end``) far off: a glitch, not weather.
``drift``
    An offset that grows linearly from 0 at ``start`` to its full size at ``end``.
``gap``
    Every channel is empty (NaN) from ``start`` to ``end``; the rows are **kept**, so every
    station has exactly 2,016 rows (a logger that stamps the time but lost the sensor).
``swap``
    ``temperature_c`` and ``humidity_pct`` are exchanged from ``start`` to ``end`` (a firmware
    update that mixed up two registers); ``channel`` reads ``temperature_c+humidity_pct``.

``start`` and ``end`` are both inclusive. ``write_campus_sensors(folder)`` writes the three
CSV files byte for byte the same for the same seed (``sscity data build``). Times are UTC
(ISO 8601 with ``Z``); the fortnight is Monday 9 June 00:00 to Sunday 22 June 2025 23:50 JST
(UTC+9), which has no national holiday.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["CAMPUS_SENSORS_FILES", "CAMPUS_SENSORS_SEED", "CHANNELS", "FAULT_KINDS", "load_campus_sensors",
           "make_campus_sensors", "write_campus_sensors"]

CAMPUS_SENSORS_SEED = 20250609
CAMPUS_SENSORS_FILES = ("stations.csv", "readings.csv", "faults.csv")
CHANNELS = ("temperature_c", "humidity_pct", "pm25_ugm3", "noise_dba", "people_count")
FAULT_KINDS = ("stuck", "spike", "drift", "gap", "swap")

START_JST = pd.Timestamp("2025-06-09T00:00:00")  # a Monday
N_DAYS = 14
STEP = pd.Timedelta(minutes=10)
ROWS_PER_STATION = N_DAYS * 24 * 6  # 2,016

ANCHORS = {  # (lat, lon); campus centre approximate, TX stations as in tsukuba-geo/tx_stations.csv
    "campus": (36.1100, 140.1000),
    "tsukuba": (36.0828, 140.1114),
    "kenkyu-gakuen": (36.0821, 140.0824),
    "banpaku-kinenkoen": (36.0584, 140.0593),
    "midorino": (36.0301, 140.0560),
}
_STATION_NAMES = {"tsukuba": "Tsukuba Stn", "kenkyu-gakuen": "Kenkyu-gakuen Stn",
                  "banpaku-kinenkoen": "Banpaku-kinenkoen Stn", "midorino": "Midorino Stn"}
_CAMPUS_ZONES = ("north", "central", "south")
_M_PER_DEG_LAT = 110_574.0


def _offset(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    """The point ``east_m``/``north_m`` metres from (lat, lon) (local flat-earth step, < 0.1 % error here)."""
    m_per_deg_lon = 111_320.0 * math.cos(math.radians(lat))
    return round(lat + north_m / _M_PER_DEG_LAT, 6), round(lon + east_m / m_per_deg_lon, 6)


def _stations(rng: np.random.Generator) -> pd.DataFrame:
    from sscity.sensing.mesh import to_meshcode

    rows = []
    # Campus: 20 stations; the campus is long north-south (about 5 km), so spread that way.
    for number in range(1, 21):
        east, north = float(rng.uniform(-700, 700)), float(rng.uniform(-2000, 2000))
        zone = _CAMPUS_ZONES[0 if north > 700 else (1 if north > -700 else 2)]
        lat, lon = _offset(*ANCHORS["campus"], east, north)
        rows.append({"name": f"Campus {zone} {number:02d}", "kind": "campus", "anchor": "campus",
                     "lat": lat, "lon": lon})
    # Around each TX station: 5 stations, 60-1,200 m away (plaza, bus stops, streets).
    for anchor in ("tsukuba", "kenkyu-gakuen", "banpaku-kinenkoen", "midorino"):
        for number in range(1, 6):
            distance = 60.0 if number == 1 else float(rng.uniform(150, 1200))
            bearing = float(rng.uniform(0, 2 * math.pi))
            lat, lon = _offset(*ANCHORS[anchor], distance * math.sin(bearing), distance * math.cos(bearing))
            rows.append({"name": f"{_STATION_NAMES[anchor]} {number}", "kind": "station", "anchor": anchor,
                         "lat": lat, "lon": lon})
    stations = pd.DataFrame(rows)
    stations.insert(0, "station_id", [f"cs-{n:02d}" for n in range(1, len(stations) + 1)])
    stations["mesh3"] = to_meshcode(stations["lat"].to_numpy(), stations["lon"].to_numpy(), level=3)
    stations["mesh5"] = to_meshcode(stations["lat"].to_numpy(), stations["lon"].to_numpy(), level=5)
    return stations


def _times() -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, np.ndarray]:
    """UTC times, JST hour of day (fractional), JST day number 0-13 and a weekend flag."""
    utc = pd.date_range(START_JST - pd.Timedelta(hours=9), periods=ROWS_PER_STATION, freq=STEP, tz="UTC")
    jst = utc.tz_convert("Asia/Tokyo")
    hour = (jst.hour + jst.minute / 60).to_numpy(dtype=float)
    day = np.arange(ROWS_PER_STATION) // 144
    weekend = np.asarray(jst.day_of_week >= 5)
    return utc, hour, day, weekend


def _dewpoint_rh(temperature: np.ndarray, dewpoint: np.ndarray) -> np.ndarray:
    """Relative humidity (%) from temperature and dew point (Magnus formula, WMO-No. 8 constants)."""
    def vapour(t):
        return np.exp(17.62 * t / (243.12 + t))
    return 100.0 * vapour(dewpoint) / vapour(temperature)


def _regional_weather(rng: np.random.Generator, hour: np.ndarray, day: np.ndarray) -> dict[str, np.ndarray]:
    """The weather every station shares: temperature, dew point, cloudiness, PM2.5 background."""
    n = len(hour)
    # Daily values (rainy season: overcast on most days, a few clear ones), then smoothed to 10 min.
    cloud = np.clip(rng.beta(2.5, 1.6, N_DAYS), 0, 1)
    mean_t = 21.0 + np.cumsum(rng.normal(0, 0.9, N_DAYS)) * 0.7 + 1.5 * (0.5 - cloud)
    amplitude = 4.5 * (1 - 0.6 * cloud)  # half the daily range: 4.5 °C clear, 1.8 °C overcast
    spread = 1.0 + 4.0 * (1 - cloud)  # afternoon dew-point depression grows on clear days
    centre_hours = np.arange(N_DAYS) * 24 + 12.0
    now_hours = day * 24 + hour
    daily = {"cloud": cloud, "mean_t": mean_t, "amp": amplitude, "spread": spread}
    smooth = {name: np.interp(now_hours, centre_hours, values) for name, values in daily.items()}
    # Diurnal shape: minimum near 04:30, maximum at 14:00 JST (fundamental plus a small harmonic).
    phase = 2 * math.pi * (hour - 14.0) / 24
    shape = (np.cos(phase) + 0.15 * np.cos(2 * phase)) / 1.15
    weather_noise = np.zeros(n)
    steps = rng.normal(0, 0.08, n)
    for i in range(1, n):  # AR(1): passing clouds and showers, correlated over about 2 h
        weather_noise[i] = 0.92 * weather_noise[i - 1] + steps[i]
    temperature = smooth["mean_t"] + smooth["amp"] * shape + weather_noise
    # Dew point: near the night minimum temperature, so night RH approaches 90-100 %.
    dewpoint = smooth["mean_t"] - smooth["amp"] * 0.9 - 0.8 - 0.5 * smooth["spread"] * (shape + 1) / 2
    log_pm = np.zeros(n)
    pm_steps = rng.normal(0, 0.025, n)
    for i in range(1, n):  # slow log-AR(1) around 10 µg/m³ (correlated over about a day)
        log_pm[i] = 0.995 * log_pm[i - 1] + pm_steps[i]
    pm_background = 10.0 * np.exp(log_pm) * (1.2 - 0.5 * smooth["cloud"])  # rain washes PM out
    return {"temperature": temperature, "dewpoint": dewpoint, "pm": pm_background, "cloud": smooth["cloud"]}


def _bump(hour: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((hour - centre) / width) ** 2)


def _station_readings(rng: np.random.Generator, station: pd.Series, weather: dict[str, np.ndarray],
                      hour: np.ndarray, weekend: np.ndarray) -> dict[str, np.ndarray]:
    n = len(hour)
    at_station = station["kind"] == "station"
    # Fixed offsets: paved station squares run warmer, campus lawns and woods cooler.
    t_offset = float(rng.uniform(0.3, 1.2)) if at_station else float(rng.uniform(-0.6, 0.3))
    sunlit = (hour > 9) & (hour < 19)  # the offset is largest when the sun heats the surface
    temperature = weather["temperature"] + t_offset * (0.6 + 0.4 * sunlit) + rng.normal(0, 0.15, n)
    dewpoint = weather["dewpoint"] + float(rng.normal(0, 0.3))
    humidity = _dewpoint_rh(temperature, dewpoint) + rng.normal(0, 1.0, n)
    weekday = ~weekend
    if at_station:
        scale = float(rng.uniform(15, 60)) * (2.0 if station["name"].endswith(" 1") else 1.0)
        activity = np.where(weekday, 1.6 * _bump(hour, 7.9, 0.8) + 1.1 * _bump(hour, 18.2, 1.2)
                            + 0.35 * _bump(hour, 12.5, 3.0),
                            0.55 * _bump(hour, 13.5, 3.5))
        traffic = np.where(weekday, _bump(hour, 8.0, 1.5) + 0.9 * _bump(hour, 18.0, 1.8),
                           0.6 * _bump(hour, 14, 4))
        noise_base, noise_gain, pm_gain = float(rng.uniform(44, 50)), float(rng.uniform(14, 20)), 4.0
    else:
        scale = float(rng.uniform(10, 45))
        lectures = sum(_bump(hour, c, 0.35) for c in (8.6, 10.3, 12.1, 13.6, 15.3, 17.0))  # class changes
        activity = np.where(weekday, 0.35 * _bump(hour, 13.0, 4.0) + 0.9 * lectures,
                            0.12 * _bump(hour, 14.0, 3.5))
        traffic = np.where(weekday, 0.6 * _bump(hour, 12.5, 4.5), 0.25 * _bump(hour, 14, 4))
        noise_base, noise_gain, pm_gain = float(rng.uniform(36, 42)), float(rng.uniform(10, 16)), 1.5
    people = rng.poisson(scale * activity + 0.2)
    # Sound levels add as energies: a floor, traffic, and voices that grow with the crowd.
    energy = (10 ** (noise_base / 10) + 10 ** ((noise_base + noise_gain * traffic) / 10) * traffic
              + 10 ** (4.5 + 0.01 * people) * np.minimum(people, 200) / 50)
    noise = 10 * np.log10(energy) + rng.normal(0, 1.2, n)
    pm = weather["pm"] * float(rng.uniform(0.85, 1.15)) + pm_gain * traffic + rng.normal(0, 1.0, n)
    return {"temperature_c": temperature, "humidity_pct": np.clip(humidity, 15, 100),
            "pm25_ugm3": np.maximum(pm, 0.5), "noise_dba": noise, "people_count": people.astype(float)}


def _plan_faults(rng: np.random.Generator, station_ids: list[str]) -> list[dict]:
    """Choose faults: each faulty station gets one fault (spikes: up to three), none overlap."""
    plan = [  # (kind, channel, duration in samples)
        ("stuck", "temperature_c", 36), ("stuck", "humidity_pct", 60), ("stuck", "pm25_ugm3", 72),
        ("stuck", "noise_dba", 18),
        ("drift", "temperature_c", 432), ("drift", "humidity_pct", 288), ("drift", "pm25_ugm3", 576),
        ("gap", "all", 12), ("gap", "all", 90), ("gap", "all", 144),
        ("swap", "temperature_c+humidity_pct", 54), ("swap", "temperature_c+humidity_pct", 144),
        ("spike", "pm25_ugm3", 1), ("spike", "noise_dba", 1), ("spike", "temperature_c", 1),
    ]
    faulty = rng.choice(len(station_ids), size=len(plan), replace=False)
    faults = []
    for (kind, channel, length), station in zip(plan, faulty, strict=True):
        starts = [int(rng.integers(30, ROWS_PER_STATION - length - 30))]
        if kind == "spike":  # three spikes on the same station, on three different days
            days = rng.choice(np.arange(30, ROWS_PER_STATION - 30, 144), 3, replace=False)
            starts = sorted(int(s) for s in days + rng.integers(0, 144, 3))
        for start in starts:
            faults.append({"station": int(station), "kind": kind, "channel": channel,
                           "start": start, "end": start + length - 1})
    return faults


def _inject(rng: np.random.Generator, channels: dict[str, np.ndarray], fault: dict) -> None:
    span = slice(fault["start"], fault["end"] + 1)
    kind, channel = fault["kind"], fault["channel"]
    if kind == "stuck":
        channels[channel][span] = channels[channel][fault["start"]]
    elif kind == "spike":
        jump = {"pm25_ugm3": 250.0, "noise_dba": 35.0, "temperature_c": 25.0}[channel]
        channels[channel][fault["start"]] += jump * float(rng.uniform(1.0, 1.6))
    elif kind == "drift":
        size = {"temperature_c": 4.0, "humidity_pct": -18.0, "pm25_ugm3": 25.0}[channel]
        channels[channel][span] += np.linspace(0, size, fault["end"] - fault["start"] + 1)
    elif kind == "gap":
        for values in channels.values():
            values[span] = np.nan
    elif kind == "swap":
        t = channels["temperature_c"][span].copy()
        channels["temperature_c"][span] = channels["humidity_pct"][span]
        channels["humidity_pct"][span] = t


_RESOLUTION = {"temperature_c": 1, "humidity_pct": 1, "pm25_ugm3": 1, "noise_dba": 1}  # decimals


def make_campus_sensors(seed: int = CAMPUS_SENSORS_SEED) -> dict[str, pd.DataFrame]:
    """The three SYNTHETIC tables of ``campus-sensors``, keyed by file name.

    Parameters
    ----------
    seed : int, default CAMPUS_SENSORS_SEED
        Seed of the one random generator that draws everything (positions, weather, noise, faults).

    Returns
    -------
    dict of str to pandas.DataFrame
        ``stations.csv``, ``readings.csv`` (40 stations x 2,016 rows) and ``faults.csv`` as they
        are written (times as ISO 8601 UTC strings).
    """
    rng = np.random.default_rng(seed)
    stations = _stations(rng)
    utc, hour, day, weekend = _times()
    weather = _regional_weather(rng, hour, day)
    per_station = [_station_readings(rng, row, weather, hour, weekend) for _, row in stations.iterrows()]
    station_ids = stations["station_id"].tolist()
    faults = _plan_faults(rng, station_ids)
    for fault in faults:
        _inject(rng, per_station[fault["station"]], fault)

    stamps = np.asarray(utc.strftime("%Y-%m-%dT%H:%M:%SZ"))
    frames = []
    for station_id, channels in zip(station_ids, per_station, strict=True):
        frame = pd.DataFrame({"station_id": station_id, "time": stamps})
        for name, decimals in _RESOLUTION.items():
            frame[name] = np.round(channels[name], decimals)
        frame["people_count"] = pd.array(np.round(channels["people_count"]), dtype="Int64")
        frames.append(frame)
    readings = pd.concat(frames, ignore_index=True)

    fault_rows = sorted(({"station_id": station_ids[f["station"]], "channel": f["channel"], "kind": f["kind"],
                          "start": stamps[f["start"]], "end": stamps[f["end"]]} for f in faults),
                        key=lambda r: (r["station_id"], r["start"]))
    fault_table = pd.DataFrame(fault_rows)
    fault_table.insert(0, "fault_id", [f"fault-{n:02d}" for n in range(1, len(fault_table) + 1)])
    return {"stations.csv": stations, "readings.csv": readings, "faults.csv": fault_table}


def write_campus_sensors(folder: Path, seed: int = CAMPUS_SENSORS_SEED) -> None:
    """Write the three CSV files into ``folder`` (UTF-8, LF line ends, same bytes for the same seed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in make_campus_sensors(seed).items():
        table.to_csv(folder / name, index=False, lineterminator="\n")


def load_campus_sensors(folder: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Load ``campus-sensors`` as (stations, readings, faults), times parsed as UTC.

    Parameters
    ----------
    folder : path, optional
        The folder holding the three CSV files; default the course's ``datasets/campus-sensors``.

    Returns
    -------
    stations : pandas.DataFrame
        One row per station; ``mesh3`` and ``mesh5`` are strings (leading digits kept).
    readings : pandas.DataFrame
        ``station_id``, ``time`` (datetime64, UTC) and the five channels; empty readings are NaN
        (``people_count`` is a nullable integer).
    faults : pandas.DataFrame
        The ground truth: ``fault_id, station_id, channel, kind, start, end`` (both ends inclusive, UTC).

    Raises
    ------
    FileNotFoundError
        If a file is missing.
    """
    if folder is None:
        from . import dataset_path

        folder = dataset_path("campus-sensors")
    folder = Path(folder)
    missing = [name for name in CAMPUS_SENSORS_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{missing} not found in {folder}: rebuild with `sscity data build`. / "
            f"{folder} に {missing} がありません。`sscity data build` で作り直してください。")
    stations = pd.read_csv(folder / "stations.csv", dtype={"mesh3": str, "mesh5": str})
    readings = pd.read_csv(folder / "readings.csv", dtype={"people_count": "Int64"})
    readings["time"] = pd.to_datetime(readings["time"], utc=True)
    faults = pd.read_csv(folder / "faults.csv")
    for column in ("start", "end"):
        faults[column] = pd.to_datetime(faults[column], utc=True)
    return stations, readings, faults
