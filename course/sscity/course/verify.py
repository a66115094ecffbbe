"""Verify a module end to end with the real nbgrader autograder.

By default the autograder runs the way ``sscity course grade`` runs it, across the trust
boundary (:mod:`sscity.course.trusted`: the tests in a checker apart from the kernel, in a
sandbox when bubblewrap works); ``trusted=False`` (``--plain``) uses nbgrader's own
execution, tests and answers in one kernel. For each module, in a throw-away grading root
outside the repository:

(a) the solution notebooks are submitted and autograded: every autograded test must earn
    full marks and no cell may raise (manually graded answers are left to a person: the
    table's points are autograded points only);
(b) the released notebooks are submitted unchanged: they must be graded without the grader
    crashing and earn 0 autograded points;
(c) every known-wrong answer is written into the released notebook and graded: the test
    cell named for it must earn 0 points.

It also checks that every figure the solution draws is described in the next markdown cell.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import nbformat

from .known_wrong import FILENAME as KNOWN_WRONG_FILE
from .known_wrong import load_known_wrong
from .notebooks import answer_cells, grade_id, is_test_cell, module_ids
from .release import nbgrader

__all__ = ["ModuleVerification", "Row", "format_report", "verify_module", "verify_modules"]


@dataclass
class Row:
    """One graded notebook of the verification."""

    variant: str  # "solution", "blank" or "wrong"
    notebook: str
    seconds: float | None
    score: float
    max_score: float
    ok: bool
    detail: str = ""


@dataclass
class ModuleVerification:
    module: str
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and all(r.ok for r in self.rows)


def _execution_seconds(nb) -> float | None:
    """Wall time of a notebook's execution, from the per-cell timing nbclient records."""
    starts, ends = [], []
    for cell in nb.cells:
        timing = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            starts.append(datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00")))
            ends.append(datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00")))
    if not starts:
        return None
    return (max(ends) - min(starts)).total_seconds()


def _errors(nb) -> list[str]:
    found = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(f"cell {index}: {output.get('ename')}: {output.get('evalue')}"[:200])
    return found


_FIGURE_EN = re.compile(r"\bFigure\b")


def _undescribed_figures(nb) -> list[int]:
    """Indexes of code cells that showed an image with no Figure/図 description after them."""
    missing = []
    for index, cell in enumerate(nb.cells):
        shows_image = any("image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {})
                          for o in cell.get("outputs", []))
        if not shows_image:
            continue
        following = nb.cells[index + 1] if index + 1 < len(nb.cells) else None
        if (following is None or following.cell_type != "markdown"
                or not _FIGURE_EN.search(following.source) or "図" not in following.source):
            missing.append(index)
    return missing


def _copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
        KNOWN_WRONG_FILE, ".ipynb_checkpoints", "__pycache__"))


def verify_module(root: Path, module: str, keep: Path | None = None,
                  trusted: bool = True) -> ModuleVerification:
    """Verify one module; see the module docstring for what is checked.

    Parameters
    ----------
    root : Path
        The course repository.
    module : str
        Module folder name, e.g. ``"00-orientation"``.
    keep : Path, optional
        Grade in this folder and keep it (for debugging); default: a temporary folder.
    trusted : bool
        Grade across the trust boundary, as ``sscity course grade`` does (default); False
        for plain nbgrader.
    """
    root = Path(root).resolve()
    report = ModuleVerification(module)
    started = time.perf_counter()
    source = root / "solutions" / module
    if not source.is_dir():
        report.problems.append(f"no source folder {source}")
        return report
    try:
        wrongs = load_known_wrong(source)
    except ValueError as err:
        report.problems.append(str(err))
        return report
    tmp = Path(keep) if keep else Path(tempfile.mkdtemp(prefix=f"sscity-verify-{module}-"))
    try:
        _verify_in(root, module, tmp, wrongs, report, trusted)
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    report.seconds = time.perf_counter() - started
    return report


def _verify_in(root: Path, module: str, grading: Path, wrongs, report: ModuleVerification,
               trusted: bool = True) -> None:
    grading.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "nbgrader_config.py", grading / "nbgrader_config.py")
    _copy_tree(root / "solutions" / module, grading / "solutions" / module)
    nbgrader(["generate_assignment", module, "--force", "--log-level=WARN"], cwd=grading)
    released = grading / "modules" / module
    notebooks = sorted(p.name for p in released.glob("*.ipynb"))
    # Autograded points come from test cells; manually graded answers are left to a person.
    test_ids = {
        name: {grade_id(c) for c in nbformat.read(grading / "solutions" / module / name, 4).cells
               if is_test_cell(c)}
        for name in notebooks
    }

    students: dict[str, tuple[str, object]] = {}
    for variant, folder in (("solution", grading / "solutions" / module), ("blank", released)):
        target = grading / "submitted" / variant / module
        target.mkdir(parents=True)
        for name in notebooks:
            shutil.copy2(folder / name, target / name)
        students[variant] = (variant, None)

    for number, wrong in enumerate(wrongs, 1):
        student = f"wrong-{number:02d}"
        name = f"{wrong.notebook}.ipynb"
        if name not in notebooks:
            report.problems.append(f"known-wrong {number}: no notebook {name} in the module")
            continue
        nb = nbformat.read(released / name, as_version=4)
        index = answer_cells(nb).get(wrong.answer)
        if index is None:
            report.problems.append(
                f"known-wrong {number}: {name} has no autograded answer cell '{wrong.answer}'")
            continue
        nb.cells[index].source = wrong.code.strip("\n")
        target = grading / "submitted" / student / module
        target.mkdir(parents=True)
        nbformat.write(nb, target / name)
        students[student] = ("wrong", wrong)

    if trusted:
        from .notebooks import course_root
        from .sandbox import isolation
        from .trusted import autograde_config

        # The sandbox shows the installed sscity and its datasets; the release is this root's.
        settings = {"course_root": str(course_root()), "release_root": str(grading),
                    "scratch": str(grading / "runs"), "sandbox": isolation().isolated,
                    "notebooks": 2 * len(notebooks) + len(students) - 2}
        with open(grading / "nbgrader_config.py", "a", encoding="utf-8") as config:
            config.write(autograde_config(settings))

    # One autograde run for the whole module; nbgrader grades students one after another
    # and carries on past a student whose notebook breaks, so read results per student.
    try:
        nbgrader(["autograde", module, "--force", "--log-level=WARN"], cwd=grading)
    except Exception as err:  # noqa: BLE001 - a failing student is reported below
        autograde_log = str(err)
    else:
        autograde_log = ""

    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{grading / 'gradebook.db'}") as gradebook:
        for student, (variant, wrong) in students.items():
            graded_folder = grading / "autograded" / student / module
            names = notebooks if wrong is None else [f"{wrong.notebook}.ipynb"]
            for name in names:
                report.rows.append(_grade_row(gradebook, MissingEntry, module, student, variant,
                                              wrong, name, graded_folder, autograde_log,
                                              test_ids[name]))


