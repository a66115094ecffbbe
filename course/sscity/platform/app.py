"""The HTTP face of the broker: a Starlette application under ``/ngsi-ld/v1``.

One endpoint receives every NGSI-LD path and dispatches on the raw (still percent-encoded)
path, so entity ids that contain ``/`` (sent as ``%2F``) work, and every route answers with
and without a trailing slash. Around each operation of :class:`~sscity.platform.broker.Broker`
it does what clause 6 of NGSI-LD asks of the HTTP binding:

- media types (6.3.4): bodies must be ``application/json`` (context in a ``Link`` header)
  or ``application/ld+json`` (context in the body), else 415; responses are
  ``application/json`` (context in a ``Link`` header), ``application/ld+json`` (context in
  the body) or, for entities, ``application/geo+json``; an ``Accept`` that allows none of
  them is a 406;
- ProblemDetails errors (6.3.2) as ``application/problem+json``; malformed JSON is a 400
  InvalidRequest; nothing a client sends produces a 500;
- pagination (6.3.10) with ``limit``/``offset`` and ``Link`` rel="next"/"prev", the
  ``NGSILD-Results-Count`` header for ``count=true`` (6.3.13);
- tenants (6.3.14) from the ``NGSILD-Tenant`` header;
- limits: a body over :data:`MAX_BODY_BYTES` (8 MiB, ``create_app(max_body_bytes=)``) is a
  413 before it is read whole, a path and query over :data:`MAX_URL_BYTES` (8 KiB) a 414.

The @context store of clause 5.13 is served at ``/jsonldContexts`` (list, add, serve,
delete; see :mod:`sscity.platform.context`).

Serving: the event loop only reads requests and writes responses; every NGSI-LD operation runs
in a pool of at most :data:`THREADS` worker threads, so a slow request (a ``q`` over many
entities, a large batch) delays no other client's. A GET by id is answered on the event loop
itself while it is cheap (``Store.inline``: no waiting for a lock, an entity under 16 KiB), as
the hop to a thread would cost more than the request.

Besides NGSI-LD: ``GET /version``, ``GET /actuator/health`` (clients probe them on start),
and ``GET|DELETE /sscity/inbox/<name>`` for in-process notification inboxes.
"""

from __future__ import annotations

import json
import logging
import math
import re
from functools import lru_cache
from urllib.parse import quote, unquote, urlencode

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from .aggregate import METHODS as AGGREGATION_METHODS
from .aggregate import Duration, aggregate, parse_methods
from .broker import Broker, EntityQuery, TemporalQuery, compile_id_pattern
from .context import KINDS, TermMap, context_link_header
from .errors import NgsiError, bad_data, invalid_request, not_found, not_implemented
from .geo import parse_geoquery
from .model import (
    Entity,
    check_entity_id,
    check_name,
    compact_attribute,
    expand_type,
    render_entity,
    simplified_value,
)
from .query import numeric_prefilter, parse_q
from .storage import WouldBlock, dumps, dumps_bytes
from .timeutil import canonical_datetime

JSON = "application/json"
JSON_LD = "application/ld+json"
GEO_JSON = "application/geo+json"
PROBLEM = "application/problem+json"
MERGE_PATCH = "application/merge-patch+json"
BASE = "/ngsi-ld/v1"
_BODY_METHODS = ("POST", "PATCH", "PUT")
#: Largest request body accepted (bytes); a larger one is a 413 before it is read whole. The
#: course's largest batch (the neighbourhood seeding, 481 entities) is about 0.3 MB; 8 MiB
#: leaves about 8 KiB per entity in the client's 1,000-entity chunks, and bounds the memory
#: one request can take on a shared class server.
MAX_BODY_BYTES = 8 * 1024 * 1024
#: Largest limit/offset/lastN accepted (SQLite integers are 64-bit; this is far beyond them).
MAX_INT_PARAM = 2**31 - 1
_DIGITS = re.compile(r"[0-9]{1,12}\Z")
#: Longest request target (path and query string, bytes) accepted; a longer one is a 414.
MAX_URL_BYTES = 8 * 1024
#: Most NGSI-LD operations run at once in worker threads. Each thread of a file store has its
#: own SQLite connection (WAL lets their reads run beside one writer) with a page cache of up
#: to 32 MB, so this also bounds that memory. More threads would not answer faster (Python runs
#: one at a time); GETs by id answered on the event loop need none.
THREADS = 8
_log = logging.getLogger(__name__)

try:  # the package version, shown by /version
    from importlib.metadata import version as _dist_version

    VERSION = _dist_version("sscity")
except Exception:  # an uninstalled checkout
    VERSION = "0+unknown"


# -- request reading ------------------------------------------------------------------------

@lru_cache(maxsize=256)
def negotiate(accept: str | None, allow_geo: bool) -> str | None:
    """The response media type for an ``Accept`` header, or None if nothing acceptable is offered."""
    if not accept:
        return JSON
    best, best_q = None, 0.0
    for part in accept.split(","):
        media, *params = part.split(";")
        media = media.strip().lower()
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if media in (JSON, JSON_LD):
            offer = media
        elif media == GEO_JSON and allow_geo:
            offer = GEO_JSON
        elif media in ("*/*", "application/*"):
            offer = JSON
        else:
            continue
        if math.isfinite(weight) and weight > best_q:
            best, best_q = offer, weight
    return best


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed in JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text} is too large")
    return number


