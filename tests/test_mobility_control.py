"""Controllers on ideal kinematics: limits respected, goals reached, people protected."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sscity.mobility import (
    QOLO,
    RateLimiter,
    SharedController,
    avoidance_twist,
    capsule_distance,
    go_to_goal,
    integrate_unicycle,
    lookahead_point,
    pure_pursuit,
    safety_filter,
    safety_scale,
    shared_control,
)

DT = 0.05


def test_rate_limiter_respects_acceleration_limits():
    limiter = RateLimiter(DT)
    commands = [limiter(1.5 if k < 30 else -1.0, 4.0 if k % 10 < 5 else -4.0) for k in range(60)]
    v, w = np.array(commands).T
    assert np.max(np.abs(np.diff(np.r_[0.0, v]))) <= QOLO.max_accel_mps2 * DT + 1e-12
    assert np.max(np.abs(np.diff(np.r_[0.0, w]))) <= QOLO.max_yaw_accel_radps2 * DT + 1e-12
    assert v[19] == pytest.approx(1.5)  # 1.5 m/s after 1 s at 1.5 m/s^2
    limiter.reset()
    assert (limiter.speed_mps, limiter.yaw_rate_radps) == (0.0, 0.0)


def test_go_to_goal_reaches_the_goal_within_limits():
    limiter = RateLimiter(DT)
    pose = np.array([0.0, 0.0, math.pi])  # facing away from the goal
    for _ in range(600):
        v, w = limiter(*go_to_goal(pose, (4.0, 3.0), max_speed_mps=1.2))
        assert abs(v) <= 1.2 + 1e-9 and abs(w) <= QOLO.max_yaw_rate_radps + 1e-9
        pose = integrate_unicycle(pose, v, w, DT)
    assert np.hypot(pose[0] - 4.0, pose[1] - 3.0) < 0.15
    assert go_to_goal(pose, (4.0, 3.0), goal_tolerance_m=0.2) == (0.0, 0.0)


def test_go_to_goal_turns_on_the_spot_when_the_goal_is_behind():
    v, w = go_to_goal([0, 0, 0], (-5.0, 0.1))
    assert v == 0.0 and abs(w) > 1.0


def test_lookahead_point_walks_along_the_path():
    path = [[0, 0], [2, 0], [2, 2]]
    point, at_end = lookahead_point(path, (1.0, 0.3), 1.5)
    assert point == pytest.approx([2.0, 0.5]) and not at_end
    point, at_end = lookahead_point(path, (2.0, 1.5), 3.0)
    assert point == pytest.approx([2.0, 2.0]) and at_end


def test_pure_pursuit_follows_an_l_shaped_path():
    path = np.array([[0, 0], [6, 0], [6, 6]])
    pose = np.array([0.0, 0.5, 0.0])
    limiter = RateLimiter(DT)
    errors = []
    for _ in range(400):
        v, w = limiter(*pure_pursuit(pose, path, lookahead_m=1.0, speed_mps=0.8))
        pose = integrate_unicycle(pose, v, w, DT)
        # distance to the polyline
        d1 = abs(pose[1]) if pose[0] <= 6 else np.hypot(pose[0] - 6, pose[1])
        d2 = abs(pose[0] - 6) if 0 <= pose[1] <= 6 else np.inf
        errors.append(min(d1, d2))
    assert np.hypot(pose[0] - 6, pose[1] - 6) < 0.3
    assert max(errors[60:]) < 0.5  # after converging, stays near the path


def test_safety_scale_and_filter():
    assert safety_scale([2.0, 1.5, 0.9, 0.3, 0.1]) == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0])
    person_ahead = [[1.25, 0.0]]  # 0.8 m from the controller's (RDS) capsule
    assert capsule_distance([0, 0, 0], person_ahead, QOLO)[0] == pytest.approx(0.8)
    v, w = safety_filter(1.0, 0.3, [0, 0, 0], person_ahead)
    assert (v, w) == pytest.approx((1.0 * 0.5 / 1.2, 0.3 * 0.5 / 1.2))  # curvature kept
    assert safety_filter(1.0, 0.3, [0, 0, 0], [[0.6, 0.0]]) == (0.0, 0.0)  # inside the stop distance
    # a person behind does not slow down forward driving, but does stop reversing
    behind = [[-1.2, 0.0]]
    assert safety_filter(1.0, 0.0, [0, 0, 0], behind) == (1.0, 0.0)
    assert safety_filter(-0.5, 0.0, [0, 0, 0], behind)[0] == 0.0
    assert safety_filter(1.0, 0.0, [0, 0, 0], np.zeros((0, 2))) == (1.0, 0.0)
    with pytest.raises(ValueError, match="stop_distance_m"):
        safety_scale(1.0, slow_distance_m=0.2, stop_distance_m=0.5)


def test_safety_layer_never_drives_into_a_standing_person():
    limiter = RateLimiter(DT)
    pose = np.zeros(3)
    person = [[5.0, 0.0]]
    for _ in range(400):
        v, w = limiter(*safety_filter(*go_to_goal(pose, (10.0, 0.0)), pose, person))
        pose = integrate_unicycle(pose, v, w, DT)
    clearance = capsule_distance(pose, person, QOLO)[0]
    assert 0.2 < clearance < 0.45  # stopped near the 0.3 m stop distance


def test_shared_control_blend_and_authority():
    assert shared_control((1.0, 0.0), (0.5, 1.0), 0.0) == (1.0, 0.0)
    assert shared_control((1.0, 0.0), (0.5, 1.0), 1.0) == (0.5, 1.0)
    with pytest.raises(ValueError, match="authority"):
        shared_control((1.0, 0.0), (0.5, 1.0), 1.5)
    controller = SharedController(min_authority=0.2)
    (v, w), authority = controller((1.0, 0.0), [0, 0, 0], np.zeros((0, 2)))
    assert authority == pytest.approx(0.2) and (v, w) == pytest.approx((1.0, 0.0))
    # a person ahead and slightly left: the avoidance turns right, authority rises
    (v, w), authority = controller((1.0, 0.0), [0, 0, 0], [[1.6, 0.3]])
    assert w < 0 and authority > 0.5 and v < 1.0
    v_a, w_a = avoidance_twist(1.0, 0.0, [0, 0, 0], [[1.6, -0.3]])
    assert w_a > 0  # person on the right: turn left


def test_shared_control_drives_round_a_person():
    controller, limiter = SharedController(), RateLimiter(DT)
    pose = np.zeros(3)
    person = np.array([[4.0, 0.1]])
    closest = np.inf
    for _ in range(300):
        error = math.atan2(-pose[1], 8.0 - pose[0]) - pose[2]
        (v, w), _ = controller((1.0, 1.5 * error), pose, person)
        v, w = limiter(v, w)
        pose = integrate_unicycle(pose, v, w, DT)
        closest = min(closest, capsule_distance(pose, person, QOLO)[0])
    assert closest > 0.25
    assert pose[0] > 6.0  # got past the person
