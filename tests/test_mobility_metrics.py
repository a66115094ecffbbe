"""CrowdBot-style metrics on hand-made trajectories with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sscity.mobility import (
    CROWDBOT_CAPSULE,
    QOLO,
    RDS_CAPSULE,
    Capsule,
    agreement,
    capsule_distance,
    command_jerk,
    contribution,
    crowd_density,
    fluency,
    normalised_proximity,
    path_irregularity,
    path_length,
    relative_jerk,
    time_and_path_to_goal,
    virtual_collisions,
)


def test_path_length_of_a_3_4_5_triangle():
    assert path_length([[0, 0], [3, 0], [3, 4], [0, 0]]) == pytest.approx(12.0)


def test_time_and_path_to_goal_on_a_detour():
    # 0.5 m/s straight to x = 5, then 3 m sideways and back, then on to x = 18 (goal at 20 m)
    leg1 = np.c_[np.linspace(0, 5, 11), np.zeros(11)]
    side = np.c_[np.full(6, 5.0), np.linspace(0, 3, 7)[1:]]
    back = np.c_[np.full(6, 5.0), np.linspace(3, 0, 7)[1:]]
    leg2 = np.c_[np.linspace(5, 18, 27)[1:], np.zeros(26)]
    xy = np.vstack([leg1, side, back, leg2])
    t = np.arange(len(xy)) * 1.0
    r = time_and_path_to_goal(t, xy, (20.0, 0.0), v_max_mps=1.0)
    assert r["reached"] and r["end_index"] == len(xy) - 1
    assert r["min_distance_to_goal_m"] == pytest.approx(2.0)
    assert r["path_length_m"] == pytest.approx(18 + 6)
    assert r["goal_distance_m"] == pytest.approx(18)
    assert r["relative_path_length"] == pytest.approx(24 / 18)
    assert r["relative_time_to_goal"] == pytest.approx((18 / 1.0) / t[-1])
    far = time_and_path_to_goal(t[:11], xy[:11], (20.0, 0.0))
    assert not far["reached"]


def test_fluency_reports_the_lower_of_v_and_omega():
    v = np.array([1.0, 1.0, 0.5, 0.5])  # one jump of 0.5 with v_max = 1
    w = np.array([0.0, 0.2, 0.2, 0.2])  # one jump of 0.2 with w_max = 0.2
    f = fluency(v, w)
    assert f["fluency_v"] == pytest.approx(1 - 0.5 / 3)
    assert f["fluency_omega"] == pytest.approx(1 - 1 / 3)
    assert f["fluency"] == f["fluency_omega"]
    assert fluency(np.ones(5), np.zeros(5))["fluency"] == 1.0


def test_agreement_and_contribution():
    # identical commands: full agreement, no contribution
    assert agreement([1.0, 0.5], [0.2, -1.0], [1.0, 0.5], [0.2, -1.0]) == pytest.approx(1.0)
    assert contribution([1.0, 0.5], [0.2, -1.0], [1.0, 0.5], [0.2, -1.0]) == pytest.approx(0.0)
    # robot turns on the spot (theta = 0) while the user drives straight (theta = pi/2): 1 - 1/2
    assert agreement([1.5], [0.0], [0.0], [4.124]) == pytest.approx(0.5)
    # scaled-down command: same direction, contribution = 1 - scale
    assert agreement([1.0], [1.0], [0.4], [0.4]) == pytest.approx(1.0)
    assert contribution([1.0], [1.0], [0.4], [0.4]) == pytest.approx(0.6)
    # zero user commands are skipped; all zero is an error that says so
    assert contribution([0.0, 1.5], [0.0, 0.0], [1.0, 0.75], [0.0, 0.0]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="zero throughout"):
        agreement([0.0], [0.0], [1.0], [0.0])


def test_capsule_distance_geometry():
    # default: CrowdBot's evaluation capsule, segment from x = +0.18 to -0.5, radius 0.45
    points = [[1.0, 0.0], [-1.0, 0.0], [-0.2, 1.0], [0.0, 0.0], [0.5, 0.3]]
    d = capsule_distance([0, 0, 0], points)
    # by hand: 1 - 0.18 - 0.45; 1 - 0.5 - 0.45; 1 - 0.45; 0 - 0.45; hypot(0.32, 0.3) - 0.45
    assert d == pytest.approx([0.37, 0.05, 0.55, -0.45, math.hypot(0.32, 0.3) - 0.45])
    assert capsule_distance([0, 0, 0], points, "crowdbot") == pytest.approx(d)
    assert capsule_distance([0, 0, 0], points, CROWDBOT_CAPSULE) == pytest.approx(d)
    # the RDS controller's capsule, +0.05 to -0.5, radius 0.4: by name, or as Qolo's parameters
    rds = [0.55, 0.1, 0.6, -0.4, math.hypot(0.45, 0.3) - 0.4]
    assert capsule_distance([0, 0, 0], points, "rds") == pytest.approx(rds)
    assert capsule_distance([0, 0, 0], points, QOLO) == pytest.approx(rds)
    assert capsule_distance([0, 0, 0], points, RDS_CAPSULE) == pytest.approx(rds)
    # CrowdBot's capsule is larger everywhere: distances 0.05 to 0.18 m smaller
    gap = np.asarray(rds) - d
    assert np.all((gap >= 0.05 - 1e-12) & (gap <= 0.18 + 1e-12))
    # rotated by 90 degrees: the front now points along +y
    assert capsule_distance([2, 3, math.pi / 2], [[2.0, 4.0]]) == pytest.approx([1 - 0.18 - 0.45])
    # over time: (T, 3) poses with (T, N, 2) people
    poses = np.array([[0, 0, 0], [1, 0, 0]])
    people = np.array([[[2.0, 0.0]], [[2.0, 0.0]]])
    assert capsule_distance(poses, people)[:, 0] == pytest.approx([2 - 0.63, 1 - 0.63])
    assert capsule_distance(poses, people, "rds")[:, 0] == pytest.approx([1.55, 0.55])
    with pytest.raises(ValueError, match="footprint"):
        capsule_distance([0, 0, 0], points, "square")
    with pytest.raises(ValueError, match="radius_m"):
        Capsule(0.1, -0.5, 0.0)


def test_relative_jerk_by_hand():
    """CrowdBot's definition: two np.gradient passes, the jerk norm integrated over the inner
    samples (the first and the last left out), divided by the duration, then by the baseline."""
    # A speed step at dt = 0.5 s. a = gradient(v) = [0, 0, 1, 1, 0, 0, 0];
    # j = gradient(a) = [0, 1, 1, -1, -1, 0, 0]; J = 4 x 1 x 0.5 = 2; duration 3 s.
    t = np.arange(7) * 0.5
    r = relative_jerk(t, [0, 0, 0, 1, 1, 1, 1], np.zeros(7))
    assert r["jerk_integral"] == pytest.approx(2.0)
    assert r["duration_s"] == pytest.approx(3.0)
    assert r["jerk"] == pytest.approx(2.0 / 3.0)
    assert r["relative_jerk"] == pytest.approx(2.0 / 3.0 / 13.80)
    jv, jw = command_jerk(t, [0, 0, 0, 1, 1, 1, 1], np.zeros(7))
    assert jv == pytest.approx([0, 1, 1, -1, -1, 0, 0]) and not jw.any()
    # Both components, dt = 1 s: v steps at t = 3, omega (by 2 rad/s) at t = 4.
    # j_v = [0, .25, .25, -.25, -.25, 0, 0], j_w = [0, 0, .5, .5, -.5, -.5, 0];
    # inner norms: .25, then three of sqrt(.25^2 + .5^2), then .5; over 6 s.
    t = np.arange(7.0)
    r = relative_jerk(t, [0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 2, 2, 2], baseline=2.0)
    by_hand = (0.25 + 3 * math.hypot(0.25, 0.5) + 0.5) / 6
    assert r["jerk"] == pytest.approx(by_hand)
    assert r["relative_jerk"] == pytest.approx(by_hand / 2.0)
    # The end samples are left out: a = [1, .5, 0, 0, 0], j = [-.5, -.5, -.25, 0, 0];
    # only j[1..3] count: (.5 + .25 + 0) / 4 s.
    assert relative_jerk(np.arange(5.0), [0, 1, 1, 1, 1], np.zeros(5))["jerk"] == pytest.approx(0.1875)
    # a steady command, or one changing at a constant rate, has no jerk
    assert relative_jerk(np.arange(6.0), np.linspace(0, 1, 6), np.full(6, 0.3))["jerk"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="increase"):
        relative_jerk([0, 1, 1], [0, 1, 2], [0, 0, 0])
    with pytest.raises(ValueError, match="baseline"):
        relative_jerk([0, 1, 2], [0, 1, 2], [0, 0, 0], baseline=0)


def test_virtual_collisions_and_proximity():
    d = np.array([0.5, 0.1, -0.05, -0.1, 0.2, -0.01, 0.3])
    assert virtual_collisions(d) == 2
    assert virtual_collisions([-0.1, 0.2]) == 1
    assert virtual_collisions(np.c_[d, [1, -1, -1, 1, 1, 1, -1]]) == 2 + 2
    assert normalised_proximity([1.0, 3.0]) == pytest.approx(0.5)


def test_crowd_density_counts_within_radius():
    people = [[1, 0], [0, 2], [3, 0], [0, -4.9], [6, 0]]
    assert crowd_density([0, 0], people, 2.5) == pytest.approx(2 / (math.pi * 2.5**2))
    assert crowd_density([0, 0], people, 5.0) == pytest.approx(4 / (math.pi * 25))
    series = crowd_density(np.array([[0, 0], [10, 0]]), np.array([people, people]), 2.5)
    assert series == pytest.approx([2 / (math.pi * 6.25), 0.0])


def test_path_irregularity():
    straight = [[0, 0, 0], [1, 0, 0], [2, 0, 0]]
    assert path_irregularity(straight, (5, 0)) == 0.0
    # a 10 m path that wiggles +0.5 rad and back: total rotation 1.0, needed 0
    wiggle = [[0, 0, 0], [5, 0, 0.5], [10, 0, 0.0]]
    assert path_irregularity(wiggle, (20, 0)) == pytest.approx(1.0 / 10)
    # the goal is 90 degrees to the left: turning 90 degrees is needed, not irregular
    turn = [[0, 0, 0], [0, 0, math.pi / 2], [0, 4, math.pi / 2]]
    assert path_irregularity(turn, (0, 10)) == pytest.approx(0.0)


def test_validation():
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        path_length([1, 2, 3])
    with pytest.raises(ValueError, match="same length"):
        time_and_path_to_goal([0, 1, 2], [[0, 0], [1, 0]], (5, 0))
