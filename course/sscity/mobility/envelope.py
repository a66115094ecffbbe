"""The twists the simulated device can actually follow: a reachable envelope, measured.

Qolo's published drive limits (1.5 m/s, 4.124 rad/s, 95 rpm at the wheels) are what the real
robot's controller allows. They say nothing about what the tyres can pass on with a 120-kg
rider whose centre of mass sits 0.21 m *behind* the axle. In this simulation, spinning or
turning tightly throws that mass outwards and backwards onto the (frictionless) rear caster,
the driven wheels lose their load and slide, and the device turns at a different rate and on
a different circle than it was told. Examples (``python -m sscity.mobility.envelope``):
told to spin on the spot at 4.124 rad/s, the device settles near 2.1 rad/s seated and
1.7 rad/s standing, its axle sliding backwards; told to drive the saturated twist
(0.79 m/s, 2.63 rad/s), a circle of radius 0.30 m, it drives one of about 0.07 m.

These are **properties of this simulation model with its stated parameters** (the assumed
rear-caster position and chassis, tyre friction 1.0, pybullet's contact solver), not general
physics and not measurements of the real Qolo. They matter because a controller that asks
for twists the device cannot follow is not doing what its designer thinks.

So the envelope is *derived from the simulation*, not assumed:

1. :func:`measure_twist` drives a fresh :class:`~sscity.mobility.world.QoloSim` from rest with
   a commanded twist, through the 1.5 m/s^2 / 4.5 rad/s^2 rate limiter at every physics step,
   and averages the measured twist over the last second.
2. :func:`twist_agrees` says whether the achieved twist is the commanded one within a
   tolerance (10 %): the yaw rate within 10 %, and the turn radius ``v / omega`` within 10 %
   -- of the commanded radius, or of the half track (0.274 m) for circles tighter than that,
   whose centre lies between the wheels (turning on the spot is the case ``R = 0``).
3. :func:`derive_envelope` bisects, at each speed of a grid, for the largest yaw rate that
   still agrees, makes the limit non-increasing in speed (conservative) and keeps a margin.
4. :class:`TwistEnvelope` interpolates that table and :meth:`TwistEnvelope.clip` scales a
   command down to it, *keeping its curvature* (both ``v`` and ``omega`` by one factor, as
   :func:`~sscity.mobility.kinematics.saturate_twist` does for the wheel limit).

:func:`reachable_envelope` returns the envelope of a posture: for the default device it is the
table :data:`MEASURED` (derived with :func:`derive_envelope` and stored, so that nothing is
simulated at import; ``tests/test_mobility_envelope.py`` re-derives rows of it and
``benchmarks/bench_mobility.py`` re-derives all of it); for other parameters it is derived
once and cached. Everything is deterministic: the same arguments give the same table.

The controllers in :mod:`~sscity.mobility.control` take an optional ``envelope=`` and
:func:`~sscity.mobility.episode.run_episode` clips every command to the envelope of its
posture by default.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .kinematics import saturate_twist
from .params import QOLO, QoloConfig, QoloParams, get_config

__all__ = [
    "ENVELOPE_SPEEDS_MPS",
    "MEASURED",
    "TwistEnvelope",
    "derive_envelope",
    "measure_twist",
    "reachable_envelope",
    "twist_agrees",
]

#: Forward speeds (m/s) at which the envelope is measured.
ENVELOPE_SPEEDS_MPS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)

_SECONDS = 3.0  # each measurement: drive from rest this long ...
_WINDOW_S = 1.0  # ... and average the measured twist over the last second
_ITERATIONS = 7  # bisection steps per speed: resolution (upper bound) / 128
_MARGIN = 0.95  # the stored limit is 95 % of the largest yaw rate that agreed


def measure_twist(
    speed_mps: float,
    yaw_rate_radps: float,
    config: str | QoloConfig = "seated",
    seconds: float = _SECONDS,
    window_s: float = _WINDOW_S,
    params: QoloParams = QOLO,
    **sim_kwargs,
) -> tuple[float, float]:
    """Drive a fresh device from rest with one twist and return the twist it achieves.

    The command goes through :class:`~sscity.mobility.control.RateLimiter` at every physics
    step (240 Hz), as a careful controller would send it; the result is the mean measured
    ``(speed_mps, yaw_rate_radps)`` of the axle centre over the last ``window_s`` seconds.

    Examples
    --------
    >>> v, w = measure_twist(1.0, 0.3)            # doctest: +SKIP
    >>> round(v, 2), round(w, 2)                  # doctest: +SKIP
    (0.99, 0.31)
    """
    from .control import RateLimiter
    from .world import QoloSim

    if not (0 < window_s <= seconds):
        raise ValueError("Need 0 < window_s <= seconds.")
    with QoloSim(seed=0, config=config, params=params, **sim_kwargs) as sim:
        dt = sim.time_step
        limiter = RateLimiter(dt, params)
        n = int(round(seconds / dt))
        m = int(round(window_s / dt))
        total = np.zeros(2)
        for k in range(n):
            sim.step(*limiter(float(speed_mps), float(yaw_rate_radps)))
            if k >= n - m:
                total += sim.twist()
    v, w = total / m
    return float(v), float(w)


def twist_agrees(
    commanded: Sequence[float],
    achieved: Sequence[float],
    tolerance: float = 0.10,
    params: QoloParams = QOLO,
) -> bool:
    """Whether an achieved twist is the commanded one within ``tolerance`` (relative).

    - yaw rate: ``|omega_a - omega_c| <= tolerance * |omega_c|``;
    - turning (``omega != 0``): the turn radius ``R = v / omega`` within
      ``tolerance * max(|R_c|, L / 2)``: 10 % of the commanded radius, and for circles tighter
      than the half track ``L / 2`` = 0.274 m (centre between the wheels, down to turning on
      the spot, ``R_c = 0``) 10 % of the half track, 2.7 cm. A relative error makes no sense
      as ``R_c -> 0``: on the spot, any drift of the axle would count as infinitely wrong;
    - straight (``omega = 0``): the speed within ``tolerance`` and no more yaw than
      ``tolerance * |v| / 10 m`` (a circle of at least 100 m).

    Examples
    --------
    >>> twist_agrees((0.5, 1.0), (0.47, 0.98))    # radius 0.48 m for 0.50 m: within 10 %
    True
    >>> twist_agrees((0.79, 2.63), (0.07, 3.17))  # a 2-cm circle for a 30-cm one
    False
    """
    vc, wc = (float(a) for a in commanded)
    va, wa = (float(a) for a in achieved)
    if wc == 0.0:
        if vc == 0.0:
            return abs(va) < 1e-3 and abs(wa) < 1e-3
        return abs(va - vc) <= tolerance * abs(vc) and abs(wa) <= tolerance * abs(vc) / 10.0
    if abs(wa - wc) > tolerance * abs(wc) or wa == 0.0:
        return False
    radius_c, radius_a = vc / wc, va / wa
    return abs(radius_a - radius_c) <= tolerance * max(abs(radius_c), 0.5 * params.track_width_m)


def _yaw_upper_bound(speed_mps: float, params: QoloParams) -> float:
    """The largest yaw rate the drive limits allow at this speed (no grip considered)."""
    wheel_room = params.wheel_limit_radps * params.wheel_radius_m - abs(speed_mps)
    return max(0.0, min(params.max_yaw_rate_radps, wheel_room / (0.5 * params.track_width_m)))


@dataclass(frozen=True)
class TwistEnvelope:
    """The largest yaw rate the device follows at each forward speed, and how to clip to it.

    Attributes
    ----------
    config : str
        The posture (``"seated"``, ``"standing"``, ``"empty"``) it was measured for.
    speeds_mps : tuple of float
        Forward speeds, increasing from 0.
    max_yaw_rates_radps : tuple of float
        Largest ``|omega|`` that is followed within ``tolerance`` at each speed
        (non-increasing in speed). Between speeds the limit is interpolated linearly;
        reversing is treated like driving forward at the same ``|v|``.
    tolerance : float
        The agreement tolerance it was derived with (0.10).
    params : QoloParams
        The drive limits (:func:`~sscity.mobility.kinematics.saturate_twist`) applied first.
    """

    config: str
    speeds_mps: tuple[float, ...]
    max_yaw_rates_radps: tuple[float, ...]
    tolerance: float = 0.10
    params: QoloParams = QOLO

    def __post_init__(self):
        speeds = np.asarray(self.speeds_mps, dtype=float)
        rates = np.asarray(self.max_yaw_rates_radps, dtype=float)
        if speeds.ndim != 1 or speeds.shape != rates.shape or len(speeds) < 2:
            raise ValueError("speeds_mps and max_yaw_rates_radps need the same length, at least 2.")
        if speeds[0] != 0.0 or np.any(np.diff(speeds) <= 0) or np.any(rates < 0):
            raise ValueError("speeds_mps must start at 0 and increase; yaw rates must be >= 0.")

    @property
    def max_spin_rate_radps(self) -> float:
        """The largest yaw rate on the spot (``v = 0``)."""
        return float(self.max_yaw_rates_radps[0])

    def max_yaw_rate(self, speed_mps) -> float:
        """The largest ``|omega|`` at forward speed ``|speed_mps|`` (linear interpolation).

        Beyond the last measured speed the last value is kept (the wheel limit of
        :meth:`clip` applies as well).
        """
        return float(np.interp(abs(float(speed_mps)), self.speeds_mps, self.max_yaw_rates_radps))

    def contains(self, speed_mps: float, yaw_rate_radps: float, slack: float = 1e-9) -> bool:
        """Whether a twist lies inside the envelope (and within the drive limits)."""
        v, w = float(speed_mps), float(yaw_rate_radps)
        vs, ws = saturate_twist(v, w, self.params)
        if abs(vs - v) > slack or abs(ws - w) > slack:
            return False
        return abs(w) <= self.max_yaw_rate(v) + slack

    def clip(self, speed_mps: float, yaw_rate_radps: float) -> tuple[float, float]:
        """Scale a twist down into the envelope, keeping its curvature ``omega / v``.

        First the drive limits (:func:`~sscity.mobility.kinematics.saturate_twist`), then the
        largest factor ``s <= 1`` with ``s |omega| <= max_yaw_rate(s |v|)``. Since the limit does
        not grow with speed, slowing down along the same arc always gets inside; on the spot
        (``v = 0``) only the yaw rate is capped.

        Examples
        --------
        >>> env = TwistEnvelope("demo", (0.0, 1.0), (3.0, 1.0))
        >>> env.clip(0.5, 1.0)          # inside: unchanged
        (0.5, 1.0)
        >>> v, w = env.clip(1.0, 2.0)   # radius 0.5 m kept: 2 s = 3 - 2 s -> s = 0.75
        >>> round(v, 4), round(w, 4)
        (0.75, 1.5)
        """
        v, w = saturate_twist(float(speed_mps), float(yaw_rate_radps), self.params)
        av, aw = abs(v), abs(w)
        if aw <= self.max_yaw_rate(av):
            return v, w
        if av == 0.0:
            return 0.0, math.copysign(self.max_spin_rate_radps, w)
        # Walk the polyline of (speed, limit) points; find where the ray s * (av, aw) leaves it.
        speeds, limits = self.speeds_mps, self.max_yaw_rates_radps
        scale = 0.0
        for k in range(len(speeds) - 1):
            v0, v1, g0, g1 = speeds[k], speeds[k + 1], limits[k], limits[k + 1]
            # On this segment the limit is g0 + slope * (s av - v0); solve s aw = that.
            slope = (g1 - g0) / (v1 - v0)
            denominator = aw - slope * av
            if denominator <= 0:
                continue
            s = (g0 - slope * v0) / denominator
            if v0 - 1e-12 <= s * av <= v1 + 1e-12:
                scale = s
                break
        else:
            # beyond the last speed the limit is flat
            scale = limits[-1] / aw
        scale = min(1.0, max(0.0, scale))
        return v * scale, w * scale

    def table(self):
        """The envelope as a DataFrame: speed, largest yaw rate, smallest turn radius."""
        import pandas as pd

        speeds = np.asarray(self.speeds_mps)
        rates = np.asarray(self.max_yaw_rates_radps)
        with np.errstate(divide="ignore"):
            radius = np.where(rates > 0, speeds / rates, np.inf)
        return pd.DataFrame(
            {"speed_mps": speeds, "max_yaw_rate_radps": rates, "min_turn_radius_m": radius}
        ).set_index("speed_mps")


def derive_envelope(
    config: str | QoloConfig = "seated",
    speeds_mps: Sequence[float] = ENVELOPE_SPEEDS_MPS,
    tolerance: float = 0.10,
    iterations: int = _ITERATIONS,
    margin: float = _MARGIN,
    params: QoloParams = QOLO,
    **sim_kwargs,
) -> TwistEnvelope:
    """Measure the envelope in the simulation (about 60 short runs; a few seconds).

    At each speed ``v`` of ``speeds_mps`` the yaw rate is bisected between 0 and the drive
    limit (4.124 rad/s, or less where the 95-rpm wheel limit binds) for the largest ``omega``
    whose achieved twist :func:`twist_agrees` with ``(v, omega)``, measured for left *and*
    right turns. The limits are then made non-increasing in speed (a faster row never allows
    more than a slower one) and multiplied by ``margin`` (0.95), because the table is
    interpolated between the measured speeds.
    """
    cfg = get_config(config)
    speeds = tuple(float(v) for v in speeds_mps)
    limits = []
    for v in speeds:
        upper = _yaw_upper_bound(v, params)

        def ok(w, v=v):
            if w == 0.0:
                return True
            return all(
                twist_agrees(
                    (v, sign * w),
                    measure_twist(v, sign * w, cfg, params=params, **sim_kwargs),
                    tolerance,
                    params,
                )
                for sign in (1.0, -1.0)
            )

        if ok(upper):
            limits.append(upper)
            continue
        low, high = 0.0, upper
        for _ in range(int(iterations)):
            middle = 0.5 * (low + high)
            low, high = (middle, high) if ok(middle) else (low, middle)
        limits.append(low)
    limits = list(np.minimum.accumulate(limits) * margin)
    return TwistEnvelope(cfg.name, speeds, tuple(round(float(x), 4) for x in limits), tolerance, params)


#: The envelopes of the default device (``QoloSim()`` defaults, :data:`~sscity.mobility.params.QOLO`),
#: as derived by ``derive_envelope(posture)`` and stored here. Re-derive with
#: ``python -m sscity.mobility.envelope --derive``.
MEASURED: dict[str, tuple[float, ...]] = {
    # speed (m/s):  0.0     0.25    0.5     0.75    1.0     1.25    1.5
    "empty": (3.9178, 3.9178, 3.5093, 2.6425, 1.7757, 0.9089, 0.0421),
    "seated": (3.1526, 2.5404, 2.0288, 1.6309, 1.1653, 0.9089, 0.0421),
    "standing": (2.9077, 2.2956, 1.7546, 1.4038, 0.9572, 0.6817, 0.0421),
}


@functools.lru_cache(maxsize=32)
def _derived(config: QoloConfig, params: QoloParams, sim_items: tuple) -> TwistEnvelope:
    return derive_envelope(config, params=params, **dict(sim_items))


def reachable_envelope(
    config: str | QoloConfig = "seated", params: QoloParams = QOLO, **sim_kwargs
) -> TwistEnvelope:
    """The reachable envelope of a posture: stored for the default device, else derived and cached.

    Parameters
    ----------
    config : {"seated", "standing", "empty"} or QoloConfig
    params : QoloParams, default QOLO
    **sim_kwargs
        Passed to :class:`~sscity.mobility.world.QoloSim` (e.g. ``wheel_friction=0.6``);
        any of them, or non-default ``params``, means the envelope is derived (a few seconds,
        once per combination).

    Examples
    --------
    >>> env = reachable_envelope("seated")
    >>> env.max_spin_rate_radps < QOLO.max_yaw_rate_radps       # not the published 4.124
    True
    """
    cfg = get_config(config)
    if not sim_kwargs and params == QOLO and cfg.name in MEASURED and cfg == get_config(cfg.name):
        return TwistEnvelope(cfg.name, ENVELOPE_SPEEDS_MPS, MEASURED[cfg.name], 0.10, QOLO)
    return _derived(cfg, params, tuple(sorted(sim_kwargs.items())))


def main(argv: Sequence[str] | None = None) -> None:
    """Print the examples of the module docstring and the stored envelopes (``--derive``: re-measure)."""
    import sys

    args = sys.argv[1:] if argv is None else list(argv)
    for config in ("seated", "standing"):
        for v, w in ((0.0, QOLO.max_yaw_rate_radps), saturate_twist(1.5, 5.0)):
            va, wa = measure_twist(v, w, config)
            print(
                f"{config:8s} commanded ({v:.2f} m/s, {w:.2f} rad/s) -> "
                f"achieved ({va:+.3f} m/s, {wa:.3f} rad/s)"
            )
    for config in ("empty", "seated", "standing"):
        env = derive_envelope(config) if "--derive" in args else reachable_envelope(config)
        print(f"{config}: max yaw rate (rad/s) at {env.speeds_mps} m/s:")
        print("   ", env.max_yaw_rates_radps)


if __name__ == "__main__":
    main()
