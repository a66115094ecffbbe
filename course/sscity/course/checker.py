"""The trusted side of the trust boundary: runs the tests, never the student's code.

``python -I -m sscity.course.checker FD`` is started (in its own sandbox) for each graded
notebook. Over the socket ``FD`` the grader sends the notebook's *setup* cells (instructor
code, restored from the gradebook) and its *test* cells; this process runs them in its own
namespace. A name the tests use that this namespace lacks -- the student's answers -- is
asked of the student's kernel through the grader and arrives as plain data
(:mod:`sscity.course.wire`); a student's function arrives as a proxy whose calls run in the
student's kernel. Nothing of the student's runs here, so nothing of the student's can
rewrite a test, swallow its exception, or patch what it calls.

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
import struct
import sys
import traceback

from .notebooks import without_magics

__all__ = ["main", "recv", "send"]

_MAX_MESSAGE = 80 * 1024**2
_MAX_OUTPUT = 100_000


def send(sock: socket.socket, header: dict, payload: bytes = b"") -> None:
    data = json.dumps(header).encode("utf-8")
    sock.sendall(struct.pack(">II", len(data), len(payload)) + data + payload)


def _exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError("the grader closed the channel")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv(sock: socket.socket) -> tuple[dict, bytes]:
    head, size = struct.unpack(">II", _exactly(sock, 8))
    if head > _MAX_MESSAGE or size > _MAX_MESSAGE:
        raise ValueError("message too large")
    return json.loads(_exactly(sock, head).decode("utf-8")), _exactly(sock, size)


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
        if hasattr(builtins, name) or name.startswith("__"):
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


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    _shared_temporary_folders()
    sock = socket.socket(fileno=int(argv[0]))
    namespace = Namespace(_Channel(sock))
    while True:
        try:
            message, _ = recv(sock)
        except EOFError:
            return
        op = message.get("op")
        if op == "quit":
            return
        if op in ("setup", "test"):
            outputs = _run(str(message.get("code", "")), namespace, capture=op == "test")
            send(sock, {"op": "done", "outputs": outputs})


if __name__ == "__main__":
    main()
