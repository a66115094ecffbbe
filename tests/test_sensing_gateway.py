"""The edge gateway core: frames in, Smart Data Models entities out, nothing lost or half-stored.

Reference values come from outside this repository:

- Unix time 1_700_000_000 is 2023-11-14T22:13:20Z (POSIX time, IEEE Std 1003.1 "Seconds Since
  the Epoch"; the widely quoted "1.7 billion seconds" instant).
- Unit codes: UN/CEFACT Recommendation 20 -- CEL degree Celsius, GQ microgram per cubic metre,
  2N decibel, C62 "one" (a dimensionless number).
- Smart Data Models (github.com/smart-data-models): AirQualityObserved ``relativeHumidity`` is
  a fraction 0-1 (its example has 0.54); NoiseLevelObserved has ``LAeq`` and requires
  ``dateObservedFrom`` / ``dateObservedTo``; CrowdFlowObserved has ``peopleCount``.
- NGSI-LD (ETSI GS CIM 009, clause 5.6.8): batch upsert reports per-entity success, so one
  refused entity does not stop the others -- the test below shows that of the embedded broker.
"""

from __future__ import annotations

import datetime as dt
import struct

import pytest
from sscity.platform import BrokerError, Client
from sscity.sensing.gateway import Gateway, Outcome, reading_to_entities
from sscity.sensing.payload import crc16_ccitt_false, pack_compact, pack_reading

TOPIC = "city/tsukuba/sensors/7"
STATIONS = {7: (140.1035, 36.1110), 8: (140.1100, 36.0830)}
T0 = 1_700_000_000  # = 2023-11-14T22:13:20Z (POSIX time)
READING = {"station_id": 7, "timestamp": T0, "temperature_c": 21.37, "humidity_pct": 55.2,
           "pm25_ugm3": 12.3, "noise_dba": 48.5, "people_count": 14}
TYPES = ("AirQualityObserved", "NoiseLevelObserved", "CrowdFlowObserved")
AIR, NOISE, CROWD = (f"urn:ngsi-ld:{kind}:7" for kind in TYPES)


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.delenv("SSCITY_BROKER_URL", raising=False)
    monkeypatch.delenv("SSCITY_CONTEXT_URL", raising=False)
    monkeypatch.delenv("SSCITY_TENANT_PREFIX", raising=False)
    with Client(db=tmp_path / "city.db") as client:
        yield client


class Spy:
    """A platform client that records batch calls and can break them (the second entity, a delete)."""

    def __init__(self, client, break_second=False, break_delete=False):
        self.client, self.break_second, self.break_delete = client, break_second, break_delete
        self.batches = []
        self.tenant = client.tenant

    def get(self, entity_id):
        return self.client.get(entity_id)

    def batch_upsert(self, entities, mode="replace"):
        self.batches.append(entities)
        if self.break_second and len(entities) > 1:
            entities = [entities[0], {**entities[1], "id": "not a uri"}, *entities[2:]]
        return self.client.batch_upsert(entities, mode=mode)

    def batch_delete(self, ids):
        if self.break_delete:
            raise BrokerError(None, None, "Connection failed", "the broker went away", "POST delete")
        return self.client.batch_delete(ids)


def stored(client) -> int:
    return sum(len(client.query(type=kind)) for kind in TYPES)


def instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# --------------------------------------------------------------------------- good frames


