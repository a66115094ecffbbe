"""The message path over MQTT: stations publish frames, the gateway subscribes and stores them.

A station publishes its binary frame (:mod:`sscity.sensing.payload`) on the topic
``city/tsukuba/sensors/<station_id>``; a broker passes it on to every subscriber; the
gateway (:class:`MqttGateway`) subscribes to ``city/tsukuba/sensors/+`` and hands each
message to :class:`~sscity.sensing.gateway.Gateway`, which checks, decodes and stores it on
the city platform as NGSI-LD entities, or dead-letters it.

Which broker:

1. ``url="mqtt://host:1883"`` given to :func:`publish` or :class:`MqttGateway` -- that broker;
2. the environment variable ``SSCITY_MQTT_URL`` (e.g. ``mqtt://class-server:1883``) -- how an
   instructor moves a whole class to a real broker (Debian's ``mosquitto``) without editing
   notebooks, as ``SSCITY_BROKER_URL`` does for the platform;
3. otherwise the *embedded* broker: `amqtt <https://github.com/Yakifo/amqtt>`_ (an MQTT 3.1.1
   broker in pure Python), started on first use in this process, on 127.0.0.1 and a free
   port, and stopped when Python exits. No set-up, no network beyond this machine.

URLs are ``mqtt://[user[:password]@]host[:port]`` (``tcp://`` is read the same; the port
defaults to 1883, the IANA port of MQTT). TLS (``mqtts://``) and WebSockets are not
supported here.

The clients are `paho-mqtt <https://eclipse.dev/paho/>`_ 2.x, the MQTT client that students
meet in the wild, speaking MQTT 3.1.1 (OASIS Standard, 2014). QoS 1 ("at least once"): the
broker keeps a message until the receiver acknowledges it, so nothing is lost in transit but
a message may arrive twice -- the gateway stores a repeated reading once (``duplicate``).

Delivery guarantee, precisely: the gateway acknowledges a message when it is queued in the
gateway process, before it is stored (acknowledging only after storing would let a broker
that limits unacknowledged messages per client, as mosquitto does with 20 by default, throttle
the gateway to a batch of 20). :meth:`MqttGateway.stop` stores or dead-letters everything
queued before it returns; a message queued when the process dies is lost.

A broker may also drop messages for a subscriber that falls behind: mosquitto keeps at most
``max_queued_messages`` (default 1000) QoS 1 messages per client beyond those in flight
(``max_inflight_messages``, default 20) and drops the rest ("Outgoing messages are being
dropped" in its log; ``man mosquitto.conf``). A class server that takes bursts (a whole
class replaying a day of frames) wants a larger ``max_queued_messages`` in
``mosquitto.conf``, e.g. 100000 (0 means no limit, which the manual advises against);
:meth:`MqttGateway.wait_until` says how many arrived.

Example
-------
>>> from sscity.platform import Client
>>> from sscity.sensing.gateway import Gateway
>>> from sscity.sensing.payload import pack_reading
>>> frame = pack_reading({"station_id": 7, "timestamp": 1_780_000_000, "pm25_ugm3": 12.3})
>>> gateway = Gateway(Client(), tenant="mqtt-example", stations={7: (140.1035, 36.1110)})
>>> with EmbeddedBroker() as url, MqttGateway(gateway, url=url) as receiver:
...     publish([(7, frame), (7, frame[:-1])], url=url)
...     receiver.wait_until(2, timeout_s=30)
...     (receiver.stats["stored"], receiver.stats["truncated"])
2
(1, 1)
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import numbers
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .gateway import DEFAULT_TOPIC_PREFIX, Gateway

__all__ = ["DEFAULT_TOPIC_PREFIX", "EmbeddedBroker", "LocalMosquitto", "MqttAddress", "MqttConnectionError",
           "MqttGateway", "find_mosquitto", "mqtt_url", "parse_mqtt_url", "publish"]

MQTT_DEFAULT_PORT = 1883  # IANA service name "mqtt"
_ENV = "SSCITY_MQTT_URL"


class MqttConnectionError(ConnectionError):
    """The MQTT broker could not be reached, or refused the connection (message in EN / JA)."""


# --------------------------------------------------------------------------- addresses


@dataclass(frozen=True)
class MqttAddress:
    """Where a broker is: ``host``, ``port`` and optional ``username`` / ``password``."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None


