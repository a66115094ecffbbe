"""The synthetic sidewalk dataset and accessible routing: who is left behind."""

from __future__ import annotations

import json
import math

import networkx as nx
import pytest
from sscity.data import dataset_path
from sscity.data.sidewalks import CAMPUS_LONLAT, SIDEWALKS_SEED, STATION_LONLAT, write_sidewalks
from sscity.mobility import (
    PROFILES,
    AccessProfile,
    NoRouteError,
    accessible_route,
    accessible_subgraph,
    barrier_table,
    compare_routes,
    edge_barriers,
    find_node,
    load_sidewalks,
    max_safe_deceleration,
    reachability,
    shortest_route,
    sidewalks_gdf,
)

FILES = ("nodes.geojson", "edges.geojson")


@pytest.fixture(scope="module")
def graph():
    return load_sidewalks()


@pytest.fixture(scope="module")
def places(graph):
    return {
        "station": find_node(graph, "Tsukuba Station (TX) concourse"),
        "campus": find_node(graph, "University of Tsukuba, central area"),
        "viewpoint": find_node(graph, "Central Park viewpoint"),
        "bus": find_node(graph, "Tsukuba Center bus terminal"),
    }


def test_dataset_regenerates_byte_for_byte(tmp_path):
    write_sidewalks(tmp_path, SIDEWALKS_SEED)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == dataset_path("tsukuba-sidewalks", name).read_bytes(), name
    other = tmp_path / "other"
    other.mkdir()
    write_sidewalks(other, SIDEWALKS_SEED + 1)
    assert (other / "edges.geojson").read_bytes() != (tmp_path / "edges.geojson").read_bytes()


def test_dataset_is_labelled_synthetic_and_uses_lon_lat():
    readme = dataset_path("tsukuba-sidewalks", "README.md").read_text(encoding="utf-8")
    assert "SYNTHETIC" in readme and "CC BY 4.0" in readme and "[lon, lat]" in readme
    for name in FILES:
        collection = json.loads(dataset_path("tsukuba-sidewalks", name).read_text(encoding="utf-8"))
        assert "SYNTHETIC" in collection["note"]
        assert all(f["properties"]["synthetic"] is True for f in collection["features"])
        for feature in collection["features"]:
            points = feature["geometry"]["coordinates"]
            for lon, lat in [points] if feature["geometry"]["type"] == "Point" else points:
                assert 140.09 < lon < 140.12 and 36.08 < lat < 36.11  # [lon, lat], around Tsukuba Center
    edges = json.loads(dataset_path("tsukuba-sidewalks", "edges.geojson").read_text(encoding="utf-8"))
    assert 100 <= len(edges["features"]) <= 400


def test_anchors_are_where_the_real_places_are(graph, places):
    station, campus = graph.nodes[places["station"]], graph.nodes[places["campus"]]
    assert (station["lon"], station["lat"]) == pytest.approx(STATION_LONLAT, abs=1e-6)
    assert (campus["lon"], campus["lat"]) == pytest.approx(CAMPUS_LONLAT, abs=1e-6)


def test_slopes_agree_with_elevations_and_lengths(graph):
    for _, _, d in graph.edges(data=True):
        rise = graph.nodes[d["v"]]["elevation_m"] - graph.nodes[d["u"]]["elevation_m"]
        assert d["rise_m"] == pytest.approx(rise, abs=0.011)
        if d["kind"] == "elevator":
            assert d["slope_percent"] == 0.0
        else:
            assert d["slope_percent"] == pytest.approx(
                100 * abs(d["rise_m"]) / max(d["length_m"], 0.1), abs=0.2
            )
        if d["kind"] == "stairs":
            assert d["steps"] >= 1 and d["slope_percent"] > 30
    # plausible ranges
    kinds = nx.get_edge_attributes(graph, "kind")
    assert {"stairs", "elevator", "ramp", "crossing", "deck", "sidewalk"} <= set(kinds.values())
    sidewalks = [d for _, _, d in graph.edges(data=True) if d["kind"] == "sidewalk"]
    assert max(d["slope_percent"] for d in sidewalks) <= 8.0
    assert max(d["cross_slope_percent"] for d in sidewalks) <= 3.0
    assert {d["curb_height_cm"] for _, _, d in graph.edges(data=True)} <= {0.0, 2.0, 3.0, 5.0}


def test_edge_barriers_name_the_reason():
    stairs = {"kind": "stairs", "steps": 34, "slope_percent": 42.0}
    assert edge_barriers(stairs, "walking") == []
    assert edge_barriers(stairs, "manual_wheelchair") == ["stairs (34 steps)"]
    assert edge_barriers({"kind": "elevator", "width_m": 1.1}, "qolo") == []
    steep = {
        "kind": "ramp",
        "slope_percent": 9.0,
        "cross_slope_percent": 2.5,
        "curb_height_cm": 2.0,
        "width_m": 0.8,
        "surface": "gravel",
    }
    assert edge_barriers(steep, "manual_wheelchair") == [
        "slope 9.0 % > 8.33 %",
        "cross slope 2.5 % > 2 %",
        "width 0.8 m < 0.9 m",
        "surface gravel",
    ]
    assert edge_barriers(steep, "qolo") == ["width 0.8 m < 0.9 m", "surface gravel"]


