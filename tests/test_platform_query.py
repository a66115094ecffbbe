"""The NGSI-LD query language (clause 4.9) and geo-queries (clause 4.10), as pure functions."""

from __future__ import annotations

import math

import pytest
from sscity.platform import NgsiError
from sscity.platform.geo import check_geometry, distance_m, haversine_m, parse_geoquery
from sscity.platform.query import parse_q


def expand(term: str) -> str:
    return "ex:" + term


STORED = {
    "ex:no2": {"type": "Property", "value": 41.5, "unitCode": "GQ", "observedAt": "2024-05-01T09:00:00.000Z",
               "ex:accuracy": {"type": "Property", "value": 0.9}},
    "ex:status": {"type": "Property", "value": "free"},
    "ex:congested": {"type": "Property", "value": False},
    "ex:category": {"type": "Property", "value": ["onstreet", "disabled"]},
    "ex:address": {"type": "Property",
                   "value": {"streetAddress": "1-1-1 Tennodai", "city": {"name": "Tsukuba"}}},
    "ex:refParkingSite": {"type": "Relationship", "object": "urn:ngsi-ld:ParkingSite:7"},
    "ex:dateObserved": {"type": "Property",
                        "value": {"@type": "DateTime", "@value": "2024-05-01T18:00:00+09:00"}},
    "ex:name": {"type": "LanguageProperty", "languageMap": {"ja": "つくば", "en": "Tsukuba"}},
}


@pytest.mark.parametrize("q, expected", [
    ("no2>40", True), ("no2>=41.5", True), ("no2<41.5", False), ("no2<=41.5", True), ("no2==41.5", True),
    ("no2!=41.5", False), ("no2==40..45", True), ("no2==42..45", False), ("no2!=42..45", True),
    ('status=="free"', True), ("status==free", True), ('status=="occupied"', False),
    ('status!="occupied"', True),
    ("status==occupied,free", True), ('status=="a","b"', False), ("congested==false", True),
    ("congested==true", False), ('category=="disabled"', True), ('category=="other"', False),
    ("no2>40;status==free", True), ("no2>50;status==free", False), ("no2>50|status==free", True),
    ("(no2>50|status==free);congested==false", True), ("no2>50|(status==free;congested==true)", False),
    ("no2", True), ("pm25", False), ("!pm25", True), ("!no2", False),
    ("status~=fr.e", True), ('status~="^f"', True), ("status~=x", False), ("status!~=x", True),
    ("status~=(?i)FREE", True),
    ("address[streetAddress]~=Tennodai", True), ("address[city][name]==Tsukuba", True),
    ("address[city.name]==Tsukuba", True), ("address.city.name==Tsukuba", True),
    ("no2.accuracy>0.5", True), ("no2.accuracy>0.95", False), ("no2.unitCode==GQ", True),
    ("no2.observedAt>2024-05-01T08:00:00Z", True), ("no2.observedAt==2024-05-01T09:00:00Z", True),
    ("refParkingSite==urn:ngsi-ld:ParkingSite:7", True),
    ('refParkingSite=="urn:ngsi-ld:ParkingSite:8"', False),
    ("dateObserved==2024-05-01T09:00:00Z", True),  # +09:00 is the same instant
    ("dateObserved<2024-05-01T08:59:59Z", False),
    ("name==Tsukuba", True), ("name==つくば", True),
    ("no2>abc", False),  # a number is not compared with a string
])
def test_q_on_stored_attributes(q, expected):
    assert parse_q(q, expand)(STORED) is expected


@pytest.mark.parametrize("q", ["", "no2>", "no2>>3", "(no2>3", "no2>3)", "no2>3;", "no2==1..2..3",
                               'status=="open', "no2>1,2", "no2~=(", "!no2>3", "a b", "no2=3", "[x]==1",
                               "a[b==1", "a..b==1", "x>true"])
def test_malformed_q_is_bad_request_data(q):
    with pytest.raises(NgsiError) as caught:
        parse_q(q, expand)
    assert caught.value.kind == "BadRequestData" and caught.value.status == 400
    assert "q=" in caught.value.detail


def test_overlong_or_deeply_nested_q_is_too_complex():
    with pytest.raises(NgsiError) as caught:
        parse_q("(" * 50 + "a" + ")" * 50, expand)
    assert caught.value.kind == "TooComplexQuery" and caught.value.status == 403
    with pytest.raises(NgsiError) as caught:
        parse_q(";".join(["a>1"] * 300), expand)
    assert caught.value.kind == "TooComplexQuery"


