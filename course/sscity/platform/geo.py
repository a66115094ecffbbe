"""GeoJSON checks and geo-queries (NGSI-LD clause 4.10), coordinates always [lon, lat].

- :func:`check_geometry` validates a GeoJSON geometry: known type, positions of 2 or 3
  finite numbers, longitude in [-180, 180], latitude in [-90, 90], line strings of at least
  two positions, closed polygon rings of at least four positions.
- :func:`parse_geoquery` reads ``georel``, ``geometry`` and ``coordinates`` into a
  :class:`GeoQuery` whose ``bbox`` is the R*Tree prefilter and whose :meth:`GeoQuery.matches`
  is the exact test: shapely predicates for within/intersects/..., great-circle metres
  (haversine) for ``near``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import shapely
from shapely.geometry import shape

from .errors import bad_data

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)
DISTANCE_TOLERANCE_M = 1e-6  # below this from a near limit, Python recomputes the distance
METRES_PER_DEGREE_LAT = math.pi * EARTH_RADIUS_M / 180.0
GEOMETRY_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon")
LOCATION = "https://uri.etsi.org/ngsi-ld/location"  # the expanded name of `location`
GEORELS = ("near", "within", "contains", "intersects", "disjoint", "equals", "overlaps")
_DEPTH = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2, "Polygon": 2,
          "MultiPolygon": 3}


def _check_position(position, where: str) -> None:
    if not isinstance(position, list) or len(position) not in (2, 3):
        raise bad_data(f"{where}: a position must be [lon, lat] (or [lon, lat, alt]), got {position!r}.")
    for number in position:
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise bad_data(f"{where}: coordinates must be finite numbers, got {position!r}.")
    lon, lat = position[0], position[1]
    if not -180.0 <= lon <= 180.0:
        raise bad_data(f"{where}: longitude {lon} is outside [-180, 180]. GeoJSON order is [lon, lat].")
    if not -90.0 <= lat <= 90.0:
        raise bad_data(f"{where}: latitude {lat} is outside [-90, 90]. GeoJSON order is [lon, lat] "
                       "(did you swap them?).")


def _check_line(line, where: str, minimum: int) -> None:
    if not isinstance(line, list) or len(line) < minimum:
        raise bad_data(f"{where}: needs a list of at least {minimum} positions.")
    for position in line:
        _check_position(position, where)


def _check_polygon(rings, where: str) -> None:
    if not isinstance(rings, list) or not rings:
        raise bad_data(f"{where}: a Polygon is a non-empty list of linear rings.")
    for ring in rings:
        _check_line(ring, where + " (polygon ring)", 4)
        if ring[0][:2] != ring[-1][:2]:
            raise bad_data(f"{where}: a polygon ring must be closed (its last position equal to its "
                           f"first), but it starts at {ring[0]} and ends at {ring[-1]}.")


def check_geometry(value, where: str = "GeoProperty") -> dict:
    """Validate a GeoJSON geometry and return it (raises BadRequestData with the reason).

    Parameters
    ----------
    value : object
        A decoded JSON value, expected ``{"type": "Point", "coordinates": [lon, lat]}`` etc.
    where : str
        Names the attribute or parameter in error messages.
    """
    if not isinstance(value, dict) or value.get("type") not in GEOMETRY_TYPES:
        raise bad_data(f"{where}: expected a GeoJSON geometry with type one of {', '.join(GEOMETRY_TYPES)}, "
                       f"e.g. {{\"type\": \"Point\", \"coordinates\": [140.11, 36.08]}}.")
    kind = value["type"]
    coordinates = value.get("coordinates")
    if kind == "Point":
        _check_position(coordinates, where)
    elif kind == "MultiPoint":
        _check_line(coordinates, where, 1)
    elif kind == "LineString":
        _check_line(coordinates, where, 2)
    elif kind == "MultiLineString":
        if not isinstance(coordinates, list) or not coordinates:
            raise bad_data(f"{where}: a MultiLineString is a non-empty list of line strings.")
        for line in coordinates:
            _check_line(line, where, 2)
    elif kind == "Polygon":
        _check_polygon(coordinates, where)
    else:
        if not isinstance(coordinates, list) or not coordinates:
            raise bad_data(f"{where}: a MultiPolygon is a non-empty list of polygons.")
        for polygon in coordinates:
            _check_polygon(polygon, where)
    return value


def _positions(coordinates, depth: int):
    if depth == 0:
        yield coordinates
    else:
        for item in coordinates:
            yield from _positions(item, depth - 1)


def bbox(geometry: dict) -> tuple[float, float, float, float]:
    """(min_lon, max_lon, min_lat, max_lat) of a validated geometry."""
    lons, lats = [], []
    for position in _positions(geometry["coordinates"], _DEPTH[geometry["type"]]):
        lons.append(position[0])
        lats.append(position[1])
    return min(lons), max(lons), min(lats), max(lats)


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres between two [lon, lat] points."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _local_metres(geometry: dict, lon0: float, lat0: float):
    """The geometry projected to metres on a plane tangent at (lon0, lat0)."""
    kx = METRES_PER_DEGREE_LAT * math.cos(math.radians(lat0))
    ky = METRES_PER_DEGREE_LAT
    return shapely.transform(shape(geometry), lambda xy: (xy - (lon0, lat0)) * (kx, ky))


def distance_m(lon: float, lat: float, geometry: dict) -> float:
    """Distance in metres from the point (lon, lat) to a geometry.

    Exact great-circle distance for points; for lines and polygons the distance on a plane
    tangent at the point (error well under 1 % within tens of kilometres, as in a city).
    """
    if geometry["type"] == "Point":
        glon, glat = geometry["coordinates"][:2]
        return haversine_m(lon, lat, glon, glat)
    if geometry["type"] == "MultiPoint":
        return min(haversine_m(lon, lat, p[0], p[1]) for p in geometry["coordinates"])
    return float(_local_metres(geometry, lon, lat).distance(shapely.Point(0.0, 0.0)))


@dataclass
class GeoQuery:
    """A parsed geo-query: relation, reference geometry and, for ``near``, a distance."""

    georel: str
    geometry: dict
    max_distance_m: float | None = None
    min_distance_m: float | None = None
    geoproperty: str = LOCATION
    _shape: object = field(default=None, repr=False)

    @property
    def reference(self):
        """The reference geometry as a prepared shapely geometry."""
        if self._shape is None:
            self._shape = shape(self.geometry)
            shapely.prepare(self._shape)
        return self._shape

    def bbox(self) -> tuple[float, float, float, float] | None:
        """The search box for the R*Tree prefilter, or None when every entity must be checked."""
        if self.georel == "disjoint" or (self.georel == "near" and self.max_distance_m is None):
            return None
        min_lon, max_lon, min_lat, max_lat = bbox(self.geometry)
        if self.georel == "near":
            reach = self.max_distance_m
            dlat = reach / METRES_PER_DEGREE_LAT
            coslat = math.cos(math.radians(min(89.9, max(abs(min_lat), abs(max_lat)) + dlat)))
            dlon = reach / (METRES_PER_DEGREE_LAT * max(coslat, 1e-6))
            min_lon, max_lon = min_lon - dlon, max_lon + dlon
            min_lat, max_lat = min_lat - dlat, max_lat + dlat
        return min_lon, max_lon, min_lat, max_lat

    def point_distance_sql(self, geom: str = "e.geom") -> tuple[str, tuple]:
        """SQL giving :func:`haversine_m` from the reference point to a stored Point (else NULL).

        ``geom`` is the SQL of the stored GeoJSON text. The expression repeats the Python formula
        operation by operation (``math.radians`` is ``x * (pi / 180)``, ``** 2`` is ``pow``), so
        SQLite's libm gives the same metres; the caller still lets Python decide when a
        distance lies within :data:`DISTANCE_TOLERANCE_M` of the limit, where the JSON number
        parsers of SQLite and Python could differ in the last bit. Used for ``near`` queries so
        that Points need no JSON decoding in Python (clause 4.10).
        """
        lon, lat = self.geometry["coordinates"][:2]
        to_rad = math.pi / 180.0
        phi1 = math.radians(lat)
        glon, glat = f"json_extract({geom}, '$.coordinates[0]')", f"json_extract({geom}, '$.coordinates[1]')"
        # 2 * R * asin(min(1, sqrt(sin(dphi / 2) ** 2 + cos(phi1) * cos(phi2) * sin(dlmb / 2) ** 2)))
        sql = (f"(CASE WHEN json_extract({geom}, '$.type') = 'Point' THEN ? * asin(min(1.0, sqrt("
               f"pow(sin(({glat} * ? - ?) / 2), 2) + ? * cos({glat} * ?) * "
               f"pow(sin((({glon} - ?) * ?) / 2), 2)"
               f"))) END)")
        return sql, (2 * EARTH_RADIUS_M, to_rad, phi1, math.cos(phi1), to_rad, lon, to_rad)

    def distance(self, geometry: dict) -> float:
        """Metres from the reference point to ``geometry`` (``near`` queries)."""
        lon, lat = self.geometry["coordinates"][:2]
        return distance_m(lon, lat, geometry)

    def matches(self, geometry: dict) -> bool:
        """Whether an entity's geometry satisfies this query."""
        if self.georel == "near":
            d = self.distance(geometry)
            if self.max_distance_m is not None and d > self.max_distance_m:
                return False
            return not (self.min_distance_m is not None and d < self.min_distance_m)
        target = shape(geometry)
        reference = self.reference
        if self.georel == "within":
            return bool(reference.contains(target))  # target within reference
        if self.georel == "contains":
            return bool(target.contains(shape(self.geometry)))
        if self.georel == "intersects":
            return bool(reference.intersects(target))
        if self.georel == "disjoint":
            return bool(reference.disjoint(target))
        if self.georel == "equals":
            return bool(target.equals(shape(self.geometry)))
        return bool(reference.overlaps(target))


