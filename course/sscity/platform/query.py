"""The NGSI-LD query language (clause 4.9): ``q=`` filters on attribute values.

Supported: ``== != > >= < <=``, ``~=`` and ``!~=`` (regular expressions, Python syntax run by
the linear-time RE2 engine of :mod:`.regex`: no backreferences or lookaround),
``;`` (AND, binds tighter) and ``|`` (OR), parentheses, ranges ``==1..5``, lists
``==a,b,"c d"``, quoted strings, ``true``/``false``, numbers, DateTimes (compared as
instants), existence ``attr`` and non-existence ``!attr``. Attribute paths: ``a.b`` is the
sub-attribute ``b`` of ``a`` (or, when there is none, the key ``b`` of a compound value);
``a[b][c]`` or ``a[b.c]`` walk into a compound value; ``a.observedAt`` / ``a.unitCode``
read those members.

:func:`parse_q` returns a predicate over a stored entity (attribute names already
expanded), so a query string is parsed once per request, not once per entity. The predicate
also carries the query's ``plan`` (its terms as :class:`Term`), which :mod:`.qsql` compiles
to SQL over the ``entity_values`` index: the broker runs ``q`` in SQLite and calls the
predicate only for the rows SQL cannot decide (subscriptions call it directly).
:func:`numeric_prefilter` picks the simple numeric terms (``no2>40``, ``n==1..5``) that
SQLite can check first; it is used only when ``SSCITY_Q_SQL=0`` turns the SQL path off.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from .errors import NgsiError, bad_data
from .model import simplified_value
from .regex import compile_linear
from .timeutil import maybe_datetime

MAX_Q_LENGTH = 4000
MAX_TERMS = 200
MAX_DEPTH = 20
_OPERATORS = ("==", "!=", ">=", "<=", "!~=", "~=", ">", "<")
_NUMBER = re.compile(r"^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_ATTR_MEMBERS = ("observedAt", "unitCode", "datasetId", "createdAt", "modifiedAt")

Predicate = Callable[[dict], bool]
# The plan of a parsed q that :mod:`.qsql` compiles to SQL: ("or", [plans]), ("and", [plans]) or
# ("term", Term). It mirrors the predicate term by term.
Plan = tuple
_NUM = r"-?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?"
_SIMPLE_TERM = re.compile(rf"^([A-Za-z0-9_:\-/#]+)(==|>=|<=|>|<)({_NUM})$")
_RANGE_TERM = re.compile(rf"^([A-Za-z0-9_:\-/#]+)==({_NUM})\.\.({_NUM})$")


class _Reader:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.terms = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def fail(self, message: str) -> NgsiError:
        return bad_data(f"Cannot read q={self.text!r} at character {self.pos + 1}: {message}. "
                        'Example: q=no2>40;status=="free"|(peopleCount>=10;congested==true)')


@dataclass(frozen=True)
class Term:
    """One term of a ``q`` as :mod:`.qsql` needs it.

    ``simple`` is True for a bare top-level attribute (no ``.sub`` and no ``[...]`` path): only
    those are answered from the SQL value index. ``operator`` is None for ``attr`` / ``!attr``
    (``negated``); ``values`` holds the normalised literals (one, or several for a list),
    ``bounds`` the (low, high) of a range, ``pattern`` the regular expression of ``~=``/``!~=``.
    """

    attribute: str
    simple: bool
    negated: bool = False
    operator: str | None = None
    values: tuple = ()
    bounds: tuple | None = None
    pattern: str | None = None


class QPredicate:
    """A parsed ``q``: call it on an entity's attributes; ``plan`` is what :mod:`.qsql` compiles."""

    __slots__ = ("_predicate", "plan", "text")

    def __init__(self, predicate: Predicate, plan: Plan, text: str):
        self._predicate = predicate
        self.plan = plan
        self.text = text

    def __call__(self, attrs: dict) -> bool:
        return self._predicate(attrs)

    def __repr__(self) -> str:
        return f"QPredicate({self.text!r})"


