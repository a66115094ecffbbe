"""Run one process of a grading run in an allow-list sandbox.

Every process that touches a student's work -- the student's kernel, the trusted checker
that runs the tests, the broker a module needs -- starts through this module::

    python -m sscity.course.sandbox run --workdir W [--rw PATH ...] [--ro PATH ...]
        [--shared PATH ...] [--env KEY=VALUE ...] [--font-cache DIR] [limits] -- COMMAND ...

It runs *outside* the sandbox just long enough to

1. copy matplotlib's font list into the process's home (``W``);
2. when it runs as root, give ``W`` and the ``--rw`` folders (not ``--shared`` ones, whose
   sub-folders belong to other processes) to an unprivileged user id of
   this process's own (``100000 + its pid``: unique among live processes), so that the
   process limit binds and no two students' processes share a user;
3. start ``bwrap`` (bubblewrap) as that user, with resource limits, and stop it at the wall
   clock.

Inside, the process is uid 65534 (``nobody``) in a new user namespace with no capabilities
and new PID, IPC, UTS and **network** namespaces. The file system is an **allow-list**:
only the operating system's programs and libraries (``/usr``), the Python installation and
its packages, the ``sscity`` package and ``datasets/``, a private ``/tmp`` and the folders
named with ``--rw`` / ``--ro`` exist. The course repository (solutions, other modules),
other students' work, grading folders, ``/root``, ``/home``, ``/var``, ``/srv`` and the
rest of ``/etc`` are absent, not merely hidden.

Without bubblewrap (``--no-sandbox``, only when the instructor asked for it) the process
runs with the resource limits and the wall clock alone.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Isolation", "Limits", "build_font_cache", "command", "isolation", "main",
           "readable_paths", "system_paths"]

NOBODY = 65534
UID_BASE = 100_000
# Files of /etc that programs read and that hold nothing private.
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "fonts", "mime.types",
        "alternatives")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed process."""

    cpu_seconds: int = 300
    memory_bytes: int = 4 * 1024**3
    file_bytes: int = 64 * 1024**2
    processes: int = 256
    open_files: int = 1024
    wall_seconds: int = 300


@dataclass(frozen=True)
class Isolation:
    """Which isolation this machine gives a student's kernel."""

    level: str  # "bubblewrap" or "none"
    description: str
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def isolated(self) -> bool:
        return self.level == "bubblewrap"


INSTALL_HINT = ("Install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap; Fedora: "
                "sudo dnf install bubblewrap) and make sure unprivileged user namespaces are "
                "enabled (sysctl kernel.unprivileged_userns_clone=1), then grade again.")


def _bwrap_works() -> tuple[bool, str]:
    """Run ``id -u`` the way a student's process will be run; it must print its own user."""
    import argparse

    if shutil.which("bwrap") is None:
        return False, "bubblewrap (bwrap) is not installed"
    uid = UID_BASE + os.getpid() if os.geteuid() == 0 else None
    args = argparse.Namespace(course_root="/nonexistent", ro=[], rw=[], shared=[], chdir="/", tmp=None)
    command = _bwrap(args, Path("/tmp"), {}, uid) + ["/usr/bin/id", "-u"]
    # The probe binds nothing of its own: drop the /tmp work folder bind.
    at = command.index("--bind")
    del command[at:at + 3]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as err:
        return False, f"bwrap failed to start: {err}"
    want = str(uid if uid is not None else NOBODY)
    if done.returncode != 0 or done.stdout.strip() != want:
        return False, f"bwrap does not work here: {(done.stderr or done.stdout).strip()[:200]}"
    return True, ""


