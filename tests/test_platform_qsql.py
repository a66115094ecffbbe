"""q run by SQLite (qsql.py) against the Python evaluator of query.py (NGSI-LD clause 4.9).

The SQL path must return exactly the entities the Python predicate accepts, in the same order and
with the same count, for any entity shape and any q of the grammar: a differential test on
generated entities and queries (hypothesis, derandomized), plus a few explicit cases.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sscity.platform import Broker, NgsiError
from sscity.platform.broker import EntityQuery
from sscity.platform.query import parse_q
from sscity.platform.storage import Store

NAMES = ["a", "b", "c"]
SCALAR_POOL = [
    -5,
    0,
    1,
    2,
    3,
    0.5,
    -1.5,
    3.0,
    2**60,
    1e300,
    True,
    False,
    "free",
    "Free",
    "occupied",
    "",
    "a,b",
    "1",
    "urn:x:1",
    "つくば",
    "zz",
    "m",
    "2024-05-01T09:00:00Z",
    "2024-05-01T18:00:00+09:00",
    "2024-05-01 09:00",
    "9999-99-99T99:99",
    [1, "free"],
    [],
    {"x": 1},
    {"@value": 2},
]
LITERAL_POOL = [
    "-5",
    "0",
    "1",
    "2",
    "3.0",
    "0.5",
    "-1.5",
    "1e300",
    "1152921504606846976",
    '"free"',
    "free",
    "Free",
    '""',
    '"a,b"',
    '"1"',
    "urn:x:1",
    "つくば",
    "zz",
    "m",
    "true",
    "false",
    "2024-05-01T09:00:00Z",
    "2024-05-01T00:00:00Z",
]
SCALARS = st.sampled_from([value for value in SCALAR_POOL if not isinstance(value, (list, dict))])
# Mostly plain scalars (decided in SQL), sometimes lists and compound values (left to Python).
VALUES = st.one_of(
    SCALARS,
    SCALARS,
    SCALARS,
    st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["x", "y"]), inner, max_size=2)
        ),
        max_leaves=4,
    ),
)


def _instance(kind: str, value, sub) -> dict:
    if kind == "Relationship":
        instance = {"type": "Relationship", "object": value if value in ("urn:x:1", "urn:x:2") else "urn:x:2"}
    elif kind == "LanguageProperty":
        instance = {"type": "LanguageProperty", "languageMap": {"en": str(value), "ja": "つくば"}}
    elif kind == "DateTime":
        instance = {"type": "Property", "value": {"@type": "DateTime", "@value": "2024-05-01T09:00:00Z"}}
    else:
        instance = {
            "type": "Property",
            "value": value,
            "observedAt": "2024-05-01T09:00:00Z",
            "unitCode": "GQ",
        }
    if sub is not None:
        instance["x"] = {"type": "Property", "value": sub}
    return instance


INSTANCES = st.builds(
    _instance,
    st.sampled_from(["Property"] * 6 + ["Relationship", "LanguageProperty", "DateTime"]),
    VALUES,
    st.none() | SCALARS,
)


@st.composite
def attributes(draw):
    """One attribute: a single instance or several (multi-instance, each with its datasetId)."""
    if draw(st.integers(0, 3)):
        return draw(INSTANCES)
    instances = draw(st.lists(INSTANCES, min_size=1, max_size=3))
    return [
        dict(item, datasetId=f"urn:ngsi-ld:Dataset:{n}") if n else item for n, item in enumerate(instances)
    ]


LITERALS = st.sampled_from(LITERAL_POOL)
PATHS = (
    st.sampled_from(NAMES)
    | st.sampled_from(NAMES)
    | st.builds(
        lambda n, s: n + s,
        st.sampled_from(NAMES),
        st.sampled_from([".x", ".observedAt", ".unitCode", "[x]", "[x][y]", ".x.y"]),
    )
)
RANGES = st.sampled_from(["1..3", "-5..0", "0.5..4", "a..m", "2024-01-01T00:00:00Z..2024-12-31T00:00:00Z"])
REGEXES = st.sampled_from(["fr", "^F", "(?i)free", "^$", "\\d", "o", "つ", "2024"])


def _literal(value) -> str:
    """How a stored scalar is written in q (so that generated queries hit stored values)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value + '"'
    return repr(value)


