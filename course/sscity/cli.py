"""The ``sscity`` command.

::

    sscity course release [MODULE...] [--check]   regenerate modules/ from solutions/
    sscity course verify  [MODULE...] [--jobs N] [--plain]  solution 100, blank 0, known-wrongs fail
    sscity course lint    [MODULE...]             the authoring rules
    sscity course grade SUBMISSIONS --out DIR     parallel, sandboxed grading with reports
    sscity course report DIR                      grades_by_track.csv again, with formgrader's hand grades
    sscity course demo                            a demo class built from the course, graded
    sscity course publish DEST [--japanese-first]  the student edition, smoke-tested
    sscity course hub-config DEST --course-id ID --instructor NAME ...  a JupyterHub class server
    sscity course stage-feedback MODULE --grades DIR   sscity's feedback for `nbgrader release_feedback`
    sscity data build                             regenerate the synthetic datasets from seeds
    sscity data verify                            datasets/ against datasets/MANIFEST
    sscity data manifest                          rewrite datasets/MANIFEST (authors)
    sscity platform serve [--port N] [--db F]     the NGSI-LD broker over HTTP (SQLite file or memory)
    sscity platform serve --uds PATH              ... on a Unix socket (http+unix:///PATH)
    sscity city seed [--url URL] [--tenant T]     seed a broker with the whole SYNTHETIC city
    sscity lab                                    JupyterLab on modules/
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["main"]


def _root(args, edition: bool = False) -> Path:
    """The course repository; with ``edition``, a student edition's root also counts."""
    from .course.notebooks import course_root

    return course_root(Path(args.root) if args.root else None, edition=edition)


def _cmd_release(args) -> int:
    from .course.release import check_release, release, remove_stale

    root = _root(args)
    if args.check:
        drift = check_release(root, args.modules or None)
        if drift.ok:
            print("modules/ matches a fresh release of solutions/.")
            return 0
        print("modules/ differs from a fresh release of solutions/:")
        for line in drift.lines():
            print(f"  {line}")
        print("Never edit modules/ by hand: change solutions/ and run `sscity course release`.")
        return 1
    started = time.perf_counter()
    done = release(root, args.modules or None)
    stale = [] if args.modules else remove_stale(root)
    print(f"Released {', '.join(done) or 'nothing'} into modules/ "
          f"in {time.perf_counter() - started:.1f} s.")
    if stale:
        print(f"Removed stale release folders: {', '.join(stale)}")
    return 0


def _cmd_verify(args) -> int:
    from .course.verify import format_report, verify_modules

    root = _root(args)
    started = time.perf_counter()
    reports = verify_modules(root, args.modules or None, jobs=args.jobs,
                             progress=not args.no_progress, trusted=not args.plain)
    for report in reports:
        print(format_report(report))
        print()
    failed = [r.module for r in reports if not r.ok]
    total = time.perf_counter() - started
    print(f"Verified {len(reports)} module(s) in {total:.1f} s: "
          + ("all pass." if not failed else f"FAILED: {', '.join(failed)}"))
    return 1 if failed else 0


def _print_grade_summary(run) -> None:
    from collections import Counter

    status = Counter(r.status for r in run.results)
    print(f"Graded {len(run.results)} submissions in {run.seconds:.1f} s: "
          f"{status.get('ok', 0)} ok, {status.get('flagged', 0)} flagged.")
    print(f"Isolation: {run.isolation}")
    for warning in run.isolation_warnings:
        print(warning)
    for problem in run.problems:
        print(f"  note: {problem}")
    print(f"Wrote {run.out / 'grades.csv'}, {run.out / 'grades_by_track.csv'}, "
          f"{run.out / 'report.html'}, feedback in {run.out / 'feedback'}/ and the gradebook "
          f"{run.out / 'gradebook.db'}")
    if any(r.manual_points_pending for r in run.results):
        print(f"Hand-graded tasks are pending in grades_by_track.csv: grade them in formgrader "
              f"(`cd {run.out} && jupyter lab`, then Nbgrader → Formgrader → Manual Grading), then run "
              f"`sscity course report {run.out}`. / 手動採点の課題は formgrader（`cd {run.out} && "
              "jupyter lab` → Nbgrader → Formgrader → Manual Grading）で採点した後、"
              "`sscity course report DIR` で grades_by_track.csv に加えます。")


