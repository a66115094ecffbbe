"""Module 04: the numbers its prose quotes from the simulation and the synthetic network are
what ``sscity.mobility`` computes.

Each case quotes the exact phrase of a lesson, assignment or README cell and recomputes the
number with the course's own code (see ``tests/prose_facts.py``): the pybullet world, the
controllers, the crowd episodes, the static tip-over model and the synthetic sidewalk
network. Real-world figures that come from sources are listed in the module README's facts
table. The episodes are the lesson's (20 pedestrians, 40 s, seed 0); each is run once.
"""

from __future__ import annotations

import math
from functools import cache

import networkx as nx
import numpy as np
import pytest
from prose_facts import check_quoted
from sscity.mobility import (
    CONFIGS,
    QOLO,
    QoloSim,
    RateLimiter,
    accessible_route,
    barrier_table,
    body_twist,
    find_node,
    integrate_unicycle,
    load_sidewalks,
    max_safe_deceleration,
    reachability,
    rollout,
    run_episode,
    saturate_twist,
    shortest_route,
    wheel_speeds,
)
from sscity.mobility.params import GRAVITY_MPS2
from sscity.mobility.routing import accessible_subgraph

MODULE = "04-mobility-control"
DT = 1 / 240


# --- section 2: limits and curvature ----------------------------------------------------------

@cache
def _clipped_twist() -> tuple[float, float]:
    limit = QOLO.wheel_limit_radps
    left, right = (float(np.clip(w, -limit, limit)) for w in wheel_speeds(3.0, 1.0))
    return body_twist(left, right)


# --- section 4: the pybullet device -------------------------------------------------------------

def _drive(sim, v, w, seconds, limiter=None):
    sent, measured = [], []
    for _ in range(round(seconds * 240)):
        command = limiter(v, w) if limiter else (v, w)
        sim.step(*command)
        sent.append(command)
        measured.append(sim.twist())
    return np.array(sent), np.array(measured)


@cache
def _step_run() -> dict:
    with QoloSim(seed=0) as sim:
        start = sim.pose()
        _, measured = _drive(sim, 1.0, 0.0, 5.0)
        end = sim.pose()
    speeds = measured[:, 0]
    return {"distance": float(np.hypot(*(end[:2] - start[:2]))),
            "time_to_1": float((np.argmax(speeds >= 0.999) + 1) * DT),
            "grip": float(np.max(np.diff(speeds)) / DT)}


@cache
def _cruise_error_percent() -> float:
    with QoloSim(seed=0) as sim:
        _drive(sim, 1.0, 0.0, 1.0, limiter=RateLimiter(DT))
        before = sim.pose()
        _drive(sim, 1.0, 0.0, 5.0)
        after = sim.pose()
    return abs(100 * (float(np.hypot(*(after[:2] - before[:2]))) / 5 - 1))


@cache
def _turn_run() -> dict:
    with QoloSim(seed=0) as sim:
        start = sim.pose()
        sent, measured = _drive(sim, 1.0, 0.3, 10.0, limiter=RateLimiter(DT))
        end = sim.pose()
    ideal = rollout(start, sent[:, 0], sent[:, 1], DT)[-1]
    return {"heading_error": float(abs(end[2] - ideal[2])),
            "position_error": float(np.hypot(*(end[:2] - ideal[:2]))),
            "v_end": float(measured[-1, 0]), "w_end": float(measured[-1, 1])}


# --- section 7: the crowd crossing -------------------------------------------------------------

@cache
def _episode(makes_way: bool, controller: str):
    return run_episode(n_pedestrians=20, duration_s=40.0, seed=0, controller=controller,
                       pedestrians_avoid_device=makes_way)


def _metric(makes_way: bool, controller: str, name: str) -> float:
    return float(_episode(makes_way, controller).metrics[name])


def _closest_time(controller: str) -> float:
    log = _episode(False, controller).log
    return float(log["t_s"][int(log["min_distance_m"].idxmin())])


# --- section 8: seated or standing --------------------------------------------------------------

def _steepest_downhill_percent(d: float, h: float, braking: float) -> float:
    need = braking * h / GRAVITY_MPS2
    beta = math.acos(need / math.hypot(d, h)) - math.atan2(h, d)
    return 100 * math.tan(beta)


def _standing_downhill_at_drive_limit() -> float:
    cfg = CONFIGS["standing"]
    return _steepest_downhill_percent(cfg.com_behind_axle_m, cfg.com_height_m, QOLO.max_accel_mps2)


# --- section 9: the synthetic network -----------------------------------------------------------

