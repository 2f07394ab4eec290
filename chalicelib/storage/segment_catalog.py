"""The Segment exposure catalog: what the all-time Segment experiment list reads instead of history.

Listing Segment experiments needs each id's exposures and the links that make ids one person
(segment_identity.py); from the events that is every exposure and every message carrying two ids,
on every load. Two tables keep just what the list reads, one row per person and batch:

* `segment_exposures`: per (namespace, experiment, variant, id) its first and last exposure time
  (`COALESCE(timestamp, received_at)`) in a batch. `id` is the message's `COALESCE(user_id,
  anonymous_id)`, all a person lookup needs (`person_of` falls back to it). Only exposures the list
  counts: an `Experiment Viewed` track with an experiment, a variant and an id.
* `segment_links`: per (namespace, from_id, to_id) the earliest time a batch carried that link,
  from the two sources the reports read (segment_identity.link_messages). The people resolution
  keeps each link's earliest time only, so the union of these rows gives the same people.

The list takes minima and maxima over these rows, never sums: a row stored twice, or the same key
from two batches, changes nothing. Both the rows and the SQL that derives them from messages are
the reports' own definitions (segment_queries.exposure_spans, segment_identity.link_spans).

Segment experiments have no tombstones: a deletion names an AlephBet experiment, and Segment rows
carry no experiment column, so no report of them reads the deletions table; neither does this.

Embedded (DuckDB): the writer folds each batch's stored copies in (keyed, earliest first and latest
last kept: a redelivered batch adds nothing); opening a data folder written before the catalog
builds it from the events. BigQuery: the writer appends each batch's rows (insertId = the row's key
and its first time, so a redelivered batch dedupes); the first compaction after the tables appear
backfills them from the events and marks it (segment_queries.mark_segment_catalog_backfilled);
until then the list reads history.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from contextlib import suppress
from datetime import datetime
from typing import Any

from chalicelib.ingest.events import StoredEvent
from chalicelib.reports.queries import to_duckdb
from chalicelib.reports.segment_identity import link_spans
from chalicelib.reports.segment_queries import EXPOSURE_EVENT, exposure_spans
from chalicelib.storage.catalog import transaction
from chalicelib.storage.schema import INGESTION_TIME, Column, Table

EXPOSURE_KEY = ("namespace", "experiment", "variant", "id")
LINK_KEY = ("namespace", "from_id", "to_id")

SEGMENT_EXPOSURES = Table(
    name="segment_exposures",
    columns=(
        Column("namespace", "STRING"),
        Column("experiment", "STRING"),
        Column("variant", "STRING"),
        Column("id", "STRING"),            # COALESCE(user_id, anonymous_id) of the exposure
        Column("first_at", "TIMESTAMP"),   # its first and last exposure (client time, else arrival) in the batch
        Column("last_at", "TIMESTAMP"),
    ),
    key="id",       # DuckDB: (namespace, experiment, variant, id); BigQuery: `exposure_row_id`
    partition_by=INGESTION_TIME,
    cluster_by=("namespace", "experiment"),
)

SEGMENT_LINKS = Table(
    name="segment_links",
    columns=(
        Column("namespace", "STRING"),
        Column("from_id", "STRING"),
        Column("to_id", "STRING"),
        Column("linked_at", "TIMESTAMP"),  # the earliest message carrying the link in the batch
    ),
    key="to_id",    # DuckDB: (namespace, from_id, to_id); BigQuery: `link_row_id`
    partition_by=INGESTION_TIME,
    cluster_by=("namespace",),
)

SEGMENT_CATALOG_TABLES = (SEGMENT_EXPOSURES, SEGMENT_LINKS)

_EXPOSURES_DDL = (
    "CREATE TABLE IF NOT EXISTS segment_exposures (namespace VARCHAR NOT NULL, experiment VARCHAR NOT NULL, "
    "variant VARCHAR NOT NULL, id VARCHAR NOT NULL, first_at TIMESTAMPTZ NOT NULL, last_at TIMESTAMPTZ NOT NULL, "
    "PRIMARY KEY (namespace, experiment, variant, id))"
)
_LINKS_DDL = (
    "CREATE TABLE IF NOT EXISTS segment_links (namespace VARCHAR NOT NULL, from_id VARCHAR NOT NULL, "
    "to_id VARCHAR NOT NULL, linked_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (namespace, from_id, to_id))"
)
_KEEP_EXPOSURE_SPAN = ("ON CONFLICT DO UPDATE SET first_at = LEAST(segment_exposures.first_at, excluded.first_at),\n"
                       "  last_at = GREATEST(segment_exposures.last_at, excluded.last_at)")
_KEEP_EARLIEST_LINK = "ON CONFLICT DO UPDATE SET linked_at = LEAST(segment_links.linked_at, excluded.linked_at)"


# ---- BigQuery: rows appended per batch ------------------------------------------------------------

def exposure_rows(events: Sequence[StoredEvent]) -> list[dict[str, Any]]:
    """The batch's `segment_exposures` rows, as `segment_queries.exposure_spans` derives them in SQL."""
    spans: dict[tuple[str, str, str, str], tuple[datetime, datetime]] = {}
    for stored in events:
        if stored.type != "track" or stored.event != EXPOSURE_EVENT:
            continue
        properties = _json_object(stored.properties)
        experiment, variant = json_value(properties, "experiment_id"), json_value(properties, "variation_id")
        person = _message_id(stored)
        if experiment is None or variant is None or person is None:
            continue
        at = _message_time(stored)
        key = (stored.namespace, experiment, variant, person)
        first, last = spans.get(key, (at, at))
        spans[key] = (min(first, at), max(last, at))
    return [{**dict(zip(EXPOSURE_KEY, key, strict=True)), "first_at": first, "last_at": last}
            for key, (first, last) in spans.items()]