def test_haversine_distance_is_in_metres():
    # One degree of latitude is about 111.2 km on the mean sphere.
    assert haversine_m(140.0, 36.0, 140.0, 37.0) == pytest.approx(111_195, rel=1e-3)
    # Tsukuba station to the university's Tennodai campus: about 2.5-3 km.
    assert 2_000 < haversine_m(140.1114, 36.0827, 140.1035, 36.1090) < 3_500
    line = {"type": "LineString", "coordinates": [[140.0, 36.0], [140.0, 36.1]]}
    expected = haversine_m(140.01, 36.05, 140.0, 36.05)
    assert distance_m(140.01, 36.05, line) == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("geometry", [
    {"type": "Point", "coordinates": [190, 36]}, {"type": "Point", "coordinates": [140, 95]},
    {"type": "Point", "coordinates": [140]}, {"type": "Point", "coordinates": ["140", 36]},
    {"type": "Point", "coordinates": [True, 36]}, {"type": "Point", "coordinates": [math.inf, 36]},
    {"type": "Polygon", "coordinates": [[[140, 36], [140.1, 36], [140.1, 36.1], [140, 36.1]]]},  # not closed
    {"type": "Polygon", "coordinates": [[[140, 36], [140.1, 36], [140, 36]]]},  # too few positions
    {"type": "LineString", "coordinates": [[140, 36]]}, {"type": "Circle", "coordinates": [140, 36]},
    {"type": "MultiPolygon", "coordinates": []}, "Point", None,
])
def test_invalid_geojson_is_rejected(geometry):
    with pytest.raises(NgsiError) as caught:
        check_geometry(geometry, "location")
    assert caught.value.kind == "BadRequestData"


def test_swapped_coordinates_get_a_hint():
    with pytest.raises(NgsiError) as caught:
        check_geometry({"type": "Point", "coordinates": [36.08, 140.11]}, "location")
    assert "swap" in caught.value.detail and "[lon, lat]" in caught.value.detail


def test_geoquery_parsing_and_predicates():
    near = parse_geoquery("near;maxDistance==500", "Point", "[140.11,36.08]")
    assert near.max_distance_m == 500
    assert near.matches({"type": "Point", "coordinates": [140.112, 36.081]})
    assert not near.matches({"type": "Point", "coordinates": [140.12, 36.08]})  # ~900 m east
    min_lon, max_lon, min_lat, max_lat = near.bbox()
    assert min_lon < 140.11 - 0.005 and max_lat > 36.08 + 0.004
    far = parse_geoquery("near;minDistance==500", "Point", "[140.11,36.08]")
    assert far.bbox() is None and far.matches({"type": "Point", "coordinates": [140.12, 36.08]})
    square = "[[[140,36],[140.2,36],[140.2,36.2],[140,36.2],[140,36]]]"
    inside = {"type": "Point", "coordinates": [140.1, 36.1]}
    outside = {"type": "Point", "coordinates": [141.0, 36.1]}
    assert parse_geoquery("within", "Polygon", square).matches(inside)
    assert not parse_geoquery("within", "Polygon", square).matches(outside)
    assert parse_geoquery("disjoint", "Polygon", square).matches(outside)
    assert parse_geoquery("intersects", "Polygon", square).matches(inside)
    area = {"type": "Polygon", "coordinates": [[[139, 35], [141, 35], [141, 37], [139, 37], [139, 35]]]}
    assert parse_geoquery("contains", "Point", "[140.1,36.1]").matches(area)
    assert parse_geoquery("equals", "Point", "[140.1,36.1]").matches(inside)
    assert parse_geoquery(None, None, None) is None


@pytest.mark.parametrize("georel, geometry, coordinates", [
    ("near", "Point", "[140,36]"), ("near;maxDistance==-1", "Point", "[140,36]"),
    ("near;maxDistance==abc", "Point", "[140,36]"), ("near;distance==5", "Point", "[140,36]"),
    ("near;maxDistance==5", "Polygon", "[[[140,36],[140.1,36],[140.1,36.1],[140,36]]]"),
    ("within;maxDistance==5", "Point", "[140,36]"), ("closeto", "Point", "[140,36]"),
    ("within", "Hexagon", "[140,36]"), ("within", "Point", "[140,"), ("within", "Point", "[NaN,36]"),
    ("within", "Point", "[36,140]"), ("within", None, "[140,36]"), ("within", "Point", None),
    ("within", "Polygon", "[[[140,36],[140.1,36.1],[140.1,36],[140,36.1],[140,36]]]"),  # self-crossing
])
def test_bad_geoqueries_are_bad_request_data(georel, geometry, coordinates):
    with pytest.raises(NgsiError) as caught:
        parse_geoquery(georel, geometry, coordinates)
    assert caught.value.kind == "BadRequestData"
