"""The MQTT message path: stations publish, the gateway subscribes, the platform stores.

Reference values come from outside this repository:

- MQTT 3.1.1 (OASIS Standard, 2014): a subscription's ``+`` matches exactly one topic level
  (section 4.7.1.3), so ``city/tsukuba/sensors/+`` receives ``.../sensors/abc`` but not
  ``.../sensors/7/x``; 1883 is the IANA-registered port of MQTT.
- The other end of each test is software nobody here wrote: paho-mqtt's client, the amqtt
  broker, and Debian's ``mosquitto`` (when installed; CI installs it).
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time

import pytest
from sscity.platform import Client
from sscity.sensing import mqtt
from sscity.sensing.gateway import Gateway
from sscity.sensing.mqtt import EmbeddedBroker, MqttConnectionError, MqttGateway, mqtt_url, publish
from sscity.sensing.payload import pack_reading

paho = pytest.importorskip("paho.mqtt.client")

STATIONS = {7: (140.1035, 36.1110), 8: (140.1100, 36.0830), 9: (140.1200, 36.0900)}
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
TYPES = ("AirQualityObserved", "NoiseLevelObserved", "CrowdFlowObserved")


def reading(station: int, k: int) -> dict:
    return {"station_id": station, "timestamp": T0 + 600 * k, "temperature_c": 20.0 + k / 10,
            "humidity_pct": 50.0, "pm25_ugm3": 10.0 + k, "noise_dba": 45.0, "people_count": k}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def embedded():
    with EmbeddedBroker() as url:
        yield url


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory):
    if mqtt.find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (Debian: apt-get install mosquitto; CI installs it)")
    log = tmp_path_factory.mktemp("mosquitto") / "mosquitto.log"
    with mqtt.LocalMosquitto(log_file=log) as url:
        yield url


@pytest.fixture(params=["embedded", "mosquitto"])
def broker_url(request):
    return request.getfixturevalue(request.param)


@pytest.fixture
def client(tmp_path, monkeypatch):
    for variable in ("SSCITY_BROKER_URL", "SSCITY_CONTEXT_URL", "SSCITY_TENANT_PREFIX", "SSCITY_MQTT_URL"):
        monkeypatch.delenv(variable, raising=False)
    with Client(db=tmp_path / "city.db") as client:
        yield client


class RefuseNoiseOf9:
    """A platform client whose broker refuses station 9's noise entity (the others are stored)."""

    def __init__(self, client):
        self.client, self.tenant = client, client.tenant

    def __getattr__(self, name):
        return getattr(self.client, name)

    def batch_upsert(self, entities, mode="replace", **kwargs):
        mangled = [{**e, "id": "not a uri"} if e["id"] == "urn:ngsi-ld:NoiseLevelObserved:9" else e
                   for e in entities]
        return self.client.batch_upsert(mangled, mode=mode, **kwargs)


def raw_publish(url: str, messages: list[tuple[str, bytes]]) -> None:
    """Publish on any topic with paho itself, as a misconfigured or hostile device would."""
    address = mqtt.parse_mqtt_url(url)
    device = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="raw-device")
    device.connect(address.host, address.port)
    device.loop_start()
    try:
        for topic, payload in messages:
            device.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        device.disconnect()
        device.loop_stop()


# --------------------------------------------------------------------------- end to end


