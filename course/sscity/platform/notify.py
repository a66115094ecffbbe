"""Delivering notifications: HTTP endpoints in the background, in-process inboxes at once.

An endpoint ``uri`` of a subscription is either

- ``http://...`` / ``https://...``: the notification is POSTed by a background thread
  (httpx, short timeout), so a slow or dead endpoint never delays a write; or
- ``mqtt://[user[:password]@]host[:port]/topic``: the notification is published on ``topic``
  of that MQTT broker by the same background thread (MQTT notification binding of ETSI GS
  CIM 009): the message is the JSON object ``{"metadata": {...}, "body": notification}``,
  where ``metadata`` carries what HTTP would send as headers (``Content-Type``, ``Link``,
  ``NGSILD-Tenant``) and the endpoint's ``receiverInfo`` pairs. ``notifierInfo`` sets the
  ``MQTT-QoS`` (0, 1 or 2; default 0) and the ``MQTT-Version`` (``mqtt3.1.1`` or
  ``mqtt5.0``; default ``mqtt5.0``, and, when the version was not named, 3.1.1 against a
  broker that does not speak 5.0, such as the course's embedded amqtt broker). One
  connection per broker is kept open and reused; or
- ``sscity:inbox/<name>``: the notification is kept in memory in the inbox ``<name>`` of the
  subscription's tenant (the newest :data:`INBOX_SIZE`; another tenant's inbox of the same
  name is a different one, as its entities are), readable with ``Client.notifications(name)`` or
  ``GET /sscity/inbox/<name>``. Notebooks test subscriptions this way without a web server.
  Inboxes live in the broker's process and are not persisted. Other brokers (Orion-LD)
  do not know this scheme.

The same background thread also runs the timers of periodic subscriptions
(:meth:`Notifier.schedule`): a callback given by the broker, every ``timeInterval`` seconds.

Each delivery updates the subscription's ``timesSent``, ``lastNotification``,
``lastSuccess`` / ``lastFailure`` and ``status``, kept in memory by this process.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .storage import dumps
from .timeutil import now_iso

INBOX_SCHEME = "sscity:inbox/"
INBOX_SIZE = 1000
MQTT_SCHEME = "mqtt://"
MQTT_DEFAULT_PORT = 1883  # IANA service name "mqtt"
MQTT_VERSIONS = ("mqtt3.1.1", "mqtt5.0")
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MqttTarget:
    """Where an ``mqtt://`` endpoint publishes: the broker, its credentials and the topic."""

    host: str
    port: int
    topic: str
    username: str | None = None
    password: str | None = None


def parse_mqtt_endpoint(uri: str) -> MqttTarget:
    """Read ``mqtt://[user[:password]@]host[:port]/topic[/subtopic...]`` (MQTT binding).

    Raises
    ------
    ValueError
        With a message saying what to write, if ``uri`` is not such a URL or the topic is
        empty or has MQTT wildcards (a notification is published on one topic).
    """
    example = "mqtt://localhost:1883/city/alerts"
    parts = urlsplit(uri)
    try:
        port = parts.port or MQTT_DEFAULT_PORT
    except ValueError:
        port = None
    topic = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
    if (parts.scheme != "mqtt" or not parts.hostname or port is None or not 0 < port < 65536
            or parts.query or parts.fragment):
        raise ValueError(f"notification.endpoint.uri {uri[:200]!r} must be mqtt://host[:port]/topic, "
                         f"e.g. {example!r}.")
    if not topic or "+" in topic or "#" in topic or "\x00" in topic:
        raise ValueError(f"notification.endpoint.uri {uri[:200]!r} needs a topic without MQTT wildcards "
                         f"(+ or #) after the host, e.g. {example!r}.")
    return MqttTarget(parts.hostname, port, topic,
                      unquote(parts.username) if parts.username else None,
                      unquote(parts.password) if parts.password else None)


