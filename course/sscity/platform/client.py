"""A small NGSI-LD client for notebooks: the embedded broker or any broker by URL.

Which broker a :class:`Client` talks to:

1. ``Client(url="http://host:1026")`` -- that broker (``sscity platform serve``,
   Orion-LD, Scorpio, Stellio);
2. ``Client(url="http+unix:///absolute/path/to/broker.sock")`` -- the broker served on that
   Unix domain socket (``sscity platform serve --uds PATH``): no network needed, so a
   sandboxed Jupyter kernel can use a broker run by the grader. The path is everything
   after ``http+unix://`` and must be absolute (hence three slashes); it needs no
   percent-encoding (``http+unix://%2Ftmp%2Fbroker.sock`` is understood too);
3. ``Client(db="city.db")`` -- an embedded broker on that SQLite file, in this process;
4. ``Client()`` with the environment variable ``SSCITY_BROKER_URL`` set -- that URL, of
   either form above (how an instructor moves a whole class to Orion-LD, or a grader its
   kernels to its own broker, without editing notebooks);
5. ``Client()`` otherwise -- the process-wide embedded in-memory broker.

A Client of a broker by URL can be pickled (to a worker process, say): it unpickles into
an equivalent Client (same URL, tenant header, context, time limit and temporal URL, whatever
the environment of the other process). A Client of the embedded broker cannot, since that
broker lives in one process.

The embedded broker is called in process, with no port: an httpx transport runs the ASGI
application on an event loop in a background thread (an anyio blocking portal), so the
client also works inside Jupyter, whose own event loop is already running.

Only standard NGSI-LD requests and headers are used, so the same notebook code runs
against Orion-LD. The one exception is :meth:`Client.notifications`, which reads the
in-process inboxes (``sscity:inbox/<name>`` endpoints) that only the course broker has.

Names are compacted and expanded with the course ``@context`` (Smart Data Models terms:
``no2``, ``peopleCount``, ``ParkingSpot``, ...), sent by URL in a ``Link`` header. The
embedded broker knows that URL offline; for another broker set ``SSCITY_CONTEXT_URL`` to
where the course context is served, and ``SSCITY_TEMPORAL_URL`` if history is served apart
(Orion-LD's Mintaka); see ``ORION-LD.md``.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as _dt
import json
import math
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

import httpx

from .context import COURSE_CONTEXT_URL, context_link_header

__all__ = ["BatchResult", "BrokerError", "Client", "EntityList", "UpdateResult", "embedded_broker",
           "to_dataframe"]

_EMBEDDED_BASE = "http://sscity.embedded"
_UNIX_SCHEME = "http+unix://"
_UNIX_EXAMPLE = "http+unix:///absolute/path/to/broker.sock"
_NGSI = "/ngsi-ld/v1"
_ATTRIBUTE_TYPES = ("Property", "Relationship", "GeoProperty", "LanguageProperty", "JsonProperty",
                    "VocabProperty", "ListProperty")

_HINTS = {
    "ResourceNotFound": "Check the id (e.g. urn:ngsi-ld:ParkingSpot:001), the attribute name and the tenant; "
                        "see what exists with client.query(type=...).",
    "AlreadyExists": "That id is taken: choose another id, change the entity with update_attrs() or "
                     "append_attrs(), or overwrite it with batch_upsert().",
    "BadRequestData": "Correct the data described above and send it again.",
    "InvalidRequest": "The broker could not read the request; check that the body is valid JSON and the "
                      "Content-Type is application/json.",
    "LdContextNotAvailable": "Use the course @context (the default of Client) or one the broker can fetch.",
    "NonexistentTenant": "Create an entity in that tenant first (a create makes the tenant), or check the "
                         "tenant name.",
    "TooManyResults": "Ask for at most 1000 entities per page, or use query_all(), which pages for you.",
    "TooComplexQuery": "Simplify q, or split the query into several smaller ones.",
    "OperationNotSupported": "This broker does not offer that feature (the message above names it); "
                             "course/sscity/platform/README.md lists what it offers.",
    "NoMultiTenantSupport": "This broker has no tenants: create the Client without tenant=..., or start "
                            "Orion-LD with -multiservice.",
    "InternalError": "The broker failed. Tell your instructor what you sent; the request was not applied.",
}


_CONTENT_RANGE = re.compile(r"date-time (.+)-(\d{4}-\d{2}-\d{2}T[^/]*)/(\S+)\Z")


def _next_temporal_window(params: dict, content_range: str) -> dict:
    """The time window of the page after a 206 whose ``Content-Range`` is ``content_range``."""
    match = _CONTENT_RANGE.match(content_range.strip())
    if match is None:
        raise BrokerError(206, None, "Partial Content", f"the broker sent part of the history with an "
                          f"unreadable Content-Range {content_range[:80]!r}", "GET temporal",
                          "Ask for a shorter window (time_at / end_time_at) or fewer attributes.")
    end = match.group(2)
    timerel, time_at, end_time_at = params.get("timerel"), params.get("timeAt"), params.get("endTimeAt")
    if params.get("lastN") is not None:  # backwards: what is older than the range's end
        if timerel == "between":
            return {"timerel": "between", "timeAt": time_at, "endTimeAt": end}
        return {"timerel": "before", "timeAt": end, "endTimeAt": None}
    # Forwards: 'after' includes its timeAt, and times are whole milliseconds: start 1 ms later.
    moment = _dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
    if moment.tzinfo is None:  # an NGSI-LD DateTime without an offset is UTC
        moment = moment.replace(tzinfo=_dt.UTC)
    moment += _dt.timedelta(milliseconds=1)
    following = moment.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if timerel == "between":
        return {"timerel": "between", "timeAt": following, "endTimeAt": end_time_at}
    if timerel == "before":
        return {"timerel": "between", "timeAt": following, "endTimeAt": time_at}
    return {"timerel": "after", "timeAt": following, "endTimeAt": None}


def _join_temporal(mine, more, older_first: bool):
    """One attribute's temporal value with another page's instances (lists, or temporalValues)."""
    if mine is None:
        return more
    if isinstance(mine, list) and isinstance(more, list):
        return mine + more if older_first else more + mine
    if isinstance(mine, dict) and isinstance(more, dict):
        joined = dict(mine)
        for key in ("values", "objects", "languageMaps"):
            if isinstance(more.get(key), list):
                earlier, later = mine.get(key, []), more[key]
                joined[key] = earlier + later if older_first else later + earlier
        return joined
    return more


class BrokerError(Exception):
    """A request the broker refused or failed, with its NGSI-LD ProblemDetails.

    Attributes
    ----------
    status : int or None
        HTTP status (None if the broker could not be reached).
    type : str or None
        ProblemDetails type, e.g. ``https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound``.
    kind : str or None
        The last part of ``type``, e.g. ``ResourceNotFound``.
    title, detail : str or None
        The broker's explanation.
    """

    def __init__(self, status: int | None, type_uri: str | None, title: str | None, detail: str | None,
                 request: str = "", hint: str | None = None):
        self.status = status
        self.type = type_uri
        self.kind = type_uri.rstrip("/").rsplit("/", 1)[-1] if type_uri else None
        self.title = title
        self.detail = detail
        self.request = request
        self.hint = hint or _HINTS.get(self.kind or "", "Read the detail above, fix the request and retry.")
        what = f"{status} {self.kind or title or ''}".strip() if status else "no answer"
        super().__init__(f"{request} failed ({what}): {detail or title or 'no detail given'}\n"
                         f"What to do: {self.hint}")


@dataclass
class BatchResult:
    """Outcome of a batch operation: ids that succeeded and one error per failed entity."""

    success: list[str] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no entity failed."""
        return not self.errors

    def raise_for_errors(self) -> None:
        """Raise BrokerError describing the first failure, if any entity failed."""
        if self.errors:
            first = self.errors[0]
            error = first.get("error", {})
            raise BrokerError(error.get("status"), error.get("type"), error.get("title"),
                              f"{len(self.errors)} entities failed; the first, {first.get('entityId')}: "
                              f"{error.get('detail')}", "batch operation")


