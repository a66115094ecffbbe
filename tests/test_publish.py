"""`sscity course publish`: the student edition holds no solutions and passes its own smoke test;
`--japanese-first` puts the Japanese first in every bilingual cell, test message and README."""

from __future__ import annotations

import ast
import filecmp
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT, free_port, graded, http_get, new_code_cell, new_markdown_cell, run_sscity
from nbformat.v4 import new_notebook
from nbgrader.utils import compute_checksum
from sscity.course.notebooks import CourseRootError, course_root, without_magics
from sscity.course.publish import (
    first_language,
    japanese_first_code,
    japanese_first_markdown,
    japanese_first_notebook,
    language,
    message_halves,
    publish,
    readme_commands,
    smoke_test,
)


def _chars(text: str) -> list[str]:
    """What a reordering must keep: every character but white space."""
    return sorted(c for c in text if not c.isspace())


def _messages(source: str) -> list:
    from sscity.course.publish import _message_nodes, _message_parts, _parts_text

    nodes = _message_nodes(ast.parse(without_magics(source)))
    return [_parts_text(parts) if (parts := _message_parts(n)) else None for n in nodes]


def check_japanese_first_edition(dest) -> dict[str, int]:
    """Every property of a Japanese-first edition that can be read without running it."""
    seen = {"markdown": 0, "messages": 0, "readmes": 0}
    for path in sorted((dest / "modules").glob("*/*.ipynb")):
        original = nbformat.read(ROOT / "modules" / path.parent.name / path.name, as_version=4)
        edition = nbformat.read(path, as_version=4)
        assert len(original.cells) == len(edition.cells)
        for index, (old, new) in enumerate(zip(original.cells, edition.cells, strict=True)):
            where = f"{path.parent.name}/{path.name} cell {index}"
            if new.cell_type == "markdown":
                assert _chars(new.source) == _chars(old.source), f"{where}: text was not only reordered"
                first = first_language(new.source)
                # A cell with no prose (a rule, a formula) has no language; every other cell
                # starts in Japanese.
                assert first == "ja" or (first is None and language(new.source) is None), (
                    f"{where} does not start in Japanese:\n{new.source[:400]}")
                for line in new.source.splitlines():
                    if line.lstrip("> ").startswith("#") and " / " in line:
                        assert language(line.split(" / ")[0]) != "en", f"{where}: {line}"
                seen["markdown"] += 1
            elif new.cell_type == "code":
                ast.parse(without_magics(new.source))  # still Python
                before, after = _messages(old.source), _messages(new.source)
                assert len(before) == len(after), where
                for was, now in zip(before, after, strict=True):
                    if was is not None and message_halves([was]) is not None:
                        english, japanese = message_halves([was])
                        assert now == f"{japanese[0]} / {english[0]}", (where, was, now)
                        seen["messages"] += 1
            checksum = new.metadata.get("nbgrader", {}).get("checksum")
            if checksum:  # nbgrader validate still recognises the locked cells
                assert compute_checksum(new) == checksum, where
    for path in sorted((dest / "modules").glob("*/README.md")):
        old = (ROOT / "modules" / path.parent.name / "README.md").read_text(encoding="utf-8")
        new = path.read_text(encoding="utf-8")
        assert _chars(new) == _chars(old)
        assert [line for line in new.splitlines() if line.startswith("|")] == \
            [line for line in old.splitlines() if line.startswith("|")]  # tables untouched
        body = new.split("\n", 1)[1]
        assert first_language(body) == "ja", path
        seen["readmes"] += 1
    return seen


@pytest.mark.slow
def test_student_edition_has_no_solutions_and_passes_its_smoke_test(tmp_path):
    # One publish serves both checks: the Japanese-first edition is the student edition with
    # paragraphs and messages reordered, so its smoke test runs every notebook of both.
    dest = tmp_path / "student-edition"
    publish(ROOT, dest, japanese_first=True)
    assert not (dest / "solutions").exists()
    assert not list(dest.rglob("known-wrong.toml"))
    assert (dest / "modules").is_dir() and (dest / "datasets" / "MANIFEST").is_file()
    assert not (dest / "tests" / "test_pipeline.py").exists()  # instructor-only tests stay home
    assert "course demo" not in (dest / "Makefile").read_text()
    check_japanese_first_edition(dest)
    done = smoke_test(dest)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "passed" in done.stdout


def test_the_default_edition_keeps_the_course_as_written(tmp_path):
    dest = tmp_path / "student-edition"
    publish(ROOT, dest)
    for path in (ROOT / "modules").glob("*/*"):
        if path.is_file():
            assert filecmp.cmp(path, dest / "modules" / path.parent.name / path.name, shallow=False), path
    assert "--japanese-first" not in (dest / "PUBLISHED.md").read_text(encoding="utf-8")


def test_the_japanese_first_edition_of_the_course(tmp_path):
    dest = tmp_path / "japanese-first"
    publish(ROOT, dest, japanese_first=True)
    seen = check_japanese_first_edition(dest)
    assert seen["markdown"] > 100 and seen["messages"] > 50 and seen["readmes"] >= 4, seen
    assert "--japanese-first" in (dest / "PUBLISHED.md").read_text(encoding="utf-8")