def parse_mqtt_url(url: str, *, source: str = "url") -> MqttAddress:
    """Read ``mqtt://[user[:password]@]host[:port]`` into an :class:`MqttAddress`.

    Parameters
    ----------
    url : str
        The broker's URL; ``tcp://`` is read as ``mqtt://``; the port defaults to 1883.
    source : str, default "url"
        Where the URL came from (``"SSCITY_MQTT_URL"``), named in the error message.

    Raises
    ------
    ValueError
        For anything else, saying what to write (English / Japanese).
    """
    example = "mqtt://localhost:1883"
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"{source}={url!r}: give the broker as a URL such as {example}. "
                         f"/ {source} には {example} のような URL を指定してください。")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("mqtt", "tcp"):
        hint = (" TLS and WebSockets are not supported here." if scheme in ("mqtts", "ssl", "ws", "wss")
                else "")
        raise ValueError(f"{source}={url!r}: write the broker as mqtt://host:port (e.g. {example}).{hint} "
                         f"/ {source}={url!r}: mqtt://ホスト:ポート（例 {example}）の形で書いてください。")
    try:
        port = parts.port or MQTT_DEFAULT_PORT
    except ValueError:
        port = None
    if not parts.hostname or port is None or not 0 < port < 65536 or parts.path not in ("", "/"):
        raise ValueError(f"{source}={url!r}: a host and a port 1...65535 are needed, and nothing after "
                         f"them (e.g. {example}). / {source}={url!r}: ホストとポート（1...65535）だけを"
                         f"書いてください（例 {example}）。")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return MqttAddress(parts.hostname, port, username, password)


def _shown(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)


def _resolve(url: str | None) -> tuple[str, str]:
    """``(url, where it came from)``: the argument, ``SSCITY_MQTT_URL``, or the embedded broker."""
    if url is not None:
        return url, "url"
    if os.environ.get(_ENV):
        return os.environ[_ENV], _ENV
    return mqtt_url(), "the embedded broker"


# --------------------------------------------------------------------------- embedded broker