def test_good_frame_becomes_smart_data_models_entities(client):
    gateway = Gateway(client, stations=STATIONS)
    outcome = gateway.handle(TOPIC, pack_reading(READING))
    assert outcome == Outcome("stored", None, outcome.message, (AIR, NOISE, CROWD)) and outcome.ok
    assert gateway.stats["stored"] == 1 and not gateway.dead_letters
    air, noise, crowd = (client.get(i) for i in (AIR, NOISE, CROWD))
    assert (air["type"], noise["type"], crowd["type"]) == TYPES
    assert air["temperature"]["value"] == 21.37 and air["temperature"]["unitCode"] == "CEL"
    humidity = air["relativeHumidity"]
    assert humidity["value"] == pytest.approx(0.552) and humidity["unitCode"] == "C62"
    assert 0 <= air["relativeHumidity"]["value"] <= 1
    assert air["pm25"]["value"] == 12.3 and air["pm25"]["unitCode"] == "GQ"
    assert noise["LAeq"]["value"] == 48.5 and noise["LAeq"]["unitCode"] == "2N"
    assert crowd["peopleCount"]["value"] == 14
    expected = dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)
    for entity, name in ((air, "temperature"), (air, "relativeHumidity"), (air, "pm25"),
                         (noise, "LAeq"), (crowd, "peopleCount")):
        observed = entity[name]["observedAt"]
        assert observed.endswith("Z") and instant(observed) == expected
    assert instant(air["dateObserved"]["value"]) == expected
    assert instant(noise["dateObservedTo"]["value"]) == expected
    assert instant(noise["dateObservedFrom"]["value"]) == expected - dt.timedelta(minutes=10)
    assert instant(crowd["dateObservedFrom"]["value"]) == expected - dt.timedelta(minutes=10)
    assert air["location"]["value"] == {"type": "Point", "coordinates": [140.1035, 36.111]}  # [lon, lat]
    near = client.query(type="AirQualityObserved", georel="near;maxDistance==50", geometry="Point",
                        coordinates=[140.1036, 36.1110])
    assert [e["id"] for e in near] == [AIR]


def test_missing_measurements_are_left_out():
    entities = reading_to_entities({"station_id": 3, "timestamp": T0, "temperature_c": None,
                                    "humidity_pct": 40.0, "noise_dba": None}, (140.0, 36.0))
    assert [e["id"] for e in entities] == ["urn:ngsi-ld:AirQualityObserved:3"]
    assert "temperature" not in entities[0] and entities[0]["relativeHumidity"]["value"] == 0.4


def test_compact_frame_takes_station_from_topic_and_time_from_arrival(client):
    gateway = Gateway(client, stations=STATIONS)
    frame = pack_compact(READING, fields=["temperature_c", "humidity_pct", "pm25_ugm3"])
    assert gateway.handle(TOPIC, frame).reason == "no_timestamp"
    outcome = gateway.handle(TOPIC, frame, received_at=T0 + 60)
    assert outcome.status == "stored" and outcome.entity_ids == (AIR,)
    observed = instant(client.get(AIR)["pm25"]["observedAt"])
    assert observed == dt.datetime(2023, 11, 14, 22, 14, 20, tzinfo=dt.UTC)


def test_duplicate_frame_is_idempotent(client):
    frame = pack_reading(READING)
    gateway = Gateway(client, stations=STATIONS)
    gateway.handle(TOPIC, frame)
    before = client.get(AIR, sys_attrs=True)
    again = gateway.handle(TOPIC, frame)
    assert again.status == "duplicate" and again.ok and gateway.stats["duplicate"] == 1
    assert client.get(AIR, sys_attrs=True) == before  # not even rewritten
    restarted = Gateway(client, stations=STATIONS)  # a new gateway rewrites the same entities
    assert restarted.handle(TOPIC, frame).status == "stored"
    assert stored(client) == 3
    assert client.get(AIR, key_values=True)["temperature"] == 21.37


def test_older_reading_does_not_overwrite_newer(client):
    gateway = Gateway(client, stations=STATIONS)
    gateway.handle(TOPIC, pack_reading({**READING, "timestamp": T0 + 600, "temperature_c": 22.0}))
    outcome = gateway.handle(TOPIC, pack_reading(READING))
    assert outcome.reason == "stale" and gateway.dead_letters[-1].payload == pack_reading(READING)
    assert client.get(AIR, key_values=True)["temperature"] == 22.0