def test_end_to_end_good_stored_bad_dead_lettered_nothing_half_stored(client, broker_url):
    good = [(station, pack_reading(reading(station, k))) for k in range(5) for station in (7, 8)]
    refused = [(9, pack_reading(reading(9, 0)))]  # the platform refuses one of its entities
    frame = pack_reading(reading(7, 9))
    malformed = [(7, frame[:-1]), (7, frame[:5]), (8, b""), (7, b"\x09" + frame[1:]),
                 (7, frame[:9] + bytes([frame[9] ^ 1]) + frame[10:]), (8, pack_reading(reading(7, 9)))]
    gateway = Gateway(RefuseNoiseOf9(client), stations=STATIONS)
    with MqttGateway(gateway, url=broker_url, batch_wait_s=0.02) as receiver:
        assert publish(good + refused + malformed + [good[-1]], url=broker_url) == 18
        raw_publish(broker_url, [("city/tsukuba/sensors/abc", frame), ("city/tsukuba/sensors/7/x", frame),
                                 ("city/tsukuba/sensors/10", pack_reading(reading(10, 0)))])
        receiver.wait_until(20, timeout_s=20)  # 18 + 2: ".../7/x" is not matched by "+"
        assert receiver.arrived == receiver.handled == 20
    stats = receiver.stats
    assert stats["stored"] + stats["dead_lettered"] + stats["duplicate"] == stats["received"] == 20
    assert (stats["stored"], stats["duplicate"], stats["dead_lettered"]) == (10, 1, 9)
    expected = {"truncated": 2, "empty": 1, "unknown_version": 1, "bad_crc": 1, "station_mismatch": 1,
                "bad_topic": 1, "unknown_station": 1, "platform_error": 1}
    assert {reason: stats[reason] for reason in expected} == expected and stats["half_stored"] == 0
    dead = {(letter.topic, letter.payload) for letter in receiver.dead_letters}
    assert ("city/tsukuba/sensors/7", frame[:-1]) in dead and ("city/tsukuba/sensors/abc", frame) in dead
    # Readable back with the platform client: the latest reading of 7 and 8, nothing of 9 or 10.
    ids = sorted(e["id"] for kind in TYPES for e in client.query(type=kind))
    assert ids == sorted(f"urn:ngsi-ld:{kind}:{s}" for kind in TYPES for s in (7, 8))
    for station in (7, 8):
        air = client.get(f"urn:ngsi-ld:AirQualityObserved:{station}", key_values=True)
        assert air["pm25"] == 14.0 and air["temperature"] == pytest.approx(20.4)
    history = client.temporal("urn:ngsi-ld:AirQualityObserved:7", temporal_values=True)
    assert [value for value, _ in history["pm25"]["values"]] == [10.0, 11.0, 12.0, 13.0, 14.0]


def test_compact_frames_take_the_arrival_time(client, embedded):
    from sscity.sensing.payload import pack_compact

    gateway = Gateway(client, stations=STATIONS)
    before = int(time.time())
    with MqttGateway(gateway, url=embedded) as receiver:
        publish([(7, pack_compact(reading(7, 0), fields=["pm25_ugm3"]))], url=embedded)
        receiver.wait_until(1)
    assert receiver.stats["stored"] == 1
    observed = client.get("urn:ngsi-ld:AirQualityObserved:7")["pm25"]["observedAt"]
    seconds = dt.datetime.fromisoformat(observed.replace("Z", "+00:00")).timestamp()
    assert before <= seconds <= time.time()


# --------------------------------------------------------------------------- which broker


def test_sscity_mqtt_url_is_honoured(client, monkeypatch):
    elsewhere = EmbeddedBroker()
    url = elsewhere.start()
    try:
        monkeypatch.setenv("SSCITY_MQTT_URL", url)
        assert mqtt_url() == url
        gateway = Gateway(client, stations=STATIONS)
        with MqttGateway(gateway) as receiver:  # no url: the environment's
            assert publish([(7, pack_reading(reading(7, 0)))]) == 1
            receiver.wait_until(1)
        assert receiver.url == url and receiver.stats["stored"] == 1
    finally:
        elsewhere.stop()
    with pytest.raises(MqttConnectionError) as error:  # it really was that broker
        publish([(7, pack_reading(reading(7, 1)))])
    assert url in str(error.value) and "SSCITY_MQTT_URL" in str(error.value) and " / " in str(error.value)


