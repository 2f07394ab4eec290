"""The Kinesis batch writer into DuckDB, fed hand-built Kinesis events like Lambda's."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
from chalice.app import KinesisEvent

from chalicelib import runtime
from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse
from chalicelib.ingest.events import StoredEvent, parse_event, stamp
from chalicelib.ingest.records import encode_record
from chalicelib.storage.writer import records_from_kinesis_event, write_batch

RECEIVED = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)


def stored(uuid: str, event: str = "participate", value: float | None = None,
           received_at: datetime = RECEIVED) -> StoredEvent:
    return stamp(parse_event({"namespace": "shop", "experiment": "checkout", "variant": "A", "event": event,
                              "uuid": uuid, "value": value}), received_at)


class KinesisBatch:
    """Builds Lambda's Kinesis event dicts, numbering records like one shard does."""

    def __init__(self) -> None:
        self.next_sequence = 49_000_000_000_000_000_000

    def event(self, *payloads: bytes | StoredEvent) -> dict[str, Any]:
        records = []
        for payload in payloads:
            data = encode_record(payload) if isinstance(payload, StoredEvent) else payload
            self.next_sequence += 1
            records.append({
                "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "pk",
                            "sequenceNumber": str(self.next_sequence),
                            "data": base64.b64encode(data).decode("ascii"),
                            "approximateArrivalTimestamp": 1709294400.5},
                "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventName": "aws:kinesis:record",
                "eventID": f"shardId-000000000000:{self.next_sequence}", "awsRegion": "us-east-1",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/writer",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/dalet-events",
            })
        return {"Records": records}


@pytest.fixture
def kinesis_batch() -> KinesisBatch:
    return KinesisBatch()


@pytest.fixture
def warehouse(tmp_path) -> Iterator[DuckDBWarehouse]:
    store = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    yield store
    store.close()


def write(event: dict[str, Any], warehouse: DuckDBWarehouse) -> dict[str, Any]:
    return write_batch(records_from_kinesis_event(KinesisEvent(event, None)), warehouse)


def uuids_and_events(warehouse: DuckDBWarehouse) -> list[tuple[str, str]]:
    return [(row["uuid"], row["event"]) for row in warehouse.fetch("SELECT uuid, event FROM events ORDER BY uuid, event")]


def dead_letters(warehouse: DuckDBWarehouse) -> list[dict[str, Any]]:
    return warehouse.fetch("SELECT sequence_number, reason, data FROM dead_letters ORDER BY sequence_number")


# --- rows land once -------------------------------------------------------------------------------

def test_a_batch_lands_as_rows_with_every_stored_field(warehouse, kinesis_batch):
    event = stored("u-1", event="purchase", value=12.5)
    assert write(kinesis_batch.event(event), warehouse) == {"batchItemFailures": []}
    (row,) = warehouse.fetch("SELECT * FROM events")
    segment_columns = {"type", "user_id", "anonymous_id", "message_id", "timestamp", "properties", "traits",
                       "context", "browser"}
    assert row == {"event_id": event.event_id, "namespace": "shop", "experiment": "checkout", "variant": "A",
                   "event": "purchase", "uuid": "u-1", "value": 12.5, "received_at": RECEIVED,
                   **{name: None for name in segment_columns}}


def test_duplicates_within_a_batch_land_once(warehouse, kinesis_batch):
    # AlephBet re-sends its queue until it sees a 200: the same identity, received at another time.
    later = datetime(2024, 3, 1, 12, 5, tzinfo=timezone.utc)
    write(kinesis_batch.event(stored("u-1"), stored("u-2"), stored("u-1", received_at=later), stored("u-1")),
          warehouse)
    assert uuids_and_events(warehouse) == [("u-1", "participate"), ("u-2", "participate")]


