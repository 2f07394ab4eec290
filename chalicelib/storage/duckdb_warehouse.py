"""The embedded warehouse: one DuckDB file with the same tables as BigQuery.

DuckDB is a development dependency only: this module is imported by the local
backend, never by the Lambda package.
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from chalicelib.ingest.events import StoredEvent, parse_timestamp
from chalicelib.reports import queries
from chalicelib.storage import catalog, segment_catalog
from chalicelib.storage.schema import (
    DEAD_LETTERS,
    DELETIONS,
    EVENTS,
    REPORT_ANSWERS,
    TABLES,
    Table,
    duckdb_ddl,
    duckdb_migration,
)
from chalicelib.storage.warehouse_health import Backoff, WarehouseDown, WarehouseFault
from chalicelib.storage.writer import DeadLetter, RowRejection, TransientWarehouseError

log = logging.getLogger("dalet.warehouse")

# DuckDB invalidates the whole database after these (a failed checkpoint, an internal error): the
# connection is useless until reopened. ConnectionException: another thread closed it for that reason.
FATAL_ERRORS = (duckdb.FatalException, duckdb.InternalException, duckdb.ConnectionException)
# A statement failed but the database is intact (a full disk refusing a commit or a spill).
PASSING_ERRORS = (duckdb.IOException, duckdb.OutOfMemoryException, duckdb.TransactionException)
DUCKDB_CHECKPOINT_MB = 16    # DuckDB's own default checkpoint_threshold

_ARROW_TYPES = {
    "STRING": pa.string(),
    "FLOAT64": pa.float64(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "BYTES": pa.binary(),
    "JSON": pa.string(),
}


def arrow_schema(table: Table) -> pa.Schema:
    return pa.schema([
        pa.field(column.name, _ARROW_TYPES[column.type], nullable=not column.required)
        for column in table.columns
    ])


_EVENTS_SCHEMA = arrow_schema(EVENTS)
# StoredEvent's fields are the events table's columns, in order (tested), so rows transpose into columns.


def events_to_arrow(events: Sequence[StoredEvent]) -> pa.Table:
    columns = zip(*events, strict=True) if events else [[] for _ in EVENTS.columns]
    arrays = [pa.array(column, type=field.type) for column, field in zip(columns, _EVENTS_SCHEMA, strict=True)]
    return pa.Table.from_arrays(arrays, schema=_EVENTS_SCHEMA)


_DEAD_LETTERS_SCHEMA = arrow_schema(DEAD_LETTERS)


def letters_to_arrow(letters: Sequence[DeadLetter]) -> pa.Table:
    columns = {name: [getattr(letter, name) for letter in letters] for name in DEAD_LETTERS.column_names}
    return pa.Table.from_pydict(columns, schema=_DEAD_LETTERS_SCHEMA)


def _rebuild_experiment(cursor: duckdb.DuckDBPyConnection, *, namespace: str, experiment: str) -> None:
    catalog.rebuild(cursor, _utc_now(), namespace, experiment)


def _first_copy_of_each_identity(events: Sequence[StoredEvent]) -> Sequence[StoredEvent]:
    """The earliest copy (in stream order) of each event_id: the one that sets its first day."""
    firsts: dict[str, StoredEvent] = {}
    for stored in events:
        firsts.setdefault(stored.event_id, stored)
    return events if len(firsts) == len(events) else list(firsts.values())


class DuckDBWarehouse:
    """Thread-safe: writes are serialised; reads use their own cursor."""

    dialect = "duckdb"
    # The primary key stores each identity once, so COUNT(*) equals COUNT(DISTINCT uuid).
    unique_identities = True
    # The experiment catalog is maintained with every batch (chalicelib/storage/catalog.py).
    live_catalog = True

    def __init__(self, path: Path | str, reopen: Backoff = Backoff(), checkpoint_mb: int = DUCKDB_CHECKPOINT_MB,
                 on_fault: Callable[[WarehouseFault | None], None] | None = None):
        """Open the file (an error here is raised as is); `reopen` paces reopening after a fatal error,
        `on_fault` hears each fault and the recovery (None)."""
        self.path = str(path)
        self._reopen = reopen
        self._checkpoint_mb = checkpoint_mb
        self._on_fault = on_fault
        self._write_lock = threading.RLock()    # also held to take the connection down and to reopen it
        self._fault: WarehouseFault | None = None
        self._failures = 0                       # faults since the last successful write
        self._next_attempt = 0.0                 # time.monotonic() of the next reopening attempt
        self._closed = False
        # Tombstoned experiments whose catalog rows a failed rebuild left as they were (see insert_deletion);
        # kept across reopenings.
        self._catalog_unrebuilt: set[tuple[str, str]] = set()
        self._db: duckdb.DuckDBPyConnection | None = self._open()

    def _open(self) -> duckdb.DuckDBPyConnection:
        db = duckdb.connect(self.path)
        try:
            db.execute("SET TimeZone='UTC'")
            db.execute(f"SET checkpoint_threshold='{int(self._checkpoint_mb)}MiB'")
            for table in TABLES:
                db.execute(duckdb_ddl(table))
                self._migrate(db, table)
            self._ensure_catalog(db)
            # This process is the file's only writer, so it can keep the tombstones in memory.
            self._deleted_until: dict[tuple[str, str], datetime] = {
                (namespace, experiment): deleted_at for namespace, experiment, deleted_at in db.execute(
                    f"SELECT namespace, experiment, MAX(deleted_at) FROM {DELETIONS.name} GROUP BY ALL").fetchall()
            }
        except BaseException:
            db.close()
            raise
        # Tombstoned experiments whose hidden rows may still be stored (see _purge_before_reuse).
        self._maybe_unpurged: set[tuple[str, str]] = set(self._deleted_until)
        return db

    @staticmethod
    def _ensure_catalog(db: duckdb.DuckDBPyConnection) -> None:
        """Create the experiment and Segment catalogs; a data folder written before either existed is backfilled
        from its events."""
        if not catalog.duckdb_tables_exist(db):
            catalog.rebuild(db, _utc_now(), create=True)
        if not segment_catalog.duckdb_tables_exist(db):
            segment_catalog.rebuild(db, create=True)

    @property
    def fault(self) -> WarehouseFault | None:
        """Why the warehouse is down, or None while it is up."""
        return self._fault

    def _connection(self) -> duckdb.DuckDBPyConnection:
        """The open connection; while down, reopen it if the backoff allows, else raise WarehouseDown."""
        db = self._db
        if db is not None:
            return db
        with self._write_lock:
            if self._db is None:
                self._db = self._reopened()
            return self._db

    def _reopened(self) -> duckdb.DuckDBPyConnection:
        if self._closed or self._fault is None:     # no fault: closed, not taken down
            raise WarehouseDown(WarehouseFault(_utc_now(), "the warehouse is closed", _utc_now()))
        if time.monotonic() < self._next_attempt:
            raise WarehouseDown(self._fault)
        try:
            db = self._open()
        except Exception as error:  # noqa: BLE001 - whatever stops the reopening, retry later
            log.warning("could not reopen the warehouse %s: %s", self.path, _cause(error))
            raise self._failed(self._fault.since, error) from error
        log.warning("reopened the warehouse %s, down since %s", self.path, f"{self._fault.since:%H:%M:%S} UTC")
        self._fault = None
        if self._on_fault is not None:
            self._on_fault(None)
        return db

    def _take_down(self, db: duckdb.DuckDBPyConnection, error: Exception) -> WarehouseDown:
        """Close the connection `error` came from (once, if it is still the current one); the error to raise."""
        with self._write_lock:
            if self._db is not db:     # another thread took it down already, or reopened it since
                return WarehouseDown(self._fault or WarehouseFault(_utc_now(), _cause(error), _utc_now()))
            self._db = None
            try:
                db.close()
            except duckdb.Error:
                pass
            down = self._failed(_utc_now(), error)
            log.error("the warehouse %s failed and is closed until reopened: %s", self.path, down)
            return down

    def _failed(self, since: datetime, error: Exception) -> WarehouseDown:
        """Count a failure and schedule the next reopening attempt; the WarehouseDown to raise."""
        self._failures += 1
        delay = self._reopen.delay(self._failures)
        self._next_attempt = time.monotonic() + delay
        self._fault = WarehouseFault(since, _cause(error), _utc_now() + timedelta(seconds=delay))
        if self._on_fault is not None:
            self._on_fault(self._fault)
        return WarehouseDown(self._fault)

    @contextmanager
    def _guarded(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The connection; a fatal error under it takes the connection down and is raised as WarehouseDown."""
        db = self._connection()
        try:
            yield db
        except FATAL_ERRORS as error:
            raise self._take_down(db, error) from error

    @staticmethod
    def _migrate(db: duckdb.DuckDBPyConnection, table: Table) -> None:
        """Bring a table an older Dalet wrote up to today's schema, keeping its rows."""
        existing = {name: nullable == "YES" for name, nullable in db.execute(
            "SELECT column_name, is_nullable FROM information_schema.columns WHERE table_name = ?",
            [table.name]).fetchall()}
        for statement in duckdb_migration(table, existing):
            db.execute(statement)

    def close(self) -> None:
        with self._write_lock:
            self._closed = True
            if self._db is not None:
                self._db.close()
                self._db = None

    def insert_events(self, events: Sequence[StoredEvent]) -> list[RowRejection]:
        with self._write_lock:
            # Tombstones first, then one copy per identity (the primary key). A copy that a
            # deletion already hides (acknowledged before the delete, written after) is not
            # stored: kept, it would hold its identity and swallow the copy tracked after the
            # deletion, which must count from zero. Deduping first would do the same harm
            # when both copies share a batch.
            self._rebuild_catalog_left()
            visible = [stored for stored in events if not self._hidden(stored)] if self._deleted_until else events
            firsts = _first_copy_of_each_identity(visible)
            if firsts:
                self._purge_before_reuse(firsts)
                rows = events_to_arrow(firsts)
                stored = rows if self._insert_arrow(EVENTS.name, rows) else self._stored_copies(rows)
                self._catalog_write(lambda cursor: _record_in_catalogs(cursor, stored))
        return []

    def _catalog_write(self, write: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
        """Run a catalog update on its own cursor; a failure that passes is a transient one (the batch is
        retried, and the catalog's writes are idempotent)."""
        with self._write_lock, self._guarded() as db:
            cursor = db.cursor()
            try:
                write(cursor)
            except PASSING_ERRORS as error:
                raise TransientWarehouseError(f"DuckDB could not update the experiment catalog: {error}") from error
            finally:
                cursor.close()

    def _purge_before_reuse(self, events: Sequence[StoredEvent]) -> None:
        """Remove the rows a tombstone hides before its experiment takes new rows.

        Deleting an experiment purges them at once, but if that purge failed (a full disk)
        a hidden row would hold its identity and swallow the copy tracked after the
        deletion. Checked once per tombstone; a failure here raises, so the batch is retried.
        """
        if not self._maybe_unpurged:
            return
        target = queries.Target(self.dialect, queries.DUCKDB_TABLES, self.unique_identities)
        for key in self._maybe_unpurged & {(stored.namespace, stored.experiment) for stored in events}:
            purge = queries.purge_deleted(target, *key, self._deleted_until[key])
            try:
                self.execute(purge.sql, purge.params)
            except (duckdb.IOException, duckdb.OutOfMemoryException, duckdb.TransactionException) as error:
                raise TransientWarehouseError(f"DuckDB could not purge deleted rows: {error}") from error
            self._maybe_unpurged.discard(key)

    def _hidden(self, stored: StoredEvent) -> bool:
        if stored.experiment is None:   # a deletion names its experiment
            return False
        deleted_at = self._deleted_until.get((stored.namespace, stored.experiment))
        return deleted_at is not None and stored.received_at <= deleted_at

    def insert_deletion(self, row: Mapping[str, Any]) -> None:
        """Record a tombstone (`deletion_id`, `namespace`, `experiment`, `deleted_at` as ISO text)."""
        deleted_at = parse_timestamp(row["deleted_at"])
        target = queries.Target(self.dialect, queries.DUCKDB_TABLES, self.unique_identities)
        record = queries.record_deletion(target, row["deletion_id"], row["namespace"], row["experiment"], deleted_at)
        key = (row["namespace"], row["experiment"])
        with self._write_lock:
            self.execute(record.sql, record.params)
            self._deleted_until[key] = max(deleted_at, self._deleted_until.get(key, deleted_at))
            self._maybe_unpurged.add(key)
            self._catalog_unrebuilt.add(key)
            self._rebuild_catalog_left()

    def _rebuild_catalog_left(self) -> None:
        """Rebuild the catalog rows of the experiments deleted since their last rebuild: a rebuild that failed
        (the tombstone holds) is tried again with the next write, so the list stops showing the experiment."""
        for namespace, experiment in sorted(self._catalog_unrebuilt):
            self._catalog_write(functools.partial(_rebuild_experiment, namespace=namespace, experiment=experiment))
            self._catalog_unrebuilt.discard((namespace, experiment))

    def insert_answer(self, row: Mapping[str, Any]) -> None:
        """Store an answer (schema.REPORT_ANSWERS), replacing the key's one begun earlier: reads want the newest.

        Not one begun later: two computations of a key overlap (a Refresh beside a slow load), and the
        older, stored last, must not take the newer's place."""
        names = REPORT_ANSWERS.column_names
        updates = ", ".join(f"{name} = excluded.{name}" for name in names if name != REPORT_ANSWERS.key)
        self.execute(f"INSERT INTO {REPORT_ANSWERS.name} ({', '.join(names)}) "
                     f"VALUES ({', '.join('?' for _ in names)}) "
                     f"ON CONFLICT ({REPORT_ANSWERS.key}) DO UPDATE SET {updates} "
                     f"WHERE excluded.stored_at >= {REPORT_ANSWERS.name}.stored_at", [row[name] for name in names])

    def insert_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        if letters:
            self._insert_arrow(DEAD_LETTERS.name, letters_to_arrow(letters))

    def _stored_copies(self, rows: pa.Table) -> pa.Table:
        """The rows whose very copy (identity and receipt) the events table holds, for the catalog.

        A later repeat of a stored identity is not stored, so it must not move the experiment's last
        seen; a redelivered copy, or a batch retried after its events were written but not its catalog
        update, is folded again (the catalog's counts are idempotent). Only batches that met a stored
        key come here, so the join over the events table is paid rarely."""
        with self._write_lock, self._guarded() as db:
            cursor = db.cursor()
            try:
                cursor.register("catalog_candidates", rows)
                return cursor.sql(
                    "SELECT c.* FROM catalog_candidates AS c\n"
                    "SEMI JOIN events AS e ON e.event_id = c.event_id AND e.received_at = c.received_at"
                ).to_arrow_table()
            except PASSING_ERRORS as error:
                raise TransientWarehouseError(f"DuckDB could not read what it stored: {error}") from error
            finally:
                cursor.close()

    def _insert_arrow(self, table_name: str, rows: pa.Table) -> bool:
        """Insert, skipping rows whose key is already stored.

        A plain INSERT is tried first: DuckDB's INSERT OR IGNORE costs several times as
        much once the table is large, and most batches hold no stored key (`insert_events`
        already keeps one copy per identity within a batch). A key conflict rolls the statement
        back, and the rows go in again with INSERT OR IGNORE. True when every row went in.
        """
        with self._write_lock, self._guarded() as db:
            cursor = db.cursor()
            try:
                cursor.register("incoming_rows", rows)
                try:
                    cursor.execute(f"INSERT INTO {table_name} BY NAME SELECT * FROM incoming_rows")
                    every_row = True
                except duckdb.ConstraintException:
                    cursor.execute(f"INSERT OR IGNORE INTO {table_name} BY NAME SELECT * FROM incoming_rows")
                    every_row = False
            except PASSING_ERRORS as error:
                # TransactionException: the commit failed, e.g. "No space left on device" writing the WAL.
                raise TransientWarehouseError(f"DuckDB could not write: {error}") from error
            finally:
                cursor.close()
            self._failures = 0
            return every_row

    def execute(self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None) -> int:
        """Run a statement that changes data (serialised with the writer); how many rows it changed."""
        with self._write_lock, self._guarded() as db:
            cursor = db.cursor()
            try:
                cursor.execute(sql, params)
                changed = cursor.fetchone() if cursor.description else None   # DML answers one row: (count,)
            finally:
                cursor.close()
            self._failures = 0
            return int(changed[0]) if changed and isinstance(changed[0], int) else 0

    def check_reachable(self, timeout: float) -> None:
        """Raise if the file cannot be queried (GET /health). `timeout`: the caller bounds the wait."""
        self.fetch("SELECT 1")

    def fetch(self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Run a read-only query; rows as dicts."""
        with self._guarded() as db:
            cursor = db.cursor()
            try:
                cursor.execute("SET TimeZone='UTC'")
                result = cursor.execute(sql, params)
                names = [column[0] for column in result.description]
                return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
            except PASSING_ERRORS as error:
                # e.g. a large query spilling to a full disk; the next one may well work.
                raise TransientWarehouseError(f"DuckDB could not read: {error}") from error
            finally:
                cursor.close()


def _record_in_catalogs(cursor: duckdb.DuckDBPyConnection, stored: pa.Table) -> None:
    """Fold the stored copies into the experiment catalog, then the Segment catalog (each idempotent, so a
    batch retried after either failed is folded again harmlessly)."""
    catalog.record_batch(cursor, stored, _utc_now())
    segment_catalog.record_batch(cursor, stored)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _cause(error: BaseException) -> str:
    """The first line of a DuckDB error (the rest repeats the original error at length)."""
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
