"""Grade a class: parallel, sandboxed nbgrader autograding with integrity checks.

    sscity course grade SUBMISSIONS --jobs 2 --out DIR [--module M ...] [--scheduler ADDRESS]

``SUBMISSIONS`` is nbgrader's layout ``<student>/<module>/*.ipynb`` (a folder, or a zip of
it as downloaded from an LMS). Submissions are split into small chunks; each chunk is
graded by nbgrader's own ``autograde`` in a throw-away grading root, with every student's
kernel in its own sandbox (:mod:`sscity.course.sandbox`). Chunks run ``--jobs`` at a time
on this machine, or on a Dask cluster with ``--scheduler``. Finished chunks are merged, one
submission per transaction, into ``DIR/gradebook.db`` (an nbgrader gradebook, each cell
left as a plain ``nbgrader autograde`` leaves it: only hand-graded tasks need a manual
grade); a chunk whose worker dies is graded again one submission at a time, and a
submission that still cannot be graded is flagged with the reason -- never silently
scored 0.

Outputs: ``DIR/grades.csv`` (student, module, score, max_score, status, reason, ...,
``seconds``: the time nbgrader spent grading that submission),
``DIR/results.json`` (per-task details), ``DIR/autograded/<student>/<module>/`` (graded
notebooks), ``DIR/feedback/<student>/<module>.html``, ``DIR/grades_by_track.csv`` and
``DIR/report.html`` (see :mod:`sscity.course.report`).

Hand grading: ``DIR`` is an nbgrader course folder (``nbgrader_config.py``, the source
notebooks in ``solutions/``, ``submitted/``, ``autograded/``, ``gradebook.db``):
``cd DIR && jupyter lab``, then *Nbgrader > Formgrader* lists the modules and, under
*Manual Grading*, the students and the tasks waiting for a grade. Then ``sscity course
report DIR`` adds the hand grades to ``DIR/grades_by_track.csv``. Grading into the same
``DIR`` again keeps the hand grades and comments (the old gradebook is copied to
``DIR/gradebook.previous.db``); a grade whose student's work changed is marked for review
(``needs_manual_grade``).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from .integrity import Finding, check_structure, scan_findings, student_code, unexecuted_test_cells
from .known_wrong import FILENAME as KNOWN_WRONG_FILE
from .notebooks import grade_id, is_test_cell, module_ids, nbgrader_meta, tier
from .release import _NBGRADER_LAUNCHER
from .sandbox import Limits, build_font_cache, isolation
from .trusted import autograde_config

__all__ = ["GradeRun", "Result", "SandboxMissing", "Submission", "combine_gradebooks", "discover", "grade",
           "grade_chunk"]

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")
MAX_NOTEBOOK_BYTES = 20 * 1024**2
CSV_COLUMNS = ("student", "module", "score", "max_score", "status", "reason",
               "manual_points_pending", "seconds")


class SandboxMissing(RuntimeError):
    """Grading was asked for on a machine where the sandbox does not work."""


@dataclass
class Submission:
    """One student's work for one module, after the pre-grading checks."""

    student: str
    module: str
    notebooks: dict[str, Path] = field(default_factory=dict)  # released name -> file
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@dataclass
class Result:
    """The grade of one submission."""

    student: str
    module: str
    score: float
    max_score: float
    status: str  # "ok" or "flagged"
    reason: str
    manual_points_pending: float = 0.0
    seconds: float = 0.0
    tasks: dict = field(default_factory=dict)  # "notebook/grade_id" -> {score, max, tier, ...}


@dataclass
class GradeRun:
    results: list[Result]
    isolation: str
    isolation_warnings: list[str]
    seconds: float
    problems: list[str]
    out: Path


# --- finding the submissions -------------------------------------------------------------

def _safe_extract(archive: Path, target: Path) -> Path:
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            name = member.filename
            parts = Path(name).parts
            if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise ValueError(f"{archive} holds an unsafe path {name!r}; refusing to extract it.")
        zf.extractall(target)
    return target


def _find_layout_root(base: Path, modules: set[str]) -> Path:
    """The folder whose children are students and grandchildren modules (LMS zips nest it)."""
    for candidate in [base, *sorted(p for p in base.rglob("*") if p.is_dir())]:
        if len(candidate.relative_to(base).parts) > 3:
            break
        for child in candidate.iterdir() if candidate.is_dir() else []:
            if child.is_dir() and any(g.is_dir() and g.name in modules for g in child.iterdir()):
                return candidate
    return base


def _read_notebook(path: Path):
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"{path.name} is larger than {MAX_NOTEBOOK_BYTES // 1024**2} MB")
    return nbformat.read(path, as_version=4)


