"""The course in a real JupyterLab, driven through its UI in headless Chromium.

What a student does, done by a browser: open a lesson and run all its cells from the Run menu;
open an assignment, answer a task wrongly and read the bilingual message of its test, answer it
rightly and see the test pass, press nbgrader's Validate button and read its dialog. A test fails
on an error cell, on a stray stderr band (a red output area) in a lesson, or on a page that does
not load. Notebooks that cannot run (a cell that raises, a broken import, a stray stderr line)
are run the same way to show that the check catches them.

JupyterLab serves a temporary COPY of ``modules/`` (nothing in the repository is written), on a
random port, with a token. Screenshots (PNG) of every step and the server's log are kept in
``$SSCITY_ARTEFACTS`` (default: a fresh temporary folder, printed at the start).

Needs Debian's ``chromium`` (``apt-get install chromium fonts-noto-cjk``) and Playwright for
Python (``pip install playwright``), pointed at the system browser: Playwright's own browser
download is not used. ``$SSCITY_CHROMIUM`` names another Chromium binary;
``$SSCITY_BROWSER_MODULES`` serves another modules/ folder (e.g. a broken copy, to see the
tests fail). Run: ``.venv/bin/python -m pytest classroom_tests/test_browser.py -q``.
"""
from __future__ import annotations

import csv
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    pytest.skip("Playwright for Python is not installed: run `.venv/bin/pip install playwright` "
                "(the browser itself comes from `apt-get install chromium`). / Playwright for "
                "Python がありません。`.venv/bin/pip install playwright` を実行してください。",
                allow_module_level=True)

from sscity.cli import lab_command

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("SSCITY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():  # pragma: no cover - depends on the machine
    pytest.skip(f"No Chromium at {CHROMIUM}: install it with `apt-get install -y chromium "
                f"fonts-noto-cjk`, or set SSCITY_CHROMIUM to its path. / {CHROMIUM} に Chromium "
                f"がありません。`apt-get install -y chromium fonts-noto-cjk` でインストールするか、"
                f"SSCITY_CHROMIUM にそのパスを設定してください。", allow_module_level=True)

MODULES = Path(os.environ.get("SSCITY_BROWSER_MODULES") or REPO / "modules")
# Two quick lessons by default; SSCITY_BROWSER_LESSONS=all (or a comma-separated list of
# paths below modules/) runs others, e.g. before a release.
LESSONS = ["00-orientation/lesson.ipynb", "06-capstone/lesson.ipynb"]
if os.environ.get("SSCITY_BROWSER_LESSONS") == "all":
    LESSONS = sorted(str(p.relative_to(MODULES)) for p in MODULES.glob("*/lesson.ipynb"))
elif os.environ.get("SSCITY_BROWSER_LESSONS"):
    LESSONS = [name.strip() for name in os.environ["SSCITY_BROWSER_LESSONS"].split(",") if name.strip()]
ASSIGNMENT = "00-orientation/assignment.ipynb"
SOLUTION = REPO / "solutions" / ASSIGNMENT
RUN_ALL_TIMEOUT_S = 240
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'

# Notebooks that cannot run cleanly, served beside the course: the check must catch each.
BROKEN = {
    "raises": (["print('before')", "raise ValueError('a cell that raises')", "print('after')"],
               "ValueError"),
    "bad-import": (["from sscity.no_such_module import nothing"], "ModuleNotFoundError"),
    "stderr-band": (["import sys\nprint('a stray warning', file=sys.stderr)", "x = 1"],
                    "a stray warning"),
}


# --------------------------------------------------------------------------- server + browser
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _notebook(sources: list[str]) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                        "language": "python"}},
            "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": source,
                       "outputs": [], "execution_count": None}
                      for i, source in enumerate(sources)]}