def parse_q(text: str, expand: Callable[[str], str]) -> QPredicate:
    """Parse a ``q`` expression into a predicate over stored entity attributes.

    Parameters
    ----------
    text : str
        The query, e.g. ``no2>40;status=="free"``.
    expand : callable
        Maps an attribute name to its IRI under the request's ``@context``.

    Returns
    -------
    QPredicate
        ``predicate(attributes) -> bool`` where ``attributes`` maps expanded names to
        NGSI-LD attribute objects; its ``plan`` lets :mod:`.qsql` run the same query in SQLite.
    """
    if len(text) > MAX_Q_LENGTH:
        raise NgsiError("TooComplexQuery", f"q is {len(text)} characters long; the limit is {MAX_Q_LENGTH}.")
    reader = _Reader(text)
    predicate, plan = _parse_or(reader, expand, 0)
    if reader.pos != len(text):
        raise reader.fail(f"unexpected {reader.peek()!r}")
    return QPredicate(predicate, plan, text)


def _parse_or(reader: _Reader, expand, depth: int) -> tuple[Predicate, Plan]:
    parsed = [_parse_and(reader, expand, depth)]
    while reader.peek() == "|":
        reader.pos += 1
        parsed.append(_parse_and(reader, expand, depth))
    if len(parsed) == 1:
        return parsed[0]
    parts = [predicate for predicate, _ in parsed]
    return (lambda attrs: any(part(attrs) for part in parts)), ("or", [plan for _, plan in parsed])


def _parse_and(reader: _Reader, expand, depth: int) -> tuple[Predicate, Plan]:
    parsed = [_parse_term(reader, expand, depth)]
    while reader.peek() == ";":
        reader.pos += 1
        parsed.append(_parse_term(reader, expand, depth))
    if len(parsed) == 1:
        return parsed[0]
    parts = [predicate for predicate, _ in parsed]
    return (lambda attrs: all(part(attrs) for part in parts)), ("and", [plan for _, plan in parsed])


def _parse_term(reader: _Reader, expand, depth: int) -> tuple[Predicate, Plan]:
    reader.terms += 1
    if reader.terms > MAX_TERMS or depth > MAX_DEPTH:
        raise NgsiError("TooComplexQuery", f"q has more than {MAX_TERMS} terms or {MAX_DEPTH} nested "
                        "parentheses; split the query.")
    if reader.peek() == "(":
        reader.pos += 1
        inner = _parse_or(reader, expand, depth + 1)
        if reader.peek() != ")":
            raise reader.fail("a '(' is not closed")
        reader.pos += 1
        return inner
    negated = False
    if reader.peek() == "!" and not reader.text.startswith("!=", reader.pos) \
            and not reader.text.startswith("!~=", reader.pos):
        negated = True
        reader.pos += 1
    start = reader.pos
    text = reader.text
    while reader.pos < len(text) and text[reader.pos] not in "=!<>~;|()\"' \t":
        reader.pos += 1
    path_text = text[start:reader.pos]
    if not path_text:
        raise reader.fail("expected an attribute name")
    getter, attribute, simple = _attribute_getter(path_text, expand, reader)
    operator = next((op for op in _OPERATORS if text.startswith(op, reader.pos)), None)
    if operator is None:
        if reader.peek() not in ("", ";", "|", ")"):
            raise reader.fail(f"expected an operator ({' '.join(_OPERATORS)})")
        plan = ("term", Term(attribute, simple, negated=negated))
        if negated:
            return (lambda attrs: not getter(attrs)), plan
        return (lambda attrs: bool(getter(attrs))), plan
    if negated:
        raise reader.fail("'!' (does not exist) cannot be combined with an operator")
    reader.pos += len(operator)
    raw = _read_value(reader, regex=operator in ("~=", "!~="))
    predicate, term = _comparison(getter, operator, raw, reader, Term(attribute, simple, operator=operator))
    return predicate, ("term", term)


def _read_value(reader: _Reader, regex: bool = False) -> str:
    text = reader.text
    start = reader.pos
    quote = None
    depth = 0  # parentheses inside an unquoted regular expression, e.g. (?i)free
    while reader.pos < len(text):
        char = text[reader.pos]
        if quote:
            if char == "\\":
                reader.pos += 1
            elif char == quote:
                quote = None
        elif char in "\"'" and not (regex and reader.pos > start):
            quote = char
        elif regex and char == "(":
            depth += 1
        elif regex and char == ")" and depth:
            depth -= 1
        elif char in ";|)" and not depth:
            break
        reader.pos += 1
    if quote:
        raise reader.fail("a quoted string is not closed")
    raw = text[start:reader.pos]
    if not raw:
        raise reader.fail("expected a value after the operator")
    return raw