def discover(submissions: Path, releases: dict[str, dict[str, object]],
             only: list[str] | None = None) -> tuple[list[Submission], list[str]]:
    """Find and pre-check every submission under ``submissions``.

    ``releases`` maps module -> {notebook name -> released notebook}. Returns the
    submissions and problems that concern no single submission (bad folder names).
    """
    problems: list[str] = []
    base = _find_layout_root(submissions, set(releases))
    found: list[Submission] = []
    for student_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        student = student_dir.name
        if student_dir.is_symlink():
            problems.append(f"skipped folder {student!r}: a symbolic link, not a folder")
            continue
        if not STUDENT_ID.match(student):
            problems.append(f"skipped folder {student!r}: not a valid student id "
                            "(letters, digits, . _ @ + - only)")
            continue
        for module_dir in sorted(p for p in student_dir.iterdir() if p.is_dir() and not p.is_symlink()):
            module = module_dir.name
            if module not in releases:
                problems.append(f"{student}/{module}: no such module in the course; skipped")
                continue
            if only and module not in only:
                continue
            found.append(_precheck(student, module, module_dir, releases[module]))
        for stray in sorted(p for p in student_dir.iterdir() if p.is_file()):
            problems.append(f"{student}/{stray.name}: a file outside any module folder; ignored")
    return found, problems


def _precheck(student: str, module: str, folder: Path, released: dict) -> Submission:
    sub = Submission(student, module)
    links = sorted(p for p in folder.rglob("*") if p.is_symlink())
    for link in links:
        sub.findings.append(Finding("structure", f"refused a symbolic link "
                                                 f"{link.relative_to(folder).as_posix()!r}: hand in "
                                                 "the file itself"))
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
                   and not any(parent.is_symlink() for parent in p.parents))
    notebooks = [p for p in files if p.suffix == ".ipynb" and ".ipynb_checkpoints" not in p.parts]
    for stray in files:
        if stray not in notebooks:
            sub.notes.append(f"ignored stray file {stray.relative_to(folder).as_posix()}")
    # Only notebooks with graded cells are graded (a lesson handed in costs time, earns nothing).
    ungraded = set(released)
    released = {name: nb for name, nb in released.items()
                if any(nbgrader_meta(c).get("points") for c in nb.cells)}
    ungraded -= set(released)
    unmatched = []
    for path in notebooks:
        if path.name in released and path.name not in sub.notebooks:
            sub.notebooks[path.name] = path
        else:
            unmatched.append(path)
    # A renamed copy ("assignment (1).ipynb") is matched by the graded cells it holds.
    for path in unmatched:
        try:
            nb = _read_notebook(path)
        except Exception:  # noqa: BLE001 - reported as unreadable below if it matters
            continue
        ids = {grade_id(c) for c in nb.cells if grade_id(c)}
        for name, release in released.items():
            want = {grade_id(c) for c in release.cells if grade_id(c)}
            if name not in sub.notebooks and want and len(ids & want) >= len(want) / 2:
                sub.notebooks[name] = path
                sub.findings.append(Finding("structure", f"notebook {path.name!r} was renamed; "
                                                         f"graded as {name}"))
                break
        else:
            if path.name not in ungraded:
                sub.notes.append(f"ignored extra notebook {path.name}")
    for name, release in released.items():
        path = sub.notebooks.get(name)
        if path is None:
            sub.missing.append(name)
            if any(nbgrader_meta(c).get("points") for c in release.cells):
                sub.findings.append(Finding("structure", f"notebook {name} is missing (0 points)"))
            continue
        try:
            nb = _read_notebook(path)
        except Exception as err:  # noqa: BLE001 - any unreadable file is reported the same way
            sub.findings.append(Finding("structure", f"{name} cannot be read as a notebook "
                                                     f"({type(err).__name__}); 0 points"))
            sub.missing.append(name)
            del sub.notebooks[name]
            continue
        sub.findings += check_structure(nb, release)
        sub.findings += scan_findings(student_code(nb), where=name)
    return sub


# --- grading one chunk (runs in a worker thread, or on a Dask worker) ----------------------

