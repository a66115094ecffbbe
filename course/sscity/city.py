"""The through-line: seed the city platform with the whole (SYNTHETIC) city, and read it back.

Each module's output becomes the next one's input on one NGSI-LD platform
(:mod:`sscity.platform`), embedded by default or any broker by URL:

1. **Survey (module 01) -> platform.** :func:`district_wellbeing` computes the weighted mean
   happiness of each district with its standard error (:func:`sscity.survey.group_estimates`
   on the SYNTHETIC survey, design weights) and drops every cell with fewer than ``k``
   respondents (small-cell suppression); :func:`wellbeing_entities` turns the published
   cells into ``DistrictWellbeing`` entities.
2. **Edge sensing (module 03) -> platform.** :func:`campus_day_messages` packs one day of the
   SYNTHETIC campus-sensor readings into binary frames (:func:`sscity.sensing.payload.pack_reading`)
   and :func:`seed_city` hands them to the edge gateway
   (:meth:`sscity.sensing.gateway.Gateway.handle_many`, no MQTT needed), which writes the
   ``AirQualityObserved``, ``NoiseLevelObserved`` and ``CrowdFlowObserved`` entities that
   module 02's queries read.
3. **City datasets (module 02) -> platform.** :func:`facility_entities` and
   :func:`crowding_entities` build module 02's ``PublicFacility`` and ``CrowdFlowObserved``
   (with ``occupancy`` and ``congested``) entities from :func:`sscity.data.load_city_sensors`,
   exactly as the module 02 lesson does.
4. **Platform -> mobility (module 04).** :func:`facility_nodes` reads the facilities back
   from the platform and finds the nearest node of the sidewalk network of each, so
   :mod:`sscity.mobility.routing` can route to them.
5. **Neighbourhoods (capstone) -> platform -> routing.** :func:`sidewalk_entities` and
   :func:`place_entities` publish the SYNTHETIC sidewalk network of one neighbourhood per
   district (:func:`sscity.data.neighbourhoods.make_neighbourhood`) as ``SidewalkSegment``
   entities and its clinic, community centre, bus stops and supermarket as ``PublicFacility``
   entities (homes are not published); :func:`sidewalk_network` and :func:`district_places`
   read them back into a graph that :mod:`sscity.mobility.routing` routes on, closed
   segments (roadworks) left out.

Seeding deletes the entities it is about to write (with their temporal history) and writes
them again, so seeding twice leaves the same entities and the same history, and a survey
cell that a larger ``k`` now suppresses does not linger from an earlier seeding.

The ``DistrictWellbeing`` type
------------------------------
No Smart Data Models type holds a survey estimate with its uncertainty, so the course uses
its own type. Its names are not in the course ``@context``: like ``PublicFacility`` they
expand to the NGSI-LD default vocabulary, e.g. ``DistrictWellbeing`` ->
``https://uri.etsi.org/ngsi-ld/default-context/DistrictWellbeing``. Entity
``urn:ngsi-ld:DistrictWellbeing:<wave>:<district_code>``:

========================  ====================================================================
``happinessMean``         weighted mean happiness (0-10), ``observedAt`` the survey year
``happinessStandardError`` its linearised standard error (:func:`sscity.survey.weighted_mean`)
``respondents``           respondents in the cell (unweighted ``n``)
``effectiveRespondents``  Kish effective sample size
``surveyWave``            2015, 2017 or 2019
``districtCode``, ``name`` the district's code and its names (English / Japanese)
``areaType``              ``centre`` (on the TX line) or ``periphery``
``dataProvider``          says the numbers are SYNTHETIC
``location``              the district's (SCHEMATIC) polygon
========================  ====================================================================

The ``SidewalkSegment`` type
----------------------------
One entity per edge of a neighbourhood network, ``urn:ngsi-ld:SidewalkSegment:<district>:<edge_id>``
(names expand to the NGSI-LD default vocabulary, as above): ``districtCode``, ``segmentKind``
(sidewalk, crossing, lane, ...), ``startNode``/``endNode`` (``rise_m`` is measured from start
to end) with ``startElevationM``/``endElevationM``, ``lengthM``, ``slopePercent``, ``riseM``,
``crossSlopePercent``, ``curbHeightCm``, ``widthM``, ``surface``, ``steps``, ``condition``
(``open`` or ``closed``), ``name``, ``dataProvider`` and ``location`` (LineString). The places
are ``PublicFacility`` entities ``urn:ngsi-ld:PublicFacility:<district>-<node>`` with
``districtCode``, ``nodeId``, ``category`` and ``name``.

Only one level (districts) is published, so a suppressed cell cannot be recovered by
subtracting published cells from a published total; publishing a finer table as well would
need complementary suppression (see :func:`sscity.sensing.mesh.k_suppressed_counts`).

Example
-------
>>> from sscity.platform import Client
>>> summary = seed_city(Client(), tenant="city-example", progress=False)  # doctest: +SKIP
>>> summary.counts["DistrictWellbeing"]  # doctest: +SKIP
6
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pandas as pd

from sscity.data.neighbourhoods import NEIGHBOURHOOD_SEED

__all__ = [
    "DEFAULT_DAY",
    "DEFAULT_K",
    "NEIGHBOURHOOD_SEED",
    "SeedSummary",
    "campus_day_messages",
    "crowding_entities",
    "district_places",
    "district_wellbeing",
    "facility_entities",
    "facility_nodes",
    "place_entities",
    "read_wellbeing",
    "seed_city",
    "sidewalk_entities",
    "sidewalk_network",
    "wellbeing_entities",
]

DEFAULT_DAY = "2025-06-19"  # a Thursday (JST) of the campus-sensor fortnight
DEFAULT_K = 10  # smallest number of respondents behind a published cell
CROWDING_THRESHOLD = 0.8  # occupancy at which module 02 calls a point congested
SYNTHETIC_PROVIDER = "sscity course (SYNTHETIC data, not Tsukuba's) / 合成データ"
_JST = "Asia/Tokyo"


# --------------------------------------------------------------------------- 01: survey


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a whole number >= 1 (respondents per published cell); got {k!r}. "
                         f"/ k は 1 以上の整数（公表するセルの最小回答者数）にしてください。")
    return k


def district_wellbeing(survey: pd.DataFrame | None = None, *, k: int = DEFAULT_K,
                       wave: int = 2019) -> tuple[pd.DataFrame, list[str]]:
    """Weighted mean happiness per district, with cells of fewer than ``k`` respondents removed.

    Parameters
    ----------
    survey : DataFrame, optional
        Respondents with ``district_code``, ``happiness`` and ``design_weight``; default the
        SYNTHETIC survey of ``wave`` (:func:`sscity.data.load_survey`).
    k : int, default 10
        A district with fewer than ``k`` respondents is not published.
    wave : int, default 2019
        Survey wave (used to load the data when ``survey`` is None).

    Returns
    -------
    published : DataFrame
        :func:`sscity.survey.group_estimates` rows (``estimate``, ``se``, ``n``, ``n_eff``, ...)
        of the districts with at least ``k`` respondents, indexed by ``district_code``.
    suppressed : list of str
        The district codes left out.
    """
    from sscity.survey import group_estimates

    k = _check_k(k)
    if survey is None:
        from sscity.data import load_survey

        survey = load_survey(wave)
    counts = survey.groupby("district_code", observed=True)["happiness"].count()
    small = sorted(str(code) for code, n in counts.items() if n < k)
    kept = survey[~survey["district_code"].astype(str).isin(small)]
    if len(kept) == 0:
        return pd.DataFrame(columns=["estimate", "se", "n", "n_eff"]), small
    frame = kept.copy()
    frame["district_code"] = frame["district_code"].astype(str)  # no empty categories
    table = group_estimates(frame, "district_code", "happiness", weights="design_weight")
    return table, small


def _district_geometry() -> dict[str, dict]:
    from sscity.data import dataset_path

    geo = json.loads(dataset_path("tsukuba-geo", "districts.geojson").read_text(encoding="utf-8"))
    return {f["properties"]["district_code"]: f["geometry"] for f in geo["features"]}


def wellbeing_entities(table: pd.DataFrame, wave: int = 2019) -> list[dict]:
    """``DistrictWellbeing`` entities (normalized form) for the rows of :func:`district_wellbeing`."""
    from sscity.data.tsukuba import BY_CODE

    geometry = _district_geometry()
    observed = f"{wave}-01-01T00:00:00Z"
    entities = []
    for code, row in table.iterrows():
        district = BY_CODE[code]
        entities.append({
            "id": f"urn:ngsi-ld:DistrictWellbeing:{wave}:{code}",
            "type": "DistrictWellbeing",
            "name": {"type": "Property", "value": f"{district.name_en} / {district.name_ja}"},
            "districtCode": {"type": "Property", "value": code},
            "areaType": {"type": "Property", "value": district.area_type},
            "surveyWave": {"type": "Property", "value": int(wave)},
            "happinessMean": {"type": "Property", "value": float(row["estimate"]), "observedAt": observed},
            "happinessStandardError": {"type": "Property", "value": float(row["se"])},
            "respondents": {"type": "Property", "value": int(row["n"])},
            "effectiveRespondents": {"type": "Property", "value": float(row["n_eff"])},
            "dataProvider": {"type": "Property", "value": SYNTHETIC_PROVIDER},
            "location": {"type": "GeoProperty", "value": geometry[code]},
        })
    return entities


def read_wellbeing(client, wave: int = 2019) -> pd.DataFrame:
    """Read the published ``DistrictWellbeing`` of ``wave`` back from the platform.

    Returns
    -------
    DataFrame
        Indexed by ``district_code``: ``estimate``, ``se``, ``n``, ``n_eff``, ``area_type``.
    """
    rows = [{"district_code": e["districtCode"], "estimate": e["happinessMean"],
             "se": e["happinessStandardError"], "n": e["respondents"],
             "n_eff": e["effectiveRespondents"], "area_type": e["areaType"]}
            for e in client.query_all(type="DistrictWellbeing", q=f"surveyWave=={int(wave)}",
                                      key_values=True)]
    columns = ["district_code", "estimate", "se", "n", "n_eff", "area_type"]
    return pd.DataFrame(rows, columns=columns).set_index("district_code").sort_index()


# --------------------------------------------------------------------------- 03: edge gateway


def _day_window(day: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    try:
        start = pd.Timestamp(day, tz=_JST).normalize()
    except (ValueError, TypeError):
        raise ValueError(f"day must be a date such as '2025-06-19' (a day in Japan time); got {day!r}. "
                         f"/ day は '2025-06-19' のような日付（日本時間）にしてください。") from None
    return start.tz_convert("UTC"), (start + pd.Timedelta(days=1)).tz_convert("UTC")


def _station_number(station_id: str) -> int:
    return int(str(station_id).rsplit("-", 1)[-1])  # cs-21 -> 21, as module 03 does


def campus_day_messages(day: str = DEFAULT_DAY, *, stations: pd.DataFrame | None = None,
                        readings: pd.DataFrame | None = None, topic_prefix: str = "city/tsukuba/sensors/"
                        ) -> tuple[list[tuple[str, bytes]], dict[int, tuple[float, float]], int]:
    """One day (Japan time) of campus-sensor readings as the frames the stations would send.

    Parameters
    ----------
    day : str, default ``"2025-06-19"``
        A day of the fortnight 9-22 June 2025 (JST).
    stations, readings : DataFrame, optional
        As from :func:`sscity.data.campussensors.load_campus_sensors` (default: loaded).
    topic_prefix : str
        MQTT-style topic before the station number.

    Returns
    -------
    messages : list of (topic, frame)
        In time order; a reading with nothing measured is not sent.
    locations : dict
        ``{station number: (lon, lat)}`` for :class:`~sscity.sensing.gateway.Gateway`.
    unpackable : int
        Readings the frame format refused (a value out of its range): not sent.
    """
    from sscity.sensing.payload import pack_reading

    if stations is None or readings is None:
        from sscity.data.campussensors import load_campus_sensors

        stations, readings, _ = load_campus_sensors()
    start, end = _day_window(day)
    day_readings = readings[(readings["time"] >= start) & (readings["time"] < end)]
    if day_readings.empty:
        raise ValueError(f"No campus-sensor readings on {day} (JST); the fortnight is 2025-06-09 to "
                         f"2025-06-22. / {day}（日本時間）の計測値はありません。"
                         "期間は 2025-06-09〜06-22 です。")
    locations = {_station_number(row.station_id): (float(row.lon), float(row.lat))
                 for row in stations.itertuples()}
    channels = ("temperature_c", "humidity_pct", "pm25_ugm3", "noise_dba", "people_count")
    messages, unpackable = [], 0
    for row in day_readings.sort_values(["time", "station_id"]).itertuples():
        values = {c: (None if pd.isna(getattr(row, c)) else getattr(row, c)) for c in channels}
        if all(v is None for v in values.values()):
            continue
        if values["people_count"] is not None:
            values["people_count"] = int(values["people_count"])
        number = _station_number(row.station_id)
        try:
            frame = pack_reading({"station_id": number, "timestamp": row.time, **values})
        except ValueError:
            unpackable += 1
            continue
        messages.append((f"{topic_prefix}{number}", frame))
    return messages, locations, unpackable


# --------------------------------------------------------------------------- 02: city datasets


def facility_entities(facilities: pd.DataFrame | None = None) -> list[dict]:
    """Module 02's ``PublicFacility`` entities from ``load_city_sensors("facilities")``."""
    if facilities is None:
        from sscity.data import load_city_sensors

        facilities = load_city_sensors("facilities")
    return [{
        "id": f"urn:ngsi-ld:PublicFacility:{row.facility_id}",
        "type": "PublicFacility",
        "name": row.name_en,
        "category": row.category,
        "wheelchairAccessible": row.wheelchair_accessible,  # 可 / 不可 / 未確認
        "multipurposeToilet": bool(row.multipurpose_toilet),
        "location": {"type": "Point", "coordinates": [float(row.lon), float(row.lat)]},
    } for row in facilities.itertuples()]


