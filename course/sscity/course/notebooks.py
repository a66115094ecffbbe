"""Reading the course's notebooks: where they are, and what each graded cell is.

nbgrader marks cells with ``metadata.nbgrader`` (schema version 3):

- autograded answer: ``solution=True, grade=False``
- autograder tests:  ``grade=True, solution=False`` (code cell, ``points``)
- manually graded answer: ``solution=True, grade=True`` (``points``)
- manually graded task: ``task=True``

The course adds a tier tag, ``core`` or ``extension``, in ``metadata.tags``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .tracks import TIERS

__all__ = [
    "CourseNotebook",
    "SOLUTION_MARKERS",
    "answer_cells",
    "course_root",
    "grade_id",
    "is_autograded_answer",
    "is_graded",
    "is_manual_answer",
    "is_test_cell",
    "iter_notebooks",
    "module_ids",
    "nbgrader_meta",
    "tier",
    "visible_source",
]

SOLUTION_MARKERS = (
    "BEGIN SOLUTION",
    "END SOLUTION",
    "BEGIN HIDDEN TESTS",
    "END HIDDEN TESTS",
    "MARK SCHEME",
)
MODULE_PATTERN = re.compile(r"^\d\d-[a-z0-9-]+$")


class CourseRootError(FileNotFoundError):
    """The course repository could not be found."""


def course_root(start: Path | None = None, edition: bool = False) -> Path:
    """Find the course repository: the folder holding ``nbgrader_config.py`` and ``solutions/``.

    Searches upwards from ``start`` (default: the working directory), then falls back to the
    repository that holds the installed package. With ``edition``, the root of a student
    edition (``modules/`` beside the ``.sscity-edition`` marker; no ``solutions/``) also
    counts: students' commands (``sscity lab``) work there, instructors' commands do not.
    """

    def is_student_edition(folder: Path) -> bool:  # the marker `sscity course publish` writes
        return (folder / ".sscity-edition").is_file() and (folder / "modules").is_dir()

    candidates = []
    here = Path(start or os.getcwd()).resolve()
    candidates += [here, *here.parents]
    candidates.append(Path(__file__).resolve().parents[3])
    for folder in candidates:  # the nearest course wins
        if (folder / "nbgrader_config.py").is_file() and (folder / "solutions").is_dir():
            return folder
        if is_student_edition(folder):
            if edition:
                return folder
            raise CourseRootError(
                f"{folder} is the student edition: it has no solutions/, so instructors' commands "
                "(release, verify, grade, lab --instructor) do not run here. Run them in the "
                "instructor repository; students use `make lab`. / ここは学生版で solutions/ が"
                "ないため、教員用のコマンド"
                "（release・verify・grade・lab --instructor）は動きません。教員用リポジトリで"
                "実行してください。"
                "受講者は `make lab` を使います。")
    raise CourseRootError(
        "Not inside the course repository (no nbgrader_config.py with a solutions/ folder "
        "beside it, and no student edition with modules/ and .sscity-edition). Run the command "
        "from the repository (or the student edition), or pass --root. / コースのリポジトリの中"
        "ではありません（solutions/ と nbgrader_config.py、または学生版の modules/ と "
        ".sscity-edition が見つかりません）。リポジトリ（または学生版）の中で実行するか、"
        "--root を指定してください。"
    )


def module_ids(root: Path, kind: str = "solutions") -> list[str]:
    """Module folder names (``NN-slug``) under ``solutions/`` or ``modules/``, sorted."""
    base = Path(root) / kind
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and MODULE_PATTERN.match(p.name))


@dataclass
class CourseNotebook:
    """One notebook of the course, read with nbformat."""

    module: str
    name: str  # file stem, e.g. "assignment"
    path: Path
    nb: nbformat.NotebookNode

    @property
    def label(self) -> str:
        return f"{self.path.parent.parent.name}/{self.module}/{self.path.name}"


def iter_notebooks(root: Path, kind: str = "solutions", modules=None) -> Iterator[CourseNotebook]:
    """Yield every notebook of ``solutions/`` or ``modules/``, module by module."""
    for module in modules or module_ids(root, kind):
        for path in sorted((Path(root) / kind / module).glob("*.ipynb")):
            yield CourseNotebook(module, path.stem, path, nbformat.read(path, as_version=4))


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def grade_id(cell) -> str | None:
    return nbgrader_meta(cell).get("grade_id")


def is_autograded_answer(cell) -> bool:
    meta = nbgrader_meta(cell)
    return bool(meta.get("solution")) and not meta.get("grade")


def is_manual_answer(cell) -> bool:
    meta = nbgrader_meta(cell)
    return bool(meta.get("solution")) and bool(meta.get("grade"))


def is_test_cell(cell) -> bool:
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution") and cell.cell_type == "code"


def is_graded(cell) -> bool:
    """Cells that carry points or are answered: answers, tests, manual tasks."""
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade") or meta.get("solution") or meta.get("task"))


def tier(cell) -> str | None:
    tags = [t for t in cell.get("metadata", {}).get("tags", []) if t in TIERS]
    return tags[0] if len(tags) == 1 else None


def answer_cells(nb) -> dict[str, int]:
    """``{grade_id: cell index}`` of the autograded answer cells of a notebook."""
    return {grade_id(c): i for i, c in enumerate(nb.cells) if is_autograded_answer(c)}


_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?",
                     re.M | re.S)


def visible_source(source: str) -> str:
    """A test cell's source as students see it: hidden-test regions removed."""
    return _HIDDEN.sub("", source)


def without_magics(source: str) -> str:
    """``source`` with IPython's line magics and ``!`` commands blanked, for ``ast.parse``."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def cell_names(source: str) -> tuple[set[str], set[str]] | None:
    """(names a cell binds at its top level, global names it reads anywhere, its functions
    included), from Python's own symbol tables; None when the cell does not parse."""
    import symtable

    try:
        table = symtable.symtable(without_magics(source), "<cell>", "exec")
    except SyntaxError:
        return None
    bound, read = set(), set()

    def visit(scope):
        for symbol in scope.get_symbols():
            name = symbol.get_name()
            if scope.get_type() == "module":
                if symbol.is_assigned() or symbol.is_imported() or symbol.is_namespace():
                    bound.add(name)
                if symbol.is_referenced():
                    read.add(name)
            elif symbol.is_global() and symbol.is_referenced():
                read.add(name)
        for child in scope.get_children():
            visit(child)

    visit(table)
    return bound, read
