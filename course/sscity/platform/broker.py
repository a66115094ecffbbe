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
from .context import COURSE_CONTEXT_URL, ContextResolver, TermMap
from .errors import ERROR_KINDS, NgsiError, bad_data, not_found, not_implemented
from .model import (
    ATTRIBUTE_MEMBERS,
    LOCATION,
    NGSI_LD_NULL,
    Entity,
    check_entity_id,
    check_name,
    expand_type,
    is_ngsi_ld_null,
    is_uri,
    normalise_attribute,
    normalise_attributes,
    normalise_entity,
    observed_instances,
    render_entity,
)
from .notify import INBOX_SCHEME, MQTT_VERSIONS, Notifier, parse_mqtt_endpoint
from .query import Predicate, parse_q
from .regex import LinearPattern, compile_linear
from .storage import Store, dumps
from .timeutil import canonical_datetime, now_iso

_TENANT = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
#: Most instances of one attribute a temporal response carries (clause 6.3.10): beyond it the
#: answer is 206 Partial Content with a Content-Range naming the time range served.
DEFAULT_TEMPORAL_LIMIT = 1000
_INSTANCE_PREFIX = "urn:ngsi-ld:instance:"


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
    #: False for the aggregated representation, which summarises the whole window.
    paged: bool = True


@dataclass
class TemporalPage:
    """How much of a temporal window a response holds (clause 6.3.10).

    ``content_range`` is None when the response is complete (200); otherwise it is the value of
    the ``Content-Range`` header of the 206 answer, ``date-time <start>-<end>/<size>``.
    """

    content_range: str | None = None


#: The notification triggers of a subscription (ETSI GS CIM 009 v1.8, clause 5.2.12).
NOTIFICATION_TRIGGERS = ("entityCreated", "entityUpdated", "entityDeleted", "attributeCreated",
                         "attributeUpdated", "attributeDeleted")
#: Without notificationTrigger a subscription hears of created and updated attributes (5.2.12).
DEFAULT_TRIGGERS = frozenset({"attributeCreated", "attributeUpdated"})
#: entityUpdated "is equivalent to the combination attributeCreated, attributeUpdated and
#: attributeDeleted" (5.2.12).
_ENTITY_UPDATED = frozenset({"attributeCreated", "attributeUpdated", "attributeDeleted"})
#: The shortest timeInterval accepted: a periodic notification runs a query, and a class server
#: shared by many students must not be asked for thousands of them a second.
MIN_TIME_INTERVAL_S = 0.1