def _cmd_grade(args) -> int:
    from .course.grade import grade

    run = grade(_root(args), Path(args.submissions), Path(args.out), jobs=args.jobs,
                modules=args.module or None, scheduler=args.scheduler,
                cell_timeout=args.cell_timeout, progress=not args.no_progress,
                no_sandbox=args.no_sandbox)
    _print_grade_summary(run)
    return 0


def _cmd_report(args) -> int:
    from .course.report import refresh_track_grades

    path, rows = refresh_track_grades(Path(args.dir))
    pending = sorted({(r["student"], r["module"]) for r in rows
                      if r["manual_pending"] and not r["module"].startswith("TOTAL")})
    print(f"Wrote {path} with the hand grades of {Path(args.dir) / 'gradebook.db'}.")
    if pending:
        print(f"Hand grading pending for {len(pending)} submission(s); their totals are "
              "marked provisional. / 手動採点が未了の提出が "
              f"{len(pending)} 件あり、合計は暫定（provisional）です。")
    else:
        print("Every hand-graded task has a score. / 手動採点はすべて済んでいます。")
    return 0


def _cmd_demo(args) -> int:
    from .course.demo import build_demo_class
    from .course.grade import grade

    root = _root(args)
    out = Path(args.out)
    expected = build_demo_class(root, out, students=args.students)
    students = expected["students"]
    print(f"Built a demo class of {len(students)} students in {out / 'submissions'} "
          f"({sum(len(m) for m in students.values())} submissions).")
    run = grade(root, out / "submissions", out, jobs=args.jobs, cell_timeout=args.cell_timeout,
                progress=not args.no_progress, no_sandbox=args.no_sandbox)
    _print_grade_summary(run)
    from .course.demo import check_demo

    problems = check_demo(run.results, expected)
    for problem in problems:
        print(f"DEMO CHECK FAILED: {problem}")
    print("Demo checks: " + ("every adversarial submission was caught." if not problems
                             else f"{len(problems)} problem(s)."))
    return 1 if problems else 0


def _cmd_publish(args) -> int:
    from .course.publish import publish, smoke_test

    written = publish(_root(args), Path(args.dest), japanese_first=args.japanese_first)
    edition = "Japanese-first student edition" if args.japanese_first else "student edition"
    print(f"Wrote the {edition} ({len(written)} files) to {args.dest}.")
    if args.no_smoke:
        return 0
    print("Running its smoke test (lessons and assignments run; no solutions) ...")
    done = smoke_test(Path(args.dest))
    print(done.stdout[-2000:])
    if done.returncode != 0:
        print(done.stderr[-2000:])
        print("The student edition FAILED its smoke test.")
        return 1
    print("The student edition passes its smoke test.")
    return 0


def _cmd_lint(args) -> int:
    from .course.lint import run_lint

    results = run_lint(_root(args), args.modules or None)
    failed = 0
    for rule, problems in results.items():
        print(f"{'ok  ' if not problems else 'FAIL'} {rule}")
        for problem in problems:
            print(f"       {problem}")
        failed += bool(problems)
    return 1 if failed else 0


def _cmd_data_verify(args) -> int:
    from .data import datasets_dir, verify_manifest

    root = Path(args.datasets) if args.datasets else datasets_dir()
    report = verify_manifest(root)
    for line in report.lines():
        print(line)
    if report.ok:
        print(f"All {report.checked} dataset files match {root / 'MANIFEST'}.")
        return 0
    print(f"{len(report.lines())} problem(s) in {root}. A changed file was edited or damaged: "
          "restore it with `git checkout -- datasets/`. If you changed a dataset on purpose, "
          "rewrite the manifest with `sscity data manifest`.")
    return 1


