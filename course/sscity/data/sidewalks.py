"""Generator of the SYNTHETIC pedestrian network around Tsukuba Center (``tsukuba-sidewalks``).

What is real and what is not:

- **real (approximate)**: the two anchors -- Tsukuba Station (TX) at about lon 140.1113,
  lat 36.0827, and the central area of the University of Tsukuba at about lon 140.1043,
  lat 36.1045 -- and the *idea* of the place: a car-free pedestrian deck (ペデストリアンデッキ)
  that runs north from the elevated plaza over the Tsukuba Center bus terminal, through
  parks, to the campus, crossing the east-west roads on bridges, with avenues on either
  side; an underground TX concourse reached by stairs and elevators.
- **SYNTHETIC**: every coordinate in between, every elevation, slope, cross slope, curb
  height, width, surface, stair and elevator. The layout is schematic: it has the right
  kind of barriers in plausible places and numbers, not the real ones. Do not use it to
  plan a real trip.

The geometry is built in a local metric frame (x east, y north, metres, origin at the
station) and converted to WGS 84 [lon, lat] at the end. Elevations follow a gentle
synthetic terrain (about 25-27 m above sea level, a mound in the park); the deck rises on
bridges about 5.5 m above the roads; slopes are *computed* from the elevations, so they are
consistent with them.

The numbers are drawn around the Japanese design standards (sources in the facts table of
``solutions/04-mobility-control/README.md``): sidewalks mostly <= 5 % running slope and <= 1-2 %
cross slope, 2 cm curbs at crossings (some older 5 cm ones, some flush), barrier-free ramps
<= 1:12 (8.33 %) -- with a few deliberate exceptions (a 9-10 % deck approach, a 12 % park
ramp, narrow lanes, gravel paths, stairs-only links) so that routing for different users
gives different answers.

``write_sidewalks(folder)`` writes ``nodes.geojson`` and ``edges.geojson`` byte for byte the
same for the same seed (``sscity data build``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

__all__ = ["SIDEWALKS_SEED", "STATION_LONLAT", "CAMPUS_LONLAT", "make_sidewalks", "write_sidewalks"]

SIDEWALKS_SEED = 20240415
STATION_LONLAT = (140.1113, 36.0827)  # Tsukuba Station (TX), approximate, real
CAMPUS_LONLAT = (140.1043, 36.1045)  # University of Tsukuba, central area, approximate, real

_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(STATION_LONLAT[1]))

# Campus anchor in the local frame (m east, m north of the station).
_CAMPUS_XY = (
    (CAMPUS_LONLAT[0] - STATION_LONLAT[0]) * _M_PER_DEG_LON,
    (CAMPUS_LONLAT[1] - STATION_LONLAT[1]) * _M_PER_DEG_LAT,
)
_DECK_START_Y = 60.0
_BRIDGE_YS = (420.0, 820.0, 1220.0, 1620.0, 2020.0)  # east-west roads crossed by the deck
_BRIDGE_CLEARANCE_M = 5.5
_STREET_OFFSETS = {"east": 380.0, "west": -360.0}
_PARK_CENTRE = (-140.0, 250.0)  # "Central Park" mound (schematic place)

NODE_KINDS = (
    "junction",
    "crossing",
    "bridge",
    "connector",
    "plaza",
    "station",
    "bus_terminal",
    "campus",
    "park",
    "viewpoint",
)
EDGE_KINDS = ("deck", "sidewalk", "crossing", "lane", "ramp", "stairs", "elevator", "park_path")


def _ground(x: float, y: float) -> float:
    """Synthetic terrain height (m above sea level): gently rising north, a mound in the park."""
    mound = 4.0 * math.exp(-((x - _PARK_CENTRE[0]) ** 2 + (y - _PARK_CENTRE[1]) ** 2) / (2 * 45.0**2))
    return 25.0 + 0.0008 * y + 0.6 * math.sin(y / 380.0) + 0.3 * math.cos(x / 260.0) + mound


def _spine_x(y: float) -> float:
    """x of the deck at northing y: from the station plaza to the campus, drifting west."""
    s = min(max((y - _DECK_START_Y) / (_CAMPUS_XY[1] - _DECK_START_Y), 0.0), 1.0)
    return _CAMPUS_XY[0] * s**1.15 + 12.0 * math.sin(3.0 * s * math.pi)


class _Network:
    """Accumulates nodes and edges with stable ids (N001..., E001...)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.nodes: list[dict] = []
        self.edges: list[dict] = []
        self._pairs: set[tuple[str, str]] = set()

    def node(
        self, x: float, y: float, z: float | None, kind: str, name: str = "", level: str = "street"
    ) -> str:
        assert kind in NODE_KINDS, kind
        node_id = f"N{len(self.nodes) + 1:03d}"
        self.nodes.append(
            {
                "node_id": node_id,
                "x": float(x),
                "y": float(y),
                "z": float(_ground(x, y) if z is None else z),
                "kind": kind,
                "name": name,
                "level": level,
            }
        )
        return node_id

    def _get(self, node_id: str) -> dict:
        return self.nodes[int(node_id[1:]) - 1]

    def edge(
        self,
        u: str,
        v: str,
        kind: str,
        name: str = "",
        width_m: float = 2.0,
        surface: str = "asphalt",
        cross_slope_percent: float = 1.0,
        curb_height_cm: float = 0.0,
        steps: int = 0,
    ) -> str:
        assert kind in EDGE_KINDS, kind
        pair = tuple(sorted((u, v)))
        assert u != v and pair not in self._pairs, f"duplicate edge {pair}"
        self._pairs.add(pair)
        a, b = self._get(u), self._get(v)
        length = math.hypot(b["x"] - a["x"], b["y"] - a["y"])
        rise = b["z"] - a["z"]
        if kind == "elevator":
            slope = 0.0  # vertical transport: no running slope
        else:
            slope = 100.0 * abs(rise) / max(length, 0.1)
        edge_id = f"E{len(self.edges) + 1:03d}"
        self.edges.append(
            {
                "edge_id": edge_id,
                "u": u,
                "v": v,
                "kind": kind,
                "name": name,
                "length_m": round(length, 1),
                "rise_m": round(rise, 2),
                "slope_percent": round(slope, 1),
                "cross_slope_percent": round(float(cross_slope_percent), 1),
                "curb_height_cm": round(float(curb_height_cm), 1),
                "width_m": round(float(width_m), 1),
                "surface": surface,
                "steps": int(steps),
                "synthetic": True,
            }
        )
        return edge_id

    def chain(self, points: list[str], kind: str, name: str, **attributes) -> None:
        for u, v in zip(points[:-1], points[1:], strict=True):
            self.edge(u, v, kind, name, **self._vary(kind, attributes))

    def _vary(self, kind: str, attributes: dict) -> dict:
        """Seeded variation of width and cross slope around a kind's typical values.

        ``quality="good"`` (a sidewalk kept to the barrier-free standard: cross slope <= 2 %,
        width >= 2 m) or ``"mixed"`` (the default: some 2.5-3 % cross slopes, some 1.5 m).
        """
        rng = self.rng
        out = dict(attributes)
        good = out.pop("quality", "mixed") == "good"
        if kind == "sidewalk" and good:
            out.setdefault("width_m", float(rng.choice([2.0, 2.5, 3.0, 3.5])))
            out.setdefault("cross_slope_percent", float(rng.choice([1.0, 1.5, 2.0], p=[0.5, 0.3, 0.2])))
            out.setdefault("surface", str(rng.choice(["interlocking_blocks", "asphalt"], p=[0.6, 0.4])))
        if kind == "deck":
            out.setdefault("width_m", float(rng.choice([6.0, 8.0, 10.0])))
            out.setdefault("cross_slope_percent", float(rng.choice([0.5, 1.0, 1.0, 1.5])))
            out.setdefault("surface", str(rng.choice(["tiles", "interlocking_blocks", "asphalt"])))
        elif kind == "sidewalk" and not good:
            out.setdefault(
                "width_m", float(rng.choice([2.0, 2.5, 3.0, 3.5, 1.5], p=[0.25, 0.3, 0.2, 0.15, 0.1]))
            )
            out.setdefault(
                "cross_slope_percent",
                float(rng.choice([1.0, 1.5, 2.0, 2.5, 3.0], p=[0.35, 0.25, 0.2, 0.12, 0.08])),
            )
            out.setdefault("surface", str(rng.choice(["interlocking_blocks", "asphalt"], p=[0.6, 0.4])))
        elif kind == "lane":
            out.setdefault(
                "width_m", float(rng.choice([0.8, 1.0, 1.2, 1.5, 2.0], p=[0.2, 0.2, 0.25, 0.2, 0.15]))
            )
            out.setdefault(
                "cross_slope_percent", float(rng.choice([1.0, 2.0, 3.0, 4.0], p=[0.4, 0.3, 0.2, 0.1]))
            )
            out.setdefault("surface", "asphalt")
        return out


