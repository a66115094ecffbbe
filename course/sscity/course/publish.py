"""The student edition: ``sscity course publish DEST``.

Copies the repository's tracked files into ``DEST`` without what students must not see --
``solutions/`` (solutions, hidden tests, mark schemes), ``known-wrong.toml`` files, and the
instructor-only tests and benchmarks -- then runs the edition's own smoke test
(``tests/test_published.py``) inside it with its own copy of ``sscity`` and datasets.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["STUDENT_TESTS", "publish", "smoke_test"]

# Tests that need no solutions: they travel with the student edition.
STUDENT_TESTS = ("conftest.py", "test_data.py", "test_datasets.py", "test_survey.py", "test_plotting.py")
_EXCLUDED_TOP = {"solutions", "benchmarks", ".ci", ".git"}
_EXCLUDED_NAMES = {"known-wrong.toml", "AUTHORING.md"}


def _tracked_files(root: Path) -> list[Path]:
    try:
        done = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True)
        return [root / name for name in done.stdout.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        return [p for p in root.rglob("*") if p.is_file() and ".venv" not in p.parts]


def publish(root: Path, dest: Path) -> list[Path]:
    """Write the student edition of the course at ``root`` into ``dest`` (which must not exist)."""
    root, dest = Path(root).resolve(), Path(dest).resolve()
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty: choose a new folder for the student edition.")
    if root in dest.parents:
        raise ValueError("Publish outside the course repository, e.g. ../sscity-student.")
    written = []
    for path in _tracked_files(root):
        relative = path.relative_to(root)
        if relative.parts[0] in _EXCLUDED_TOP or path.name in _EXCLUDED_NAMES or not path.is_file():
            continue
        if relative.parts[0] == "tests" and path.name not in STUDENT_TESTS:
            continue
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        written.append(target)
    # The demo grades a class against the solutions, which this edition does not have.
    makefile = dest / "Makefile"
    if makefile.is_file():
        text = makefile.read_text()
        # The whole recipe of `demo:`, up to the next blank line.
        text = re.sub(r"(?m)^demo: setup\n(?:.+\n)*",
                      "demo: setup\n\t$(SSCITY) data verify\n"
                      "\t@echo 'Student edition: open the course with make lab.'\n", text)
        makefile.write_text(text)
    smoke = root / "tests" / "published" / "test_published.py"
    shutil.copy2(smoke, dest / "tests" / "test_published.py")
    (dest / ".ci").mkdir(exist_ok=True)
    (dest / ".ci" / "run").write_text("#!/usr/bin/env bash\nset -euo pipefail\ncd \"$(dirname \"$0\")/..\"\n"
                                      "make test\n")
    (dest / "PUBLISHED.md").write_text(
        "# Student edition / 学生版\n\nMade by `sscity course publish`: the released notebooks, the "
        "helper package and the datasets, without solutions, hidden tests or known-wrong answers.\n"
        "解答・非公開テスト・誤答例を含まない、配布用の版です。\n", encoding="utf-8")
    return written


def smoke_test(dest: Path) -> subprocess.CompletedProcess:
    """Run the edition's tests with its own package and datasets (not the course's)."""
    dest = Path(dest).resolve()
    env = dict(os.environ, PYTHONPATH=str(dest / "course"), SSCITY_DATASETS=str(dest / "datasets"))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-n", "2", str(dest / "tests")], cwd=dest, env=env,
                          capture_output=True, text=True)
