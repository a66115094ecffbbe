"""The student's side of the trust boundary: runs inside the sandboxed kernel.

The grader sends small calls (``export``, ``call``, ``getattr``) as silent execute requests;
each answer is a frame of :mod:`sscity.course.wire`, published as a display message of type
:data:`MIME`. Everything here runs in the student's interpreter and may have been tampered
with: the grader treats every answer as untrusted data, so tampering can only spoil the
student's own values.
"""

from __future__ import annotations

import base64
import pickle

__all__ = ["MIME", "call", "export", "get_attribute"]

MIME = "application/x-sscity-frame"
_handles: dict[int, object] = {}


def _handle(value) -> int:
    number = len(_handles) + 1
    _handles[number] = value
    return number


def _publish(ok: bool, payload) -> None:
    from IPython.display import publish_display_data

    from . import wire

    if ok:
        try:
            frame = wire.encode(payload, _handle)
        except Exception as err:  # noqa: BLE001 - a value that cannot travel is reported, not raised
            ok, payload = False, err
    if not ok:
        frame = wire.encode({"error": type(payload).__name__, "message": str(payload)[:2000]}, _handle)
    publish_display_data({MIME: base64.b64encode(frame).decode("ascii")},
                         metadata={MIME: {"ok": ok}})


def export(name: str, namespace: dict) -> None:
    """Publish the value bound to ``name`` in the student's namespace."""
    if name not in namespace:
        import builtins

        if not hasattr(builtins, name):
            _publish(False, NameError(f"name '{name}' is not defined"))
            return
        _publish(True, getattr(builtins, name))
        return
    _publish(True, namespace[name])


def call(handle: int, arguments: str) -> None:
    """Call the object behind ``handle`` with pickled (args, kwargs) from the checker."""
    try:
        target = _handles[handle]
        args, kwargs = pickle.loads(base64.b64decode(arguments))  # noqa: S301 - from the grader
        result = target(*args, **kwargs)
    except BaseException as err:  # noqa: BLE001 - the student's exception goes back as data
        _publish(False, err)
        return
    _publish(True, result)


def get_attribute(handle: int, name: str) -> None:
    try:
        result = getattr(_handles[handle], name)
    except BaseException as err:  # noqa: BLE001
        _publish(False, err)
        return
    _publish(True, result)


def _resolve(number: int):
    """What a checker's proxy of a student's object unpickles to, back in the kernel."""
    return _handles[number]
