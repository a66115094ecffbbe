"""Property-based tests: whatever a client sends, the broker answers with ProblemDetails 4xx
(never a 500) and stores nothing half-way."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from platform_support import COURSE_LINK, NGSI, air_quality, http_client
from sscity.platform import Broker

# No example database: the suite leaves no .hypothesis/ folder behind in the repository.
SETTINGS = settings(max_examples=100, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
BODY_PATHS = [("POST", "/entities"), ("POST", "/entityOperations/create"),
              ("POST", "/entityOperations/upsert"), ("POST", "/entityOperations/update"),
              ("POST", "/entityOperations/delete"),
              ("PATCH", "/entities/urn:ngsi-ld:AirQualityObserved:001/attrs"),
              ("POST", "/entities/urn:ngsi-ld:AirQualityObserved:001/attrs"),
              ("PATCH", "/entities/urn:ngsi-ld:AirQualityObserved:001/attrs/no2"),
              ("POST", "/temporal/entities"), ("POST", "/subscriptions")]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (st.lists(children, max_size=4)
                      | st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=12)
attribute_names = st.sampled_from(["no2", "status", "location", "name", "@context", "type", "id", "",
                                   "bad name", "a.b", "observedAt", "x[1]", "日本語"]) | st.text(max_size=6)
attributes = st.one_of(
    json_values,
    st.fixed_dictionaries({"type": st.sampled_from(["Property", "Relationship", "GeoProperty", "Other"])},
                          optional={"value": json_values, "object": json_values, "observedAt": json_values,
                                    "unitCode": json_values, "datasetId": json_values}),
)
entities = st.fixed_dictionaries(
    {"id": st.one_of(st.just("urn:ngsi-ld:T:1"), st.text(max_size=12), json_values),
     "type": st.one_of(st.just("T"), json_values)},
    optional={"attrs": st.dictionaries(attribute_names, attributes, max_size=4)})


def flatten(entity: dict) -> dict:
    attrs = entity.pop("attrs", {})
    return {**attrs, **entity}


@pytest.fixture(scope="module")
def shared():
    broker = Broker(":memory:")
    with http_client(broker, Link=COURSE_LINK) as client:
        assert client.post(f"{NGSI}/entities", json=air_quality(1)).status_code == 201
        yield broker, client
    broker.close()


def is_problem(response, allowed=(400, 403, 404, 405, 406, 409, 415, 422, 503)) -> bool:
    if response.status_code not in allowed:
        return False
    body = response.json()
    return (response.headers["content-type"] == "application/problem+json"
            and body["type"].startswith("https://uri.etsi.org/ngsi-ld/errors/") and bool(body["detail"]))


def entity_count(broker: Broker) -> int:
    with broker.store.read() as conn:
        return conn.execute("SELECT COUNT(*) FROM entities").fetchone()[0]


def snapshot(broker: Broker):
    with broker.store.read() as conn:
        return (conn.execute("SELECT id, type, doc FROM entities ORDER BY pk").fetchall(),
                conn.execute("SELECT COUNT(*) FROM history").fetchone()[0],
                conn.execute("SELECT COUNT(*) FROM subscriptions").fetchone()[0],
                conn.execute("SELECT COUNT(*) FROM entity_location").fetchone()[0])


@SETTINGS
@given(st.binary(max_size=64), st.sampled_from(BODY_PATHS),
       st.sampled_from(["application/json", "application/ld+json", "text/plain"]))
def test_garbage_bodies_are_4xx_problems_and_change_nothing(shared, body, target, content_type):
    broker, client = shared
    try:
        json.loads(body)
        return  # valid JSON is the next test's business
    except ValueError:
        pass
    before = snapshot(broker)
    method, path = target
    response = client.request(method, NGSI + path, content=body, headers={"Content-Type": content_type})
    assert is_problem(response, allowed=(400, 415)), (response.status_code, response.text)
    assert snapshot(broker) == before


@SETTINGS
@given(json_values, st.sampled_from(BODY_PATHS))
def test_any_json_body_is_answered_without_a_server_error(shared, body, target):
    broker, client = shared
    method, path = target
    before = snapshot(broker)
    response = client.request(method, NGSI + path, json=body)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert is_problem(response), response.text
        assert snapshot(broker) == before  # a refused request stores nothing


@SETTINGS
@given(entities)
def test_an_entity_is_stored_whole_or_not_at_all(entity):
    entity = flatten(entity)
    broker = Broker(":memory:")
    try:
        with http_client(broker, Link=COURSE_LINK) as client:
            response = client.post(f"{NGSI}/entities", json=entity)
            if response.status_code == 201:
                got = client.get(response.headers["Location"]).json()
                expected = {name for name in entity if name not in ("id", "type", "@context", "createdAt",
                                                                    "modifiedAt", "scope")}
                assert set(got) - {"id", "type"} == expected
            else:
                assert is_problem(response), response.text
                assert entity_count(broker) == 0
    finally:
        broker.close()


@SETTINGS
@given(st.lists(entities, min_size=1, max_size=6), st.sampled_from(["create", "upsert"]))
def test_a_batch_stores_exactly_its_successes(batch, operation):
    batch = [flatten(entity) for entity in batch]
    broker = Broker(":memory:")
    try:
        with http_client(broker, Link=COURSE_LINK) as client:
            response = client.post(f"{NGSI}/entityOperations/{operation}", json=batch)
            assert response.status_code in (201, 204, 207), response.text
            if response.status_code == 207:
                success = response.json()["success"]
                for error in response.json()["errors"]:
                    assert error["error"]["type"].startswith("https://uri.etsi.org/ngsi-ld/errors/")
            elif response.status_code == 201 and operation == "create":
                success = response.json()
            else:
                success = [entity["id"] for entity in batch]
            with broker.store.read() as conn:
                stored = {row[0] for row in conn.execute("SELECT id FROM entities")}
            assert stored == set(success)
    finally:
        broker.close()


q_text = st.text(alphabet=string.ascii_letters[:6] + string.digits + '=!<>~;|()".,[]\' :-_/*?^$', max_size=30)


@SETTINGS
@given(q_text)
def test_odd_q_strings_are_answered_200_or_a_4xx_problem(shared, q):
    _, client = shared
    response = client.get(f"{NGSI}/entities", params={"q": q})
    assert response.status_code == 200 or is_problem(response, allowed=(400, 403)), (q, response.text)
    temporal = client.get(f"{NGSI}/temporal/entities", params={"q": q, "type": "AirQualityObserved"})
    assert temporal.status_code == 200 or is_problem(temporal, allowed=(400, 403)), (q, temporal.text)


numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-1000, 1000) | st.text(max_size=3)
positions = st.lists(numbers, min_size=0, max_size=3)
coordinates = st.one_of(positions, st.lists(positions, max_size=5), st.lists(st.lists(positions, max_size=5),
                                                                             max_size=2))


@SETTINGS
@given(st.sampled_from(["Point", "LineString", "Polygon", "MultiPolygon", "Circle"]), coordinates)
def test_geometries_are_stored_only_when_valid_geojson(geometry, coords):
    broker = Broker(":memory:")
    try:
        with http_client(broker, Link=COURSE_LINK) as client:
            body = {"id": "urn:x:1", "type": "T",
                    "location": {"type": "GeoProperty", "value": {"type": geometry, "coordinates": coords}}}
            try:
                response = client.post(f"{NGSI}/entities", json=body)
            except ValueError:
                return  # NaN cannot even be sent as JSON
            if response.status_code == 201:
                with broker.store.read() as conn:
                    assert conn.execute("SELECT COUNT(*) FROM entity_location").fetchone()[0] == 1
            else:
                assert is_problem(response, allowed=(400,)), response.text
                assert entity_count(broker) == 0
    finally:
        broker.close()


@SETTINGS
@given(st.sampled_from(["near;maxDistance==100", "near;minDistance==5", "within", "intersects", "near",
                        "contains", "overlaps", "equals", "disjoint", "near;maxDistance==x", "far"])
       | st.text(max_size=8),
       st.sampled_from(["Point", "LineString", "Polygon", "MultiPolygon", "Box"]),
       st.text(alphabet="[]0123456789.,-e ", max_size=40))
def test_odd_geo_queries_are_answered_200_or_400(shared, georel, geometry, coords):
    _, client = shared
    response = client.get(f"{NGSI}/entities", params={"georel": georel, "geometry": geometry,
                                                      "coordinates": coords})
    assert response.status_code == 200 or is_problem(response, allowed=(400,)), response.text


@SETTINGS
@given(st.dictionaries(st.sampled_from(["limit", "offset", "count", "options", "attrs", "type", "id",
                                        "idPattern", "format", "timerel", "timeAt", "endTimeAt", "lastN",
                                        "geoproperty"]),
                       st.text(max_size=12), max_size=5),
       st.sampled_from(["/entities", "/temporal/entities", "/subscriptions", "/types",
                        "/entities/urn:ngsi-ld:AirQualityObserved:001",
                        "/temporal/entities/urn:ngsi-ld:AirQualityObserved:001"]),
       st.one_of(st.none(), st.text(max_size=10)))
def test_odd_parameters_and_headers_on_reads(shared, params, path, tenant):
    _, client = shared
    headers = {"NGSILD-Tenant": tenant} if tenant is not None else {}
    try:
        response = client.get(NGSI + path, params=params, headers=headers)
    except UnicodeEncodeError:
        return  # httpx cannot put that text in a header at all
    assert response.status_code == 200 or is_problem(response, allowed=(400, 403, 404)), response.text


@SETTINGS
@given(st.text(max_size=40))
def test_any_path_segment_is_answered_without_a_server_error(shared, segment):
    _, client = shared
    from urllib.parse import quote

    escaped = quote(segment, safe="")
    for path in (f"/entities/{escaped}", f"/entities/urn:ngsi-ld:AirQualityObserved:001/attrs/{escaped}",
                 f"/subscriptions/{escaped}"):
        response = client.get(NGSI + path)
        assert response.status_code == 200 or is_problem(response, allowed=(400, 404, 405)), response.text


numeric_values = st.one_of(st.integers(-50, 50), st.floats(-50, 50, allow_nan=False), st.text(max_size=3),
                           st.booleans(), st.lists(st.integers(-50, 50), max_size=3),
                           st.just({"@type": "Number", "@value": 7}), st.integers(2**60, 2**62))
q_terms = st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["==", "!=", ">", ">=", "<", "<="]),
                             st.integers(-60, 60), st.integers(0, 20), st.booleans()), min_size=1, max_size=3)


@SETTINGS
@given(st.lists(st.dictionaries(st.sampled_from(["a", "b"]), numeric_values), min_size=1, max_size=12),
       q_terms, st.booleans())
def test_the_sql_prefilter_never_changes_query_results(rows, terms, use_or):
    from sscity.platform.broker import EntityQuery
    from sscity.platform.query import numeric_prefilter, parse_q

    parts = [f"{name}{op}{low}..{low + width}" if is_range and op in ("==", "!=") else f"{name}{op}{low}"
             for name, op, low, width, is_range in terms]
    q = ("|" if use_or else ";").join(parts)
    broker = Broker(":memory:")
    try:
        ctx = broker.contexts.core
        entities = [{"id": f"urn:x:{n}", "type": "T",
                     **{name: {"type": "Property", "value": value} for name, value in row.items()}}
                    for n, row in enumerate(rows)]
        assert not broker.batch("", "create", entities, [ctx] * len(entities)).errors
        found = []
        for numeric_terms in ([], numeric_prefilter(q, ctx.expand)):
            query = EntityQuery(q=parse_q(q, ctx.expand), numeric_terms=numeric_terms, limit=100)
            found.append([entity.id for entity in broker.query_entities("", query)[0]])
        assert found[0] == found[1], q
    finally:
        broker.close()