def _cmd_data_build(args) -> int:
    from .data import datasets_dir
    from .data.build import build

    root = Path(args.datasets) if args.datasets else datasets_dir()
    started = time.perf_counter()
    written = build(root, progress=not args.no_progress)
    print(f"Rebuilt {len(written)} synthetic dataset files in {root} "
          f"in {time.perf_counter() - started:.1f} s.")
    print("Check them with `sscity data verify` (they must match datasets/MANIFEST).")
    return 0


def _cmd_data_manifest(args) -> int:
    from .data import datasets_dir, write_manifest

    root = Path(args.datasets) if args.datasets else datasets_dir()
    print(f"Wrote {write_manifest(root)}")
    return 0


def _cmd_platform_serve(args) -> int:
    from .platform.server import DEFAULT_PORT, serve

    if args.memory and args.db:
        raise ValueError("choose --db FILE or --memory, not both")
    if args.uds is not None and (args.host is not None or args.port is not None):
        raise ValueError("choose --uds PATH (a Unix socket) or --host/--port (TCP), not both")
    db = None if args.memory or not args.db else Path(args.db)
    where = f"database {db}" if db else "in memory (lost when it stops)"
    if args.uds is not None:
        uds = Path(args.uds).absolute()
        print(f"NGSI-LD broker on the Unix socket {uds}, {where}. Reach it with "
              f"Client(url=\"http+unix://{uds}\") or SSCITY_BROKER_URL=http+unix://{uds}. "
              "Stop it with Ctrl+C.", flush=True)
        serve(db=db, uds=uds, max_body=args.max_body, contexts=args.context or (),
              context_cache=args.context_cache)
        return 0
    host = "127.0.0.1" if args.host is None else args.host
    port = DEFAULT_PORT if args.port is None else args.port
    print(f"NGSI-LD broker on http://{host}:{port}/ngsi-ld/v1, {where}. Stop it with Ctrl+C.", flush=True)
    serve(host=host, port=port, db=db, max_body=args.max_body, contexts=args.context or (),
          context_cache=args.context_cache)
    return 0


def _cmd_city_seed(args) -> int:
    from .city import seed_city
    from .platform import Client

    client = Client(url=args.url, tenant=args.tenant) if args.url else Client(tenant=args.tenant)
    if client.embedded is not None:
        print("No --url and no SSCITY_BROKER_URL: seeding an in-memory embedded broker, which is lost "
              "when this command ends (a dry run). / --url も SSCITY_BROKER_URL もないため、終了すると"
              "消える組み込みのブローカーに投入します（試行）。", flush=True)
    summary = seed_city(client, tenant=args.tenant)
    print("\n".join(summary.lines()))
    # Governance reads what was just published, as an outsider would.
    from .governance.published import audit_published

    findings = audit_published(client.for_tenant(args.tenant), k=summary.k)
    print(f"governance audit of what was published (k = {summary.k}): {len(findings)} findings "
          f"/ 公開した内容のガバナンス監査：指摘 {len(findings)} 件")
    for row in findings.itertuples():
        print(f"  {row.rule}: {row.entity_id}: {row.detail}")
    return 0 if findings.empty else 1


# What students never see: nbgrader's instructor tools (Formgrader, Create Assignment) and,
# outside a JupyterHub with an exchange, the assignment and course lists (they only say
# "Error fetching courses!" without one). The Validate button stays.
STUDENT_HIDDEN_SERVER_EXTENSIONS = ("nbgrader.server_extensions.formgrader",
                                    "nbgrader.server_extensions.assignment_list",
                                    "nbgrader.server_extensions.course_list")
STUDENT_HIDDEN_LAB_PLUGINS = ("@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                              "@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:course-list",
                              "@jupyter/nbgrader:menu")


