"""The warehouse tables, defined once and rendered for BigQuery and DuckDB alike."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    type: str            # BigQuery type name: STRING, FLOAT64, TIMESTAMP, BYTES, JSON
    required: bool = True


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: str                                   # the dedup key: BigQuery insertId, DuckDB primary key
    partition_by: str | None = None            # BigQuery DAY partitioning column; INGESTION_TIME: by write time
    cluster_by: tuple[str, ...] = ()
    partition_expiration_days: int | None = None   # BigQuery drops a partition this many days after its day

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]


INGESTION_TIME = "_PARTITIONTIME"   # `partition_by` for BigQuery's ingestion-time partitioning (by write day)


# One table for both protocols. An AlephBet event fills namespace, experiment, variant, event,
# uuid (and maybe value, message_id: its client `id`); a Segment message (type track, page, identify...)
# leaves experiment/variant/uuid null and fills the user ids, message_id and the JSON columns.
# Every column added since the first version is nullable, so old tables migrate by adding them
# (BigQuery allows only nullable additions and REQUIRED -> NULLABLE relaxations).
EVENTS = Table(
    name="events",
    columns=(
        Column("event_id", "STRING"),
        Column("namespace", "STRING"),
        Column("experiment", "STRING", required=False),
        Column("variant", "STRING", required=False),
        Column("event", "STRING", required=False),
        Column("uuid", "STRING", required=False),
        Column("value", "FLOAT64", required=False),
        Column("received_at", "TIMESTAMP"),
        Column("type", "STRING", required=False),          # Segment call type; null for AlephBet events
        Column("user_id", "STRING", required=False),
        Column("anonymous_id", "STRING", required=False),
        Column("message_id", "STRING", required=False),    # Segment messageId, AlephBet's optional event `id`
        Column("timestamp", "TIMESTAMP", required=False),  # client time, corrected for clock skew
        Column("properties", "JSON", required=False),
        Column("traits", "JSON", required=False),
        Column("context", "JSON", required=False),
        Column("browser", "STRING", required=False),       # browser family from the User-Agent
    ),
    key="event_id",
    partition_by="received_at",
    cluster_by=("namespace", "experiment", "event"),
)

DEAD_LETTERS = Table(
    name="dead_letters",
    columns=(
        Column("sequence_number", "STRING"),
        Column("partition_key", "STRING"),
        Column("data", "BYTES"),
        Column("reason", "STRING"),
        Column("arrived_at", "TIMESTAMP"),
        Column("dead_lettered_at", "TIMESTAMP"),
    ),
    key="sequence_number",
    partition_by="dead_lettered_at",
)

# One row per deletion; reports ignore an experiment's events received up to its latest deleted_at.
DELETIONS = Table(
    name="deletions",
    columns=(
        Column("deletion_id", "STRING"),     # hash of namespace, experiment and deleted_at
        Column("namespace", "STRING"),
        Column("experiment", "STRING"),
        Column("deleted_at", "TIMESTAMP"),
    ),
    key="deletion_id",
    cluster_by=("namespace", "experiment"),
)

# Stored answers of the results and daily views (chalicelib/reports/stored_answers.py): one row per
# computation, the newest younger than DALET_RESULTS_MAX_AGE_MINUTES (at most a day) answers. BigQuery
# appends (a streaming insert, readable at once) and drops each day's rows two days later; DuckDB keeps
# the newest per key (its primary key), the table bounded by the views asked for.
REPORT_ANSWERS = Table(
    name="report_answers",
    columns=(
        Column("key", "STRING"),             # sha256 of the route, namespace, experiment and query parameters
        Column("stored_at", "TIMESTAMP"),    # when the computation began (before its queries read anything)
        Column("namespace", "STRING"),
        Column("experiment", "STRING"),
        Column("answer", "STRING"),          # the response body as JSON text, its freshness as measured then
    ),
    key="key",
    partition_by="stored_at",
    cluster_by=("key",),
    partition_expiration_days=2,
)

TABLES = (EVENTS, DEAD_LETTERS, DELETIONS, REPORT_ANSWERS)

_DUCKDB_TYPES = {"STRING": "VARCHAR", "FLOAT64": "DOUBLE", "TIMESTAMP": "TIMESTAMPTZ", "BYTES": "BLOB", "JSON": "JSON"}


def duckdb_ddl(table: Table, name: str | None = None) -> str:
    columns = [
        f"{column.name} {_DUCKDB_TYPES[column.type]}{' NOT NULL' if column.required else ''}"
        for column in table.columns
    ]
    columns.append(f"PRIMARY KEY ({table.key})")
    return f"CREATE TABLE IF NOT EXISTS {name or table.name} ({', '.join(columns)})"


def duckdb_migration(table: Table, existing: dict[str, bool]) -> list[str]:
    """The statements that bring a table written by an older Dalet to `table`'s schema.

    `existing` maps each stored column to whether it is nullable. Missing columns are added
    (always nullable) and columns that became optional drop their NOT NULL; stored rows stay.
    """
    statements = []
    for column in table.columns:
        if column.name not in existing:
            statements.append(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {_DUCKDB_TYPES[column.type]}")
        elif not column.required and not existing[column.name]:
            statements.append(f"ALTER TABLE {table.name} ALTER COLUMN {column.name} DROP NOT NULL")
    return statements
