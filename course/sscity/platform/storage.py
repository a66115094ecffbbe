"""SQLite storage of the broker: WAL journal, one transaction per write, an R*Tree for places.

Tables::

    tenants        (name, created_at)
    entities       (pk, tenant, id, type, doc, geom, created_at, modified_at)
                   doc: the attributes as JSON, names and types expanded to IRIs
                   geom: the GeoJSON value of the `location` GeoProperty, if any
    entity_location  R*Tree (pk, min_lon, max_lon, min_lat, max_lat) of `location`
    entity_values  (pk, attr, kind, v): the scalar value of each top-level attribute, written
                   with each entity (Store.index_values; a trigger removes them with it), so
                   that `q` is answered from an index (see qsql.py)
    history        (instance, tenant, entity_id, attribute, observed_at, value)
                   one row per attribute instance written with observedAt; ``instance`` is
                   never reused (a trigger keeps a placeholder row of tenant '#' holding the
                   highest number given), so it serves as the instanceId
    subscriptions  (tenant, id, doc, created_at, modified_at)
    meta           (key, value): schema version, subscription change counter

Concurrency: every write runs in ``BEGIN IMMEDIATE`` (the write lock is taken before
anything is read, so a read-modify-write such as a PATCH cannot lose another writer's
update) with a busy timeout, so writers from other threads or processes queue instead of
failing. WAL lets readers run while one writer writes. A crash (even SIGKILL) rolls back
the open transaction: a batch is either wholly stored or not at all.

Each thread has its own connection. A ``:memory:`` store is an in-memory database of SQLite's
``memdb`` VFS under a unique name, which every connection of this process can open (not
shared-cache mode, whose table locks do not wait); it lives as long as the store. Without
WAL, a writer there excludes readers, so a readers-writer lock of this process orders them:
reads run side by side, a write runs alone, and a waiting writer keeps new readers out.

Inside :meth:`Store.inline` (the HTTP server's event-loop thread answering a cheap request
itself), nothing may wait or run long: a read that would wait for a ``:memory:`` writer, any
write, and a document over :data:`INLINE_MAX_BYTES` raise :class:`WouldBlock`, and the
caller runs the request in a worker thread instead.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from .qsql import index_rows_sql, register_functions

SCHEMA_VERSION = "2"  # 2: entity_values (databases of version 1 are indexed when first opened)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tenants (name TEXT PRIMARY KEY, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entities (
    pk INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    doc TEXT NOT NULL,
    geom TEXT,
    created_at TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    UNIQUE (tenant, id)
);
CREATE INDEX IF NOT EXISTS entities_by_type ON entities (tenant, type);
CREATE VIRTUAL TABLE IF NOT EXISTS entity_location USING rtree (pk, min_lon, max_lon, min_lat, max_lat);
CREATE TABLE IF NOT EXISTS history (
    instance INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    attribute TEXT NOT NULL,
    observed_at TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entity_values (
    pk INTEGER NOT NULL,
    attr TEXT NOT NULL,
    kind TEXT NOT NULL,
    v,
    PRIMARY KEY (pk, attr)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entity_values_by_value ON entity_values (attr, kind, v);
-- Inserts and updates write their rows themselves (Store.index_values, from the attributes in
-- memory: SQLite re-parsing each stored document in a trigger halved batch writes); databases
-- written by a version that kept them with triggers lose those triggers here.
DROP TRIGGER IF EXISTS entity_values_insert;
DROP TRIGGER IF EXISTS entity_values_update;
CREATE TRIGGER IF NOT EXISTS entity_values_delete AFTER DELETE ON entities BEGIN
    DELETE FROM entity_values WHERE pk = OLD.pk;
END;
CREATE INDEX IF NOT EXISTS history_by_attribute ON history (tenant, entity_id, attribute, observed_at);
-- An instance's number is its instanceId (urn:ngsi-ld:instance:<n>), so a number must never be
-- given twice. SQLite gives a new row max(rowid)+1, which would reuse the number of a deleted
-- newest instance; when the newest rows are deleted this trigger leaves one placeholder row
-- (tenant '#', which no tenant name can be: '' is the default tenant) holding the highest
-- number given so far.
CREATE TRIGGER IF NOT EXISTS history_keeps_instance_numbers AFTER DELETE ON history
WHEN old.tenant <> '#' AND NOT EXISTS (SELECT 1 FROM history WHERE instance > old.instance)
BEGIN
    DELETE FROM history WHERE tenant = '#';
    INSERT INTO history (instance, tenant, entity_id, attribute, observed_at, value)
    VALUES (old.instance, '#', '', '', '', 'null');
END;
CREATE TABLE IF NOT EXISTS subscriptions (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    created_at TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
"""


