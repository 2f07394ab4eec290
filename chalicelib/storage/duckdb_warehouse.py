"""The embedded warehouse: one DuckDB file with the same tables as BigQuery.

DuckDB is a development dependency only: this module is imported by the local
backend, never by the Lambda package.
"""
from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

import duckdb
import pyarrow as pa

from chalicelib.reports import queries
from chalicelib.ingest.events import StoredEvent, parse_timestamp
from chalicelib.storage.schema import DEAD_LETTERS, DELETIONS, EVENTS, TABLES, Table, duckdb_ddl, duckdb_migration
from chalicelib.storage.writer import DeadLetter, RowRejection, TransientWarehouseError

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
    columns = zip(*events) if events else [[] for _ in EVENTS.columns]
    return pa.Table.from_arrays([pa.array(column, type=field.type) for column, field in zip(columns, _EVENTS_SCHEMA)],
                                schema=_EVENTS_SCHEMA)


_DEAD_LETTERS_SCHEMA = arrow_schema(DEAD_LETTERS)


def letters_to_arrow(letters: Sequence[DeadLetter]) -> pa.Table:
    columns = {name: [getattr(letter, name) for letter in letters] for name in DEAD_LETTERS.column_names}
    return pa.Table.from_pydict(columns, schema=_DEAD_LETTERS_SCHEMA)


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

    def __init__(self, path: Path | str):
        self.path = str(path)
        self._db = duckdb.connect(self.path)
        self._db.execute("SET TimeZone='UTC'")
        self._write_lock = threading.RLock()
        for table in TABLES:
            self._db.execute(duckdb_ddl(table))
            self._migrate(table)
        # This process is the file's only writer, so it can keep the tombstones in memory.
        self._deleted_until: dict[tuple[str, str], datetime] = {
            (namespace, experiment): deleted_at for namespace, experiment, deleted_at in self._db.execute(
                f"SELECT namespace, experiment, MAX(deleted_at) FROM {DELETIONS.name} GROUP BY ALL").fetchall()
        }
        # Tombstoned experiments whose hidden rows may still be stored (see _purge_before_reuse).
        self._maybe_unpurged: set[tuple[str, str]] = set(self._deleted_until)

    def _migrate(self, table: Table) -> None:
        """Bring a table an older Dalet wrote up to today's schema, keeping its rows."""
        existing = {name: nullable == "YES" for name, nullable in self._db.execute(
            "SELECT column_name, is_nullable FROM information_schema.columns WHERE table_name = ?",
            [table.name]).fetchall()}
        for statement in duckdb_migration(table, existing):
            self._db.execute(statement)

    def close(self) -> None:
        with self._write_lock:
            self._db.close()

    def insert_events(self, events: Sequence[StoredEvent]) -> list[RowRejection]:
        with self._write_lock:
            # Tombstones first, then one copy per identity (the primary key). A copy that a
            # deletion already hides (acknowledged before the delete, written after) is not
            # stored: kept, it would hold its identity and swallow the copy tracked after the
            # deletion, which must count from zero. Deduping first would do the same harm
            # when both copies share a batch.
            visible = [stored for stored in events if not self._hidden(stored)] if self._deleted_until else events
            firsts = _first_copy_of_each_identity(visible)
            if firsts:
                self._purge_before_reuse(firsts)
                self._insert_arrow(EVENTS.name, events_to_arrow(firsts))
        return []

    def _purge_before_reuse(self, events: Sequence[StoredEvent]) -> None:
        """Remove the rows a tombstone hides before its experiment takes new rows.

        Deleting an experiment purges them at once, but if that purge failed (a full disk)
        a hidden row would hold its identity and swallow the copy tracked after the
        deletion. Checked once per tombstone; a failure here raises, so the batch is retried.
        """
        if not self._maybe_unpurged:
            return
        target = queries.Target(self.dialect, queries.DUCKDB_TABLES, self.unique_identities)
        for key in {(stored.namespace, stored.experiment) for stored in events} & self._maybe_unpurged:
            purge = queries.purge_deleted(target, *key, self._deleted_until[key])
            try:
                self.execute(purge.sql, purge.params)
            except (duckdb.IOException, duckdb.OutOfMemoryException, duckdb.TransactionException) as error:
                raise TransientWarehouseError(f"DuckDB could not purge deleted rows: {error}") from error
            self._maybe_unpurged.discard(key)

    def _hidden(self, stored: StoredEvent) -> bool:
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

    def insert_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        if letters:
            self._insert_arrow(DEAD_LETTERS.name, letters_to_arrow(letters))

    def _insert_arrow(self, table_name: str, rows: pa.Table) -> None:
        """Insert, skipping rows whose key is already stored.

        A plain INSERT is tried first: DuckDB's INSERT OR IGNORE costs several times as
        much once the table is large, and most batches hold no stored key (`insert_events`
        already keeps one copy per identity within a batch). A key conflict rolls the statement
        back, and the rows go in again with INSERT OR IGNORE.
        """
        with self._write_lock:
            cursor = self._db.cursor()
            try:
                cursor.register("incoming_rows", rows)
                try:
                    cursor.execute(f"INSERT INTO {table_name} BY NAME SELECT * FROM incoming_rows")
                except duckdb.ConstraintException:
                    cursor.execute(f"INSERT OR IGNORE INTO {table_name} BY NAME SELECT * FROM incoming_rows")
            except (duckdb.IOException, duckdb.OutOfMemoryException, duckdb.TransactionException) as error:
                # TransactionException: the commit failed, e.g. "No space left on device" writing the WAL.
                raise TransientWarehouseError(f"DuckDB could not write: {error}") from error
            finally:
                cursor.close()

    def execute(self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None) -> int:
        """Run a statement that changes data (serialised with the writer); how many rows it changed."""
        with self._write_lock:
            cursor = self._db.cursor()
            try:
                cursor.execute(sql, params)
                changed = cursor.fetchone() if cursor.description else None   # DML answers one row: (count,)
                return int(changed[0]) if changed and isinstance(changed[0], int) else 0
            finally:
                cursor.close()

    def fetch(self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Run a read-only query; rows as dicts."""
        cursor = self._db.cursor()
        try:
            cursor.execute("SET TimeZone='UTC'")
            result = cursor.execute(sql, params)
            names = [column[0] for column in result.description]
            return [dict(zip(names, row)) for row in result.fetchall()]
        finally:
            cursor.close()
