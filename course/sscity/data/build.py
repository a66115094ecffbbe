"""Rebuild every synthetic dataset from its seeded generator (``sscity data build``).

Each entry names the dataset folder, the files the generator writes and the generator.
Generators are deterministic: the same code and seed write the same bytes, which
``tests/test_datasets.py`` proves by rebuilding into a temporary folder and checking the
result against ``datasets/MANIFEST``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import datasets_dir
from .campussensors import CAMPUS_SENSORS_FILES, CAMPUS_SENSORS_SEED, write_campus_sensors
from .citysensors import CITY_SENSORS_FILES, CITY_SENSORS_SEED, write_city_sensors
from .happiness import SURVEY_SEED, write_survey
from .rideimu import RIDE_IMU_FILES, RIDE_IMU_SEED, write_ride_imu
from .sidewalks import SIDEWALKS_SEED, write_sidewalks
from .tsukuba import REGISTER_SEED, write_districts_geojson, write_register

__all__ = ["GENERATED", "build"]


@dataclass(frozen=True)
class Generated:
    folder: str
    files: tuple[str, ...]
    write: Callable[..., None]
    seed: int | None
    # A slow generator (a simulation) takes ``progress=`` and shows its own tqdm bar.
    shows_progress: bool = False

    def run(self, root: Path, progress: bool = False) -> list[Path]:
        target = Path(root) / self.folder
        target.mkdir(parents=True, exist_ok=True)
        if self.shows_progress:
            self.write(target, progress=progress)
        else:
            self.write(target)
        return [target / name for name in self.files]


GENERATED = (
    Generated("happiness-survey",
              ("happiness_2015.csv", "happiness_2017.csv", "happiness_2019.csv",
               "happiness_2019_mailed.csv"),
              lambda folder: write_survey(folder, SURVEY_SEED), SURVEY_SEED),
    Generated("tsukuba-register", ("register_2019.csv",),
              lambda folder: write_register(folder, REGISTER_SEED), REGISTER_SEED),
    Generated("tsukuba-geo", ("districts.geojson",),
              lambda folder: write_districts_geojson(folder / "districts.geojson"), None),
    Generated("tsukuba-sidewalks", ("nodes.geojson", "edges.geojson"),
              lambda folder: write_sidewalks(folder, SIDEWALKS_SEED), SIDEWALKS_SEED),
    Generated("tsukuba-city-sensors", CITY_SENSORS_FILES,
              lambda folder: write_city_sensors(folder, CITY_SENSORS_SEED), CITY_SENSORS_SEED),
    Generated("campus-sensors", CAMPUS_SENSORS_FILES,
              lambda folder: write_campus_sensors(folder, CAMPUS_SENSORS_SEED), CAMPUS_SENSORS_SEED),
    # Simulated with pybullet: about 15 s on one core.
    Generated("ride-imu", RIDE_IMU_FILES,
              lambda folder, progress=False: write_ride_imu(folder, RIDE_IMU_SEED, progress=progress),
              RIDE_IMU_SEED, shows_progress=True),
)


def build(root: Path | None = None, progress: bool = False) -> list[Path]:
    """Write every synthetic dataset file under ``root`` (default: the course's datasets/)."""
    root = datasets_dir() if root is None else Path(root)
    written = []
    steps = GENERATED
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(GENERATED, desc="build", unit="dataset")
    for generated in steps:
        files = generated.run(root, progress=progress)
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise RuntimeError(f"generator of {generated.folder} did not write {missing}")
        written += files
    return written
