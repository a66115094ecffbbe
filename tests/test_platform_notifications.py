"""Issue 17: notificationTrigger, periodic subscriptions and MQTT notifications.

ETSI GS CIM 009 v1.8: clause 5.2.12 (Subscription: notificationTrigger, timeInterval),
5.2.15 (Endpoint: receiverInfo, notifierInfo) and the MQTT notification binding (the message
is ``{"metadata": ..., "body": notification}``, QoS from notifierInfo ``MQTT-QoS``, default 0).
Waits are bounded polls, never fixed sleeps that make the suite slow.
"""

from __future__ import annotations

import json
import queue
import threading
import time

import pytest
from platform_support import COURSE_LINK, NGSI, air_quality, http_client
from sscity.platform import Broker
from sscity.platform.model import NGSI_LD_NULL

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


def subscribe(http, inbox="events", **extra) -> str:
    body = {"type": "Subscription", "entities": [{"type": "AirQualityObserved"}],
            "notification": {"endpoint": {"uri": f"sscity:inbox/{inbox}"}}, **extra}
    response = http.post(SUBS, json=body)
    assert response.status_code == 201, response.text
    return response.headers["Location"].rsplit("/", 1)[1]


def inbox(http, name="events") -> list:
    return http.get(f"/sscity/inbox/{name}").json()