def parse_json(body: bytes):
    """Decode a request body; InvalidRequest (400) if it is not JSON."""
    if not body.strip():
        raise invalid_request("The request body is empty; send a JSON document.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise invalid_request(f"The body is not valid UTF-8 (byte {err.start}: {err.reason}); send JSON "
                              "text encoded as UTF-8.") from None
    try:
        document = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as err:
        raise invalid_request(f"The body is not valid JSON ({err}). Check quotes, commas and brackets; "
                              "a JSON linter shows the exact place.") from None
    if _SURROGATE_ESCAPE.search(text):
        _check_no_surrogates(document)
    return document


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_no_surrogates(document) -> None:
    """BadRequestData if a string of ``document`` holds a lone surrogate (``"\\ud800"``)."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                shown = item.encode("utf-8", "backslashreplace").decode("ascii", "replace")[:60]
                raise bad_data(f"The string {shown!r} contains a lone surrogate escape (\\ud800-\\udfff "
                               "without its pair), which is not a Unicode character. Send the character "
                               "itself, or both halves of a surrogate pair.") from None


class Call:
    """One request, read once: path segments, query, headers, tenant and (for bodies) JSON."""

    __slots__ = ("method", "segments", "params", "headers", "tenant", "media", "content_type", "path",
                 "payload", "_ctx", "resolver")

    def __init__(self, request: Request, segments: list[str], body: bytes, resolver, allow_geo: bool):
        self.method = request.method
        self.segments = segments
        self.params = request.query_params
        self.headers = request.headers
        self.path = request.scope.get("root_path", "") + request.scope["path"]
        self.resolver = resolver
        self._ctx = None
        self.tenant = Broker.check_tenant(self.headers.get("ngsild-tenant"))
        self.media = negotiate(self.headers.get("accept"), allow_geo)
        if self.media is None:
            raise NgsiError("NotAcceptable", f"Cannot answer with {self.headers.get('accept')!r}; accept "
                            f"{JSON} or {JSON_LD}.")
        self.payload = None
        self.content_type = None
        if self.method in _BODY_METHODS:
            content_type = self.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type == MERGE_PATCH and self.method == "PATCH":
                content_type = JSON  # merge-patch bodies are NGSI-LD JSON (context in the Link header)
            if content_type not in (JSON, JSON_LD):
                raise NgsiError("UnsupportedMediaType", f"Content-Type {content_type or '(none)'!r} is not "
                                f"supported: send {JSON} (with the @context in a Link header) or {JSON_LD} "
                                "(with the @context in the body).")
            self.content_type = content_type
            self.payload = parse_json(body)
            if content_type == JSON_LD and self.headers.get("link") and _names_context(self.headers["link"]):
                raise bad_data("With Content-Type application/ld+json the @context goes in the body, "
                               "not in a Link header.")
            if content_type == JSON_LD and isinstance(self.payload, dict) and \
                    segments[:1] != ["jsonldContexts"]:
                # The body's @context is read now and taken out of the body, so that no operation
                # mistakes it for an attribute or sub-attribute (clause 6.3.5; e.g. a partial
                # attribute update, 5.6.4, sent as application/ld+json). A context document
                # posted to /jsonldContexts is the exception: its @context is the content.
                self._ctx = self.item_context(self.payload)
                self.payload = {key: value for key, value in self.payload.items() if key != "@context"}

    @property
    def ctx(self) -> TermMap:
        """The request's processed @context (Link header, or the body's for one entity)."""
        if self._ctx is None:
            if self.content_type == JSON_LD and isinstance(self.payload, dict):
                self._ctx = self.item_context(self.payload)
            else:
                body = self.payload
                if self.content_type == JSON and isinstance(body, dict) and "@context" in body:
                    raise bad_data("With Content-Type application/json the @context must be sent in a Link "
                                   "header; use application/ld+json to put it in the body.")
                self._ctx = self.resolver.from_link_header(self.headers.get("link"))
        return self._ctx

    def item_context(self, item) -> TermMap:
        """The context of one item of a body (ld+json items carry their own @context)."""
        if self.content_type != JSON_LD:
            if isinstance(item, dict) and "@context" in item:
                raise bad_data("With Content-Type application/json the @context must be sent in a Link "
                               "header; use application/ld+json to put it in the body.")
            return self.resolver.from_link_header(self.headers.get("link"))
        if not isinstance(item, dict) or "@context" not in item:
            raise bad_data("An application/ld+json body must contain its @context (or send application/json "
                           "with a Link header).")
        return self.resolver.resolve(item["@context"])

    def options(self) -> set[str]:
        """The comma-separated ``options`` parameter as a set."""
        return {option.strip() for option in self.params.get("options", "").split(",") if option.strip()}

    def int_param(self, name: str, default: int | None, minimum: int = 0) -> int | None:
        """A non-negative integer query parameter; BadRequestData if malformed."""
        text = self.params.get(name)
        if text is None:
            return default
        value = int(text) if _DIGITS.match(text) else minimum - 1
        if value < minimum or value > MAX_INT_PARAM:
            raise bad_data(f"{name} must be a whole number from {minimum} to {MAX_INT_PARAM:,}, got "
                           f"{text[:40]!r}.")
        return value


def _names_context(link: str) -> bool:
    return "json-ld#context" in link


# -- responses ------------------------------------------------------------------------------

def respond(call: Call, payload, status: int = 200, headers: dict | None = None,
            ctx: TermMap | None = None) -> Response:
    """A JSON response in the negotiated media type, with its @context in the body or a Link header.

    ``application/ld+json`` puts the @context in the body (in each item of a list),
    ``application/json`` names it in a ``Link`` header (clause 6.3.5), and
    ``application/geo+json`` puts it in the body as an ``@context`` member of the Feature or
    FeatureCollection (clauses 4.5.16 and 6.3.15: GeoJSON has no other place for it, and the
    property names of the features are compacted with it).
    """
    ctx = ctx or call.ctx
    headers = dict(headers or {})
    media = call.media
    if media == GEO_JSON:
        if isinstance(payload, dict):
            payload = {**payload, "@context": ctx.source}
    elif media == JSON_LD:
        if isinstance(payload, list):
            payload = [{"@context": ctx.source, **item} if isinstance(item, dict) else item
                       for item in payload]
        elif isinstance(payload, dict):
            payload = {"@context": ctx.source, **payload}
    elif media == JSON:
        link = context_link_header(ctx.link_url)
        headers["Link"] = f"{link}, {headers['Link']}" if "Link" in headers else link
    return Response(dumps_bytes(payload), status, headers=headers, media_type=media)


def problem_response(err: NgsiError, headers: dict | None = None) -> Response:
    """ProblemDetails of an error, as application/problem+json."""
    return Response(dumps(err.problem()).encode("utf-8"), err.status, headers=headers, media_type=PROBLEM)


def _location(kind: str, resource_id: str) -> dict:
    return {"Location": f"{BASE}/{kind}/{quote(resource_id, safe=':@!$&()*+,;=-._~')}"}


def _page_headers(call: Call, offset: int, limit: int, total: int, count: bool) -> dict:
    headers = {}
    if count:
        headers["NGSILD-Results-Count"] = str(total)
    links = []
    if limit > 0 and offset + limit < total:
        links.append(_page_link(call, offset + limit, limit, "next"))
    if limit > 0 and offset > 0:
        links.append(_page_link(call, max(0, offset - limit), limit, "prev"))
    if links:
        headers["Link"] = ", ".join(links)
    return headers


def _page_link(call: Call, offset: int, limit: int, rel: str) -> str:
    params = [(key, value) for key, value in call.params.multi_items() if key not in ("offset", "limit")]
    params += [("limit", str(limit)), ("offset", str(offset))]
    return f'<{call.path}?{urlencode(params)}>; rel="{rel}"'


# -- parameters -----------------------------------------------------------------------------

def _names(text: str, what: str) -> list[str]:
    names = [name.strip() for name in text.replace("|", ",").split(",")]
    if not all(names):
        raise bad_data(f"{what} is an empty name or has an empty item: {text!r}.")
    return names


def entity_query(call: Call, default_limit: int = 20) -> EntityQuery:
    """The EntityQuery of a GET /entities-like request (clause 5.7.2 / 6.4.3.2)."""
    params, ctx = call.params, call.ctx
    query = EntityQuery(limit=call.int_param("limit", default_limit), offset=call.int_param("offset", 0),
                        count=params.get("count", "false").lower() == "true")
    if "type" in params:
        names = _names(params["type"], "type")
        query.types = tuple(sorted({expand_type(name, ctx, "type") for name in names}))
    if "id" in params:
        query.ids = tuple(check_entity_id(i, "id") for i in _names(params["id"], "id"))
    if "idPattern" in params:
        query.id_pattern = compile_id_pattern(params["idPattern"])
    if "attrs" in params:
        query.attrs = _projection(call)
    if "q" in params:
        query.q = parse_q(params["q"], ctx.expand)
        query.numeric_terms = numeric_prefilter(params["q"], ctx.expand)
    geoproperty = params.get("geoproperty")
    query.geo = parse_geoquery(params.get("georel"), params.get("geometry"), params.get("coordinates"),
                               ctx.expand(check_name(geoproperty, "geoproperty")) if geoproperty else None)
    return query


def temporal_window(call: Call) -> TemporalQuery:
    """The time window of a temporal request (timerel, timeAt, endTimeAt, lastN, attrs)."""
    params = call.params
    timerel = params.get("timerel")
    window = TemporalQuery(timerel=timerel, last_n=call.int_param("lastN", None, minimum=1))
    if params.get("timeproperty", "observedAt") != "observedAt":
        raise bad_data("This broker records history by observedAt only (timeproperty=observedAt).")
    if timerel is not None:
        if timerel not in ("before", "after", "between"):
            raise bad_data(f"timerel must be before, after or between, got {timerel!r}.")
        if "timeAt" not in params:
            raise bad_data(f"timerel={timerel} needs timeAt, e.g. timeAt=2024-05-01T00:00:00Z.")
        window.time_at = canonical_datetime(params["timeAt"], "timeAt")
        if timerel == "between":
            if "endTimeAt" not in params:
                raise bad_data("timerel=between needs endTimeAt as well as timeAt.")
            window.end_time_at = canonical_datetime(params["endTimeAt"], "endTimeAt")
            if window.end_time_at <= window.time_at:
                raise bad_data("endTimeAt must be later than timeAt.")
    elif "timeAt" in params or "endTimeAt" in params:
        raise bad_data("timeAt needs timerel (before, after or between).")
    if "attrs" in params:
        window.attrs = frozenset(call.ctx.expand(check_name(name, "attrs"))
                                 for name in _names(params["attrs"], "attrs"))
    window.paged = _aggregation(call) is None
    return window


def _aggregation(call: Call) -> tuple[tuple[str, ...], Duration] | None:
    """The methods and period of an aggregated temporal request (clause 4.5.19), or None.

    ``options=aggregatedValues`` (or ``format=aggregatedValues``) asks for it and needs
    ``aggrMethods``; ``aggrPeriodDuration`` defaults to ``PT0S``, the whole window.
    """
    params = call.params
    wanted = "aggregatedValues" in call.options() or params.get("format") == "aggregatedValues"
    if not wanted:
        for name in ("aggrMethods", "aggrPeriodDuration"):
            if name in params:
                raise bad_data(f"{name} belongs to the aggregated temporal representation: add "
                               "options=aggregatedValues (clause 4.5.19), or remove it.")
        return None
    if "aggrMethods" not in params:
        raise bad_data("options=aggregatedValues needs aggrMethods, e.g. aggrMethods=avg,max "
                       f"(any of {', '.join(AGGREGATION_METHODS)}).")
    if _temporal_values(call):
        raise bad_data("aggregatedValues and temporalValues are two representations; ask for one.")
    if "lastN" in params:
        # Whether lastN counts instances or periods of the aggregation is not settled; refused
        # rather than guessed.
        raise not_implemented("lastN with the aggregated temporal representation", "4.5.19",
                              "Narrow the window with timerel/timeAt instead.")
    return parse_methods(params["aggrMethods"]), Duration(params.get("aggrPeriodDuration", "PT0S"))


_ENTITY_KEYS = ("id", "type", "@id", "@type")


def _projection(call: Call) -> frozenset[str] | None:
    if "attrs" not in call.params:
        return None
    names = _names(call.params["attrs"], "attrs")
    for name in names:
        if name in _ENTITY_KEYS:
            raise bad_data(f"attrs lists attributes, and {name!r} is not one: id and type are always "
                           "returned (to leave them out, use omit=id,type; to choose members, pick=...).")
    return frozenset(call.ctx.expand(check_name(name, "attrs")) for name in names)


class _Shape:
    """What of each entity a response shows: ``attrs``, then ``pick`` / ``omit`` (clause 4.21).

    ``attrs`` also selects entities (those with at least one of the attributes); ``pick`` and
    ``omit`` only shape the output, and may name the entity members ``id`` and ``type``.
    """

    __slots__ = ("attrs", "keep_id", "keep_type", "omit", "languages")

    def __init__(self, call: Call):
        self.attrs = _projection(call)
        self.languages = _languages(call.params["lang"]) if "lang" in call.params else None
        self.keep_id = self.keep_type = True
        self.omit: frozenset[str] = frozenset()
        pick, omit = call.params.get("pick"), call.params.get("omit")
        if pick is not None and omit is not None:
            raise bad_data("pick and omit exclude each other; send one of them.")
        if pick is not None:
            names = _names(pick, "pick")
            picked = frozenset(call.ctx.expand(check_name(name, "pick")) for name in names
                               if name not in _ENTITY_KEYS)
            self.attrs = picked if self.attrs is None else self.attrs & picked
            self.keep_id = "id" in names or "@id" in names
            self.keep_type = "type" in names or "@type" in names
        if omit is not None:
            names = _names(omit, "omit")
            self.omit = frozenset(call.ctx.expand(check_name(name, "omit")) for name in names
                                  if name not in _ENTITY_KEYS)
            self.keep_id = "id" not in names and "@id" not in names
            self.keep_type = "type" not in names and "@type" not in names

    def names(self, entity) -> frozenset[str] | None:
        """The attribute IRIs of ``entity`` to show (None: all)."""
        if not self.omit:
            return self.attrs
        shown = frozenset(entity.attrs) if self.attrs is None else self.attrs
        return shown - self.omit

    def render(self, entity, ctx: TermMap, key_values: bool, sys_attrs: bool) -> dict:
        if self.languages is not None:
            entity = Entity(entity.id, entity.type, {name: _in_language(attribute, self.languages)
                                                     for name, attribute in entity.attrs.items()},
                            entity.created_at, entity.modified_at)
        out = render_entity(entity, ctx, key_values=key_values, sys_attrs=sys_attrs,
                            attrs=self.names(entity))
        if not self.keep_id:
            del out["id"]
        if not self.keep_type:
            del out["type"]
        return out


def _representation(call: Call) -> tuple[bool, bool]:
    options = call.options()
    fmt = call.params.get("format")
    key_values = "keyValues" in options or "simplified" in options or fmt in ("keyValues", "simplified")
    return key_values, "sysAttrs" in options


def render_aggregated(entity, instances: dict, ctx: TermMap, aggregation, window: TemporalQuery) -> dict:
    """An entity's aggregated temporal representation (clause 4.5.19): per attribute and method,
    ``[[aggregate, startAt, endAt], ...]`` (see :mod:`sscity.platform.aggregate`)."""
    methods, period = aggregation
    start = window.time_at if window.timerel in ("after", "between") else None
    end = {"before": window.time_at, "between": window.end_time_at}.get(window.timerel)
    out = {"id": entity.id, "type": ctx.compact(entity.type)}
    for name, items in instances.items():
        kind = items[-1][1].get("type", "Property")
        out[ctx.compact(name)] = {"type": kind, **aggregate([instance for _, instance in items], methods,
                                                             period, start, end)}
    return out


def render_temporal(entity, instances: dict, ctx: TermMap, temporal_values: bool, sys_attrs: bool) -> dict:
    """An entity's temporal representation: instances per attribute, or [value, time] pairs."""
    out = {"id": entity.id, "type": ctx.compact(entity.type)}
    for name, items in instances.items():
        if temporal_values:
            kind = items[-1][1].get("type", "Property")
            key = {"Relationship": "objects", "LanguageProperty": "languageMaps"}.get(kind, "values")
            out[ctx.compact(name)] = {"type": kind, key: [[simplified_value(instance), instance["observedAt"]]
                                                         for _, instance in items]}
        else:
            out[ctx.compact(name)] = [{**compact_attribute(instance, ctx, sys_attrs), "instanceId": iid}
                                      for iid, instance in items]
    return out


