"""The social-force crowd against forces computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sscity.mobility import (
    HELBING_MOLNAR,
    CrowdState,
    capsule_segment,
    counterflow_scenario,
    crossing_scenario,
    obstacle_forces,
    pedestrian_forces,
    social_forces,
    step_crowd,
)


def test_helbing_molnar_parameters():
    p = HELBING_MOLNAR
    assert (p.tau_s, p.v0_m2ps2, p.sigma_m, p.u0_m2ps2, p.r_m) == (0.5, 2.1, 0.3, 10.0, 0.2)
    assert (p.fov_deg, p.out_of_view_weight, p.max_speed_factor) == (100.0, 0.5, 1.3)


def test_two_pedestrians_by_hand():
    """A walks along +x at its desired speed; B stands 1 m ahead (so s_B = 0 and b = |r| = 1).

    Driving force: (1.0 * (1, 0) - (1, 0)) / 0.5 = 0.
    Repulsion on A: (V0 / sigma) exp(-1 / sigma) * r/|r| = 7 exp(-10/3) * (-1, 0) = (-0.24972, 0),
    B is straight ahead, in view: weight 1.
    """
    state = CrowdState(
        positions=np.array([[0.0, 0.0], [1.0, 0.0]]),
        velocities=np.array([[1.0, 0.0], [0.0, 0.0]]),
        goals=np.array([[10.0, 0.0], [11.0, 0.0]]),
        origins=np.zeros((2, 2)),
        desired_speeds=np.array([1.0, 1.0]),
    )
    force = social_forces(state)
    expected_a = -2.1 / 0.3 * math.exp(-1 / 0.3)
    assert force[0] == pytest.approx([expected_a, 0.0], abs=1e-12)
    assert expected_a == pytest.approx(-0.249718, abs=1e-6)
    # On B: driving (1*(1,0) - 0)/0.5 = (2, 0); A's step s_A = 1 * 0.4 * (1, 0) stretches the
    # ellipse: r = (1, 0), r - s = (0.6, 0), 2b = sqrt(1.6^2 - 0.4^2), grad b = 1.6/(4b) * (2, 0).
    # A is behind B (outside the field of view): weight 0.5.
    b = 0.5 * math.sqrt(1.6**2 - 0.4**2)
    repulsion = 2.1 / 0.3 * math.exp(-b / 0.3) * 1.6 / (4 * b) * 2
    assert force[1] == pytest.approx([2.0 + 0.5 * repulsion, 0.0], abs=1e-12)


def test_pairwise_gradient_matches_numerical_derivative():
    ra, rb = np.array([0.3, 0.2]), np.array([1.0, -0.1])
    vb = np.array([-0.8, 0.5])
    eb = vb / np.linalg.norm(vb)

    def potential(position):
        r = position - rb
        s = np.linalg.norm(vb) * 0.4 * eb
        b = 0.5 * math.sqrt((np.linalg.norm(r) + np.linalg.norm(r - s)) ** 2 - np.linalg.norm(s) ** 2)
        return 2.1 * math.exp(-b / 0.3)

    h = 1e-6
    numeric = -np.array(
        [(potential(ra + d) - potential(ra - d)) / (2 * h) for d in (np.array([h, 0]), np.array([0, h]))]
    )
    pairwise = pedestrian_forces([ra, rb], [[1, 0], vb], [[1, 0], eb], pairwise=True)
    assert pairwise[0, 1] == pytest.approx(numeric, rel=1e-6)  # in view of A, weight 1
    assert np.all(pairwise[[0, 1], [0, 1]] == 0)  # nobody pushes themself


def test_field_of_view_halves_forces_from_behind():
    ahead = pedestrian_forces([[0, 0], [1, 0]], [[0, 0], [0, 0]], [[1, 0], [1, 0]], pairwise=True)
    behind = pedestrian_forces([[0, 0], [-1, 0]], [[0, 0], [0, 0]], [[1, 0], [1, 0]], pairwise=True)
    assert np.linalg.norm(behind[0, 1]) == pytest.approx(0.5 * np.linalg.norm(ahead[0, 1]))


def test_obstacle_force_by_hand():
    # A wall along the x axis; the pedestrian 0.5 m above it: (U0/R) exp(-0.5/R) * (0, 1)
    wall = [((-5.0, 0.0), (5.0, 0.0), 0.0)]
    force = obstacle_forces([[1.0, 0.5]], wall)
    assert force[0] == pytest.approx([0.0, 50.0 * math.exp(-2.5)])
    # The device's capsule: distance to its surface, pushing away from the segment.
    capsule = [capsule_segment((0.0, 0.0, 0.0))]
    force = obstacle_forces([[0.0, 1.0]], capsule)
    assert force[0] == pytest.approx([0.0, 50.0 * math.exp(-(1.0 - 0.4) / 0.2)])


def test_step_caps_speed_and_turns_back_at_the_goal():
    state = CrowdState(
        positions=np.array([[0.0, 0.0]]),
        velocities=np.array([[5.0, 0.0]]),
        goals=np.array([[0.3, 0.0]]),
        origins=np.array([[-5.0, 0.0]]),
        desired_speeds=np.array([1.0]),
    )
    after = step_crowd(state, 0.05)
    assert np.linalg.norm(after.velocities[0]) == pytest.approx(1.3)  # 1.3 x desired
    assert after.goals[0] == pytest.approx([-5.0, 0.0]) and after.origins[0] == pytest.approx([0.3, 0.0])
    assert state.velocities[0, 0] == 5.0  # input untouched


def test_crowd_walks_to_its_goals_without_overlapping_much():
    state = crossing_scenario(12, seed=3)
    positions = [state.positions]
    for _ in range(100):
        state = step_crowd(state, 0.05)
        positions.append(state.positions)
    positions = np.array(positions)
    speed = np.linalg.norm(state.velocities, axis=1)
    assert np.all(speed <= 1.3 * state.desired_speeds + 1e-9)
    assert np.mean(speed) > 0.9  # people keep walking
    d = np.linalg.norm(positions[:, :, None] - positions[:, None, :], axis=-1)
    d[:, np.arange(12), np.arange(12)] = np.inf
    assert d.min() > 0.2


def test_scenarios_are_seeded():
    a, b, c = crossing_scenario(20, seed=1), crossing_scenario(20, seed=1), crossing_scenario(20, seed=2)
    assert np.array_equal(a.positions, b.positions) and not np.array_equal(a.positions, c.positions)
    separation = np.linalg.norm(a.positions[:, None] - a.positions[None], axis=-1) + np.eye(20) * 9
    assert separation.min() >= 0.6
    assert np.all(np.linalg.norm(a.positions, axis=1) >= 1.5)  # clear of the device's start
    assert np.all(np.abs(a.goals[:, 1]) == 6.0) and sorted(np.sign(a.goals[:, 1])).count(1.0) == 10
    flow = counterflow_scenario(10, seed=0)
    assert np.all(np.abs(flow.positions[:, 1]) <= 2.5)
    assert set(np.sign(flow.velocities[:, 0])) == {-1.0, 1.0}
    with pytest.raises(ValueError, match="Cannot place"):
        crossing_scenario(40, seed=0, x_range_m=(3, 5), half_width_m=1.0)


def test_state_validation():
    with pytest.raises(ValueError, match="velocities"):
        CrowdState(np.zeros((2, 2)), np.zeros((3, 2)), np.zeros((2, 2)), np.zeros((2, 2)), np.ones(2))