def _scalars(value):
    """The scalars inside a stored value (lists and compound values walked)."""
    if isinstance(value, list):
        for item in value:
            yield from _scalars(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _scalars(item)
    else:
        yield value


def _stored_values(attribute):
    """The values an attribute holds (every instance, its sub-attribute x), not its metadata."""
    for instance in attribute if isinstance(attribute, list) else [attribute]:
        for member in ("value", "object", "languageMap"):
            yield from _scalars(instance.get(member))
        if "x" in instance:
            yield from _scalars(instance["x"]["value"])


def queries(literals, pairs):
    """q strings of the whole grammar, comparing with ``literals`` (a strategy of q literals).

    ``pairs`` draws (attribute, literal of one of its stored values), so that comparisons often
    meet ties, where ``>`` and ``>=`` differ.
    """

    @st.composite
    def terms(draw):
        path = draw(PATHS)
        shape = draw(
            st.sampled_from(["exists", "not", "compare", "compare", "tie", "list", "range", "regex"])
        )
        if shape == "tie":
            name, literal = draw(pairs)
            operator = draw(st.sampled_from(["==", "!=", ">", ">=", "<", "<="]))
            return (
                name
                + operator
                + (literal if operator in ("==", "!=") or literal not in ("true", "false") else "1")
            )
        if shape == "exists":
            return path
        if shape == "not":
            return "!" + path
        if shape == "list":
            return (
                path
                + draw(st.sampled_from(["==", "!="]))
                + ",".join(draw(st.lists(literals, min_size=2, max_size=3)))
            )
        if shape == "range":
            return (
                path
                + draw(st.sampled_from(["==", "!="]))
                + draw(RANGES | st.builds(lambda low, high: f"{low}..{high}", literals, literals))
            )
        if shape == "regex":
            return path + draw(st.sampled_from(["~=", "!~="])) + draw(REGEXES)
        operator = draw(st.sampled_from(["==", "!=", ">", ">=", "<", "<="]))
        literal = draw(literals)
        if operator not in ("==", "!=") and literal in ("true", "false"):
            literal = "1"
        return path + operator + literal

    @st.composite
    def combined(draw):
        # 1-4 terms joined by ; (AND) and | (OR), the left part sometimes in parentheses.
        text = draw(terms())
        for _ in range(draw(st.integers(0, 3))):
            joiner, term = draw(st.sampled_from([";", "|"])), draw(terms())
            text = f"({text}){joiner}{term}" if draw(st.booleans()) else f"{text}{joiner}{term}"
        return text

    return combined()


def _ids(broker: Broker, q, sql: bool, monkeypatch, limit: int = 1000, offset: int = 0):
    monkeypatch.setenv("SSCITY_Q_SQL", "1" if sql else "0")
    page, total = broker.query_entities("", EntityQuery(q=q, limit=limit, offset=offset, count=True))
    return [entity.id for entity in page], total


@pytest.fixture(scope="module")
def broker():
    broker = Broker(":memory:")
    yield broker
    broker.close()


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.dictionaries(st.sampled_from(NAMES), attributes(), min_size=1, max_size=3), min_size=4, max_size=10
    ),
    st.data(),
)
def test_sql_and_python_evaluators_return_the_same_entities(broker, monkeypatch, rows, data):
    ctx = broker.contexts.core
    with broker.store.write() as conn:  # a fresh set of entities for each example
        conn.execute("DELETE FROM entities")
    entities = [{"id": f"urn:x:{n}", "type": "T", **row} for n, row in enumerate(rows)]
    outcome = broker.batch("", "create", entities, [ctx] * len(entities))
    assert not outcome.errors, outcome.errors
    # Literals: the stored values themselves (ties, equal instants, same text) and a fixed pool.
    stored = sorted(
        {_literal(value) for row in rows for attribute in row.values() for value in _stored_values(attribute)}
        - {'""', '"DateTime"'}
    )
    literals = st.one_of(st.sampled_from(stored), st.sampled_from(stored), LITERALS) if stored else LITERALS
    pairs = sorted(
        {
            (name, _literal(value))
            for row in rows
            for name, attribute in row.items()
            for value in _stored_values(attribute)
        }
        - {(name, '""') for name in NAMES}
    )
    pairs = st.sampled_from(pairs) if pairs else st.tuples(st.sampled_from(NAMES), LITERALS)
    for text in data.draw(st.lists(queries(literals, pairs), min_size=4, max_size=8), label="queries"):
        try:
            q = parse_q(text, ctx.expand)
        except NgsiError:  # e.g. a range of a text and a number: refused before any evaluation
            continue
        expected = _ids(broker, q, False, monkeypatch)
        assert _ids(broker, q, True, monkeypatch) == expected, text
        # The page taken in SQLite (every row decided there) or after Python: same slice.
        assert _ids(broker, q, True, monkeypatch, limit=2, offset=1) == _ids(
            broker, q, False, monkeypatch, limit=2, offset=1
        ), text