@cache
def _network():
    graph = load_sidewalks()
    return (graph, find_node(graph, "Tsukuba Station (TX) concourse"),
            find_node(graph, "University of Tsukuba, central area"))


def _route_km(profile: str | None) -> float:
    graph, station, campus = _network()
    route = (shortest_route(graph, station, campus) if profile is None
             else accessible_route(graph, station, campus, profile))
    return route.length_m / 1000


def _detour(profile: str) -> float:
    return _route_km(profile) / _route_km(None) - 1


def _reach_share(profile: str) -> float:
    graph, station, _ = _network()
    table = reachability(graph, station).set_index("profile")
    return float(table.loc[profile, "share"])


def _reach_nodes(profile: str) -> float:
    graph, station, _ = _network()
    return float(reachability(graph, station).set_index("profile").loc[profile, "reachable_nodes"])


def _barriers(kind: str) -> float:
    graph, _, _ = _network()
    table = barrier_table(graph)
    return float((table["kind"] == kind).sum())


def _campus_within(profile: str, budget_m: float) -> float:
    graph, _, campus = _network()
    lengths = nx.single_source_dijkstra_path_length(accessible_subgraph(graph, profile), campus,
                                                    cutoff=budget_m, weight="length_m")
    return float(len(lengths) - 1)


CASES = [
    # section 1 and the README
    ("The result is 5.4 km/h.", "5.4", lambda: 3.6 * 95 * 2 * math.pi / 60 * QOLO.wheel_radius_m, False),
    # section 2: saturation figure
    ("both wheels scaled by one factor (1.39 m/s, 0.46 rad/s)", "1.39",
     lambda: saturate_twist(3.0, 1.0)[0], False),
    ("both wheels scaled by one factor (1.39 m/s, 0.46 rad/s)", "0.46",
     lambda: saturate_twist(3.0, 1.0)[1], False),
    ("the device runs straight along the x axis for 6 m", "6", lambda: 4 * _clipped_twist()[0], False),
    # section 3: the closed form
    ("**(0.4704, 6.6333)** with heading", "0.4704",
     lambda: integrate_unicycle([0, 0, 0], 1.0, 0.3, 10.0)[0], False),
    ("**(0.4704, 6.6333)** with heading", "6.6333",
     lambda: integrate_unicycle([0, 0, 0], 1.0, 0.3, 10.0)[1], False),
    # section 4: validation
    ("4.78 m, not 5.", "4.78", lambda: _step_run()["distance"], False),
    ("the device needs about 0.46 s to reach 1 m/s", "0.46", lambda: _step_run()["time_to_1"], False),
    ("loses about 0.22 m on the way", "0.22", lambda: 5 - _step_run()["distance"], False),
    ("That grip limit, about 2.2 m/s²", "2.2", lambda: _step_run()["grip"], False),
    ("follows the ideal of its own commands to within 0.04 rad and 0.15 m", "0.04",
     lambda: _turn_run()["heading_error"], False),
    ("follows the ideal of its own commands to within 0.04 rad and 0.15 m", "0.15",
     lambda: _turn_run()["position_error"], False),
    ("The measured twist at the end is 1.000 m/s and 0.305 rad/s", "1.000",
     lambda: _turn_run()["v_end"], False),
    ("The measured twist at the end is 1.000 m/s and 0.305 rad/s", "0.305",
     lambda: _turn_run()["w_end"], False),
    # section 7: the crowd crossing
    ("is even the fastest (20.2 s)", "20.2", lambda: _metric(True, "go_to_goal", "time_to_goal_s"), False),
    ("overlaps a pedestrian five times (down to −0.44 m", "−0.44",
     lambda: _metric(False, "go_to_goal", "min_distance_m"), False),
    ("agreement 0.89, the assistant", "0.89", lambda: _metric(False, "shared", "agreement"), False),
    ("and keeps at least 0.20 m", "0.20", lambda: _metric(False, "safe_go_to_goal", "min_distance_m"), False),
    ("it overlaps them six times and is the slowest (31.5 s)", "31.5",
     lambda: _metric(False, "shared", "time_to_goal_s"), False),
    ("on the right the device has stopped short with 0.20 m to spare", "0.20",
     lambda: _metric(False, "safe_go_to_goal", "min_distance_m"), False),
    ("blind `go_to_goal` at t = 5.2 s", "5.2", lambda: _closest_time("go_to_goal"), False),
    ("right: `safe_go_to_goal` at t = 9.3 s", "9.3", lambda: _closest_time("safe_go_to_goal"), False),
    # section 8: tip-over
    ("facing down a 1:12 ramp, standing still leaves 2.0 m/s²", "2.0",
     lambda: max_safe_deceleration("standing", -100 / 12), False),
    ("only beyond about −13.5 % would braking", "−13.5", lambda: -_standing_downhill_at_drive_limit(), False),
    ("braking limits fall from 3.5 to 2.8 m/s² on level ground", "3.5",
     lambda: max_safe_deceleration("seated"), False),
    ("braking limits fall from 3.5 to 2.8 m/s² on level ground", "2.8",
     lambda: max_safe_deceleration("standing"), False),
    ("facing down 10 %, standing, the margin is still 1.23 times the drive limit", "1.23",
     lambda: max_safe_deceleration("standing", -10.0) / QOLO.max_accel_mps2, False),
    # section 9: the synthetic network
    ("walking (thick solid black, 2.51 km)", "2.51", lambda: _route_km(None), False),
    ("Qolo (dotted vermillion on top of it, 2.55 km)", "2.55", lambda: _route_km("qolo"), False),
    ("the manual wheelchair (dashed blue, 3.28 km)", "3.28", lambda: _route_km("manual_wheelchair"), False),
    ("onto a route 31 % longer", "31", lambda: _detour("manual_wheelchair"), True),
    ("loses 12 % of the places and rides 31 % further", "12",
     lambda: 1 - _reach_share("manual_wheelchair"), True),
    # assignment: task 9's mark scheme
    ("A manual wheelchair user reaches about 88 % of the places (105 of 119)", "88",
     lambda: _reach_share("manual_wheelchair"), True),
    ("A manual wheelchair user reaches about 88 % of the places (105 of 119)", "105",
     lambda: _reach_nodes("manual_wheelchair"), False),
    ("and Qolo about 92 %", "92", lambda: _reach_share("qolo"), True),
]