def crowding_entities(crowd: pd.DataFrame | None = None,
                      threshold: float = CROWDING_THRESHOLD) -> list[dict]:
    """Module 02's ``CrowdFlowObserved`` entities: the latest count of each crowd point.

    The full series stays in the dataset; the entity holds the latest observation, as a
    live platform would (module 02 replays the series through updates).
    """
    if crowd is None:
        from sscity.data import load_city_sensors

        crowd = load_city_sensors("crowd_flow")
    latest = crowd.sort_values("observed_at").groupby("point_id").tail(1).sort_values("point_id")
    entities = []
    for row in latest.itertuples():
        def observed(value, row=row):
            return {"type": "Property", "value": value, "observedAt": row.observed_at}

        entities.append({
            "id": f"urn:ngsi-ld:CrowdFlowObserved:{row.point_id}",
            "type": "CrowdFlowObserved",
            "name": row.name_en,
            "dateObserved": row.observed_at,
            "location": {"type": "Point", "coordinates": [float(row.lon), float(row.lat)]},
            "peopleCount": observed(int(row.people_count)),
            "occupancy": observed(float(row.occupancy)),
            "averageCrowdSpeed": {**observed(float(row.average_crowd_speed)), "unitCode": "MTS"},
            "congested": observed(bool(row.occupancy >= threshold)),
        })
    return entities


