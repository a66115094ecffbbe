"""The reachable envelope: measured in the simulation, followed within 10 %, used by the controllers.

Kept fast (about 40 short simulations, 3 s of simulated time each); the full sweep is in
``benchmarks/bench_mobility.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sscity.mobility import (
    QOLO,
    SharedController,
    TwistEnvelope,
    derive_envelope,
    go_to_goal,
    measure_twist,
    pure_pursuit,
    reachable_envelope,
    run_episode,
    saturate_twist,
    twist_agrees,
)
from sscity.mobility.envelope import ENVELOPE_SPEEDS_MPS, MEASURED

HALF_TRACK = 0.5 * QOLO.track_width_m


def _radius_error(commanded, achieved) -> float:
    """|R_achieved - R_commanded| relative to the commanded radius."""
    (vc, wc), (va, wa) = commanded, achieved
    return abs(va / wa - vc / wc) / abs(vc / wc)


def test_twist_agrees_by_hand():
    assert twist_agrees((0.5, 1.0), (0.47, 0.98))  # 0.4796 m for 0.5 m: 4 %
    assert not twist_agrees((0.5, 1.0), (0.40, 1.0))  # 0.40 m for 0.50 m: 20 %
    assert not twist_agrees((0.5, 1.0), (0.5, 1.15))  # yaw rate 15 % high
    assert not twist_agrees((0.79, 2.63), (0.07, 3.17))  # a 2-cm circle for a 30-cm one
    # tighter than the half track: 10 % of 0.274 m, 2.7 cm, is allowed
    assert twist_agrees((0.1, 2.0), (0.08, 2.0))  # 4 cm for 5 cm
    assert not twist_agrees((0.1, 2.0), (0.02, 2.0))  # 1 cm for 5 cm
    # on the spot: the axle may drift by 10 % of the rim speed
    assert twist_agrees((0.0, 3.0), (-0.05, 3.0)) and not twist_agrees((0.0, 3.0), (-0.5, 2.2))
    # straight
    assert twist_agrees((1.0, 0.0), (0.99, 0.001)) and not twist_agrees((1.0, 0.0), (1.0, 0.1))


def test_clip_keeps_the_curvature_by_hand():
    env = TwistEnvelope("demo", (0.0, 1.0, 2.0), (3.0, 1.0, 1.0))
    assert env.clip(0.5, 1.0) == (0.5, 1.0)  # inside: unchanged
    # (1, 2): on the first segment the limit is 3 - 2 v; s * 2 = 3 - 2 s -> s = 0.75
    assert env.clip(1.0, 2.0) == pytest.approx((0.75, 1.5))
    assert env.clip(-1.0, -2.0) == pytest.approx((-0.75, -1.5))  # reversing, turning right
    # (1.5, 1.5): ray meets the flat part at omega = 1 -> s = 2/3
    assert env.clip(1.5, 1.5) == pytest.approx((1.0, 1.0))
    assert env.clip(0.0, 5.0) == (0.0, 3.0)  # on the spot: the yaw rate is capped
    assert env.max_yaw_rate(0.5) == pytest.approx(2.0) and env.max_yaw_rate(-0.5) == pytest.approx(2.0)
    assert env.contains(0.5, 1.9) and not env.contains(0.5, 2.1)
    with pytest.raises(ValueError, match="start at 0"):
        TwistEnvelope("bad", (0.5, 1.0), (1.0, 1.0))


def test_published_limits_are_not_reachable_with_a_rider():
    """The finding behind the envelope: spinning at 4.124 rad/s or driving the saturated twist
    (0.79 m/s, 2.63 rad/s) with a rider, the device slides and does something else."""
    spin, saturated = (0.0, QOLO.max_yaw_rate_radps), saturate_twist(1.5, 5.0)
    assert saturated == pytest.approx((0.790, 2.634), abs=1e-3)
    for config in ("seated", "standing"):
        for command in (spin, saturated):
            assert not twist_agrees(command, measure_twist(*command, config))
        env = reachable_envelope(config)
        assert env.max_spin_rate_radps < 0.8 * QOLO.max_yaw_rate_radps
        clipped = env.clip(*saturated)
        assert clipped[1] / clipped[0] == pytest.approx(saturated[1] / saturated[0])  # same circle
        assert twist_agrees(clipped, measure_twist(*clipped, config))
    standing, seated = reachable_envelope("standing"), reachable_envelope("seated")
    assert standing.max_spin_rate_radps < seated.max_spin_rate_radps


@pytest.mark.parametrize("config", ["seated", "standing"])
def test_commanded_and_achieved_turn_radius_agree_within_ten_percent(config):
    """On the envelope's boundary, between the measured speeds too, both turning directions and
    reversing: the achieved turn radius is the commanded one within 10 %."""
    env = reachable_envelope(config)
    worst = 0.0
    for speed in (0.75, 0.875, 1.0, 1.125):  # measured speeds and midway between them
        yaw = env.max_yaw_rate(speed)
        assert speed / yaw >= HALF_TRACK  # circles wider than the half track: a plain 10 %
        for command in ((speed, yaw), (speed, -yaw), (-speed, yaw)):
            achieved = measure_twist(*command, config)
            worst = max(worst, _radius_error(command, achieved))
            assert abs(achieved[1] - command[1]) <= 0.1 * abs(command[1])
    assert worst <= 0.10
    # tight turns (centre between the wheels): within 10 % of the half track
    for command in ((0.0, env.max_spin_rate_radps), (0.375, -env.max_yaw_rate(0.375))):
        assert twist_agrees(command, measure_twist(*command, config))


def test_stored_envelope_is_what_the_simulation_gives():
    """Re-derive two speeds of the stored seated table (agree within one bisection step)."""
    speeds = (0.0, 0.75)
    fresh = derive_envelope("seated", speeds_mps=speeds)
    stored = [MEASURED["seated"][ENVELOPE_SPEEDS_MPS.index(v)] for v in speeds]
    step = QOLO.max_yaw_rate_radps / 2**7
    assert np.allclose(fresh.max_yaw_rates_radps, stored, atol=step)
    assert reachable_envelope("seated") == reachable_envelope("seated")  # deterministic, no simulation
    # the envelope shrinks with speed and with a higher centre of mass
    for config in MEASURED:
        assert np.all(np.diff(MEASURED[config]) <= 0)
    assert np.all(np.asarray(MEASURED["standing"]) <= np.asarray(MEASURED["seated"]) + 1e-9)


def test_controllers_clip_to_the_envelope():
    env = reachable_envelope("seated")
    rng = np.random.default_rng(5)
    poses = rng.uniform([-5, -5, -np.pi], [5, 5, np.pi], (200, 3))
    for pose, goal in zip(poses, rng.uniform(-8, 8, (200, 2)), strict=True):
        v, w = go_to_goal(pose, goal, envelope=env)
        assert env.contains(v, w, slack=1e-6)
        v0, w0 = go_to_goal(pose, goal)  # without an envelope: the published limits, as before
        if abs(w0) > 1e-9:
            assert w / w0 == pytest.approx(v / v0 if v0 else w / w0)  # curvature kept
    path = [[0, 0], [1, 0], [1, 1]]  # a sharp corner
    for pose in ([0.9, 0.0, 0.0], [0.0, 0.5, math.pi]):
        assert env.contains(*pure_pursuit(pose, path, lookahead_m=0.3, envelope=env), slack=1e-6)
    (v, w), _ = SharedController(envelope=env)((1.0, 4.0), [0, 0, 0], [[1.5, 0.2]])
    assert env.contains(v, w, slack=1e-6)


def test_episodes_use_the_envelope_of_their_posture():
    run = run_episode(n_pedestrians=6, duration_s=6.0, seed=2, controller="shared", stop_at_goal=False)
    env = reachable_envelope("seated")
    log = run.log
    for v, w in zip(log["v_user_mps"], log["omega_user_radps"], strict=True):
        assert env.contains(v, w, slack=1e-6)
    # executed commands pass the rate limiter after the envelope: at most one control step of
    # yaw acceleration (4.5 rad/s^2 x 0.05 s) beyond it
    commands = zip(log["v_cmd_mps"], log["omega_cmd_radps"], strict=True)
    excess = [abs(w) - env.max_yaw_rate(v) for v, w in commands]
    assert max(excess) <= 4.5 * 0.05 + 1e-9
    assert {"jerk", "relative_jerk"} <= set(run.metrics)
    old = run_episode(
        n_pedestrians=6, duration_s=6.0, seed=2, controller="shared", stop_at_goal=False, envelope=None
    )
    assert old.log["omega_user_radps"].abs().max() <= QOLO.max_yaw_rate_radps
    with pytest.raises(ValueError, match="envelope"):
        run_episode(n_pedestrians=2, duration_s=1.0, envelope="published")
