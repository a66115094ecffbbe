"""The edge gateway's core: frame in, NGSI-LD entities out, nothing lost and nothing half-stored.

A station sends a binary frame (:mod:`sscity.sensing.payload`) on a topic such as
``city/tsukuba/sensors/7``. :meth:`Gateway.handle` checks the topic, decodes the frame,
turns the reading into up to three FIWARE Smart Data Models entities and writes them to the
city platform (:mod:`sscity.platform`) in **one** batch upsert. It knows nothing of MQTT: a
transport (an MQTT client's message callback, a test, a replay of a log) calls
``gateway.handle(topic, payload_bytes)`` and gets an :class:`Outcome` back. Nothing is ever
raised out of ``handle``; every refused message is counted in ``gateway.stats`` by reason and
kept, raw bytes and all, in ``gateway.dead_letters``.

Entities (Smart Data Models, https://github.com/smart-data-models, ``dataModel.Environment``
and ``dataModel.Transportation``; units as UN/CEFACT Recommendation 20 codes):

=======================================  =====================================================
``urn:ngsi-ld:AirQualityObserved:<id>``  ``temperature`` (CEL), ``relativeHumidity`` (a
                                         fraction 0-1, as the model says, code C62),
                                         ``pm25`` (GQ = µg/m³), ``dateObserved``
``urn:ngsi-ld:NoiseLevelObserved:<id>``  ``LAeq`` (2N = dB; A-weighted equivalent level over
                                         the interval), ``dateObservedFrom``,
                                         ``dateObservedTo`` (both required by the model),
                                         ``dateObserved``
``urn:ngsi-ld:CrowdFlowObserved:<id>``   ``peopleCount``, ``dateObservedFrom``,
                                         ``dateObservedTo``, ``dateObserved``
=======================================  =====================================================

Every measured Property carries ``observedAt`` (the frame's timestamp, UTC, ISO 8601 with
``Z``); every entity has ``location``, a GeoProperty Point ``[lon, lat]`` from the
``stations`` mapping. A measurement missing from the frame is left out (not sent as null);
an entity with no measurement at all is not written.

All or nothing
--------------
The embedded broker runs a batch in one SQLite transaction, but NGSI-LD batch operations
(ETSI GS CIM 009, clause 5.6.8) report success *per entity*: an entity the broker refuses is
listed in ``errors`` while the others are stored (HTTP 207). A batch is therefore atomic
only against whole-request failures (broker unreachable, 5xx), not against one bad entity.
The gateway makes a reading all-or-nothing itself:

1. Before the first write of a station it reads the station's current entities once and
   remembers them (``None`` = did not exist); afterwards it remembers what it wrote.
2. It upserts all entities of the reading in one request (``options=replace``).
3. If the broker stored some entities and refused others, the gateway *compensates*: it
   writes back the remembered versions of the stored ones and deletes those that did not
   exist before, then dead-letters the frame with reason ``platform_error``.

What can still be half-stored, precisely: (a) if the compensation itself fails (the broker
goes away between the two requests) the entities listed in the dead letter's message stay
as written, and ``stats["half_stored"]`` is incremented; (b) a broker that keeps a temporal
history (the embedded one does) keeps the compensated values in the history of those
entities; (c) the remembered versions assume the gateway is the only writer of its
stations' entities: a change made by someone else between two readings is overwritten by a
compensation.

Batching
--------
One request per frame costs a platform round trip and a database transaction per frame.
:meth:`Gateway.handle_many` takes many messages (an MQTT transport drains its queue with it,
see :mod:`sscity.sensing.mqtt`) and gives every message the outcome, counters and dead
letter that :meth:`Gateway.handle` would have given it, in far fewer requests:

1. every message is checked and decoded first; a refused one is dead-lettered on its own
   and never holds up the others;
2. the accepted readings are written in *rounds*: round *k* holds the *k*-th reading of each
   station, so no entity appears twice in one request and each station's readings are
   written in order (the temporal history keeps every reading, as with ``handle``);
   duplicates and stale readings are judged against what the earlier rounds stored;
3. a round is one batch upsert (split only past ``max_entities_per_request`` entities, never
   inside a reading); the all-or-nothing rule above holds per *reading*: an entity the
   broker refuses makes the gateway undo the other entities of that reading only, and the
   other readings of the request stay stored; a request that fails whole (broker
   unreachable) dead-letters every reading in it.

What batching changes: the readings of one round reach the platform in one transaction
(the embedded broker) instead of one each, so a subscriber is notified once per round;
``stats`` are complete when the batch is done rather than after each message; and
``dead_letters`` hold the messages refused while decoding before those refused while
writing.

Example
-------
>>> from sscity.platform import Client
>>> from sscity.sensing.payload import pack_reading
>>> gateway = Gateway(Client(), tenant="gateway-example", stations={7: (140.1035, 36.1110)})
>>> frame = pack_reading({"station_id": 7, "timestamp": 1_780_000_000, "temperature_c": 21.37,
...                       "humidity_pct": 55.2, "pm25_ugm3": 12.3})
>>> gateway.handle("city/tsukuba/sensors/7", frame).status
'stored'
>>> gateway.handle("city/tsukuba/sensors/8", frame).reason
'station_mismatch'
"""

