"""Known-wrong answers: typical mistakes that must fail a named test.

Each module may keep ``solutions/NN-slug/known-wrong.toml`` beside its notebooks (nbgrader
never releases it, see ``nbgrader_config.py``)::

    [[wrong]]
    notebook = "assignment"               # notebook name without .ipynb
    answer = "station-distance"           # grade_id of the answer cell it replaces
    must_fail = "station-distance-tests"  # grade_id of the test cell that must fail
    mistake = "Distance in degrees instead of metres"
    code = '''
    tsukuba_midorino_m = 0.0757
    '''

``sscity course verify`` writes each ``code`` into the released notebook in place of the
answer cell, grades it with nbgrader, and fails unless ``must_fail`` earns 0 points.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FILENAME", "KnownWrong", "KnownWrongError", "load_known_wrong"]

FILENAME = "known-wrong.toml"
_FIELDS = ("notebook", "answer", "must_fail", "mistake", "code")


class KnownWrongError(ValueError):
    """``known-wrong.toml`` is malformed; the message names the entry and the field."""


@dataclass(frozen=True)
class KnownWrong:
    notebook: str
    answer: str
    must_fail: str
    mistake: str
    code: str


def load_known_wrong(module_dir: Path) -> list[KnownWrong]:
    """Read ``known-wrong.toml`` of a source module folder (empty list if absent)."""
    path = Path(module_dir) / FILENAME
    if not path.is_file():
        return []
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:
        raise KnownWrongError(f"{path} is not valid TOML: {err}") from err
    entries = raw.get("wrong", [])
    if not isinstance(entries, list):
        raise KnownWrongError(f"{path}: use [[wrong]] tables, one per wrong answer.")
    out = []
    for number, entry in enumerate(entries, 1):
        missing = [f for f in _FIELDS if not str(entry.get(f, "")).strip()]
        if missing:
            raise KnownWrongError(
                f"{path}: [[wrong]] entry {number} lacks {', '.join(missing)}. "
                f"Each entry needs {', '.join(_FIELDS)}."
            )
        unknown = sorted(set(entry) - set(_FIELDS))
        if unknown:
            raise KnownWrongError(f"{path}: [[wrong]] entry {number} has unknown keys {unknown}.")
        out.append(KnownWrong(**{f: str(entry[f]) for f in _FIELDS}))
    return out