def test_a_redelivered_batch_and_later_duplicates_land_once(warehouse, kinesis_batch):
    first = kinesis_batch.event(stored("u-1"), stored("u-2"))
    write(first, warehouse)
    write(first, warehouse)                                          # Lambda retried the same batch
    write(kinesis_batch.event(stored("u-2"), stored("u-3")), warehouse)  # the client re-sent u-2
    assert uuids_and_events(warehouse) == [("u-1", "participate"), ("u-2", "participate"), ("u-3", "participate")]


def delete_checkout(warehouse: DuckDBWarehouse, deleted_at: datetime) -> None:
    warehouse.insert_deletion({"deletion_id": "d1", "namespace": "shop", "experiment": "checkout",
                               "deleted_at": deleted_at.isoformat()})


def test_a_copy_tracked_after_a_deletion_lands_when_the_hidden_copy_shares_its_batch(warehouse, kinesis_batch):
    # The writer's backlog held u-1 from before the deletion when u-1 was tracked again.
    deleted_at = RECEIVED + timedelta(minutes=1)
    delete_checkout(warehouse, deleted_at)
    tracked_again = RECEIVED + timedelta(minutes=2)

    write(kinesis_batch.event(stored("u-1"), stored("u-2"), stored("u-1", received_at=tracked_again)), warehouse)

    assert warehouse.fetch("SELECT uuid, received_at FROM events") == [{"uuid": "u-1", "received_at": tracked_again}]


def test_a_copy_tracked_after_a_deletion_lands_when_the_hidden_copy_came_a_batch_earlier(warehouse, kinesis_batch):
    delete_checkout(warehouse, RECEIVED + timedelta(minutes=1))
    tracked_again = RECEIVED + timedelta(minutes=2)

    write(kinesis_batch.event(stored("u-1")), warehouse)
    write(kinesis_batch.event(stored("u-1", received_at=tracked_again)), warehouse)

    assert warehouse.fetch("SELECT uuid, received_at FROM events") == [{"uuid": "u-1", "received_at": tracked_again}]


def test_of_several_copies_after_a_deletion_the_first_is_kept(warehouse, kinesis_batch):
    delete_checkout(warehouse, RECEIVED)
    first, second = RECEIVED + timedelta(minutes=1), RECEIVED + timedelta(minutes=2)

    write(kinesis_batch.event(stored("u-1"), stored("u-1", received_at=first), stored("u-1", received_at=second)),
          warehouse)

    assert warehouse.fetch("SELECT uuid, received_at FROM events") == [{"uuid": "u-1", "received_at": first}]


def test_a_copy_tracked_after_a_deletion_lands_even_if_the_deletions_purge_failed(tmp_path, kinesis_batch):
    store = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    write(kinesis_batch.event(stored("u-1")), store)
    delete_checkout(store, RECEIVED + timedelta(minutes=1))    # the tombstone, but no purge (the disk was full)
    store.close()
    store = DuckDBWarehouse(tmp_path / "warehouse.duckdb")      # and the server restarted since
    tracked_again = RECEIVED + timedelta(minutes=2)

    write(kinesis_batch.event(stored("u-1", received_at=tracked_again)), store)

    assert store.fetch("SELECT uuid, received_at FROM events") == [{"uuid": "u-1", "received_at": tracked_again}]
    store.close()


def test_participate_and_goals_of_one_uuid_are_all_kept(warehouse, kinesis_batch):
    write(kinesis_batch.event(stored("u-1"), stored("u-1", "purchase"), stored("u-1", "signup")), warehouse)
    assert uuids_and_events(warehouse) == [("u-1", "participate"), ("u-1", "purchase"), ("u-1", "signup")]


def test_a_full_500_record_batch_lands(warehouse, kinesis_batch):
    write(kinesis_batch.event(*[stored(f"u-{n:03}") for n in range(500)]), warehouse)
    assert warehouse.fetch("SELECT COUNT(*) AS n, COUNT(DISTINCT uuid) AS users FROM events") == [
        {"n": 500, "users": 500}]


