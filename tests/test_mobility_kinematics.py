"""Qolo's parameters and differential-drive kinematics: closed forms and limits."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from sscity.mobility import (
    CONFIGS,
    QOLO,
    body_twist,
    get_config,
    integrate_unicycle,
    limit_acceleration,
    rollout,
    saturate_twist,
    wheel_speeds,
    wrap_angle,
)


def test_published_parameters():
    assert QOLO.wheel_radius_m == 0.152 and QOLO.track_width_m == 0.548 and QOLO.gear_ratio == 12.64
    assert QOLO.max_speed_mps == 1.5 and QOLO.max_yaw_rate_radps == 4.124
    assert (QOLO.max_accel_mps2, QOLO.max_yaw_accel_radps2) == (1.5, 4.5)
    assert (QOLO.footprint_radius_m, QOLO.footprint_front_m, QOLO.footprint_rear_m) == (0.4, 0.05, -0.5)
    assert (QOLO.contact_force_limit_n, QOLO.max_contact_speed_mps) == (45.0, 0.5)
    # 95 rpm at the wheel is about 1.5 m/s at the rim
    assert QOLO.wheel_limit_mps == pytest.approx(95 * 2 * math.pi / 60 * 0.152)
    assert QOLO.wheel_limit_mps == pytest.approx(1.5, abs=0.02)
    with pytest.raises(dataclasses.FrozenInstanceError):
        QOLO.max_speed_mps = 3.0


def test_configurations_say_what_is_published():
    empty, seated, standing = CONFIGS["empty"], CONFIGS["seated"], CONFIGS["standing"]
    assert (empty.mass_kg, empty.com_behind_axle_m, empty.com_height_m) == (53.0, 0.150, 0.180)
    assert (seated.mass_kg, seated.com_behind_axle_m, seated.com_height_m) == (120.0, 0.210, 0.585)
    assert empty.published and seated.published and not standing.published
    assert standing.com_height_m > seated.com_height_m  # standing raises the centre of mass
    assert get_config("standing") is standing and get_config(seated) is seated
    with pytest.raises(ValueError, match="Unknown Qolo configuration"):
        get_config("lying")


def test_closed_form_arc():
    end = integrate_unicycle([0.0, 0.0, 0.0], 1.0, 0.3, 10.0)
    assert end == pytest.approx([math.sin(3) / 0.3, (1 - math.cos(3)) / 0.3, 3.0], abs=1e-12)
    assert end[:2] == pytest.approx([0.4704, 6.6333], abs=5e-5)
    # the same in 2400 steps of 1/240 s: exact integration does not drift
    stepped = rollout([0.0, 0.0, 0.0], np.ones(2400), 0.3, 1 / 240)
    assert stepped.shape == (2401, 3)
    assert stepped[-1] == pytest.approx(end, abs=1e-9)


def test_straight_line_limit_is_continuous():
    straight = integrate_unicycle([1.0, 2.0, 0.5], 2.0, 0.0, 3.0)
    assert straight == pytest.approx([1 + 6 * math.cos(0.5), 2 + 6 * math.sin(0.5), 0.5])
    nearly = integrate_unicycle([1.0, 2.0, 0.5], 2.0, 1e-9, 3.0)
    assert nearly == pytest.approx(straight, abs=1e-8)


def test_vectorised_integration_matches_scalar():
    poses = np.array([[0, 0, 0], [1, 1, 1.0]])
    out = integrate_unicycle(poses, np.array([1.0, 0.5]), np.array([0.3, -2.0]), 0.7)
    assert out[1] == pytest.approx(integrate_unicycle(poses[1], 0.5, -2.0, 0.7))


def test_wheels_and_twist_round_trip():
    left, right = wheel_speeds(1.0, 0.3)
    assert (left, right) == pytest.approx([(1 - 0.3 * 0.274) / 0.152, (1 + 0.3 * 0.274) / 0.152])
    assert body_twist(left, right) == pytest.approx((1.0, 0.3))
    v, w = body_twist(*wheel_speeds(np.array([0.2, -1.0]), np.array([1.0, 0.0])))
    assert v == pytest.approx([0.2, -1.0]) and w == pytest.approx([1.0, 0.0])


@pytest.mark.parametrize("v, w", [(3.0, 1.0), (1.2, 3.0), (0.0, 10.0), (-2.0, 0.5), (1.4, 0.2)])
def test_saturation_keeps_curvature_and_limits(v, w):
    vs, ws = saturate_twist(v, w)
    left, right = wheel_speeds(vs, ws)
    assert max(abs(left), abs(right)) <= QOLO.wheel_limit_radps + 1e-9
    assert abs(vs) <= QOLO.max_speed_mps + 1e-12 and abs(ws) <= QOLO.max_yaw_rate_radps + 1e-12
    # one common factor: the same arc, only slower
    scale = vs / v if v else ws / w
    assert 0 < scale <= 1 and (vs, ws) == pytest.approx((scale * v, scale * w))
    # the array path agrees with the scalar fast path
    va, wa = saturate_twist(np.array([v]), np.array([w]))
    assert (va[0], wa[0]) == pytest.approx((vs, ws))


def test_saturation_leaves_feasible_twists_alone():
    assert saturate_twist(1.0, 0.3) == (1.0, 0.3)


def test_acceleration_limit():
    assert limit_acceleration(1.0, 0.0, 0.0, 0.0, 0.1) == pytest.approx((0.15, 0.0))
    assert limit_acceleration(0.0, -5.0, 1.0, 0.0, 0.1) == pytest.approx((0.85, -0.45))
    assert limit_acceleration(0.5, 0.1, 0.45, 0.0, 0.1) == pytest.approx((0.5, 0.1))
    with pytest.raises(ValueError, match="dt_s"):
        limit_acceleration(1.0, 0.0, 0.0, 0.0, 0.0)


def test_wrap_angle_and_validation():
    assert wrap_angle(3 * math.pi / 2) == pytest.approx(-math.pi / 2)
    assert wrap_angle(np.array([0.1, -7.0])) == pytest.approx([0.1, -7.0 + 2 * math.pi])
    with pytest.raises(ValueError, match="shape"):
        integrate_unicycle([0, 0], 1.0, 0.0, 1.0)