def test_publishing_into_the_repository_or_a_full_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="outside the course repository"):
        publish(ROOT, ROOT / "student-edition")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        publish(ROOT, tmp_path / "full")


def test_the_edition_is_a_course_root_for_students_only(tmp_path):
    dest = tmp_path / "student-edition"
    publish(ROOT, dest)
    assert (dest / ".sscity-edition").is_file()
    # Its README's two commands are the student's, and the smoke test runs them.
    readme = (dest / "README.md").read_text(encoding="utf-8")
    assert readme_commands(readme) == ["make setup", "make lab"]
    assert readme_commands((ROOT / "README.md").read_text(encoding="utf-8")) != ["make setup", "make lab"]
    assert "## What is in the course" in readme  # the rest of the README travels
    help_text = subprocess.run(["make", "help"], cwd=dest, capture_output=True, text=True).stdout
    assert "make setup" in help_text and "release" not in help_text, help_text
    assert course_root(dest / "modules" / "00-orientation", edition=True) == dest
    with pytest.raises(CourseRootError, match="is the student edition"):
        course_root(dest)  # instructors' commands: the nearest course is the edition
    done = run_sscity("course", "release", cwd=dest)
    assert done.returncode == 2 and "student edition" in done.stderr and "学生版" in done.stderr
    done = run_sscity("lab", "--instructor", cwd=dest)
    assert done.returncode == 2 and "student edition" in done.stderr, done.stderr


class _Lab:
    """``sscity lab ARGS`` on a free port, until the block ends."""

    def __init__(self, *args, cwd=ROOT):
        self.token, port = "test-token", free_port()
        self.base = f"http://127.0.0.1:{port}"
        # As from a venv that is not activated (`.venv/bin/python -m sscity lab`): the venv's
        # scripts (alembic, which nbgrader runs to create a gradebook) are not on PATH.
        scripts = str(Path(sys.executable).parent)
        path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p != scripts]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sscity", "lab", "--port", str(port), "--no-browser",
             "--token", self.token, *args], cwd=cwd, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
            env={**os.environ, "PATH": os.pathsep.join(path)})

    def get(self, path):
        return http_get(self.base + path, self.token)

    def __enter__(self):
        deadline = time.monotonic() + 90
        while True:
            try:
                if self.get("/api/status")[0] == 200:
                    return self
            except OSError:
                pass
            assert self.process.poll() is None, self.process.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "JupyterLab did not answer in 90 s"
            time.sleep(0.3)

    def __exit__(self, *exc):
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _disabled_plugins(html: str) -> list[str]:
    found = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                      html, re.S)
    assert found, "no page config in JupyterLab's page"
    return json.loads(found.group(1)).get("disabledExtensions", [])


INSTRUCTOR_PLUGINS = ("@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                      "@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:course-list")


@pytest.mark.slow
def test_sscity_lab_hides_instructor_tools_from_students_and_serves_formgrader_to_instructors(
        tmp_path):
    module = sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())[0]
    # The instructor's server runs on a copy of the course with no gradebook.db yet (as in a
    # fresh clone), so formgrader must create one; the repository's own is left alone.
    course = tmp_path / "course"
    for folder in ("solutions", "modules"):
        shutil.copytree(ROOT / folder, course / folder)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    with _Lab() as lab:  # students: modules/, no formgrader, no exchange lists
        assert lab.get(f"/api/contents/{module}")[0] == 200
        disabled = _disabled_plugins(lab.get("/lab")[1])
        assert all(plugin in disabled for plugin in INSTRUCTOR_PLUGINS), disabled
        assert "@jupyter/nbgrader:validate-assignment" not in disabled
        for path in ("/formgrader", "/formgraders", "/assignments", "/courses"):
            assert lab.get(path)[0] == 404, f"{path} is served to students"
    with _Lab("--instructor", cwd=course) as lab:  # instructors: formgrader and its links
        assert not set(INSTRUCTOR_PLUGINS) & set(_disabled_plugins(lab.get("/lab")[1]))
        status, listing = lab.get("/formgrader/api/assignments")
        assert status == 200
        assignments = json.loads(listing)
        assert module in {a["name"] for a in assignments}
        for assignment in assignments:  # formgrader links to solutions/ and modules/ resolve
            assert lab.get(f"/api/contents/{assignment['source_path']}")[0] == 200, assignment
    assert (course / "gradebook.db").is_file()


# --- the reordering, on small examples -----------------------------------------------------

