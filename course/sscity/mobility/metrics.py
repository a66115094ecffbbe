"""Crowd-navigation metrics in the style of the CrowdBot evaluation (EPFL LASA, MIT licence).

The CrowdBot project drove Qolo through real crowds and scored every run with a few numbers
(``epfl-lasa/crowdbot-evaluation-tools``; sources in the facts table of module 04's README):

=========================  ====================================================================
path efficiency            time and path to a goal 20 m ahead, reached within 3.0 m;
                           relative path length ``L_path / L_goal`` (>= 1, 1 is a straight
                           line), relative time ``(L_goal / v_max) / T_goal`` (<= 1)
command smoothness         fluency ``mean_k [1 - |v_k - v_(k-1)| / v_max]``, the same for
                           ``omega``; the lower of the two is reported
shared control             agreement ``mean [1 - |theta_r - theta_u| / pi]`` with
                           ``theta = atan2(v / v_max, omega / omega_max)``; contribution
                           ``mean ||u_h - u_r|| / ||u_h||`` on normalised commands
crowd                      density ``rho_R = N(d < R) / (pi R^2)`` for R = 2.5 m and 5 m;
                           minimum distance from the capsule footprint to any pedestrian
                           centre; virtual collisions (times that distance drops below 0);
                           normalised proximity ``std(d_min) / mean(d_min)``
path shape                 path irregularity: (total rotation - rotation needed) / path length
command jerk               relative jerk: the time-averaged norm of the jerk of the commanded
                           ``(v, omega)``, divided by a baseline (:func:`relative_jerk`)
=========================  ====================================================================

Sources: Paez-Granados, He, Gonon, Jia, Leibe, Suzuki, Billard, "Pedestrian-Robot
Interactions on Autonomous Crowd Navigation: Reactive Control Methods and Evaluation
Metrics", IROS 2022 (arXiv:2208.02121), and its evaluation code,
https://github.com/epfl-lasa/crowdbot-evaluation-tools (``qolo/metrics/metric_crowd.py``,
``qolo/metrics/metric_qolo_perf.py``, ``qolo/twist2npy.py``, ``qolo/utils/process_util.py``).

**Which capsule.** Two footprints of Qolo are published. The CrowdBot *evaluation* measures
distances to the capsule from +0.18 m to -0.5 m along the body with radius 0.45 m
(``Capsule(0.18, -0.5, 0.45)`` in ``metric_crowd.py``); the RDS *controller* (Gonon et al.,
RA-L 2021) keeps people off a smaller capsule, +0.05 m to -0.5 m with radius 0.4 m
(:data:`~sscity.mobility.params.QOLO`). The metrics here default to CrowdBot's capsule,
:data:`CROWDBOT_CAPSULE`, so that minimum distances, virtual collisions and proximity are
comparable with the CrowdBot papers (the RDS capsule gives distances 0.05-0.18 m larger);
pass ``footprint="rds"`` (or :data:`RDS_CAPSULE`, or a :class:`~sscity.mobility.params.QoloParams`)
for the controller's capsule. The controllers and the physics broad phase keep the RDS
capsule, as the real controller does. Two details of the original code: its segment is
measured from the robot frame's origin, taken here as the axle centre; and its crowd metric
passes robot-frame detections straight to ``distanceLocal``, whose segment runs along the
local *y* axis, while ``distanceGlobal`` first rotates the heading onto that axis -- we follow
``distanceGlobal``: the segment runs along the heading.

Choices where the reference leaves room (each says what the original code does):

- ``L_goal`` is the straight-line distance from the start to the point of the run closest to
  the goal, as in the CrowdBot code; the run ends at that point.
- The agreement wraps the angle difference into ``[0, pi]`` so it stays in ``[0, 1]``
  (the original does not wrap).
- The contribution uses the norm ratio for every sample with a non-zero user command (the
  original special-cases commands with one zero component).
- Samples where the user command is zero are skipped by agreement, contribution and
  fluency, as in the original.

All functions take plain numpy arrays, so they work on logs from the simulator, from a
real robot, or on hand-made trajectories.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .params import QOLO, QoloParams

__all__ = [
    "CROWDBOT_CAPSULE",
    "CROWDBOT_JERK_BASELINE",
    "DENSITY_RADII_M",
    "GOAL_REACHED_M",
    "RDS_CAPSULE",
    "Capsule",
    "agreement",
    "capsule_distance",
    "command_jerk",
    "contribution",
    "crowd_density",
    "fluency",
    "get_capsule",
    "normalised_proximity",
    "path_irregularity",
    "path_length",
    "relative_jerk",
    "time_and_path_to_goal",
    "virtual_collisions",
]

GOAL_REACHED_M = 3.0
DENSITY_RADII_M = (2.5, 5.0)
#: ``baseline`` default of ``compute_rel_jerk`` in CrowdBot's ``metric_qolo_perf.py``; the code
#: does not say which run it comes from. Units: those of the jerk norm (m/s^3 and rad/s^3 mixed).
CROWDBOT_JERK_BASELINE = 13.80


@dataclass(frozen=True)
class Capsule:
    """A capsule footprint: points within ``radius_m`` of the segment from ``front_m`` to ``rear_m``.

    The segment runs along the body's x axis (the heading), measured from the axle centre.
    """

    front_m: float
    rear_m: float
    radius_m: float
    name: str = ""

    def __post_init__(self):
        if not (self.radius_m > 0 and self.front_m >= self.rear_m):
            raise ValueError("A capsule needs radius_m > 0 and front_m >= rear_m.")


#: CrowdBot's evaluation capsule (``metric_crowd.py``): +0.18 m to -0.5 m, radius 0.45 m.
CROWDBOT_CAPSULE = Capsule(0.18, -0.5, 0.45, "crowdbot")
#: The RDS controller's capsule (Gonon et al., RA-L 2021): +0.05 m to -0.5 m, radius 0.4 m.
RDS_CAPSULE = Capsule(QOLO.footprint_front_m, QOLO.footprint_rear_m, QOLO.footprint_radius_m, "rds")


def get_capsule(footprint="crowdbot") -> Capsule:
    """A :class:`Capsule` from ``"crowdbot"``, ``"rds"``, a Capsule, or a QoloParams (its footprint)."""
    if isinstance(footprint, Capsule):
        return footprint
    if isinstance(footprint, QoloParams):
        return Capsule(footprint.footprint_front_m, footprint.footprint_rear_m, footprint.footprint_radius_m)
    if footprint == "crowdbot":
        return CROWDBOT_CAPSULE
    if footprint == "rds":
        return RDS_CAPSULE
    raise ValueError(f"Unknown footprint {footprint!r}: use 'crowdbot', 'rds', a Capsule or a QoloParams.")


def _as_xy(xy, name: str = "xy") -> np.ndarray:
    xy = np.asarray(xy, dtype=float)
    if xy.ndim != 2 or xy.shape[1] < 2:
        raise ValueError(f"{name} must be an array of shape (n, 2) (or poses (n, 3)); got {xy.shape}.")
    return xy[:, :2]


def path_length(xy) -> float:
    """Length of a polyline ``sum ||p_(k+1) - p_k||`` in metres; ``xy`` has shape ``(n, 2)``."""
    xy = _as_xy(xy)
    return float(np.linalg.norm(np.diff(xy, axis=0), axis=1).sum())


def time_and_path_to_goal(
    t_s, xy, goal_xy, v_max_mps: float = QOLO.max_speed_mps, reached_m: float = GOAL_REACHED_M
) -> dict:
    """Time and path to the goal, and their relative (dimensionless) versions.

    The run ends at the sample closest to the goal; the goal counts as reached if that
    sample is within ``reached_m`` (3.0 m in CrowdBot).

    Parameters
    ----------
    t_s : array, shape (n,)
        Time stamps in seconds, increasing.
    xy : array, shape (n, 2) or (n, 3)
        Positions (poses are accepted; the heading is ignored).
    goal_xy : (float, float)
    v_max_mps : float, default 1.5
        The nominal top speed of the run (CrowdBot uses the largest commanded speed).
    reached_m : float, default 3.0

    Returns
    -------
    dict with ``reached`` (bool), ``end_index``, ``min_distance_to_goal_m``,
    ``time_to_goal_s``, ``path_length_m``, ``goal_distance_m`` (``L_goal``),
    ``relative_path_length`` (``L_path / L_goal``) and ``relative_time_to_goal``
    (``(L_goal / v_max) / T_goal``).

    Examples
    --------
    >>> t = np.arange(0, 18.5, 0.5)
    >>> xy = np.c_[t, 0 * t]                      # 1 m/s straight at a goal 20 m ahead
    >>> r = time_and_path_to_goal(t, xy, (20, 0), v_max_mps=1.0)
    >>> r["reached"], r["relative_path_length"], r["relative_time_to_goal"]
    (True, 1.0, 1.0)
    """
    t = np.asarray(t_s, dtype=float)
    xy = _as_xy(xy)
    if len(t) != len(xy) or len(t) < 2:
        raise ValueError("t_s and xy need the same length, at least 2 samples.")
    if v_max_mps <= 0:
        raise ValueError("v_max_mps must be > 0.")
    to_goal = np.linalg.norm(xy - np.asarray(goal_xy, dtype=float), axis=1)
    end = int(np.argmin(to_goal))
    length = path_length(xy[: end + 1])
    duration = float(t[end] - t[0])
    l_goal = float(np.linalg.norm(xy[end] - xy[0]))
    return {
        "reached": bool(to_goal[end] <= reached_m),
        "end_index": end,
        "min_distance_to_goal_m": float(to_goal[end]),
        "time_to_goal_s": duration,
        "path_length_m": length,
        "goal_distance_m": l_goal,
        "relative_path_length": length / l_goal if l_goal > 0 else float("nan"),
        "relative_time_to_goal": (l_goal / v_max_mps) / duration if duration > 0 else float("nan"),
    }


def fluency(
    speed_mps, yaw_rate_radps, v_max_mps: float | None = None, omega_max_radps: float | None = None
) -> dict:
    """Smoothness of a command sequence; 1 is perfectly steady.

    ``fluency_v = mean_k [1 - |v_k - v_(k-1)| / v_max]`` over the samples whose command is
    not zero, likewise ``fluency_omega``; ``fluency`` is the lower of the two.

    Parameters
    ----------
    speed_mps, yaw_rate_radps : array, shape (n,)
        Commands in sequence (at a fixed rate).
    v_max_mps, omega_max_radps : float, optional
        Normalisers; default the largest ``|v|`` and ``|omega|`` in the data (as in
        CrowdBot).

    Returns
    -------
    dict with ``fluency``, ``fluency_v``, ``fluency_omega``.
    """
    v = np.asarray(speed_mps, dtype=float)
    w = np.asarray(yaw_rate_radps, dtype=float)
    if v.shape != w.shape or v.ndim != 1 or len(v) < 2:
        raise ValueError("speed_mps and yaw_rate_radps must be 1-D, equally long, at least 2 samples.")
    v_max = float(np.max(np.abs(v))) if v_max_mps is None else float(v_max_mps)
    w_max = float(np.max(np.abs(w))) if omega_max_radps is None else float(omega_max_radps)
    active = ((v != 0) | (w != 0))[1:]
    if not active.any():
        raise ValueError("All commands are zero: fluency is undefined.")
    fv = 1.0 - np.abs(np.diff(v))[active] / v_max if v_max > 0 else np.ones(active.sum())
    fw = 1.0 - np.abs(np.diff(w))[active] / w_max if w_max > 0 else np.ones(active.sum())
    out = {"fluency_v": float(fv.mean()), "fluency_omega": float(fw.mean())}
    out["fluency"] = min(out["fluency_v"], out["fluency_omega"])
    return out


def _normalised(v, w, v_max, w_max):
    v = np.asarray(v, dtype=float)
    w = np.asarray(w, dtype=float)
    if v.shape != w.shape or v.ndim != 1:
        raise ValueError("Commands must be 1-D arrays of equal length.")
    return v / v_max, w / w_max


def agreement(
    user_speed_mps,
    user_yaw_rate_radps,
    robot_speed_mps,
    robot_yaw_rate_radps,
    v_max_mps: float = QOLO.max_speed_mps,
    omega_max_radps: float = QOLO.max_yaw_rate_radps,
) -> float:
    """How much the executed command points where the user's did; 1 = always the same direction.

    ``mean [1 - |theta_r - theta_u| / pi]`` with ``theta = atan2(v / v_max, omega / omega_max)``,
    the angle difference wrapped into ``[0, pi]``, over samples with a non-zero user command.

    Examples
    --------
    >>> agreement([1, 1], [0, 0], [1, -1], [0, 0])   # same, then opposite direction
    0.5
    """
    vu, wu = _normalised(user_speed_mps, user_yaw_rate_radps, v_max_mps, omega_max_radps)
    vr, wr = _normalised(robot_speed_mps, robot_yaw_rate_radps, v_max_mps, omega_max_radps)
    active = (vu != 0) | (wu != 0)
    if not active.any():
        raise ValueError("The user command is zero throughout: agreement is undefined.")
    diff = np.abs(np.arctan2(vr, wr) - np.arctan2(vu, wu))
    diff = np.minimum(diff, 2.0 * np.pi - diff)
    return float(np.mean(1.0 - diff[active] / np.pi))


def contribution(
    user_speed_mps,
    user_yaw_rate_radps,
    robot_speed_mps,
    robot_yaw_rate_radps,
    v_max_mps: float = QOLO.max_speed_mps,
    omega_max_radps: float = QOLO.max_yaw_rate_radps,
) -> float:
    """How much the assistant changed the user's command: ``mean ||u_h - u_r|| / ||u_h||``.

    Commands are normalised, ``u = (v / v_max, omega / omega_max)``; samples with a zero user
    command are skipped. 0 means the robot executed exactly what the user asked.

    Examples
    --------
    >>> contribution([1.0, 1.0], [0, 0], [0.5, 1.0], [0, 0])
    0.25
    """
    vu, wu = _normalised(user_speed_mps, user_yaw_rate_radps, v_max_mps, omega_max_radps)
    vr, wr = _normalised(robot_speed_mps, robot_yaw_rate_radps, v_max_mps, omega_max_radps)
    human = np.hypot(vu, wu)
    active = human > 0
    if not active.any():
        raise ValueError("The user command is zero throughout: contribution is undefined.")
    return float(np.mean(np.hypot(vu - vr, wu - wr)[active] / human[active]))


def capsule_distance(pose, points_xy, params="crowdbot") -> np.ndarray:
    """Distance from points to the device's capsule footprint (negative inside).

    The capsule is the set of points within a radius of a segment along the body's x axis.
    By default it is CrowdBot's evaluation capsule, +0.18 m to -0.5 m with radius 0.45 m
    (:data:`CROWDBOT_CAPSULE`; see the module docstring for why). Pedestrians count as points
    (their centres), as in CrowdBot.

    Parameters
    ----------
    pose : array, shape (3,) or (T, 3)
        ``(x_m, y_m, theta_rad)`` of the axle centre.
    points_xy : array, shape (N, 2) or (T, N, 2)
        Pedestrian positions (one set, or one set per pose).
    params : "crowdbot", "rds", Capsule or QoloParams, default "crowdbot"
        The footprint. A :class:`~sscity.mobility.params.QoloParams` means its own
        ``footprint_*`` fields (the RDS controller's capsule for :data:`QOLO`), as the
        controllers pass it.

    Returns
    -------
    ndarray, shape (N,) or (T, N)

    Examples
    --------
    >>> capsule_distance([0, 0, 0], [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    array([0.37, 0.05, 0.55])
    >>> capsule_distance([0, 0, 0], [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], "rds")
    array([0.55, 0.1 , 0.6 ])
    """
    capsule = get_capsule(params)
    pose = np.asarray(pose, dtype=float)
    points = np.asarray(points_xy, dtype=float)
    if pose.shape[-1] != 3 or points.shape[-1] != 2:
        raise ValueError("pose must end in (x, y, theta) and points_xy in (x, y).")
    if pose.ndim == 2:
        pose = pose[:, None, :]
        if points.ndim == 2:
            points = np.broadcast_to(points, (pose.shape[0], *points.shape))
    x, y, theta = pose[..., 0], pose[..., 1], pose[..., 2]
    dx, dy = points[..., 0] - x, points[..., 1] - y
    c, s = np.cos(theta), np.sin(theta)
    along = c * dx + s * dy  # body x
    across = -s * dx + c * dy  # body y
    on_segment = np.clip(along, capsule.rear_m, capsule.front_m)
    return np.hypot(along - on_segment, across) - capsule.radius_m


def virtual_collisions(distances_m) -> int:
    """Number of times a distance drops below zero (a run starting below zero counts once).

    ``distances_m`` is a series ``(T,)`` -- e.g. the minimum capsule distance per time step --
    or ``(T, N)``, one column per pedestrian, whose onsets are summed.

    Examples
    --------
    >>> virtual_collisions([0.5, 0.1, -0.05, -0.1, 0.2, -0.01, 0.3])
    2
    """
    d = np.asarray(distances_m, dtype=float)
    if d.ndim not in (1, 2) or len(d) == 0:
        raise ValueError("distances_m must be a non-empty series (T,) or table (T, N).")
    inside = d < 0
    onsets = inside[1:] & ~inside[:-1]
    return int(onsets.sum() + inside[0].sum())


def normalised_proximity(min_distances_m) -> float:
    """``std(d_min) / mean(d_min)`` of the per-step minimum distance (dimensionless)."""
    d = np.asarray(min_distances_m, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0 or d.mean() == 0:
        raise ValueError("normalised_proximity needs finite distances with a non-zero mean.")
    return float(d.std() / d.mean())


def crowd_density(xy, pedestrians_xy, radius_m: float = 2.5) -> np.ndarray:
    """Pedestrians per square metre within ``radius_m`` of the device: ``N(d < R) / (pi R^2)``.

    Parameters
    ----------
    xy : array, shape (2,) or (T, 2) (poses accepted)
        Device position(s); distances are measured from the axle centre, as in CrowdBot.
    pedestrians_xy : array, shape (N, 2) or (T, N, 2)

    Returns
    -------
    float or ndarray of shape (T,)

    Examples
    --------
    >>> round(float(crowd_density([0, 0], [[1, 0], [0, 2], [3, 0]], 2.5)), 4)   # 2 / (pi 2.5^2)
    0.1019
    """
    if radius_m <= 0:
        raise ValueError("radius_m must be > 0.")
    xy = np.asarray(xy, dtype=float)[..., :2]
    peds = np.asarray(pedestrians_xy, dtype=float)
    if xy.ndim == 2:
        xy = xy[:, None, :]
    d = np.linalg.norm(peds - xy, axis=-1)
    density = (d < radius_m).sum(axis=-1) / (np.pi * radius_m**2)
    return float(density) if np.ndim(density) == 0 else density


def path_irregularity(poses, goal_xy) -> float:
    """``(total rotation - rotation needed) / path length`` in rad/m; 0 for a straight shot.

    Total rotation is ``sum |dtheta|`` of the (unwrapped) heading; the rotation needed is the
    angle between the initial heading and the direction from the start to the goal.

    Examples
    --------
    >>> poses = [[0, 0, 0], [1, 0, 0], [2, 0, 0]]
    >>> path_irregularity(poses, (5, 0))
    0.0
    """
    poses = np.asarray(poses, dtype=float)
    if poses.ndim != 2 or poses.shape[1] != 3 or len(poses) < 2:
        raise ValueError("poses must have shape (n, 3) with n >= 2: (x_m, y_m, theta_rad).")
    heading = np.unwrap(poses[:, 2])
    total = float(np.abs(np.diff(heading)).sum())
    to_goal = np.asarray(goal_xy, dtype=float) - poses[0, :2]
    needed = abs(float(np.angle(np.exp(1j * (np.arctan2(to_goal[1], to_goal[0]) - poses[0, 2])))))
    length = path_length(poses[:, :2])
    if length == 0:
        raise ValueError("The path has zero length: path irregularity is undefined.")
    return (total - needed) / length


def command_jerk(t_s, speed_mps, yaw_rate_radps) -> tuple[np.ndarray, np.ndarray]:
    """Jerk of a command sequence as CrowdBot computes it: two ``np.gradient`` passes.

    ``a = np.gradient(v, t)``, then ``j = np.gradient(a, t)`` (second-order central
    differences inside, one-sided differences at both ends), for ``v`` and for ``omega``
    (``compute_motion_derivative`` in CrowdBot's ``process_util.py``, applied twice in
    ``twist2npy.py``). Returns ``(jerk_v, jerk_omega)`` in m/s^3 and rad/s^3.
    """
    t = np.asarray(t_s, dtype=float)
    v = np.asarray(speed_mps, dtype=float)
    w = np.asarray(yaw_rate_radps, dtype=float)
    if t.ndim != 1 or v.shape != t.shape or w.shape != t.shape or len(t) < 3:
        raise ValueError("t_s, speed_mps and yaw_rate_radps must be 1-D, equally long, at least 3 samples.")
    if np.any(np.diff(t) <= 0):
        raise ValueError("t_s must increase strictly.")
    return np.gradient(np.gradient(v, t), t), np.gradient(np.gradient(w, t), t)


def relative_jerk(t_s, speed_mps, yaw_rate_radps, baseline: float = CROWDBOT_JERK_BASELINE) -> dict:
    """CrowdBot's relative jerk of a command sequence (smaller = smoother).

    As ``compute_rel_jerk`` in CrowdBot's ``metric_qolo_perf.py`` defines it, on the
    commanded twist sampled at times ``t_0 .. t_(n-1)``:

    1. jerks ``j_v``, ``j_omega`` by :func:`command_jerk` (two ``np.gradient`` passes);
    2. ``J = sum_(k=1)^(n-2) ||(j_v[k], j_omega[k])|| (t[k+1] - t[k])`` -- a time integral of
       the jerk's norm that leaves out the first and the last sample, as the original loop does;
    3. ``jerk = J / (t[n-1] - t[0])``, the time-averaged jerk, and
       ``relative_jerk = jerk / baseline``.

    The norm adds m/s^3 and rad/s^3 as CrowdBot does. The baseline (13.80) is the original
    code's default, without a stated origin: compare relative jerks only among runs scored
    with the same baseline. (CrowdBot cuts the series to the run from the first non-zero
    command to the point closest to the goal; pass that slice.)

    Returns
    -------
    dict with ``jerk`` (time-averaged, mixed units per s^3), ``jerk_integral`` (``J``),
    ``duration_s`` and ``relative_jerk``.

    Examples
    --------
    >>> t = np.arange(7) * 0.5
    >>> r = relative_jerk(t, [0, 0, 0, 1, 1, 1, 1], np.zeros(7), baseline=1.0)
    >>> round(r["jerk_integral"], 6), round(r["jerk"], 6)      # 4 x |1| x 0.5 s, over 3 s
    (2.0, 0.666667)
    """
    if not baseline > 0:
        raise ValueError("baseline must be > 0.")
    t = np.asarray(t_s, dtype=float)
    jv, jw = command_jerk(t, speed_mps, yaw_rate_radps)
    norm = np.hypot(jv, jw)
    integral = float(np.sum(norm[1:-1] * np.diff(t)[1:]))
    duration = float(t[-1] - t[0])
    jerk = integral / duration
    return {"jerk": jerk, "jerk_integral": integral, "duration_s": duration, "relative_jerk": jerk / baseline}
