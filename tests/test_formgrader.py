"""Formgrader on the output of ``sscity course grade``: what it lists and flags, and hand
grades entered there reaching grades.csv / grades_by_track.csv.

One small class (two students of module 00, whose assignment has a hand-graded task) is
graded once. The yardsticks are nbgrader's own: a plain ``nbgrader autograde`` of the same
submissions (which cells it leaves needing a manual grade), and formgrader's JSON API,
served by one ``jupyter server`` started the documented way (``cd DIR`` and start Jupyter
there), no browser.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest
from conftest import ROOT, TWO_STUDENT_MODULE, TWO_STUDENTS, free_port, stop_process

MODULE = TWO_STUDENT_MODULE
STUDENTS = TWO_STUDENTS
CELL_TIMEOUT = 20


def _env() -> dict:
    return dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))


# The graded class is shared with test_grades_by_track.py (see conftest.two_student_class).
pytestmark = pytest.mark.xdist_group("two-student-class")


@pytest.fixture(scope="module")
def graded_class(two_student_class):
    return two_student_class


def _flags(gradebook_path: Path) -> dict:
    """(student, notebook, grade_id) -> (needs_manual_grade, auto_score), for formgrader."""
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    found = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        with Gradebook(f"sqlite:///{gradebook_path}") as gradebook:
            for submission in gradebook.find_assignment(MODULE).submissions:
                for notebook in submission.notebooks:
                    for g in notebook.grades:
                        found[(submission.student.id, notebook.name, g.name)] = (
                            bool(g.needs_manual_grade), g.auto_score)
    return found


@pytest.mark.slow
def test_the_gradebook_flags_exactly_what_a_plain_nbgrader_autograde_flags(graded_class, tmp_path):
    base, _ = graded_class
    shutil.copy2(ROOT / "nbgrader_config.py", tmp_path)
    with open(tmp_path / "nbgrader_config.py", "a") as config:
        config.write(f"\nc.ExecutePreprocessor.timeout = {CELL_TIMEOUT}\n")
    shutil.copytree(ROOT / "solutions" / MODULE, tmp_path / "solutions" / MODULE,
                    ignore=shutil.ignore_patterns("known-wrong.toml"))
    for student in STUDENTS:
        shutil.copytree(base / "submissions" / student / MODULE, tmp_path / "submitted" / student / MODULE)
    for args in (["generate_assignment", MODULE, "--force"], ["autograde", MODULE]):
        subprocess.run([sys.executable, "-m", "nbgrader", *args, "--log-level=ERROR"], cwd=tmp_path,
                       env=_env(), check=True, capture_output=True)
    plain = _flags(tmp_path / "gradebook.db")
    # only the notebooks that carry points are graded by sscity (a lesson handed in earns nothing)
    plain = {k: v for k, v in plain.items() if k[1] == "assignment"}
    ours = _flags(base / "graded" / "gradebook.db")
    assert ours and set(ours) == set(plain)
    assert {k: v[0] for k, v in ours.items()} == {k: v[0] for k, v in plain.items()}
    flagged = {k[2] for k, (needs, _) in ours.items() if needs}
    assert flagged == {"deck-vs-public"}  # the hand-graded task, and nothing autograded
    assert {k: v[1] for k, v in ours.items()} == {k: v[1] for k, v in plain.items()}


@pytest.mark.slow
def test_grades_csv_seconds_is_the_real_time_of_each_submission(graded_class):
    base, run = graded_class
    with open(base / "graded" / "grades.csv", newline="") as handle:
        seconds = {row["student"]: float(row["seconds"]) for row in csv.DictReader(handle)}
    assert set(seconds) == set(STUDENTS)
    for student, spent in seconds.items():
        assert 0.5 < spent < run.seconds, (student, spent)  # a kernel ran: not 0, not the whole run
    assert len(set(seconds.values())) == len(seconds)  # measured, not one share of the chunk


# --- formgrader's server ---------------------------------------------------------------------

class _Formgrader:
    def __init__(self, port: int, token: str):
        self.base, self.token = f"http://127.0.0.1:{port}", token

    def page(self, path: str) -> str:
        request = urllib.request.Request(self.base + path, headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
            return response.read().decode()

    def call(self, path: str, method: str = "GET", body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Authorization": f"token {self.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read().decode())


@pytest.fixture
def formgrader(graded_class, tmp_path):
    """``cd DIR && jupyter server`` on a copy of the graded folder (random port, a token)."""
    base, _ = graded_class
    folder = tmp_path / "graded"
    shutil.copytree(base / "graded", folder)
    port, token = free_port(), "sscity-formgrader-test"
    env = dict(_env(), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen([sys.executable, "-m", "jupyter", "server", "--no-browser",
                               f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1",
                               f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0",
                               *(["--allow-root"] if os.geteuid() == 0 else [])],
                              cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    client = _Formgrader(port, token)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                assert client.call("/formgrader/api/status")["status"] is True
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail("jupyter server did not start:\n"
                                + (tmp_path / "server.log").read_text()[-3000:])
                time.sleep(0.5)
        yield folder, client
    finally:
        stop_process(server)
        log.close()


def _report(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sscity", "course", "report", str(folder)],
                          capture_output=True, text=True, env=_env(), cwd=ROOT)


@pytest.mark.slow
def test_formgrader_lists_the_class_and_its_hand_grades_reach_the_csvs(formgrader):
    folder, client = formgrader
    for page in ("/formgrader/manage_assignments", f"/formgrader/gradebook/{MODULE}/assignment"):
        assert "nbgrader" in client.page(page).lower()  # formgrader's pages render (no error page)
    # Manage Assignments: the graded module, with its two submissions
    assignments = client.call("/formgrader/api/assignments")
    assert [(a["name"], a["num_submissions"]) for a in assignments] == [(MODULE, 2)]
    # Manual Grading: both students, autograded, and only the hand-graded task waits
    submissions = client.call(f"/formgrader/api/submissions/{MODULE}")
    assert {(s["student"], s["autograded"], s["submitted"]) for s in submissions} == {
        (student, True, True) for student in STUDENTS}
    assert {s["id"] for s in client.call("/formgrader/api/students")} >= set(STUDENTS)
    notebooks = client.call(f"/formgrader/api/submitted_notebooks/{MODULE}/assignment")
    assert {n["student"] for n in notebooks} == set(STUDENTS)
    correct = next(n for n in notebooks if n["student"] == "correct-01")
    grades = client.call(f"/formgrader/api/grades?submission_id={correct['id']}")
    assert "deck-vs-public" in client.page(f"/formgrader/submissions/{correct['id']}/")  # the grading page
    waiting = [g for g in grades if g["needs_manual_grade"]]
    assert [g["name"] for g in waiting] == ["deck-vs-public"]
    assert all(g["auto_score"] is not None for g in grades if not g["needs_manual_grade"])

    # Its Autograde button would run student code unsandboxed and overwrite the grades: it
    # refuses and leaves the graded notebook and the scores as they are.
    graded_nb = folder / "autograded" / "correct-01" / MODULE / "assignment.ipynb"
    kept = graded_nb.read_bytes()
    refused = client.call(f"/formgrader/api/submission/{MODULE}/correct-01/autograde", "POST", {})
    assert refused["success"] is False and "grade-with-sscity-course-grade" in refused["log"]
    assert graded_nb.read_bytes() == kept
    assert client.call(f"/formgrader/api/grades?submission_id={correct['id']}") == grades

    # A hand grade saved as formgrader's grading page saves it.
    task = waiting[0]
    saved = client.call(f"/formgrader/api/grade/{task['id']}", "PUT", {"manual_score": 7})
    assert (saved["manual_score"], saved["needs_manual_grade"]) == (7, False)
    after = client.call(f"/formgrader/api/submitted_notebooks/{MODULE}/assignment")
    assert not next(n for n in after if n["student"] == "correct-01")["needs_manual_grade"]

    before = {r["student"]: r for r in csv.DictReader((folder / "grades.csv").open())}
    assert float(before["correct-01"]["manual_points_pending"]) == task["max_score"]
    done = _report(folder)
    assert done.returncode == 0, done.stderr
    rows = {(r["student"], r["track"], r["module"]): r
            for r in csv.DictReader((folder / "grades_by_track.csv").open())}
    degree = rows[("correct-01", "degree", MODULE)]
    assert (float(degree["manual_points"]), degree["manual_pending"], degree["provisional"]) == (
        7.0, "", "no")
    blank = rows[("blank-01", "degree", MODULE)]
    assert blank["provisional"] == "yes" and "deck-vs-public" in blank["manual_pending"]
    grades_csv = {r["student"]: r for r in csv.DictReader((folder / "grades.csv").open())}
    assert float(grades_csv["correct-01"]["manual_points_pending"]) == 0
    assert float(grades_csv["blank-01"]["manual_points_pending"]) == task["max_score"]


# --- the folder layout, no kernel ------------------------------------------------------------

def test_the_out_folder_never_writes_over_the_submissions_or_the_course(tmp_path):
    from sscity.course.grade import _formgrader_folder

    out = tmp_path / "course"
    handed_in = out / "submitted" / "s1" / MODULE / "assignment.ipynb"
    handed_in.parent.mkdir(parents=True)
    handed_in.write_text("as collected")
    jobs = [{"module": MODULE, "students": {"s1": {"assignment.ipynb": "as graded"}}}]
    # submissions collected into out/submitted (nbgrader's exchange): read there, kept as they are
    _formgrader_folder(ROOT, out, [MODULE], jobs, (out / "submitted").resolve())
    assert handed_in.read_text() == "as collected"
    assert (out / "solutions" / MODULE / "assignment.ipynb").is_file()
    assert not (out / "solutions" / MODULE / "known-wrong.toml").exists()
    assert "CourseDirectory.root" in (out / "nbgrader_config.py").read_text()
    # elsewhere: what was graded is written for formgrader, an older copy replaced
    _formgrader_folder(ROOT, out, [MODULE], jobs, (tmp_path / "inbox").resolve())
    assert handed_in.read_text() == "as graded"
    # the course itself as --out: its files are left alone
    before = (ROOT / "nbgrader_config.py").read_text()
    _formgrader_folder(ROOT, ROOT, [MODULE], jobs, (tmp_path / "inbox").resolve())
    assert (ROOT / "nbgrader_config.py").read_text() == before
    assert not (ROOT / "submitted" / "s1").exists()
