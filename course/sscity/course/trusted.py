"""Grade a notebook across a trust boundary: nbgrader's Execute step, replaced.

nbgrader runs every cell of a submission -- the student's answers *and* the tests -- in one
kernel, so code in an answer cell can reach the tests (rewrite them, swallow their errors,
patch what they call). :class:`TrustedExecute` takes the place of nbgrader's ``Execute``
preprocessor and keeps them apart:

* the student's cells run in the student's kernel, in an allow-list sandbox
  (:mod:`sscity.course.sandbox`) with a working folder of its own that no grader process
  reads or writes through;
* the test cells run in a separate trusted process, :mod:`sscity.course.checker`, in a
  sandbox of its own; setup cells (locked instructor cells) run in both, the checker's copy
  taken from the gradebook;
* what the tests need of the student's work crosses as plain data
  (:mod:`sscity.course.wire`), and the student's functions are called where they live,
  through one call channel per test cell (:mod:`sscity.course.agent`);
* for speed, a warm checker per chunk forks each notebook's checker
  (:class:`WarmChecker`), and the next notebook's kernel starts while the current one runs.

Everything else of nbgrader (restoring test cells, the gradebook, partial credit, late
penalties, feedback) stays as it is: this step only fills in the outputs of the cells.
Configure it in ``nbgrader_config.py``::

    c.Autograde.autograde_preprocessors = ["sscity.course.trusted.TrustedExecute", ...]
    c.TrustedExecute.settings = {"course_root": ..., "scratch": ..., ...}
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import datetime
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Dict

from . import checker as channel
from .sandbox import UID_BASE, Limits, command, readable_paths, system_paths

__all__ = ["NotebookRun", "TrustedExecute", "WarmChecker", "autograde_config"]

_MAX_KERNEL_OUTPUT = 4 * 1024**2  # bytes of student output kept per notebook
_SERVICE_MARK = "sscity.platform"


def _is_test(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


class TrustedExecute(NbGraderPreprocessor):
    """nbgrader's execution step with the tests in a trusted process of their own."""

    settings = Dict(default_value={}, help="course_root, scratch, limits, cell_timeout, "
                                           "student_timeout, sandbox, font_cache, notebooks, "
                                           "release_root, keep, warm_checker (False: a fresh "
                                           "checker per notebook)").tag(config=True)

    def preprocess(self, nb, resources):
        from .checker import warm_code

        setup = _setup_sources(resources)
        imports = warm_code(list(setup.values()))
        info = resources.get("nbgrader", {})
        warm = WarmChecker.shared(self.settings, f"{info.get('assignment')}/{info.get('notebook')}",
                                  imports, lambda: _in_release_order(self.settings, info, setup),
                                  log=self.log)
        needs_broker = any(_SERVICE_MARK in "".join(c.source) for c in nb.cells if c.cell_type == "code")
        run = _Spare.take(self.settings, needs_broker, warm)
        if run is None:
            run = NotebookRun(self.settings, log=self.log, warm=warm)
            run.prepare(needs_broker, imports)
        # The next notebook's kernel starts while this one runs (the cores are otherwise idle
        # while the grader waits on a kernel); not after a chunk's last notebook.
        if _Spare.seen(self.settings) < int(self.settings.get("notebooks", 1)):
            _Spare.start(self.settings, self.log, warm, needs_broker, imports)
        with run:
            run.execute(nb, setup)
            failure, notices = run.kernel_failure, run.notices
        if (failure or notices) and self.settings.get("scratch"):
            # nbgrader clears notebook metadata later on: the grader reads this file instead.
            info = resources.get("nbgrader", {})
            record = {"student": info.get("student"), "notebook": info.get("notebook"), "why": failure,
                      "notices": notices}
            with open(Path(self.settings["scratch"]) / "kernel-failures.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        return nb, resources


def autograde_config(settings: dict) -> str:
    """Lines for ``nbgrader_config.py``: ``nbgrader autograde`` with :class:`TrustedExecute`
    in place of nbgrader's ``Execute``, the rest of its steps unchanged."""
    return (
        "\n# Added by sscity: the tests run in a trusted process of their own\n"
        "c.Autograde.autograde_preprocessors = [\n"
        "    'sscity.course.trusted.TrustedExecute',\n"
        "    'nbgrader.preprocessors.IgnorePattern',\n"
        "    'nbconvert.preprocessors.ClearMetadataPreprocessor',\n"
        "    'nbgrader.preprocessors.LimitOutput',\n"
        "    'nbgrader.preprocessors.SaveAutoGrades',\n"
        "    'nbgrader.preprocessors.AssignLatePenalties',\n"
        "    'nbgrader.preprocessors.CheckCellMetadata',\n"
        "]\n"
        f"c.TrustedExecute.settings = {settings!r}\n"
    )


def _in_release_order(settings: dict, info: dict, setup: dict[str, str]) -> list[list[str]]:
    """[grade_id, source] of the setup cells in the order of the released notebook."""
    release_root = settings.get("release_root") or settings["course_root"]
    folder = Path(release_root) / "modules" / str(info.get("assignment"))
    path = folder / f"{info.get('notebook')}.ipynb"
    try:
        release = nbformat.read(path, as_version=4)
    except (OSError, ValueError):
        return []
    order = [c.metadata.get("nbgrader", {}).get("grade_id") for c in release.cells]
    return [[gid, setup[gid]] for gid in order if gid in setup]


def _setup_sources(resources) -> dict[str, str]:
    """grade_id -> source of the locked, ungraded code cells of the gradebook's notebook."""
    from nbgrader.api import Gradebook, MissingEntry

    info = resources.get("nbgrader", {})
    found = {}
    with Gradebook(info["db_url"]) as gradebook:
        try:
            notebook = gradebook.find_notebook(info["notebook"], info["assignment"])
        except MissingEntry:
            return found
        graded = {c.name for c in notebook.grade_cells} | {c.name for c in notebook.solution_cells}
        for cell in notebook.source_cells:
            if cell.locked and cell.cell_type == "code" and cell.name not in graded:
                found[cell.name] = cell.source
    return found


class _Spare:
    """The next notebook's run, prepared in a thread while the current notebook runs."""

    _runs: dict = {}
    _counts: dict = {}

    @classmethod
    def seen(cls, settings: dict) -> int:
        """Count this notebook; how many this grading process has seen, this one included."""
        key = settings.get("scratch")
        cls._counts[key] = cls._counts.get(key, 0) + 1
        return cls._counts[key]

    @classmethod
    def start(cls, settings, log, warm, needs_broker: bool, imports: str) -> None:
        run = NotebookRun(settings, log=log, warm=warm)
        thread = threading.Thread(target=run.prepare, args=(needs_broker, imports), daemon=True)
        thread.start()
        cls._runs[settings.get("scratch")] = (run, thread, needs_broker)
        atexit.register(run.close)

    @classmethod
    def take(cls, settings: dict, needs_broker: bool, warm: WarmChecker | None) -> NotebookRun | None:
        found = cls._runs.pop(settings.get("scratch"), None)
        if found is None:
            return None
        run, thread, had_broker = found
        thread.join()
        if had_broker != needs_broker or run.warm is not warm or run.kernel_failure or run.km is None \
                or not run.km.is_alive():
            run.close()
            return None
        return run


class _Fork:
    """A checker forked by the warm checker: stopped through it."""

    def __init__(self, warm: WarmChecker, pid: int):
        self.warm, self.pid, self.stopped = warm, pid, False

    def poll(self):
        return 1 if self.stopped or not self.warm.alive() else None

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                self.warm.request({"op": "kill", "pid": self.pid})


class WarmChecker:
    """A checker that imported the setup cells' modules once and forks one per notebook.

    Each fork confines itself with Landlock (:mod:`sscity.course.landlock`) to its own
    notebook's folders before it reads anything of the student's, so sharing one sandbox
    among the notebooks of a chunk gives the forks no view of each other. Where Landlock is
    missing, the grader starts a fresh sandboxed checker per notebook instead (slower).
    """

    _shared: dict = {}

    def __init__(self, settings: dict, imports: str, setup: list | None = None, log=None):
        from .landlock import abi_version

        self.log = log
        self.process = self.sock = None
        self.pre_ran: set[str] = set()
        self.waiting = False
        self.landlock = abi_version()
        if self.landlock < 1:
            return
        scratch = Path(settings["scratch"])
        scratch.mkdir(parents=True, exist_ok=True)
        scratch.chmod(0o755)  # bwrap, root without its file rights as root, must reach into it
        # Beside the scratch folder, not in it: the scratch bind would cover it.
        self.home = Path(tempfile.mkdtemp(prefix="warm-checker-", dir=scratch.parent))
        self.home.chmod(0o755)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        os.set_inheritable(theirs.fileno(), True)
        argv = [sys.executable, "-I", "-m", "sscity.course.checker", "--zygote", str(theirs.fileno())]
        limits = Limits(**{**settings.get("limits", {}), "wall_seconds": 24 * 3600})
        full = command(argv, workdir=self.home, course_root=Path(settings["course_root"]), shared=[scratch],
                       env={"NBGRADER_EXECUTION": "autograde",
                            # no allocator thread in the process that forks
                            "JE_ARROW_MALLOC_CONF": "background_thread:false",
                            # a setup cell that needs the notebook's broker fails here, and
                            # is run by each fork instead
                            "SSCITY_BROKER_URL": "unix:no-broker-in-the-warm-checker"},
                       limits=limits, sandbox=bool(settings.get("sandbox", True)),
                       font_cache=Path(settings["font_cache"]) if settings.get("font_cache") else None,
                       keep_fds=(theirs.fileno(),))
        self.process = subprocess.Popen(full, pass_fds=(theirs.fileno(),), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        theirs.close()
        self.sock = ours
        self.uid = UID_BASE + self.process.pid if os.geteuid() == 0 else None
        # Imports and setup cells run while the first kernel starts; read at the first fork.
        self.sock.settimeout(30)
        socket.send_fds(self.sock, [json.dumps({"op": "warm", "code": imports, "setup": setup or []})
                                    .encode("utf-8")], [])
        self.waiting = True

    def _ready(self) -> None:
        if not self.waiting:
            return
        self.waiting = False
        try:
            self.sock.settimeout(300)
            data = self.sock.recv(1 << 16)
            reply = json.loads(data) if data else {"errors": ["the warm checker stopped"]}
        except (OSError, ValueError) as err:
            reply = {"errors": [str(err)]}
        self.landlock = int(reply.get("landlock") or 0)
        self.pre_ran = set(reply.get("pre_ran") or [])
        if self.landlock < 1 or int(reply.get("threads") or 1) > 1:
            if self.log:
                self.log.warning("the warm checker cannot fork safely here (Landlock %s, %s threads, "
                                 "%s): a fresh checker per notebook", self.landlock, reply.get("threads"),
                                 reply.get("errors"))
            self.close()

    @classmethod
    def shared(cls, settings: dict, notebook: str, imports: str, setup: Callable[[], list],
               log=None) -> WarmChecker | None:
        """The warm checker of this grading process and notebook, started at its first use
        (``setup`` gives the setup cells to pre-run, asked for only then)."""
        if not settings.get("warm_checker", True) or not settings.get("scratch"):
            return None
        key = (settings["scratch"], notebook)
        warm = cls._shared.get(key)
        if warm is None:
            warm = cls._shared[key] = cls(settings, imports, setup(), log)
            atexit.register(warm.close)
        return warm if warm.alive() else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def request(self, message: dict, fds: tuple[int, ...] = (), timeout: float = 30) -> dict:
        if not self.alive():
            raise RuntimeError("the warm checker stopped")
        self.sock.settimeout(timeout)
        socket.send_fds(self.sock, [json.dumps(message).encode("utf-8")], list(fds))
        data = self.sock.recv(1 << 16)
        if not data:
            raise RuntimeError("the warm checker stopped")
        return json.loads(data)

    def fork(self, message: dict, fd: int) -> int:
        self._ready()
        reply = self.request(message, (fd,))
        if "pid" not in reply:
            raise RuntimeError(str(reply.get("error", "no fork")))
        return int(reply["pid"])

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.process is not None:
            _stop(self.process)
            self.process = None
            shutil.rmtree(self.home, ignore_errors=True)


class KernelGone(Exception):
    """The student's kernel died, was stopped, or stopped answering."""


class NotebookRun:
    """One notebook: the student's kernel, the checker and any service, then cleaned up."""

    def __init__(self, settings: dict, log=None, warm: WarmChecker | None = None):
        self.settings = settings
        self.log = log
        self.warm = warm
        self.limits = Limits(**settings.get("limits", {}))
        self.cell_timeout = float(settings.get("cell_timeout", 60))
        self.deadline = time.monotonic() + float(settings.get("student_timeout", 300))
        scratch = Path(settings.get("scratch") or tempfile.gettempdir())
        scratch.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="run-", dir=scratch))
        self.work = self.root / "work"
        self.ipc = self.root / "ipc"
        self.home = self.root / "checker"
        self.service = self.root / "service"
        # /tmp of both the kernel and the checker: a test may hand the student's function a
        # temporary path and read back what it wrote there.
        self.tmp = self.root / "tmp"
        for folder in (self.work, self.ipc, self.home, self.service, self.tmp):
            folder.mkdir()
        self.tmp.chmod(0o1777)
        if warm is not None:
            # The warm checker's forks reach this run through the scratch folder, as its user.
            self.root.chmod(0o755)
            if warm.uid is not None:
                os.chown(self.home, warm.uid, warm.uid)
        self.course_root = Path(settings["course_root"])
        self.sandbox = bool(settings.get("sandbox", True))
        self.font_cache = settings.get("font_cache")
        self.env: dict[str, str] = {"NBGRADER_EXECUTION": "autograde"}
        self.km = self.kc = None
        self.checker = self.checker_sock = None
        self.listener = None
        self.agent: tuple[socket.socket, str] | None = None
        self.broker = None
        self.kernel_failure: str | None = None
        self.output_bytes = 0
        self.setup: dict[str, str] = {}
        self.test_count = 0
        self.notices: list[str] = []
        self.warmup: str | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self.agent is not None:
            self.agent[0].close()
        if self.listener is not None:
            self.listener.close()
        if self.checker_sock is not None:
            with contextlib.suppress(OSError):
                channel.send(self.checker_sock, {"op": "quit"})
            self.checker_sock.close()
        for process in (self.checker, self.broker):
            if process is not None:
                _stop(process)
        if self.kc is not None:
            with contextlib.suppress(Exception):
                self.kc.stop_channels()
        if self.km is not None:
            with contextlib.suppress(Exception):
                self.km.shutdown_kernel(now=True)
            with contextlib.suppress(Exception):
                self.km.cleanup_resources()
        if not self.settings.get("keep"):
            shutil.rmtree(self.root, ignore_errors=True)

    def _sandboxed(self, argv, *, workdir, rw=(), ro=(), chdir=None, keep_fds=(), flags=(), limits=None):
        return command(argv, workdir=workdir, course_root=self.course_root, rw=list(rw), ro=list(ro),
                       env=self.env, limits=limits or self.limits, sandbox=self.sandbox,
                       font_cache=Path(self.font_cache) if self.font_cache else None,
                       chdir=chdir, keep_fds=keep_fds, python_flags=flags, tmp=self.tmp)

    def start_broker(self) -> None:
        """An NGSI-LD broker for this notebook alone, on a Unix socket (no network needed)."""
        socket_path = self.service / "b"  # short: a Unix socket path has at most 107 bytes
        argv = [sys.executable, "-I", "-m", "sscity", "platform", "serve", "--uds", str(socket_path)]
        self.broker = subprocess.Popen(
            self._sandboxed(argv, workdir=self.root / "broker-home", rw=[self.service]),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        waited = time.monotonic() + 30
        while not socket_path.exists():
            if self.broker.poll() is not None or time.monotonic() > waited:
                raise RuntimeError("the notebook's NGSI-LD broker did not start: "
                                   + (self.broker.stderr.read() or b"").decode(errors="replace")[-500:])
            time.sleep(0.05)
        self.env["SSCITY_BROKER_URL"] = f"http+unix://{socket_path}"

    def start_kernel(self) -> None:
        from jupyter_client import KernelManager
        from jupyter_client.kernelspec import KernelSpec

        # The socket the tests' calls come through, made before any student code can run
        # (a student may unlink or replace it later: that only cuts off their own answers).
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Named no longer than the kernel's own sockets (ipc/k-1, ...): a Unix socket path
        # has at most 107 bytes, and a deep grading folder must not fail here first.
        self.listener.bind(str(self.ipc / "a"))
        (self.ipc / "a").chmod(0o777)  # the kernel runs as another user
        self.listener.listen(1)

        kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                  "--HistoryManager.hist_file=:memory:"]
        ro = [self.service] if self.broker else []
        # The tmp folder is /tmp and also at its own path, the path a warm checker's fork uses.
        # A kernel may wait for its notebook while the one before runs: its backstop wall
        # clock allows for that; the notebook's own clock (self.deadline) starts at execute.
        backstop = dataclasses.replace(self.limits, wall_seconds=2 * self.limits.wall_seconds + 60)
        argv = self._sandboxed(kernel, workdir=self.work, rw=[self.ipc, self.tmp], ro=ro, limits=backstop)
        km = KernelManager(transport="ipc", ip=str(self.ipc / "k"),
                           connection_file=str(self.ipc / "kernel.json"))
        km._kernel_spec = KernelSpec(argv=argv, display_name="sscity sandbox", language="python",
                                     interrupt_mode="message")
        km.start_kernel(cwd=str(self.work), start_new_session=True)
        self.km = km
        self.kc = km.client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=60)
        except RuntimeError as err:
            self.kernel_failure = f"the kernel did not start: {err}"

    def start_checker(self) -> None:
        if self.warm is not None and self.warm.alive():
            ours, theirs = socket.socketpair()
            readable = [*readable_paths(self.course_root), *system_paths(), self.warm.home, self.work,
                        *([self.service] if self.broker else [])]
            message = {"op": "fork", "readable": [str(p) for p in readable],
                       "writable": [str(self.tmp), str(self.home)], "tmp": str(self.tmp),
                       "chdir": str(self.work),
                       "env": {**self.env, "HOME": str(self.home), "TMPDIR": str(self.tmp)}}
            try:
                pid = self.warm.fork(message, theirs.fileno())
            except (OSError, ValueError, RuntimeError) as err:
                if self.log:
                    self.log.warning("warm checker failed (%s); starting a fresh one", err)
                ours.close()
            else:
                self.checker = _Fork(self.warm, pid)
                self.checker_sock = ours
                return
            finally:
                theirs.close()
        ours, theirs = socket.socketpair()
        os.set_inheritable(theirs.fileno(), True)
        argv = [sys.executable, "-I", "-m", "sscity.course.checker", str(theirs.fileno())]
        ro = [self.work] + ([self.service] if self.broker else [])
        full = self._sandboxed(argv, workdir=self.home, ro=ro, chdir=self.work,
                               keep_fds=(theirs.fileno(),))
        self.checker = subprocess.Popen(full, pass_fds=(theirs.fileno(),), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        theirs.close()
        self.checker_sock = ours

    # -- running --------------------------------------------------------------------------
    def prepare(self, needs_broker: bool, imports: str = "") -> None:
        """Start the broker (if the notebook uses one) and the kernel, which imports the setup
        cells' modules (into ``sys.modules`` only, not the notebook's namespace)."""
        try:
            if needs_broker:
                self.start_broker()
            self.start_kernel()
            if imports and not self.kernel_failure:
                self.warmup = self.kc.execute(f"exec({imports!r}, {{}})", silent=True,
                                              store_history=False, allow_stdin=False)
        except Exception as err:  # noqa: BLE001 - reported as the notebook's kernel failure
            self.kernel_failure = self.kernel_failure or f"the kernel did not start: {err}"

    def execute(self, nb, setup: dict[str, str]) -> None:
        self.setup = setup
        # The notebook's clock starts now, however early its kernel was started.
        self.deadline = time.monotonic() + float(self.settings.get("student_timeout", 300))
        if self.warmup and not self.kernel_failure:
            with contextlib.suppress(KernelGone):
                if not self._until_idle(self.warmup, min(self.cell_timeout, self._left()),
                                        lambda *_: None, "the kernel died while it started"):
                    self._timed_out([], self.cell_timeout)
        last_test = max((i for i, c in enumerate(nb.cells) if _is_test(c)), default=-1)
        # Setup cells wait to run in the checker until a test needs it, so the warm checker
        # prepares while the kernel runs the student's first cells; a setup cell that may
        # read a student's name runs before the next student cell, as in the notebook.
        in_order = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
        self_contained = _self_contained({gid: setup[gid] for gid in in_order if gid in setup})
        pending: list[str] = []
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            cell.outputs = []
            cell.execution_count = None
            meta = cell.metadata.get("nbgrader", {})
            started = _now()
            if _is_test(cell):
                self._flush_setup(pending)
                cell.outputs = self.run_test(cell.source)
                self.test_count += 1
                cell.execution_count = self.test_count
                _timed(cell, started)
                continue
            if any(gid not in self_contained for gid in pending):
                self._flush_setup(pending)
            self.run_student(cell, index)
            _timed(cell, started)
            gid = meta.get("grade_id")
            # A setup cell after the last test can change no test's outcome.
            if meta.get("locked") and gid in setup and index < last_test:
                pending.append(gid)

    def _flush_setup(self, pending: list[str]) -> None:
        """Start the checker if need be; run the pending setup cells it has not run yet."""
        if self.checker is None:
            self.start_checker()
        # Setup cells the warm checker already ran are in the fork's namespace from the start.
        pre_ran = self.warm.pre_ran if isinstance(self.checker, _Fork) else set()
        for gid in pending:
            if gid not in pre_ran:
                self.run_checker("setup", self.setup[gid])
        pending.clear()

    def _left(self) -> float:
        return self.deadline - time.monotonic()

    def run_student(self, cell, index: int) -> None:
        if self.kernel_failure:
            cell.outputs = [_error("KernelStopped", self.kernel_failure)]
            return
        try:
            outputs, count = self._kernel_execute(cell.source, store_history=True)
        except KernelGone as gone:
            cell.outputs = [_error("KernelStopped", str(gone))]
            return
        cell.outputs = outputs
        cell.execution_count = count
        if any(o.get("ename") == "MemoryError" for o in outputs):
            self.notices.append(f"cell {index} ran out of memory (MemoryError)")

    def _kernel_execute(self, code: str, store_history: bool, limit: float | None = None):
        """Run ``code`` in the student's kernel; return (outputs, execution count)."""
        if self.kernel_failure:
            raise KernelGone(self.kernel_failure)
        timeout = min(limit or self.cell_timeout, self._left())
        if timeout <= 0:
            limit_s = self.settings.get("student_timeout", 300)
            self._stop_kernel(f"the notebook ran longer than its {limit_s} s")
            raise KernelGone(self.kernel_failure)
        msg_id = self.kc.execute(code, store_history=store_history, allow_stdin=False,
                                 stop_on_error=False)
        outputs: list = []
        count = None

        def take(kind, content, msg):
            nonlocal outputs, count
            if kind == "execute_input":
                count = content.get("execution_count")
            elif kind == "clear_output":
                outputs = []
            elif kind in ("stream", "display_data", "execute_result", "error"):
                self._keep(outputs, msg)

        if not self._until_idle(msg_id, timeout, take,
                                "the kernel died (it may have run out of memory or been stopped)"):
            return self._timed_out(outputs, timeout), count
        return outputs, count

    def _until_idle(self, msg_id: str, timeout: float, take, died: str) -> bool:
        """Pass each output of request ``msg_id`` to ``take(kind, content, msg)`` until the
        kernel is idle again (True) or ``timeout`` runs out (False); a dead kernel raises."""
        until = time.monotonic() + max(timeout, 0)
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return False
            try:
                msg = self.kc.get_iopub_msg(timeout=min(left, 1.0))
            except queue.Empty:
                if not self.km.is_alive():
                    self._stop_kernel(died)
                    raise KernelGone(self.kernel_failure) from None
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content.get("execution_state") == "idle":
                self._drain_shell()
                return True
            take(kind, content, msg)

    def _keep(self, outputs: list, msg) -> None:
        size = len(str(msg["content"]))
        if msg["msg_type"] != "error" and self.output_bytes + size > _MAX_KERNEL_OUTPUT:
            return
        self.output_bytes += size
        output = nbformat.v4.output_from_msg(msg)
        if output.output_type == "stream" and outputs and outputs[-1].get("output_type") == "stream" \
                and outputs[-1].get("name") == output.name:
            outputs[-1].text += output.text
        else:
            outputs.append(output)

    def _drain_shell(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self.kc.get_shell_msg(timeout=0.01)

    def _timed_out(self, outputs: list, timeout: float) -> list:
        self.notices.append(f"a cell ran longer than the {timeout:.0f} s time limit and was interrupted")
        outputs.append(_error("CellTimeoutError", f"the cell ran longer than {timeout:.0f} s and was "
                                                  "interrupted"))
        with contextlib.suppress(Exception):
            self.km.interrupt_kernel()
        # A kernel that ignores the interrupt is stopped: later cells must not wait on it.
        until = time.monotonic() + 5
        while time.monotonic() < until:
            try:
                msg = self.kc.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                continue
            if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                self._drain_shell()
                return outputs
        self._stop_kernel("the kernel did not stop when interrupted")
        return outputs

    def _stop_kernel(self, why: str) -> None:
        self.kernel_failure = why
        with contextlib.suppress(Exception):
            self.km.shutdown_kernel(now=True)

    # -- the student's side of a test: one agent per test cell ---------------------------
    def _open_agent(self) -> None:
        """Have the kernel run the agent's loop; wait for it to connect to our socket."""
        path = self.ipc / "a"
        if self.listener is None:
            raise KernelGone("the grader has no socket for the tests' calls")
        code = ("__import__('sscity.course.agent', fromlist=['agent'])"
                f".serve({str(path)!r}, get_ipython().user_ns)")
        msg_id = self.kc.execute(code, silent=False, store_history=False, allow_stdin=False,
                                 stop_on_error=False)
        until = time.monotonic() + min(self.cell_timeout, self._left())
        errors: list[str] = []
        while True:
            self.listener.settimeout(0.2)
            try:
                conn, _ = self.listener.accept()
                break
            except TimeoutError:
                pass
            self._raise_if_dead()
            if self._idle_seen(msg_id, errors):
                raise KernelGone((errors or ["the student's kernel did not answer the tests"])[-1])
            if time.monotonic() > until:
                self._timed_out([], self.cell_timeout)
                raise KernelGone("the student's kernel did not answer the tests in time")
        self.agent = (conn, msg_id)

    def _idle_seen(self, msg_id: str, errors: list[str]) -> bool:
        """Read what the kernel published so far; True once request ``msg_id`` is done."""
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=0)
            except queue.Empty:
                return False
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "error":
                errors.append(f"{content.get('ename')}: {content.get('evalue')}"[:300])
            elif kind == "status" and content.get("execution_state") == "idle":
                self._drain_shell()
                return True

    def _close_agent(self) -> None:
        """Tell the agent the test is over and wait for the kernel to be idle again."""
        if self.agent is None:
            return
        conn, msg_id = self.agent
        self.agent = None
        with contextlib.suppress(OSError):
            channel.send(conn, {"op": "done"})
        conn.close()
        if not self.kernel_failure:
            self._agent_done(msg_id)

    def _agent_done(self, msg_id: str) -> None:
        """Wait (briefly) for the agent's request to end; interrupt a kernel that does not."""
        with contextlib.suppress(KernelGone):
            if not self._until_idle(msg_id, min(10.0, max(self._left(), 0.1)), lambda *_: None,
                                    "the kernel died after a test called the student's code"):
                self._timed_out([], 10)

    def _raise_if_dead(self) -> None:
        if not self.km.is_alive():
            self._stop_kernel("the kernel died while a test called the student's code")
            raise KernelGone(self.kernel_failure)

    def _ask_kernel(self, request: dict, payload: bytes) -> tuple[bool, bytes]:
        """One request of the checker, answered by the agent; its frame, as untrusted bytes."""
        op = request.get("op")
        if op not in ("fetch", "call", "getattr"):
            raise KernelGone(f"unknown request {op!r}")
        if op in ("fetch", "getattr") and not str(request.get("name", "")).isidentifier():
            raise KernelGone("bad name")
        if self.kernel_failure:
            raise KernelGone(self.kernel_failure)
        if self.agent is None:
            self._open_agent()
        conn, msg_id = self.agent
        timeout = min(self.cell_timeout, self._left())
        until = time.monotonic() + timeout
        try:
            conn.settimeout(max(0.1, timeout))
            channel.send(conn, {k: request[k] for k in ("op", "name", "handle") if k in request},
                         payload)
            while True:
                conn.settimeout(1.0)
                try:
                    reply, frame = channel.recv(conn)
                    break
                except TimeoutError:
                    self._raise_if_dead()
                    if time.monotonic() > until:
                        raise
        except TimeoutError:
            self.agent = None
            conn.close()
            self._timed_out([], timeout)
            raise KernelGone(f"the student's code did not answer within {timeout:.0f} s") from None
        except (EOFError, OSError, ValueError) as err:
            self.agent = None
            conn.close()
            self._raise_if_dead()
            # The student's code broke its own agent (closed the socket, wrote garbage):
            # this test gets no answer; the next request starts a fresh agent.
            self._agent_done(msg_id)
            raise KernelGone(f"the student's kernel broke off its answer ({type(err).__name__})") from None
        return bool(reply.get("ok")), frame

    def run_checker(self, op: str, code: str) -> list:
        """Run a setup or test cell in the checker, answering its requests for the student's values."""
        if self.checker is None or self.checker.poll() is not None:
            return [_error("CheckerStopped", "the test process stopped; this test could not run")]
        try:
            return self._run_checker(op, code)
        finally:
            self._close_agent()

    def _run_checker(self, op: str, code: str) -> list:
        sock = self.checker_sock
        channel.send(sock, {"op": op, "code": code})
        until = time.monotonic() + self.cell_timeout + 30
        while True:
            sock.settimeout(max(0.1, until - time.monotonic()))
            try:
                message, payload = channel.recv(sock)
            except (TimeoutError, EOFError, OSError, ValueError) as err:
                _stop(self.checker)
                return [_error("CheckerStopped", f"the test process stopped ({type(err).__name__}); "
                                                 "this test could not finish")]
            if message.get("op") == "done":
                return [nbformat.from_dict(o) for o in message.get("outputs", [])]
            try:
                ok, frame = self._ask_kernel(message, payload)
                channel.send(sock, {"op": "value", "ok": ok}, frame)
            except KernelGone as gone:
                channel.send(sock, {"op": "value", "ok": False, "failure": str(gone)})

    def run_test(self, code: str) -> list:
        return self.run_checker("test", code)


def _self_contained(setup: dict[str, str]) -> set[str]:
    """Setup cells that read no name but built-ins and what earlier setup cells (or they
    themselves) bind: their result in the checker cannot depend on when, among the
    student's cells, they run."""
    import builtins

    from .notebooks import cell_names

    bound: set[str] = set()
    found = set()
    for gid, source in setup.items():
        names = cell_names(source)
        if names is None:
            continue
        bound |= names[0]
        if all(name in bound or hasattr(builtins, name) for name in names[1]):
            found.add(gid)
    return found


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def _timed(cell, started: str) -> None:
    """Cell timing in nbclient's form (what ``sscity course verify`` reports)."""
    cell.metadata["execution"] = {"iopub.execute_input": started, "shell.execute_reply": _now()}


def _error(name: str, message: str):
    return nbformat.v4.new_output("error", ename=name, evalue=message, traceback=[f"{name}: {message}"])


def _stop(process) -> None:
    if isinstance(process, _Fork):
        process.stop()
        return
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, 15)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, 9)
            process.wait()

