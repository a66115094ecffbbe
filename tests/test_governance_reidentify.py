"""sscity.governance.reidentify: the linkage attack, checked by hand and by a plain pandas merge.

The outside list is SYNTHETIC (make_outside_roster); these tests check what the attack counts,
not how many people a real list would expose.
"""

from __future__ import annotations

import pandas as pd
import pytest
from sscity.data.loaders import load_register, load_survey
from sscity.governance.anonymise import SURVEY_QUASI_IDENTIFIERS, Release
from sscity.governance.reidentify import (
    TRUTH_COLUMN,
    compare_linkage,
    linkage_attack,
    make_outside_roster,
)

QI = list(SURVEY_QUASI_IDENTIFIERS)


@pytest.fixture(scope="module")
def survey():
    return load_survey(2019)


@pytest.fixture(scope="module")
def roster(survey):
    return make_outside_roster(survey)


def test_roster_is_seeded_and_says_who_is_who(survey, roster):
    assert len(roster) == round(0.3 * len(survey)) + 3000
    assert list(roster.columns) == ["name", *QI, TRUTH_COLUMN]
    members = roster.dropna(subset=[TRUTH_COLUMN])
    assert len(members) == round(0.3 * len(survey)) and members[TRUTH_COLUMN].is_unique
    # respondents on the list carry their true quasi-identifiers
    truth = survey.set_index("respondent_id").loc[members[TRUTH_COLUMN], QI].astype(str)
    assert (truth.to_numpy() == members[QI].to_numpy()).all()
    # the others come from cells of the register
    cells = set(map(tuple, load_register()[["district_code", "age_group", "sex"]].astype(str).to_numpy()))
    others = roster[roster[TRUTH_COLUMN].isna()]
    assert set(map(tuple, others[["district_code", "age_group", "sex"]].to_numpy())) <= cells
    pd.testing.assert_frame_equal(make_outside_roster(survey), roster)
    assert not make_outside_roster(survey, seed=1).equals(roster)
    everyone = make_outside_roster(survey, share_of_respondents=1.0, others=0)
    assert sorted(everyone[TRUTH_COLUMN]) == sorted(survey.respondent_id)


def test_attack_on_a_hand_made_table():
    # four respondents; the list names two of them and one stranger
    original = pd.DataFrame({"respondent_id": ["r1", "r2", "r3", "r4"], "age": ["20s", "30s", "30s", "40s"],
                             "sex": ["f", "m", "m", "f"], "happiness": [7, 5, 6, 9]})
    roster = pd.DataFrame({"name": ["Ann", "Bob", "Cid"], "age": ["20s", "30s", "40s"],
                           "sex": ["f", "m", "f"], TRUTH_COLUMN: ["r1", "r2", None]})
    roster[TRUTH_COLUMN] = roster[TRUTH_COLUMN].astype("string")
    release = Release.of(original, ["age", "sex"], "happiness", hierarchies={}).drop_identifiers()
    result = linkage_attack(release, roster)
    # r1 is unique and Ann alone fits: right. r4 is unique and Cid alone fits: wrong (r4 is
    # not on the list). r2 and r3 share a class: not unique, Bob is not linked.
    assert (result.records, result.on_outside_list, result.unique_in_release) == (4, 2, 2)
    assert (result.uniquely_reidentified, result.correct, result.wrong) == (2, 1, 1)
    assert result.links.set_index("name")["correct"].to_dict() == {"Ann": True, "Cid": False}
    assert result.expected_correct == pytest.approx(1 + 1 / 2)  # r1 surely, r2 one time in two
    # a DataFrame release: "*" matches anyone, so nobody is alone in what fits
    starred = release.data.assign(sex="*")
    blurred = linkage_attack(starred, roster, quasi_identifiers=["age", "sex"], original=original)
    assert blurred.uniquely_reidentified == 2 and blurred.correct == 1  # ages still single Ann and Cid
    assert linkage_attack(starred.assign(age="*"), roster, quasi_identifiers=["age", "sex"],
                          original=original).uniquely_reidentified == 0


def test_raw_release_agrees_with_a_plain_merge(survey, roster):
    result = linkage_attack(Release.of(survey).drop_identifiers(), roster)
    # the same count by another road: combinations seen once in the survey and once on the list
    key = survey[QI].astype(str).agg("/".join, axis=1)
    listed_key = roster[QI].agg("/".join, axis=1)
    once = key.map(key.value_counts()) == 1
    fits = key.map(listed_key.value_counts()).fillna(0)
    linked = once & (fits == 1)
    truth_of_key = dict(zip(listed_key, roster[TRUTH_COLUMN], strict=True))
    right = linked & (key.map(truth_of_key) == survey.respondent_id).fillna(False)
    assert result.unique_in_release == once.sum()
    assert result.uniquely_reidentified == linked.sum()
    assert result.correct == right.sum() > 0
    assert result.on_outside_list == roster[TRUTH_COLUMN].notna().sum()


def test_anonymisation_stops_unique_linkage(survey, roster):
    raw = Release.of(survey).drop_identifiers()
    k5 = raw.generalise({"age_group": 1, "district_code": 1}).suppress_small_classes(k=5)
    table = compare_linkage({"identifiers deleted": raw, "k = 5": k5, "Mondrian k = 5": raw.mondrian(5)},
                            roster)
    before, after = table.loc["identifiers deleted"], table.loc["k = 5"]
    assert before["uniquely re-identified"] > 0 and before["correctly"] > 0
    assert after["uniquely re-identified"] == 0 and after["correctly"] == 0
    assert after["records"] == len(k5.data)
    for name in ("k = 5", "Mondrian k = 5"):
        # the prosecutor's expected hits are at most 1/k of the listed respondents
        assert table.loc[name, "expected correct (random pick in class)"] <= \
            table.loc[name, "on the outside list"] / 5 + 1e-9
    expected = "expected correct (random pick in class)"
    assert before[expected] > after[expected]


def test_bad_input_says_what_to_fix(survey, roster):
    raw = Release.of(survey).drop_identifiers()
    with pytest.raises(ValueError, match="original"):
        linkage_attack(raw.data, roster)
    with pytest.raises(ValueError, match="no column"):
        linkage_attack(raw, roster.drop(columns="name"))
    with pytest.raises(TypeError, match="Release or a DataFrame"):
        linkage_attack([1, 2], roster)
    with pytest.raises(ValueError, match="between 0 and 1"):
        make_outside_roster(survey, share_of_respondents=1.5)
    with pytest.raises(ValueError, match="others"):
        make_outside_roster(survey, others=-1)
    with pytest.raises(ValueError, match="at least one"):
        compare_linkage({}, roster)
