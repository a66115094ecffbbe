"""Open-data export of platform entities: GeoJSON and CSV, each with its licence.

Tsukuba's answer to the G20 alliance's openness principle is more open data. Data are only
open when a reader can tell what they may do with them, so every export carries its
licence and attribution:

- :func:`export_geojson` writes a GeoJSON FeatureCollection (RFC 7946; coordinates
  [lon, lat]) whose top-level ``metadata`` member holds licence, attribution, source,
  time of export and whether the data are synthetic;
- :func:`export_csv` writes a CSV table (one row per entity, ``lon`` and ``lat`` columns for
  the location) and beside it ``<name>.csv-metadata.json`` in the W3C *CSV on the Web*
  vocabulary (``dc:license``, column titles), the standard way to describe a CSV file.

Personal data never belong in open data: both functions refuse entities of the types in
``personal_types`` (and any attribute in ``drop``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

__all__ = ["LICENCES", "export_csv", "export_geojson", "flatten_entity"]

LICENCES = {
    "CC-BY-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "ODbL-1.0": "https://opendatacommons.org/licenses/odbl/1-0/",
}
DEFAULT_PERSONAL_TYPES = ("Person", "Resident", "HealthBooking", "BusBooking")


def _value(attribute):
    """The plain value of a normalised NGSI-LD attribute (or a keyValues value as is)."""
    if isinstance(attribute, dict) and attribute.get("type") in {"Property", "GeoProperty"}:
        return attribute.get("value")
    if isinstance(attribute, dict) and attribute.get("type") == "Relationship":
        return attribute.get("object")
    return attribute


def flatten_entity(entity: dict, drop=()) -> dict:
    """One flat row of an entity: id, type, each attribute's value, and lon/lat of ``location``.

    Works for normalised and keyValues entities; compound values are written as JSON text.
    """
    if not isinstance(entity, dict) or "id" not in entity or "type" not in entity:
        raise ValueError("Each entity must be a dict with 'id' and 'type' (as returned by Client.query).")
    row = {"id": entity["id"], "type": entity["type"]}
    for name, attribute in entity.items():
        if name in {"id", "type", "@context"} or name in drop:
            continue
        value = _value(attribute)
        if name == "location" and isinstance(value, dict) and value.get("type") == "Point":
            row["lon"], row["lat"] = value["coordinates"][:2]
            continue
        row[name] = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value
    return row


def _check(entities, licence: str, personal_types) -> list[dict]:
    if licence not in LICENCES:
        raise ValueError(f"Unknown licence {licence!r}; use one of {sorted(LICENCES)} "
                         "(open data need a licence a reader can look up).")
    entities = list(entities)
    personal = sorted({e.get("type") for e in entities if e.get("type") in personal_types})
    if personal:
        raise ValueError(f"Refusing to publish personal data (types {personal}): open data must not "
                         "identify residents. Aggregate or anonymise first.")
    return entities


def _metadata(licence: str, attribution: str, source: str, synthetic: bool, generated_at: str) -> dict:
    return {"license": licence, "license_url": LICENCES[licence], "attribution": attribution,
            "source": source, "synthetic": bool(synthetic), "generated_at": generated_at}


def export_geojson(entities, path, *, licence: str = "CC-BY-4.0", attribution: str, source: str = "",
                   synthetic: bool, generated_at: str, drop=(),
                   personal_types=DEFAULT_PERSONAL_TYPES) -> Path:
    """Write entities with a Point ``location`` as a GeoJSON FeatureCollection with licence metadata.

    Parameters
    ----------
    entities : iterable of dict
        NGSI-LD entities (normalised or keyValues).
    path : path-like
        The ``.geojson`` file to write.
    licence : str
        A key of :data:`LICENCES`.
    attribution : str
        Who to credit, e.g. ``"Tsukuba Super Science City course (synthetic data)"``.
    source : str
        Where the data came from (the platform, the query).
    synthetic : bool
        Whether the data are synthetic; said in the metadata of the file.
    generated_at : str
        ISO 8601 time of the export (explicit, so the file is the same on every run).
    drop : iterable of str
        Attributes to leave out.
    """
    entities = _check(entities, licence, personal_types)
    features = []
    for entity in entities:
        location = _value(entity.get("location"))
        if not isinstance(location, dict) or "coordinates" not in location:
            raise ValueError(f"{entity['id']} has no GeoJSON location to map; export it as CSV instead.")
        properties = flatten_entity(entity, drop=set(drop) | {"location"})
        features.append({"type": "Feature", "id": entity["id"], "geometry": location,
                         "properties": properties})
    collection = {"type": "FeatureCollection",
                  "metadata": _metadata(licence, attribution, source, synthetic, generated_at),
                  "features": features}
    path = Path(path)
    path.write_text(json.dumps(collection, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


def export_csv(entities, path, *, licence: str = "CC-BY-4.0", attribution: str, source: str = "",
               synthetic: bool, generated_at: str, drop=(),
               personal_types=DEFAULT_PERSONAL_TYPES) -> tuple[Path, Path]:
    """Write entities as CSV plus a CSV-on-the-Web metadata file; return both paths.

    Parameters are those of :func:`export_geojson`. Columns are ``id``, ``type``, then the
    attributes in order of first appearance (``lon``/``lat`` for Point locations).
    """
    entities = _check(entities, licence, personal_types)
    rows = [flatten_entity(e, drop=set(drop)) for e in entities]
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    meta = _metadata(licence, attribution, source, synthetic, generated_at)
    csvw = {
        "@context": "http://www.w3.org/ns/csvw",
        "url": path.name,
        "dc:license": {"@id": meta["license_url"]},
        "dc:title": f"{', '.join(sorted({r['type'] for r in rows}))} from the city data platform"
                    + (" (SYNTHETIC)" if synthetic else ""),
        "dc:creator": attribution,
        "dc:source": source,
        "dc:created": generated_at,
        "tableSchema": {"columns": [{"name": c, "titles": c} for c in columns]},
    }
    meta_path = path.with_name(path.name + "-metadata.json")
    meta_path.write_text(json.dumps(csvw, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path, meta_path