def _stairs_steps(rise_m: float) -> int:
    return max(1, int(round(abs(rise_m) / 0.16)))


def make_sidewalks(seed: int = SIDEWALKS_SEED) -> tuple[list[dict], list[dict]]:
    """Build the synthetic network: ``(nodes, edges)`` as lists of property dicts.

    Node dicts hold local ``x``, ``y`` (m) and ``z`` (m above sea level); :func:`write_sidewalks`
    converts them to [lon, lat].
    """
    # One random stream per part of the network, so that changing one part leaves the others alone.
    net = _Network(np.random.default_rng([seed, 1]))

    # --- Tsukuba Center: underground TX concourse, bus terminal, elevated deck plaza -----------------
    plaza_z = _ground(0.0, 40.0) + 5.0
    concourse = net.node(
        0.0, 0.0, _ground(0.0, 0.0) - 8.0, "station", "Tsukuba Station (TX) concourse", "underground"
    )
    plaza = net.node(0.0, 40.0, plaza_z, "plaza", "Tsukuba Center deck plaza", "deck")
    bus = net.node(60.0, 10.0, None, "bus_terminal", "Tsukuba Center bus terminal")
    # concourse <-> plaza: stairs and an elevator (separate landing nodes so edges stay unique)
    # The stairs rise straight from the concourse; the elevator is round the corner (a longer walk).
    stairs_top = net.node(-8.0, 34.0, plaza_z, "connector", "plaza, top of the station stairs", "deck")
    lift_top = net.node(36.0, 26.0, plaza_z, "connector", "plaza, station elevator", "deck")
    lift_bottom = net.node(
        36.0, 23.0, _ground(0.0, 0.0) - 8.0, "connector", "concourse, elevator", "underground"
    )
    rise = plaza_z - (_ground(0.0, 0.0) - 8.0)
    stairs_bottom = net.node(
        -8.0,
        34.0 - _stairs_steps(rise) * 0.30,
        _ground(0.0, 0.0) - 8.0,
        "connector",
        "concourse, foot of the stairs",
        "underground",
    )
    net.edge(
        concourse,
        stairs_bottom,
        "sidewalk",
        "TX concourse",
        width_m=6.0,
        surface="tiles",
        cross_slope_percent=0.5,
    )
    net.edge(
        stairs_bottom,
        stairs_top,
        "stairs",
        "station stairs",
        width_m=3.0,
        surface="concrete",
        cross_slope_percent=0.0,
        steps=_stairs_steps(rise),
    )
    net.edge(
        stairs_top,
        plaza,
        "deck",
        "Tsukuba Center deck plaza",
        width_m=12.0,
        surface="tiles",
        cross_slope_percent=0.5,
    )
    net.edge(
        concourse,
        lift_bottom,
        "sidewalk",
        "TX concourse",
        width_m=6.0,
        surface="tiles",
        cross_slope_percent=0.5,
    )
    net.edge(
        lift_bottom,
        lift_top,
        "elevator",
        "station elevator",
        width_m=1.1,
        surface="elevator",
        cross_slope_percent=0.0,
    )
    net.edge(
        lift_top,
        plaza,
        "deck",
        "Tsukuba Center deck plaza",
        width_m=12.0,
        surface="tiles",
        cross_slope_percent=0.5,
    )
    # plaza <-> bus terminal: stairs, and a long ramp (rise about 5 m at 1:13)
    bus_z = net._get(bus)["z"]
    ramp_run = (plaza_z - bus_z) / 0.077
    ramp_foot = net.node(60.0, 40.0 - ramp_run, bus_z, "connector", "foot of the bus-terminal ramp")
    ramp_top = net.node(60.0, 40.0, plaza_z, "connector", "plaza, top of the bus-terminal ramp", "deck")
    bus_stairs_top = net.node(
        30.0, 40.0, plaza_z, "connector", "plaza, top of the bus-terminal stairs", "deck"
    )
    steps = _stairs_steps(plaza_z - bus_z)
    bus_stairs_foot = net.node(
        30.0, 40.0 - steps * 0.30, bus_z, "connector", "foot of the bus-terminal stairs"
    )
    net.edge(
        plaza,
        bus_stairs_top,
        "deck",
        "Tsukuba Center deck plaza",
        width_m=12.0,
        surface="tiles",
        cross_slope_percent=0.5,
    )
    net.edge(
        bus_stairs_top,
        bus_stairs_foot,
        "stairs",
        "bus-terminal stairs",
        width_m=4.0,
        surface="concrete",
        cross_slope_percent=0.0,
        steps=steps,
    )
    net.edge(
        bus_stairs_foot,
        bus,
        "sidewalk",
        "bus terminal",
        width_m=4.0,
        surface="interlocking_blocks",
        cross_slope_percent=1.0,
    )
    net.edge(
        bus_stairs_top,
        ramp_top,
        "deck",
        "Tsukuba Center deck plaza",
        width_m=8.0,
        surface="tiles",
        cross_slope_percent=0.5,
    )
    net.edge(
        ramp_top,
        ramp_foot,
        "ramp",
        "bus-terminal ramp",
        width_m=2.0,
        surface="concrete",
        cross_slope_percent=1.0,
    )
    net.edge(
        ramp_foot,
        bus,
        "sidewalk",
        "bus terminal",
        width_m=3.0,
        surface="interlocking_blocks",
        cross_slope_percent=1.5,
    )
    concourse_exit = net.node(75.0, -15.0, None, "connector", "TX exit A3 (street level)")
    a3_lift = net.node(
        75.0, -18.0, _ground(0.0, 0.0) - 8.0, "connector", "concourse, exit A3 elevator", "underground"
    )
    net.edge(
        concourse, a3_lift, "sidewalk", "TX concourse", width_m=5.0, surface="tiles", cross_slope_percent=0.5
    )
    net.edge(
        a3_lift,
        concourse_exit,
        "elevator",
        "exit A3 elevator",
        width_m=1.1,
        surface="elevator",
        cross_slope_percent=0.0,
    )
    net.edge(
        concourse_exit,
        bus,
        "sidewalk",
        "station forecourt",
        width_m=4.0,
        surface="interlocking_blocks",
        cross_slope_percent=1.0,
    )

    # --- the deck: plaza -> campus, on bridges over the east-west roads -----------------------------
    approach_run = {420.0: 110.0, 820.0: 60.0, 1220.0: 95.0, 1620.0: 58.0, 2020.0: 105.0}  # m; 5.5 m rise
    ys = [_DECK_START_Y]
    for b in _BRIDGE_YS:
        run = approach_run[b]
        ys += [b - run, b, b + run]
    ys.append(_CAMPUS_XY[1])
    # Fill long gaps with intermediate nodes about 100 m apart.
    filled = [ys[0]]
    for y0, y1 in zip(ys[:-1], ys[1:], strict=True):
        n = max(1, int(round((y1 - y0) / 100.0)))
        filled += [y0 + (y1 - y0) * k / n for k in range(1, n + 1)]
    net.rng = np.random.default_rng([seed, 2])
    spine: list[str] = []
    bridges: dict[float, str] = {}
    ground_spine: list[tuple[float, str]] = []
    for y in filled:
        x = _spine_x(y) + (0.0 if y in _BRIDGE_YS or y == filled[-1] else float(net.rng.normal(0.0, 4.0)))
        if y in _BRIDGE_YS:
            node = net.node(
                x,
                y,
                _ground(x, y) + _BRIDGE_CLEARANCE_M,
                "bridge",
                f"deck bridge over road {_BRIDGE_YS.index(y) + 1}",
                "deck",
            )
            bridges[y] = node
        elif y == filled[-1]:
            node = net.node(x, y, None, "campus", "University of Tsukuba, central area")
        elif y == filled[0]:
            node = net.node(x, y, plaza_z, "plaza", "deck plaza, north end", "deck")
        else:
            node = net.node(x, y, None, "junction", "pedestrian deck")
            ground_spine.append((y, node))
        spine.append(node)
    net.edge(
        plaza,
        spine[0],
        "deck",
        "Tsukuba Center deck plaza",
        width_m=12.0,
        surface="tiles",
        cross_slope_percent=0.5,
    )
    # The north end of the plaza comes down to ground level on the first stretch of deck.
    net.chain(spine, "deck", "pedestrian deck (schematic)")
    campus = spine[-1]

    # --- avenues on either side, with crossings at the east-west roads --------------------------------
    street_ys = [0.0, 150.0, 300.0] + [v for b in _BRIDGE_YS for v in (b - 25.0, b + 25.0)]
    street_ys += [1420.0, 1820.0, 2200.0, _CAMPUS_XY[1] - 40.0]
    street_ys = sorted(set(street_ys))
    street_nodes: dict[str, dict[float, str]] = {}
    for side, offset in _STREET_OFFSETS.items():
        # The east avenue was rebuilt to the barrier-free standard; the west one is older.
        net.rng = np.random.default_rng([seed, 3 if side == "east" else 4])
        quality = "good" if side == "east" else "mixed"
        curbs, curb_p = ([0.0, 2.0], [0.4, 0.6]) if side == "east" else ([2.0, 3.0, 5.0], [0.4, 0.3, 0.3])
        nodes_here: dict[float, str] = {}
        for y in street_ys:
            x = _spine_x(y) + offset + float(net.rng.normal(0.0, 3.0))
            kind = "crossing" if any(abs(y - b) == 25.0 for b in _BRIDGE_YS) else "junction"
            nodes_here[y] = net.node(x, y, None, kind, f"{side} avenue sidewalk")
        street_nodes[side] = nodes_here
        for y0, y1 in zip(street_ys[:-1], street_ys[1:], strict=True):
            u, v = nodes_here[y0], nodes_here[y1]
            road = next((b for b in _BRIDGE_YS if y0 == b - 25.0 and y1 == b + 25.0), None)
            if road is not None:
                curb = float(net.rng.choice(curbs, p=curb_p))
                net.edge(
                    u,
                    v,
                    "crossing",
                    f"{side} avenue, crossing road {_BRIDGE_YS.index(road) + 1}",
                    width_m=4.0,
                    surface="asphalt",
                    cross_slope_percent=1.5,
                    curb_height_cm=curb,
                )
            else:
                net.edge(
                    u, v, "sidewalk", f"{side} avenue sidewalk", **net._vary("sidewalk", {"quality": quality})
                )
    # Both avenues reach the station area and the campus.
    net.edge(
        street_nodes["east"][0.0],
        bus,
        "sidewalk",
        "east avenue, to the bus terminal",
        width_m=3.0,
        surface="interlocking_blocks",
        cross_slope_percent=1.0,
    )
    net.edge(
        street_nodes["west"][0.0],
        concourse_exit,
        "crossing",
        "west avenue, crossing to the station",
        width_m=4.0,
        surface="asphalt",
        cross_slope_percent=1.0,
        curb_height_cm=2.0,
    )
    for side in ("east", "west"):
        net.edge(
            street_nodes[side][_CAMPUS_XY[1] - 40.0],
            campus,
            "sidewalk",
            f"campus road from the {side}",
            width_m=2.5,
            surface="asphalt",
            cross_slope_percent=1.5,
        )

    # --- at every bridge: down to the road below (stairs always; elevator or ramp at some) ------------
    access = {420.0: ("elevator",), 820.0: (), 1220.0: ("ramp",), 1620.0: ("elevator", "ramp"), 2020.0: ()}
    ramp_slope = {1220.0: 0.080, 1620.0: 0.065}
    net.rng = np.random.default_rng([seed, 5])
    for b, bridge in bridges.items():
        top = net._get(bridge)
        below = net.node(
            top["x"] + 18.0, b, None, "junction", f"under the deck, road {_BRIDGE_YS.index(b) + 1}"
        )
        steps = _stairs_steps(_BRIDGE_CLEARANCE_M)
        foot = net.node(top["x"] + 8.0, b - steps * 0.30, None, "connector", "foot of the deck stairs")
        net.edge(
            bridge,
            foot,
            "stairs",
            "deck stairs",
            width_m=2.0,
            surface="concrete",
            cross_slope_percent=0.0,
            steps=steps,
        )
        net.edge(
            foot,
            below,
            "sidewalk",
            "road sidewalk",
            width_m=2.0,
            surface="interlocking_blocks",
            cross_slope_percent=1.0,
        )
        if "elevator" in access[b]:
            lift_foot = net.node(top["x"] + 6.0, b + 3.0, None, "connector", "deck elevator, road level")
            net.edge(
                bridge,
                lift_foot,
                "elevator",
                "deck elevator",
                width_m=1.1,
                surface="elevator",
                cross_slope_percent=0.0,
            )
            net.edge(
                lift_foot,
                below,
                "sidewalk",
                "road sidewalk",
                width_m=2.0,
                surface="interlocking_blocks",
                cross_slope_percent=1.0,
            )
        if "ramp" in access[b]:
            run = _BRIDGE_CLEARANCE_M / ramp_slope[b]
            ramp_foot = net.node(top["x"] - 10.0, b + run, None, "connector", "foot of the deck ramp")
            landing = net.node(
                top["x"] - 10.0,
                b + run / 2,
                _ground(top["x"], b) + _BRIDGE_CLEARANCE_M / 2,
                "connector",
                "ramp landing",
                "deck",
            )
            net.edge(
                bridge, landing, "ramp", "deck ramp", width_m=1.5, surface="concrete", cross_slope_percent=1.0
            )
            net.edge(
                landing,
                ramp_foot,
                "ramp",
                "deck ramp",
                width_m=1.5,
                surface="concrete",
                cross_slope_percent=1.0,
            )
            net.edge(
                ramp_foot,
                below,
                "sidewalk",
                "road sidewalk",
                width_m=2.0,
                surface="interlocking_blocks",
                cross_slope_percent=1.0,
            )
        # east and west along the road to the avenues
        for side in ("east", "west"):
            target = street_nodes[side][b - 25.0 if side == "east" else b + 25.0]
            t = net._get(target)
            mid = net.node(
                (net._get(below)["x"] + t["x"]) / 2,
                b + float(net.rng.normal(0.0, 2.0)),
                None,
                "junction",
                f"road {_BRIDGE_YS.index(b) + 1} sidewalk",
            )
            quality = "good" if side == "east" else "mixed"
            net.chain([below, mid], "sidewalk", f"road {_BRIDGE_YS.index(b) + 1} sidewalk", quality=quality)
            curb = float(net.rng.choice([0.0, 2.0]) if side == "east" else net.rng.choice([2.0, 3.0, 5.0]))
            net.edge(
                mid,
                target,
                "crossing",
                f"road {_BRIDGE_YS.index(b) + 1}, corner crossing",
                width_m=3.0,
                surface="asphalt",
                cross_slope_percent=2.0,
                curb_height_cm=curb,
            )

    # --- residential lanes from the deck to the avenues, between the bridges -----------------------------
    net.rng = np.random.default_rng([seed, 6])
    lane_rows = [y for y, _ in ground_spine if all(abs(y - b) > 80.0 for b in _BRIDGE_YS)]
    for k, y in enumerate(lane_rows):
        node = dict(ground_spine)[y]
        side = "east" if k % 2 == 0 else "west"
        target_y = min(street_nodes[side], key=lambda sy: abs(sy - y))
        target = street_nodes[side][target_y]
        a, t = net._get(node), net._get(target)
        mid = net.node(
            (a["x"] + t["x"]) / 2 + float(net.rng.normal(0.0, 5.0)),
            (a["y"] + t["y"]) / 2,
            None,
            "junction",
            "residential lane",
        )
        net.chain([node, mid], "lane", "residential lane")
        curb = float(net.rng.choice([0.0, 2.0, 2.0, 5.0]))
        net.edge(mid, target, "lane", "residential lane", curb_height_cm=curb, **net._vary("lane", {}))

    # --- Central Park: paths round a small mound, a viewpoint up a flight of steps ----------------------
    net.rng = np.random.default_rng([seed, 7])
    cx, cy = _PARK_CENTRE
    ring = []
    for k in range(6):
        angle = 2 * math.pi * k / 6 + 0.3
        radius = 70.0 + float(net.rng.normal(0.0, 4.0))
        ring.append(
            net.node(
                cx + radius * math.cos(angle),
                cy + radius * math.sin(angle),
                None,
                "park",
                "Central Park path",
            )
        )
    surfaces = ["gravel", "asphalt", "wood_chip", "asphalt", "gravel", "asphalt"]
    for k in range(6):
        net.edge(
            ring[k],
            ring[(k + 1) % 6],
            "park_path",
            "Central Park path",
            width_m=2.5,
            surface=surfaces[k],
            cross_slope_percent=1.5,
        )
    # park entrances from the deck and from the west avenue
    deck_near_park = min(ground_spine, key=lambda item: abs(item[0] - cy))[1]
    nearest_ring = min(
        ring,
        key=lambda r: math.dist(
            (net._get(r)["x"], net._get(r)["y"]),
            (net._get(deck_near_park)["x"], net._get(deck_near_park)["y"]),
        ),
    )
    net.edge(
        deck_near_park,
        nearest_ring,
        "park_path",
        "Central Park entrance",
        width_m=3.0,
        surface="asphalt",
        cross_slope_percent=1.0,
    )
    west_near_park = street_nodes["west"][300.0]
    far_ring = min(
        ring,
        key=lambda r: math.dist(
            (net._get(r)["x"], net._get(r)["y"]),
            (net._get(west_near_park)["x"], net._get(west_near_park)["y"]),
        ),
    )
    net.edge(
        west_near_park,
        far_ring,
        "park_path",
        "Central Park west entrance",
        width_m=2.0,
        surface="interlocking_blocks",
        cross_slope_percent=2.0,
        curb_height_cm=2.0,
    )
    # The viewpoint on the mound: a flight of steps, or a steep gravel ramp (1:8) -- nothing on wheels.
    summit = net.node(cx, cy, _ground(cx, cy) + 0.5, "viewpoint", "Central Park viewpoint")
    for base, kind in ((ring[1], "stairs"), (ring[4], "ramp")):
        b = net._get(base)
        rise = net._get(summit)["z"] - b["z"]
        run = _stairs_steps(rise) * 0.30 if kind == "stairs" else rise / 0.125
        angle = math.atan2(b["y"] - cy, b["x"] - cx)
        foot = net.node(
            cx + run * math.cos(angle),
            cy + run * math.sin(angle),
            b["z"],
            "park",
            f"foot of the viewpoint {'steps' if kind == 'stairs' else 'ramp'}",
        )
        net.edge(
            base,
            foot,
            "park_path",
            "Central Park path",
            width_m=2.0,
            surface="asphalt",
            cross_slope_percent=1.5,
        )
        if kind == "stairs":
            net.edge(
                foot,
                summit,
                "stairs",
                "viewpoint steps",
                width_m=1.5,
                surface="concrete",
                cross_slope_percent=0.0,
                steps=_stairs_steps(rise),
            )
        else:
            net.edge(
                foot,
                summit,
                "ramp",
                "viewpoint ramp (old, gravel)",
                width_m=1.2,
                surface="gravel",
                cross_slope_percent=2.5,
            )
    return net.nodes, net.edges


