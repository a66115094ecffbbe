"""Run a student's kernel in a sandbox.

nbgrader starts every kernel through a kernelspec; the course's grading writes one whose
command is this module: ``python -m sscity.course.sandbox kernel ...``. It runs *outside*
the sandbox just long enough to

1. copy the connection file into the kernel's working folder (the student's own folder);
2. set resource limits (CPU seconds, address space, file size, processes, open files);
3. replace itself with ``bwrap`` (bubblewrap) and the kernel: new user namespace in which
   the kernel is uid 65534 (``nobody``) with no capabilities, new PID, IPC, UTS and
   **network** namespaces; the whole file system read-only; the course repository, the
   grading folders, ``/root``, ``/home`` and ``/tmp`` hidden behind empty tmpfs, password
   hashes masked; only the Python installation, the ``sscity`` package, ``datasets/``, the
   student's folder (read-write) and the kernel's socket folder mounted back.

The kernel talks to nbgrader over Unix sockets (``KernelManager.transport = "ipc"``), so it
needs no network at all. Where bubblewrap is missing or does not work, grading still runs
with the resource limits alone, and :func:`isolation` says so loudly.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Limits", "Isolation", "build_font_cache", "isolation", "kernelspec", "main"]

NOBODY = 65534
KERNEL_NAME = "sscity-sandbox"


@dataclass(frozen=True)
class Limits:
    """Resource limits of one student's kernel."""

    cpu_seconds: int = 300
    memory_bytes: int = 4 * 1024**3
    file_bytes: int = 64 * 1024**2
    processes: int = 4096
    open_files: int = 1024
    wall_seconds: int = 300


@dataclass(frozen=True)
class Isolation:
    """Which isolation this machine gives a student's kernel."""

    level: str  # "bubblewrap" or "limits-only"
    description: str
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def isolated(self) -> bool:
        return self.level == "bubblewrap"


def _user_options() -> list[str]:
    options = ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY)]
    if os.geteuid() == 0:
        options += ["--cap-drop", "ALL"]
    return options


def _bwrap_works() -> tuple[bool, str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False, "bubblewrap (bwrap) is not installed"
    command = [bwrap, "--ro-bind", "/", "/", "--unshare-all", *_user_options(),
               "--die-with-parent", "--proc", "/proc", "--dev", "/dev", "true"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as err:
        return False, f"bwrap failed to start: {err}"
    if done.returncode != 0:
        return False, f"bwrap does not work here: {done.stderr.strip()[:200]}"
    return True, ""


def isolation() -> Isolation:
    """Probe the machine: bubblewrap as an unprivileged user, or resource limits only."""
    ok, why = _bwrap_works()
    if ok:
        return Isolation(
            "bubblewrap",
            "bubblewrap sandbox per submission, as uid 65534 (nobody) in its own user "
            "namespace with no capabilities: no network (own network "
            "namespace), own PID/IPC namespaces, read-only file system, course repository and "
            "other submissions hidden, writable only in its own folder; CPU, memory, file-size "
            "and process limits.",
        )
    return Isolation(
        "limits-only",
        "NO ISOLATION: student code runs with the grader's rights; only CPU, memory, "
        "file-size and process limits apply.",
        (f"WARNING: {why}. Student code can read the course repository and other "
         "submissions and reach the network. Install bubblewrap (Debian: apt-get install "
         "bubblewrap) and grade again.",),
    )


def kernelspec(folder: Path, course_root: Path, hidden: list[Path], ipc_dir: Path,
               limits: Limits | None = None, sandbox: bool = True, font_cache: Path | None = None) -> Path:
    """Write the ``sscity-sandbox`` kernelspec under ``folder/kernels/`` and return its path.

    Point ``JUPYTER_PATH`` at ``folder`` and set ``ExecutePreprocessor.kernel_name`` to
    ``sscity-sandbox`` for nbgrader to use it. ``font_cache`` is a folder holding
    matplotlib's font list (see :func:`build_font_cache`), copied to each kernel so that
    matplotlib does not rebuild it for every student.
    """
    limits = limits or Limits()
    spec_dir = Path(folder) / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "sscity.course.sandbox", "kernel",
            "--course-root", str(course_root), "--ipc-dir", str(ipc_dir),
            "--cpu", str(limits.cpu_seconds), "--memory", str(limits.memory_bytes),
            "--file-size", str(limits.file_bytes), "--processes", str(limits.processes),
            "--open-files", str(limits.open_files), "--wall", str(limits.wall_seconds)]
    for path in hidden:
        argv += ["--hide", str(path)]
    if not sandbox:
        argv.append("--no-sandbox")
    if font_cache is not None:
        argv += ["--font-cache", str(font_cache)]
    argv += ["--connection-file", "{connection_file}"]
    spec = {
        "argv": argv,
        "display_name": "Python 3 (sscity sandbox)",
        "language": "python",
        # Signals do not cross into the sandbox's PID namespace: interrupt by message.
        "interrupt_mode": "message",
        "metadata": {"debugger": False},
    }
    path = spec_dir / "kernel.json"
    path.write_text(json.dumps(spec, indent=1))
    return path


def build_font_cache(folder: Path) -> subprocess.Popen:
    """Start building matplotlib's font list in ``folder``; wait on the returned process.

    Each kernel has its own empty matplotlib folder, where matplotlib would otherwise scan
    every installed font again (about 0.2 s per student).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MPLCONFIGDIR=str(folder), MPLBACKEND="Agg")
    return subprocess.Popen([sys.executable, "-c", "import matplotlib.font_manager"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _python_paths() -> list[Path]:
    """Folders the kernel needs to read: the interpreter, its libraries, the environment."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent.parent}
    for entry in sys.path:
        if entry and Path(entry).is_dir():
            paths.add(Path(entry).resolve())
    return sorted(paths, key=lambda p: len(p.parts))


def _set_limits(args) -> None:
    for limit, value in ((resource.RLIMIT_CPU, args.cpu), (resource.RLIMIT_AS, args.memory),
                         (resource.RLIMIT_FSIZE, args.file_size),
                         (resource.RLIMIT_NPROC, args.processes),
                         (resource.RLIMIT_NOFILE, args.open_files)):
        resource.setrlimit(limit, (value, value))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))