def _limit_grader_memory() -> None:
    # nbgrader holds outputs in memory: cap it, so a flood kills this chunk, not the machine.
    limit = 8 * 1024**3
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def grade_chunk(job: dict) -> dict:
    """Grade the submissions of one chunk with ``nbgrader autograde``; return plain data.

    ``job`` holds paths and settings only (picklable for Dask). The result says, for each
    student, the points of every graded cell and the graded notebooks (as JSON text), or
    why the student could not be graded.
    """
    started = time.perf_counter()
    chunk = Path(job["chunk_dir"])
    if chunk.exists():
        shutil.rmtree(chunk)
    chunk.mkdir(parents=True)
    template = Path(job["template_dir"])
    shutil.copy2(template / "gradebook.db", chunk / "gradebook.db")
    course_root = Path(job["course_root"])
    config = (course_root / "nbgrader_config.py").read_text()
    settings = {"course_root": str(course_root), "scratch": str(chunk / "runs"),
                "limits": job["limits"], "cell_timeout": int(job["cell_timeout"]),
                "student_timeout": int(job["student_timeout"]), "sandbox": job["sandbox"],
                "font_cache": job.get("font_cache"), "keep": bool(job.get("keep")),
                "notebooks": sum(len(files) for files in job["students"].values())}
    config += autograde_config(settings)
    config += _timing_config(chunk / "timing.jsonl")
    (chunk / "nbgrader_config.py").write_text(config)
    module = job["module"]
    for student, files in job["students"].items():
        target = chunk / "submitted" / student / module
        target.mkdir(parents=True)
        for name, text in files.items():
            (target / name).write_text(text, encoding="utf-8")
    env = dict(os.environ,
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    budget = job["student_timeout"] * len(job["students"]) + 60
    try:
        done = subprocess.run([sys.executable, "-c", _NBGRADER_LAUNCHER, "autograde", module,
                               "--log-level=WARN"], cwd=chunk, env=env, capture_output=True,
                              text=True, timeout=budget, preexec_fn=_limit_grader_memory)
        log = (done.stdout + done.stderr)[-4000:]
    except subprocess.TimeoutExpired:
        log = f"the grader did not finish within {budget} s"

    from nbgrader.api import Gradebook, MissingEntry

    stopped: dict = {}
    failures_file = chunk / "runs" / "kernel-failures.jsonl"
    if failures_file.is_file():
        for line in failures_file.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            stopped[(record["student"], f"{record['notebook']}.ipynb")] = record
    seconds = _seconds_per_student(chunk / "timing.jsonl", module)
    results, failed = {}, {}
    with Gradebook(f"sqlite:///{chunk / 'gradebook.db'}") as gradebook:
        for student, files in job["students"].items():
            folder = chunk / "autograded" / student / module
            graded = {}
            try:
                for name in files:
                    stem = name[: -len(".ipynb")]
                    notebook = gradebook.find_submission_notebook(stem, module, student)
                    path = folder / name
                    if path.is_symlink() or not path.is_file():
                        raise MissingEntry()
                    graded[name] = {
                        # nbgrader's own verdict per cell: [auto_score, max_score, needs_manual_grade]
                        "grades": {g.name: [g.auto_score, g.max_score, bool(g.needs_manual_grade)]
                                   for g in notebook.grades},
                        "seconds": seconds.get(student),
                        "notebook": _read_no_follow(path),
                        "kernel_failure": stopped.get((student, name), {}).get("why"),
                        "notices": stopped.get((student, name), {}).get("notices") or [],
                    }
            except MissingEntry:
                failed[student] = _last_error(log)
                continue
            results[student] = graded
    if not job.get("keep"):
        shutil.rmtree(chunk, ignore_errors=True)
    return {"module": module, "results": results, "failed": failed,
            "seconds": time.perf_counter() - started}


def _timing_config(log: Path) -> str:
    """Lines for ``nbgrader_config.py``: nbgrader's own pre/post convert hooks append the
    time each student's submission starts and ends grading to ``log`` (JSON lines)."""
    return (
        "\n# Added by sscity: when each submission starts and ends grading (grades.csv seconds)\n"
        "def _sscity_timing(edge):\n"
        "    def hook(assignment=None, student=None, notebooks=()):\n"
        "        import json, time\n"
        f"        with open({str(log)!r}, 'a', encoding='utf-8') as handle:\n"
        "            handle.write(json.dumps({'edge': edge, 'time': time.time(),\n"
        "                                     'notebooks': [str(n) for n in notebooks]}) + '\\n')\n"
        "    return hook\n"
        "c.Autograde.pre_convert_hook = _sscity_timing('start')\n"
        "c.Autograde.post_convert_hook = _sscity_timing('end')\n"
    )


def _seconds_per_student(log: Path, module: str) -> dict[str, float]:
    """Seconds each student's submission took to grade, from the hooks' log: its start to
    its end (or, when nbgrader gave up on it, to the next event)."""
    if not log.is_file():
        return {}
    events = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        students = {Path(n).parent.parent.name for n in record.get("notebooks", [])
                    if Path(n).parent.name == module}
        if len(students) == 1:
            events.append((record["edge"], float(record["time"]), students.pop()))
    seconds, started = {}, None
    for edge, moment, student in events:
        if started is not None and (edge == "start" or student != started[1]):
            seconds.setdefault(started[1], moment - started[0])  # no end: until the next one began
            started = None
        if edge == "start":
            started = (moment, student)
        elif started is not None:
            seconds[student] = moment - started[0]
            started = None
    return seconds


def _read_no_follow(path: Path) -> str:
    """Read a file the grader wrote, refusing a symlink put in its place."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, encoding="utf-8") as handle:
        return handle.read()


def _died(why: str | None) -> bool:
    """A kernel that died (worth one more try), not one stopped at its time limit."""
    return bool(why) and not re.search(r"longer than|did not answer within|did not stop", why)


def _last_error(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for pattern in (r"kernel ran longer", r"DeadKernelError|Kernel died",
                    r"Error|Timeout|timed out|Killed"):
        for line in reversed(lines):
            if re.search(pattern, line):
                return line[:300]
    return lines[-1][:300] if lines else "the grader stopped without a message"


# --- the whole class -----------------------------------------------------------------------

def _templates(root: Path, modules: list[str], work: Path, jobs: int) -> dict[str, Path]:
    """One grading root per module, generated ``jobs`` at a time; chunks start from these."""
    from .release import nbgrader

    def generate(module: str) -> Path:
        template = work / "templates" / module
        if template.exists():
            shutil.rmtree(template)
        template.mkdir(parents=True)
        shutil.copy2(root / "nbgrader_config.py", template / "nbgrader_config.py")
        shutil.copytree(root / "solutions" / module, template / "solutions" / module,
                        ignore=shutil.ignore_patterns(KNOWN_WRONG_FILE, ".ipynb_checkpoints"))
        nbgrader(["generate_assignment", module, "--force", "--log-level=WARN"], cwd=template)
        return template

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(modules)))) as pool:
        return dict(zip(modules, pool.map(generate, modules), strict=True))


def combine_gradebooks(sources: list[Path], target: Path) -> None:
    """Write one nbgrader gradebook holding the assignments of every gradebook in ``sources``.

    The gradebooks come from ``nbgrader generate_assignment`` of different modules: the
    same schema, rows keyed by random ids, so their rows can be copied side by side (the
    single ``course`` row and alembic's version are shared and kept once).
    """
    if not sources:
        raise ValueError("combine_gradebooks needs at least one gradebook")
    first, *rest = [Path(p) for p in sources]
    shutil.copy2(first, target)
    with sqlite3.connect(target) as db:
        for source in rest:
            db.execute("ATTACH DATABASE ? AS other", (str(source),))
            tables = [row[0] for row in db.execute(
                "SELECT name FROM other.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
            for table in tables:
                db.execute(f'INSERT OR IGNORE INTO main."{table}" SELECT * FROM other."{table}"')
            db.commit()
            db.execute("DETACH DATABASE other")


def _chunks(items: list, jobs: int, largest: int = 8) -> list[list]:
    """Chunks dealt round-robin, so slow submissions spread over the workers: about two per
    worker and module, as each chunk pays for starting nbgrader and a warm checker."""
    if not items:
        return []
    size = max(1, min(largest, math.ceil(len(items) / (2 * max(1, jobs)))))
    count = math.ceil(len(items) / size)
    return [items[i::count] for i in range(count)]


def _deduplicated(nb):
    """Keep the first copy of each graded cell: nbgrader refuses duplicated grade ids."""
    seen, cells = set(), []
    for cell in nb.cells:
        gid = grade_id(cell)
        if gid and gid in seen:
            continue
        seen.add(gid)
        cells.append(cell)
    nb.cells = cells
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index}"  # unique cell ids, whatever the student's editor did
    return nb


def _submission_texts(sub: Submission) -> dict[str, str]:
    return {name: nbformat.writes(_deduplicated(_read_notebook(path)))
            for name, path in sub.notebooks.items()}


def grade(root: Path, submissions: Path, out: Path, jobs: int = 2, modules: list[str] | None = None,
          scheduler: str | None = None, limits: Limits | None = None, cell_timeout: int = 60,
          student_timeout: int | None = None, progress: bool = True,
          no_sandbox: bool = False) -> GradeRun:
    """Grade every submission under ``submissions`` into ``out``; see the module docstring.

    Without a working bubblewrap sandbox this refuses (:class:`SandboxMissing`) unless
    ``no_sandbox`` is True; then every output says that no sandbox was used.
    """
    found_isolation = isolation()
    if not found_isolation.isolated and not no_sandbox:
        raise SandboxMissing(
            "Refusing to grade without a sandbox: " + " ".join(found_isolation.warnings)
            + " To grade anyway, with student code running as you (it can read and change "
              "your files), pass --no-sandbox.")
    started = time.perf_counter()
    # A notebook may take a few times its cell limit in all, then its kernel is stopped.
    student_timeout = student_timeout or max(120, 6 * cell_timeout)
    limits = limits or Limits(wall_seconds=student_timeout)
    root, out = Path(root).resolve(), Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sscity-grade-"))
    if len(str(work)) > 40 and Path("/tmp").is_dir():
        # Each kernel's sockets live some 60 bytes below this folder, and a Unix socket
        # path has at most 107 bytes: a deep TMPDIR would stop every kernel.
        shutil.rmtree(work, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix="sscity-grade-", dir="/tmp"))
    try:
        return _grade(root, Path(submissions).resolve(), out, work, jobs, modules, scheduler,
                      limits, cell_timeout, student_timeout, progress, started, found_isolation)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _grade(root, submissions, out, work, jobs, modules, scheduler, limits, cell_timeout,
           student_timeout, progress, started, found_isolation) -> GradeRun:
    if not submissions.exists():
        raise FileNotFoundError(f"No submissions at {submissions}: give a folder laid out as "
                                "<student>/<module>/*.ipynb, or a zip of one.")
    if submissions.is_file():
        if not zipfile.is_zipfile(submissions):
            raise ValueError(f"{submissions} is neither a folder nor a zip file.")
        submissions = _safe_extract(submissions, work / "unzipped")
    available = module_ids(root, "modules")
    if modules:
        unknown = sorted(set(modules) - set(available))
        if unknown:
            raise ValueError(f"No released module {', '.join(unknown)}; modules: {', '.join(available)}.")
    releases = {m: {p.name: nbformat.read(p, as_version=4)
                    for p in sorted((root / "modules" / m).glob("*.ipynb"))} for m in available}
    subs, problems = discover(submissions, releases, modules)
    if not subs:
        raise ValueError(f"No submissions found in {submissions}: expected "
                         "<student>/<module>/*.ipynb with modules " + ", ".join(available))
    for warning in found_isolation.warnings:
        print("NO SANDBOX (--no-sandbox): " + warning, file=sys.stderr)
    graded_modules = sorted({s.module for s in subs})
    font_cache = build_font_cache(work / "font-cache")
    templates = _templates(root, graded_modules, work, jobs)
    font_cache.wait()
    gradebook_path = out / "gradebook.db"
    kept = _kept_hand_grades(gradebook_path, out)
    if gradebook_path.exists():
        if kept:
            shutil.copy2(gradebook_path, out / "gradebook.previous.db")
        gradebook_path.unlink()
    combine_gradebooks([templates[m] / "gradebook.db" for m in graded_modules], gradebook_path)

    base_job = {
        "course_root": str(root), "font_cache": str(work / "font-cache"),
        "hide": [str(work), str(out), str(submissions)],
        "limits": asdict(limits), "sandbox": found_isolation.isolated,
        "cell_timeout": cell_timeout, "student_timeout": student_timeout,
    }
    jobs_list = []
    for module in graded_modules:
        students = [s for s in subs if s.module == module and s.notebooks]
        for number, chunk in enumerate(_chunks(students, jobs)):
            jobs_list.append({**base_job, "module": module, "template_dir": str(templates[module]),
                              "chunk_dir": str(work / "chunks" / f"{module}-{number:03d}"),
                              "students": {s.student: _submission_texts(s) for s in chunk}})

    _formgrader_folder(root, out, graded_modules, jobs_list, submissions)

    raw: dict = {}
    failures: dict = {}
    total = sum(len(j["students"]) for j in jobs_list)
    bar = _progress(total, progress)
    for outcome in _run(jobs_list, jobs, scheduler):
        _collect(outcome, raw, failures, bar)
    # Graded again, alone, once: a chunk that failed (a worker died, a flood killed the
    # grader) and a student whose kernel died (no other student can cause that: nothing is
    # shared). A notebook stopped at its wall clock is not run a second time.
    retry = []
    died = {key: graded for key, graded in raw.items()
            if any(_died(n.get("kernel_failure")) for n in graded.values())}
    for number, (module, student) in enumerate([*failures, *died]):
        job = next(j for j in jobs_list if j["module"] == module and student in j["students"])
        # Short: a module's broker listens on a Unix socket under it (about 100 bytes at most).
        retry.append({**job, "chunk_dir": str(work / "chunks" / f"retry-{number:03d}"),
                      "students": {student: job["students"][student]}})
    if retry:
        retried = {(job["module"], student) for job in retry for student in job["students"]}
        for key in retried:
            failures.pop(key, None)
            raw.pop(key, None)
        for outcome in _run(retry, jobs, scheduler):
            _collect(outcome, raw, failures, None)
    bar.close()

    results = []
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{gradebook_path}") as gradebook:
        for sub in subs:
            result = _result(sub, raw.get((sub.module, sub.student)), failures.get((sub.module, sub.student)),
                             releases[sub.module], out)
            _merge(gradebook, sub, result, kept, raw.get((sub.module, sub.student)))
            results.append(result)
    results.sort(key=lambda r: (r.student, r.module))
    _write_outputs(out, results, found_isolation, problems)
    from .report import write_feedback, write_report

    write_feedback(out, results, releases)
    write_report(out, results, releases, {"level": found_isolation.level,
                                          "description": found_isolation.description,
                                          "warnings": list(found_isolation.warnings)})
    return GradeRun(results, found_isolation.level, list(found_isolation.warnings),
                    time.perf_counter() - started, problems, out)


FORMGRADER_NOTE = """
# --- Added by `sscity course grade` ---------------------------------------------------------
# This folder is an nbgrader course folder, so formgrader can open it:
#   solutions/<module>/             the source notebooks the gradebook was generated from
#   submitted/<student>/<module>/   what was graded (as handed in, duplicated cells dropped)
#   autograded/<student>/<module>/  the graded notebooks;  gradebook.db: the grades
# Hand grading / 手動採点:  cd THIS_FOLDER && jupyter lab   (Nbgrader > Formgrader)
#   nbgrader reads this file from the current folder: start Jupyter from here.
#   nbgrader はこのファイルを現在のフォルダから読みます。このフォルダで Jupyter を起動してください。
# Then / その後:  sscity course report THIS_FOLDER   (hand grades -> grades_by_track.csv)
import os as _os  # noqa: E402

# This folder is the course, whatever another nbgrader_config.py (~/.jupyter, a hub) says.
c.CourseDirectory.root = _os.path.dirname(_os.path.abspath(__file__))  # noqa: F821
# Formgrader's Autograde / Generate buttons would run student code here unsandboxed, with
# the tests in the student's interpreter, and overwrite these grades: they match no
# notebook and change nothing. Grade with `sscity course grade`; feedback is in feedback/.
# formgrader の Autograde などのボタンはここでは何もしません。採点は sscity course grade で。
c.CourseDirectory.notebook_id = "grade-with-sscity-course-grade"
"""


def _formgrader_folder(root: Path, out: Path, modules: list[str], jobs_list: list[dict],
                       submissions: Path) -> None:
    """Make ``out`` a folder formgrader can open (nbgrader's course layout): the course's
    ``nbgrader_config.py``, the source notebooks of each graded module under
    ``solutions/`` (formgrader lists the assignments it finds there) and every graded
    submission under ``submitted/`` (it counts and lists the students from there).

    Graded into the course itself (``--out`` the repository, submissions collected into
    its ``submitted/``), the course's own files are the layout already: nothing is
    written over them."""
    target = (out / "submitted").resolve()
    if out.resolve() == root.resolve():
        return
    if target == submissions or target in submissions.parents or submissions in target.parents:
        jobs_list = []  # the submissions are read from there: leave them as they are
    (out / "nbgrader_config.py").write_text((root / "nbgrader_config.py").read_text() + FORMGRADER_NOTE,
                                            encoding="utf-8")
    for module in modules:
        source, target = root / "solutions" / module, out / "solutions" / module
        if target.resolve() != source.resolve():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target,
                            ignore=shutil.ignore_patterns(KNOWN_WRONG_FILE, ".ipynb_checkpoints"))
        for old in sorted((out / "submitted").glob(f"*/{module}")) if jobs_list else []:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
    for job in jobs_list:
        for student, files in job["students"].items():
            folder = out / "submitted" / student / job["module"]
            folder.mkdir(parents=True, exist_ok=True)
            for name, text in files.items():
                (folder / name).write_text(text, encoding="utf-8")


def _progress(total: int, show: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="grading", unit="submission", disable=not show)


def _run(jobs_list: list[dict], jobs: int, scheduler: str | None):
    """Yield chunk outcomes as they finish, locally or on a Dask cluster."""
    if scheduler:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed

        with Client(scheduler) as client:
            futures = client.map(grade_chunk, jobs_list, pure=False)
            for future, job in zip(futures, jobs_list, strict=True):
                future.job = job
            for future in dask_completed(futures):
                yield _outcome(future, future.job)
        return
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(grade_chunk, job): job for job in jobs_list}
        for future in as_completed(futures):
            yield _outcome(future, futures[future])


def _outcome(future, job) -> dict:
    try:
        return future.result()
    except Exception as err:  # noqa: BLE001 - a dead worker fails its chunk, not the class
        return {"module": job["module"], "results": {},
                "failed": {s: f"the grading worker failed: {type(err).__name__}: {err}"[:300]
                           for s in job["students"]}}


def _collect(outcome: dict, raw: dict, failures: dict, bar) -> None:
    module = outcome["module"]
    for student, graded in outcome["results"].items():
        raw[(module, student)] = graded
    for student, why in outcome["failed"].items():
        failures[(module, student)] = why
    if bar is not None:
        bar.update(len(outcome["results"]) + len(outcome["failed"]))


def _result(sub: Submission, graded: dict | None, failure: str | None, released: dict,
            out: Path) -> Result:
    findings = list(sub.findings)
    tasks = {}
    score = max_score = pending = 0.0
    for name, release in released.items():
        for cell in release.cells:
            meta = nbgrader_meta(cell)
            if not meta.get("points"):
                continue
            key = f"{name[:-6]}/{grade_id(cell)}"
            auto = is_test_cell(cell)
            tasks[key] = {"score": 0.0, "max": float(meta["points"]), "tier": tier(cell),
                          "auto": auto, "passed": False, "message": ""}
            if auto:
                max_score += float(meta["points"])
            else:
                pending += float(meta["points"])
    if graded is None and sub.notebooks:
        findings.append(Finding("grading", "could not be graded: " + (failure or "unknown error"),
                                withhold=True))
    for name, data in (graded or {}).items():
        nb = nbformat.reads(data["notebook"], as_version=4)
        for notice in dict.fromkeys(data.get("notices") or []):
            findings.append(Finding("grading", f"{name}: {notice}"))
        stopped = data.get("kernel_failure")
        if stopped:
            findings.append(Finding("grading", f"{name}: {stopped}; the tests that needed the "
                                               "student's later work scored 0"))
        not_run = set(unexecuted_test_cells(nb))
        if not_run:
            findings.append(Finding("grading", "test cells that never ran score 0: "
                                               + ", ".join(sorted(not_run))))
        messages = _failure_messages(nb)
        for gid, (auto_score, max_points, *_) in data["grades"].items():
            key = f"{name[:-6]}/{gid}"
            if key not in tasks or not tasks[key]["auto"]:
                continue
            earned = float(auto_score or 0)
            if gid in not_run:
                earned = 0.0
            tasks[key].update(score=earned, passed=earned >= max_points > 0,
                              message=messages.get(gid, ""))
        target = out / "autograded" / sub.student / sub.module
        target.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target / name)
    withheld = any(f.withhold for f in findings)
    if not withheld:
        score = sum(t["score"] for t in tasks.values() if t["auto"])
    status = "flagged" if findings else "ok"
    reasons = [str(f) for f in findings]
    if withheld:
        reasons.insert(0, "score withheld (0) pending review")
    reasons += sub.notes
    timed = [data.get("seconds") for data in (graded or {}).values()]
    seconds = max([t for t in timed if t is not None], default=0.0)
    return Result(sub.student, sub.module, round(score, 6), max_score, status, "; ".join(reasons),
                  pending, round(seconds, 3), tasks)


def _failure_messages(nb) -> dict[str, str]:
    """The error each failing test cell raised (its visible message, or the error name)."""
    messages = {}
    for cell in nb.cells:
        if not is_test_cell(cell):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                messages[grade_id(cell)] = f"{output.get('ename')}: {output.get('evalue', '')}"[:500]
    return messages


def _student_work(nb) -> str:
    """A fingerprint of what a student wrote in a notebook: the cells they own (answers and
    their own cells), in order; instructor cells, outputs and cell ids are left out."""
    import hashlib

    owned = [(c.cell_type, c.source.strip()) for c in nb.cells
             if not nbgrader_meta(c) or nbgrader_meta(c).get("solution")]
    return hashlib.sha256(json.dumps(owned).encode()).hexdigest()


def _kept_hand_grades(gradebook_path: Path, out: Path) -> dict:
    """Hand grades and comments people entered in formgrader after an earlier run into
    ``out``, keyed ``(module, student, notebook)``, with a fingerprint of the work they
    judged (``out/autograded/...``, what formgrader showed). Grading again carries them
    over (:func:`_merge_one`) instead of losing them with the old gradebook."""
    if not gradebook_path.is_file():
        return {}
    import warnings

    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    kept = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        with Gradebook(f"sqlite:///{gradebook_path}") as gradebook:
            for assignment in gradebook.assignments:
                for submission in assignment.submissions:
                    student = submission.student.id
                    for notebook in submission.notebooks:
                        marks = {g.name: (g.manual_score, g.extra_credit) for g in notebook.grades
                                 if g.manual_score is not None or g.extra_credit is not None}
                        notes = {c.name: c.manual_comment for c in notebook.comments if c.manual_comment}
                        if not marks and not notes:
                            continue
                        seen = out / "autograded" / student / assignment.name / f"{notebook.name}.ipynb"
                        try:
                            work = _student_work(_read_notebook(seen))
                        except Exception:  # noqa: BLE001 - unknown work: every carried grade is reviewed
                            work = None
                        kept[(assignment.name, student, notebook.name)] = {
                            "grades": marks, "comments": notes, "work": work}
    return kept


def _merge(gradebook, sub: Submission, result: Result, kept: dict | None = None,
           graded: dict | None = None) -> None:
    """Write one submission into the class gradebook, in one step.

    Each cell is left as a plain ``nbgrader autograde`` leaves it, so formgrader flags
    exactly the hand-graded tasks: autograded cells get their score and
    ``needs_manual_grade`` False; hand-graded cells keep nbgrader's own verdict from the
    chunk's gradebook (``graded``): a written answer or a task waits for a person, an
    unchanged answer stub scores 0 without waiting."""
    import warnings

    from nbgrader.api import MissingEntry
    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's own session handling
        _merge_one(gradebook, sub, result, MissingEntry, kept or {}, graded or {})


def _merge_one(gradebook, sub: Submission, result: Result, MissingEntry, kept: dict,  # noqa: N803
               graded: dict) -> None:
    try:
        gradebook.remove_submission(sub.module, sub.student)
    except MissingEntry:
        pass
    try:
        gradebook.update_or_create_student(sub.student)
        submission = gradebook.add_submission(sub.module, sub.student)
        for notebook in submission.notebooks:
            verdicts = graded.get(f"{notebook.name}.ipynb", {}).get("grades", {})
            for grade in notebook.grades:
                task = result.tasks.get(f"{notebook.name}/{grade.name}")
                if task and task["auto"]:
                    withheld = result.status == "flagged" and "withheld" in result.reason
                    grade.auto_score = 0.0 if withheld else task["score"]
                    grade.needs_manual_grade = False  # as nbgrader's autograde: only hand tasks wait
                elif task and len(verdicts.get(grade.name, ())) == 3:
                    auto_score, _, needs_manual = verdicts[grade.name]
                    grade.auto_score, grade.needs_manual_grade = auto_score, bool(needs_manual)
            _carry_over(notebook, sub, kept.get((sub.module, sub.student, notebook.name)))
        gradebook.db.commit()
    except Exception:
        gradebook.db.rollback()
        raise


def _carry_over(notebook, sub: Submission, old: dict | None) -> None:
    """Put an earlier run's hand grades and comments back. If the student's work changed
    since (or cannot be compared), each carried grade is marked ``needs_manual_grade``:
    formgrader shows it for review and grades_by_track.csv counts it as pending."""
    if not old:
        return
    path = sub.notebooks.get(f"{notebook.name}.ipynb")
    try:
        same = path is not None and old["work"] == _student_work(_deduplicated(_read_notebook(path)))
    except Exception:  # noqa: BLE001 - unreadable now: review
        same = False
    for grade in notebook.grades:
        if grade.name in old["grades"]:
            grade.manual_score, grade.extra_credit = old["grades"][grade.name]
            grade.needs_manual_grade = not same or (grade.manual_score is None and grade.auto_score is None)
    for comment in notebook.comments:
        if comment.name in old["comments"]:
            comment.manual_comment = old["comments"][comment.name]


def _write_outputs(out: Path, results: list[Result], found_isolation, problems: list[str]) -> None:
    with (out / "grades.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for result in results:
            row = asdict(result)
            writer.writerow({key: row[key] for key in CSV_COLUMNS})
    payload = {
        "isolation": {"level": found_isolation.level, "description": found_isolation.description,
                      "warnings": list(found_isolation.warnings)},
        "problems": problems,
        "results": [asdict(r) for r in results],
    }
    (out / "results.json").write_text(json.dumps(payload, ensure_ascii=False, indent=1),
                                      encoding="utf-8")