def _lonlat(x: float, y: float) -> list[float]:
    return [
        round(STATION_LONLAT[0] + x / _M_PER_DEG_LON, 6),
        round(STATION_LONLAT[1] + y / _M_PER_DEG_LAT, 6),
    ]


def write_sidewalks(folder: Path, seed: int = SIDEWALKS_SEED) -> None:
    """Write ``nodes.geojson`` and ``edges.geojson`` (EPSG:4326, [lon, lat]) into ``folder``."""
    folder = Path(folder)
    nodes, edges = make_sidewalks(seed)
    where = {n["node_id"]: _lonlat(n["x"], n["y"]) for n in nodes}
    node_features = [
        {
            "type": "Feature",
            "properties": {
                "node_id": n["node_id"],
                "name": n["name"],
                "kind": n["kind"],
                "level": n["level"],
                "elevation_m": round(n["z"], 2),
                "synthetic": True,
            },
            "geometry": {"type": "Point", "coordinates": where[n["node_id"]]},
        }
        for n in nodes
    ]
    edge_features = [
        {
            "type": "Feature",
            "properties": dict(e),
            "geometry": {"type": "LineString", "coordinates": [where[e["u"]], where[e["v"]]]},
        }
        for e in edges
    ]
    note = (
        "SYNTHETIC, schematic pedestrian network around Tsukuba Center for teaching; only the "
        "station and campus anchors are real (approximate). Not for real trip planning."
    )
    for name, features in (("nodes", node_features), ("edges", edge_features)):
        collection = {
            "type": "FeatureCollection",
            "name": f"tsukuba_sidewalks_{name}",
            "note": note,
            "seed": seed,
            "features": features,
        }
        (folder / f"{name}.geojson").write_text(
            json.dumps(collection, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
