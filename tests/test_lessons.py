"""Every lesson runs top to bottom in a fresh kernel, in a folder of its own.

Lessons earn no points, so nothing else would notice a lesson that stopped working: a
renamed helper, a changed dataset, a cell that depends on hidden state. Each one is run
with nbclient exactly as a student's *Restart and Run All* would, with the working folder
set to a new temporary directory (so files the lesson writes land there).
"""

from __future__ import annotations

import nbformat
import pytest
from conftest import ROOT
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

pytestmark = pytest.mark.slow

LESSONS = sorted(ROOT.glob("solutions/*/lesson.ipynb"))


@pytest.mark.parametrize("lesson", LESSONS, ids=[path.parent.name for path in LESSONS])
def test_lesson_runs_top_to_bottom_in_a_fresh_kernel(lesson, tmp_path, monkeypatch):
    monkeypatch.delenv("SSCITY_BROKER_URL", raising=False)  # the embedded broker, as on a laptop
    notebook = nbformat.read(lesson, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except CellExecutionError as error:
        pytest.fail(f"{lesson.relative_to(ROOT)} stopped with an error:\n{error}")
    errors = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    assert not errors, errors


def test_every_module_has_a_lesson():
    modules = sorted(path.name for path in (ROOT / "solutions").iterdir() if path.is_dir())
    assert [path.parent.name for path in LESSONS] == modules
