"""`replay`: write the batches parked in the failure queue, then take them off the queue.

The queue holds two kinds of message:
- parked records (chalicelib/storage/parking.py): the writer, failing for longer than
  DALET_PARK_AFTER_SECONDS, sent the records themselves. Replay writes them as they are.
- Lambda's pointer note: the trigger gave up on a batch the writer could not park (its
  records reached 6 hours of age) and sent the shard and the first and last sequence
  numbers, not the records. They stay in the stream for its retention period; replay
  reads them back.
Either way the records go through the same `write_batch` the writer uses, and a message
is deleted only after all its records are written, so replaying twice is harmless
(writes are idempotent by event_id).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from chalicelib.storage.parking import ParkedRecords, parked_records
from chalicelib.storage.writer import StreamRecord, Warehouse, write_batch

Printer = Callable[[str], None]
RECEIVE_BATCH = 10
VISIBILITY_SECONDS = 300
MAX_GET_RECORDS_CALLS = 10_000


@dataclass(frozen=True)
class ParkedBatch:
    message_id: str
    shard_id: str
    first_sequence: str
    last_sequence: str
    stream_arn: str


@dataclass
class ReplaySummary:
    written: int = 0        # messages (pointer notes or parked records) written and removed from the queue
    kept: int = 0           # messages left on the queue (failed again, expired, or not a failure message)
    records: int = 0


def replay_parked_batches(sqs: Any, queue_url: str, kinesis: Any, stream_name: str, stream_arn: str,
                          warehouse: Warehouse, say: Printer) -> ReplaySummary:
    summary = ReplaySummary()
    kept: list[str] = []
    try:
        for message in received_messages(sqs, queue_url):
            try:
                written = _replay_one(message, kinesis, stream_name, stream_arn, warehouse, say)
            except Exception:
                kept.append(message["ReceiptHandle"])
                raise
            if written is None:
                kept.append(message["ReceiptHandle"])
                continue
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            summary.written += 1
            summary.records += written
    finally:
        # What was not written becomes visible again at once, for the next run.
        for receipt_handle in kept:
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)
        summary.kept = len(kept)
    return summary


def received_messages(sqs: Any, queue_url: str) -> Iterator[dict[str, Any]]:
    """Each message on the queue once: received messages stay invisible while this run works."""
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=RECEIVE_BATCH,
                                       VisibilityTimeout=VISIBILITY_SECONDS, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return
        yield from messages


def _replay_one(message: dict[str, Any], kinesis: Any, stream_name: str, stream_arn: str,
                warehouse: Warehouse, say: Printer) -> int | None:
    """The number of records written, or None if the message must stay on the queue."""
    try:
        parked = parked_records(message["Body"])
    except ValueError as unreadable:
        say(f"message {message['MessageId']}: {unreadable}; left on the queue")
        return None
    if parked is not None:
        return _write_parked(message["MessageId"], parked, warehouse, say)
    batch = _parse(message)
    if batch is None:
        say(f"message {message['MessageId']}: neither parked records nor a Kinesis failure note; left on the queue")
        return None
    if batch.stream_arn != stream_arn:
        say(f"batch {batch.message_id}: from {batch.stream_arn}, not this stage's stream; left on the queue")
        return None
    records = batch_records(kinesis, stream_name, batch)
    if not records:
        say(f"batch {batch.message_id}: its records are no longer in the stream (past its retention); "
            "left on the queue for you to inspect")
        return None
    if records[0].sequence_number != batch.first_sequence:
        say(f"batch {batch.message_id}: records before {records[0].sequence_number} have expired from the stream")
    failures = write_batch(records, warehouse)["batchItemFailures"]
    if failures:
        say(f"batch {batch.message_id}: written up to sequence {failures[0]['itemIdentifier']} only; "
            "left on the queue, run replay again")
        return None
    say(f"batch {batch.message_id}: {len(records)} records from {batch.shard_id} written")
    return len(records)


def _write_parked(message_id: str, parked: ParkedRecords, warehouse: Warehouse, say: Printer) -> int | None:
    """Records the writer parked, written straight through (the stream may have forgotten them)."""
    failures = write_batch(parked.records, warehouse)["batchItemFailures"]
    if failures:
        say(f"parked records {message_id}: written up to sequence {failures[0]['itemIdentifier']} only; "
            "left on the queue, run replay again")
        return None
    say(f"parked records {message_id} (part {parked.part} of {parked.parts}, parked because {parked.reason}): "
        f"{len(parked.records)} records written")
    return len(parked.records)


def _parse(message: dict[str, Any]) -> ParkedBatch | None:
    try:
        info = json.loads(message["Body"])["KinesisBatchInfo"]
        return ParkedBatch(message["MessageId"], info["shardId"],
                           info["startSequenceNumber"], info["endSequenceNumber"], info["streamArn"])
    except (ValueError, KeyError, TypeError):
        return None


def batch_records(kinesis: Any, stream_name: str, batch: ParkedBatch) -> list[StreamRecord]:
    """The records from the first to the last sequence number of the batch, read from its shard."""
    try:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream_name, ShardId=batch.shard_id, ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=batch.first_sequence,
        )["ShardIterator"]
    except (kinesis.exceptions.InvalidArgumentException, kinesis.exceptions.ResourceNotFoundException):
        return []
    last = int(batch.last_sequence)
    records: list[StreamRecord] = []
    for _ in range(MAX_GET_RECORDS_CALLS):
        response = kinesis.get_records(ShardIterator=iterator, Limit=1000)
        for record in response["Records"]:
            if int(record["SequenceNumber"]) > last:
                return records
            records.append(StreamRecord(
                sequence_number=record["SequenceNumber"],
                partition_key=record["PartitionKey"],
                data=record["Data"],
                arrived_at=record["ApproximateArrivalTimestamp"].astimezone(UTC),
            ))
        iterator = response.get("NextShardIterator")
        caught_up = not response["Records"] and response.get("MillisBehindLatest", 0) == 0
        if iterator is None or caught_up:
            return records
    return records