def test_every_simple_term_gives_the_same_answer_in_sql_and_python(broker, monkeypatch):
    """Every operator with every literal against every kind of stored value (the terms SQL decides)."""
    ctx = broker.contexts.core
    with broker.store.write() as conn:
        conn.execute("DELETE FROM entities")
    entities = [
        {"id": f"urn:x:{n}", "type": "T", "a": {"type": "Property", "value": value}}
        for n, value in enumerate(SCALAR_POOL)
    ]
    entities += [
        {"id": "urn:x:r", "type": "T", "a": {"type": "Relationship", "object": "urn:x:1"}},
        {"id": "urn:x:l", "type": "T", "a": {"type": "LanguageProperty", "languageMap": {"en": "free"}}},
        {
            "id": "urn:x:g",
            "type": "T",
            "a": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [140, 36]}},
        },
        {
            "id": "urn:x:m",
            "type": "T",
            "a": [
                {"type": "Property", "value": 1},
                {"type": "Property", "value": "free", "datasetId": "urn:d:1"},
            ],
        },
        {"id": "urn:x:none", "type": "T", "b": {"type": "Property", "value": 1}},
    ]
    assert not broker.batch("", "create", entities, [ctx] * len(entities)).errors
    queries = ["a", "!a"] + [
        f"a{op}{literal}"
        for op in ("==", "!=", ">", ">=", "<", "<=")
        for literal in LITERAL_POOL
        if op in ("==", "!=") or literal not in ("true", "false")
    ]
    queries += [
        f"a{op}{values}"
        for op in ("==", "!=")
        for values in (
            "1,free",
            "true,2",
            '"a,b",zz',
            "1..3",
            "-2..0.5",
            "a..m",
            "2024-01-01T00:00:00Z..2024-12-31T00:00:00Z",
        )
    ]
    queries += [
        f"a{op}{pattern}" for op in ("~=", "!~=") for pattern in ("fr", "^F", "(?i)free", "^$", "\\d", "2024")
    ]
    for text in queries:
        q = parse_q(text, ctx.expand)
        assert _ids(broker, q, True, monkeypatch) == _ids(broker, q, False, monkeypatch), text


@pytest.mark.parametrize(
    "q, expected",
    [
        ("a>1", ["1", "4"]),
        ("a==2", ["1"]),
        ("a!=2", ["0", "2", "3", "4"]),
        ("a==true", ["2"]),
        ("a==1..2", ["0", "1"]),
        ('a=="x","y"', ["3"]),
        ("a~=^x", ["3"]),
        ("a!~=^x", ["0", "1", "2", "4"]),
        ("a", ["0", "1", "2", "3", "4"]),
        ("!a", ["5"]),
        ("a>1;b", ["4"]),
        ("a==2|b==sure", ["1", "4"]),
        ("a.observedAt>2024-05-01T08:00:00Z", ["4"]),
        ("a==2024-05-01T09:00:00Z", []),
    ],
)
def test_q_in_sql_on_explicit_entities(q, expected, monkeypatch):
    """Plain values are decided in SQL; multi-instance and member paths go through Python."""
    broker = Broker(":memory:")
    try:
        ctx = broker.contexts.core
        values = [1, 2, True, "x", None, None]
        entities = [
            {"id": f"urn:x:{n}", "type": "T", "a": {"type": "Property", "value": value}}
            for n, value in enumerate(values[:4])
        ]
        entities.append(
            {
                "id": "urn:x:4",
                "type": "T",
                "b": {"type": "Relationship", "object": "urn:sure"},
                "a": [
                    {"type": "Property", "value": 0, "observedAt": "2024-05-01T09:00:00Z"},
                    {"type": "Property", "value": 5, "datasetId": "urn:ngsi-ld:Dataset:2"},
                ],
            }
        )
        entities.append({"id": "urn:x:5", "type": "T", "b": {"type": "Property", "value": 3}})
        assert not broker.batch("", "create", entities, [ctx] * len(entities)).errors
        q_text = q.replace("b==sure", 'b=="urn:sure"')
        found, total = _ids(broker, parse_q(q_text, ctx.expand), True, monkeypatch)
        assert found == [f"urn:x:{n}" for n in expected] and total == len(expected)
        assert (found, total) == _ids(broker, parse_q(q_text, ctx.expand), False, monkeypatch)
    finally:
        broker.close()