def parse_geoquery(georel: str | None, geometry: str | None, coordinates: str | None,
                   geoproperty: str | None = None) -> GeoQuery | None:
    """Read the geo-query parameters of a request (clause 4.10); None when there is none.

    Parameters
    ----------
    georel : str
        ``near;maxDistance==800``, ``near;minDistance==10``, ``within``, ``contains``,
        ``intersects``, ``disjoint``, ``equals`` or ``overlaps``.
    geometry : str
        ``Point``, ``MultiPoint``, ``LineString``, ``MultiLineString``, ``Polygon`` or ``MultiPolygon``.
    coordinates : str
        The GeoJSON coordinates as JSON text, [lon, lat] order, e.g. ``[140.11,36.08]``.
    geoproperty : str, optional
        The expanded name of the GeoProperty tested (default: ``location``).
    """
    if georel is None and geometry is None and coordinates is None:
        return None
    if not georel or not geometry or coordinates is None:
        raise bad_data("A geo-query needs all three of georel, geometry and coordinates, e.g. "
                       "georel=near;maxDistance==500&geometry=Point&coordinates=[140.11,36.08].")
    parts = [p.strip() for p in georel.split(";")]
    relation = parts[0]
    if relation not in GEORELS:
        raise bad_data(f"Unknown georel {relation!r}; use one of {', '.join(GEORELS)}.")
    if geometry not in GEOMETRY_TYPES:
        raise bad_data(f"Unknown geometry {geometry!r}; use one of {', '.join(GEOMETRY_TYPES)}.")
    try:
        coords = json.loads(coordinates, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise bad_data(f"coordinates must be JSON, e.g. [140.11,36.08]; got {coordinates[:80]!r}.") from None
    query = GeoQuery(relation, check_geometry({"type": geometry, "coordinates": coords},
                                              "coordinates"), geoproperty=geoproperty or LOCATION)
    if relation == "near":
        if geometry != "Point":
            raise bad_data("georel=near needs geometry=Point (the place to measure distance from).")
        if len(parts) != 2:
            raise bad_data("georel=near needs one distance: near;maxDistance==METRES or "
                           "near;minDistance==METRES.")
        name, _, number = parts[1].partition("==")
        try:
            metres = float(number)
        except ValueError:
            metres = -1.0
        if name not in ("maxDistance", "minDistance") or not math.isfinite(metres) or metres < 0:
            raise bad_data(f"Cannot read {parts[1]!r}: write near;maxDistance==500 (metres, not negative).")
        if name == "maxDistance":
            query.max_distance_m = metres
        else:
            query.min_distance_m = metres
    elif len(parts) > 1:
        raise bad_data(f"georel={relation} takes no distance; only near does.")
    if geometry in ("Polygon", "MultiPolygon") and not query.reference.is_valid:
        raise bad_data("The query polygon is not valid (its edges cross or a ring is degenerate): "
                       f"{shapely.is_valid_reason(query.reference)}.")
    return query


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")