def test_tenant(client):
    gateway = Gateway(client, tenant="campus", stations=STATIONS)
    assert gateway.handle(TOPIC, pack_reading(READING)).status == "stored"
    assert gateway.client.tenant == "campus" and client.tenant is None
    assert gateway.client.get(AIR)["pm25"]["value"] == 12.3
    with pytest.raises(BrokerError):
        client.get(AIR)


# --------------------------------------------------------------------------- refused messages


def _frame_with(temperature_raw: int) -> bytes:
    body = struct.pack(">BHIhHHHHB", 1, 7, T0, temperature_raw, 5520, 123, 485, 14, 0)
    return body + struct.pack(">H", crc16_ccitt_false(body))


def test_every_frame_error_reason_is_counted_and_kept(client):
    good = pack_reading(READING)
    bad = {
        "not_bytes": "21.37",
        "empty": b"",
        "truncated": good[:-1],
        "too_long": good + b"\x00",
        "unknown_version": b"\x09" + good[1:],
        "bad_crc": good[:9] + bytes([good[9] ^ 0x01]) + good[10:],
        "impossible_value": _frame_with(9000),  # 90.00 °C, over the 85 °C range, with a valid CRC
    }
    assert _frame_with(2137) == good  # the hand-made frame is the real layout
    spy = Spy(client)
    gateway = Gateway(spy, stations=STATIONS)
    for reason, payload in bad.items():
        outcome = gateway.handle(TOPIC, payload)
        assert (outcome.status, outcome.reason) == ("dead_lettered", reason)
        assert " / " in outcome.message  # English / 日本語
    assert {reason: gateway.stats[reason] for reason in bad} == dict.fromkeys(bad, 1)
    assert gateway.stats["dead_lettered"] == len(bad) == len(gateway.dead_letters)
    assert [letter.payload for letter in gateway.dead_letters] == list(bad.values())  # raw bytes kept
    topic, payload, reason, message = gateway.dead_letters[2]
    assert (topic, payload, reason) == (TOPIC, good[:-1], "truncated") and "19" in message
    assert spy.batches == [] and stored(client) == 0


def test_truncated_and_corrupted_frames_never_reach_the_platform(client):
    good = pack_reading(READING)
    spy = Spy(client)
    gateway = Gateway(spy, stations=STATIONS)
    prefixes = [good[:n] for n in range(len(good))]
    flips = [good[:i] + bytes([good[i] ^ mask]) + good[i + 1:]
             for i in range(len(good)) for mask in (0x01, 0xFF)]
    for payload in prefixes + flips:
        assert gateway.handle(TOPIC, payload).status == "dead_lettered"
    assert spy.batches == [] and stored(client) == 0
    assert gateway.stats["dead_lettered"] == len(prefixes) + len(flips)
    assert gateway.stats["truncated"] + gateway.stats["empty"] == len(prefixes)


@pytest.mark.parametrize(("topic", "reason"), [
    ("city/tsukuba/sensors/abc", "bad_topic"),
    ("city/tsukuba/sensors/7/extra", "bad_topic"),
    ("other/7", "bad_topic"),
    (None, "bad_topic"),
    ("city/tsukuba/sensors/8", "station_mismatch"),
    ("city/tsukuba/sensors/9", "unknown_station"),
])
def test_wrong_topics_are_dead_lettered(client, topic, reason):
    stations = {**STATIONS, 9: (140.0, 36.0)} if reason == "station_mismatch" else STATIONS
    frame = pack_reading({**READING, "station_id": 9} if reason == "unknown_station" else READING)
    gateway = Gateway(client, stations=stations)
    outcome = gateway.handle(topic, frame)
    assert outcome.reason == reason and gateway.stats[reason] == 1
    assert tuple(gateway.dead_letters[0]) == (topic, frame, reason, outcome.message)
    assert stored(client) == 0


def test_dead_letters_are_bounded_and_overflow_is_counted(client):
    gateway = Gateway(client, stations=STATIONS, dead_letter_limit=2)
    for n in range(3):
        gateway.handle(TOPIC, bytes([9, n]))
    assert [letter.payload for letter in gateway.dead_letters] == [bytes([9, 1]), bytes([9, 2])]
    assert gateway.stats["dead_letters_dropped"] == 1 and gateway.stats["unknown_version"] == 3