def test_a_version_1_database_gets_its_value_index_when_opened(tmp_path, monkeypatch):
    """Schema 2 adds entity_values; a database written before it is indexed once, on opening."""
    path = tmp_path / "old.db"
    broker = Broker(path)
    ctx = broker.contexts.core
    assert not broker.batch(
        "", "create", [{"id": "urn:x:1", "type": "T", "a": {"type": "Property", "value": 7}}], [ctx]
    ).errors
    broker.close()
    store = Store(path)
    with store.write() as conn:  # make it look like version 1: no index rows
        conn.execute("DELETE FROM entity_values")
        conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    store.close()
    broker = Broker(path)
    try:
        found = _ids(broker, parse_q("a>5", ctx.expand), True, monkeypatch)
        assert found == (["urn:x:1"], 1)
        with broker.store.read() as conn:
            assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"
    finally:
        broker.close()


def test_sqlite_measures_points_exactly_as_python_does():
    """geo.point_distance_sql repeats haversine_m operation by operation: the same double, always."""
    import json
    import random
    import sqlite3

    from sscity.platform.geo import parse_geoquery

    rng = random.Random(20240501)
    conn = sqlite3.connect(":memory:")
    for _ in range(40):
        lon, lat = rng.uniform(-180, 180), rng.uniform(-89, 89)
        query = parse_geoquery("near;maxDistance==500", "Point", json.dumps([round(lon, 5), round(lat, 5)]))
        sql, params = query.point_distance_sql("g.t")
        points = [
            json.dumps(
                {
                    "type": "Point",
                    "coordinates": [
                        lon + rng.uniform(-0.01, 0.01),
                        max(-90.0, min(90.0, lat + rng.uniform(-0.01, 0.01))),
                    ],
                }
            )
            for _ in range(50)
        ]
        found = conn.execute(
            f"SELECT g.t, {sql} FROM (SELECT value AS t FROM json_each(?)) g", (*params, json.dumps(points))
        ).fetchall()
        for text, metres in found:
            assert metres == query.distance(json.loads(text)), text


def test_near_queries_measure_points_in_sql_and_other_shapes_in_python():
    """georel=near (clause 4.10): nearest first, exactly the entities within maxDistance."""
    import random

    from sscity.platform.geo import parse_geoquery

    rng = random.Random(7)
    broker = Broker(":memory:")
    try:
        ctx = broker.contexts.core
        entities = [
            {
                "id": f"urn:x:{n}",
                "type": "T",
                "location": {
                    "type": "GeoProperty",
                    "value": {
                        "type": "Point",
                        "coordinates": [140.1 + rng.uniform(-0.01, 0.01), 36.1 + rng.uniform(-0.01, 0.01)],
                    },
                },
            }
            for n in range(300)
        ]
        entities.append(
            {
                "id": "urn:x:line",
                "type": "T",
                "location": {
                    "type": "GeoProperty",
                    "value": {"type": "LineString", "coordinates": [[140.09, 36.1], [140.11, 36.1]]},
                },
            }
        )
        assert not broker.batch("", "create", entities, [ctx] * len(entities)).errors
        query = parse_geoquery("near;maxDistance==400", "Point", "[140.1,36.1005]")
        page, total = broker.query_entities("", EntityQuery(geo=query, limit=1000))
        by_id = {entity["id"]: entity["location"]["value"] for entity in entities}
        expected = sorted(
            (query.distance(geometry), int(key.rsplit(":", 1)[1]) if key[-1].isdigit() else -1, key)
            for key, geometry in by_id.items()
            if query.distance(geometry) <= 400
        )
        assert "urn:x:line" in [entity.id for entity in page] and total == len(expected)
        assert [entity.id for entity in page] == [
            key
            for _, _, key in sorted(
                expected, key=lambda item: (item[0], [e["id"] for e in entities].index(item[2]))
            )
        ]
    finally:
        broker.close()


# -- the index rows built in Python equal those of the SQL (trigger/backfill) form ---------------