# --------------------------------------------------------------------------- 04: routing


def facility_nodes(client, graph=None, *, max_distance_m: float | None = None) -> pd.DataFrame:
    """Facilities read from the platform, each with the nearest node of the sidewalk network.

    Parameters
    ----------
    client : sscity.platform.Client
        The platform (tenant) holding the ``PublicFacility`` entities.
    graph : networkx.Graph, optional
        The sidewalk network (default :func:`sscity.mobility.routing.load_sidewalks`).
    max_distance_m : float, optional
        Keep only facilities within this distance (m, great circle) of a node: the network
        covers the station and the campus, not the whole city.

    Returns
    -------
    DataFrame
        ``facility_id``, ``entity_id``, ``name``, ``category``, ``wheelchair_accessible``,
        ``lon``, ``lat``, ``node`` and ``distance_m``, sorted by ``distance_m``. Route to a
        facility with ``accessible_route(graph, origin, row.node)``. The neighbourhoods'
        places (entities with ``nodeId``, see :func:`district_places`) are left out.
    """
    from sscity.platform.geo import haversine_m

    if graph is None:
        from sscity.mobility.routing import load_sidewalks

        graph = load_sidewalks()
    if max_distance_m is not None and not (isinstance(max_distance_m, (int, float))
                                           and not isinstance(max_distance_m, bool)
                                           and math.isfinite(max_distance_m) and max_distance_m >= 0):
        raise ValueError(f"max_distance_m must be a distance in metres >= 0; got {max_distance_m!r}. "
                         f"/ max_distance_m は 0 以上の距離（m）にしてください。")
    nodes = [(n, d["lon"], d["lat"]) for n, d in graph.nodes(data=True)]
    if not nodes:
        raise ValueError("The sidewalk network has no nodes. / 歩道ネットワークにノードがありません。")
    rows = []
    for entity in client.query_all(type="PublicFacility", key_values=True):
        if "nodeId" in entity:  # a neighbourhood's place: it belongs to its own network
            continue
        lon, lat = entity["location"]["coordinates"][:2]
        distance, node = min((haversine_m(lon, lat, x, y), n) for n, x, y in nodes)
        if max_distance_m is not None and distance > max_distance_m:
            continue
        rows.append({"facility_id": entity["id"].rsplit(":", 1)[-1], "entity_id": entity["id"],
                     "name": entity.get("name"), "category": entity.get("category"),
                     "wheelchair_accessible": entity.get("wheelchairAccessible"),
                     "lon": lon, "lat": lat, "node": node, "distance_m": round(distance, 1)})
    columns = ["facility_id", "entity_id", "name", "category", "wheelchair_accessible", "lon", "lat",
               "node", "distance_m"]
    return pd.DataFrame(rows, columns=columns).sort_values(["distance_m", "facility_id"], ignore_index=True)


