"""Accessible routing on a pedestrian network: who can get where, and who is left behind.

The network is a ``networkx.Graph`` whose edges carry what matters to people on wheels:
running slope (%), cross slope (%), curb height (cm), effective width (m), surface, and
whether the edge is a flight of stairs or an elevator. :func:`load_sidewalks` reads the
course's SYNTHETIC ``tsukuba-sidewalks`` dataset; any graph with the same edge attributes
works.

An :class:`AccessProfile` says which edges a kind of traveller can use. Three are built in
(``PROFILES``); the thresholds and where they come from:

================  =========  ===========  ======  =========  ==========  ====================
profile           slope      cross slope  curb    width      stairs      surfaces avoided
================  =========  ===========  ======  =========  ==========  ====================
walking           any        any          any     any        yes         none
manual_wheelchair <= 8.33 %  <= 2 %       <= 2 cm >= 0.9 m   no          gravel, wood chip
qolo              <= 10 %    <= 3 %       <= 3 cm >= 0.9 m   no          gravel, wood chip
================  =========  ===========  ======  =========  ==========  ====================

- 8.33 % (1:12) is the Japanese barrier-free limit for ramps (and the ADA's); Japanese
  sidewalks aim at <= 5 % (8 % where unavoidable) -- a self-propelling wheelchair user
  is taken to manage the building limit, not more.
- 2 % cross slope and 2 cm curbs are the Japanese sidewalk standards (cross slope <= 1 %,
  2 % where unavoidable; a 2 cm step at crossings, kept for white-cane users).
- 0.9 m is the minimum barrier-free passage beside stairs (ADA: 915 mm).
- Qolo (*assumed* limits, none is published): 10 % because a standing rider braking at the
  1.5 m/s^2 drive limit facing down a 10 % slope keeps a tip-over safety factor of about 1.2
  (:func:`sscity.mobility.stability.max_safe_deceleration` gives 1.85 m/s^2); 3 % cross slope
  and 3 cm curbs because its powered wheels (radius 0.152 m) cope with a little more than a
  manual chair's small front casters; 0.9 m because its capsule footprint is 0.8 m wide.

Elevators are usable by everybody. Routes minimise length (m).

Run ``python -m sscity.mobility.routing`` to compare routes from the station to the campus.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import pandas as pd

__all__ = [
    "PROFILES",
    "AccessProfile",
    "NoRouteError",
    "Route",
    "accessible_route",
    "accessible_subgraph",
    "barrier_table",
    "compare_routes",
    "edge_barriers",
    "find_node",
    "load_sidewalks",
    "plot_route_map",
    "reachability",
    "shortest_route",
    "sidewalks_gdf",
]


@dataclass(frozen=True)
class AccessProfile:
    """Which edges a kind of traveller can use. ``None`` means no limit.

    Parameters
    ----------
    name : str
        Short id, e.g. ``"manual_wheelchair"``.
    label : str
        Human-readable name (English / Japanese) for tables and plots.
    max_slope_percent, max_cross_slope_percent : float or None
    max_curb_cm : float or None
        Highest level change (curb, step) the traveller can cross.
    min_width_m : float
        Narrowest effective width the traveller fits through.
    stairs : bool
        Can use stairs.
    avoid_surfaces : tuple of str
        Surfaces the traveller cannot use (e.g. loose gravel).
    """

    name: str
    label: str
    max_slope_percent: float | None = None
    max_cross_slope_percent: float | None = None
    max_curb_cm: float | None = None
    min_width_m: float = 0.0
    stairs: bool = True
    avoid_surfaces: tuple[str, ...] = ()
    note: str = ""


PROFILES: dict[str, AccessProfile] = {
    "walking": AccessProfile("walking", "walking / 歩行者", note="no limits: stairs, any slope"),
    "manual_wheelchair": AccessProfile(
        "manual_wheelchair",
        "manual wheelchair / 手動車いす",
        max_slope_percent=8.33,
        max_cross_slope_percent=2.0,
        max_curb_cm=2.0,
        min_width_m=0.9,
        stairs=False,
        avoid_surfaces=("gravel", "wood_chip"),
        note="Japanese barrier-free ramp limit 1:12; sidewalk cross slope 2 %; 2 cm curb; 0.9 m",
    ),
    "qolo": AccessProfile(
        "qolo",
        "Qolo (standing mobility) / Qolo",
        max_slope_percent=10.0,
        max_cross_slope_percent=3.0,
        max_curb_cm=3.0,
        min_width_m=0.9,
        stairs=False,
        avoid_surfaces=("gravel", "wood_chip"),
        note="assumed limits: tip-over margin standing at 10 %, 3 cm curb, 0.8 m footprint",
    ),
}


class NoRouteError(nx.NetworkXNoPath):
    """No route exists for a profile; the message names the barriers that block it."""


def _profile(profile: str | AccessProfile) -> AccessProfile:
    if isinstance(profile, AccessProfile):
        return profile
    try:
        return PROFILES[profile]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown profile {profile!r}; choose one of {sorted(PROFILES)} or pass an AccessProfile."
        ) from None


# --- the network ----------------------------------------------------------------------------------


def load_sidewalks(folder: str | Path | None = None) -> nx.Graph:
    """Read the ``tsukuba-sidewalks`` dataset into an undirected ``networkx.Graph``.

    Nodes carry ``lon``, ``lat``, ``name``, ``kind``, ``level``, ``elevation_m``; edges carry
    every column of ``edges.geojson`` (``edge_id``, ``u``, ``v``, ``kind``, ``length_m``, ``slope_percent``,
    ``cross_slope_percent``, ``curb_height_cm``, ``width_m``, ``surface``, ``steps``, ...)
    and ``coords`` (a list of [lon, lat]).

    Parameters
    ----------
    folder : path, optional
        A folder holding ``nodes.geojson`` and ``edges.geojson``; default the course's
        dataset (found through :func:`sscity.data.dataset_path`).
    """
    if folder is None:
        from sscity.data import dataset_path

        folder = dataset_path("tsukuba-sidewalks")
    folder = Path(folder)
    nodes = json.loads((folder / "nodes.geojson").read_text(encoding="utf-8"))
    edges = json.loads((folder / "edges.geojson").read_text(encoding="utf-8"))
    graph = nx.Graph(name="tsukuba-sidewalks (SYNTHETIC)")
    for feature in nodes["features"]:
        props = dict(feature["properties"])
        lon, lat = feature["geometry"]["coordinates"]
        graph.add_node(props.pop("node_id"), lon=lon, lat=lat, **props)
    for feature in edges["features"]:
        props = dict(feature["properties"])
        u, v = props["u"], props["v"]  # kept as attributes too: rise_m is measured from u to v
        if u not in graph or v not in graph:
            raise ValueError(f"Edge {props.get('edge_id')} refers to a missing node ({u}, {v}).")
        graph.add_edge(u, v, coords=feature["geometry"]["coordinates"], **props)
    return graph


def sidewalks_gdf(graph: nx.Graph):
    """``(nodes, edges)`` as GeoDataFrames (EPSG:4326) for plotting and tables."""
    import geopandas as gpd
    from shapely.geometry import LineString, Point

    nodes = gpd.GeoDataFrame(
        [
            {"node_id": n, **{k: v for k, v in d.items() if k not in ("lon", "lat")}}
            for n, d in graph.nodes(data=True)
        ],
        geometry=[Point(d["lon"], d["lat"]) for _, d in graph.nodes(data=True)],
        crs="EPSG:4326",
    )
    rows, geometry = [], []
    for u, v, d in graph.edges(data=True):
        rows.append({"u": u, "v": v, **{k: val for k, val in d.items() if k != "coords"}})
        geometry.append(LineString(d["coords"]))
    return nodes, gpd.GeoDataFrame(rows, geometry=geometry, crs="EPSG:4326")


def find_node(graph: nx.Graph, name: str) -> str:
    """The id of the node called ``name``, or whose name contains it (case-insensitive); must be unique."""
    exact = [n for n, d in graph.nodes(data=True) if name.lower() == str(d.get("name", "")).lower()]
    hits = exact or [n for n, d in graph.nodes(data=True) if name.lower() in str(d.get("name", "")).lower()]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise KeyError(f"No node named like {name!r}. Try part of a name such as 'Tsukuba Station'.")
    names = sorted({graph.nodes[n]["name"] for n in hits})
    raise KeyError(
        f"{len(hits)} nodes match {name!r} ({', '.join(names[:5])}...); be more specific or use a node id."
    )


# --- barriers -------------------------------------------------------------------------------------


def edge_barriers(attributes: dict, profile: str | AccessProfile) -> list[str]:
    """Reasons why ``profile`` cannot use an edge with these ``attributes`` (empty = usable).

    Examples
    --------
    >>> edge_barriers({"kind": "stairs", "steps": 12, "slope_percent": 53.0}, "manual_wheelchair")
    ['stairs (12 steps)']
    >>> edge_barriers({"kind": "sidewalk", "slope_percent": 9.0, "curb_height_cm": 5.0}, "qolo")
    ['curb 5.0 cm > 3 cm']
    """
    p = _profile(profile)
    kind = attributes.get("kind")
    reasons = []
    if kind == "stairs":
        if not p.stairs:
            reasons.append(f"stairs ({attributes.get('steps', '?')} steps)")
        return reasons
    if kind == "elevator":
        return reasons
    slope = attributes.get("slope_percent", 0.0)
    if p.max_slope_percent is not None and slope > p.max_slope_percent:
        reasons.append(f"slope {slope:.1f} % > {p.max_slope_percent:g} %")
    cross = attributes.get("cross_slope_percent", 0.0)
    if p.max_cross_slope_percent is not None and cross > p.max_cross_slope_percent:
        reasons.append(f"cross slope {cross:.1f} % > {p.max_cross_slope_percent:g} %")
    curb = attributes.get("curb_height_cm", 0.0)
    if p.max_curb_cm is not None and curb > p.max_curb_cm:
        reasons.append(f"curb {curb:.1f} cm > {p.max_curb_cm:g} cm")
    width = attributes.get("width_m", float("inf"))
    if width < p.min_width_m:
        reasons.append(f"width {width:.1f} m < {p.min_width_m:g} m")
    if attributes.get("surface") in p.avoid_surfaces:
        reasons.append(f"surface {attributes['surface']}")
    return reasons


def accessible_subgraph(graph: nx.Graph, profile: str | AccessProfile) -> nx.Graph:
    """A read-only view of ``graph`` with only the edges ``profile`` can use."""
    p = _profile(profile)
    return nx.subgraph_view(graph, filter_edge=lambda u, v: not edge_barriers(graph.edges[u, v], p))


def barrier_table(graph: nx.Graph, profiles=tuple(PROFILES)) -> pd.DataFrame:
    """Which edges exclude which users: one row per edge that excludes at least one profile.

    Columns: ``edge_id``, ``u``, ``v``, ``kind``, ``name``, ``length_m``, then one column per
    profile holding the reasons (``""`` if the profile can use the edge), and ``excludes``
    (the profiles left out, comma-separated).
    """
    resolved = [_profile(p) for p in profiles]
    rows = []
    for u, v, d in graph.edges(data=True):
        reasons = {p.name: "; ".join(edge_barriers(d, p)) for p in resolved}
        if any(reasons.values()):
            rows.append(
                {
                    "edge_id": d.get("edge_id"),
                    "u": d.get("u", u),
                    "v": d.get("v", v),
                    "kind": d.get("kind"),
                    "name": d.get("name"),
                    "length_m": d.get("length_m"),
                    **reasons,
                    "excludes": ", ".join(name for name, why in reasons.items() if why),
                }
            )
    columns = ["edge_id", "u", "v", "kind", "name", "length_m", *[p.name for p in resolved], "excludes"]
    return pd.DataFrame(rows, columns=columns).sort_values("edge_id", ignore_index=True)


# --- routes ---------------------------------------------------------------------------------------


@dataclass
class Route:
    """A route: its nodes, edges and summary figures."""

    profile: str
    nodes: list[str]
    edge_ids: list[str]
    length_m: float
    max_slope_percent: float
    climb_m: float
    kinds: dict = field(default_factory=dict)

    @property
    def uses_stairs(self) -> bool:
        return self.kinds.get("stairs", 0) > 0

    def coords(self, graph: nx.Graph) -> list[tuple[float, float]]:
        """The route's [lon, lat] vertices, for plotting."""
        return [(graph.nodes[n]["lon"], graph.nodes[n]["lat"]) for n in self.nodes]


