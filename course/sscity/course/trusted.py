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
  (:mod:`sscity.course.wire`), and the student's functions are called where they live.

Everything else of nbgrader (restoring test cells, the gradebook, partial credit, late
penalties, feedback) stays as it is: this step only fills in the outputs of the cells.
Configure it in ``nbgrader_config.py``::

    c.Autograde.autograde_preprocessors = ["sscity.course.trusted.TrustedExecute", ...]
    c.TrustedExecute.settings = {"course_root": ..., "scratch": ..., ...}
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Dict

from . import checker as channel
from .agent import MIME
from .sandbox import Limits, command

__all__ = ["NotebookRun", "TrustedExecute"]

_MAX_KERNEL_OUTPUT = 4 * 1024**2  # bytes of student output kept per notebook
_SERVICE_MARK = "sscity.platform"


def _is_test(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


class TrustedExecute(NbGraderPreprocessor):
    """nbgrader's execution step with the tests in a trusted process of their own."""

    settings = Dict(default_value={}, help="course_root, scratch, limits, cell_timeout, "
                                           "student_timeout, sandbox, font_cache").tag(config=True)

    def preprocess(self, nb, resources):
        setup = _setup_sources(resources)
        with NotebookRun(self.settings, log=self.log) as run:
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


class KernelGone(Exception):
    """The student's kernel died, was stopped, or stopped answering."""


class NotebookRun:
    """One notebook: the student's kernel, the checker and any service, then cleaned up."""

    def __init__(self, settings: dict, log=None):
        self.settings = settings
        self.log = log
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
        self.course_root = Path(settings["course_root"])
        self.sandbox = bool(settings.get("sandbox", True))
        self.font_cache = settings.get("font_cache")
        self.env: dict[str, str] = {"NBGRADER_EXECUTION": "autograde"}
        self.km = self.kc = None
        self.checker = self.checker_sock = None
        self.broker = None
        self.kernel_failure: str | None = None
        self.output_bytes = 0
        self.setup: dict[str, str] = {}
        self.test_count = 0
        self.notices: list[str] = []

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
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

    def _sandboxed(self, argv, *, workdir, rw=(), ro=(), chdir=None, keep_fds=(), flags=()):
        return command(argv, workdir=workdir, course_root=self.course_root, rw=list(rw), ro=list(ro),
                       env=self.env, limits=self.limits, sandbox=self.sandbox,
                       font_cache=Path(self.font_cache) if self.font_cache else None,
                       chdir=chdir, keep_fds=keep_fds, python_flags=flags, tmp=self.tmp)

    def start_broker(self) -> None:
        """An NGSI-LD broker for this notebook alone, on a Unix socket (no network needed)."""
        socket_path = self.service / "broker.sock"
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

        kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                  "--HistoryManager.hist_file=:memory:"]
        ro = [self.service] if self.broker else []
        argv = self._sandboxed(kernel, workdir=self.work, rw=[self.ipc], ro=ro)
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
    def execute(self, nb, setup: dict[str, str]) -> None:
        self.setup = setup
        if any(_SERVICE_MARK in "".join(c.source) for c in nb.cells if c.cell_type == "code"):
            self.start_broker()
        self.start_kernel()
        self.start_checker()
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            cell.outputs = []
            cell.execution_count = None
            meta = cell.metadata.get("nbgrader", {})
            if _is_test(cell):
                cell.outputs = self.run_test(cell.source)
                self.test_count += 1
                cell.execution_count = self.test_count
                continue
            self.run_student(cell, index)
            gid = meta.get("grade_id")
            if meta.get("locked") and gid in setup:
                self.run_checker("setup", setup[gid])

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

    def _ask_kernel(self, code: str) -> tuple[bool, bytes]:
        """Run an agent call in the student's kernel; its frame, as untrusted bytes."""
        msg_id = self.kc.execute(code, silent=False, store_history=False, allow_stdin=False,
                                 stop_on_error=False)
        timeout = min(self.cell_timeout, self._left())
        found: list[tuple[bool, bytes]] = []
        errors: list[str] = []

        def take(kind, content, _msg):
            if kind == "display_data" and MIME in content.get("data", {}) and not found:
                ok = bool(content.get("metadata", {}).get(MIME, {}).get("ok"))
                try:
                    found.append((ok, base64.b64decode(content["data"][MIME], validate=True)))
                except (ValueError, TypeError):
                    errors.append("the student's kernel sent a malformed answer")
            elif kind == "error":
                errors.append(f"{content.get('ename')}: {content.get('evalue')}"[:300])

        if not self._until_idle(msg_id, timeout, take,
                                "the kernel died while a test called the student's code"):
            self._timed_out([], timeout)
            raise KernelGone(f"the student's code did not answer within {timeout:.0f} s")
        if not found:
            raise KernelGone((errors or ["the student's kernel gave no answer"])[-1])
        return found[0]

    def _agent_code(self, request: dict, payload: bytes) -> str:
        op = request.get("op")
        head = "__import__('sscity.course.agent', fromlist=['agent'])"
        if op == "fetch":
            name = str(request.get("name", ""))
            if not name.isidentifier():
                raise KernelGone("bad name")
            return f"{head}.export({name!r}, get_ipython().user_ns)"
        handle = int(request.get("handle", 0))
        if op == "call":
            return f"{head}.call({handle}, {base64.b64encode(payload).decode('ascii')!r})"
        if op == "getattr":
            name = str(request.get("name", ""))
            if not name.isidentifier():
                raise KernelGone("bad attribute name")
            return f"{head}.get_attribute({handle}, {name!r})"
        raise KernelGone(f"unknown request {op!r}")

    def run_checker(self, op: str, code: str) -> list:
        """Run a setup or test cell in the checker, answering its requests for the student's values."""
        if self.checker is None or self.checker.poll() is not None:
            return [_error("CheckerStopped", "the test process stopped; this test could not run")]
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
                ok, frame = self._ask_kernel(self._agent_code(message, payload))
                channel.send(sock, {"op": "value", "ok": ok}, frame)
            except KernelGone as gone:
                channel.send(sock, {"op": "value", "ok": False, "failure": str(gone)})

    def run_test(self, code: str) -> list:
        return self.run_checker("test", code)


def _error(name: str, message: str):
    return nbformat.v4.new_output("error", ename=name, evalue=message, traceback=[f"{name}: {message}"])


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, 15)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, 9)
            process.wait()