# --------------------------------------------------------------------------- capstone: neighbourhoods

_PLACE_KINDS = ("clinic", "community_centre", "bus_stop", "supermarket")
# SidewalkSegment property -> graph edge attribute (what routing reads)
_SEGMENT_FIELDS = {"segmentKind": "kind", "name": "name", "startNode": "u", "endNode": "v",
                   "lengthM": "length_m", "riseM": "rise_m", "slopePercent": "slope_percent",
                   "crossSlopePercent": "cross_slope_percent", "curbHeightCm": "curb_height_cm",
                   "widthM": "width_m", "surface": "surface", "steps": "steps", "condition": "condition"}


def _district_code(district_code) -> str:
    from sscity.data.neighbourhoods import _check_district

    return _check_district(district_code).code


def _graph_district(graph) -> str:
    code = graph.graph.get("district_code")
    if code is None:
        raise ValueError("The graph has no district_code in graph.graph; build it with "
                         "sscity.data.neighbourhoods.make_neighbourhood. / グラフに district_code が"
                         "ありません。make_neighbourhood で作ったグラフを渡してください。")
    return _district_code(code)


def sidewalk_entities(graph) -> list[dict]:
    """One ``SidewalkSegment`` entity per edge of a neighbourhood network (SYNTHETIC).

    Parameters
    ----------
    graph : networkx.Graph
        A network from :func:`sscity.data.neighbourhoods.make_neighbourhood` (its
        ``graph.graph["district_code"]`` names the district).

    Returns
    -------
    list of dict
        Entities ``urn:ngsi-ld:SidewalkSegment:<district_code>:<edge_id>`` in edge-id order.
    """
    code = _graph_district(graph)
    entities = []
    for u, v, d in sorted(graph.edges(data=True), key=lambda edge: edge[2]["edge_id"]):
        start, end = d.get("u", u), d.get("v", v)
        entities.append({
            "id": f"urn:ngsi-ld:SidewalkSegment:{code}:{d['edge_id']}",
            "type": "SidewalkSegment",
            "districtCode": code,
            "segmentKind": d["kind"],
            "name": d.get("name", ""),
            "startNode": start,
            "endNode": end,
            "startElevationM": float(graph.nodes[start]["elevation_m"]),
            "endElevationM": float(graph.nodes[end]["elevation_m"]),
            "lengthM": float(d["length_m"]),
            "riseM": float(d["rise_m"]),
            "slopePercent": float(d["slope_percent"]),
            "crossSlopePercent": float(d["cross_slope_percent"]),
            "curbHeightCm": float(d["curb_height_cm"]),
            "widthM": float(d["width_m"]),
            "surface": d["surface"],
            "steps": int(d.get("steps", 0)),
            "condition": d.get("condition", "open"),
            "dataProvider": SYNTHETIC_PROVIDER,
            "location": {"type": "LineString", "coordinates": [list(p) for p in d["coords"]]},
        })
    return entities


