"""Temporal API (NGSI-LD 5.6.11, 5.7.3, 5.7.4): history recorded from every write with observedAt."""

from __future__ import annotations

import pytest
from platform_support import COURSE_LINK, NGSI, air_quality, assert_problem, http_client
from sscity.platform import Broker

ENTITY = "urn:ngsi-ld:AirQualityObserved:001"
TEMPORAL = f"{NGSI}/temporal/entities"


@pytest.fixture
def http():
    broker = Broker(":memory:")
    with http_client(broker, Link=COURSE_LINK) as client:
        yield client
    broker.close()


@pytest.fixture
def history(http):
    """no2 observed at 09:00 (create), 10:00 (PATCH attrs), 11:00 (partial update), 12:00 (batch upsert)."""
    assert http.post(f"{NGSI}/entities", json=air_quality(1, no2=10)).status_code == 201
    assert http.patch(f"{NGSI}/entities/{ENTITY}/attrs", json={
        "no2": {"type": "Property", "value": 20, "observedAt": "2024-05-01T10:00:00Z"},
        "pm25": {"type": "Property", "value": 5}}).status_code == 207  # pm25 does not exist yet
    assert http.post(f"{NGSI}/entities/{ENTITY}/attrs", json={"pm25": 5}).status_code == 204  # no observedAt
    assert http.patch(f"{NGSI}/entities/{ENTITY}/attrs/no2",
                      json={"value": 30, "observedAt": "2024-05-01T11:00:00+00:00"}).status_code == 204
    unrecorded = http.patch(f"{NGSI}/entities/{ENTITY}/attrs/no2", json={"value": 31})  # no observedAt
    assert unrecorded.status_code == 204
    upsert = air_quality(1, no2=40, observed_at="2024-05-01T21:00:00+09:00")  # 12:00 UTC
    assert http.post(f"{NGSI}/entityOperations/upsert", params={"options": "update"},
                     json=[upsert]).status_code == 204
    return http


def values(body, attribute="no2"):
    return [instance["value"] for instance in body[attribute]]


@pytest.mark.parametrize("slash", ["", "/"])
def test_every_write_with_observed_at_is_recorded(history, slash):
    response = history.get(f"{TEMPORAL}/{ENTITY}{slash}")
    assert response.status_code == 200 and response.headers["Link"] == COURSE_LINK
    body = response.json()
    assert body["id"] == ENTITY and body["type"] == "AirQualityObserved"
    assert values(body) == [10, 20, 30, 40]
    assert [instance["observedAt"] for instance in body["no2"]] == [
        f"2024-05-01T{hour}:00:00.000Z" for hour in ("09", "10", "11", "12")]
    assert len({instance["instanceId"] for instance in body["no2"]}) == 4
    assert body["no2"][0]["unitCode"] == "GQ"
    assert "pm25" not in body  # written without observedAt: no history


@pytest.mark.parametrize("params, expected", [
    ({"timerel": "before", "timeAt": "2024-05-01T11:00:00Z"}, [10, 20]),
    ({"timerel": "after", "timeAt": "2024-05-01T11:00:00Z"}, [30, 40]),
    ({"timerel": "between", "timeAt": "2024-05-01T10:00:00Z", "endTimeAt": "2024-05-01T12:00:00Z"}, [20, 30]),
    ({"timerel": "after", "timeAt": "2024-05-01T19:30:00+09:00"}, [30, 40]),  # 10:30 UTC
    ({"lastN": 2}, [30, 40]),
    ({"timerel": "before", "timeAt": "2024-05-01T12:00:00Z", "lastN": 1}, [30]),
])
def test_time_windows_and_last_n(history, params, expected):
    assert values(history.get(f"{TEMPORAL}/{ENTITY}", params=params).json()) == expected


def test_temporal_values_representation_and_attrs(history):
    for params in ({"options": "temporalValues"}, {"format": "temporalValues"}):
        body = history.get(f"{TEMPORAL}/{ENTITY}", params={**params, "lastN": 2}).json()
        assert body["no2"] == {"type": "Property", "values": [[30, "2024-05-01T11:00:00.000Z"],
                                                              [40, "2024-05-01T12:00:00.000Z"]]}
    assert "no2" not in history.get(f"{TEMPORAL}/{ENTITY}", params={"attrs": "pm25"}).json()


@pytest.mark.parametrize("params", [
    {"timerel": "during", "timeAt": "2024-05-01T10:00:00Z"}, {"timerel": "before"},
    {"timerel": "between", "timeAt": "2024-05-01T10:00:00Z"},
    {"timerel": "between", "timeAt": "2024-05-01T10:00:00Z", "endTimeAt": "2024-05-01T09:00:00Z"},
    {"timerel": "after", "timeAt": "tomorrow"}, {"timeAt": "2024-05-01T10:00:00Z"}, {"lastN": 0},
    {"lastN": "many"}, {"timeproperty": "modifiedAt"},
])
def test_bad_time_parameters_are_400(history, params):
    assert_problem(history.get(f"{TEMPORAL}/{ENTITY}", params=params), 400, "BadRequestData")


