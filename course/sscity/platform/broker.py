"""The broker's operations: NGSI-LD semantics over :class:`~sscity.platform.storage.Store`.

:class:`Broker` works on decoded JSON and processed contexts; :mod:`sscity.platform.app`
adds HTTP around it. Each write is one SQLite transaction, and the notifications it
triggers are sent after the commit (so no subscriber ever hears of a write that was
rolled back).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import geo, qsql
from .context import ContextResolver, TermMap
from .errors import NgsiError, bad_data, not_found
from .model import (
    LOCATION,
    Entity,
    check_entity_id,
    check_name,
    expand_type,
    is_uri,
    normalise_attribute,
    normalise_attributes,
    normalise_entity,
    observed_instances,
    render_entity,
)
from .notify import INBOX_SCHEME, Notifier
from .query import Predicate, parse_q
from .regex import LinearPattern, compile_linear
from .storage import Store, dumps
from .timeutil import canonical_datetime, now_iso

_TENANT = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


@dataclass
class UpdateResult:
    """Outcome of an attribute update: expanded names updated, and those that were not."""

    updated: list[str] = field(default_factory=list)
    not_updated: list[tuple[str, str]] = field(default_factory=list)  # (expanded name, reason)


@dataclass
class BatchOutcome:
    """Outcome of a batch operation (clause 5.6.7-5.6.10)."""

    success: list[str] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    created: list[str] = field(default_factory=list)

    def fail(self, entity_id, err: NgsiError) -> None:
        """Record that the entity ``entity_id`` failed with ``err``."""
        self.errors.append({"entityId": entity_id if isinstance(entity_id, str) else str(entity_id),
                            "error": err.problem()})


@dataclass
class EntityQuery:
    """A query over entities (clause 5.7.2), names already expanded."""

    types: tuple[str, ...] | None = None
    ids: tuple[str, ...] | None = None
    id_pattern: LinearPattern | None = None
    q: Predicate | None = None
    attrs: frozenset[str] | None = None
    geo: geo.GeoQuery | None = None
    numeric_terms: list[tuple[str, str, float]] = field(default_factory=list)  # see query.numeric_prefilter
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    count: bool = False


@dataclass
class TemporalQuery:
    """Time window of a temporal request (clause 4.11)."""

    timerel: str | None = None
    time_at: str | None = None
    end_time_at: str | None = None
    last_n: int | None = None
    attrs: frozenset[str] | None = None


@dataclass
class _Subscription:
    id: str
    doc: dict
    ctx: TermMap
    selectors: list[tuple[str | None, str | None, LinearPattern | None]]
    watched: frozenset[str] | None
    q: Predicate | None
    geo: geo.GeoQuery | None
    attributes: frozenset[str] | None
    key_values: bool
    endpoint: dict
    active: bool
    expires_at: str | None
    throttling_s: float


class Broker:
    """An embedded NGSI-LD context broker over SQLite.

    Parameters
    ----------
    db : str or Path
        Database file (created if missing; kept across restarts) or ``":memory:"``.
    contexts : dict, optional
        Extra ``@context`` documents by URL, resolvable besides the shipped ones.
    max_limit : int
        Largest page a query may ask for; more is a 403 TooManyResults.
    notification_timeout_s : float
        Time limit of one HTTP notification.

    Examples
    --------
    >>> broker = Broker(":memory:")
    >>> app = broker.app            # an ASGI application (Starlette)
    """

    def __init__(self, db: str | Path = ":memory:", *, contexts: dict | None = None,
                 max_limit: int = MAX_LIMIT, notification_timeout_s: float = 2.0):
        self.store = Store(db)
        self.contexts = ContextResolver(contexts)
        self.notifier = Notifier(timeout_s=notification_timeout_s)
        self.max_limit = max_limit
        self._tenants = set(self.store.tenants())
        self._subs_lock = threading.Lock()
        self._subs_version: str | None = None
        self._subs: dict[str, list[_Subscription]] = {}
        self._last_sent: dict[str, float] = {}
        self._app = None

    @property
    def app(self):
        """The ASGI application serving this broker under ``/ngsi-ld/v1``."""
        if self._app is None:
            from .app import create_app

            self._app = create_app(self)
        return self._app

    def close(self) -> None:
        """Stop the notification sender and close the database."""
        self.notifier.close()
        self.store.close()

    # -- tenants --------------------------------------------------------------------------

    @staticmethod
    def check_tenant(tenant: str | None) -> str:
        """The tenant name ("" is the default tenant); BadRequestData if malformed."""
        if not tenant:
            return ""
        if not _TENANT.match(tenant):
            raise bad_data(f"Tenant {tenant!r}: use 1-64 letters, digits, '_' or '-'.")
        return tenant

    def _existing_tenant(self, tenant: str | None, entity_id: str | None = None) -> str:
        """The checked name of a tenant that must already exist, after checking ``entity_id`` too."""
        tenant = self.check_tenant(tenant)
        self.require_tenant(tenant)
        if entity_id is not None:
            check_entity_id(entity_id)
        return tenant

    def require_tenant(self, tenant: str) -> None:
        """Raise NonexistentTenant unless ``tenant`` exists (creates make tenants)."""
        if not tenant or tenant in self._tenants:
            return
        self._tenants.update(self.store.tenants())  # another process may have made it
        if tenant not in self._tenants:
            raise NgsiError("NonexistentTenant",
                            f"Tenant {tenant!r} does not exist yet. Create an entity in it first "
                            "(a create makes the tenant), or check the NGSILD-Tenant header.")

    def _ensure_tenant(self, conn, tenant: str, now: str) -> None:
        if tenant and tenant not in self._tenants:
            conn.execute("INSERT OR IGNORE INTO tenants VALUES (?, ?)", (tenant, now))

    def _committed_tenant(self, tenant: str) -> None:
        if tenant:
            self._tenants.add(tenant)

    # -- storage helpers ------------------------------------------------------------------

    @staticmethod
    def _decode(entity_id: str, row) -> tuple[int, Entity]:
        pk, entity_type, doc, created_at, modified_at = row
        return pk, Entity(entity_id, entity_type, json.loads(doc), created_at, modified_at)

    @staticmethod
    def _save(conn, tenant: str, entity: Entity, pk: int | None) -> None:
        geometry, box = _location_of(entity)
        doc = dumps(entity.attrs)
        if pk is None:
            Store.insert_entity(conn, tenant, entity.id, entity.type, doc, geometry, box,
                                entity.created_at, entity.modified_at)
        else:
            Store.update_entity(conn, pk, entity.type, doc, geometry, box, entity.modified_at)

    @staticmethod
    def _history(tenant: str, entity_id: str, attrs: dict) -> list[tuple]:
        return [(tenant, entity_id, name, instance["observedAt"], dumps(instance))
                for name, instance in observed_instances(attrs)]

    def _get(self, conn, tenant: str, entity_id: str) -> tuple[int, Entity]:
        row = Store.get_entity(conn, tenant, entity_id)
        if row is None:
            raise not_found(f"Entity {entity_id} does not exist{_in_tenant(tenant)}. Check the id, or "
                            "create it first (POST /ngsi-ld/v1/entities).")
        return self._decode(entity_id, row)

    # -- entities -------------------------------------------------------------------------

    def create_entity(self, tenant: str, payload, ctx: TermMap) -> Entity:
        """Create one entity (clause 5.6.1); AlreadyExists if its id is taken."""
        tenant = self.check_tenant(tenant)
        now = now_iso()
        entity = normalise_entity(payload, ctx, now)
        with self.store.write() as conn:
            self._ensure_tenant(conn, tenant, now)
            if Store.get_entity(conn, tenant, entity.id) is not None:
                raise NgsiError("AlreadyExists", f"Entity {entity.id} already exists{_in_tenant(tenant)}. "
                                "Update its attributes, delete it first, or use batch upsert.")
            self._save(conn, tenant, entity, None)
            Store.add_history(conn, self._history(tenant, entity.id, entity.attrs))
            subs = self._subscriptions(conn, tenant)
        self._committed_tenant(tenant)
        self._notify(tenant, subs, [(entity, set(entity.attrs))])
        return entity

    def get_entity(self, tenant: str, entity_id: str) -> Entity:
        """One entity by id (clause 5.7.1); ResourceNotFound if there is none."""
        tenant = self._existing_tenant(tenant, entity_id)
        with self.store.read() as conn:
            return self._get(conn, tenant, entity_id)[1]

    def delete_entity(self, tenant: str, entity_id: str) -> None:
        """Delete an entity with its history (clause 5.6.6)."""
        tenant = self._existing_tenant(tenant, entity_id)
        with self.store.write() as conn:
            pk, _ = self._get(conn, tenant, entity_id)
            Store.delete_entity(conn, tenant, pk, entity_id)

    def update_attributes(self, tenant: str, entity_id: str, payload, ctx: TermMap, *,
                          append: bool, overwrite: bool = True) -> UpdateResult:
        """Update existing attributes (5.6.2, ``append=False``) or append attributes (5.6.3).

        Parameters
        ----------
        append : bool
            True: add new attributes and overwrite existing ones (unless ``overwrite`` is
            False); False: only existing attributes are updated, others are reported.
        """
        tenant = self._existing_tenant(tenant, entity_id)
        now = now_iso()
        attrs = normalise_attributes(payload, ctx, now, f"Entity {entity_id}")
        if not attrs:
            raise bad_data("The body names no attribute to update; send e.g. {\"no2\": {\"type\": "
                           "\"Property\", \"value\": 41}}.")
        result = UpdateResult()
        with self.store.write() as conn:
            pk, entity = self._get(conn, tenant, entity_id)
            written = {}
            for name, attribute in attrs.items():
                old = entity.attrs.get(name)
                if old is None and not append:
                    result.not_updated.append((name, "attribute does not exist; append it with "
                                                       "POST .../attrs"))
                    continue
                if old is not None and append and not overwrite:
                    result.not_updated.append((name, "attribute exists and options=noOverwrite"))
                    continue
                _keep_created(attribute, old)
                written[name] = attribute
                result.updated.append(name)
            if written:
                entity.attrs.update(written)
                entity.modified_at = now
                self._save(conn, tenant, entity, pk)
                Store.add_history(conn, self._history(tenant, entity_id, written))
                subs = self._subscriptions(conn, tenant)
        if written:
            self._notify(tenant, subs, [(entity, set(written))])
        return result

    def patch_attribute(self, tenant: str, entity_id: str, attr_iri: str, fragment, ctx: TermMap) -> None:
        """Partial update of one attribute (clause 5.6.4): merge ``fragment`` into it."""
        tenant = self._existing_tenant(tenant, entity_id)
        if not isinstance(fragment, dict):
            fragment = {"value": fragment}
        if not fragment:
            raise bad_data("The body is empty; send the members to change, e.g. {\"value\": 42}.")
        now = now_iso()
        with self.store.write() as conn:
            pk, entity = self._get(conn, tenant, entity_id)
            old = entity.attrs.get(attr_iri)
            name = ctx.compact(attr_iri)
            if old is None:
                raise not_found(f"Entity {entity_id} has no attribute {name!r}; append it with POST "
                                f"/ngsi-ld/v1/entities/{entity_id}/attrs.")
            if isinstance(old, list):
                dataset = fragment.get("datasetId")
                index = next((i for i, item in enumerate(old) if item.get("datasetId") == dataset), None)
                if index is None:
                    raise not_found(f"Attribute {name!r} has no instance with datasetId {dataset!r}.")
                target = old[index]
            else:
                target = old
            merged = {key: value for key, value in target.items() if key not in ("createdAt", "modifiedAt")}
            if "type" in fragment and fragment["type"] != merged.get("type"):
                merged = {}  # a new attribute type starts from scratch
            merged.update(fragment)
            where = f"Entity {entity_id}: attribute {name!r}"
            attribute = normalise_attribute(attr_iri, merged, ctx, now, where)
            _keep_created(attribute, target)
            if isinstance(old, list):
                old[index] = attribute
            else:
                entity.attrs[attr_iri] = attribute
            entity.modified_at = now
            self._save(conn, tenant, entity, pk)
            if "observedAt" in fragment:
                Store.add_history(conn, self._history(tenant, entity_id, {attr_iri: attribute}))
            subs = self._subscriptions(conn, tenant)
        self._notify(tenant, subs, [(entity, {attr_iri})])

    def delete_attribute(self, tenant: str, entity_id: str, attr_iri: str, ctx: TermMap,
                         dataset_id: str | None = None, delete_all: bool = False) -> None:
        """Delete one attribute (clause 5.6.5), or one instance of it by ``dataset_id``."""
        tenant = self._existing_tenant(tenant, entity_id)
        now = now_iso()
        with self.store.write() as conn:
            pk, entity = self._get(conn, tenant, entity_id)
            old = entity.attrs.get(attr_iri)
            if old is None:
                raise not_found(f"Entity {entity_id} has no attribute {ctx.compact(attr_iri)!r}.")
            if dataset_id is not None and not delete_all:
                instances = old if isinstance(old, list) else [old]
                kept = [item for item in instances if item.get("datasetId") != dataset_id]
                if len(kept) == len(instances):
                    raise not_found(f"Attribute {ctx.compact(attr_iri)!r} has no instance with datasetId "
                                    f"{dataset_id!r}.")
                if kept:
                    entity.attrs[attr_iri] = kept if len(kept) > 1 else kept[0]
                else:
                    del entity.attrs[attr_iri]
            else:
                del entity.attrs[attr_iri]
            entity.modified_at = now
            self._save(conn, tenant, entity, pk)

    # -- batch operations -------------------------------------------------------------------

    def batch(self, tenant: str, operation: str, items: list, contexts: list[TermMap], *,
              mode: str = "replace", overwrite: bool = True) -> BatchOutcome:
        """Batch create, upsert, update or delete (clauses 5.6.7-5.6.10) in one transaction.

        Parameters
        ----------
        operation : str
            ``create``, ``upsert``, ``update`` or ``delete``.
        items : list
            Entities (or entity ids for ``delete``).
        contexts : list of TermMap
            The context of each item (application/ld+json items carry their own).
        mode : str
            Upsert: ``replace`` the whole entity or ``update`` (merge) its attributes.
        overwrite : bool
            Update: False keeps attributes that already exist (``options=noOverwrite``).
        """
        tenant = self.check_tenant(tenant)
        if operation in ("update", "delete"):
            self.require_tenant(tenant)
        now = now_iso()
        outcome = BatchOutcome()
        prepared: list[tuple[object, Entity | str]] = []
        for item, ctx in zip(items, contexts, strict=True):
            try:
                if operation == "delete":
                    prepared.append((item, check_entity_id(item)))
                else:
                    entity = normalise_entity(item, ctx, now, require_type=operation != "update")
                    prepared.append((entity.id, entity))
            except NgsiError as err:
                outcome.fail(item.get("id") if isinstance(item, dict) else item, err)
        changed: list[tuple[Entity, set]] = []
        subs: list = []
        merge = operation == "update" or (operation == "upsert" and mode == "update")
        with self.store.write() as conn:
            writes = _Writes(conn, tenant)
            # id -> (pk, stored Entity or None if not decoded yet), updated as the batch proceeds so
            # that an id given twice sees its first version.
            known = _lookup(conn, tenant, [entity_id for entity_id, _ in prepared], with_doc=merge)
            for entity_id, entity in prepared:
                found = known.get(entity_id)
                if operation == "delete":
                    if found is None:
                        outcome.fail(entity_id, not_found(f"Entity {entity_id} does not exist."))
                        continue
                    writes.delete(found[0], entity_id)
                    del known[entity_id]
                    outcome.success.append(entity_id)
                    continue
                if found is None:
                    if operation == "update":
                        outcome.fail(entity_id, not_found(f"Entity {entity_id} does not exist; batch update "
                                                          "changes existing entities only (use upsert)."))
                        continue
                    pk = writes.save(entity, None)
                    written = entity.attrs
                    outcome.created.append(entity_id)
                elif operation == "create":
                    outcome.fail(entity_id, NgsiError("AlreadyExists", f"Entity {entity_id} already exists."))
                    continue
                else:
                    pk, old = found
                    if not merge:
                        entity.created_at = old.created_at
                        written = entity.attrs
                    else:
                        written = {}
                        for name, attribute in entity.attrs.items():
                            if name in old.attrs and not overwrite:
                                continue
                            _keep_created(attribute, old.attrs.get(name))
                            written[name] = attribute
                        old.attrs.update(written)
                        if entity.type:
                            old.type = entity.type
                        old.modified_at = now
                        entity = old
                    writes.save(entity, pk)
                known[entity_id] = (pk, entity)
                writes.history.extend(self._history(tenant, entity_id, written))
                outcome.success.append(entity_id)
                changed.append((entity, set(written)))
            writes.flush()
            if changed:
                # Only a batch that created something makes its tenant: a refused batch leaves no trace.
                self._ensure_tenant(conn, tenant, now)
                subs = self._subscriptions(conn, tenant)
        if changed:
            self._committed_tenant(tenant)
        self._notify(tenant, subs, changed)
        return outcome

    # -- queries ----------------------------------------------------------------------------

    def entity_types(self, tenant: str) -> list[str]:
        """Expanded types of the entities of a tenant (clause 5.7.5)."""
        tenant = self._existing_tenant(tenant)
        with self.store.read() as conn:
            return [row[0] for row in conn.execute(
                "SELECT DISTINCT type FROM entities WHERE tenant=? ORDER BY type", (tenant,))]

    def query_entities(self, tenant: str, query: EntityQuery,
                       only_ids: set[str] | None = None) -> tuple[list[Entity], int]:
        """Entities matching ``query`` (clause 5.7.2): one page, and the total number of matches."""
        tenant = self._existing_tenant(tenant)
        if query.limit > self.max_limit:
            raise NgsiError("TooManyResults", f"limit={query.limit} is above this broker's maximum of "
                            f"{self.max_limit}; page through the results with limit and offset.")
        compiled = _compiled_q(query)
        sql, params = _select_sql(tenant, query, compiled)
        # With q in SQL, `sure` marks the rows SQL has decided; only the others need the Python q.
        sure, sure_params = (compiled.sure, compiled.sure_params) if compiled else ("0", ())
        needs_python = (query.id_pattern is not None or query.attrs is not None or query.geo is not None
                        or only_ids is not None or query.q is not None)
        with self.store.read() as conn:
            total = None
            if compiled is not None and needs_python and query.id_pattern is None and query.attrs is None \
                    and query.geo is None and only_ids is None:
                total, undecided = conn.execute(f"SELECT COUNT(*), TOTAL(NOT ({sure})) {sql}",
                                                (*sure_params, *params)).fetchone()
                # SQL has decided every row: count and page in SQLite, decode only the page.
                needs_python = undecided > 0
            if not needs_python:
                if total is None:
                    total = conn.execute(f"SELECT COUNT(*) {sql}", params).fetchone()[0]
                rows = conn.execute(f"SELECT e.id, e.type, e.doc, e.created_at, e.modified_at {sql} "
                                    "ORDER BY e.pk LIMIT ? OFFSET ?", (*params, query.limit, query.offset))
                page = [Entity(i, t, json.loads(d), c, m) for i, t, d, c, m in rows]
                return page, total
            # near on location: SQLite measures Points (geo.point_distance_sql), Python the rest.
            distance, distance_params = query.geo.point_distance_sql() if _near_location(query) \
                else ("NULL", ())
            matches = self._filter(conn.execute(
                f"SELECT e.id, e.type, e.doc, e.created_at, e.modified_at, e.geom, {sure}, {distance} {sql} "
                "ORDER BY e.pk", (*sure_params, *distance_params, *params)), query, only_ids)
        page = matches[query.offset:query.offset + query.limit]
        return [Entity(i, t, d if isinstance(d, dict) else json.loads(d), c, m)
                for i, t, d, c, m in page], len(matches)

    @staticmethod
    def _filter(rows, query: EntityQuery, only_ids: set[str] | None) -> list[tuple]:
        near = query.geo is not None and query.geo.georel == "near" and query.geo.max_distance_m is not None
        on_location = query.geo is None or query.geo.geoproperty == LOCATION
        matches = []
        limit_m = query.geo.max_distance_m if near else None
        for entity_id, entity_type, doc, created_at, modified_at, geom, sure, sql_distance in rows:
            if only_ids is not None and entity_id not in only_ids:
                continue
            if query.id_pattern is not None and not query.id_pattern.search(entity_id):
                continue
            attrs = None
            distance = 0.0
            if sql_distance is not None and abs(sql_distance - limit_m) > geo.DISTANCE_TOLERANCE_M:
                if sql_distance > limit_m:
                    continue
                distance = sql_distance
            elif query.geo is not None:
                if on_location:
                    geometry = json.loads(geom) if geom else None
                else:
                    attrs = json.loads(doc)
                    geometry = _geometry_of(attrs.get(query.geo.geoproperty))
                if geometry is None:
                    continue
                if near:
                    distance = query.geo.distance(geometry)
                    if distance > query.geo.max_distance_m:
                        continue
                elif not query.geo.matches(geometry):
                    continue
            if (query.q is not None and not sure) or query.attrs is not None:
                if attrs is None:
                    attrs = json.loads(doc)
                if query.attrs is not None and query.attrs.isdisjoint(attrs):
                    continue
                if query.q is not None and not sure and not query.q(attrs):
                    continue
            matches.append((distance, (entity_id, entity_type, attrs if attrs is not None else doc,
                                       created_at, modified_at)))
        if near:
            matches.sort(key=lambda pair: pair[0])  # nearest first; Python's sort is stable
        return [row for _, row in matches]

    # -- temporal ---------------------------------------------------------------------------

    def temporal_create(self, tenant: str, payload, ctx: TermMap) -> bool:
        """Add attribute instances to an entity's history (clause 5.6.11).

        Creates the entity (with the latest instance of each attribute as its current
        value) when it does not exist, and returns True; returns False when it existed.
        """
        tenant = self.check_tenant(tenant)
        if not isinstance(payload, dict):
            raise bad_data("A temporal entity must be a JSON object with 'id', 'type' and attribute "
                           "instances.")
        entity_id = check_entity_id(payload.get("id"))
        if payload.get("type") is None:
            raise bad_data(f"Temporal entity {entity_id} has no 'type'.")
        entity_type = expand_type(payload.get("type"), ctx, f"Entity {entity_id}: type")
        now = now_iso()
        instances: dict[str, list[dict]] = {}
        for name, raw in payload.items():
            if name in ("id", "type", "@context", "createdAt", "modifiedAt"):
                continue
            iri = ctx.expand(check_name(name, f"Entity {entity_id}: attribute name"))
            items = raw if isinstance(raw, list) else [raw]
            if not items:
                raise bad_data(f"Entity {entity_id}: attribute {name!r} has no instances.")
            for item in items:
                instance = normalise_attribute(iri, item, ctx, now, f"Entity {entity_id}: attribute {name!r}")
                if isinstance(instance, list) or "observedAt" not in instance:
                    raise bad_data(f"Entity {entity_id}: every instance of {name!r} needs observedAt "
                                   "(the time of the observation).")
                instances.setdefault(iri, []).append(instance)
        history = [(tenant, entity_id, name, item["observedAt"], dumps(item))
                   for name, items in instances.items() for item in items]
        with self.store.write() as conn:
            self._ensure_tenant(conn, tenant, now)
            row = Store.get_entity(conn, tenant, entity_id)
            created = row is None
            if created:
                latest = {name: max(items, key=lambda item: item["observedAt"])
                          for name, items in instances.items()}
                self._save(conn, tenant, Entity(entity_id, entity_type, latest, now, now), None)
            Store.add_history(conn, history)
        self._committed_tenant(tenant)
        return created

    def temporal_delete(self, tenant: str, entity_id: str) -> None:
        """Forget the recorded history of an entity (the entity itself stays)."""
        tenant = self._existing_tenant(tenant, entity_id)
        with self.store.write() as conn:
            self._get(conn, tenant, entity_id)
            conn.execute("DELETE FROM history WHERE tenant=? AND entity_id=?", (tenant, entity_id))

    def temporal_entity(self, tenant: str, entity_id: str, window: TemporalQuery) -> tuple[Entity, dict]:
        """An entity and its attribute instances in the window (clause 5.7.3).

        Returns the entity and ``{attribute IRI: [(instance id, instance), ...]}``, oldest first.
        """
        tenant = self._existing_tenant(tenant, entity_id)
        with self.store.read() as conn:
            entity = self._get(conn, tenant, entity_id)[1]
            return entity, self._instances(conn, tenant, entity_id, window)

    def temporal_query(self, tenant: str, query: EntityQuery,
                       window: TemporalQuery) -> tuple[list[tuple[Entity, dict]], int]:
        """Entities matching ``query`` that have instances in the window (clause 5.7.4)."""
        tenant = self._existing_tenant(tenant)
        sql, params = _history_window_sql(window)
        with self.store.read() as conn:
            ids = {row[0] for row in conn.execute(
                f"SELECT DISTINCT entity_id FROM history WHERE tenant=? {sql}", (tenant, *params))}
        entities, total = self.query_entities(tenant, query, only_ids=ids)
        with self.store.read() as conn:
            return [(entity, self._instances(conn, tenant, entity.id, window)) for entity in entities], total

    @staticmethod
    def _instances(conn, tenant: str, entity_id: str, window: TemporalQuery) -> dict:
        sql, params = _history_window_sql(window)
        rows = conn.execute(
            f"SELECT instance, attribute, value FROM history WHERE tenant=? AND entity_id=? {sql} "
            "ORDER BY attribute, observed_at, instance", (tenant, entity_id, *params))
        found: dict[str, list] = {}
        for instance, attribute, value in rows:
            found.setdefault(attribute, []).append((f"urn:ngsi-ld:instance:{instance}", json.loads(value)))
        if window.last_n is not None:
            found = {name: items[-window.last_n:] for name, items in found.items()}
        return found

    # -- subscriptions ----------------------------------------------------------------------

    def create_subscription(self, tenant: str, payload, ctx: TermMap) -> str:
        """Create a subscription (clause 5.8.1); returns its id."""
        tenant = self.check_tenant(tenant)
        doc = self._check_subscription(payload, ctx)
        now = now_iso()
        with self.store.write() as conn:
            self._ensure_tenant(conn, tenant, now)
            exists = conn.execute("SELECT 1 FROM subscriptions WHERE tenant=? AND id=?",
                                  (tenant, doc["id"])).fetchone()
            if exists:
                raise NgsiError("AlreadyExists", f"Subscription {doc['id']} already exists.")
            conn.execute("INSERT INTO subscriptions VALUES (?, ?, ?, ?, ?)",
                         (tenant, doc["id"], dumps(doc), now, now))
            Store.bump_subscriptions_version(conn)
        self._committed_tenant(tenant)
        return doc["id"]

    def get_subscription(self, tenant: str, subscription_id: str) -> dict:
        """The stored form of a subscription (clause 5.8.3)."""
        tenant = self._existing_tenant(tenant)
        with self.store.read() as conn:
            row = conn.execute("SELECT doc, created_at, modified_at FROM subscriptions "
                               "WHERE tenant=? AND id=?", (tenant, subscription_id)).fetchone()
        if row is None:
            raise not_found(f"Subscription {subscription_id} does not exist{_in_tenant(tenant)}.")
        doc = json.loads(row[0])
        doc["createdAt"], doc["modifiedAt"] = row[1], row[2]
        return doc

    def list_subscriptions(self, tenant: str, limit: int, offset: int) -> tuple[list[dict], int]:
        """A page of the tenant's subscriptions (clause 5.8.4) and their total number."""
        tenant = self._existing_tenant(tenant)
        if limit > self.max_limit:
            raise NgsiError("TooManyResults", f"limit={limit} is above the maximum of {self.max_limit}.")
        with self.store.read() as conn:
            total = conn.execute("SELECT COUNT(*) FROM subscriptions WHERE tenant=?", (tenant,)).fetchone()[0]
            rows = conn.execute("SELECT doc FROM subscriptions WHERE tenant=? ORDER BY created_at, rowid "
                                "LIMIT ? OFFSET ?", (tenant, limit, offset)).fetchall()
        return [json.loads(row[0]) for row in rows], total

    def update_subscription(self, tenant: str, subscription_id: str, fragment, ctx: TermMap) -> None:
        """Change members of a subscription (clause 5.8.2)."""
        tenant = self._existing_tenant(tenant)
        if not isinstance(fragment, dict) or not fragment:
            raise bad_data("Send the subscription members to change as a JSON object.")
        if "id" in fragment and fragment["id"] != subscription_id:
            raise bad_data("The id of a subscription cannot be changed.")
        with self.store.write() as conn:
            row = conn.execute("SELECT doc FROM subscriptions WHERE tenant=? AND id=?",
                               (tenant, subscription_id)).fetchone()
            if row is None:
                raise not_found(f"Subscription {subscription_id} does not exist{_in_tenant(tenant)}.")
            current = self.render_subscription(json.loads(row[0]), ctx, stats=False)
            for key, value in fragment.items():
                if key == "notification" and isinstance(value, dict):
                    current["notification"] = {**current.get("notification", {}), **value}
                elif key != "@context":
                    current[key] = value
            doc = self._check_subscription(current, ctx)
            conn.execute("UPDATE subscriptions SET doc=?, modified_at=? WHERE tenant=? AND id=?",
                         (dumps(doc), now_iso(), tenant, subscription_id))
            Store.bump_subscriptions_version(conn)

    def delete_subscription(self, tenant: str, subscription_id: str) -> None:
        """Delete a subscription (clause 5.8.5)."""
        tenant = self._existing_tenant(tenant)
        with self.store.write() as conn:
            deleted = conn.execute("DELETE FROM subscriptions WHERE tenant=? AND id=?",
                                   (tenant, subscription_id)).rowcount
            if not deleted:
                raise not_found(f"Subscription {subscription_id} does not exist{_in_tenant(tenant)}.")
            Store.bump_subscriptions_version(conn)
        self.notifier.forget(subscription_id)

    def render_subscription(self, doc: dict, ctx: TermMap, stats: bool = True) -> dict:
        """A stored subscription compacted with ``ctx``, with its delivery status."""
        out = {key: value for key, value in doc.items() if key not in ("jsonldContext",)}
        if "entities" in doc:
            out["entities"] = [{**selector, "type": ctx.compact(selector["type"])}
                               for selector in doc["entities"]]
        if "watchedAttributes" in doc:
            out["watchedAttributes"] = [ctx.compact(name) for name in doc["watchedAttributes"]]
        notification = dict(doc["notification"])
        if "attributes" in notification:
            notification["attributes"] = [ctx.compact(name) for name in notification["attributes"]]
        if stats:
            notification.update(self.notifier.stats(doc["id"]))
            expired = doc.get("expiresAt") is not None and doc["expiresAt"] <= now_iso()
            out["status"] = "expired" if expired else ("active" if doc.get("isActive", True) else "paused")
            if isinstance(doc.get("jsonldContext"), str):
                out["jsonldContext"] = doc["jsonldContext"]
        out["notification"] = notification
        return out

    def _check_subscription(self, payload, ctx: TermMap) -> dict:
        if not isinstance(payload, dict):
            raise bad_data("A subscription must be a JSON object.")
        if payload.get("type") != "Subscription":
            raise bad_data("A subscription needs \"type\": \"Subscription\".")
        sub_id = payload.get("id") or f"urn:ngsi-ld:Subscription:{uuid.uuid4()}"
        check_entity_id(sub_id, "Subscription id")
        doc: dict = {"id": sub_id, "type": "Subscription"}
        for text_member in ("subscriptionName", "description"):
            if text_member in payload:
                if not isinstance(payload[text_member], str):
                    raise bad_data(f"Subscription {text_member} must be a string.")
                doc[text_member] = payload[text_member]
        if "entities" in payload:
            selectors = payload["entities"]
            if not isinstance(selectors, list) or not selectors:
                raise bad_data("Subscription 'entities' must be a non-empty list like "
                               "[{\"type\": \"ParkingSpot\"}].")
            doc["entities"] = []
            for selector in selectors:
                if not isinstance(selector, dict) or "type" not in selector:
                    raise bad_data("Each item of 'entities' needs a 'type', e.g. "
                                   "{\"type\": \"ParkingSpot\"}.")
                item = {"type": expand_type(selector["type"], ctx, "Subscription entities type")}
                if "id" in selector:
                    item["id"] = check_entity_id(selector["id"], "Subscription entities id")
                if "idPattern" in selector:
                    _compile_pattern(selector["idPattern"])
                    item["idPattern"] = selector["idPattern"]
                doc["entities"].append(item)
        if "watchedAttributes" in payload:
            watched = payload["watchedAttributes"]
            if not isinstance(watched, list) or not watched:
                raise bad_data("'watchedAttributes' must be a non-empty list of attribute names.")
            doc["watchedAttributes"] = [ctx.expand(check_name(name, "watchedAttributes item"))
                                        for name in watched]
        if "entities" not in doc and "watchedAttributes" not in doc:
            raise bad_data("A subscription needs 'entities' (e.g. [{\"type\": \"ParkingSpot\"}]) or "
                           "'watchedAttributes'.")
        if "q" in payload:
            if not isinstance(payload["q"], str):
                raise bad_data("Subscription 'q' must be a string such as \"no2>40\".")
            parse_q(payload["q"], ctx.expand)
            doc["q"] = payload["q"]
        if "geoQ" in payload:
            doc["geoQ"] = _check_geoq(payload["geoQ"], ctx)
        doc["notification"] = _check_notification(payload.get("notification"), ctx)
        if "isActive" in payload:
            if not isinstance(payload["isActive"], bool):
                raise bad_data("'isActive' must be true or false.")
            doc["isActive"] = payload["isActive"]
        if "expiresAt" in payload:
            doc["expiresAt"] = canonical_datetime(payload["expiresAt"], "expiresAt")
        if "throttling" in payload:
            throttling = payload["throttling"]
            if isinstance(throttling, bool) or not isinstance(throttling, (int, float)) or throttling < 0:
                raise bad_data("'throttling' must be a number of seconds, not negative.")
            doc["throttling"] = throttling
        if "timeInterval" in payload:
            raise NgsiError("OperationNotSupported", "Periodic subscriptions (timeInterval) are not "
                            "supported by the course broker; use change-based subscriptions "
                            "(watchedAttributes).")
        doc["jsonldContext"] = ctx.source
        return doc

    def _subscriptions(self, conn, tenant: str) -> list[_Subscription]:
        version = Store.subscriptions_version(conn)
        if version != self._subs_version:
            with self._subs_lock:
                loaded: dict[str, list[_Subscription]] = {}
                for sub_tenant, doc in conn.execute("SELECT tenant, doc FROM subscriptions"):
                    loaded.setdefault(sub_tenant, []).append(self._compile(json.loads(doc)))
                self._subs, self._subs_version = loaded, version
        return self._subs.get(tenant, [])

    def _compile(self, doc: dict) -> _Subscription:
        ctx = self.contexts.resolve(doc.get("jsonldContext"))
        selectors = [(item.get("type"), item.get("id"),
                      _compile_pattern(item["idPattern"]) if "idPattern" in item else None)
                     for item in doc.get("entities", [])]
        geo_query = None
        if "geoQ" in doc:
            g = doc["geoQ"]
            geo_query = geo.parse_geoquery(g["georel"], g["geometry"], dumps(g["coordinates"]),
                                           g.get("geoproperty"))
        notification = doc["notification"]
        return _Subscription(
            id=doc["id"], doc=doc, ctx=ctx, selectors=selectors,
            watched=frozenset(doc["watchedAttributes"]) if "watchedAttributes" in doc else None,
            q=parse_q(doc["q"], ctx.expand) if "q" in doc else None, geo=geo_query,
            attributes=frozenset(notification["attributes"]) if "attributes" in notification else None,
            key_values=notification.get("format") == "keyValues", endpoint=notification["endpoint"],
            active=doc.get("isActive", True), expires_at=doc.get("expiresAt"),
            throttling_s=float(doc.get("throttling", 0)))

    def _notify(self, tenant: str, subs: list[_Subscription], changed: list[tuple[Entity, set]]) -> None:
        if not subs or not changed:
            return
        now = now_iso()
        for sub in subs:
            if not sub.active or (sub.expires_at is not None and sub.expires_at <= now):
                continue
            data = [render_entity(entity, sub.ctx, key_values=sub.key_values, attrs=sub.attributes)
                    for entity, names in changed if _subscription_matches(sub, entity, names)]
            if not data:
                continue
            if sub.throttling_s:
                last = self._last_sent.get(sub.id)
                if last is not None and time.monotonic() - last < sub.throttling_s:
                    continue
                self._last_sent[sub.id] = time.monotonic()
            notification = {"id": f"urn:ngsi-ld:Notification:{uuid.uuid4()}", "type": "Notification",
                            "subscriptionId": sub.id, "notifiedAt": now, "data": data}
            link = None
            if sub.endpoint.get("accept") == "application/ld+json":
                notification["@context"] = sub.ctx.source
            else:
                from .context import context_link_header

                link = context_link_header(sub.ctx.link_url)
            self.notifier.deliver(sub.id, sub.endpoint, notification, link, tenant)