_LANGUAGE_TAG = re.compile(r"(\*|[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*)\Z")
_QUALITY = re.compile(r"q=(0(\.[0-9]{0,3})?|1(\.0{0,3})?)\Z")


def _languages(text: str) -> list[str]:
    """The language tags of ``lang`` (``ja``, ``en,ja;q=0.5``, ``*``), most preferred first."""
    ranked = []
    for position, item in enumerate(text.split(",")):
        tag, *quality = [part.strip() for part in item.split(";")]
        if not _LANGUAGE_TAG.match(tag) or len(quality) > 1 or (quality and not _QUALITY.match(quality[0])):
            raise bad_data(f"lang={text[:60]!r} is not a list of language tags such as ja, en or "
                           "en,ja;q=0.5 (a tag, optionally ;q= with a weight from 0 to 1).")
        weight = float(quality[0][2:]) if quality else 1.0
        ranked.append((-weight, position, tag))
    return [tag for weight, _, tag in sorted(ranked) if weight < 0]


def _in_language(attribute, languages: list[str]):
    """A LanguageProperty as the Property of one language (``lang``, clause 6.4.3.2): the first of
    ``languages`` the languageMap has, else its ``@none`` entry, else its first language."""
    if isinstance(attribute, list):
        return [_in_language(instance, languages) for instance in attribute]
    if not isinstance(attribute, dict) or attribute.get("type") != "LanguageProperty":
        return attribute
    strings = attribute.get("languageMap", {})
    chosen = next((tag for tag in languages if tag in strings), None)
    if chosen is None and "*" in languages and strings:
        chosen = next(iter(strings))
    if chosen is None:
        chosen = "@none" if "@none" in strings else next(iter(strings), None)
    out = {key: value for key, value in attribute.items() if key != "languageMap"}
    out["type"] = "Property"
    out["value"] = strings.get(chosen) if chosen is not None else None
    if chosen not in (None, "@none"):
        out["lang"] = chosen
    return out


def _feature(entity, ctx: TermMap, key_values: bool, shape: _Shape) -> dict:
    rendered = shape.render(entity, ctx, key_values, False)
    location = entity.attrs.get("https://uri.etsi.org/ngsi-ld/location")
    geometry = location.get("value") if isinstance(location, dict) else None
    properties = {key: value for key, value in rendered.items() if key != "id"}
    return {"id": entity.id, "type": "Feature", "geometry": geometry, "properties": properties}


# -- what each operation accepts ---------------------------------------------------------------
#
# A parameter the broker does not know is refused, never ignored: a typo (``tpye=``) or a
# feature of a production broker that this one lacks would otherwise give a different
# answer without a word. Parameters of the specification that are not implemented get a 501
# naming the feature; anything else a 400 listing what the operation takes.

_ENTITY_QUERY = frozenset({"id", "type", "idPattern", "attrs", "pick", "omit", "q", "georel", "geometry",
                           "coordinates", "geoproperty", "options", "format", "limit", "offset", "count",
                           "local", "lang"})
_TEMPORAL_WINDOW = frozenset({"timerel", "timeAt", "endTimeAt", "lastN", "timeproperty", "aggrMethods",
                              "aggrPeriodDuration"})