def test_unknown_entity_and_deleted_history(history):
    assert_problem(history.get(f"{TEMPORAL}/urn:x:none"), 404, "ResourceNotFound")
    # Clause 5.6.16: deleting the temporal representation deletes the entity, whose history it is;
    # a broker that kept the entity would answer later queries differently from a production one.
    assert history.delete(f"{TEMPORAL}/{ENTITY}").status_code == 204
    assert_problem(history.get(f"{TEMPORAL}/{ENTITY}"), 404, "ResourceNotFound")
    assert_problem(history.get(f"{NGSI}/entities/{ENTITY}"), 404, "ResourceNotFound")
    assert_problem(history.delete(f"{TEMPORAL}/{ENTITY}"), 404, "ResourceNotFound")


@pytest.mark.parametrize("slash", ["", "/"])
def test_temporal_create_then_add_instances(http, slash):
    relationship = [{"type": "Relationship", "object": f"urn:ngsi-ld:Device:{n}",
                     "observedAt": f"2024-05-0{n}T00:00:00Z"} for n in (1, 2)]
    body = {"id": "urn:ngsi-ld:CrowdFlowObserved:1", "type": "CrowdFlowObserved",
            "peopleCount": [{"type": "Property", "value": n * 10, "observedAt": f"2024-05-01T0{n}:00:00Z"}
                            for n in (3, 1, 2)],
            "refDevice": relationship}
    response = http.post(f"{TEMPORAL}{slash}", json=body)
    assert response.status_code == 201
    assert response.headers["Location"] == f"{TEMPORAL}/urn:ngsi-ld:CrowdFlowObserved:1"
    current = http.get(f"{NGSI}/entities/urn:ngsi-ld:CrowdFlowObserved:1",
                       params={"options": "keyValues"}).json()
    assert current["peopleCount"] == 30 and current["refDevice"] == "urn:ngsi-ld:Device:2"  # latest instances
    more = {"id": "urn:ngsi-ld:CrowdFlowObserved:1", "type": "CrowdFlowObserved",
            "peopleCount": {"type": "Property", "value": 40, "observedAt": "2024-05-01T04:00:00Z"}}
    assert http.post(TEMPORAL, json=more).status_code == 204
    got = http.get(f"{TEMPORAL}/urn:ngsi-ld:CrowdFlowObserved:1", params={"options": "temporalValues"}).json()
    assert [pair[0] for pair in got["peopleCount"]["values"]] == [10, 20, 30, 40]
    assert got["refDevice"] == {"type": "Relationship", "objects": [
        ["urn:ngsi-ld:Device:1", "2024-05-01T00:00:00.000Z"],
        ["urn:ngsi-ld:Device:2", "2024-05-02T00:00:00.000Z"]]}


@pytest.mark.parametrize("body", [
    {"id": "urn:x:1", "type": "T", "n": [{"type": "Property", "value": 1}]},  # no observedAt
    {"id": "urn:x:1", "type": "T", "n": []},
    {"id": "not a uri", "type": "T"}, {"id": "urn:x:1"}, [],
])
def test_bad_temporal_creates_are_400_and_store_nothing(http, body):
    assert_problem(http.post(TEMPORAL, json=body), 400, "BadRequestData")
    assert http.get(f"{NGSI}/entities", params={"count": "true"}).headers["NGSILD-Results-Count"] == "0"


def test_temporal_query_over_entities(http):
    for n in range(3):
        observed = f"2024-05-0{n + 1}T00:00:00Z"
        http.post(f"{NGSI}/entities", json=air_quality(n, no2=10 * n, observed_at=observed))
    http.post(f"{NGSI}/entities", json=air_quality(9, observed_at=None))  # no history at all
    response = http.get(TEMPORAL, params={"type": "AirQualityObserved", "timerel": "after",
                                          "timeAt": "2024-05-02T00:00:00Z", "count": "true"})
    assert response.status_code == 200
    assert [entity["id"] for entity in response.json()] == [
        "urn:ngsi-ld:AirQualityObserved:001", "urn:ngsi-ld:AirQualityObserved:002"]
    assert response.headers["NGSILD-Results-Count"] == "2"
    filtered = http.get(f"{TEMPORAL}/", params={"type": "AirQualityObserved", "q": "no2>=20"}).json()
    assert [entity["no2"][0]["value"] for entity in filtered] == [20]
    assert len(http.get(TEMPORAL, params={"type": "AirQualityObserved"}).json()) == 3