@pytest.mark.parametrize(("quote", "number", "compute", "percent"), CASES,
                         ids=[f"{q[:40]}|{n}" for q, n, _, _ in CASES])
def test_quoted_number_matches_the_computation(quote, number, compute, percent):
    check_quoted(MODULE, quote, number, compute(), percent=percent)


def test_counts_the_prose_states_in_words():
    """Counts written as words: virtual collisions, contacts, frames of the crossing."""
    from prose_facts import module_text
    text = module_text(MODULE)
    assert "the blind controller overlaps a pedestrian five times" in text
    assert _metric(False, "go_to_goal", "virtual_collisions") == 5
    assert "touches people four times in pybullet" in text
    assert _metric(False, "go_to_goal", "contact_onsets") == 4
    assert "it overlaps them six times" in text and "dips below 0 six times" in text
    assert _metric(False, "shared", "virtual_collisions") == 6
    assert all(_metric(True, name, "virtual_collisions") == 0
               for name in ("go_to_goal", "safe_go_to_goal", "shared"))


def test_bounds_the_prose_states():
    """Numbers the prose gives as bounds or in words, not as rounded values."""
    from prose_facts import module_text
    text = module_text(MODULE)
    assert "covers 5 m in 5 s within 0.1 %" in text
    assert _cruise_error_percent() < 0.1
    assert "four steep deck segments, eight flights of stairs" in text
    assert (_barriers("deck"), _barriers("stairs")) == (4, 8)


# --- section 5: going to a goal, and the reachable envelope -----------------------------------

def _go(start, world: str, envelope=None):
    from sscity.mobility import go_to_goal
    limiter, log = RateLimiter(0.05), []
    goal = (4.0, 3.0)
    if world == "ideal":
        pose = np.asarray(start, dtype=float)
        for _ in range(240):
            v, w = limiter(*go_to_goal(pose, goal))
            log.append((*pose, v, w))
            pose = integrate_unicycle(pose, v, w, 0.05)
    else:
        with QoloSim(seed=0, start_pose=start) as sim:
            for _ in range(240):
                pose, _, _ = sim.state()
                command = go_to_goal(pose, goal)
                v, w = limiter(*(envelope.clip(*command) if envelope else command))
                log.append((*pose, v, w))
                sim.step(v, w, n_steps=12)
    log = np.array(log)
    arrived = np.hypot(log[:, 0] - goal[0], log[:, 1] - goal[1]) < 0.2
    return {"arrival": float(np.argmax(arrived) * 0.05), "omega": log[:, 4]}


@cache
def _facing_away(world: str, clipped: bool = False) -> dict:
    from sscity.mobility import reachable_envelope
    return _go((0.0, 0.0, math.pi), world, reachable_envelope("seated") if clipped else None)


