"""Module 06: the numbers its prose quotes are what the course's code computes.

Each case quotes the exact phrase of a lesson or README cell and recomputes the number with the
course's own code (see ``tests/prose_facts.py``): the SYNTHETIC happiness survey
(``sscity.survey``, ``sscity.city.district_wellbeing``), the SYNTHETIC neighbourhood networks
(``sscity.data.neighbourhoods`` with ``sscity.mobility.routing``), the static tip-over model
(``sscity.mobility.stability``) and the evaluation designs (``sscity.evaluation``: design
effect, Hussey & Hughes power, DiD on SYNTHETIC pilot panels, exact Poisson intervals). Nothing
here runs the notebook. Real-world figures that come from the deck, standards and papers are
listed, with their sources, in the module README's facts table. The lesson's choices are
repeated here (2019 wave and k = 10 for the 80+ table; 2017 wave, ages 70+ and self-rated
health 4-5 for section 3; Sakura; the 1:12 and 15 % slopes; clusters of 20 and ICC 0.05 (15
people per neighbourhood and period for the stepped wedge); the stepped-wedge seed 2026 and the
six neighbourhoods in three steps; pilot panels with seed 324 and five clusters per arm; 3
incidents in 2,400 km); when the lesson changes them, this file must follow.
"""

from __future__ import annotations

from functools import cache

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from prose_facts import check_quoted, module_text
from scipy import stats
from sscity.city import district_wellbeing
from sscity.data import load_survey
from sscity.data.neighbourhoods import make_neighbourhood
from sscity.data.tsukuba import BY_CODE
from sscity.evaluation import (
    cluster_design_effect,
    did_estimate,
    poisson_rate_interval,
    simulate_pilot_panel,
    stepped_wedge_power,
    stepped_wedge_schedule,
)
from sscity.mobility.routing import barrier_table, reachability
from sscity.mobility.stability import max_safe_deceleration
from sscity.survey import weighted_proportion

MODULE = "06-capstone"
AREA_TYPE = {code: district.area_type for code, district in BY_CODE.items()}


@cache
def _older_2017() -> pd.DataFrame:
    survey = load_survey(2017)
    older = survey[survey["age_group"].astype(str).isin(["70-79", "80+"])]
    return older.assign(
        area_type=older["district_code"].astype(str).map(AREA_TYPE),
        health_4_or_5=(older["self_rated_health"] >= 4).astype(int),
        lives_in_periphery=(older["district_code"].astype(str).map(AREA_TYPE) == "periphery").astype(int),
    )


@cache
def _health_sd() -> float:
    older = _older_2017()
    sakura = older[older["district_code"].astype(str) == "sakura"]
    return float(np.sqrt(np.cov(sakura["self_rated_health"], aweights=sakura["design_weight"])))


# --- section 2: one platform, small cells ------------------------------------------------------

def test_district_cells_and_the_80_plus_table():
    survey = load_survey(2019)
    counts = survey.groupby("district_code", observed=True).size()
    check_quoted(MODULE, "with 228 or more respondents per district", "228", counts.min())
    published, suppressed = district_wellbeing(wave=2019)
    assert suppressed == [] and len(published) == 6
    aged_80 = survey[survey["age_group"].astype(str) == "80+"]
    _, suppressed_80 = district_wellbeing(aged_80, k=10)
    check_quoted(MODULE, "**3** of the six district cells of the 80+ table", "3", len(suppressed_80))


# --- section 3: weights when districts are pooled ----------------------------------------------

def test_design_weights_of_2017():
    weights = load_survey(2017).groupby("district_code", observed=True)["design_weight"].first()
    check_quoted(MODULE, "stands for about 189 adults", "189", weights["yatabe"])
    check_quoted(MODULE, "one of Kukizaki for about 40", "40", weights["kukizaki"])
    assert weights.idxmax() == "yatabe"


def test_older_respondents_and_weighted_shares():
    older = _older_2017()
    check_quoted(MODULE, "Of the **302** respondents aged 70 and over", "302", len(older))
    unweighted = older["lives_in_periphery"].mean()
    weighted = weighted_proportion(older["lives_in_periphery"], older["design_weight"]).estimate
    check_quoted(MODULE, "**64.9** % live in a peripheral district", "64.9", unweighted, percent=True)
    check_quoted(MODULE, "only **34.4** % of the city's residents", "34.4", weighted, percent=True)
    check_quoted(MODULE, "64.9 % of the older", "64.9", unweighted, percent=True)
    check_quoted(MODULE, "34.4 % of the older", "34.4", weighted, percent=True)
    # by hand: weighted share = sum of weights in the periphery / sum of all weights
    periphery_weight = older.loc[older["area_type"] == "periphery", "design_weight"].sum()
    by_hand = periphery_weight / older["design_weight"].sum()
    assert weighted == pytest.approx(by_hand)
    health_w = weighted_proportion(older["health_4_or_5"], older["design_weight"]).estimate
    check_quoted(MODULE, "(25.2 % against 24.5 %)", "25.2", health_w, percent=True)
    check_quoted(MODULE, "(25.2 % against 24.5 %)", "24.5", older["health_4_or_5"].mean(), percent=True)


def test_older_respondents_per_district():
    counts = _older_2017().groupby("district_code", observed=True).size()
    check_quoted(MODULE, "with 38 to 66 older respondents per district", "38", counts.min())
    check_quoted(MODULE, "with 38 to 66 older respondents per district", "66", counts.max())


# --- section 4: the neighbourhoods ------------------------------------------------------------

def _open(graph: nx.Graph) -> nx.Graph:
    kept = graph.copy()
    kept.remove_edges_from([(u, v) for u, v, d in graph.edges(data=True) if d["condition"] == "closed"])
    return kept


