"""A transparent social-force crowd (Helbing & Molnar, Phys. Rev. E 51, 4282, 1995), in numpy.

Each pedestrian ``a`` accelerates towards its goal at its desired speed and is pushed away
by the others and by obstacles:

    dv_a/dt = (v0_a e_a - v_a) / tau  +  sum_b w(a, b) f_ab  +  sum_B f_aB

- **Driving**: ``e_a`` points at the goal, ``v0_a`` is the desired speed, ``tau = 0.5 s``.
- **Pedestrian repulsion**: ``f_ab = -grad_r V(b)`` with ``V(b) = V0 exp(-b / sigma)``,
  ``V0 = 2.1 m^2/s^2``, ``sigma = 0.3 m``. The potential has elliptical equipotentials
  stretched along the other's step ``s_b = |v_b| dt_step e_b``:
  ``2 b = sqrt((|r| + |r - s_b|)^2 - |s_b|^2)`` with ``r = r_a - r_b``. The gradient is
  analytic: ``grad_r b = (|r| + |r - s|) / (4 b) * (r/|r| + (r - s)/|r - s|)``;
  for ``s = 0``, ``b = |r|`` and ``f_ab = (V0 / sigma) exp(-|r| / sigma) r/|r|``.
- **Field of view**: a force whose source lies outside +-100 degrees of ``e_a`` (tested, as
  in the paper, on ``-f_ab``) is weighted by 0.5.
- **Obstacle repulsion**: ``f_aB = (U0 / R) exp(-d / R) n`` with ``U0 = 10 m^2/s^2``,
  ``R = 0.2 m``, ``d`` the distance to the obstacle's surface and ``n`` the unit vector from
  its nearest point. Obstacles are segments with a radius: walls (radius 0) and the device's
  capsule footprint (radius 0.4 m).
- **Speed cap**: ``|v_a| <= 1.3 v0_a``. Integration: semi-implicit Euler
  (``v += dt F`` then ``x += dt v``).

``step_time_s`` (the ``dt_step`` in ``s_b``) is 0.4 s, the value used by Kreiss's
``socialforce`` package (MIT); the reference leaves it open. Desired speeds are drawn from
N(1.34, 0.26^2) m/s, Helbing & Molnar's figures, clipped to [0.8, 1.8] m/s.

Pedestrians that reach their goal turn round and walk back to where they came from, so a
scene keeps its density for as long as the episode lasts.

Run ``python -m sscity.mobility.crowd`` to print a few steps of a crossing flow.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .params import QOLO, QoloParams

__all__ = [
    "CrowdState",
    "SocialForceParams",
    "capsule_segment",
    "counterflow_scenario",
    "crossing_scenario",
    "desired_directions",
    "obstacle_forces",
    "pedestrian_forces",
    "social_forces",
    "step_crowd",
]


@dataclass(frozen=True)
class SocialForceParams:
    """Helbing-Molnar parameters (SI units; forces are per unit mass, m/s^2)."""

    tau_s: float = 0.5
    v0_m2ps2: float = 2.1
    sigma_m: float = 0.3
    u0_m2ps2: float = 10.0
    r_m: float = 0.2
    fov_deg: float = 100.0
    out_of_view_weight: float = 0.5
    max_speed_factor: float = 1.3
    step_time_s: float = 0.4


HELBING_MOLNAR = SocialForceParams()


@dataclass(frozen=True)
class CrowdState:
    """Positions, velocities and goals of ``n`` pedestrians (arrays with ``n`` rows).

    ``origins`` is where each pedestrian walks back to after reaching its goal.
    """

    positions: np.ndarray  # (n, 2) m
    velocities: np.ndarray  # (n, 2) m/s
    goals: np.ndarray  # (n, 2) m
    origins: np.ndarray  # (n, 2) m
    desired_speeds: np.ndarray  # (n,) m/s

    def __post_init__(self):
        n = len(self.positions)
        for name in ("positions", "velocities", "goals", "origins"):
            if np.shape(getattr(self, name)) != (n, 2):
                raise ValueError(f"CrowdState.{name} must have shape ({n}, 2).")
        if np.shape(self.desired_speeds) != (n,):
            raise ValueError(f"CrowdState.desired_speeds must have shape ({n},).")

    def __len__(self) -> int:
        return len(self.positions)


def _norm(v: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("...j,...j->...", v, v))


def _unit(v: np.ndarray, eps: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    norm = _norm(v)
    return v / np.maximum(norm, eps)[..., None], norm


def desired_directions(positions, goals) -> np.ndarray:
    """Unit vectors from each position to its goal (zero at the goal)."""
    unit, norm = _unit(np.asarray(goals, float) - np.asarray(positions, float))
    return np.where(norm[:, None] > 1e-12, unit, 0.0)


def pedestrian_forces(
    positions, velocities, directions, params: SocialForceParams = HELBING_MOLNAR, pairwise: bool = False
) -> np.ndarray:
    """Repulsion between pedestrians, field-of-view weighted; ``(n, 2)`` (or ``(n, n, 2)``).

    Parameters
    ----------
    positions, velocities, directions : arrays of shape (n, 2)
        ``directions`` are the desired directions ``e`` (unit vectors).
    pairwise : bool, default False
        Return the weighted force of every ``b`` on every ``a`` (``[a, b]``) instead of the sum.
    """
    pos = np.asarray(positions, dtype=float)
    vel = np.asarray(velocities, dtype=float)
    e = np.asarray(directions, dtype=float)
    n = len(pos)
    if n < 2:
        return np.zeros((n, n, 2)) if pairwise else np.zeros((n, 2))
    # x and y components kept apart: (n, n) arrays indexed [a, b], as in the formulas.
    rx = pos[:, 0, None] - pos[None, :, 0]  # r = r_a - r_b
    ry = pos[:, 1, None] - pos[None, :, 1]
    step = np.hypot(vel[:, 0], vel[:, 1]) * params.step_time_s  # |s_b| = |v_b| dt_step
    sx, sy = step * e[:, 0], step * e[:, 1]  # s_b along b's desired direction
    qx, qy = rx - sx[None, :], ry - sy[None, :]  # r - s_b
    r_norm = np.maximum(np.hypot(rx, ry), 1e-12)
    q_norm = np.maximum(np.hypot(qx, qy), 1e-12)
    total = r_norm + q_norm
    b = np.maximum(0.5 * np.sqrt(np.maximum(total**2 - (step**2)[None, :], 0.0)), 1e-9)
    # f = -grad V(b) = (V0 / sigma) exp(-b / sigma) * (|r| + |r - s|) / (4 b) * (r/|r| + (r - s)/|r - s|)
    coef = params.v0_m2ps2 / params.sigma_m * np.exp(-b / params.sigma_m) * total / (4.0 * b)
    fx = coef * (rx / r_norm + qx / q_norm)
    fy = coef * (ry / r_norm + qy / q_norm)
    np.fill_diagonal(fx, 0.0)
    np.fill_diagonal(fy, 0.0)
    # Field of view: is the source (direction -f) within +-phi of e_a?
    toward = -(e[:, 0, None] * fx + e[:, 1, None] * fy)
    weight = np.where(
        toward >= np.hypot(fx, fy) * np.cos(np.radians(params.fov_deg)), 1.0, params.out_of_view_weight
    )
    fx, fy = weight * fx, weight * fy
    if pairwise:
        return np.stack([fx, fy], axis=-1)
    return np.stack([fx.sum(axis=1), fy.sum(axis=1)], axis=-1)


def capsule_segment(pose, params: QoloParams = QOLO) -> tuple[np.ndarray, np.ndarray, float]:
    """The device's capsule footprint as ``(front_point, rear_point, radius_m)`` in the world."""
    x, y, theta = (float(a) for a in pose)
    heading = np.array([np.cos(theta), np.sin(theta)])
    centre = np.array([x, y])
    return (
        centre + params.footprint_front_m * heading,
        centre + params.footprint_rear_m * heading,
        params.footprint_radius_m,
    )


