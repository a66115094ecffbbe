"""`sscity course publish`: the student edition holds no solutions and passes its own smoke test."""

from __future__ import annotations

import pytest
from conftest import ROOT
from sscity.course.publish import publish, smoke_test


@pytest.mark.slow
def test_student_edition_has_no_solutions_and_passes_its_smoke_test(tmp_path):
    dest = tmp_path / "student-edition"
    publish(ROOT, dest)
    assert not (dest / "solutions").exists()
    assert not list(dest.rglob("known-wrong.toml"))
    assert (dest / "modules").is_dir() and (dest / "datasets" / "MANIFEST").is_file()
    assert not (dest / "tests" / "test_pipeline.py").exists()  # instructor-only tests stay home
    assert "course demo" not in (dest / "Makefile").read_text()
    done = smoke_test(dest)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "passed" in done.stdout


def test_publishing_into_the_repository_or_a_full_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="outside the course repository"):
        publish(ROOT, ROOT / "student-edition")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        publish(ROOT, tmp_path / "full")