def _route(graph: nx.Graph, nodes: list[str], profile: str) -> Route:
    edges = [graph.edges[u, v] for u, v in zip(nodes[:-1], nodes[1:], strict=True)]
    climb = 0.0
    for (u, v), e in zip(zip(nodes[:-1], nodes[1:], strict=True), edges, strict=True):
        rise = graph.nodes[v]["elevation_m"] - graph.nodes[u]["elevation_m"]
        if e.get("kind") != "elevator":
            climb += max(rise, 0.0)
    return Route(
        profile,
        list(nodes),
        [e.get("edge_id") for e in edges],
        round(float(sum(e["length_m"] for e in edges)), 1),
        float(
            max(
                (e.get("slope_percent", 0.0) for e in edges if e.get("kind") not in ("stairs", "elevator")),
                default=0.0,
            )
        ),
        round(climb, 2),
        dict(Counter(e.get("kind") for e in edges)),
    )


def _check_nodes(graph: nx.Graph, *nodes: str) -> None:
    for node in nodes:
        if node not in graph:
            raise KeyError(f"Node {node!r} is not in the network; find ids with find_node(graph, 'name').")


def shortest_route(graph: nx.Graph, origin: str, destination: str, weight: str = "length_m") -> Route:
    """The shortest route ignoring every barrier (what a walking person can do)."""
    _check_nodes(graph, origin, destination)
    return _route(graph, nx.shortest_path(graph, origin, destination, weight=weight), "unrestricted")