# -- helpers -------------------------------------------------------------------------------

def _location_of(entity: Entity) -> tuple[dict | None, tuple | None]:
    """The GeoJSON of an entity's ``location`` and its bounding box (for the R*Tree)."""
    location = entity.attrs.get(LOCATION)
    if isinstance(location, list):  # several instances: index the default one (or the first)
        location = next((item for item in location if "datasetId" not in item), location[0])
    geometry = location.get("value") if isinstance(location, dict) else None
    return geometry, (geo.bbox(geometry) if geometry else None)


def _lookup(conn, tenant: str, entity_ids: list[str], with_doc: bool) -> dict:
    """id -> (pk, Entity) for the ids that exist; attributes decoded only ``with_doc``."""
    found = {}
    unique = list(dict.fromkeys(entity_ids))
    columns = "pk, id, type, doc, created_at, modified_at" if with_doc else \
        "pk, id, type, NULL, created_at, modified_at"
    for start in range(0, len(unique), 500):
        chunk = unique[start:start + 500]
        rows = conn.execute(f"SELECT {columns} FROM entities WHERE tenant=? AND id IN "
                            f"({','.join('?' * len(chunk))})", (tenant, *chunk))
        for pk, entity_id, entity_type, doc, created_at, modified_at in rows:
            attrs = json.loads(doc) if doc is not None else {}
            found[entity_id] = (pk, Entity(entity_id, entity_type, attrs, created_at, modified_at))
    return found


