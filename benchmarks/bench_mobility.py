"""Benchmarks of the mobility simulation; prints ``BENCH <name> <value> <unit>`` lines.

- ``physics_steps_per_s``: pybullet steps per wall-clock second for the device alone on a
  floor, driven with a constant command (240 steps = 1 simulated second);
- ``physics_realtime_factor``: the same as simulated seconds per wall-clock second;
- ``episode_60s_wall``: wall time of a full 60-s episode with 20 social-force pedestrians
  (``stop_at_goal=False``: the simulation runs the whole minute), and
  ``episode_60s_realtime_factor`` = 60 s / wall time. Goal: >= 30 on one core.

Each figure is the median of ``REPEATS`` runs. Timings depend on the machine's load;
compare ratios from the same run.

Run: ``python benchmarks/bench_mobility.py``.
"""

from __future__ import annotations

import statistics
import time

from sscity.mobility import QoloSim, run_episode

REPEATS = 3


def bench(name: str, value: float, unit: str) -> None:
    print(f"BENCH {name} {value:.3f} {unit}", flush=True)


def _physics_seconds(steps: int = 4800) -> float:
    with QoloSim(seed=0) as sim:
        started = time.perf_counter()
        sim.step(1.0, 0.3, n_steps=steps)
        return time.perf_counter() - started


def _episode_seconds() -> float:
    started = time.perf_counter()
    run_episode(n_pedestrians=20, duration_s=60.0, seed=0, stop_at_goal=False)
    return time.perf_counter() - started


def main() -> None:
    steps = 4800
    physics = statistics.median(_physics_seconds(steps) for _ in range(REPEATS))
    bench("physics_steps_per_s", steps / physics, "steps/s")
    bench("physics_realtime_factor", steps / 240 / physics, "x")
    episode = statistics.median(_episode_seconds() for _ in range(REPEATS))
    bench("episode_60s_20ped_wall", episode, "s")
    bench("episode_60s_20ped_realtime_factor", 60.0 / episode, "x")


if __name__ == "__main__":
    main()
