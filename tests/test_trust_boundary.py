"""Attacks on grading, written as a determined student would, and the honest students they
must not hurt.

One class of module 00 is graded once with ``--jobs 2``. Every attacker answers every task
wrongly (``pass``) and adds one trick to the first answer cell, so an honest grade is 0:
each must earn nothing, change nothing outside its own folder, and leave the honest
students' rows as they would be without it. The honest students use things an earlier
grader punished (display options, a variable called ``max``) and must score full marks,
unflagged.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT
from sscity.course import grade as grade_module
from sscity.course.demo import _answers, _filled
from sscity.course.grade import SandboxMissing, grade
from sscity.course.sandbox import Isolation, isolation

MODULE = "00-orientation"
NOTEBOOK = "assignment.ipynb"

pytestmark = pytest.mark.skipif(not isolation().isolated,
                                reason="bubblewrap is not available: grading refuses to run")


def _attacks(victim: Path) -> dict[str, str]:
    """student -> code put in the first answer cell (all other answers are `pass`)."""
    secret = victim / "secret.txt"
    return {
        # Rewrite every later cell's source before it runs (tests would become `pass`).
        "atk-input-transformer": (
            "ip = get_ipython()\n"
            "ip.input_transformers_post.append(lambda lines: ['pass\\n'] if any('assert' in l "
            "for l in lines) else lines)\n"),
        "atk-ast-transformer": (
            "import ast\nclass NoAsserts(ast.NodeTransformer):\n"
            "    def visit_Assert(self, node):\n        return ast.Pass()\n"
            "get_ipython().ast_transformers.append(NoAsserts())\n"),
        # Swallow every exception and clear the error flag after each cell.
        "atk-custom-exc-post-run": (
            "ip = get_ipython()\ngetattr(ip, 'set_' + 'custom_exc')((BaseException,), "
            "lambda *a, **k: None)\n"
            "def _clear(result):\n    result.error_in_exec = None\n"
            "ip.events.register('post_run_cell', _clear)\n"),
        # The same handler in a cell the student marked locked (a scan used to skip those).
        "atk-locked-cell": "LOCKED\nget_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)\n",
        # Values that lie: a float whose comparisons are all true and arithmetic gives 0.
        "atk-float-subclass": (
            "class Liar(float):\n"
            "    def __eq__(self, other): return True\n    def __lt__(self, other): return True\n"
            "    def __gt__(self, other): return True\n    def __le__(self, other): return True\n"
            "    def __ge__(self, other): return True\n    def __sub__(self, other): return Liar(0)\n"
            "    def __rsub__(self, other): return Liar(0)\n    def __abs__(self): return Liar(0)\n"
            "    __hash__ = float.__hash__\n"
            "tsukuba_midorino_m = Liar(9000)\ntx_line_km = Liar(10)\n"),
        # Patch what the tests call, in the namespace and in builtins.
        "atk-globals-builtins": (
            "import builtins, numpy as np\nglobals()['abs'] = lambda x: 0\n"
            "builtins.isinstance = lambda *a: True\nnp.allclose = lambda *a, **k: True\n"
            "vars(builtins)['len'] = lambda x: 4\n"
            "_sscity_baseline = None\n"),
        # Leak the hidden tests: a visible message, then the caller's source from linecache.
        "atk-leak-hidden": (
            "import inspect, linecache\n"
            "def nearest_station(lon, lat):\n"
            "    frame = inspect.currentframe().f_back\n"
            "    text = ''.join(linecache.getlines(frame.f_code.co_filename)) if frame else ''\n"
            "    raise AssertionError('nearest_station should return a tuple of two values, "
            "(station_id, distance_m). / nearest_station は二つの値のタプル (station_id, distance_m) "
            "を返します。' + text)\n"),
        # Write where the grader can: the course, site-packages, a file outside, its notebook.
        "atk-write-outside": (
            "import os, sscity, pathlib\n"
            f"targets = [{str(secret)!r}, os.path.join(os.path.dirname(sscity.__file__), 'pwned.py'),\n"
            "           os.path.join(os.path.dirname(os.__file__), 'pwned.py'), '/etc/pwned',\n"
            "           '/root/pwned']\n"
            "for t in targets:\n"
            "    try:\n        open(t, 'w').write('pwned')\n    except OSError:\n        pass\n"
            f"for name in os.listdir('.'):\n    pass\n"
            f"os.symlink({str(secret)!r}, 'assignment.ipynb')\n"),
        # Void other students' grades: lock the kernel's socket folder.
        "atk-chmod-ipc": (
            "import os, ipykernel.connect\n"
            "folder = os.path.dirname(ipykernel.connect.get_connection_file())\n"
            "os.chmod(folder, 0o555)\n"
            "for d in ('/tmp', os.getcwd()):\n"
            "    try:\n        os.chmod(d, 0o555)\n    except OSError:\n        pass\n"),
        # Outlive the kernel and rewrite grades later.
        "atk-lingering": (
            "import os, time, glob\n"
            "if os.fork() == 0:\n    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        for _ in range(60):\n"
            "            for path in glob.glob('/tmp/**/grades.csv', recursive=True):\n"
            "                open(path, 'w').write('student,score\\nme,100\\n')\n"
            f"            try:\n                open({str(victim / 'later.txt')!r}, 'w').write('x')\n"
            "            except OSError:\n                pass\n"
            "            time.sleep(0.5)\n"
            "    os._exit(0)\n"),
        # Take over the kernel's side of the channel the tests use to reach its values.
        "atk-agent-silent": (
            "import sscity.course.agent as agent\nagent.serve = lambda *args, **kwargs: None\n"),
        "atk-agent-lies": (
            "import sscity.course.agent as agent, sscity.course.wire as wire\n"
            "agent.answer = lambda *args: (True, wire.encode(True, lambda value: 0))\n"),
        # Read what lies around: LMS zips in /var/tmp and /srv, the checkout with solutions.
        "atk-read-around": (
            "import glob, os\nfound = []\n"
            "for pattern in ('/var/tmp/*', '/srv/*', '/work/*/solutions/*/*.ipynb', '/root/*',"
            " '/home/*/*', '/tmp/*/*/*.ipynb', '/etc/shadow'):\n"
            "    found += glob.glob(pattern)\n"
            "print('sscity-probe-found', sorted(found)[:5])\n"),
    }


HONEST = {
    "honest-correct": {},
    # Display options and a local `max` used to withhold a correct notebook's score.
    "honest-display-max": {
        "stations-gdf": "pd.options.display.max_columns = 50\nmax = 3\n",
    },
}


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    base = tmp_path_factory.mktemp("attacked")
    victim = base / "victim"
    victim.mkdir()
    (victim / "secret.txt").write_text("untouched\n")
    # One per test worker: two workers grading at once must not share (and delete) one file.
    lms = Path(f"/var/tmp/sscity-test-lms-export-{os.getpid()}.zip")
    lms.write_text("an LMS export with every student's work\n")
    release = nbformat.read(ROOT / "modules" / MODULE / NOTEBOOK, as_version=4)
    answers = _answers(nbformat.read(ROOT / "solutions" / MODULE / NOTEBOOK, as_version=4))
    first = next(iter(answers))
    submissions = base / "submissions"
    for student, extra in HONEST.items():
        filled = {gid: extra.get(gid, "") + code for gid, code in answers.items()}
        _write(submissions, student, _filled(release, filled))
    for student, code in _attacks(victim).items():
        wrong = {gid: "pass" for gid in answers}
        locked = code.startswith("LOCKED\n")
        wrong[first] = code.removeprefix("LOCKED\n") + "\npass\n"
        nb = _filled(release, wrong)
        if locked:
            for cell in nb.cells:
                if cell.metadata.get("nbgrader", {}).get("grade_id") == first:
                    cell.metadata["nbgrader"]["locked"] = True
        _write(submissions, student, nb)
    before = _snapshot([ROOT / "course", ROOT / "solutions", ROOT / "modules", victim])
    out = base / "out"
    # The grader's own folders in a folder of this test's (short: socket paths live below
    # it), to tell its processes from those of other tests grading at the same time.
    own = Path(tempfile.mkdtemp(prefix="tb-", dir="/tmp"))
    saved, tempfile.tempdir = tempfile.tempdir, str(own)
    try:
        run = grade(ROOT, submissions, out, jobs=2, cell_timeout=15, student_timeout=60,
                    progress=False)
    finally:
        tempfile.tempdir = saved
        lms.unlink()
        shutil.rmtree(own, ignore_errors=True)
    return {"run": run, "out": out, "victim": victim, "before": before, "base": own,
            "rows": {r.student: r for r in run.results}}


def _write(submissions: Path, student: str, nb) -> None:
    folder = submissions / student / MODULE
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / NOTEBOOK)


def _snapshot(folders: list[Path]) -> dict:
    state = {}
    for folder in folders:
        for path in folder.rglob("*"):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            state[path] = (path.stat().st_size, path.stat().st_mtime_ns)
    return state


@pytest.mark.slow
@pytest.mark.parametrize("student", sorted(_attacks(Path("/x"))))
def test_an_attacker_earns_nothing(attacked, student):
    row = attacked["rows"][student]
    earned = {k: t["score"] for k, t in row.tasks.items() if t["auto"] and t["score"]}
    assert row.score == 0 and not earned, f"{student}: {row.score} points ({earned}); {row.reason}"


@pytest.mark.slow
def test_honest_students_get_full_marks_unflagged(attacked):
    for student in HONEST:
        row = attacked["rows"][student]
        assert (row.score, row.status) == (row.max_score, "ok"), f"{student}: {row.score} {row.reason}"


@pytest.mark.slow
def test_nothing_outside_the_run_changed(attacked):
    victim = attacked["victim"]
    assert (victim / "secret.txt").read_text() == "untouched\n"
    assert not (victim / "later.txt").exists()
    assert not (ROOT / "course" / "sscity" / "pwned.py").exists()
    assert not Path("/etc/pwned").exists() and not Path("/root/pwned").exists()
    after = _snapshot([ROOT / "course", ROOT / "solutions", ROOT / "modules", victim])
    changed = sorted(str(p) for p in set(after) | set(attacked["before"])
                     if after.get(p) != attacked["before"].get(p))
    assert not changed, changed


@pytest.mark.slow
def test_no_student_process_outlives_grading_and_grades_stay_written(attacked):
    import time

    out = attacked["out"]
    first = (out / "grades.csv").read_text()
    time.sleep(2)
    assert (out / "grades.csv").read_text() == first
    assert "atk-lingering" in first and "me,100" not in first
    # Processes of this class's grading (other tests may grade at the same time): their
    # command line or working folder lies under the fixture's folder.
    base = str(attacked["base"])
    lingering = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if proc.stat().st_uid < 100_000:
                continue
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if base in args or base in cwd:
            lingering.append(f"{proc.name} {args} (in {cwd})")
    assert not lingering, lingering


@pytest.mark.slow
def test_the_sandbox_shows_only_an_allow_list(attacked):
    nb = nbformat.read(attacked["out"] / "autograded" / "atk-read-around" / MODULE / NOTEBOOK,
                       as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "sscity-probe-found []" in printed, printed[:500]


@pytest.mark.slow
def test_hidden_tests_never_reach_feedback(attacked):
    page = (attacked["out"] / "feedback" / "atk-leak-hidden" / f"{MODULE}.html").read_text()
    hidden = nbformat.read(ROOT / "solutions" / MODULE / NOTEBOOK, as_version=4)
    for cell in hidden.cells:
        if "### BEGIN HIDDEN TESTS" in cell.source:
            block = cell.source.split("### BEGIN HIDDEN TESTS", 1)[1].split("### END HIDDEN TESTS")[0]
            for line in block.splitlines():
                line = line.strip()
                if len(line) > 25 and not line.startswith(("#", '"', "assert")):
                    assert line not in page, line


@pytest.mark.slow
def test_one_students_locked_socket_folder_does_not_touch_another(attacked):
    rows = attacked["rows"]
    assert "died" not in rows["atk-chmod-ipc"].reason or rows["atk-chmod-ipc"].score == 0
    assert rows["honest-correct"].status == "ok"


def test_grading_refuses_without_a_sandbox(tmp_path, monkeypatch):
    monkeypatch.setattr(grade_module, "isolation",
                        lambda: Isolation("none", "NO SANDBOX", ("WARNING: bwrap missing.",)))
    with pytest.raises(SandboxMissing, match="--no-sandbox"):
        grade(ROOT, tmp_path, tmp_path / "out", progress=False)


def test_a_symlinked_notebook_is_refused(tmp_path):
    (tmp_path / "sub" / "thief" / MODULE).mkdir(parents=True)
    (tmp_path / "sub" / "victim" / MODULE).mkdir(parents=True)
    real = tmp_path / "sub" / "victim" / MODULE / NOTEBOOK
    real.write_text((ROOT / "modules" / MODULE / NOTEBOOK).read_text())
    os.symlink(real, tmp_path / "sub" / "thief" / MODULE / NOTEBOOK)
    releases = {MODULE: {p.name: nbformat.read(p, as_version=4)
                         for p in (ROOT / "modules" / MODULE).glob("*.ipynb")}}
    subs, _ = grade_module.discover(tmp_path / "sub", releases)
    thief = next(s for s in subs if s.student == "thief")
    assert not thief.notebooks and any("link" in str(f) for f in thief.findings)


def test_the_sandbox_etc_holds_the_allowed_files_and_they_are_readable(tmp_path):
    """/etc inside is the allow-list, traversable by the sandbox's user: a root-only /etc once
    made every file bound into it unreadable (time zone, fonts, and the symlinks in
    /etc/alternatives that Debian's arm-none-eabi-gcc finds its headers through)."""
    import subprocess
    import sys

    from sscity.course.sandbox import _ETC

    workdir = tmp_path / "work"
    workdir.mkdir(mode=0o777)
    script = ("import os, json; print(json.dumps({'names': sorted(os.listdir('/etc')), "
              "'readable': {n: os.access('/etc/' + n, os.R_OK) for n in os.listdir('/etc')}}))")
    done = subprocess.run([sys.executable, "-m", "sscity.course.sandbox", "run", "--workdir", str(workdir),
                           "--course-root", str(ROOT), "--", sys.executable, "-c", script],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    import json

    seen = json.loads(done.stdout.strip().splitlines()[-1])
    expected = sorted(name for name in _ETC if (Path("/etc") / name).exists())
    assert seen["names"] == expected, "the sandbox's /etc must hold exactly the allow-list"
    assert all(seen["readable"].values()), f"unreadable in the sandbox's /etc: {seen['readable']}"


def test_scientific_imports_write_nothing_to_stderr_in_the_sandbox(tmp_path):
    """joblib (imported by scikit-learn and OpenDP) warned on stderr in the sandbox, which has no
    semaphores; nbgrader takes such a warning in a test cell as a failure."""
    import subprocess
    import sys

    workdir = tmp_path / "work"
    workdir.mkdir(mode=0o777)
    done = subprocess.run([sys.executable, "-m", "sscity.course.sandbox", "run", "--workdir", str(workdir),
                           "--course-root", str(ROOT), "--", sys.executable, "-c",
                           "import sklearn.ensemble, opendp.prelude; print('ok')"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert done.stderr == "", done.stderr