def test_without_the_variable_the_embedded_broker_starts_once(monkeypatch):
    monkeypatch.delenv("SSCITY_MQTT_URL", raising=False)
    first = mqtt_url()
    assert first.startswith("mqtt://127.0.0.1:") and mqtt_url() == first
    assert publish([(7, b"\x01")]) == 1  # the device side does not decode: the gateway does


@pytest.mark.parametrize(("value", "words"), [
    ("localhost:1883", "mqtt://host:port"),
    ("http://localhost:1883", "mqtt://host:port"),
    ("mqtts://localhost:8883", "TLS"),
    ("mqtt://localhost:99999", "1...65535"),
    ("mqtt://localhost:1883/topic", "nothing after"),
])
def test_a_malformed_sscity_mqtt_url_says_what_to_write(monkeypatch, value, words):
    monkeypatch.setenv("SSCITY_MQTT_URL", value)
    with pytest.raises(ValueError, match="SSCITY_MQTT_URL") as error:
        mqtt_url()
    assert words in str(error.value) and " / " in str(error.value)


def test_url_forms():
    assert mqtt.parse_mqtt_url("mqtt://broker") == mqtt.MqttAddress("broker", 1883)
    assert mqtt.parse_mqtt_url("tcp://10.0.0.5:1884") == mqtt.MqttAddress("10.0.0.5", 1884)
    assert mqtt.parse_mqtt_url("mqtt://student%40x:p%3Ass@broker:1883") == \
        mqtt.MqttAddress("broker", 1883, "student@x", "p:ss")
    assert "p:ss" not in mqtt._shown("mqtt://student:p:ss@broker:1883")


# --------------------------------------------------------------------------- failures


def test_unreachable_broker_names_the_url_and_what_to_set(client):
    url = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(MqttConnectionError) as error:
        publish([(7, pack_reading(reading(7, 0)))], url=url)
    message = str(error.value)
    assert url in message and "SSCITY_MQTT_URL" in message and " / " in message
    with pytest.raises(MqttConnectionError, match="127.0.0.1"):
        MqttGateway(Gateway(client, stations=STATIONS), url=url).start()


def test_a_server_that_is_not_an_mqtt_broker(client):
    with socket.socket() as silent:  # accepts connections and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"mqtt://127.0.0.1:{silent.getsockname()[1]}"
        receiver = MqttGateway(Gateway(client, stations=STATIONS), url=url, connect_timeout_s=0.5)
        with pytest.raises(MqttConnectionError, match="no MQTT answer"):
            receiver.start()


def test_wait_until_says_how_many_arrived(client, embedded, capsys):
    with MqttGateway(Gateway(client, stations=STATIONS), url=embedded) as receiver:
        publish([(7, pack_reading(reading(7, 0)))], url=embedded, progress=True)
        receiver.wait_until(1, progress=True)
        assert "publish" in capsys.readouterr().err
        with pytest.raises(TimeoutError) as error:
            receiver.wait_until(3, timeout_s=0.5)
    assert "Only 1 of 3" in str(error.value) and "1 件" in str(error.value)


def test_a_batching_bug_falls_back_on_one_by_one(client, embedded):
    gateway = Gateway(client, stations=STATIONS)

    def broken(messages, **kwargs):
        raise RuntimeError("boom")

    gateway.handle_many = broken
    with MqttGateway(gateway, url=embedded) as receiver:
        publish([(7, pack_reading(reading(7, 0)))], url=embedded)
        receiver.wait_until(1, timeout_s=10)
        publish([(8, pack_reading(reading(8, 0)))], url=embedded)
        receiver.wait_until(2, timeout_s=10)  # the worker lives on
    assert gateway.stats["stored"] == 2


