"""Every lesson runs top to bottom in a fresh kernel, in a folder of its own.

Lessons earn no points, so nothing else would notice a lesson that stopped working: a
renamed helper, a changed dataset, a cell that depends on hidden state. Each one is run
with nbclient exactly as a student's *Restart and Run All* would, with the working folder
set to a new temporary directory (so files the lesson writes land there).
"""

from __future__ import annotations

import pytest
from conftest import ROOT
from nbclient.exceptions import CellExecutionError
from notebook_runs import errors, execute

pytestmark = pytest.mark.slow

LESSONS = sorted(ROOT.glob("solutions/*/lesson.ipynb"))


@pytest.mark.parametrize("lesson", LESSONS, ids=[path.parent.name for path in LESSONS])
def test_lesson_runs_top_to_bottom_in_a_fresh_kernel(lesson, tmp_path, monkeypatch):
    monkeypatch.delenv("SSCITY_BROKER_URL", raising=False)  # the embedded broker, as on a laptop
    try:
        notebook = execute(lesson, tmp_path, timeout=600)
    except CellExecutionError as error:
        pytest.fail(f"{lesson.relative_to(ROOT)} stopped with an error:\n{error}")
    assert not errors(notebook), errors(notebook)


def test_every_module_has_a_lesson():
    modules = sorted(path.name for path in (ROOT / "solutions").iterdir() if path.is_dir())
    assert [path.parent.name for path in LESSONS] == modules