def accessible_route(
    graph: nx.Graph,
    origin: str,
    destination: str,
    profile: str | AccessProfile = "qolo",
    weight: str = "length_m",
) -> Route:
    """The shortest route that ``profile`` can use.

    Raises
    ------
    NoRouteError
        If no such route exists; the message lists the barriers on the route that crosses
        the fewest of them -- the ones that would have to be fixed.
    """
    p = _profile(profile)
    _check_nodes(graph, origin, destination)
    view = accessible_subgraph(graph, p)
    try:
        nodes = nx.shortest_path(view, origin, destination, weight=weight)
    except nx.NetworkXNoPath:
        # Explain with the route that crosses the fewest barriers (then the shortest such).
        def penalised(u, v, d):
            return d.get(weight, 0.0) + (1e7 if edge_barriers(d, p) else 0.0)

        blocked = _route(
            graph, nx.shortest_path(graph, origin, destination, weight=penalised), "unrestricted"
        )
        reasons = []
        for u, v in zip(blocked.nodes[:-1], blocked.nodes[1:], strict=True):
            why = edge_barriers(graph.edges[u, v], p)
            if why:
                reasons.append(
                    f"{graph.edges[u, v].get('edge_id')} ({graph.edges[u, v].get('name')}): {', '.join(why)}"
                )
        raise NoRouteError(
            f"No route from {origin} to {destination} for {p.name}; the fewest barriers in the way: "
            + ("; ".join(reasons) or "none (the two places are not connected at all)")
        ) from None
    return _route(graph, nodes, p.name)


