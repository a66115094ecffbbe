"""Crowd episodes: deterministic logs, consistent metrics, controllers that behave as documented."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sscity.mobility import capsule_distance, run_episode
from sscity.mobility.episode import episode_metrics


@pytest.fixture(scope="module")
def safe_run():
    return run_episode(n_pedestrians=12, duration_s=25.0, seed=4, controller="safe_go_to_goal")


def test_log_columns_and_rates(safe_run):
    log = safe_run.log
    assert list(log.columns[:4]) == ["t_s", "x_m", "y_m", "theta_rad"]
    assert {"v_cmd_mps", "v_user_mps", "min_distance_m", "density_2_5", "contacts", "tilt_deg"} <= set(
        log.columns
    )
    assert np.allclose(np.diff(log["t_s"]), 0.05)  # 20-Hz control
    assert safe_run.pedestrians_xy.shape == (len(log), 12, 2)
    # the logged minimum distance is the capsule distance to the logged pedestrians
    poses = log[["x_m", "y_m", "theta_rad"]].to_numpy()
    recomputed = capsule_distance(poses, safe_run.pedestrians_xy).min(axis=1)
    assert np.allclose(recomputed, log["min_distance_m"])


def test_commands_respect_the_device_limits(safe_run):
    log = safe_run.log
    assert log["v_cmd_mps"].abs().max() <= 1.0 + 1e-9  # cruise speed
    assert np.abs(np.diff(log["v_cmd_mps"])).max() <= 1.5 * 0.05 + 1e-9  # 1.5 m/s^2
    assert np.abs(np.diff(log["omega_cmd_radps"])).max() <= 4.5 * 0.05 + 1e-9  # 4.5 rad/s^2


def test_reaches_the_goal_and_metrics_agree_with_the_log(safe_run):
    m = safe_run.metrics
    assert m["reached"] and m["min_distance_to_goal_m"] < 0.5
    assert 1.0 <= m["relative_path_length"] < 1.2
    assert 0 < m["relative_time_to_goal"] <= 1.0
    assert m["min_distance_m"] == pytest.approx(safe_run.log["min_distance_m"].min())
    assert m["min_distance_m"] > 0  # the safety layer kept the capsule clear
    assert m["virtual_collisions"] == 0 and m["contact_onsets"] == 0 and not m["tipped_over"]
    assert 0.9 < m["fluency"] <= 1.0
    assert m["agreement"] == pytest.approx(1.0, abs=0.02)  # scaling keeps the direction
    assert 0 < m["contribution"] < 1
    assert episode_metrics(safe_run.log, safe_run.goal_xy) == m


def test_same_seed_same_log_different_seed_different_crowd():
    a = run_episode(n_pedestrians=8, duration_s=8.0, seed=11, controller="shared")
    b = run_episode(n_pedestrians=8, duration_s=8.0, seed=11, controller="shared")
    c = run_episode(n_pedestrians=8, duration_s=8.0, seed=12, controller="shared")
    pd.testing.assert_frame_equal(a.log, b.log, check_exact=True)
    assert np.array_equal(a.pedestrians_xy, b.pedestrians_xy)
    assert not np.array_equal(a.pedestrians_xy[0], c.pedestrians_xy[0])


def test_blind_baseline_collides_where_the_safety_layer_does_not():
    """Pedestrians that ignore the device: the blind go-to-goal drives into them."""
    blind = run_episode(
        n_pedestrians=20, duration_s=40.0, seed=0, controller="go_to_goal", pedestrians_avoid_device=False
    )
    safe = run_episode(
        n_pedestrians=20,
        duration_s=40.0,
        seed=0,
        controller="safe_go_to_goal",
        pedestrians_avoid_device=False,
    )
    assert blind.metrics["virtual_collisions"] > 0 and blind.metrics["min_distance_m"] < 0
    assert safe.metrics["virtual_collisions"] == 0 and safe.metrics["min_distance_m"] > 0
    assert blind.metrics["contact_onsets"] > safe.metrics["contact_onsets"]


def test_shared_control_logs_the_user_and_the_authority():
    run = run_episode(n_pedestrians=6, duration_s=6.0, seed=2, controller="shared", stop_at_goal=False)
    log = run.log
    assert len(log) == 121 and log["t_s"].iloc[-1] == pytest.approx(6.0)
    assert log["authority"].between(0.2, 1.0).all()
    assert not np.allclose(log["v_user_mps"], log["v_cmd_mps"])


def test_validation():
    with pytest.raises(ValueError, match="controller"):
        run_episode(controller="autopilot")
    with pytest.raises(ValueError, match="control_hz"):
        run_episode(control_hz=7)
    with pytest.raises(ValueError, match="scenario"):
        run_episode(scenario="stampede")
