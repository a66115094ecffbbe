"""Course lint as tests: every authoring rule holds over the whole course, and each rule
can fail (shown on small notebooks built here)."""

from __future__ import annotations

import pytest
from conftest import ROOT, graded, make_notebook, new_code_cell, new_markdown_cell
from sscity.course import lint
from sscity.course.notebooks import iter_notebooks, module_ids

SOURCES = list(iter_notebooks(ROOT, "solutions"))
RELEASES = list(iter_notebooks(ROOT, "modules"))
BOTH = SOURCES + RELEASES
EN_JA = "Run the cell and check the result. / セルを実行して結果を確かめましょう。"


def test_the_course_has_modules_and_each_is_released():
    assert module_ids(ROOT, "solutions"), "no module in solutions/"
    assert module_ids(ROOT, "solutions") == module_ids(ROOT, "modules")
    for module in module_ids(ROOT, "solutions"):
        names = {p.name for p in (ROOT / "solutions" / module).iterdir()}
        assert {"README.md", "lesson.ipynb", "assignment.ipynb"} <= names, module


@pytest.mark.parametrize("check, notebooks", [
    (lint.check_unique_grade_ids, SOURCES),
    (lint.check_schema_version, BOTH),
    (lint.check_points_total, SOURCES),
    (lint.check_answers_followed_by_tests, SOURCES),
    (lint.check_setup_cells, SOURCES),
    (lint.check_answers_not_builtins, SOURCES),
    (lint.check_tiers, SOURCES),
    (lint.check_no_outputs, BOTH),
    (lint.check_bilingual_markdown, RELEASES),  # what learners read, stubs included
    (lint.check_bilingual_test_messages, RELEASES),
    (lint.check_figures_described, SOURCES),
], ids=lambda v: v.__name__ if callable(v) else "")
def test_course_rule(check, notebooks):
    problems = check(notebooks)
    assert not problems, "\n".join(problems)


def test_modules_hold_no_solutions_hidden_tests_or_mark_schemes():
    problems = lint.check_no_leaks(SOURCES, RELEASES)
    assert not problems, "\n".join(problems)
    for path in (ROOT / "modules").rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "MARK SCHEME"):
                assert marker not in text, f"{path} contains {marker}"
    assert not list((ROOT / "modules").rglob("known-wrong.toml"))


def test_every_autograded_answer_has_a_known_wrong_answer():
    problems = lint.check_known_wrong_coverage(ROOT, SOURCES)
    assert not problems, "\n".join(problems)


def test_notebook_and_package_code_is_clean_under_ruff():
    problems = lint.check_ruff(ROOT)
    assert not problems, "\n".join(problems)


# --- each rule can fail -------------------------------------------------------------------

def _task(gid="t1", points=100, tier="core", test_tier=None, message=EN_JA):
    return [
        new_markdown_cell("## Task 1 — Sum / 課題1 — 合計"),
        new_code_cell("x = 1", metadata=graded("answer", gid, tier)),
        new_code_cell(f"assert x == 1, {message!r}",
                      metadata=graded("test", f"{gid}-tests", test_tier or tier, points)),
    ]


def test_good_notebook_passes_every_rule():
    nb = make_notebook(_task())
    for check in (lint.check_unique_grade_ids, lint.check_schema_version, lint.check_points_total,
                  lint.check_answers_followed_by_tests, lint.check_tiers, lint.check_no_outputs,
                  lint.check_bilingual_markdown, lint.check_bilingual_test_messages,
                  lint.check_figures_described):
        assert check([nb]) == [], check.__name__


def test_duplicate_grade_ids_are_found():
    a, b = make_notebook(_task("same")), make_notebook(_task("same"), module="98-other")
    assert "used 2 times" in lint.check_unique_grade_ids([a, b])[0]


def test_wrong_schema_version_is_found():
    nb = make_notebook(_task())
    nb.nb.cells[1].metadata["nbgrader"]["schema_version"] = 1
    assert lint.check_schema_version([nb])


def test_points_must_sum_to_100():
    assert "sum to 90" in lint.check_points_total([make_notebook(_task(points=90))])[0]
    assert lint.check_points_total([make_notebook(_task(points=5), name="lesson")])


def test_answer_without_test_is_found():
    cells = _task()
    cells[2] = new_code_cell("print(x)")
    assert "not followed by a test" in lint.check_answers_followed_by_tests([make_notebook(cells)])[0]


def test_setup_cells_must_be_locked_and_not_rebind_tested_answers():
    setup = {"nbgrader": {"grade": False, "solution": False, "locked": True, "grade_id": "s-setup",
                          "schema_version": 3}}
    good = make_notebook([new_code_cell("import math", metadata=setup), *_task()])
    assert lint.check_setup_cells([good]) == []
    unlocked = make_notebook([new_code_cell("import math"), *_task()])
    assert "neither an answer nor a test" in lint.check_setup_cells([unlocked])[0]
    # The test reads x; a setup cell that also binds x would hand every test its own x.
    rebinds = make_notebook([*_task(), new_code_cell("for x in range(3):\n    pass", metadata=setup)])
    assert "binds 'x'" in lint.check_setup_cells([rebinds])[0]
    # A loop variable no test reads is not a problem.
    loop = make_notebook([*_task(), new_code_cell("for y in range(3):\n    pass", metadata=setup)])
    assert lint.check_setup_cells([loop]) == []