@pytest.fixture(scope="module")
def artefacts() -> Path:
    folder = Path(os.environ.get("SSCITY_ARTEFACTS") or tempfile.mkdtemp(prefix="sscity-browser-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nbrowser artefacts (screenshots, server log) / ブラウザテストの成果物: {folder}")
    return folder


def _lab_settings(folder: Path) -> Path:
    """Lab settings of this run only: every cell in the DOM (no windowing), no news pop-ups."""
    for plugin, values in {
            "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
            "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                            "checkForUpdates": False}}.items():
        path = folder / "lab-settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return folder / "lab-settings"


@contextmanager
def running_lab(root: Path, work: Path, log_path: Path, *, instructor: bool):
    """JupyterLab as ``sscity lab`` starts it (``--instructor``: on ``root`` with Formgrader;
    else on ``root/modules`` without the instructor tools), on a random port with a token,
    headless; yields (base URL, token) and stops the server at the end."""
    token, port = secrets.token_hex(16), _free_port()
    args = SimpleNamespace(
        instructor=instructor, port=port, ip="127.0.0.1", no_browser=True, token=token,
        lab_args=["--ServerApp.port_retries=0",
                  f"--LabApp.user_settings_dir={_lab_settings(work)}",
                  f"--LabApp.workspaces_dir={work / 'lab-workspaces'}"])
    command, env, _ = lab_command(root, args)
    env["JUPYTER_RUNTIME_DIR"] = str(work / "runtime")
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start; see {log_path}. / JupyterLab が起動しません"
                            f"でした。{log_path} のログを見てください。")
            time.sleep(0.5)
        yield url, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory, artefacts):
    """The students' JupyterLab on a temporary copy of modules/; yields (base URL, token)."""
    if not MODULES.is_dir():
        pytest.fail(f"No modules folder at {MODULES}. / {MODULES} に modules フォルダがありません。")
    course = tmp_path_factory.mktemp("course")
    root = course / "modules"
    shutil.copytree(MODULES, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy(REPO / "nbgrader_config.py", course / "nbgrader_config.py")
    for name, (sources, _) in BROKEN.items():
        (root / "_broken").mkdir(exist_ok=True)
        (root / "_broken" / f"{name}.ipynb").write_text(json.dumps(_notebook(sources)))
    with running_lab(course, course, artefacts / "jupyterlab.log", instructor=False) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@contextmanager
def new_page(browser, artefacts: Path, name: str):
    """A fresh browser context and page; its screenshots go to ``artefacts/name``."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.js_errors = []
    page.on("pageerror", lambda error: page.js_errors.append(str(error)))
    page.shots = artefacts / re.sub(r"[^\w.-]+", "_", name)
    page.shots.mkdir(exist_ok=True)
    try:
        yield page
    finally:
        context.close()


def _api(url: str, token: str, path: str, method: str = "GET", body: dict | None = None):
    request = urllib.request.Request(
        f"{url}{path}", method=method, data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        text = reply.read().decode()
    return json.loads(text) if text else None


@pytest.fixture
def page(browser, lab, artefacts, request):
    with new_page(browser, artefacts, request.node.name) as page:
        yield page
    # Shut down the kernels this test started, as a student closing the notebook would.
    for kernel in _api(*lab, "/api/kernels"):
        _api(*lab, f"/api/kernels/{kernel['id']}", "DELETE")


# --------------------------------------------------------------------------- UI steps
def shot(page, step: str) -> None:
    page.screenshot(path=str(page.shots / f"{step}.png"))


def open_notebook(page, lab, path: str) -> None:
    url, token = lab
    # ?reset: a fresh workspace, so only this notebook is open.
    page.goto(f"{url}/lab/tree/{path}?reset&token={token}")
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").first.wait_for()
    # The kernel has started and answered: the status bar reads "Python 3 (ipykernel) | Idle".
    page.locator("#jp-main-statusbar", has_text=re.compile(r"ipykernel\)\s*\|\s*Idle")).wait_for(
        timeout=120_000)
    wait_idle(page)
    shot(page, "01-opened")


def wait_idle(page, timeout_s: float = RUN_ALL_TIMEOUT_S) -> None:
    """Wait until the kernel is idle and no cell waits to run ([*])."""
    page.wait_for_function(
        """() => {
            const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
            if (!panel) return false;
            const status = panel.querySelector('.jp-Notebook-ExecutionIndicator');
            if (!status || status.getAttribute('data-status') !== 'idle') return false;
            return ![...panel.querySelectorAll('.jp-InputPrompt')]
                .some(p => p.textContent.includes('*'));
        }""", timeout=timeout_s * 1000, polling=500)


def menu(page, top: str, item: str) -> None:
    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text=re.compile(f"^{top}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def run_all(page) -> None:
    menu(page, "Run", "Run All Cells")
    # The first code cell has started ([*]) or run ([1]) before we wait for the end.
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt").first.filter(
        has_text=re.compile(r"\[(\*|\d+)\]")).wait_for(timeout=60_000)
    wait_idle(page)


def problems(page, *, allow: str | None = None) -> list[str]:
    """Error cells and stderr bands on the page, as 'cell N: text' lines.

    ``allow`` is a regular expression of errors that are expected (e.g. the
    NotImplementedError of an unanswered answer cell).
    """
    found = []
    cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
    for index in range(cells.count()):
        cell = cells.nth(index)
        for output in cell.locator(f"{STDERR}, .jp-RenderedText").all():
            text = output.inner_text()
            is_stderr = output.get_attribute("data-mime-type") == "application/vnd.jupyter.stderr"
            # Errors are rendered as stderr; plain output counts only if it holds a traceback
            # (a lesson may print the name of an exception it explains).
            if not (is_stderr or "Traceback" in text):
                continue
            if allow and re.search(allow, text):
                continue
            kind = "error" if ("Traceback" in text or re.search(r"\w+Error\b", text)) else "stderr"
            found.append(f"cell {index + 1} ({kind}): {text.strip()[:400]}")
    return found


def code_cell(page, text: str):
    """The code cell that now holds ``text``, by position (it stays put when edited)."""
    cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell")
    found = [i for i in range(cells.count()) if text in cells.nth(i).locator(".jp-InputArea").inner_text()]
    assert len(found) == 1, f"expected one code cell containing {text!r}, found {len(found)}"
    return cells.nth(found[0])


def set_source(page, cell, source: str) -> None:
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(source)  # as pasted text: no auto-indent or auto-closed brackets
    page.keyboard.press("Escape")


def run_cell(page, cell) -> str:
    cell.locator(".jp-InputPrompt").click()
    page.keyboard.press("Control+Enter")
    page.wait_for_timeout(500)
    wait_idle(page)
    return cell.locator(".jp-OutputArea").inner_text()


def solution_of(notebook: Path, grade_id: str) -> str:
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == grade_id:
            source = "".join(cell["source"])
            match = re.search(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", source, re.S)
            assert match, f"{notebook}: cell {grade_id} has no BEGIN/END SOLUTION markers"
            return match.group(1)
    raise AssertionError(f"{notebook}: no cell with grade_id {grade_id}")


def assert_page_healthy(page) -> None:
    assert not page.js_errors, f"JavaScript errors on the page: {page.js_errors}"
    assert page.locator(".jp-NotebookPanel").count() > 0, "JupyterLab showed no notebook"


# --------------------------------------------------------------------------- tests
@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_runs_clean_through_run_all(page, lab, lesson):
    open_notebook(page, lab, lesson)
    run_all(page)
    shot(page, "02-ran-all")
    assert_page_healthy(page)
    found = problems(page)
    assert not found, (f"{lesson} does not run cleanly in JupyterLab (Run → Run All Cells): "
                       + "\n".join(found))
    prompts = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt")
    unrun = [i for i in range(prompts.count()) if not re.search(r"\[\d+\]", prompts.nth(i).inner_text())]
    assert not unrun, f"{lesson}: code cells {unrun} did not run"


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_notebook_that_cannot_run_is_caught(page, lab, name):
    """The same check on notebooks that raise, import what does not exist, or print to stderr."""
    open_notebook(page, lab, f"_broken/{name}.ipynb")
    run_all(page)
    shot(page, "02-ran-all")
    found = problems(page)
    expected = BROKEN[name][1]
    assert found and any(expected in line for line in found), (
        f"the check missed a broken notebook ({name}): {found}")


def test_assignment_wrong_then_right_answer_and_validate(page, lab):
    open_notebook(page, lab, ASSIGNMENT)
    run_all(page)
    shot(page, "02-ran-all")
    assert_page_healthy(page)
    # Run All stops at the first unanswered task: its NotImplementedError is the only error.
    found = problems(page)
    assert len(found) == 1 and "NotImplementedError" in found[0], (
        f"after Run All the assignment should stop at task 1's empty answer cell: {found}")
    # The students' lab (as `sscity lab` starts it) keeps Validate and hides the instructor tools.
    assert page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .validate-button").count() == 1
    assert page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text="Nbgrader").count() == 0, (
        "students should not see the Nbgrader menu (Formgrader, Create Assignment)")
    setup = code_cell(page, "# Setup: run this cell first.")
    assert re.search(r"\[\d+\]", setup.locator(".jp-InputPrompt").inner_text()), "setup did not run"

    answer = code_cell(page, "# Define `positions_to_gdf(table)` and `meeting_gdf`.")
    check = code_cell(page, "assert isinstance(meeting_gdf, gpd.GeoDataFrame)")
    right = solution_of(SOLUTION, "stations-gdf")
    wrong = right.replace("points_from_xy(lon, lat)", "points_from_xy(lat, lon)")
    assert wrong != right, "the solution changed: update the wrong answer of this test"

    set_source(page, answer, wrong)
    run_cell(page, answer)
    output = run_cell(page, check)
    check.locator(".jp-OutputArea").scroll_into_view_if_needed()
    shot(page, "03-wrong-answer")
    # The message itself (the traceback also quotes the source around the failing assert).
    assert "AssertionError: " in output, f"a wrong answer should fail its test: {output!r}"
    message = output.rsplit("AssertionError: ", 1)[1]
    assert "x coordinates should be longitudes" in message, message      # English part
    assert "x 座標は東経140度付近の経度のはずです" in message, message   # Japanese part

    set_source(page, answer, right)
    assert not run_cell(page, answer).strip(), "the solution printed something"
    output = run_cell(page, check)
    check.scroll_into_view_if_needed()
    shot(page, "04-right-answer")
    assert "Error" not in output and not check.locator(STDERR).count(), (
        f"the right answer should pass its test: {output!r}")
    assert_page_healthy(page)

    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .validate-button button").click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=180_000)
    shot(page, "05-validate")
    header = dialog.locator(".jp-Dialog-header").inner_text()
    body = dialog.locator(".jp-Dialog-body").inner_text()
    assert "Validation Results" in header, f"Validate did not validate: {header}: {body}"
    # Tasks 2-6 are still unanswered, so Validate lists failing cells, but no longer task 1's.
    assert "The following cell failed" in body, body
    assert "campus_to_stations_m" in body and "NameError" in body, body   # task 2's test
    assert "meeting_gdf" not in body, f"Validate still fails task 1 after the right answer: {body}"
    dialog.locator(".jp-Dialog-footer button").last.click()


def test_instructor_grades_a_hand_graded_task_in_formgrader(browser, artefacts, tmp_path):
    """One student's module 00 graded by `sscity course grade`; the instructor's lab on the
    output folder (as `sscity lab --instructor` would on it: the documented "open DIR");
    Nbgrader → Formgrader; Manual Grading flags exactly the hand-graded task; a score typed
    in the grading page is saved in the gradebook and reaches grades.csv via `sscity course
    report`."""
    from sscity.course.demo import build_demo_class
    from sscity.course.grade import grade

    module, student, task = "00-orientation", "correct-01", "deck-vs-public"
    build_demo_class(REPO, tmp_path, students=0, modules=[module], adversarial=["adv-stray-file"])
    for folder in (tmp_path / "submissions").iterdir():
        if folder.name != student:
            shutil.rmtree(folder)
    graded = tmp_path / "graded"
    grade(REPO, tmp_path / "submissions", graded, jobs=1, cell_timeout=20, progress=False)
    (tmp_path / "lab").mkdir()
    with running_lab(graded, tmp_path / "lab", artefacts / "jupyterlab-instructor.log",
                     instructor=True) as (url, token), \
            new_page(browser, artefacts, "test_instructor_formgrader") as page:
        page.goto(f"{url}/lab?reset&token={token}")
        page.locator("#jp-MainMenu").wait_for()
        menu(page, "Nbgrader", "Formgrader")
        frame = page.frame_locator(".jp-MainAreaWidget iframe")
        # Manage Assignments lists the graded module, with its one submission.
        row = frame.locator("tr", has=frame.locator("td", has_text=module)).first
        row.wait_for(timeout=60_000)
        shot(page, "01-formgrader-in-lab")
        assert re.search(r"\b1\b", row.inner_text()), row.inner_text()

        page.goto(f"{url}/formgrader/gradebook/{module}/assignment")
        page.locator("a", has_text="Submission #1").click()  # names are hidden by default
        page.locator("input.score").first.wait_for()
        shot(page, "02-grading-page")
        flagged = [i.get_attribute("id") for i in page.locator("input.score.needs_manual_grade").all()]
        assert flagged == [task], f"formgrader should flag only the hand-graded task: {flagged}"
        score = page.locator(f"input.score#{task}")
        score.scroll_into_view_if_needed()
        score.fill("7")
        score.press("Tab")
        page.wait_for_function(
            f"() => !document.getElementById('{task}').classList.contains('needs_manual_grade')",
            timeout=30_000)
        shot(page, "03-hand-grade-saved")

        notebooks = _api(url, token, f"/formgrader/api/submitted_notebooks/{module}/assignment")
        grades = _api(url, token, f"/formgrader/api/grades?submission_id={notebooks[0]['id']}")
        hand = next(g for g in grades if g["name"] == task)
        assert (hand["manual_score"], hand["needs_manual_grade"]) == (7, False), hand
    report = subprocess.run([sys.executable, "-m", "sscity", "course", "report", str(graded)],
                            capture_output=True, text=True, cwd=REPO)
    assert report.returncode == 0, report.stdout + report.stderr
    with open(graded / "grades.csv", newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["student"] == student)
    assert float(row["manual_points_pending"]) == 0, row
