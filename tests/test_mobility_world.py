"""The pybullet world: tracks ideal kinematics, repeats bit for bit, counts contacts exactly."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from sscity.mobility import QOLO, QoloSim, RateLimiter, integrate_unicycle, rollout

DT = 1 / 240


def _drive(sim, v, w, seconds, limiter=None):
    """Apply (v, w) for ``seconds``; with a limiter, the commands actually sent are returned."""
    sent = []
    for _ in range(int(round(seconds * 240))):
        cmd = limiter(v, w) if limiter else (v, w)
        sent.append(cmd)
        sim.step(*cmd)
    return np.array(sent)


def test_mass_and_centre_of_mass_match_the_configuration():
    for config in ("seated", "standing"):
        with QoloSim(config=config) as sim:
            c, body = sim.client, sim.robot
            masses = [c.getDynamicsInfo(body, link)[0] for link in (-1, 0, 1)]
            assert sum(masses) == pytest.approx(sim.config.mass_kg)
            assert masses[1:] == [QOLO.wheel_mass_kg] * 2
            # total CoM in the device frame: base CoM and wheel CoMs, weighted by mass
            com_base = np.asarray(c.getBasePositionAndOrientation(body)[0])
            wheels = [np.asarray(c.getLinkState(body, k)[0]) for k in (0, 1)]
            com = (masses[0] * com_base + masses[1] * wheels[0] + masses[2] * wheels[1]) / sum(masses)
            axle, _ = sim.pose3d()
            assert axle[0] - com[0] == pytest.approx(sim.config.com_behind_axle_m, abs=0.01)
            assert com[2] == pytest.approx(sim.config.com_height_m, abs=0.01)
            # the wheels carry the load and the chassis rests, slightly pitched, on the rear caster
            pitch = sim.pose3d()[1][1]
            assert abs(pitch) < math.radians(1.5)


def test_no_downloaded_assets():
    with QoloSim() as sim:
        sim.add_pedestrian((2, 0))
        sim.add_ramp((3, 0), 0.0, 2.0, 5.0)
    assert "pybullet_data" not in sys.modules


def test_straight_five_seconds_at_one_metre_per_second():
    """Ideal: 5.00 m once at speed (the simulation gives 5.001 m). Tolerance 2 %."""
    with QoloSim(seed=0) as sim:
        _drive(sim, 1.0, 0.0, 1.0)  # run-up: reach 1 m/s first
        start = sim.pose()
        _drive(sim, 1.0, 0.0, 5.0)
        end = sim.pose()
    assert np.hypot(*(end[:2] - start[:2])) == pytest.approx(5.0, rel=0.02)
    assert abs(end[1] - start[1]) < 0.05 and abs(end[2]) < 0.01


def test_straight_from_rest_matches_ideal_kinematics_of_the_same_commands():
    limiter = RateLimiter(DT)
    with QoloSim(seed=0) as sim:
        sent = _drive(sim, 1.0, 0.0, 5.0, limiter)
        end = sim.pose()
    ideal = rollout([0, 0, 0], sent[:, 0], sent[:, 1], DT)[-1]
    assert ideal[0] == pytest.approx(5.0 - 1.0 / (2 * 1.5), abs=0.005)  # 1.5 m/s^2 ramp
    assert end[0] == pytest.approx(ideal[0], rel=0.02)


def test_turning_heading_within_two_percent():
    """v = 1, omega = 0.3 for 10 s: ideal heading 3.0 rad; tolerance 0.06 rad (2 %).

    The commands go through the 1.5 m/s^2 rate limiter (a step to 1 m/s is beyond the tyres'
    grip with 47 % of the weight on the rear caster); the ideal is the exact rollout of the same
    commands. Position tolerance 0.25 m, under 2 % of the 13.3 m driven.
    """
    limiter = RateLimiter(DT)
    with QoloSim(seed=0) as sim:
        sent = _drive(sim, 1.0, 0.3, 10.0, limiter)
        end = sim.pose()
        measured_v, measured_w = sim.twist()
    ideal = rollout([0, 0, 0], sent[:, 0], sent[:, 1], DT)[-1]
    assert end[2] == pytest.approx(3.0, abs=0.06)
    assert end[2] == pytest.approx(ideal[2], abs=0.06)
    assert np.hypot(*(end[:2] - ideal[:2])) < 0.25  # < 2 % of the 13.3 m driven
    closed_form = integrate_unicycle([0, 0, 0], 1.0, 0.3, 10.0)
    assert np.hypot(*(end[:2] - closed_form[:2])) < 0.5  # includes the 0.67 s speed ramp
    assert measured_v == pytest.approx(1.0, abs=0.02) and measured_w == pytest.approx(0.3, abs=0.01)


def test_wheel_limit_saturates_the_command():
    with QoloSim(seed=0) as sim:
        _drive(sim, 3.0, 0.0, 3.0)
        v, _ = sim.twist()
    assert v == pytest.approx(QOLO.max_speed_mps, rel=0.02)


def test_bitwise_repeatable_in_fresh_connections():
    def run():
        with QoloSim(seed=7, config="standing") as sim:
            sim.add_pedestrian((2.0, 0.3))
            limiter = RateLimiter(0.05)
            poses = []
            for k in range(60):
                sim.move_pedestrians([[2.0 - 0.02 * k, 0.3]])
                sim.step(*limiter(0.8, 0.4 * math.sin(k / 7)), n_steps=12)
                poses.append(sim.pose())
            return np.array(poses), sim.total_contact_onsets, sim.measured_pose()

    first, second = run(), run()
    assert np.array_equal(first[0], second[0])  # bit for bit, not approx
    assert first[1] == second[1]
    assert np.array_equal(first[2], second[2])  # the seeded measurement noise too


def test_scripted_collision_counts_exactly_two_onsets():
    """Drive into a standing pedestrian, back off, drive in again: two onsets, none with the wall."""
    with QoloSim(seed=0) as sim:
        person = sim.add_pedestrian((1.5, 0.0))
        wall = sim.add_wall((-3.0, 2.0), (3.0, 2.0))
        _drive(sim, 0.5, 0.0, 4.0)
        assert person in sim.touching() or sim.contact_onsets[person] == 1
        _drive(sim, -0.5, 0.0, 2.0)
        assert sim.touching() == set()
        _drive(sim, 0.5, 0.0, 3.0)
        assert sim.contact_onsets[person] == 2
        assert sim.contact_onsets[wall] == 0
        assert [e.kind for e in sim.contact_events] == ["pedestrian", "pedestrian"]
        assert sim.total_contact_onsets == 2


def test_raw_contacts_flicker_without_the_release_time():
    with QoloSim(seed=0, contact_release_s=0.0) as sim:
        person = sim.add_pedestrian((1.5, 0.0), contact_stiffness_npm=None)  # rigid
        _drive(sim, 0.5, 0.0, 4.0)
        assert sim.contact_onsets[person] > 1  # the device bounces off a rigid body


def test_clearance_from_closest_points():
    with QoloSim(seed=0) as sim:
        person = sim.add_pedestrian((3.0, 0.0), radius_m=0.25)
        # the front anti-tip caster (x = 0.12 + 0.03) is the foremost collision shape
        assert sim.clearance(person) == pytest.approx(3.0 - 0.25 - 0.15, abs=0.01)
        assert sim.clearance(person, max_distance_m=1.0) == math.inf


def test_curb_and_ramp():
    with QoloSim(seed=0) as sim:
        sim.add_curb((3.0, 0.0), 0.0, height_m=0.02, depth_m=4.0)
        _drive(sim, 0.5, 0.0, 6.0)
        (x, _, z), _ = sim.pose3d()
        assert x > 2.5 and z == pytest.approx(QOLO.wheel_radius_m + 0.02, abs=0.01)  # climbed 2 cm
    with QoloSim(seed=0) as sim:
        sim.add_curb((3.0, 0.0), 0.0, height_m=0.15, depth_m=4.0)
        _drive(sim, 0.5, 0.0, 6.0)
        assert sim.pose()[0] < 1.0  # 15 cm stops it
    with QoloSim(seed=0) as sim:
        sim.add_ramp((1.0, 0.0), 0.0, length_m=3.0, slope_percent=8.33)
        _drive(sim, 0.6, 0.0, 8.0)
        (x, _, z), (_, pitch, _) = sim.pose3d()
        assert x > 4.0  # on the landing
        assert z == pytest.approx(QOLO.wheel_radius_m + 0.25, abs=0.03)  # 3 m at 1:12 rises 0.25 m


def test_validation_messages():
    with pytest.raises(ValueError, match="time_step"):
        QoloSim(time_step=0.5)
    with QoloSim() as sim:
        sim.add_pedestrian((1, 1))
        with pytest.raises(ValueError, match=r"shape \(1, 2\)"):
            sim.move_pedestrians([[1, 2], [3, 4]])
        with pytest.raises(ValueError, match="slope_percent"):
            sim.add_ramp((0, 0), 0.0, 2.0, 0.0)
