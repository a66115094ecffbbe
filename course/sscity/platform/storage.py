"""SQLite storage of the broker: WAL journal, one transaction per write, an R*Tree for places.

Tables::

    tenants        (name, created_at)
    entities       (pk, tenant, id, type, doc, geom, created_at, modified_at)
                   doc: the attributes as JSON, names and types expanded to IRIs
                   geom: the GeoJSON value of the `location` GeoProperty, if any
    entity_location  R*Tree (pk, min_lon, max_lon, min_lat, max_lat) of `location`
    entity_values  (pk, attr, kind, v): the scalar value of each top-level attribute, kept by
                   triggers on `entities`, so that `q` is answered from an index (see qsql.py)
    history        (instance, tenant, entity_id, attribute, observed_at, value)
                   one row per attribute instance written with observedAt
    subscriptions  (tenant, id, doc, created_at, modified_at)
    meta           (key, value): schema version, subscription change counter

Concurrency: every write runs in ``BEGIN IMMEDIATE`` (the write lock is taken before
anything is read, so a read-modify-write such as a PATCH cannot lose another writer's
update) with a busy timeout, so writers from other threads or processes queue instead of
failing. WAL lets readers run while one writer writes. A crash (even SIGKILL) rolls back
the open transaction: a batch is either wholly stored or not at all.

A ``:memory:`` store has one connection shared by all threads behind a lock (in-memory
databases cannot be shared between connections without shared-cache mode, whose table
locks do not wait). A file store gives each thread its own connection.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
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
CREATE TRIGGER IF NOT EXISTS entity_values_insert AFTER INSERT ON entities BEGIN
    INSERT OR REPLACE INTO entity_values {new_rows};
END;
CREATE TRIGGER IF NOT EXISTS entity_values_update AFTER UPDATE OF doc ON entities BEGIN
    DELETE FROM entity_values WHERE pk = OLD.pk;
    INSERT OR REPLACE INTO entity_values {new_rows};
END;
CREATE TRIGGER IF NOT EXISTS entity_values_delete AFTER DELETE ON entities BEGIN
    DELETE FROM entity_values WHERE pk = OLD.pk;
END;
CREATE INDEX IF NOT EXISTS history_by_attribute ON history (tenant, entity_id, attribute, observed_at);
CREATE TABLE IF NOT EXISTS subscriptions (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    created_at TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
""".replace("{new_rows}", index_rows_sql("NEW.doc", "NEW.pk"))


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(value) -> str:
    """Compact JSON text (UTF-8 kept as is) for the database and for responses."""
    return _ENCODER.encode(value)


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
        # In memory there is one connection: the lock serialises whole transactions on it.
        self._memory_lock = threading.RLock()
        self._shared = self._connect() if self.memory else None
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
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None,
                               check_same_thread=False, cached_statements=256)
        if not self.memory:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise RuntimeError(f"SQLite refused WAL mode for {self.path} (got {mode}); "
                                   "put the database on a local disk.")
        conn.execute("PRAGMA synchronous=NORMAL")
        # Checkpoint (copy the WAL into the database, with an fsync) every ~40 MB rather than
        # every 4 MB: batch writes run about 1.6 times faster.
        conn.execute("PRAGMA wal_autocheckpoint=10000")
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
        conn.execute("PRAGMA cache_size=-32000")  # 32 MB page cache
        conn.execute("PRAGMA temp_store=MEMORY")
        register_functions(conn)
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (the shared one for ``:memory:``)."""
        if self._shared is not None:
            return self._shared
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any error)."""
        with self._memory_lock if self.memory else contextlib.nullcontext():
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
        """A connection for reading (under the lock for ``:memory:``)."""
        if self.memory:
            with self._memory_lock:
                yield self._shared
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
