"""@context as the spec says: the /jsonldContexts store (ETSI GS CIM 009 v1.8 clause 5.13, HTTP
binding 6.31-6.32), contexts registered with ``sscity platform serve --context``, the @context of
GeoJSON responses (4.5.16, 6.3.15), partial attribute updates sent as application/ld+json (5.6.4)
and compact-IRI output (6.3.5)."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from platform_support import (
    CORE_LINK,
    COURSE_LINK,
    NGSI,
    ROOT,
    air_quality,
    assert_problem,
    http_client,
    start_server,
    stop_server,
)
from sscity.platform import CORE_CONTEXT_URL, COURSE_CONTEXT_URL, Broker
from sscity.platform.context import context_link_header

CONTEXTS = f"{NGSI}/jsonldContexts"
ENTITY = "urn:ngsi-ld:AirQualityObserved:001"
SDM_NO2 = "https://smartdatamodels.org/dataModel.Environment/no2"
LD = {"Content-Type": "application/ld+json"}
MY_CONTEXT = {"@context": {"traffic": "https://example.org/traffic#",
                           "vehicleCount": "traffic:vehicleCount", "Road": "traffic:Road"}}


@pytest.fixture
def broker():
    broker = Broker(":memory:")
    yield broker
    broker.close()


@pytest.fixture
def http(broker):
    with http_client(broker) as client:
        yield client


def road(n: int = 1) -> dict:
    return {"id": f"urn:ngsi-ld:Road:{n}", "type": "Road", "vehicleCount": {"type": "Property", "value": 7}}


# -- 5.13.2-5.13.5 the @context store ------------------------------------------------------------

def test_list_shows_the_shipped_contexts_as_cached_with_details(http):
    listed = http.get(CONTEXTS)
    assert listed.status_code == 200 and listed.headers["content-type"] == "application/json"
    assert CORE_CONTEXT_URL in listed.json() and COURSE_CONTEXT_URL in listed.json()
    details = http.get(CONTEXTS, params={"details": "true"}).json()
    core = next(item for item in details if item["URL"] == CORE_CONTEXT_URL)
    assert core["kind"] == "Cached" and core["localId"] and core["timestamp"].endswith("Z")
    assert http.get(CONTEXTS, params={"kind": "Hosted"}).json() == []
    # A cached context is not served (5.13.4), but its metadata is, by id or by original URL.
    assert_problem(http.get(f"{CONTEXTS}/{core['localId']}"), 422, "OperationNotSupported")
    by_url = http.get(f"{CONTEXTS}/{CORE_CONTEXT_URL.replace('/', '%2F')}", params={"details": "true"})
    assert by_url.json() == core


def test_a_hosted_context_is_added_served_used_and_deleted(http):
    added = http.post(CONTEXTS, json=MY_CONTEXT)
    assert added.status_code == 201
    location = added.headers["Location"]
    assert location.startswith(f"{CONTEXTS}/")
    assert http.get(location).json() == MY_CONTEXT
    details = http.get(location, params={"details": "true"}).json()
    assert details["kind"] == "Hosted" and details["URL"].endswith(location)
    assert http.get(CONTEXTS, params={"kind": "Hosted"}).json() == [details["URL"]]
    # A client names the hosted context in its Link header: its terms expand.
    link = {"Link": context_link_header(details["URL"])}
    assert http.post(f"{NGSI}/entities", json=road(), headers=link).status_code == 201
    expanded = http.get(f"{NGSI}/entities/urn:ngsi-ld:Road:1", headers={"Link": CORE_LINK}).json()
    assert expanded["type"] == "https://example.org/traffic#Road"
    assert expanded["https://example.org/traffic#vehicleCount"]["value"] == 7
    assert http.get(f"{NGSI}/entities/urn:ngsi-ld:Road:1", headers=link).json()["vehicleCount"]["value"] == 7
    # Deleted (5.13.5): gone from the list, and a request naming it is told it is not available.
    assert http.delete(location).status_code == 204
    assert_problem(http.get(location), 404, "ResourceNotFound")
    assert http.get(CONTEXTS, params={"kind": "Hosted"}).json() == []
    gone = http.get(f"{NGSI}/entities/urn:ngsi-ld:Road:1", headers=link)
    assert_problem(gone, 503, "LdContextNotAvailable")


@pytest.mark.parametrize("method, path, params, body, status, kind", [
    ("GET", "", {"kind": "cached"}, None, 400, "BadRequestData"),
    ("GET", "", {"details": "yes"}, None, 400, "BadRequestData"),
    ("GET", "", {"type": "Road"}, None, 400, "BadRequestData"),
    ("GET", "/no-such-id", {}, None, 404, "ResourceNotFound"),
    ("POST", "", {}, {"vehicleCount": "https://example.org/c"}, 400, "BadRequestData"),
    ("POST", "", {}, {"@context": {"bad": 42}}, 400, "BadRequestData"),
    ("POST", "", {}, {"@context": "https://example.com/unknown.jsonld"}, 503, "LdContextNotAvailable"),
    ("DELETE", "/@core", {}, None, 400, "BadRequestData"),
    ("DELETE", "/no-such-id", {}, None, 404, "ResourceNotFound"),
    ("PATCH", "/x", {}, {}, 405, "InvalidRequest"),
])
def test_context_api_errors_say_what_to_fix(http, broker, method, path, params, body, status, kind):
    if path == "/@core":
        path = "/" + broker.contexts.find(CORE_CONTEXT_URL).local_id
    content = json.dumps(body).encode() if body is not None else None
    response = http.request(method, CONTEXTS + path, params=params, content=content,
                            headers={"Content-Type": "application/json"} if content else {})
    assert_problem(response, status, kind)


def test_reload_is_refused_offline_and_for_hosted_contexts(http, broker):
    broker.contexts.register("https://example.org/traffic.jsonld", MY_CONTEXT)
    cached = broker.contexts.find("https://example.org/traffic.jsonld").local_id
    body = assert_problem(http.delete(f"{CONTEXTS}/{cached}", params={"reload": "true"}), 503,
                          "LdContextNotAvailable")
    assert "--context" in body["detail"]
    hosted = http.post(CONTEXTS, json=MY_CONTEXT).headers["Location"]
    assert_problem(http.delete(hosted, params={"reload": "true"}), 400, "BadRequestData")
    assert http.delete(f"{CONTEXTS}/{cached}").status_code == 204
    assert "https://example.org/traffic.jsonld" not in http.get(CONTEXTS).json()


def test_an_unknown_remote_context_is_503_naming_it_and_how_to_register_it(http):
    url = "https://example.com/my-model/context.jsonld"
    refused = http.post(f"{NGSI}/entities", json=road(), headers={"Link": context_link_header(url)})
    body = assert_problem(refused, 503, "LdContextNotAvailable")
    assert url in body["detail"] and "--context" in body["detail"] and "jsonldContexts" in body["detail"]


def test_an_inline_context_gets_an_implicit_url_that_serves_it(http, broker):
    inline = [MY_CONTEXT["@context"], COURSE_CONTEXT_URL]
    # A 207 answered as application/json must name the request's inline context in its Link.
    http.post(f"{NGSI}/entities", content=json.dumps({**road(), "@context": inline}), headers=LD)
    update = {"vehicleCount": {"type": "Property", "value": 9}, "nosuch": {"type": "Property", "value": 1},
              "@context": inline}
    answered = http.post(f"{NGSI}/entities/urn:ngsi-ld:Road:1/attrs", params={"options": "noOverwrite"},
                         content=json.dumps(update), headers=LD)
    assert answered.status_code == 207, answered.text
    url = answered.headers["Link"].split(">")[0].lstrip("<")
    assert url != CORE_CONTEXT_URL and "/jsonldContexts/" in url
    path = NGSI + url.split(NGSI, 1)[1]
    assert http.get(path).json() == {"@context": inline}
    assert http.get(path, params={"details": "true"}).json()["kind"] == "ImplicitlyCreated"
    # The same inline context always has the same URL (a digest), in this broker and the next.
    assert broker.contexts.implicit_url(inline) == url
    assert Broker(":memory:").contexts.implicit_url(json.loads(json.dumps(inline))) == url


# -- 4.5.16 / 6.3.15 GeoJSON, 5.6.4 ld+json partial update, compact IRIs -------------------------

def test_geojson_responses_carry_the_context_in_the_body(http):
    http.post(f"{NGSI}/entities", json=air_quality(1), headers={"Link": COURSE_LINK})
    geo = {"Accept": "application/geo+json", "Link": COURSE_LINK}
    collection = http.get(f"{NGSI}/entities", params={"type": "AirQualityObserved"}, headers=geo)
    assert collection.headers["content-type"] == "application/geo+json" and "Link" not in collection.headers
    body = collection.json()
    assert body["type"] == "FeatureCollection" and body["@context"] == COURSE_CONTEXT_URL
    assert "no2" in body["features"][0]["properties"]  # compacted with that very context
    feature = http.get(f"{NGSI}/entities/{ENTITY}", headers=geo).json()
    assert feature["type"] == "Feature" and feature["@context"] == COURSE_CONTEXT_URL
    core = http.get(f"{NGSI}/entities/{ENTITY}", headers={"Accept": "application/geo+json"}).json()
    assert core["@context"] == CORE_CONTEXT_URL and SDM_NO2 in core["properties"]


def test_a_partial_attribute_update_may_be_sent_as_ld_json(http):
    http.post(f"{NGSI}/entities", json=air_quality(1), headers={"Link": COURSE_LINK})
    # The body's @context decides what the attribute named in the path is: here "nitrogen" is no2.
    fragment = {"value": 61.5, "@context": [{"nitrogen": SDM_NO2}, COURSE_CONTEXT_URL]}
    patched = http.patch(f"{NGSI}/entities/{ENTITY}/attrs/nitrogen", content=json.dumps(fragment), headers=LD)
    assert patched.status_code == 204, patched.text
    no2 = http.get(f"{NGSI}/entities/{ENTITY}", headers={"Link": COURSE_LINK}).json()["no2"]
    assert no2["value"] == 61.5 and "@context" not in no2 and no2["unitCode"] == "GQ"
    no_context = http.patch(f"{NGSI}/entities/{ENTITY}/attrs/no2", content=b'{"value": 1}', headers=LD)
    assert_problem(no_context, 400, "BadRequestData")


def test_terms_under_a_prefix_come_back_as_compact_iris(http):
    inline = {"traffic": "https://example.org/traffic#"}
    entity = {"id": "urn:ngsi-ld:Road:2", "type": "traffic:Road",
              "traffic:vehicleCount": {"type": "Property", "value": 3}, "@context": inline}
    assert http.post(f"{NGSI}/entities", content=json.dumps(entity), headers=LD).status_code == 201
    hosted = http.post(CONTEXTS, json={"@context": inline}).headers["Location"]
    link = {"Link": context_link_header(f"http://localhost:1026{hosted}")}
    compact = http.get(f"{NGSI}/entities/urn:ngsi-ld:Road:2", headers=link).json()
    assert compact["type"] == "traffic:Road" and compact["traffic:vehicleCount"]["value"] == 3
    full = http.get(f"{NGSI}/entities/urn:ngsi-ld:Road:2", headers={"Link": CORE_LINK}).json()
    assert full["type"] == "https://example.org/traffic#Road"


# -- sscity platform serve --context / --context-cache ----------------------------------------------

@pytest.mark.slow  # starts uvicorn twice
def test_serve_registers_context_files_and_keeps_hosted_ones_across_restarts(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "traffic.jsonld").write_text(json.dumps(MY_CONTEXT))
    index = {"https://models.example/traffic.jsonld": "traffic.jsonld"}
    (folder / "contexts.json").write_text(json.dumps(index))
    single = tmp_path / "air.jsonld"
    single.write_text(json.dumps({"@context": {"nox": SDM_NO2}}))
    cache = tmp_path / "cache"
    args = ("--context", str(folder), "--context", f"https://models.example/air.jsonld={single}",
            "--context-cache", str(cache))
    proc, url = start_server(tmp_path / "city.db", extra_args=args)
    try:
        with httpx.Client(base_url=url) as http:
            link = {"Link": context_link_header("https://models.example/traffic.jsonld")}
            assert http.post(f"{NGSI}/entities", json=road(), headers=link).status_code == 201
            air = {"Link": context_link_header("https://models.example/air.jsonld")}
            assert http.get(f"{NGSI}/entities/urn:ngsi-ld:Road:1", headers=air).status_code == 200
            details = http.get(CONTEXTS, params={"details": "true"}).json()
            kinds = {item["URL"]: item["kind"] for item in details}
            assert kinds["https://models.example/traffic.jsonld"] == "Cached"
            hosted = http.post(CONTEXTS, json=MY_CONTEXT).headers["Location"]
            hosted_url = http.get(hosted, params={"details": "true"}).json()["URL"]
            assert hosted_url == url + hosted  # the address the broker was started on
    finally:
        stop_server(proc)
    assert len(list((cache / "hosted").glob("*.jsonld"))) == 1
    proc, url = start_server(tmp_path / "city.db", extra_args=("--context-cache", str(cache)))
    try:
        with httpx.Client(base_url=url) as http:
            assert http.get(hosted).json() == MY_CONTEXT
            link = {"Link": context_link_header(hosted_url)}
            got = http.get(f"{NGSI}/entities/urn:ngsi-ld:Road:1", headers=link)
            assert got.json()["vehicleCount"]["value"] == 7
    finally:
        stop_server(proc)


def test_serve_refuses_a_context_file_without_a_url(tmp_path):
    single = tmp_path / "air.jsonld"
    single.write_text(json.dumps({"@context": {"nox": SDM_NO2}}))
    done = subprocess.run([sys.executable, "-m", "sscity", "platform", "serve", "--memory", "--port", "9",
                           "--context", str(single)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"--context https://example.org/my-context.jsonld={single}" in done.stderr


def test_client_add_context_gives_a_url_other_clients_can_name(tmp_path):
    from sscity.platform import Client

    with Client(db=tmp_path / "city.db") as client:
        url = client.add_context({"vehicleCount": "https://example.org/traffic#vehicleCount",
                                  "Road": "https://example.org/traffic#Road"})
        with Client(db=tmp_path / "city.db", context=url) as mine:
            mine.create(road())
            assert mine.get("urn:ngsi-ld:Road:1", key_values=True)["vehicleCount"] == 7
        assert client.get("urn:ngsi-ld:Road:1")["type"] == "https://example.org/traffic#Road"