class _Writes:
    """The writes of one batch, sent to SQLite with executemany (several times faster).

    Primary keys of new entities are assigned here (MAX(pk)+1 onwards): safe because the
    transaction holds the write lock. Each pk keeps only its last version, so an id given
    twice in a batch is written once, as it ends up.
    """

    def __init__(self, conn, tenant: str):
        self.conn = conn
        self.tenant = tenant
        self.next_pk = conn.execute("SELECT COALESCE(MAX(pk), 0) + 1 FROM entities").fetchone()[0]
        self.rows: dict[int, tuple[bool, tuple]] = {}
        self.boxes: dict[int, tuple | None] = {}
        self.deleted: list[tuple[int, str]] = []
        self.history: list[tuple] = []

    def save(self, entity: Entity, pk: int | None) -> int:
        """Queue an insert (pk None) or an update of ``entity``; returns its pk."""
        geometry, box = _location_of(entity)
        doc = dumps(entity.attrs)
        geom = dumps(geometry) if geometry else None
        if pk is None:
            pk = self.next_pk
            self.next_pk += 1
            self.rows[pk] = (True, (pk, self.tenant, entity.id, entity.type, doc, geom, entity.created_at,
                                    entity.modified_at))
        elif pk in self.rows and self.rows[pk][0]:  # inserted earlier in this batch
            self.rows[pk] = (True, (pk, self.tenant, entity.id, entity.type, doc, geom, entity.created_at,
                                    entity.modified_at))
        else:
            self.rows[pk] = (False, (entity.type, doc, geom, entity.modified_at, pk))
        self.boxes[pk] = box
        return pk

    def delete(self, pk: int, entity_id: str) -> None:
        """Queue the deletion of an entity (with its box and history)."""
        self.deleted.append((pk, entity_id))
        self.rows.pop(pk, None)
        self.boxes[pk] = None

    def flush(self) -> None:
        """Send every queued write to SQLite."""
        conn = self.conn
        if self.deleted:
            conn.executemany("DELETE FROM entities WHERE pk=?", [(pk,) for pk, _ in self.deleted])
            conn.executemany("DELETE FROM history WHERE tenant=? AND entity_id=?",
                             [(self.tenant, entity_id) for _, entity_id in self.deleted])
        inserts = [row for new, row in self.rows.values() if new]
        updates = [row for new, row in self.rows.values() if not new]
        if inserts:
            conn.executemany("INSERT INTO entities (pk, tenant, id, type, doc, geom, created_at, "
                             "modified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", inserts)
        if updates:
            conn.executemany("UPDATE entities SET type=?, doc=?, geom=?, modified_at=? WHERE pk=?", updates)
        inserted = {row[0] for row in inserts}
        stale = [(pk,) for pk in self.boxes if pk not in inserted]
        if stale:
            conn.executemany("DELETE FROM entity_location WHERE pk=?", stale)
        boxes = [(pk, *box) for pk, box in self.boxes.items() if box is not None]
        if boxes:
            conn.executemany("INSERT INTO entity_location VALUES (?, ?, ?, ?, ?)", boxes)
        Store.add_history(conn, self.history)
        self.rows, self.boxes, self.deleted, self.history = {}, {}, [], []