def test_centre_has_no_barriers_periphery_has_dozens():
    assert "Sakura's planned streets have none" in module_text(MODULE)
    for code, district in BY_CODE.items():
        table = barrier_table(make_neighbourhood(code), profiles=("manual_wheelchair", "qolo"))
        if district.area_type == "centre":
            assert table.empty, f"{code}: the lesson says the centre districts have no barrier segment"
        else:
            assert 20 <= (table["manual_wheelchair"] != "").sum() <= 35, (
                f"{code}: the lesson says every peripheral district has a couple of dozen barrier segments")


def test_sakura_reachability_from_the_community_centre():
    sakura = make_neighbourhood("sakura")
    centre = next(n for n, d in sakura.nodes(data=True) if d["kind"] == "community_centre")
    shares = reachability(_open(sakura), centre).set_index("profile")["share"]
    assert shares.min() == 1.0, "the lesson says no closure cuts anybody off in Sakura"
    steepest = max(abs(d["slope_percent"]) for _, _, d in sakura.edges(data=True))
    assert steepest < 5.0


# --- section 5: tip-over limits ----------------------------------------------------------------

def test_braking_limits():
    check_quoted(MODULE, "up to **2.84** m/s² standing", "2.84", max_safe_deceleration("standing"))
    check_quoted(MODULE, "only **2.02** m/s² standing", "2.02", max_safe_deceleration("standing", -8.33))
    check_quoted(MODULE, "against 2.70 seated", "2.70", max_safe_deceleration("seated", -8.33))
    check_quoted(MODULE, "falls to **1.35** m/s²", "1.35", max_safe_deceleration("standing", -15.0))
    check_quoted(MODULE, "(seated: 2.03)", "2.03", max_safe_deceleration("seated", -15.0))
    assert max_safe_deceleration("standing", -15.0) < 1.5 < max_safe_deceleration("standing", -8.33)


# --- section 7: evaluation design -------------------------------------------------------------

def test_mde_rule_of_thumb_and_design_effect():
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    check_quoted(MODULE, "about 2.8 standard deviations", "2.8", z)
    deff = cluster_design_effect(20, 0.05)
    check_quoted(MODULE, "the design effect is **1.95**", "1.95", deff)
    check_quoted(MODULE, "195 people recruited in clusters", "195", 100 * deff)


def test_stepped_wedge_power():
    wedge = stepped_wedge_schedule(6, 3, seed=2026)
    parallel = pd.DataFrame([[0, 1, 1, 1]] * 3 + [[0, 0, 0, 0]] * 3)
    no_baseline = pd.DataFrame([[1, 1, 1, 1]] * 3 + [[0, 0, 0, 0]] * 3)

    def power(schedule, icc):
        return stepped_wedge_power(0.3, schedule, _health_sd(), icc, 15)

    check_quoted(MODULE, "the wedge (power **0.41**)", "0.41", power(wedge, 0.05))
    check_quoted(MODULE, "than the one without (**0.32**)", "0.32", power(no_baseline, 0.05))
    check_quoted(MODULE, "keeps its power (**0.43**)", "0.43", power(wedge, 0.2))
    check_quoted(MODULE, "falls to **0.13**", "0.13", power(no_baseline, 0.2))
    assert abs(power(wedge, 0.05) - power(parallel, 0.05)) < 0.01   # "about as strong"
    assert max(power(s, i) for s in (wedge, parallel, no_baseline) for i in (0.05, 0.2)) < 0.8


def test_did_on_the_two_panels():
    works = simulate_pilot_panel(324, effect=0.8, n_clusters_per_arm=5)
    trend = simulate_pilot_panel(324, effect=0.0, pre_trend=0.4, n_clusters_per_arm=5)
    results = [did_estimate(p[p["round"].isin([0, 1])], "wellbeing", "group", "after", cluster="cluster")
               for p in (works, trend)]
    check_quoted(MODULE, "**0.81** on the left", "0.81", results[0].estimate)
    check_quoted(MODULE, "**0.42** on the right", "0.42", results[1].estimate)
    check_quoted(MODULE, "from 0.07 to 0.76 that excludes 0", "0.07", results[1].lower)
    check_quoted(MODULE, "from 0.07 to 0.76 that excludes 0", "0.76", results[1].upper)
    # by hand: the DiD is the difference of the four cell means
    means = trend[trend["round"].isin([0, 1])].groupby(["group", "round"])["wellbeing"].mean()
    assert results[1].estimate == pytest.approx((means[1, 1] - means[1, 0]) - (means[0, 1] - means[0, 0]))


# --- section 8: the exact Poisson interval -------------------------------------------------------

def test_incident_rate_interval():
    low, high = poisson_rate_interval(3, 2.4)
    check_quoted(MODULE, "The rate is **1.25** incidents per 1,000 km", "1.25", 3 / 2.4)
    check_quoted(MODULE, "from **0.26** to **3.65**", "0.26", low)
    check_quoted(MODULE, "from **0.26** to **3.65**", "3.65", high)
    # Garwood by hand: the Poisson tails at the bounds are 2.5 % each
    assert stats.poisson.sf(2, low * 2.4) == pytest.approx(0.025, abs=1e-9)
    assert stats.poisson.cdf(3, high * 2.4) == pytest.approx(0.025, abs=1e-9)
    # "a one-sided 95 % lower bound is the lower end of a two-sided 90 % interval"
    one_sided = poisson_rate_interval(3, 2.4, side="lower")[0]
    assert one_sided == pytest.approx(poisson_rate_interval(3, 2.4, level=0.90)[0]) and one_sided > low