from __future__ import annotations

import datetime as _dt
import math
import numbers
import re
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass

from .payload import FrameError, unpack_reading

__all__ = ["DEFAULT_TOPIC_PREFIX", "GATEWAY_REASONS", "DeadLetter", "Gateway", "Outcome",
           "reading_to_entities"]

DEFAULT_TOPIC_PREFIX = "city/tsukuba/sensors/"

# Reasons of the gateway itself (FrameError adds its own: not_bytes, empty, truncated, ...).
GATEWAY_REASONS = ("bad_topic", "station_mismatch", "unknown_station", "no_timestamp", "stale",
                   "platform_error", "internal_error")


@dataclass(frozen=True)
class Outcome:
    """What :meth:`Gateway.handle` did with one message.

    Attributes
    ----------
    status : str
        ``"stored"``, ``"duplicate"`` (same station and timestamp as the last stored reading:
        nothing written again) or ``"dead_lettered"``.
    reason : str or None
        Why it was dead-lettered (a :class:`~sscity.sensing.payload.FrameError` reason or one
        of ``GATEWAY_REASONS``).
    message : str
        Bilingual explanation.
    entity_ids : tuple of str
        Entities written (or that would have been written).
    """

    status: str
    reason: str | None = None
    message: str = ""
    entity_ids: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the reading is on the platform (stored now or before)."""
        return self.status in ("stored", "duplicate")


@dataclass(frozen=True)
class DeadLetter:
    """A refused message, kept whole: ``(topic, payload, reason, message)``."""

    topic: str
    payload: bytes
    reason: str
    message: str

    def __iter__(self):  # unpacks like the tuple it stands for
        return iter((self.topic, self.payload, self.reason, self.message))


# --------------------------------------------------------------------------- entities


def _iso_z(seconds: float) -> str:
    """Epoch seconds -> ``2026-05-28T21:46:40Z`` (UTC, ISO 8601, seconds resolution)."""
    moment = _dt.datetime.fromtimestamp(seconds, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _prop(value, unit: str | None, observed_at: str) -> dict:
    attribute = {"type": "Property", "value": value, "observedAt": observed_at}
    if unit:
        attribute["unitCode"] = unit
    return attribute


def reading_to_entities(reading: Mapping, location: tuple[float, float], *,
                        interval_s: float = 600) -> list[dict]:
    """Turn one decoded reading into NGSI-LD entities (normalized form, course context names).

    Parameters
    ----------
    reading : dict
        As returned by :func:`~sscity.sensing.payload.unpack_reading`, with ``station_id``
        and ``timestamp`` (epoch seconds, UTC).
    location : (float, float)
        The station's ``(lon, lat)`` in degrees (WGS 84).
    interval_s : float, default 600
        Length of the measuring interval that ends at ``timestamp``: noise (LAeq) and people
        counts are interval values, so their ``dateObservedFrom`` is ``timestamp - interval_s``.

    Returns
    -------
    list of dict
        AirQualityObserved, NoiseLevelObserved, CrowdFlowObserved, each only if the reading
        has at least one of its measurements.
    """
    station = reading["station_id"]
    observed = _iso_z(reading["timestamp"])
    started = _iso_z(reading["timestamp"] - interval_s)
    where = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [location[0], location[1]]}}
    entities = []

    def entity(kind: str, attrs: dict, interval: bool) -> None:
        if not attrs:
            return
        attrs["dateObserved"] = {"type": "Property", "value": observed}
        if interval:
            attrs["dateObservedFrom"] = {"type": "Property", "value": started}
            attrs["dateObservedTo"] = {"type": "Property", "value": observed}
        entities.append({"id": f"urn:ngsi-ld:{kind}:{station}", "type": kind, **attrs, "location": where})

    air = {}
    if reading.get("temperature_c") is not None:
        air["temperature"] = _prop(reading["temperature_c"], "CEL", observed)
    if reading.get("humidity_pct") is not None:
        # Smart Data Models: relativeHumidity is a fraction 0...1, the frame carries %RH.
        air["relativeHumidity"] = _prop(round(reading["humidity_pct"] / 100, 6), "C62", observed)
    if reading.get("pm25_ugm3") is not None:
        air["pm25"] = _prop(reading["pm25_ugm3"], "GQ", observed)
    entity("AirQualityObserved", air, interval=False)
    if reading.get("noise_dba") is not None:
        entity("NoiseLevelObserved", {"LAeq": _prop(reading["noise_dba"], "2N", observed)}, interval=True)
    if reading.get("people_count") is not None:
        entity("CrowdFlowObserved", {"peopleCount": _prop(reading["people_count"], None, observed)},
               interval=True)
    return entities


ENTITY_TYPES = ("AirQualityObserved", "NoiseLevelObserved", "CrowdFlowObserved")


# --------------------------------------------------------------------------- gateway


def _check_stations(stations) -> dict[int, tuple[float, float]]:
    if not isinstance(stations, Mapping):
        raise ValueError(
            "stations must be a dict {station_id: (lon, lat)}; got "
            f"{type(stations).__name__}. / stations は {{局番号: (経度, 緯度)}} の dict にしてください。"
        )
    checked = {}
    for station, where in stations.items():
        whole = isinstance(station, numbers.Integral) and not isinstance(station, bool)
        if not whole or not 0 <= station <= 65535:
            raise ValueError(
                f"Station id {station!r} must be a whole number 0...65535 (the frame's uint16). "
                f"/ 局番号 {station!r} は 0...65535 の整数にしてください（フレームの uint16）。"
            )
        try:
            lon, lat = (float(v) for v in where)
        except (TypeError, ValueError):
            raise ValueError(
                f"Station {station}: location must be (lon, lat) in degrees; got {where!r}. "
                f"/ 局 {station} の位置は (経度, 緯度)（度）にしてください。値 {where!r}。"
            ) from None
        if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
            raise ValueError(
                f"Station {station}: (lon, lat) = ({lon}, {lat}) is not on Earth: lon -180...180, "
                f"lat -90...90 (longitude first, as GeoJSON). / 局 {station} の (経度, 緯度) = "
                f"({lon}, {lat}) は範囲外です（経度 -180...180、緯度 -90...90、GeoJSON は経度が先）。"
            )
        checked[int(station)] = (lon, lat)
    return checked


class Gateway:
    """Validate, decode and forward station frames to the city platform.

    Parameters
    ----------
    client : sscity.platform.Client
        The platform client to write with (embedded broker or any NGSI-LD broker).
    tenant : str, optional
        Write in this tenant instead of the client's (a client for it is made from the
        same broker and context).
    stations : dict, optional
        ``{station_id: (lon, lat)}``. A frame from a station not in it is dead-lettered
        (``unknown_station``): the gateway does not invent locations.
    topic_prefix : str, default ``"city/tsukuba/sensors/"``
        Topics are ``<topic_prefix><station_id>`` (decimal).
    interval_s : float, default 600
        Measuring interval of noise and people counts (see :func:`reading_to_entities`).
    dead_letter_limit : int, default 1000
        Length of ``dead_letters``; when full, the oldest is dropped and counted in
        ``stats["dead_letters_dropped"]``.

    Attributes
    ----------
    stats : collections.Counter
        ``"received"``, ``"stored"``, ``"duplicate"``, ``"dead_lettered"``, one count per
        refusal reason, ``"half_stored"`` and ``"dead_letters_dropped"``.
    dead_letters : collections.deque of DeadLetter
        The refused messages, each ``(topic, payload bytes, reason, message)``.

    Notes
    -----
    Refusal reasons: those of :class:`~sscity.sensing.payload.FrameError` (``not_bytes``,
    ``empty``, ``truncated``, ``too_long``, ``unknown_version``, ``bad_crc``,
    ``impossible_value``) and the gateway's own: ``bad_topic``, ``station_mismatch`` (the
    frame names another station than its topic), ``unknown_station``, ``no_timestamp`` (a
    compact frame without time and no ``received_at``), ``stale`` (older than the reading
    already stored: the entity holds the latest reading, so an old one would go back in
    time), ``platform_error``, and ``internal_error`` (a bug of the gateway itself: please
    report it with the dead letter). The frame's flags (``battery_low``, ``sensor_fault``,
    ``clock_unsynced``) are not forwarded.

    One gateway is meant to be called from one thread (an MQTT client's network loop);
    its counters and memory of stored entities are not locked.
    """

    def __init__(self, client, *, tenant: str | None = None, stations: Mapping | None = None,
                 topic_prefix: str = DEFAULT_TOPIC_PREFIX, interval_s: float = 600,
                 dead_letter_limit: int = 1000):
        if not hasattr(client, "batch_upsert"):
            raise TypeError(
                "client must be a platform client (sscity.platform.Client()). "
                "/ client には sscity.platform.Client() を渡してください。"
            )
        if not isinstance(topic_prefix, str) or not topic_prefix or set("+#") & set(topic_prefix):
            raise ValueError(
                f"topic_prefix must be a plain topic such as 'city/tsukuba/sensors/' (no MQTT wildcards); "
                f"got {topic_prefix!r}. / topic_prefix は 'city/tsukuba/sensors/' のような"
                f"ワイルドカードなしのトピックにしてください。"
            )
        if isinstance(interval_s, bool) or not isinstance(interval_s, numbers.Real) or not interval_s > 0:
            raise ValueError(f"interval_s must be a positive number of seconds; got {interval_s!r}. "
                             f"/ interval_s は正の秒数にしてください。")
        if type(dead_letter_limit) is not int or dead_letter_limit < 1:
            raise ValueError(f"dead_letter_limit must be a whole number >= 1; got {dead_letter_limit!r}. "
                             f"/ dead_letter_limit は 1 以上の整数にしてください。")
        if tenant is not None:
            client = client.for_tenant(tenant)
        self.client = client
        self.stations = _check_stations(stations or {})
        self.topic_prefix = topic_prefix
        self._topic = re.compile(re.escape(topic_prefix) + r"(\d{1,5})")
        self.interval_s = interval_s
        self.stats: Counter = Counter()
        self.dead_letters: deque[DeadLetter] = deque(maxlen=dead_letter_limit)
        # entity id -> what the platform holds as far as this gateway knows (None: absent)
        self._known: dict[str, dict | None] = {}
        self._last_timestamp: dict[int, int] = {}

    # -- the one entry point --------------------------------------------------------------

    def handle(self, topic: str, payload: bytes, *, received_at: float | None = None) -> Outcome:
        """Check, decode and store one message; never raises.

        Parameters
        ----------
        topic : str
            The topic it arrived on, ``<topic_prefix><station_id>``.
        payload : bytes
            The frame as received.
        received_at : float, optional
            Arrival time (epoch seconds), used only when a compact frame carries no timestamp.

        Returns
        -------
        Outcome
        """
        self.stats["received"] += 1
        raw = bytes(payload) if isinstance(payload, (bytes, bytearray, memoryview)) else payload
        try:
            return self._handle(topic, raw, received_at)
        except Exception as err:  # a gateway must survive anything one message does
            return self._refusal(topic, raw, err)

    def _handle(self, topic, raw, received_at) -> Outcome:
        station, timestamp, entities = self._prepare(topic, raw, received_at)
        duplicate = self._check_order(station, timestamp, entities)
        if duplicate is not None:
            return duplicate
        self._write_all_or_nothing(station, entities)
        return self._stored(station, timestamp, entities)

    def _prepare(self, topic, raw, received_at) -> tuple[int, int, list[dict]]:
        """Check the topic and decode the frame: ``(station, timestamp, entities)``; raises if refused."""
        match = self._topic.fullmatch(topic) if isinstance(topic, str) else None
        if match is None:
            raise _Refused(
                "bad_topic",
                f"Topic {topic!r} is not {self.topic_prefix}<station_id> (a decimal number). "
                f"/ トピック {topic!r} は {self.topic_prefix}<局番号>（10 進数）の形ではありません。",
            )
        topic_station = int(match.group(1))
        reading = unpack_reading(raw)  # FrameError -> dead letter with its reason
        frame_station = reading.get("station_id", topic_station)  # compact frames may omit it
        if frame_station != topic_station:
            raise _Refused(
                "station_mismatch",
                f"The frame is from station {frame_station} but arrived on the topic of station "
                f"{topic_station}: a misconfigured or spoofed device. / フレームは局 {frame_station} の"
                f"ものですが、局 {topic_station} のトピックに届きました（設定ミスかなりすまし）。",
            )
        if topic_station not in self.stations:
            raise _Refused(
                "unknown_station",
                f"Station {topic_station} is not registered: add it to stations={{id: (lon, lat)}}. "
                f"/ 局 {topic_station} は未登録です。stations={{局番号: (経度, 緯度)}} に加えてください。",
            )
        if "timestamp" not in reading:
            if received_at is None:
                raise _Refused(
                    "no_timestamp",
                    "The compact frame carries no timestamp and no arrival time was given "
                    "(handle(..., received_at=...)). / 圧縮フレームに時刻がなく、受信時刻"
                    "（handle(..., received_at=...)）も渡されていません。",
                )
            reading["timestamp"] = int(received_at)
        reading["station_id"] = topic_station
        entities = reading_to_entities(reading, self.stations[topic_station], interval_s=self.interval_s)
        return topic_station, reading["timestamp"], entities

    def _check_order(self, station: int, timestamp: int, entities: list[dict]) -> Outcome | None:
        """A duplicate Outcome, None for a newer reading; raises ``stale`` for an older one."""
        last = self._last_timestamp.get(station)
        ids = tuple(e["id"] for e in entities)
        if last is not None and timestamp == last:
            self.stats["duplicate"] += 1
            return Outcome("duplicate", None, "Already stored (same station and timestamp). "
                           "/ 保存済みです（同じ局・同じ時刻）。", ids)
        if last is not None and timestamp < last:
            raise _Refused(
                "stale",
                f"Reading of {_iso_z(timestamp)} is older than the stored one of {_iso_z(last)}; the entity "
                f"keeps the latest reading. / {_iso_z(timestamp)} の計測は保存済みの {_iso_z(last)} より"
                f"古いため、最新値を保つエンティティには書きません。",
                ids,
            )
        return None

    def _stored(self, station: int, timestamp: int, entities: list[dict]) -> Outcome:
        self._last_timestamp[station] = timestamp
        self.stats["stored"] += 1
        ids = tuple(e["id"] for e in entities)
        return Outcome("stored", None, f"Stored {len(ids)} entities. / {len(ids)} 件保存しました。", ids)

    # -- many messages at once -----------------------------------------------------------

    def handle_many(self, messages, *, received_at: float | None = None,
                    max_entities_per_request: int = 1000) -> list[Outcome]:
        """Check, decode and store many messages with few platform requests; never raises.

        The outcome of every message, the counters and the dead letters are exactly those
        that calling :meth:`handle` on each message in turn would give (see "Batching" in
        the module's docstring); only the number of requests differs.

        Parameters
        ----------
        messages : iterable
            ``(topic, payload)`` or ``(topic, payload, received_at)`` tuples, in arrival order.
        received_at : float, optional
            Arrival time for the messages that do not carry their own.
        max_entities_per_request : int, default 1000
            Upper bound of entities in one batch request (a reading's entities are never
            split between two requests).

        Returns
        -------
        list of Outcome
            One per message, in the order given.
        """
        if type(max_entities_per_request) is not int or max_entities_per_request < 3:
            raise ValueError(
                f"max_entities_per_request must be a whole number >= 3 (one reading's entities); got "
                f"{max_entities_per_request!r}. / max_entities_per_request は 3 以上の整数にしてください。")
        outcomes: list[Outcome | None] = []
        queues: dict[int, deque] = {}  # station -> its accepted messages, in arrival order
        for message in messages:
            index = len(outcomes)
            outcomes.append(None)
            self.stats["received"] += 1
            if isinstance(message, (tuple, list)) and len(message) in (2, 3):
                topic, payload, arrival = (*message, received_at)[:3]
            else:  # not a message at all: kept whole as the payload of a bad_topic dead letter
                topic, payload, arrival = None, message, received_at
            raw = bytes(payload) if isinstance(payload, (bytes, bytearray, memoryview)) else payload
            try:
                station, timestamp, entities = self._prepare(topic, raw, arrival)
            except Exception as err:
                outcomes[index] = self._refusal(topic, raw, err)
                continue
            queues.setdefault(station, deque()).append((index, topic, raw, timestamp, entities))
        # Round k writes the k-th accepted message of every station: no entity appears twice in a
        # request, each station's readings are written in order (so the temporal history keeps
        # every one), and the duplicate and stale checks see what the earlier rounds stored.
        accepted = [(index, topic, raw) for waiting in queues.values() for index, topic, raw, *_ in waiting]
        try:
            self._write_rounds(queues, outcomes, max_entities_per_request)
        except Exception as err:  # a bug of the gateway: what is not done yet is dead-lettered, not lost
            for index, topic, raw in accepted:
                if outcomes[index] is None:
                    outcomes[index] = self._refusal(topic, raw, err)
        return outcomes

    def _write_rounds(self, queues: dict, outcomes: list, max_entities_per_request: int) -> None:
        while queues:
            writes = []
            for station in list(queues):
                index, topic, raw, timestamp, entities = queues[station].popleft()
                if not queues[station]:
                    del queues[station]
                try:
                    duplicate = self._check_order(station, timestamp, entities)
                except Exception as err:
                    outcomes[index] = self._refusal(topic, raw, err)
                    continue
                if duplicate is not None:
                    outcomes[index] = duplicate
                elif entities:
                    writes.append((index, topic, raw, station, timestamp, entities))
                else:  # a reading with no measurement: nothing to write, as handle() does
                    outcomes[index] = self._stored(station, timestamp, entities)
            chunk, size = [], 0
            for write in writes:
                if chunk and size + len(write[5]) > max_entities_per_request:
                    self._write_round(chunk, outcomes)
                    chunk, size = [], 0
                chunk.append(write)
                size += len(write[5])
            if chunk:
                self._write_round(chunk, outcomes)

    def _refusal(self, topic, raw, err: Exception) -> Outcome:
        """The dead-letter Outcome for an exception raised while handling one message."""
        if isinstance(err, _Refused):
            return self._dead_letter(topic, raw, err.reason, err.message, err.entity_ids)
        if isinstance(err, FrameError):
            return self._dead_letter(topic, raw, err.reason, str(err))
        return self._dead_letter(
            topic, raw, "internal_error",
            f"Unexpected error {type(err).__name__}: {err}. / 予期しないエラー {type(err).__name__}: {err}。",
        )

    def _write_round(self, writes: list[tuple], outcomes: list) -> None:
        """Upsert the readings of one round (at most one per station) in one request."""
        from sscity.platform import BrokerError

        try:
            self._remember_stations([write[3] for write in writes])
            entities = [entity for write in writes for entity in write[5]]
            # One request for the round (the client would split past its default of 1000 entities).
            extra = {"chunk_size": len(entities)} if len(entities) > 1000 else {}
            result = self.client.batch_upsert(entities, mode="replace", **extra)
        except Exception as err:  # nothing of the request was written: every reading is refused alike
            for index, topic, raw, _station, _timestamp, reading_entities in writes:
                ids = tuple(e["id"] for e in reading_entities)
                if isinstance(err, _Refused):
                    refusal = _Refused(err.reason, err.message, ids)
                elif isinstance(err, BrokerError):
                    refusal = _Refused("platform_error", _platform_message(err), ids)
                else:
                    refusal = err
                outcomes[index] = self._refusal(topic, raw, refusal)
            return
        errors = {error.get("entityId"): error for error in result.errors}
        sent = {entity["id"] for entity in entities}
        # An error naming no entity that was sent (a broker that rewrote or lost the id) cannot
        # be pinned on one reading: every reading not confirmed whole is then refused.
        unattributed = [error for entity_id, error in errors.items() if entity_id not in sent]
        succeeded = set(result.success)
        for index, topic, raw, station, timestamp, reading_entities in writes:
            ids = [e["id"] for e in reading_entities]
            if all(i in succeeded and i not in errors for i in ids):
                for entity in reading_entities:
                    self._known[entity["id"]] = entity
                outcomes[index] = self._stored(station, timestamp, reading_entities)
                continue
            refused = [errors[i] for i in ids if i in errors] or unattributed or [
                {"entityId": i, "error": {"detail": "not confirmed by the broker"}}
                for i in ids if i not in succeeded]
            try:
                self._compensate(refused, [i for i in ids if i in succeeded], ids)
            except Exception as err:
                outcomes[index] = self._refusal(topic, raw, err)

    # -- writing -----------------------------------------------------------------------

    def _remember_station(self, station: int) -> None:
        """Read the station's entities once, so that a failed write can be undone."""
        self._remember_stations([station])

    def _remember_stations(self, stations) -> None:
        """Read the entities of the stations not seen yet (one query per 100 ids when possible)."""
        from sscity.platform import BrokerError

        unknown = [f"urn:ngsi-ld:{kind}:{station}" for station in stations for kind in ENTITY_TYPES]
        unknown = [entity_id for entity_id in unknown if entity_id not in self._known]
        if len(unknown) > len(ENTITY_TYPES) and hasattr(self.client, "query"):
            for start in range(0, len(unknown), 99):  # ids travel in the URL: keep it short
                some = unknown[start:start + 99]
                try:
                    found = self.client.query(id=some, type=list(ENTITY_TYPES), limit=len(some))
                except BrokerError as err:
                    if err.kind != "NonexistentTenant":
                        raise _Refused("platform_error", _platform_message(err)) from None
                    found = []
                by_id = {entity["id"]: entity for entity in found}
                for entity_id in some:
                    self._known[entity_id] = by_id.get(entity_id)
            return
        for entity_id in unknown:
            try:
                self._known[entity_id] = self.client.get(entity_id)
            except BrokerError as err:
                # A tenant that does not exist yet holds nothing: the batch will create it.
                if err.kind not in ("ResourceNotFound", "NonexistentTenant"):
                    raise _Refused("platform_error", _platform_message(err)) from None
                self._known[entity_id] = None

    def _write_all_or_nothing(self, station: int, entities: list[dict]) -> None:
        from sscity.platform import BrokerError

        self._remember_station(station)
        ids = tuple(e["id"] for e in entities)
        try:
            result = self.client.batch_upsert(entities, mode="replace")
        except BrokerError as err:  # the whole request failed: nothing was written
            raise _Refused("platform_error", _platform_message(err), ids) from None
        if result.ok:
            for entity in entities:
                self._known[entity["id"]] = entity
            return
        self._compensate(result.errors, result.success, ids)

    def _compensate(self, errors: list[dict], written_ids, ids) -> None:
        """Undo the stored entities of a reading the platform refused in part; always raises."""
        refused = [e.get("entityId") for e in errors]
        details = "; ".join(f"{e.get('entityId')}: {e.get('error', {}).get('detail')}" for e in errors)
        left = self._undo(written_ids)
        if left:
            self.stats["half_stored"] += 1
            raise _Refused(
                "platform_error",
                f"The platform refused {refused} ({details}) and undoing the others failed: {left} stay "
                f"half-stored. / プラットフォームが {refused} を拒否し、他の取り消しにも失敗しました。"
                f"{left} が中途半端に保存されたままです。",
                ids,
            )
        raise _Refused(
            "platform_error",
            f"The platform refused {refused} ({details}); the other entities of the reading were undone, "
            f"so nothing of it is stored. / プラットフォームが {refused} を拒否したため、同じ計測の"
            f"他のエンティティも取り消しました（何も保存されていません）。",
            ids,
        )

    def _undo(self, written_ids) -> list[str]:
        """Put the written entities back as they were; return the ids that could not be."""
        from sscity.platform import BrokerError

        restore = [self._known[i] for i in written_ids if self._known.get(i) is not None]
        delete = [i for i in written_ids if self._known.get(i) is None]
        left = []
        try:
            if restore:
                result = self.client.batch_upsert([_writable(e) for e in restore], mode="replace")
                left += [e.get("entityId") for e in result.errors]
            if delete:
                result = self.client.batch_delete(delete)
                left += [e.get("entityId") for e in result.errors]
        except BrokerError:
            return list(written_ids)
        return left

    def _dead_letter(self, topic, raw, reason: str, message: str, entity_ids=()) -> Outcome:
        if len(self.dead_letters) == self.dead_letters.maxlen:
            self.stats["dead_letters_dropped"] += 1
        self.dead_letters.append(DeadLetter(topic, raw, reason, message))
        self.stats["dead_lettered"] += 1
        self.stats[reason] += 1
        return Outcome("dead_lettered", reason, message, tuple(entity_ids))


class _Refused(Exception):
    def __init__(self, reason: str, message: str, entity_ids=()):
        super().__init__(message)
        self.reason, self.message, self.entity_ids = reason, message, tuple(entity_ids)


def _platform_message(err) -> str:
    return (f"The platform failed: {str(err).rstrip('.')}. / プラットフォームでエラーが起きました"
            f"（{getattr(err, 'kind', None) or 'no answer'}）。再送するか講師に知らせてください。")


def _writable(entity: dict) -> dict:
    """An entity as read back, minus what a client may not send (system attributes)."""
    return {k: v for k, v in entity.items() if k not in ("createdAt", "modifiedAt", "@context")}