def compare_routes(graph: nx.Graph, origin: str, destination: str, profiles=tuple(PROFILES)) -> pd.DataFrame:
    """Who is left behind between two places: one row per profile.

    Columns: ``profile``, ``reachable``, ``length_m``, ``detour_factor`` (length over the
    unrestricted shortest route), ``max_slope_percent``, ``climb_m``, ``stairs``,
    ``elevators``, ``why_not`` (the barriers, if unreachable).
    """
    base = shortest_route(graph, origin, destination)
    rows = []
    for name in profiles:
        p = _profile(name)
        try:
            r = accessible_route(graph, origin, destination, p)
        except NoRouteError as error:
            rows.append(
                {
                    "profile": p.name,
                    "reachable": False,
                    "length_m": float("nan"),
                    "detour_factor": float("nan"),
                    "max_slope_percent": float("nan"),
                    "climb_m": float("nan"),
                    "stairs": 0,
                    "elevators": 0,
                    "why_not": str(error),
                }
            )
            continue
        rows.append(
            {
                "profile": p.name,
                "reachable": True,
                "length_m": r.length_m,
                "detour_factor": r.length_m / base.length_m if base.length_m else 1.0,
                "max_slope_percent": r.max_slope_percent,
                "climb_m": r.climb_m,
                "stairs": r.kinds.get("stairs", 0),
                "elevators": r.kinds.get("elevator", 0),
                "why_not": "",
            }
        )
    return pd.DataFrame(rows)


def reachability(graph: nx.Graph, origin: str, profiles=tuple(PROFILES)) -> pd.DataFrame:
    """Share of the network's places each profile can reach from ``origin``.

    Columns: ``profile``, ``reachable_nodes``, ``share`` (of all nodes), ``unreachable``
    (names of the places that cannot be reached, sorted).
    """
    _check_nodes(graph, origin)
    rows = []
    for name in profiles:
        p = _profile(name)
        reached = nx.node_connected_component(
            accessible_subgraph(graph, p).to_undirected(as_view=True), origin
        )
        missing = sorted({graph.nodes[n].get("name", n) for n in graph if n not in reached})
        rows.append(
            {
                "profile": p.name,
                "reachable_nodes": len(reached),
                "share": len(reached) / len(graph),
                "unreachable": missing,
            }
        )
    return pd.DataFrame(rows)


