"""The syllabus' outcome-to-task table against the notebooks: every outcome is assessed, every
graded task of an available module assesses an outcome, and no row names a task that is not there."""

from __future__ import annotations

import re

import nbformat
from conftest import ROOT
from sscity.course.tracks import load_modules

SYLLABUS = ROOT / "course" / "syllabus.md"


def _outcomes() -> set[int]:
    text = SYLLABUS.read_text(encoding="utf-8")
    section = text.split("## Learning outcomes", 1)[1].split("\n## ", 1)[0]
    return {int(n) for n in re.findall(r"^(\d+)\. ", section, flags=re.M)}


def _table() -> list[tuple[int, str, str]]:
    rows = []
    for line in SYLLABUS.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\| (\d+) \| (\d\d-[a-z-]+) \| (.+) \|$", line)
        if match:
            for grade_id in re.findall(r"`([^`]+)`", match.group(3)):
                rows.append((int(match.group(1)), match.group(2), grade_id))
    return rows


def _graded(module: str) -> set[str]:
    notebook = ROOT / "solutions" / module / "assignment.ipynb"
    ids = set()
    for cell in nbformat.read(notebook, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("points"):
            ids.add(meta["grade_id"])
    return ids


def _available() -> list[str]:
    return [m.id for m in load_modules(ROOT / "course" / "tracks.toml") if m.status == "available"]


def test_every_outcome_is_assessed_by_a_graded_task():
    outcomes = _outcomes()
    assert outcomes == set(range(1, len(outcomes) + 1)) and len(outcomes) >= 6
    assessed = {outcome for outcome, _, _ in _table()}
    assert outcomes <= assessed, f"outcomes with no task: {sorted(outcomes - assessed)}"


def test_every_row_names_a_graded_task_of_that_module():
    for outcome, module, grade_id in _table():
        assert outcome in _outcomes(), f"row for unknown outcome {outcome}"
        assert grade_id in _graded(module), f"{module} has no graded cell {grade_id!r}"


def test_every_graded_task_of_an_available_module_assesses_an_outcome():
    listed = {(module, grade_id) for _, module, grade_id in _table()}
    for module in _available():
        if not (ROOT / "solutions" / module / "assignment.ipynb").exists():
            continue
        missing = {g for g in _graded(module) if (module, g) not in listed}
        assert not missing, f"{module}: graded tasks in no outcome row of the syllabus: {sorted(missing)}"


def test_the_weights_table_is_the_one_grading_reads():
    from sscity.course.tracks import load_tracks

    tracks = load_tracks(ROOT / "course" / "tracks.toml")
    shown = {}
    for line in SYLLABUS.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\| (\d\d-[a-z-]+) \| (\d+) \| (\d+) \|$", line)
        if match:
            shown[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    expected = {m.id: (tracks["degree"].weights[m.id], tracks["recurrent"].weights[m.id])
                for m in load_modules(ROOT / "course" / "tracks.toml")}
    assert shown == expected


def test_the_schedules_cover_every_module():
    text = SYLLABUS.read_text(encoding="utf-8")
    degree = text.split("### Degree track", 1)[1].split("###", 1)[0]
    recurrent = text.split("### Recurrent track", 1)[1].split("## ", 1)[0]
    weeks = re.findall(r"^\| (\d+) \| (\d\d-[a-z-]+) \|", degree, flags=re.M)
    evenings = re.findall(r"^\| (\d+) \| (\d\d-[a-z-]+) \|", recurrent, flags=re.M)
    modules = [m.id for m in load_modules(ROOT / "course" / "tracks.toml")]
    assert [int(w) for w, _ in weeks] == list(range(1, 16))
    assert [int(e) for e, _ in evenings] == list(range(1, 9))
    assert {m for _, m in weeks} == set(modules) == {m for _, m in evenings}
