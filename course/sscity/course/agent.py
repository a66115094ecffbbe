"""The student's side of the trust boundary: runs inside the sandboxed kernel.

While a test cell runs, the grader has the kernel execute :func:`serve`, which connects to a
Unix socket in the kernel's own IPC folder and answers the checker's requests -- ``fetch`` a
name, ``call`` a function, ``getattr`` of an object -- one after another until the grader
says ``done``. Each answer is a frame of :mod:`sscity.course.wire`. One execute request per
test cell, however many calls the test makes: a kernel round trip per call cost ~18 ms.

Everything here runs in the student's interpreter and may have been tampered with: the grader
treats every answer as untrusted data, so tampering can only spoil the student's own values.
"""

from __future__ import annotations

import pickle
import socket

__all__ = ["answer", "serve"]

_handles: dict[int, object] = {}


def _handle(value) -> int:
    number = len(_handles) + 1
    _handles[number] = value
    return number


def _frame(ok: bool, payload) -> tuple[bool, bytes]:
    from . import wire

    if ok:
        try:
            return True, wire.encode(payload, _handle)
        except Exception as err:  # noqa: BLE001 - a value that cannot travel is reported, not raised
            payload = err
    return False, wire.encode({"error": type(payload).__name__, "message": str(payload)[:2000]}, _handle)


def answer(request: dict, payload: bytes, namespace: dict) -> tuple[bool, bytes]:
    """The frame answering one request of the checker: (ok, frame)."""
    op = request.get("op")
    try:
        if op == "fetch":
            name = str(request.get("name", ""))
            if name in namespace:
                return _frame(True, namespace[name])
            import builtins

            if not hasattr(builtins, name):
                raise NameError(f"name '{name}' is not defined")
            return _frame(True, getattr(builtins, name))
        target = _handles[int(request.get("handle", 0))]
        if op == "call":
            args, kwargs = pickle.loads(payload)  # noqa: S301 - from the grader
            return _frame(True, target(*args, **kwargs))
        if op == "getattr":
            return _frame(True, getattr(target, str(request.get("name", ""))))
        raise ValueError(f"unknown request {op!r}")
    except BaseException as err:  # noqa: BLE001 - the student's exception goes back as data
        return _frame(False, err)


def serve(path: str, namespace: dict) -> None:
    """Answer the grader's requests on the Unix socket ``path`` until it says ``done``."""
    from .wire import recv, send

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    with sock:
        while True:
            try:
                request, payload = recv(sock)
            except (EOFError, OSError, ValueError):
                return
            if request.get("op") == "done":
                return
            ok, frame = answer(request, payload, namespace)
            try:
                send(sock, {"ok": ok}, frame)
            except OSError:
                return


def _resolve(number: int):
    """What a checker's proxy of a student's object unpickles to, back in the kernel."""
    return _handles[number]
