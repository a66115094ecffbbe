"""grades_by_track.csv with the hand-graded tasks: pending until formgrader has a score,
then added by ``sscity course report DIR``, per track rules; kept when grading again.

One small class (two students) of the first module whose assignment has a hand-graded
task is graded once; each test works on its own copy of the graded folder. Hand grades
are set with nbgrader's Gradebook API, as formgrader does. The track rules themselves are
unit-tested on results built by hand.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, TWO_STUDENT_MODULE, TWO_STUDENTS
from sscity.course.demo import build_demo_class
from sscity.course.grade import Result, grade
from sscity.course.notebooks import grade_id, is_test_cell, nbgrader_meta, tier
from sscity.course.report import GradebookMismatch, refresh_track_grades, track_grades
from sscity.course.tracks import load_tracks

STUDENTS = TWO_STUDENTS
CELL_TIMEOUT = 20


def _tasks(module: str) -> dict[str, dict]:
    """``notebook/grade_id`` -> points, tier and whether autograded, from the release."""
    tasks = {}
    for path in sorted((ROOT / "modules" / module).glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            meta = nbgrader_meta(cell)
            if meta.get("points"):
                tasks[f"{path.stem}/{grade_id(cell)}"] = {"max": float(meta["points"]), "tier": tier(cell),
                                                          "auto": is_test_cell(cell)}
    return tasks


def _module_with_hand_task() -> str:
    for module in ("00-orientation", "01-survey-analytics", "02-data-platform", "04-mobility-control"):
        if (ROOT / "modules" / module).is_dir() and any(not t["auto"] for t in _tasks(module).values()):
            return module
    pytest.skip("no released module has a hand-graded task")


# The graded class is shared with test_formgrader.py (see conftest.two_student_class).
pytestmark = pytest.mark.xdist_group("two-student-class")


@pytest.fixture(scope="module")
def graded_class(request, tmp_path_factory):
    module = _module_with_hand_task()
    if module == TWO_STUDENT_MODULE:
        out, _ = request.getfixturevalue("two_student_class")
        return out, module, _tasks(module)
    out = tmp_path_factory.mktemp("hand")
    build_demo_class(ROOT, out, students=0, modules=[module], adversarial=["adv-stray-file"])
    for folder in (out / "submissions").iterdir():
        if folder.name not in STUDENTS:
            shutil.rmtree(folder)
    grade(ROOT, out / "submissions", out / "graded", jobs=2, cell_timeout=CELL_TIMEOUT, progress=False)
    return out, module, _tasks(module)


@pytest.fixture
def graded_copy(graded_class, tmp_path):
    out, module, tasks = graded_class
    shutil.copytree(out / "graded", tmp_path / "graded")
    shutil.copytree(out / "submissions", tmp_path / "submissions")
    return tmp_path / "graded", module, tasks


def _rows(folder: Path, name: str = "grades_by_track.csv") -> list[dict]:
    with open(folder / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _row(rows, student, track, module):
    return next(r for r in rows if (r["student"], r["track"], r["module"]) == (student, track, module))


def _set_hand_grades(folder: Path, module: str, scores: dict) -> None:
    """As formgrader saves a score: ``manual_score`` set, ``needs_manual_grade`` cleared."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}") as gradebook:
        for (student, key), score in scores.items():
            notebook, gid = key.split("/")
            found = gradebook.find_grade(gid, notebook, module, student)
            found.manual_score = score
            found.needs_manual_grade = score is None
        gradebook.db.commit()