@dataclass
class UpdateResult:
    """Outcome of an attribute update: names updated, and ``{attributeName, reason}`` of the others."""

    updated: list[str] = field(default_factory=list)
    not_updated: list[dict] = field(default_factory=list)


class EntityList(list):
    """A list of entities with the total number of matches (``count``) when it was asked for."""

    count: int | None = None


# -- embedded broker and in-process transport ------------------------------------------------

_embedded: dict[str, object] = {}
_embedded_lock = threading.Lock()
_portal_stack: contextlib.ExitStack | None = None
_portal = None


def embedded_broker(db: str | Path | None = None):
    """The in-process :class:`~sscity.platform.broker.Broker` for ``db`` (one per file, per process).

    Parameters
    ----------
    db : str or Path, optional
        SQLite file; None gives the process-wide in-memory broker.
    """
    from .broker import Broker

    key = ":memory:" if db is None or str(db) == ":memory:" else str(Path(db).resolve())
    with _embedded_lock:
        broker = _embedded.get(key)
        if broker is None:
            broker = _embedded[key] = Broker(key)
        return broker


def _blocking_portal():
    """A process-wide event loop in a background thread that runs the ASGI app for clients."""
    global _portal_stack, _portal
    with _embedded_lock:
        if _portal is None:
            from anyio.from_thread import start_blocking_portal

            stack = contextlib.ExitStack()
            _portal = stack.enter_context(start_blocking_portal())
            _portal_stack = stack
            atexit.register(_close_portal)
        return _portal


def _close_portal() -> None:
    global _portal_stack, _portal
    if _portal_stack is not None:
        with contextlib.suppress(Exception):
            _portal_stack.close()
    _portal_stack = _portal = None


async def _call_asgi(app, scope: dict, body: bytes):
    received = False
    status = 500
    headers: list = []
    chunks: list[bytes] = []

    async def receive():
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message):
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = message.get("headers", [])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, headers, b"".join(chunks)


class InProcessTransport(httpx.BaseTransport):
    """An httpx transport that calls an ASGI application in this process, without a socket.

    Parameters
    ----------
    app : ASGI application
        Usually ``Broker.app``.
    """

    def __init__(self, app):
        self.app = app
        self.portal = _blocking_portal()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Run one request through the application on the portal's event loop."""
        raw_path, _, _ = request.url.raw_path.partition(b"?")
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": request.method,
            "scheme": request.url.scheme, "path": unquote(raw_path.decode("ascii")), "raw_path": raw_path,
            "query_string": request.url.query, "root_path": "",
            "headers": [(key.lower(), value) for key, value in request.headers.raw],
            "client": ("127.0.0.1", 0), "server": ("sscity.embedded", 80),
        }
        status, headers, content = self.portal.call(_call_asgi, self.app, scope, request.read())
        return httpx.Response(status, headers=headers, content=content, request=request)


# -- JSON encoding of notebook values --------------------------------------------------------

def _json_default(value):
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)  # NGSI-LD times are UTC unless they say otherwise
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, _dt.date):
        return value.isoformat()
    if hasattr(value, "isoformat"):  # pandas.Timestamp
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    raise TypeError(f"Cannot send {type(value).__name__} to the broker; use numbers, strings, lists or "
                    "dicts.")


