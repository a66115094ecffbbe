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

Processed contexts are cached, so a request costs one dictionary look-up.
"""

from __future__ import annotations

import json
import re
import threading
from functools import cache
from importlib import resources

from .errors import NgsiError, bad_data

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
    link_url : str
        A URL naming this context in a ``Link`` header of ``application/json`` responses.
    """

    def __init__(self, terms: dict[str, str], vocab: str | None, source, link_url: str):
        self.terms = terms
        self.vocab = vocab
        self.source = source
        self.link_url = link_url
        # Prefixes: terms whose IRI ends in a separator, usable in compact IRIs (sdm:no2).
        self._prefixes = sorted(((t, iri) for t, iri in terms.items() if iri[-1:] in "/#:"),
                                key=lambda pair: -len(pair[1]))
        self._reverse: dict[str, str] = {}
        for term, iri in terms.items():
            self._reverse.setdefault(iri, term)
        self._expanded: dict[str, str] = {}
        self._compacted: dict[str, str] = {}

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


class ContextResolver:
    """Turns the ``@context`` of a request into a cached :class:`TermMap`, never fetching.

    Parameters
    ----------
    extra : dict, optional
        More URL -> context document (parsed JSON) pairs the broker may resolve, e.g. an
        instructor's own context. They are added to the shipped registry.
    """

    def __init__(self, extra: dict[str, dict] | None = None):
        self._registry = default_registry()
        self._documents: dict[str, dict] = dict(extra or {})
        self._cache: dict[str, TermMap] = {}
        self._lock = threading.Lock()
        self.core = self._build(CORE_CONTEXT_URL, CORE_CONTEXT_URL)

    def known_urls(self) -> list[str]:
        """Every context URL this resolver answers."""
        return sorted(set(self._registry) | set(self._documents))

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
            link_url = CORE_CONTEXT_URL
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

    # -- processing ---------------------------------------------------------------------

    def _build(self, context, link_url: str) -> TermMap:
        definitions: dict[str, object] = {}
        state = {"vocab": None}
        self._collect(context, definitions, state, depth=0)
        # The core context is always processed last: its terms cannot be redefined.
        self._collect(self._document(CORE_CONTEXT_URL), definitions, state, depth=0)
        terms = _resolve_definitions(definitions)
        vocab = state["vocab"]
        if vocab is not None and not _SCHEME.match(vocab):
            vocab = terms.get(vocab.rstrip(":"), vocab)
        source = context if context is not None else CORE_CONTEXT_URL
        return TermMap(terms, vocab, source, link_url)

    def _document(self, url: str):
        if url in self._documents:
            return self._documents[url].get("@context", {})
        name = self._registry.get(url)
        if name is None:
            raise NgsiError(
                "LdContextNotAvailable",
                f"The @context {url!r} is not available: this broker works offline and knows only "
                f"the contexts shipped with it ({', '.join(self.known_urls()[:3])}, ...). Send the "
                "context inline in the body (Content-Type: application/ld+json), or use the course "
                f"context {COURSE_CONTEXT_URL}.")
        return shipped_context(name).get("@context", {})

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
                elif isinstance(definition, dict):
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