def place_entities(graph) -> list[dict]:
    """A ``PublicFacility`` entity per place of a neighbourhood network that is not a home.

    The clinic, the community centre, the bus stops and the supermarket, each with
    ``districtCode``, ``nodeId`` (the network node it stands at), ``category`` and ``name``;
    id ``urn:ngsi-ld:PublicFacility:<district_code>-<node>``.
    """
    code = _graph_district(graph)
    # Homes are NOT published: a home node is where somebody lives, and a platform open to the
    # city's services must not become a map of residents (in a real city, of the older residents
    # a pilot would recruit). Routing needs only the network and the destinations; a home is just
    # a node of the network.
    return [{
        "id": f"urn:ngsi-ld:PublicFacility:{code}-{node}",
        "type": "PublicFacility",
        "districtCode": code,
        "nodeId": node,
        "category": d["kind"],
        "name": d.get("name", ""),
        "dataProvider": SYNTHETIC_PROVIDER,
        "location": {"type": "Point", "coordinates": [float(d["lon"]), float(d["lat"])]},
    } for node, d in sorted(graph.nodes(data=True)) if d.get("kind") in _PLACE_KINDS]


def sidewalk_network(client, district_code: str, *, include_closed: bool = False):
    """Rebuild a district's sidewalk network from its ``SidewalkSegment`` entities on the platform.

    Parameters
    ----------
    client : sscity.platform.Client
        The platform (tenant) seeded by :func:`seed_city`.
    district_code : str
        One of the six district codes.
    include_closed : bool, default False
        Keep the segments closed for roadworks (``condition == "closed"``); by default they
        are left out, as a route must avoid them.

    Returns
    -------
    networkx.Graph
        Edges with the attributes :mod:`sscity.mobility.routing` uses (``edge_id``, ``u``,
        ``v``, ``kind``, ``name``, ``length_m``, ``rise_m``, ``slope_percent``,
        ``cross_slope_percent``, ``curb_height_cm``, ``width_m``, ``surface``, ``steps``,
        ``condition``, ``synthetic``, ``district_code``, ``coords``); nodes with ``lon``,
        ``lat`` (the segment ends) and ``elevation_m``. Empty if nothing is published.

    Raises
    ------
    ValueError
        Unknown district code (bilingual message listing the valid ones).
    """
    import networkx as nx

    code = _district_code(district_code)
    segments = client.query_all(type="SidewalkSegment", q=f'districtCode=="{code}"', key_values=True)
    graph = nx.Graph(name=f"neighbourhood {code} from the platform (SYNTHETIC)", district_code=code,
                     synthetic=True)
    ends = {}
    for e in segments:
        coords = e["location"]["coordinates"]
        ends.setdefault(e["startNode"], (coords[0], e["startElevationM"]))
        ends.setdefault(e["endNode"], (coords[-1], e["endElevationM"]))
    for node in sorted(ends):
        (lon, lat, *_), elevation = ends[node]
        graph.add_node(node, lon=lon, lat=lat, elevation_m=elevation, district_code=code, synthetic=True)
    for e in sorted(segments, key=lambda entity: entity["id"]):
        if e.get("condition") == "closed" and not include_closed:
            continue
        attributes = {attr: e[key] for key, attr in _SEGMENT_FIELDS.items()}
        attributes.update(edge_id=e["id"].rsplit(":", 1)[-1], synthetic=True, district_code=code,
                          coords=[list(p) for p in e["location"]["coordinates"]])
        graph.add_edge(e["startNode"], e["endNode"], **attributes)
    return graph


