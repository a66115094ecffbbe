"""Module 02: the assignment gives identical results on two runs in fresh kernels.

The solution notebook (with its hidden tests) is executed twice with nbclient, each time in a
fresh kernel whose working folder is a new temporary directory. Every text output (streams,
``text/plain`` results) must be identical, and so must every value the student computes,
read at full precision by a probe cell appended to the notebook: the entity of a reading, the
provisioning result and the free-spot counts, the survey route (geo-query and distances), the
daily NO2 maxima from the temporal API, the crowding alerts, the federated nearest parking
spots, the consent decisions with the ledger's hash chain, and the bytes of the open-data file.

The same notebooks must run unchanged against a broker over HTTP when an instructor points
them at one (``SSCITY_BROKER_URL``): the assignment runs twice against one persistent
``sscity platform serve`` (a shared broker keeps tenants between kernels) and gives the
embedded run's values; the lesson runs there for two students told apart by
``SSCITY_TENANT_PREFIX``.
"""

from __future__ import annotations

import pytest
from conftest import ROOT
from notebook_runs import assert_same_text, errors, execute, probe_values

pytestmark = pytest.mark.slow

NOTEBOOK = ROOT / "solutions" / "02-data-platform" / "assignment.ipynb"
MARKER = "M02-VALUES "

# Appended to the notebook after the last cell; reads every value the student defines.
PROBE = r'''
import hashlib as _hashlib
import json as _json

_values = {
    "entity": make_air_quality_entity(air_quality.iloc[0]),
    "entity_aq04": make_air_quality_entity(air_quality[air_quality["sensor_id"] == "aq-04"].iloc[30]),
    "refused": list(refused),
    "free_now": {site: int(count) for site, count in free_now.items()},
    "parking_in_broker": parking_client.count(type="ParkingSpot"),
    "station_route": [[facility, float(metres)] for facility, metres in station_route],
    "kenkyu_route": [[facility, float(metres)] for facility, metres in
                     survey_route(geo_client, (140.0824, 36.0821), 1500)],
    "no2_max_may3": {key: float(value) for key, value in no2_max_may3.items()},
    "no2_max_may2": {key: float(value) for key, value in daily_max_no2(air_client, "2024-05-02").items()},
    "alerts": [[entity_id, str(observed_at)] for entity_id, observed_at in alerts],
    "station_parking": {key: [value[0], float(value[1])] for key, value in station_parking.items()},
    "consent_decisions": list(consent_decisions),
    "consent_chain": [record.hash for record in consent_ledger.records],
    "ledger_file": _hashlib.sha256(Path(ledger_path).read_bytes()).hexdigest(),
    "open_data": _hashlib.sha256(Path(open_path).read_bytes()).hexdigest(),
    "open_rows": Path(open_path).read_text(encoding="utf-8").splitlines()[1:],
}
print("M02-VALUES " + _json.dumps(_values, sort_keys=True, ensure_ascii=False))
'''

def _run(folder, notebook=NOTEBOOK, probe=True):
    return execute(notebook, folder, PROBE if probe else None)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("module02")
    return _run(base / "first"), _run(base / "second")


def test_assignment_runs_without_errors(two_runs):
    for nb in two_runs:
        assert not errors(nb), errors(nb)


def test_text_outputs_are_identical_on_two_runs(two_runs):
    assert_same_text(*two_runs)


def test_student_values_are_identical_on_two_runs(two_runs):
    first, second = (probe_values(nb, MARKER) for nb in two_runs)
    assert first == second  # exact: floats at full precision, files and hash chains byte for byte
    # and they are the values the module is about
    assert first["entity"]["location"]["value"]["coordinates"][0] > 140  # [lon, lat]
    assert first["entity"]["no2"]["unitCode"] == "GQ"
    assert first["refused"] == [f"urn:ngsi-ld:ParkingSpot:{s}-99" for s in ("site-avenue", "site-center")]
    assert first["parking_in_broker"] == 64
    assert [stop[0].rsplit("-", 1)[-1] for stop in first["station_route"]] == [
        "003", "004", "007", "008", "010", "012", "013"]  # the unsurveyed facilities, nearest first
    assert 260 < first["station_route"][0][1] < first["station_route"][-1][1] <= 1000
    assert first["no2_max_may3"]["urn:ngsi-ld:AirQualityObserved:aq-01"] == 29.2  # the JST day
    assert len(first["alerts"]) == 6
    assert {a[0] for a in first["alerts"]} == {"urn:ngsi-ld:CrowdFlowObserved:cf-01"}
    assert set(first["station_parking"]) == {f"urn:ngsi-ld:PublicFacility:facility-00{n}" for n in (2, 5, 9)}
    assert first["consent_decisions"] == ["allowed", "denied", "denied", "denied", "allowed", "denied",
                                          "allowed", "denied"]
    assert [row.rsplit(",", 2)[1:] for row in first["open_rows"]] == [
        ["kukizaki", "7"], ["oho", "5"], ["sakura", "4"], ["toyosato", "4"]]  # yatabe, tsukuba: 2 each


def test_the_module_runs_unchanged_against_a_shared_broker_over_http(two_runs, tmp_path, monkeypatch):
    from platform_support import start_server, stop_server

    proc, url = start_server(tmp_path / "shared.db")
    try:
        monkeypatch.setenv("SSCITY_BROKER_URL", url)  # inherited by the kernels nbclient starts
        runs = [_run(tmp_path / f"assignment-{n}") for n in (1, 2)]
        for student in ("student-a", "student-b"):
            monkeypatch.setenv("SSCITY_TENANT_PREFIX", student)
            runs.append(_run(tmp_path / f"lesson-{student}", NOTEBOOK.with_name("lesson.ipynb"), probe=False))
    finally:
        stop_server(proc)
    for nb in runs:
        assert not errors(nb), errors(nb)
    embedded = probe_values(two_runs[0], MARKER)
    for nb in runs[:2]:
        assert probe_values(nb, MARKER) == embedded