_member_values = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
    st.sampled_from(["2024-05-01T09:00:00Z", "2024-05-01 09:00", "abcd-ef-ghijk:lmnop", "urn:ngsi-ld:X:1",
                     "2024-05-01 is a Wednesday", "2024-05-01"]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.sampled_from(["@value", "a", "type"]),
                                                         st.integers() | st.text(max_size=3), max_size=2))
_attributes = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["Property", "Relationship", "GeoProperty",
                                                   "LanguageProperty", "JsonProperty"])},
                          optional={"value": _member_values, "object": _member_values,
                                    "observedAt": st.just("2024-05-01T09:00:00.000Z")}),
    st.lists(st.fixed_dictionaries({"type": st.just("Property"), "value": _member_values}), max_size=2))
# (a stored attribute is always an object, or a list of instances: never a bare value)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.dictionaries(st.text(st.characters(min_codepoint=33, exclude_categories=("Cs",)), min_size=1,
                               max_size=8), _attributes, max_size=5),
       st.integers(min_value=1, max_value=2**40))
def test_index_rows_built_in_python_equal_the_sql_form(attrs, pk):
    import json
    import sqlite3

    from sscity.platform.qsql import index_rows, index_rows_sql

    conn = sqlite3.connect(":memory:")
    doc = json.dumps(attrs)
    by_sql = {(row[1], row[2]): row[3] for row in conn.execute(index_rows_sql(":doc", ":pk"),
                                                              {"doc": doc, "pk": pk})}
    by_python = {(row[1], row[2]): row[3] for row in index_rows(pk, attrs)}
    assert set(by_sql) == set(by_python)  # the same attributes with the same kinds
    for (name, kind), value in by_python.items():
        if kind in ("n", "s", "b"):  # the values conditions read
            assert by_sql[(name, kind)] == value and type(by_sql[(name, kind)]) is type(value), name


def test_every_kind_of_write_leaves_the_index_equal_to_a_fresh_indexing():
    """Create, batch upsert (replace and update), merge, partial update, NGSI-LD Null, attribute
    delete, temporal add, purge: afterwards entity_values holds exactly what indexing every stored
    document again (the SQL form) gives."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from platform_support import COURSE_LINK, NGSI, http_client
    from sscity.platform.qsql import index_rows_sql

    broker = Broker(":memory:")
    with http_client(broker, Link=COURSE_LINK) as http:
        def note(n, **attrs):
            return {"id": f"urn:ngsi-ld:Note:{n}", "type": "Note", **attrs}

        assert http.post(f"{NGSI}/entities", json=note(1, a=1, b="x", c=True)).status_code == 201
        batch = [note(n, a=n, b=f"t{n}") for n in range(2, 8)] + [note(2, a=99)]  # id 2 twice
        assert http.post(f"{NGSI}/entityOperations/upsert", json=batch).status_code == 201
        assert http.post(f"{NGSI}/entityOperations/upsert", json=[note(3, z=5)]).status_code == 204
        assert http.post(f"{NGSI}/entityOperations/upsert", params={"options": "update"},
                         json=[note(4, a=2.5, d="2024-05-01T09:00:00Z")]).status_code == 204
        one = f"{NGSI}/entities/urn:ngsi-ld:Note:"
        assert http.patch(f"{one}5", json={"b": "urn:ngsi-ld:null"}).status_code == 204
        assert http.patch(f"{one}6/attrs/a", json={"value": -1}).status_code == 204
        assert http.delete(f"{one}7/attrs/a").status_code == 204
        assert http.put(f"{one}1", json={"e": {"type": "Property", "value": {"k": 1}}}).status_code == 204
        assert http.delete(f"{NGSI}/entities", params={"q": "a==2"}).status_code == 204
        history = [{"type": "Property", "value": 3, "observedAt": "2024-05-01T09:00:00Z"}]
        assert http.post(f"{NGSI}/temporal/entities", json=note(9, a=history)).status_code in (201, 204)
    with broker.store.read() as conn:
        stored = sorted(conn.execute("SELECT pk, attr, kind, v FROM entity_values"))
        fresh = sorted(conn.execute(index_rows_sql("e.doc", "e.pk", source="entities e, ")))
    assert stored and [row[:3] for row in stored] == [row[:3] for row in fresh]
    assert [row for row in stored if row[2] in "nsb"] == [row for row in fresh if row[2] in "nsb"]
    broker.close()