def _grade_row(gradebook, missing_entry, module, student, variant, wrong, name, folder, log,
               test_ids) -> Row:
    stem = name[:-len(".ipynb")]
    graded_path = folder / name
    if not graded_path.is_file():
        return Row(variant, name, None, 0, 0, False,
                   "the grader produced no graded notebook: " + (log.splitlines() or ["?"])[-1])
    graded = nbformat.read(graded_path, as_version=4)
    seconds = _execution_seconds(graded)
    try:
        submitted = gradebook.find_submission_notebook(stem, module, student)
    except missing_entry:
        return Row(variant, name, seconds, 0, 0, False, "no gradebook entry for this notebook")
    auto = [g for g in submitted.grades if g.name in test_ids]
    score = sum(g.auto_score or 0 for g in auto)
    max_score = sum(g.max_score for g in auto)

    if variant == "solution":
        short = [f"{g.name} {g.auto_score or 0:g}/{g.max_score:g}" for g in auto
                 if (g.auto_score or 0) < g.max_score]
        errors = _errors(graded)
        undescribed = _undescribed_figures(graded)
        detail = "; ".join(
            ([f"not full marks: {', '.join(short)}"] if short else [])
            + ([f"raised: {errors[0]}"] if errors else [])
            + ([f"figure without a Figure/図 description after cell(s) {undescribed}"]
               if undescribed else []))
        passed = "full marks" if max_score else "ran without errors"
        return Row(variant, name, seconds, score, max_score, not detail, detail or passed)
    if variant == "blank":
        ok = score == 0
        return Row(variant, name, seconds, score, max_score, ok,
                   "0 points, graded without crashing" if ok else "a blank notebook earned points")
    grades = {g.name: g for g in submitted.grades}
    target = grades.get(wrong.must_fail)
    if target is None:
        return Row(variant, name, seconds, score, max_score, False,
                   f"{wrong.answer}: no test cell '{wrong.must_fail}'")
    failed = (target.auto_score or 0) == 0
    verdict = "fails" if failed else "PASSES (the test does not catch it)"
    return Row(variant, name, seconds, target.auto_score or 0, target.max_score, failed,
               f"{wrong.answer}: {wrong.mistake} -> {wrong.must_fail} {verdict}")


def verify_modules(root: Path, modules=None, jobs: int = 1, progress: bool = True,
                   trusted: bool = True):
    """Verify several modules, ``jobs`` at a time; returns reports in module order."""
    root = Path(root).resolve()
    modules = list(modules or module_ids(root, "solutions"))
    known = set(module_ids(root, "solutions"))
    unknown = [m for m in modules if m not in known]
    if unknown:
        raise ValueError(f"No module {', '.join(unknown)} in solutions/. "
                         f"Modules: {', '.join(sorted(known)) or 'none'}.")
    from tqdm.auto import tqdm

    if progress:
        for module in modules:
            source = root / "solutions" / module
            count = len(list(source.glob("*.ipynb")))
            wrong = len(load_known_wrong(source)) if source.is_dir() else 0
            tqdm.write(f"{module}: grading {2 * count + wrong} notebooks with nbgrader "
                       f"(solution, blank release, {wrong} known-wrong answers) ...")
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(verify_module, root, m, None, trusted) for m in modules]
        bar = tqdm(total=len(futures), desc="verify", unit="module", disable=not progress)
        reports = []
        for future in futures:
            reports.append(future.result())
            bar.update(1)
        bar.close()
    return reports


def format_report(report: ModuleVerification) -> str:
    """A plain-text table: one line per graded notebook, then any problems.

    ``exec s`` is the time the notebook's cells took to run in the grader's kernel (from
    nbclient's per-cell timing), without kernel start-up and nbgrader's own work.
    """
    lines = [f"{report.module}  ({report.seconds:.1f} s in all)",
             f"  {'check':<9} {'notebook':<18} {'exec s':>7} {'points':>11}  result"]
    for row in report.rows:
        seconds = f"{row.seconds:.1f}" if row.seconds is not None else "-"
        points = f"{row.score:g}/{row.max_score:g}"
        mark = "ok  " if row.ok else "FAIL"
        lines.append(f"  {row.variant:<9} {row.notebook:<18} {seconds:>7} {points:>11}  "
                     f"{mark} {row.detail}")
    lines += [f"  FAIL {problem}" for problem in report.problems]
    lines.append(f"  => {'PASS' if report.ok else 'FAIL'}")
    return "\n".join(lines)