#: (resource, method) -> (query parameters implemented, clause of the operation's HTTP binding).
PARAMETERS: dict[tuple[str, str], tuple[frozenset, str]] = {
    ("entities", "GET"): (_ENTITY_QUERY, "6.4.3.2"),
    ("entities", "POST"): (frozenset(), "6.4.3.1"),
    ("entity", "GET"): (frozenset({"attrs", "pick", "omit", "options", "format", "geoproperty", "local",
                                   "lang"}),
                        "6.5.3.1"),
    ("entity", "DELETE"): (frozenset(), "6.5.3.2"),
    ("attrs", "PATCH"): (frozenset(), "6.6.3.2"),
    ("attrs", "POST"): (frozenset({"options"}), "6.6.3.1"),
    ("attr", "PATCH"): (frozenset(), "6.7.3.1"),
    ("attr", "DELETE"): (frozenset({"datasetId", "deleteAll"}), "6.7.3.2"),
    ("types", "GET"): (frozenset({"local"}), "6.25.3.1"),
    ("type", "GET"): (frozenset({"local"}), "6.26.3.1"),
    ("attributes", "GET"): (frozenset({"local"}), "6.27.3.1"),
    ("attribute", "GET"): (frozenset({"local"}), "6.28.3.1"),
    ("entities", "DELETE"): (frozenset({"id", "type", "idPattern", "q", "local"}), "6.4.3.3"),
    ("entity", "PATCH"): (frozenset(), "6.5.3.3"),
    ("entity", "PUT"): (frozenset(), "6.5.3.4"),
    ("attr", "PUT"): (frozenset(), "6.7.3.3"),
    ("batch", "POST"): (frozenset({"options", "limit", "offset", "count", "format"}), "6.14-6.23"),
    ("temporal", "GET"): ((_ENTITY_QUERY - {"pick", "omit", "lang"}) | _TEMPORAL_WINDOW, "6.18.3.2"),
    ("temporal", "POST"): (frozenset(), "6.18.3.1"),
    ("temporal_entity", "GET"): (frozenset({"attrs", "options", "format", "local"}) | _TEMPORAL_WINDOW,
                                 "6.19.3.1"),
    ("temporal_entity", "DELETE"): (frozenset(), "6.19.3.2"),
    ("temporal_attrs", "POST"): (frozenset(), "6.20.3.1"),
    ("temporal_attr", "DELETE"): (frozenset({"datasetId", "deleteAll"}), "6.21.3.1"),
    ("temporal_instance", "PATCH"): (frozenset(), "6.22.3.1"),
    ("temporal_instance", "DELETE"): (frozenset(), "6.22.3.2"),
    ("subscriptions", "GET"): (frozenset({"limit", "offset", "count"}), "6.10.3.2"),
    ("subscriptions", "POST"): (frozenset(), "6.10.3.1"),
    ("subscription", "GET"): (frozenset(), "6.11.3.1"),
    ("subscription", "PATCH"): (frozenset(), "6.11.3.2"),
    ("subscription", "DELETE"): (frozenset(), "6.11.3.3"),
    ("contexts", "GET"): (frozenset({"details", "kind"}), "5.13.3"),
    ("contexts", "POST"): (frozenset(), "5.13.2"),
    ("context", "GET"): (frozenset({"details"}), "5.13.4"),
    ("context", "DELETE"): (frozenset({"reload"}), "5.13.5"),
}
#: Parameters of the specification the broker does not implement -> what they would do.
UNIMPLEMENTED_PARAMETERS = {
    "csf": "Filtering by context source registration (csf)",
    "geometryProperty": "Choosing the GeoJSON geometry (geometryProperty)",
    "lang": "Language filtering of LanguageProperty values (lang)",
    "scopeQ": "Scope queries (scopeQ)",
    "datasetId": "Selecting attribute instances by datasetId",
    "entityMap": "Entity maps (entityMap)",
    "join": "Linked-entity retrieval (join)",
    "joinLevel": "Linked-entity retrieval (joinLevel)",
    "containedBy": "Linked-entity retrieval (containedBy)",
    "orderBy": "Ordering query results (orderBy)",
    "collect": "Collecting values of linked entities (collect)",
    "via": "Distributed operations (via)",
    "doNotCompact": "Uncompacted output (doNotCompact)",
    "expandValues": "Expanding values (expandValues)",
    "jsonKeys": "JSON keys of JsonProperty values (jsonKeys)",
    "details": "Detailed type and attribute information (details=true)",
    "aggrMethods": "The aggregated temporal representation (aggrMethods)",
    "aggrPeriodDuration": "The aggregated temporal representation (aggrPeriodDuration)",
    "showChanges": "Showing previous values (showChanges)",
}
#: Values of ``options`` / ``format`` each operation implements.
_OPTIONS = {
    ("entities", "GET"): {"keyValues", "simplified", "normalized", "sysAttrs"},
    ("entity", "GET"): {"keyValues", "simplified", "normalized", "sysAttrs"},
    ("attrs", "POST"): {"noOverwrite"},
    ("batch", "POST"): {"update", "replace", "noOverwrite", "keyValues", "simplified", "normalized",
                        "sysAttrs"},
    ("temporal", "GET"): {"temporalValues", "simplified", "keyValues", "normalized", "sysAttrs",
                          "aggregatedValues"},
    ("temporal_entity", "GET"): {"temporalValues", "simplified", "keyValues", "normalized", "sysAttrs",
                                 "aggregatedValues"},
}
_UNIMPLEMENTED_OPTIONS = {
    "concise": "The concise representation (options=concise, format=concise)",
    "aggregatedValues": "The aggregated temporal representation (aggregatedValues)",
    "audit": "The audit temporal representation (audit)",
    "sysAttrsLanguage": "Language-tagged system attributes",
    "noUpdate": "Batch upsert without updates (noUpdate)",
}


_QUERY_MEMBERS = frozenset({"type", "entities", "attrs", "q", "geoQ", "@context"})


def check_parameters(call: Call, resource: str) -> None:
    """Refuse a query parameter (or option) the operation does not implement.

    Raises
    ------
    NgsiError
        501 OperationNotSupported for a parameter or option of the specification that the
        broker lacks; 400 BadRequestData for a name the operation does not take at all.
    """
    if resource in _UNIMPLEMENTED_RESOURCES:
        return  # the operation itself answers 501
    known, clause = PARAMETERS[(resource, call.method)]
    where = f"{call.method} {BASE}/{'/'.join(call.segments[:1]) or ''}"
    for name in call.params.keys():
        if name in known:
            continue
        if name in UNIMPLEMENTED_PARAMETERS:
            raise not_implemented(UNIMPLEMENTED_PARAMETERS[name], clause,
                                  f"Remove the parameter {name!r}.")
        takes = ", ".join(sorted(known)) or "no query parameters"
        raise bad_data(f"Unknown query parameter {name[:60]!r} for {where}...; this operation takes "
                       f"{takes}. Check the spelling (names are case-sensitive).")
    allowed = _OPTIONS.get((resource, call.method), set())
    for parameter in ("options", "format"):
        if parameter not in call.params:
            continue
        values = [v.strip() for v in call.params[parameter].split(",")] if parameter == "options" \
            else [call.params[parameter].strip()]
        for value in values:
            if value in allowed or (parameter == "options" and not value):
                continue
            if value in _UNIMPLEMENTED_OPTIONS:
                raise not_implemented(_UNIMPLEMENTED_OPTIONS[value], clause)
            raise bad_data(f"{parameter}={value[:60]!r} is not an option of {where}...; use "
                           f"{', '.join(sorted(allowed)) or 'none'}.")


# -- handlers -------------------------------------------------------------------------------