def test_wheelchair_route_avoids_the_stairs_the_walking_route_takes(graph, places):
    walk = shortest_route(graph, places["station"], places["campus"])
    assert walk.uses_stairs
    stairs = [e for e in walk.edge_ids if graph.edges[_ends(graph, e)]["kind"] == "stairs"]
    for profile in ("manual_wheelchair", "qolo"):
        route = accessible_route(graph, places["station"], places["campus"], profile)
        assert not route.uses_stairs and not set(stairs) & set(route.edge_ids)
        assert route.kinds.get("elevator", 0) >= 1
        assert route.length_m >= walk.length_m
        for u, v in zip(route.nodes[:-1], route.nodes[1:], strict=True):
            assert edge_barriers(graph.edges[u, v], profile) == []
    # removing the stairs from the graph does not change the wheelchair route
    without = graph.copy()
    without.remove_edges_from([_ends(graph, e) for e in stairs])
    assert (
        accessible_route(without, places["station"], places["campus"], "manual_wheelchair").nodes
        == accessible_route(graph, places["station"], places["campus"], "manual_wheelchair").nodes
    )


def _ends(graph, edge_id):
    return next((u, v) for u, v, d in graph.edges(data=True) if d["edge_id"] == edge_id)


def test_who_is_left_behind(graph, places):
    table = compare_routes(graph, places["station"], places["campus"]).set_index("profile")
    assert table["reachable"].all()
    assert table.loc["walking", "detour_factor"] == 1.0 and table.loc["walking", "stairs"] >= 1
    # Qolo can take the deck (approaches <= 10 %); a manual wheelchair cannot (> 8.33 %)
    assert table.loc["qolo", "detour_factor"] < 1.05
    assert table.loc["manual_wheelchair", "detour_factor"] > 1.2
    view = compare_routes(graph, places["station"], places["viewpoint"]).set_index("profile")
    assert view.loc["walking", "reachable"] and not view.loc["qolo", "reachable"]
    assert "stairs" in view.loc["qolo", "why_not"] and "viewpoint" in view.loc["manual_wheelchair", "why_not"]
    with pytest.raises(NoRouteError, match="fewest barriers"):
        accessible_route(graph, places["station"], places["viewpoint"], "manual_wheelchair")
    reach = reachability(graph, places["station"]).set_index("profile")
    assert reach.loc["walking", "share"] == 1.0
    assert reach.loc["manual_wheelchair", "share"] < reach.loc["qolo", "share"] < 1.0
    assert "Central Park viewpoint" in reach.loc["qolo", "unreachable"]


def test_barrier_table_lists_which_edges_exclude_whom(graph):
    table = barrier_table(graph)
    assert set(table.columns) >= {"edge_id", "walking", "manual_wheelchair", "qolo", "excludes"}
    assert (table["walking"] == "").all()  # walking is never excluded
    stairs = table[table["kind"] == "stairs"]
    assert len(stairs) == sum(1 for *_, d in graph.edges(data=True) if d["kind"] == "stairs")
    assert (stairs["excludes"] == "manual_wheelchair, qolo").all()
    only_manual = table[table["excludes"] == "manual_wheelchair"]
    assert len(only_manual) > 0 and (only_manual["qolo"] == "").all()
    usable = accessible_subgraph(graph, "qolo")
    assert usable.number_of_edges() == graph.number_of_edges() - table["qolo"].ne("").sum()


def test_qolo_slope_limit_is_backed_by_the_stability_margin():
    assert PROFILES["qolo"].max_slope_percent == 10.0
    assert max_safe_deceleration("standing", -PROFILES["qolo"].max_slope_percent) > 1.5
    custom = AccessProfile("stroller", "stroller", max_curb_cm=3.0, stairs=False)
    assert edge_barriers({"kind": "crossing", "curb_height_cm": 5.0}, custom) == ["curb 5.0 cm > 3 cm"]


def test_lookups_and_errors(graph):
    with pytest.raises(KeyError, match="No node named"):
        find_node(graph, "Eiffel Tower")
    with pytest.raises(KeyError, match="be more specific"):
        find_node(graph, "avenue")
    with pytest.raises(ValueError, match="Unknown profile"):
        accessible_route(graph, "N001", "N002", "hoverboard")
    with pytest.raises(KeyError, match="not in the network"):
        shortest_route(graph, "N001", "N999")


def test_geodataframes(graph):
    nodes, edges = sidewalks_gdf(graph)
    assert len(nodes) == graph.number_of_nodes() and len(edges) == graph.number_of_edges()
    assert nodes.crs.to_epsg() == 4326 and edges.crs.to_epsg() == 4326
    lengths = edges.to_crs(6677).length  # JGD2011 / Japan plane rectangular CS IX, metres
    assert (lengths - edges["length_m"]).abs().max() < 0.02 * edges["length_m"].max() + 1.0
    assert math.isclose(nodes.geometry.x.min(), min(d["lon"] for _, d in graph.nodes(data=True)))
