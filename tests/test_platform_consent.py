"""Dynamic opt-in consent with a hash-chained log, gated reads, and open-data export."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest
from sscity.platform import Client
from sscity.platform.consent import GENESIS, ConsentError, ConsentLedger, gated_get
from sscity.platform.opendata import export_csv, export_geojson, flatten_entity

T0, T1, T2, T3 = ("2024-05-01T09:00:00Z", "2024-05-01T12:00:00Z", "2024-05-02T09:00:00Z",
                  "2024-05-03T09:00:00Z")


def test_grants_and_revocations_switch_each_recipient_on_and_off_over_time():
    ledger = ConsentLedger()
    ledger.grant("r1", "bus", "booking", at=T0)
    ledger.grant("r1", "clinic", "booking", at=T1)
    ledger.revoke("r1", "bus", "booking", at=T2)
    assert not ledger.allows("r1", "bus", "booking", at="2024-04-30T00:00:00Z")  # before any grant
    assert ledger.allows("r1", "bus", "booking", at=T1)
    assert not ledger.allows("r1", "bus", "booking", at=T3)
    assert ledger.allows("r1", "clinic", "booking", at=T3)
    assert not ledger.allows("r1", "clinic", "research", at=T3)  # consent is per purpose
    assert not ledger.allows("r2", "clinic", "booking", at=T3)  # and per resident
    assert ledger.recipients("r1", at=T1) == [("bus", "booking"), ("clinic", "booking")]
    assert ledger.recipients("r1", at=T3) == [("clinic", "booking")]


def test_the_chain_links_every_record_to_the_one_before():
    ledger = ConsentLedger()
    first = ledger.grant("r1", "bus", "booking", at=T0)
    second = ledger.check_access("r1", "bus", "booking", at=T1)
    assert second is True
    records = ledger.records
    assert records[0] is first and records[0].prev_hash == GENESIS
    assert records[1].prev_hash == records[0].hash and records[1].action == "access-allowed"
    assert len({r.hash for r in records}) == 2 and ledger.verify() == []


@pytest.mark.parametrize("tamper", ["edit", "delete", "swap"])
def test_any_edit_deletion_or_reordering_of_the_log_is_detected(tmp_path, tamper):
    ledger = ConsentLedger()
    ledger.grant("r1", "bus", "booking", at=T0)
    ledger.revoke("r1", "bus", "booking", at=T1)
    ledger.check_access("r1", "bus", "booking", at=T2)
    lines = ledger.save(tmp_path / "ledger.jsonl").read_text().splitlines()
    if tamper == "edit":  # turn the revocation into a grant
        record = json.loads(lines[1])
        record["action"] = "grant"
        lines[1] = json.dumps(record)
    elif tamper == "delete":
        del lines[1]
    else:
        lines[1], lines[2] = lines[2], lines[1]
    (tmp_path / "ledger.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="not intact"):
        ConsentLedger.load(tmp_path / "ledger.jsonl")


def test_an_intact_ledger_round_trips_through_a_file(tmp_path):
    ledger = ConsentLedger()
    ledger.grant("r1", "bus", "booking", at=T0)
    ledger.check_access("r1", "clinic", "booking", at=T1)
    again = ConsentLedger.load(ledger.save(tmp_path / "l.jsonl"))
    assert again.records == ledger.records
    assert list(again.to_dataframe()["action"]) == ["grant", "access-denied"]


def test_an_edited_record_in_memory_fails_verification():
    ledger = ConsentLedger()
    ledger.grant("r1", "bus", "booking", at=T0)
    ledger._records[0] = dataclasses.replace(ledger.records[0], recipient="someone-else")
    assert ledger.verify() == [0]


def test_bad_times_and_names_get_clear_errors():
    ledger = ConsentLedger()
    with pytest.raises(ValueError, match="time zone"):
        ledger.grant("r1", "bus", "booking", at="2024-05-01T09:00:00")
    with pytest.raises(ValueError, match="ISO 8601"):
        ledger.grant("r1", "bus", "booking", at="yesterday")
    with pytest.raises(ValueError, match="non-empty"):
        ledger.grant("", "bus", "booking", at=T0)
    ledger.grant("r1", "bus", "booking", at=T1)
    with pytest.raises(ValueError, match="time order"):
        ledger.revoke("r1", "bus", "booking", at=T0)


def _booking(client):
    client.create({"id": "urn:ngsi-ld:HealthBooking:b1", "type": "HealthBooking",
                   "refResident": {"type": "Relationship", "object": "urn:ngsi-ld:Person:r1"},
                   "appointment": {"type": "Property", "value": "2024-05-05T10:00:00Z"}})


def test_gated_reads_follow_consent_and_every_decision_is_logged():
    client = Client(db=":memory:")
    _booking(client)
    ledger = ConsentLedger()
    with pytest.raises(ConsentError, match="has not switched"):
        gated_get(client, ledger, "urn:ngsi-ld:HealthBooking:b1", "ondemand-bus", "booking", at=T0)
    ledger.grant("urn:ngsi-ld:Person:r1", "ondemand-bus", "booking", at=T1)
    entity = gated_get(client, ledger, "urn:ngsi-ld:HealthBooking:b1", "ondemand-bus", "booking", at=T2,
                       key_values=True)
    assert entity["appointment"] == "2024-05-05T10:00:00Z"
    ledger.revoke("urn:ngsi-ld:Person:r1", "ondemand-bus", "booking", at=T2)
    with pytest.raises(ConsentError):
        gated_get(client, ledger, "urn:ngsi-ld:HealthBooking:b1", "ondemand-bus", "booking", at=T3)
    assert [r.action for r in ledger.records] == ["access-denied", "grant", "access-allowed", "revoke",
                                                  "access-denied"]
    assert all(r.detail == "urn:ngsi-ld:HealthBooking:b1" for r in ledger.records if "access" in r.action)
    assert ledger.verify() == []


PARKING = [
    {"id": f"urn:ngsi-ld:ParkingSpot:p{i}", "type": "ParkingSpot",
     "status": {"type": "Property", "value": status},
     "location": {"type": "GeoProperty",
                  "value": {"type": "Point", "coordinates": [round(140.11 + i / 1000, 3), 36.08]}}}
    for i, status in enumerate(["free", "occupied", "free"])
]


def test_geojson_export_keeps_lon_lat_order_and_states_licence_and_synthetic(tmp_path):
    path = export_geojson(PARKING, tmp_path / "parking.geojson", attribution="course", synthetic=True,
                          generated_at=T0, source="query type=ParkingSpot")
    data = json.loads(path.read_text())
    assert data["type"] == "FeatureCollection" and len(data["features"]) == 3
    assert data["features"][1]["geometry"]["coordinates"] == [140.111, 36.08]
    assert data["features"][1]["properties"] == {"id": PARKING[1]["id"], "type": "ParkingSpot",
                                                 "status": "occupied"}
    assert data["metadata"]["license"] == "CC-BY-4.0" and data["metadata"]["synthetic"] is True
    assert data["metadata"]["license_url"].startswith("https://creativecommons.org/")


def test_csv_export_writes_a_csvw_metadata_file(tmp_path):
    table, meta = export_csv(PARKING, tmp_path / "parking.csv", licence="CC0-1.0", attribution="course",
                             synthetic=True, generated_at=T0)
    rows = list(csv.DictReader(table.open()))
    assert [r["status"] for r in rows] == ["free", "occupied", "free"]
    assert rows[0]["lon"] == "140.11" and rows[0]["lat"] == "36.08"
    described = json.loads(meta.read_text())
    assert described["url"] == "parking.csv" and "zero" in described["dc:license"]["@id"]
    assert [c["name"] for c in described["tableSchema"]["columns"]] == list(rows[0])
    assert "SYNTHETIC" in described["dc:title"]


def test_exports_refuse_personal_data_and_unknown_licences(tmp_path):
    booking = {"id": "urn:ngsi-ld:HealthBooking:b1", "type": "HealthBooking"}
    with pytest.raises(ValueError, match="personal data"):
        export_csv([booking], tmp_path / "x.csv", attribution="a", synthetic=True, generated_at=T0)
    with pytest.raises(ValueError, match="Unknown licence"):
        export_geojson(PARKING, tmp_path / "x.geojson", licence="all rights reserved", attribution="a",
                       synthetic=True, generated_at=T0)
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.geojson").exists()


def test_flatten_reads_normalised_and_key_values_alike():
    normal = flatten_entity(PARKING[0])
    simple = flatten_entity({"id": PARKING[0]["id"], "type": "ParkingSpot", "status": "free",
                             "location": {"type": "Point", "coordinates": [140.11, 36.08]}})
    assert normal == simple
    with pytest.raises(ValueError, match="'id' and 'type'"):
        flatten_entity({"status": "free"})