def _in_tenant(tenant: str) -> str:
    return f" in tenant {tenant!r}" if tenant else ""


def _keep_created(attribute, old) -> None:
    """An overwritten attribute keeps the createdAt of the attribute it replaces."""
    if isinstance(attribute, dict) and isinstance(old, dict) and "createdAt" in old:
        attribute["createdAt"] = old["createdAt"]


def _geometry_of(attribute):
    if isinstance(attribute, list):
        attribute = attribute[0] if attribute else None
    if isinstance(attribute, dict) and attribute.get("type") == "GeoProperty":
        return attribute.get("value")
    return None


def _compile_pattern(pattern) -> LinearPattern:
    if not isinstance(pattern, str) or not pattern:
        raise bad_data("idPattern must be a regular expression string such as urn:ngsi-ld:ParkingSpot:.*")
    return compile_linear(pattern, "idPattern")


def compile_id_pattern(pattern: str) -> LinearPattern:
    """The compiled ``idPattern`` of a query; BadRequestData if it is not a regular expression."""
    return _compile_pattern(pattern)


def _near_location(query: EntityQuery) -> bool:
    return query.geo is not None and query.geo.georel == "near" and query.geo.max_distance_m is not None \
        and query.geo.geoproperty == LOCATION


def _compiled_q(query: EntityQuery) -> qsql.CompiledQ | None:
    """The SQL of ``query.q`` (None without q, for a bare predicate, or with ``SSCITY_Q_SQL=0``)."""
    plan = getattr(query.q, "plan", None)
    if plan is None or not qsql.enabled():
        return None
    return qsql.compile_q(plan)


