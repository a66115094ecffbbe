"""Module 05: the numbers its prose quotes are what ``sscity.governance`` computes.

Each case quotes the exact phrase of a lesson or README cell and recomputes the number with
the course's own code (see ``tests/prose_facts.py``): the SYNTHETIC 2017 wave of the
happiness survey anonymised with ``sscity.governance.anonymise`` and attacked with
``sscity.governance.reidentify``, OpenDP's noise scales and accuracies through
``sscity.governance.dp`` (deterministic: never a noisy value), the inequality and parity
measures of ``sscity.governance.equity``, and Hachioji's SIB schedule of
``sscity.governance.sib``. Real-world figures that come from laws, standards, papers and
city pages are listed, with their sources, in the module README's facts table.
The lesson's choices are repeated here (quasi-identifiers district, age group, sex and
household; occupation not published; age two levels up, household one level; k = 5 with at
most 5 % suppressed; ε = 0.5 for the counts; the three eligibility rules; Tsukuba Station's
concourse as the destination); when the lesson changes them, this file must follow.
"""

from __future__ import annotations

from functools import cache

import pytest
from prose_facts import check_quoted
from sscity.data.loaders import load_register, load_survey
from sscity.governance.anonymise import Release, anonymity_summary
from sscity.governance.dp import compare_with_sampling_error, dp_counts, smallest_epsilon
from sscity.governance.equity import (
    access_inequality,
    compare_rules,
    inequality_indices,
    network_zones,
    route_access,
)
from sscity.governance.reidentify import compare_linkage, make_outside_roster
from sscity.governance.sib import HACHIOJI_OUTCOMES, hachioji_schedules, outcome_payments
from sscity.mobility.routing import load_sidewalks
from sscity.survey import group_estimates

MODULE = "05-governance"
QUASI_IDENTIFIERS = ("district_code", "age_group", "sex", "household")


@cache
def _survey():
    return load_survey(2017)


@cache
def _raw() -> Release:
    return (Release.of(_survey(), quasi_identifiers=QUASI_IDENTIFIERS, sensitive="happiness")
            .drop_identifiers()
            .drop_columns(["occupation"]))


@cache
def _release() -> Release:
    return _raw().generalise({"age_group": 2, "household": 1}).suppress_small_classes(
        k=5, max_share=0.05)


@cache
def _raw_summary():
    return anonymity_summary(_raw().data, list(QUASI_IDENTIFIERS), "happiness")


@cache
def _attack():
    roster = make_outside_roster(_survey())
    return len(roster), compare_linkage({"raw": _raw(), "release": _release()}, roster)


@cache
def _plan():
    return compare_with_sampling_error(_survey(), "district_code", "happiness", (0, 10),
                                       (0.1, 0.2, 0.5, 1.0, 2.0, 5.0), weights="design_weight")


def _district_means(frame):
    return group_estimates(frame, "district_code", "happiness", weights="design_weight")["estimate"]


@cache
def _rules():
    rules = {
        "aged 70 or over": "age_group in ['70-79', '80+']",
        "poor or fair health": "self_rated_health <= 2",
        "living alone": "household == 'single'",
    }
    return compare_rules(_survey(), rules, by="district_code", weights="design_weight")


@cache
def _access():
    graph = load_sidewalks()
    access = route_access(graph, ["Tsukuba Station (TX) concourse"], network_zones(graph),
                          profiles=("walking", "manual_wheelchair", "qolo"))
    return access_inequality(access)


# --- section 2: anonymisation -----------------------------------------------------------------

def test_raw_table_figures():
    summary = _raw_summary()
    check_quoted(MODULE, "of **1,418** respondents", "1,418", summary["records"])
    check_quoted(MODULE, "**113** are alone in their class", "113",
                 summary["records unique on the quasi-identifiers"])
    check_quoted(MODULE, "across **372** classes", "372", summary["equivalence classes"])
    assert summary["k (k-anonymity)"] == 1


def test_release_figures():
    release = _release()
    check_quoted(MODULE, "The release is **5**-anonymous", "5", release.k)
    check_quoted(MODULE, "and **3**-diverse", "3", release.l)
    check_quoted(MODULE, "**15** records were suppressed", "15", len(release.suppressed_rows))
    check_quoted(MODULE, "**1,403** released", "1,403", len(release.data))
    check_quoted(MODULE, "The t of **0.22**", "0.22", release.t)


def test_what_the_district_means_lose():
    change = (_district_means(_release().data) - _district_means(_survey())).abs().max()
    check_quoted(MODULE, "the largest change is **0.05** points", "0.05", change)


def test_age_profile_is_lost():
    bands = set(_release().data["age_group"].astype(str))
    assert bands == {"20-59", "60+"}


# --- section 3: linkage attack ----------------------------------------------------------------

