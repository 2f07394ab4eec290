"""The experiment catalog: what the experiment list and every per-experiment range read instead of history.

Two tables, both far smaller than `events`:

* `experiment_firsts`: one row per (namespace, experiment, variant, event, uuid) with the first and
  last time it was received. Goals a person repeats (client event ids, redeliveries) add nothing,
  and no payload column is kept. Distinct people per group stay exact: they are rows here.
* `experiment_totals`: one row per (namespace, experiment, variant, event): distinct uuids, first and
  last seen. This is what the experiment list reads: O(experiments x variants x goals).

Embedded (DuckDB): the writer maintains both in-process, in the batch's transaction order: a
group's count grows by the firsts rows a batch actually inserted (INSERT ... ON CONFLICT DO
NOTHING RETURNING), so a redelivered or repeated event never counts twice. A deletion rebuilds
the experiment's rows from its visible events; opening a data folder written before the catalog
existed builds it from the events table (a backfill, once).

BigQuery: DML on rows still in the streaming buffer is refused, so the writer only appends
firsts rows (one per group and uuid per batch, insertId = the key and its first receipt, so a
redelivered batch is deduplicated); a compaction run by the writer (`catalog_queries.compact`)
appends a snapshot of the totals with its watermark `as_of`, which the list reads. It recounts only
the experiments that got rows (or a tombstone) since the previous snapshot, found in the partitions
written since, and copies the others' rows.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

from chalicelib.ingest.events import StoredEvent
from chalicelib.storage.schema import INGESTION_TIME, Column, Table

GROUP_COLUMNS = ("namespace", "experiment", "variant", "event")

EXPERIMENT_FIRSTS = Table(
    name="experiment_firsts",
    columns=(
        Column("namespace", "STRING"),
        Column("experiment", "STRING"),
        Column("variant", "STRING"),
        Column("event", "STRING"),
        Column("uuid", "STRING"),
        Column("first_at", "TIMESTAMP"),   # the earliest receipt of this (group, uuid) in the row's batch(es)
        Column("last_at", "TIMESTAMP"),
    ),
    key="uuid",      # DuckDB: (namespace, experiment, variant, event, uuid); BigQuery: `first_row_id`
    # By write day: a compaction finds what was written since the last one in a few partitions, however
    # late a row's receipt (a replayed batch); BigQuery stores streamed rows under _PARTITIONTIME NULL
    # until it extracts them from the streaming buffer.
    partition_by=INGESTION_TIME,
    cluster_by=("namespace", "experiment"),
)

EXPERIMENT_TOTALS = Table(
    name="experiment_totals",
    columns=(
        Column("namespace", "STRING"),
        Column("experiment", "STRING"),
        Column("variant", "STRING"),
        Column("event", "STRING"),
        Column("uuids", "INT64"),
        Column("first_seen", "TIMESTAMP"),
        Column("last_seen", "TIMESTAMP"),
        Column("as_of", "TIMESTAMP"),      # the watermark: every event received before it is counted
    ),
    key="as_of",     # DuckDB: the group; BigQuery: append-only snapshots, one `as_of` each
    cluster_by=("namespace",),
)

CATALOG_TABLES = (EXPERIMENT_FIRSTS, EXPERIMENT_TOTALS)

_FIRSTS_DDL = (
    "CREATE TABLE IF NOT EXISTS experiment_firsts (namespace VARCHAR NOT NULL, experiment VARCHAR NOT NULL, "
    "variant VARCHAR NOT NULL, event VARCHAR NOT NULL, uuid VARCHAR NOT NULL, first_at TIMESTAMPTZ NOT NULL, "
    "last_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (namespace, experiment, variant, event, uuid))"
)
_TOTALS_DDL = (
    "CREATE TABLE IF NOT EXISTS experiment_totals (namespace VARCHAR NOT NULL, experiment VARCHAR NOT NULL, "
    "variant VARCHAR NOT NULL, event VARCHAR NOT NULL, uuids BIGINT NOT NULL, first_seen TIMESTAMPTZ NOT NULL, "
    "last_seen TIMESTAMPTZ NOT NULL, as_of TIMESTAMPTZ, PRIMARY KEY (namespace, experiment, variant, event))"
)

# The batch's experiment rows (AlephBet events; Segment rows have no experiment column).
_BATCH_FIRSTS = (
    "SELECT namespace, experiment, variant, event, uuid, MIN(received_at) AS first_at, MAX(received_at) AS last_at\n"
    "FROM catalog_batch\n"
    "WHERE experiment IS NOT NULL AND variant IS NOT NULL AND event IS NOT NULL AND uuid IS NOT NULL\n"
    "GROUP BY ALL"
)


def catalog_rows(events: Sequence[StoredEvent]) -> list[dict[str, Any]]:
    """BigQuery's appended firsts rows for one batch: one per (group, uuid), with its first and last receipt."""
    spans: dict[tuple[str, str, str, str, str], tuple[datetime, datetime]] = {}
    for stored in events:
        if stored.experiment is None or stored.variant is None or stored.event is None or stored.uuid is None:
            continue
        key = (stored.namespace, stored.experiment, stored.variant, stored.event, stored.uuid)
        first, last = spans.get(key, (stored.received_at, stored.received_at))
        spans[key] = (min(first, stored.received_at), max(last, stored.received_at))
    return [
        {**dict(zip((*GROUP_COLUMNS, "uuid"), key, strict=True)), "first_at": first, "last_at": last}
        for key, (first, last) in spans.items()
    ]


