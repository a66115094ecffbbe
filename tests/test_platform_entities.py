"""Entities over HTTP, clause by clause (NGSI-LD 5.6.1-5.6.10, 5.7.1, 5.7.2, 6.3.x).

Status codes, bodies and headers (Location, Link, NGSILD-Results-Count, Content-Type), with
and without trailing slashes, through the ASGI app in process.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from platform_support import CORE_LINK, COURSE_LINK, NGSI, air_quality, assert_problem, http_client
from sscity.platform import CORE_CONTEXT_URL, COURSE_CONTEXT_URL, Broker

SDM_NO2 = "https://smartdatamodels.org/dataModel.Environment/no2"


@pytest.fixture
def broker():
    broker = Broker(":memory:")
    yield broker
    broker.close()


@pytest.fixture
def http(broker):
    with http_client(broker, Link=COURSE_LINK) as client:
        yield client


def key_values(http, entity_id: str) -> dict:
    return http.get(f"{NGSI}/entities/{entity_id}", params={"options": "keyValues"}).json()


def create(http, entity, **headers):
    response = http.post(f"{NGSI}/entities", json=entity, headers=headers)
    assert response.status_code == 201, response.text
    return response


# -- 5.6.1 create, 5.7.1 retrieve, 5.6.6 delete ------------------------------------------------

@pytest.mark.parametrize("slash", ["", "/"])
def test_create_returns_201_with_location_and_retrieve_returns_it(http, slash):
    response = http.post(f"{NGSI}/entities{slash}", json=air_quality(1))
    assert response.status_code == 201
    assert response.headers["Location"] == f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001"
    assert response.content == b""
    got = http.get(response.headers["Location"] + slash)
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/json"
    assert got.headers["Link"] == COURSE_LINK
    body = got.json()
    assert body["id"] == "urn:ngsi-ld:AirQualityObserved:001" and body["type"] == "AirQualityObserved"
    assert body["no2"] == {"type": "Property", "value": 40.0, "unitCode": "GQ",
                           "observedAt": "2024-05-01T09:00:00.000Z"}
    assert body["location"]["value"] == {"type": "Point", "coordinates": [140.11, 36.08]}
    assert "@context" not in body


def test_duplicate_create_is_409_already_exists(http):
    create(http, air_quality(1))
    assert_problem(http.post(f"{NGSI}/entities", json=air_quality(1, no2=99)), 409, "AlreadyExists")
    assert http.get(f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001").json()["no2"]["value"] == 40.0


def test_unknown_entity_is_404_resource_not_found(http):
    assert_problem(http.get(f"{NGSI}/entities/urn:ngsi-ld:X:none"), 404, "ResourceNotFound")
    assert_problem(http.delete(f"{NGSI}/entities/urn:ngsi-ld:X:none"), 404, "ResourceNotFound")


@pytest.mark.parametrize("slash", ["", "/"])
def test_delete_entity_is_204_then_404(http, slash):
    create(http, air_quality(1))
    path = f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001"
    response = http.delete(path + slash)
    assert response.status_code == 204 and response.content == b""
    assert http.get(path).status_code == 404


@pytest.mark.parametrize("entity_id", ["not a uri", "no-scheme", "", 42, None, "urn:x:" + "a" * 600,
                                       "urn:x:<bad>"])
def test_entity_id_must_be_a_uri(http, entity_id):
    body = assert_problem(http.post(f"{NGSI}/entities", json={"id": entity_id, "type": "T"}), 400,
                          "BadRequestData")
    assert "URI" in body["detail"]


def test_ids_with_slashes_and_odd_characters_round_trip(http):
    entity_id = "https://example.org/sensors/tsukuba/1?x=1"
    create(http, {"id": entity_id, "type": "Sensor", "n": 1})
    got = http.get(f"{NGSI}/entities/{quote(entity_id, safe='')}")
    assert got.status_code == 200 and got.json()["id"] == entity_id
    assert http.delete(f"{NGSI}/entities/{quote(entity_id, safe='')}").status_code == 204


@pytest.mark.parametrize("entity, words", [
    ({"id": "urn:x:1"}, "type"),
    ({"id": "urn:x:1", "type": "T", "a": {"type": "Property"}}, "value"),
    ({"id": "urn:x:1", "type": "T", "a": {"type": "Relationship", "object": "not a uri"}}, "URI"),
    ({"id": "urn:x:1", "type": "T", "a": {"type": "Magic", "value": 1}}, "unknown attribute type"),
    ({"id": "urn:x:1", "type": "T", "a": {"type": "Property", "value": 1, "observedAt": "yesterday"}},
     "DateTime"),
    ({"id": "urn:x:1", "type": "T", "location": {"type": "Property", "value": 1}}, "GeoProperty"),
    ({"id": "urn:x:1", "type": "T", "location": {"type": "Point", "coordinates": [200, 36]}}, "longitude"),
    ({"id": "urn:x:1", "type": "T", "a": None}, "null"),
    ({"id": "urn:x:1", "type": "T", "bad name": 1}, "forbidden"),
    ({"id": "urn:x:1", "type": ["A", "B"]}, "one type"),
    ([{"id": "urn:x:1", "type": "T"}], "JSON object"),
])
def test_invalid_entities_are_400_with_an_explanation_and_not_stored(http, entity, words):
    body = assert_problem(http.post(f"{NGSI}/entities", json=entity), 400, "BadRequestData")
    assert words in body["detail"]
    assert http.get(f"{NGSI}/entities", params={"count": "true", "limit": 0}).headers[
        "NGSILD-Results-Count"] == "0"


def test_concise_attributes_are_normalized(http):
    create(http, {"id": "urn:ngsi-ld:ParkingSpot:1", "type": "ParkingSpot", "status": "free",
                  "category": {"value": ["onstreet"]},
                  "refParkingSite": {"object": "urn:ngsi-ld:ParkingSite:1"},
                  "location": {"type": "Point", "coordinates": [140.1, 36.1]},
                  "address": {"streetAddress": "Tennodai 1-1-1"}})
    body = http.get(f"{NGSI}/entities/urn:ngsi-ld:ParkingSpot:1").json()
    assert body["status"] == {"type": "Property", "value": "free"}
    assert body["category"] == {"type": "Property", "value": ["onstreet"]}
    assert body["refParkingSite"] == {"type": "Relationship", "object": "urn:ngsi-ld:ParkingSite:1"}
    point = {"type": "Point", "coordinates": [140.1, 36.1]}
    assert body["location"] == {"type": "GeoProperty", "value": point}
    assert body["address"] == {"type": "Property", "value": {"streetAddress": "Tennodai 1-1-1"}}


def test_sub_attributes_language_and_multi_instance_attributes(http):
    create(http, {"id": "urn:x:1", "type": "T",
                  "no2": {"type": "Property", "value": 3, "accuracy": {"type": "Property", "value": 0.9}},
                  "name": {"type": "LanguageProperty", "languageMap": {"ja": "つくば", "en": "Tsukuba"}},
                  "temp": [{"type": "Property", "value": 20, "datasetId": "urn:ds:a"},
                           {"type": "Property", "value": 21, "datasetId": "urn:ds:b"}]})
    body = http.get(f"{NGSI}/entities/urn:x:1").json()
    assert body["no2"]["accuracy"] == {"type": "Property", "value": 0.9}
    assert body["name"]["languageMap"]["ja"] == "つくば"
    assert [item["value"] for item in body["temp"]] == [20, 21]
    simple = http.get(f"{NGSI}/entities/urn:x:1", params={"options": "keyValues"}).json()
    assert simple["name"] == {"ja": "つくば", "en": "Tsukuba"} and simple["temp"] == [20, 21]
    duplicate = {"id": "urn:x:2", "type": "T", "temp": [{"type": "Property", "value": 1},
                                                         {"type": "Property", "value": 2}]}
    assert_problem(http.post(f"{NGSI}/entities", json=duplicate), 400, "BadRequestData")


# -- representations and @context -------------------------------------------------------------

def test_key_values_sys_attrs_and_attrs_projection(http):
    create(http, air_quality(1))
    path = f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001"
    assert http.get(path, params={"options": "keyValues"}).json() == {
        "id": "urn:ngsi-ld:AirQualityObserved:001", "type": "AirQualityObserved", "no2": 40.0,
        "location": {"type": "Point", "coordinates": [140.11, 36.08]}}
    assert http.get(path, params={"format": "simplified"}).json()["no2"] == 40.0
    with_sys = http.get(path, params={"options": "sysAttrs"}).json()
    assert with_sys["createdAt"].endswith("Z") and with_sys["modifiedAt"] >= with_sys["createdAt"]
    assert "createdAt" in with_sys["no2"]
    assert "createdAt" not in http.get(path).json()["no2"]
    assert set(http.get(path, params={"attrs": "no2"}).json()) == {"id", "type", "no2"}


def test_ld_json_response_carries_the_context_in_the_body(http):
    create(http, air_quality(1))
    response = http.get(f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001",
                        headers={"Accept": "application/ld+json"})
    assert response.headers["content-type"] == "application/ld+json"
    assert "Link" not in response.headers
    assert response.json()["@context"] == COURSE_CONTEXT_URL
    many = http.get(f"{NGSI}/entities", params={"type": "AirQualityObserved"},
                    headers={"Accept": "application/ld+json"}).json()
    assert many[0]["@context"] == COURSE_CONTEXT_URL


def test_names_are_stored_expanded_and_compacted_with_each_request_context(broker, http):
    create(http, air_quality(1))
    stored = json.loads(broker.store.connection().execute("SELECT doc FROM entities").fetchone()[0])
    assert SDM_NO2 in stored
    with http_client(broker) as core_client:  # no Link header: the core context
        response = core_client.get(f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001")
        assert response.headers["Link"] == CORE_LINK
        body = response.json()
    assert SDM_NO2 in body and "no2" not in body
    assert body["type"] == "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved"
    assert body["location"]["type"] == "GeoProperty"  # core terms compact under any context


def test_ld_json_body_context_and_its_errors(http):
    entity = {"@context": [CORE_CONTEXT_URL, {"speed": "https://example.org/speed"}], "id": "urn:x:car",
              "type": "Car", "speed": 3}
    response = http.post(f"{NGSI}/entities", content=json.dumps(entity),
                         headers={"Content-Type": "application/ld+json", "Link": ""})
    assert response.status_code == 201, response.text
    got = http.get(f"{NGSI}/entities/urn:x:car").json()  # the course context does not know `speed`
    assert got["https://example.org/speed"]["value"] == 3
    no_context = {"id": "urn:x:car2", "type": "Car"}
    response = http.post(f"{NGSI}/entities", content=json.dumps(no_context),
                         headers={"Content-Type": "application/ld+json", "Link": ""})
    assert_problem(response, 400, "BadRequestData")
    both = http.post(f"{NGSI}/entities", content=json.dumps({**entity, "id": "urn:x:car3"}),
                     headers={"Content-Type": "application/ld+json"})  # plus the client's Link header
    assert_problem(both, 400, "BadRequestData")
    in_json = http.post(f"{NGSI}/entities", json={**entity, "id": "urn:x:car4"})
    assert_problem(in_json, 400, "BadRequestData")


def test_unavailable_remote_context_is_503(http):
    link = '<https://example.com/unknown.jsonld>; rel="http://www.w3.org/ns/json-ld#context"'
    assert_problem(http.get(f"{NGSI}/entities", headers={"Link": link}), 503, "LdContextNotAvailable")
    entity = {"@context": "https://example.com/unknown.jsonld", "id": "urn:x:1", "type": "T"}
    response = http.post(f"{NGSI}/entities", content=json.dumps(entity),
                         headers={"Content-Type": "application/ld+json", "Link": ""})
    assert_problem(response, 503, "LdContextNotAvailable")


def test_geojson_representation(http):
    create(http, air_quality(1))
    response = http.get(f"{NGSI}/entities", params={"type": "AirQualityObserved"},
                        headers={"Accept": "application/geo+json"})
    assert response.headers["content-type"] == "application/geo+json"
    feature = response.json()["features"][0]
    assert feature["type"] == "Feature" and feature["geometry"]["coordinates"] == [140.11, 36.08]
    assert feature["properties"]["no2"]["value"] == 40.0


# -- media types and malformed requests (6.3.4) -------------------------------------------------

@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "", "multipart/form-data"])
def test_wrong_content_type_is_415(http, content_type):
    response = http.post(f"{NGSI}/entities", content=json.dumps(air_quality(1)),
                         headers={"Content-Type": content_type})
    assert_problem(response, 415, "InvalidRequest")


@pytest.mark.parametrize("accept", ["text/html", "application/xml", "image/png", "application/json;q=0"])
def test_unacceptable_accept_is_406(http, accept):
    assert_problem(http.get(f"{NGSI}/entities", headers={"Accept": accept}), 406, "InvalidRequest")


@pytest.mark.parametrize("accept, expected", [
    ("*/*", "application/json"), ("application/*", "application/json"),
    ("application/ld+json;q=0.9, application/json;q=0.5", "application/ld+json"),
    ("text/html, application/json", "application/json"),
])
def test_accept_negotiation(http, accept, expected):
    assert http.get(f"{NGSI}/entities", headers={"Accept": accept}).headers["content-type"] == expected


@pytest.mark.parametrize("body", [b"{", b"", b"   ", b"[1,", b"\xff\xfe", b"{'id': 1}", b"NaN",
                                  b'{"id": "urn:x:1", "type": "T", "n": Infinity}', b'{"n": 1e999}'])
def test_malformed_json_is_400_invalid_request(http, body):
    response = http.post(f"{NGSI}/entities", content=body, headers={"Content-Type": "application/json"})
    assert_problem(response, 400, "InvalidRequest")


def test_unknown_paths_and_methods(http):
    assert_problem(http.get(f"{NGSI}/nothing"), 404, "ResourceNotFound")
    response = http.put(f"{NGSI}/entities", json={})
    assert_problem(response, 405, "InvalidRequest")
    assert response.headers["Allow"] == "GET, POST, DELETE"
    assert_problem(http.post(f"{NGSI}/entityOperations/nothing", json=[]), 404, "ResourceNotFound")


def test_version_and_health_endpoints(http):
    for path in ("/version", f"{NGSI}/version", "/actuator/health"):
        response = http.get(path)
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert http.get("/actuator/health").json() == {"status": "UP"}


# -- 5.6.2-5.6.5 attributes ----------------------------------------------------------------------

@pytest.mark.parametrize("slash", ["", "/"])
def test_update_attributes_204_and_207_for_missing_ones(http, slash):
    create(http, air_quality(1))
    path = f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001/attrs{slash}"
    assert http.patch(path, json={"no2": {"type": "Property", "value": 12}}).status_code == 204
    response = http.patch(path, json={"no2": 13, "pm25": 5})
    assert response.status_code == 207
    assert response.json() == {"updated": ["no2"],
                               "notUpdated": [{"attributeName": "pm25", "reason": response.json()[
                                   "notUpdated"][0]["reason"]}]}
    body = http.get(f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001").json()
    assert body["no2"]["value"] == 13 and "pm25" not in body
    assert_problem(http.patch(f"{NGSI}/entities/urn:x:none/attrs", json={"a": 1}), 404, "ResourceNotFound")
    assert_problem(http.patch(path, json={}), 400, "BadRequestData")


@pytest.mark.parametrize("slash", ["", "/"])
def test_append_attributes_and_no_overwrite(http, slash):
    create(http, air_quality(1))
    path = f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001/attrs{slash}"
    assert http.post(path, json={"pm25": 8, "no2": 50}).status_code == 204
    response = http.post(path, params={"options": "noOverwrite"}, json={"pm25": 9, "pm10": 20})
    assert response.status_code == 207
    assert response.json()["updated"] == ["pm10"]
    assert response.json()["notUpdated"][0]["attributeName"] == "pm25"
    body = key_values(http, "urn:ngsi-ld:AirQualityObserved:001")
    assert (body["pm25"], body["no2"], body["pm10"]) == (8, 50, 20)


def test_overwritten_attribute_keeps_its_created_at(http):
    create(http, air_quality(1))
    path = f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001"
    before = http.get(path, params={"options": "sysAttrs"}).json()["no2"]["createdAt"]
    http.patch(f"{path}/attrs", json={"no2": 1})
    after = http.get(path, params={"options": "sysAttrs"}).json()
    assert after["no2"]["createdAt"] == before and after["no2"]["modifiedAt"] >= before


@pytest.mark.parametrize("slash", ["", "/"])
def test_partial_attribute_update_merges_members(http, slash):
    create(http, air_quality(1))
    path = f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001/attrs/no2{slash}"
    assert http.patch(path, json={"value": 55, "observedAt": "2024-05-01T10:00:00Z"}).status_code == 204
    no2 = http.get(f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001").json()["no2"]
    assert no2 == {"type": "Property", "value": 55, "unitCode": "GQ",
                   "observedAt": "2024-05-01T10:00:00.000Z"}
    missing = http.patch(f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001/attrs/pm25", json={"value": 1})
    assert_problem(missing, 404, "ResourceNotFound")
    assert_problem(http.patch(path, json={"observedAt": "noon"}), 400, "BadRequestData")
    location = f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001/attrs/location"
    assert_problem(http.patch(location, json={"value": {"type": "Point", "coordinates": [1, 100]}}), 400,
                   "BadRequestData")


@pytest.mark.parametrize("slash", ["", "/"])
def test_delete_attribute(http, slash):
    create(http, air_quality(1))
    path = f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001/attrs/no2{slash}"
    assert http.delete(path).status_code == 204
    assert "no2" not in http.get(f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001").json()
    assert_problem(http.delete(path), 404, "ResourceNotFound")


def test_moving_an_entity_moves_it_in_geo_queries(http):
    create(http, air_quality(1))
    near = {"georel": "near;maxDistance==100", "geometry": "Point", "coordinates": "[140.11,36.08]"}
    assert len(http.get(f"{NGSI}/entities", params=near).json()) == 1
    moved = {"location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [140.2, 36.2]}}}
    http.patch(f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001/attrs", json=moved)
    assert http.get(f"{NGSI}/entities", params=near).json() == []
    http.delete(f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001/attrs/location")
    assert http.get(f"{NGSI}/entities", params={**near, "coordinates": "[140.2,36.2]"}).json() == []


# -- 5.7.2 query -----------------------------------------------------------------------------------

@pytest.fixture
def city(http):
    entities = [air_quality(n, no2=10.0 * n, lon=140.0 + 0.01 * n, lat=36.08) for n in range(10)]
    entities += [{"id": f"urn:ngsi-ld:ParkingSpot:{n}", "type": "ParkingSpot",
                  "status": "free" if n % 2 else "occupied", "category": ["onstreet"],
                  "location": {"type": "Point", "coordinates": [140.1 + 0.001 * n, 36.1]}} for n in range(5)]
    assert http.post(f"{NGSI}/entityOperations/create", json=entities).status_code == 201
    return http


def ids(response):
    return [entity["id"] for entity in response.json()]


@pytest.mark.parametrize("slash", ["", "/"])
def test_query_by_type_id_pattern_and_q(city, slash):
    path = f"{NGSI}/entities{slash}"
    assert len(city.get(path, params={"type": "ParkingSpot"}).json()) == 5
    assert len(city.get(path, params={"type": "ParkingSpot,AirQualityObserved", "limit": 100}).json()) == 15
    assert ids(city.get(path, params={"id": "urn:ngsi-ld:ParkingSpot:1,urn:ngsi-ld:ParkingSpot:3"})) == [
        "urn:ngsi-ld:ParkingSpot:1", "urn:ngsi-ld:ParkingSpot:3"]
    assert len(city.get(path, params={"idPattern": "^urn:ngsi-ld:ParkingSpot:[0-2]$"}).json()) == 3
    assert ids(city.get(path, params={"type": "AirQualityObserved", "q": "no2>=70"})) == [
        f"urn:ngsi-ld:AirQualityObserved:{n:03d}" for n in (7, 8, 9)]
    assert len(city.get(path, params={"q": 'status=="free"'}).json()) == 2
    assert len(city.get(path, params={"q": 'status=="free"|no2==0..20', "limit": 50}).json()) == 5
    assert city.get(path, params={"type": "Nothing"}).json() == []
    assert_problem(city.get(path, params={"q": "no2>"}), 400, "BadRequestData")
    assert_problem(city.get(path, params={"idPattern": "("}), 400, "BadRequestData")
    assert_problem(city.get(path, params={"id": "not a uri"}), 400, "BadRequestData")


def test_query_attrs_projects_and_filters(city):
    body = city.get(f"{NGSI}/entities", params={"attrs": "status", "limit": 100}).json()
    assert len(body) == 5 and all(set(entity) == {"id", "type", "status"} for entity in body)


def test_count_header_and_limit_zero(city):
    params = {"type": "AirQualityObserved", "count": "true", "limit": 0}
    response = city.get(f"{NGSI}/entities", params=params)
    assert response.status_code == 200 and response.json() == []
    assert response.headers["NGSILD-Results-Count"] == "10"
    filtered = city.get(f"{NGSI}/entities", params={"q": "no2>45", "count": "true"})
    assert filtered.headers["NGSILD-Results-Count"] == "5"
    assert "NGSILD-Results-Count" not in city.get(f"{NGSI}/entities", params={"type": "ParkingSpot"}).headers


def test_pagination_with_link_headers(city):
    params = {"type": "AirQualityObserved", "limit": 4, "count": "true"}
    first = city.get(f"{NGSI}/entities", params=params)
    assert len(first.json()) == 4 and first.headers["NGSILD-Results-Count"] == "10"
    assert "next" in first.links and "prev" not in first.links
    assert first.links["http://www.w3.org/ns/json-ld#context"]["url"] == COURSE_CONTEXT_URL
    seen = ids(first)
    response = first
    while "next" in response.links:
        response = city.get(response.links["next"]["url"])
        seen += ids(response)
    assert seen == [f"urn:ngsi-ld:AirQualityObserved:{n:03d}" for n in range(10)]
    assert "prev" in response.links and "next" not in response.links
    previous = city.get(response.links["prev"]["url"])
    assert ids(previous) == seen[4:8]
    assert city.get(f"{NGSI}/entities", params={**params, "offset": 100}).json() == []


@pytest.mark.parametrize("params, status, kind", [
    ({"limit": 1001}, 403, "TooManyResults"), ({"limit": -1}, 400, "BadRequestData"),
    ({"limit": "ten"}, 400, "BadRequestData"), ({"offset": -5}, 400, "BadRequestData"),
    ({"type": ""}, 400, "BadRequestData"), ({"type": "A,,B"}, 400, "BadRequestData"),
])
def test_bad_paging_parameters(city, params, status, kind):
    assert_problem(city.get(f"{NGSI}/entities", params=params), status, kind)


def test_limit_of_one_thousand_is_allowed(city):
    assert city.get(f"{NGSI}/entities", params={"limit": 1000}).status_code == 200


def test_geo_queries(city):
    near = city.get(f"{NGSI}/entities", params={"georel": "near;maxDistance==2000", "geometry": "Point",
                                                "coordinates": "[140.052,36.08]"})
    # AirQualityObserved n sits at lon 140.0 + 0.01 n: 899 m per step at this latitude.
    assert ids(near) == [f"urn:ngsi-ld:AirQualityObserved:{n:03d}" for n in (5, 6, 4, 7, 3)]  # nearest first
    far = city.get(f"{NGSI}/entities", params={"type": "AirQualityObserved",
                                               "georel": "near;minDistance==2500", "geometry": "Point",
                                               "coordinates": "[140.05,36.08]"})
    assert ids(far) == [f"urn:ngsi-ld:AirQualityObserved:{n:03d}" for n in (0, 1, 2, 8, 9)]
    box = "[[[140.095,36.09],[140.2,36.09],[140.2,36.2],[140.095,36.2],[140.095,36.09]]]"
    within = city.get(f"{NGSI}/entities",
                      params={"georel": "within", "geometry": "Polygon", "coordinates": box})
    assert sorted(ids(within)) == [f"urn:ngsi-ld:ParkingSpot:{n}" for n in range(5)]
    disjoint = city.get(f"{NGSI}/entities", params={"georel": "disjoint", "geometry": "Polygon",
                                                    "coordinates": box, "count": "true"})
    assert disjoint.headers["NGSILD-Results-Count"] == "10"
    line = city.get(f"{NGSI}/entities", params={"georel": "intersects", "geometry": "LineString",
                                                "coordinates": "[[140.1,36.0],[140.1,36.2]]"})
    assert ids(line) == ["urn:ngsi-ld:ParkingSpot:0"]
    combined = city.get(f"{NGSI}/entities", params={"q": 'status=="free"', "georel": "within",
                                                    "geometry": "Polygon", "coordinates": box})
    assert ids(combined) == ["urn:ngsi-ld:ParkingSpot:1", "urn:ngsi-ld:ParkingSpot:3"]
    swapped = {"georel": "near;maxDistance==10", "geometry": "Point", "coordinates": "[36.08,140.05]"}
    assert_problem(city.get(f"{NGSI}/entities", params=swapped), 400, "BadRequestData")
    assert_problem(city.get(f"{NGSI}/entities", params={"georel": "within", "geometry": "Point"}), 400,
                   "BadRequestData")


def test_entity_types(city):
    assert sorted(city.get(f"{NGSI}/types").json()["typeList"]) == ["AirQualityObserved", "ParkingSpot"]


# -- tenants (4.14, 6.3.14) -------------------------------------------------------------------------

def test_tenants_are_made_by_creates_and_isolated(http):
    tenant = {"NGSILD-Tenant": "tsukuba"}
    assert_problem(http.get(f"{NGSI}/entities", headers=tenant), 404, "NonexistentTenant")
    assert_problem(http.get(f"{NGSI}/entities/urn:x:1", headers={"NGSILD-Tenant": "tsukuba"}), 404,
                   "NonexistentTenant")
    assert_problem(http.post(f"{NGSI}/entityOperations/delete", json=["urn:x:1"],
                             headers={"NGSILD-Tenant": "tsukuba"}), 404, "NonexistentTenant")
    create(http, air_quality(1), **{"NGSILD-Tenant": "tsukuba"})
    assert len(http.get(f"{NGSI}/entities", headers={"NGSILD-Tenant": "tsukuba"}).json()) == 1
    assert http.get(f"{NGSI}/entities").json() == []  # the default tenant does not see it
    create(http, air_quality(1))  # the same id in another tenant is another entity
    bad = {"NGSILD-Tenant": "bad tenant!"}
    assert_problem(http.get(f"{NGSI}/entities", headers=bad), 400, "BadRequestData")


# -- 5.6.7-5.6.10 batch operations ----------------------------------------------------------------------

@pytest.mark.parametrize("slash", ["", "/"])
def test_batch_create_201_and_207(http, slash):
    path = f"{NGSI}/entityOperations/create{slash}"
    response = http.post(path, json=[air_quality(1), air_quality(2)])
    assert response.status_code == 201 and response.json() == [
        "urn:ngsi-ld:AirQualityObserved:001", "urn:ngsi-ld:AirQualityObserved:002"]
    response = http.post(path, json=[air_quality(2), air_quality(3), {"id": "bad", "type": "T"}])
    assert response.status_code == 207
    body = response.json()
    assert body["success"] == ["urn:ngsi-ld:AirQualityObserved:003"]
    errors = {error["entityId"]: error["error"]["type"].rsplit("/", 1)[1] for error in body["errors"]}
    assert errors == {"urn:ngsi-ld:AirQualityObserved:002": "AlreadyExists", "bad": "BadRequestData"}
    assert http.get(f"{NGSI}/entities", params={"count": "true"}).headers["NGSILD-Results-Count"] == "3"


def test_batch_upsert_201_204_and_replace_versus_update(http):
    path = f"{NGSI}/entityOperations/upsert"
    first = http.post(path, json=[air_quality(1), air_quality(2)])
    assert first.status_code == 201 and first.json() == ["urn:ngsi-ld:AirQualityObserved:001",
                                                         "urn:ngsi-ld:AirQualityObserved:002"]
    http.post(f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001/attrs", json={"pm25": 7})
    replaced = http.post(path, params={"options": "replace"}, json=[air_quality(1, no2=1)])
    assert replaced.status_code == 204
    body = key_values(http, "urn:ngsi-ld:AirQualityObserved:001")
    assert body["no2"] == 1 and "pm25" not in body
    http.post(f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:002/attrs", json={"pm25": 7})
    mixed = http.post(path, params={"options": "update"},
                      json=[{"id": "urn:ngsi-ld:AirQualityObserved:002", "type": "AirQualityObserved",
                             "no2": 2}, air_quality(3)])
    assert mixed.status_code == 201 and mixed.json() == ["urn:ngsi-ld:AirQualityObserved:003"]
    body = key_values(http, "urn:ngsi-ld:AirQualityObserved:002")
    assert body["no2"] == 2 and body["pm25"] == 7
    assert_problem(http.post(path, params={"options": "replace,update"}, json=[air_quality(4)]), 400,
                   "BadRequestData")


def test_batch_upsert_of_the_same_id_twice_keeps_the_last(http):
    twice = [air_quality(1, no2=1), air_quality(1, no2=2)]
    response = http.post(f"{NGSI}/entityOperations/upsert", json=twice)
    assert response.status_code == 201
    assert http.get(f"{NGSI}/entities/urn:ngsi-ld:AirQualityObserved:001").json()["no2"]["value"] == 2
    assert http.get(f"{NGSI}/entities", params={"count": "true"}).headers["NGSILD-Results-Count"] == "1"


def test_batch_update_and_delete(http):
    http.post(f"{NGSI}/entityOperations/create", json=[air_quality(1), air_quality(2)])
    update = [{"id": "urn:ngsi-ld:AirQualityObserved:001", "no2": 5},
              {"id": "urn:ngsi-ld:AirQualityObserved:009", "no2": 5}]
    response = http.post(f"{NGSI}/entityOperations/update", json=update)
    assert response.status_code == 207
    assert response.json()["success"] == ["urn:ngsi-ld:AirQualityObserved:001"]
    assert response.json()["errors"][0]["error"]["type"].endswith("ResourceNotFound")
    keep = http.post(f"{NGSI}/entityOperations/update", params={"options": "noOverwrite"},
                     json=[{"id": "urn:ngsi-ld:AirQualityObserved:001", "no2": 99, "pm25": 3}])
    assert keep.status_code == 204
    body = key_values(http, "urn:ngsi-ld:AirQualityObserved:001")
    assert body["no2"] == 5 and body["pm25"] == 3
    deleted = http.post(f"{NGSI}/entityOperations/delete", json=["urn:ngsi-ld:AirQualityObserved:001",
                                                                 "urn:ngsi-ld:AirQualityObserved:002"])
    assert deleted.status_code == 204
    again = http.post(f"{NGSI}/entityOperations/delete",
                      json=["urn:ngsi-ld:AirQualityObserved:001", "bad id"])
    assert again.status_code == 207 and again.json()["success"] == []
    assert len(again.json()["errors"]) == 2


@pytest.mark.parametrize("body", [{}, [], "x", 3, None])
def test_batch_bodies_must_be_non_empty_arrays(http, body):
    response = http.post(f"{NGSI}/entityOperations/upsert", content=json.dumps(body),
                         headers={"Content-Type": "application/json"})
    assert_problem(response, 400, "BadRequestData")


def test_ld_json_batch_items_carry_their_own_context(http):
    items = [{"@context": COURSE_CONTEXT_URL, **air_quality(1)}, air_quality(2)]
    response = http.post(f"{NGSI}/entityOperations/create", content=json.dumps(items),
                         headers={"Content-Type": "application/ld+json", "Link": ""})
    assert response.status_code == 207
    assert response.json()["success"] == ["urn:ngsi-ld:AirQualityObserved:001"]
    assert response.json()["errors"][0]["entityId"] == "urn:ngsi-ld:AirQualityObserved:002"


def test_a_refused_batch_does_not_make_its_tenant(http):
    tenant = {"NGSILD-Tenant": "ghost"}
    refused = http.post(f"{NGSI}/entityOperations/create", json=[{"id": "bad id", "type": "T"}],
                        headers=tenant)
    assert refused.status_code == 207 and refused.json()["success"] == []
    assert_problem(http.get(f"{NGSI}/entities", headers=tenant), 404, "NonexistentTenant")
    refused = http.post(f"{NGSI}/entities", json={"id": "bad id", "type": "T"}, headers=tenant)
    assert_problem(refused, 400, "BadRequestData")
    assert_problem(http.get(f"{NGSI}/entities", headers=tenant), 404, "NonexistentTenant")
