"""Confine the calling process's file access to a list of folders, with Linux Landlock.

Landlock (Linux 5.13+) lets an unprivileged process give up, for good and for all its future
children, every file access except those it lists. The grader uses it in each test process
forked from a warm one (:mod:`sscity.course.checker`): the warm process may see every
notebook's run folder of its chunk; each fork keeps only its own.

Only the three system calls are wrapped here. The Python bindings that exist (``landlock``
1.0.0.dev, ``py-landlock`` 0.1, ``landlockpy`` 0.2) were all pre-1.0 when this was written;
the kernel does the enforcing, and ``tests/test_landlock.py`` asks the kernel, not this
module, whether a confined process can reach a path. See ``man 7 landlock`` and
https://docs.kernel.org/userspace-api/landlock.html.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

__all__ = ["LandlockError", "abi_version", "restrict"]

# System call numbers, the same on every architecture (added after the table was unified).
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# File system rights, by the ABI version that introduced them.
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_V1 = (1 << 13) - 1  # execute .. make_sym
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
READ = EXECUTE | READ_FILE | READ_DIR
# Scopes (ABI 6): no abstract Unix sockets or signals outside the confined processes.
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1


class LandlockError(OSError):
    """Landlock is missing or refused the rules."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def abi_version() -> int:
    """The Landlock ABI this kernel offers; 0 when it has none (or it is disabled)."""
    try:
        version = _libc().syscall(_CREATE_RULESET, None, ctypes.c_size_t(0),
                                  ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except (OSError, AttributeError):
        return 0
    return max(int(version), 0)


def _handled(abi: int) -> int:
    rights = _V1
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


def restrict(readable: list[Path], writable: list[Path], devices: list[Path] = ()) -> int:
    """From now on this process (and what it starts) reads only below ``readable``, writes
    only below ``writable`` (which it may also read) and uses only the ``devices`` folders.

    Paths that do not exist are skipped. Returns the ABI version used; raises
    :class:`LandlockError` when the kernel has no Landlock or refuses.
    """
    abi = abi_version()
    if abi < 1:
        raise LandlockError("this Linux kernel has no Landlock (5.13 or later, enabled)")
    handled = _handled(abi)
    libc = _libc()
    attr = _RulesetAttr(handled_access_fs=handled, handled_access_net=0,
                        scoped=(_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else (16 if abi >= 4 else 8)
    ruleset = libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size),
                           ctypes.c_uint32(0))
    if ruleset < 0:
        raise LandlockError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        device_rights = READ | WRITE_FILE | (IOCTL_DEV if abi >= 5 else 0) | (TRUNCATE if abi >= 3 else 0)
        for paths, rights in ((readable, READ), (writable, handled), (devices, device_rights)):
            for path in paths:
                _add(libc, ruleset, Path(path), rights & handled)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise LandlockError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)) != 0:
            raise LandlockError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return abi


def _add(libc, ruleset: int, path: Path, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not path.is_dir():
            # A rule on a file may hold only the rights that apply to files.
            rights &= EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
        rule = _PathBeneathAttr(allowed_access=rights, parent_fd=fd)
        if libc.syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule),
                        ctypes.c_uint32(0)) != 0:
            raise LandlockError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
    finally:
        os.close(fd)
