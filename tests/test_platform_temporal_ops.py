"""Temporal attribute and instance operations (ETSI GS CIM 009 v1.8, 5.6.12-5.6.15), 206 paging of
temporal results (6.3.10) and the aggregated temporal representation (4.5.19, annex C.5.14)."""

from __future__ import annotations

import json
import random
import re
import sqlite3
import statistics
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from platform_support import COURSE_LINK, NGSI, assert_problem, http_client
from sscity.platform import Broker, BrokerError, Client

TEMPORAL = f"{NGSI}/temporal/entities"
VEHICLE = "urn:ngsi-ld:Vehicle:A1"
GPS = "urn:ngsi-ld:Dataset:gps"


def at(hour: int, minute: int = 0) -> str:
    return f"2024-05-01T{hour:02d}:{minute:02d}:00.000Z"


def speed(value, moment: str, dataset: str | None = None) -> dict:
    out = {"type": "Property", "value": value, "observedAt": moment}
    if dataset:
        out["datasetId"] = dataset
    return out


@pytest.fixture
def make_http():
    opened = []

    def make(**options):
        broker = Broker(":memory:", **options)
        client = http_client(broker, Link=COURSE_LINK)
        opened.append((broker, client))
        return client

    yield make
    for broker, client in opened:
        client.close()
        broker.close()


@pytest.fixture
def http(make_http):
    return make_http()


@pytest.fixture
def vehicle(http):
    """speed: default instances at 09:00 and 10:00, the gps dataset at 09:30; name without history."""
    body = {"id": VEHICLE, "type": "Vehicle",
            "speed": [speed(50, at(9)), speed(52, at(10)), speed(51, at(9, 30), GPS)],
            "name": {"type": "Property", "value": "bus 1", "observedAt": at(8)}}
    assert http.post(TEMPORAL, json=body).status_code == 201
    return http


def history(http, attribute="speed", **params) -> list[dict]:
    response = http.get(f"{TEMPORAL}/{VEHICLE}", params=params)
    assert response.status_code == 200, response.text
    return response.json().get(attribute, [])


# -- 5.6.12-5.6.15: attribute and instance operations --------------------------------------------

def test_add_attributes_to_the_temporal_evolution(vehicle):
    """5.6.12 (POST /temporal/entities/{id}/attrs, 6.20.3.1): instances are added to the history."""
    body = {"speed": [speed(60, at(11)), speed(61, at(12))], "co2": speed(400, at(11))}
    assert vehicle.post(f"{TEMPORAL}/{VEHICLE}/attrs", json=body).status_code == 204
    assert [item["value"] for item in history(vehicle)] == [50, 51, 52, 60, 61]
    assert [item["value"] for item in history(vehicle, "co2")] == [400]
    # History, not the current value: the entity keeps what it had (as POST /temporal/entities does).
    assert "co2" not in vehicle.get(f"{NGSI}/entities/{VEHICLE}").json()
    missing = f"{TEMPORAL}/urn:ngsi-ld:Vehicle:none/attrs"
    assert_problem(vehicle.post(missing, json=body), 404, "ResourceNotFound")
    no_time = {"speed": {"type": "Property", "value": 1}}
    assert_problem(vehicle.post(f"{TEMPORAL}/{VEHICLE}/attrs", json=no_time), 400, "BadRequestData")
    assert_problem(vehicle.post(f"{TEMPORAL}/{VEHICLE}/attrs", json={}), 400, "BadRequestData")
    assert len(history(vehicle)) == 5  # the refused requests stored nothing


