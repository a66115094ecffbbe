"""TRL: the Horizon 2020 definitions, the in-order questions, and the deck's staging proposal."""

from __future__ import annotations

import pandas as pd
import pytest
from sscity.governance.trl import (
    TRL_LEVELS,
    Stage,
    assess_trl,
    stage_for,
    stage_pilots,
    trl_table,
)

# Horizon 2020 Work Programme 2014-2015, General Annexes, G. Technology readiness levels (TRL),
# extract from Part 19 of Commission Decision C(2014)4995, verbatim.
ANNEX_G = {
    1: "basic principles observed",
    2: "technology concept formulated",
    3: "experimental proof of concept",
    4: "technology validated in lab",
    5: "technology validated in relevant environment (industrially relevant environment in the case "
       "of key enabling technologies)",
    6: "technology demonstrated in relevant environment (industrially relevant environment in the "
       "case of key enabling technologies)",
    7: "system prototype demonstration in operational environment",
    8: "system complete and qualified",
    9: "actual system proven in operational environment (competitive manufacturing in the case of key "
       "enabling technologies; or in space)",
}


def test_levels_are_annex_g_verbatim_and_translated():
    assert {level.level: level.name_en for level in TRL_LEVELS} == ANNEX_G
    table = trl_table()
    assert list(table.index) == list(range(1, 10))
    for column in ("name_ja", "question_en", "question_ja", "evidence_en", "evidence_ja"):
        assert table[column].str.len().min() > 3, column


@pytest.mark.parametrize("answers, level, ignored", [
    ([], 0, []),
    ([False], 0, []),
    ([True] * 9, 9, []),
    ([True, True, True, True, True, False, True], 5, [7]),  # a street trial without TRL 6 evidence
    ({1: True, 2: True, 4: True}, 2, [4]),                  # the TRL 3 question was not answered
    ({1: True, 2: True, 3: True, 4: None}, 3, []),
    ([True, False, True, True, True, True, True, True, True], 1, [3, 4, 5, 6, 7, 8, 9]),
])
def test_level_is_the_highest_with_all_earlier_evidence(answers, level, ignored):
    result = assess_trl(answers)
    assert result.level == level
    assert result.ignored == ignored
    assert list(result.table()["counts"]) == [k <= level for k in range(1, 10)]


def test_next_level_names_the_evidence_needed():
    assert assess_trl([True] * 4).next_level.level == 5
    assert "relevant environment" in assess_trl([True] * 4).next_level.evidence_en
    assert assess_trl([True] * 9).next_level is None


@pytest.mark.parametrize("trl, pia, stage", [
    (0, False, "lab"), (4, True, "lab"),
    (5, False, "living_lab"), (6, True, "living_lab"),
    (7, False, "living_lab"), (9, False, "living_lab"),   # TRL >= 7 but no completed PIA
    (7, True, "deployment"), (9, True, "deployment"),
])
def test_stage_follows_the_decks_proposal(trl, pia, stage):
    result = stage_for(trl, pia_completed=pia)
    assert isinstance(result, Stage) and result.stage == stage
    assert result.reason_en and result.reason_ja and result.next_en and result.next_ja
    assert " / " in result.label


def test_without_pia_the_next_step_is_the_pia():
    result = stage_for(8, pia_completed=False)
    assert "Complete the PIA" in result.next_en and "PIA" in result.next_ja


def test_stage_accepts_an_assessment_and_a_pia_like_object():
    class FakePIA:
        completed = True

    assert stage_for(assess_trl([True] * 7), FakePIA()).stage == "deployment"


def test_stage_pilots_table():
    pilots = pd.DataFrame([
        {"name": "Qolo on the campus path", "trl": 6, "pia_completed": False},
        {"name": "on-demand bus", "answers": [True] * 8, "pia_completed": True},
        {"name": "people counter", "answers": [True, True, True, False, True], "pia_completed": None},
    ])
    table = stage_pilots(pilots)
    assert list(table["trl"]) == [6, 8, 3]
    assert list(table["stage"]) == ["living_lab", "deployment", "lab"]
    assert table.loc[2, "claimed_but_not_counted"] == [5]


@pytest.mark.parametrize("bad", [
    "yes", [True] * 10, {0: True}, {10: True}, {1: "yes"}, [1, 1],
])
def test_bad_answers_are_refused_with_a_reason(bad):
    with pytest.raises(ValueError, match=" / "):
        assess_trl(bad)


def test_bad_stage_inputs_are_refused_with_a_reason():
    for trl in (-1, 10, 4.5, True):
        with pytest.raises(ValueError, match=" / "):
            stage_for(trl)
    with pytest.raises(ValueError, match=" / "):
        stage_for(7, pia_completed="done")
    with pytest.raises(ValueError, match=" / "):
        stage_pilots([{"trl": 3}])
    with pytest.raises(ValueError, match=" / "):
        stage_pilots([{"name": "no level"}])
