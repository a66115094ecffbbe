"""Module 03: the assignment gives identical results on two runs in fresh kernels.

The solution notebook (with its hidden tests) is executed twice with nbclient, each time in a
fresh kernel whose working folder is a new temporary directory. Every text output (streams,
``text/plain`` results) must be identical, and so must every value the student computes, read
at full precision by a probe cell appended to the notebook: the fault flags of the drifting
station (hashed bit for bit) and the scores of the stuck one, the radio plans, the mesh table
with its suppressions, the day's entities read back from the platform, the surface model's
held-out runs, its compiled C predictions and footprint, and the addresses behind the hashes.

Beyond "the same twice", the probe values are checked against what does not come from the
solution: the Semtech time-on-air of the chosen uplink worked by hand, ARIB STD-T108's hourly
limit where it binds, the parent totals an attacker would use on the mesh table, the energy
average of the day's noise from the dataset, and the hashes of the recovered addresses.
"""

from __future__ import annotations

import hashlib
import math

import pytest
from conftest import ROOT
from notebook_runs import assert_same_text, errors, execute, probe_values, text_outputs

pytestmark = pytest.mark.slow

NOTEBOOK = ROOT / "solutions" / "03-edge-sensing" / "assignment.ipynb"
MARKER = "M03-VALUES "

# Appended to the notebook after the last cell; reads every value the student defines.
PROBE = r'''
import hashlib as _hashlib
import json as _json


def _bits(flags):
    return _hashlib.sha256(np.packbits(np.asarray(flags, dtype=bool)).tobytes()).hexdigest()


_drift_flags = flag_faults(PM25["cs-28"], NETWORK_PM25)
_day_client = Client(tenant="a03-day")
_held = RIDE_WINDOWS[~RIDE_WINDOWS["run_id"].isin(training_runs)]
_X_held = _held[FEATURE_COLUMNS].to_numpy()
_c_labels = embedded.predict_with_source(device_c_source, _X_held,
                                         classes=sorted(RIDE_WINDOWS["surface"].unique()))
_noise_rows = readings[(readings["station_id"] == "cs-05")
                       & (readings["time"] >= pd.Timestamp("2025-06-12").tz_localize(JST))
                       & (readings["time"] < pd.Timestamp("2025-06-13").tz_localize(JST))]
_values = {
    "cs18": [cs18_scores.precision, cs18_scores.recall, cs18_scores.n_events, cs18_scores.events_detected],
    "cs28_flags": [_bits(_drift_flags), int(_drift_flags.sum())],
    "campus_plan": campus_plan,
    "big_battery_plan": plan_station(19000, 30, 1.5, 11, min_spreading_factor=9),
    "no_plan": plan_station(2600, 40, 2.5, 10, min_spreading_factor=11),
    "campus_cells": [[str(r.mesh_code), None if pd.isna(r.count) else int(r.count), bool(r.suppressed)]
                     for r in campus_cells.itertuples(index=False)],
    "sightings": [[str(d), float(a), float(o)] for d, a, o in CAMPUS_SIGHTINGS.itertuples(index=False)],
    "platform_day": platform_day,
    "air_5": _day_client.get("urn:ngsi-ld:AirQualityObserved:5", key_values=True),
    "noise_5": _day_client.get("urn:ngsi-ld:NoiseLevelObserved:5", key_values=True),
    "noise_5_rows": [float(x) for x in _noise_rows["noise_dba"].dropna()],
    "types_on_platform": sorted(_day_client.types()),
    "training_runs": [int(r) for r in training_runs],
    "held_out_surfaces": sorted(_held["surface"].unique()),
    "sklearn_labels": [str(x) for x in model_predict(_X_held)],
    "c_labels": [str(x) for x in _c_labels],
    "truth_labels": [str(x) for x in _held["surface"]],
    "flash": embedded.source_footprint(device_c_source)["flash"],
    "tracked": [[str(s), d, None if pd.isna(m) else m] for s, d, m in
                campus_tracked[["station_id", "digest", "mac"]].itertuples(index=False)],
}
print("M03-VALUES " + _json.dumps(_values, sort_keys=True, ensure_ascii=False, default=str))
'''


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("module03")
    return execute(NOTEBOOK, base / "first", PROBE), execute(NOTEBOOK, base / "second", PROBE)


@pytest.fixture(scope="module")
def values(two_runs):
    return probe_values(two_runs[0], MARKER)


def test_assignment_runs_without_errors(two_runs):
    for nb in two_runs:
        assert not errors(nb), errors(nb)


def test_text_outputs_are_identical_on_two_runs(two_runs):
    assert_same_text(*two_runs)


def test_student_values_are_identical_on_two_runs(two_runs):
    first, second = (probe_values(nb, MARKER) for nb in two_runs)
    assert first == second  # exact: floats at full precision, flags and C predictions bit for bit


def test_faults_are_found_on_the_stations_the_lesson_did_not_use(values):
    precision, recall, n_events, detected = values["cs18"]
    assert (n_events, detected) == (1, 1) and precision >= 0.8 and recall >= 0.8
    assert 0 < values["cs28_flags"][1] < 2016 // 4   # the drift is flagged, the fortnight is not


