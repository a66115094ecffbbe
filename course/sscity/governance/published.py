"""Audit what a platform tenant publishes, before anyone else reads it.

The through-line (:func:`sscity.city.seed_city`) publishes module 01's survey aggregates,
module 03's sensor readings, module 02's facilities and the neighbourhoods' sidewalks on one
NGSI-LD tenant. Governance (module 05) then reads the tenant *as an outsider would* and checks
the rules the city set for open data about people:

==================  ===============================================================================
rule                what is a finding
==================  ===============================================================================
``small-cell``      an aggregate of people (an entity with ``respondents``) of fewer than ``k``
``differencing``    a total published beside its parts, so that total minus parts gives back a
                    suppressed cell of fewer than ``k`` people
``no-uncertainty``  a survey estimate (an entity with ``respondents``) without a standard error
``no-provenance``   an aggregate of people that does not say who made it and whether it is
                    synthetic (``dataProvider``)
``identifier``      an attribute that names or contacts a person (``respondentId``, ``email``,
                    ``macAddress``, ...)
``private-place``   a home published as a place (``PublicFacility`` of category ``home``)
==================  ===============================================================================

Totals are recognised by a ``districtCode`` of ``"city"``, ``"all"`` or ``"total"`` beside
district cells of the same type and ``surveyWave``.

These are checks of *what was published*, not of how: a tenant that passes can still leak
through a finer table published elsewhere, through the temporal history (query it with
``client.temporal``), or through linkage with outside data (module 05's
:mod:`sscity.governance.reidentify`).

Example
-------
>>> from sscity.platform import Client
>>> audit_published(Client(tenant="city"), k=10)  # doctest: +SKIP
Empty DataFrame
"""

from __future__ import annotations

import pandas as pd

__all__ = ["IDENTIFYING_ATTRIBUTES", "PRIVATE_CATEGORIES", "RULES", "audit_published"]

RULES = ("small-cell", "differencing", "no-uncertainty", "no-provenance", "identifier", "private-place")

# Attribute names (compared without case) that identify or contact a person.
IDENTIFYING_ATTRIBUTES = frozenset(name.lower() for name in (
    "respondentId", "personId", "personName", "fullName", "familyName", "givenName", "email",
    "telephone", "phone", "macAddress", "deviceMac", "myNumber", "birthDate", "dateOfBirth",
    "homeAddress", "homeLocation", "licensePlate", "riderId",
))
PRIVATE_CATEGORIES = frozenset({"home", "house", "residence", "dwelling"})
_TOTAL_CODES = frozenset({"city", "all", "total"})
_COLUMNS = ["entity_id", "type", "rule", "detail"]


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a whole number >= 1 (people behind a published cell); got {k!r}. "
                         f"/ k は 1 以上の整数（公表するセルの最小人数）にしてください。")
    return k


def _entities(client, types) -> list[dict]:
    from sscity.platform import BrokerError

    try:
        names = list(types) if types is not None else client.types()
    except BrokerError as err:
        if err.status == 404:  # a tenant nobody wrote to publishes nothing
            return []
        raise
    found = []
    for kind in names:
        found += client.query_all(type=kind, key_values=True)
    return found


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def audit_published(client, *, k: int = 10, types=None) -> pd.DataFrame:
    """Findings about the people in what a tenant publishes; empty when it follows the rules.

    Parameters
    ----------
    client : sscity.platform.Client
        The tenant to audit (read only: nothing is written).
    k : int, default 10
        Fewest people behind a published aggregate (the seeder's ``k``).
    types : list of str, optional
        Entity types to read (default: every type the tenant has).

    Returns
    -------
    DataFrame
        ``entity_id``, ``type``, ``rule`` (one of :data:`RULES`) and ``detail`` (English /
        Japanese), one row per finding, sorted by rule and entity.
    """
    k = _check_k(k)
    rows = []

    def finding(entity, rule, detail):
        rows.append({"entity_id": entity["id"], "type": entity.get("type"), "rule": rule, "detail": detail})

    entities = _entities(client, types)
    for entity in entities:
        for name in entity:
            if name.lower() in IDENTIFYING_ATTRIBUTES:
                finding(entity, "identifier", f"attribute {name!r} identifies or contacts a person "
                                              f"/ 属性 {name!r} は個人を特定・連絡できる")
        category = str(entity.get("category", "")).lower()
        if entity.get("type") == "PublicFacility" and category in PRIVATE_CATEGORIES:
            finding(entity, "private-place",
                    "a home published as a public place / 住居を公共の場所として公開")
        if "respondents" not in entity:
            continue
        n = _number(entity["respondents"])
        if n is not None and n < k:
            finding(entity, "small-cell", f"{n:g} respondents, fewer than k = {k} "
                                          f"/ 回答者 {n:g} 人、k = {k} 未満")
        if not any(str(name).endswith("StandardError") for name in entity):
            finding(entity, "no-uncertainty", "an estimate without its standard error / 標準誤差のない推定値")
        if "dataProvider" not in entity:
            finding(entity, "no-provenance", "no dataProvider: who made it, synthetic or real? "
                                             "/ dataProvider がない（作成者、合成か実データか）")

    # A total beside its parts gives back what suppression hid.
    cells: dict[tuple, list[dict]] = {}
    for entity in entities:
        if _number(entity.get("respondents")) is not None and "districtCode" in entity:
            cells.setdefault((entity.get("type"), entity.get("surveyWave")), []).append(entity)
    for group in cells.values():
        totals = [e for e in group if str(e["districtCode"]).lower() in _TOTAL_CODES]
        parts = [e for e in group if str(e["districtCode"]).lower() not in _TOTAL_CODES]
        for total in totals:
            hidden = total["respondents"] - sum(e["respondents"] for e in parts)
            if 0 < hidden < k:
                finding(total, "differencing",
                        f"total minus the {len(parts)} published cells gives back {hidden:g} respondents "
                        f"(fewer than k = {k}) / 合計から公表セルを引くと回答者 {hidden:g} 人のセルが戻る")
    table = pd.DataFrame(rows, columns=_COLUMNS)
    return table.sort_values(["rule", "entity_id"], ignore_index=True)