def _kernel(args) -> None:
    workdir = Path.cwd().resolve()
    ipc_dir = Path(args.ipc_dir).resolve()
    connection = workdir / ".sscity-kernel.json"
    shutil.copyfile(args.connection_file, connection)
    if args.font_cache and Path(args.font_cache).is_dir():
        (workdir / ".matplotlib").mkdir(exist_ok=True)
        for cached in Path(args.font_cache).glob("fontlist-*.json"):
            shutil.copyfile(cached, workdir / ".matplotlib" / cached.name)
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
        "NBGRADER_EXECUTION": os.environ.get("NBGRADER_EXECUTION", "autograde"),
        "SSCITY_SANDBOX": "bubblewrap" if not args.no_sandbox else "limits-only",
    }
    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", str(connection),
              "--HistoryManager.hist_file=:memory:"]
    if args.no_sandbox:
        _set_limits(args)
        os.chdir(workdir)
        os.execve(sys.executable, kernel, env)

    course_root = Path(args.course_root).resolve()
    bwrap = ["bwrap", "--unshare-all", *_user_options(), "--die-with-parent", "--new-session",
             "--clearenv",
             "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
             "--size", str(64 * 1024**2), "--tmpfs", "/tmp"]
    # Empty, read-only folders over what the student must not see.
    hidden = ["/root", "/home", str(course_root), *(str(Path(h).resolve()) for h in args.hide)]
    for path in hidden:
        bwrap += ["--tmpfs", path]
    for secret in ("/etc/shadow", "/etc/gshadow"):
        if os.path.exists(secret):
            bwrap += ["--ro-bind", "/dev/null", secret]
    # Mount back what the kernel needs to read, then its own folders read-write.
    readable = _python_paths() + [course_root / "course", course_root / "datasets"]
    for path in readable:
        if path.exists():
            bwrap += ["--ro-bind", str(path), str(path)]
    bwrap += ["--bind", str(workdir), str(workdir), "--bind", str(ipc_dir), str(ipc_dir)]
    for path in hidden:
        bwrap += ["--remount-ro", path]
    bwrap += ["--chdir", str(workdir)]
    for key, value in env.items():
        bwrap += ["--setenv", key, value]
    command = [*bwrap, "--", *kernel]
    _set_limits(args)
    _run_with_deadline(command, args.wall)


def _run_with_deadline(command: list[str], wall_seconds: int) -> None:
    """Run the sandboxed kernel; kill it when it outlives ``wall_seconds``.

    nbgrader limits each cell, not a whole notebook: a notebook whose every cell hangs
    would hold a grading worker for (cells x cell timeout). Killing the kernel makes
    nbgrader report a dead kernel for this student and move on to the next.
    """
    import signal

    child = subprocess.Popen(command)

    def forward(signum, _frame):
        child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    try:
        code = child.wait(timeout=wall_seconds)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        print(f"sscity sandbox: the kernel ran longer than {wall_seconds} s and was stopped",
              file=sys.stderr)
        code = 137
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sscity.course.sandbox")
    verbs = parser.add_subparsers(dest="verb", required=True)
    kernel = verbs.add_parser("kernel", help="start an ipykernel inside the sandbox")
    kernel.add_argument("--connection-file", required=True)
    kernel.add_argument("--course-root", required=True)
    kernel.add_argument("--ipc-dir", required=True)
    kernel.add_argument("--hide", action="append", default=[])
    kernel.add_argument("--cpu", type=int, default=Limits.cpu_seconds)
    kernel.add_argument("--memory", type=int, default=Limits.memory_bytes)
    kernel.add_argument("--file-size", type=int, default=Limits.file_bytes)
    kernel.add_argument("--processes", type=int, default=Limits.processes)
    kernel.add_argument("--open-files", type=int, default=Limits.open_files)
    kernel.add_argument("--wall", type=int, default=Limits.wall_seconds)
    kernel.add_argument("--no-sandbox", action="store_true")
    kernel.add_argument("--font-cache", default=None)
    probe = verbs.add_parser("probe", help="print which isolation this machine gives")
    probe.set_defaults()
    args = parser.parse_args(argv)
    if args.verb == "kernel":
        _kernel(args)
    else:
        found = isolation()
        print(found.level + ": " + found.description)
        for warning in found.warnings:
            print(warning)


if __name__ == "__main__":
    main()
