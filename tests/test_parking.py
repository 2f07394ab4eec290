"""Parking: a batch BigQuery keeps refusing is sent, records and all, to the failure queue before
the stream (24 h) forgets it, and `replay` writes it once BigQuery is back.

Driven through the writer's Lambda entry (`app.write_events`) on the cloud backend: SQS is moto
(real boto3/botocore calls), BigQuery the local stand-in with the real client.
"""
from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import boto3
import pytest

from chalicelib import config, google_credentials, runtime
from chalicelib.ingest.events import Event, StoredEvent, stamp
from chalicelib.ingest.records import encode_record
from chalicelib.storage import parking
from chalicelib.storage.bigquery_warehouse import BigQueryWarehouse
from chalicelib.storage.writer import StreamRecord, TransientWarehouseError
from dalet_ops import replay
from tests.aws_moto import ACCOUNT, REGION, aws  # noqa: F401
from tests.bigquery_standin import bigquery_standin  # noqa: F401

QUEUE = "dalet-prod-failed-batches"
STREAM_ARN = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/dalet-events"
HOUR = 3600.0


@pytest.fixture
def queue_url(aws) -> str:
    return boto3.client("sqs").create_queue(QueueName=QUEUE)["QueueUrl"]


@pytest.fixture
def cloud_writer(aws, bigquery_standin, queue_url, monkeypatch) -> Iterator[Any]:
    """app.write_events as the deployed writer runs it: aws backend, BigQuery, the failure queue."""
    for name, value in {"DALET_BACKEND": "aws", "DALET_STREAM_NAME": "dalet-events", "DALET_BQ_DATASET": "dalet",
                        "DALET_BQ_TABLE": "events", "DALET_FAILURE_QUEUE_URL": queue_url}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(google_credentials, "bigquery_client", lambda settings: bigquery_standin.client)
    parking._sqs_client.cache_clear()
    runtime.shutdown()
    import app

    yield app.write_events
    runtime.shutdown()
    parking._sqs_client.cache_clear()


def stored(uuid: str, event: str = "participate") -> StoredEvent:
    return stamp(Event("alephbet", "button color", "red", event, uuid), datetime(2026, 11, 30, tzinfo=timezone.utc))


def kinesis_event(payloads: list[bytes | StoredEvent], age_seconds: float, first_sequence: int = 1000) -> dict[str, Any]:
    """Lambda's Kinesis event: records that arrived `age_seconds` ago, numbered as one shard numbers them."""
    arrived = time.time() - age_seconds
    records = []
    for offset, payload in enumerate(payloads):
        data = encode_record(payload) if isinstance(payload, StoredEvent) else payload
        sequence = str(49_000_000_000_000_000_000 + first_sequence + offset)
        records.append({
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": f"pk-{offset}", "sequenceNumber": sequence,
                        "data": base64.b64encode(data).decode("ascii"), "approximateArrivalTimestamp": arrived},
            "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventName": "aws:kinesis:record",
            "eventID": f"shardId-000000000000:{sequence}", "awsRegion": REGION,
            "eventSourceARN": STREAM_ARN,
        })
    return {"Records": records}


def queue_bodies(queue_url: str) -> list[str]:
    """Every message body on the queue (left on it: received with no visibility timeout)."""
    sqs = boto3.client("sqs")
    bodies: dict[str, str] = {}
    for _ in range(20):
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                                           WaitTimeSeconds=0).get("Messages", []):
            bodies[message["MessageId"]] = message["Body"]
    return list(bodies.values())


def messages_on(queue_url: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(value) for value in attributes["Attributes"].values())


def replay_queue(bigquery_standin, queue_url: str) -> replay.ReplaySummary:
    warehouse = BigQueryWarehouse(bigquery_standin.client, "dalet", "events", retry=None)
    return replay.replay_parked_batches(boto3.client("sqs"), queue_url, boto3.client("kinesis"), "dalet-events",
                                        STREAM_ARN, warehouse, print)


