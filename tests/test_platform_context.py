"""@context handling without a network (NGSI-LD clause 6.3.5): expansion, compaction, registry."""

from __future__ import annotations

import json

import pytest
from sscity.platform import CORE_CONTEXT_URL, COURSE_CONTEXT_URL, NgsiError
from sscity.platform.context import (
    DEFAULT_VOCAB,
    ContextResolver,
    context_link_header,
    default_registry,
    parse_context_link,
    shipped_context,
)

SDM_ENV = "https://smartdatamodels.org/dataModel.Environment/"


@pytest.fixture(scope="module")
def resolver():
    return ContextResolver()


def test_shipped_contexts_are_json_ld_documents():
    core = shipped_context("ngsi-ld-core-context-v1.8.jsonld")["@context"]
    assert core["@vocab"] == DEFAULT_VOCAB
    for term in ("id", "type", "value", "object", "Property", "Relationship", "GeoProperty", "observedAt",
                 "unitCode", "location", "createdAt", "modifiedAt", "datasetId", "instanceId", "notifiedAt",
                 "subscriptionId", "Point", "Polygon", "MultiPolygon", "LineString"):
        assert term in core, term
    course = shipped_context("sscity-context.jsonld")["@context"]
    for term in ("AirQualityObserved", "CrowdFlowObserved", "ParkingSpot", "no2", "pm25", "peopleCount",
                 "occupancy", "congested", "averageCrowdSpeed", "category", "refParkingSite",
                 "wheelchairAccessible", "name", "address", "dateObserved"):
        assert term in course, term
    assert "status" not in course  # a core term: the core context would win anyway


def test_core_context_expands_and_vocab_catches_the_rest(resolver):
    core = resolver.core
    assert core.expand("location") == "https://uri.etsi.org/ngsi-ld/location"
    assert core.expand("status") == "https://uri.etsi.org/ngsi-ld/status"
    assert core.expand("no2") == DEFAULT_VOCAB + "no2"
    assert core.expand("urn:x:attr") == "urn:x:attr"  # already an IRI
    assert core.compact(DEFAULT_VOCAB + "no2") == "no2"
    assert core.compact("https://uri.etsi.org/ngsi-ld/location") == "location"


def test_course_context_maps_smart_data_models_terms(resolver):
    course = resolver.resolve(COURSE_CONTEXT_URL)
    assert course.expand("no2") == SDM_ENV + "no2"
    assert course.expand("AirQualityObserved") == SDM_ENV + "AirQualityObserved"
    assert course.expand("sdm:whatever") == "https://smartdatamodels.org/whatever"  # a prefix
    assert course.compact(SDM_ENV + "no2") == "no2"
    assert course.expand("location") == "https://uri.etsi.org/ngsi-ld/location"  # core still applies
    assert course.expand("unknownThing") == DEFAULT_VOCAB + "unknownThing"
    # An IRI the course context defines differently cannot compact to the same short name.
    assert course.compact(DEFAULT_VOCAB + "no2") == DEFAULT_VOCAB + "no2"


def test_every_etsi_core_url_and_the_http_variant_resolve_offline(resolver):
    registry = default_registry()
    for url in ("https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
                "http://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
                "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.3.jsonld", CORE_CONTEXT_URL):
        assert url in registry
        assert resolver.resolve(url).expand("location") == "https://uri.etsi.org/ngsi-ld/location"


def test_an_unknown_url_is_context_not_available(resolver):
    with pytest.raises(NgsiError) as caught:
        resolver.resolve("https://example.com/my-context.jsonld")
    assert caught.value.kind == "LdContextNotAvailable" and caught.value.status == 503
    assert "inline" in caught.value.detail  # says what to do


def test_inline_and_list_contexts_later_definitions_win_but_core_wins_last(resolver):
    ctx = resolver.resolve([COURSE_CONTEXT_URL, {"no2": "https://example.org/no2", "ex": "https://example.org/",
                                                 "status": "https://example.org/status"}])
    assert ctx.expand("no2") == "https://example.org/no2"
    assert ctx.expand("pm25") == SDM_ENV + "pm25"
    assert ctx.expand("ex:speed") == "https://example.org/speed"
    assert ctx.compact("https://example.org/speed") == "ex:speed"
    assert ctx.expand("status") == "https://uri.etsi.org/ngsi-ld/status"  # core terms are protected


def test_term_definitions_as_objects_and_compact_iris(resolver):
    ctx = resolver.resolve({"ex": "https://example.org/", "speed": {"@id": "ex:speed", "@type": "xsd:float"},
                            "alias": "speed", "@vocab": "https://example.org/vocab/"})
    assert ctx.expand("speed") == "https://example.org/speed"
    assert ctx.expand("alias") == "https://example.org/speed"
    # The core context is processed last, so its @vocab is the one in force.
    assert ctx.expand("other") == DEFAULT_VOCAB + "other"


def test_processed_contexts_are_cached(resolver):
    inline = {"a": "https://example.org/a"}
    assert resolver.resolve(inline) is resolver.resolve(json.loads(json.dumps(inline)))
    header = context_link_header(COURSE_CONTEXT_URL)
    assert resolver.from_link_header(header) is resolver.from_link_header(header)
    assert resolver.from_link_header(header) is resolver.resolve(COURSE_CONTEXT_URL)