def first_row_id(row: dict[str, Any]) -> str:
    """BigQuery's insertId of a firsts row: its key and first receipt, so a redelivered batch's row dedupes."""
    identity = [row[name] for name in (*GROUP_COLUMNS, "uuid")] + [row["first_at"].isoformat()]
    return hashlib.sha256(json.dumps(identity, ensure_ascii=False).encode("utf-8")).hexdigest()[:32]


# ---- DuckDB: maintained in-process ---------------------------------------------------------

def duckdb_tables_exist(db: Any) -> bool:
    found = db.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_name IN (?, ?)",
                       [EXPERIMENT_FIRSTS.name, EXPERIMENT_TOTALS.name]).fetchone()[0]
    return found == len(CATALOG_TABLES)


def record_batch(cursor: Any, batch: Any, written_at: datetime) -> None:
    """Fold a batch of stored (visible) events, an Arrow table, into the catalog; one transaction.

    Idempotent: a group's count grows only by the firsts rows this batch inserted. A firsts row keeps the
    span of the batch that first saw it (updating it for every repeat would triple the writer's cost);
    the ranges reads use are the totals' first and last seen, which every batch moves.
    """
    cursor.register("catalog_batch", batch)
    try:
        with transaction(cursor):
            _record_batch(cursor, written_at)
    finally:
        with suppress(Exception):      # a database gone fatal refuses even this; the cause is raised
            cursor.unregister("catalog_batch")


def _record_batch(cursor: Any, written_at: datetime) -> None:
    inserted = cursor.sql(      # a relation: its rows come back as Arrow without a copy
        f"INSERT INTO experiment_firsts {_BATCH_FIRSTS}\nON CONFLICT DO NOTHING\n"
        "RETURNING namespace, experiment, variant, event").to_arrow_table()
    cursor.register("catalog_inserted", inserted)
    try:
        cursor.execute(
            "INSERT INTO experiment_totals\n"
            "SELECT b.namespace, b.experiment, b.variant, b.event, COALESCE(ANY_VALUE(n.uuids), 0),\n"
            "  MIN(b.first_at), MAX(b.last_at), ?\n"
            f"FROM ({_BATCH_FIRSTS}) AS b\n"
            "LEFT JOIN (SELECT namespace, experiment, variant, event, COUNT(*) AS uuids FROM catalog_inserted\n"
            "           GROUP BY ALL) AS n USING (namespace, experiment, variant, event)\n"
            "GROUP BY b.namespace, b.experiment, b.variant, b.event\n"
            "ON CONFLICT DO UPDATE SET uuids = experiment_totals.uuids + excluded.uuids,\n"
            "  first_seen = LEAST(experiment_totals.first_seen, excluded.first_seen),\n"
            "  last_seen = GREATEST(experiment_totals.last_seen, excluded.last_seen), as_of = excluded.as_of",
            [written_at])
    finally:
        cursor.unregister("catalog_inserted")


def rebuild(cursor: Any, written_at: datetime, namespace: str | None = None, experiment: str | None = None,
            create: bool = False) -> None:
    """Rebuild the catalog rows of one experiment (after a deletion) or of all (the backfill) from the
    visible events: those no tombstone hides. One transaction, which first creates the tables if `create`
    (so a backfill interrupted half-way is begun again on the next opening)."""
    where, params = ("WHERE namespace = ? AND experiment = ?", [namespace, experiment]) if experiment is not None \
        else ("", [])
    visible = (
        "SELECT e.namespace, e.experiment, e.variant, e.event, e.uuid, MIN(e.received_at), MAX(e.received_at)\n"
        "FROM events AS e\n"
        "LEFT JOIN (SELECT namespace, experiment, MAX(deleted_at) AS deleted_at FROM deletions GROUP BY ALL) AS d\n"
        "  ON d.namespace = e.namespace AND d.experiment = e.experiment\n"
        "WHERE e.experiment IS NOT NULL AND e.variant IS NOT NULL AND e.event IS NOT NULL AND e.uuid IS NOT NULL\n"
        "  AND (d.deleted_at IS NULL OR e.received_at > d.deleted_at)"
        + ("\n  AND e.namespace = ? AND e.experiment = ?" if experiment is not None else "")
        + "\nGROUP BY ALL"
    )
    with transaction(cursor):
        if create:
            cursor.execute(_FIRSTS_DDL)
            cursor.execute(_TOTALS_DDL)
        cursor.execute(f"DELETE FROM experiment_firsts {where}", params)
        cursor.execute(f"INSERT INTO experiment_firsts {visible}", params)
        cursor.execute(f"DELETE FROM experiment_totals {where}", params)
        cursor.execute(
            "INSERT INTO experiment_totals\n"
            "SELECT namespace, experiment, variant, event, COUNT(*), MIN(first_at), MAX(last_at), ?\n"
            f"FROM experiment_firsts {where}\nGROUP BY ALL", [written_at, *params])


@contextmanager
def transaction(cursor: Any) -> Iterator[None]:
    """Commit what the block did, or roll it back; a failed rollback (the database is gone) never hides
    the error that caused it."""
    cursor.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        with suppress(Exception):
            cursor.execute("ROLLBACK")
        raise
    cursor.execute("COMMIT")