def test_delete_an_attributes_history_by_dataset(vehicle):
    """5.6.13 (DELETE /temporal/entities/{id}/attrs/{attr}, 6.21.3.1): default instance unless
    datasetId or deleteAll says otherwise."""
    url = f"{TEMPORAL}/{VEHICLE}/attrs/speed"
    assert vehicle.delete(url).status_code == 204  # the default instance's history only
    assert [(item["value"], item.get("datasetId")) for item in history(vehicle)] == [(51, GPS)]
    assert_problem(vehicle.delete(url), 404, "ResourceNotFound")  # no default history left
    assert_problem(vehicle.delete(url, params={"datasetId": GPS, "deleteAll": "true"}), 400, "BadRequestData")
    assert_problem(vehicle.delete(url, params={"datasetId": "not a uri"}), 400, "BadRequestData")
    assert vehicle.delete(url, params={"datasetId": GPS}).status_code == 204
    assert history(vehicle) == []
    assert vehicle.get(f"{NGSI}/entities/{VEHICLE}").status_code == 200  # the entity stays
    assert vehicle.delete(f"{TEMPORAL}/{VEHICLE}/attrs/name", params={"deleteAll": "true"}).status_code == 204
    assert "name" not in vehicle.get(f"{TEMPORAL}/{VEHICLE}").json()
    assert_problem(vehicle.delete(f"{TEMPORAL}/{VEHICLE}/attrs/name", params={"deleteAll": "yes"}),
                   400, "BadRequestData")


def test_modify_and_delete_one_instance(vehicle):
    """5.6.14 and 5.6.15 (PATCH / DELETE /temporal/entities/{id}/attrs/{attr}/{instanceId}, 6.22.3)."""
    first, gps, second = history(vehicle)
    url = f"{TEMPORAL}/{VEHICLE}/attrs/speed"
    new_value = {"type": "Property", "value": 49}
    assert vehicle.patch(f"{url}/{first['instanceId']}", json=new_value).status_code == 204
    assert vehicle.patch(f"{url}/{second['instanceId']}",  # the fragment form, with a new time
                         json={"speed": [speed(53, at(10, 15))]}).status_code == 204
    changed = history(vehicle)
    assert [(item["value"], item["observedAt"], item["instanceId"]) for item in changed] == [
        (49, at(9), first["instanceId"]), (51, at(9, 30), gps["instanceId"]),
        (53, at(10, 15), second["instanceId"])]
    concise = vehicle.patch(f"{url}/{gps['instanceId']}", json={"value": 50.5})  # no type: a Property
    assert concise.status_code == 204
    kept = history(vehicle)[1]
    assert (kept["value"], kept["observedAt"], kept["datasetId"]) == (50.5, at(9, 30), GPS)  # kept
    assert vehicle.delete(f"{url}/{gps['instanceId']}").status_code == 204
    assert [item["value"] for item in history(vehicle)] == [49, 53]
    assert_problem(vehicle.delete(f"{url}/{gps['instanceId']}"), 404, "ResourceNotFound")
    assert_problem(vehicle.delete(f"{TEMPORAL}/{VEHICLE}/attrs/name/{first['instanceId']}"),
                   404, "ResourceNotFound")  # an instance of another attribute
    assert_problem(vehicle.patch(f"{url}/urn:ngsi-ld:instance:999999", json={"value": 1}), 404,
                   "ResourceNotFound")
    assert_problem(vehicle.patch(f"{url}/not-a-uri", json={"value": 1}), 400, "BadRequestData")
    assert_problem(vehicle.patch(f"{url}/{first['instanceId']}", json={"type": "Nonsense", "value": 1}),
                   400, "BadRequestData")
    assert_problem(vehicle.patch(f"{url}/{first['instanceId']}", json={"name": speed(1, at(9))}),
                   400, "BadRequestData")  # names another attribute