@pytest.mark.parametrize("bad", [42, [{"a": 3}], {"a": ["x"]}, {"": "x"}, {"@vocab": 5}])
def test_malformed_contexts_are_bad_request_data(resolver, bad):
    with pytest.raises(NgsiError) as caught:
        resolver.resolve(bad)
    assert caught.value.kind == "BadRequestData"


def test_link_header_parsing():
    header = (f'<https://example.org/other>; rel="alternate", <{COURSE_CONTEXT_URL}>; '
              'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"')
    assert parse_context_link(header) == COURSE_CONTEXT_URL
    assert parse_context_link('<https://example.org/x>; rel="next"') is None
    assert parse_context_link(context_link_header("https://a.example/c.jsonld")) == "https://a.example/c.jsonld"


def test_extra_contexts_given_to_the_resolver_are_resolvable():
    resolver = ContextResolver({"https://example.org/ctx.jsonld": {"@context": {"speed": "https://example.org/s"}}})
    assert resolver.resolve("https://example.org/ctx.jsonld").expand("speed") == "https://example.org/s"
    assert "https://example.org/ctx.jsonld" in resolver.known_urls()


# -- the local context store (clause 5.13) and --context files -----------------------------------

def test_context_files_are_registered_by_url_or_by_a_folder_index(tmp_path):
    resolver = ContextResolver()
    (tmp_path / "a.jsonld").write_text(json.dumps({"@context": {"speed": "https://example.org/speed"}}))
    (tmp_path / "contexts.json").write_text(json.dumps({"https://example.org/a.jsonld": "a.jsonld"}))
    assert resolver.load(tmp_path) == ["https://example.org/a.jsonld"]
    assert resolver.load(f"https://example.org/b.jsonld?v=1={tmp_path / 'a.jsonld'}") == [
        "https://example.org/b.jsonld?v=1"]
    for url in ("https://example.org/a.jsonld", "https://example.org/b.jsonld?v=1"):
        assert resolver.resolve(url).expand("speed") == "https://example.org/speed"
        assert resolver.find(url).kind == "Cached"


@pytest.mark.parametrize("layout, message", [
    ({"ctx.jsonld": '{"@context": {}}'}, "say which URL"),  # a bare file
    ({}, "no contexts.json"),  # a folder without its index
    ({"contexts.json": '{"https://example.org/x": "missing.jsonld"}'}, "does not exist"),
    ({"contexts.json": '{"https://example.org/x": "x.jsonld"}', "x.jsonld": "{oops"}, "as JSON"),
    ({"contexts.json": '{"https://example.org/x": "x.jsonld"}', "x.jsonld": '{"speed": 1}'}, "@context"),
    ({"contexts.json": '{"not a url": "x.jsonld"}', "x.jsonld": '{"@context": {}}'},
     r"absolute http\(s\) URL"),
])
def test_wrong_context_files_are_refused_with_what_to_do(tmp_path, layout, message):
    for name, text in layout.items():
        (tmp_path / name).write_text(text)
    spec = tmp_path / "ctx.jsonld" if "ctx.jsonld" in layout else tmp_path
    with pytest.raises(ValueError, match=message):
        ContextResolver().load(spec)


def test_the_cache_folder_keeps_hosted_and_implicit_contexts_across_restarts(tmp_path):
    first = ContextResolver()
    first.use_cache_dir(tmp_path)
    hosted = first.add_hosted({"@context": {"speed": "https://example.org/speed"}})
    implicit = first.implicit_url({"flow": "https://example.org/flow"})
    second = ContextResolver()
    second.use_cache_dir(tmp_path)
    assert second.find(hosted.local_id).kind == "Hosted"
    assert second.resolve(first.url_of(hosted)).expand("speed") == "https://example.org/speed"
    assert second.find(implicit).document == {"@context": {"flow": "https://example.org/flow"}}
    second.delete(hosted.local_id)
    assert not list((tmp_path / "hosted").glob("*.jsonld"))
    with pytest.raises(NgsiError) as caught:
        second.resolve(first.url_of(hosted))
    assert caught.value.kind == "LdContextNotAvailable"


def test_implicitly_created_contexts_are_bounded_in_memory_and_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr("sscity.platform.context.MAX_IMPLICIT", 3)
    resolver = ContextResolver()
    resolver.use_cache_dir(tmp_path)
    urls = [resolver.implicit_url({f"t{n}": f"https://example.org/t{n}"}) for n in range(5)]
    kept = [entry.local_id for entry in resolver.stored("ImplicitlyCreated")]
    assert kept == [url.rsplit("/", 1)[1] for url in urls[2:]]  # the oldest went first
    assert sorted(file.stem for file in (tmp_path / "implicit").glob("*.jsonld")) == sorted(kept)


def test_compact_iris_use_only_terms_that_json_ld_allows_as_prefixes(resolver):
    ctx = resolver.resolve({"ex": "https://example.org/ns#", "look": "https://example.org/find?",
                            "word": "https://example.org/word",  # no gen-delim at the end
                            "exp": {"@id": "https://expanded.example/", "@prefix": True},
                            "noprefix": {"@id": "https://plain.example/"}})
    assert ctx.compact("https://example.org/ns#speed") == "ex:speed"
    assert ctx.compact("https://example.org/find?x") == "look:x"
    assert ctx.compact("https://example.org/wordy") == "https://example.org/wordy"
    assert ctx.compact("https://expanded.example/a") == "exp:a"
    assert ctx.compact("https://plain.example/a") == "https://plain.example/a"
    assert ctx.expand("noprefix:a") == "https://plain.example/a"  # expansion may still use any term