def _student_lab_config() -> Path:
    """A Jupyter config folder whose ``labconfig/page_config.json`` disables the instructor
    plugins; it goes first on ``JUPYTER_CONFIG_PATH`` for this server only (nothing is
    changed in the environment's own Jupyter settings)."""
    import json
    import tempfile

    text = json.dumps({"disabledExtensions": dict.fromkeys(STUDENT_HIDDEN_LAB_PLUGINS, True)},
                      indent=1)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    for folder in (cache / "sscity" / "jupyter-student", None):
        try:
            folder = folder or Path(tempfile.mkdtemp(prefix="sscity-lab-"))
            (folder / "labconfig").mkdir(parents=True, exist_ok=True)
            (folder / "labconfig" / "page_config.json").write_text(text)
            return folder
        except OSError:
            continue
    raise RuntimeError("cannot write JupyterLab's student settings (no writable cache or "
                       "temporary folder) / JupyterLab の学生用設定を書き込めません")


def lab_command(root: Path, args) -> tuple[list[str], dict[str, str], Path]:
    """(command, environment, notebook folder) of ``sscity lab`` for ``args``."""
    from .course.release import with_scripts_on_path

    env = with_scripts_on_path(os.environ)
    # Formgrader needs the server's root at the repository (its nbgrader_config.py).
    folder = root if args.instructor else root / "modules"
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={folder}"]
    if args.port is not None:
        command.append(f"--ServerApp.port={args.port}")
    if args.ip:
        command.append(f"--ServerApp.ip={args.ip}")
    if args.no_browser:
        command.append("--ServerApp.open_browser=False")
    if args.token is not None:
        command.append(f"--IdentityProvider.token={args.token}")
    if not args.instructor:
        command += [f"--ServerApp.jpserver_extensions={name}=False"
                    for name in STUDENT_HIDDEN_SERVER_EXTENSIONS]
        config = str(_student_lab_config())
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
            [config, *filter(None, env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep))])
    command += args.lab_args
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in command:
        # Containers often run as root; JupyterLab refuses that unless told.
        command.append("--allow-root")
    return command, env, folder