# --------------------------------------------------------------------------- all or nothing


def test_the_broker_batch_alone_is_not_atomic(client):
    """Why the gateway compensates: a refused second entity leaves the first one stored."""
    good, bad = reading_to_entities(READING, STATIONS[7])[:2]
    result = client.batch_upsert([good, {**bad, "id": "not a uri"}])
    assert result.success == [AIR] and len(result.errors) == 1
    assert client.get(AIR)["temperature"]["value"] == 21.37


def test_platform_refusing_one_entity_stores_nothing_of_the_reading(client):
    spy = Spy(client, break_second=True)
    gateway = Gateway(spy, stations=STATIONS)
    outcome = gateway.handle(TOPIC, pack_reading(READING))
    assert (outcome.status, outcome.reason) == ("dead_lettered", "platform_error")
    assert len(spy.batches) == 1 and len(spy.batches[0]) == 3  # one batch, all three entities
    assert stored(client) == 0  # the first entity, stored by the broker, was undone
    assert gateway.dead_letters[0].payload == pack_reading(READING) and gateway.stats["platform_error"] == 1
    assert gateway.stats["half_stored"] == 0 and "not a uri" in outcome.message


def test_platform_refusal_restores_the_previous_reading(client):
    Gateway(client, stations=STATIONS).handle(TOPIC, pack_reading(READING))
    spy = Spy(client, break_second=True)
    gateway = Gateway(spy, stations=STATIONS)  # a fresh gateway reads what is there first
    newer = pack_reading({**READING, "timestamp": T0 + 600, "temperature_c": 30.0, "noise_dba": 70.0})
    assert gateway.handle(TOPIC, newer).reason == "platform_error"
    air, noise = client.get(AIR), client.get(NOISE)
    assert air["temperature"]["value"] == 21.37 and noise["LAeq"]["value"] == 48.5
    assert instant(air["temperature"]["observedAt"]) == dt.datetime.fromtimestamp(T0, dt.UTC)
    spy.break_second = False  # the platform is fixed: the retried frame goes through
    assert gateway.handle(TOPIC, newer).status == "stored"
    assert client.get(AIR, key_values=True)["temperature"] == 30.0


def test_failed_undo_is_reported_as_half_stored(client):
    spy = Spy(client, break_second=True, break_delete=True)
    gateway = Gateway(spy, stations=STATIONS)
    outcome = gateway.handle(TOPIC, pack_reading(READING))
    assert outcome.reason == "platform_error" and gateway.stats["half_stored"] == 1
    assert AIR in outcome.message and client.get(AIR)  # said, precisely, what stayed


def test_unreachable_platform_dead_letters(monkeypatch):
    monkeypatch.delenv("SSCITY_TENANT_PREFIX", raising=False)
    with Client(url="http://127.0.0.1:1", timeout_s=1) as unreachable:
        gateway = Gateway(unreachable, stations=STATIONS)
        outcome = gateway.handle(TOPIC, pack_reading(READING))
    assert outcome.reason == "platform_error" and gateway.stats["platform_error"] == 1
    assert gateway.dead_letters[0].payload == pack_reading(READING)


# --------------------------------------------------------------------------- bad set-up


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"stations": [(140.0, 36.0)]}, "dict"),
    ({"stations": {70000: (140.0, 36.0)}}, "0...65535"),
    ({"stations": {7: (36.08, 140.11)}}, "longitude first"),
    ({"stations": {7: "Tsukuba"}}, "(lon, lat)"),
    ({"topic_prefix": "city/+/sensors/"}, "wildcards"),
    ({"interval_s": 0}, "positive"),
    ({"dead_letter_limit": 0}, ">= 1"),
])
def test_bad_settings_say_what_to_fix(client, kwargs, words):
    with pytest.raises(ValueError, match="/") as error:
        Gateway(client, **kwargs)
    assert words in str(error.value)