def _select_sql(tenant: str, query: EntityQuery, compiled: qsql.CompiledQ | None = None) -> tuple[str, list]:
    params: list = []
    box = query.geo.bbox() if query.geo is not None and query.geo.geoproperty == LOCATION else None
    if box is not None:
        min_lon, max_lon, min_lat, max_lat = box
        # CROSS JOIN makes SQLite walk the R*Tree first; otherwise it may prefer the type index and
        # probe the R*Tree once per entity of that type (100 times slower at 100,000 entities).
        sql = ("FROM entity_location g CROSS JOIN entities e ON e.pk = g.pk WHERE g.min_lon <= ? "
               "AND g.max_lon >= ? AND g.min_lat <= ? AND g.max_lat >= ? AND e.tenant = ?")
        params += [max_lon, min_lon, max_lat, min_lat, tenant]
    else:
        sql = "FROM entities e WHERE e.tenant = ?"
        params.append(tenant)
        if query.geo is not None and query.geo.geoproperty == LOCATION:
            sql += " AND e.geom IS NOT NULL"
    if query.types:
        sql += f" AND e.type IN ({','.join('?' * len(query.types))})"
        params += query.types
    if query.ids:
        sql += f" AND e.id IN ({','.join('?' * len(query.ids))})"
        params += query.ids
    if compiled is not None:
        # A superset of the matches (qsql's `maybe`), answered from the entity_values index.
        sql += f" AND {compiled.maybe}"
        params += compiled.maybe_params
    for iri, operator, number in ([] if compiled is not None else query.numeric_terms):
        # A superset of the matches: entities whose value is not a plain number (or too large
        # for an exact double) are left to the Python predicate, which decides.
        path = f'$."{iri}".value'
        sql += (f" AND (IFNULL(json_type(e.doc, ?), '') NOT IN ('integer', 'real') "
                f"OR abs(json_extract(e.doc, ?)) >= 9e15 OR json_extract(e.doc, ?) {operator} ?)")
        params += [path, path, path, number]
    return sql, params


