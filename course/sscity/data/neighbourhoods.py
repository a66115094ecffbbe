"""SYNTHETIC, schematic pedestrian networks of six neighbourhoods, one per district of Tsukuba.

The central network (:mod:`sscity.data.sidewalks`) covers Tsukuba Center and the campus.
The capstone asks who can reach the clinic in *each* district, so every district gets a
small neighbourhood around the centroid of its (schematic) polygon
(:func:`sscity.data.tsukuba.district_polygons`): a jittered street grid of about 6x6 to 8x7
junctions, 80-100 m apart, with homes, one clinic, one community centre, one or two bus
stops and one supermarket.

What is real and what is not:

- **real (approximate)**: the *idea* of the places. The centre districts on the Tsukuba
  Express line (Sakura, Yatabe) were built as a planned town with wide, level sidewalks;
  the four peripheral districts are older settlements where many streets have no
  sidewalk at all (people walk in a painted strip beside the traffic), old crossings keep
  5-10 cm curbs, some farm roads are gravel, drainage makes the roadside tilt, and the
  edge of the plateau (台地) makes short steep slopes -- steepest in Tsukuba, at the foot
  of the mountain.
- **SYNTHETIC**: every node, coordinate, elevation, slope, width, curb, surface, name and
  closure. The names (``"Oho clinic / 大穂診療所"``, ...) are invented. Do not use these
  networks to plan a real trip.

Nodes and edges carry the attributes of :func:`sscity.mobility.routing.load_sidewalks`, so
every function of :mod:`sscity.mobility.routing` works on them. In addition every edge has
``condition`` (``"open"``, or ``"closed"`` for roadworks: 1-3 per district) and
``district_code``; every node has ``district_code``. Slopes are computed from the
elevations, as :mod:`sscity.data.sidewalks` does. Closed edges are chosen so that the
network stays connected without them: walking, everybody reaches the clinic.

The same ``(district_code, seed)`` gives the identical graph; another seed gives another
network with the same character.

Example
-------
>>> g = make_neighbourhood("oho")
>>> g.graph["area_type"], g.graph["district_code"]
('periphery', 'oho')
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np

__all__ = ["FACILITY_KINDS", "NEIGHBOURHOOD_SEED", "district_centre", "make_neighbourhood"]

NEIGHBOURHOOD_SEED = 20260601
FACILITY_KINDS = ("clinic", "community_centre", "bus_stop", "supermarket")

_M_PER_DEG_LAT = 110_574.0
# Ground height (m above sea level) at the centre of each neighbourhood (SYNTHETIC, plausible).
_BASE_ELEVATION = {"tsukuba": 38.0, "oho": 24.0, "toyosato": 22.0, "sakura": 27.0, "yatabe": 25.0,
                   "kukizaki": 18.0}
_FACILITY_NAMES = {
    "clinic": ("clinic", "診療所"),
    "community_centre": ("community centre", "交流センター"),
    "bus_stop": ("bus stop", "バス停"),
    "supermarket": ("supermarket", "スーパーマーケット"),
}


def _check_district(district_code):
    from sscity.data.tsukuba import BY_CODE

    if not isinstance(district_code, str) or district_code not in BY_CODE:
        valid = ", ".join(BY_CODE)
        raise ValueError(f"Unknown district code {district_code!r}; use one of: {valid}. "
                         f"/ 地区コード {district_code!r} はありません。"
                         f"次のいずれかを使ってください：{valid}。")
    return BY_CODE[district_code]


def district_centre(district_code: str) -> tuple[float, float]:
    """``(lon, lat)`` of the centroid of the district's schematic polygon (rounded to 6 digits)."""
    from sscity.data.tsukuba import district_polygons

    _check_district(district_code)
    centroid = district_polygons()[district_code].centroid
    return round(float(centroid.x), 6), round(float(centroid.y), 6)


def _choice(rng: np.random.Generator, values, p=None):
    return values[int(rng.choice(len(values), p=p))]