def obstacle_forces(positions, obstacles, params: SocialForceParams = HELBING_MOLNAR) -> np.ndarray:
    """Repulsion from obstacles, ``(n, 2)``.

    Parameters
    ----------
    positions : array, shape (n, 2)
    obstacles : sequence of ``(start_xy, end_xy, radius_m)``
        Segments with a radius: a wall is ``((x0, y0), (x1, y1), 0.0)``, a round obstacle a
        zero-length segment, the device :func:`capsule_segment`.
    """
    p = np.asarray(positions, dtype=float)
    total = np.zeros_like(p)
    for start, end, radius in obstacles:
        a, b = np.asarray(start, float), np.asarray(end, float)
        ab = b - a
        denom = float(ab @ ab)
        t = np.zeros(len(p)) if denom == 0 else np.clip((p - a) @ ab / denom, 0.0, 1.0)
        away = p - (a + t[:, None] * ab)
        unit, dist = _unit(away)
        surface = dist - float(radius)
        total += (params.u0_m2ps2 / params.r_m * np.exp(-surface / params.r_m))[:, None] * unit
    return total


def social_forces(state: CrowdState, obstacles=(), params: SocialForceParams = HELBING_MOLNAR) -> np.ndarray:
    """Total social force (per unit mass, m/s^2) on every pedestrian, ``(n, 2)``."""
    e = desired_directions(state.positions, state.goals)
    driving = (state.desired_speeds[:, None] * e - state.velocities) / params.tau_s
    return (
        driving
        + pedestrian_forces(state.positions, state.velocities, e, params)
        + obstacle_forces(state.positions, obstacles, params)
    )