def _encode(body) -> bytes:
    try:
        return json.dumps(body, default=_json_default, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except ValueError:
        raise ValueError("A value is NaN or infinite, which JSON cannot carry. Drop missing values "
                         "(e.g. DataFrame.dropna()) or replace them before sending.") from None


def _has_context(body) -> bool:
    if isinstance(body, dict):
        return "@context" in body
    return isinstance(body, list) and any(isinstance(item, dict) and "@context" in item for item in body)


def _time(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return _json_default(value)


def _tenant_header(tenant: str | None, prefix: str | None) -> str | None:
    """The NGSILD-Tenant header for ``tenant`` under an optional per-user ``prefix``."""
    if prefix and not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", prefix):
        raise ValueError(f"SSCITY_TENANT_PREFIX={prefix!r}: use 1-40 letters, digits, '_' or '-' "
                         "(it becomes part of every tenant name).")
    if prefix:
        return f"{prefix}-{tenant}" if tenant else prefix
    return tenant or None


def _unix_socket_path(url: str, source: str = "url") -> str | None:
    """The socket path of a ``http+unix:///path`` URL; None for another URL.

    Raises ValueError, saying what to write, for a malformed Unix socket URL (``source``
    names where the URL came from, e.g. ``SSCITY_BROKER_URL``).
    """
    lowered = url.lower()
    if not lowered.startswith(("http+unix:", "unix:")):
        return None
    if not lowered.startswith(_UNIX_SCHEME):  # unix:///x.sock, http+unix:/x.sock
        rest = url.split(":", 1)[1].lstrip("/")
        suggestion = f"{_UNIX_SCHEME}/{rest}" if rest else _UNIX_EXAMPLE
        raise ValueError(f"{source}={url!r}: write a broker on a Unix socket as {suggestion} "
                         "(http+unix:// followed by the absolute path of the socket).")
    path = url[len(_UNIX_SCHEME):]
    if path[:3].lower() == "%2f":  # the percent-encoded form of requests-unixsocket
        path = unquote(path)
    path = path.rstrip("/")
    if not path:
        raise ValueError(f"{source}={url!r} names no socket: write {_UNIX_EXAMPLE} (http+unix:// "
                         "followed by the absolute path of the socket given to sscity platform serve --uds).")
    if not path.startswith("/"):
        raise ValueError(f"{source}={url!r}: the socket path must be absolute, so the URL has three "
                         f"slashes: write e.g. {_UNIX_SCHEME}{os.path.abspath(path)}")
    return path


def _remote_http(url: str, uds: str | None, headers: dict, timeout_s: float) -> httpx.Client:
    """An httpx client for a broker at ``url``, over the Unix socket ``uds`` if given."""
    if uds is not None:
        return httpx.Client(base_url="http://localhost", headers=headers, timeout=timeout_s,
                            transport=httpx.HTTPTransport(uds=uds))
    return httpx.Client(base_url=url, headers=headers, timeout=timeout_s)


def _client_from_state(cls, url: str, tenant: str | None, tenant_header: str | None, context: str,
                       timeout_s: float, temporal_url: str | None) -> Client:
    """Rebuild a pickled :class:`Client` (see ``Client.__reduce__``), ignoring the environment."""
    client = cls.__new__(cls)
    client._connect(url, tenant, tenant_header, context, None, timeout_s, temporal_url)
    return client


class Client:
    """Talk NGSI-LD to the embedded broker or to any broker by URL.

    Parameters
    ----------
    url : str, optional
        Broker base URL, e.g. ``http://localhost:1026``, or
        ``http+unix:///absolute/path/to/broker.sock`` for a broker on a Unix domain socket
        (``sscity platform serve --uds PATH``). None: ``db`` if given, else the environment
        variable ``SSCITY_BROKER_URL`` (either form), else the embedded in-memory broker.
    tenant : str, optional
        Sent as the ``NGSILD-Tenant`` header (a separate data space). When the environment
        variable ``SSCITY_TENANT_PREFIX`` is set (e.g. to the student's login on a class's
        shared broker), the header is ``<prefix>-<tenant>`` (or ``<prefix>`` alone for
        no tenant), so that every student's notebook works in data spaces of their own.
    context : str, optional
        URL of the ``@context`` for names (default: ``SSCITY_CONTEXT_URL`` or the course
        context). A URL because GET requests can only name a context in a Link header.
    db : str or Path, optional
        Use an embedded broker on this SQLite file (kept across restarts).
    timeout_s : float
        Time limit of one request to a remote broker.
    temporal_url : str, optional
        Base URL of a separate temporal service (Orion-LD serves history through Mintaka,
        e.g. ``http://localhost:8080``, or a ``http+unix:///...`` socket); default
        ``SSCITY_TEMPORAL_URL`` or ``url`` itself.

    Attributes
    ----------
    url : str
        The broker's URL as given (without a final ``/``).
    uds : str or None
        The path of the broker's Unix socket, for a ``http+unix://`` URL.
    tenant, tenant_header : str or None
        The tenant asked for, and the ``NGSILD-Tenant`` header sent (with the prefix).

    Raises
    ------
    ValueError
        ``url`` and ``db`` both given, or a malformed ``http+unix://`` URL (the message
        says what to write).

    Notes
    -----
    A Client by URL pickles as its URL, tenant, header, context, time limit and temporal
    URL, and unpickles (in any process) into an equivalent new Client that sends the same
    ``NGSILD-Tenant`` header, whatever ``SSCITY_TENANT_PREFIX`` is there. A Client of the
    embedded broker refuses to pickle (TypeError).

    Examples
    --------
    >>> client = Client()
    >>> client.create({"id": "urn:ngsi-ld:ParkingSpot:001", "type": "ParkingSpot",
    ...                "status": "free", "location": {"type": "Point", "coordinates": [140.11, 36.08]}})
    'urn:ngsi-ld:ParkingSpot:001'
    >>> client.get("urn:ngsi-ld:ParkingSpot:001", key_values=True)["status"]
    'free'
    """

    def __init__(self, url: str | None = None, tenant: str | None = None, context: str | None = None, *,
                 db: str | Path | None = None, timeout_s: float = 10.0, temporal_url: str | None = None):
        if url is not None and db is not None:
            raise ValueError("Give either url= (a broker over HTTP) or db= (an embedded broker), not both.")
        url_source = "url"
        if url is None and db is None:
            url = os.environ.get("SSCITY_BROKER_URL") or None
            url_source = "SSCITY_BROKER_URL"
        context = context or os.environ.get("SSCITY_CONTEXT_URL") or COURSE_CONTEXT_URL
        if not isinstance(context, str):
            raise TypeError("context must be the URL of a JSON-LD context (GET requests can only name a "
                            "context by URL). To send an inline context, put \"@context\" in the entity.")
        tenant_header = _tenant_header(tenant, os.environ.get("SSCITY_TENANT_PREFIX") or None)
        temporal_source = "temporal_url" if temporal_url else "SSCITY_TEMPORAL_URL"
        temporal_url = temporal_url or (os.environ.get("SSCITY_TEMPORAL_URL") if url else None) or None
        self._connect(url, tenant, tenant_header, context, db, timeout_s, temporal_url, url_source,
                      temporal_source)

    def _connect(self, url: str | None, tenant: str | None, tenant_header: str | None, context: str,
                 db: str | Path | None, timeout_s: float, temporal_url: str | None, url_source: str = "url",
                 temporal_source: str = "temporal_url") -> None:
        """Set up the client from settings already resolved against the environment."""
        uds = _unix_socket_path(url, url_source) if url is not None else None
        temporal_uds = _unix_socket_path(temporal_url, temporal_source) if temporal_url else None
        self.context = context
        self.tenant = tenant
        self.tenant_header = tenant_header
        self.timeout_s = timeout_s
        self.embedded = None
        self.uds = uds
        self._link = context_link_header(context)
        headers = {"Accept": "application/json"}
        if self.tenant_header:
            headers["NGSILD-Tenant"] = self.tenant_header
        self._temporal_base = temporal_url.rstrip("/") if temporal_url else ""
        self._temporal_uds = temporal_uds
        if url is not None:
            self.url = url.rstrip("/")
            self._http = _remote_http(self.url, uds, headers, timeout_s)
        else:
            self.embedded = embedded_broker(db)
            self.url = _EMBEDDED_BASE
            self._http = httpx.Client(base_url=_EMBEDDED_BASE, headers=headers,
                                      transport=InProcessTransport(self.embedded.app))
        # A temporal service on another transport than the broker's needs a client of its own
        # (otherwise its absolute URLs go through self._http, sharing its connections).
        self._temporal_http = None
        if self._temporal_base and (temporal_uds or uds):
            self._temporal_http = _remote_http(self._temporal_base, temporal_uds, headers, timeout_s)

    def __reduce__(self):
        if self.embedded is not None:
            raise TypeError("Cannot pickle a Client of the embedded broker: an embedded broker lives in one "
                            "process; use Client(url=...) with a broker served by `sscity platform serve` "
                            "(--port or --uds) to share it with other processes.")
        return (_client_from_state, (type(self), self.url, self.tenant, self.tenant_header, self.context,
                                     self.timeout_s, self._temporal_base or None))

    def __copy__(self) -> Client:
        clone = type(self).__new__(type(self))  # shares the connections, as a copy always did
        clone.__dict__.update(self.__dict__)
        return clone

    def __repr__(self) -> str:
        where = f"embedded broker ({self.embedded.store.path})" if self.embedded else self.url
        shown = f", sent as {self.tenant_header!r}" if self.tenant_header != self.tenant else ""
        return f"Client({where}, tenant={self.tenant!r}{shown})"

    def for_tenant(self, tenant: str | None) -> Client:
        """A client of the same broker, ``@context`` and timeouts, for another tenant.

        Returns this client itself when it already works in ``tenant``. The tenant prefix of
        ``SSCITY_TENANT_PREFIX`` applies to the new client as to any other.
        """
        if tenant == self.tenant:
            return self
        if self.embedded is not None:
            return type(self)(tenant=tenant, context=self.context, db=self.embedded.store.path,
                              timeout_s=self.timeout_s)
        return type(self)(url=self.url, tenant=tenant, context=self.context, timeout_s=self.timeout_s,
                          temporal_url=self._temporal_base or None)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections (the embedded broker keeps running for other clients)."""
        self._http.close()
        if self._temporal_http is not None:
            self._temporal_http.close()

    # -- plumbing -----------------------------------------------------------------------

    def _request(self, method: str, path: str, *, params: dict | None = None, body=None,
                 headers: dict | None = None, temporal: bool = False) -> httpx.Response:
        http, where, uds, label = self._http, self.url, self.uds, f"{method} {path}"
        variable = "SSCITY_BROKER_URL"
        if temporal and self._temporal_http is not None:  # path is relative to the temporal service
            http, where, uds = self._temporal_http, self._temporal_base, self._temporal_uds
            label, variable = f"{method} {where}{path}", "SSCITY_TEMPORAL_URL"
        extra = dict(headers or {})
        content = None
        if body is not None and _has_context(body):
            # The context travels in the body: application/ld+json, and then no Link header.
            content = _encode(body)
            extra["Content-Type"] = "application/ld+json"
        else:
            extra["Link"] = self._link
            if body is not None:
                content = _encode(body)
                extra["Content-Type"] = "application/json"
        # None rather than {}: httpx replaces a query already in ``path`` (a next-page link) by params.
        params = {key: value for key, value in (params or {}).items() if value is not None} or None
        request = http.build_request(method, path, params=params, content=content, headers=extra)
        try:
            response = http.send(request)
        except httpx.HTTPError as err:
            running = f"sscity platform serve --uds {uds}" if uds else "sscity platform serve"
            socket_note = " The socket file must exist, and its folder be open to you." if uds else ""
            raise BrokerError(None, None, "Connection failed",
                              f"cannot reach the broker at {where} ({err})", label,
                              f"Is the broker running ({running})?{socket_note} Check {variable}, "
                              "or unset it to use the embedded broker.") from None
        if response.status_code >= 400:
            raise self._error(response, label)
        return response

    @staticmethod
    def _error(response: httpx.Response, label: str) -> BrokerError:
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        if not isinstance(problem, dict):
            problem = {}
        return BrokerError(response.status_code, problem.get("type"), problem.get("title"),
                           problem.get("detail") or problem.get("description") or response.text[:300], label)

    @staticmethod
    def _entity_path(entity_id: str, *rest: str) -> str:
        parts = [quote(entity_id, safe=":@!$&()*+,;=-._~"), *(quote(part, safe=":@-._~") for part in rest)]
        return "/".join([f"{_NGSI}/entities", *parts])

    @staticmethod
    def _query_params(type, q, attrs, georel, geometry, coordinates, key_values, limit, offset, count, id,
                      id_pattern) -> dict:
        if coordinates is not None and not isinstance(coordinates, str):
            coordinates = json.dumps(coordinates, default=_json_default, separators=(",", ":"))
        return {
            "type": ",".join(type) if isinstance(type, (list, tuple)) else type,
            "id": ",".join(id) if isinstance(id, (list, tuple)) else id,
            "idPattern": id_pattern, "q": q,
            "attrs": ",".join(attrs) if isinstance(attrs, (list, tuple, set)) else attrs,
            "georel": georel, "geometry": geometry, "coordinates": coordinates,
            "options": "keyValues" if key_values else None,
            "limit": limit, "offset": offset, "count": "true" if count else None,
        }

    # -- entities ---------------------------------------------------------------------

    def create(self, entity: dict) -> str:
        """Create one entity (NGSI-LD 5.6.1).

        Parameters
        ----------
        entity : dict
            ``id`` (a URI such as ``urn:ngsi-ld:ParkingSpot:001``), ``type`` and attributes,
            normalized (``{"type": "Property", "value": 3}``) or concise (``3``).

        Returns
        -------
        str
            The id of the new entity.
        """
        self._request("POST", f"{_NGSI}/entities", body=entity)
        return entity.get("id")

    def get(self, entity_id: str, attrs=None, key_values: bool = False, sys_attrs: bool = False) -> dict:
        """One entity by id (5.7.1).

        Parameters
        ----------
        entity_id : str
            The entity's id.
        attrs : list of str, optional
            Only these attributes.
        key_values : bool
            Simplified form: attribute name -> value.
        sys_attrs : bool
            Include createdAt / modifiedAt.
        """
        chosen = (("keyValues", key_values), ("sysAttrs", sys_attrs))
        options = ",".join(option for option, on in chosen if on)
        params = {"attrs": ",".join(attrs) if isinstance(attrs, (list, tuple, set)) else attrs,
                  "options": options or None}
        return self._request("GET", self._entity_path(entity_id), params=params).json()

    def query(self, type=None, q: str | None = None, attrs=None, georel: str | None = None,
              geometry: str | None = None, coordinates=None, key_values: bool = False,
              limit: int | None = None, offset: int | None = None, count: bool = False, *,
              id=None, id_pattern: str | None = None) -> EntityList:
        """Entities matching a query (5.7.2): one page (the broker's default page is 20).

        Parameters
        ----------
        type : str or list of str, optional
            Entity type(s), e.g. ``"ParkingSpot"``.
        q : str, optional
            NGSI-LD query, e.g. ``'status=="free";category=="disabled"'`` or ``"no2>40"``.
        attrs : list of str, optional
            Return only these attributes (and only entities having one of them).
        georel, geometry, coordinates : optional
            Geo-query, e.g. ``georel="near;maxDistance==500", geometry="Point",
            coordinates=[140.11, 36.08]`` (GeoJSON order: [lon, lat]).
        key_values : bool
            Simplified entities (attribute name -> value).
        limit, offset : int, optional
            Page size (at most 1000) and start.
        count : bool
            Also ask for the total number of matches (in ``result.count``).
        id : str or list of str, optional
            Only these entity ids.
        id_pattern : str, optional
            Regular expression on entity ids.

        Returns
        -------
        EntityList
            A list of entity dicts, with ``.count`` set when ``count=True``.
        """
        params = self._query_params(type, q, attrs, georel, geometry, coordinates, key_values, limit, offset,
                                    count, id, id_pattern)
        response = self._request("GET", f"{_NGSI}/entities", params=params)
        result = EntityList(response.json())
        if "NGSILD-Results-Count" in response.headers:
            result.count = int(response.headers["NGSILD-Results-Count"])
        return result

    def query_all(self, type=None, q: str | None = None, attrs=None, georel: str | None = None,
                  geometry: str | None = None, coordinates=None, key_values: bool = False, *,
                  id=None, id_pattern: str | None = None, page_size: int = 500,
                  max_entities: int | None = None) -> EntityList:
        """Every entity matching a query, page by page.

        Follows the broker's ``Link: rel="next"`` headers; a broker that sends none (Orion-LD)
        is paged with ``offset`` until a page comes back short. Parameters are those of
        :meth:`query`, plus ``page_size`` (entities per request) and ``max_entities`` (stop
        after this many).
        """
        params = self._query_params(type, q, attrs, georel, geometry, coordinates, key_values, page_size,
                                    None, False, id, id_pattern)
        response = self._request("GET", f"{_NGSI}/entities", params=params)
        page = response.json()
        result = EntityList(page)
        followed = set()
        while page and (max_entities is None or len(result) < max_entities):
            if "next" in response.links:
                next_url = response.links["next"]["url"]
                if not next_url.startswith("/"):  # an absolute link: keep our base URL and transport
                    next_url = httpx.URL(next_url).raw_path.decode("ascii")
                if next_url in followed:
                    break  # a broker that links a page to itself would otherwise loop forever
                followed.add(next_url)
                response = self._request("GET", next_url)
            elif len(page) == page_size:  # no link: ask for the next offset (at worst one empty page)
                response = self._request("GET", f"{_NGSI}/entities", params={**params, "offset": len(result)})
            else:
                break
            page = response.json()
            result.extend(page)
        if max_entities is not None:
            del result[max_entities:]
        result.count = len(result)
        return result

    def count(self, type=None, q: str | None = None, georel: str | None = None, geometry: str | None = None,
              coordinates=None, *, attrs=None, id=None, id_pattern: str | None = None) -> int:
        """How many entities match (``limit=0&count=true``); parameters as in :meth:`query`."""
        params = self._query_params(type, q, attrs, georel, geometry, coordinates, False, 0, None, True, id,
                                    id_pattern)
        response = self._request("GET", f"{_NGSI}/entities", params=params)
        return int(response.headers["NGSILD-Results-Count"])

    def _update_result(self, response: httpx.Response, names) -> UpdateResult:
        if response.status_code == 207:
            body = response.json()
            return UpdateResult(list(body.get("updated", [])), list(body.get("notUpdated", [])))
        return UpdateResult([name for name in names if name not in ("id", "type", "@context")], [])

    def update_attrs(self, entity_id: str, attrs: dict) -> UpdateResult:
        """Update attributes the entity already has (5.6.2); others are reported, not added.

        Parameters
        ----------
        entity_id : str
            The entity.
        attrs : dict
            Attribute name -> attribute (normalized or concise).
        """
        response = self._request("PATCH", self._entity_path(entity_id, "attrs"), body=attrs)
        return self._update_result(response, attrs)

    def append_attrs(self, entity_id: str, attrs: dict, overwrite: bool = True) -> UpdateResult:
        """Add attributes to an entity (5.6.3); existing ones are replaced unless ``overwrite=False``."""
        params = {"options": None if overwrite else "noOverwrite"}
        response = self._request("POST", self._entity_path(entity_id, "attrs"), params=params, body=attrs)
        return self._update_result(response, attrs)

    def patch_attr(self, entity_id: str, attr: str, value) -> None:
        """Change one attribute (5.6.4).

        Parameters
        ----------
        entity_id : str
            The entity.
        attr : str
            The attribute name.
        value : object
            A new value (``42``, ``"free"``), or a fragment dict such as
            ``{"value": 42, "observedAt": "2024-05-01T09:00:00Z"}``. To set a dict as the value,
            wrap it: ``{"value": {...}}``.
        """
        fragment = value if isinstance(value, dict) else {"value": value}
        self._request("PATCH", self._entity_path(entity_id, "attrs", attr), body=fragment)

    def delete_attr(self, entity_id: str, attr: str) -> None:
        """Remove one attribute from an entity (5.6.5)."""
        self._request("DELETE", self._entity_path(entity_id, "attrs", attr))

    def delete(self, entity_id: str) -> None:
        """Delete an entity (5.6.6)."""
        self._request("DELETE", self._entity_path(entity_id))

    def types(self) -> list[str]:
        """Entity types present in the broker (5.7.5)."""
        return self._request("GET", f"{_NGSI}/types").json().get("typeList", [])

    # -- batches ----------------------------------------------------------------------

    def _batch(self, operation: str, items: list, params: dict, chunk_size: int) -> BatchResult:
        result = BatchResult()
        items = list(items)
        for start in range(0, len(items), chunk_size):
            chunk = items[start:start + chunk_size]
            response = self._request("POST", f"{_NGSI}/entityOperations/{operation}", params=params,
                                     body=chunk)
            ids = [item if isinstance(item, str) else item.get("id") for item in chunk]
            if response.status_code == 207:
                body = response.json()
                result.success += body.get("success", [])
                result.errors += body.get("errors", [])
            else:
                result.success += ids
        return result

    def batch_create(self, entities: list[dict], chunk_size: int = 1000) -> BatchResult:
        """Create many entities (5.6.7), ``chunk_size`` per request; existing ids are errors."""
        return self._batch("create", entities, {}, chunk_size)

    def batch_upsert(self, entities: list[dict], mode: str = "replace",
                     chunk_size: int = 1000) -> BatchResult:
        """Create or overwrite many entities (5.6.8).

        Parameters
        ----------
        entities : list of dict
            Complete entities.
        mode : str
            ``"replace"`` (an existing entity becomes exactly the one sent) or ``"update"``
            (its attributes are merged into the existing entity).
        chunk_size : int
            Entities per request.
        """
        if mode not in ("replace", "update"):
            raise ValueError("mode must be 'replace' or 'update'.")
        return self._batch("upsert", entities, {"options": mode}, chunk_size)

    def batch_update(self, entities: list[dict], overwrite: bool = True,
                     chunk_size: int = 1000) -> BatchResult:
        """Change attributes of many existing entities (5.6.9); missing entities are errors."""
        return self._batch("update", entities, {"options": None if overwrite else "noOverwrite"}, chunk_size)

    def batch_delete(self, entity_ids: list[str], chunk_size: int = 1000) -> BatchResult:
        """Delete many entities by id (5.6.10); missing ids are errors."""
        return self._batch("delete", entity_ids, {}, chunk_size)

    # -- temporal ---------------------------------------------------------------------

    def temporal(self, entity_id: str | None = None, *, type=None, q: str | None = None, attrs=None,
                 timerel: str | None = None, time_at=None, end_time_at=None, last_n: int | None = None,
                 temporal_values: bool = False, limit: int | None = None, offset: int | None = None):
        """History of attribute values recorded with ``observedAt`` (5.7.3 / 5.7.4).

        Every write that carries ``observedAt`` adds one instance, even for a time already
        recorded (as Orion-LD's TRoE does): replaying a feed twice doubles its history, so
        delete the entities before a replay. Times come back with milliseconds
        (``2024-05-01T09:00:00.000Z``).

        Parameters
        ----------
        entity_id : str, optional
            One entity; otherwise give ``type`` (and optionally ``q``) for a query.
        timerel : str, optional
            ``"before"`` (observedAt < time_at), ``"after"`` (>= time_at) or ``"between"``
            (time_at <= observedAt < end_time_at).
        time_at, end_time_at : str or datetime, optional
            The window's bounds (naive datetimes are taken as UTC).
        last_n : int, optional
            Only the last N instances of each attribute.
        temporal_values : bool
            ``{"type": "Property", "values": [[value, observedAt], ...]}`` instead of instances.
        attrs : list of str, optional
            Only these attributes.

        Returns
        -------
        dict or list of dict
            The temporal entity, or a list of them for a query. A broker sends at most a
            number of instances per attribute at once (the embedded one 1000) and answers 206
            Partial Content for a longer history (clause 6.3.10); this method then asks the
            following pages itself, so the result is always the whole window.
        """
        params = {"timerel": timerel, "timeAt": _time(time_at), "endTimeAt": _time(end_time_at),
                  "lastN": last_n,
                  "attrs": ",".join(attrs) if isinstance(attrs, (list, tuple, set)) else attrs,
                  "options": "temporalValues" if temporal_values else None}
        base = f"{'' if self._temporal_http is not None else self._temporal_base}{_NGSI}/temporal/entities"
        if entity_id is not None:
            path = f"{base}/{quote(entity_id, safe=':@!$&()*+,;=-._~')}"
            response = self._request("GET", path, params=params, temporal=True)
            return self._whole_window(path, params, response, [response.json()])[0]
        params.update({"type": ",".join(type) if isinstance(type, (list, tuple)) else type, "q": q,
                       "limit": limit, "offset": offset})
        response = self._request("GET", base, params=params, temporal=True)
        entities = response.json()
        if response.status_code != 206:
            return entities
        # The broker cut the window (206): ask the rest for the entities of this page, by id
        # (the same query with a later window could select other entities), 100 ids a request.
        whole = []
        for start in range(0, len(entities), 100):
            chunk = entities[start:start + 100]
            pinned = {**params, "id": ",".join(entity["id"] for entity in chunk), "offset": None,
                      "limit": len(chunk)}
            whole += self._whole_window(base, pinned, response, chunk)
        return whole

    def _whole_window(self, path: str, params: dict, response: httpx.Response,
                      entities: list[dict]) -> list[dict]:
        """``entities`` completed with the pages that follow a 206 Partial Content (clause 6.3.10).

        The broker names the time range it served in ``Content-Range: date-time <start>-<end>/<size>``;
        the next page is the rest of the window: after ``end`` (forwards), or before it when
        ``lastN`` pages backwards. A page is asked until the broker answers 200.
        """
        last_n = params.get("lastN")
        merged = {entity["id"]: entity for entity in entities}
        follow = dict(params)
        for _ in range(100_000):
            if response.status_code != 206:
                break
            follow.update(_next_temporal_window(params, response.headers.get("Content-Range", "")))
            response = self._request("GET", path, params=follow, temporal=True)
            page = response.json()
            for entity in page if isinstance(page, list) else [page]:
                target = merged.setdefault(entity["id"], {"id": entity["id"], "type": entity.get("type")})
                for name, value in entity.items():
                    if name not in ("id", "type", "@context"):
                        target[name] = _join_temporal(target.get(name), value, older_first=last_n is None)
        if last_n is not None:
            for entity in merged.values():
                for name, value in entity.items():
                    if isinstance(value, list):
                        entity[name] = value[-int(last_n):]
                    elif isinstance(value, dict):
                        for key in ("values", "objects", "languageMaps"):
                            if isinstance(value.get(key), list):
                                value[key] = value[key][-int(last_n):]
        return list(merged.values())

    # -- subscriptions ----------------------------------------------------------------

    def subscribe(self, entity_type=None, *, watched_attributes=None, q: str | None = None, attributes=None,
                  key_values: bool = False, endpoint: str | None = None, inbox: str | None = None,
                  description: str | None = None, subscription_id: str | None = None,
                  throttling_s: float | None = None, triggers=None,
                  interval_s: float | None = None) -> str:
        """Ask to be notified when matching entities change (5.8.1).

        Parameters
        ----------
        entity_type : str or list of str, optional
            Entity type(s) to watch.
        watched_attributes : list of str, optional
            Notify only when one of these attributes changes.
        q : str, optional
            Notify only when the entity then matches this query, e.g. ``"no2>40"``.
        attributes : list of str, optional
            Attributes to include in each notification (default: all).
        key_values : bool
            Notify entities in simplified form.
        endpoint : str, optional
            An http(s) URL that receives each notification as a POST, or an MQTT topic
            ``mqtt://host:port/topic`` the broker publishes each notification on.
        inbox : str, optional
            Instead of ``endpoint``: keep notifications in the embedded broker's in-process inbox
            of this name (read them with :meth:`notifications`).
        description : str, optional
            Free text.
        subscription_id : str, optional
            A URI for the subscription (default: the broker chooses).
        throttling_s : float, optional
            At least this many seconds between two notifications.
        triggers : list of str, optional
            The changes that notify (``notificationTrigger``): ``entityCreated``,
            ``entityUpdated``, ``entityDeleted``, ``attributeCreated``, ``attributeUpdated``,
            ``attributeDeleted``. Default (the broker's): attributes created or updated.
        interval_s : float, optional
            A periodic subscription (``timeInterval``): every this many seconds, the matching
            entities as they are, whether or not they changed. Not with ``watched_attributes``.

        Returns
        -------
        str
            The subscription id.
        """
        if (endpoint is None) == (inbox is None):
            raise ValueError("Give exactly one of endpoint= (an http or mqtt URL) or inbox= (a name).")
        types = [entity_type] if isinstance(entity_type, str) else list(entity_type or [])
        body: dict = {"type": "Subscription",
                      "notification": {"endpoint": {"uri": endpoint or f"sscity:inbox/{inbox}",
                                                    "accept": "application/json"},
                                       "format": "keyValues" if key_values else "normalized"}}
        if types:
            body["entities"] = [{"type": name} for name in types]
        if watched_attributes:
            body["watchedAttributes"] = list(watched_attributes)
        if q:
            body["q"] = q
        if attributes:
            body["notification"]["attributes"] = list(attributes)
        if description:
            body["description"] = description
        if subscription_id:
            body["id"] = subscription_id
        if throttling_s is not None:
            body["throttling"] = throttling_s
        if triggers is not None:
            body["notificationTrigger"] = [triggers] if isinstance(triggers, str) else list(triggers)
        if interval_s is not None:
            body["timeInterval"] = interval_s
        response = self._request("POST", f"{_NGSI}/subscriptions", body=body)
        location = response.headers.get("Location", "")
        return subscription_id or unquote(location.rstrip("/").rsplit("/", 1)[-1])

    def subscriptions(self) -> list[dict]:
        """The subscriptions of this tenant, with their delivery status (5.8.4)."""
        return self._request("GET", f"{_NGSI}/subscriptions", params={"limit": 1000}).json()

    def subscription(self, subscription_id: str) -> dict:
        """One subscription with ``notification.timesSent``, ``lastNotification``, ... (5.8.3)."""
        path = f"{_NGSI}/subscriptions/{quote(subscription_id, safe=':@!$&()*+,;=-._~')}"
        return self._request("GET", path).json()

    def unsubscribe(self, subscription_id: str) -> None:
        """Delete a subscription (5.8.5)."""
        path = f"{_NGSI}/subscriptions/{quote(subscription_id, safe=':@!$&()*+,;=-._~')}"
        self._request("DELETE", path)

    def notifications(self, inbox: str, clear: bool = False) -> list[dict]:
        """Notifications kept in an in-process inbox (subscriptions made with ``inbox=``).

        Parameters
        ----------
        inbox : str
            The inbox name given to :meth:`subscribe`.
        clear : bool
            Empty the inbox after reading it.

        Returns
        -------
        list of dict
            ``{id, type: "Notification", subscriptionId, notifiedAt, data: [entities]}``, oldest first.
        """
        path = f"/sscity/inbox/{quote(inbox, safe='')}"
        try:
            found = self._request("GET", path).json()
        except BrokerError as err:
            if err.status == 404:
                raise BrokerError(404, None, "No inboxes", "this broker has no in-process inboxes",
                                  f"GET {path}",
                                  "Inboxes exist only in the course broker; against Orion-LD subscribe "
                                  "with endpoint= an http URL you serve.") from None
            raise
        if clear:
            self._request("DELETE", path)
        return found

    def add_context(self, context) -> str:
        """Store a JSON-LD ``@context`` in the broker; returns the URL that names it (5.13.2).

        For terms the course context does not define (a data model of your own): create a
        client with ``Client(context=url)`` and its requests name that context in their
        ``Link`` header, so the broker expands those terms. The embedded broker never
        downloads a context, so this (or ``sscity platform serve --context``) is how it learns
        one; Orion-LD offers the same ``POST /jsonldContexts``.

        Parameters
        ----------
        context : dict, list or str
            The context (``{"speed": "https://example.org/speed"}``, a list, a URL), or a whole
            context document ``{"@context": ...}``.

        Returns
        -------
        str
            The absolute URL of the stored (``Hosted``) context,
            ``<broker>/ngsi-ld/v1/jsonldContexts/<id>``.

        Examples
        --------
        >>> client = Client(db=":memory:")
        >>> url = client.add_context({"vehicleCount": "https://example.org/traffic#vehicleCount"})
        >>> "/ngsi-ld/v1/jsonldContexts/" in url
        True
        """
        document = context if isinstance(context, dict) and "@context" in context else {"@context": context}
        location = self._request("POST", f"{_NGSI}/jsonldContexts", body=document).headers.get("Location", "")
        return location if "://" in location else f"{self.url}{location}"

    def version(self) -> dict:
        """The broker's ``/version`` document (name and version)."""
        return self._request("GET", "/version").json()

    # -- helpers ----------------------------------------------------------------------

    @staticmethod
    def to_dataframe(entities) -> pandas.DataFrame:  # noqa: F821
        """Entities as a table; see :func:`to_dataframe`."""
        return to_dataframe(entities)


def to_dataframe(entities):
    """A pandas DataFrame with one row per entity and one column per attribute value.

    Normalized and keyValues entities both work: each attribute becomes its value
    (``value``, ``object``, ...); a Point ``location`` also gives ``lon`` and ``lat`` columns.

    Parameters
    ----------
    entities : iterable of dict
        Entities as returned by :meth:`Client.query`.

    Returns
    -------
    pandas.DataFrame
        Columns ``id``, ``type``, then the attributes in first-seen order.
    """
    import pandas as pd

    rows = []
    for entity in entities:
        row = {"id": entity.get("id"), "type": entity.get("type")}
        for name, attribute in entity.items():
            if name in ("id", "type", "@context"):
                continue
            value = attribute
            if isinstance(attribute, dict) and attribute.get("type") in _ATTRIBUTE_TYPES:
                value = next((attribute[key] for key in ("value", "object", "languageMap", "json", "vocab",
                                                         "valueList") if key in attribute), None)
            row[name] = value
            if name == "location" and isinstance(value, dict) and value.get("type") == "Point":
                coordinates = value.get("coordinates") or [math.nan, math.nan]
                row["lon"], row["lat"] = coordinates[0], coordinates[1]
        rows.append(row)
    return pd.DataFrame(rows)