def _report(folder: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    return subprocess.run([sys.executable, "-m", "sscity", "course", "report", str(folder)],
                          capture_output=True, text=True, env=env, cwd=ROOT)


def _expected(tasks, track, auto_earned: bool, hand: dict[str, float | None]) -> tuple[float, list[str]]:
    """Score /100 and pending ids a track should show: autograded tasks all earned or all
    missed, hand-graded tasks from ``hand`` (None: pending, counts 0)."""
    counted = {k: t for k, t in tasks.items() if track.counts(t["tier"] or "core")}
    earned = sum(t["max"] for t in counted.values() if t["auto"] and auto_earned)
    earned += sum(hand.get(k) or 0 for k, t in counted.items() if not t["auto"])
    pending = [k for k, t in counted.items() if not t["auto"] and hand.get(k) is None]
    return round(100 * earned / sum(t["max"] for t in counted.values()), 2), pending


# --- the graded class ---------------------------------------------------------------------

@pytest.mark.slow
def test_before_hand_grading_the_hand_tasks_are_pending_and_totals_provisional(graded_class):
    out, module, tasks = graded_class
    folder = out / "graded"
    rows = _rows(folder)
    hand = [k for k, t in tasks.items() if not t["auto"]]
    for track in load_tracks().values():
        score, pending = _expected(tasks, track, True, {})
        row = _row(rows, "correct-01", track.id, module)
        assert float(row["score_100"]) == score
        assert row["manual_pending"].split() == pending
        assert row["provisional"] == ("yes" if pending else "no")
        total = _row(rows, "correct-01", track.id, "TOTAL (graded modules)")
        assert total["provisional"] == row["provisional"]
        assert total["manual_pending"].split() == [f"{module}/{k}" for k in pending]
    grades = {r["student"]: r for r in _rows(folder, "grades.csv")}
    assert float(grades["correct-01"]["manual_points_pending"]) == sum(tasks[k]["max"] for k in hand)

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}") as gradebook:  # formgrader's view
        for grade_ in gradebook.find_submission(module, "correct-01").notebooks[0].grades:
            assert grade_.needs_manual_grade == (not tasks[f"assignment/{grade_.name}"]["auto"]), grade_.name


@pytest.mark.slow
def test_the_report_command_adds_hand_grades_per_track_rules(graded_copy):
    folder, module, tasks = graded_copy
    hand = {k: t["max"] - 1 for k, t in tasks.items() if not t["auto"]}
    _set_hand_grades(folder, module, {("correct-01", k): v for k, v in hand.items()})
    done = _report(folder)
    assert done.returncode == 0, done.stderr
    assert "provisional" in done.stdout  # blank-01 is still waiting
    rows = _rows(folder)
    for track in load_tracks().values():
        score, pending = _expected(tasks, track, True, hand)
        row = _row(rows, "correct-01", track.id, module)
        assert (float(row["score_100"]), row["manual_pending"], row["provisional"]) == (score, "", "no")
        counted = sum(v for k, v in hand.items() if track.counts(tasks[k]["tier"] or "core"))
        assert float(row["manual_points"]) == counted
        assert pending == []
        blank_score, blank_pending = _expected(tasks, track, False, {})
        blank = _row(rows, "blank-01", track.id, module)
        assert float(blank["score_100"]) == blank_score
        assert blank["manual_pending"].split() == blank_pending
    grades = {r["student"]: r for r in _rows(folder, "grades.csv")}
    assert float(grades["correct-01"]["manual_points_pending"]) == 0
    assert float(grades["blank-01"]["manual_points_pending"]) == sum(tasks[k]["max"] for k in hand)


@pytest.mark.slow
def test_a_score_above_the_points_or_a_student_not_in_the_class_is_an_error(graded_copy):
    folder, module, tasks = graded_copy
    key, task = next((k, t) for k, t in tasks.items() if not t["auto"])
    _set_hand_grades(folder, module, {("correct-01", key): task["max"] + 1})
    with pytest.raises(GradebookMismatch, match=rf"correct-01/{module}: {key} has a manual score"):
        refresh_track_grades(folder)
    assert not (folder / "grades_by_track.csv").exists()  # no stale CSV left to trust
    done = _report(folder)
    assert done.returncode == 2 and "outside 0.." in done.stderr

    _set_hand_grades(folder, module, {("correct-01", key): task["max"]})
    from nbgrader.api import Gradebook

    with warnings.catch_warnings(), Gradebook(f"sqlite:///{folder / 'gradebook.db'}") as gradebook:
        warnings.simplefilter("ignore")  # nbgrader's own session handling
        gradebook.add_student("intruder")
        gradebook.add_submission(module, "intruder")
    with pytest.raises(GradebookMismatch, match=rf"intruder/{module}: in gradebook.db but not graded"):
        refresh_track_grades(folder)