def _split_outside_quotes(raw: str, separator: str) -> list[str]:
    parts, current, quote, i = [], [], None, 0
    while i < len(raw):
        char = raw[i]
        if quote:
            current.append(char)
            if char == "\\" and i + 1 < len(raw):
                current.append(raw[i + 1])
                i += 1
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
            current.append(char)
        elif raw.startswith(separator, i):
            parts.append("".join(current))
            current = []
            i += len(separator) - 1
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


def _literal(token: str, reader: _Reader):
    token = token.strip()
    if not token:
        raise reader.fail("empty value")
    if token[0] in "\"'":
        if len(token) < 2 or token[-1] != token[0]:
            raise reader.fail(f"badly quoted value {token!r}")
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    if token[0] in "=<>!~":
        raise reader.fail(f"a value cannot start with {token[0]!r}; quote it if you mean the text")
    if token == "true":
        return True
    if token == "false":
        return False
    if _NUMBER.match(token):
        number = float(token)
        return int(number) if number.is_integer() and abs(number) < 2**53 and "." not in token \
            and "e" not in token.lower() else number
    return token  # unquoted strings: DateTimes, URIs, plain words


def _normalise(value):
    """Comparable form: DateTime strings become canonical UTC so instants compare correctly."""
    if isinstance(value, str):
        canonical = maybe_datetime(value)
        return canonical if canonical is not None else value
    return value


def _comparable(left, right) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool)
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return True
    return isinstance(left, str) and isinstance(right, str)


def _comparison(getter, operator: str, raw: str, reader: _Reader, term: Term) -> tuple[Predicate, Term]:
    if operator in ("~=", "!~="):
        pattern = _literal(raw, reader)
        if not isinstance(pattern, str):
            pattern = raw
        try:
            regex = compile_linear(pattern, "q regular expression")
        except NgsiError as err:
            raise reader.fail(err.detail) from None

        def matches(attrs) -> bool:
            return any(isinstance(v, str) and regex.search(v) for v in getter(attrs))

        term = replace(term, pattern=pattern)
        if operator == "~=":
            return matches, term
        return (lambda attrs: bool(getter(attrs)) and not matches(attrs)), term

    items = _split_outside_quotes(raw, ",")
    if len(items) > 1:
        if operator not in ("==", "!="):
            raise reader.fail("a list of values (a,b,c) only works with == or !=")
        wanted = [_normalise(_literal(item, reader)) for item in items]

        def in_list(attrs) -> bool:
            return any(_equal(v, w) for v in getter(attrs) for w in wanted)

        term = replace(term, values=tuple(wanted))
        if operator == "==":
            return in_list, term
        return (lambda attrs: bool(getter(attrs)) and not in_list(attrs)), term

    bounds = _split_outside_quotes(raw, "..")
    if len(bounds) == 2:
        if operator not in ("==", "!="):
            raise reader.fail("a range (1..5) only works with == or !=")
        low = _normalise(_literal(bounds[0], reader))
        high = _normalise(_literal(bounds[1], reader))
        if not _comparable(low, high) or isinstance(low, bool):
            raise reader.fail(f"the range {raw!r} needs two numbers, two DateTimes or two strings")

        def in_range(attrs) -> bool:
            return any(_comparable(v, low) and low <= v <= high for v in getter(attrs))

        term = replace(term, bounds=(low, high))
        if operator == "==":
            return in_range, term
        return (lambda attrs: bool(getter(attrs)) and not in_range(attrs)), term
    if len(bounds) > 2:
        raise reader.fail(f"cannot read the range {raw!r}")

    target = _normalise(_literal(raw, reader))
    term = replace(term, values=(target,))
    if operator == "==":
        return (lambda attrs: any(_equal(v, target) for v in getter(attrs))), term
    if operator == "!=":
        return (lambda attrs: (values := getter(attrs)) != []
                and not any(_equal(v, target) for v in values)), term
    if isinstance(target, bool):
        raise reader.fail(f"{operator} needs a number, a DateTime or a string, not {raw}")
    compare = {">": lambda v: v > target, ">=": lambda v: v >= target,
               "<": lambda v: v < target, "<=": lambda v: v <= target}[operator]
    return (lambda attrs: any(_comparable(v, target) and compare(v) for v in getter(attrs))), term