def district_places(client, district_code: str, category: str | None = None) -> pd.DataFrame:
    """A district's neighbourhood places (clinic, community centre, bus stops, supermarket) on the platform.

    Parameters
    ----------
    client : sscity.platform.Client
    district_code : str
        One of the six district codes.
    category : str, optional
        Only this category (``"clinic"``, ``"community_centre"``, ``"bus_stop"``, ``"supermarket"``).

    Returns
    -------
    DataFrame
        ``facility_id``, ``entity_id``, ``name``, ``category``, ``node`` (the network node),
        ``lon``, ``lat``, sorted by ``category`` and ``facility_id``.
    """
    code = _district_code(district_code)
    if category is not None and category not in _PLACE_KINDS:
        raise ValueError(f"Unknown category {category!r}; use one of: {', '.join(_PLACE_KINDS)}. "
                         f"/ 種別 {category!r} はありません。次のいずれかを使ってください："
                         f"{', '.join(_PLACE_KINDS)}。")
    q = f'districtCode=="{code}"' + (f';category=="{category}"' if category else "")
    rows = []
    for e in client.query_all(type="PublicFacility", q=q, key_values=True):
        lon, lat = e["location"]["coordinates"][:2]
        rows.append({"facility_id": e["id"].rsplit(":", 1)[-1], "entity_id": e["id"], "name": e.get("name"),
                     "category": e.get("category"), "node": e.get("nodeId"), "lon": lon, "lat": lat})
    columns = ["facility_id", "entity_id", "name", "category", "node", "lon", "lat"]
    return pd.DataFrame(rows, columns=columns).sort_values(["category", "facility_id"], ignore_index=True)


