"""The warehouse tables, defined once and rendered for BigQuery and DuckDB alike."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    type: str            # BigQuery type name: STRING, FLOAT64, TIMESTAMP, BYTES
    required: bool = True


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: str                                   # the dedup key: BigQuery insertId, DuckDB primary key
    partition_by: str | None = None            # BigQuery DAY partitioning column
    cluster_by: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]


EVENTS = Table(
    name="events",
    columns=(
        Column("event_id", "STRING"),
        Column("namespace", "STRING"),
        Column("experiment", "STRING"),
        Column("variant", "STRING"),
        Column("event", "STRING"),
        Column("uuid", "STRING"),
        Column("value", "FLOAT64", required=False),
        Column("received_at", "TIMESTAMP"),
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

TABLES = (EVENTS, DEAD_LETTERS, DELETIONS)

_DUCKDB_TYPES = {"STRING": "VARCHAR", "FLOAT64": "DOUBLE", "TIMESTAMP": "TIMESTAMPTZ", "BYTES": "BLOB"}


def duckdb_ddl(table: Table, name: str | None = None) -> str:
    columns = [
        f"{column.name} {_DUCKDB_TYPES[column.type]}{' NOT NULL' if column.required else ''}"
        for column in table.columns
    ]
    columns.append(f"PRIMARY KEY ({table.key})")
    return f"CREATE TABLE IF NOT EXISTS {name or table.name} ({', '.join(columns)})"
