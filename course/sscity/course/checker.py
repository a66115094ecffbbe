"""The trusted side of the trust boundary: runs the tests, never the student's code.

``python -I -m sscity.course.checker FD`` serves one graded notebook over the socket ``FD``;
``python -I -m sscity.course.checker --zygote FD`` is the *warm checker* of a chunk of
notebooks, which imports the setup cells' modules and runs the setup cells that need
nothing of a student's once, then forks one checker per notebook, confined with Landlock
(:mod:`sscity.course.landlock`) to that notebook's folders. Either way, both in a sandbox.

The grader sends the notebook's *setup* cells (instructor code, restored from the
gradebook) and its *test* cells; the checker runs them in its own namespace. A name the
tests use that this namespace lacks -- the student's answers -- is asked of the student's
kernel through the grader and arrives as plain data (:mod:`sscity.course.wire`); a
student's function arrives as a proxy whose calls run in the student's kernel. Nothing of
the student's runs here, so nothing of the student's can rewrite a test, swallow its
exception, or patch what it calls.

Names the student cannot change here: built-ins (a student's ``max = ...`` does not shadow
``max`` in a test), everything the setup cells and earlier test cells define.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import json
import os
import pickle
import socket
import sys
import traceback
from pathlib import Path

from .notebooks import without_magics
from .wire import recv, send

__all__ = ["main", "recv", "send", "warm_code", "zygote"]

_MAX_OUTPUT = 100_000


class StudentCodeError(Exception):
    """The student's kernel could not answer (dead, stopped, or a value that cannot travel)."""


class _Channel:
    """Requests to the student's kernel, relayed by the grader."""

    def __init__(self, sock):
        self.sock = sock

    def ask(self, header: dict, payload: bytes = b""):
        from . import wire

        send(self.sock, header, payload)
        reply, frame = recv(self.sock)
        if reply.get("op") != "value":
            raise StudentCodeError("unexpected reply from the grader")
        if reply.get("failure"):
            raise StudentCodeError(str(reply["failure"])[:500])
        value = wire.decode(frame, self.remote, self.client)
        if not reply.get("ok"):
            if isinstance(value, dict) and "error" in value:
                raise wire._exception(str(value.get("error")), str(value.get("message", "")))
            raise StudentCodeError("the student's code failed")
        return value

    def remote(self, handle, is_callable, name, type_name):
        kind = StudentFunction if is_callable else StudentObject
        return kind(self, handle, name, type_name)

    @staticmethod
    def client(tenant):
        from sscity.platform import Client

        if os.environ.get("SSCITY_BROKER_URL") is None:
            raise StudentCodeError("this notebook's values include an NGSI-LD client, but the "
                                   "grader started no broker for it")
        return Client(tenant=tenant)


class StudentObject:
    """An object that stays in the student's kernel; attributes are asked for by name."""

    def __init__(self, channel, handle, name, type_name):
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_handle", handle)
        object.__setattr__(self, "__name__", name)
        object.__setattr__(self, "_type", type_name)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._channel.ask({"op": "getattr", "handle": self._handle, "name": name})

    def __repr__(self):
        return f"<student's {self._type} {self.__name__}>"

    def __reduce__(self):
        from . import agent

        return (agent._resolve, (self._handle,))


class StudentFunction(StudentObject):
    """A student's function: calling it runs it in the student's kernel."""

    def __call__(self, *args, **kwargs):
        import cloudpickle

        payload = cloudpickle.dumps((args, kwargs), protocol=pickle.DEFAULT_PROTOCOL)
        return self._channel.ask({"op": "call", "handle": self._handle}, payload)


class Namespace(dict):
    """The tests' globals: what is missing is the student's, asked for at each use."""

    def __init__(self, channel):
        super().__init__(__name__="__main__", __builtins__=builtins)
        self.channel = channel
        self.fetched: dict = {}

    def __missing__(self, name):
        if name in self.fetched:
            return self.fetched[name]
        if hasattr(builtins, name) or name.startswith("__") or self.channel is None:
            raise KeyError(name)
        try:
            value = self.channel.ask({"op": "fetch", "name": name})
        except NameError:
            raise KeyError(name) from None
        self.fetched[name] = value
        return value


def _run(code: str, namespace: Namespace, capture: bool) -> list[dict]:
    """Run a cell like IPython: the value of a last expression becomes its result."""
    namespace.fetched = {}
    outputs: list[dict] = []
    out, err = io.StringIO(), io.StringIO()
    try:
        tree = ast.parse(without_magics(code), "<cell>")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            exec(compile(tree, "<cell>", "exec"), namespace)  # noqa: S102 - instructor code
            if last is not None:
                value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)  # noqa: S307
                if value is not None and capture:
                    outputs.append({"output_type": "execute_result", "execution_count": None,
                                    "metadata": {}, "data": {"text/plain": repr(value)[:_MAX_OUTPUT]}})
    except BaseException as error:  # noqa: BLE001 - every failure of a test is its result
        if isinstance(error, (SystemExit, KeyboardInterrupt)) and not capture:
            raise
        lines = traceback.format_exception_only(type(error), error)
        frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == "<cell>"]
        where = [f"line {frames[-1].lineno} of the test cell"] if frames else []
        outputs.append({"output_type": "error", "ename": type(error).__name__,
                        "evalue": str(error)[:_MAX_OUTPUT],
                        "traceback": [*where, *(line.rstrip() for line in lines)]})
    finally:
        namespace.fetched = {}
    if capture:
        for name, stream in (("stdout", out), ("stderr", err)):
            text = stream.getvalue()
            if text:
                outputs.insert(0 if name == "stdout" else len(outputs),
                               {"output_type": "stream", "name": name, "text": text[:_MAX_OUTPUT]})
    return outputs