def make_neighbourhood(district_code: str, seed: int = NEIGHBOURHOOD_SEED) -> nx.Graph:
    """The SYNTHETIC pedestrian network of one district's neighbourhood.

    Parameters
    ----------
    district_code : str
        One of ``sscity.data.tsukuba.DISTRICTS`` (``tsukuba``, ``oho``, ``toyosato``,
        ``sakura``, ``yatabe``, ``kukizaki``).
    seed : int, default ``NEIGHBOURHOOD_SEED``
        Seed of the random layout; the same seed gives the identical graph.

    Returns
    -------
    networkx.Graph
        Node ids ``N001``..., edge ids ``E001``...; node attributes ``lon``, ``lat``,
        ``name``, ``kind`` (``home``, ``clinic``, ``community_centre``, ``bus_stop``,
        ``supermarket``), ``level``, ``elevation_m``, ``synthetic``, ``district_code``; edge
        attributes as :func:`sscity.mobility.routing.load_sidewalks` (``edge_id``, ``u``,
        ``v``, ``kind``, ``name``, ``length_m``, ``rise_m``, ``slope_percent``,
        ``cross_slope_percent``, ``curb_height_cm``, ``width_m``, ``surface``, ``steps``,
        ``synthetic``, ``coords``) plus ``condition`` (``"open"``/``"closed"``) and
        ``district_code``. ``graph.graph`` holds ``name``, ``district_code``,
        ``area_type``, ``seed`` and ``synthetic``.

    Raises
    ------
    ValueError
        Unknown district code (bilingual message listing the valid ones).
    """
    district = _check_district(district_code)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0; got {seed!r}. "
                         f"/ seed は 0 以上の整数にしてください。")
    from sscity.data.tsukuba import DISTRICTS

    index = [d.code for d in DISTRICTS].index(district_code)
    rng = np.random.default_rng([int(seed), index])
    centre = district.area_type == "centre"
    lon0, lat0 = district_centre(district_code)
    m_per_deg_lon = 111_320.0 * math.cos(math.radians(lat0))

    ncols, nrows = int(rng.integers(6, 9)), int(rng.integers(6, 8))
    dx, dy = float(rng.uniform(80, 100)), float(rng.uniform(80, 100))
    road_row = int(rng.integers(2, nrows - 2))  # the main road runs between road_row and road_row + 1
    # Edge of the plateau (periphery): a band of steep ground between two columns.
    scarp_col = int(rng.integers(1, ncols - 2)) + 0.5
    scarp_height = float(rng.uniform(6.0, 9.0))
    northward = 0.035 if district_code == "tsukuba" else 0.0  # rising toward Mt Tsukuba

    def ground(x: float, y: float) -> float:
        base = _BASE_ELEVATION[district_code]
        if centre:  # the planned town: almost level
            return base + 0.004 * x + 0.003 * y
        scarp_x = (scarp_col - (ncols - 1) / 2) * dx
        step = 0.5 * (1 + math.tanh((x - scarp_x) / 20.0))
        wobble = 1 + 0.35 * math.sin(y / 140.0 + index)
        return base + scarp_height * wobble * step + northward * y + 0.6 * math.sin(x / 170.0 + y / 210.0)

    # --- nodes: a jittered grid
    nodes = {}
    grid = {}
    for r in range(nrows):
        for c in range(ncols):
            node_id = f"N{len(nodes) + 1:03d}"
            x = (c - (ncols - 1) / 2) * dx + float(rng.uniform(-12, 12))
            y = (r - (nrows - 1) / 2) * dy + float(rng.uniform(-12, 12))
            z = ground(x, y) + float(rng.uniform(-0.15, 0.15))
            nodes[node_id] = {"x": x, "y": y, "z": z, "row": r, "col": c}
            grid[r, c] = node_id

    # --- candidate edges (grid streets), some dropped while the grid stays connected
    pairs = [(grid[r, c], grid[r, c + 1], "h", r, c) for r in range(nrows) for c in range(ncols - 1)]
    pairs += [(grid[r, c], grid[r + 1, c], "v", r, c) for r in range(nrows - 1) for c in range(ncols)]
    skeleton = nx.Graph()
    skeleton.add_nodes_from(nodes)
    skeleton.add_edges_from((u, v) for u, v, *_ in pairs)
    dropped = set()
    for i in rng.permutation(len(pairs)):
        if len(dropped) >= int(0.08 * len(pairs)):
            break
        u, v, direction, r, c = pairs[i]
        on_road = direction == "h" and r in (road_row, road_row + 1)
        if on_road:
            continue
        skeleton.remove_edge(u, v)
        if nx.is_connected(skeleton):
            dropped.add((u, v))
        else:
            skeleton.add_edge(u, v)
    pairs = [p for p in pairs if (p[0], p[1]) not in dropped]

    # --- edge attributes by the character of the district
    edges = []
    for u, v, direction, r, _ in pairs:
        crossing = direction == "v" and r == road_row
        along_road = direction == "h" and r in (road_row, road_row + 1)
        if centre:
            if crossing:
                kind, name = "crossing", "avenue crossing"
                curb = _choice(rng, (0.0, 2.0, 5.0), p=(0.45, 0.5, 0.05))
                width, cross, surface = 4.0, _choice(rng, (0.5, 1.0, 1.5)), "asphalt"
            else:
                kind, name = "sidewalk", ("avenue sidewalk" if along_road else "sidewalk")
                curb = _choice(rng, (0.0, 2.0), p=(0.85, 0.15))
                width = _choice(rng, (2.0, 2.5, 3.0, 3.5))
                cross = _choice(rng, (0.5, 1.0, 1.5, 2.0), p=(0.2, 0.4, 0.3, 0.1))
                surface = _choice(rng, ("interlocking_blocks", "asphalt", "tiles"), p=(0.5, 0.4, 0.1))
        elif crossing:
            kind, name = "crossing", "main road crossing"
            curb = _choice(rng, (0.0, 2.0, 5.0, 7.5, 10.0), p=(0.05, 0.2, 0.35, 0.2, 0.2))
            width, cross, surface = 3.0, _choice(rng, (1.0, 1.5, 2.0)), "asphalt"
        elif along_road:
            kind, name = "sidewalk", "main road sidewalk (old)"
            curb = _choice(rng, (0.0, 2.0, 5.0), p=(0.6, 0.3, 0.1))
            width = _choice(rng, (1.0, 1.2, 1.5, 2.0), p=(0.2, 0.3, 0.3, 0.2))
            cross = _choice(rng, (1.0, 2.0, 3.0, 4.0), p=(0.3, 0.35, 0.25, 0.1))
            surface = _choice(rng, ("asphalt", "interlocking_blocks"), p=(0.7, 0.3))
        else:
            gravel = rng.random() < 0.07
            kind = "lane"
            name = "farm road (gravel)" if gravel else "roadside lane (no sidewalk)"
            curb = _choice(rng, (0.0, 5.0), p=(0.95, 0.05))  # a step at a drainage-ditch cover
            width = _choice(rng, (0.7, 0.9, 1.2, 1.5), p=(0.07, 0.28, 0.4, 0.25))
            cross = _choice(rng, (1.0, 2.0, 3.0, 4.0), p=(0.45, 0.37, 0.12, 0.06))
            surface = "gravel" if gravel else "asphalt"
        a, b = nodes[u], nodes[v]
        length = math.hypot(b["x"] - a["x"], b["y"] - a["y"])
        rise = b["z"] - a["z"]
        edges.append({
            "edge_id": f"E{len(edges) + 1:03d}", "u": u, "v": v, "kind": kind, "name": name,
            "length_m": round(length, 1), "rise_m": round(rise, 2),
            "slope_percent": round(100.0 * abs(rise) / max(length, 0.1), 1),
            "cross_slope_percent": round(float(cross), 1), "curb_height_cm": round(float(curb), 1),
            "width_m": round(float(width), 1), "surface": str(surface), "steps": 0, "synthetic": True,
        })

    # --- facilities: the clinic, bus stops and supermarket by the main road; the rest are homes
    road_nodes = [grid[r, c] for r in (road_row, road_row + 1) for c in range(1, ncols - 1)]
    picks = [road_nodes[i] for i in rng.permutation(len(road_nodes))]
    n_stops = int(rng.integers(1, 3))
    kinds = {picks[0]: "clinic", picks[1]: "supermarket"}
    for i in range(n_stops):
        kinds[picks[2 + i]] = "bus_stop"
    others = [n for n in nodes if n not in kinds]
    kinds[others[int(rng.integers(len(others)))]] = "community_centre"

    # --- roadworks: 1-3 edges closed, each one the network stays connected without
    network = nx.Graph()
    network.add_nodes_from(nodes)
    network.add_edges_from((e["u"], e["v"]) for e in edges)
    closed = set()
    for i in rng.permutation(len(edges)):
        if len(closed) >= int(rng.integers(1, 4)) and closed:
            break
        e = edges[i]
        if e["curb_height_cm"] > 2 or e["cross_slope_percent"] > 2 or e["surface"] == "gravel":
            continue  # roadworks on a street people on wheels use
        network.remove_edge(e["u"], e["v"])
        if nx.is_connected(network):
            closed.add(e["edge_id"])
        else:
            network.add_edge(e["u"], e["v"])

    def lonlat(node: dict) -> tuple[float, float]:
        return (round(lon0 + node["x"] / m_per_deg_lon, 6), round(lat0 + node["y"] / _M_PER_DEG_LAT, 6))

    name_en, name_ja = district.name_en, district.name_ja
    graph = nx.Graph(name=f"neighbourhood {district_code} (SYNTHETIC)", district_code=district_code,
                     area_type=district.area_type, seed=int(seed), synthetic=True)
    stop_number = 0
    for node_id, node in nodes.items():
        kind = kinds.get(node_id, "home")
        if kind == "home":
            name = f"{name_en} home {node_id} / {name_ja} 住宅 {node_id}"
        else:
            en, ja = _FACILITY_NAMES[kind]
            suffix = ""
            if kind == "bus_stop" and n_stops > 1:
                stop_number += 1
                suffix = f" {stop_number}"
            name = f"{name_en} {en}{suffix} / {name_ja}{ja}{suffix}"
        lon, lat = lonlat(node)
        graph.add_node(node_id, lon=lon, lat=lat, name=name, kind=kind, level="street",
                       elevation_m=round(node["z"], 2), synthetic=True, district_code=district_code)
    for e in edges:
        a, b = graph.nodes[e["u"]], graph.nodes[e["v"]]
        graph.add_edge(e["u"], e["v"], **e, condition="closed" if e["edge_id"] in closed else "open",
                       district_code=district_code,
                       coords=[[a["lon"], a["lat"]], [b["lon"], b["lat"]]])
    return graph
