"""Subscriptions (NGSI-LD 5.8.1-5.8.5) and notifications: in-process inboxes and HTTP endpoints."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from platform_support import COURSE_LINK, NGSI, air_quality, assert_problem, free_port, http_client
from sscity.platform import CORE_CONTEXT_URL, COURSE_CONTEXT_URL, Broker

SUBS = f"{NGSI}/subscriptions"
ENTITY = "urn:ngsi-ld:AirQualityObserved:001"


@pytest.fixture
def broker():
    broker = Broker(":memory:", notification_timeout_s=1.0)
    yield broker
    broker.close()


@pytest.fixture
def http(broker):
    with http_client(broker, Link=COURSE_LINK) as client:
        yield client


def subscription(inbox="alerts", **extra):
    body = {"type": "Subscription", "entities": [{"type": "AirQualityObserved"}],
            "notification": {"endpoint": {"uri": f"sscity:inbox/{inbox}", "accept": "application/json"}}}
    body.update(extra)
    return body


def inbox(http, name="alerts"):
    return http.get(f"/sscity/inbox/{name}").json()


# -- 5.8.1-5.8.5 CRUD ---------------------------------------------------------------------------

@pytest.mark.parametrize("slash", ["", "/"])
def test_subscription_crud(http, slash):
    body = subscription(id="urn:ngsi-ld:Subscription:no2-alert", watchedAttributes=["no2"], q="no2>50",
                        description="NO2 above 50")
    body["notification"]["attributes"] = ["no2"]
    created = http.post(f"{SUBS}{slash}", json=body)
    assert created.status_code == 201
    assert created.headers["Location"] == f"{SUBS}/urn:ngsi-ld:Subscription:no2-alert"
    assert_problem(http.post(SUBS, json=body), 409, "AlreadyExists")
    got = http.get(f"{SUBS}/urn:ngsi-ld:Subscription:no2-alert{slash}")
    assert got.status_code == 200 and got.headers["Link"] == COURSE_LINK
    sub = got.json()
    assert sub["entities"] == [{"type": "AirQualityObserved"}] and sub["watchedAttributes"] == ["no2"]
    assert sub["q"] == "no2>50" and sub["status"] == "active" and sub["description"] == "NO2 above 50"
    assert sub["notification"]["attributes"] == ["no2"] and sub["notification"]["format"] == "normalized"
    patched = http.patch(f"{SUBS}/urn:ngsi-ld:Subscription:no2-alert{slash}",
                         json={"q": "no2>60", "isActive": False})
    assert patched.status_code == 204
    sub = http.get(f"{SUBS}/urn:ngsi-ld:Subscription:no2-alert").json()
    assert sub["q"] == "no2>60" and sub["status"] == "paused" and sub["watchedAttributes"] == ["no2"]
    generated = http.post(SUBS, json=subscription())
    generated_id = generated.headers["Location"].rsplit("/", 1)[1]
    assert generated_id.startswith("urn:ngsi-ld:Subscription:")
    listing = http.get(f"{SUBS}{slash}", params={"count": "true"})
    assert listing.headers["NGSILD-Results-Count"] == "2" and len(listing.json()) == 2
    assert http.delete(f"{SUBS}/urn:ngsi-ld:Subscription:no2-alert{slash}").status_code == 204
    assert_problem(http.get(f"{SUBS}/urn:ngsi-ld:Subscription:no2-alert"), 404, "ResourceNotFound")
    assert_problem(http.delete(f"{SUBS}/urn:ngsi-ld:Subscription:no2-alert"), 404, "ResourceNotFound")


@pytest.mark.parametrize("change, status, kind", [
    ({"type": "Notification"}, 400, "BadRequestData"),
    ({"entities": []}, 400, "BadRequestData"),
    ({"entities": [{"id": "urn:x:1"}]}, 400, "BadRequestData"),
    ({"entities": None}, 400, "BadRequestData"),
    ({"notification": {}}, 400, "BadRequestData"),
    ({"notification": {"endpoint": {"uri": "mqtts://broker/topic"}}}, 501, "OperationNotSupported"),
    ({"notification": {"endpoint": {"uri": "mqtt://broker"}}}, 400, "BadRequestData"),  # no topic
    ({"notification": {"endpoint": {"uri": "mqtt://broker/city/+"}}}, 400, "BadRequestData"),
    ({"notification": {"endpoint": {"uri": "mqtt://broker/t", "notifierInfo": [
        {"key": "MQTT-QoS", "value": "3"}]}}}, 400, "BadRequestData"),
    ({"notification": {"endpoint": {"uri": "http://x.test/n", "notifierInfo": [
        {"key": "MQTT-QoS", "value": "1"}]}}}, 400, "BadRequestData"),  # not an MQTT endpoint
    ({"notification": {"endpoint": {"uri": "http://x.test/n", "receiverInfo": [
        {"key": "Link", "value": "x"}]}}}, 400, "BadRequestData"),  # the broker writes Link
    ({"notification": {"endpoint": {"uri": "http://x.test/n", "receiverInfo": {"key": "a"}}}}, 400,
     "BadRequestData"),
    ({"notification": {"endpoint": {"uri": "sscity:inbox/bad name"}}}, 400, "BadRequestData"),
    ({"notification": {"endpoint": {"uri": "http://x.test/n"}, "format": "xml"}}, 400, "BadRequestData"),
    ({"q": "no2>>"}, 400, "BadRequestData"), ({"q": 5}, 400, "BadRequestData"),
    ({"watchedAttributes": []}, 400, "BadRequestData"), ({"id": "not a uri"}, 400, "BadRequestData"),
    ({"expiresAt": "soon"}, 400, "BadRequestData"), ({"isActive": "yes"}, 400, "BadRequestData"),
    ({"geoQ": {"georel": "near;maxDistance==5", "geometry": "Point", "coordinates": [200, 1]}}, 400,
     "BadRequestData"),
    ({"timeInterval": 60, "watchedAttributes": ["no2"]}, 400, "BadRequestData"),  # clause 5.2.12
    ({"timeInterval": 60, "throttling": 5}, 400, "BadRequestData"),
    ({"timeInterval": 60, "notificationTrigger": ["entityCreated"]}, 400, "BadRequestData"),
    ({"timeInterval": 0}, 400, "BadRequestData"), ({"timeInterval": "60"}, 400, "BadRequestData"),
    ({"notificationTrigger": ["entityChanged"]}, 400, "BadRequestData"),
    ({"notificationTrigger": []}, 400, "BadRequestData"),
])
def test_invalid_subscriptions_are_rejected_and_not_stored(http, change, status, kind):
    body = subscription()
    body.update(change)
    if change.get("entities") is None and "entities" in change:
        del body["entities"]
    assert_problem(http.post(SUBS, json=body), status, kind)
    assert http.get(SUBS).json() == []


def test_patching_a_subscription_into_an_invalid_one_fails_and_keeps_it(http):
    http.post(SUBS, json=subscription(id="urn:ngsi-ld:Subscription:1"))
    assert_problem(http.patch(f"{SUBS}/urn:ngsi-ld:Subscription:1", json={"q": "(("}), 400, "BadRequestData")
    assert "q" not in http.get(f"{SUBS}/urn:ngsi-ld:Subscription:1").json()
    assert_problem(http.patch(f"{SUBS}/urn:ngsi-ld:Subscription:9", json={"q": "a"}), 404, "ResourceNotFound")


# -- notifications to in-process inboxes ---------------------------------------------------------

def test_watched_attributes_and_q_decide_when_to_notify(http):
    http.post(SUBS, json=subscription(id="urn:ngsi-ld:Subscription:1", watchedAttributes=["no2"], q="no2>50"))
    http.post(f"{NGSI}/entities", json=air_quality(1, no2=40))  # does not match q
    assert inbox(http) == []
    http.patch(f"{NGSI}/entities/{ENTITY}/attrs/no2", json={"value": 60})
    http.post(f"{NGSI}/entities/{ENTITY}/attrs", json={"pm25": 3})  # pm25 is not watched
    received = inbox(http)
    assert len(received) == 1
    notification = received[0]
    assert set(notification) == {"id", "type", "subscriptionId", "notifiedAt", "data"}
    assert notification["type"] == "Notification"
    assert notification["id"].startswith("urn:ngsi-ld:Notification:")
    assert notification["subscriptionId"] == "urn:ngsi-ld:Subscription:1"
    assert notification["notifiedAt"].endswith("Z")
    entity = notification["data"][0]
    assert entity["id"] == ENTITY and entity["type"] == "AirQualityObserved"  # compacted, course context
    assert entity["no2"]["value"] == 60 and "location" in entity
    sub = http.get(f"{SUBS}/urn:ngsi-ld:Subscription:1").json()
    assert sub["notification"]["timesSent"] == 1 and sub["notification"]["status"] == "ok"
    assert sub["notification"]["lastNotification"] == sub["notification"]["lastSuccess"]
    assert http.delete("/sscity/inbox/alerts").status_code == 204
    assert inbox(http) == []


def test_key_values_format_and_attribute_selection(http):
    body = subscription(inbox="kv")
    body["notification"].update({"format": "keyValues", "attributes": ["no2"]})
    http.post(SUBS, json=body)
    http.post(f"{NGSI}/entities", json=air_quality(1, no2=33))
    assert inbox(http, "kv")[0]["data"] == [{"id": ENTITY, "type": "AirQualityObserved", "no2": 33}]


def test_a_batch_gives_one_notification_with_every_matching_entity(http):
    http.post(SUBS, json=subscription(q="no2>=20"))
    batch = [air_quality(n, no2=10 * n) for n in range(4)]
    batch.append({"id": "urn:x:other", "type": "Other", "no2": 99})
    assert http.post(f"{NGSI}/entityOperations/upsert", json=batch).status_code == 201
    received = inbox(http)
    assert len(received) == 1
    assert [entity["id"] for entity in received[0]["data"]] == [
        "urn:ngsi-ld:AirQualityObserved:002", "urn:ngsi-ld:AirQualityObserved:003"]


def test_paused_expired_and_other_tenants_do_not_notify(http):
    http.post(SUBS, json=subscription(inbox="paused", isActive=False))
    http.post(SUBS, json=subscription(inbox="expired", expiresAt="2000-01-01T00:00:00Z"))
    http.post(SUBS, json=subscription(inbox="other-tenant"), headers={"NGSILD-Tenant": "elsewhere"})
    http.post(f"{NGSI}/entities", json=air_quality(1))
    assert inbox(http, "paused") == [] and inbox(http, "expired") == [] and inbox(http, "other-tenant") == []
    assert [sub["status"] for sub in http.get(SUBS).json()] == ["paused", "expired"]


def test_id_pattern_and_geo_q_in_subscriptions(http):
    body = subscription(inbox="geo", entities=[{"type": "AirQualityObserved", "idPattern": ".*:00[12]$"}],
                        geoQ={"georel": "near;maxDistance==1000", "geometry": "Point",
                              "coordinates": [140.11, 36.08]})
    http.post(SUBS, json=body)
    http.post(f"{NGSI}/entityOperations/create", json=[
        air_quality(1), air_quality(2, lon=140.2), air_quality(3)])
    assert [entity["id"] for entity in inbox(http, "geo")[0]["data"]] == [ENTITY]


def test_throttling_skips_notifications_that_come_too_soon(http):
    http.post(SUBS, json=subscription(inbox="slow", throttling=60))
    http.post(f"{NGSI}/entities", json=air_quality(1))
    http.patch(f"{NGSI}/entities/{ENTITY}/attrs/no2", json={"value": 1})
    assert len(inbox(http, "slow")) == 1


def test_subscriptions_made_by_another_broker_on_the_same_file_are_seen(tmp_path):
    first, second = Broker(tmp_path / "city.db"), Broker(tmp_path / "city.db")
    try:
        with http_client(second, Link=COURSE_LINK) as writer:
            writer.post(f"{NGSI}/entities", json=air_quality(1))  # loads (no) subscriptions
            with http_client(first, Link=COURSE_LINK) as other:
                assert other.post(SUBS, json=subscription(inbox="shared")).status_code == 201
            writer.patch(f"{NGSI}/entities/{ENTITY}/attrs/no2", json={"value": 77})
            assert len(inbox(writer, "shared")) == 1  # delivered by the broker that made the change
    finally:
        first.close()
        second.close()


# -- notifications over HTTP --------------------------------------------------------------------

class _Receiver(BaseHTTPRequestHandler):
    received: list
    delay_s = 0.0

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.delay_s)
        self.received.append((dict(self.headers), json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    handler = type("Receiver", (_Receiver,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def test_notifications_are_posted_to_http_endpoints(broker, http, receiver):
    server, handler = receiver
    url = f"http://127.0.0.1:{server.server_address[1]}/notify"
    body = subscription()
    body["notification"]["endpoint"] = {"uri": url, "accept": "application/json"}
    http.post(SUBS, json=body, headers={"NGSILD-Tenant": "tsukuba"})
    http.post(f"{NGSI}/entities", json=air_quality(1), headers={"NGSILD-Tenant": "tsukuba"})
    assert broker.notifier.wait_idle(5)
    headers, notification = handler.received[0]
    assert headers["Content-Type"] == "application/json" and headers["Link"] == COURSE_LINK
    assert headers["NGSILD-Tenant"] == "tsukuba"
    assert notification["type"] == "Notification" and notification["data"][0]["id"] == ENTITY
    ld_body = subscription()
    ld_body["notification"]["endpoint"] = {"uri": url, "accept": "application/ld+json"}
    http.post(SUBS, json=ld_body)
    http.post(f"{NGSI}/entities", json=air_quality(2))
    assert broker.notifier.wait_idle(5)
    headers, notification = handler.received[-1]
    assert headers["Content-Type"] == "application/ld+json" and "@context" in notification


@pytest.mark.slow
def test_a_slow_endpoint_never_delays_writes(broker, http, receiver):
    server, handler = receiver
    handler.delay_s = 1.5
    body = subscription()
    body["notification"]["endpoint"] = {"uri": f"http://127.0.0.1:{server.server_address[1]}/slow"}
    http.post(SUBS, json=body)
    started = time.perf_counter()
    for n in range(3):
        assert http.post(f"{NGSI}/entities", json=air_quality(n)).status_code == 201
    assert time.perf_counter() - started < 1.0  # the three deliveries take 4.5 s in the background


def test_a_dead_endpoint_is_recorded_as_a_failure(broker, http):
    body = subscription(id="urn:ngsi-ld:Subscription:dead")
    body["notification"]["endpoint"] = {"uri": f"http://127.0.0.1:{free_port()}/nobody"}
    http.post(SUBS, json=body)
    http.post(f"{NGSI}/entities", json=air_quality(1))
    assert broker.notifier.wait_idle(5)
    notification = http.get(f"{SUBS}/urn:ngsi-ld:Subscription:dead").json()["notification"]
    assert notification["status"] == "failed" and notification["timesFailed"] == 1
    assert "lastFailure" in notification and "lastSuccess" not in notification


# -- the @context of notifications (clauses 5.2.12, 6.3.5) ---------------------------------------

def _received_link_url(headers: dict) -> str:
    return headers["Link"].split(">")[0].lstrip("<")


def test_notification_link_names_the_context_the_body_is_compacted_with(broker, http, receiver):
    server, handler = receiver
    url = f"http://127.0.0.1:{server.server_address[1]}/notify"
    inline = [{"nitrogen": "https://smartdatamodels.org/dataModel.Environment/no2"}, COURSE_CONTEXT_URL]
    body = {**subscription(), "@context": inline}
    body["notification"]["endpoint"] = {"uri": url, "accept": "application/json"}
    ld_json = {"Content-Type": "application/ld+json", "Link": ""}  # the context travels in the body
    made = http.post(SUBS, content=json.dumps(body), headers=ld_json)
    assert made.status_code == 201, made.text
    http.post(f"{NGSI}/entities", json=air_quality(1))
    assert broker.notifier.wait_idle(5)
    headers, notification = handler.received[-1]
    # The body says "nitrogen", so the Link must name a context that defines it, not the core one:
    # the broker names the inline context by a URL it serves (ImplicitlyCreated, clause 5.13).
    assert "nitrogen" in notification["data"][0]
    link_url = _received_link_url(headers)
    assert link_url != CORE_CONTEXT_URL and "/jsonldContexts/" in link_url
    served = http.get(NGSI + link_url.split(NGSI, 1)[1])
    assert served.json() == {"@context": inline}
    assert http.get(made.headers["Location"]).json()["jsonldContext"] == link_url


def test_ld_json_notifications_carry_the_subscription_context_in_the_body(broker, http, receiver):
    server, handler = receiver
    body = subscription()
    body["notification"]["endpoint"] = {"uri": f"http://127.0.0.1:{server.server_address[1]}/ld",
                                        "accept": "application/ld+json"}
    http.post(SUBS, json=body)
    http.post(f"{NGSI}/entities", json=air_quality(1))
    assert broker.notifier.wait_idle(5)
    headers, notification = handler.received[-1]
    assert headers["Content-Type"] == "application/ld+json" and "Link" not in headers
    assert notification["@context"] == COURSE_CONTEXT_URL and "no2" in notification["data"][0]


def test_the_jsonld_context_member_chooses_the_notification_context(broker, http, receiver):
    server, handler = receiver
    body = subscription(jsonldContext=CORE_CONTEXT_URL)
    body["notification"]["endpoint"] = {"uri": f"http://127.0.0.1:{server.server_address[1]}/core"}
    location = http.post(SUBS, json=body).headers["Location"]
    assert http.get(location).json()["jsonldContext"] == CORE_CONTEXT_URL
    http.post(f"{NGSI}/entities", json=air_quality(1))
    assert broker.notifier.wait_idle(5)
    headers, notification = handler.received[-1]
    assert _received_link_url(headers) == CORE_CONTEXT_URL
    assert "https://smartdatamodels.org/dataModel.Environment/no2" in notification["data"][0]
    # Subscribed with the course context (Link), so its entity type is still the course's term.
    assert notification["data"][0]["type"] == "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved"
    assert_problem(http.post(SUBS, json=subscription(jsonldContext=42)), 400, "BadRequestData")
    assert_problem(http.post(SUBS, json=subscription(jsonldContext="https://example.com/nowhere.jsonld")),
                   503, "LdContextNotAvailable")