class Handlers:
    """The NGSI-LD operations, one method per (resource, HTTP method)."""

    def __init__(self, broker: Broker):
        self.broker = broker

    # entities
    def entities_get(self, call: Call) -> Response:
        """GET /entities: query entities (5.7.2)."""
        query = entity_query(call)
        shape = _Shape(call)
        entities, total = self.broker.query_entities(call.tenant, query)
        key_values, sys_attrs = _representation(call)
        headers = _page_headers(call, query.offset, query.limit, total, query.count)
        if call.media == GEO_JSON:
            features = [_feature(entity, call.ctx, key_values, shape) for entity in entities]
            return respond(call, {"type": "FeatureCollection", "features": features}, headers=headers)
        body = [shape.render(entity, call.ctx, key_values, sys_attrs) for entity in entities]
        return respond(call, body, headers=headers)

    def entities_post(self, call: Call) -> Response:
        """POST /entities: create an entity (5.6.1)."""
        entity = self.broker.create_entity(call.tenant, call.payload, call.ctx)
        return Response(status_code=201, headers=_location("entities", entity.id))

    def entity_get(self, call: Call) -> Response:
        """GET /entities/{id}: retrieve an entity (5.7.1)."""
        shape = _Shape(call)
        entity = self.broker.get_entity(call.tenant, call.segments[1])
        if shape.attrs is not None and "attrs" in call.params and shape.attrs.isdisjoint(entity.attrs):
            # Clause 5.7.1: an entity with none of the requested attributes is not found.
            raise not_found(f"Entity {entity.id} has none of the attributes {call.params['attrs']!r}.")
        key_values, sys_attrs = _representation(call)
        if call.media == GEO_JSON:
            return respond(call, _feature(entity, call.ctx, key_values, shape))
        return respond(call, shape.render(entity, call.ctx, key_values, sys_attrs))

    def entity_delete(self, call: Call) -> Response:
        """DELETE /entities/{id}: delete an entity (5.6.6)."""
        self.broker.delete_entity(call.tenant, call.segments[1])
        return Response(status_code=204)

    def _update_response(self, call: Call, result) -> Response:
        """204 when every attribute was written, else 207 with an UpdateResult."""
        if not result.not_updated:
            return Response(status_code=204)
        body = {"updated": [call.ctx.compact(name) for name in result.updated],
                "notUpdated": [{"attributeName": call.ctx.compact(name), "reason": reason}
                               for name, reason in result.not_updated]}
        return respond(call, body, status=207)

    def attrs_patch(self, call: Call) -> Response:
        """PATCH /entities/{id}/attrs: update existing attributes (5.6.2)."""
        result = self.broker.update_attributes(call.tenant, call.segments[1], call.payload, call.ctx,
                                               append=False)
        return self._update_response(call, result)

    def attrs_post(self, call: Call) -> Response:
        """POST /entities/{id}/attrs: append attributes (5.6.3)."""
        result = self.broker.update_attributes(call.tenant, call.segments[1], call.payload, call.ctx,
                                               append=True, overwrite="noOverwrite" not in call.options())
        return self._update_response(call, result)

    def attr_patch(self, call: Call) -> Response:
        """PATCH /entities/{id}/attrs/{name}: partial attribute update (5.6.4)."""
        name = check_name(call.segments[3], "attribute name")
        self.broker.patch_attribute(call.tenant, call.segments[1], call.ctx.expand(name), call.payload,
                                    call.ctx)
        return Response(status_code=204)

    def attr_delete(self, call: Call) -> Response:
        """DELETE /entities/{id}/attrs/{name}: delete an attribute (5.6.5)."""
        name = check_name(call.segments[3], "attribute name")
        self.broker.delete_attribute(call.tenant, call.segments[1], call.ctx.expand(name), call.ctx,
                                     dataset_id=call.params.get("datasetId"),
                                     delete_all=call.params.get("deleteAll") == "true")
        return Response(status_code=204)

    def entities_delete(self, call: Call) -> Response:
        """DELETE /entities?type=...: purge the matching entities (clause 5.6.21)."""
        self.broker.purge(call.tenant, entity_query(call))
        return Response(status_code=204)

    def entity_patch(self, call: Call) -> Response:
        """PATCH /entities/{id}: merge the body into the entity (clause 5.6.17).

        Attributes are merged instance by instance (datasetId), the NGSI-LD Null deletes, and
        a ``type`` other than the entity's is refused (this broker keeps one type per entity).
        """
        self.broker.merge_entity(call.tenant, call.segments[1], call.payload, call.ctx)
        return Response(status_code=204)

    def entity_put(self, call: Call) -> Response:
        """PUT /entities/{id}: replace the entity's attributes (clause 5.6.18)."""
        self.broker.replace_entity(call.tenant, call.segments[1], call.payload, call.ctx)
        return Response(status_code=204)

    def attr_put(self, call: Call) -> Response:
        """PUT /entities/{id}/attrs/{name}: replace one attribute (instance) (clause 5.6.19)."""
        name = check_name(call.segments[3], "attribute name")
        self.broker.replace_attribute(call.tenant, call.segments[1], call.ctx.expand(name), call.payload,
                                      call.ctx)
        return Response(status_code=204)

    def type_get(self, call: Call) -> Response:
        """GET /types/{type}: entity count and attributes of one type (clause 5.7.7)."""
        type_iri = expand_type(call.segments[1], call.ctx, "type")
        count, attributes = self.broker.type_info(call.tenant, type_iri)
        details = [{"id": name, "type": "Attribute", "attributeName": call.ctx.compact(name),
                    "attributeTypes": sorted(kinds)} for name, kinds in sorted(attributes.items())]
        return respond(call, {"id": type_iri, "type": "EntityTypeInfo",
                              "typeName": call.ctx.compact(type_iri), "entityCount": count,
                              "attributeDetails": details})

    def attributes_get(self, call: Call) -> Response:
        """GET /attributes: the attribute names in use (clause 5.7.8)."""
        names = [call.ctx.compact(name) for name in self.broker.attribute_info(call.tenant)]
        return respond(call, {"id": "urn:ngsi-ld:AttributeList:sscity", "type": "AttributeList",
                              "attributeList": names})

    def attribute_get(self, call: Call) -> Response:
        """GET /attributes/{name}: where one attribute is used (clause 5.7.10)."""
        name = call.ctx.expand(check_name(call.segments[1], "attribute name"))
        info = self.broker.attribute_info(call.tenant).get(name)
        if info is None:
            raise not_found(f"No entity has the attribute {call.segments[1]!r}.")
        return respond(call, {"id": name, "type": "Attribute", "attributeName": call.ctx.compact(name),
                              "attributeCount": info["count"], "attributeTypes": sorted(info["kinds"]),
                              "typeNames": sorted(call.ctx.compact(t) for t in info["types"])})

    def types_get(self, call: Call) -> Response:
        """GET /types: the entity types present (5.7.5)."""
        types = [call.ctx.compact(name) for name in self.broker.entity_types(call.tenant)]
        return respond(call, {"id": "urn:ngsi-ld:EntityTypeList:sscity", "type": "EntityTypeList",
                              "typeList": types})

    # batch
    def batch_post(self, call: Call) -> Response:
        """POST /entityOperations/{create|upsert|update|delete} (5.6.7-5.6.10)."""
        operation = call.segments[1]
        if operation == "query":
            return self.query_post(call)
        if operation not in ("create", "upsert", "update", "delete", "merge"):
            raise not_found(f"There is no batch operation {operation!r}; use create, upsert, update, merge, "
                            "delete or query.")
        items = call.payload
        if not isinstance(items, list):
            raise bad_data(f"The body of a batch {operation} must be a JSON array.")
        if not items:
            raise bad_data(f"The batch {operation} is empty; send at least one item.")
        options = call.options()
        if operation == "upsert" and options & {"replace", "update"} == {"replace", "update"}:
            raise bad_data("options=replace and options=update exclude each other.")
        ready, contexts, failed = [], [], []
        for item in items:
            try:
                item_ctx = None if operation == "delete" else call.item_context(item)
            except NgsiError as err:
                failed.append({"entityId": item.get("id") if isinstance(item, dict) else str(item),
                               "error": err.problem()})
                continue
            ready.append(item)
            contexts.append(item_ctx)
        # Batch merge (clause 5.6.20) is batch update: existing entities, merged attribute by
        # attribute, the NGSI-LD Null deleting.
        outcome = self.broker.batch(call.tenant, "update" if operation == "merge" else operation, ready,
                                    contexts, mode="update" if "update" in options else "replace",
                                    overwrite="noOverwrite" not in options)
        errors = failed + outcome.errors
        if errors:
            return respond(call, {"success": outcome.success, "errors": errors}, status=207)
        if operation == "create":
            return respond(call, outcome.success, status=201)
        if operation == "upsert" and outcome.created:
            return respond(call, outcome.created, status=201)
        return Response(status_code=204)

    def query_post(self, call: Call) -> Response:
        """POST /entityOperations/query: a query in the body (clause 5.7.2 via 6.23)."""
        body = call.payload
        if not isinstance(body, dict) or body.get("type") != "Query":
            raise bad_data('The body of POST /entityOperations/query is a Query: {"type": "Query", '
                           '"entities": [{"type": "AirQualityObserved"}], "q": "no2>40"}.')
        for member in body:
            if member not in _QUERY_MEMBERS:
                if member in UNIMPLEMENTED_PARAMETERS or member in ("temporalQ", "scopeQ", "lang", "csf"):
                    raise not_implemented(f"The Query member {member!r}", "5.2.23")
                raise bad_data(f"A Query has no member {member[:60]!r}; use "
                               f"{', '.join(sorted(_QUERY_MEMBERS))}.")
        ctx = call.ctx
        query = EntityQuery(limit=call.int_param("limit", 20), offset=call.int_param("offset", 0),
                            count=call.params.get("count", "false").lower() == "true")
        selectors = body.get("entities")
        if selectors is not None:
            if not isinstance(selectors, list) or not selectors or not all(
                    isinstance(item, dict) and set(item) <= {"type", "id", "idPattern"} and "type" in item
                    for item in selectors):
                raise bad_data('Query "entities" is a non-empty list of {"type": ..., "id"?: ..., '
                               '"idPattern"?: ...}.')
            query.types = tuple(sorted({expand_type(item["type"], ctx, "type") for item in selectors}))
            ids = [item["id"] for item in selectors if "id" in item]
            patterns = {item["idPattern"] for item in selectors if "idPattern" in item}
            if (ids and len(ids) != len(selectors)) or len(patterns) > 1 or (patterns and ids):
                raise not_implemented("A Query whose entity selectors mix ids, id patterns and bare types",
                                      "5.2.23", "Send one query per kind of selector.")
            if ids:
                query.ids = tuple(check_entity_id(i, "id") for i in ids)
            if patterns:
                query.id_pattern = compile_id_pattern(patterns.pop())
        if "attrs" in body:
            if not isinstance(body["attrs"], list) or not body["attrs"]:
                raise bad_data('Query "attrs" is a non-empty list of attribute names.')
            query.attrs = frozenset(ctx.expand(check_name(name, "attrs")) for name in body["attrs"])
        if "q" in body:
            if not isinstance(body["q"], str):
                raise bad_data('Query "q" is a string such as "no2>40".')
            query.q = parse_q(body["q"], ctx.expand)
            query.numeric_terms = numeric_prefilter(body["q"], ctx.expand)
        if "geoQ" in body:
            g = body["geoQ"]
            if not isinstance(g, dict):
                raise bad_data('Query "geoQ" is {"geometry": ..., "coordinates": ..., "georel": ...}.')
            coordinates = g.get("coordinates")
            query.geo = parse_geoquery(g.get("georel"), g.get("geometry"),
                                       coordinates if isinstance(coordinates, str) or coordinates is None
                                       else dumps(coordinates),
                                       ctx.expand(check_name(g["geoproperty"], "geoproperty"))
                                       if "geoproperty" in g else None)
        if query.types is None and query.ids is None and query.attrs is None and query.q is None \
                and query.geo is None:
            raise bad_data('A Query needs "entities", "attrs", "q" or "geoQ".')
        entities, total = self.broker.query_entities(call.tenant, query)
        key_values, sys_attrs = _representation(call)
        body_out = [render_entity(entity, ctx, key_values=key_values, sys_attrs=sys_attrs, attrs=query.attrs)
                    for entity in entities]
        return respond(call, body_out, headers=_page_headers(call, query.offset, query.limit, total,
                                                             query.count))

    # temporal
    def temporal_get(self, call: Call) -> Response:
        """GET /temporal/entities: query temporal evolution (5.7.4); 206 when cut (6.3.10)."""
        query = entity_query(call)
        window = temporal_window(call)
        found, total, page = self.broker.temporal_query(call.tenant, query, window)
        aggregation = _aggregation(call)
        body = [self._temporal_body(call, entity, instances, window, aggregation)
                for entity, instances in found]
        headers = _page_headers(call, query.offset, query.limit, total, query.count)
        return self._temporal_response(call, body, page, headers)

    @staticmethod
    def _temporal_body(call: Call, entity, instances: dict, window: TemporalQuery, aggregation) -> dict:
        if aggregation is not None:
            return render_aggregated(entity, instances, call.ctx, aggregation, window)
        return render_temporal(entity, instances, call.ctx, _temporal_values(call),
                               "sysAttrs" in call.options())

    @staticmethod
    def _temporal_response(call: Call, body, page, headers: dict | None = None) -> Response:
        """200, or 206 Partial Content with Content-Range when the broker cut the window (6.3.10)."""
        headers = dict(headers or {})
        if page.content_range is None:
            return respond(call, body, headers=headers)
        headers["Content-Range"] = page.content_range
        return respond(call, body, status=206, headers=headers)

    def temporal_post(self, call: Call) -> Response:
        """POST /temporal/entities: create or add to temporal evolution (5.6.11)."""
        payload = call.payload
        created = self.broker.temporal_create(call.tenant, payload, call.ctx)
        if created:
            return Response(status_code=201, headers=_location("temporal/entities", payload["id"]))
        return Response(status_code=204)

    def temporal_entity_get(self, call: Call) -> Response:
        """GET /temporal/entities/{id}: retrieve temporal evolution (5.7.3)."""
        window = temporal_window(call)
        entity, instances, page = self.broker.temporal_entity(call.tenant, call.segments[2], window)
        body = self._temporal_body(call, entity, instances, window, _aggregation(call))
        return self._temporal_response(call, body, page)

    def temporal_entity_delete(self, call: Call) -> Response:
        """DELETE /temporal/entities/{id}: forget an entity's history."""
        self.broker.temporal_delete(call.tenant, call.segments[2])
        return Response(status_code=204)

    def temporal_attrs_post(self, call: Call) -> Response:
        """POST /temporal/entities/{id}/attrs: add attribute instances (5.6.12)."""
        self.broker.temporal_add_attributes(call.tenant, call.segments[2], call.payload, call.ctx)
        return Response(status_code=204)

    def temporal_attr_delete(self, call: Call) -> Response:
        """DELETE /temporal/entities/{id}/attrs/{attr}: delete an attribute's history (5.6.13)."""
        name = call.ctx.expand(check_name(call.segments[4], "attribute name"))
        delete_all = call.params.get("deleteAll", "false")
        if delete_all not in ("true", "false"):
            raise bad_data(f"deleteAll is true or false, got {delete_all[:20]!r}.")
        self.broker.temporal_delete_attribute(call.tenant, call.segments[2], name,
                                              dataset_id=call.params.get("datasetId"),
                                              delete_all=delete_all == "true")
        return Response(status_code=204)

    def temporal_instance_patch(self, call: Call) -> Response:
        """PATCH /temporal/entities/{id}/attrs/{attr}/{instanceId}: modify one instance (5.6.14)."""
        name = call.ctx.expand(check_name(call.segments[4], "attribute name"))
        self.broker.temporal_modify_instance(call.tenant, call.segments[2], name, call.segments[5],
                                             call.payload, call.ctx)
        return Response(status_code=204)

    def temporal_instance_delete(self, call: Call) -> Response:
        """DELETE /temporal/entities/{id}/attrs/{attr}/{instanceId}: delete one instance (5.6.15)."""
        name = call.ctx.expand(check_name(call.segments[4], "attribute name"))
        self.broker.temporal_delete_instance(call.tenant, call.segments[2], name, call.segments[5])
        return Response(status_code=204)

    # subscriptions
    def subscriptions_get(self, call: Call) -> Response:
        """GET /subscriptions: list subscriptions (5.8.4)."""
        limit, offset = call.int_param("limit", 20), call.int_param("offset", 0)
        docs, total = self.broker.list_subscriptions(call.tenant, limit, offset)
        body = [self.broker.render_subscription(doc, call.ctx) for doc in docs]
        count = call.params.get("count", "false").lower() == "true"
        return respond(call, body, headers=_page_headers(call, offset, limit, total, count))

    def subscriptions_post(self, call: Call) -> Response:
        """POST /subscriptions: create a subscription (5.8.1)."""
        subscription_id = self.broker.create_subscription(call.tenant, call.payload, call.ctx)
        return Response(status_code=201, headers=_location("subscriptions", subscription_id))

    def subscription_get(self, call: Call) -> Response:
        """GET /subscriptions/{id}: retrieve a subscription (5.8.3)."""
        doc = self.broker.get_subscription(call.tenant, call.segments[1])
        return respond(call, self.broker.render_subscription(doc, call.ctx))

    def subscription_patch(self, call: Call) -> Response:
        """PATCH /subscriptions/{id}: update a subscription (5.8.2)."""
        self.broker.update_subscription(call.tenant, call.segments[1], call.payload, call.ctx)
        return Response(status_code=204)

    def subscription_delete(self, call: Call) -> Response:
        """DELETE /subscriptions/{id}: delete a subscription (5.8.5)."""
        self.broker.delete_subscription(call.tenant, call.segments[1])
        return Response(status_code=204)

    # @context store (clause 5.13, HTTP binding 6.31-6.32)
    def _context_params(self, call: Call, allowed: tuple[str, ...]) -> None:
        unknown = sorted(set(call.params.keys()) - set(allowed))
        if unknown:
            raise bad_data(f"Unknown parameter {unknown[0]!r} for {call.path}; this operation takes "
                           f"{', '.join(allowed) or 'no parameters'} (clause 6.31-6.32).")

    def _context_flag(self, call: Call, name: str) -> bool:
        value = call.params.get(name, "false")
        if value not in ("true", "false"):
            raise bad_data(f"{name} must be true or false, got {value[:40]!r}.")
        return value == "true"

    def _context_details(self, entry) -> dict:
        """The metadata of a stored @context (clause 5.13.3.5 / 5.13.4.5)."""
        details = {"URL": self.broker.contexts.url_of(entry), "localId": entry.local_id, "kind": entry.kind,
                   "timestamp": entry.created_at}
        if entry.builtin:
            details["extraInfo"] = {"builtin": True}
        return details

    def _context_json(self, call: Call, body, status: int = 200, headers: dict | None = None) -> Response:
        # Context documents and their metadata are not NGSI-LD data: no @context of their own.
        return Response(dumps(body).encode("utf-8"), status, headers=headers,
                        media_type=JSON_LD if call.media == JSON_LD else JSON)

    def contexts_get(self, call: Call) -> Response:
        """GET /jsonldContexts: list the stored @contexts (clause 5.13.3)."""
        self._context_params(call, ("details", "kind"))
        details = self._context_flag(call, "details")
        kind = call.params.get("kind")
        if kind is not None and kind not in KINDS:
            raise bad_data(f"kind must be one of {', '.join(KINDS)}, got {kind[:40]!r}.")
        entries = self.broker.contexts.stored(kind)
        if details:
            return self._context_json(call, [self._context_details(entry) for entry in entries])
        return self._context_json(call, [self.broker.contexts.url_of(entry) for entry in entries])

    def contexts_post(self, call: Call) -> Response:
        """POST /jsonldContexts: add a hosted @context (clause 5.13.2)."""
        self._context_params(call, ())
        entry = self.broker.contexts.add_hosted(call.payload)
        return Response(status_code=201, headers=_location("jsonldContexts", entry.local_id))

    def context_get(self, call: Call) -> Response:
        """GET /jsonldContexts/{id}: serve a hosted or implicitly created @context, or metadata (5.13.4)."""
        self._context_params(call, ("details",))
        entry = self.broker.contexts.find(call.segments[1])
        if self._context_flag(call, "details"):
            return self._context_json(call, self._context_details(entry))
        if entry.kind == "Cached":
            raise NgsiError("OperationNotSupported", f"{entry.url} is a cached copy of a remote @context; "
                            "the broker serves only hosted and implicitly created ones (clause 5.13.4). "
                            "Ask details=true for its metadata.")
        return self._context_json(call, entry.document)

    def context_delete(self, call: Call) -> Response:
        """DELETE /jsonldContexts/{id}: remove a stored @context (clause 5.13.5)."""
        self._context_params(call, ("reload",))
        if self._context_flag(call, "reload"):
            entry = self.broker.contexts.find(call.segments[1])
            if entry.kind != "Cached":
                raise bad_data(f"reload=true applies to cached @contexts only; {entry.local_id} is "
                               f"{entry.kind} (clause 5.13.5).")
            raise NgsiError("LdContextNotAvailable", f"Cannot reload {entry.url}: this broker works offline "
                            "and never downloads a context. Restart it with --context URL=FILE holding the "
                            "new version.")
        self.broker.contexts.delete(call.segments[1])
        return Response(status_code=204)