@dataclass
class _Change:
    """What happened to one entity in a write, as subscriptions see it (clause 5.2.12).

    ``entity`` is the entity after the change (for a deletion: as it was before). Creating an
    entity creates its attributes, so a creation is heard by subscriptions that name
    ``entityCreated`` or ``attributeCreated`` (hence by those without notificationTrigger, as
    before v1.8 and in Orion-LD), but not by ``entityUpdated`` alone: a new entity was not
    updated. Deleting an entity is ``entityDeleted`` only.
    """

    entity: Entity
    events: list[tuple[str, str]] = field(default_factory=list)  # (attribute IRI, attribute event)
    entity_event: str | None = None  # "entityCreated" or "entityDeleted"
    gone: list[tuple[str, dict]] = field(default_factory=list)  # deleted attribute instances

    @classmethod
    def created(cls, entity: Entity) -> _Change:
        return cls(entity, entity_event="entityCreated")

    @classmethod
    def deleted(cls, entity: Entity) -> _Change:
        return cls(entity, entity_event="entityDeleted")

    def add(self, name: str, old, done: list) -> None:
        """Record the instances ``done`` written to the attribute ``name`` (``old``: before)."""
        before = [] if old is None else (old if isinstance(old, list) else [old])
        datasets = {item.get("datasetId") for item in before}
        for instance in done:
            dataset = instance.get("datasetId")
            if is_ngsi_ld_null(instance):
                self.events.append((name, "attributeDeleted"))
                self.gone += [(name, item) for item in before if item.get("datasetId") == dataset]
            elif dataset in datasets:
                self.events.append((name, "attributeUpdated"))
            else:
                self.events.append((name, "attributeCreated"))

    def remove(self, name: str, instances: list) -> None:
        """Record that the attribute instances ``instances`` of ``name`` were deleted."""
        self.events.append((name, "attributeDeleted"))
        self.gone += [(name, item) for item in instances]


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
    triggers: frozenset[str] = DEFAULT_TRIGGERS  # entityUpdated already expanded
    hears_creation: bool = True  # entityCreated or attributeCreated named (or the default)
    time_interval_s: float | None = None  # periodic subscriptions (timeInterval)


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
    temporal_limit : int
        Most instances of one attribute a temporal response carries; a longer history is
        answered 206 Partial Content, page by page (clause 6.3.10).

    Examples
    --------
    >>> broker = Broker(":memory:")
    >>> app = broker.app            # an ASGI application (Starlette)
    """

    def __init__(self, db: str | Path = ":memory:", *, contexts: dict | None = None,
                 max_limit: int = MAX_LIMIT, notification_timeout_s: float = 2.0,
                 temporal_limit: int = DEFAULT_TEMPORAL_LIMIT):
        if temporal_limit < 1:
            raise ValueError("temporal_limit must be at least 1")
        self.store = Store(db)
        self.temporal_limit = temporal_limit
        self.contexts = ContextResolver(contexts)
        self.notifier = Notifier(timeout_s=notification_timeout_s)
        self.max_limit = max_limit
        self._tenants = set(self.store.tenants())
        self._subs_lock = threading.Lock()
        self._subs_version: str | None = None
        self._subs: dict[str, list[_Subscription]] = {}
        self._last_sent: dict[str, float] = {}
        self._app = None
        # Periodic subscriptions stored earlier (a restarted server) keep their schedule.
        with self.store.read() as conn:
            periodic = conn.execute("SELECT tenant, doc FROM subscriptions "
                                    "WHERE json_extract(doc, '$.timeInterval') IS NOT NULL").fetchall()
        for tenant, doc in periodic:
            self._schedule_periodic(tenant, json.loads(doc))

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
            pk = Store.insert_entity(conn, tenant, entity.id, entity.type, doc, geometry, box,
                                     entity.created_at, entity.modified_at)
            Store.index_values(conn, qsql.index_rows(pk, entity.attrs))
        else:
            Store.update_entity(conn, pk, entity.type, doc, geometry, box, entity.modified_at)
            Store.index_values(conn, qsql.index_rows(pk, entity.attrs), replaced=[pk])

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
        _refuse_nulls(entity)
        with self.store.write() as conn:
            self._ensure_tenant(conn, tenant, now)
            if Store.get_entity(conn, tenant, entity.id) is not None:
                raise NgsiError("AlreadyExists", f"Entity {entity.id} already exists{_in_tenant(tenant)}. "
                                "Update its attributes, delete it first, or use batch upsert.")
            self._save(conn, tenant, entity, None)
            Store.add_history(conn, self._history(tenant, entity.id, entity.attrs))
            subs = self._subscriptions(conn, tenant)
        self._committed_tenant(tenant)
        self._notify(tenant, subs, [_Change.created(entity)])
        return entity

    def get_entity(self, tenant: str, entity_id: str) -> Entity:
        """One entity by id (clause 5.7.1); ResourceNotFound if there is none."""
        tenant = self._existing_tenant(tenant, entity_id)
        with self.store.read() as conn:
            row = Store.get_entity(conn, tenant, entity_id)
        if row is None:
            raise not_found(f"Entity {entity_id} does not exist{_in_tenant(tenant)}. Check the id, or "
                            "create it first (POST /ngsi-ld/v1/entities).")
        # Decoding (and then rendering) costs time in proportion to the document: an inline
        # request (HTTP event loop) hands a large one to a worker thread (Store.inline).
        self.store.afford(len(row[2]))
        return self._decode(entity_id, row)[1]

    def delete_entity(self, tenant: str, entity_id: str) -> None:
        """Delete an entity with its history (clause 5.6.6)."""
        tenant = self._existing_tenant(tenant, entity_id)
        with self.store.write() as conn:
            pk, entity = self._get(conn, tenant, entity_id)
            Store.delete_entity(conn, tenant, pk, entity_id)
            subs = self._subscriptions(conn, tenant)
        self._notify(tenant, subs, [_Change.deleted(entity)])

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
            change = _Change(entity)
            written = {}
            for name, attribute in attrs.items():
                old = entity.attrs.get(name)
                if old is None and not append:
                    result.not_updated.append((name, "attribute does not exist; append it with "
                                                       "POST .../attrs"))
                    continue
                # Instances are merged by datasetId (clause 4.5.5): an update without datasetId
                # changes the default instance and leaves the others alone.
                merged, done, refused = _merge_attribute(old, attribute, add=append, overwrite=overwrite)
                if refused:
                    result.not_updated.append((name, "; ".join(refused)))
                if not done:
                    continue
                if merged is None:
                    del entity.attrs[name]
                else:
                    entity.attrs[name] = merged
                change.add(name, old, done)
                written[name] = [instance for instance in done if not is_ngsi_ld_null(instance)]
                result.updated.append(name)
            if written:
                entity.modified_at = now
                self._save(conn, tenant, entity, pk)
                Store.add_history(conn, self._history(tenant, entity_id, written))
                subs = self._subscriptions(conn, tenant)
        if written:
            self._notify(tenant, subs, [change])
        return result

    def merge_entity(self, tenant: str, entity_id: str, payload, ctx: TermMap) -> None:
        """Merge a fragment into an entity (clause 5.6.17): attributes merged by datasetId,
        new ones added, the NGSI-LD Null deleting; 404 if the entity does not exist."""
        self._one_of_batch(tenant, "update", entity_id, payload, ctx)

    def replace_entity(self, tenant: str, entity_id: str, payload, ctx: TermMap) -> None:
        """Replace an existing entity's type and attributes (clause 5.6.18); createdAt is kept."""
        self.get_entity(tenant, entity_id)  # 404 before anything is written
        self._one_of_batch(tenant, "upsert", entity_id, payload, ctx)

    def _one_of_batch(self, tenant: str, operation: str, entity_id: str, payload, ctx: TermMap) -> None:
        if not isinstance(payload, dict):
            raise bad_data("The body must be a JSON object of attributes (and optionally id and type).")
        if payload.get("id", entity_id) != entity_id:
            raise bad_data(f"The body's id {payload.get('id')!r} is not the entity {entity_id} of the URL.")
        self._existing_tenant(tenant, entity_id)
        item = {**payload, "id": entity_id}
        if operation == "upsert" and "type" not in item:
            item["type"] = ctx.compact(self.get_entity(tenant, entity_id).type)
        outcome = self.batch(tenant, operation, [item], [ctx], mode="replace")
        if outcome.errors:
            problem = outcome.errors[0]["error"]
            kind = problem["type"].rsplit("/", 1)[-1]
            raise NgsiError(kind if kind in ERROR_KINDS else "BadRequestData", problem["detail"],
                            status=problem["status"])

    def replace_attribute(self, tenant: str, entity_id: str, attr_iri: str, fragment, ctx: TermMap) -> None:
        """Replace one attribute, or the instance of the body's datasetId (clause 5.6.19)."""
        entity = self.get_entity(tenant, entity_id)
        if attr_iri not in entity.attrs:
            raise not_found(f"Entity {entity_id} has no attribute {ctx.compact(attr_iri)!r}; append it with "
                            f"POST /ngsi-ld/v1/entities/{entity_id}/attrs.")
        result = self.update_attributes(tenant, entity_id, {ctx.compact(attr_iri): fragment}, ctx,
                                        append=False)
        if result.not_updated:
            raise not_found(f"Attribute {ctx.compact(attr_iri)!r}: {result.not_updated[0][1]}.")

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
            # The instance is chosen by datasetId; without one, the default instance (4.5.5).
            instances = list(old) if isinstance(old, list) else [old]
            dataset = fragment.get("datasetId")
            index = next((i for i, item in enumerate(instances) if item.get("datasetId") == dataset), None)
            if index is None:
                which = (f"no instance with datasetId {dataset!r}" if dataset is not None else
                         "no default instance (one without datasetId); name the instance with "
                         "\"datasetId\" in the body")
                raise not_found(f"Attribute {name!r} of entity {entity_id} has {which}.")
            target = instances[index]
            change = _Change(entity)
            if fragment.get("value") == NGSI_LD_NULL or fragment.get("object") == NGSI_LD_NULL:
                del instances[index]  # the NGSI-LD Null deletes the instance
                attribute = None
                change.remove(attr_iri, [target])
            else:
                merged = {key: value for key, value in target.items()
                          if key not in ("createdAt", "modifiedAt")}
                if "type" in fragment and fragment["type"] != merged.get("type"):
                    merged = {}  # a new attribute type starts from scratch
                merged.update(fragment)
                where = f"Entity {entity_id}: attribute {name!r}"
                attribute = normalise_attribute(attr_iri, merged, ctx, now, where)
                _keep_created(attribute, target)
                instances[index] = attribute
                change.events.append((attr_iri, "attributeUpdated"))
            packed = _pack(instances)
            if packed is None:
                del entity.attrs[attr_iri]
            else:
                entity.attrs[attr_iri] = packed
            entity.modified_at = now
            self._save(conn, tenant, entity, pk)
            if attribute is not None and "observedAt" in fragment:
                Store.add_history(conn, self._history(tenant, entity_id, {attr_iri: attribute}))
            subs = self._subscriptions(conn, tenant)
        self._notify(tenant, subs, [change])

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
            change = _Change(entity)
            if delete_all:
                del entity.attrs[attr_iri]
                change.remove(attr_iri, old if isinstance(old, list) else [old])
            else:
                # Without datasetId only the default instance goes (clause 5.6.5); deleteAll=true
                # removes every instance.
                instances = old if isinstance(old, list) else [old]
                kept = [item for item in instances if item.get("datasetId") != dataset_id]
                if len(kept) == len(instances):
                    which = (f"no instance with datasetId {dataset_id!r}" if dataset_id is not None else
                             "no default instance (one without datasetId); give datasetId=... or "
                             "deleteAll=true")
                    raise not_found(f"Attribute {ctx.compact(attr_iri)!r} has {which}.")
                change.remove(attr_iri, [item for item in instances if item.get("datasetId") == dataset_id])
                if kept:
                    entity.attrs[attr_iri] = _pack(kept)
                else:
                    del entity.attrs[attr_iri]
            entity.modified_at = now
            self._save(conn, tenant, entity, pk)
            subs = self._subscriptions(conn, tenant)
        self._notify(tenant, subs, [change])

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
                    if not (operation == "update" or (operation == "upsert" and mode == "update")):
                        _refuse_nulls(entity)
                    prepared.append((entity.id, entity))
            except NgsiError as err:
                outcome.fail(item.get("id") if isinstance(item, dict) else item, err)
        changed: list[_Change] = []
        subs: list = []
        merge = operation == "update" or (operation == "upsert" and mode == "update")
        with self.store.write() as conn:
            writes = _Writes(conn, tenant)
            subs = self._subscriptions(conn, tenant)
            # Replacing or deleting entities decodes their stored attributes only when a subscription
            # tells created, updated and deleted attributes (or deleted entities) apart: decoding
            # costs batch upserts a third of their speed.
            precise = any(sub.triggers != DEFAULT_TRIGGERS for sub in subs)
            # id -> (pk, stored Entity or None if not decoded yet), updated as the batch proceeds so
            # that an id given twice sees its first version.
            known = _lookup(conn, tenant, [entity_id for entity_id, _ in prepared], with_doc=merge or precise)
            for entity_id, entity in prepared:
                found = known.get(entity_id)
                if operation == "delete":
                    if found is None:
                        outcome.fail(entity_id, not_found(f"Entity {entity_id} does not exist."))
                        continue
                    writes.delete(found[0], entity_id)
                    del known[entity_id]
                    outcome.success.append(entity_id)
                    changed.append(_Change.deleted(found[1]))
                    continue
                if found is None:
                    if operation == "update":
                        outcome.fail(entity_id, not_found(f"Entity {entity_id} does not exist; batch update "
                                                          "changes existing entities only (use upsert)."))
                        continue
                    try:
                        _refuse_nulls(entity)
                    except NgsiError as err:
                        outcome.fail(entity_id, err)
                        continue
                    pk = writes.save(entity, None)
                    written = entity.attrs
                    outcome.created.append(entity_id)
                    change = _Change.created(entity)
                elif operation == "create":
                    outcome.fail(entity_id, NgsiError("AlreadyExists", f"Entity {entity_id} already exists."))
                    continue
                else:
                    pk, old = found
                    change = _Change(entity)
                    if not merge:
                        entity.created_at = old.created_at
                        written = entity.attrs
                        # A replaced entity: attributes it did not have are created, the ones it
                        # loses are deleted (known only when decoded, see ``precise``). Without
                        # subscriptions nobody asks, and batches go faster without the bookkeeping.
                        if subs:
                            for name in entity.attrs:
                                change.events.append((name, "attributeUpdated" if name in old.attrs
                                                      or not precise else "attributeCreated"))
                            for name, attribute in old.attrs.items():
                                if name not in entity.attrs:
                                    change.remove(name, attribute if isinstance(attribute, list)
                                                  else [attribute])
                    else:
                        if entity.type and entity.type != old.type:
                            # NGSI-LD 1.8 would add the type (an entity may have several); this
                            # broker keeps one, so it refuses rather than replace it silently.
                            outcome.fail(entity_id, not_implemented(
                                f"Adding the type {entity.type} to entity {entity_id} of type {old.type} "
                                "(multi-typed entities)", "5.6.8-5.6.9", "Send the entity's own type, or "
                                "replace the entity (upsert without options=update)."))
                            continue
                        written = {}
                        for name, attribute in entity.attrs.items():
                            merged, done, _ = _merge_attribute(old.attrs.get(name), attribute, add=True,
                                                               overwrite=overwrite)
                            if not done:
                                continue
                            if subs:
                                change.add(name, old.attrs.get(name), done)
                            if merged is None:
                                del old.attrs[name]
                            else:
                                old.attrs[name] = merged
                            written[name] = [i for i in done if not is_ngsi_ld_null(i)]
                        old.modified_at = now
                        entity = old
                        change.entity = old
                    writes.save(entity, pk)
                known[entity_id] = (pk, entity)
                writes.history.extend(self._history(tenant, entity_id, written))
                outcome.success.append(entity_id)
                changed.append(change)
            writes.flush()
            if changed:
                # Only a batch that created something makes its tenant: a refused batch leaves no trace.
                self._ensure_tenant(conn, tenant, now)
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

    def type_info(self, tenant: str, type_iri: str) -> tuple[int, dict[str, set[str]]]:
        """Entities of one type and their attributes (clause 5.7.7): (count, {attribute: kinds})."""
        tenant = self._existing_tenant(tenant)
        count, attributes = 0, {}
        with self.store.read() as conn:
            for (doc,) in conn.execute("SELECT doc FROM entities WHERE tenant=? AND type=?",
                                       (tenant, type_iri)):
                count += 1
                for name, attribute in json.loads(doc).items():
                    kinds = attributes.setdefault(name, set())
                    for instance in attribute if isinstance(attribute, list) else [attribute]:
                        kinds.add(instance.get("type", "Property"))
        if not count:
            raise not_found(f"There is no entity of type {type_iri}{_in_tenant(tenant)}.")
        return count, attributes

    def attribute_info(self, tenant: str) -> dict[str, dict]:
        """Every attribute of a tenant (clauses 5.7.8-5.7.9): {IRI: {count, kinds, types}}."""
        tenant = self._existing_tenant(tenant)
        found: dict[str, dict] = {}
        with self.store.read() as conn:
            for entity_type, doc in conn.execute("SELECT type, doc FROM entities WHERE tenant=?", (tenant,)):
                for name, attribute in json.loads(doc).items():
                    info = found.setdefault(name, {"count": 0, "kinds": set(), "types": set()})
                    info["count"] += 1
                    info["types"].add(entity_type)
                    for instance in attribute if isinstance(attribute, list) else [attribute]:
                        info["kinds"].add(instance.get("type", "Property"))
        return dict(sorted(found.items()))

    def purge(self, tenant: str, query: EntityQuery) -> int:
        """Delete every entity matching ``query`` with its history (purge, DELETE /entities)."""
        tenant = self._existing_tenant(tenant)
        if query.types is None and query.ids is None and query.id_pattern is None and query.q is None:
            raise bad_data("Purging needs type, id, idPattern or q: DELETE /entities with none of them "
                           "would delete every entity of the tenant.")
        everything = EntityQuery(types=query.types, ids=query.ids, id_pattern=query.id_pattern, q=query.q,
                                 numeric_terms=query.numeric_terms, limit=self.max_limit)
        with self.store.write() as conn:
            # The same selection as query_entities, all pages, inside the deleting transaction.
            rows = self._matches(conn, tenant, everything, _compiled_q(everything), None)
            gone = []
            for entity_id, *_ in rows:
                pk, entity = self._get(conn, tenant, entity_id)
                Store.delete_entity(conn, tenant, pk, entity_id)
                gone.append(_Change.deleted(entity))
            subs = self._subscriptions(conn, tenant)
        self._notify(tenant, subs, gone)
        return len(rows)

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
            matches = self._matches(conn, tenant, query, compiled, only_ids)
        page = matches[query.offset:query.offset + query.limit]
        return [Entity(i, t, d if isinstance(d, dict) else json.loads(d), c, m)
                for i, t, d, c, m in page], len(matches)

    def _matches(self, conn, tenant: str, query: EntityQuery, compiled, only_ids) -> list[tuple]:
        """Every row matching ``query`` (no paging): SQL narrows, :meth:`_filter` decides the rest."""
        sql, params = _select_sql(tenant, query, compiled)
        sure, sure_params = (compiled.sure, compiled.sure_params) if compiled else ("0", ())
        # near on location: SQLite measures Points (geo.point_distance_sql), Python the rest.
        distance, distance_params = query.geo.point_distance_sql() if _near_location(query) \
            else ("NULL", ())
        return self._filter(conn.execute(
            f"SELECT e.id, e.type, e.doc, e.created_at, e.modified_at, e.geom, {sure}, {distance} {sql} "
            "ORDER BY e.pk", (*sure_params, *distance_params, *params)), query, only_ids)

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

    @staticmethod
    def _temporal_instances(payload: dict, ctx: TermMap, entity_id: str, now: str) -> dict[str, list[dict]]:
        """Attribute IRI -> instances (each with observedAt) of a temporal fragment's attributes."""
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
        return instances

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
        instances = self._temporal_instances(payload, ctx, entity_id, now)
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

    def temporal_add_attributes(self, tenant: str, entity_id: str, payload, ctx: TermMap) -> None:
        """Add attribute instances to an existing entity's history (clause 5.6.12).

        The body is a fragment ``{"no2": [{"type": "Property", "value": 41, "observedAt": ...}]}``;
        every instance needs observedAt. The entity's current attributes are not changed (as
        with POST /temporal/entities on an existing entity): the instances are history.
        ResourceNotFound if the entity does not exist.
        """
        tenant = self._existing_tenant(tenant, entity_id)
        if not isinstance(payload, dict):
            raise bad_data("The body must be a JSON object of attribute name -> instance or list of "
                           "instances, each with observedAt.")
        if "id" in payload and payload["id"] != entity_id:
            raise bad_data(f"The body's id {str(payload['id'])[:80]!r} is not the entity of the URL, "
                           f"{entity_id}.")
        now = now_iso()
        instances = self._temporal_instances(payload, ctx, entity_id, now)
        if not instances:
            raise bad_data("The body names no attribute; send e.g. {\"no2\": [{\"type\": \"Property\", "
                           "\"value\": 41, \"observedAt\": \"2024-05-01T09:00:00Z\"}]}.")
        with self.store.write() as conn:
            self._get(conn, tenant, entity_id)
            Store.add_history(conn, [(tenant, entity_id, name, item["observedAt"], dumps(item))
                                     for name, items in instances.items() for item in items])

    def temporal_delete_attribute(self, tenant: str, entity_id: str, attr_iri: str, *,
                                  dataset_id: str | None = None, delete_all: bool = False) -> int:
        """Delete an attribute's history (clause 5.6.13); returns the number of instances deleted.

        Without ``datasetId`` and ``deleteAll`` the history of the default instance (the one
        without datasetId) is deleted; with ``datasetId``, that dataset's; with ``deleteAll``,
        every instance's. The entity's current attribute stays (delete it with
        DELETE /entities/{id}/attrs/{attr}, clause 5.6.5). ResourceNotFound if the entity has
        no such history.
        """
        tenant = self._existing_tenant(tenant, entity_id)
        if dataset_id is not None and delete_all:
            raise bad_data("datasetId and deleteAll=true exclude each other: deleteAll deletes every "
                           "dataset's history.")
        if dataset_id is not None and not is_uri(dataset_id):
            raise bad_data(f"datasetId must be a URI, got {dataset_id[:80]!r}.")
        where, params = "", []
        if not delete_all:
            where = " AND json_extract(value, '$.datasetId') IS ?"
            params.append(dataset_id)
        with self.store.write() as conn:
            self._get(conn, tenant, entity_id)
            deleted = conn.execute(
                f"DELETE FROM history WHERE tenant=? AND entity_id=? AND attribute=?{where}",
                (tenant, entity_id, attr_iri, *params)).rowcount
            if not deleted:
                which = "" if delete_all else (f" with datasetId {dataset_id}" if dataset_id else
                                               " without datasetId (the default instance; add "
                                               "deleteAll=true for every dataset)")
                raise not_found(f"Entity {entity_id} has no history of {attr_iri}{which}.")
        return deleted

    def _instance_row(self, conn, tenant: str, entity_id: str, attr_iri: str, instance_id: str):
        if not is_uri(instance_id):
            raise bad_data(f"{instance_id[:80]!r} is not an instanceId (a URI such as "
                           f"{_INSTANCE_PREFIX}42, as GET /temporal/entities/{{id}} shows).")
        self._get(conn, tenant, entity_id)
        number = instance_id[len(_INSTANCE_PREFIX):] if instance_id.startswith(_INSTANCE_PREFIX) else ""
        row = None
        if number.isdigit() and len(number) < 19:
            row = conn.execute("SELECT instance, value FROM history WHERE instance=? AND tenant=? AND "
                               "entity_id=? AND attribute=?",
                               (int(number), tenant, entity_id, attr_iri)).fetchone()
        if row is None:
            raise not_found(f"Entity {entity_id} has no instance {instance_id} of {attr_iri}; "
                            "GET /temporal/entities/{id} lists the instanceIds.")
        return row

    def temporal_modify_instance(self, tenant: str, entity_id: str, attr_iri: str, instance_id: str,
                                 payload, ctx: TermMap) -> None:
        """Replace one instance of an attribute's history (clause 5.6.14); its instanceId stays.

        The body is the instance (``{"type": "Property", "value": 12, "observedAt": ...}``) or a
        fragment naming the attribute (``{"no2": {...}}`` or ``{"no2": [{...}]}``, as the
        specification's examples send it). Without observedAt the instance keeps its time, and
        without datasetId its dataset.
        """
        tenant = self._existing_tenant(tenant, entity_id)
        if not isinstance(payload, dict):
            raise bad_data("The body must be the new instance as a JSON object, e.g. "
                           "{\"type\": \"Property\", \"value\": 12}.")
        names = [name for name in payload if name not in ("@context", "id")]
        raw = payload
        # One member that is no member of an attribute: the attribute's name (the fragment form).
        if len(names) == 1 and names[0] not in ATTRIBUTE_MEMBERS:
            named = ctx.expand(check_name(names[0], "attribute name"))
            if named != attr_iri:
                raise bad_data(f"The body names the attribute {names[0]!r}, not the one of the URL.")
            raw = payload[names[0]]
            if isinstance(raw, list):
                if len(raw) != 1:
                    raise bad_data("Send exactly one instance to replace one instance.")
                raw = raw[0]
        if isinstance(raw, dict):
            raw = {key: value for key, value in raw.items() if key != "@context"}
        now = now_iso()
        instance = normalise_attribute(attr_iri, raw, ctx, now, f"Entity {entity_id}: instance {instance_id}")
        if isinstance(instance, list):
            raise bad_data("Send exactly one instance to replace one instance.")
        with self.store.write() as conn:
            number, old = self._instance_row(conn, tenant, entity_id, attr_iri, instance_id)
            old = json.loads(old)
            instance.setdefault("observedAt", old["observedAt"])
            if "datasetId" in old:  # the instance stays in its dataset unless the body moves it
                instance.setdefault("datasetId", old["datasetId"])
            instance["createdAt"] = old.get("createdAt", now)
            conn.execute("UPDATE history SET observed_at=?, value=? WHERE instance=?",
                         (instance["observedAt"], dumps(instance), number))

    def temporal_delete_instance(self, tenant: str, entity_id: str, attr_iri: str, instance_id: str) -> None:
        """Delete one instance of an attribute's history (clause 5.6.15)."""
        tenant = self._existing_tenant(tenant, entity_id)
        with self.store.write() as conn:
            number, _ = self._instance_row(conn, tenant, entity_id, attr_iri, instance_id)
            conn.execute("DELETE FROM history WHERE instance=?", (number,))

    def temporal_delete(self, tenant: str, entity_id: str) -> None:
        """Delete an entity's temporal representation (clause 5.6.16): the entity and its history.

        The broker keeps one entity with its history, not a separate temporal store, so the
        temporal representation and the entity go together (a later GET gives 404 on both).
        """
        self.delete_entity(tenant, entity_id)

    def temporal_entity(self, tenant: str, entity_id: str,
                        window: TemporalQuery) -> tuple[Entity, dict, TemporalPage]:
        """An entity and its attribute instances in the window (clause 5.7.3).

        Returns the entity, ``{attribute IRI: [(instance id, instance), ...]}`` (oldest first)
        and how much of the window the instances cover (see :meth:`_page`).
        """
        tenant = self._existing_tenant(tenant, entity_id)
        with self.store.read() as conn:
            entity = self._get(conn, tenant, entity_id)[1]
            found, page = self._page(conn, tenant, [entity_id], window)
        return entity, found[0], page

    def temporal_query(self, tenant: str, query: EntityQuery,
                       window: TemporalQuery) -> tuple[list[tuple[Entity, dict]], int, TemporalPage]:
        """Entities matching ``query`` that have instances in the window (clause 5.7.4)."""
        tenant = self._existing_tenant(tenant)
        sql, params = _history_window_sql(window)
        with self.store.read() as conn:
            ids = {row[0] for row in conn.execute(
                f"SELECT DISTINCT entity_id FROM history WHERE tenant=? {sql}", (tenant, *params))}
        entities, total = self.query_entities(tenant, query, only_ids=ids)
        with self.store.read() as conn:
            found, page = self._page(conn, tenant, [entity.id for entity in entities], window)
        return list(zip(entities, found, strict=True)), total, page

    def _page(self, conn, tenant: str, entity_ids: list[str],
              window: TemporalQuery) -> tuple[list[dict], TemporalPage]:
        """The instances of each entity in the window, cut to :attr:`temporal_limit` (clause 6.3.10).

        No attribute of the response holds more than ``temporal_limit`` instances. When the
        window holds more, the response is cut at one instant common to every attribute and
        entity, so that the rest of the window is exactly what the client asks next:

        * without ``lastN`` the oldest instances come first (paging "forwards"); the response
          holds every instance up to its range end, and the next page is
          ``timerel=after&timeAt=<range end + 1 ms>`` (or ``between`` with the same endTimeAt);
        * with ``lastN`` above the limit the newest come first (paging "backwards"); the next
          page is ``timerel=before&timeAt=<range end>`` with ``lastN`` less what was received.

        ``Content-Range: date-time <start>-<end>/<size>``: start is ``timeAt`` (forwards, after
        or between; backwards, before) or ``endTimeAt`` (backwards, between), else the first
        instant of the response in its paging order; end is the last instant of the response in
        that order; size is ``lastN`` backwards and ``*`` forwards.
        """
        limit = self.temporal_limit
        backwards = window.last_n is not None
        if not window.paged:
            cap = None
        elif backwards:
            cap = window.last_n if window.last_n <= limit else limit + 1
        else:
            cap = limit + 1
        found = [self._instances(conn, tenant, entity_id, window, cap, backwards) for entity_id in entity_ids]
        full = [items for instances in found for items in instances.values()
                if window.paged and len(items) > limit]
        if not full:
            return [{name: [(iid, instance) for iid, _, instance in items]
                     for name, items in instances.items()} for instances in found], TemporalPage()
        # The cut: forwards, before the first instant some attribute could not carry; backwards,
        # after the last such instant.
        if backwards:
            boundary = max(items[0][1] for items in full)
            keep = lambda moment: moment > boundary  # noqa: E731
        else:
            boundary = min(items[limit][1] for items in full)
            keep = lambda moment: moment < boundary  # noqa: E731
        cut = [{name: [item for item in items if keep(item[1])] for name, items in instances.items()}
               for instances in found]
        if not any(items for instances in cut for items in instances.values()):
            # More than `limit` instances share the boundary instant: that instant is the page,
            # whole (otherwise paging could not move past it).
            sql, params = _history_window_sql(window)
            cut = []
            for entity_id in entity_ids:
                rows = conn.execute(
                    f"SELECT instance, attribute, observed_at, value FROM history WHERE tenant=? AND "
                    f"entity_id=? {sql} AND observed_at=? ORDER BY attribute, instance",
                    (tenant, entity_id, *params, boundary))
                instances: dict[str, list] = {}
                for instance, attribute, observed_at, value in rows:
                    instances.setdefault(attribute, []).append(
                        (f"{_INSTANCE_PREFIX}{instance}", observed_at, json.loads(value)))
                cut.append(instances)
        moments = [item[1] for instances in cut for items in instances.values() for item in items]
        first, last = min(moments), max(moments)
        if backwards:
            start = {"before": window.time_at, "between": window.end_time_at}.get(window.timerel, last)
            content_range = f"date-time {start}-{first}/{window.last_n}"
        else:
            start = window.time_at if window.timerel in ("after", "between") else first
            content_range = f"date-time {start}-{last}/*"
        pruned = [{name: [(iid, instance) for iid, _, instance in items] for name, items in instances.items()
                   if items} for instances in cut]
        return pruned, TemporalPage(content_range)

    @staticmethod
    def _instances(conn, tenant: str, entity_id: str, window: TemporalQuery, cap: int | None,
                   backwards: bool) -> dict[str, list[tuple[str, str, dict]]]:
        """``{attribute: [(instance id, observedAt, instance), ...]}`` oldest first, at most ``cap``
        per attribute: the oldest ones, or the newest ones when ``backwards``.

        One indexed range read per attribute (tenant, entity, attribute, time): a page of a long
        history costs the page, not the history.
        """
        times, params = _history_window_sql(TemporalQuery(window.timerel, window.time_at, window.end_time_at))
        if window.attrs is not None:
            names = sorted(window.attrs)
        else:  # the entity's attribute names, one index seek each
            names, after = [], ""
            while True:
                name = conn.execute("SELECT min(attribute) FROM history WHERE tenant=? AND entity_id=? AND "
                                    "attribute>?", (tenant, entity_id, after)).fetchone()[0]
                if name is None:
                    break
                names.append(name)
                after = name
        order = "DESC" if backwards else "ASC"
        limit = "" if cap is None else f" LIMIT {int(cap)}"
        found: dict[str, list] = {}
        for name in names:
            rows = conn.execute(
                f"SELECT instance, observed_at, value FROM history WHERE tenant=? AND entity_id=? "
                f"AND attribute=? {times} ORDER BY observed_at {order}, instance {order}{limit}",
                (tenant, entity_id, name, *params))
            items = [(f"{_INSTANCE_PREFIX}{instance}", observed_at, json.loads(value))
                     for instance, observed_at, value in rows]
            if items:
                found[name] = items[::-1] if backwards else items
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
        self._schedule_periodic(tenant, doc)
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
        self._schedule_periodic(tenant, doc)

    def delete_subscription(self, tenant: str, subscription_id: str) -> None:
        """Delete a subscription (clause 5.8.5)."""
        tenant = self._existing_tenant(tenant)
        with self.store.write() as conn:
            deleted = conn.execute("DELETE FROM subscriptions WHERE tenant=? AND id=?",
                                   (tenant, subscription_id)).rowcount
            if not deleted:
                raise not_found(f"Subscription {subscription_id} does not exist{_in_tenant(tenant)}.")
            Store.bump_subscriptions_version(conn)
        self.notifier.unschedule((tenant, subscription_id))
        self.notifier.forget(subscription_id)

    def render_subscription(self, doc: dict, ctx: TermMap, stats: bool = True) -> dict:
        """A stored subscription compacted with ``ctx``, with its delivery status."""
        out = {key: value for key, value in doc.items()
               if key not in ("jsonldContext", "notificationContext")}
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
            made_with = doc.get("jsonldContext")
            if isinstance(made_with, str):
                out["jsonldContext"] = made_with
            elif made_with is not None:  # an inline context, named by the URL the broker serves it at
                out["jsonldContext"] = self.contexts.implicit_url(made_with)
        if "notificationContext" in doc:  # also without stats: an update keeps it
            out["jsonldContext"] = doc["notificationContext"]
        out["notification"] = notification
        return out

    def _check_subscription(self, payload, ctx: TermMap) -> dict:
        if not isinstance(payload, dict):
            raise bad_data("A subscription must be a JSON object.")
        for member in payload:
            if member in _SUBSCRIPTION_MEMBERS:
                continue
            if member in _UNIMPLEMENTED_SUBSCRIPTION_MEMBERS:
                raise not_implemented(_UNIMPLEMENTED_SUBSCRIPTION_MEMBERS[member], "5.2.12",
                                      f"Remove {member!r} from the subscription.")
            raise bad_data(f"A subscription has no member {member[:60]!r}; its members are "
                           f"{', '.join(sorted(_SUBSCRIPTION_MEMBERS - _READ_ONLY_SUBSCRIPTION_MEMBERS))}.")
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
        if "notificationTrigger" in payload:
            triggers = payload["notificationTrigger"]
            if (not isinstance(triggers, list) or not triggers
                    or not all(isinstance(item, str) and item in NOTIFICATION_TRIGGERS for item in triggers)):
                raise bad_data("notificationTrigger must be a non-empty list of "
                               f"{', '.join(NOTIFICATION_TRIGGERS)} (clause 5.2.12); "
                               f"got {str(triggers)[:100]}.")
            doc["notificationTrigger"] = list(dict.fromkeys(triggers))
        if "timeInterval" in payload:
            interval = payload["timeInterval"]
            if isinstance(interval, bool) or not isinstance(interval, (int, float)) or \
                    not interval >= MIN_TIME_INTERVAL_S or interval == float("inf"):
                raise bad_data(f"timeInterval is the period of the notifications in seconds, at least "
                               f"{MIN_TIME_INTERVAL_S} (clause 5.2.12); got {str(interval)[:40]}.")
            # A subscription is periodic or triggered by changes, not both: watchedAttributes shall
            # not appear with timeInterval (clause 5.2.12, table 5.2.12-1). notificationTrigger and
            # throttling only shape change-based notifications (5.8.6), so they are refused too
            # rather than ignored.
            for member, why in (("watchedAttributes", "clause 5.2.12: a periodic subscription notifies "
                                 "every interval whatever changed"),
                                ("notificationTrigger", "it chooses which changes notify, and a periodic "
                                 "subscription is not notified of changes"),
                                ("throttling", "the interval already sets how often it notifies")):
                if member in payload:
                    raise bad_data(f"A subscription with timeInterval cannot have {member} ({why}). "
                                   f"Remove {member}, or remove timeInterval for notifications on changes.")
            doc["timeInterval"] = interval
        if "jsonldContext" in payload:
            # Clause 5.2.12: the @context of the notifications, if not the subscription's own. It
            # must be a URL the broker can resolve now (never downloaded), so a notification never
            # fails for want of it.
            url = payload["jsonldContext"]
            if not isinstance(url, str) or not re.match(r"https?://", url):
                raise bad_data("jsonldContext must be the URL of a JSON-LD @context (clause 5.2.12), e.g. "
                               f"{COURSE_CONTEXT_URL!r}.")
            self.contexts.resolve(url)
            doc["notificationContext"] = url
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
        # Notifications are compacted with (and name) the subscription's jsonldContext member if
        # it has one, else the @context it was made with (clause 5.2.12).
        notify_ctx = ctx
        if "notificationContext" in doc:
            notify_ctx = self.contexts.resolve(doc["notificationContext"])
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
            id=doc["id"], doc=doc, ctx=notify_ctx, selectors=selectors,
            watched=frozenset(doc["watchedAttributes"]) if "watchedAttributes" in doc else None,
            q=parse_q(doc["q"], ctx.expand) if "q" in doc else None, geo=geo_query,
            attributes=frozenset(notification["attributes"]) if "attributes" in notification else None,
            key_values=notification.get("format") == "keyValues", endpoint=notification["endpoint"],
            active=doc.get("isActive", True), expires_at=doc.get("expiresAt"),
            throttling_s=float(doc.get("throttling", 0)),
            triggers=_expand_triggers(doc.get("notificationTrigger")),
            hears_creation=not {"entityCreated", "attributeCreated"}.isdisjoint(
                doc.get("notificationTrigger", DEFAULT_TRIGGERS)),
            time_interval_s=doc.get("timeInterval"))

    def _notify(self, tenant: str, subs: list[_Subscription], changed: list[_Change]) -> None:
        if not subs or not changed:
            return
        now = now_iso()
        for sub in subs:
            if not sub.active or (sub.expires_at is not None and sub.expires_at <= now):
                continue
            if sub.time_interval_s is not None:
                continue  # periodic: notified by its timer, not by changes (clause 5.2.12)
            data = [self._render_change(sub, change, now) for change in changed
                    if _triggered(sub, change) and _subscription_matches(sub, change.entity)]
            if not data:
                continue
            if sub.throttling_s:
                last = self._last_sent.get(sub.id)
                if last is not None and time.monotonic() - last < sub.throttling_s:
                    continue
                self._last_sent[sub.id] = time.monotonic()
            self._send(tenant, sub, data, now)

    def _send(self, tenant: str, sub: _Subscription, data: list[dict], now: str) -> None:
        notification = {"id": f"urn:ngsi-ld:Notification:{uuid.uuid4()}", "type": "Notification",
                        "subscriptionId": sub.id, "notifiedAt": now, "data": data}
        link = None
        if sub.endpoint.get("accept") == "application/ld+json":
            notification["@context"] = sub.ctx.source
        else:
            from .context import context_link_header

            link = context_link_header(sub.ctx.link_url)
        self.notifier.deliver(sub.id, sub.endpoint, notification, link, tenant)

    @staticmethod
    def _render_change(sub: _Subscription, change: _Change, now: str) -> dict:
        """The entity of a notification: a deleted entity is its id, type and deletedAt; deleted
        attributes appear with deletedAt and the NGSI-LD Null, for subscriptions that asked for
        attributeDeleted (clauses 5.2.12 and 4.8, deletedAt)."""
        entity = change.entity
        if change.entity_event == "entityDeleted":
            return {"id": entity.id, "type": sub.ctx.compact(entity.type), "deletedAt": now}
        out = render_entity(entity, sub.ctx, key_values=sub.key_values, attrs=sub.attributes)
        if "attributeDeleted" in sub.triggers:
            for name, instance in change.gone:
                if sub.attributes is not None and name not in sub.attributes:
                    continue
                term = sub.ctx.compact(name)
                kind = instance.get("type", "Property")
                member = {"Relationship": "object", "LanguageProperty": "languageMap"}.get(kind, "value")
                null = {"@none": NGSI_LD_NULL} if member == "languageMap" else NGSI_LD_NULL
                shown = null if sub.key_values else {"type": kind, member: null, "deletedAt": now}
                if not sub.key_values and "datasetId" in instance:
                    shown["datasetId"] = instance["datasetId"]
                if term in out:  # other instances of the attribute remain
                    kept = out[term]
                    out[term] = [*(kept if isinstance(kept, list) else [kept]), shown]
                else:
                    out[term] = shown
        return out

    # -- periodic subscriptions (timeInterval, clause 5.2.12) ----------------------------------

    def _schedule_periodic(self, tenant: str, doc: dict) -> None:
        """Start (or restart, or stop) the timer of a subscription after it was stored."""
        key = (tenant, doc["id"])
        if "timeInterval" not in doc:
            self.notifier.unschedule(key)
            return
        subscription_id = doc["id"]
        self.notifier.schedule(key, float(doc["timeInterval"]),
                               lambda: self._send_periodic(tenant, subscription_id))

    def _send_periodic(self, tenant: str, subscription_id: str) -> None:
        """One periodic notification: every entity the subscription matches now (clause 5.8.6).

        Runs on the notifier's thread. The subscription is read afresh, so a deletion, pause or
        expiry takes effect at the next tick even if another process made it. No notification
        is sent while nothing matches (a notification's data is never empty).
        """
        now = now_iso()
        with self.store.read() as conn:
            row = conn.execute("SELECT doc FROM subscriptions WHERE tenant=? AND id=?",
                               (tenant, subscription_id)).fetchone()
            doc = json.loads(row[0]) if row is not None else None
            if doc is None or "timeInterval" not in doc or \
                    (doc.get("expiresAt") is not None and doc["expiresAt"] <= now):
                self.notifier.unschedule((tenant, subscription_id))  # deleted, changed or expired
                return
            if not doc.get("isActive", True):
                return  # paused: the timer keeps running, so resuming needs no new schedule
            sub = self._compile(doc)
            types = sorted({entity_type for entity_type, _, _ in sub.selectors})
            rows = conn.execute(f"SELECT id, type, doc, created_at, modified_at FROM entities WHERE tenant=? "
                                f"AND type IN ({','.join('?' * len(types))}) ORDER BY pk",
                                (tenant, *types)).fetchall()
        entities = [Entity(i, t, json.loads(d), c, m) for i, t, d, c, m in rows]
        data = [render_entity(entity, sub.ctx, key_values=sub.key_values, attrs=sub.attributes)
                for entity in entities if _subscription_matches(sub, entity)]
        if data:
            self._send(tenant, sub, data, now)


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
        self.values: dict[int, dict] = {}  # pk -> attributes, for the entity_values index

    def save(self, entity: Entity, pk: int | None) -> int:
        """Queue an insert (pk None) or an update of ``entity``; returns its pk."""
        geometry, box = _location_of(entity)
        doc = dumps(entity.attrs)
        geom = dumps(geometry) if geometry else None
        self.values[pk if pk is not None else self.next_pk] = entity.attrs
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
        self.values.pop(pk, None)
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
        index = [row for pk, attrs in self.values.items() for row in qsql.index_rows(pk, attrs)]
        Store.index_values(conn, index, replaced=[row[-1] for row in updates])
        inserted = {row[0] for row in inserts}
        stale = [(pk,) for pk in self.boxes if pk not in inserted]
        if stale:
            conn.executemany("DELETE FROM entity_location WHERE pk=?", stale)
        boxes = [(pk, *box) for pk, box in self.boxes.items() if box is not None]
        if boxes:
            conn.executemany("INSERT INTO entity_location VALUES (?, ?, ?, ?, ?)", boxes)
        Store.add_history(conn, self.history)
        self.rows, self.boxes, self.deleted, self.history, self.values = {}, {}, [], [], {}