def _history_window_sql(window: TemporalQuery) -> tuple[str, list]:
    sql, params = "", []
    if window.attrs is not None:
        sql += f" AND attribute IN ({','.join('?' * len(window.attrs))})"
        params += sorted(window.attrs)
    if window.timerel == "before":
        sql += " AND observed_at < ?"
        params.append(window.time_at)
    elif window.timerel == "after":
        sql += " AND observed_at >= ?"
        params.append(window.time_at)
    elif window.timerel == "between":
        sql += " AND observed_at >= ? AND observed_at < ?"
        params += [window.time_at, window.end_time_at]
    return sql, params


def _check_geoq(value, ctx: TermMap) -> dict:
    if not isinstance(value, dict):
        raise bad_data("geoQ must be an object {georel, geometry, coordinates}.")
    coordinates = value.get("coordinates")
    text = coordinates if isinstance(coordinates, str) else dumps(coordinates)
    geoproperty = value.get("geoproperty")
    geo.parse_geoquery(value.get("georel"), value.get("geometry"), text,
                       ctx.expand(geoproperty) if isinstance(geoproperty, str) else None)
    out = {"georel": value["georel"], "geometry": value["geometry"],
           "coordinates": json.loads(text)}
    if isinstance(geoproperty, str):
        out["geoproperty"] = ctx.expand(geoproperty)
    return out