def _temporal_values(call: Call) -> bool:
    fmt = call.params.get("format")
    return bool(call.options() & {"temporalValues", "simplified", "keyValues"}) or \
        fmt in ("temporalValues", "simplified", "keyValues")


def resource_of(segments: list[str]) -> str | None:
    """The resource name of an NGSI-LD path (after /ngsi-ld/v1), or None if there is none."""
    n = len(segments)
    head = segments[0] if segments else ""
    if head == "entities":
        if n == 1:
            return "entities"
        if n == 2:
            return "entity"
        if segments[2] == "attrs":
            return "attrs" if n == 3 else ("attr" if n == 4 else None)
    elif head == "entityOperations" and n == 2:
        return "batch"
    elif head == "types" and n in (1, 2):
        return "types" if n == 1 else "type"
    elif head == "attributes" and n in (1, 2):
        return "attributes" if n == 1 else "attribute"
    elif head == "temporal" and n >= 2 and segments[1] == "entities":
        if n >= 4 and segments[3] == "attrs" and n <= 6:
            return ("temporal_attrs", "temporal_attr", "temporal_instance")[n - 4]
        return "temporal" if n == 2 else ("temporal_entity" if n == 3 else None)
    elif head in _UNIMPLEMENTED_RESOURCES:
        return head
    elif head == "subscriptions":
        return "subscriptions" if n == 1 else ("subscription" if n == 2 else None)
    elif head == "jsonldContexts":
        return "contexts" if n == 1 else ("context" if n == 2 else None)
    return None


