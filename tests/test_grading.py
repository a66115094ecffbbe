"""Grading at scale: the demo class is graded safely and honestly.

One class is built from module 00 (honest students and every adversarial case) and graded
once per test session with ``--jobs 2``; the tests read its outputs. Smaller runs cover the
zip input, a dying worker and the Dask scheduler. Unit tests cover the integrity checks
without a kernel.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, graded, make_notebook, new_code_cell
from sscity.course import grade as grade_module
from sscity.course.demo import ADVERSARIAL, build_demo_class, check_demo
from sscity.course.grade import CSV_COLUMNS, _chunks, discover, grade
from sscity.course.integrity import check_structure, scan_code, unexecuted_test_cells
from sscity.course.sandbox import isolation

MODULE = "00-orientation"
CELL_TIMEOUT = 10


# --- the demo class, graded once ----------------------------------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    expected = build_demo_class(ROOT, out, students=34, modules=[MODULE])
    run = grade(ROOT, out / "submissions", out, jobs=2, cell_timeout=CELL_TIMEOUT, student_timeout=45,
                progress=False)
    return out, expected, run


@pytest.mark.slow
def test_every_adversarial_submission_is_flagged_or_scores_zero_with_the_right_reason(demo):
    _, expected, run = demo
    problems = check_demo(run.results, expected)
    assert not problems, "\n".join(problems)
    assert {r.student for r in run.results} >= set(ADVERSARIAL)
    assert len({r.student for r in run.results}) >= 34


@pytest.mark.slow
def test_grades_csv_has_one_row_per_submission_with_the_required_columns(demo):
    out, _, run = demo
    with open(out / "grades.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(run.results)
    assert {row["status"] for row in rows} <= {"ok", "flagged"}
    for row in rows:
        assert row["status"] == "ok" or row["reason"], row  # a flag always says why


@pytest.mark.slow
def test_honest_scores_equal_a_plain_sequential_nbgrader_run(demo, tmp_path):
    out, expected, run = demo
    honest = [s for s, modules in expected["students"].items()
              if modules.get(MODULE, {}).get("kind") == "honest"]
    assert len(honest) >= 8
    shutil.copy2(ROOT / "nbgrader_config.py", tmp_path)
    with open(tmp_path / "nbgrader_config.py", "a") as config:
        config.write(f"\nc.ExecutePreprocessor.timeout = {CELL_TIMEOUT}\n")
    shutil.copytree(ROOT / "solutions" / MODULE, tmp_path / "solutions" / MODULE,
                    ignore=shutil.ignore_patterns("known-wrong.toml"))
    for student in honest:
        shutil.copytree(out / "submissions" / student / MODULE, tmp_path / "submitted" / student / MODULE)
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    for args in (["generate_assignment", MODULE, "--force"], ["autograde", MODULE],
                 ["export", "--to", str(tmp_path / "plain.csv")]):
        subprocess.run([sys.executable, "-m", "nbgrader", *args, "--log-level=ERROR"], cwd=tmp_path,
                       env=env, check=True, capture_output=True)
    with open(tmp_path / "plain.csv", newline="") as handle:
        plain = {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(handle)}
    ours = {r.student: r.score for r in run.results if r.module == MODULE}
    assert {s: ours[s] for s in honest} == {s: plain[s] for s in honest}
    assert any(0 < ours[s] < 100 for s in honest)  # partial credit is in the comparison


@pytest.mark.slow
def test_the_class_gradebook_holds_every_submission(demo):
    from nbgrader.api import Gradebook

    out, _, run = demo
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gradebook:
        for result in run.results:
            submission = gradebook.find_submission(MODULE, result.student)
            assert submission.score == pytest.approx(result.score), result.student


@pytest.mark.slow
def test_the_sandbox_hides_the_course_other_students_and_the_network(demo):
    out, _, run = demo
    if run.isolation != "bubblewrap":
        pytest.skip("bubblewrap is not available here: grading ran with resource limits only")

    def printed(student):
        nb = nbformat.read(out / "autograded" / student / MODULE / "assignment.ipynb", as_version=4)
        return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))

    assert "sscity-probe-found []" in printed("adv-read-solutions")
    assert "sscity-probe no network" in printed("adv-network")
    info = json.loads((out / "results.json").read_text())["isolation"]
    assert info["level"] == "bubblewrap" and "no network" in info["description"]


@pytest.mark.slow
def test_graded_notebooks_carry_no_integrity_cells(demo):
    out, _, _ = demo
    nb = nbformat.read(out / "autograded" / "correct-01" / MODULE / "assignment.ipynb", as_version=4)
    assert not any("sscity-integrity" in c.get("metadata", {}).get("tags", []) for c in nb.cells)


# --- smaller runs -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_class(tmp_path_factory):
    out = tmp_path_factory.mktemp("small")
    build_demo_class(ROOT, out, students=0, modules=[MODULE], adversarial=["adv-stray-file"])
    submissions = out / "submissions"
    for folder in submissions.iterdir():
        if folder.name not in ("correct-01", "blank-01"):
            shutil.rmtree(folder)
    return submissions


@pytest.mark.slow
def test_a_zip_from_an_lms_is_graded_like_the_folder(small_class, tmp_path):
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in small_class.rglob("*"):
            if path.is_file():
                zf.write(path, Path("course-export") / path.relative_to(small_class))
    run = grade(ROOT, archive, tmp_path / "out", jobs=2, cell_timeout=CELL_TIMEOUT, progress=False)
    scores = {r.student: r.score / r.max_score for r in run.results}  # hand-graded tasks wait
    assert scores == {"correct-01": 1.0, "blank-01": 0.0}


@pytest.mark.slow
def test_a_dying_worker_is_graded_again(small_class, tmp_path, monkeypatch):
    real = grade_module.grade_chunk
    calls = []

    def flaky(job):
        calls.append(job["chunk_dir"])
        if len(calls) == 1:
            raise RuntimeError("worker lost")
        return real(job)

    monkeypatch.setattr(grade_module, "grade_chunk", flaky)
    run = grade(ROOT, small_class, tmp_path / "out", jobs=1, cell_timeout=CELL_TIMEOUT, progress=False)
    scores = {r.student: (r.score / r.max_score, r.status) for r in run.results}
    assert scores == {"correct-01": (1.0, "ok"), "blank-01": (0.0, "ok")}
    assert any("retry" in c for c in calls)


@pytest.mark.slow
def test_grading_on_a_dask_cluster(small_class, tmp_path):
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster:
        run = grade(ROOT, small_class, tmp_path / "out", jobs=2, scheduler=cluster.scheduler_address,
                    cell_timeout=CELL_TIMEOUT, progress=False)
    assert {r.student: r.score / r.max_score for r in run.results} == {"correct-01": 1.0, "blank-01": 0.0}


# --- unit tests, no kernel ---------------------------------------------------------------

@pytest.mark.parametrize("code, reason", [
    ("get_ipython().set_custom_exc((Exception,), f)", "set_custom_exc"),
    ("ip = get_ipython()\nip.showtraceback = lambda *a: None", "showtraceback"),
    ("import sys\nsys.excepthook = print", "excepthook"),
    ("import numpy as np\nnp.isclose = lambda *a, **k: True", "np.isclose"),
    ("import builtins\nsetattr(builtins, 'len', f)", "setattr on builtins"),
])
def test_code_scan_names_the_trick(code, reason):
    assert any(reason in found for found in scan_code(code)), scan_code(code)


def test_code_scan_leaves_honest_code_alone():
    honest = ("import numpy as np\nimport pandas as pd\nresult = np.isclose(1, 1)\n"
              "df = pd.DataFrame({'a': [1]})\ndf.a = df.a * 2\nvalues = sorted([3, 1])\n%matplotlib inline\n")
    assert scan_code(honest) == []


def _assignment():
    return make_notebook([
        new_code_cell("x = 1", metadata=graded("answer", "t1")),
        new_code_cell("assert x == 1, 'x / x'", metadata=graded("test", "t1-tests", points=100)),
    ]).nb


def test_structure_check_names_deleted_duplicated_retyped_and_edited_cells():
    release = _assignment()
    deleted = _assignment()
    deleted.cells = deleted.cells[:1]
    assert "deleted" in str(check_structure(deleted, release)[0])
    duplicated = _assignment()
    duplicated.cells.append(duplicated.cells[1])
    assert "duplicated" in str(check_structure(duplicated, release)[0])
    retyped = _assignment()
    retyped.cells[0] = nbformat.v4.new_markdown_cell("x = 1", metadata=retyped.cells[0].metadata)
    assert "changed from code to markdown" in str(check_structure(retyped, release)[0])
    edited = _assignment()
    edited.cells[1].source = "pass"
    assert "edited" in str(check_structure(edited, release)[0])
    assert check_structure(_assignment(), release) == []


def test_a_test_cell_that_never_ran_is_found():
    nb = _assignment()
    assert unexecuted_test_cells(nb) == ["t1-tests"]


def test_unsafe_student_folders_and_zip_paths_are_refused(tmp_path):
    (tmp_path / "sub" / "good-student" / MODULE).mkdir(parents=True)
    (tmp_path / "sub" / "bad student!" / MODULE).mkdir(parents=True)
    releases = {MODULE: {p.name: nbformat.read(p, as_version=4)
                         for p in (ROOT / "modules" / MODULE).glob("*.ipynb")}}
    subs, problems = discover(tmp_path / "sub", releases)
    assert [s.student for s in subs] == ["good-student"]
    assert any("not a valid student id" in p for p in problems)
    assert any("missing" in str(f) for f in subs[0].findings)

    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../escape.ipynb", "{}")
    with pytest.raises(ValueError, match="unsafe path"):
        grade(ROOT, archive, tmp_path / "out", progress=False)


def test_chunks_spread_the_class_round_robin():
    chunks = _chunks(list(range(20)), jobs=2)
    assert sorted(x for c in chunks for x in c) == list(range(20))
    assert max(len(c) for c in chunks) <= 8
    assert len(chunks) >= 2 * 2  # at least two per worker, so a slow one does not hold the rest
    assert chunks[0][:2] == [0, len(chunks)]


def test_isolation_is_reported():
    found = isolation()
    assert found.level in ("bubblewrap", "none")
    if not found.isolated:
        assert found.warnings and "NO SANDBOX" in found.description


def _gradebook_outline(path: Path) -> dict:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{path}") as gradebook:
        return {a.name: {nb.name: {
            "grade": sorted((c.name, c.max_score, c.cell_type) for c in nb.grade_cells),
            "solution": sorted(c.name for c in nb.solution_cells),
            "task": sorted((c.name, c.max_score) for c in nb.task_cells),
            "source": sorted((c.name, c.checksum) for c in nb.source_cells),
        } for nb in a.notebooks} for a in gradebook.assignments}


@pytest.mark.slow
def test_gradebooks_generated_per_module_combine_into_the_one_nbgrader_would_write(tmp_path):
    modules = ["00-orientation", "01-survey-analytics"]
    templates = grade_module._templates(ROOT, modules, tmp_path / "work", jobs=2)
    combined = tmp_path / "combined.db"
    grade_module.combine_gradebooks([templates[m] / "gradebook.db" for m in modules], combined)

    reference = tmp_path / "reference"
    reference.mkdir()
    shutil.copy2(ROOT / "nbgrader_config.py", reference)
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    for module in modules:
        shutil.copytree(ROOT / "solutions" / module, reference / "solutions" / module,
                        ignore=shutil.ignore_patterns("known-wrong.toml"))
        subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", module, "--force",
                        "--log-level=ERROR"], cwd=reference, env=env, check=True, capture_output=True)
    ours, theirs = _gradebook_outline(combined), _gradebook_outline(reference / "gradebook.db")
    assert sorted(ours) == modules
    assert ours == theirs

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{combined}") as gradebook:  # formgrader can add students to both
        gradebook.add_student("someone")
        for module in modules:
            assert gradebook.add_submission(module, "someone").max_score > 0