def landed_uuids(bigquery_standin) -> list[str]:
    return sorted(row["uuid"] for row in bigquery_standin.rows("dalet.events"))


def bigquery_down(bigquery_standin) -> None:
    """Every insert answers 403 quotaExceeded, which the client does not retry itself (a 500 it would
    retry for 30 s): the writer sees a transient failure at once."""
    bigquery_standin.fail_inserts(403, reason="quotaExceeded", times=None)


# ---- the writer parks -------------------------------------------------------------------------


def test_a_batch_bigquery_refuses_past_the_threshold_lands_in_the_queue_with_its_data(
        cloud_writer, bigquery_standin, queue_url):
    events = [stored(f"user-{index}") for index in range(3)]
    batch = kinesis_event(events, age_seconds=2 * HOUR)
    bigquery_down(bigquery_standin)

    assert cloud_writer(batch, None) == {"batchItemFailures": []}

    (body,) = queue_bodies(queue_url)
    parked = parking.parked_records(body)
    sent = batch["Records"]
    assert [record.data for record in parked.records] == [encode_record(event) for event in events]
    assert [record.sequence_number for record in parked.records] == [r["kinesis"]["sequenceNumber"] for r in sent]
    assert [record.partition_key for record in parked.records] == ["pk-0", "pk-1", "pk-2"]
    arrived = datetime.fromtimestamp(sent[0]["kinesis"]["approximateArrivalTimestamp"], timezone.utc)
    assert all(abs(record.arrived_at - arrived) < timedelta(milliseconds=1) for record in parked.records)
    assert "the warehouse kept failing" in parked.reason and "403" in parked.reason
    assert bigquery_standin.rows("dalet.events") == []


def test_once_bigquery_is_back_replay_writes_the_parked_records_each_exactly_once(
        cloud_writer, bigquery_standin, queue_url):
    # 600 records: BigQuery takes the first request of 500, then refuses the events table (the written rows'
    # catalog rows still land; were they refused too, the whole batch would be parked and replayed).
    events = [stored(f"user-{index:03}") for index in range(600)]
    batch = kinesis_event(events, age_seconds=2 * HOUR)
    bigquery_standin.fail_inserts(403, reason="quotaExceeded", times=None, after=1, table="events")

    assert cloud_writer(batch, None) == {"batchItemFailures": []}
    parked = [record for body in queue_bodies(queue_url) for record in parking.parked_records(body).records]
    assert len(parked) == 100 and len(landed_uuids(bigquery_standin)) == 500

    bigquery_standin.clear_failures()
    summary = replay_queue(bigquery_standin, queue_url)

    assert (summary.records, summary.kept) == (100, 0)
    assert landed_uuids(bigquery_standin) == [f"user-{index:03}" for index in range(600)]
    assert len(set(bigquery_standin.insert_ids("dalet.events"))) == 600
    assert messages_on(queue_url) == 0
    assert replay_queue(bigquery_standin, queue_url).records == 0


def test_a_lasting_refusal_past_the_threshold_is_parked_too_not_left_for_the_stream_to_forget(
        cloud_writer, bigquery_standin, queue_url):
    # e.g. the writer's Google identity lost its BigQuery role: not transient, and it lasts until someone acts
    bigquery_standin.fail_inserts(403, reason="accessDenied", times=None)

    assert cloud_writer(kinesis_event([stored("user-1")], age_seconds=2 * HOUR), None) == {"batchItemFailures": []}

    (body,) = queue_bodies(queue_url)
    assert "Forbidden" in parking.parked_records(body).reason


def test_a_batch_younger_than_the_threshold_is_retried_by_lambda_as_before(cloud_writer, bigquery_standin, queue_url):
    bigquery_down(bigquery_standin)

    with pytest.raises(TransientWarehouseError):
        cloud_writer(kinesis_event([stored("user-1")], age_seconds=10 * 60), None)

    assert messages_on(queue_url) == 0


