"""The primer of module 00 (``primer.ipynb``) runs top to bottom in a fresh kernel and is
released like the lesson: ungraded, in ``modules/`` and so in the student edition.

It is for learners who have never programmed, so nothing else would notice if it stopped
working: a renamed helper, a changed dataset, a cell that depends on hidden state.
"""

from __future__ import annotations

import nbformat
import pytest
from conftest import ROOT
from nbclient.exceptions import CellExecutionError
from notebook_runs import errors, execute

PRIMER = ROOT / "solutions" / "00-orientation" / "primer.ipynb"
RELEASED = ROOT / "modules" / "00-orientation" / "primer.ipynb"


@pytest.mark.slow
def test_primer_runs_top_to_bottom_in_a_fresh_kernel(tmp_path, monkeypatch):
    monkeypatch.delenv("SSCITY_BROKER_URL", raising=False)
    try:
        notebook = execute(PRIMER, tmp_path, timeout=600)
    except CellExecutionError as error:
        pytest.fail(f"{PRIMER.relative_to(ROOT)} stopped with an error:\n{error}")
    assert not errors(notebook), errors(notebook)
    printed = "".join(output.get("text", "") for cell in notebook.cells
                      for output in cell.get("outputs", []))
    assert "KeyError: 'hapiness'" in printed  # the error message the primer teaches to read


def test_primer_is_released_ungraded_and_without_outputs():
    source, released = (nbformat.read(path, as_version=4) for path in (PRIMER, RELEASED))
    assert [c.source for c in released.cells] == [c.source for c in source.cells]
    for nb in (source, released):
        assert not any(c.get("metadata", {}).get("nbgrader") for c in nb.cells)
        assert not any(c.get("outputs") or c.get("execution_count") for c in nb.cells
                       if c.cell_type == "code")


def test_primer_is_linked_from_the_readme_and_the_recurrent_path():
    readme = (ROOT / "solutions" / "00-orientation" / "README.md").read_text(encoding="utf-8")
    lesson = nbformat.read(ROOT / "solutions" / "00-orientation" / "lesson.ipynb", as_version=4)
    box = next(c.source for c in lesson.cells[:3] if "リカレント履修の道筋" in c.source)
    assert "primer.ipynb" in readme and "primer.ipynb" in box
