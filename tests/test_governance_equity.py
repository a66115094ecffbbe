"""sscity.governance.equity: inequality indices against published figures and independent
formulas (scipy, brute force), group disparity against fairlearn, and route access against
module 04's own routing functions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_difference as fl_difference
from fairlearn.metrics import demographic_parity_ratio as fl_ratio
from scipy import stats
from sscity.data.loaders import load_survey
from sscity.governance.equity import (
    access_inequality,
    atkinson,
    compare_rules,
    demographic_parity_difference,
    demographic_parity_ratio,
    gini,
    inequality_indices,
    network_zones,
    route_access,
    selection_rates,
    theil,
    zones_from_polygons,
)
from sscity.mobility.routing import NoRouteError, accessible_route, find_node, load_sidewalks, reachability

VECTOR = [2, 4, 6, 8, 30]
# The income vector of the example in R package ineq's help page (Zeileis, `?ineq`), whose
# R results ineq::Gini 0.4620911, Atkinson(parameter = 0.5) 0.1796591 and
# Atkinson(parameter = 1) 0.3518251 are quoted in open-risk/concentrationMetrics,
# examples/gini_example.py ("Comparison with R version in ineq package").
INEQ_EXAMPLE = [541, 1463, 2445, 3438, 4437, 5401, 6392, 8304, 11904, 22261]


# --------------------------------------------------------------------------- indices


def test_reference_vector():
    # Gini = Σ|x_i - x_j| / (2 n² μ) = 240 / 500 = 0.48 exactly.
    assert gini(VECTOR) == pytest.approx(0.48, abs=1e-12)
    # Theil = (1/5) Σ (x/μ) ln(x/μ) = 0.4244846: the often-quoted "0.42449" is 0.424485 rounded
    # a second time; to five decimals it is 0.42448.
    assert theil(VECTOR) == pytest.approx(0.4244846, abs=5e-8)
    assert abs(theil(VECTOR) - 0.42449) < 1e-5
    assert atkinson(VECTOR, 0.5) == pytest.approx(0.19692, abs=5e-6)


def test_r_ineq_published_example():
    assert gini(INEQ_EXAMPLE) == pytest.approx(0.4620911, abs=5e-8)
    assert atkinson(INEQ_EXAMPLE, 0.5) == pytest.approx(0.1796591, abs=5e-8)
    assert atkinson(INEQ_EXAMPLE, 1.0) == pytest.approx(0.3518251, abs=5e-8)


def _brute_gini(x, w):
    x, w = np.asarray(x, float), np.asarray(w, float)
    mean = np.sum(w * x) / w.sum()
    return np.sum(np.outer(w, w) * np.abs(x[:, None] - x[None, :])) / (2 * w.sum() ** 2 * mean)


def _lorenz_gini(x):
    # 1 - twice the area under the Lorenz curve (trapezoids), an independent route to Gini.
    x = np.sort(np.asarray(x, float))
    lorenz = np.concatenate([[0.0], np.cumsum(x) / x.sum()])
    population = np.linspace(0.0, 1.0, x.size + 1)
    return 1 - 2 * np.trapezoid(lorenz, population)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_indices_against_independent_formulas(seed):
    rng = np.random.default_rng(seed)
    x = rng.lognormal(1.0, 0.8, size=40)
    w = rng.integers(1, 6, size=40).astype(float)
    shares = x / x.sum()
    assert gini(x) == pytest.approx(_lorenz_gini(x), rel=1e-12)
    assert gini(x, w) == pytest.approx(_brute_gini(x, w), rel=1e-12)
    # Theil = ln n - Shannon entropy of the income shares; weighted, it is the Kullback-Leibler
    # divergence of income shares from population shares.
    assert theil(x) == pytest.approx(math.log(x.size) - stats.entropy(shares), rel=1e-10)
    income_shares = w * x / np.sum(w * x)
    assert theil(x, w) == pytest.approx(stats.entropy(income_shares, w / w.sum()), rel=1e-10)
    # Atkinson = 1 - power mean of order 1 - eps over the mean (scipy's pmean and gmean).
    mean = np.average(x, weights=w)
    for eps in (0.5, 2.0):
        assert atkinson(x, eps, w) == pytest.approx(1 - stats.pmean(x, 1 - eps, weights=w) / mean, rel=1e-10)
    assert atkinson(x, 1.0, w) == pytest.approx(1 - stats.gmean(x, weights=w) / mean, rel=1e-10)


def test_integer_weights_equal_repetition():
    rng = np.random.default_rng(7)
    x = rng.gamma(2.0, 2.0, size=12)
    w = rng.integers(0, 5, size=12)
    w[0] = 3
    expanded = np.repeat(x, w)
    assert gini(x, w) == pytest.approx(gini(expanded), rel=1e-12)
    assert theil(x, w) == pytest.approx(theil(expanded), rel=1e-12)
    for eps in (0.5, 1.0, 2.0):
        assert atkinson(x, eps, w) == pytest.approx(atkinson(expanded, eps), rel=1e-12)


def test_limits_and_invariance():
    assert gini([5, 5, 5]) == 0.0 and theil([5, 5, 5]) == 0.0 and atkinson([5, 5, 5]) == pytest.approx(0.0)
    # One person has everything: Gini 1 - 1/n, Theil ln n.
    assert gini([0, 0, 0, 9]) == pytest.approx(0.75)
    assert theil([0, 0, 0, 9]) == pytest.approx(math.log(4))
    assert gini(np.array(VECTOR) * 1000) == pytest.approx(gini(VECTOR))
    summary = inequality_indices([0, 1, 2])
    assert math.isnan(summary["atkinson_1"]) and summary["gini"] == pytest.approx(gini([0, 1, 2]))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: gini([1, -1, 3]), ValueError, "negative"),
        (lambda: gini([]), ValueError, "empty"),
        (lambda: gini([1, np.nan]), ValueError, "missing"),
        (lambda: gini([0, 0]), ValueError, "positive total"),
        (lambda: gini([1, 2], [1]), ValueError, "one weight per value"),
        (lambda: gini([1, 2], [1, -1]), ValueError, "negative"),
        (lambda: gini(["a", "b"]), TypeError, "numbers"),
        (lambda: gini([[1, 2]]), ValueError, "one-dimensional"),
        (lambda: theil(pd.DataFrame({"a": [1]})), TypeError, "one column"),
        (lambda: atkinson([1, 2], -0.5), ValueError, ">= 0"),
        (lambda: atkinson([0, 2], 1.0), ValueError, "every value > 0"),
    ],
)
def test_bad_values_say_what_to_fix(call, error, match):
    with pytest.raises(error, match=match) as info:
        call()
    assert " / " in str(info.value)


# --------------------------------------------------------------------------- eligibility


@pytest.fixture(scope="module")
def residents() -> pd.DataFrame:
    frame = load_survey(2019)
    # An illustrative rule: a transport subsidy for residents aged 70+ or living alone.
    frame["subsidy"] = frame["age_group"].isin(["70-79", "80+"]) | (frame["household"] == "single")
    return frame


def test_parity_matches_fairlearn(residents):
    eligible = residents["subsidy"]
    for groups in (residents["sex"], residents["age_group"], residents[["sex", "household"]]):
        for weights in (None, residents["design_weight"]):
            ours = demographic_parity_difference(eligible, groups, weights)
            theirs = fl_difference(eligible, eligible, sensitive_features=groups, sample_weight=weights)
            assert ours == pytest.approx(theirs, abs=1e-12)
            ours = demographic_parity_ratio(eligible, groups, weights)
            theirs = fl_ratio(eligible, eligible, sensitive_features=groups, sample_weight=weights)
            assert ours == pytest.approx(theirs, abs=1e-12)


def test_selection_rates_table_and_four_fifths():
    eligible = [1, 1, 1, 0, 1, 0, 0, 0]
    groups = pd.Series(["a"] * 4 + ["b"] * 4, name="sex")
    table = selection_rates(eligible, groups)
    assert table.index.name == "sex"
    assert table["rate"].tolist() == [0.75, 0.25]
    assert table["ratio_to_highest"].tolist() == pytest.approx([1.0, 1 / 3])
    assert table["four_fifths"].tolist() == [True, False]
    # Weights: b's one selected person stands for 3.
    weighted = selection_rates(eligible, groups, [1, 1, 1, 1, 3, 1, 1, 1])
    assert weighted.loc["b", "rate"] == pytest.approx(0.5)


def test_compare_rules_agrees_with_the_functions(residents):
    rules = {
        "subsidy": "subsidy",
        "age 70+": 'age_group in ["70-79", "80+"]',
        "alone": lambda d: d["household"] == "single",
    }
    table = compare_rules(residents, rules, "age_group", weights="design_weight")
    w = residents["design_weight"]
    alone = residents["household"] == "single"
    assert table.loc["alone", "parity_difference"] == pytest.approx(
        demographic_parity_difference(alone, residents["age_group"], w))
    assert table.loc["alone", "selected_share"] == pytest.approx(np.average(alone, weights=w))
    # An age rule selects nobody under 70: the worst possible ratio, flagged.
    assert table.loc["age 70+", "parity_ratio"] == 0.0
    assert not table.loc["age 70+", "four_fifths_ok"]


def test_bad_eligibility_inputs(residents):
    with pytest.raises(ValueError, match="True/False"):
        selection_rates([0, 2], ["a", "b"])
    with pytest.raises(ValueError, match="no group"):
        selection_rates([0, 1], ["a", None])
    with pytest.raises(ValueError, match="one group per row"):
        selection_rates([0, 1, 1], ["a", "b"])
    with pytest.raises(ValueError, match="cannot evaluate"):
        compare_rules(residents, {"bad": "no_such_column > 3"}, "sex")
    with pytest.raises(KeyError, match="not in the data"):
        compare_rules(residents, {"x": "subsidy"}, "ward")


# --------------------------------------------------------------------------- spatial access


@pytest.fixture(scope="module")
def graph():
    return load_sidewalks()


STATION = "Tsukuba Station (TX) concourse"
BUS = "Tsukuba Center bus terminal"


def test_network_zones_cut_the_corridor_into_six_blocks(graph):
    zones = network_zones(graph)
    assert list(zones.cat.categories) == [f"block {i}" for i in range(1, 7)]
    assert zones[find_node(graph, STATION)] == "block 1"
    assert zones[find_node(graph, "University of Tsukuba, central area")] == "block 6"
    assert len(zones) == graph.number_of_nodes()
    with pytest.raises(ValueError, match="labels"):
        network_zones(graph, labels=["south", "north"])


def test_the_whole_network_lies_in_sakura(graph):
    # The districts are schematic (datasets/tsukuba-geo), but they put Tsukuba Station and the
    # campus in Sakura; so does every node of the synthetic network between them.
    districts = zones_from_polygons(graph)
    assert set(districts) == {"sakura"}
    with pytest.raises(KeyError, match="no column"):
        zones_from_polygons(graph, column="ward")


def test_unlimited_access_agrees_with_module_04_reachability(graph):
    station = find_node(graph, STATION)
    zones = network_zones(graph)
    access = route_access(graph, STATION, zones, profiles=["walking", "manual_wheelchair", "qolo"])
    reach = reachability(graph, station).set_index("profile")
    for profile, part in access.groupby("profile"):
        assert part["reached"].sum() == reach.loc[profile, "reachable_nodes"]
    walking = access[access["profile"] == "walking"]
    assert (walking["share"] == 1.0).all()


def test_limited_access_agrees_with_accessible_route(graph):
    zones = network_zones(graph)
    limit = 1500.0
    access = route_access(graph, [STATION, BUS], zones, profiles=["manual_wheelchair"], max_length_m=limit)
    targets = [find_node(graph, STATION), find_node(graph, BUS)]
    expected = {}
    for node, zone in zones.items():
        lengths = []
        for target in targets:
            try:
                lengths.append(accessible_route(graph, node, target, "manual_wheelchair").length_m)
            except NoRouteError:
                pass
        # Route.length_m is rounded to 0.1 m; no node sits that close to the limit here.
        expected[zone] = expected.get(zone, 0) + (bool(lengths) and min(lengths) <= limit)
    got = access.set_index("zone")["reached"]
    assert {z: int(got[z]) for z in got.index} == expected


def test_access_inequality_by_hand():
    access = pd.DataFrame(
        {
            "zone": ["a", "b", "a", "b"],
            "profile": ["walking", "walking", "manual_wheelchair", "manual_wheelchair"],
            "people": [10.0, 10.0, 10.0, 10.0],
            "reached": [10.0, 10.0, 10.0, 5.0],
            "share": [1.0, 1.0, 1.0, 0.5],
        }
    )
    table = access_inequality(access)
    assert table.loc["walking", "gini"] == 0.0
    # Shares 1 and 0.5, equal people: Σ|x_i - x_j| = 1, so Gini = 1 / (2 · 2² · 0.75) = 1/6.
    assert table.loc["manual_wheelchair", "gini"] == pytest.approx(1 / 6)
    assert table.loc["manual_wheelchair", "lowest_zone"] == "b"
    assert table.loc["manual_wheelchair", "min_max_ratio"] == 0.5
    assert table.loc["manual_wheelchair", "overall_share"] == 0.75


def test_nobody_reaching_anything_gives_no_index():
    access = pd.DataFrame({"zone": ["a", "b"], "profile": ["qolo"] * 2, "people": [5.0, 5.0],
                           "reached": [0.0, 0.0], "share": [0.0, 0.0]})
    row = access_inequality(access).loc["qolo"]
    assert row["overall_share"] == 0.0 and math.isnan(row["gini"]) and math.isnan(row["min_max_ratio"])


def test_weights_count_people_not_places(graph):
    zones = network_zones(graph)
    people = pd.Series(0.0, index=zones.index)
    station = find_node(graph, STATION)
    people[station] = 100.0
    access = route_access(graph, STATION, zones, profiles=["manual_wheelchair"], weights=people)
    block1 = access.set_index("zone").loc["block 1"]
    assert block1["people"] == 100.0 and block1["share"] == 1.0


def test_bad_access_inputs(graph):
    zones = network_zones(graph)
    with pytest.raises(TypeError, match="Series"):
        route_access(graph, STATION, dict(zones))
    with pytest.raises(KeyError, match="not nodes"):
        route_access(graph, STATION, pd.Series({"nowhere": "block 1"}))
    with pytest.raises(ValueError, match="max_length_m"):
        route_access(graph, STATION, zones, max_length_m=0)
    with pytest.raises(ValueError, match="non-negative"):
        route_access(graph, STATION, zones, weights=pd.Series({"N001": 1.0}))
    with pytest.raises(ValueError, match="Unknown profile"):
        route_access(graph, STATION, zones, profiles=["skateboard"])
    with pytest.raises(TypeError, match="route_access"):
        access_inequality(pd.DataFrame({"x": [1]}))