def _swing(k: int) -> float:
    """The k-th turning point (|omega| > 0.5 rad/s) of the yaw-rate command, facing away."""
    w = _facing_away("pybullet")["omega"]
    turns = [w[i] for i in range(1, len(w) - 1)
             if (w[i] - w[i - 1]) * (w[i + 1] - w[i]) < 0 and abs(w[i]) > 0.5]
    return float(turns[k])


@cache
def _measured(v: float, w: float, posture: str) -> tuple[float, float]:
    from sscity.mobility import measure_twist
    return measure_twist(v, w, posture)


CASES_5 = [
    ("its yaw-rate command goes to about −3.4 rad/s, then +3.7 rad/s", "−3.4", lambda: _swing(0)),
    ("its yaw-rate command goes to about −3.4 rad/s, then +3.7 rad/s", "+3.7", lambda: _swing(1)),
    ("it arrives about 4.9 s later than on ideal kinematics", "4.9",
     lambda: _facing_away("pybullet")["arrival"] - _facing_away("ideal")["arrival"]),
    ("its largest yaw-rate command is 3.0 instead of 3.7 rad/s", "3.0",
     lambda: float(np.abs(_facing_away("pybullet", True)["omega"]).max())),
    ("its largest yaw-rate command is 3.0 instead of 3.7 rad/s", "3.7",
     lambda: float(np.abs(_facing_away("pybullet")["omega"]).max())),
    ("it arrives after 8.7 s instead of 10.9 s", "8.7", lambda: _facing_away("pybullet", True)["arrival"]),
    ("it arrives after 8.7 s instead of 10.9 s", "10.9", lambda: _facing_away("pybullet")["arrival"]),
    ("the seated device reaches only about 2.1 rad/s", "2.1",
     lambda: _measured(0.0, QOLO.max_yaw_rate_radps, "seated")[1]),
    ("standing, about 1.7 rad/s", "1.7", lambda: _measured(0.0, QOLO.max_yaw_rate_radps, "standing")[1]),
    ("full turn, (0.79 m/s, 2.63 rad/s)", "0.79", lambda: saturate_twist(1.5, 5.0)[0]),
    ("full turn, (0.79 m/s, 2.63 rad/s)", "2.63", lambda: saturate_twist(1.5, 5.0)[1]),
    ("a circle of radius 0.30 m", "0.30", lambda: saturate_twist(1.5, 5.0)[0] / saturate_twist(1.5, 5.0)[1]),
]


@pytest.mark.parametrize(("quote", "number", "compute"), CASES_5,
                         ids=[f"{q[:40]}|{n}" for q, n, _ in CASES_5])
def test_section_5_numbers(quote, number, compute):
    check_quoted(MODULE, quote, number, compute())


def _envelope_at(posture: str, speed: float) -> float:
    from sscity.mobility import reachable_envelope
    return reachable_envelope(posture).max_yaw_rate(speed)


def _published_at(speed: float) -> float:
    return min(QOLO.max_yaw_rate_radps,
               (QOLO.wheel_limit_radps * QOLO.wheel_radius_m - speed) / (QOLO.track_width_m / 2))


def _crossing_end(controller: str) -> float:
    return float(_episode(False, controller).log["t_s"].iloc[-1])


CASES_MORE = [
    ("seated, 3.15 rad/s on the spot and 2.03 rad/s at 0.5 m/s", "3.15", lambda: _envelope_at("seated", 0.0)),
    ("seated, 3.15 rad/s on the spot and 2.03 rad/s at 0.5 m/s", "2.03", lambda: _envelope_at("seated", 0.5)),
    ("against the published 4.124 and 3.69 rad/s", "3.69", lambda: _published_at(0.5)),
    ("The safety layer costs about 3 s", "3",
     lambda: (_metric(False, "safe_go_to_goal", "time_to_goal_s")
              - _metric(False, "go_to_goal", "time_to_goal_s"))),
    # assignment: task 3's statement
    ("max_yaw_rate(0.5)` is about 1.75 rad/s", "1.75", lambda: _envelope_at("standing", 0.5)),
    # assignment: the crowd figure
    ("reaches the goal, between about 21 and 31 s", "21", lambda: _crossing_end("go_to_goal")),
    ("reaches the goal, between about 21 and 31 s", "31", lambda: _crossing_end("shared")),
]


@pytest.mark.parametrize(("quote", "number", "compute"), CASES_MORE,
                         ids=[f"{q[:40]}|{n}" for q, n, _ in CASES_MORE])
def test_envelope_and_crossing_numbers(quote, number, compute):
    check_quoted(MODULE, quote, number, compute())
