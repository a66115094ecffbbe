"""ride-imu: SIMULATED IMU streams of Qolo over five surfaces. The schema the lessons rely on,
balanced labels, runs rebuilt byte for byte from their seeds, the physics an accelerometer
must show (gravity on level ground, the 1:12 slope in the gravity components), and surfaces
that a small forest tells apart on runs it never saw, but not perfectly."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier
from sscity.data import dataset_path, load_ride_imu, load_ride_runs
from sscity.data.rideimu import (
    COLUMNS,
    REPEATS,
    RIDE_IMU_FILES,
    SAMPLE_RATE_HZ,
    SPEEDS_MPS,
    SURFACES,
    ride_plan,
    simulate_run,
)
from sscity.sensing.features import window_features

G = 9.81


@pytest.fixture(scope="module")
def imu():
    return load_ride_imu()


@pytest.fixture(scope="module")
def runs():
    return load_ride_runs()


@pytest.fixture(scope="module")
def per_run(imu):
    return imu.groupby(["run_id", "surface", "speed_mps"], as_index=False).agg(
        ax=("ax_mps2", "mean"), ay=("ay_mps2", "mean"), az=("az_mps2", "mean"),
        az_std=("az_mps2", "std"), gx=("gx_radps", "mean"), gy=("gy_radps", "mean"),
        gz=("gz_radps", "mean"))


@pytest.fixture(scope="module")
def windows(imu):
    return window_features(imu, window=100)


# --------------------------------------------------------------------------- schema


def test_columns_types_and_shape(imu):
    assert list(imu.columns) == list(COLUMNS)
    assert imu["run_id"].dtype.kind == "i" and pd.api.types.is_string_dtype(imu["surface"])
    assert all(imu[c].dtype == np.float64 for c in COLUMNS[2:])
    assert not imu.isna().any().any()
    n_runs = len(SURFACES) * len(SPEEDS_MPS) * REPEATS
    assert imu["run_id"].nunique() == n_runs == 60
    samples = int(8 * SAMPLE_RATE_HZ)
    assert imu.groupby("run_id").size().eq(samples).all()
    assert imu["run_id"].is_monotonic_increasing
    steps = imu.groupby("run_id")["t_s"].diff().dropna()
    assert np.allclose(steps, 1 / SAMPLE_RATE_HZ)
    assert imu.groupby("run_id")["t_s"].first().eq(0).all()
    assert set(imu["speed_mps"]) == set(SPEEDS_MPS)
    size = sum(dataset_path("ride-imu", name).stat().st_size for name in RIDE_IMU_FILES)
    assert size < 6_000_000


def test_five_surfaces_balanced_and_consistent_with_runs_csv(imu, runs):
    assert set(imu["surface"]) == set(SURFACES)
    assert imu["surface"].value_counts().nunique() == 1  # the same number of samples each
    assert runs.groupby(["surface", "speed_mps"]).size().eq(REPEATS).all()
    stored = imu.groupby("run_id")[["surface", "speed_mps"]].first()
    assert stored.equals(runs.set_index("run_id")[["surface", "speed_mps"]])
    assert runs["seed"].is_unique and set(runs["posture"]) == {"seated", "standing"}
    assert (runs.loc[runs["surface"] == "ramp", "slope_percent"] == 8.33).all()


# --------------------------------------------------------------------------- determinism


def _csv_rows(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False, lineterminator="\n")
    return buffer.getvalue()


def test_the_plan_is_rebuilt_byte_for_byte():
    buffer = io.StringIO()
    ride_plan().to_csv(buffer, index=False, lineterminator="\n")
    assert buffer.getvalue().encode() == dataset_path("ride-imu", "runs.csv").read_bytes()


@pytest.mark.parametrize("surface", ["tactile_paving", "curb_cut"])
def test_one_run_is_rebuilt_byte_for_byte_from_its_seed(surface, runs):
    # The whole dataset (about 15 s of simulation) is rebuilt by `sscity data build` and
    # checked by tests/test_datasets.py; here one contact-rich run, against the stored rows.
    row = runs[runs["surface"] == surface].iloc[-1]
    rebuilt = _csv_rows(simulate_run(row))
    lines = dataset_path("ride-imu", "imu.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    stored = "".join(line for line in lines[1:] if line.startswith(f"{row.run_id},"))
    assert rebuilt == stored


# --------------------------------------------------------------------------- physics


def test_level_ground_reads_gravity_on_z_and_no_rotation(per_run):
    smooth = per_run[per_run["surface"] == "smooth"]
    assert smooth["az"].between(G - 0.1, G + 0.1).all()  # specific force: +g up, at rest or cruising
    assert smooth["ay"].abs().max() < 0.1
    # Resting pitched back onto the rear caster (0.5-1 degree): a small positive ax.
    pitch = np.degrees(np.arctan2(smooth["ax"], smooth["az"]))
    assert pitch.between(0.3, 1.5).all()
    assert smooth[["gx", "gy", "gz"]].abs().max().max() < 0.01
    assert smooth["az_std"].between(0.02, 0.04).all()  # the assumed noise, 0.03 m/s^2


def test_the_ramp_tilts_the_gravity_vector_by_atan_of_its_slope(per_run):
    pitch = np.degrees(np.arctan2(per_run["ax"], per_run["az"]))
    ramp = pitch[per_run["surface"] == "ramp"]
    level = pitch[per_run["surface"] == "smooth"]
    slope_deg = math.degrees(math.atan(1 / 12))  # 4.76 degrees
    assert ramp.mean() - level.mean() == pytest.approx(slope_deg, abs=0.3)
    assert (ramp - level.mean()).between(slope_deg - 0.6, slope_deg + 0.6).all()
    # |f| stays g: the slope turns gravity, it does not add to it.
    ramp_runs = per_run[per_run["surface"] == "ramp"]
    assert np.hypot(ramp_runs["ax"], ramp_runs["az"]).between(G - 0.1, G + 0.1).all()


def test_bumps_shake_more_at_higher_speed_and_the_bars_ring_faster(per_run, windows, runs):
    for surface in ("tactile_paving", "gravel", "curb_cut"):
        shaking = per_run[per_run["surface"] == surface].groupby("speed_mps")["az_std"].mean()
        assert shaking.is_monotonic_increasing and shaking[1.0] > 2 * shaking[0.5], surface
    assert per_run.loc[per_run["surface"].isin(["smooth", "ramp"]), "az_std"].max() < 0.1
    speed = windows["run_id"].map(runs.set_index("run_id")["speed_mps"])
    bars = windows[(windows["surface"] == "tactile_paving")]
    peak = bars.groupby(speed[bars.index])["gy_radps_peak_hz"].median()
    # Bars 75 mm apart (JIS T 9251) pass at about ground speed / 0.075 m: 5-7 Hz at 0.5 m/s,
    # 11-13 Hz at 1.0 m/s (the device covers ground somewhat slower than commanded).
    assert 4 <= peak[0.5] <= 7 and 10 <= peak[1.0] <= 13.5


def test_values_stay_within_the_sensor_range(imu):
    assert imu[["ax_mps2", "ay_mps2", "az_mps2"]].abs().max().max() <= 16 * 9.80665
    assert imu[["gx_radps", "gy_radps", "gz_radps"]].abs().max().max() <= math.radians(2000)
    assert np.allclose(imu["ax_mps2"], imu["ax_mps2"].round(3))
    assert np.allclose(imu["gx_radps"], imu["gx_radps"].round(4))


# --------------------------------------------------------------------------- learnable, not trivial


def _group_split(windows):
    test = windows["run_id"] % REPEATS == 0  # one run in four of every surface and speed
    features = windows.filter(regex="_(mean|std|rms|ptp|band_power|peak_hz)$")
    return features[~test], features[test], windows["surface"][~test], windows["surface"][test]


def test_a_small_forest_classifies_runs_it_never_saw(windows):
    X_train, X_test, y_train, y_test = _group_split(windows)
    model = RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0).fit(X_train, y_train)
    accuracy = (model.predict(X_test) == y_test).mean()
    assert 0.85 <= accuracy < 1.0  # chance is 0.2; perfect would mean the task is trivial


def test_no_single_feature_separates_the_surfaces(windows):
    X_train, X_test, y_train, y_test = _group_split(windows)
    best = max((DecisionTreeClassifier(max_depth=4, random_state=0).fit(X_train[[c]], y_train)
                .score(X_test[[c]], y_test), c) for c in X_train.columns)
    assert best[0] < 0.9, best


def test_the_compiled_forest_agrees_with_scikit_learn(windows, tmp_path):
    from sscity.sensing.embedded import CompilerNotFound, agreement

    X_train, X_test, y_train, _ = _group_split(windows)
    model = RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0)
    model.fit(X_train.to_numpy(), y_train)
    try:
        share = agreement(model, X_test.to_numpy(), folder=tmp_path)
    except CompilerNotFound:
        pytest.skip("no C compiler")
    assert share >= 0.99


def test_loader_says_what_to_do_when_files_are_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="sscity data build"):
        load_ride_imu(tmp_path)
    with pytest.raises(FileNotFoundError, match="sscity data build"):
        load_ride_runs(tmp_path)
