"""JSON-LD ``@context`` handling without the network (NGSI-LD clause 6.3.5).

An NGSI-LD broker stores attribute names and entity types as full IRIs ("expanded") and
gives them back as short terms ("compacted") with the caller's ``@context``. This module is
a small term-map processor, enough for NGSI-LD payloads (no pyld):

- a context is a URL, an inline object or a list of both; later definitions win, and the
  NGSI-LD core context is always processed last so its terms cannot be redefined;
- term definitions may be IRIs, compact IRIs (``sdm:no2``) or ``{"@id": ...}`` objects;
  ``@vocab`` expands any undefined term (the core context sets it to
  ``https://uri.etsi.org/ngsi-ld/default-context/``);
- URLs are never fetched: they resolve only from a registry of contexts shipped with the
  package (the ETSI core context URLs and the course context) plus any the broker is given.
  Any other URL is an ``LdContextNotAvailable`` error (HTTP 503).

The resolver is also the broker's local context store of clause 5.13 (the
``/ngsi-ld/v1/jsonldContexts`` API), with the three kinds of stored contexts of that clause:

- ``Cached``: a copy of a remote context, kept under its original URL. The shipped ones and
  those given to ``sscity platform serve --context URL=FILE`` (or a folder with a
  ``contexts.json`` index) are of this kind: the broker never downloads one itself;
- ``Hosted``: a context a client added with ``POST /jsonldContexts`` (clause 5.13.2), served at
  ``<broker>/ngsi-ld/v1/jsonldContexts/<id>``;
- ``ImplicitlyCreated``: an inline context (an object or a list in an ``application/ld+json``
  body) that the broker had to name by a URL, e.g. in the ``Link`` header of an
  ``application/json`` response or notification (the header can carry a URL only). Its id is
  a digest of the context, so the same inline context always gets the same URL, also after a
  restart.

With a context cache folder (``serve --context-cache DIR``) hosted and implicitly created
contexts are kept as files there (``hosted/<id>.jsonld``, ``implicit/<id>.jsonld``) and come
back when the broker restarts; the folder's ``contexts.json`` (URL -> file) adds cached ones.

Processed contexts are cached, so a request costs one dictionary look-up.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path

from .errors import NgsiError, bad_data, not_found
from .timeutil import now_iso

CORE_CONTEXT_URL = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
#: The URL by which clients name the course context. The embedded broker resolves it from
#: the shipped file; for Orion-LD serve the file yourself and point SSCITY_CONTEXT_URL at it.
COURSE_CONTEXT_URL = "https://sscity.example.org/ngsi-ld/sscity-context.jsonld"
JSONLD_CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
NGSI_LD = "https://uri.etsi.org/ngsi-ld/"

_CORE_ALIASES = [
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
    *(f"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.{minor}.jsonld" for minor in range(10)),
]
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_GEN_DELIMS = ":/?#[]@"  # RFC 3986 gen-delims: an IRI ending in one can be a compact-IRI prefix
#: The kinds of stored contexts (clause 5.13.3).
KINDS = ("Cached", "Hosted", "ImplicitlyCreated")
#: Path of the @context API (clause 6.31/6.32); a stored context's local URL ends in ``<path><id>``.
CONTEXTS_PATH = "/ngsi-ld/v1/jsonldContexts/"
#: The index file of a context folder: a JSON object mapping each context URL to a file name.
INDEX_FILE = "contexts.json"
#: Most implicitly created contexts kept (clients can send endless inline contexts).
MAX_IMPLICIT = 1000
#: Where the broker says it is, for the URLs of hosted contexts, unless told otherwise.
DEFAULT_BASE_URL = "http://localhost:1026"
_LOCAL_ID = re.compile(r"[A-Za-z0-9._\-]{1,100}\Z")


@cache
def shipped_context(name: str) -> dict:
    """A context document shipped in ``sscity/platform/contexts/`` (parsed JSON)."""
    text = resources.files(__package__).joinpath("contexts", name).read_text(encoding="utf-8")
    return json.loads(text)


def default_registry() -> dict[str, str]:
    """URL -> shipped file name, for every context URL the broker answers without a network."""
    registry = {}
    for url in _CORE_ALIASES:
        registry[url] = "ngsi-ld-core-context-v1.8.jsonld"
        registry["http://" + url.removeprefix("https://")] = "ngsi-ld-core-context-v1.8.jsonld"
    registry[COURSE_CONTEXT_URL] = "sscity-context.jsonld"
    return registry


class TermMap:
    """A processed ``@context``: expands terms to IRIs and compacts IRIs back to terms.

    Parameters
    ----------
    terms : dict
        Term -> absolute IRI.
    vocab : str or None
        The ``@vocab`` IRI that expands undefined terms.
    source : str, dict, list or None
        The context as the client gave it, echoed in ``application/ld+json`` responses.
    link_url : str or callable
        A URL naming this context in a ``Link`` header of ``application/json`` responses, or
        a function that makes one when first asked (an inline context gets a URL only when a
        response or notification needs one: see :meth:`ContextResolver.implicit_url`).
    prefix_flags : dict, optional
        Term -> ``"simple"`` (defined by a plain IRI string) or the ``@prefix`` value of an
        expanded definition (False when absent). Decides which terms compact IRIs may use
        (JSON-LD 1.1, Create Term Definition): a simple term whose IRI ends in a gen-delim
        character (``:/?#[]@``), or one defined with ``"@prefix": true``. Without it, every
        term whose IRI ends in ``/``, ``#`` or ``:`` is a prefix.
    """

    def __init__(self, terms: dict[str, str], vocab: str | None, source, link_url,
                 prefix_flags: dict | None = None):
        self.terms = terms
        self.vocab = vocab
        self.source = source
        self._link_url = link_url
        if prefix_flags is None:
            eligible = [(t, iri) for t, iri in terms.items() if iri[-1:] in "/#:"]
        else:
            eligible = [(t, iri) for t, iri in terms.items()
                        if prefix_flags.get(t) is True
                        or (prefix_flags.get(t) == "simple" and iri[-1:] in _GEN_DELIMS
                            and ":" not in t and "/" not in t)]
        # Prefixes usable in compact IRIs (sdm:no2), the longest IRI first.
        self._prefixes = sorted(eligible, key=lambda pair: -len(pair[1]))
        self._reverse: dict[str, str] = {}
        for term, iri in terms.items():
            self._reverse.setdefault(iri, term)
        self._expanded: dict[str, str] = {}
        self._compacted: dict[str, str] = {}

    @property
    def link_url(self) -> str:
        """The URL that names this context (a ``Link`` header can carry only a URL)."""
        if callable(self._link_url):
            self._link_url = self._link_url()
        return self._link_url

    def expand(self, term: str) -> str:
        """The IRI of ``term`` (an attribute name or an entity type).

        Defined terms map to their IRI; ``prefix:suffix`` with a defined prefix becomes the
        prefix IRI plus the suffix; other ``scheme:...`` strings are already IRIs; anything
        else is appended to ``@vocab``.
        """
        hit = self._expanded.get(term)
        if hit is not None:
            return hit
        iri = self.terms.get(term)
        if iri is None:
            prefix, colon, suffix = term.partition(":")
            if colon and prefix in self.terms and not suffix.startswith("//"):
                iri = self.terms[prefix] + suffix
            elif colon and _SCHEME.match(term):
                iri = term
            elif self.vocab is not None:
                iri = self.vocab + term
            else:
                iri = term
        if len(self._expanded) < 10_000:  # bounded: terms come from clients
            self._expanded[term] = iri
        return iri

    def compact(self, iri: str) -> str:
        """The shortest name of ``iri`` under this context (the inverse of :meth:`expand`)."""
        hit = self._compacted.get(iri)
        if hit is not None:
            return hit
        term = self._reverse.get(iri)
        if term is None and self.vocab and iri.startswith(self.vocab):
            rest = iri[len(self.vocab):]
            if rest and rest not in self.terms and ":" not in rest:
                term = rest
        if term is None and not iri.startswith(DEFAULT_VOCAB):
            # Compact IRIs (sdm:no2) for user prefixes; default-context IRIs stay whole, since
            # "ngsi-ld:default-context/x" would only puzzle a reader.
            for prefix, prefix_iri in self._prefixes:
                if iri.startswith(prefix_iri) and len(iri) > len(prefix_iri):
                    term = f"{prefix}:{iri[len(prefix_iri):]}"
                    break
        if term is None:
            term = iri
        if len(self._compacted) < 10_000:
            self._compacted[iri] = term
        return term


@dataclass
class StoredContext:
    """One entry of the local context store (clause 5.13).

    Attributes
    ----------
    local_id : str
        The id under ``/jsonldContexts/`` (clause 5.13.4).
    kind : str
        ``Cached``, ``Hosted`` or ``ImplicitlyCreated``.
    document : dict
        The context document, ``{"@context": ...}``.
    created_at : str
        When the broker stored it (for cached ones: when it read the file).
    url : str or None
        The original URL of a cached context; hosted and implicitly created ones have none
        (their URL is the broker's own, :meth:`ContextResolver.url_of`).
    builtin : bool
        Shipped with the package (the core and course contexts): cannot be deleted.
    """

    local_id: str
    kind: str
    document: dict
    created_at: str
    url: str | None = None
    builtin: bool = False


class ContextResolver:
    """Turns the ``@context`` of a request into a cached :class:`TermMap`, never fetching.

    It also keeps the local context store of clause 5.13 (see the module docstring).

    Parameters
    ----------
    extra : dict, optional
        More URL -> context document (parsed JSON) pairs the broker may resolve, e.g. an
        instructor's own context. They are added to the store as ``Cached`` contexts.

    Attributes
    ----------
    base_url : str
        Scheme, host and port by which clients reach the broker, used in the URLs of hosted
        and implicitly created contexts (``sscity platform serve`` sets it from its address).
    """

    def __init__(self, extra: dict[str, dict] | None = None):
        self._registry = default_registry()
        self._lock = threading.RLock()
        self._cache: dict[str, TermMap] = {}
        self._stored: dict[str, StoredContext] = {}
        self._by_url: dict[str, str] = {}  # URL of a cached context -> local id
        self._cache_dir: Path | None = None
        self.base_url = DEFAULT_BASE_URL
        now = now_iso()
        for url in (CORE_CONTEXT_URL, COURSE_CONTEXT_URL):
            self._add(StoredContext(_url_id(url), "Cached", shipped_context(self._registry[url]), now,
                                    url=url, builtin=True))
        for url, document in (extra or {}).items():
            self.register(url, document)
        self.core = self._build(CORE_CONTEXT_URL, CORE_CONTEXT_URL)

    def known_urls(self) -> list[str]:
        """Every context URL this resolver answers (hosted ones by their local URL)."""
        urls = set(self._registry)
        urls.update(self.url_of(entry) for entry in list(self._stored.values()))
        return sorted(urls)

    def resolve(self, context) -> TermMap:
        """The term map of a context given as a URL, an inline object, a list, or None (core)."""
        if context is None:
            return self.core
        if isinstance(context, str):
            key = context
            link_url = context
        else:
            try:
                key = json.dumps(context, sort_keys=True)
            except (TypeError, ValueError) as err:
                raise bad_data(f"The @context cannot be read: {err}.") from None

            def link_url():  # named only when a Link header needs it (clause 5.13: ImplicitlyCreated)
                return self.implicit_url(context, key)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        terms = self._build(context, link_url)
        with self._lock:
            if len(self._cache) > 512:  # clients can send endless inline contexts
                self._cache.clear()
            self._cache[key] = terms
        return terms

    def from_link_header(self, header: str | None) -> TermMap:
        """The term map named by a ``Link: <url>; rel="http://www.w3.org/ns/json-ld#context"`` header."""
        if not header:
            return self.core
        hit = self._cache.get("link " + header)
        if hit is not None:
            return hit
        url = parse_context_link(header)
        terms = self.resolve(url) if url else self.core
        with self._lock:
            self._cache["link " + header] = terms
        return terms

    # -- the local context store (clause 5.13) ------------------------------------------

    def url_of(self, entry: StoredContext) -> str:
        """The URL of a stored context: its original URL if cached, else the broker's own."""
        return entry.url or f"{self.base_url.rstrip('/')}{CONTEXTS_PATH}{entry.local_id}"

    def register(self, url: str, document, created_at: str | None = None) -> StoredContext:
        """Store ``document`` as the ``Cached`` copy of the context at ``url`` (replacing one).

        Raises
        ------
        NgsiError
            BadRequestData if ``url`` is not an absolute URL or the document is not a
            context document (an object with an ``@context`` member that can be processed).
        """
        if not isinstance(url, str) or not re.match(r"https?://[^\s/]+", url):
            raise bad_data(f"A context URL must be an absolute http(s) URL, got {url!r}.")
        if url in self._registry:
            raise bad_data(f"{url} is a context shipped with the broker; it cannot be replaced.")
        self._check_document(document, url)
        entry = StoredContext(_url_id(url), "Cached", document, created_at or now_iso(), url=url)
        self._add(entry)
        return entry

    def add_hosted(self, document) -> StoredContext:
        """Store a client's context document as ``Hosted`` (clause 5.13.2) under a new id."""
        self._check_document(document, "the posted context")
        entry = StoredContext(uuid.uuid4().hex, "Hosted", document, now_iso())
        self._add(entry)
        self._persist(entry)
        return entry

    def implicit_url(self, context, key: str | None = None) -> str:
        """The URL of an inline context, stored as ``ImplicitlyCreated`` the first time.

        The id is a digest of the context (canonical JSON), so the URL is the same on every
        request and after a restart; the context stays served at it for clients and
        notification receivers that dereference the ``Link`` header.
        """
        if key is None:
            key = json.dumps(context, sort_keys=True)
        local_id = "implicit-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
        entry = self._stored.get(local_id)
        if entry is None:
            entry = StoredContext(local_id, "ImplicitlyCreated", {"@context": context}, now_iso())
            with self._lock:
                implicit = [e.local_id for e in self._stored.values() if e.kind == "ImplicitlyCreated"]
                for old in implicit[:max(0, len(implicit) - MAX_IMPLICIT + 1)]:
                    self._drop_file(self._stored[old])  # bounded on disk as in memory
                    self._remove(old)
                self._add(entry)
            self._persist(entry)
        return self.url_of(entry)

    def stored(self, kind: str | None = None) -> list[StoredContext]:
        """The stored contexts (of one kind), oldest first."""
        return [entry for entry in list(self._stored.values()) if kind is None or entry.kind == kind]

    def find(self, id_or_url: str) -> StoredContext:
        """A stored context by local id, by original URL (cached) or by its local URL.

        Raises
        ------
        NgsiError
            ResourceNotFound if no stored context has that id or URL.
        """
        entry = self._stored.get(id_or_url)
        if entry is None and id_or_url in self._by_url:
            entry = self._stored.get(self._by_url[id_or_url])
        if entry is None and CONTEXTS_PATH in id_or_url:
            entry = self._stored.get(id_or_url.rsplit(CONTEXTS_PATH, 1)[1])
        if entry is None:
            raise not_found(f"There is no @context {id_or_url!r} in this broker; GET "
                            "/ngsi-ld/v1/jsonldContexts lists them.")
        return entry

    def delete(self, id_or_url: str) -> StoredContext:
        """Remove a stored context (clause 5.13.5); requests naming it get 503 afterwards.

        Raises
        ------
        NgsiError
            ResourceNotFound if unknown; BadRequestData for a context shipped with the broker.
        """
        entry = self.find(id_or_url)
        if entry.builtin:
            raise bad_data(f"{entry.url} is built into the broker and cannot be deleted.")
        with self._lock:
            self._remove(entry.local_id)
        self._drop_file(entry)
        return entry

    def load(self, spec: str | Path) -> list[str]:
        """Register the contexts named by one ``--context`` argument; returns their URLs.

        ``spec`` is ``URL=FILE`` (the file is the context document the broker answers for
        ``URL``) or a folder holding an index ``contexts.json`` that maps each URL to a file
        of the folder: ``{"https://example.org/ctx.jsonld": "ctx.jsonld"}``.

        Raises
        ------
        ValueError
            A missing file or index, a file that is not a JSON context document, or a bare
            file with no URL (the message says how to name it).
        """
        text = str(spec)
        path = Path(text)
        if path.is_dir():
            return self._load_folder(path, required=True)
        for match in re.finditer("=", text):
            url, file = text[:match.start()], text[match.end():]
            if re.match(r"https?://", url) and Path(file).is_file():
                self._load_file(url, Path(file))
                return [url]
        if path.is_file():
            raise ValueError(f"{text}: say which URL this context answers for, e.g. --context "
                             f"https://example.org/my-context.jsonld={text} (or put it in a folder with "
                             f"a {INDEX_FILE} index that maps URLs to files).")
        raise ValueError(f"{text}: no such folder or URL=FILE (the file must exist). Use --context "
                         f"URL=FILE or --context FOLDER (with a {INDEX_FILE} mapping URLs to files).")

    def use_cache_dir(self, folder: str | Path) -> None:
        """Keep hosted and implicitly created contexts as files in ``folder`` (made if missing).

        Those already there are loaded back (same ids, so their URLs still work), and the
        folder's ``contexts.json`` index, if any, adds cached contexts as :meth:`load` does.
        """
        folder = Path(folder)
        for sub in _KIND_DIRS.values():
            (folder / sub).mkdir(parents=True, exist_ok=True)
        for kind, sub in _KIND_DIRS.items():
            for file in sorted((folder / sub).glob("*.jsonld")):
                if not _LOCAL_ID.match(file.stem):
                    continue
                document = _read_json(file)
                self._check_document(document, str(file))
                self._add(StoredContext(file.stem, kind, document, _mtime(file)))
        if (folder / INDEX_FILE).is_file():
            self._load_folder(folder, required=False)
        self._cache_dir = folder

    # -- store internals ----------------------------------------------------------------

    def _add(self, entry: StoredContext) -> None:
        with self._lock:
            # Replacing a document (or removing one) drops the processed term maps, which may
            # have been built from it; a new id or URL cannot have been resolved before.
            self._remove(entry.local_id)
            self._stored[entry.local_id] = entry
            if entry.url:
                self._by_url[entry.url] = entry.local_id

    def _remove(self, local_id: str) -> None:
        entry = self._stored.pop(local_id, None)
        if entry is not None:
            if entry.url:
                self._by_url.pop(entry.url, None)
            self._cache.clear()

    def _drop_file(self, entry: StoredContext) -> None:
        if self._cache_dir is not None and entry.kind in _KIND_DIRS:
            (self._cache_dir / _KIND_DIRS[entry.kind] / f"{entry.local_id}.jsonld").unlink(missing_ok=True)

    def _persist(self, entry: StoredContext) -> None:
        if self._cache_dir is None:
            return
        target = self._cache_dir / _KIND_DIRS[entry.kind] / f"{entry.local_id}.jsonld"
        staging = target.with_suffix(".tmp")
        staging.write_text(json.dumps(entry.document, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(staging, target)  # whole or not at all, also if the broker is killed meanwhile

    def _check_document(self, document, what: str) -> None:
        if not isinstance(document, dict) or "@context" not in document:
            raise bad_data(f"{what} is not a JSON-LD context document: send a JSON object with an "
                           "\"@context\" member, e.g. {\"@context\": {\"speed\": \"https://example.org/speed\"}}.")
        self._collect(document["@context"], {}, {"vocab": None}, depth=0)

    def _load_file(self, url: str, file: Path) -> None:
        document = _read_json(file)
        try:
            self.register(url, document, created_at=_mtime(file))
        except NgsiError as err:
            raise ValueError(f"{file} ({url}): {err.detail}") from None

    def _load_folder(self, folder: Path, required: bool) -> list[str]:
        index_file = folder / INDEX_FILE
        if not index_file.is_file():
            raise ValueError(f"{folder} has no {INDEX_FILE}: add one mapping each context URL to a file "
                             'of the folder, e.g. {"https://example.org/ctx.jsonld": "ctx.jsonld"}.')
        index = _read_json(index_file)
        if not isinstance(index, dict) or not all(isinstance(v, str) for v in index.values()):
            raise ValueError(f"{index_file} must be a JSON object mapping URLs to file names.")
        for url, name in index.items():
            file = folder / name
            if not file.is_file():
                raise ValueError(f"{index_file} names {name} for {url}, but {file} does not exist.")
            self._load_file(url, file)
        return list(index)

    # -- processing ---------------------------------------------------------------------

    def _build(self, context, link_url) -> TermMap:
        definitions: dict[str, object] = {}
        state = {"vocab": None, "prefix": {}}
        self._collect(context, definitions, state, depth=0)
        # The core context is always processed last: its terms cannot be redefined.
        self._collect(self._document(CORE_CONTEXT_URL), definitions, state, depth=0)
        terms = _resolve_definitions(definitions)
        vocab = state["vocab"]
        if vocab is not None and not _SCHEME.match(vocab):
            vocab = terms.get(vocab.rstrip(":"), vocab)
        source = context if context is not None else CORE_CONTEXT_URL
        return TermMap(terms, vocab, source, link_url, state["prefix"])

    def _document(self, url: str):
        name = self._registry.get(url)
        if name is not None:
            return shipped_context(name).get("@context", {})
        local_id = self._by_url.get(url)
        if local_id is None and CONTEXTS_PATH in url:
            # The broker's own URL of a hosted context, whatever host name the client used.
            local_id = url.rsplit(CONTEXTS_PATH, 1)[1]
        entry = self._stored.get(local_id) if local_id else None
        if entry is not None:
            return entry.document.get("@context", {})
        raise NgsiError(
            "LdContextNotAvailable",
            f"The @context {url!r} is not available: this broker works offline and never downloads "
            "a context. Register it: start the broker with sscity platform serve --context "
            f"{url}=FILE (FILE holding that context document), or POST the document to "
            "/ngsi-ld/v1/jsonldContexts (sscity's Client.add_context) and name the URL it answers "
            "(the Location header); or send the context "
            "inline in the body (Content-Type: application/ld+json).")

    def _collect(self, context, definitions: dict, state: dict, depth: int) -> None:
        if depth > 8:
            raise bad_data("The @context nests or references itself too deeply (more than 8 levels).")
        if context is None:
            definitions.clear()
            state["vocab"] = None
        elif isinstance(context, str):
            self._collect(self._document(context), definitions, state, depth + 1)
        elif isinstance(context, list):
            for item in context:
                self._collect(item, definitions, state, depth + 1)
        elif isinstance(context, dict):
            for term, definition in context.items():
                if not isinstance(term, str) or not term:
                    raise bad_data("A @context term must be a non-empty string.")
                if term == "@vocab":
                    if definition is not None and not isinstance(definition, str):
                        raise bad_data("@vocab in a @context must be a string (an IRI).")
                    state["vocab"] = definition
                elif term.startswith("@"):
                    continue  # @version, @protected, @language, @base: no effect on term maps
                elif definition is None:
                    definitions.pop(term, None)
                elif isinstance(definition, str):
                    definitions[term] = definition
                    state.setdefault("prefix", {})[term] = "simple"
                elif isinstance(definition, dict):
                    state.setdefault("prefix", {})[term] = definition.get("@prefix") is True
                    target = definition.get("@id", definition.get("@reverse"))
                    if target is None:
                        definitions.setdefault(term, None)
                    elif isinstance(target, str):
                        definitions[term] = target
                    else:
                        raise bad_data(f"The @id of the @context term {term!r} must be a string.")
                else:
                    raise bad_data(f"The @context term {term!r} must map to a string or an object.")
        else:
            raise bad_data("A @context must be a URL string, an object or a list of them.")


def _resolve_definitions(definitions: dict[str, object]) -> dict[str, str]:
    """Turn raw definitions (IRIs, compact IRIs, other terms) into term -> absolute IRI."""
    terms: dict[str, str] = {}

    def resolve(term: str, seen: frozenset) -> str | None:
        if term in terms:
            return terms[term]
        value = definitions.get(term)
        if not isinstance(value, str) or value.startswith("@"):
            return None  # keywords (id -> @id) and @vocab-only terms are not IRIs
        if term in seen:
            return value
        prefix, colon, suffix = value.partition(":")
        if colon and not suffix.startswith("//") and prefix in definitions and prefix != term:
            base = resolve(prefix, seen | {term})
            if base is not None:
                return base + suffix
        if not colon and value in definitions and value != term:
            return resolve(value, seen | {term})
        return value

    for term in definitions:
        iri = resolve(term, frozenset())
        if iri is not None:
            terms[term] = iri
    return terms


_LINK_PART = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")


def parse_context_link(header: str) -> str | None:
    """The URL of the JSON-LD context named in a ``Link`` header, or None if it names none."""
    for match in _LINK_PART.finditer(header):
        params = match.group(2)
        rel = re.search(r'rel\s*=\s*"?([^";]+)"?', params)
        if rel and rel.group(1).strip() == JSONLD_CONTEXT_REL:
            url = match.group(1).strip()
            if not url:
                raise bad_data("The Link header names an empty @context URL.")
            return url
    return None


def context_link_header(url: str) -> str:
    """A ``Link`` header value naming ``url`` as the JSON-LD context."""
    return f'<{url}>; rel="{JSONLD_CONTEXT_REL}"; type="application/ld+json"'


_KIND_DIRS = {"Hosted": "hosted", "ImplicitlyCreated": "implicit"}


def _url_id(url: str) -> str:
    """The local id of a cached context: a digest of its URL (stable across restarts)."""
    return "cached-" + hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]


def _read_json(file: Path):
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"cannot read {file} as JSON: {err}") from None


def _mtime(file: Path) -> str:
    moment = datetime.fromtimestamp(file.stat().st_mtime, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
