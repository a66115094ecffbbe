"""The course's modules and tracks, read from ``course/tracks.toml``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Module", "Track", "course_map", "load_modules", "load_tracks", "tracks_file"]

TIERS = ("core", "extension")


@dataclass(frozen=True)
class Module:
    id: str
    title_en: str
    title_ja: str
    hours: float
    status: str


@dataclass(frozen=True)
class Track:
    id: str
    name_en: str
    name_ja: str
    audience_en: str
    audience_ja: str
    tasks: str
    weights: dict[str, float]

    def counts(self, tier: str) -> bool:
        """Whether a task of this tier counts towards this track's grade."""
        if tier not in TIERS:
            raise ValueError(f"Unknown tier {tier!r}; use one of {TIERS}.")
        return self.tasks == "all" or tier == self.tasks


def tracks_file() -> Path:
    """``course/tracks.toml`` beside the installed package."""
    return Path(__file__).resolve().parents[2] / "tracks.toml"


def _load(path: Path | None) -> dict:
    path = tracks_file() if path is None else Path(path)
    with path.open("rb") as handle:
        return tomllib.load(handle)


def load_modules(path: Path | None = None) -> list[Module]:
    """All modules of the course, in order, available or planned."""
    return [Module(**entry) for entry in _load(path)["modules"]]


def load_tracks(path: Path | None = None) -> dict[str, Track]:
    """The tracks, keyed by id (``degree``, ``recurrent``), validated."""
    raw = _load(path)
    module_ids = {m["id"] for m in raw["modules"]}
    tracks = {}
    for track_id, entry in raw["tracks"].items():
        track = Track(id=track_id, **entry)
        if track.tasks not in ("all", "core"):
            raise ValueError(f"tracks.{track_id}.tasks must be 'all' or 'core', not {track.tasks!r}.")
        unknown = set(track.weights) - module_ids
        if unknown:
            raise ValueError(f"tracks.{track_id}.weights names unknown modules: {sorted(unknown)}.")
        total = sum(track.weights.values())
        if abs(total - 100) > 1e-9:
            raise ValueError(f"tracks.{track_id}.weights sum to {total}, not 100.")
        tracks[track_id] = track
    return tracks


def course_map(path: Path | None = None):
    """The course map as a table: one row per module, hours and each track's weight.

    Returns
    -------
    pandas.DataFrame
        Columns ``module``, ``title_en``, ``title_ja``, ``hours``, ``status`` and one
        ``weight_<track>`` column per track (percent of the final grade).
    """
    import pandas as pd

    tracks = load_tracks(path)
    rows = []
    for module in load_modules(path):
        row = {
            "module": module.id,
            "title_en": module.title_en,
            "title_ja": module.title_ja,
            "hours": module.hours,
            "status": module.status,
        }
        for track in tracks.values():
            row[f"weight_{track.id}"] = track.weights.get(module.id, 0)
        rows.append(row)
    return pd.DataFrame(rows)