def test_instance_ids_are_never_reused_even_in_an_old_database(tmp_path):
    """An instanceId names one instance for good: deleting the newest instance and adding another
    does not give the new one the deleted one's id, also in a database made before the rule."""
    db = tmp_path / "old.db"
    Broker(db).close()
    with sqlite3.connect(db) as conn:  # the schema of earlier versions had no trigger
        conn.execute("DROP TRIGGER history_keeps_instance_numbers")
    broker = Broker(db)
    with http_client(broker, Link=COURSE_LINK) as http:
        http.post(TEMPORAL, json={"id": VEHICLE, "type": "Vehicle",
                                  "speed": [speed(1, at(9)), speed(2, at(10))]})
        newest = history(http)[-1]["instanceId"]
        assert http.delete(f"{TEMPORAL}/{VEHICLE}/attrs/speed/{newest}").status_code == 204
        http.post(f"{TEMPORAL}/{VEHICLE}/attrs", json={"speed": speed(3, at(11))})
        http.delete(f"{TEMPORAL}/{VEHICLE}")  # the whole entity, newest rows included
        http.post(TEMPORAL, json={"id": VEHICLE, "type": "Vehicle", "speed": speed(4, at(12))})
        ids = [item["instanceId"] for item in history(http)]
    broker.close()
    numbers = [int(newest.rsplit(":", 1)[1]), *(int(i.rsplit(":", 1)[1]) for i in ids)]
    assert numbers[1] > numbers[0] + 1  # 3 was given (and deleted), 4 got a new number


# -- 6.3.10: 206 Partial Content ------------------------------------------------------------------

