"""The grading pipeline end to end with the real nbgrader.

- `sscity course verify` passes for every module (solution full marks, blank 0, every
  known-wrong answer fails its named test);
- independently of sscity's own reading of the gradebook: a blank release and the solution
  go through `nbgrader generate_assignment`, `autograde` and `export` in a temporary grading
  root, and grades.csv says 0 and 100;
- verify itself fails when a test lets a known-wrong answer through or a solution is wrong.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, graded, make_notebook, new_code_cell, new_markdown_cell
from sscity.course.notebooks import module_ids
from sscity.course.verify import format_report, verify_module

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("module", module_ids(ROOT, "solutions"))
def test_verify_module(module):
    report = verify_module(ROOT, module)
    assert report.ok, format_report(report)
    variants = {row.variant for row in report.rows}
    assert variants == {"solution", "blank", "wrong"}, format_report(report)
    assignment = [r for r in report.rows if r.notebook == "assignment.ipynb"]
    # Autograded points only: a manually graded task's points are left to a person.
    assert any(r.variant == "solution" and r.score == r.max_score > 0 for r in assignment)
    assert any(r.variant == "blank" and r.score == 0 and r.max_score > 0 for r in assignment)


def _nbgrader(*args, cwd):
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent),
                                                os.environ.get("PATH", "")]))
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_blank_scores_0_and_solution_scores_100_with_plain_nbgrader(tmp_path):
    module = "00-orientation"
    shutil.copy2(ROOT / "nbgrader_config.py", tmp_path)
    shutil.copytree(ROOT / "solutions" / module, tmp_path / "solutions" / module,
                    ignore=shutil.ignore_patterns("known-wrong.toml"))
    _nbgrader("generate_assignment", module, "--force", cwd=tmp_path)
    for student, folder in (("blank", tmp_path / "modules" / module),
                            ("solution", tmp_path / "solutions" / module)):
        target = tmp_path / "submitted" / student / module
        target.mkdir(parents=True)
        for notebook in folder.glob("*.ipynb"):
            shutil.copy2(notebook, target)
    _nbgrader("autograde", module, cwd=tmp_path)
    _nbgrader("export", "--to", str(tmp_path / "grades.csv"), cwd=tmp_path)

    with open(tmp_path / "grades.csv", newline="") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    # Hand-graded tasks score 0 until a person grades them in formgrader.
    source = nbformat.read(ROOT / "solutions" / module / "assignment.ipynb", as_version=4)
    by_hand = sum(float(c.metadata.get("nbgrader", {}).get("points", 0)) for c in source.cells
                  if c.metadata.get("nbgrader", {}).get("task"))
    assert float(rows["blank"]["raw_score"]) == 0
    assert float(rows["solution"]["raw_score"]) == 100 - by_hand
    assert float(rows["solution"]["max_score"]) == 100


def test_verify_fails_when_a_test_misses_a_known_wrong_or_a_solution_is_wrong(tmp_path):
    """A tiny module whose test is too weak: verify must say so, not pass it."""
    shutil.copy2(ROOT / "nbgrader_config.py", tmp_path)
    msg = "double(2) should be 4. / double(2) は 4 になるはずです。"
    make_notebook([
        new_markdown_cell("# Weak test / 弱いテスト"),
        new_code_cell("def double(x):\n    ### BEGIN SOLUTION\n    return x + x\n    ### END SOLUTION",
                      metadata=graded("answer", "double")),
        new_code_cell(f"assert double(2) == 4, {msg!r}",
                      metadata=graded("test", "double-tests", points=60)),
        new_code_cell("def half(x):\n    ### BEGIN SOLUTION\n    return x * 2\n    ### END SOLUTION",
                      metadata=graded("answer", "half")),
        new_code_cell(f"assert half(4) == 2, {msg!r}",
                      metadata=graded("test", "half-tests", points=40)),
    ], module="99-weak", tmp=tmp_path)
    (tmp_path / "solutions" / "99-weak" / "known-wrong.toml").write_text(
        "[[wrong]]\nnotebook = 'assignment'\nanswer = 'double'\nmust_fail = 'double-tests'\n"
        "mistake = 'squares instead of doubling'\ncode = '''\ndef double(x):\n    return x * x\n'''\n"
        "[[wrong]]\nnotebook = 'assignment'\nanswer = 'double'\nmust_fail = 'double-tests'\n"
        "mistake = 'adds one'\ncode = '''\ndef double(x):\n    return x + 1\n'''\n")
    report = verify_module(tmp_path, "99-weak")
    text = format_report(report)
    assert not report.ok
    by_detail = {row.detail: row for row in report.rows}
    squares = next(r for d, r in by_detail.items() if "squares" in d)
    adds_one = next(r for d, r in by_detail.items() if "adds one" in d)
    assert not squares.ok and "PASSES" in squares.detail, text  # 2*2 == 2**2: the test misses it
    assert adds_one.ok, text
    solution = next(r for r in report.rows if r.variant == "solution")
    assert not solution.ok and "half-tests 0/40" in solution.detail, text
    blank = next(r for r in report.rows if r.variant == "blank")
    assert blank.ok and blank.score == 0, text
