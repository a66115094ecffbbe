"""Tsukuba's six districts: constants, the schematic district map, the synthetic register.

The six districts are the former municipalities merged into Tsukuba City (1987-2002):
筑波 Tsukuba (north), 大穂 Ōho, 豊里 Toyosato, 桜 Sakura, 谷田部 Yatabe (largest), 茎崎
Kukizaki (south). The Tsukuba Express (TX) runs through Sakura and Yatabe, the growing
centre; the other four are older and flat or shrinking.

Everything here that is not a published fact is **synthetic** and says so in its datasheet:
the polygons are schematic (the right order and rough size, not official boundaries) and
the register margins are invented to be consistent with the city's size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "AGE_GROUPS",
    "DISTRICTS",
    "REGISTER_SEED",
    "District",
    "district_polygons",
    "make_register",
    "write_districts_geojson",
    "write_register",
]

AGE_GROUPS = ("20-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80+")
SEXES = ("female", "male")
REGISTER_SEED = 20190401
# Adults aged 20+ in 2019 (synthetic): about 78.5 % of a city of about 240,000.
ADULTS_2019 = 188_600


@dataclass(frozen=True)
class District:
    code: str
    name_ja: str
    name_en: str
    order_north_to_south: int
    area_type: str  # "centre" (on the TX line) or "periphery"
    adult_share: float  # share of the city's adults (synthetic)
    # Age profile (synthetic): relative weight of each age group among adults.
    age_profile: tuple[float, ...]


_CENTRE_YOUNG = (0.21, 0.19, 0.18, 0.13, 0.12, 0.11, 0.06)  # students, TX families
_CENTRE = (0.15, 0.19, 0.19, 0.14, 0.13, 0.12, 0.08)
_MIDDLE = (0.11, 0.13, 0.15, 0.15, 0.18, 0.17, 0.11)
_OLD = (0.09, 0.10, 0.12, 0.14, 0.20, 0.20, 0.15)

DISTRICTS = (
    District("tsukuba", "筑波", "Tsukuba", 1, "periphery", 0.095, _OLD),
    District("oho", "大穂", "Oho", 2, "periphery", 0.095, _MIDDLE),
    District("toyosato", "豊里", "Toyosato", 3, "periphery", 0.105, _MIDDLE),
    District("sakura", "桜", "Sakura", 4, "centre", 0.220, _CENTRE_YOUNG),
    District("yatabe", "谷田部", "Yatabe", 5, "centre", 0.400, _CENTRE),
    District("kukizaki", "茎崎", "Kukizaki", 6, "periphery", 0.085, _OLD),
)
BY_CODE = {d.code: d for d in DISTRICTS}


# --- the schematic map ---------------------------------------------------------------------

# City outline, (lon, lat) clockwise from the foot of Mt Tsukuba; schematic.
_OUTLINE = [
    (140.085, 36.235), (140.135, 36.225), (140.165, 36.170), (140.175, 36.110),
    (140.160, 36.050), (140.130, 36.000), (140.100, 35.960), (140.060, 35.955),
    (140.030, 35.990), (140.020, 36.040), (140.015, 36.100), (140.040, 36.160),
    (140.060, 36.210),
]
# Boundary lines (degrees): chosen so that the TX stations and the campus fall in the
# right districts (Tsukuba station in Sakura; the other three stations in Yatabe).
_NORTH_LAT, _SOUTH_LAT, _SAKURA_SOUTH_LAT, _YATABE_NORTH_LAT = 36.150, 36.000, 36.050, 36.090
_SAKURA_WEST_LON, _TOYOSATO_EAST_LON, _TOYOSATO_NORTH_LAT = 140.095, 140.060, 36.140


def district_polygons():
    """The six districts as shapely polygons, ``{code: Polygon}`` in EPSG:4326 (schematic).

    They partition a schematic city outline: no gaps, no overlaps.
    """
    from shapely.geometry import Polygon, box

    city = Polygon(_OUTLINE)
    west, south, east, north = city.bounds
    west, south, east, north = west - 0.01, south - 0.01, east + 0.01, north + 0.01
    parts = {
        "tsukuba": box(west, _NORTH_LAT, east, north),
        "kukizaki": box(west, south, east, _SOUTH_LAT),
        "sakura": box(_SAKURA_WEST_LON, _SAKURA_SOUTH_LAT, east, _NORTH_LAT),
        "yatabe": box(west, _SOUTH_LAT, east, _SAKURA_SOUTH_LAT).union(
            box(west, _SAKURA_SOUTH_LAT, _SAKURA_WEST_LON, _YATABE_NORTH_LAT)),
        "toyosato": box(west, _YATABE_NORTH_LAT, _TOYOSATO_EAST_LON, _TOYOSATO_NORTH_LAT),
        "oho": box(west, _YATABE_NORTH_LAT, _SAKURA_WEST_LON, _NORTH_LAT).difference(
            box(west, _YATABE_NORTH_LAT, _TOYOSATO_EAST_LON, _TOYOSATO_NORTH_LAT)),
    }
    return {code: city.intersection(shape).normalize() for code, shape in parts.items()}


def _rounded(coords, digits=5):
    return [[round(x, digits), round(y, digits)] for x, y in coords]


def write_districts_geojson(path: Path) -> None:
    """Write ``districts.geojson`` (EPSG:4326, [lon, lat]) with stable formatting."""
    features = []
    for district in DISTRICTS:
        polygon = district_polygons()[district.code]
        rings = [_rounded(polygon.exterior.coords)] + [_rounded(r.coords) for r in polygon.interiors]
        features.append({
            "type": "Feature",
            "properties": {
                "district_code": district.code,
                "district": district.name_ja,
                "name_en": district.name_en,
                "order_north_to_south": district.order_north_to_south,
                "area_type": district.area_type,
                "synthetic_geometry": True,
            },
            "geometry": {"type": "Polygon", "coordinates": rings},
        })
    collection = {
        "type": "FeatureCollection",
        "name": "tsukuba_districts_schematic",
        "note": "SYNTHETIC, schematic district polygons for teaching; not official boundaries.",
        "features": features,
    }
    Path(path).write_text(json.dumps(collection, ensure_ascii=False, indent=1) + "\n",
                          encoding="utf-8")


# --- the synthetic register ------------------------------------------------------------------

def make_register(seed: int = REGISTER_SEED) -> pd.DataFrame:
    """Synthetic 2019 resident-register counts of adults by district x age group x sex.

    Consistent with a city of about 240,000 (about 188,600 adults aged 20+); centre
    districts younger, peripheral districts older, slightly more women among the oldest.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for district in DISTRICTS:
        adults = ADULTS_2019 * district.adult_share
        profile = np.asarray(district.age_profile) * rng.uniform(0.95, 1.05, len(AGE_GROUPS))
        profile /= profile.sum()
        for age, share in zip(AGE_GROUPS, profile, strict=True):
            female_share = {"70-79": 0.54, "80+": 0.62}.get(age, 0.49)
            female_share += rng.uniform(-0.01, 0.01)
            for sex, sex_share in (("female", female_share), ("male", 1 - female_share)):
                rows.append({
                    "district": district.name_ja,
                    "district_code": district.code,
                    "age_group": age,
                    "sex": sex,
                    "population": int(round(adults * share * sex_share)),
                })
    return pd.DataFrame(rows)


def write_register(folder: Path, seed: int = REGISTER_SEED) -> None:
    make_register(seed).to_csv(Path(folder) / "register_2019.csv", index=False, lineterminator="\n")