# --- a map of routes -------------------------------------------------------------------------------

#: Bilingual legend labels of the barrier kinds :func:`plot_route_map` marks, and their markers.
BARRIER_STYLE = {
    "stairs": ("x", "barrier: stairs / 障壁：階段"),
    "deck": ("^", "barrier: steep deck approach / 障壁：急なデッキの取り付け部"),
    "ramp": ("v", "barrier: gravel ramp / 障壁：砂利のスロープ"),
    "crossing": ("s", "barrier: high curb at a crossing / 障壁：横断歩道の高い段差"),
    "lane": ("D", "barrier: narrow or cross-sloped lane / 障壁：狭い・横断勾配のある路地"),
    "sidewalk": ("d", "barrier: cross-sloped sidewalk / 障壁：横断勾配のある歩道"),
}
ROUTE_STYLES = (("-", "#000000", 4.5), ("--", "#0072B2", 2.5), (":", "#D55E00", 2.5),
                ("-.", "#009E73", 2.5), ((0, (5, 1, 1, 1)), "#CC79A7", 2.5))
#: How far (points) a barrier off the drawn routes is set from the route it branches from.
OFF_ROUTE_PT = 14.0


def local_metres(graph: nx.Graph, origin: str):
    """A function ``(lon, lat) -> (east_m, north_m)`` around the node ``origin``: an
    equirectangular projection, fine over a few kilometres."""
    import math

    import numpy as np

    lon0, lat0 = graph.nodes[origin]["lon"], graph.nodes[origin]["lat"]
    scale = 111_320 * math.cos(math.radians(lat0))

    def to_metres(lon, lat):
        return (np.asarray(lon, dtype=float) - lon0) * scale, (np.asarray(lat, dtype=float) - lat0) * 110_540

    return to_metres


def _nearest_on(segments, point, towards):
    """The point of the route ``segments`` nearest ``point``, the unit normal of that segment
    on the side of ``towards`` (where the barrier leads), and the distance (same units)."""
    import numpy as np

    best = None
    for a, b in segments:
        ab = b - a
        t = float(np.clip((point - a) @ ab / max(ab @ ab, 1e-12), 0.0, 1.0))
        q = a + t * ab
        d = float(np.hypot(*(point - q)))
        if best is None or d < best[2]:
            best = (q, ab, d)
    q, ab, d = best
    normal = np.array([-ab[1], ab[0]]) / (np.hypot(*ab) or 1.0)
    side = towards - q
    if side @ normal < 0:
        normal = -normal
    return q, normal, d