def _in_tenant(tenant: str) -> str:
    return f" in tenant {tenant!r}" if tenant else ""


def _pack(instances: list):
    """A stored attribute from its instances: None (gone), one instance, or a list."""
    if not instances:
        return None
    return instances[0] if len(instances) == 1 else instances


def _merge_attribute(old, new, *, add: bool, overwrite: bool) -> tuple[object, list, list[str]]:
    """Merge the instances of ``new`` into the stored attribute ``old`` by datasetId.

    Each instance of ``new`` replaces the instance of ``old`` with the same datasetId (no
    datasetId: the default instance), or is added (``add``); the others stay (clause 4.5.5).
    An instance whose value is the NGSI-LD Null deletes its counterpart.

    Returns
    -------
    (attribute or None, instances written, reasons for instances not written)
    """
    current = ([] if old is None else list(old) if isinstance(old, list) else [old])
    written, refused = [], []
    for instance in (new if isinstance(new, list) else [new]):
        dataset = instance.get("datasetId")
        index = next((i for i, item in enumerate(current) if item.get("datasetId") == dataset), None)
        label = "the default instance" if dataset is None else f"the instance with datasetId {dataset}"
        if is_ngsi_ld_null(instance):
            if index is None:
                refused.append(f"{label} does not exist, so urn:ngsi-ld:null deletes nothing")
            else:
                del current[index]
                written.append(instance)
            continue
        if index is None:
            if not add:
                refused.append(f"{label} does not exist; append it with POST .../attrs")
                continue
            current.append(instance)
        elif not overwrite:
            refused.append("attribute exists and options=noOverwrite" if dataset is None
                           else f"{label} exists and options=noOverwrite")
            continue
        else:
            _keep_created(instance, current[index])
            current[index] = instance
        written.append(instance)
    return _pack(current), written, refused


