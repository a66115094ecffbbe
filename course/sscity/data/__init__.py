"""Course datasets: where they are, and whether they are intact.

Every notebook reaches data through this module, never through a path relative to the
working directory: nbgrader executes submissions in other folders
(``autograded/<student>/<module>/``), where ``../datasets`` does not exist.

The folder is found, in order, from

1. the environment variable ``SSCITY_DATASETS`` (an instructor's override), then
2. the repository that holds the installed package (``course/sscity`` -> ``datasets/``),
   which is where ``pip install -e .`` leaves it.

``datasets/MANIFEST`` lists the sha256 of every file, in the format of ``sha256sum``, so
``cd datasets && sha256sum -c MANIFEST`` checks it without Python too.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DatasetError",
    "ManifestReport",
    "datasets_dir",
    "dataset_path",
    "read_manifest",
    "verify_manifest",
    "write_manifest",
]

ENV_VAR = "SSCITY_DATASETS"
MANIFEST_NAME = "MANIFEST"
# Files that live beside the data but are not data.
_NOT_LISTED = {MANIFEST_NAME, ".DS_Store"}


class DatasetError(FileNotFoundError):
    """A dataset folder or file cannot be found; the message says what to do."""


def datasets_dir() -> Path:
    """Return the course's ``datasets/`` folder as an absolute path.

    Raises
    ------
    DatasetError
        If neither ``$SSCITY_DATASETS`` nor the repository beside the installed package
        holds a ``datasets/`` folder.
    """
    override = os.environ.get(ENV_VAR)
    if override:
        path = Path(override).expanduser().resolve()
        if not path.is_dir():
            raise DatasetError(
                f"{ENV_VAR} is set to {override!r}, which is not a folder. "
                f"Point it at the course's datasets/ folder, or unset it."
            )
        return path
    # course/sscity/data/__init__.py -> parents[3] is the repository root.
    path = Path(__file__).resolve().parents[3] / "datasets"
    if path.is_dir():
        return path
    raise DatasetError(
        "Cannot find the course's datasets/ folder. Install the course from its "
        "repository with `pip install -e .` (or `make test`), or set "
        f"{ENV_VAR}=/path/to/datasets."
    )


def dataset_path(*parts: str) -> Path:
    """Return the path of a dataset file or folder, checking that it exists.

    Parameters
    ----------
    *parts : str
        Path components below ``datasets/``, e.g. ``("tsukuba-geo", "tx_stations.csv")``.

    Examples
    --------
    >>> dataset_path("tsukuba-geo", "tx_stations.csv").name
    'tx_stations.csv'
    """
    if not parts:
        raise ValueError("Name a dataset, e.g. dataset_path('tsukuba-geo', 'tx_stations.csv').")
    root = datasets_dir()
    path = root.joinpath(*parts).resolve()
    if root not in path.parents and path != root:
        raise ValueError(f"{'/'.join(parts)!r} points outside datasets/; use a path inside it.")
    if not path.exists():
        folder = root / parts[0]
        if folder.is_dir():
            have = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
            hint = f"The folder {parts[0]}/ holds: {have}."
        else:
            have = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir()))
            hint = f"Datasets available: {have}."
        raise DatasetError(f"No dataset file {'/'.join(parts)!r} in {root}. {hint}")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _data_files(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name not in _NOT_LISTED and "__pycache__" not in p.parts
    )


def read_manifest(root: Path | None = None) -> dict[str, str]:
    """Read ``MANIFEST`` into ``{relative path: sha256}``."""
    root = datasets_dir() if root is None else Path(root)
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        raise DatasetError(f"{manifest} is missing; create it with `sscity data manifest`.")
    entries: dict[str, str] = {}
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise DatasetError(
                f"{manifest}:{number} is not '<sha256>  <path>': {line!r}. "
                "Regenerate the file with `sscity data manifest`."
            )
        entries[name.strip()] = digest
    return entries


@dataclass
class ManifestReport:
    """Outcome of :func:`verify_manifest`: which files differ, are missing or unlisted."""

    checked: int = 0
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.unlisted)

    def lines(self) -> list[str]:
        out = [f"CHANGED   {name}" for name in self.changed]
        out += [f"MISSING   {name}" for name in self.missing]
        out += [f"UNLISTED  {name}" for name in self.unlisted]
        return out


def verify_manifest(root: Path | None = None) -> ManifestReport:
    """Check every file in ``datasets/`` against ``MANIFEST``.

    A file whose checksum differs is *changed*; a listed file that is absent is
    *missing*; a file that is present but not listed is *unlisted*.
    """
    root = datasets_dir() if root is None else Path(root)
    expected = read_manifest(root)
    report = ManifestReport()
    present = set(_data_files(root))
    for name, digest in sorted(expected.items()):
        path = root / name
        if name not in present:
            report.missing.append(name)
            continue
        report.checked += 1
        if _sha256(path) != digest:
            report.changed.append(name)
    report.unlisted = sorted(present - set(expected))
    return report


def write_manifest(root: Path | None = None) -> Path:
    """(Re)write ``MANIFEST`` from the files now in ``datasets/``; for dataset authors."""
    root = datasets_dir() if root is None else Path(root)
    lines = [f"{_sha256(root / name)}  {name}" for name in _data_files(root)]
    manifest = root / MANIFEST_NAME
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


# Loaders read through dataset_path, defined above.
from .campussensors import load_campus_sensors  # noqa: E402
from .loaders import (  # noqa: E402
    load_city_sensors,
    load_districts,
    load_landmarks,
    load_mailed_sample,
    load_register,
    load_stations,
    load_survey,
)
from .rideimu import load_ride_imu, load_ride_runs  # noqa: E402

__all__ += [
    "load_campus_sensors",
    "load_city_sensors",
    "load_districts",
    "load_landmarks",
    "load_mailed_sample",
    "load_register",
    "load_ride_imu",
    "load_ride_runs",
    "load_stations",
    "load_survey",
]
