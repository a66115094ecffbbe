"""Mobility in simulation (module 04): a Qolo-like standing wheelchair among people.

One idea per file, each runnable (``python -m sscity.mobility.<file>``):

=============  =================================================================================
``params``     Qolo's published parameters (:data:`QOLO`) and the seated / standing
               configurations (:class:`QoloConfig`), published vs assumed said plainly
``kinematics`` differential drive: wheels <-> twist, curvature-keeping saturation, acceleration
               limits, exact arc integration of the unicycle
``world``      :class:`QoloSim`, a headless pybullet world built from primitives: the device,
               kinematic pedestrians, walls, ramps, curbs; contact onsets and clearances
``envelope``   the twists the simulated device with a rider actually follows, measured:
               :func:`reachable_envelope` per posture, clipping that keeps the curvature
``control``    rate limiter, go-to-goal, pure pursuit, a safety layer, shared control
``crowd``      a transparent numpy social-force model (Helbing & Molnar 1995) and seeded
               scenarios
``metrics``    CrowdBot-style metrics: path efficiency, fluency, agreement, contribution,
               crowd density, capsule distance (CrowdBot's capsule by default), virtual
               collisions, proximity, irregularity, relative jerk
``stability``  static tip-over margins: braking limits seated vs standing, on slopes
``render``     headless camera frames, PNG / GIF (holding the last frame), a frame strip,
               a top-down matplotlib plot
``episode``    :func:`run_episode`: device + social-force crowd + controller -> log and metrics
``routing``    accessible routing on the SYNTHETIC ``tsukuba-sidewalks`` network: who is
               left behind
=============  =================================================================================

Units are SI and in the names (``speed_mps``, ``yaw_rate_radps``, ``slope_percent``); poses are
``(x_m, y_m, theta_rad)``; GeoJSON coordinates are ``[lon, lat]``. Every random choice takes a
seed. Nothing downloads anything: the world is built from primitives, the data are in the
repository.

Example
-------
>>> from sscity.mobility import run_episode
>>> result = run_episode(n_pedestrians=10, duration_s=20, seed=1)   # doctest: +SKIP
>>> result.metrics["min_distance_m"]                                  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

# The public API, by module. Submodules are imported on first use (PEP 562), so that
# ``import sscity.mobility`` is quick, routing works without loading pybullet, and
# ``python -m sscity.mobility.<module>`` runs each file's example cleanly.
_API = {
    "params": (
        "CONFIGS",
        "QOLO",
        "QoloConfig",
        "QoloParams",
        "get_config",
    ),
    "kinematics": (
        "body_twist",
        "integrate_unicycle",
        "limit_acceleration",
        "rollout",
        "saturate_twist",
        "wheel_speeds",
        "wrap_angle",
    ),
    "world": (
        "ContactEvent",
        "QoloSim",
    ),
    "envelope": (
        "TwistEnvelope",
        "derive_envelope",
        "measure_twist",
        "reachable_envelope",
        "twist_agrees",
    ),
    "control": (
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
    ),
    "crowd": (
        "HELBING_MOLNAR",
        "CrowdState",
        "SocialForceParams",
        "capsule_segment",
        "counterflow_scenario",
        "crossing_scenario",
        "obstacle_forces",
        "pedestrian_forces",
        "social_forces",
        "step_crowd",
    ),
    "metrics": (
        "CROWDBOT_CAPSULE",
        "RDS_CAPSULE",
        "Capsule",
        "agreement",
        "capsule_distance",
        "command_jerk",
        "contribution",
        "crowd_density",
        "fluency",
        "normalised_proximity",
        "path_irregularity",
        "path_length",
        "relative_jerk",
        "time_and_path_to_goal",
        "virtual_collisions",
    ),
    "stability": (
        "max_safe_acceleration",
        "max_safe_deceleration",
        "stability_table",
        "static_margin",
        "tip_over_deceleration",
        "tip_over_slope_percent",
    ),
    "render": (
        "capsule_outline",
        "frame_strip",
        "plot_scene",
        "render_frame",
        "save_gif",
        "save_png",
    ),
    "episode": (
        "CONTROLLERS",
        "SCENARIOS",
        "EpisodeResult",
        "episode_metrics",
        "run_episode",
    ),
    "routing": (
        "PROFILES",
        "AccessProfile",
        "NoRouteError",
        "Route",
        "accessible_route",
        "accessible_subgraph",
        "barrier_table",
        "compare_routes",
        "edge_barriers",
        "find_node",
        "load_sidewalks",
        "reachability",
        "shortest_route",
        "sidewalks_gdf",
    ),
}
_WHERE = {name: module for module, names in _API.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'sscity.mobility' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