class Notifier:
    """Sends notifications and keeps inboxes and delivery statistics.

    Parameters
    ----------
    timeout_s : float
        Time limit of one HTTP delivery.
    queue_size : int
        Pending HTTP deliveries beyond this are dropped (and counted as failures).
    """

    def __init__(self, timeout_s: float = 2.0, queue_size: int = 10_000):
        self.timeout_s = timeout_s
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._inboxes: dict[tuple[str, str], collections.deque] = {}  # (tenant, name)
        self._stats: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        # key -> [next due (monotonic s), interval s, callback]: periodic subscriptions' timers
        self._timers: dict[object, list] = {}
        # (host, port, username, password, version) -> connected paho client, kept for reuse
        self._mqtt: dict[tuple, object] = {}
        self._mqtt_v311_only: set[tuple[str, int]] = set()  # brokers that refused MQTT 5.0

    # -- delivery ---------------------------------------------------------------------

    def deliver(self, subscription_id: str, endpoint: dict, notification: dict, link: str | None,
                tenant: str) -> None:
        """Send ``notification`` to the subscription's endpoint (inbox now, HTTP in background)."""
        uri = endpoint["uri"]
        if uri.startswith(INBOX_SCHEME):
            name = uri[len(INBOX_SCHEME):]
            with self._lock:  # each tenant's inboxes are its own, like its entities
                box = self._inboxes.setdefault((tenant or "", name), collections.deque(maxlen=INBOX_SIZE))
                box.append(notification)
            self._record(subscription_id, ok=True)
            return
        headers = {"Content-Type": "application/json"}
        accept = endpoint.get("accept", "application/json")
        if accept == "application/ld+json":
            headers["Content-Type"] = "application/ld+json"
        elif link:
            headers["Link"] = link
        if tenant:
            headers["NGSILD-Tenant"] = tenant
        # receiverInfo (clause 5.2.15): key-value pairs for the receiver, sent as headers.
        headers.update({pair["key"]: pair["value"] for pair in endpoint.get("receiverInfo", [])})
        if uri.startswith(MQTT_SCHEME):
            # MQTT has no headers: what HTTP sends as headers travels as "metadata" beside the
            # notification "body" (MQTT notification binding).
            notifier = {pair["key"]: pair["value"] for pair in endpoint.get("notifierInfo", [])}
            message = dumps({"metadata": headers, "body": notification}).encode("utf-8")
            item = ("mqtt", subscription_id, uri, message, notifier)
        else:
            item = ("http", subscription_id, uri, dumps(notification).encode("utf-8"), headers)
        self._enqueue(subscription_id, item)

    def _enqueue(self, subscription_id: str, item: tuple) -> None:
        self._start_worker()
        with self._lock:
            self._pending += 1
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            with self._lock:
                self._pending -= 1
            self._record(subscription_id, ok=False)
            _log.warning("notification queue full: dropped a notification of %s", subscription_id)

    def _start_worker(self) -> None:
        if self._worker is not None:
            return
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="sscity-notifier", daemon=True)
                self._worker.start()

    def _run(self) -> None:
        import httpx

        with httpx.Client(timeout=self.timeout_s) as http:
            try:
                while True:
                    self._run_due_timers()
                    try:
                        item = self._queue.get(timeout=self._until_next_timer())
                    except queue.Empty:
                        continue
                    if item is None:
                        return
                    if item[0] == "wake":  # a timer was (re)scheduled: recompute the wait
                        continue
                    kind, subscription_id, uri, body, extra = item
                    try:
                        if kind == "mqtt":
                            ok = self._publish_mqtt(uri, body, extra)
                        else:
                            response = http.post(uri, content=body, headers=extra)
                            ok = response.status_code < 400
                    except Exception as err:  # any network failure counts as a failed delivery
                        _log.info("notification to %s failed: %s", uri.split("@")[-1], err)
                        ok = False
                    self._record(subscription_id, ok=ok)
                    with self._lock:
                        self._pending -= 1
                        if self._pending == 0:
                            self._idle.notify_all()
            finally:
                self._close_mqtt()

    # -- periodic notifications -----------------------------------------------------------

    def schedule(self, key, interval_s: float, callback) -> None:
        """Call ``callback()`` every ``interval_s`` seconds from the background thread.

        Periodic subscriptions (``timeInterval``, ETSI GS CIM 009 clause 5.2.12) use this; the
        first call comes one interval from now. Scheduling an existing ``key`` again replaces
        its timer. A callback that raises is logged and keeps its timer.
        """
        with self._lock:
            self._timers[key] = [time.monotonic() + interval_s, interval_s, callback]
        self._start_worker()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(("wake",))

    def unschedule(self, key) -> None:
        """Stop the timer ``key`` (harmless if there is none)."""
        with self._lock:
            self._timers.pop(key, None)

    def scheduled(self) -> list:
        """The keys of the running timers."""
        with self._lock:
            return list(self._timers)

    def _until_next_timer(self) -> float | None:
        with self._lock:
            if not self._timers:
                return None
            return max(0.0, min(timer[0] for timer in self._timers.values()) - time.monotonic())

    def _run_due_timers(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [(key, timer[2]) for key, timer in self._timers.items() if timer[0] <= now]
            for key, _ in due:
                timer = self._timers[key]
                # The next call is one interval after this one; calls missed while the thread was
                # busy (a slow endpoint) are skipped, not sent in a burst.
                timer[0] = max(timer[0] + timer[1], now)
        for key, callback in due:
            try:
                callback()
            except Exception:  # a failing callback must not stop deliveries or other timers
                _log.exception("periodic notification %s failed", key)

    # -- MQTT ---------------------------------------------------------------------------

    def _publish_mqtt(self, uri: str, message: bytes, notifier: dict) -> bool:
        """Publish one notification message; True once the broker took it (QoS 1/2: acknowledged)."""
        target = parse_mqtt_endpoint(uri)
        qos = int(notifier.get("MQTT-QoS", 0))
        client = self._mqtt_client(target, notifier.get("MQTT-Version"))
        info = client.publish(target.topic, message, qos=qos)
        info.wait_for_publish(self.timeout_s)
        if not info.is_published():
            # A broken connection is dropped, so the next notification connects afresh.
            self._drop_mqtt(client)
            return False
        return True

    def _mqtt_client(self, target: MqttTarget, version: str | None):
        versions = [version] if version else ["mqtt5.0", "mqtt3.1.1"]
        if not version and (target.host, target.port) in self._mqtt_v311_only:
            versions = ["mqtt3.1.1"]
        for attempt, name in enumerate(versions):
            key = (target.host, target.port, target.username, target.password, name)
            client = self._mqtt.get(key)
            if client is not None and client.is_connected():
                return client
            if client is not None:
                self._drop_mqtt(client)
            try:
                client = self._connect_mqtt(target, name)
            except _UnsupportedVersion:
                # The binding's default is MQTT 5.0; a broker that only speaks 3.1.1 (amqtt,
                # older mosquitto) gets 3.1.1 unless the subscription named a version.
                if attempt + 1 < len(versions):
                    self._mqtt_v311_only.add((target.host, target.port))  # not asked again
                    continue
                raise ConnectionError(f"the MQTT broker {target.host}:{target.port} does not speak "
                                      f"{name}") from None
            self._mqtt[key] = client
            return client
        raise AssertionError("unreachable")

    def _connect_mqtt(self, target: MqttTarget, version: str):
        import paho.mqtt.client as mqtt

        protocol = mqtt.MQTTv5 if version == "mqtt5.0" else mqtt.MQTTv311
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=protocol)
        if target.username is not None:
            client.username_pw_set(target.username, target.password)
        client.connect_timeout = self.timeout_s
        connected, answer = threading.Event(), {}

        def on_connect(client, userdata, flags, reason_code, properties):
            answer["reason"] = reason_code
            connected.set()

        client.on_connect = on_connect
        client.connect(target.host, target.port, keepalive=60)
        client.loop_start()
        if not connected.wait(self.timeout_s) or answer["reason"].is_failure:
            with contextlib.suppress(Exception):
                client.disconnect()
            client.loop_stop()
            reason = answer.get("reason")
            if reason is not None and "protocol version" in str(reason).lower():
                raise _UnsupportedVersion(str(reason))
            raise ConnectionError(f"the MQTT broker {target.host}:{target.port} did not accept the "
                                  f"connection ({reason or 'no answer'})")
        return client

    def _drop_mqtt(self, client) -> None:
        for key, known in list(self._mqtt.items()):
            if known is client:
                del self._mqtt[key]
        with contextlib.suppress(Exception):
            client.disconnect()  # first, so that the network loop ends at once
        client.loop_stop()

    def _close_mqtt(self) -> None:
        for client in list(self._mqtt.values()):
            self._drop_mqtt(client)

    def _record(self, subscription_id: str, ok: bool) -> None:
        now = now_iso()
        with self._lock:
            stats = self._stats.setdefault(subscription_id, {"timesSent": 0, "timesFailed": 0})
            stats["timesSent"] += 1
            stats["lastNotification"] = now
            if ok:
                stats["lastSuccess"] = now
                stats["status"] = "ok"
            else:
                stats["timesFailed"] += 1
                stats["lastFailure"] = now
                stats["status"] = "failed"

    def wait_idle(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued HTTP delivery was attempted; False on time-out."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    # -- inboxes and statistics ---------------------------------------------------------

    def inbox(self, name: str, tenant: str = "") -> list[dict]:
        """Notifications received by the inbox ``name`` of ``tenant``, oldest first."""
        with self._lock:
            return list(self._inboxes.get((tenant or "", name), ()))

    def clear_inbox(self, name: str, tenant: str = "") -> int:
        """Empty the inbox ``name`` of ``tenant``; returns how many notifications it held."""
        with self._lock:
            box = self._inboxes.pop((tenant or "", name), None)
        return len(box) if box else 0

    def stats(self, subscription_id: str) -> dict:
        """Delivery statistics of a subscription (empty before its first notification)."""
        with self._lock:
            return dict(self._stats.get(subscription_id, {}))

    def forget(self, subscription_id: str) -> None:
        """Drop the statistics of a deleted subscription."""
        with self._lock:
            self._stats.pop(subscription_id, None)

    def close(self) -> None:
        """Stop the timers and the background sender after the deliveries already queued."""
        with self._lock:
            self._timers.clear()
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=self.timeout_s + 1)
            self._worker = None


class _UnsupportedVersion(ConnectionError):
    """The MQTT broker refused the protocol version asked for (CONNACK)."""