#: Largest stored document (bytes of JSON) a request answered inline may decode and render:
#: about 0.1 ms of work. A larger one goes to a worker thread, so no big entity can stall the
#: event loop behind the label of a cheap GET.
INLINE_MAX_BYTES = 16 * 1024


class WouldBlock(Exception):
    """Inside :meth:`Store.inline`: the operation would wait for a lock or work too long."""


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

try:  # about 9 times faster than json's encoder, and it holds the GIL for that much less
    from orjson import dumps as _fast_dumps
except ImportError:  # pragma: no cover - orjson is a dependency; this keeps a bare checkout working
    _fast_dumps = None


def dumps(value) -> str:
    """Compact JSON text (UTF-8 kept as is) for the database and for responses."""
    text = _fast(value)
    return text.decode("utf-8") if text is not None else _ENCODER.encode(value)


def dumps_bytes(value) -> bytes:
    """:func:`dumps` encoded as UTF-8 (what a response body needs, without a copy through str)."""
    text = _fast(value)
    return text if text is not None else _ENCODER.encode(value).encode("utf-8")


def _fast(value) -> bytes | None:
    """orjson's encoding of ``value``, or None where it would differ from :mod:`json`'s.

    orjson writes the same compact JSON (floats in the shortest form that reads back as the
    same number, e.g. ``1e-7`` where json writes ``1e-07``). What it refuses (integers beyond
    64 bits, non-string keys, lone surrogates) and the non-finite floats it would write as
    ``null`` are left to :mod:`json`, which keeps them as they were.
    """
    if _fast_dumps is None:
        return None
    try:
        text = _fast_dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return None
    if b"null" in text and _has_nonfinite(value):
        return None
    return text


