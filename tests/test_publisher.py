"""The Kinesis publisher against moto: real boto3 calls, counted, with injected throttling."""
from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Iterator

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from moto import mock_aws

from chalicelib import runtime
from chalicelib.ingest.events import StoredEvent, parse_event, stamp
from chalicelib.ingest.publisher import (
    KINESIS_CLIENT_SETTINGS,
    MAX_BYTES_PER_PUT,
    KinesisPublisher,
    PublishError,
    chunk_entries,
)
from chalicelib.ingest.records import encode_record

STREAM = "dalet-test-events"
THROTTLED = "ProvisionedThroughputExceededException"


def events(count: int, prefix: str = "u") -> list[StoredEvent]:
    received_at = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
    return [
        stamp(parse_event({"experiment": "checkout", "variant": "AB"[n % 2], "event": "participate",
                           "uuid": f"{prefix}-{n}"}), received_at)
        for n in range(count)
    ]


@pytest.fixture
def aws_env(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def kinesis(aws_env) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("kinesis", config=Config(**KINESIS_CLIENT_SETTINGS))
        client.create_stream(StreamName=STREAM, ShardCount=2)
        yield client


class CallCounter:
    """Counts Kinesis API calls (and their record counts) through botocore's event hooks."""

    def __init__(self, client: Any):
        self.calls: Counter[str] = Counter()
        self.batch_sizes: list[int] = []
        client.meta.events.register("before-call.kinesis.PutRecord", self._put_record)
        client.meta.events.register("before-call.kinesis.PutRecords", self._put_records)
        client.meta.events.register("before-parameter-build.kinesis.PutRecords", self._put_records_params)

    def _put_record(self, **_: Any) -> None:
        self.calls["PutRecord"] += 1

    def _put_records(self, **_: Any) -> None:
        self.calls["PutRecords"] += 1

    def _put_records_params(self, params: dict[str, Any], **_: Any) -> None:
        self.batch_sizes.append(len(params["Records"]))


def throttle(client: Any, operation: str, times: int | None = None) -> Counter[str]:
    """Make `operation` fail with throttling `times` times (None: always), then pass through to moto."""
    attempts: Counter[str] = Counter()

    def answer(**_: Any):
        attempts[operation] += 1
        if times is not None and attempts[operation] > times:
            return None
        error = {"Error": {"Code": THROTTLED, "Message": "Rate exceeded for shard"},
                 "ResponseMetadata": {"HTTPStatusCode": 400}}
        return AWSResponse("https://kinesis.us-east-1.amazonaws.com/", 400, {}, None), error

    client.meta.events.register(f"before-call.kinesis.{operation}", answer)
    return attempts


class PartlyThrottledKinesis:
    """Kinesis whose first PutRecords answers some records with per-record throttling, as AWS does."""

    def __init__(self, client: Any, failing_indexes: set[int]):
        self.client = client
        self.failing_indexes = failing_indexes
        self.sent: list[list[str]] = []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.sent.append([record["PartitionKey"] for record in Records])
        failing = self.failing_indexes if len(self.sent) == 1 else set()
        passed = [record for index, record in enumerate(Records) if index not in failing]
        landed = iter(self.client.put_records(StreamName=StreamName, Records=passed)["Records"] if passed else [])
        results = [
            {"ErrorCode": THROTTLED, "ErrorMessage": "Rate exceeded for shard"} if index in failing else next(landed)
            for index in range(len(Records))
        ]
        return {"FailedRecordCount": len(failing), "Records": results}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def stream_records(client: Any) -> list[dict[str, Any]]:
    records = []
    for shard in client.list_shards(StreamName=STREAM)["Shards"]:
        iterator = client.get_shard_iterator(StreamName=STREAM, ShardId=shard["ShardId"],
                                             ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = client.get_records(ShardIterator=iterator, Limit=10_000)
            records.extend(page["Records"])
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return records


def landed_keys(client: Any) -> Counter[str]:
    return Counter(record["PartitionKey"] for record in stream_records(client))


# --- calls per event count --------------------------------------------------------------------

def test_one_event_is_one_put_record_with_the_event_as_compact_json(kinesis):
    counter = CallCounter(kinesis)
    (stored,) = events(1)
    KinesisPublisher(kinesis, STREAM).publish([stored])
    assert counter.calls == {"PutRecord": 1}
    (record,) = stream_records(kinesis)
    assert record["PartitionKey"] == stored.event_id
    assert record["Data"] == encode_record(stored)
    assert json.loads(record["Data"])["event_id"] == stored.event_id
    assert b", " not in record["Data"] and b": " not in record["Data"]


def test_1200_events_are_three_put_records_calls_and_each_lands_once(kinesis):
    counter = CallCounter(kinesis)
    batch = events(1200)
    KinesisPublisher(kinesis, STREAM).publish(batch)
    assert counter.calls == {"PutRecords": 3}
    assert counter.batch_sizes == [500, 500, 200]
    records = stream_records(kinesis)
    assert Counter(record["PartitionKey"] for record in records) == Counter(e.event_id for e in batch)
    data_of = {record["PartitionKey"]: record["Data"] for record in records}
    assert all(data_of[e.event_id] == encode_record(e) for e in batch)


def test_the_partition_key_spreads_one_experiment_over_shards(kinesis):
    KinesisPublisher(kinesis, STREAM).publish(events(200))
    shards = kinesis.list_shards(StreamName=STREAM)["Shards"]
    assert all(_records_of_shard(kinesis, shard["ShardId"]) for shard in shards) and len(shards) == 2


def _records_of_shard(client: Any, shard_id: str) -> list[dict[str, Any]]:
    iterator = client.get_shard_iterator(StreamName=STREAM, ShardId=shard_id,
                                         ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return client.get_records(ShardIterator=iterator, Limit=10_000)["Records"]


def test_chunks_respect_the_500_record_and_5_mib_limits():
    big = [{"Data": b"x" * (900 * 1024), "PartitionKey": f"k{n}"} for n in range(13)]
    small = [{"Data": b"y" * 100, "PartitionKey": f"s{n}"} for n in range(1200)]
    for entries in (big, small, big + small):
        chunks = chunk_entries(entries)
        assert [entry for chunk in chunks for entry in chunk] == entries        # all, in order
        for chunk in chunks:
            assert len(chunk) <= 500
            assert sum(len(e["Data"]) + len(e["PartitionKey"]) for e in chunk) <= MAX_BYTES_PER_PUT
    assert len(chunk_entries(big)) == 3      # 5 records of 900 KiB fit in 5 MiB, a 6th does not


# --- retries ----------------------------------------------------------------------------------

def test_records_that_come_back_failed_are_retried_alone_and_land_once(kinesis):
    flaky = PartlyThrottledKinesis(kinesis, failing_indexes={1, 4, 7})
    batch = events(10)
    KinesisPublisher(flaky, STREAM).publish(batch)
    assert flaky.sent[1] == [batch[1].event_id, batch[4].event_id, batch[7].event_id]
    assert len(flaky.sent) == 2
    assert landed_keys(kinesis) == Counter(e.event_id for e in batch)


def test_a_throttled_single_record_is_retried_and_lands_once(kinesis):
    attempts = throttle(kinesis, "PutRecord", times=2)
    (stored,) = events(1)
    KinesisPublisher(kinesis, STREAM).publish([stored])
    assert attempts["PutRecord"] == 3
    assert landed_keys(kinesis) == Counter({stored.event_id: 1})


def test_a_throttled_put_records_call_is_retried_and_every_record_lands_once(kinesis):
    attempts = throttle(kinesis, "PutRecords", times=1)
    batch = events(600)
    KinesisPublisher(kinesis, STREAM).publish(batch)
    assert attempts["PutRecords"] == 3       # the first chunk twice, the second once
    assert landed_keys(kinesis) == Counter(e.event_id for e in batch)


class SleepRecorder:
    def __init__(self) -> None:
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        threading.Event().wait(seconds)


@pytest.mark.parametrize("operation, count", [("PutRecord", 1), ("PutRecords", 3)])
def test_persistent_throttling_gives_up_with_publish_error_within_the_budget(kinesis, operation, count):
    attempts = throttle(kinesis, operation)
    sleep = SleepRecorder()
    with pytest.raises(PublishError, match="in time"):
        KinesisPublisher(kinesis, STREAM, retry_budget_seconds=0.4, sleep=sleep).publish(events(count))
    assert attempts[operation] > 1                   # it did retry ...
    assert sum(sleep.slept) <= 0.4                  # ... and waited no longer than its budget
    assert landed_keys(kinesis) == Counter()


def test_persistent_per_record_failures_give_up_with_publish_error(kinesis):
    class AlwaysThrottled(PartlyThrottledKinesis):
        def put_records(self, StreamName, Records):
            self.sent.append([record["PartitionKey"] for record in Records])
            return {"FailedRecordCount": len(Records), "Records": [{"ErrorCode": THROTTLED}] * len(Records)}

    flaky = AlwaysThrottled(kinesis, set())
    with pytest.raises(PublishError):
        KinesisPublisher(flaky, STREAM, retry_budget_seconds=0.3).publish(events(5))
    assert len(flaky.sent) > 1


def test_a_missing_stream_fails_at_once_without_retrying(kinesis):
    counter = CallCounter(kinesis)
    sleep = SleepRecorder()
    with pytest.raises(PublishError, match="ResourceNotFound"):
        KinesisPublisher(kinesis, "no-such-stream", sleep=sleep).publish(events(1))
    assert counter.calls == {"PutRecord": 1}
    assert sleep.slept == []


# --- through the route on the cloud backend -------------------------------------------------------

@pytest.fixture
def aws_backend(client, monkeypatch, aws_env):
    monkeypatch.setenv("DALET_BACKEND", "aws")
    monkeypatch.setenv("DALET_STREAM_NAME", STREAM)
    monkeypatch.setenv("DALET_BQ_DATASET", "dalet")
    monkeypatch.setenv("DALET_BQ_TABLE", "events")
    runtime.shutdown()
    yield client
    runtime.shutdown()


EVENT = {"experiment": "checkout", "variant": "A", "event": "participate", "uuid": "route-user"}


def test_the_route_hands_events_to_kinesis_and_answers_200(aws_backend, kinesis):
    response = aws_backend.http.post("/track", headers={"Content-Type": "application/json"},
                                     body=json.dumps([EVENT, {**EVENT, "event": "purchase"}]).encode())
    assert response.status_code == 200
    assert sorted(json.loads(record["Data"])["event"] for record in stream_records(kinesis)) == [
        "participate", "purchase"]


def test_the_kinesis_client_is_created_once_per_container(aws_backend, kinesis, monkeypatch):
    import botocore.session

    created = []
    real_create_client = botocore.session.Session.create_client
    monkeypatch.setattr(botocore.session.Session, "create_client",
                        lambda self, *a, **k: created.append(a) or real_create_client(self, *a, **k))
    for n in range(3):
        assert aws_backend.http.get(f"/track?experiment=e&variant=A&event=participate&uuid=u{n}").status_code == 200
    assert created == [("kinesis",)]


def test_persistent_throttling_answers_503_and_nothing_lands(aws_backend, kinesis, caplog):
    throttle(runtime.publisher().client, "PutRecords")
    response = aws_backend.http.post("/track", headers={"Content-Type": "application/json"},
                                     body=json.dumps([EVENT, {**EVENT, "uuid": "other"}]).encode())
    assert response.status_code == 503
    assert THROTTLED in caplog.text and json.loads(response.body)["reason"] == "stream_unavailable"
    assert stream_records(kinesis) == []


@pytest.fixture
def silent_kinesis_endpoint(monkeypatch) -> Iterator[str]:
    """A socket that accepts connections and never answers: a hung Kinesis endpoint."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_hold() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_hold, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", url)
    yield url
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


def test_a_hung_kinesis_endpoint_answers_503_instead_of_hanging_the_track_function(aws_backend,
                                                                                  silent_kinesis_endpoint, caplog):
    response = aws_backend.http.get("/track?experiment=e&variant=A&event=participate&uuid=u")
    assert response.status_code == 503
    assert "timeout" in caplog.text.lower()