def test_the_threshold_is_configurable(cloud_writer, bigquery_standin, queue_url, monkeypatch):
    monkeypatch.setenv("DALET_PARK_AFTER_SECONDS", "300")
    runtime.shutdown()
    bigquery_down(bigquery_standin)

    assert cloud_writer(kinesis_event([stored("user-1")], age_seconds=10 * 60), None) == {"batchItemFailures": []}
    assert messages_on(queue_url) == 1


def test_when_the_queue_cannot_take_the_records_the_batch_fails_so_lambda_retries_it(
        cloud_writer, bigquery_standin, queue_url, monkeypatch):
    monkeypatch.setenv("DALET_FAILURE_QUEUE_URL", f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/no-such-queue")
    runtime.shutdown()
    bigquery_down(bigquery_standin)
    batch = kinesis_event([stored("user-1"), stored("user-2")], age_seconds=2 * HOUR)

    with pytest.raises(parking.ParkingFailed, match="no-such-queue"):
        cloud_writer(batch, None)

    # Lambda's retry, once the queue is reachable again, parks the whole batch.
    monkeypatch.setenv("DALET_FAILURE_QUEUE_URL", queue_url)
    runtime.shutdown()
    assert cloud_writer(batch, None) == {"batchItemFailures": []}
    bigquery_standin.clear_failures()
    replay_queue(bigquery_standin, queue_url)
    assert landed_uuids(bigquery_standin) == ["user-1", "user-2"]


def test_undecodable_records_are_parked_too_when_even_dead_letters_cannot_be_written(
        cloud_writer, bigquery_standin, queue_url):
    batch = kinesis_event([b"\xff not json", stored("user-1")], age_seconds=2 * HOUR)
    bigquery_down(bigquery_standin)

    assert cloud_writer(batch, None) == {"batchItemFailures": []}
    bigquery_standin.clear_failures()
    replay_queue(bigquery_standin, queue_url)

    assert landed_uuids(bigquery_standin) == ["user-1"]
    (letter,) = bigquery_standin.rows("dalet.dead_letters")
    assert base64.b64decode(letter["data"]) == b"\xff not json"


def test_a_refused_row_whose_dead_letter_cannot_be_written_is_parked_and_dead_lettered_by_replay(
        cloud_writer, bigquery_standin, queue_url):
    from chalicelib.storage.writer import copy_id

    refused = stored("refused")
    bigquery_standin.reject_rows(copy_id(refused), message="no such field: colour.")
    bigquery_standin.fail_inserts(403, reason="quotaExceeded", times=None, table="dead_letters")
    batch = kinesis_event([stored("user-1"), refused], age_seconds=2 * HOUR)

    assert cloud_writer(batch, None) == {"batchItemFailures": []}
    (body,) = queue_bodies(queue_url)
    assert [record.data for record in parking.parked_records(body).records] == [encode_record(refused)]

    bigquery_standin.clear_failures()
    replay_queue(bigquery_standin, queue_url)
    assert landed_uuids(bigquery_standin) == ["user-1"]
    (letter,) = bigquery_standin.rows("dalet.dead_letters")
    assert "no such field: colour." in letter["reason"]


def test_replay_leaves_parked_records_on_the_queue_while_bigquery_still_fails(cloud_writer, bigquery_standin,
                                                                              queue_url):
    bigquery_down(bigquery_standin)
    cloud_writer(kinesis_event([stored("user-1")], age_seconds=2 * HOUR), None)

    with pytest.raises(TransientWarehouseError):
        replay_queue(bigquery_standin, queue_url)

    assert len(queue_bodies(queue_url)) == 1


def test_the_local_backend_never_parks(data_dir, monkeypatch):
    monkeypatch.setenv("DALET_FAILURE_QUEUE_URL", f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{QUEUE}")

    assert parking.parking_for(config.load_settings()) is None


# ---- the messages -----------------------------------------------------------------------------


def _records(count: int, size: int) -> list[StreamRecord]:
    arrived = datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc)
    return [StreamRecord(str(1000 + index), f"key-{index}", bytes([index % 251]) * size, arrived)
            for index in range(count)]


def test_a_batch_is_due_for_parking_once_its_oldest_record_has_waited_exactly_the_threshold():
    (oldest,), after = _records(1, 10), timedelta(minutes=50)
    newer = StreamRecord("2000", "key", b"x", oldest.arrived_at + timedelta(minutes=5))
    parked = parking.Parking("https://sqs.example/queue", after, send=lambda url, body: None)

    assert parked.due([newer, oldest], at=oldest.arrived_at + after)
    assert not parked.due([newer, oldest], at=oldest.arrived_at + after - timedelta(microseconds=1))
    assert not parked.due([], at=oldest.arrived_at + after)


def test_a_batch_too_large_for_one_message_is_split_into_messages_sqs_accepts():
    records = _records(500, 2_000)          # ~1.3 MB of base64

    bodies = parking.message_bodies(records, "BigQuery down")

    assert len(bodies) > 1
    assert all(len(body.encode()) <= 256 * 1024 for body in bodies)
    read = [parking.parked_records(body) for body in bodies]
    assert [(message.part, message.parts) for message in read] == [(n, len(bodies)) for n in range(1, len(bodies) + 1)]
    assert [record for message in read for record in message.records] == records


def test_a_long_reason_is_cut_so_the_records_still_fit():
    bodies = parking.message_bodies(_records(100, 2_000), "x" * 300_000)

    assert all(len(body.encode()) <= 256 * 1024 for body in bodies)
    assert len(parking.parked_records(bodies[0]).reason) == parking.MAX_REASON_CHARACTERS


def test_lambdas_pointer_note_is_not_mistaken_for_parked_records():
    note = {"requestContext": {"condition": "RetryAttemptsExhausted"},
            "KinesisBatchInfo": {"shardId": "shardId-000000000000", "startSequenceNumber": "1",
                                 "endSequenceNumber": "2", "streamArn": STREAM_ARN}}

    assert parking.parked_records(json.dumps(note)) is None


def test_parked_records_of_an_unknown_version_are_refused_not_guessed():
    body = json.loads(parking.message_bodies(_records(1, 10), "down")[0])
    body["version"] = 2

    with pytest.raises(ValueError, match="version 2"):
        parking.parked_records(json.dumps(body))


# ---- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "accepted"), [("0", 0), ("3600", 3600), ("18000", 18000)])
def test_park_after_seconds_is_read_from_the_environment(value, accepted):
    assert config.load_settings({"DALET_PARK_AFTER_SECONDS": value}).park_after_seconds == accepted


@pytest.mark.parametrize("value", ["-1", "1h", "21600"])
def test_a_park_after_the_trigger_gives_up_or_unreadable_is_refused_by_name(value):
    with pytest.raises(config.ConfigError, match="DALET_PARK_AFTER_SECONDS"):
        config.load_settings({"DALET_PARK_AFTER_SECONDS": value})


def test_the_writer_parks_before_its_trigger_gives_up():
    from dalet_ops import infrastructure

    assert config.DEFAULT_PARK_AFTER_SECONDS <= config.MAX_PARK_AFTER_SECONDS
    assert config.MAX_PARK_AFTER_SECONDS < infrastructure.TRIGGER_SETTINGS["MaximumRecordAgeInSeconds"]


def test_a_failure_queue_url_that_is_not_https_is_refused_by_name():
    with pytest.raises(config.ConfigError, match="DALET_FAILURE_QUEUE_URL"):
        config.load_settings({"DALET_FAILURE_QUEUE_URL": "dalet-prod-failed-batches"})