def test_not_a_client():
    with pytest.raises(TypeError, match="sscity.platform.Client"):
        Gateway("http://localhost:1026")


def test_module_example(monkeypatch):
    import doctest

    import sscity.sensing.gateway as module

    monkeypatch.delenv("SSCITY_BROKER_URL", raising=False)
    monkeypatch.delenv("SSCITY_TENANT_PREFIX", raising=False)
    result = doctest.testmod(module)
    assert result.attempted and not result.failed


def test_nothing_is_raised_out_of_handle(client):
    class Broken(Spy):
        def batch_upsert(self, entities, mode="replace"):
            raise RuntimeError("boom")

    gateway = Gateway(Broken(client), stations=STATIONS)
    assert gateway.handle(TOPIC, pack_reading(READING)).reason == "internal_error"
    assert gateway.handle(TOPIC, None).reason == "not_bytes"
    assert gateway.handle(TOPIC, 42).reason == "not_bytes"
    assert gateway.handle(b"city/tsukuba/sensors/7", pack_reading(READING)).reason == "bad_topic"
    assert gateway.stats["dead_lettered"] == 4 and stored(client) == 0


# --------------------------------------------------------------------------- many at once


def _mixed_messages() -> list[tuple]:
    """Readings of three stations, two readings each per round, with every kind of refusal."""
    messages = []
    for k in range(4):
        for station in (7, 8):
            frame = pack_reading({**READING, "station_id": station, "timestamp": T0 + 600 * k,
                                  "temperature_c": 20.0 + k + station / 100})
            messages.append((f"city/tsukuba/sensors/{station}", frame))
    good = pack_reading(READING)
    messages += [
        (TOPIC, good),  # a duplicate of station 7's first reading (stored above): stale by now
        (TOPIC, messages[-2][1]),  # a redelivery of station 7's latest: duplicate
        (TOPIC, good[:-1]),  # truncated
        ("city/tsukuba/sensors/9", pack_reading({**READING, "station_id": 9})),  # unknown station
        ("city/tsukuba/sensors/8", good),  # station mismatch
        (TOPIC, pack_compact(READING, fields=["pm25_ugm3"])),  # compact: no timestamp ...
        (TOPIC, pack_compact(READING, fields=["pm25_ugm3"]), T0 + 9000),  # ... unless received_at
        (TOPIC, pack_reading({**READING, "timestamp": T0 + 9600, "temperature_c": 25.0})),
    ]
    return messages


def _one_by_one(gateway, messages):
    return [gateway.handle(topic, payload, received_at=rest[0] if rest else None)
            for topic, payload, *rest in messages]


def test_handle_many_gives_what_handle_gives_one_by_one(tmp_path, monkeypatch):
    monkeypatch.delenv("SSCITY_BROKER_URL", raising=False)
    monkeypatch.delenv("SSCITY_TENANT_PREFIX", raising=False)
    messages = _mixed_messages()
    with Client(db=tmp_path / "one.db") as one, Client(db=tmp_path / "many.db") as many:
        single, batched = Gateway(one, stations=STATIONS), Gateway(Spy(many), stations=STATIONS)
        expected = _one_by_one(single, messages)
        outcomes = batched.handle_many(messages)
        assert [(o.status, o.reason, o.entity_ids) for o in outcomes] == \
               [(o.status, o.reason, o.entity_ids) for o in expected]
        assert batched.stats == single.stats
        # The same dead letters (in the order refused: decoding refusals come before the rounds').
        assert sorted(tuple(d)[:3] for d in batched.dead_letters) == \
               sorted(tuple(d)[:3] for d in single.dead_letters)
        stats = batched.stats
        accounted = stats["stored"] + stats["dead_lettered"] + stats["duplicate"]
        assert accounted == stats["received"] == len(messages)
        for kind in TYPES:
            assert sorted(map(str, many.query(type=kind, key_values=True))) == \
                   sorted(map(str, one.query(type=kind, key_values=True)))
        # The temporal history keeps every stored reading, as one by one does.
        for entity_id in (AIR, "urn:ngsi-ld:AirQualityObserved:8"):
            assert many.temporal(entity_id, temporal_values=True)["temperature"]["values"] == \
                   one.temporal(entity_id, temporal_values=True)["temperature"]["values"]
        # Far fewer requests: one per round (a round holds at most one reading per station).
        assert len(batched.client.batches) == 6 < len(messages)  # 10 one by one
        assert all(len({e["id"] for e in batch}) == len(batch) for batch in batched.client.batches)