def _refuse_nulls(entity: Entity) -> None:
    """BadRequestData if a new (or replacing) entity gives an attribute the NGSI-LD Null."""
    for name, attribute in entity.attrs.items():
        for instance in (attribute if isinstance(attribute, list) else [attribute]):
            if is_ngsi_ld_null(instance):
                raise bad_data(f"Entity {entity.id}: attribute {name} is urn:ngsi-ld:null, which deletes an "
                               "attribute in an update; a new entity simply leaves it out.")


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


#: Members of a subscription (clause 5.2.12) the broker implements; the read-only ones that it
#: writes itself (status, counters) are accepted back unchanged, as a client echoing a GET does.
_READ_ONLY_SUBSCRIPTION_MEMBERS = frozenset({"status", "createdAt", "modifiedAt"})
_SUBSCRIPTION_MEMBERS = frozenset({
    "id", "type", "@context", "subscriptionName", "description", "entities", "watchedAttributes", "q",
    "geoQ", "notification", "isActive", "expiresAt", "throttling", "timeInterval", "jsonldContext",
    "notificationTrigger",
}) | _READ_ONLY_SUBSCRIPTION_MEMBERS
_UNIMPLEMENTED_SUBSCRIPTION_MEMBERS = {
    "scopeQ": "Scope queries in subscriptions (scopeQ)",
    "lang": "Language filtering in notifications (lang)",
    "csf": "Context source filters in subscriptions (csf)",
    "temporalQ": "Temporal queries in subscriptions (temporalQ)",
    "datasetId": "Selecting attribute instances by datasetId in subscriptions",
    "expandValues": "Expanding values in notifications (expandValues)",
    "jsonKeys": "JSON keys of JsonProperty values (jsonKeys)",
    "localOnly": "Local-only subscriptions (localOnly)",
}
_NOTIFICATION_MEMBERS = frozenset({"endpoint", "format", "attributes", "status", "timesSent",
                                   "timesFailed", "lastNotification", "lastSuccess", "lastFailure"})
