"""One crowd episode: the device drives to a goal 20 m ahead through a social-force crowd.

The loop, at three rates:

- **physics** at 240 Hz (pybullet's step): wheels, contacts with pedestrians and walls;
- **control** at ``control_hz`` (20 Hz): read the pose, compute a command, rate-limit it;
- **crowd** at the control rate: one social-force step (the device's capsule is an obstacle
  for the pedestrians), then every pedestrian body is moved to its new position.

Stepping the crowd at 20 Hz rather than 240 Hz is a deliberate trade: a pedestrian at
1.3 m/s jumps 6.5 cm per crowd step, which the device's 20-Hz controller could not see
anyway, and it lets a 60-s episode with 20 pedestrians run about 30 (a 2-core machine with
another job on the other core) to 48 (an idle one) times faster than real time on one core
(``benchmarks/bench_mobility.py``). The social force itself is stable
at this step (its fastest time scale is ``tau = 0.5 s``).

Controllers (``controller=``):

- ``"go_to_goal"`` -- proportional go-to-goal only, blind to people: a baseline that relies on
  the pedestrians to avoid it (pass ``pedestrians_avoid_device=False`` to see it collide);
- ``"safe_go_to_goal"`` -- the same behind the safety layer (slow down near people, stop
  inside the stop distance);
- ``"shared"`` -- a scripted user steers at the goal with a joystick (with a seeded, slowly
  wandering hand error), blended with avoidance by :class:`~sscity.mobility.control.SharedController`.

Every command is scaled into the device's *reachable envelope* (``envelope="auto"``: the twists
the simulated device with this posture actually follows, :mod:`~sscity.mobility.envelope`)
before the rate limiter: the nominal controller's and the scripted user's commands, and the
executed one. ``envelope=None`` keeps only the published drive limits (the behaviour before
the envelope existed).

The logged ``min_distance_m`` is measured to CrowdBot's evaluation capsule (``footprint=``,
default ``"crowdbot"``; see :mod:`~sscity.mobility.metrics`); the safety layer itself keeps the
RDS controller's capsule.

Everything random -- the crowd's start, the desired speeds, the scripted joystick -- comes
from ``numpy.random.default_rng(seed)``; the physics is deterministic, so the same seed gives
the same log, row for row.

Run ``python -m sscity.mobility.episode`` for one episode's metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import metrics as M
from .control import RateLimiter, SharedController, go_to_goal, safety_filter
from .crowd import HELBING_MOLNAR, SocialForceParams, capsule_segment, counterflow_scenario, crossing_scenario
from .crowd import step_crowd as _step_crowd
from .kinematics import wrap_angle
from .params import QOLO
from .world import QoloSim

__all__ = ["CONTROLLERS", "SCENARIOS", "TIPPED_OVER_DEG", "EpisodeResult", "episode_metrics", "run_episode"]

CONTROLLERS = ("go_to_goal", "safe_go_to_goal", "shared")
TIPPED_OVER_DEG = 45.0  # an episode ends if the device tilts further than this
SCENARIOS = {"crossing": crossing_scenario, "counterflow": counterflow_scenario}


@dataclass
class EpisodeResult:
    """What :func:`run_episode` returns.

    Attributes
    ----------
    log : DataFrame
        One row per control step: ``t_s``, ``x_m``, ``y_m``, ``theta_rad``, the user's command
        (``v_user_mps``, ``omega_user_radps``), the executed command (``v_cmd_mps``,
        ``omega_cmd_radps``), the measured twist (``v_mps``, ``omega_radps``),
        ``min_distance_m`` (capsule footprint to the nearest pedestrian centre),
        ``density_2_5`` and ``density_5`` (pedestrians per m^2), ``authority`` (shared control),
        ``contacts`` (cumulative physical contact onsets), ``tilt_deg`` (0 = upright; the
        episode stops if it exceeds 45 degrees: the device was knocked over).
    pedestrians_xy : ndarray, shape (T, N, 2)
        Pedestrian positions at every control step.
    metrics : dict
        CrowdBot-style metrics of the run (see :mod:`sscity.mobility.metrics`) plus
        ``contact_onsets`` (physical contacts in pybullet), ``max_tilt_deg``, ``tipped_over``
        and ``duration_s``.
    goal_xy : tuple
    frames : list of ndarray
        Rendered frames if ``frame_every_s`` was given.
    """

    log: pd.DataFrame
    pedestrians_xy: np.ndarray
    metrics: dict
    goal_xy: tuple
    frames: list = field(default_factory=list)


def _scripted_joystick(rng, pose, goal_xy, cruise_mps: float, wander: float, envelope=None):
    """A user pointing the joystick at the goal, with a slowly wandering aiming error.

    The joystick's range maps into the envelope (if given): a full deflection asks for no more
    than the device can follow.
    """
    x, y, theta = pose
    error = float(wrap_angle(np.arctan2(goal_xy[1] - y, goal_xy[0] - x) - theta)) + wander
    v = cruise_mps * max(np.cos(error), 0.0) * min(1.0, np.hypot(goal_xy[0] - x, goal_xy[1] - y))
    w = float(np.clip(1.5 * error, -QOLO.max_yaw_rate_radps, QOLO.max_yaw_rate_radps))
    return (v, w) if envelope is None else envelope.clip(v, w)


def run_episode(
    n_pedestrians: int = 20,
    duration_s: float = 60.0,
    seed: int = 0,
    controller: str = "safe_go_to_goal",
    scenario: str = "crossing",
    goal_xy=(20.0, 0.0),
    config: str = "seated",
    cruise_speed_mps: float = 1.0,
    control_hz: float = 20.0,
    stop_at_goal: bool = True,
    goal_tolerance_m: float = 0.5,
    slow_distance_m: float = 1.5,
    stop_distance_m: float = 0.3,
    social_force: SocialForceParams = HELBING_MOLNAR,
    frame_every_s: float | None = None,
    frame_size: tuple[int, int] = (240, 180),
    pedestrians_avoid_device: bool = True,
    envelope="auto",
    footprint="crowdbot",
) -> EpisodeResult:
    """Run one episode and return its log and metrics.

    Parameters
    ----------
    n_pedestrians : int, default 20
    duration_s : float, default 60
        Longest simulated time.
    seed : int, default 0
        Seeds the crowd and the scripted user.
    controller : {"go_to_goal", "safe_go_to_goal", "shared"}
    scenario : {"crossing", "counterflow"}
    goal_xy : (float, float), default (20, 0)
        The device starts at the origin facing +x.
    config : {"seated", "standing", "empty"}
    cruise_speed_mps : float, default 1.0
    control_hz : float, default 20
        Control and crowd rate; must divide 240 Hz into whole physics steps.
    stop_at_goal : bool, default True
        End the episode when the device is within ``goal_tolerance_m`` of the goal.
        ``False`` keeps simulating (the device stands) until ``duration_s``.
    slow_distance_m, stop_distance_m : float
        Safety-layer distances (capsule footprint to a pedestrian centre).
    social_force : SocialForceParams
    pedestrians_avoid_device : bool, default True
        Whether the device's capsule repels pedestrians (an obstacle in their social
        force). Switch it off to see what the device's own controller has to do alone:
        then the blind ``"go_to_goal"`` baseline collides.
    frame_every_s : float, optional
        Render a frame (pybullet's CPU renderer) every so many seconds, for a GIF.
    envelope : "auto", None or TwistEnvelope, default "auto"
        The twists commands are scaled into: ``"auto"`` is
        :func:`~sscity.mobility.envelope.reachable_envelope` of ``config``; ``None`` applies the
        published drive limits only.
    footprint : "crowdbot", "rds", Capsule or QoloParams, default "crowdbot"
        The capsule ``min_distance_m`` is measured to (CrowdBot's evaluation capsule).

    Returns
    -------
    EpisodeResult
    """
    if controller not in CONTROLLERS:
        raise ValueError(f"controller must be one of {CONTROLLERS}; got {controller!r}.")
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {sorted(SCENARIOS)}; got {scenario!r}.")
    if duration_s <= 0:
        raise ValueError("duration_s must be > 0.")
    physics_hz = 240
    steps_per_control = physics_hz / control_hz
    if control_hz <= 0 or abs(steps_per_control - round(steps_per_control)) > 1e-9:
        raise ValueError(
            f"control_hz must divide {physics_hz} Hz into whole steps (e.g. 10, 20, 30, 40, 60)."
        )
    steps_per_control = int(round(steps_per_control))
    dt = 1.0 / control_hz
    goal_xy = (float(goal_xy[0]), float(goal_xy[1]))

    rng = np.random.default_rng(seed)
    crowd_seed, user_seed = rng.integers(0, 2**31, size=2)
    crowd = SCENARIOS[scenario](n_pedestrians, seed=int(crowd_seed))
    user_rng = np.random.default_rng(int(user_seed))

    if isinstance(envelope, str):
        if envelope != "auto":
            raise ValueError(f"envelope must be 'auto', None or a TwistEnvelope; got {envelope!r}.")
        from .envelope import reachable_envelope

        envelope = reachable_envelope(config)
    capsule = M.get_capsule(footprint)
    limiter = RateLimiter(dt)
    shared = SharedController(
        slow_distance_m=slow_distance_m, stop_distance_m=stop_distance_m, envelope=envelope
    )
    n_control = int(np.floor(duration_s * control_hz + 1e-9))
    columns = [
        "t_s",
        "x_m",
        "y_m",
        "theta_rad",
        "v_user_mps",
        "omega_user_radps",
        "v_cmd_mps",
        "omega_cmd_radps",
        "v_mps",
        "omega_radps",
        "min_distance_m",
        "density_2_5",
        "density_5",
        "authority",
        "contacts",
        "tilt_deg",
    ]
    rows = np.zeros((n_control + 1, len(columns)))
    ped_log = np.zeros((n_control + 1, n_pedestrians, 2))
    frames = []
    frame_every = None if frame_every_s is None else max(1, int(round(frame_every_s * control_hz)))
    wander = 0.0

    with QoloSim(seed=seed, config=config) as sim:
        for xy in crowd.positions:
            sim.add_pedestrian(xy)
        k = 0
        while True:
            pose, (v_meas, w_meas), tilt_rad = sim.state()
            tilt_deg = float(np.degrees(tilt_rad))
            people = crowd.positions
            d = M.capsule_distance(pose, people, capsule) if n_pedestrians else np.array([np.inf])
            near = np.linalg.norm(people - pose[:2], axis=1) if n_pedestrians else np.array([])
            # --- controller ---------------------------------------------------------------
            authority = 0.0
            if controller == "shared":
                wander = 0.97 * wander + 0.03 * user_rng.normal(0.0, 0.6)
                user = _scripted_joystick(user_rng, pose, goal_xy, cruise_speed_mps, wander, envelope)
                command, authority = shared(user, pose, people)
            else:
                user = go_to_goal(
                    pose,
                    goal_xy,
                    max_speed_mps=cruise_speed_mps,
                    goal_tolerance_m=goal_tolerance_m,
                    envelope=envelope,
                )
                command = user
                if controller == "safe_go_to_goal":
                    # scaling both v and omega down keeps a twist inside the envelope
                    command = safety_filter(*user, pose, people, slow_distance_m, stop_distance_m)
            v_cmd, w_cmd = limiter(*command)
            rows[k] = (
                sim.time_s,
                pose[0],
                pose[1],
                pose[2],
                user[0],
                user[1],
                v_cmd,
                w_cmd,
                v_meas,
                w_meas,
                float(d.min()),
                np.count_nonzero(near < 2.5) / (np.pi * 2.5**2),
                np.count_nonzero(near < 5.0) / (np.pi * 5.0**2),
                authority,
                sim.total_contact_onsets,
                tilt_deg,
            )
            ped_log[k] = people
            if frame_every is not None and k % frame_every == 0:
                from .render import render_frame

                frames.append(render_frame(sim, *frame_size))
            done_goal = (
                stop_at_goal and np.hypot(goal_xy[0] - pose[0], goal_xy[1] - pose[1]) < goal_tolerance_m
            )
            tipped = tilt_deg > TIPPED_OVER_DEG
            if k == n_control or done_goal or tipped:
                break
            # --- crowd, then physics ----------------------------------------------------------
            if n_pedestrians:
                obstacles = [capsule_segment(pose)] if pedestrians_avoid_device else []
                crowd = _step_crowd(crowd, dt, obstacles, social_force)
                sim.move_pedestrians(crowd.positions)
            sim.step(v_cmd, w_cmd, n_steps=steps_per_control)
            k += 1

    log = pd.DataFrame(rows[: k + 1], columns=columns)
    log["contacts"] = log["contacts"].astype(int)
    return EpisodeResult(
        log, ped_log[: k + 1], episode_metrics(log, goal_xy, cruise_speed_mps), goal_xy, frames
    )


def episode_metrics(log: pd.DataFrame, goal_xy, v_max_mps: float = 1.0) -> dict:
    """CrowdBot-style metrics of an episode log (see :class:`EpisodeResult` for the columns).

    Path efficiency uses ``v_max_mps`` (the cruise speed); fluency is normalised by the
    device's limits (1.5 m/s, 4.124 rad/s) rather than by the run's largest command as in the
    CrowdBot code, so runs with different controllers compare on one scale; agreement and
    contribution compare the user's (or the nominal controller's) command with the executed one.
    ``jerk`` and ``relative_jerk`` (:func:`~sscity.mobility.metrics.relative_jerk`) are taken on
    the executed command from its first non-zero sample to the point closest to the goal, as
    CrowdBot does.
    """
    t = log["t_s"].to_numpy()
    poses = log[["x_m", "y_m", "theta_rad"]].to_numpy()
    out = M.time_and_path_to_goal(t, poses, goal_xy, v_max_mps=v_max_mps)
    v, w = log["v_cmd_mps"].to_numpy(), log["omega_cmd_radps"].to_numpy()
    vu, wu = log["v_user_mps"].to_numpy(), log["omega_user_radps"].to_numpy()
    moving = (v != 0) | (w != 0)
    if moving.sum() >= 2:
        out.update(M.fluency(v, w, QOLO.max_speed_mps, QOLO.max_yaw_rate_radps))
    first = int(np.argmax(moving)) if moving.any() else 0
    if out["end_index"] - first >= 2:
        cut = slice(first, out["end_index"] + 1)
        jerk = M.relative_jerk(t[cut], v[cut], w[cut])
        out["jerk"] = jerk["jerk"]
        out["relative_jerk"] = jerk["relative_jerk"]
    if ((vu != 0) | (wu != 0)).any():
        out["agreement"] = M.agreement(vu, wu, v, w)
        out["contribution"] = M.contribution(vu, wu, v, w)
    d = log["min_distance_m"].to_numpy()
    finite = np.isfinite(d)
    out["min_distance_m"] = float(d[finite].min()) if finite.any() else float("inf")
    out["virtual_collisions"] = M.virtual_collisions(d) if finite.any() else 0
    out["normalised_proximity"] = M.normalised_proximity(d) if finite.any() else float("nan")
    out["mean_density_2_5"] = float(log["density_2_5"].mean())
    out["mean_density_5"] = float(log["density_5"].mean())
    if out["path_length_m"] > 0 and out["end_index"] >= 1:
        out["path_irregularity"] = M.path_irregularity(poses[: out["end_index"] + 1], goal_xy)
    out["contact_onsets"] = int(log["contacts"].iloc[-1])
    out["max_tilt_deg"] = float(log["tilt_deg"].max())
    out["tipped_over"] = bool(out["max_tilt_deg"] > TIPPED_OVER_DEG)
    out["duration_s"] = float(t[-1])
    return out


def main() -> None:
    """Compare the three controllers on the same crowd."""
    for controller in CONTROLLERS:
        result = run_episode(n_pedestrians=20, duration_s=60, seed=3, controller=controller)
        m = result.metrics
        print(
            f"{controller:16s} reached={m['reached']!s:5s} t={m['time_to_goal_s']:5.1f} s  "
            f"rel.path={m['relative_path_length']:.3f}  min d={m['min_distance_m']:+.2f} m  "
            f"virtual collisions={m['virtual_collisions']}  contacts={m['contact_onsets']}  "
            f"fluency={m.get('fluency', float('nan')):.3f}  agreement={m.get('agreement', float('nan')):.3f}"
        )


if __name__ == "__main__":
    main()