class EmbeddedBroker:
    """An MQTT 3.1.1 broker (amqtt) in a background thread of this process.

    Parameters
    ----------
    host : str, default "127.0.0.1"
        Interface to listen on; the loopback interface keeps it off the network.
    port : int, default 0
        0 picks a free port (see ``url`` once started).
    separate_process : bool, default False
        Run the broker in a child Python process instead (``python -m sscity.sensing.mqtt``),
        which ends when this one does. A pure-Python broker and the gateway (with the
        embedded platform) then no longer share one interpreter lock, so on a machine with
        two or more free cores the path carries more messages per second (``make bench``:
        ``gateway_mqtt_embedded_child_process_msgs_per_s``).

    Attributes
    ----------
    url : str or None
        ``mqtt://127.0.0.1:<port>`` while running, else None.

    Examples
    --------
    >>> with EmbeddedBroker() as url:
    ...     url.startswith("mqtt://127.0.0.1:")
    True
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, separate_process: bool = False):
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be an interface address such as '127.0.0.1'; got {host!r}. "
                             f"/ host には '127.0.0.1' のようなアドレスを指定してください。")
        if type(port) is not int or not 0 <= port < 65536:
            raise ValueError(f"port must be a whole number 0...65535 (0: a free port); got {port!r}. "
                             f"/ port は 0...65535 の整数にしてください（0 は空きポート）。")
        self.host, self.port = host, port
        self.separate_process = bool(separate_process)
        self.url: str | None = None
        self._process = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def running(self) -> bool:
        """True while the broker serves."""
        if self._process is not None:
            return self._process.poll() is None and self.url is not None
        return self._thread is not None and self._thread.is_alive() and self.url is not None

    def start(self) -> str:
        """Start the broker (once) and return its URL."""
        if self.running:
            return self.url
        self._ready.clear()
        self._error = None
        if self.separate_process:
            self._start_process()
        else:
            self._thread = threading.Thread(target=self._run, name="sscity-mqtt-broker", daemon=True)
            self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            reason = self._error or "it did not start within 30 s"
            raise MqttConnectionError(
                f"The embedded MQTT broker could not start on {self.host}:{self.port} ({reason}). "
                f"Set {_ENV} to a running broker (e.g. mqtt://localhost:1883) instead. "
                f"/ 組み込み MQTT ブローカーを {self.host}:{self.port} で起動できませんでした（{reason}）。"
                f"代わりに {_ENV} に動いているブローカー（例 mqtt://localhost:1883）を指定してください。")
        return self.url

    def stop(self) -> None:
        """Stop the broker (its clients are disconnected); harmless if not running."""
        if self._process is not None:
            process, self._process = self._process, None
            with contextlib.suppress(OSError):
                process.stdin.close()  # the child's cue to shut down
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stdout.close()
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(self._stopping.set)
            thread.join(10)
        self.url = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedBroker({self.url or 'stopped'})"

    def _start_process(self) -> None:
        """Start ``python -m sscity.sensing.mqtt HOST PORT``; its first line is the URL."""
        command = [sys.executable, "-m", "sscity.sensing.mqtt", self.host, str(self.port)]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         text=True)

        def read_url():
            line = self._process.stdout.readline().strip()
            if line.startswith("mqtt://"):
                self.url = line
            else:
                self._error = f"the broker process said {line!r} and exited with {self._process.poll()}"
            self._ready.set()

        threading.Thread(target=read_url, name="sscity-mqtt-broker-start", daemon=True).start()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as err:  # reported to start() (or lost at exit)
            self._error = self._error or err
            self._ready.set()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _serve(self) -> None:
        from amqtt.broker import Broker

        self._stopping = asyncio.Event()
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            # Only anonymous access: amqtt's default event and packet loggers and $SYS topics
            # cost time on every message and tell a learner nothing here.
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        broker = Broker(config)
        await broker.start()
        try:
            port = broker._servers["default"].instance.sockets[0].getsockname()[1]
            where = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
            self.url = f"mqtt://{where}:{port}"
            self._ready.set()
            await self._stopping.wait()
        finally:
            with contextlib.suppress(Exception):
                await broker.shutdown()


def find_mosquitto() -> str | None:
    """Path of Debian's ``mosquitto`` (in ``/usr/sbin``, often not on a user's PATH), or None."""
    found = shutil.which("mosquitto")
    return found or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


class LocalMosquitto:
    """A Mosquitto broker started on 127.0.0.1, a free port and a temporary configuration.

    For trying the course's code on a real broker before a class server exists, and for
    the tests and benchmarks that compare the embedded broker with it.

    Parameters
    ----------
    binary : str, optional
        The ``mosquitto`` program; :func:`find_mosquitto` by default.
    max_queued_messages : int, optional
        Written to the configuration (Mosquitto's default, 1000 per client, drops the rest
        of a burst a slow subscriber cannot take yet).
    log_file : path-like, optional
        Where Mosquitto logs; nowhere by default.

    Examples
    --------
    >>> with LocalMosquitto() as url:                    # doctest: +SKIP
    ...     publish([(7, frame)], url=url)
    """

    def __init__(self, binary: str | None = None, *, max_queued_messages: int | None = None,
                 log_file=None):
        self.binary = binary or find_mosquitto()
        if self.binary is None:
            raise FileNotFoundError("mosquitto is not installed (Debian: apt-get install mosquitto). "
                                    "/ mosquitto がインストールされていません"
                                    "（Debian: apt-get install mosquitto）。")
        self.max_queued_messages = max_queued_messages
        self.log_file = log_file
        self.url: str | None = None
        self._process = None
        self._folder = None

    def __enter__(self) -> str:
        import tempfile

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self._folder = tempfile.TemporaryDirectory(prefix="sscity-mosquitto-")
        config = os.path.join(self._folder.name, "mosquitto.conf")
        lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false",
                 f"log_dest file {self.log_file}" if self.log_file else "log_dest none"]
        if self.max_queued_messages is not None:
            lines.append(f"max_queued_messages {int(self.max_queued_messages)}")
        with open(config, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        self._process = subprocess.Popen([self.binary, "-c", config], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    said = self._stop()
                    raise MqttConnectionError(f"mosquitto did not start: {said} "
                                              f"/ mosquitto が起動しませんでした: {said}") from None
                time.sleep(0.05)
        self.url = f"mqtt://127.0.0.1:{port}"
        return self.url

    def _stop(self) -> str:
        process, self._process = self._process, None
        said = ""
        if process is not None:
            process.terminate()
            try:
                _, err = process.communicate(timeout=10)
                said = err.decode(errors="replace").strip()
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
        self.url = None
        return said

    def __exit__(self, *exc) -> None:
        self._stop()


_shared: EmbeddedBroker | None = None
_shared_lock = threading.Lock()


def mqtt_url() -> str:
    """The MQTT broker to use: ``SSCITY_MQTT_URL`` if set, else the embedded broker's URL.

    The embedded broker is started on first use (127.0.0.1, a free port, a background thread)
    and stopped when Python exits; later calls return the same URL.

    Raises
    ------
    ValueError
        ``SSCITY_MQTT_URL`` is not an ``mqtt://host:port`` URL.
    """
    global _shared
    configured = os.environ.get(_ENV)
    if configured:
        parse_mqtt_url(configured, source=_ENV)
        return configured
    with _shared_lock:
        if _shared is None or not _shared.running:
            first = _shared is None
            _shared = EmbeddedBroker()
            _shared.start()
            if first:
                atexit.register(lambda: _shared.stop())
        return _shared.url


# --------------------------------------------------------------------------- clients


def _client(url: str, source: str, client_id: str, *, timeout_s: float, on_message=None,
            on_connect=None, on_subscribe=None):
    """A connected paho client with its network loop running, or MqttConnectionError."""
    import paho.mqtt.client as mqtt

    address = parse_mqtt_url(url, source=source)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    client.max_inflight_messages_set(1000)  # QoS 1 in flight at once (paho's default is 20)
    connected, answer = threading.Event(), {}

    def connect_callback(client, userdata, flags, reason_code, properties):
        answer["reason"] = reason_code
        if on_connect is not None and not reason_code.is_failure:
            on_connect(client)
        connected.set()

    client.on_connect = connect_callback
    if on_message is not None:
        client.on_message = on_message
    if on_subscribe is not None:
        client.on_subscribe = on_subscribe
    where = f"{address.host}:{address.port}"
    fix = (f"Is the broker running? Check {source} (e.g. mqtt://localhost:1883), or unset {_ENV} to use "
           f"the embedded broker." if source != "the embedded broker"
           else "The embedded broker stopped; restart Python or set " + _ENV + ".")
    fix_ja = (f"ブローカーは動いていますか。{source}（例 mqtt://localhost:1883）を確かめるか、{_ENV} を"
              f"外して組み込みブローカーを使ってください。")
    try:
        client.connect(address.host, address.port, keepalive=60)
    except (OSError, ValueError) as err:
        raise MqttConnectionError(
            f"Cannot reach the MQTT broker at {_shown(url)} ({where}: {err}). {fix} "
            f"/ MQTT ブローカー {_shown(url)} に接続できません（{err}）。{fix_ja}") from None
    client.loop_start()
    if not connected.wait(timeout_s) or answer["reason"].is_failure:
        client.loop_stop()
        with contextlib.suppress(Exception):
            client.disconnect()
        said = answer.get("reason")
        why = f"it refused the connection: {said}" if said is not None else f"no MQTT answer in {timeout_s} s"
        raise MqttConnectionError(
            f"The MQTT broker at {_shown(url)} did not accept us ({why}). {fix} "
            f"/ MQTT ブローカー {_shown(url)} が接続を受け付けませんでした（{why}）。{fix_ja}")
    return client


def _check_qos(qos) -> int:
    if type(qos) is not int or qos not in (0, 1, 2):
        raise ValueError(f"qos must be 0, 1 or 2 (MQTT quality of service); got {qos!r}. "
                         f"/ qos は 0, 1, 2 のいずれか（MQTT のサービス品質）にしてください。")
    return qos


def _check_prefix(topic_prefix) -> str:
    if not isinstance(topic_prefix, str) or not topic_prefix or set("+#") & set(topic_prefix):
        raise ValueError(f"topic_prefix must be a plain topic such as {DEFAULT_TOPIC_PREFIX!r} (no MQTT "
                         f"wildcards); got {topic_prefix!r}. / topic_prefix は {DEFAULT_TOPIC_PREFIX!r} の"
                         f"ようなワイルドカードなしのトピックにしてください。")
    return topic_prefix


def publish(frames: Iterable, *, url: str | None = None, topic_prefix: str = DEFAULT_TOPIC_PREFIX,
            qos: int = 1, timeout_s: float = 60.0, progress: bool | None = None) -> int:
    """Publish station frames, as the stations' radios would: the device side of the path.

    Parameters
    ----------
    frames : iterable of (int, bytes)
        ``(station_id, frame_bytes)`` pairs; each frame goes to ``<topic_prefix><station_id>``.
    url : str, optional
        The broker; default :func:`mqtt_url` (``SSCITY_MQTT_URL`` or the embedded broker).
    topic_prefix : str, default ``"city/tsukuba/sensors/"``
    qos : int, default 1
        MQTT quality of service; with 1 the call returns when the broker has acknowledged
        every frame.
    timeout_s : float, default 60
        How long to wait for the broker to take the frames.
    progress : bool, optional
        Show a progress bar; default: when there are more than 2,000 frames.

    Returns
    -------
    int
        The number of frames published.

    Raises
    ------
    ValueError
        A pair is not ``(station id 0...65535, bytes)`` (the frames before it are published).
    MqttConnectionError
        The broker cannot be reached (the message names the URL and what to set).
    TimeoutError
        The broker did not take every frame in ``timeout_s``.
    """
    _check_qos(qos)
    _check_prefix(topic_prefix)
    url, source = _resolve(url)
    total = len(frames) if hasattr(frames, "__len__") else None
    show = progress if progress is not None else (total or 0) > 2000
    client = _client(url, source, f"sscity-station-{uuid.uuid4().hex[:12]}", timeout_s=min(timeout_s, 10))
    sent = []
    try:
        from tqdm.auto import tqdm

        with tqdm(total=total, desc="publish", unit="frame", disable=not show) as bar:
            for position, pair in enumerate(frames):
                station, frame = _check_pair(pair, position)
                info = client.publish(f"{topic_prefix}{station}", frame, qos=qos)
                if info.rc != 0:
                    raise MqttConnectionError(
                        f"Lost the MQTT broker at {_shown(url)} after {position} frames "
                        f"(paho error {info.rc}). "
                        f"/ {position} フレーム送信後に MQTT ブローカー {_shown(url)} との接続が切れました。")
                sent.append(info)
                bar.update()
        deadline = time.monotonic() + timeout_s
        for count, info in enumerate(sent):
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            if not info.is_published():
                raise TimeoutError(
                    f"The MQTT broker at {_shown(url)} took {count} of {len(sent)} frames in "
                    f"{timeout_s} s. / MQTT ブローカー {_shown(url)} が {timeout_s} 秒で受け取ったのは "
                    f"{len(sent)} フレーム中 {count} フレームです。")
    finally:
        client.disconnect()
        client.loop_stop()
    return len(sent)


def _check_pair(pair, position: int) -> tuple[int, bytes]:
    try:
        station, frame = pair
    except (TypeError, ValueError):
        station, frame = None, None
    whole = isinstance(station, numbers.Integral) and not isinstance(station, bool)
    if not whole or not 0 <= station <= 65535 or not isinstance(frame, (bytes, bytearray, memoryview)):
        raise ValueError(
            f"Frame {position}: give (station_id, frame_bytes) with a station id 0...65535; "
            f"got {pair!r:.80}. "
            f"/ {position} 番目: (局番号 0...65535, フレームの bytes) の組にしてください。")
    return int(station), bytes(frame)


# --------------------------------------------------------------------------- gateway side


class MqttGateway:
    """Feed the messages of an MQTT broker to a :class:`~sscity.sensing.gateway.Gateway`.

    Subscribes (QoS 1) to ``<topic_prefix>+`` and hands the messages to
    :meth:`Gateway.handle_many <sscity.sensing.gateway.Gateway.handle_many>` from one worker
    thread, in batches of up to ``batch_size`` messages or ``batch_wait_s`` seconds,
    whichever comes first. Use it as a context manager, or call :meth:`start` and
    :meth:`stop`.

    Parameters
    ----------
    gateway : Gateway
        Checks, decodes and stores; its ``stats`` and ``dead_letters`` say what happened.
    url : str, optional
        The broker; default :func:`mqtt_url` (``SSCITY_MQTT_URL`` or the embedded broker).
    topic_prefix : str, optional
        Default: the gateway's. Must be the gateway's (it refuses other topics).
    batch_size : int, default 500
    batch_wait_s : float, default 0.05
        Longest wait for a batch to fill, so that a lone message is stored within about
        ``batch_wait_s`` seconds.
    connect_timeout_s : float, default 10

    Attributes
    ----------
    arrived : int
        Messages received from the broker so far.
    handled : int
        Messages handed to the gateway and done with (stored, duplicate or dead-lettered).

    Notes
    -----
    Everything that arrives is accounted for:
    ``stats["stored"] + stats["dead_lettered"] + stats["duplicate"] == stats["received"]``.
    The network loop reconnects by itself after the broker goes away, and subscribes again.
    """

    def __init__(self, gateway: Gateway, *, url: str | None = None, topic_prefix: str | None = None,
                 batch_size: int = 500, batch_wait_s: float = 0.05, connect_timeout_s: float = 10.0):
        if not isinstance(gateway, Gateway):
            raise TypeError("gateway must be a sscity.sensing.gateway.Gateway "
                            "(Gateway(Client(), stations=...)). / gateway には "
                            "sscity.sensing.gateway.Gateway を渡してください。")
        prefix = _check_prefix(gateway.topic_prefix if topic_prefix is None else topic_prefix)
        if prefix != gateway.topic_prefix:
            raise ValueError(f"topic_prefix {prefix!r} differs from the gateway's "
                             f"{gateway.topic_prefix!r}, which would refuse every message: give the prefix "
                             f"to Gateway(...). / topic_prefix {prefix!r} が Gateway の "
                             f"{gateway.topic_prefix!r} と違います。Gateway(...) 側に指定してください。")
        if type(batch_size) is not int or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number >= 1; got {batch_size!r}. "
                             f"/ batch_size は 1 以上の整数にしてください。")
        for name, value in (("batch_wait_s", batch_wait_s), ("connect_timeout_s", connect_timeout_s)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds; got {value!r}. "
                                 f"/ {name} は正の秒数にしてください。")
        self.gateway = gateway
        self.url = url
        self.topic_prefix = prefix
        self.batch_size, self.batch_wait_s = batch_size, float(batch_wait_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.arrived = 0
        self.handled = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._done = threading.Condition()
        self._client = None
        self._worker: threading.Thread | None = None
        self._subscribed = threading.Event()
        self._granted = None

    @property
    def stats(self):
        """The gateway's counters (``received``, ``stored``, ``duplicate``, ``dead_lettered``, reasons)."""
        return self.gateway.stats

    @property
    def dead_letters(self):
        """The gateway's refused messages, each ``(topic, payload, reason, message)``."""
        return self.gateway.dead_letters

    def __repr__(self) -> str:
        state = "running" if self._worker is not None else "stopped"
        where = _shown(self.url or "?")
        return f"MqttGateway({where}, {self.topic_prefix}+, {state}, handled={self.handled})"

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> MqttGateway:
        """Connect, subscribe and start handling; returns when the subscription is in place."""
        if self._worker is not None:
            return self
        url, source = _resolve(self.url)
        self.url = url
        self._subscribed.clear()
        topic = f"{self.topic_prefix}+"

        def subscribe(client):  # on every (re)connection: a clean session forgets subscriptions
            client.subscribe(topic, qos=1)

        def on_subscribe(client, userdata, mid, reason_codes, properties):
            self._granted = reason_codes
            self._subscribed.set()

        def on_message(client, userdata, message):
            self.arrived += 1
            self._queue.put((message.topic, message.payload, time.time()))

        client = _client(url, source, f"sscity-gateway-{uuid.uuid4().hex[:12]}",
                         timeout_s=self.connect_timeout_s, on_message=on_message, on_connect=subscribe,
                         on_subscribe=on_subscribe)
        granted = self._subscribed.wait(self.connect_timeout_s)
        if not granted or any(code.is_failure for code in self._granted or []):
            client.disconnect()
            client.loop_stop()
            raise MqttConnectionError(
                f"The MQTT broker at {_shown(url)} did not grant the subscription to {topic} "
                f"({self._granted or 'no answer'}). / MQTT ブローカー {_shown(url)} が {topic} の購読を"
                f"認めませんでした。")
        self._client = client
        self._worker = threading.Thread(target=self._drain, name="sscity-mqtt-gateway", daemon=True)
        self._worker.start()
        return self

    def stop(self) -> None:
        """Disconnect, then store or dead-letter everything already received; harmless twice."""
        if self._worker is None:
            return
        self._client.disconnect()
        self._client.loop_stop()
        self._queue.put(None)  # after the last message: the worker ends when it reaches it
        self._worker.join()
        self._client, self._worker = None, None

    def __enter__(self) -> MqttGateway:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_until(self, n_messages: int, timeout_s: float = 30.0, *, progress: bool | None = None) -> None:
        """Return when ``n_messages`` messages in all have been handled.

        Parameters
        ----------
        n_messages : int
            Counted since :meth:`start` (``handled``), whatever became of them.
        timeout_s : float, default 30
        progress : bool, optional
            Show a progress bar; default: when waiting for more than 2,000 messages.

        Raises
        ------
        TimeoutError
            Fewer were handled in ``timeout_s`` seconds; the message says how many arrived.
        """
        if type(n_messages) is not int or n_messages < 0:
            raise ValueError(f"n_messages must be a whole number >= 0; got {n_messages!r}. "
                             f"/ n_messages は 0 以上の整数にしてください。")
        from tqdm.auto import tqdm

        show = progress if progress is not None else n_messages > 2000
        deadline = time.monotonic() + timeout_s
        with self._done, tqdm(total=n_messages, desc="gateway", unit="msg", disable=not show) as bar:
            while self.handled < n_messages and time.monotonic() < deadline:
                self._done.wait(min(0.2, max(0.0, deadline - time.monotonic())))
                bar.update(min(self.handled, n_messages) - bar.n)
            if self.handled < n_messages:
                raise TimeoutError(
                    f"Only {self.arrived} of {n_messages} messages arrived from {_shown(self.url or '?')} "
                    f"in {timeout_s} s ({self.handled} handled). Did the stations publish to "
                    f"{self.topic_prefix}<id> on the same broker? (A broker may also drop messages for a "
                    f"subscriber that falls behind: mosquitto's max_queued_messages.) "
                    f"/ {timeout_s} 秒で届いたのは "
                    f"{n_messages} 件中 {self.arrived} 件です（処理済み {self.handled} 件）。"
                    f"局は同じブローカーの {self.topic_prefix}<局番号> に送信しましたか（処理が追いつかない"
                    f"購読者宛てのメッセージをブローカーが捨てることもあります: mosquitto の "
                    f"max_queued_messages）。")

    # -- the worker --------------------------------------------------------------------

    def _drain(self) -> None:
        """Take batches off the queue and hand them to the gateway, until the stop mark."""
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, last = [first], False
            deadline = time.monotonic() + self.batch_wait_s
            while len(batch) < self.batch_size:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        item = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if item is None:
                    last = True
                    break
                batch.append(item)
            self._handle(batch)
            if last:
                return

    def _handle(self, batch: list) -> None:
        try:
            try:
                self.gateway.handle_many(batch)  # never raises on what a message holds
            except Exception:  # a bug of batching: fall back on handle(), which never raises
                for topic, payload, arrived_at in batch:
                    self.gateway.handle(topic, payload, received_at=arrived_at)
        finally:  # whatever happened, wait_until must not hang
            with self._done:
                self.handled += len(batch)
                self._done.notify_all()

def _serve_until_stdin_closes(host: str, port: int) -> None:
    """The child of ``EmbeddedBroker(separate_process=True)``: print the URL, serve, stop at EOF."""
    broker = EmbeddedBroker(host, port)
    print(broker.start(), flush=True)
    try:
        sys.stdin.read()  # returns when the parent closes the pipe or dies
    finally:
        broker.stop()


if __name__ == "__main__":
    _serve_until_stdin_closes(sys.argv[1], int(sys.argv[2]))
