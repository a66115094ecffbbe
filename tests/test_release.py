"""`sscity course release --check`: modules/ is exactly a fresh release of solutions/."""

from __future__ import annotations

import shutil

import nbformat
import pytest
from conftest import ROOT, run_sscity

pytestmark = pytest.mark.slow


def test_committed_release_matches_a_fresh_release():
    done = run_sscity("course", "release", "--check")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture()
def course_copy(tmp_path):
    """The parts of the repository that release needs, copied so that they can be damaged."""
    for folder in ("solutions", "modules"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    shutil.copy2(ROOT / "nbgrader_config.py", tmp_path)
    return tmp_path


def test_hand_edit_deletion_and_stray_file_in_modules_are_named(course_copy):
    module = sorted(p.name for p in (course_copy / "modules").iterdir())[0]
    edited = course_copy / "modules" / module / "assignment.ipynb"
    nb = nbformat.read(edited, as_version=4)
    nb.cells[0].source += "\nA hand edit. / 手で編集。"
    nbformat.write(nb, edited)
    (course_copy / "modules" / module / "lesson.ipynb").unlink()
    (course_copy / "modules" / module / "notes.txt").write_text("stray")

    done = run_sscity("--root", str(course_copy), "course", "release", "--check")
    assert done.returncode == 1
    assert f"CHANGED  modules/{module}/assignment.ipynb" in done.stdout
    assert f"MISSING  modules/{module}/lesson.ipynb" in done.stdout
    assert f"EXTRA    modules/{module}/notes.txt" in done.stdout

    # Releasing repairs it, and the check then passes.
    assert run_sscity("--root", str(course_copy), "course", "release").returncode == 0
    assert run_sscity("--root", str(course_copy), "course", "release", "--check").returncode == 0
    assert not (course_copy / "modules" / module / "notes.txt").exists()