# --- poison records -------------------------------------------------------------------------------

def row_with(**changes: Any) -> bytes:
    return json.dumps({**stored("poison").to_row(), **changes}).encode()


POISON = {
    "not JSON": (b"this is not json", "not UTF-8 JSON"),
    "not UTF-8": (b'{"uuid": "\xff\xfe"}', "not UTF-8 JSON"),
    "not an object": (b"[1, 2, 3]", "not a JSON object"),
    "invalid field": (row_with(experiment=""), "experiment"),
    "control character": (row_with(variant="A\x00"), "variant"),
    "NaN value": (row_with(value=float("nan")), "value"),
    "no timestamp": (row_with(received_at=None), "received_at"),
    "huge number": (b'{"value": ' + b"9" * 5000 + b"}", "not UTF-8 JSON"),
    "deep nesting": (b"[" * 50_000, "not UTF-8 JSON"),
}


@pytest.mark.parametrize("kind", POISON)
def test_a_poison_record_is_dead_lettered_with_its_reason_while_the_rest_lands(warehouse, kinesis_batch, kind):
    data, reason = POISON[kind]
    batch = kinesis_batch.event(stored("u-1"), data, stored("u-2"))
    poison_sequence = batch["Records"][1]["kinesis"]["sequenceNumber"]
    assert write(batch, warehouse) == {"batchItemFailures": []}
    assert uuids_and_events(warehouse) == [("u-1", "participate"), ("u-2", "participate")]
    (letter,) = dead_letters(warehouse)
    assert letter["sequence_number"] == poison_sequence
    assert reason in letter["reason"]
    assert bytes(letter["data"]) == data


def test_every_poison_record_of_a_batch_is_kept_and_redelivery_does_not_double_them(warehouse, kinesis_batch):
    batch = kinesis_batch.event(*[data for data, _ in POISON.values()], stored("fine"))
    write(batch, warehouse)
    write(batch, warehouse)
    assert len(dead_letters(warehouse)) == len(POISON)
    assert uuids_and_events(warehouse) == [("fine", "participate")]


def test_a_record_carrying_another_event_id_lands_once_under_its_identity(warehouse, kinesis_batch):
    # e.g. written by a publisher of another version while a deploy rolls out
    write(kinesis_batch.event(row_with(event_id="0" * 32), stored("poison")), warehouse)
    assert uuids_and_events(warehouse) == [("poison", "participate")]
    assert warehouse.fetch("SELECT event_id FROM events") == [{"event_id": stored("poison").event_id}]
    assert dead_letters(warehouse) == []


# --- through the Lambda entry that app.py registers ---------------------------------------------------

def test_the_registered_kinesis_handler_writes_a_lambda_event_and_reports_no_failures(data_dir, kinesis_batch):
    import app

    batch = kinesis_batch.event(stored("u-1"), b"\x00garbage", stored("u-1", "purchase"), stored("u-1"))
    assert app.write_events(batch, None) == {"batchItemFailures": []}
    store = runtime.warehouse()
    assert uuids_and_events(store) == [("u-1", "participate"), ("u-1", "purchase")]
    assert [letter["sequence_number"] for letter in dead_letters(store)] == [
        batch["Records"][1]["kinesis"]["sequenceNumber"]]


def test_the_handler_never_raises_for_poison(data_dir, kinesis_batch):
    import app

    batch = kinesis_batch.event(*[data for data, _ in POISON.values()])
    assert app.write_events(batch, None) == {"batchItemFailures": []}
    assert len(dead_letters(runtime.warehouse())) == len(POISON)


def test_stored_events_hold_the_events_table_columns_in_order():
    # The DuckDB writer transposes StoredEvents straight into the table's columns.
    from chalicelib.ingest.events import StoredEvent
    from chalicelib.storage.schema import EVENTS

    assert StoredEvent._fields == tuple(EVENTS.column_names)