def _shared_temporary_folders() -> None:
    """Temporary folders a test makes are for the student's function to write in: the
    student's kernel runs as another user, so open them to it (/tmp is shared by the two)."""
    import tempfile

    private = tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        path = private(*args, **kwargs)
        os.chmod(path, 0o1777)
        return path

    tempfile.mkdtemp = mkdtemp


def _serve(sock: socket.socket, namespace: Namespace | None = None) -> None:
    """Run the setup and test cells the grader sends on ``sock`` until it says quit."""
    if namespace is None:
        namespace = Namespace(None)
    namespace.channel = _Channel(sock)
    while True:
        try:
            message, _ = recv(sock)
        except (EOFError, OSError):
            return
        op = message.get("op")
        if op == "quit":
            return
        if op in ("setup", "test"):
            outputs = _run(str(message.get("code", "")), namespace, capture=op == "test")
            send(sock, {"op": "done", "outputs": outputs})


# --- the warm checker: imports once, one confined fork per notebook --------------------------

def warm_code(setup_sources: list[str]) -> str:
    """The import statements of the setup cells: what a warm checker imports in advance."""
    lines = []
    for source in setup_sources:
        try:
            tree = ast.parse(without_magics(source))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom) and not any(a.name == "*" for a in node.names):
                lines.append(ast.unparse(node))
    return "\n".join(dict.fromkeys(lines))


_WARM_ALWAYS = "import cloudpickle\nimport sscity.course.wire\n"
_WARM_TABLES = "import pyarrow.parquet\n"


def _pre_run(cells: list, namespace: Namespace) -> list[str]:
    """Run the setup cells in order while they need nothing of a student's (a name the
    namespace lacks, the notebook's broker): the grade ids that ran, each fork inherits them."""
    done = []
    for grade_id, code in cells:
        outputs = _run(str(code), namespace, capture=False)
        if any(o.get("output_type") == "error" for o in outputs):
            break
        done.append(str(grade_id))
    return done


def _warm(code: str) -> list[str]:
    errors = []
    for line in (_WARM_ALWAYS + code).splitlines():
        try:
            exec(line, {})  # noqa: S102 - import statements of instructor setup cells
        except Exception as err:  # noqa: BLE001 - a missing import fails later, in its test
            errors.append(f"{line}: {type(err).__name__}: {err}"[:300])
    if "pandas" in sys.modules:
        exec(_WARM_TABLES, {})  # noqa: S102
    return errors


def _threads() -> int:
    return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1


def _confined(message: dict, fd: int, namespace: Namespace) -> None:
    """In a fresh fork: keep only this notebook's folders, then serve its tests."""
    import signal
    import tempfile

    from . import landlock

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    sock = socket.socket(fileno=fd)
    os.environ.pop("SSCITY_BROKER_URL", None)  # the warm checker's own is a deliberate dud
    landlock.restrict([Path(p) for p in message["readable"]], [Path(p) for p in message["writable"]],
                      [Path("/dev")])
    os.environ.update({str(k): str(v) for k, v in message.get("env", {}).items()})
    tempfile.tempdir = message["tmp"]
    os.chdir(message["chdir"])
    _serve(sock, namespace)


def zygote(control_fd: int) -> None:
    """Serve fork requests on ``control_fd`` (a SOCK_SEQPACKET socket) until it closes.

    ``{"op": "warm", "code": ...}`` imports the setup cells' modules once; ``{"op": "fork",
    ...}`` with one descriptor attached starts a checker for one notebook on that descriptor,
    confined by Landlock to the folders the message lists (:func:`_confined`), and answers
    its pid; ``{"op": "kill", "pid": ...}`` stops one. Nothing of a student's reaches this
    process: only its forks decode student values.
    """
    import signal

    from . import landlock

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forks are reaped by the kernel
    _shared_temporary_folders()
    control = socket.socket(fileno=control_fd)
    namespace = Namespace(None)
    while True:
        try:
            data, fds, _flags, _address = socket.recv_fds(control, 1 << 20, 1)
        except OSError:
            return
        if not data:
            return
        message = json.loads(data)
        op = message.get("op")
        if op == "warm":
            errors = _warm(str(message.get("code", "")))
            ran = _pre_run(message.get("setup", []), namespace)
            threads = _threads()
            reply = {"landlock": landlock.abi_version(), "errors": errors, "threads": threads,
                     "pre_ran": ran}
        elif op == "fork" and len(fds) == 1 and _threads() > 1:
            # A fork of a process with other threads may inherit a lock one of them holds.
            reply = {"error": f"the warm checker has {_threads()} threads; it cannot fork safely"}
        elif op == "fork" and len(fds) == 1:
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    control.close()
                    _confined(message, fds[0], namespace)
                except BaseException:  # noqa: BLE001 - a fork never returns to this loop
                    traceback.print_exc()
                    code = 1
                finally:
                    os._exit(code)
            reply = {"pid": pid}
        elif op == "kill":
            with contextlib.suppress(ProcessLookupError, PermissionError, TypeError, ValueError):
                os.kill(int(message.get("pid")), 9)
            reply = {"ok": True}
        else:
            reply = {"error": f"unknown request {op!r}"}
        for fd in fds:
            os.close(fd)
        control.send(json.dumps(reply).encode("utf-8"))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--zygote":
        zygote(int(argv[1]))
        return
    _shared_temporary_folders()
    _serve(socket.socket(fileno=int(argv[0])))


if __name__ == "__main__":
    main()