#: Resources of the specification the broker does not offer: every method answers 501.
_UNIMPLEMENTED_RESOURCES = {
    "csourceRegistrations": "context source registrations, clause 5.9",
    "csourceSubscriptions": "context source registration subscriptions, clause 5.11",
    "entityMaps": "entity maps, clause 5.14",
    "info": "broker information (/info/sourceIdentity, /info/conformance), clause 5.15",
    "snapshots": "snapshots, clause 5.16",
}
_ALL_METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")
_ROUTES = {
    "entities": {"GET": "entities_get", "POST": "entities_post", "DELETE": "entities_delete"},
    "entity": {"GET": "entity_get", "DELETE": "entity_delete", "PATCH": "entity_patch", "PUT": "entity_put"},
    "attrs": {"PATCH": "attrs_patch", "POST": "attrs_post"},
    "attr": {"PATCH": "attr_patch", "DELETE": "attr_delete", "PUT": "attr_put"},
    "batch": {"POST": "batch_post"},
    "types": {"GET": "types_get"},
    "type": {"GET": "type_get"},
    "attributes": {"GET": "attributes_get"},
    "attribute": {"GET": "attribute_get"},
    **{name: dict.fromkeys(_ALL_METHODS, "types_get") for name in _UNIMPLEMENTED_RESOURCES},
    "temporal": {"GET": "temporal_get", "POST": "temporal_post"},
    "temporal_entity": {"GET": "temporal_entity_get", "DELETE": "temporal_entity_delete"},
    "temporal_attrs": {"POST": "temporal_attrs_post"},
    "temporal_attr": {"DELETE": "temporal_attr_delete"},
    "temporal_instance": {"PATCH": "temporal_instance_patch", "DELETE": "temporal_instance_delete"},
    "subscriptions": {"GET": "subscriptions_get", "POST": "subscriptions_post"},
    "subscription": {"GET": "subscription_get", "PATCH": "subscription_patch",
                     "DELETE": "subscription_delete"},
    "contexts": {"GET": "contexts_get", "POST": "contexts_post"},
    "context": {"GET": "context_get", "DELETE": "context_delete"},
}
_GEO_RESOURCES = ("entities", "entity")
#: The raw path of GET /entities/{id} (an id's "/" arrives as %2F), with or without a final "/".
_ENTITY_PATH = re.compile(rb"/ngsi-ld/v1/entities/[^/]+/?\Z")