def isolation() -> Isolation:
    """Probe the machine: does bubblewrap work (also as an unprivileged user, when root)?"""
    ok, why = _bwrap_works()
    if ok:
        return Isolation(
            "bubblewrap",
            "bubblewrap allow-list sandbox per process: the student's kernel and the trusted "
            "test checker each as an unprivileged user with no capabilities, no network, own "
            "PID/IPC namespaces; only the Python installation, the sscity package, datasets/ "
            "and its own folders exist; CPU, memory, file-size, process and wall-clock limits.",
        )
    return Isolation(
        "none",
        "NO SANDBOX: student code runs with the grader's rights; only CPU, memory, file-size, "
        "process and wall-clock limits apply.",
        (f"WARNING: {why}. Without a sandbox, student code can read the course repository and "
         "other submissions, write wherever the grader can, and reach the network. " + INSTALL_HINT,),
    )


def build_font_cache(folder: Path) -> subprocess.Popen:
    """Start building matplotlib's font list in ``folder``; wait on the returned process.

    Each process has its own empty matplotlib folder, where matplotlib would otherwise scan
    every installed font again (about 0.2 s per student).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MPLCONFIGDIR=str(folder), MPLBACKEND="Agg")
    return subprocess.Popen([sys.executable, "-c", "import matplotlib.font_manager"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def readable_paths(course_root: Path) -> list[Path]:
    """What a sandboxed process may read: Python, its packages, sscity and the datasets."""
    course_root = Path(course_root).resolve()
    prefixes = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(),
                Path(sys.executable).resolve().parent.parent}
    paths = set(prefixes)
    for entry in sys.path:
        if not entry:
            continue
        path = Path(entry).resolve()
        # Only the installation's own folders: never the folder a command was started in.
        if path.is_dir() and any(path == p or p in path.parents for p in prefixes):
            paths.add(path)
    allowed = []
    for path in paths:
        inside = path == course_root or course_root in path.parents
        if inside and not any(path == course_root / ok or (course_root / ok) in path.parents
                              for ok in (".venv", "course", "datasets")):
            continue  # nothing else of the checkout: solutions, tests, grading folders
        if path.parts[:2] == ("/", "usr"):
            continue  # /usr is bound whole
        allowed.append(path)
    allowed += [course_root / "course", course_root / "datasets"]
    unique = []
    for path in sorted(set(allowed), key=lambda p: len(p.parts)):
        if path.exists() and not any(parent in unique for parent in path.parents):
            unique.append(path)
    return unique


_SYSTEM_LINKS = ("bin", "lib", "lib64", "lib32", "sbin", "libx32")


def system_paths() -> list[Path]:
    """The operating system's folders a sandboxed process sees (besides Python, sscity and
    the datasets): programs and libraries, the allowed files of /etc, its /proc."""
    return [Path("/usr"), *(Path("/") / name for name in _SYSTEM_LINKS), Path("/etc"), Path("/proc")]


def _system_links() -> list[str]:
    out = []
    for name in _SYSTEM_LINKS:
        path = Path("/") / name
        if path.is_symlink():
            out += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            out += ["--ro-bind", str(path), str(path)]
    return out


def command(argv: list[str], *, workdir: Path, course_root: Path, rw: list[Path] = (),
            ro: list[Path] = (), env: dict | None = None, limits: Limits | None = None,
            sandbox: bool = True, font_cache: Path | None = None, chdir: Path | None = None,
            keep_fds: tuple[int, ...] = (), python_flags: tuple[str, ...] = (),
            tmp: Path | None = None, shared: list[Path] = ()) -> list[str]:
    """The command line that runs ``argv`` in the sandbox (see the module docstring)."""
    limits = limits or Limits()
    out = [sys.executable, *python_flags, "-m", "sscity.course.sandbox", "run",
           "--workdir", str(workdir), "--course-root", str(course_root),
           "--cpu", str(limits.cpu_seconds), "--memory", str(limits.memory_bytes),
           "--file-size", str(limits.file_bytes), "--processes", str(limits.processes),
           "--open-files", str(limits.open_files), "--wall", str(limits.wall_seconds)]
    for path in rw:
        out += ["--rw", str(path)]
    for path in ro:
        out += ["--ro", str(path)]
    for path in shared:
        out += ["--shared", str(path)]
    for key, value in (env or {}).items():
        out += ["--env", f"{key}={value}"]
    if font_cache is not None:
        out += ["--font-cache", str(font_cache)]
    if chdir is not None:
        out += ["--chdir", str(chdir)]
    for fd in keep_fds:
        out += ["--keep-fd", str(fd)]
    if tmp is not None:
        out += ["--tmp", str(tmp)]
    if not sandbox:
        out.append("--no-sandbox")
    return [*out, "--", *argv]


def _become(uid: int) -> None:
    """Drop root for good: no groups, real, effective and saved ids all ``uid``."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def _set_limits(args, own_uid: bool) -> None:
    limits = [(resource.RLIMIT_CPU, args.cpu), (resource.RLIMIT_AS, args.memory),
              (resource.RLIMIT_FSIZE, args.file_size), (resource.RLIMIT_NOFILE, args.open_files)]
    if own_uid:
        # Counted per real user: it binds only for a user of this process's own (root grading).
        limits.append((resource.RLIMIT_NPROC, args.processes))
    for limit, value in limits:
        resource.setrlimit(limit, (value, value))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _environment(args, workdir: Path) -> dict:
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(workdir),
        "MPLCONFIGDIR": str(workdir / ".matplotlib"),
        "MPLBACKEND": "Agg",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        # One thread each: fair to the other submissions graded at the same time.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        # joblib (under scikit-learn, OpenDP) probes for semaphores, which the sandbox has
        # none of, and warns on stderr on first import; a warning in a test cell costs it its
        # points. Serial is what it would fall back to anyway.
        "JOBLIB_MULTIPROCESSING": "0",
        "SSCITY_SANDBOX": "none" if args.no_sandbox else "bubblewrap",
    }
    for item in args.env:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def _prepare(args, workdir: Path, uid: int | None) -> None:
    if args.font_cache and Path(args.font_cache).is_dir():
        (workdir / ".matplotlib").mkdir(exist_ok=True)
        for cached in Path(args.font_cache).glob("fontlist-*.json"):
            shutil.copyfile(cached, workdir / ".matplotlib" / cached.name)
    if uid is not None:
        for folder in [workdir, *(Path(p) for p in args.rw)]:
            for path in [folder, *folder.rglob("*")]:
                os.lchown(path, uid, uid)