def test_linkage_attack_before_and_after():
    roster_size, attack = _attack()
    check_quoted(MODULE, "roster of 3,425", "3,425", roster_size)
    check_quoted(MODULE, "**27** records are uniquely re-identified", "27",
                 attack.loc["raw", "uniquely re-identified"])
    check_quoted(MODULE, "and **8** of those links are correct", "8",
                 attack.loc["raw", "correctly"])
    check_quoted(MODULE, "**0** records are unique in the release", "0",
                 attack.loc["release", "unique in release"])
    check_quoted(MODULE, "(27 unique links with names deleted only, 0 after)", "27",
                 attack.loc["raw", "uniquely re-identified"])
    check_quoted(MODULE, "27 unique links, 8 correct; 0 after", "8",
                 attack.loc["raw", "correctly"])
    assert attack.loc["release", "uniquely re-identified"] == 0


# --- section 4: differential privacy (scales and accuracies only) ------------------------------

def test_count_scale_and_accuracy():
    table = dp_counts(_survey(), "district_code", 0.5).table
    # Laplace scale of a count is sensitivity / epsilon = 1 / 0.5 (Dwork & Roth 2014, 3.3)
    check_quoted(MODULE, "scale 1/ε = **2.0** at ε = 0.5", "2.0", table["scale"].iloc[0])
    check_quoted(MODULE, "within **6.43** of the true one", "6.43", table["accuracy"].iloc[0])
    check_quoted(MODULE, "scale 2.0, 95 % accuracy 6.43", "6.43", table["accuracy"].iloc[0])


def test_dp_error_beside_sampling_error():
    plan = _plan()
    at_one = plan.loc[plan["epsilon"] == 1.0, "ratio"]
    check_quoted(MODULE, "(ratio **1.02** to", "1.02", at_one.min())
    check_quoted(MODULE, "to **1.19**)", "1.19", at_one.max())
    check_quoted(MODULE, "ratio at ε = 1: 1.02 to 1.19", "1.19", at_one.max())
    inflation = plan.loc[plan["epsilon"] == 1.0, "sd_inflation"]
    check_quoted(MODULE, "ε = 1 is **1.38** to", "1.38", inflation.min())
    check_quoted(MODULE, "to **1.49** times the survey's", "1.49", inflation.max())
    check_quoted(MODULE, "only from ε = 2 on", "2", smallest_epsilon(plan, max_ratio=1.0))


# --- section 6: equity --------------------------------------------------------------------------

def test_inequality_example():
    indices = inequality_indices([2, 4, 6, 8, 30])
    # Published test vector: Gini 0.48, Theil 0.42448..., Atkinson(0.5) 0.19692
    check_quoted(MODULE, "Gini **0.48**", "0.48", indices["gini"])
    check_quoted(MODULE, "Theil **0.4245**", "0.4245", indices["theil"])
    check_quoted(MODULE, "exact value is 0.42448…", "0.42448", indices["theil"])
    check_quoted(MODULE, "Atkinson (ε = 0.5) **0.1969**", "0.1969", indices["atkinson_0.5"])
    assert indices["theil"] == pytest.approx(0.4244846, abs=5e-8)


def test_district_gini():
    population = load_register().groupby("district_code", observed=True)["population"].sum()
    means = _district_means(_survey())
    gini = inequality_indices(means, weights=population.reindex(means.index))["gini"]
    check_quoted(MODULE, "the district Gini (0.024)", "0.024", gini)


def test_eligibility_rules():
    rules = _rules()
    check_quoted(MODULE, "(parity ratio **0.65**:", "0.65",
                 rules.loc["aged 70 or over", "parity_ratio"])
    check_quoted(MODULE, "closer to parity (ratio **0.88**)", "0.88",
                 rules.loc["poor or fair health", "parity_ratio"])
    check_quoted(MODULE, "parity ratios (0.65, 0.88)", "0.88",
                 rules.loc["poor or fair health", "parity_ratio"])
    assert not rules.loc["living alone", "four_fifths_ok"]


def test_access_to_the_station():
    inequality = _access()
    wheelchair = inequality.loc["manual_wheelchair"]
    check_quoted(MODULE, "from only **88.2** % of the places", "88.2",
                 wheelchair["overall_share"], percent=True)
    check_quoted(MODULE, "in the worst block from only **80.0** %", "80.0",
                 wheelchair["lowest_share"], percent=True)
    check_quoted(MODULE, "access shares (88.2 %, 80.0 %)", "80.0",
                 wheelchair["lowest_share"], percent=True)
    assert inequality.loc["walking", "overall_share"] == 1.0


# --- section 7: the SIB -------------------------------------------------------------------------

def test_hachioji_payments():
    payments = outcome_payments(hachioji_schedules(), HACHIOJI_OUTCOMES)
    # Published: ¥2,960,000 for follow-up, ¥5,401,000 in all (Nikkei BP, 7 Dec 2020)
    check_quoted(MODULE, "the city paid **¥2,960,000**", "2,960,000",
                 payments.loc["follow_up", "payment"])
    check_quoted(MODULE, "would give only **¥1,891,000**", "1,891,000",
                 payments.loc["follow_up", "linear_payment"])
    check_quoted(MODULE, "total ¥5,401,000", "5,401,000", payments["payment"].sum())
