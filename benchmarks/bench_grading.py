"""Grading throughput: ``sscity course grade --jobs 2`` vs plain sequential nbgrader.

Both grade the same demo class (built by ``sscity course demo``'s builder) with the same
per-cell timeout, in the same run. The plain baseline is what an instructor does without
sscity: one grading root, ``nbgrader generate_assignment`` then ``nbgrader autograde`` per
module, one submission after another, no sandbox and no integrity checks. A third figure
runs two such plain runs at once, each on half of the honest class: how far two cores
speed up nbgrader itself on this machine, the ceiling for any parallel grader here. Prints
``BENCH <name> <value> <unit>`` lines.

    python benchmarks/bench_grading.py [--students 40] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sscity.course.demo import build_demo_class
from sscity.course.grade import grade
from sscity.course.known_wrong import FILENAME as KNOWN_WRONG_FILE
from sscity.course.notebooks import course_root

CELL_TIMEOUT = 20


def bench(name: str, value: float, unit: str) -> None:
    print(f"BENCH {name} {value:.3f} {unit}", flush=True)


def plain_nbgrader(root: Path, submissions: Path, work: Path, name: str = "plain",
                   students: set[str] | None = None, report: bool = True) -> tuple[float, int]:
    """Sequential ``nbgrader autograde`` over the class; returns (seconds, submissions)."""
    grading = work / name
    if grading.exists():
        shutil.rmtree(grading)
    grading.mkdir()
    config = (root / "nbgrader_config.py").read_text()
    config += f"\nc.ExecutePreprocessor.timeout = {CELL_TIMEOUT}\nc.Execute.timeout = {CELL_TIMEOUT}\n"
    (grading / "nbgrader_config.py").write_text(config)
    modules = sorted({p.name for p in submissions.glob("*/*") if p.is_dir()})
    count = 0
    for student in sorted(p for p in submissions.iterdir() if p.is_dir()):
        if students is not None and student.name not in students:
            continue
        for module_dir in sorted(p for p in student.iterdir() if p.is_dir()):
            target = grading / "submitted" / student.name / module_dir.name
            shutil.copytree(module_dir, target)
            count += 1
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    started = time.perf_counter()
    for module in modules:
        shutil.copytree(root / "solutions" / module, grading / "solutions" / module,
                        ignore=shutil.ignore_patterns(KNOWN_WRONG_FILE))
        subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", module, "--force",
                        "--log-level=ERROR"], cwd=grading, env=env, capture_output=True)
        subprocess.run([sys.executable, "-m", "nbgrader", "autograde", module, "--log-level=ERROR"],
                       cwd=grading, env=env, capture_output=True)
    seconds = time.perf_counter() - started
    if report:
        graded = len(list((grading / "autograded").glob("*/*")))
        bench("plain_nbgrader_graded", graded, "submissions")  # the rest nbgrader could not grade
    return seconds, count


def plain_two_at_once(root: Path, submissions: Path, work: Path) -> float:
    """Two plain nbgrader runs at once, each on half the class: the machine's own scaling.

    No sandbox, no checks, no merging: what two cores give nbgrader at best, the ceiling
    any parallel grader on this machine works under. Returns the wall time in seconds.
    """
    students = sorted(p.name for p in submissions.iterdir() if p.is_dir())
    halves = [set(students[0::2]), set(students[1::2])]
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda half: plain_nbgrader(root, submissions, work, f"half-{min(half)}", half,
                                                  report=False), halves))
    return time.perf_counter() - started


def _honest_only(submissions: Path, target: Path) -> Path:
    def attacks(_folder, names):
        return [name for name in names if name.startswith("adv-")]

    shutil.copytree(submissions, target, ignore=attacks)
    return target


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    root = course_root()
    work = Path(tempfile.mkdtemp(prefix="sscity-bench-grading-"))
    try:
        build_demo_class(root, work / "demo", students=args.students)
        submissions = work / "demo" / "submissions"

        started = time.perf_counter()
        run = grade(root, submissions, work / "graded", jobs=args.jobs, cell_timeout=CELL_TIMEOUT,
                    progress=False)
        ours = time.perf_counter() - started
        count = len(run.results)
        bench("grade_submissions", count, "submissions")
        bench(f"grade_jobs{args.jobs}_seconds", ours, "s")
        bench(f"grade_jobs{args.jobs}_throughput", 60 * count / ours, "submissions/min")

        plain, plain_count = plain_nbgrader(root, submissions, work)
        bench("plain_nbgrader_seconds", plain, "s")
        bench("plain_nbgrader_throughput", 60 * plain_count / plain, "submissions/min")
        speedup = (60 * count / ours) / (60 * plain_count / plain)
        bench(f"grade_jobs{args.jobs}_vs_plain_speedup", speedup, "x")

        # The same comparison without the attacks (whose time limits favour sscity).
        honest = _honest_only(submissions, work / "honest")
        started = time.perf_counter()
        run = grade(root, honest, work / "graded-honest", jobs=args.jobs, cell_timeout=CELL_TIMEOUT,
                    progress=False)
        ours_honest, honest_count = time.perf_counter() - started, len(run.results)
        shutil.rmtree(work / "plain")
        plain_honest, _ = plain_nbgrader(root, honest, work)
        bench("honest_submissions", honest_count, "submissions")
        bench(f"honest_grade_jobs{args.jobs}_throughput", 60 * honest_count / ours_honest, "submissions/min")
        bench("honest_plain_nbgrader_throughput", 60 * honest_count / plain_honest, "submissions/min")
        bench(f"honest_grade_jobs{args.jobs}_vs_plain_speedup", plain_honest / ours_honest, "x")
        two = plain_two_at_once(root, honest, work)
        bench("honest_plain_two_halves_at_once_seconds", two, "s")
        bench("honest_plain_two_halves_at_once_vs_plain_speedup", plain_honest / two, "x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