# --------------------------------------------------------------------------- seeding


@dataclass
class SeedSummary:
    """What :func:`seed_city` wrote.

    Attributes
    ----------
    tenant : str
        The tenant seeded.
    counts : dict
        Entities of each type in the tenant after seeding.
    suppressed : list of str
        District codes whose survey cell had fewer than ``k`` respondents (not published).
    k : int
        The small-cell threshold used.
    gateway : dict
        The gateway's counters (``received``, ``stored``, refusals by reason, ...).
    unpackable : int
        Readings that could not be framed (not sent).
    day : str
        The campus-sensor day replayed (JST).
    """

    tenant: str
    counts: dict = field(default_factory=dict)
    suppressed: list = field(default_factory=list)
    k: int = DEFAULT_K
    gateway: dict = field(default_factory=dict)
    unpackable: int = 0
    day: str = DEFAULT_DAY

    def lines(self) -> list[str]:
        """Human-readable lines (English / Japanese) for the command line."""
        out = [f"Seeded tenant {self.tenant!r} with the SYNTHETIC city / "
               f"テナント {self.tenant!r} に合成データの都市を投入しました:"]
        out += [f"  {kind}: {n}" for kind, n in sorted(self.counts.items())]
        shown = ", ".join(self.suppressed) or "none / なし"
        out.append(f"  survey cells with fewer than {self.k} respondents, not published / "
                   f"回答者 {self.k} 人未満で非公表のセル: {shown}")
        out.append(f"  edge gateway ({self.day} JST): {self.gateway.get('received', 0)} frames received, "
                   f"{self.gateway.get('stored', 0)} stored, {self.gateway.get('dead_lettered', 0)} "
                   f"dead-lettered / ゲートウェイ: 受信・保存・デッドレターの件数")
        return out


def _tenant_client(client, tenant: str | None):
    from sscity.platform import Client

    if client is None:
        return Client(tenant=tenant or "city")
    return client if tenant is None else client.for_tenant(tenant)


def _reachable(client) -> None:
    from sscity.platform import BrokerError

    try:
        client.types()
    except BrokerError as err:
        if err.status is not None:  # it answered (e.g. a tenant that does not exist yet)
            return
        raise RuntimeError(
            f"Cannot seed the city: the broker at {client.url} did not answer ({err.title}: {err.detail}). "
            "Start one with `sscity platform serve`, fix --url / SSCITY_BROKER_URL, or leave them out for "
            f"the embedded broker. / 都市のデータを投入できません。{client.url} のブローカーが応答しません。"
            "`sscity platform serve` で起動するか、--url・SSCITY_BROKER_URL を直すか、指定せずに"
            "組み込みのブローカーを使ってください。") from None


def _delete_quietly(client, entity_ids: list[str]) -> None:
    """Delete these entities (and their history) where they exist; absent ones are fine."""
    from sscity.platform import BrokerError

    try:
        client.batch_delete(entity_ids)  # ids that do not exist come back as errors: ignored
    except BrokerError as err:
        # 404: the tenant does not exist yet; some brokers answer 400 when no id exists at all
        if err.status is None:
            raise


def _neighbourhood_ids(client) -> list[str]:
    """Ids of every SidewalkSegment and neighbourhood place in the tenant (none if it does not exist)."""
    from sscity.platform import BrokerError

    try:
        return ([e["id"] for e in client.query_all(type="SidewalkSegment", attrs=["districtCode"])]
                + [e["id"] for e in client.query_all(type="PublicFacility", q="nodeId", attrs=["nodeId"])])
    except BrokerError as err:
        if err.status is None:
            raise
        return []  # the tenant does not exist yet


