"""Governance audits what the through-line published: the seeded city is clean, and each
planted leak (a small cell, a total that gives a suppressed cell back, an estimate without its
error, no provenance, a person's identifier, a home as a public place) is found, by name."""

from __future__ import annotations

import itertools

import pytest
from sscity.city import district_wellbeing, seed_city, wellbeing_entities
from sscity.governance.published import RULES, audit_published
from sscity.platform import Client

_names = itertools.count(1)


def _tenant(prefix: str) -> Client:
    return Client(tenant=f"{prefix}-{next(_names)}")


@pytest.fixture(scope="module")
def seeded_city():
    client = _tenant("audit-city")
    seed_city(client, tenant=client.tenant, progress=False)
    return client


def test_the_seeded_city_passes_the_audit(seeded_city):
    findings = audit_published(seeded_city, k=10)
    assert findings.empty, findings.to_string()


def test_a_larger_k_than_the_seeder_used_finds_the_cells_it_let_through(seeded_city):
    counts = district_wellbeing(k=1)[0]["n"]
    k = int(counts.min()) + 1  # the smallest district now falls below k
    findings = audit_published(seeded_city, k=k)
    small = findings[findings["rule"] == "small-cell"]
    expected = {f"urn:ngsi-ld:DistrictWellbeing:2019:{code}" for code, n in counts.items() if n < k}
    assert set(small["entity_id"]) == expected and expected


def _cells(k_seed: int = 1):
    table, _ = district_wellbeing(k=k_seed)
    return wellbeing_entities(table, 2019)


def test_each_planted_leak_is_found_and_named():
    client = _tenant("audit-planted")
    entities = _cells()
    small = dict(entities[0], respondents={"type": "Property", "value": 4})
    bare = {key: value for key, value in entities[1].items()
            if key not in ("happinessStandardError", "dataProvider")}
    person = {"id": "urn:ngsi-ld:Person:r1", "type": "Person",
              "respondentId": {"type": "Property", "value": "H2019-0001"},
              "email": {"type": "Property", "value": "a@example.org"}}
    home = {"id": "urn:ngsi-ld:PublicFacility:home-7", "type": "PublicFacility",
            "category": {"type": "Property", "value": "home"},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [140.1, 36.0]}}}
    client.batch_upsert([small, bare, *entities[2:], person, home]).raise_for_errors()
    found = audit_published(client, k=10)
    by_rule = found.groupby("rule")["entity_id"].apply(set).to_dict()
    assert by_rule == {
        "small-cell": {small["id"]},
        "no-uncertainty": {bare["id"]},
        "no-provenance": {bare["id"]},
        "identifier": {person["id"]},
        "private-place": {home["id"]},
    }
    assert set(found["rule"]) <= set(RULES)
    assert all(" / " in detail for detail in found["detail"])  # English / Japanese


def test_a_total_beside_its_parts_gives_back_a_suppressed_cell():
    client = _tenant("audit-total")
    entities = _cells()
    hidden, published = entities[0], entities[1:]
    n_total = sum(e["respondents"]["value"] for e in entities) - hidden["respondents"]["value"] + 6
    total = dict(entities[1], id="urn:ngsi-ld:DistrictWellbeing:2019:city",
                 districtCode={"type": "Property", "value": "city"},
                 respondents={"type": "Property", "value": n_total})
    client.batch_upsert([*published, total]).raise_for_errors()
    found = audit_published(client, k=10)
    assert list(found["rule"]) == ["differencing"] and found["entity_id"].iloc[0] == total["id"]
    assert "6" in found["detail"].iloc[0]
    # with k = 6 a cell of 6 may be published: the total then reveals nothing below k
    assert audit_published(client, k=6).empty


def test_an_empty_tenant_publishes_nothing_and_bad_k_is_refused():
    assert audit_published(_tenant("audit-empty"), k=10).empty
    with pytest.raises(ValueError, match="k must be a whole number"):
        audit_published(_tenant("audit-empty"), k=0)
