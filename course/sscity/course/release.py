"""Release: regenerate ``modules/`` from ``solutions/`` with nbgrader, or check it is current."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .notebooks import module_ids

__all__ = ["NbgraderError", "ReleaseDrift", "check_release", "nbgrader", "release"]


class NbgraderError(RuntimeError):
    """An nbgrader command failed; the message carries its log."""


# jsonschema builds a grammar for the optional `rfc3987-syntax` package at import time,
# which costs ~3 s of every nbgrader start; nbgrader never checks IRI formats, so the
# launcher hides that package (jsonschema then skips the IRI check).
_NBGRADER_LAUNCHER = (
    "import sys; sys.modules['rfc3987_syntax'] = None; sys.argv[0] = 'nbgrader'; "
    "from nbgrader.apps.nbgraderapp import main; sys.exit(main())"
)


def with_scripts_on_path(environ) -> dict[str, str]:
    """A copy of ``environ`` with this interpreter's scripts folder first on ``PATH``.

    nbgrader's gradebook runs the ``alembic`` command found on PATH when it creates a new
    gradebook.db; from a venv that is not activated (as ``make`` and ``.venv/bin/python -m
    sscity`` use it) that command is otherwise missing and formgrader answers 500.
    """
    env = dict(environ)
    scripts = str(Path(sys.executable).parent)
    rest = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != scripts]
    env["PATH"] = os.pathsep.join([scripts, *rest])
    return env


def nbgrader(args: list[str], cwd: Path, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run nbgrader with ``args`` in ``cwd`` with this interpreter; raise on failure."""
    command = [sys.executable, "-c", _NBGRADER_LAUNCHER, *args]
    env = with_scripts_on_path(os.environ)
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)
    if done.returncode != 0:
        log = (done.stdout + done.stderr).strip().splitlines()
        raise NbgraderError(
            f"`nbgrader {' '.join(args)}` failed in {cwd} (exit {done.returncode}):\n"
            + "\n".join(log[-40:])
        )
    return done


def _check_modules(root: Path, modules) -> list[str]:
    available = module_ids(root, "solutions")
    if not modules:
        return available
    unknown = [m for m in modules if m not in available]
    if unknown:
        raise ValueError(
            f"No module {', '.join(unknown)} in {root / 'solutions'}. "
            f"Modules: {', '.join(available) or 'none'}."
        )
    return list(modules)


def release(root: Path, modules=None, dest: Path | None = None) -> list[str]:
    """Generate the student release of ``modules`` into ``dest`` (default ``modules/``).

    Uses ``nbgrader generate_assignment --force --no-db``: solutions become
    ``raise NotImplementedError()``, hidden tests and mark schemes are removed, outputs are
    cleared, graded cells are locked. Returns the modules released.
    """
    root = Path(root).resolve()
    modules = _check_modules(root, modules)
    dest = (root / "modules") if dest is None else Path(dest).resolve()
    for module in modules:
        nbgrader(
            ["generate_assignment", module, "--force", "--no-db",
             f"--CourseDirectory.release_directory={dest}", "--log-level=WARN"],
            cwd=root,
        )
    return modules


@dataclass
class ReleaseDrift:
    """Files of ``modules/`` that differ from a fresh release."""

    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.extra)

    def lines(self) -> list[str]:
        return ([f"CHANGED  {p}" for p in self.changed] + [f"MISSING  {p}" for p in self.missing]
                + [f"EXTRA    {p}" for p in self.extra])


def _files(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts}


def check_release(root: Path, modules=None) -> ReleaseDrift:
    """Compare ``modules/`` with a fresh release made in a temporary folder."""
    root = Path(root).resolve()
    modules = _check_modules(root, modules)
    drift = ReleaseDrift()
    with tempfile.TemporaryDirectory(prefix="sscity-release-") as tmp:
        fresh_root = Path(tmp)
        release(root, modules, dest=fresh_root)
        for module in modules:
            fresh, committed = fresh_root / module, root / "modules" / module
            want, have = _files(fresh), _files(committed)
            drift.missing += [f"modules/{module}/{p}" for p in sorted(want - have)]
            drift.extra += [f"modules/{module}/{p}" for p in sorted(have - want)]
            drift.changed += [f"modules/{module}/{p}" for p in sorted(want & have)
                              if not filecmp.cmp(fresh / p, committed / p, shallow=False)]
    if not modules or set(modules) == set(module_ids(root, "solutions")):
        # A module folder in modules/ with no source is stale.
        for stale in sorted(set(module_ids(root, "modules")) - set(module_ids(root, "solutions"))):
            drift.extra.append(f"modules/{stale}/")
    return drift


def remove_stale(root: Path) -> list[str]:
    """Delete release folders whose source module no longer exists."""
    stale = sorted(set(module_ids(root, "modules")) - set(module_ids(root, "solutions")))
    for module in stale:
        shutil.rmtree(Path(root) / "modules" / module)
    return stale