_UNIMPLEMENTED_NOTIFICATION_MEMBERS = {
    "sysAttrs": "System attributes in notifications (notification.sysAttrs)",
    "showChanges": "Previous values in notifications (notification.showChanges)",
    "pick": "pick in notifications", "omit": "omit in notifications",
    "join": "Linked entities in notifications (join)", "joinLevel": "Linked entities in notifications",
}


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
    elif uri.startswith("mqtts://"):
        raise not_implemented("MQTT notifications over TLS (an mqtts:// endpoint)",
                              "5.2.15 / annex MQTT binding",
                              "Use mqtt://host:port/topic (no TLS), an http(s) endpoint or an inbox.")
    elif uri.startswith("mqtt://"):
        try:
            parse_mqtt_endpoint(uri)
        except ValueError as err:
            raise bad_data(str(err)) from None
    elif not (uri.startswith(("http://", "https://")) and is_uri(uri)):
        raise bad_data(f"notification.endpoint.uri {uri!r} must be an http(s) URL, mqtt://host:port/topic or "
                       f"{INBOX_SCHEME}<name>.")
    accept = endpoint.get("accept", "application/json")
    if accept not in ("application/json", "application/ld+json"):
        raise bad_data("notification.endpoint.accept must be application/json or application/ld+json.")
    out = {"endpoint": {"uri": uri, "accept": accept}}
    if "receiverInfo" in endpoint:
        out["endpoint"]["receiverInfo"] = _check_receiver_info(endpoint["receiverInfo"], uri)
    if "notifierInfo" in endpoint:
        out["endpoint"]["notifierInfo"] = _check_notifier_info(endpoint["notifierInfo"], uri)
    for member in value:
        if member in _UNIMPLEMENTED_NOTIFICATION_MEMBERS:
            raise not_implemented(_UNIMPLEMENTED_NOTIFICATION_MEMBERS[member], "5.2.14")
        if member not in _NOTIFICATION_MEMBERS:
            raise bad_data(f"notification has no member {member[:60]!r}; use endpoint, format and "
                           "attributes.")
    for member in endpoint:
        if member not in ("uri", "accept", "receiverInfo", "notifierInfo"):
            raise not_implemented(f"notification.endpoint.{member[:60]}", "5.2.15",
                                  "The endpoint takes uri, accept, receiverInfo and notifierInfo.")
    fmt = value.get("format", "normalized")
    if fmt == "concise":
        raise not_implemented("Concise notifications (format=concise)", "5.2.14",
                              "Use format normalized or keyValues.")
    if fmt not in ("normalized", "keyValues", "simplified"):
        raise bad_data("notification.format must be normalized or keyValues.")
    out["format"] = "keyValues" if fmt == "simplified" else fmt
    if "attributes" in value:
        attributes = value["attributes"]
        if not isinstance(attributes, list) or not attributes:
            raise bad_data("notification.attributes must be a non-empty list of attribute names.")
        out["attributes"] = [ctx.expand(check_name(name, "notification.attributes item"))
                             for name in attributes]
    return out


