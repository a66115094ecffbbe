"""``q`` (NGSI-LD clause 4.9) run by SQLite: the value index and the compiler of a parsed query.

Scanning the stored JSON documents with ``json_extract`` costs about 1.6 µs per entity (160 ms at
100,000 entities, for one attribute of a query), so the broker keeps an index of the scalar value
of every top-level attribute, maintained by triggers on ``entities`` (see :mod:`.storage`)::

    entity_values (pk, attr, kind, v)
        kind 'n': v is the number of a Property (|v| < 9e15, exact as a double)
        kind 's': v is the text of a Property or the object of a Relationship (never a DateTime)
        kind 'b': v is 1 / 0, a Property's true / false
        kind 'o': a compound value (a JSON object without "@value", e.g. a GeoJSON geometry):
                  it exists, and it equals and orders with nothing
        kind '?': anything else: multi-instance attributes (arrays of instances), compound or
                  ``@value`` values, lists, LanguageProperty, text that may be a DateTime
                  (compared as instants after normalisation), very large numbers, null

Each term of a ``q`` is compiled to two SQL conditions on ``e.pk``:

- *sure*: the entity certainly matches (decided by an index row of kind n, s or b);
- *maybe*: it may match (sure, or the attribute's row is of kind '?').

``;`` and ``|`` combine both with AND / OR, so ``sure`` is a subset and ``maybe`` a superset of
the exact answer. The broker keeps only rows where *maybe* holds and runs the Python predicate of
:func:`.query.parse_q` on the rows where *sure* does not: **SQL narrows, Python decides**. Terms
left to Python this way (their *sure* is false):

- paths below the attribute: sub-attributes ``a.b``, members ``a.observedAt`` / ``a.unitCode``,
  value paths ``a[b][c]`` (the SQL only requires the attribute to exist, or for ``!a.b``
  nothing);
- any term on an attribute whose row is of kind '?' (see above).

Regular expressions (``~=``, ``!~=``) run in SQLite through the function ``ngsi_regex``, backed
by the linear-time RE2 engine of :mod:`.regex` (never Python's backtracking :mod:`re`).

Setting the environment variable ``SSCITY_Q_SQL=0`` makes the broker ignore the compiled SQL and
evaluate every ``q`` in Python (the benchmark's baseline; results are the same).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass

from .regex import compile_linear

TRUE = ("1", ())
FALSE = ("0", ())

# The index row of one top-level attribute (a: a row of json_each over the document). Shared by
# the triggers and the one-off backfill of a database created before the index existed.
_SCALAR = """CASE json_type(a.value, '$.{member}')
        WHEN 'integer' THEN CASE WHEN abs(json_extract(a.value, '$.{member}')) < 9e15 THEN 'n' ELSE '?' END
        WHEN 'real' THEN CASE WHEN abs(json_extract(a.value, '$.{member}')) < 9e15 THEN 'n' ELSE '?' END
        WHEN 'true' THEN 'b' WHEN 'false' THEN 'b'
        WHEN 'text' THEN CASE WHEN length(json_extract(a.value, '$.{member}')) >= 16
            AND substr(json_extract(a.value, '$.{member}'), 5, 1) = '-'
            AND substr(json_extract(a.value, '$.{member}'), 8, 1) = '-'
            AND substr(json_extract(a.value, '$.{member}'), 14, 1) = ':' THEN '?' ELSE 's' END
        ELSE '?' END"""
# A text of the shape NNNN-NN-NN?NN:NN may be a DateTime, which q compares in canonical UTC form:
# the test above is looser than the broker's (it ignores which characters the Ns are), so every
# possible DateTime is left to Python.
KIND_SQL = f"""CASE WHEN a.type <> 'object' THEN '?'
    WHEN json_extract(a.value, '$.type') IN ('Property', 'GeoProperty')
        AND json_type(a.value, '$.value') = 'object'
        AND json_type(a.value, '$.value."@value"') IS NULL THEN 'o'
    WHEN json_extract(a.value, '$.type') = 'Property' THEN {_SCALAR.format(member='value')}
    WHEN json_extract(a.value, '$.type') = 'Relationship' THEN {_SCALAR.format(member='object')}
    ELSE '?' END"""
VALUE_SQL = """CASE json_extract(a.value, '$.type') WHEN 'Property' THEN json_extract(a.value, '$.value')
    WHEN 'Relationship' THEN json_extract(a.value, '$.object') END"""


def index_rows_sql(doc: str, pk: str, source: str = "") -> str:
    """``SELECT pk, attr, kind, v``: the index rows of the document ``doc`` of entity ``pk``.

    ``doc`` and ``pk`` are SQL expressions (``NEW.doc`` in a trigger); ``source`` is an optional
    table joined before the document's ``json_each`` (``"entities e, "`` to index every entity).
    """
    rows = (f"SELECT {pk} AS pk, a.key AS attr, {KIND_SQL} AS kind, {VALUE_SQL} AS v "
            f"FROM {source}json_each({doc}) a")
    # v of a '?' or 'o' row is whatever the member holds (never read: every condition tests kind
    # first); not clearing it saves evaluating the kind twice on every write.
    return f"SELECT pk, attr, kind, v FROM ({rows})"


def _scalar_kind(value) -> str:
    """The kind ``_SCALAR`` gives a member holding ``value`` (decoded JSON)."""
    if isinstance(value, bool):
        return "b"
    if isinstance(value, (int, float)):
        return "n" if abs(value) < 9e15 else "?"
    if isinstance(value, str):
        looks_like_time = len(value) >= 16 and value[4] == "-" and value[7] == "-" and value[13] == ":"
        return "?" if looks_like_time else "s"
    return "?"


def index_rows(pk: int, attrs: dict) -> list[tuple]:
    """The rows :func:`index_rows_sql` gives the document ``attrs`` of entity ``pk``, in Python.

    Writes build them from the attributes they already hold in memory (about twice as fast as
    SQLite parsing the stored JSON again in a trigger); the SQL form remains for indexing a
    database created before the index existed. ``tests/test_platform_qsql.py`` checks the two
    agree on generated documents.
    """
    rows = []
    for name, attribute in attrs.items():
        kind, value = "?", None
        if isinstance(attribute, dict):
            attribute_type = attribute.get("type")
            member = {"Property": "value", "Relationship": "object"}.get(attribute_type)
            held = attribute.get("value")
            if attribute_type in ("Property", "GeoProperty") and isinstance(held, dict) \
                    and "@value" not in held:
                kind = "o"
            elif member is not None and member in attribute:
                value = attribute[member]
                kind = _scalar_kind(value)
        if kind == "b":
            value = int(value)
        elif kind not in ("n", "s"):
            value = None  # never read: every condition tests the kind first
        rows.append((pk, name, kind, value))
    return rows


def enabled() -> bool:
    """False when ``SSCITY_Q_SQL=0`` asks for the Python evaluator alone."""
    return os.environ.get("SSCITY_Q_SQL", "1") != "0"


def _regex(pattern, text) -> int:
    if not isinstance(pattern, str) or not isinstance(text, str):
        return 0
    return int(compile_linear(pattern, "q regular expression").search(text))


def register_functions(conn: sqlite3.Connection) -> None:
    """Add ``ngsi_regex(pattern, text)`` (RE2, linear time) to a connection."""
    conn.create_function("ngsi_regex", 2, _regex, deterministic=True)


@dataclass(frozen=True)
class CompiledQ:
    """SQL conditions on ``e.pk``: ``maybe`` (superset of the matches) and ``sure`` (subset)."""

    maybe: str
    maybe_params: tuple
    sure: str
    sure_params: tuple


def compile_q(plan) -> CompiledQ:
    """Compile the ``plan`` of a :class:`.query.QPredicate` (see the module docstring)."""
    (maybe, maybe_params), (sure, sure_params) = _compile(plan)
    return CompiledQ(maybe, tuple(maybe_params), sure, tuple(sure_params))


def _combine(parts: list[tuple[str, tuple]], joiner: str) -> tuple[str, tuple]:
    neutral, absorbing = (TRUE, FALSE) if joiner == "AND" else (FALSE, TRUE)
    if absorbing in parts:
        return absorbing
    parts = [part for part in parts if part != neutral]
    if not parts:
        return neutral
    if len(parts) == 1:
        return parts[0]
    sql = "(" + f" {joiner} ".join(sql for sql, _ in parts) + ")"
    return sql, tuple(param for _, params in parts for param in params)


def _compile(plan) -> tuple[tuple[str, tuple], tuple[str, tuple]]:
    kind, body = plan
    if kind in ("and", "or"):
        compiled = [_compile(part) for part in body]
        joiner = "AND" if kind == "and" else "OR"
        return (_combine([maybe for maybe, _ in compiled], joiner),
                _combine([sure for _, sure in compiled], joiner))
    return _term(body)


def _has(attribute: str, condition: str = "1", params: tuple = (), negate: bool = False) -> tuple[str, tuple]:
    """``e.pk [NOT] IN`` the entities whose index row of ``attribute`` satisfies ``condition``."""
    return (f"e.pk {'NOT IN' if negate else 'IN'} (SELECT pk FROM entity_values WHERE attr = ? "
            f"AND {condition})", (attribute, *params))


def _kind(value) -> str | None:
    if isinstance(value, bool):
        return "b"
    if isinstance(value, (int, float)):
        return "n"
    if isinstance(value, str):
        return "s"
    return None


def _sql_value(value):
    return int(value) if isinstance(value, bool) else value


def _equal_any(values: tuple) -> tuple[str, tuple]:
    """SQL on an index row: its value equals one of ``values`` (same kind: 1 is not true)."""
    parts, params = [], []
    for value in values:
        kind = _kind(value)
        if kind is not None:
            parts.append("(kind = ? AND v = ?)")
            params += [kind, _sql_value(value)]
    if not parts:
        return "0", ()
    return "(" + " OR ".join(parts) + ")", tuple(params)


def _term(term) -> tuple[tuple[str, tuple], tuple[str, tuple]]:
    attribute = term.attribute
    if term.operator is None:  # attr (exists) / !attr (does not exist)
        if not term.simple:
            # A path inside the attribute exists only if the attribute does; Python decides.
            return (TRUE, _has(attribute, negate=True)) if term.negated else (_has(attribute), FALSE)
        if term.negated:
            return _has(attribute, "kind <> '?'", negate=True), _has(attribute, negate=True)
        return _has(attribute), _has(attribute, "kind <> '?'")
    if not term.simple:
        return _has(attribute), FALSE  # every operator needs at least one value at the path
    operator = term.operator
    if term.pattern is not None:
        if operator == "~=":
            sure = ("kind = 's' AND ngsi_regex(?, v)", (term.pattern,))
        else:  # !~=: a value exists and no text value matches (numbers and booleans never do)
            sure = ("(kind IN ('n', 'b', 'o') OR (kind = 's' AND NOT ngsi_regex(?, v)))", (term.pattern,))
    elif term.bounds is not None:
        low, high = term.bounds
        inside = ("(kind = ? AND v BETWEEN ? AND ?)", (_kind(low), low, high))
        if operator == "==":
            sure = inside
        else:
            sure = (f"kind <> '?' AND NOT {inside[0]}", inside[1])
    elif operator in ("==", "!="):
        equal = _equal_any(term.values)
        sure = equal if operator == "==" else (f"kind <> '?' AND NOT {equal[0]}", equal[1])
    else:
        target = term.values[0]
        sure = (f"kind = ? AND v {operator} ?", (_kind(target), target))
    sure_sql = _has(attribute, *sure)
    # A UNION rather than "kind = '?' OR ...": each half is then a range of the index.
    maybe_sql = (f"e.pk IN (SELECT pk FROM entity_values WHERE attr = ? AND kind = '?' UNION ALL "
                 f"SELECT pk FROM entity_values WHERE attr = ? AND {sure[0]})",
                 (attribute, attribute, *sure[1]))
    return maybe_sql, sure_sql