@pytest.mark.slow
def test_grading_again_keeps_hand_grades_and_asks_for_review_where_work_changed(graded_copy):
    folder, module, tasks = graded_copy
    hand = {k: t["max"] for k, t in tasks.items() if not t["auto"]}
    _set_hand_grades(folder, module, {(s, k): v for s in STUDENTS for k, v in hand.items()})
    # correct-01 hands in changed work (a cell of their own added); blank-01 the same work.
    submitted = folder.parent / "submissions" / "correct-01" / module / "assignment.ipynb"
    nb = nbformat.read(submitted, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("A second thought. / 考え直しました。"))
    nbformat.write(nb, submitted)
    grade(ROOT, folder.parent / "submissions", folder, jobs=2, cell_timeout=CELL_TIMEOUT, progress=False)
    assert (folder / "gradebook.previous.db").is_file()
    rows = _rows(folder)
    degree = load_tracks()["degree"]
    same = _row(rows, "blank-01", "degree", module)
    assert (float(same["score_100"]), same["provisional"]) == (_expected(tasks, degree, False, hand)[0], "no")
    changed = _row(rows, "correct-01", "degree", module)
    assert changed["manual_pending"].split() == list(hand) and changed["provisional"] == "yes"

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}") as gradebook:  # kept, flagged for review
        for key, points in hand.items():
            notebook, gid = key.split("/")
            kept = gradebook.find_grade(gid, notebook, module, "correct-01")
            assert (kept.manual_score, kept.needs_manual_grade) == (points, True)


# --- track rules, no kernel ------------------------------------------------------------------

M = "01-survey-analytics"


def _result(reason=""):
    tasks = {
        "assignment/a-core-tests": {"score": 40.0, "max": 40.0, "tier": "core", "auto": True},
        "assignment/a-ext-tests": {"score": 0.0, "max": 30.0, "tier": "extension", "auto": True},
        "assignment/h-core": {"score": 0.0, "max": 20.0, "tier": "core", "auto": False},
        "assignment/h-ext": {"score": 0.0, "max": 10.0, "tier": "extension", "auto": False},
    }
    return Result("s1", M, 40.0, 70.0, "flagged" if reason else "ok", reason, 30.0, 0.0, tasks)


def _hand(task, manual, extra=None):
    return {("s1", M, f"assignment/{task}"): {"manual": manual, "extra": extra, "pending": False}}


def _by(rows, track, module=M):
    return next(r for r in rows if r["track"] == track and r["module"] == module)


def test_hand_tasks_follow_the_track_rules():
    rows = track_grades([_result()], _hand("h-ext", 5.0))
    degree, recurrent = _by(rows, "degree"), _by(rows, "recurrent")
    assert (degree["score_100"], degree["manual_pending"], degree["provisional"]) == (
        45.0, "assignment/h-core", "yes")
    assert (recurrent["score_100"], recurrent["max_points"], recurrent["manual_points"]) == (
        round(100 * 40 / 60, 2), 60.0, 0.0)  # the extension task's hand grade does not count
    assert recurrent["manual_pending"] == "assignment/h-core"
    rows = track_grades([_result()], _hand("h-core", 15.0))
    assert _by(rows, "recurrent")["provisional"] == "no"  # its extension task does not matter
    assert _by(rows, "recurrent")["score_100"] == round(100 * 55 / 60, 2)
    assert _by(rows, "degree", "TOTAL (graded modules)")["manual_pending"] == f"{M}/assignment/h-ext"
    assert _by(rows, "degree", "TOTAL (graded modules)")["provisional"] == "yes"


def test_overrides_extra_credit_and_withheld_scores():
    hand = {**_hand("a-ext-tests", 30.0), **_hand("h-core", 20.0, extra=2.0), **_hand("h-ext", 10.0)}
    degree = _by(track_grades([_result()], hand), "degree")
    assert (degree["auto_points"], degree["manual_points"], degree["score_100"]) == (40.0, 62.0, 102.0)
    withheld = _by(track_grades([_result(reason="score withheld (0) pending review")], hand), "degree")
    assert (withheld["auto_points"], withheld["manual_points"]) == (0.0, 62.0)
    assert _by(track_grades([_result()]), "degree")["manual_pending"] == "assignment/h-core assignment/h-ext"
    review = {key: {**entry, "pending": True} for key, entry in hand.items()}  # work changed since
    degree = _by(track_grades([_result()], review), "degree")
    assert (degree["auto_points"], degree["manual_points"], degree["provisional"]) == (40.0, 0.0, "yes")
    assert degree["manual_pending"] == "assignment/a-ext-tests assignment/h-core assignment/h-ext"
