"""Benchmarks of the course toolchain; prints one line per figure: ``BENCH <name> <value> <unit>``.

- nbgrader start-up with sscity's launcher vs plain ``python -m nbgrader`` (the baseline),
  measured in the same run, and their ratio;
- ``sscity course release --check`` of the whole course;
- ``sscity course verify`` per module (the same figure the verify table prints).

Run with ``make bench``. Timings vary with the machine's load: compare ratios, not seconds
from different runs.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from sscity.course.notebooks import course_root, module_ids
from sscity.course.release import _NBGRADER_LAUNCHER, check_release
from sscity.course.verify import verify_module

REPEATS = 3


def _median_seconds(command: list[str], cwd: Path) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench(name: str, value: float, unit: str) -> None:
    print(f"BENCH {name} {value:.3f} {unit}", flush=True)


def main() -> None:
    root = course_root()
    plain = _median_seconds([sys.executable, "-m", "nbgrader", "--version"], root)
    launcher = _median_seconds([sys.executable, "-c", _NBGRADER_LAUNCHER, "--version"], root)
    bench("nbgrader_startup_plain", plain, "s")
    bench("nbgrader_startup_sscity", launcher, "s")
    bench("nbgrader_startup_speedup", plain / launcher, "x")

    started = time.perf_counter()
    drift = check_release(root)
    bench("release_check_course", time.perf_counter() - started, "s")
    if not drift.ok:
        print("note: modules/ is out of date:", *drift.lines(), sep="\n  ", file=sys.stderr)

    for module in module_ids(root):
        report = verify_module(root, module)
        bench(f"verify_{module}", report.seconds, "s")
        graded = len(report.rows)
        bench(f"verify_{module}_notebooks_per_minute", 60 * graded / report.seconds, "notebooks/min")


if __name__ == "__main__":
    main()