#: Headers the broker writes itself: receiverInfo may not replace them.
_RESERVED_HEADERS = frozenset({"content-type", "content-length", "link", "ngsild-tenant", "host",
                               "transfer-encoding", "connection"})


def _key_value_pairs(pairs, member: str) -> list[dict]:
    """A KeyValuePair array (clause 5.2.15): [{"key": "...", "value": "..."}, ...]."""
    example = '[{"key": "X-Course", "value": "SSCity"}]'
    if not isinstance(pairs, list) or not pairs or not all(
            isinstance(pair, dict) and set(pair) == {"key", "value"} and isinstance(pair["key"], str)
            and isinstance(pair["value"], str) for pair in pairs):
        raise bad_data(f"notification.endpoint.{member} must be a non-empty list of "
                       f"{{\"key\": ..., \"value\": ...}} strings (KeyValuePair, clause 5.2.15), "
                       f"e.g. {example}.")
    return [{"key": pair["key"], "value": pair["value"]} for pair in pairs]


def _check_receiver_info(pairs, uri: str) -> list[dict]:
    """receiverInfo: sent as HTTP headers, or in an MQTT message's metadata."""
    pairs = _key_value_pairs(pairs, "receiverInfo")
    if uri.startswith(INBOX_SCHEME):
        raise bad_data("receiverInfo goes with http(s) and mqtt endpoints; an inbox keeps only the "
                       "notification.")
    for pair in pairs:
        if not re.match(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$", pair["key"]) or \
                re.search(r"[\x00-\x1f\x7f]", pair["value"]) or len(pair["value"]) > 1024:
            raise bad_data(f"receiverInfo key {pair['key'][:64]!r} must be a header name (letters, digits, "
                           "'-') with a value of at most 1024 printable characters.")
        if pair["key"].lower() in _RESERVED_HEADERS:
            raise bad_data(f"receiverInfo cannot set {pair['key']!r}: the broker writes it itself.")
    return pairs


def _check_notifier_info(pairs, uri: str) -> list[dict]:
    """notifierInfo: MQTT-QoS and MQTT-Version of an mqtt:// endpoint (MQTT binding annex)."""
    pairs = _key_value_pairs(pairs, "notifierInfo")
    if not uri.startswith("mqtt://"):
        raise bad_data("notifierInfo (MQTT-QoS, MQTT-Version) sets up an MQTT connection; this endpoint is "
                       "not mqtt://.")
    for pair in pairs:
        key, value = pair["key"], pair["value"]
        if key == "MQTT-QoS" and value in ("0", "1", "2"):
            continue
        if key == "MQTT-Version" and value in MQTT_VERSIONS:
            continue
        raise bad_data(f"notifierInfo {key[:64]!r}: {value[:40]!r} is not understood; use MQTT-QoS "
                       f"\"0\", \"1\" or \"2\", and MQTT-Version "
                       f"{' or '.join(repr(v) for v in MQTT_VERSIONS)}.")
    return pairs


def _expand_triggers(triggers: list | None) -> frozenset[str]:
    """The triggers of a subscription, entityUpdated spelt out as its three attribute events."""
    if triggers is None:
        return DEFAULT_TRIGGERS
    expanded = set(triggers)
    if "entityUpdated" in expanded:
        expanded |= _ENTITY_UPDATED
    return frozenset(expanded)


def _triggered(sub: _Subscription, change: _Change) -> bool:
    """Whether ``change`` is an event ``sub`` listens to, on an attribute it watches (5.2.12)."""
    if change.entity_event is not None:
        if not (sub.hears_creation if change.entity_event == "entityCreated"
                else change.entity_event in sub.triggers):
            return False
        # Created or deleted with all its attributes: a watched attribute must be among them
        # (an entity created without attributes is heard by subscriptions that watch none).
        return sub.watched is None or not sub.watched.isdisjoint(change.entity.attrs)
    names = {name for name, event in change.events if event in sub.triggers}
    return bool(names) and (sub.watched is None or not sub.watched.isdisjoint(names))


def _subscription_matches(sub: _Subscription, entity: Entity) -> bool:
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
    if sub.q is not None and not sub.q(entity.attrs):
        return False
    if sub.geo is not None:
        geometry = _geometry_of(entity.attrs.get(sub.geo.geoproperty))
        if geometry is None or not sub.geo.matches(geometry):
            return False
    return True