def test_handle_many_keeps_all_or_nothing_per_reading(client):
    class RefuseStation8(Spy):
        def batch_upsert(self, entities, mode="replace"):
            self.batches.append(entities)
            mangled = [{**e, "id": "not a uri"} if e["id"] == "urn:ngsi-ld:NoiseLevelObserved:8" else e
                       for e in entities]
            return self.client.batch_upsert(mangled, mode=mode)

    spy = RefuseStation8(client)
    gateway = Gateway(spy, stations=STATIONS)
    frames = [(f"city/tsukuba/sensors/{s}", pack_reading({**READING, "station_id": s})) for s in (7, 8)]
    outcomes = gateway.handle_many(frames)
    assert [o.status for o in outcomes] == ["stored", "dead_lettered"]
    assert outcomes[1].reason == "platform_error" and "not a uri" in outcomes[1].message
    assert len(spy.batches) == 1 and len(spy.batches[0]) == 6  # both readings in one request
    assert stored(client) == 3  # station 7's three entities; nothing of station 8 is left
    assert {e["id"] for kind in TYPES for e in client.query(type=kind)} == {AIR, NOISE, CROWD}
    assert gateway.stats["half_stored"] == 0 and gateway.dead_letters[0].payload == frames[1][1]


def test_handle_many_splits_requests_but_never_a_reading(client):
    stations = {s: (140.0 + s / 1000, 36.0) for s in range(1, 11)}
    spy = Spy(client)
    gateway = Gateway(spy, stations=stations)
    frames = [(f"city/tsukuba/sensors/{s}", pack_reading({**READING, "station_id": s})) for s in stations]
    outcomes = gateway.handle_many(frames, max_entities_per_request=7)
    assert all(o.status == "stored" for o in outcomes) and stored(client) == 30
    assert [len(batch) for batch in spy.batches] == [6] * 5  # two readings of 3 entities each
    with pytest.raises(ValueError, match="/"):
        gateway.handle_many(frames, max_entities_per_request=2)


def test_handle_many_survives_an_unreachable_platform_and_bad_messages(monkeypatch):
    monkeypatch.delenv("SSCITY_TENANT_PREFIX", raising=False)
    with Client(url="http://127.0.0.1:1", timeout_s=1) as unreachable:
        gateway = Gateway(unreachable, stations=STATIONS)
        other = pack_reading({**READING, "station_id": 8})
        outcomes = gateway.handle_many([(TOPIC, pack_reading(READING)), (TOPIC, None), "not a pair",
                                        ("city/tsukuba/sensors/8", other)])
    assert [o.reason for o in outcomes] == ["platform_error", "not_bytes", "bad_topic", "platform_error"]
    assert gateway.dead_letters[1].payload == "not a pair"  # refused while decoding: before the writes
    assert gateway.stats["dead_lettered"] == gateway.stats["received"] == 4


def test_handle_many_turns_a_gateway_bug_into_dead_letters(client):
    class Broken(Spy):
        def batch_upsert(self, entities, mode="replace"):
            raise RuntimeError("boom")

    gateway = Gateway(Broken(client), stations=STATIONS)
    outcomes = gateway.handle_many([(TOPIC, pack_reading(READING))])
    assert outcomes[0].reason == "internal_error" and "boom" in outcomes[0].message
    assert gateway.stats["dead_lettered"] == gateway.stats["received"] == 1 and stored(client) == 0
