"""The SYNTHETIC neighbourhood networks (capstone) and their round trip through the platform.

Lean on purpose: one seeding of the embedded broker (sensors skipped, under a second).
"""

from __future__ import annotations

import networkx as nx
import pytest
from sscity.city import district_places, place_entities, seed_city, sidewalk_entities, sidewalk_network
from sscity.data.neighbourhoods import NEIGHBOURHOOD_SEED, make_neighbourhood
from sscity.data.tsukuba import BY_CODE
from sscity.mobility.routing import PROFILES, accessible_route, accessible_subgraph, load_sidewalks
from sscity.platform import Client

TENANT = "t-neighbourhoods"
ROUTED = ("edge_id", "u", "v", "kind", "length_m", "rise_m", "slope_percent", "cross_slope_percent",
          "curb_height_cm", "width_m", "surface", "steps", "condition", "coords")


def _japanese(text: str) -> bool:
    return any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in text)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    client = Client(db=tmp_path_factory.mktemp("nbh") / "city.db", tenant=TENANT)
    summary = seed_city(client, tenant=TENANT, sensors=False, progress=False)
    return client, summary


def _open(graph):
    out = graph.copy()
    out.remove_edges_from([(u, v) for u, v, d in graph.edges(data=True) if d["condition"] == "closed"])
    return out


def _clinic(graph):
    (clinic,) = [n for n, d in graph.nodes(data=True) if d.get("kind") == "clinic"]
    return clinic


def _share_reaching_clinic(graph, profile):
    """Share of nodes joined to the clinic by open edges the profile can use (by components)."""
    view = accessible_subgraph(_open(graph), profile)
    return len(nx.node_connected_component(view, _clinic(graph))) / len(graph)


def test_same_seed_same_graph_other_seed_other_graph():
    a, b = make_neighbourhood("oho"), make_neighbourhood("oho", NEIGHBOURHOOD_SEED)
    assert nx.utils.graphs_equal(a, b) and list(a.edges(data=True)) == list(b.edges(data=True))
    c = make_neighbourhood("oho", 7)
    assert list(a.edges(data=True)) != list(c.edges(data=True))
    assert "SYNTHETIC" in a.graph["name"] and a.graph["seed"] == NEIGHBOURHOOD_SEED


@pytest.mark.parametrize("code", list(BY_CODE))
def test_attributes_kinds_and_connectivity(code):
    g = make_neighbourhood(code)
    reference = load_sidewalks()
    _, _, ref_edge = next(iter(reference.edges(data=True)))
    ref_node = next(iter(reference.nodes.values()))
    for _, _, d in g.edges(data=True):
        assert set(ref_edge) <= set(d) and d["condition"] in ("open", "closed") and d["district_code"] == code
    for _, d in g.nodes(data=True):
        assert set(ref_node) <= set(d) and d["district_code"] == code
    kinds = [d["kind"] for _, d in g.nodes(data=True)]
    assert kinds.count("clinic") == kinds.count("community_centre") == kinds.count("supermarket") == 1
    stops = kinds.count("bus_stop")
    assert stops in (1, 2) and kinds.count("home") == len(kinds) - 3 - stops
    assert 36 <= len(g) <= 56 and 55 <= g.number_of_edges() <= 120
    assert g.graph["area_type"] == BY_CODE[code].area_type
    closed = sum(d["condition"] == "closed" for _, _, d in g.edges(data=True))
    assert 1 <= closed <= 3
    assert nx.is_connected(_open(g))  # walking, every node reaches the clinic despite the roadworks
    for _, _, d in g.edges(data=True):  # slopes follow the elevations
        rise = g.nodes[d["v"]]["elevation_m"] - g.nodes[d["u"]]["elevation_m"]
        assert d["rise_m"] == pytest.approx(rise, abs=0.02)
        assert d["slope_percent"] == pytest.approx(100 * abs(d["rise_m"]) / d["length_m"], abs=0.1)


def test_centre_versus_periphery_access_gap():
    for seed in (NEIGHBOURHOOD_SEED, 3):
        shares = {code: _share_reaching_clinic(make_neighbourhood(code, seed), "manual_wheelchair")
                  for code in BY_CODE}
        centre = [shares[c] for c, d in BY_CODE.items() if d.area_type == "centre"]
        periphery = [shares[c] for c, d in BY_CODE.items() if d.area_type == "periphery"]
        assert min(centre) >= 0.9 and max(periphery) < min(centre), (seed, shares)
        assert sum(periphery) / len(periphery) < 0.7, (seed, shares)  # a real share is left behind
        for code, district in BY_CODE.items():
            if district.area_type == "periphery":
                assert _share_reaching_clinic(make_neighbourhood(code, seed), "walking") == 1.0


def test_periphery_is_uneven_centre_well_kept():
    centre, periphery = make_neighbourhood("sakura"), make_neighbourhood("tsukuba")
    c = [d for *_, d in centre.edges(data=True)]
    p = [d for *_, d in periphery.edges(data=True)]
    assert max(d["cross_slope_percent"] for d in c) <= 2 and min(d["width_m"] for d in c) >= 2
    assert max(d["curb_height_cm"] for d in p) >= 5 and min(d["width_m"] for d in p) < 0.9
    assert max(d["slope_percent"] for d in p) > 8.33 and any(d["kind"] == "lane" for d in p)