def _equal(value, target) -> bool:
    return _comparable(value, target) and value == target


def _attribute_getter(path_text: str, expand, reader: _Reader):
    """(getter, attribute IRI, simple): getter maps attrs to the comparable leaf values at ``path_text``.

    ``simple`` is True when the path is a bare attribute name (no sub-attribute, no value path).
    """
    head, bracket, tail = path_text.partition("[")
    value_path: list[str] = []
    if bracket:
        if not tail.endswith("]"):
            raise reader.fail(f"badly formed attribute path {path_text!r}")
        for segment in tail[:-1].split("]["):
            if not segment or "[" in segment or "]" in segment:
                raise reader.fail(f"badly formed attribute path {path_text!r}")
            value_path.extend(segment.split("."))
    # A full IRI as attribute name (https://example.org/speed) contains dots that are not
    # sub-attribute separators.
    dotted = [head] if "/" in head else head.split(".")
    if any(not part for part in dotted) or any(not part for part in value_path):
        raise reader.fail(f"badly formed attribute path {path_text!r}")
    attribute = expand(dotted[0])
    subpath = [(part, expand(part)) for part in dotted[1:]]

    def getter(attrs: dict) -> list:
        found = attrs.get(attribute)
        if found is None:
            return []
        instances = found if isinstance(found, list) else [found]
        leaves: list = []
        for instance in instances:
            _collect(instance, subpath, value_path, leaves)
        return leaves

    return getter, attribute, not subpath and not value_path


def _attribute_value(attribute: dict):
    """The value a query compares: keyValues form, a language map's texts, ``@value`` unwrapped."""
    if attribute.get("type") == "LanguageProperty":
        language_map = attribute.get("languageMap")
        return list(language_map.values()) if isinstance(language_map, dict) else None
    value = simplified_value(attribute)
    if isinstance(value, dict) and "@value" in value:
        return value["@value"]
    return value


def _collect(attribute, subpath, value_path, leaves: list) -> None:
    if not isinstance(attribute, dict):
        return
    value = None
    for index, (raw_name, expanded_name) in enumerate(subpath):
        if raw_name in _ATTR_MEMBERS and index == len(subpath) - 1 and raw_name in attribute:
            value = attribute[raw_name]
            subpath = []
            break
        sub = attribute.get(expanded_name)
        if isinstance(sub, dict) and "type" in sub:
            attribute = sub
            continue
        # No such sub-attribute: read the rest of the dotted path inside the value.
        value = _walk(_attribute_value(attribute), [name for name, _ in subpath[index:]])
        subpath = []
        break
    else:
        value = _attribute_value(attribute)
    value = _walk(value, value_path)
    _flatten(value, leaves)


def _walk(value, keys: list[str]):
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list):
            value = [item.get(key) for item in value if isinstance(item, dict)]
        else:
            return None
    return value


def _flatten(value, leaves: list) -> None:
    if value is None:
        return
    if isinstance(value, list):
        for item in value:
            _flatten(item, leaves)
    elif isinstance(value, dict):
        if "@value" in value:
            _flatten(value["@value"], leaves)
        else:
            leaves.append(value)  # compound values exist (for a bare attribute test)
    else:
        leaves.append(_normalise(value))


def numeric_prefilter(text: str, expand: Callable[[str], str]) -> list[tuple[str, str, float]]:
    """Terms of ``q`` that SQLite can pre-check: (attribute IRI, operator, number).

    Only for a query that is a plain AND (``;``) of terms, and only for terms such as
    ``no2>40`` on a top-level attribute. The database then skips entities whose attribute
    value is a number failing the comparison; every other entity still goes through the
    full predicate of :func:`parse_q`, so the result is exactly the same, only faster.
    """
    if any(char in text for char in "|()\"'[]"):
        return []
    terms = []
    for term in text.split(";"):
        if match := _SIMPLE_TERM.match(term):
            name, operator, number = match.groups()
            found = [("=" if operator == "==" else operator, float(number))]
        elif match := _RANGE_TERM.match(term):
            name, low, high = match.groups()
            found = [(">=", float(low)), ("<=", float(high))]
        else:
            continue
        iri = expand(name)
        if '"' not in iri and "\\" not in iri:
            terms += [(iri, operator, number) for operator, number in found]
    return terms