def _bwrap(args, workdir: Path, env: dict, uid: int | None) -> list[str]:
    """The bwrap command line.

    As root, bwrap runs as root with no user namespace (root may reach a Python under
    /root), keeps only the right to change user, and ``setpriv`` then makes the command a
    plain user ``uid`` of its own with no capabilities and no way to gain any. As another
    user, bwrap maps that user to ``nobody`` in a new user namespace.
    """
    course_root = Path(args.course_root).resolve()
    out = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
           "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--clearenv"]
    if uid is None:
        out += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY), "--cap-drop", "ALL"]
    else:
        out += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    out += ["--ro-bind", "/usr", "/usr", *_system_links(), "--proc", "/proc", "--dev", "/dev",
            *(["--bind", str(Path(args.tmp).resolve()), "/tmp"] if args.tmp else
              ["--size", str(64 * 1024**2), "--tmpfs", "/tmp", "--chmod", "1777", "/tmp"])]
    readable = readable_paths(course_root) + [Path(p).resolve() for p in args.ro]
    writable = [workdir, *(Path(p).resolve() for p in [*args.rw, *args.shared])]
    # bwrap would create the folders above a mount point private to root (0700).
    above = sorted({parent for path in readable + writable for parent in path.parents
                    if parent != Path("/")} - set(readable + writable), key=lambda p: len(p.parts))
    for parent in above:
        out += ["--perms", "0755", "--dir", str(parent)]
    # /etc itself likewise, or the files of it bound below are unreachable (root-only /etc).
    out += ["--perms", "0755", "--dir", "/etc"]
    for name in _ETC:
        if (Path("/etc") / name).exists():
            out += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    for path in readable:
        out += ["--ro-bind", str(path), str(path)]
    for path in writable:
        out += ["--bind", str(path), str(path)]
    out += ["--chdir", str(Path(args.chdir).resolve() if args.chdir else workdir)]
    for key, value in env.items():
        out += ["--setenv", key, value]
    out.append("--")
    if uid is not None:
        setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        out += [setpriv, "--reuid", str(uid), "--regid", str(uid), "--clear-groups",
                "--no-new-privs", "--inh-caps=-all", "--"]
    return out