def test_stop_handles_what_already_arrived(client, embedded):
    gateway = Gateway(client, stations=STATIONS)
    receiver = MqttGateway(gateway, url=embedded, batch_size=1, batch_wait_s=10)
    receiver.start()
    publish([(7, pack_reading(reading(7, k))) for k in range(5)], url=embedded)
    deadline = time.monotonic() + 10
    while receiver.arrived < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    receiver.stop()
    receiver.stop()  # harmless twice
    assert receiver.handled == 5 and gateway.stats["stored"] == 5


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("frames", "kwargs", "words"), [
    ([(70000, b"\x01")], {}, "0...65535"),
    ([(7, "text")], {}, "frame_bytes"),
    ([b"\x01"], {}, "(station_id, frame_bytes)"),
    ([(True, b"\x01")], {}, "0...65535"),
    ([(7, b"\x01")], {"qos": 3}, "0, 1 or 2"),
    ([(7, b"\x01")], {"topic_prefix": "city/#"}, "wildcards"),
])
def test_publish_refuses_bad_input(embedded, frames, kwargs, words):
    with pytest.raises(ValueError, match="/") as error:
        publish(frames, url=embedded, **kwargs)
    assert words in str(error.value)


def test_mqtt_gateway_refuses_bad_settings(client):
    gateway = Gateway(client, stations=STATIONS)
    with pytest.raises(TypeError, match="Gateway"):
        MqttGateway(client)
    with pytest.raises(ValueError, match="differs"):
        MqttGateway(gateway, topic_prefix="city/osaka/sensors/")
    for kwargs in ({"batch_size": 0}, {"batch_wait_s": 0}, {"connect_timeout_s": -1}):
        with pytest.raises(ValueError, match="/"):
            MqttGateway(gateway, **kwargs)
    with pytest.raises(ValueError, match="port"):
        EmbeddedBroker(port=70000)


def test_embedded_broker_in_a_child_process(client):
    broker = EmbeddedBroker(separate_process=True)
    with broker as url:
        assert url.startswith("mqtt://127.0.0.1:") and broker.running
        with MqttGateway(Gateway(client, stations=STATIONS), url=url) as receiver:
            publish([(7, pack_reading(reading(7, 0)))], url=url)
            receiver.wait_until(1)
        assert receiver.stats["stored"] == 1
    assert not broker.running
    with pytest.raises(MqttConnectionError):
        publish([(7, b"\x01")], url=url)


def test_module_example(monkeypatch):
    import doctest

    for variable in ("SSCITY_BROKER_URL", "SSCITY_TENANT_PREFIX", "SSCITY_MQTT_URL"):
        monkeypatch.delenv(variable, raising=False)
    result = doctest.testmod(mqtt)
    assert result.attempted and not result.failed


def test_threads_are_not_left_behind(client, embedded):
    before = {thread.name for thread in threading.enumerate()}
    with MqttGateway(Gateway(client, stations=STATIONS), url=embedded):
        pass
    assert {thread.name for thread in threading.enumerate()} - before == set()


def test_the_gateway_reconnects_and_subscribes_again_after_a_broker_restart(client):
    port = free_port()
    gateway = Gateway(client, stations=STATIONS)
    first = EmbeddedBroker(port=port)
    url = first.start()
    with MqttGateway(gateway, url=url) as receiver:
        publish([(7, pack_reading(reading(7, 0)))], url=url)
        receiver.wait_until(1)
        first.stop()
        with EmbeddedBroker(port=port) as again:  # a new broker knows no subscription
            assert again == url
            deadline = time.monotonic() + 15
            while receiver.handled < 2 and time.monotonic() < deadline:  # paho retries after 1 s
                publish([(7, pack_reading(reading(7, 1)))], url=url)
                time.sleep(0.2)
            receiver.wait_until(2, timeout_s=1)
    assert gateway.stats["stored"] == 2


def test_a_mosquitto_that_does_not_start_says_so_in_both_languages():
    with pytest.raises(mqtt.MqttConnectionError, match="did not start.*起動しませんでした"):
        with mqtt.LocalMosquitto("/bin/false"):
            pass