def seed_city(client=None, *, tenant: str | None = None, day: str = DEFAULT_DAY, k: int = DEFAULT_K,
              wave: int = 2019, progress: bool = True, sensors: bool = True,
              neighbourhood_seed: int = NEIGHBOURHOOD_SEED) -> SeedSummary:
    """Seed a platform tenant with the whole SYNTHETIC city, each module's output as input.

    Parameters
    ----------
    client : sscity.platform.Client, optional
        The platform (default ``Client(tenant=tenant)``: the embedded broker, or
        ``SSCITY_BROKER_URL``).
    tenant : str, optional
        The tenant to seed. Default: the ``client``'s own tenant, or ``"city"`` (module 02's
        city tenant) when no client is given. A client of another tenant is re-made for
        ``tenant``.
    day : str, default ``"2025-06-19"``
        The day (JST) of campus-sensor readings replayed through the edge gateway.
    k : int, default 10
        Small-cell threshold of the survey aggregates.
    wave : int, default 2019
        Survey wave.
    progress : bool, default True
        Print one line per step.
    sensors : bool, default True
        Replay the campus-sensor day through the edge gateway (about 3 s). ``False`` skips it
        (the capstone needs the survey, the facilities and the neighbourhoods only); sensor
        entities already in the tenant are then left as they are.
    neighbourhood_seed : int, default ``NEIGHBOURHOOD_SEED``
        Seed of the six SYNTHETIC neighbourhood networks
        (:func:`sscity.data.neighbourhoods.make_neighbourhood`).

    Returns
    -------
    SeedSummary
        Counts per entity type, what was suppressed and the gateway's counters.

    Raises
    ------
    RuntimeError
        The broker cannot be reached (bilingual message); nothing is written.
    ValueError
        Bad ``k`` or ``day``, or a day without readings (bilingual message); nothing is written.

    Notes
    -----
    The entities :func:`seed_city` writes are deleted first (history included), so the
    tenant is briefly without them: seed a tenant nobody is reading from at that moment.
    Every ``SidewalkSegment`` of the tenant and every neighbourhood place (a
    ``PublicFacility`` with ``nodeId``) is deleted too, so a network seeded with another
    ``neighbourhood_seed`` leaves no segment behind. Other entities of the tenant are left
    alone.
    """
    from sscity.sensing.gateway import Gateway

    k = _check_k(k)
    _day_window(day)
    client = _tenant_client(client, tenant)
    _reachable(client)

    def say(text: str) -> None:
        if progress:
            print(text, flush=True)

    from sscity.data.neighbourhoods import make_neighbourhood
    from sscity.data.tsukuba import BY_CODE
    from sscity.sensing.gateway import ENTITY_TYPES

    table, suppressed = district_wellbeing(k=k, wave=wave)
    if sensors:
        messages, locations, unpackable = campus_day_messages(day)  # a day without data: nothing written
    else:
        messages, locations, unpackable = [], {}, 0
    facilities, crowding = facility_entities(), crowding_entities()
    networks = [make_neighbourhood(code, neighbourhood_seed) for code in BY_CODE]
    segments = [e for g in networks for e in sidewalk_entities(g)]
    places = [e for g in networks for e in place_entities(g)]
    # Delete what an earlier seeding wrote, so that seeding again neither doubles the temporal
    # history nor leaves a cell published that a larger k now suppresses.
    _delete_quietly(client, [f"urn:ngsi-ld:DistrictWellbeing:{wave}:{code}" for code in BY_CODE]
                    + [f"urn:ngsi-ld:{kind}:{number}" for kind in ENTITY_TYPES for number in locations]
                    + [e["id"] for e in facilities + crowding]
                    + _neighbourhood_ids(client))
    client.batch_upsert(wellbeing_entities(table, wave)).raise_for_errors()
    say(f"01 survey: {len(table)} district aggregates published, {len(suppressed)} suppressed "
        f"/ 調査: 地区の集計 {len(table)} 件を公表、{len(suppressed)} 件を秘匿")

    gateway = Gateway(client, stations=locations)
    if sensors:
        gateway.handle_many(messages)
        say(f"03 edge gateway: {gateway.stats['stored']} of {len(messages)} frames stored "
            f"/ ゲートウェイ: {len(messages)} フレーム中 {gateway.stats['stored']} を保存")

    client.batch_upsert(facilities).raise_for_errors()
    client.batch_upsert(crowding).raise_for_errors()
    say("02 city data: facilities and crowding / 施設と混雑")

    client.batch_upsert(segments + places).raise_for_errors()
    say(f"neighbourhoods: {len(segments)} sidewalk segments and {len(places)} places in 6 districts "
        f"/ 近隣: 6地区の歩道区間 {len(segments)} 件と施設 {len(places)} 件")

    kinds = ("DistrictWellbeing", "AirQualityObserved", "NoiseLevelObserved", "CrowdFlowObserved",
             "PublicFacility", "SidewalkSegment")
    counts = {kind: client.count(type=kind) for kind in kinds}
    return SeedSummary(tenant=client.tenant, counts=counts, suppressed=suppressed, k=k,
                       gateway=dict(gateway.stats), unpackable=unpackable, day=day)