def follow(http, url: str, params: dict, backwards: bool = False) -> tuple[list[dict], list[str]]:
    """Every page of a temporal retrieval, asked as the Content-Range of each 206 says."""
    pages, ranges = [], []
    params = dict(params)
    for _ in range(50):
        response = http.get(url, params=params)
        assert response.status_code in (200, 206), response.text
        pages.append(response.json())
        if response.status_code == 200:
            assert "Content-Range" not in response.headers
            return pages, ranges
        ranges.append(response.headers["Content-Range"])
        unit, span = response.headers["Content-Range"].split(" ")
        assert unit == "date-time"
        bounds, size = span.rsplit("/", 1)
        end = bounds[25:]  # "<start>-<end>": both are 24-character timestamps
        if backwards:
            got = max(len(items) for items in _attributes(pages[-1]).values())
            params.update(timerel="before", timeAt=end, lastN=int(size) - got)
        else:
            following = datetime.fromisoformat(end) + timedelta(milliseconds=1)
            params.update(timerel="after", timeAt=following.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
    raise AssertionError("paging did not end")


def _attributes(body: dict) -> dict:
    return {key: value for key, value in body.items() if key not in ("id", "type")}


@pytest.fixture
def long_history(make_http):
    """A broker that carries 3 instances per attribute: speed every 10 minutes from 09:00 (10 of
    them), name at 09:05, 09:25 and 09:45, and four speeds of the gps dataset at 09:50."""
    http = make_http(temporal_limit=3)
    body = {"id": VEHICLE, "type": "Vehicle",
            "speed": [speed(n, at(9, 10 * n)) for n in range(6)] + [speed(n, at(10, 10 * (n - 6)))
                                                                  for n in range(6, 10)],
            "name": [{"type": "Property", "value": f"n{n}", "observedAt": at(9, 5 + 20 * n)}
                     for n in range(3)]}
    assert http.post(TEMPORAL, json=body).status_code == 201
    return http


def test_a_history_longer_than_the_limit_is_206_and_pages_forwards(long_history):
    first = long_history.get(f"{TEMPORAL}/{VEHICLE}")
    assert first.status_code == 206
    # speed's 4th instance (09:30) is the first the page cannot carry: the page ends before it,
    # and every attribute is cut at the same instant.
    assert first.headers["Content-Range"] == f"date-time {at(9)}-{at(9, 25)}/*"
    assert [item["value"] for item in first.json()["speed"]] == [0, 1, 2]
    assert [item["value"] for item in first.json()["name"]] == ["n0", "n1"]
    pages, _ = follow(long_history, f"{TEMPORAL}/{VEHICLE}", {})
    assert len(pages) > 2
    speeds = [item["value"] for page in pages for item in page.get("speed", [])]
    names = [item["value"] for page in pages for item in page.get("name", [])]
    assert speeds == list(range(10)) and names == ["n0", "n1", "n2"]  # all, in order, none twice
    assert all(len(items) <= 3 for page in pages for items in _attributes(page).values())


def test_content_range_starts_at_the_windows_start(long_history):
    params = {"timerel": "between", "timeAt": "2024-05-01T09:01:00Z", "endTimeAt": "2024-05-01T11:00:00Z",
              "options": "temporalValues"}
    response = long_history.get(f"{TEMPORAL}/{VEHICLE}", params=params)
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"date-time {at(9, 1)}-{at(9, 30)}/*"
    assert response.json()["speed"]["values"] == [[1, at(9, 10)], [2, at(9, 20)], [3, at(9, 30)]]


def test_last_n_pages_backwards_and_within_the_limit_is_200(long_history):
    assert long_history.get(f"{TEMPORAL}/{VEHICLE}", params={"lastN": 3}).status_code == 200
    response = long_history.get(f"{TEMPORAL}/{VEHICLE}", params={"lastN": 8})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"date-time {at(10, 30)}-{at(10, 10)}/8"
    before = {"timerel": "before", "timeAt": "2024-05-01T10:20:00Z", "lastN": 8}
    assert long_history.get(f"{TEMPORAL}/{VEHICLE}", params=before).headers["Content-Range"] == \
        f"date-time {at(10, 20)}-{at(9, 45)}/8"  # speed carries 09:50-10:10; name's 09:45 comes too
    pages, _ = follow(long_history, f"{TEMPORAL}/{VEHICLE}", {"lastN": 8}, backwards=True)
    speeds = sorted(item["value"] for page in pages for item in page.get("speed", []))
    assert speeds == list(range(2, 10))  # the last 8, in pages of at most 3


def test_more_instances_at_one_instant_than_the_limit_come_whole(make_http):
    http = make_http(temporal_limit=3)
    same = [speed(n, at(9), f"urn:ngsi-ld:Dataset:{n}") for n in range(4)]
    http.post(TEMPORAL, json={"id": VEHICLE, "type": "Vehicle", "speed": same + [speed(9, at(10))]})
    first = http.get(f"{TEMPORAL}/{VEHICLE}")
    assert first.status_code == 206 and len(first.json()["speed"]) == 4  # else paging could not move on
    pages, _ = follow(http, f"{TEMPORAL}/{VEHICLE}", {})
    assert [item["value"] for page in pages for item in page.get("speed", [])] == [0, 1, 2, 3, 9]


def test_a_temporal_query_is_cut_at_one_instant_for_every_entity(make_http):
    http = make_http(temporal_limit=2)
    for n in range(2):
        entity = {"id": f"urn:ngsi-ld:Vehicle:{n}", "type": "Vehicle",
                  "speed": [speed(10 * n + k, at(9 + k, n)) for k in range(3)]}
        assert http.post(TEMPORAL, json=entity).status_code == 201
    response = http.get(TEMPORAL, params={"type": "Vehicle"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"date-time {at(9)}-{at(10, 1)}/*"
    assert [[item["value"] for item in entity["speed"]] for entity in response.json()] == [[0, 1], [10, 11]]


def test_the_client_gathers_every_page(tmp_path):
    """Client.temporal keeps returning the whole history when the broker pages it."""
    client = Client(db=tmp_path / "paged.db")
    client.embedded.temporal_limit = 3
    speeds = [speed(n, at(9, 5 * n)) for n in range(10)]
    names = [{"type": "Property", "value": f"n{n}", "observedAt": at(9, 7 + 20 * n)} for n in range(3)]
    with http_client(client.embedded, Link=COURSE_LINK) as http:
        assert http.post(TEMPORAL, json={"id": VEHICLE, "type": "Vehicle", "speed": speeds,
                                         "name": names}).status_code == 201
        assert http.get(f"{TEMPORAL}/{VEHICLE}").status_code == 206
    whole = client.temporal(VEHICLE)
    assert [item["value"] for item in whole["speed"]] == list(range(10))
    assert [item["value"] for item in whole["name"]] == ["n0", "n1", "n2"]
    assert len({item["instanceId"] for item in whole["speed"]}) == 10
    last = client.temporal(VEHICLE, last_n=7, temporal_values=True)
    assert [pair[0] for pair in last["speed"]["values"]] == list(range(3, 10))
    assert [pair[0] for pair in last["name"]["values"]] == ["n0", "n1", "n2"]
    window = client.temporal(type="Vehicle", timerel="between", time_at="2024-05-01T09:06:00Z",
                             end_time_at="2024-05-01T09:41:00Z", limit=5)
    assert [item["value"] for item in window[0]["speed"]] == list(range(2, 9))
    assert [item["value"] for item in window[0]["name"]] == ["n0", "n1"]
    client.close()


def test_the_next_window_after_a_206():
    """The page after a 206: forwards from 1 ms after the range's end (timestamps without an offset,
    as Mintaka writes them, are UTC), backwards before it, within the request's own window."""
    from sscity.platform.client import _next_temporal_window

    naive = "date-time 2021-09-16T10:00-2021-09-16T10:22:39.650/*"
    assert _next_temporal_window({}, naive) == {"timerel": "after", "timeAt": "2021-09-16T10:22:39.651Z",
                                                "endTimeAt": None}
    window = {"timerel": "before", "timeAt": "2021-09-17T00:00:00Z"}
    assert _next_temporal_window(window, f"date-time {at(9)}-{at(10)}/*") == {
        "timerel": "between", "timeAt": "2024-05-01T10:00:00.001Z", "endTimeAt": "2021-09-17T00:00:00Z"}
    backwards = {"lastN": 5, "timerel": "between", "timeAt": "2024-05-01T00:00:00Z", "endTimeAt": at(12)}
    assert _next_temporal_window(backwards, f"date-time {at(12)}-{at(10)}/5") == {
        "timerel": "between", "timeAt": "2024-05-01T00:00:00Z", "endTimeAt": at(10)}
    with pytest.raises(BrokerError, match="Content-Range"):
        _next_temporal_window({}, "bytes 0-10/20")


# -- 4.5.19: the aggregated temporal representation ---------------------------------------------------

ALL_METHODS = "totalCount,distinctCount,sum,avg,min,max,stddev,sumsq"


@pytest.fixture
def readings(make_http):
    """60 seeded readings over three days (some repeated values), posted to a broker that would
    page after 5 instances: the aggregated representation summarises the whole window anyway."""
    generator = random.Random(20240501)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    moments = sorted(start + timedelta(minutes=generator.randrange(3 * 24 * 60)) for _ in range(60))
    values = [generator.choice([generator.randint(0, 9), round(generator.uniform(-50, 50), 3)])
              for _ in moments]
    stamps = [moment.strftime("%Y-%m-%dT%H:%M:00.000Z") for moment in moments]
    http = make_http(temporal_limit=5)
    body = {"id": VEHICLE, "type": "Vehicle",
            "speed": [speed(value, stamp) for value, stamp in zip(values, stamps, strict=True)]}
    assert http.post(TEMPORAL, json=body).status_code == 201
    return http, list(zip(stamps, values, strict=True))


def expected(values: list[float]) -> dict:
    array = np.array(values, dtype=float)
    return {"totalCount": len(values), "distinctCount": len(set(values)), "sum": float(array.sum()),
            "avg": float(array.mean()), "min": float(array.min()), "max": float(array.max()),
            "stddev": statistics.stdev(values) if len(values) > 1 else None,
            "sumsq": float((array ** 2).sum())}


def test_every_method_per_day_matches_numpy_and_statistics(readings):
    http, data = readings
    response = http.get(f"{TEMPORAL}/{VEHICLE}", params={
        "options": "aggregatedValues", "aggrMethods": ALL_METHODS, "aggrPeriodDuration": "P1D",
        "timerel": "after", "timeAt": "2024-05-01T00:00:00Z"})
    assert response.status_code == 200 and "Content-Range" not in response.headers
    body = response.json()["speed"]
    assert body["type"] == "Property" and set(body) == {"type", *ALL_METHODS.split(",")}
    days = [f"2024-05-0{d}T00:00:00.000Z" for d in (1, 2, 3, 4)]
    for method in ALL_METHODS.split(","):
        assert [triple[1:] for triple in body[method]] == [[days[d], days[d + 1]] for d in range(3)], method
        for d, triple in enumerate(body[method]):
            day_values = [value for stamp, value in data if days[d] <= stamp < days[d + 1]]
            want = expected(day_values)[method]
            assert triple[0] == pytest.approx(want, rel=1e-12, abs=1e-12), (method, d)


def test_whole_window_aggregation_and_the_sample_standard_deviation(readings):
    http, data = readings
    params = {"format": "aggregatedValues", "aggrMethods": "stddev,totalCount,avg",
              "timerel": "between", "timeAt": "2024-05-01T12:00:00Z", "endTimeAt": "2024-05-02T12:00:00Z"}
    # No aggrPeriodDuration: PT0S, one period over the whole window.
    body = http.get(TEMPORAL, params={**params, "type": "Vehicle"}).json()[0]["speed"]
    window = [value for stamp, value in data if "2024-05-01T12" <= stamp < "2024-05-02T12"]
    assert body["totalCount"] == [[len(window), "2024-05-01T12:00:00.000Z", "2024-05-02T12:00:00.000Z"]]
    assert body["stddev"][0][0] == pytest.approx(statistics.stdev(window))  # n - 1, not pstdev
    assert body["stddev"][0][0] != pytest.approx(statistics.pstdev(window))
    assert body["avg"][0][0] == pytest.approx(statistics.fmean(window))


def test_periods_are_calendar_months_and_non_numbers_are_counted_not_summed(http):
    labels = [("2024-01-31T00:00:00Z", "b"), ("2024-02-29T23:00:00Z", "a"), ("2024-03-01T00:00:00Z", "c")]
    http.post(TEMPORAL, json={"id": VEHICLE, "type": "Vehicle", "label": [
        {"type": "Property", "value": value, "observedAt": stamp} for stamp, value in labels]})
    body = http.get(f"{TEMPORAL}/{VEHICLE}", params={
        "options": "aggregatedValues", "aggrMethods": "totalCount,min,max,sum,stddev",
        "aggrPeriodDuration": "P1M"}).json()["label"]
    # Jan 31 + one month is Feb 29 (the month's last day), Feb 29 + one month is Mar 29.
    assert body["totalCount"] == [[1, "2024-01-31T00:00:00.000Z", "2024-02-29T00:00:00.000Z"],
                                  [2, "2024-02-29T00:00:00.000Z", "2024-03-29T00:00:00.000Z"]]
    assert [triple[0] for triple in body["min"]] == ["b", "a"]
    assert [triple[0] for triple in body["max"]] == ["b", "c"]
    assert all(triple[0] is None for triple in body["sum"] + body["stddev"])


@pytest.mark.parametrize("params", [
    {"options": "aggregatedValues"},  # no aggrMethods
    {"options": "aggregatedValues", "aggrMethods": "median"},
    {"options": "aggregatedValues", "aggrMethods": "avg", "aggrPeriodDuration": "1 day"},
    {"options": "aggregatedValues", "aggrMethods": "avg", "aggrPeriodDuration": "P1DT"},
    {"options": "aggregatedValues,temporalValues", "aggrMethods": "avg"},
    {"aggrMethods": "avg"},  # without the representation that uses it
    {"aggrPeriodDuration": "P1D"},
])
def test_bad_aggregation_requests_are_400(vehicle, params):
    assert_problem(vehicle.get(f"{TEMPORAL}/{VEHICLE}", params=params), 400, "BadRequestData")


def test_last_n_with_aggregation_is_refused_not_guessed(vehicle):
    params = {"options": "aggregatedValues", "aggrMethods": "avg", "lastN": 2}
    body = assert_problem(vehicle.get(f"{TEMPORAL}/{VEHICLE}", params=params), 501, "OperationNotSupported")
    assert "lastN" in body["detail"]


# -- no 5xx on any temporal request -------------------------------------------------------------------

FUZZ = settings(max_examples=80, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
# (lone surrogates in parameters: test_platform_limits's fuzz; httpx cannot send them as params)
junk = st.text(st.characters(exclude_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["-1", "99999999999999999999", "P", "PT", "P1Y2W"])
TEMPORAL_PARAMS = {
    "options": st.sampled_from(["aggregatedValues", "temporalValues", "aggregatedValues,sysAttrs", ""])
    | junk,
    "format": st.sampled_from(["aggregatedValues", "temporalValues", "simplified"]) | junk,
    "aggrMethods": st.lists(st.sampled_from(ALL_METHODS.split(",")), min_size=1, max_size=8).map(",".join)
    | junk,
    "aggrPeriodDuration": st.sampled_from(["P1D", "PT0S", "P0D", "PT1M", "P1M", "P1Y", "P2W", "PT0.5S",
                                           "P9999Y", "PT1H30M", "P1DT1S"]) | junk,
    "timerel": st.sampled_from(["before", "after", "between"]) | junk,
    "timeAt": st.sampled_from(["2024-05-01T09:20:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"])
    | junk,
    "endTimeAt": st.sampled_from(["2024-05-01T10:00:00Z", "9999-12-31T23:59:59Z"]) | junk,
    "lastN": st.sampled_from(["1", "2", "3", "7", "0"]) | junk,
    "attrs": st.sampled_from(["speed", "speed,label", "nosuch"]) | junk,
}


@pytest.fixture
def mixed(make_http):
    """A history of numbers, strings, booleans, objects and relationships, paged after 2 instances."""
    http = make_http(temporal_limit=2)
    values = [1, 2.5, "x", True, {"a": 1}, None, -3, 1e300]
    body = {"id": VEHICLE, "type": "Vehicle",
            "speed": [speed(value, at(9, 7 * n)) for n, value in enumerate(values) if value is not None],
            "label": [{"type": "Relationship", "object": f"urn:ngsi-ld:L:{n}", "observedAt": at(9, 15 * n)}
                      for n in range(3)]}
    assert http.post(TEMPORAL, json=body).status_code == 201
    return http


@FUZZ
@given(st.sampled_from([f"{TEMPORAL}/{VEHICLE}", TEMPORAL]),
       st.fixed_dictionaries({}, optional=TEMPORAL_PARAMS))
def test_fuzzed_temporal_retrievals_never_get_a_5xx(mixed, url, params):
    if url == TEMPORAL:
        params["type"] = "Vehicle"
    response = mixed.get(url, params=params)
    assert response.status_code in (200, 206, 400, 501), response.text
    if response.status_code == 206:
        assert re.fullmatch(r"date-time \S+-\S+/(\*|\d+)", response.headers["Content-Range"])
    if response.status_code == 501:
        assert response.json()["type"].endswith("/OperationNotSupported")


@FUZZ
@given(st.sampled_from(["POST attrs", "PATCH attrs/speed/urn:ngsi-ld:instance:1",
                        "PATCH attrs/speed/urn:ngsi-ld:instance:99", "DELETE attrs/speed",
                        "DELETE attrs/label/urn:ngsi-ld:instance:9"]),
       st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["speed", "type", "value", "observedAt", "datasetId", "x",
                                         "@context"]),
                        inner, max_size=4), max_leaves=8),
       st.dictionaries(st.sampled_from(["datasetId", "deleteAll"]), junk | st.just("true"), max_size=2))
def test_fuzzed_temporal_writes_never_get_a_5xx(mixed, operation, body, params):
    method, _, rest = operation.partition(" ")
    response = mixed.request(method, f"{TEMPORAL}/{VEHICLE}/{rest}", params=params,
                             content=json.dumps(body).encode("utf-8", "surrogatepass"),
                             headers={"Content-Type": "application/json"})
    assert response.status_code in (204, 400, 404, 501), response.text
    if response.status_code == 501:  # deliberate: a parameter the operation lacks
        assert response.json()["type"].endswith("/OperationNotSupported")