def link_rows(events: Sequence[StoredEvent]) -> list[dict[str, Any]]:
    """The batch's `segment_links` rows, as `segment_identity.link_spans` derives them in SQL: a message with
    both ids links its anonymousId to its userId, an alias its previousId to its userId."""
    earliest: dict[tuple[str, str, str], datetime] = {}
    for stored in events:
        at = _message_time(stored)
        pairs = []
        if stored.user_id is not None and stored.anonymous_id is not None and stored.anonymous_id != stored.user_id:
            pairs.append((stored.anonymous_id, stored.user_id))
        if stored.type == "alias" and stored.user_id is not None:
            previous = json_value(_json_object(stored.properties), "previousId")
            if previous is not None and previous != stored.user_id:
                pairs.append((previous, stored.user_id))
        for from_id, to_id in pairs:
            key = (stored.namespace, from_id, to_id)
            earliest[key] = min(earliest.get(key, at), at)
    return [{**dict(zip(LINK_KEY, key, strict=True)), "linked_at": at} for key, at in earliest.items()]


def exposure_row_id(row: dict[str, Any]) -> str:
    """BigQuery's insertId of an exposure row: its key and first time, so a redelivered batch's row dedupes."""
    return _row_id([row[name] for name in EXPOSURE_KEY] + [row["first_at"].isoformat()])


def link_row_id(row: dict[str, Any]) -> str:
    return _row_id([row[name] for name in LINK_KEY] + [row["linked_at"].isoformat()])


def json_value(properties: dict[str, Any] | None, name: str) -> str | None:
    """`JSON_VALUE(properties, '$.name')` as the warehouses answer it: a scalar as text (a string as is, a
    boolean as true/false, a number as written), null for a JSON null, an object or an array.

    The stored JSON is Python's own encoding, so a number's text is json.dumps's. (A float whose text a
    warehouse rewrites, 1e+20 say, could read differently; ids are strings or integers in practice.)"""
    if properties is None:
        return None
    value = properties.get(name)
    if value is None or isinstance(value, (dict, list)):
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _json_object(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    parsed = json.loads(text)
    return parsed if isinstance(parsed, dict) else None


def _message_id(stored: StoredEvent) -> str | None:
    """COALESCE(user_id, anonymous_id): an empty userId is still the id."""
    return stored.user_id if stored.user_id is not None else stored.anonymous_id


def _message_time(stored: StoredEvent) -> datetime:
    return stored.timestamp if stored.timestamp is not None else stored.received_at


def _row_id(identity: list[Any]) -> str:
    return hashlib.sha256(json.dumps(identity, ensure_ascii=False).encode("utf-8")).hexdigest()[:32]


# ---- DuckDB: maintained in-process -----------------------------------------------------------------

def duckdb_tables_exist(db: Any) -> bool:
    found = db.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_name IN (?, ?)",
                       [SEGMENT_EXPOSURES.name, SEGMENT_LINKS.name]).fetchone()[0]
    return found == len(SEGMENT_CATALOG_TABLES)


def record_batch(cursor: Any, batch: Any) -> None:
    """Fold a batch of stored events, an Arrow table, into the catalog; one transaction. Idempotent: each
    key keeps its earliest first time and latest last time. A batch without Segment rows costs nothing."""
    if batch.num_rows == 0 or batch.column("type").null_count == batch.num_rows:
        return
    cursor.register("segment_batch", batch)
    try:
        with transaction(cursor):
            cursor.execute(f"INSERT INTO segment_exposures {_duckdb(exposure_spans('segment_batch'))}\n"
                           + _KEEP_EXPOSURE_SPAN)
            cursor.execute(f"INSERT INTO segment_links {_duckdb(link_spans('segment_batch'))}\n" + _KEEP_EARLIEST_LINK)
    finally:
        with suppress(Exception):      # a database gone fatal refuses even this; the cause is raised
            cursor.unregister("segment_batch")


def rebuild(cursor: Any, create: bool = False) -> None:
    """Build the catalog from the events table (the backfill of a data folder written before it); one
    transaction, which first creates the tables if `create` (an interrupted backfill is begun again)."""
    with transaction(cursor):
        if create:
            cursor.execute(_EXPOSURES_DDL)
            cursor.execute(_LINKS_DDL)
        cursor.execute("DELETE FROM segment_exposures")
        cursor.execute(f"INSERT INTO segment_exposures {_duckdb(exposure_spans('events'))}")
        cursor.execute("DELETE FROM segment_links")
        cursor.execute(f"INSERT INTO segment_links {_duckdb(link_spans('events'))}")


def _duckdb(bigquery_select: str) -> str:
    return to_duckdb(bigquery_select)