def test_unknown_district_is_refused_bilingually(seeded):
    client, _ = seeded
    for call in (lambda: make_neighbourhood("tokyo"), lambda: sidewalk_network(client, "tokyo"),
                 lambda: district_places(client, "Oho")):
        with pytest.raises(ValueError, match="kukizaki") as err:
            call()
        assert _japanese(str(err.value))


def test_entities_one_per_edge_and_no_homes():
    g = make_neighbourhood("kukizaki")
    segments, places = sidewalk_entities(g), place_entities(g)
    assert len(segments) == g.number_of_edges()
    assert segments[0]["id"] == "urn:ngsi-ld:SidewalkSegment:kukizaki:E001"
    assert {p["category"] for p in places} == {"clinic", "community_centre", "bus_stop", "supermarket"}
    assert all(g.nodes[p["nodeId"]]["kind"] != "home" for p in places)


def test_seed_counts_and_places(seeded):
    client, summary = seeded
    total = sum(make_neighbourhood(code).number_of_edges() for code in BY_CODE)
    assert summary.counts["SidewalkSegment"] == total == client.count(type="SidewalkSegment")
    places = district_places(client, "oho")
    g = make_neighbourhood("oho")
    assert list(places.columns) == ["facility_id", "entity_id", "name", "category", "node", "lon", "lat"]
    assert {(r.node, r.category) for r in places.itertuples()} == {
        (n, d["kind"]) for n, d in g.nodes(data=True) if d["kind"] != "home"}
    clinic = district_places(client, "oho", category="clinic")
    assert len(clinic) == 1 and clinic.iloc[0]["node"] == _clinic(g)


def test_round_trip_equals_the_generator_and_routes_agree(seeded):
    client, _ = seeded
    for code in ("tsukuba", "yatabe"):
        made = make_neighbourhood(code)
        back = sidewalk_network(client, code, include_closed=True)
        assert set(back.nodes) == set(made.nodes)
        for n in made:
            assert (back.nodes[n]["lon"], back.nodes[n]["lat"], back.nodes[n]["elevation_m"]) == (
                made.nodes[n]["lon"], made.nodes[n]["lat"], made.nodes[n]["elevation_m"])
        assert {frozenset(e) for e in back.edges} == {frozenset(e) for e in made.edges}
        for u, v, d in made.edges(data=True):
            assert {k: back.edges[u, v][k] for k in ROUTED} == {k: d[k] for k in ROUTED}
        clinic = _clinic(made)
        for origin in list(made)[::7]:
            for profile in PROFILES:
                try:
                    expected = accessible_route(made, origin, clinic, profile)
                except nx.NetworkXNoPath:
                    with pytest.raises(nx.NetworkXNoPath):
                        accessible_route(back, origin, clinic, profile)
                    continue
                assert accessible_route(back, origin, clinic, profile) == expected


def test_closed_segments_are_left_out(seeded):
    client, _ = seeded
    for code in ("oho", "sakura"):
        made = make_neighbourhood(code)
        closed = {d["edge_id"] for *_, d in made.edges(data=True) if d["condition"] == "closed"}
        back = sidewalk_network(client, code)
        ids = {d["edge_id"] for *_, d in back.edges(data=True)}
        assert closed and not closed & ids and len(ids) == made.number_of_edges() - len(closed)
        assert set(back.nodes) == set(made.nodes)  # every place is still in the network


def test_reseeding_is_idempotent_and_another_seed_replaces_the_network(seeded):
    client, summary = seeded
    before = sorted(client.query_all(type="SidewalkSegment"), key=lambda e: e["id"])
    again = seed_city(client, tenant=TENANT, sensors=False, progress=False)
    assert again.counts == summary.counts
    assert sorted(client.query_all(type="SidewalkSegment"), key=lambda e: e["id"]) == before
    other = seed_city(client, tenant=TENANT, sensors=False, progress=False, neighbourhood_seed=7)
    expected = sum(make_neighbourhood(code, 7).number_of_edges() for code in BY_CODE)
    assert other.counts["SidewalkSegment"] == expected  # no segment of the earlier seed lingers
    made = make_neighbourhood("toyosato", 7)
    assert {d["edge_id"] for *_, d in sidewalk_network(client, "toyosato", include_closed=True)
            .edges(data=True)} == {d["edge_id"] for *_, d in made.edges(data=True)}
    seed_city(client, tenant=TENANT, sensors=False, progress=False)  # back to the default for the others


def test_seeding_a_client_seeds_its_own_tenant_unless_told_otherwise():
    from sscity.platform import Client

    client = Client(tenant="own-tenant-seed")
    summary = seed_city(client, sensors=False, progress=False)
    assert summary.tenant == "own-tenant-seed"
    assert client.count(type="DistrictWellbeing") == 6