def step_crowd(
    state: CrowdState,
    dt_s: float,
    obstacles=(),
    params: SocialForceParams = HELBING_MOLNAR,
    arrival_m: float = 0.5,
) -> CrowdState:
    """Advance the crowd by ``dt_s`` (semi-implicit Euler, speed capped at 1.3 v0).

    Pedestrians within ``arrival_m`` of their goal swap goal and origin (walk back).
    Returns a new :class:`CrowdState`; the input is not modified.
    """
    if not dt_s > 0:
        raise ValueError(f"dt_s must be > 0; got {dt_s!r}.")
    force = social_forces(state, obstacles, params)
    v = state.velocities + dt_s * force
    v_max = params.max_speed_factor * state.desired_speeds
    speed = _norm(v)
    v *= np.minimum(1.0, v_max / np.maximum(speed, 1e-12))[:, None]
    x = state.positions + dt_s * v
    arrived = _norm(state.goals - x) < arrival_m
    goals = np.where(arrived[:, None], state.origins, state.goals)
    origins = np.where(arrived[:, None], state.goals, state.origins)
    return replace(state, positions=x, velocities=v, goals=goals, origins=origins)


def _desired_speeds(rng, n: int) -> np.ndarray:
    return np.clip(rng.normal(1.34, 0.26, n), 0.8, 1.8)


def _spread(rng, n: int, low, high, min_separation_m: float, keep_out=None) -> np.ndarray:
    """``n`` points uniform in the box [low, high], at least ``min_separation_m`` apart.

    ``keep_out = (centre_xy, radius_m)`` excludes a disc (e.g. around the device's start).
    """
    low, high = np.asarray(low, float), np.asarray(high, float)
    points: list[np.ndarray] = []
    for _ in range(200 * max(n, 1)):
        if len(points) == n:
            break
        candidate = rng.uniform(low, high)
        if keep_out is not None and np.linalg.norm(candidate - np.asarray(keep_out[0])) < keep_out[1]:
            continue
        if all(np.linalg.norm(candidate - q) >= min_separation_m for q in points):
            points.append(candidate)
    if len(points) < n:
        raise ValueError(
            f"Cannot place {n} pedestrians {min_separation_m} m apart in the box "
            f"{low.tolist()}-{high.tolist()}; use fewer pedestrians or a larger area."
        )
    return np.array(points).reshape(n, 2)


def crossing_scenario(
    n_pedestrians: int = 20,
    seed: int = 0,
    x_range_m=(3.0, 17.0),
    half_width_m: float = 6.0,
    device_start_xy=(0.0, 0.0),
) -> CrowdState:
    """Pedestrians crossing the device's path (the x axis) in both directions along y.

    Each walks between ``y = -half_width_m`` and ``+half_width_m`` at a fixed ``x`` drawn in
    ``x_range_m``; half go north first, half south. Starting positions are spread over the
    area, at least 0.6 m apart and 1.5 m from the device's start.
    """
    _check_n(n_pedestrians)
    rng = np.random.default_rng(seed)
    pos = _spread(
        rng,
        n_pedestrians,
        (x_range_m[0], -half_width_m),
        (x_range_m[1], half_width_m),
        0.6,
        (device_start_xy, 1.5),
    )
    north = rng.permutation(np.arange(n_pedestrians) % 2 == 0)
    sign = np.where(north, 1.0, -1.0)
    goals = np.c_[pos[:, 0], sign * half_width_m]
    origins = np.c_[pos[:, 0], -sign * half_width_m]
    speeds = _desired_speeds(rng, n_pedestrians)
    velocities = np.c_[np.zeros(n_pedestrians), sign * speeds]
    return CrowdState(pos, velocities, goals, origins, speeds)


def counterflow_scenario(
    n_pedestrians: int = 20,
    seed: int = 0,
    length_m: float = 22.0,
    half_width_m: float = 2.5,
    device_start_xy=(0.0, 0.0),
) -> CrowdState:
    """Pedestrians walking along the x axis in both directions in a corridor ``|y| <= half_width_m``.

    Half walk towards ``+x`` (with the device), half towards ``-x`` (against it), between
    ``x = -1`` and ``x = length_m - 1``.
    """
    _check_n(n_pedestrians)
    rng = np.random.default_rng(seed)
    x0, x1 = -1.0, length_m - 1.0
    pos = _spread(rng, n_pedestrians, (x0, -half_width_m), (x1, half_width_m), 0.6, (device_start_xy, 1.5))
    east = rng.permutation(np.arange(n_pedestrians) % 2 == 0)
    goals = np.c_[np.where(east, x1, x0), pos[:, 1]]
    origins = np.c_[np.where(east, x0, x1), pos[:, 1]]
    speeds = _desired_speeds(rng, n_pedestrians)
    velocities = np.c_[np.where(east, 1.0, -1.0) * speeds, np.zeros(n_pedestrians)]
    return CrowdState(pos, velocities, goals, origins, speeds)


def _check_n(n: int) -> None:
    if int(n) != n or n < 0:
        raise ValueError(f"n_pedestrians must be a whole number >= 0; got {n!r}.")


def main() -> None:
    """Five seconds of a crossing flow of 10 pedestrians around a parked device."""
    state = crossing_scenario(10, seed=1)
    device = [capsule_segment((0.0, 0.0, 0.0))]
    for k in range(101):
        if k % 25 == 0:
            speed = np.linalg.norm(state.velocities, axis=1)
            print(
                f"t={k * 0.05:4.2f} s  mean speed {speed.mean():.2f} m/s  "
                f"first pedestrian at {np.round(state.positions[0], 2)}"
            )
        state = step_crowd(state, 0.05, device)


if __name__ == "__main__":
    main()