def _cmd_lab(args) -> int:
    root = _root(args, edition=not args.instructor)
    command, env, folder = lab_command(root, args)
    where = "the repository (instructor: Nbgrader → Formgrader)" if args.instructor else "modules/"
    where_ja = "リポジトリ（教員用：Nbgrader → Formgrader）" if args.instructor else "modules/"
    print(f"Starting JupyterLab on {where} (stop it with Ctrl+C) ... / {where_ja} で JupyterLab を"
          "起動します（Ctrl+C で終了）", flush=True)
    if args.ip and args.ip not in ("localhost", "127.0.0.1", "::1"):
        print(f"Listening on {args.ip}: open the URL with the token printed below, or from your "
              "own computer use `ssh -L 8888:localhost:8888 SERVER` and http://localhost:8888. / "
              f"{args.ip} で待ち受けます。下に表示されるトークン付きの URL を開くか、手元から "
              "`ssh -L 8888:localhost:8888 SERVER` で接続してください。", flush=True)
    if os.name == "posix":
        # Become JupyterLab rather than wait for it: a signal that stops `sscity lab` then
        # stops the server itself and leaves no orphan JupyterLab behind.
        os.chdir(root)
        os.execve(sys.executable, command, env)
    return subprocess.call(command, cwd=root, env=env)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sscity", description="Tools of the Tsukuba Super Science City course.")
    parser.add_argument("--root", help="course repository (default: found from here)")
    verbs = parser.add_subparsers(dest="group", required=True)

    course = verbs.add_parser("course", help="instructor tools: release, verify, lint")
    course_verbs = course.add_subparsers(dest="verb", required=True)
    rel = course_verbs.add_parser("release", help="regenerate modules/ from solutions/ with nbgrader")
    rel.add_argument("modules", nargs="*", metavar="MODULE")
    rel.add_argument("--check", action="store_true",
                     help="change nothing; exit 1 and name the files if modules/ is out of date")
    rel.set_defaults(func=_cmd_release)
    ver = course_verbs.add_parser(
        "verify", help="grade solution, blank and known-wrong submissions with nbgrader")
    ver.add_argument("modules", nargs="*", metavar="MODULE")
    ver.add_argument("--jobs", type=int, default=1, help="modules verified at once (default 1)")
    ver.add_argument("--no-progress", action="store_true", help="no progress bar")
    ver.add_argument("--plain", action="store_true",
                     help="plain nbgrader execution (tests and answers in one kernel) instead of "
                          "the trusted checker that `sscity course grade` uses")
    ver.set_defaults(func=_cmd_verify)
    grd = course_verbs.add_parser(
        "grade", help="grade a class: parallel, sandboxed nbgrader",
        epilog="Hand-graded tasks: `cd DIR && jupyter lab`, then Nbgrader → Formgrader → Manual "
               "Grading (DIR is an nbgrader course folder); then `sscity course report DIR` adds them "
               "to DIR/grades_by_track.csv. Grading into the same folder again keeps the hand grades. "
               "/ 手動採点の課題は `cd DIR && jupyter lab` で Formgrader を開いて採点し、"
               "`sscity course report DIR` で grades_by_track.csv に加えます。")
    grd.add_argument("submissions", help="folder <student>/<module>/*.ipynb, or a zip of one")
    grd.add_argument("--out", required=True, help="folder for grades, feedback and the report")
    grd.add_argument("--jobs", type=int, default=2, help="submissions graded at once (default 2)")
    grd.add_argument("--module", action="append", help="grade only this module (repeatable)")
    grd.add_argument("--scheduler", help="address of a Dask distributed scheduler")
    grd.add_argument("--cell-timeout", type=int, default=60, help="seconds per cell (default 60)")
    grd.add_argument("--no-progress", action="store_true", help="no progress bar")
    grd.add_argument("--no-sandbox", action="store_true",
                     help="grade although bubblewrap is missing (student code runs as you; "
                          "every output says so)")
    grd.set_defaults(func=_cmd_grade)
    rep = course_verbs.add_parser(
        "report", help="after hand grading in formgrader: rewrite grades_by_track.csv",
        description="Rewrite DIR/grades_by_track.csv (and the manual_points_pending column of "
                    "DIR/grades.csv) from DIR/results.json and the hand grades in DIR/gradebook.db. "
                    "Nothing is graded again. / formgrader で手動採点した後に、DIR/gradebook.db の"
                    "得点を加えて DIR/grades_by_track.csv を書き直します（再採点はしません）。")
    rep.add_argument("dir", metavar="DIR", help="the --out folder of `sscity course grade`")
    rep.set_defaults(func=_cmd_report)
    demo = course_verbs.add_parser("demo", help="build a demo class from the course and grade it")
    demo.add_argument("--students", type=int, default=40, help="class size (default 40)")
    demo.add_argument("--out", default="demo-class", help="output folder (default demo-class/)")
    demo.add_argument("--jobs", type=int, default=2)
    demo.add_argument("--cell-timeout", type=int, default=20, help="seconds per cell (default 20)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.add_argument("--no-sandbox", action="store_true",
                      help="run the demo without bubblewrap (every output says so)")
    demo.set_defaults(func=_cmd_demo)
    pub = course_verbs.add_parser("publish", help="write the student edition (no solutions) and test it")
    pub.add_argument("dest", help="a new folder outside the repository")
    pub.add_argument("--no-smoke", action="store_true", help="skip the smoke test")
    pub.add_argument("--japanese-first", action="store_true",
                     help="put the Japanese first in every bilingual cell, test message and module README")
    pub.set_defaults(func=_cmd_publish)
    lint = course_verbs.add_parser("lint", help="check the authoring rules")
    lint.add_argument("modules", nargs="*", metavar="MODULE")
    lint.set_defaults(func=_cmd_lint)
    from .course.hub import add_hub_config_parser, add_stage_feedback_parser

    add_hub_config_parser(course_verbs)
    add_stage_feedback_parser(course_verbs)

    data = verbs.add_parser("data", help="datasets: build from seeds, verify checksums")
    data_verbs = data.add_subparsers(dest="verb", required=True)
    dver = data_verbs.add_parser("verify", help="check every file against datasets/MANIFEST")
    dver.add_argument("--datasets", help="datasets folder (default: the course's)")
    dver.set_defaults(func=_cmd_data_verify)
    dbuild = data_verbs.add_parser("build", help="regenerate every synthetic dataset from its seed")
    dbuild.add_argument("--datasets", help="datasets folder (default: the course's)")
    dbuild.add_argument("--no-progress", action="store_true", help="no progress bar")
    dbuild.set_defaults(func=_cmd_data_build)
    dman = data_verbs.add_parser("manifest", help="rewrite datasets/MANIFEST from the files")
    dman.add_argument("--datasets", help="datasets folder (default: the course's)")
    dman.set_defaults(func=_cmd_data_manifest)

    platform = verbs.add_parser("platform", help="the city data platform: an NGSI-LD broker")
    platform_verbs = platform.add_subparsers(dest="verb", required=True)
    pserve = platform_verbs.add_parser("serve", help="serve the NGSI-LD API over HTTP with uvicorn")
    pserve.add_argument("--host", help="interface (default 127.0.0.1)")
    pserve.add_argument("--port", type=int, help="TCP port (default 1026, as Orion-LD)")
    pserve.add_argument("--uds", metavar="PATH", help="listen on this Unix domain socket instead of a TCP "
                        "port (mode 0666: any user that can enter its folder may connect); clients use "
                        "http+unix:///PATH")
    pserve.add_argument("--db", help="SQLite database file, kept across restarts")
    pserve.add_argument("--memory", action="store_true", help="keep everything in memory (the default "
                        "without --db)")
    pserve.add_argument("--max-body", type=int, metavar="BYTES",
                        help="largest request body in bytes (default 8 MiB); a larger one gets 413")
    pserve.add_argument("--context", action="append", metavar="URL=FILE|DIR",
                        help="a JSON-LD @context the broker answers for URL without downloading it: "
                        "URL=FILE, or a folder whose contexts.json maps URLs to its files (repeatable)")
    pserve.add_argument("--context-cache", metavar="DIR",
                        help="folder keeping @contexts posted to /ngsi-ld/v1/jsonldContexts (and inline "
                        "ones the broker names by URL) across restarts")
    pserve.set_defaults(func=_cmd_platform_serve)

    city = verbs.add_parser("city", help="the through-line: the whole SYNTHETIC city on the platform")
    city_verbs = city.add_subparsers(dest="verb", required=True)
    cseed = city_verbs.add_parser(
        "seed", help="publish survey aggregates, gateway sensor entities, facilities and crowding")
    cseed.add_argument("--url", help="NGSI-LD broker URL (default SSCITY_BROKER_URL, else embedded)")
    cseed.add_argument("--tenant", default="city", help="tenant to seed (default city)")
    cseed.set_defaults(func=_cmd_city_seed)

    lab = verbs.add_parser("lab", help="JupyterLab on modules/ (for students)")
    lab.add_argument("--port", type=int, help="port to listen on (default 8888, or the next free)")
    lab.add_argument("--ip", help="address to listen on, e.g. 0.0.0.0 on a remote machine "
                                  "(default localhost)")
    lab.add_argument("--no-browser", action="store_true",
                     help="do not open a browser (remote or headless machines)")
    lab.add_argument("--token", help="the access token (default: a random one, printed)")
    lab.add_argument("--instructor", action="store_true",
                     help="instructors: JupyterLab on the repository root with Formgrader and "
                          "Create Assignment (students see modules/ without them)")
    lab.set_defaults(func=_cmd_lab, lab_args=[])
    lab.epilog = ("Other options go to JupyterLab, e.g. sscity lab --ServerApp.base_url=/course/. "
                  "Students never see Formgrader, Create Assignment or the assignment list.")
    return parser


def main(argv: list[str] | None = None) -> int:
    # Skip jsonschema's slow optional IRI grammar (see sscity.course.release).
    sys.modules.setdefault("rfc3987_syntax", None)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.func is not _cmd_lab:
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    args.lab_args = extra
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"sscity: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