def wait_for(condition, timeout_s=3.0, step_s=0.02):
    """Poll ``condition`` until it is true (returns its value) or the time is up (returns it false)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step_s)


# -- notificationTrigger (clause 5.2.12) ------------------------------------------------------

#: The writes of the life of one entity, in order, and the trigger each one is.
_STEPS = ("create", "append", "update", "delete attribute", "delete entity")


def _live_one_entity(http) -> list[str]:
    """Run the five writes of :data:`_STEPS`; return the names of those that notified."""
    writes = {
        "create": lambda: http.post(f"{NGSI}/entities", json=air_quality(1)),
        "append": lambda: http.post(f"{NGSI}/entities/{ENTITY}/attrs", json={"pm25": 3}),  # attributeCreated
        "update": lambda: http.patch(f"{NGSI}/entities/{ENTITY}/attrs/no2", json={"value": 60}),
        "delete attribute": lambda: http.delete(f"{NGSI}/entities/{ENTITY}/attrs/pm25"),
        "delete entity": lambda: http.delete(f"{NGSI}/entities/{ENTITY}"),
    }
    notified, seen = [], 0
    for step in _STEPS:
        response = writes[step]()
        assert response.status_code in (201, 204), (step, response.text)
        count = len(inbox(http))
        if count > seen:
            notified.append(step)
        seen = count
    return notified


@pytest.mark.parametrize(("triggers", "expected"), [
    (None, ["create", "append", "update"]),  # default: attributeCreated + attributeUpdated
    (["entityCreated"], ["create"]),
    (["entityUpdated"], ["append", "update", "delete attribute"]),
    (["entityDeleted"], ["delete entity"]),
    (["attributeCreated"], ["create", "append"]),  # a new entity's attributes are created
    (["attributeUpdated"], ["update"]),
    (["attributeDeleted"], ["delete attribute"]),
    (["entityCreated", "entityDeleted"], ["create", "delete entity"]),
])
def test_each_notification_trigger_fires_on_its_events_only(http, triggers, expected):
    subscribe(http, **({} if triggers is None else {"notificationTrigger": triggers}))
    assert _live_one_entity(http) == expected


def test_deletions_are_notified_with_deleted_at(http):
    subscribe(http, notificationTrigger=["entityDeleted", "attributeDeleted"])
    http.post(f"{NGSI}/entities", json={**air_quality(1), "pm25": {"type": "Property", "value": 3},
                                        "source": {"type": "Relationship", "object": "urn:ngsi-ld:Device:1"}})
    http.delete(f"{NGSI}/entities/{ENTITY}/attrs/pm25")
    http.patch(f"{NGSI}/entities/{ENTITY}/attrs", json={"source": {"type": "Relationship",
                                                                   "object": NGSI_LD_NULL}})
    http.delete(f"{NGSI}/entities/{ENTITY}")
    attribute_gone, relationship_gone, entity_gone = (n["data"][0] for n in inbox(http))
    # The entity as it is now, with the deleted attribute as the NGSI-LD Null and its deletedAt.
    assert attribute_gone["pm25"]["value"] == NGSI_LD_NULL
    assert attribute_gone["pm25"]["deletedAt"].endswith("Z")
    assert attribute_gone["no2"]["value"] == 40
    assert relationship_gone["source"]["object"] == NGSI_LD_NULL and "pm25" not in relationship_gone
    assert set(entity_gone) == {"id", "type", "deletedAt"} and entity_gone["type"] == "AirQualityObserved"


def test_watched_attributes_apply_to_the_triggering_attributes(http):
    subscribe(http, notificationTrigger=["attributeDeleted"], watchedAttributes=["no2"])
    http.post(f"{NGSI}/entities", json={**air_quality(1), "pm25": 3})
    http.delete(f"{NGSI}/entities/{ENTITY}/attrs/pm25")  # deleted, but not watched
    assert inbox(http) == []
    http.delete(f"{NGSI}/entities/{ENTITY}/attrs/no2")
    assert len(inbox(http)) == 1


def test_batch_operations_report_deletions(http):
    subscribe(http, notificationTrigger=["entityDeleted", "attributeDeleted"])
    http.post(f"{NGSI}/entityOperations/create", json=[{**air_quality(n), "pm25": 1} for n in (1, 2, 3)])
    replaced = air_quality(1)  # upsert replaces the entity: pm25 is gone
    assert http.post(f"{NGSI}/entityOperations/upsert", json=[replaced]).status_code == 204
    assert http.post(f"{NGSI}/entityOperations/delete", json=[air_quality(2)["id"]]).status_code == 204
    purge = http.delete(f"{NGSI}/entities", params={"type": "AirQualityObserved", "q": "pm25==1"})
    assert purge.status_code == 204
    replaced_note, batch_deleted, purged = inbox(http)
    assert replaced_note["data"][0]["pm25"]["value"] == NGSI_LD_NULL
    assert [e["id"] for e in batch_deleted["data"]] == [air_quality(2)["id"]]
    assert [(e["id"], "deletedAt" in e) for e in purged["data"]] == [(air_quality(3)["id"], True)]


# -- periodic subscriptions: timeInterval (clause 5.2.12) ----------------------------------------

def test_periodic_subscription_notifies_every_interval_until_paused_or_deleted(broker, http):
    http.post(f"{NGSI}/entityOperations/create", json=[air_quality(1, no2=60), air_quality(2, no2=10)])
    sub_id = subscribe(http, "periodic", timeInterval=0.1, q="no2>50")
    assert wait_for(lambda: len(inbox(http, "periodic")) >= 3), "fewer than 3 notifications in 3 s"
    for notification in inbox(http, "periodic"):
        assert [entity["id"] for entity in notification["data"]] == [air_quality(1)["id"]]
    # A change does not notify a periodic subscription (that would be data == [3] alone): the next
    # tick sends every matching entity.
    http.post(f"{NGSI}/entities", json=air_quality(3, no2=70))
    assert wait_for(lambda: len(inbox(http, "periodic")[-1]["data"]) == 2)
    one, three = air_quality(1)["id"], air_quality(3)["id"]
    assert {tuple(entity["id"] for entity in notification["data"])
            for notification in inbox(http, "periodic")} == {(one,), (one, three)}
    assert broker.notifier.scheduled() == [("", sub_id)]
    http.patch(f"{SUBS}/{sub_id}", json={"isActive": False})
    time.sleep(0.15)  # a tick that read the subscription before the pause may still deliver
    paused_at = len(inbox(http, "periodic"))
    time.sleep(0.35)
    assert len(inbox(http, "periodic")) == paused_at
    http.patch(f"{SUBS}/{sub_id}", json={"isActive": True})
    assert wait_for(lambda: len(inbox(http, "periodic")) > paused_at)
    assert http.get(f"{SUBS}/{sub_id}").json()["timeInterval"] == 0.1
    http.delete(f"{SUBS}/{sub_id}")
    assert broker.notifier.scheduled() == []


def test_an_expired_periodic_subscription_stops(broker, http):
    http.post(f"{NGSI}/entities", json=air_quality(1))
    sub_id = subscribe(http, "expiring", timeInterval=0.1)
    http.patch(f"{SUBS}/{sub_id}", json={"expiresAt": "2000-01-01T00:00:00Z"})
    assert wait_for(lambda: broker.notifier.scheduled() == [])  # its next tick unschedules it
    count = len(inbox(http, "expiring"))
    time.sleep(0.25)
    assert len(inbox(http, "expiring")) == count


def test_periodic_subscriptions_resume_after_a_restart(tmp_path):
    first = Broker(tmp_path / "city.db")
    with http_client(first, Link=COURSE_LINK) as client:
        client.post(f"{NGSI}/entities", json=air_quality(1))
        subscribe(client, "restart", timeInterval=0.1)
    first.close()
    second = Broker(tmp_path / "city.db")
    try:
        with http_client(second, Link=COURSE_LINK) as client:
            assert wait_for(lambda: inbox(client, "restart"))
    finally:
        second.close()


# -- MQTT notifications (MQTT binding; clause 5.2.15) -------------------------------------------

@pytest.fixture(scope="module")
def mqtt_broker():
    from sscity.sensing.mqtt import EmbeddedBroker

    with EmbeddedBroker() as url:
        yield url


def _listen(url: str, topic: str):
    """A paho subscriber on ``topic``; returns (client, queue of received messages)."""
    import paho.mqtt.client as mqtt

    host, port = url.removeprefix("mqtt://").rsplit(":", 1)
    received: queue.Queue = queue.Queue()
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.on_message = lambda client, userdata, message: received.put(message)
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_connect = lambda client, *args: client.subscribe(topic, qos=2)
    client.connect(host, int(port))
    client.loop_start()
    assert subscribed.wait(3), "the test's MQTT subscriber did not subscribe"
    return client, received


def test_mqtt_notifications_are_published_with_metadata_and_qos(broker, http, mqtt_broker, monkeypatch):
    import paho.mqtt.client as mqtt

    # amqtt delivers at the subscriber's QoS, not min(publisher's, subscriber's) as MQTT 3.1.1
    # (4.3) says, so the publisher's QoS is read where the notifier asks paho for it.
    asked_qos = {}
    publish = mqtt.Client.publish

    def recording_publish(self, topic, payload=None, qos=0, *args, **kwargs):
        asked_qos[topic] = qos
        return publish(self, topic, payload, qos, *args, **kwargs)

    monkeypatch.setattr(mqtt.Client, "publish", recording_publish)
    listener, received = _listen(mqtt_broker, "city/alerts/#")
    try:
        endpoint = {"uri": f"{mqtt_broker}/city/alerts/no2", "accept": "application/json",
                    "notifierInfo": [{"key": "MQTT-QoS", "value": "1"}],
                    "receiverInfo": [{"key": "X-Course", "value": "SSCity"}]}
        sub_id = subscribe(http, notification={"endpoint": endpoint})
        default = subscribe(http, notification={"endpoint": {"uri": f"{mqtt_broker}/city/alerts/default"}})
        http.post(f"{NGSI}/entities", json=air_quality(1))
        assert broker.notifier.wait_idle(3)
        messages = {}
        for _ in range(2):
            message = received.get(timeout=3)
            messages[message.topic] = message
        message = messages["city/alerts/no2"]
        assert asked_qos["city/alerts/no2"] == 1  # MQTT-QoS of notifierInfo
        sent = json.loads(message.payload)
        assert sent["metadata"]["Content-Type"] == "application/json"
        assert sent["metadata"]["Link"] == COURSE_LINK and sent["metadata"]["X-Course"] == "SSCity"
        assert sent["body"]["type"] == "Notification" and sent["body"]["subscriptionId"] == sub_id
        assert sent["body"]["data"][0]["id"] == ENTITY and sent["body"]["data"][0]["no2"]["value"] == 40
        assert asked_qos["city/alerts/default"] == 0  # QoS 0 unless notifierInfo says otherwise
        assert json.loads(messages["city/alerts/default"].payload)["body"]["subscriptionId"] == default
        stats = http.get(f"{SUBS}/{sub_id}").json()["notification"]
        assert stats["status"] == "ok" and stats["timesSent"] == 1
        # MQTT 5.0 named explicitly: amqtt speaks 3.1.1 only, so the delivery fails (recorded).
        five = {"uri": f"{mqtt_broker}/city/alerts/v5", "notifierInfo": [{"key": "MQTT-Version",
                                                                         "value": "mqtt5.0"}]}
        five_id = subscribe(http, notification={"endpoint": five}, entities=[{"type": "Vehicle"}])
        http.post(f"{NGSI}/entities", json={"id": "urn:ngsi-ld:Vehicle:1", "type": "Vehicle", "speed": 1})
        assert broker.notifier.wait_idle(3)
        assert http.get(f"{SUBS}/{five_id}").json()["notification"]["status"] == "failed"
    finally:
        listener.disconnect()  # before loop_stop, which otherwise waits a second for the network loop
        listener.loop_stop()


def test_an_unreachable_mqtt_broker_is_a_recorded_failure(broker, http):
    from platform_support import free_port

    sub_id = subscribe(http, notification={"endpoint": {"uri": f"mqtt://127.0.0.1:{free_port()}/nobody"}})
    http.post(f"{NGSI}/entities", json=air_quality(1))
    assert broker.notifier.wait_idle(3)
    notification = http.get(f"{SUBS}/{sub_id}").json()["notification"]
    assert notification["status"] == "failed" and notification["timesFailed"] == 1