def _run(args) -> None:
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    argv = args.argv[1:] if args.argv and args.argv[0] == "--" else args.argv
    if not argv:
        raise SystemExit("sscity sandbox: give the command after --")
    env = _environment(args, workdir)
    uid = UID_BASE + os.getpid() if os.geteuid() == 0 else None
    _prepare(args, workdir, uid)
    if args.no_sandbox:
        full, cwd = argv, str(Path(args.chdir).resolve() if args.chdir else workdir)
    else:
        full, cwd = [*_bwrap(args, workdir, env, uid), *argv], None

    def demote():
        if uid is not None and args.no_sandbox:
            _become(uid)  # with a sandbox, setpriv does it inside
        _set_limits(args, uid is not None)

    # Inherited descriptors (the checker's channel) stay open across bwrap and the command.
    keep = tuple(int(fd) for fd in args.keep_fd)
    child = subprocess.Popen(full, env=env, cwd=cwd, preexec_fn=demote, pass_fds=keep,
                             start_new_session=args.no_sandbox)

    def forward(signum, _frame):
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    try:
        code = child.wait(timeout=args.wall)
    except subprocess.TimeoutExpired:
        _kill(child, args.no_sandbox)
        print(f"sscity sandbox: the process ran longer than {args.wall} s and was stopped",
              file=sys.stderr)
        code = 137
    if args.no_sandbox:
        _kill(child, True)  # whatever it left behind in its session
    sys.exit(code)


def _kill(child: subprocess.Popen, group: bool) -> None:
    try:
        if group:
            os.killpg(child.pid, signal.SIGKILL)
        else:
            child.kill()
    except (ProcessLookupError, PermissionError):
        pass
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sscity.course.sandbox")
    verbs = parser.add_subparsers(dest="verb", required=True)
    run = verbs.add_parser("run", help="run a command in the sandbox")
    run.add_argument("--workdir", required=True, help="the process's own folder (read-write)")
    run.add_argument("--course-root", required=True)
    run.add_argument("--rw", action="append", default=[], help="another read-write folder")
    run.add_argument("--ro", action="append", default=[], help="another read-only folder")
    run.add_argument("--shared", action="append", default=[],
                     help="a read-write folder whose owners stay as they are (its sub-folders "
                          "belong to other processes)")
    run.add_argument("--env", action="append", default=[], help="KEY=VALUE")
    run.add_argument("--chdir", default=None)
    run.add_argument("--tmp", default=None, help="a folder to be /tmp (shared with another process)")
    run.add_argument("--keep-fd", action="append", default=[])
    run.add_argument("--cpu", type=int, default=Limits.cpu_seconds)
    run.add_argument("--memory", type=int, default=Limits.memory_bytes)
    run.add_argument("--file-size", type=int, default=Limits.file_bytes)
    run.add_argument("--processes", type=int, default=Limits.processes)
    run.add_argument("--open-files", type=int, default=Limits.open_files)
    run.add_argument("--wall", type=int, default=Limits.wall_seconds)
    run.add_argument("--no-sandbox", action="store_true")
    run.add_argument("--font-cache", default=None)
    run.add_argument("argv", nargs=argparse.REMAINDER)
    verbs.add_parser("probe", help="print which isolation this machine gives")
    args = parser.parse_args(argv)
    if args.verb == "run":
        _run(args)
    else:
        found = isolation()
        print(found.level + ": " + found.description)
        for warning in found.warnings:
            print(warning)


if __name__ == "__main__":
    main()
