"""NGSI-LD entities: checking and expanding what clients send, compacting what they get back.

Stored form ("expanded"): an entity is ``id``, an expanded ``type`` IRI and a dictionary
of attributes keyed by expanded IRIs. Each attribute keeps the NGSI-LD member names
(``type``, ``value``, ``object``, ``observedAt``, ``unitCode``, ``datasetId``, ...), its
system timestamps ``createdAt`` / ``modifiedAt``, and its sub-attributes, also keyed by
expanded IRIs. An attribute with several instances (different ``datasetId``) is a list.

Input may be normalized (``{"type": "Property", "value": 41}``) or concise (``41``,
``{"value": 41}``, ``{"object": "urn:..."}``, a bare GeoJSON geometry), as in clause 4.5 of
NGSI-LD 1.8. Anything the broker cannot store faithfully is a BadRequestData error that
says which attribute is wrong and why.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .context import TermMap
from .errors import bad_data, not_implemented
from .geo import GEOMETRY_TYPES, check_geometry
from .timeutil import canonical_datetime

ATTRIBUTE_TYPES = ("Property", "Relationship", "GeoProperty", "LanguageProperty", "JsonProperty",
                   "VocabProperty", "ListProperty")
_NGSI = "https://uri.etsi.org/ngsi-ld/"
_TYPE_FROM_IRI = {_NGSI + t: t for t in ATTRIBUTE_TYPES}
#: Members of an attribute that are not sub-attributes.
ATTRIBUTE_MEMBERS = frozenset({
    "type", "value", "object", "observedAt", "unitCode", "datasetId", "createdAt", "modifiedAt",
    "instanceId", "languageMap", "json", "vocab", "valueList", "objectType", "lang", "deletedAt",
})
_SYSTEM = ("createdAt", "modifiedAt")
#: Attributes the core context defines as GeoProperties.
GEO_ATTRIBUTES = frozenset({_NGSI + "location", _NGSI + "observationSpace", _NGSI + "operationSpace"})
LOCATION = _NGSI + "location"
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+$")
_FORBIDDEN_NAME = re.compile(r"[\s<>\"'=;()\\]")
MAX_ID_LENGTH = 512
#: The NGSI-LD Null (clause 4.5.x of v1.8): as an attribute's value (or object) in an update
#: it deletes that attribute (instance); JSON null is never an attribute value.
NGSI_LD_NULL = "urn:ngsi-ld:null"
MAX_NESTING = 8


def is_uri(text) -> bool:
    """Whether ``text`` is an absolute URI (``urn:ngsi-ld:ParkingSpot:001``, ``https://...``)."""
    return isinstance(text, str) and 0 < len(text) <= MAX_ID_LENGTH and bool(_URI.match(text))


def check_entity_id(entity_id, where: str = "Entity id") -> str:
    """Return ``entity_id`` if it is a URI, else raise BadRequestData explaining the rule."""
    if not is_uri(entity_id):
        raise bad_data(f"{where} must be a URI such as urn:ngsi-ld:ParkingSpot:001 (a scheme, a colon, "
                       f"no spaces, at most {MAX_ID_LENGTH} characters); got {entity_id!r}.")
    return entity_id


def check_name(name, where: str) -> str:
    """An attribute name or entity type as given by a client: a non-empty, safe string."""
    if not isinstance(name, str) or not name or len(name) > MAX_ID_LENGTH:
        raise bad_data(f"{where} must be a non-empty string, got {name!r}.")
    if _FORBIDDEN_NAME.search(name) or name.startswith("@"):
        raise bad_data(f"{where} {name!r} contains a forbidden character (spaces, quotes, <>=;() or \\) "
                       "or starts with @.")
    return name


def expand_type(entity_type, ctx: TermMap, where: str = "Entity type") -> str:
    """The expanded IRI of an entity type (a single string; lists of one type are accepted)."""
    if isinstance(entity_type, list) and len(entity_type) == 1:
        entity_type = entity_type[0]
    if isinstance(entity_type, list):
        raise bad_data(f"{where}: this broker stores one type per entity; got {entity_type!r}.")
    return ctx.expand(check_name(entity_type, where))


def _check_value(value, where: str) -> None:
    """Reject values JSON cannot carry faithfully (NaN, infinities)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise bad_data(f"{where}: {value} is not a JSON number.")


def normalise_attribute(name_iri: str, raw, ctx: TermMap, now: str, where: str,
                        depth: int = 0) -> dict | list:
    """Check one attribute (normalized or concise) and return its stored form.

    Parameters
    ----------
    name_iri : str
        The expanded attribute name (decides GeoProperty for ``location``).
    raw : object
        The attribute as the client sent it.
    ctx : TermMap
        Expands the names of sub-attributes.
    now : str
        Timestamp written to ``createdAt`` / ``modifiedAt``.
    where : str
        Names the attribute in error messages.
    depth : int
        Nesting level (sub-attributes are attributes of attributes).
    """
    if depth > MAX_NESTING:
        raise bad_data(f"{where}: sub-attributes nest more than {MAX_NESTING} levels deep.")
    if isinstance(raw, list) and raw and all(isinstance(item, dict) and ("type" in item or "value" in item
                                                                         or "object" in item)
                                             for item in raw) and depth == 0:
        # Several instances of one attribute, told apart by datasetId (clause 4.5.5).
        instances = [normalise_attribute(name_iri, item, ctx, now, where, depth) for item in raw]
        dataset_ids = [item.get("datasetId") for item in instances]
        if len(set(dataset_ids)) != len(dataset_ids):
            raise bad_data(f"{where}: several instances need different datasetId values.")
        return instances
    attribute = _concise_to_normalized(name_iri, raw, where)
    kind = attribute.get("type")
    if not isinstance(kind, str):
        raise bad_data(f"{where}: 'type' must be one of {', '.join(ATTRIBUTE_TYPES)}.")
    else:
        kind = _TYPE_FROM_IRI.get(kind, kind)
        if kind not in ATTRIBUTE_TYPES:
            raise bad_data(f"{where}: unknown attribute type {kind!r}; use one of "
                           f"{', '.join(ATTRIBUTE_TYPES)}.")
    if name_iri in GEO_ATTRIBUTES and kind != "GeoProperty":
        raise bad_data(f"{where} must be a GeoProperty: {{\"type\": \"GeoProperty\", \"value\": "
                       "{\"type\": \"Point\", \"coordinates\": [lon, lat]}}.")
    stored: dict = {"type": kind}
    for member, value in attribute.items():
        if member == "type":
            continue
        if member in _SYSTEM or member == "instanceId":
            continue  # system-generated: clients cannot set them
        if member in ATTRIBUTE_MEMBERS:
            stored[member] = _check_member(kind, member, value, where)
        else:
            sub_name = check_name(member, f"{where}: sub-attribute name")
            sub_iri = ctx.expand(sub_name)
            stored[sub_iri] = normalise_attribute(sub_iri, value, ctx, now, f"{where}.{member}", depth + 1)
    required = {"Property": "value", "Relationship": "object", "GeoProperty": "value",
                "LanguageProperty": "languageMap", "JsonProperty": "json", "VocabProperty": "vocab",
                "ListProperty": "valueList"}[kind]
    if required not in stored:
        raise bad_data(f"{where}: a {kind} needs '{required}'.")
    stored["createdAt"] = now
    stored["modifiedAt"] = now
    return stored


def _concise_to_normalized(name_iri: str, raw, where: str) -> dict:
    if not isinstance(raw, dict):
        _reject_null(raw, where)
        return {"type": "Property", "value": raw}
    if "type" in raw:
        kind = raw["type"]
        if kind in GEOMETRY_TYPES and "coordinates" in raw:
            return {"type": "GeoProperty", "value": raw}
        return raw
    if "object" in raw:
        return {"type": "Relationship", **raw}
    if "languageMap" in raw:
        return {"type": "LanguageProperty", **raw}
    if "value" in raw:
        if name_iri in GEO_ATTRIBUTES:
            return {"type": "GeoProperty", **raw}
        return {"type": "Property", **raw}
    # A bare JSON object is the value of a Property (a compound value).
    return {"type": "Property", "value": raw}


def is_ngsi_ld_null(instance) -> bool:
    """Whether one stored attribute instance is the NGSI-LD Null (a deletion in an update)."""
    return isinstance(instance, dict) and (instance.get("value") == NGSI_LD_NULL
                                           or instance.get("object") == NGSI_LD_NULL)


def _reject_null(value, where: str) -> None:
    if value is None:
        raise bad_data(f"{where}: null is not an attribute value (to remove an attribute, delete it).")


def _check_member(kind: str, member: str, value, where: str):
    if member == "value":
        _reject_null(value, where)
        if kind == "GeoProperty" and value != NGSI_LD_NULL:
            return check_geometry(value, where)
        _check_json(value, where, 0)
        return value
    if member == "object":
        targets = value if isinstance(value, list) else [value]
        if not targets or not all(is_uri(target) for target in targets):
            raise bad_data(f"{where}: a Relationship's object must be a URI (or a list of URIs) such as "
                           f"urn:ngsi-ld:ParkingSite:001, got {value!r}.")
        return value
    if member == "observedAt":
        return canonical_datetime(value, f"{where}: observedAt")
    if member == "unitCode":
        if not isinstance(value, str) or not value:
            raise bad_data(f"{where}: unitCode must be a UN/CEFACT code string such as 'GQ' (µg/m³).")
        return value
    if member == "datasetId":
        if not is_uri(value):
            raise bad_data(f"{where}: datasetId must be a URI, got {value!r}.")
        return value
    if member == "languageMap":
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, (str, list))
                                                  for k, v in value.items()):
            raise bad_data(f"{where}: languageMap must map language tags to strings, e.g. "
                           '{"ja": "つくば", "en": "Tsukuba"}.')
        return value
    _reject_null(value, where)
    _check_json(value, where, 0)
    return value


def _check_json(value, where: str, depth: int) -> None:
    if depth > 64:
        raise bad_data(f"{where}: the value nests more than 64 levels deep.")
    if isinstance(value, float):
        _check_value(value, where)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, where, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            _check_json(item, where, depth + 1)


@dataclass
class Entity:
    """An entity in stored form: ``attrs`` maps expanded names to attribute objects."""

    id: str
    type: str
    attrs: dict
    created_at: str | None = None
    modified_at: str | None = None


def normalise_entity(payload, ctx: TermMap, now: str, require_type: bool = True) -> Entity:
    """Check a whole entity from a client and return its stored form.

    Parameters
    ----------
    payload : object
        The decoded JSON body (a dict with ``id``, ``type`` and attributes).
    ctx : TermMap
        The request's processed ``@context``.
    now : str
        The timestamp of this write.
    require_type : bool
        Batch update accepts entities without ``type``.
    """
    if not isinstance(payload, dict):
        raise bad_data("An entity must be a JSON object with 'id', 'type' and attributes.")
    entity_id = check_entity_id(payload.get("id", payload.get("@id")))
    raw_type = payload.get("type", payload.get("@type"))
    if raw_type is None:
        if require_type:
            raise bad_data(f"Entity {entity_id} has no 'type'; add e.g. \"type\": \"ParkingSpot\".")
        entity_type = ""
    else:
        entity_type = expand_type(raw_type, ctx, f"Entity {entity_id}: type")
    attrs = normalise_attributes(payload, ctx, now, f"Entity {entity_id}")
    return Entity(entity_id, entity_type, attrs, now, now)


_ENTITY_MEMBERS = frozenset({"id", "@id", "type", "@type", "@context", "createdAt", "modifiedAt",
                             "deletedAt"})


def normalise_attributes(payload: dict, ctx: TermMap, now: str, where: str) -> dict:
    """Attributes of a payload (every member but id, type, @context...) in stored form."""
    if not isinstance(payload, dict):
        raise bad_data(f"{where}: attributes must be sent as a JSON object of name -> attribute.")
    attrs = {}
    for name, raw in payload.items():
        if name in _ENTITY_MEMBERS:
            continue
        if name == "scope":
            # Dropping it would lose what a production broker keeps and answers scopeQ with.
            raise not_implemented(f"{where}: entity scopes (the 'scope' member)", "4.18",
                                  "Remove 'scope', or keep the information in an attribute such as "
                                  "\"district\".")
        check_name(name, f"{where}: attribute name")
        iri = ctx.expand(name)
        if iri in attrs:
            raise bad_data(f"{where}: attribute {name!r} is given twice (two names expand to {iri}).")
        attrs[iri] = normalise_attribute(iri, raw, ctx, now, f"{where}: attribute {name!r}")
    return attrs


# -- output ------------------------------------------------------------------------------

def compact_attribute(attribute, ctx: TermMap, sys_attrs: bool):
    """One stored attribute with its sub-attribute names compacted (system timestamps on request)."""
    if isinstance(attribute, list):
        return [compact_attribute(item, ctx, sys_attrs) for item in attribute]
    out = {}
    for member, value in attribute.items():
        if member in ATTRIBUTE_MEMBERS:
            if member in _SYSTEM and not sys_attrs:
                continue
            out[member] = value
        else:
            out[ctx.compact(member)] = compact_attribute(value, ctx, sys_attrs)
    return out


def simplified_value(attribute):
    """The keyValues form of one attribute: its value, object, languageMap, ... only."""
    if isinstance(attribute, list):
        return [simplified_value(item) for item in attribute]
    kind = attribute.get("type")
    if kind == "Relationship":
        return attribute.get("object")
    if kind == "LanguageProperty":
        return attribute.get("languageMap")
    if kind == "JsonProperty":
        return attribute.get("json")
    if kind == "VocabProperty":
        return attribute.get("vocab")
    if kind == "ListProperty":
        return attribute.get("valueList")
    return attribute.get("value")


def render_entity(entity: Entity, ctx: TermMap, *, key_values: bool = False, sys_attrs: bool = False,
                  attrs: set[str] | None = None) -> dict:
    """The entity compacted with ``ctx``: normalized, or keyValues (simplified)."""
    out = {"id": entity.id, "type": ctx.compact(entity.type)}
    if sys_attrs and not key_values:
        out["createdAt"] = entity.created_at
        out["modifiedAt"] = entity.modified_at
    for name, attribute in entity.attrs.items():
        if attrs is not None and name not in attrs:
            continue
        if key_values:
            out[ctx.compact(name)] = simplified_value(attribute)
        else:
            out[ctx.compact(name)] = compact_attribute(attribute, ctx, sys_attrs)
    return out


def observed_instances(attrs: dict):
    """(attribute IRI, attribute instance) pairs that carry observedAt: the history to record."""
    for name, attribute in attrs.items():
        for instance in attribute if isinstance(attribute, list) else [attribute]:
            if isinstance(instance, dict) and "observedAt" in instance:
                yield name, instance