def _semtech_time_on_air(payload_bytes, sf, bw=125_000, cr=1, preamble=8):
    # SX1276 datasheet 4.1.1.7, worked here by hand (explicit header, CRC on, LDRO for SF11/12)
    t_sym = 2 ** sf / bw
    de = 1 if t_sym > 0.016 else 0
    n_payload = 8 + max(math.ceil((8 * payload_bytes - 4 * sf + 28 + 16) / (4 * (sf - 2 * de))) * (cr + 4), 0)
    return (preamble + 4.25) * t_sym + n_payload * t_sym


def test_radio_plans_keep_the_rules(values):
    plan = values["campus_plan"]
    assert (plan["spreading_factor"], plan["data_rate"]) == (9, 3)   # the floor: the fastest allowed
    # 10 application bytes + 13 bytes of LoRaWAN (MHDR 1, FHDR 7, FPort 1, MIC 4) at SF9/125 kHz
    assert plan["time_on_air_s"] == pytest.approx(_semtech_time_on_air(23, 9), abs=1e-9)
    assert plan["time_on_air_s"] == pytest.approx(0.205824, abs=1e-9)
    big = values["big_battery_plan"]
    # with 19 Ah the hourly 360 s of ARIB STD-T108 binds: 3600 * ToA / T <= 360 -> T >= 10 ToA
    assert big["interval_s"] == math.ceil(10 * big["time_on_air_s"])
    assert values["no_plan"] is None   # SF11 and SF12 (DR1, DR0) carry nothing with the 400 ms dwell limit


def test_no_suppressed_cell_can_be_recovered_from_a_parent_total(values):
    ju = pytest.importorskip("jismesh.utils")
    cells = values["campus_cells"]
    assert all(len(code) == 9 for code, _, _ in cells)                    # level 4: 500 m, 9 digits
    published = [count for _, count, hidden in cells if not hidden]
    assert min(published) >= 5 and all(count is None for _, count, hidden in cells if hidden)
    by_parent = {}
    for code, _, hidden in cells:
        by_parent.setdefault(code[:8], []).append(hidden)
    assert all(sum(hidden) != 1 for hidden in by_parent.values() if len(hidden) > 1)
    # distinct devices per 500 m cell, recomputed with jismesh (the reference the course tests against)
    truth = {}
    for device, lat, lon in values["sightings"]:
        truth.setdefault(str(ju.to_meshcode(lat, lon, 4)), set()).add(device)
    assert sorted(truth) == sorted(code for code, _, _ in cells)
    assert all(count == len(truth[code]) for code, count, hidden in cells if not hidden)
    assert all(hidden for code, _, hidden in cells if len(truth[code]) < 5)


def test_the_day_reached_the_platform_and_the_broken_frames_did_not(values):
    stats = values["platform_day"]
    assert stats["stored"] == 3 and stats["dead_lettered"] == 3
    assert {stats["truncated"], stats["bad_crc"], stats["station_mismatch"]} == {1}
    assert values["types_on_platform"] == ["AirQualityObserved", "CrowdFlowObserved", "NoiseLevelObserved"]
    levels = values["noise_5_rows"]
    energy_mean = 10 * math.log10(sum(10 ** (level / 10) for level in levels) / len(levels))
    assert len(levels) == 144 and values["noise_5"]["LAeq"] == pytest.approx(energy_mean, abs=0.051)
    assert values["noise_5"]["LAeq"] > sum(levels) / len(levels) + 1   # not the mean of decibels
    assert values["air_5"]["dateObserved"] == "2025-06-12T15:00:00Z"   # 24:00 JST


def test_the_compiled_surface_model_agrees_on_runs_it_never_saw(values):
    assert len(values["training_runs"]) == 45 and len(values["held_out_surfaces"]) == 5
    c, sk, truth = values["c_labels"], values["sklearn_labels"], values["truth_labels"]
    assert len(c) == len(sk) == len(truth) == 15 * 31          # 15 held-out runs, 31 half-second windows each
    assert sum(a == b for a, b in zip(c, sk, strict=True)) / len(c) >= 0.99
    assert sum(a == b for a, b in zip(sk, truth, strict=True)) / len(sk) >= 0.7
    assert 0 < values["flash"] <= 4 * 1024                      # the cheaper board's budget


def test_recovered_addresses_hash_back_to_the_log(values):
    salt = b"counter-fw-2.1"
    recovered = [(digest, mac) for _, digest, mac in values["tracked"] if mac is not None]
    assert len({mac for _, mac in recovered}) == 6                     # six vendor phones, one randomised
    for digest, mac in recovered:
        assert hashlib.sha256(salt + bytes.fromhex(mac.replace(":", ""))).hexdigest() == digest
    assert any(mac is None for _, _, mac in values["tracked"])


def test_without_a_c_compiler_the_notebook_still_runs_and_says_so(tmp_path, monkeypatch):
    # a student's laptop: no compiler on PATH, the hidden tests stripped as in the released notebook
    import re
    import sys
    from pathlib import Path

    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    monkeypatch.delenv("CC", raising=False)
    import nbformat

    released = nbformat.read(NOTEBOOK, as_version=4)
    for cell in released.cells:
        cell.source = re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", "", cell.source, flags=re.S)
    student = tmp_path / "assignment.ipynb"
    nbformat.write(released, student)
    nb = execute(student, tmp_path / "run")
    assert not errors(nb), errors(nb)
    said = [text for _, kind, text in text_outputs(nb) if kind == "stdout" and "C compiler" in text]
    assert len(said) == 2 and all("コンパイラ" in text for text in said)  # the answer cell and the test cell
