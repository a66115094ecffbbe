"""Module 05: the assignment gives identical results on two runs in fresh kernels.

The solution notebook (with its hidden tests) is executed twice with nbclient, each time in a
fresh kernel whose working folder is a new temporary directory. Every text output must be
identical, and so must every *deterministic* value the student computes, read at full
precision by a probe cell appended to the notebook: the open release (its equivalence classes,
hashed), the loss of the district means, the linkage risks, the chosen epsilon and the budget,
the PIA's register and report, the TRL stages, the access shares and the bond's payment.

Differential privacy is random by design: OpenDP draws its noise from a secure generator and
has no seed. The noisy estimates of ``means_2019`` and ``counts_2019`` (and the noisy count
``n_dp`` that sizes each mean, hence the mean's noise scale) change from run to run, so the
notebook never prints them and the probe reads only what OpenDP fixes: epsilons, bounds, the
counts' noise scale, and the identity scale x n_dp x epsilon x (1 - count_share) = 10.

Beyond "the same twice", the values are checked against what does not come from the solution:
k and l recounted with plain pandas on the released table, the linkage attack redone as a join,
the DP accuracy worked from the Laplace formula (accuracy = scale x ln(1 / alpha)), the TRL
staging rule worked by hand, the bond's payment read off the statement's table, and the Gini
coefficient from its definition.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from notebook_runs import assert_same_text, errors, execute, probe_values

pytestmark = pytest.mark.slow

NOTEBOOK = ROOT / "solutions" / "05-governance" / "assignment.ipynb"
MARKER = "M05-VALUES "

# Appended to the notebook after the last cell; reads every deterministic value the student defines.
PROBE = r'''
import hashlib as _hashlib
import json as _json

_qi = list(SURVEY_QUASI_IDENTIFIERS)
_released = open_2019.data
_classes = _released[_qi].astype(str).agg("|".join, axis=1)
_register = pilot_pia.register.to_dataframe()
_values = {
    "open_rows": [int(i) for i in _released.index],
    "open_columns": sorted(_released.columns),
    "open_classes": _hashlib.sha256("\n".join(_classes).encode()).hexdigest(),
    "open_table": [[str(c) for c in row] + [int(h)] for row, h in
                   zip(_released[_qi].itertuples(index=False), _released["happiness"], strict=True)],
    "happiness_loss_2019": float(happiness_loss_2019),
    "risk_2019": {name: {k: float(v) for k, v in row.items()}
                  for name, row in risk_2019.to_dict("index").items()},
    "epsilon_2019": float(epsilon_2019),
    "budget": [[str(r), float(e)] for r, e in
               zip(budget_2019.ledger["release"], budget_2019.ledger["epsilon"], strict=True)],
    "means_bounds": list(means_2019.bounds),
    # scale x n_dp x epsilon / 2 is 10 whatever n_dp was drawn; rounded: float rounding varies with n_dp
    "means_width": [round(float(s * n * means_2019.epsilon * 0.5), 6) for s, n in
                    zip(means_2019.table["scale"], means_2019.table["n_dp"], strict=True)],
    "counts_scale": [float(s) for s in counts_2019.table["scale"]],
    "counts_accuracy": [float(a) for a in counts_2019.table["accuracy"]],
    "register": [[str(r["id"]), str(r["stage"]), int(r["likelihood"]), int(r["impact"]), int(r["score"]),
                  int(r["residual_score"]), str(r["residual_band"])] for _, r in _register.iterrows()],
    "pia_completed": bool(pilot_pia.completed),
    "pia_markdown": _hashlib.sha256(pilot_pia.to_markdown().encode()).hexdigest(),
    "committee": {name: [int(row["trl"]), str(row["stage"])] for name, row in committee_2026.iterrows()},
    "clinic_equity": {k: (v if isinstance(v, str) else float(v)) for k, v in clinic_equity.items()},
    "bond": {k: float(v) for k, v in bond_outcome.items()},
}
print("M05-VALUES " + _json.dumps(_values, sort_keys=True, ensure_ascii=False))
'''

# pybullet's C code prints ``argv[0]=`` whenever a world connects: a connection notice, not a result.
_PYBULLET_NOTICE = frozenset({"argv[0]="})


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("module05")
    return execute(NOTEBOOK, base / "first", PROBE), execute(NOTEBOOK, base / "second", PROBE)


def test_assignment_runs_without_errors(two_runs):
    for nb in two_runs:
        assert not errors(nb), errors(nb)


def test_text_outputs_are_identical_on_two_runs(two_runs):
    # nothing noisy is printed: the DP cell shows epsilon, the release's title and the budget only
    assert_same_text(*two_runs, _PYBULLET_NOTICE)


@pytest.fixture(scope="module")
def values(two_runs):
    first, second = (probe_values(nb, MARKER) for nb in two_runs)
    assert first == second  # exact: floats at full precision, tables hashed
    return first


def test_open_release_is_k5_l2_on_five_quasi_identifiers_recounted_with_pandas(values):
    # k and l by their definitions (Sweeney 2002; Machanavajjhala et al. 2007), not the library
    qi = ["district_code", "age_group", "sex", "household", "occupation"]
    table = pd.DataFrame(values["open_table"], columns=[*qi, "happiness"])
    groups = table.groupby(qi)
    assert groups.size().min() >= 5
    assert groups["happiness"].nunique().min() >= 2
    assert not {"respondent_id", "district", "design_weight"} & set(values["open_columns"])
    from sscity.data.loaders import load_survey

    survey = load_survey(2019)
    assert len(values["open_rows"]) >= 0.95 * len(survey)
    assert table["happiness"].tolist() == survey.loc[values["open_rows"], "happiness"].tolist()
    assert 0 < values["happiness_loss_2019"] < 10


def test_linkage_risk_matches_a_join_done_by_hand(values):
    from sscity.data.loaders import load_survey
    from sscity.governance.reidentify import make_outside_roster

    survey = load_survey(2019)
    roster = make_outside_roster(survey)
    qi = ["district_code", "age_group", "sex", "household", "occupation"]
    people = survey[[*qi, "respondent_id"]].astype(str)
    # a record alone in its class, one listed person fits, and it is really them
    alone = people[people.groupby(qi)["respondent_id"].transform("size") == 1]
    listed = roster.astype({c: str for c in qi})
    fits = listed.groupby(qi).agg(n=("name", "size"), who=("truth_respondent_id", "first")).reset_index()
    joined = alone.merge(fits[fits["n"] == 1], on=qi)
    named = int((joined["who"] == joined["respondent_id"]).sum())
    risk = values["risk_2019"]
    assert risk["identifiers deleted"]["named_correctly"] == pytest.approx(named / len(survey), abs=1e-12)
    assert named > 0
    assert risk["open release"]["named_correctly"] == 0.0
    assert 0 < risk["open release"]["expected_correct"] < risk["identifiers deleted"]["expected_correct"]


def test_epsilon_meets_the_rule_by_the_laplace_formula_and_the_budget_adds_up(values):
    from sscity import survey as sv
    from sscity.data.loaders import load_survey

    data = load_survey(2019)
    eps = values["epsilon_2019"]
    sampling = sv.group_estimates(data, "district_code", "happiness", level=0.95)
    n = data["district_code"].value_counts()
    ratios = []
    for district, row in sampling.iterrows():
        scale = 10 / (n[district] * eps * 0.5)          # (upper - lower) / (n * epsilon for the mean)
        accuracy = scale * math.log(1 / 0.05)           # Laplace: P(|noise| > scale ln(1/alpha)) = alpha
        ratios.append(accuracy / ((row["upper"] - row["lower"]) / 2))
    assert max(ratios) == pytest.approx(0.5, rel=1e-3)  # the smallest epsilon meets the rule just
    assert values["means_bounds"] == [0, 10]
    assert values["means_width"] == pytest.approx([10.0] * 6, rel=1e-6)
    total = sum(e for _, e in values["budget"])
    assert total == pytest.approx(3.0, abs=1e-12) and values["budget"][0][1] == eps
    assert values["counts_scale"] == pytest.approx([1 / (3.0 - eps)] * 6, rel=1e-9)


def test_pia_register_is_complete_and_treated(values):
    register = values["register"]
    assert values["pia_completed"] is True
    assert {"MB-1", "MB-2", "MB-3"} <= {r[0] for r in register}
    for _, _, likelihood, impact, score, residual, band in register:
        assert score == likelihood * impact and residual <= score and band != "high"
    assert {r[1] for r in register} >= {"use", "share"}


def test_trl_staging_follows_the_rule_worked_by_hand(values):
    # the forms of the statement: unbroken 'yes' from TRL 1; deployment needs >= 7 and a signed-off PIA
    assert values["committee"] == {
        "delivery robot on campus": [7, "deployment"],
        "shared-control wheelchair": [6, "living_lab"],
        "face-recognition gate": [3, "lab"],
        "air-quality mesh": [9, "living_lab"],
        "drone medicine delivery": [5, "living_lab"],
    }


def test_clinic_access_shares_and_gini_from_the_definition(values):
    from sscity.governance.equity import network_zones, route_access
    from sscity.mobility.routing import load_sidewalks

    graph = load_sidewalks()
    zones = network_zones(graph)
    access = route_access(graph, ["Tsukuba Center bus terminal"], zones, profiles=("manual_wheelchair",),
                          max_length_m=800)
    shares, places = access["share"].to_numpy(float), access["people"].to_numpy(float)
    mean = np.average(shares, weights=places)
    # Gini = sum_i sum_j w_i w_j |x_i - x_j| / (2 W^2 mean)
    by_hand = (places[:, None] * places[None, :] * np.abs(shares[:, None] - shares[None, :])).sum() / (
        2 * places.sum() ** 2 * mean)
    equity = values["clinic_equity"]
    assert equity["gini"] == pytest.approx(by_hand, abs=1e-12)
    assert equity["profile_share"] == pytest.approx(mean, abs=1e-12)
    assert equity["gap"] == pytest.approx(equity["walking_share"] - equity["profile_share"], abs=1e-12)
    assert equity["walking_share"] >= equity["profile_share"] > 0


def test_bond_pays_the_rungs_of_the_statement(values):
    # 33.5 % participation -> the 30 % rung, 1,600,000; 47.0 % improved -> the 45 % rung, 2,400,000
    assert values["bond"]["payment"] == 4_000_000
    assert values["bond"]["annual_return"] == pytest.approx((4_000_000 / 4_500_000) ** 0.5 - 1, abs=1e-9)