def _check_notification(value, ctx: TermMap) -> dict:
    if not isinstance(value, dict):
        raise bad_data("A subscription needs 'notification': {\"endpoint\": {\"uri\": \"http://...\"}} "
                       f"(or \"uri\": \"{INBOX_SCHEME}<name>\" for an in-process inbox).")
    endpoint = value.get("endpoint")
    if not isinstance(endpoint, dict) or not isinstance(endpoint.get("uri"), str):
        raise bad_data("notification.endpoint.uri is missing.")
    uri = endpoint["uri"]
    if uri.startswith(INBOX_SCHEME):
        if not re.match(r"^[A-Za-z0-9_.\-]{1,64}$", uri[len(INBOX_SCHEME):]):
            raise bad_data(f"Inbox names are 1-64 letters, digits, '.', '_' or '-': {uri!r}.")
    elif not (uri.startswith(("http://", "https://")) and is_uri(uri)):
        raise bad_data(f"notification.endpoint.uri {uri!r} must be an http(s) URL or {INBOX_SCHEME}<name>.")
    accept = endpoint.get("accept", "application/json")
    if accept not in ("application/json", "application/ld+json"):
        raise bad_data("notification.endpoint.accept must be application/json or application/ld+json.")
    out = {"endpoint": {"uri": uri, "accept": accept}}
    fmt = value.get("format", "normalized")
    if fmt not in ("normalized", "keyValues", "simplified", "concise"):
        raise bad_data("notification.format must be normalized or keyValues.")
    out["format"] = "keyValues" if fmt == "simplified" else ("normalized" if fmt == "concise" else fmt)
    if "attributes" in value:
        attributes = value["attributes"]
        if not isinstance(attributes, list) or not attributes:
            raise bad_data("notification.attributes must be a non-empty list of attribute names.")
        out["attributes"] = [ctx.expand(check_name(name, "notification.attributes item"))
                             for name in attributes]
    return out


def _subscription_matches(sub: _Subscription, entity: Entity, changed: set) -> bool:
    if sub.selectors:
        for entity_type, entity_id, pattern in sub.selectors:
            if entity_type is not None and entity_type != entity.type:
                continue
            if entity_id is not None and entity_id != entity.id:
                continue
            if pattern is not None and not pattern.search(entity.id):
                continue
            break
        else:
            return False
    if sub.watched is not None and sub.watched.isdisjoint(changed):
        return False
    if sub.q is not None and not sub.q(entity.attrs):
        return False
    if sub.geo is not None:
        geometry = _geometry_of(entity.attrs.get(sub.geo.geoproperty))
        if geometry is None or not sub.geo.matches(geometry):
            return False
    return True
