"""Benchmarks of the mobility simulation; prints ``BENCH <name> <value> <unit>`` lines.

- ``physics_steps_per_s``: pybullet steps per wall-clock second for the device alone on a
  floor, driven with a constant command (240 steps = 1 simulated second);
- ``physics_realtime_factor``: the same as simulated seconds per wall-clock second;
- ``episode_60s_wall``: wall time of a full 60-s episode with 20 social-force pedestrians
  (``stop_at_goal=False``: the simulation runs the whole minute), and
  ``episode_60s_realtime_factor`` = 60 s / wall time. Goal: >= 30 on one core.

Each figure is the median of ``REPEATS`` runs. Timings depend on the machine's load;
compare ratios from the same run.

The reachable envelope (``sscity.mobility.envelope``), the long sweep the tests leave out:

- ``envelope_<posture>_derive_wall``: wall time to derive the envelope afresh, and
  ``envelope_<posture>_matches_stored``: 1 if the fresh table equals the stored ``MEASURED``
  one within one bisection step (4.124 / 128 rad/s), else 0;
- ``envelope_<posture>_max_yaw_v<speed>``: the largest yaw rate followed within 10 % at that
  speed (the stored table);
- ``spin_<posture>_achieved_yaw``: the yaw rate reached when told to spin at the published
  4.124 rad/s; ``saturated_<posture>_achieved_radius``: the circle driven when told the
  saturated twist (0.79 m/s, 2.63 rad/s), a 0.30 m circle;
- ``envelope_<posture>_sweep_worst_radius_error``: over a dense sweep of the envelope's
  boundary and 60 % of it (every 0.125 m/s, left and right, forward and reverse), the worst
  turn-radius error relative to ``max(|R_commanded|, L/2)``, and ``..._sweep_failures``, how
  many of those twists miss :func:`~sscity.mobility.envelope.twist_agrees` (goal: 0).

Run: ``python benchmarks/bench_mobility.py`` (``--envelope-only`` skips the timings).
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np
from sscity.mobility import (
    QOLO,
    QoloSim,
    derive_envelope,
    measure_twist,
    reachable_envelope,
    run_episode,
    saturate_twist,
    twist_agrees,
)
from sscity.mobility.envelope import ENVELOPE_SPEEDS_MPS, MEASURED

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


def _envelope(posture: str) -> None:
    started = time.perf_counter()
    fresh = derive_envelope(posture)
    bench(f"envelope_{posture}_derive_wall", time.perf_counter() - started, "s")
    step = QOLO.max_yaw_rate_radps / 2**7
    same = np.allclose(fresh.max_yaw_rates_radps, MEASURED[posture], atol=step)
    bench(f"envelope_{posture}_matches_stored", float(same), "bool")
    env = reachable_envelope(posture)
    for speed, rate in zip(ENVELOPE_SPEEDS_MPS, env.max_yaw_rates_radps, strict=True):
        bench(f"envelope_{posture}_max_yaw_v{speed:.2f}", rate, "rad/s")
    _, spin = measure_twist(0.0, QOLO.max_yaw_rate_radps, posture)
    bench(f"spin_{posture}_achieved_yaw", spin, "rad/s")
    v, w = measure_twist(*saturate_twist(1.5, 5.0), posture)
    bench(f"saturated_{posture}_achieved_radius", v / w, "m")
    worst, failures = 0.0, 0
    half_track = 0.5 * QOLO.track_width_m
    for speed in np.arange(0.0, 1.5, 0.125):
        for fraction in (1.0, 0.6):
            yaw = env.max_yaw_rate(speed) * fraction
            for command in {(speed, yaw), (speed, -yaw), (-speed, yaw), (-speed, -yaw)}:
                achieved = measure_twist(*command, posture)
                failures += not twist_agrees(command, achieved)
                error = abs(achieved[0] / achieved[1] - command[0] / command[1])
                worst = max(worst, error / max(abs(command[0] / command[1]), half_track))
    bench(f"envelope_{posture}_sweep_worst_radius_error", worst, "fraction")
    bench(f"envelope_{posture}_sweep_failures", failures, "twists")


def main() -> None:
    for posture in ("seated", "standing", "empty"):
        _envelope(posture)
    if "--envelope-only" in sys.argv[1:]:
        return
    steps = 4800
    physics = statistics.median(_physics_seconds(steps) for _ in range(REPEATS))
    bench("physics_steps_per_s", steps / physics, "steps/s")
    bench("physics_realtime_factor", steps / 240 / physics, "x")
    episode = statistics.median(_episode_seconds() for _ in range(REPEATS))
    bench("episode_60s_20ped_wall", episode, "s")
    bench("episode_60s_20ped_realtime_factor", 60.0 / episode, "x")


if __name__ == "__main__":
    main()
