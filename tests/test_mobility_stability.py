"""Static tip-over limits against the closed forms a = g d / h and the h tan(alpha) shift."""

from __future__ import annotations

import math

import pytest
from sscity.mobility import (
    CONFIGS,
    QOLO,
    max_safe_acceleration,
    max_safe_deceleration,
    stability_table,
    static_margin,
    tip_over_deceleration,
    tip_over_slope_percent,
)
from sscity.mobility.params import GRAVITY_MPS2 as G


def test_level_ground_closed_form():
    assert max_safe_deceleration("seated") == pytest.approx(G * 0.210 / 0.585)
    assert max_safe_deceleration("standing") == pytest.approx(G * 0.210 / CONFIGS["standing"].com_height_m)
    assert max_safe_deceleration("empty") == pytest.approx(G * 0.150 / 0.180)
    # standing raises the CoM, so it tips at a lower deceleration
    assert max_safe_deceleration("standing") < max_safe_deceleration("seated")
    # backward: over the rear caster (assumed 0.45 m behind the axle)
    assert max_safe_acceleration("seated") == pytest.approx(G * (0.45 - 0.21) / 0.585)


def test_slope_shifts_the_support_by_h_tan_alpha():
    h = 0.585
    for slope in (-8.33, -5.0, 5.0, 12.0):
        tan = slope / 100
        assert static_margin("seated", slope, "forward") == pytest.approx(0.21 + h * tan)
        assert static_margin("seated", slope, "backward") == pytest.approx(0.24 - h * tan)
    alpha = math.atan(-0.0833)
    expected = G * (0.21 * math.cos(alpha) + h * math.sin(alpha)) / h
    assert max_safe_deceleration("seated", -8.33) == pytest.approx(expected)
    # downhill is the critical direction for braking, uphill for accelerating
    assert (
        max_safe_deceleration("seated", -8.33)
        < max_safe_deceleration("seated", 0)
        < max_safe_deceleration("seated", 8.33)
    )
    assert max_safe_acceleration("seated", 8.33) < max_safe_acceleration("seated", 0)


def test_tipping_slope_is_where_the_margin_vanishes():
    for config in ("seated", "standing"):
        slope = tip_over_slope_percent(config, "forward")
        assert static_margin(config, -slope, "forward") == pytest.approx(0.0, abs=1e-12)
        assert tip_over_deceleration(
            0.21, CONFIGS[config].com_height_m, math.atan(-slope / 100)
        ) == pytest.approx(0.0, abs=1e-12)


def test_qolo_drive_limit_is_safe_on_the_barrier_free_ramp():
    """Braking at 1.5 m/s^2 facing down a 1:12 ramp does not tip even the standing rider."""
    assert max_safe_deceleration("standing", -8.33) > QOLO.max_accel_mps2
    # ... and the routing profile's 10 % limit keeps a safety factor of about 1.2
    assert max_safe_deceleration("standing", -10.0) / QOLO.max_accel_mps2 == pytest.approx(1.23, abs=0.02)
    table = stability_table(slopes_percent=(-8.33, 0.0), configs=("seated", "standing"))
    assert list(table.columns[:2]) == ["config", "slope_percent"] and len(table) == 4
    assert (table["brake_safety_factor"] > 1).all()


def test_errors():
    with pytest.raises(ValueError, match="direction"):
        static_margin("seated", 0.0, "sideways")
    with pytest.raises(ValueError, match="height_m"):
        tip_over_deceleration(0.2, 0.0)
