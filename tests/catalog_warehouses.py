"""Warehouses for the catalog tests: BigQuery's storage on DuckDB, and any warehouse with its catalog hidden."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, Sequence

import duckdb

from chalicelib.ingest.events import StoredEvent, parse_timestamp
from chalicelib.reports import queries
from chalicelib.storage import catalog, segment_catalog
from chalicelib.storage.duckdb_warehouse import events_to_arrow
from chalicelib.storage.schema import DELETIONS, EVENTS, Table
from chalicelib.storage.writer import RowRejection

_TYPES = {
    "STRING": "VARCHAR",
    "FLOAT64": "DOUBLE",
    "TIMESTAMP": "TIMESTAMPTZ",
    "BYTES": "BLOB",
    "JSON": "JSON",
    "INT64": "BIGINT",
}


def _keyless_ddl(table: Table) -> str:
    return f"CREATE TABLE {table.name} ({', '.join(f'{c.name} {_TYPES[c.type]}' for c in table.columns)})"


class AppendOnlyWarehouse:
    """BigQuery's storage, run on DuckDB: every received copy is a row (no key), the writer appends the
    batch's catalog rows (catalog.catalog_rows, and the Segment catalog's segment_catalog.exposure_rows and
    link_rows), tombstones are rows, and the reports run BigQuery's query text as transpiled for DuckDB,
    with BigQuery's distinct counting and snapshot catalog."""

    dialect = queries.DUCKDB
    unique_identities = False
    live_catalog = False

    def __init__(self, dedupe: bool = True) -> None:
        self.now: datetime | None = None  # when the next batch is written
        self.dedupe = dedupe  # False: BigQuery's best-effort deduplication missed every repeated insertId
        self.db = duckdb.connect()
        self.db.execute("SET TimeZone='UTC'")
        for table in (EVENTS, DELETIONS, *catalog.CATALOG_TABLES, *segment_catalog.SEGMENT_CATALOG_TABLES):
            self.db.execute(_keyless_ddl(table))
        # BigQuery's pseudo column of an ingestion-time partitioned table: the day the row was written.
        for table in ("experiment_firsts", "segment_exposures", "segment_links"):
            self.db.execute(f"ALTER TABLE {table} ADD COLUMN _PARTITIONTIME TIMESTAMPTZ")
        self.appended_ids: set[str] = set()     # insertIds of the Segment catalog rows BigQuery deduplicated

    def insert_events(self, events: Sequence[StoredEvent]) -> list[RowRejection]:
        if events:
            self.db.register("incoming_rows", events_to_arrow(events))
            self.db.execute("INSERT INTO events BY NAME SELECT * FROM incoming_rows")
            self.db.unregister("incoming_rows")
        # The partition is the day of the write: `now` if the test keeps a clock, else the batch's last receipt.
        written = self.now or max((stored.received_at for stored in events), default=None)
        for row in catalog.catalog_rows(events):
            self.db.execute(
                "INSERT INTO experiment_firsts BY NAME SELECT * FROM (SELECT ? AS namespace, "
                "? AS experiment, ? AS variant, ? AS event, ? AS uuid, ? AS first_at, ? AS last_at, "
                "DATE_TRUNC('day', ?::TIMESTAMPTZ) AS _PARTITIONTIME)",
                [
                    row["namespace"],
                    row["experiment"],
                    row["variant"],
                    row["event"],
                    row["uuid"],
                    row["first_at"],
                    row["last_at"],
                    written,
                ],
            )
        self._append_segment_rows(events, written)
        return []

    def _append_segment_rows(self, events: Sequence[StoredEvent], written: datetime | None) -> None:
        """The Segment catalog's rows as BigQuery keeps them: a row whose insertId it has seen is dropped (its
        deduplication is best effort; the queries must not need it, and the tests redeliver the same rows)."""
        for table, rows, row_id in (
            ("segment_exposures", segment_catalog.exposure_rows(events), segment_catalog.exposure_row_id),
            ("segment_links", segment_catalog.link_rows(events), segment_catalog.link_row_id),
        ):
            for row in rows:
                if self.dedupe and row_id(row) in self.appended_ids:
                    continue
                self.appended_ids.add(row_id(row))
                names = [*row, "_PARTITIONTIME"]
                self.db.execute(
                    f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
                    [*row.values(), written.replace(hour=0, minute=0, second=0, microsecond=0) if written else None],
                )

    def insert_deletion(self, row: Mapping[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO deletions VALUES (?, ?, ?, ?)",
            [row["deletion_id"], row["namespace"], row["experiment"], parse_timestamp(row["deleted_at"])],
        )

    def fetch(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        result = self.db.execute(sql, params)
        names = [column[0] for column in result.description]
        return [dict(zip(names, row)) for row in result.fetchall()]

    def execute(self, sql: str, params: Any = None) -> None:
        self.db.execute(sql, params)
        if self.now is not None:
            # A DML INSERT (the first compaction's backfill) is not streamed: BigQuery files its rows under
            # the day of the statement at once, not under a null _PARTITIONTIME forever.
            self.db.execute("UPDATE experiment_firsts SET _PARTITIONTIME = DATE_TRUNC('day', ?::TIMESTAMPTZ) "
                            "WHERE _PARTITIONTIME IS NULL", [self.now])

    def close(self) -> None:
        self.db.close()


class WithoutCatalog:
    """The same warehouse with its catalog hidden: every report reads history from scratch."""

    def __init__(self, warehouse: Any):
        self._warehouse = warehouse
        self.dialect = warehouse.dialect
        self.unique_identities = warehouse.unique_identities

    def fetch(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        return self._warehouse.fetch(sql, params)

    def execute(self, sql: str, params: Any = None) -> None:
        self._warehouse.execute(sql, params)