def test_an_answer_named_like_a_builtin_that_tests_read_is_found():
    cells = _task()
    cells[1] = new_code_cell("max = 1", metadata=graded("answer", "t1"))
    cells[2] = new_code_cell(f"assert max == 1, {EN_JA!r}", metadata=graded("test", "t1-tests", points=100))
    assert "built-in" in lint.check_answers_not_builtins([make_notebook(cells)])[0]
    assert lint.check_answers_not_builtins([make_notebook(_task())]) == []


def test_missing_or_mismatched_tier_is_found():
    assert "core or extension" in lint.check_tiers([make_notebook(_task(tier=None))])[0]
    assert "is core but" in lint.check_tiers([make_notebook(_task(test_tier="extension"))])[0]


def test_stored_outputs_are_found():
    nb = make_notebook(_task())
    nb.nb.cells[1].execution_count = 3
    assert lint.check_no_outputs([nb])


@pytest.mark.parametrize("text, ok", [
    ("## Task 1 — Stations / 課題1 — 駅", True),
    ("Measure the distance between the two stations in metres, not degrees.\n\n"
     "二つの駅の距離を度ではなくメートルで測りましょう。", True),
    ("Measure the distance between the two stations in metres, not degrees.", False),
    ("二つの駅の距離を度ではなくメートルで測りましょう。", False),
    ("Measure the distance between the two stations in metres, not degrees, "
     "using the projected CRS of Ibaraki (EPSG:6677). 駅", False),
    ("二つの駅の距離を度ではなくメートルで測りましょう。投影座標系を使います。EPSG CRS", False),
])
def test_bilingual_detection(text, ok):
    assert lint.is_bilingual(text) is ok


def test_monolingual_markdown_and_messages_are_found():
    cells = _task(message="x should be 1")
    cells.append(new_markdown_cell("This paragraph is only in English, and it is long enough."))
    nb = make_notebook(cells)
    assert "not in both English and Japanese" in lint.check_bilingual_markdown([nb])[0]
    assert "not in English and Japanese" in lint.check_bilingual_test_messages([nb])[0]
    cells = _task()
    cells[2] = new_code_cell("assert x == 1", metadata=cells[2].metadata)
    assert "without a message" in lint.check_bilingual_test_messages([make_notebook(cells)])[0]


def test_hidden_test_messages_are_not_required_to_be_bilingual():
    cells = _task()
    cells[2].source += "\n### BEGIN HIDDEN TESTS\nassert x == 1\n### END HIDDEN TESTS\n"
    assert lint.check_bilingual_test_messages([make_notebook(cells)]) == []


def test_undescribed_figure_is_found():
    cells = [new_code_cell("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"),
             new_markdown_cell("Next we load data. / 次にデータを読み込みます。")]
    assert "does not describe it" in lint.check_figures_described([make_notebook(cells)])[0]
    cells[1] = new_markdown_cell("**Figure.** A rising line. **図.** 右上がりの線。")
    assert lint.check_figures_described([make_notebook(cells)]) == []


def test_leaked_solution_is_found(tmp_path):
    source = make_notebook([new_code_cell(
        "def f():\n    ### BEGIN SOLUTION\n    return sorted(values)[::-1]\n    ### END SOLUTION",
        metadata=graded("answer", "f"))], tmp=tmp_path)
    leaked = make_notebook([new_code_cell("def f():\n    return sorted(values)[::-1]",
                                          metadata=graded("answer", "f"))],
                           kind="modules", tmp=tmp_path)
    problems = lint.check_no_leaks([source], [leaked])
    assert problems and "leaks" in problems[0]


def test_known_wrong_coverage_names_uncovered_answers_and_bad_entries(tmp_path):
    nb = make_notebook(_task(), tmp=tmp_path)
    assert "no known-wrong" in lint.check_known_wrong_coverage(tmp_path, [nb])[0]
    (tmp_path / "solutions" / "99-test" / "known-wrong.toml").write_text(
        '[[wrong]]\nnotebook = "assignment"\nanswer = "t1"\nmust_fail = "nope"\n'
        'mistake = "off by one"\ncode = "x = 2"\n')
    assert "'nope' is not a test cell" in lint.check_known_wrong_coverage(tmp_path, [nb])[0]
    (tmp_path / "solutions" / "99-test" / "known-wrong.toml").write_text(
        '[[wrong]]\nnotebook = "assignment"\nanswer = "t1"\n')
    assert "lacks must_fail, mistake, code" in lint.check_known_wrong_coverage(tmp_path, [nb])[0]