def test_markdown_paragraphs_headings_and_items_put_the_japanese_first():
    text = (
        "## 2. Counts and intervals / 人数と区間\n"
        "\n"
        "A percentage hides its count. Which whole numbers give 72.2 %?\n"
        "\n"
        "**Why an interval?** The people are a *sample*.\n"
        "\n"
        "割合の裏には人数があります。どの整数なら 72.2 % になるでしょうか。\n"
        "\n"
        "**なぜ区間なのか。** 回答者は*標本*です。\n"
        "\n"
        "| Task / 課題 | Points / 配点 |\n"
        "|---|---|\n"
        "| Sum / 合計 | 10 |\n"
        "\n"
        "1. Run the cells from top to bottom,\n"
        "   then check the result.\n"
        "   セルを上から順に実行し、\n"
        "   結果を確かめます。\n"
        "2. Write your answer here. / ここに解答を書いてください。\n"
    )
    assert japanese_first_markdown(text) == (
        "## 2. 人数と区間 / Counts and intervals\n"
        "\n"
        "割合の裏には人数があります。どの整数なら 72.2 % になるでしょうか。\n"
        "\n"
        "**なぜ区間なのか。** 回答者は*標本*です。\n"
        "\n"
        "A percentage hides its count. Which whole numbers give 72.2 %?\n"
        "\n"
        "**Why an interval?** The people are a *sample*.\n"
        "\n"
        "| Task / 課題 | Points / 配点 |\n"
        "|---|---|\n"
        "| Sum / 合計 | 10 |\n"
        "\n"
        "1. セルを上から順に実行し、\n"
        "   結果を確かめます。\n"
        "   Run the cells from top to bottom,\n"
        "   then check the result.\n"
        "2. ここに解答を書いてください。 / Write your answer here.\n"
    )


def test_a_formula_between_the_languages_stays_between_and_quotes_stay_put():
    text = ("The **Wilson** interval has the formula below.\n\n$$\\hat p \\pm z$$\n\n"
            "**Wilson** 区間の式は上のとおりです。")
    assert japanese_first_markdown(text) == (
        "**Wilson** 区間の式は上のとおりです。\n\n$$\\hat p \\pm z$$\n\nThe **Wilson** interval has "
        "the formula below.")
    # Japanese quoted in English prose is a citation, not a translation: nothing moves.
    quoted = "- The deck says 「スマートシティ倫理原則の制定（2020.9）」. No source confirms it."
    assert japanese_first_markdown(quoted) == quoted
    # A blockquote is reordered inside; Japanese-first text is left as it is.
    box = "> **Note.** Synthetic data.\n>\n> **注。** 合成データです。"
    assert japanese_first_markdown(box) == "> **注。** 合成データです。\n>\n> **Note.** Synthetic data."
    path = ("> **リカレント履修の道筋 / Recurrent path** (約1時間 / about 1 h)\n>\n"
            "> - 第1節を精読 / read section 1")
    assert japanese_first_markdown(path) == path
    assert japanese_first_markdown(japanese_first_markdown(box)) == japanese_first_markdown(box)


def test_test_messages_swap_halves_and_the_code_still_parses():
    source = (
        "assert x == 1, \"Check x. / x を確かめましょう。\"\n"
        "assert y == 2, (\n"
        "    \"Compute (sum w)^2 / sum w^2 of the weights, not the \"\n"
        "    \"number of rows. / 行数ではなく、ウェイトの \"\n"
        "    \"(Σw)² / Σw² を計算しましょう。\"\n"
        ")\n"
        "for k in range(2):\n"
        "    assert k < 2, f\"Row {k} should be kept. / {k} 行目は残します。\"\n"
        "raise ValueError(\"Unknown district. / 未知の地区です。\", 3)\n"
        "assert z, (z, 'a tuple is not a message')\n"
    )
    new, turned = japanese_first_code(source)
    assert turned == 4
    ast.parse(new)
    assert _messages(new) == [  # in ast.walk order: top-level statements first
        "x を確かめましょう。 / Check x.",
        "行数ではなく、ウェイトの (Σw)² / Σw² を計算しましょう。 / Compute (sum w)^2 / sum w^2 of "
        "the weights, not the number of rows.",
        "未知の地区です。 / Unknown district.",
        None,
        "{} 行目は残します。 / Row {} should be kept.",
    ]
    assert "f'{k} 行目は残します。 / Row {k} should be kept.'" in new  # still an f-string
    assert new.splitlines()[0] == 'assert x == 1, "x を確かめましょう。 / Check x."'
    # Japanese-first and monolingual messages are left alone.
    kept = 'assert x, "x を確かめましょう。 / Check x."\nassert y, "Check y."\n'
    assert japanese_first_code(kept) == (kept, 0)


def test_a_notebook_turns_japanese_first_with_valid_checksums():
    test = new_code_cell('assert x == 1, "Check x. / x を確かめましょう。"',
                         metadata=graded("test", "t1-tests", points=10))
    test.metadata["nbgrader"]["checksum"] = compute_checksum(test)
    nb = new_notebook(cells=[new_markdown_cell("## Sum / 合計\n\nAdd one. / 1を足します。"),
                             new_code_cell("x = 1", metadata=graded("answer", "t1")), test])
    counts = japanese_first_notebook(nb)
    assert counts == {"markdown cells": 1, "messages": 1}
    assert nb.cells[0].source == "## 合計 / Sum\n\n1を足します。 / Add one."
    assert nb.cells[1].source == "x = 1"
    assert nb.cells[2].source == 'assert x == 1, "x を確かめましょう。 / Check x."'
    assert nb.cells[2].metadata["nbgrader"]["checksum"] == compute_checksum(nb.cells[2])
