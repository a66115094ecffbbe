"""Smoke test of the student edition made by ``sscity course publish``.

Runs inside the published copy (it is copied there as ``tests/test_published.py``): the
copy holds no solutions and no hidden tests, its datasets match their manifest, every
lesson and the primer run top to bottom, and every assignment runs with only the expected errors (the
unanswered placeholders and the tests that need them).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((HERE / "modules").glob("*/*.ipynb"))
EXPECTED_IN_BLANK = {"NotImplementedError", "NameError", "AssertionError", "TypeError",
                     "AttributeError", "KeyError", "ValueError"}


def test_no_solutions_hidden_tests_or_wrong_answers_are_published():
    assert not (HERE / "solutions").exists()
    assert not list(HERE.rglob("known-wrong.toml"))
    for path in HERE.rglob("*.ipynb"):
        text = path.read_text(encoding="utf-8")
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "MARK SCHEME"):
            assert marker not in text, f"{path} contains {marker}"


def test_datasets_match_their_manifest():
    from sscity.data import verify_manifest

    report = verify_manifest(HERE / "datasets")
    assert report.ok, "\n".join(report.lines())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_released_notebook_runs(path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [(i, o["ename"]) for i, c in enumerate(nb.cells) for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    if path.stem != "assignment":  # lessons and the primer run without errors
        assert not errors, errors
    else:
        unexpected = [e for e in errors if e[1] not in EXPECTED_IN_BLANK]
        assert not unexpected, unexpected
