"""Controllers for a differential-drive device: small pure functions and two tiny classes.

Every controller returns a body twist ``(speed_mps, yaw_rate_radps)``; chain them:

    intent  ->  (go_to_goal | pure_pursuit | a user's joystick)
            ->  shared_control   (blend the user's intent with avoidance)
            ->  safety_filter    (slow down near people, stop inside the stop distance)
            ->  envelope.clip    (the twists the device can follow with its rider)
            ->  RateLimiter      (acceleration limits: 1.5 m/s^2, 4.5 rad/s^2)
            ->  QoloSim.step     (wheel speed limit, physics)

The published limits (1.5 m/s, 4.124 rad/s) are the real robot's controller settings; in the
simulation a device with a rider cannot follow every twist within them (it slides when it
turns hard, see :mod:`~sscity.mobility.envelope`). Every controller here takes an optional
``envelope=`` (a :class:`~sscity.mobility.envelope.TwistEnvelope`, e.g.
``reachable_envelope("seated")``) and then scales its command into it, keeping the curvature.
Without one they saturate at the published limits only, as before.

- :func:`go_to_goal` -- proportional on distance and heading error, saturated.
- :func:`pure_pursuit` -- follow a polyline by steering onto the arc through a point a
  lookahead distance ahead along the path: curvature ``kappa = 2 sin(alpha) / L_d``.
- :func:`safety_scale` / :func:`safety_filter` -- a speed factor from the smallest distance
  between the capsule footprint and any person the commanded motion *approaches*
  (:func:`approach_clearance`): 1 beyond ``slow_distance_m``, falling linearly to 0 at
  ``stop_distance_m``. Both ``v`` and ``omega`` are scaled by the same factor, so the path's
  curvature is kept. People the device moves away from do not slow it down, so a device
  stopped in front of someone can still turn or back away.
- :func:`avoidance_twist` -- the user's twist with the yaw rate bent away from people ahead
  (a repulsive "potential" on the bearing), speed scaled by the safety factor.
- :func:`shared_control` -- ``u = (1 - a) u_user + a u_avoid`` with the assistant's
  authority ``a`` rising from ``min_authority`` (free space) to 1 (a person at the stop
  distance). This is a simple *weighted blend*, not Qolo's RDS (a constrained optimisation);
  it shows the idea and gives non-trivial agreement and contribution metrics.

Run ``python -m sscity.mobility.control`` to see a go-to-goal rollout on ideal kinematics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .kinematics import limit_acceleration, saturate_twist, wrap_angle
from .metrics import capsule_distance
from .params import QOLO, QoloParams

__all__ = [
    "RateLimiter",
    "SharedController",
    "approach_clearance",
    "avoidance_twist",
    "go_to_goal",
    "lookahead_point",
    "pure_pursuit",
    "safety_filter",
    "safety_scale",
    "shared_control",
]


class RateLimiter:
    """Track a commanded twist within the acceleration limits (a first-order rate limiter).

    Parameters
    ----------
    dt_s : float
        Control period in seconds.
    params : QoloParams, default QOLO
        ``max_accel_mps2`` and ``max_yaw_accel_radps2``.

    Examples
    --------
    >>> limiter = RateLimiter(dt_s=0.5)
    >>> limiter(1.0, 0.0)          # 1.5 m/s^2 * 0.5 s
    (0.75, 0.0)
    """

    def __init__(self, dt_s: float, params: QoloParams = QOLO):
        if not dt_s > 0:
            raise ValueError(f"dt_s must be > 0 seconds; got {dt_s!r}.")
        self.dt_s = float(dt_s)
        self.params = params
        self.reset()

    def reset(self, speed_mps: float = 0.0, yaw_rate_radps: float = 0.0) -> None:
        """Set the current twist (default: standing still)."""
        self.speed_mps = float(speed_mps)
        self.yaw_rate_radps = float(yaw_rate_radps)

    def __call__(self, speed_mps: float, yaw_rate_radps: float) -> tuple[float, float]:
        self.speed_mps, self.yaw_rate_radps = limit_acceleration(
            speed_mps, yaw_rate_radps, self.speed_mps, self.yaw_rate_radps, self.dt_s, self.params
        )
        return self.speed_mps, self.yaw_rate_radps


def go_to_goal(
    pose,
    goal_xy,
    k_speed: float = 0.8,
    k_heading: float = 2.5,
    max_speed_mps: float | None = None,
    goal_tolerance_m: float = 0.1,
    params: QoloParams = QOLO,
    envelope=None,
) -> tuple[float, float]:
    """Drive towards a goal point: proportional on distance and on heading error.

    ``v = min(k_speed * rho, v_max) * max(cos(alpha), 0)`` and ``omega = k_heading * alpha``,
    with ``rho`` the distance to the goal and ``alpha`` the heading error, then saturated
    (curvature kept). The ``cos`` factor makes the device turn on the spot first when the goal
    is behind it.

    Parameters
    ----------
    pose : (x_m, y_m, theta_rad)
    goal_xy : (x_m, y_m)
    k_speed : float, default 0.8
        Speed gain, 1/s.
    k_heading : float, default 2.5
        Heading gain, 1/s.
    max_speed_mps : float, optional
        Cruise speed (default: the device's ``max_speed_mps``).
    goal_tolerance_m : float, default 0.1
        Closer than this, the command is zero.
    envelope : TwistEnvelope, optional
        If given, the command is then scaled into it (curvature kept).

    Notes
    -----
    On ideal kinematics behind a :class:`RateLimiter` the default gains settle on the goal
    without swinging. On the simulated device (:class:`~sscity.mobility.world.QoloSim`, seated,
    starting with the goal behind it) the heading overshoots: spinning at about 3.4 rad/s the
    tyres slide. That overshoot is a property of this simulation model with its stated and
    assumed parameters (rider's centre of mass behind the axle, frictionless caster at an
    assumed position, tyre friction 1.0), not of the controller alone and not a measurement
    of Qolo; passing ``envelope=reachable_envelope("seated")`` reduces it.

    Examples
    --------
    >>> go_to_goal([0, 0, 0], [10, 0], max_speed_mps=1.0)
    (1.0, 0.0)
    """
    x, y, theta = (float(v) for v in pose)
    dx, dy = goal_xy[0] - x, goal_xy[1] - y
    rho = float(np.hypot(dx, dy))
    if rho < goal_tolerance_m:
        return 0.0, 0.0
    v_max = params.max_speed_mps if max_speed_mps is None else float(max_speed_mps)
    alpha = float(wrap_angle(np.arctan2(dy, dx) - theta))
    v = min(k_speed * rho, v_max) * max(np.cos(alpha), 0.0)
    return _within(saturate_twist(v, k_heading * alpha, params), envelope)


def _within(twist: tuple[float, float], envelope) -> tuple[float, float]:
    """``envelope.clip(*twist)`` if an envelope is given, else the twist unchanged."""
    return twist if envelope is None else envelope.clip(*twist)


def lookahead_point(path_xy, position_xy, lookahead_m: float) -> tuple[np.ndarray, bool]:
    """The point ``lookahead_m`` further along the path than the point closest to ``position_xy``.

    Returns
    -------
    point : ndarray, shape (2,)
    at_end : bool
        True if the path ends before the lookahead distance (the point is the path's end).
    """
    path = np.asarray(path_xy, dtype=float)
    if path.ndim != 2 or path.shape[1] != 2 or len(path) < 2:
        raise ValueError("path_xy must have shape (n, 2) with n >= 2.")
    if lookahead_m <= 0:
        raise ValueError("lookahead_m must be > 0.")
    p = np.asarray(position_xy, dtype=float)[:2]
    a, b = path[:-1], path[1:]
    seg = b - a
    seg_len = np.linalg.norm(seg, axis=1)
    t = np.clip(np.einsum("ij,ij->i", p - a, seg) / np.maximum(seg_len**2, 1e-12), 0.0, 1.0)
    closest = a + t[:, None] * seg
    i = int(np.argmin(np.linalg.norm(closest - p, axis=1)))
    # Arc length from the projection to each vertex after it.
    remaining = lookahead_m
    point, along = closest[i], seg_len[i] * (1.0 - t[i])
    k = i
    while remaining > along:
        remaining -= along
        k += 1
        if k >= len(seg):
            return path[-1].copy(), True
        point, along = a[k], seg_len[k]
    direction = seg[k] / max(seg_len[k], 1e-12)
    return point + remaining * direction, False


def pure_pursuit(
    pose,
    path_xy,
    lookahead_m: float = 1.0,
    speed_mps: float = 1.0,
    goal_tolerance_m: float = 0.2,
    params: QoloParams = QOLO,
    envelope=None,
) -> tuple[float, float]:
    """Follow a polyline with pure pursuit.

    The device steers onto the circular arc through the lookahead point:
    ``kappa = 2 sin(alpha) / L_d`` with ``alpha`` the bearing of the point in the body frame
    and ``L_d`` its distance; ``omega = v kappa``. Near the path's end the speed falls in
    proportion to the remaining distance, and it stops within ``goal_tolerance_m``. With an
    ``envelope``, the command is then scaled into it (curvature kept).

    Examples
    --------
    >>> v, w = pure_pursuit([0, 0, 0], [[0, 0], [10, 0]], speed_mps=1.0)
    >>> round(v, 3), round(w, 3)
    (1.0, 0.0)
    """
    x, y, theta = (float(v) for v in pose)
    target, at_end = lookahead_point(path_xy, (x, y), lookahead_m)
    dx, dy = target[0] - x, target[1] - y
    distance = float(np.hypot(dx, dy))
    if at_end and distance < goal_tolerance_m:
        return 0.0, 0.0
    alpha = float(wrap_angle(np.arctan2(dy, dx) - theta))
    v = speed_mps if not at_end else min(speed_mps, speed_mps * distance / lookahead_m + 0.05)
    if abs(alpha) > np.pi / 2:  # the point is behind: turn towards it first
        return _within(saturate_twist(0.0, np.sign(alpha) * params.max_yaw_rate_radps / 2, params), envelope)
    curvature = 2.0 * np.sin(alpha) / max(distance, 1e-9)
    return _within(saturate_twist(v, v * curvature, params), envelope)


def safety_scale(distance_m, slow_distance_m: float = 1.5, stop_distance_m: float = 0.3):
    """Speed factor from a clearance: 1 beyond ``slow_distance_m``, 0 within ``stop_distance_m``.

    Linear in between. Works on arrays.

    Examples
    --------
    >>> safety_scale([2.0, 0.9, 0.2])
    array([1. , 0.5, 0. ])
    """
    if not 0 <= stop_distance_m < slow_distance_m:
        raise ValueError("Need 0 <= stop_distance_m < slow_distance_m.")
    d = np.asarray(distance_m, dtype=float)
    out = np.clip((d - stop_distance_m) / (slow_distance_m - stop_distance_m), 0.0, 1.0)
    return float(out) if out.ndim == 0 else out


def _closing(pose, speed_mps: float, yaw_rate_radps: float, people_xy, params: QoloParams):
    """Capsule distance to each person and the speed at which the twist closes in on them.

    For each person, take the nearest point ``c`` of the capsule's axis and its velocity
    under the twist, ``v_c = v h + omega e_z x (c - axle)``; the closing speed is the
    component of ``v_c`` towards the person (negative when moving away).
    """
    people = np.asarray(people_xy, dtype=float).reshape(-1, 2)
    x, y, theta = (float(v) for v in pose)
    c, s = np.cos(theta), np.sin(theta)
    dx, dy = people[:, 0] - x, people[:, 1] - y
    along = c * dx + s * dy
    across = -s * dx + c * dy
    on_segment = np.clip(along, params.footprint_rear_m, params.footprint_front_m)
    # Body frame: the axis point (on_segment, 0) moves at (v, omega * on_segment).
    nx_, ny_ = along - on_segment, across
    norm = np.maximum(np.hypot(nx_, ny_), 1e-12)
    closing = (nx_ * speed_mps + ny_ * yaw_rate_radps * on_segment) / norm
    return norm - params.footprint_radius_m, closing


def approach_clearance(
    pose, speed_mps: float, yaw_rate_radps: float, people_xy, params: QoloParams = QOLO
) -> float:
    """Smallest capsule distance to the people the twist ``(v, omega)`` moves *towards*.

    People the device moves away from -- or passes side by side -- do not count. Returns
    ``inf`` when nobody counts (or there is nobody).

    Examples
    --------
    >>> round(approach_clearance([0, 0, 0], 1.0, 0.0, [[1.25, 0.0], [-1.2, 0.0]]), 3)   # only the one ahead
    0.8
    """
    if len(np.asarray(people_xy).reshape(-1, 2)) == 0:
        return float("inf")
    distance, closing = _closing(pose, speed_mps, yaw_rate_radps, people_xy, params)
    relevant = closing > 1e-12
    return float(distance[relevant].min()) if relevant.any() else float("inf")


def safety_filter(
    speed_mps: float,
    yaw_rate_radps: float,
    pose,
    people_xy,
    slow_distance_m: float = 1.5,
    stop_distance_m: float = 0.3,
    max_closing_mps: float = 1.0,
    params: QoloParams = QOLO,
) -> tuple[float, float]:
    """Slow a twist down so that it closes in on nobody too fast; stop inside the stop distance.

    For each person at capsule distance ``d``, the speed at which the device may close in on
    them is ``max_closing_mps * safety_scale(d)``: full beyond ``slow_distance_m``, zero inside
    ``stop_distance_m``. The twist is multiplied by the largest factor ``s <= 1`` that keeps
    every closing speed within its limit. Both ``v`` and ``omega`` get the same factor, so the
    path's curvature is kept. Driving straight at someone is slowed most; passing them
    side by side hardly at all; moving away not at all -- so a device stopped in front of a
    person can still turn or back away.

    Examples
    --------
    >>> v, w = safety_filter(1.0, 0.2, [0, 0, 0], [[1.25, 0.0]])   # capsule distance 0.8 m
    >>> round(v, 4), round(w, 4)
    (0.4167, 0.0833)
    """
    v, w = float(speed_mps), float(yaw_rate_radps)
    if len(np.asarray(people_xy).reshape(-1, 2)) == 0 or (v == 0 and w == 0):
        return v, w
    distance, closing = _closing(pose, v, w, people_xy, params)
    allowed = max_closing_mps * safety_scale(distance, slow_distance_m, stop_distance_m)
    approaching = closing > 1e-12
    if not approaching.any():
        return v, w
    scale = min(1.0, float(np.min(allowed[approaching] / closing[approaching])))
    return v * scale, w * scale


def avoidance_twist(
    speed_mps: float,
    yaw_rate_radps: float,
    pose,
    people_xy,
    influence_m: float = 2.5,
    k_turn: float = 3.0,
    slow_distance_m: float = 1.5,
    stop_distance_m: float = 0.3,
    params: QoloParams = QOLO,
    envelope=None,
) -> tuple[float, float]:
    """The user's twist bent away from the people ahead.

    Each person ahead (bearing within +-90 degrees) within ``influence_m`` (capsule distance)
    pushes the heading away with weight ``1 - d / influence_m``, signed by the side the person
    is on: the yaw rate gets ``-k_turn * sum(weight * sign(bearing) * cos(bearing))`` (a person
    dead ahead turns the device right, by convention, so the result is deterministic). The
    result is saturated (and scaled into ``envelope`` if one is given), then passes
    :func:`safety_filter`.
    """
    people = np.asarray(people_xy, dtype=float).reshape(-1, 2)
    v, w = float(speed_mps), float(yaw_rate_radps)
    if len(people) == 0:
        return v, w
    x, y, theta = (float(a) for a in pose)
    distance = capsule_distance((x, y, theta), people, params)
    bearing = wrap_angle(np.arctan2(people[:, 1] - y, people[:, 0] - x) - theta)
    ahead = (np.abs(bearing) < np.pi / 2) & (distance < influence_m)
    weight = np.where(ahead, 1.0 - np.clip(distance, 0.0, None) / influence_m, 0.0)
    side = np.where(bearing >= 0, 1.0, -1.0)
    w_avoid = w - k_turn * float(np.sum(weight * side * np.cos(bearing)))
    v, w_avoid = _within(saturate_twist(v, w_avoid, params), envelope)
    return safety_filter(v, w_avoid, pose, people, slow_distance_m, stop_distance_m, params=params)


def shared_control(
    user_twist: Sequence[float], avoid_twist: Sequence[float], authority: float
) -> tuple[float, float]:
    """Weighted blend ``(1 - a) * user + a * avoid`` of two twists, ``a`` in [0, 1].

    Examples
    --------
    >>> shared_control((1.0, 0.0), (0.5, 1.0), 0.5)
    (0.75, 0.5)
    """
    if not 0.0 <= authority <= 1.0:
        raise ValueError(f"authority must be within [0, 1]; got {authority!r}.")
    return (
        (1.0 - authority) * float(user_twist[0]) + authority * float(avoid_twist[0]),
        (1.0 - authority) * float(user_twist[1]) + authority * float(avoid_twist[1]),
    )


class SharedController:
    """Shared control: a user's joystick intent blended with avoidance, then a safety layer.

    The assistant's authority grows as people come closer:
    ``a = min_authority + (1 - min_authority) * (1 - safety_scale(d, influence_m, stop_distance_m))``,
    where ``d`` is the capsule distance to the nearest person the *user's* twist moves towards
    (:func:`approach_clearance`). The blended twist then
    passes :func:`safety_filter`, so the device still stops inside the stop distance whatever
    the user asks.

    Parameters
    ----------
    min_authority : float, default 0.2
        Share of the assistant's twist in free space.
    influence_m, stop_distance_m, slow_distance_m : float
        Distances of :func:`avoidance_twist` and :func:`safety_filter`.
    envelope : TwistEnvelope, optional
        If given, the avoidance twist and the result are scaled into it (curvature kept).

    Returns (from ``__call__``)
    ---------------------------
    (speed_mps, yaw_rate_radps), authority
    """

    def __init__(
        self,
        min_authority: float = 0.2,
        influence_m: float = 2.5,
        slow_distance_m: float = 1.5,
        stop_distance_m: float = 0.3,
        k_turn: float = 3.0,
        params: QoloParams = QOLO,
        envelope=None,
    ):
        if not 0.0 <= min_authority <= 1.0:
            raise ValueError("min_authority must be within [0, 1].")
        self.min_authority = min_authority
        self.influence_m = influence_m
        self.slow_distance_m = slow_distance_m
        self.stop_distance_m = stop_distance_m
        self.k_turn = k_turn
        self.params = params
        self.envelope = envelope

    def __call__(self, user_twist: Sequence[float], pose, people_xy) -> tuple[tuple[float, float], float]:
        v_u, w_u = (float(a) for a in user_twist)
        avoid = avoidance_twist(
            v_u,
            w_u,
            pose,
            people_xy,
            self.influence_m,
            self.k_turn,
            self.slow_distance_m,
            self.stop_distance_m,
            self.params,
            self.envelope,
        )
        clearance = approach_clearance(pose, v_u, w_u, people_xy, self.params)
        closeness = 1.0 - safety_scale(clearance, self.influence_m, self.stop_distance_m)
        authority = self.min_authority + (1.0 - self.min_authority) * closeness
        v, w = shared_control((v_u, w_u), avoid, authority)
        v, w = safety_filter(
            v, w, pose, people_xy, self.slow_distance_m, self.stop_distance_m, params=self.params
        )
        return _within(saturate_twist(v, w, self.params), self.envelope), authority


def main() -> None:
    """Go to a goal 5 m ahead and 3 m left on ideal kinematics, with a rate limiter at 20 Hz."""
    from .kinematics import integrate_unicycle

    dt = 0.05
    limiter = RateLimiter(dt)
    pose = np.zeros(3)
    for k in range(400):
        v, w = limiter(*go_to_goal(pose, (5.0, 3.0), max_speed_mps=1.0))
        pose = integrate_unicycle(pose, v, w, dt)
        if k % 40 == 0:
            print(f"t={k * dt:4.1f} s  pose={np.round(pose, 3)}  v={v:.2f} m/s  w={w:+.2f} rad/s")
    print("final pose:", np.round(pose, 3))


if __name__ == "__main__":
    main()
