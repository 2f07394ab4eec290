"""Data written by an earlier Dalet keeps working: its tables are migrated, never rebuilt."""
from __future__ import annotations

from datetime import datetime, timezone

import duckdb
import pytest
from google.cloud import bigquery

from chalicelib.ingest.events import StoredEvent, event_id
from chalicelib.reports import experiments
from chalicelib.storage.bigquery_warehouse import BigQueryWarehouse
from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse
from chalicelib.storage.schema import EVENTS
from tests.bigquery_standin import BigQueryStandIn, bigquery_standin  # noqa: F401

# The events table exactly as the first landing created it (its DDL, not today's).
FIRST_LANDING_EVENTS_DDL = (
    "CREATE TABLE events (event_id VARCHAR NOT NULL, namespace VARCHAR NOT NULL, experiment VARCHAR NOT NULL, "
    "variant VARCHAR NOT NULL, event VARCHAR NOT NULL, uuid VARCHAR NOT NULL, value DOUBLE, "
    "received_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (event_id))"
)
FIRST_LANDING_BIGQUERY_EVENTS = [
    {"name": name, "type": kind, "mode": mode} for name, kind, mode in (
        ("event_id", "STRING", "REQUIRED"), ("namespace", "STRING", "REQUIRED"), ("experiment", "STRING", "REQUIRED"),
        ("variant", "STRING", "REQUIRED"), ("event", "STRING", "REQUIRED"), ("uuid", "STRING", "REQUIRED"),
        ("value", "FLOAT", "NULLABLE"), ("received_at", "TIMESTAMP", "REQUIRED"))
]
RECEIVED = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)


def _old_row(uuid: str, event: str) -> tuple:
    return (event_id("alephbet", "checkout", "red", event, uuid), "alephbet", "checkout", "red", event, uuid, None,
            RECEIVED)


@pytest.fixture
def first_landing_data_folder(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    old = duckdb.connect(str(path))
    old.execute(FIRST_LANDING_EVENTS_DDL)
    old.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [_old_row("u1", "participate"), _old_row("u2", "participate"), _old_row("u1", "buy")])
    old.close()
    return path


def test_a_data_folder_from_the_first_landing_keeps_its_rows_and_reports(first_landing_data_folder):
    warehouse = DuckDBWarehouse(first_landing_data_folder)
    try:
        (experiment,) = [e for e in experiments.all_experiments(warehouse, "alephbet") if "experiment" in e]
        (goal,) = experiment["goals"]
        assert goal["goal"] == "buy" and goal["results"] == [{"label": "red", "successes": 1, "trials": 2}]
        columns = [row["column_name"] for row in warehouse.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'events' ORDER BY ordinal_position")]
        assert columns == EVENTS.column_names
    finally:
        warehouse.close()


def test_a_migrated_data_folder_takes_rows_of_the_new_schema(first_landing_data_folder):
    warehouse = DuckDBWarehouse(first_landing_data_folder)
    try:
        segment_row = StoredEvent("m-1", "alephbet", None, None, "Signed Up", None, None, RECEIVED, type="track",
                                  user_id="user-7", message_id="m-1", properties='{"plan": "pro"}')
        assert warehouse.insert_events([segment_row]) == []
        (row,) = warehouse.fetch("SELECT user_id, properties->>'$.plan' AS plan FROM events WHERE type = 'track'")
        assert row == {"user_id": "user-7", "plan": "pro"}
        assert warehouse.fetch("SELECT COUNT(*) AS n FROM events")[0]["n"] == 4
    finally:
        warehouse.close()


def test_reopening_a_migrated_data_folder_changes_nothing(first_landing_data_folder):
    DuckDBWarehouse(first_landing_data_folder).close()
    warehouse = DuckDBWarehouse(first_landing_data_folder)
    try:
        assert warehouse.fetch("SELECT COUNT(*) AS n FROM events")[0]["n"] == 3
    finally:
        warehouse.close()


def test_setup_migrates_a_bigquery_events_table_by_adding_nullable_columns(bigquery_standin: BigQueryStandIn):
    client = bigquery_standin.client
    client.create_dataset("dalet")
    old = bigquery.Table(f"{client.project}.dalet.events",
                         schema=[bigquery.SchemaField.from_api_repr(f) for f in FIRST_LANDING_BIGQUERY_EVENTS])
    old.time_partitioning = bigquery.TimePartitioning(field="received_at")
    client.create_table(old)
    warehouse = BigQueryWarehouse(client, "dalet", "events")
    warehouse.ensure_report_tables()

    changes = warehouse.migrate_tables()

    assert "report_answers: created" in changes and any(change.startswith("events: ") for change in changes)
    fields = {f["name"]: f for f in bigquery_standin.table("dalet.events")["schema"]["fields"]}
    assert list(fields) == EVENTS.column_names
    assert fields["experiment"]["mode"] == "NULLABLE" and fields["event_id"]["mode"] == "REQUIRED"
    assert fields["properties"]["type"] == "JSON"
    assert warehouse.migrate_tables() == []      # idempotent
