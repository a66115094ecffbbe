"""Shared fixtures: the repository root and small notebook builders for negative tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from sscity.course.notebooks import CourseNotebook

ROOT = Path(__file__).resolve().parents[1]

# tests/published/ is the student edition's smoke test: it runs inside a published copy.
collect_ignore = ["published"]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def run_sscity(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the ``sscity`` command with this interpreter, capturing its output."""
    return subprocess.run([sys.executable, "-m", "sscity", *args], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=600)


def graded(kind: str, grade_id: str, tier: str | None = "core", points: float = 0, **extra):
    """Metadata of an nbgrader cell: kind is 'answer', 'test', 'manual' or 'task'."""
    base = {
        "answer": {"grade": False, "solution": True, "locked": False},
        "test": {"grade": True, "solution": False, "locked": True, "points": points},
        "manual": {"grade": True, "solution": True, "locked": False, "points": points},
    }[kind]
    meta = {"nbgrader": {**base, "grade_id": grade_id, "schema_version": 3, **extra}}
    if tier:
        meta["tags"] = [tier]
    return meta


def make_notebook(cells, module="99-test", name="assignment", kind="solutions", tmp=None):
    """A CourseNotebook from cells, optionally written under ``tmp/kind/module``."""
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = Path(tmp or "/nonexistent") / kind / module / f"{name}.ipynb"
    if tmp is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
    return CourseNotebook(module, name, path, nb)


__all__ = ["ROOT", "graded", "make_notebook", "new_code_cell", "new_markdown_cell", "run_sscity"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen, timeout_s: float = 20) -> None:
    """Stop a server a test started: SIGTERM, then SIGKILL if it has not ended in ``timeout_s``."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout_s)


def http_get(url: str, token: str) -> tuple[int, str]:
    """GET ``url`` from a Jupyter server with its token: (status, body); an HTTP error's body is ''."""
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


#: The module and students of the small graded class that several test files share.
TWO_STUDENT_MODULE = "00-orientation"
TWO_STUDENTS = ("correct-01", "blank-01")


@pytest.fixture(scope="session")
def two_student_class(tmp_path_factory):
    """00-orientation handed in by a correct and a blank student (plus a stray file), graded
    once per test worker: ``(folder, run)`` with ``folder/submissions`` and ``folder/graded``.

    Tests copy what they change. The files that use it share an xdist group, so that one
    worker grades the class once instead of each file grading its own.
    """
    import shutil

    from sscity.course.demo import build_demo_class
    from sscity.course.grade import grade

    base = tmp_path_factory.mktemp("two-student-class")
    build_demo_class(ROOT, base, students=0, modules=[TWO_STUDENT_MODULE], adversarial=["adv-stray-file"])
    for folder in (base / "submissions").iterdir():
        if folder.name not in TWO_STUDENTS:
            shutil.rmtree(folder)
    run = grade(ROOT, base / "submissions", base / "graded", jobs=2, cell_timeout=20, progress=False)
    return base, run


class _BrokerBugs:
    """Collects the broker's ``internal error`` log records (each one was answered 500)."""

    def __init__(self):
        import logging

        self.records: list = []
        self.handler = logging.Handler(level=logging.ERROR)
        self.handler.emit = self.records.append


@pytest.fixture(autouse=True)
def no_broker_answers_500():
    """Every test fails if the in-process NGSI-LD broker answered any request with a 500.

    The broker turns an unexpected exception into a 500 ProblemDetails and logs it; a test
    that checks only what it asked for would pass over that bug (issue 17: no request in
    the test suite gets a 500).
    """
    import logging

    bugs = _BrokerBugs()
    logger = logging.getLogger("sscity.platform.app")
    logger.addHandler(bugs.handler)
    try:
        yield
    finally:
        logger.removeHandler(bugs.handler)
    if bugs.records:
        record = bugs.records[0]
        pytest.fail(f"the broker answered 500 ({record.getMessage()}):\n"
                    + (logging.Formatter().formatException(record.exc_info) if record.exc_info else ""),
                    pytrace=False)