def create_app(broker: Broker, max_body_bytes: int = MAX_BODY_BYTES,
               max_url_bytes: int = MAX_URL_BYTES, threads: int = THREADS):
    """The Starlette application of ``broker``.

    Parameters
    ----------
    broker : Broker
        The broker whose operations the application serves.
    max_body_bytes : int
        Largest request body accepted: a body announced (``Content-Length``) or found
        (chunked) to be larger is answered 413 PayloadTooLarge without being read whole.
    max_url_bytes : int
        Longest path and query string accepted; a longer one is answered 414 UriTooLong.
    threads : int
        Most NGSI-LD operations run at once, each in a worker thread (:data:`THREADS` by
        default). The event loop only reads requests and writes responses, so a slow request
        delays no other client's; more than ``threads`` slow requests at once make the next
        ones wait for a free thread.

    Returns
    -------
    ASGI application
        The Starlette application behind a thin limits wrapper (its attributes, such as
        ``state``, are those of the Starlette app): run it with uvicorn (``sscity platform
        serve``) or call it in process (``sscity.platform.Client``).
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}.")
    handlers = Handlers(broker)
    store = broker.store
    limiter = anyio.CapacityLimiter(threads)
    methods = {name: {method: getattr(handlers, attr) for method, attr in table.items()}
               for name, table in _ROUTES.items()}

    async def ngsi(request: Request) -> Response:
        body = b""
        if request.method in _BODY_METHODS:
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_body_bytes:
                    return problem_response(too_large(max_body_bytes), headers={"Connection": "close"})
                chunks.append(chunk)
            body = b"".join(chunks)
        if request.method == "GET" and _ENTITY_PATH.match(request.scope.get("raw_path") or b""):
            # A GET by id is answered here on the event loop: the hop to a worker thread would
            # cost more CPU than the request itself. Store.inline() keeps it cheap: if it would
            # wait for a lock or decode a large entity, WouldBlock sends it to a worker thread.
            try:
                with store.inline():
                    return dispatch(request, body)
            except WouldBlock:
                pass
        # Every other operation runs in a worker thread, so the event loop keeps reading,
        # answering and dispatching other clients' requests while one is slow (a q over many
        # entities, a large batch): no request blocks the others (issue 17). The limiter bounds
        # the threads, hence the SQLite connections and memory that concurrent requests take.
        return await anyio.to_thread.run_sync(dispatch, request, body, limiter=limiter)

    def dispatch(request: Request, body: bytes) -> Response:
        raw = request.scope.get("raw_path") or request.scope["path"].encode("utf-8")
        try:
            parts = raw.decode("utf-8").split("/")[3:]
            segments = [unquote(part) for part in parts]
        except UnicodeDecodeError:
            return problem_response(bad_data("The path is not valid UTF-8."))
        if segments and segments[-1] == "":
            segments.pop()
        if segments == ["version"] and request.method == "GET":
            return version_response()
        resource = resource_of(segments)
        if resource is None:
            return problem_response(not_found(f"There is no NGSI-LD resource at {request.url.path}. "
                                              f"Paths start with {BASE}/entities, /entityOperations, "
                                              "/temporal/entities or /subscriptions."))
        table = methods[resource]
        handler = table.get(request.method)
        if handler is None:
            return problem_response(NgsiError("MethodNotAllowed", f"{request.method} is not allowed on "
                                              f"{request.url.path}; use {', '.join(table)}."),
                                    headers={"Allow": ", ".join(table)})
        if resource in _UNIMPLEMENTED_RESOURCES:  # refused whatever the request carries
            name = "/".join(segments[:2]) if segments[0] == "temporal" else segments[0]
            return problem_response(not_implemented(
                f"{request.method} {BASE}/{name}... ({_UNIMPLEMENTED_RESOURCES[resource]})",
                _UNIMPLEMENTED_RESOURCES[resource].rsplit("clause ", 1)[-1].replace("clauses ", ""),
                "ORION-LD.md in sscity.platform lists what the broker offers."))
        try:
            call = Call(request, segments, body, broker.contexts, resource in _GEO_RESOURCES)
            check_parameters(call, resource)
            return handler(call)
        except NgsiError as err:
            return problem_response(err)
        except WouldBlock:  # an inline request that must run in a worker thread (ngsi above)
            raise
        except Exception:  # a bug: report it as ProblemDetails, never as a bare traceback
            _log.exception("internal error on %s %s", request.method, request.url.path)
            return problem_response(NgsiError(
                "InternalError", "The broker failed on this request; this is a bug in sscity.platform. "
                "Please report the request that caused it."))

    def version_response() -> Response:
        return Response(dumps({"broker": "sscity embedded NGSI-LD broker", "version": VERSION,
                               "ngsi-ld": "1.8 (course subset)",
                               "database": broker.store.path}).encode(), media_type=JSON)

    async def version(request: Request) -> Response:
        return version_response()

    async def health(request: Request) -> Response:
        return Response(b'{"status":"UP"}', media_type=JSON)

    async def inbox(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            tenant = Broker.check_tenant(request.headers.get("ngsild-tenant"))
        except NgsiError as error:
            return problem_response(error)
        if request.method == "DELETE":
            broker.notifier.clear_inbox(name, tenant)
            return Response(status_code=204)
        return Response(dumps(broker.notifier.inbox(name, tenant)).encode("utf-8"), media_type=JSON)

    every_method = ["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"]
    routes = [  # the NGSI-LD route first: it takes almost every request
        Route(BASE + "/{rest:path}", ngsi, methods=every_method),
        Route("/version", version, methods=["GET"]),
        Route("/actuator/health", health, methods=["GET"]),
        Route("/sscity/inbox/{name}", inbox, methods=["GET", "DELETE"]),
    ]
    async def no_route(request: Request, exc) -> Response:
        # Paths no route matches (including ones Starlette's patterns cannot, such as a
        # percent-encoded newline) still get a ProblemDetails answer.
        if exc.status_code == 405:
            return problem_response(NgsiError("MethodNotAllowed", f"{request.method} is not allowed on "
                                              f"{request.url.path}."))
        return problem_response(not_found(f"There is no resource at {request.url.path!r}."))

    app = Starlette(routes=routes, exception_handlers={404: no_route, 405: no_route})
    app.state.broker = broker
    app.state.max_body_bytes = max_body_bytes
    app.state.max_url_bytes = max_url_bytes
    return _Limits(app, max_body_bytes, max_url_bytes, ngsi)


def too_large(max_body_bytes: int) -> NgsiError:
    """The 413 of a body over the limit."""
    return NgsiError("PayloadTooLarge", f"The request body is larger than the broker accepts "
                     f"({max_body_bytes:,} bytes). Send fewer entities per request (a batch in chunks, "
                     "e.g. Client.batch_upsert(..., chunk_size=100)).")


class _Limits:
    """ASGI wrapper: 414 for an over-long URL, 413 for an announced over-large body, at once.

    Bodies sent without ``Content-Length`` (chunked) are counted as they are read by the
    NGSI-LD endpoint, which stops at the limit. Attributes of the wrapped Starlette app
    (``state``, ``routes``...) are reachable through this object.

    A request under ``/ngsi-ld/v1/`` with one of the usual methods goes straight to the
    NGSI-LD endpoint ``ngsi``, the route Starlette would pick for it: its middleware and
    router cost about a tenth of a GET by id, and the endpoint answers every error itself.
    """

    def __init__(self, app: Starlette, max_body_bytes: int, max_url_bytes: int, ngsi=None):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_url_bytes = max_url_bytes
        self.ngsi = ngsi

    def __getattr__(self, name):
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            error = None
            # (the server's httptools protocol stands in a short path for an over-long URL, and
            # says how long it was in an extension)
            target = (scope.get("extensions") or {}).get("sscity.url_bytes") or \
                len(scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")) \
                + len(scope.get("query_string", b""))
            if target > self.max_url_bytes:
                error = NgsiError("UriTooLong", f"The request URL is {target:,} bytes long; the broker "
                                  f"accepts at most {self.max_url_bytes:,}. Send fewer ids or attributes "
                                  "per request, or a shorter q.")
            else:
                for key, value in scope.get("headers", ()):
                    if key == b"content-length":
                        try:
                            declared = int(value)
                        except ValueError:
                            error = invalid_request("The Content-Length header is not a number.")
                        else:
                            if declared > self.max_body_bytes:
                                error = too_large(self.max_body_bytes)
                        break
            if error is not None:
                response = problem_response(error, headers={"Connection": "close"})
                await response(scope, receive, send)
                return
            if self.ngsi is not None and scope["method"] in _BYPASS_METHODS and \
                    scope["path"].startswith(_BASE_SLASH) and not scope.get("root_path"):
                try:
                    response = await self.ngsi(Request(scope, receive))
                except ClientDisconnect:  # the client left while sending its body: nobody to answer
                    return
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


_BYPASS_METHODS = frozenset(("GET", "POST", "PATCH", "PUT", "DELETE"))
_BASE_SLASH = BASE + "/"