def plot_route_map(graph: nx.Graph, routes: dict, origin: str | None = None, places: dict | None = None,
                   barrier_kinds=("stairs", "deck", "ramp"), ax=None, title: str | None = None):
    """Routes on the network, in metres east and north of ``origin``, with the barriers.

    Parameters
    ----------
    graph : networkx.Graph
        The network (:func:`load_sidewalks`); every link is drawn as a thin grey line.
    routes : dict
        ``{legend label: Route}`` in drawing order; the first is drawn widest (solid black),
        so later ones stay visible on top of it. The label gets the route's length in km.
    origin : str, optional
        Node at (0, 0); default: the first route's first node.
    places : dict, optional
        ``{node: label}`` of places to mark and name (say them in English and Japanese).
    barrier_kinds : sequence of str
        Which kinds of barrier edges (:func:`barrier_table`) to mark, each with its own marker
        (:data:`BARRIER_STYLE`). A barrier that no drawn route uses -- the short stairs that
        lead down from the deck -- is set :data:`OFF_ROUTE_PT` points beside the route it
        branches from, towards where it leads, on a short leader line: a marker on top of a
        route would read as the route taking the stairs. A barrier a route does use is marked
        where it is.
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib Axes
        The legend sits outside the axes, on the right, so it covers no part of the map.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.transforms import offset_copy

    from sscity.plotting import PALETTE, use_course_style

    use_course_style()
    if not routes:
        raise ValueError("plot_route_map needs at least one route: {label: Route}.")
    routes = dict(routes)
    first = next(iter(routes.values()))
    to_metres = local_metres(graph, origin or first.nodes[0])
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 9))
    for _, _, data in graph.edges(data=True):
        ax.plot(*to_metres(*zip(*data["coords"], strict=True)), color="#bbbbbb", linewidth=1, zorder=1)
    on_route_nodes, on_route_edges = set(), set()
    for k, (label, route) in enumerate(routes.items()):
        line, colour, width = ROUTE_STYLES[k % len(ROUTE_STYLES)]
        ax.plot(*to_metres(*zip(*route.coords(graph), strict=True)), linestyle=line, color=colour,
                linewidth=width, zorder=2, label=f"{label}: {route.length_m / 1000:.2f} km", gid="route")
        on_route_nodes.update(route.nodes)
        on_route_edges.update(frozenset(e) for e in zip(route.nodes[:-1], route.nodes[1:], strict=True))
    ax.set_aspect("equal")
    # Points per metre of the finished map (aspect equal, the whole network in view), to
    # tell whether a barrier would touch a route line.
    nodes_xy = np.array([to_metres(d["lon"], d["lat"]) for _, d in graph.nodes(data=True)], dtype=float)
    span = np.ptp(nodes_xy, axis=0) * 1.1 + 1e-9
    box = ax.get_position()
    width_in, height_in = ax.figure.get_size_inches()
    pt_per_m = min(box.width * width_in * 72 / span[0], box.height * height_in * 72 / span[1])
    segments = []
    for route in routes.values():
        xy = np.column_stack(to_metres(*zip(*route.coords(graph), strict=True)))
        segments += list(zip(xy[:-1], xy[1:], strict=True))
    barriers = barrier_table(graph)
    for kind in barrier_kinds:
        marker, label = BARRIER_STYLE.get(kind, ("o", f"barrier: {kind} / 障壁：{kind}"))
        rows = barriers[barriers["kind"] == kind]
        for n, (u, v) in enumerate(zip(rows["u"], rows["v"], strict=True)):
            style = dict(marker=marker, color=PALETTE["reddish_purple"], linestyle="none", markersize=9,
                         markeredgewidth=2, zorder=3, label=label if n == 0 else None, gid=f"barrier:{kind}")
            edge_xy = np.column_stack(to_metres(*zip(*graph.edges[u, v]["coords"], strict=True)))
            anchor = next((node for node in (u, v) if node in on_route_nodes), None)
            if anchor is None:
                where = edge_xy.mean(axis=0)
                towards = where
            else:
                where, towards = (np.array(to_metres(graph.nodes[node]["lon"], graph.nodes[node]["lat"]))
                                  for node in (anchor, v if anchor == u else u))
            nearest, normal, gap_m = _nearest_on(segments, where, towards)
            if frozenset((u, v)) in on_route_edges or gap_m * pt_per_m >= OFF_ROUTE_PT:
                ax.plot(*edge_xy.mean(axis=0), **style)  # taken by a route, or clear of every route
                continue
            # Beside the route it branches from (or passes close to), on a short leader line.
            dx, dy = OFF_ROUTE_PT * normal
            beside = offset_copy(ax.transData, fig=ax.figure, x=dx, y=dy, units="points")
            ax.annotate("", xy=tuple(where), xytext=tuple(nearest), textcoords=beside, zorder=3,
                        arrowprops={"arrowstyle": "-", "color": PALETTE["reddish_purple"], "lw": 1.5,
                                    "shrinkA": 0, "shrinkB": 0})
            ax.plot(*nearest, transform=beside, **style)
    for node, text in (places or {}).items():
        x, y = to_metres(graph.nodes[node]["lon"], graph.nodes[node]["lat"])
        ax.plot(x, y, marker="o", color=PALETTE["black"], markersize=7, zorder=4)
        ax.annotate(text, (x, y), xytext=(6, 4), textcoords="offset points", fontsize=10)
    ax.set_xlabel("metres east / 東へ (m)")
    ax.set_ylabel("metres north / 北へ (m)")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return ax


def main() -> None:
    """Station concourse to the campus, for each profile; then the park's viewpoint."""
    graph = load_sidewalks()
    print(graph, "--", graph.number_of_nodes(), "nodes,", graph.number_of_edges(), "edges")
    station = find_node(graph, "Tsukuba Station")
    campus = find_node(graph, "University of Tsukuba")
    viewpoint = find_node(graph, "Central Park viewpoint")
    with pd.option_context("display.width", 160, "display.max_colwidth", 70):
        print(compare_routes(graph, station, campus).drop(columns="why_not"))
        print(compare_routes(graph, station, viewpoint)[["profile", "reachable", "length_m", "why_not"]])
        print(barrier_table(graph)["excludes"].value_counts())


if __name__ == "__main__":
    main()