def _has_nonfinite(value) -> bool:
    """Whether a float NaN or infinity is anywhere in ``value`` (orjson writes them as null)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


class _ReadWriteLock:
    """Many readers or one writer, for the threads of an in-memory store; re-entrant per thread.

    SQLite's own locks would keep the same order, but whoever finds the database busy polls
    it with growing sleeps (up to 100 ms each); this lock wakes the waiters as soon as the
    holder is done. A waiting writer keeps new readers out, so a stream of reads cannot starve
    it. A thread that holds it may read or write again (a write inside its own write, a read
    inside either); a write inside its own read would wait for itself, and is refused.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0
        self._local = threading.local()  # held: nesting depth; writer: whether it writes

    @contextlib.contextmanager
    def reading(self, blocking: bool = True) -> Iterator[None]:
        """Hold the lock shared; WouldBlock instead of waiting if not ``blocking``."""
        local = self._local
        if getattr(local, "held", 0):
            local.held += 1
            try:
                yield
            finally:
                local.held -= 1
            return
        with self._cond:
            while self._writing or self._writers_waiting:
                if not blocking:
                    raise WouldBlock("a writer has or waits for the in-memory database")
                self._cond.wait()
            self._readers += 1
        local.held, local.writer = 1, False
        try:
            yield
        finally:
            local.held = 0
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the lock alone."""
        local = self._local
        if getattr(local, "held", 0):
            if not local.writer:
                raise RuntimeError("a write inside a read of the same thread (in-memory store) would "
                                   "wait for itself; finish the read first")
            local.held += 1
            try:
                yield
            finally:
                local.held -= 1
            return
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
        local.held, local.writer = 1, True
        try:
            yield
        finally:
            local.held, local.writer = 0, False
            with self._cond:
                self._writing = False
                self._cond.notify_all()


class Store:
    """The broker's SQLite database.

    Parameters
    ----------
    path : str or Path
        A database file (created if missing) or ``":memory:"``.
    busy_timeout_s : float
        How long a writer waits for another writer's transaction before giving up.
    """

    def __init__(self, path: str | Path = ":memory:", busy_timeout_s: float = 30.0):
        self.path = str(path)
        self.memory = self.path == ":memory:"
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        # A memdb database named with "/" is shared by the connections of this process, and
        # freed with the last one: this one keeps it for the store's life.
        self._uri = f"file:/sscity-{uuid.uuid4().hex}?vfs=memdb" if self.memory else None
        self._keeper = self._connect() if self.memory else None
        self._rw = _ReadWriteLock() if self.memory else None
        # Every statement of the schema is idempotent (IF NOT EXISTS), so concurrent openers agree.
        with self.read() as conn:
            conn.executescript(_SCHEMA)
        with self.write() as conn:
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('subscriptions_version', '0')")
            # A database of schema 1 has entities but no entity_values rows: index them once, in
            # this write transaction (its lock makes concurrent openers wait, then see version 2).
            version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
            if version == "1":
                conn.execute("DELETE FROM entity_values")
                conn.execute("INSERT OR REPLACE INTO entity_values "
                             + index_rows_sql("e.doc", "e.pk", source="entities e, "))
                conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (SCHEMA_VERSION,))

    def _connect(self) -> sqlite3.Connection:
        if not self.memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        busy_timeout_s = self.busy_timeout_s
        conn = sqlite3.connect(self._uri or self.path, timeout=busy_timeout_s, isolation_level=None,
                               check_same_thread=False, cached_statements=256, uri=self.memory)
        if not self.memory:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise RuntimeError(f"SQLite refused WAL mode for {self.path} (got {mode}); "
                                   "put the database on a local disk.")
        conn.execute("PRAGMA synchronous=NORMAL")
        # Checkpoint (copy the WAL into the database, with an fsync) every ~40 MB rather than
        # every 4 MB: batch writes run about 1.6 times faster.
        conn.execute("PRAGMA wal_autocheckpoint=10000")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        # A 32 MB page cache for a file. In memory the pages are in RAM already, and each thread's
        # connection would copy them into its own cache: 2 MB each (SQLite's default).
        conn.execute(f"PRAGMA cache_size={-2000 if self.memory else -32000}")
        conn.execute("PRAGMA temp_store=MEMORY")
        register_functions(conn)
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    @contextlib.contextmanager
    def inline(self) -> Iterator[None]:
        """Within this block, this thread's reads never wait and its writes are refused.

        For the event-loop thread of the HTTP server, which answers cheap requests itself: an
        operation that would wait (for the ``:memory:`` lock, or a write for SQLite's write
        lock) or decode a document over :data:`INLINE_MAX_BYTES` raises :class:`WouldBlock`
        instead, and the request is run again in a worker thread.
        """
        self._local.inline = True
        try:
            yield
        finally:
            self._local.inline = False

    def _inline(self) -> bool:
        return getattr(self._local, "inline", False)

    def afford(self, nbytes: int) -> None:
        """Raise :class:`WouldBlock` if this thread is :meth:`inline` and ``nbytes`` is over the budget."""
        if nbytes > INLINE_MAX_BYTES and self._inline():
            raise WouldBlock(f"a document of {nbytes} bytes")

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any error)."""
        if self._inline():
            raise WouldBlock("a write")
        with self._rw.writing() if self._rw is not None else contextlib.nullcontext():
            conn = self.connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, for reading (beside other readers, in memory)."""
        if self._rw is not None:
            with self._rw.reading(blocking=not self._inline()):
                yield self.connection()
        else:
            yield self.connection()

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._connections_lock:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- entities (call inside write() / read()) ---------------------------------------

    @staticmethod
    def get_entity(conn, tenant: str, entity_id: str):
        """(pk, type, doc, created_at, modified_at) of an entity, or None."""
        return conn.execute("SELECT pk, type, doc, created_at, modified_at FROM entities "
                            "WHERE tenant=? AND id=?", (tenant, entity_id)).fetchone()

    @staticmethod
    def insert_entity(conn, tenant: str, entity_id: str, entity_type: str, doc: str,
                      geometry: dict | None, box, created_at: str, modified_at: str) -> int:
        """Insert an entity and its R*Tree box; returns its pk."""
        pk = conn.execute(
            "INSERT INTO entities (tenant, id, type, doc, geom, created_at, modified_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (tenant, entity_id, entity_type, doc, dumps(geometry) if geometry else None, created_at,
             modified_at)).lastrowid
        if box is not None:
            conn.execute("INSERT INTO entity_location VALUES (?, ?, ?, ?, ?)", (pk, *box))
        return pk

    @staticmethod
    def index_values(conn, rows: list[tuple], replaced: list[int] = ()) -> None:
        """Write entity_values rows (``qsql.index_rows``), first removing those of ``replaced`` pks."""
        if replaced:
            conn.executemany("DELETE FROM entity_values WHERE pk=?", [(pk,) for pk in replaced])
        if rows:
            conn.executemany("INSERT OR REPLACE INTO entity_values VALUES (?, ?, ?, ?)", rows)

    @staticmethod
    def update_entity(conn, pk: int, entity_type: str, doc: str, geometry: dict | None, box,
                      modified_at: str) -> None:
        """Replace an entity's type, attributes and location box."""
        conn.execute("UPDATE entities SET type=?, doc=?, geom=?, modified_at=? WHERE pk=?",
                     (entity_type, doc, dumps(geometry) if geometry else None, modified_at, pk))
        conn.execute("DELETE FROM entity_location WHERE pk=?", (pk,))
        if box is not None:
            conn.execute("INSERT INTO entity_location VALUES (?, ?, ?, ?, ?)", (pk, *box))

    @staticmethod
    def delete_entity(conn, tenant: str, pk: int, entity_id: str) -> None:
        """Remove an entity, its location box and its history."""
        conn.execute("DELETE FROM entities WHERE pk=?", (pk,))
        conn.execute("DELETE FROM entity_location WHERE pk=?", (pk,))
        conn.execute("DELETE FROM history WHERE tenant=? AND entity_id=?", (tenant, entity_id))

    @staticmethod
    def add_history(conn, rows: list[tuple]) -> None:
        """Append (tenant, entity_id, attribute, observed_at, value_json) instances."""
        if rows:
            conn.executemany("INSERT INTO history (tenant, entity_id, attribute, observed_at, value) "
                             "VALUES (?, ?, ?, ?, ?)", rows)

    # -- tenants and subscriptions -----------------------------------------------------

    def tenants(self) -> list[str]:
        """Every tenant that exists in the database."""
        with self.read() as conn:
            return [row[0] for row in conn.execute("SELECT name FROM tenants")]

    @staticmethod
    def subscriptions_version(conn) -> str:
        """A counter bumped by every subscription change (also by other processes)."""
        return conn.execute("SELECT value FROM meta WHERE key='subscriptions_version'").fetchone()[0]

    @staticmethod
    def bump_subscriptions_version(conn) -> None:
        """Record that subscriptions changed, so every broker on this file reloads them."""
        conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='subscriptions_version'")
