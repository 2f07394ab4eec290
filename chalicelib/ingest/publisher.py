"""Publishers hand stored events to the stream: Kinesis in the cloud, the embedded stream locally.

A publish either succeeds for every event or raises PublishError, so the route can
answer 503 and the browser keeps the events to send again.
"""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.ingest.events import StoredEvent
from chalicelib.ingest.records import encode_record

if TYPE_CHECKING:  # the cloud track function never loads the embedded stream (sqlite3)
    from chalicelib.ingest.local_stream import LocalStream

log = logging.getLogger("dalet.publisher")

MAX_RECORDS_PER_PUT = 500
MAX_BYTES_PER_PUT = 5 * 1024 * 1024
# The track function has a few seconds; retries must end well before it does.
DEFAULT_RETRY_BUDGET_SECONDS = 2.0
_FIRST_BACKOFF_SECONDS = 0.05
_MAX_BACKOFF_SECONDS = 0.5
# botocore's defaults (60 s timeouts, its own retries with backoff) would outlast the track
# function; the retries are ours instead, bounded by the retry budget.
KINESIS_CLIENT_SETTINGS = {"connect_timeout": 1, "read_timeout": 2, "retries": {"total_max_attempts": 1}}
_RETRYABLE_ERROR_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "LimitExceededException",
    "InternalFailure",
    "ServiceUnavailable",
    "KMSThrottlingException",
}


class PublishError(RuntimeError):
    """The events could not be handed to the stream; nothing may be acknowledged."""


class Publisher(Protocol):
    def publish(self, events: Sequence[StoredEvent]) -> None: ...


def partition_key(stored: StoredEvent) -> str:
    # The event_id spreads load evenly over shards; `namespace:experiment` would make a
    # big experiment one hot shard.
    return stored.event_id


def _entry(stored: StoredEvent) -> dict[str, Any]:
    return {"Data": encode_record(stored), "PartitionKey": partition_key(stored)}


def _entry_size(entry: dict[str, Any]) -> int:
    return len(entry["Data"]) + len(entry["PartitionKey"].encode("utf-8"))


def chunk_entries(entries: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split into PutRecords calls of at most 500 records and 5 MiB."""
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    current_bytes = 0
    for entry in entries:
        size = _entry_size(entry)
        if current and (len(current) == MAX_RECORDS_PER_PUT or current_bytes + size > MAX_BYTES_PER_PUT):
            chunks.append(current)
            current, current_bytes = [], 0
        current.append(entry)
        current_bytes += size
    if current:
        chunks.append(current)
    return chunks


class KinesisPublisher:
    def __init__(self, client: Any, stream_name: str,
                 retry_budget_seconds: float = DEFAULT_RETRY_BUDGET_SECONDS,
                 sleep: Callable[[float], None] = time.sleep):
        self.client = client
        self.stream_name = stream_name
        self.retry_budget_seconds = retry_budget_seconds
        self._sleep = sleep

    def publish(self, events: Sequence[StoredEvent]) -> None:
        deadline = time.monotonic() + self.retry_budget_seconds
        entries = [_entry(stored) for stored in events]
        if len(entries) == 1:
            self._put_one(entries[0], deadline)
            return
        for chunk in chunk_entries(entries):
            self._put_many(chunk, deadline)

    def _put_one(self, entry: dict[str, Any], deadline: float) -> None:
        attempt = 0
        while True:
            try:
                self.client.put_record(StreamName=self.stream_name, **entry)
                return
            except Exception as error:  # botocore ClientError, connection errors, timeouts
                if not _is_retryable(error):
                    raise PublishError(f"Kinesis refused the record: {error}") from error
                attempt = self._back_off(attempt, deadline, str(error))

    def _put_many(self, entries: list[dict[str, Any]], deadline: float) -> None:
        """PutRecords, then retry only the records that came back failed."""
        attempt = 0
        pending = entries
        while pending:
            try:
                response = self.client.put_records(StreamName=self.stream_name, Records=pending)
            except Exception as error:
                if not _is_retryable(error):
                    raise PublishError(f"Kinesis refused the records: {error}") from error
                attempt = self._back_off(attempt, deadline, str(error))
                continue
            if not response.get("FailedRecordCount"):
                return
            failed = [
                (entry, result) for entry, result in zip(pending, response["Records"], strict=True)
                if "ErrorCode" in result
            ]
            pending = [entry for entry, _ in failed]
            reason = f"{len(failed)} records failed, e.g. {failed[0][1].get('ErrorCode')}"
            attempt = self._back_off(attempt, deadline, reason)

    def _back_off(self, attempt: int, deadline: float, reason: str) -> int:
        """Full-jitter exponential backoff, bounded by the deadline."""
        delay = random.uniform(0, min(_MAX_BACKOFF_SECONDS, _FIRST_BACKOFF_SECONDS * 2 ** attempt))
        if time.monotonic() + delay > deadline:
            raise PublishError(f"Kinesis did not take the events in time: {reason}")
        log.info("Kinesis retry %d in %.3fs: %s", attempt + 1, delay, reason)
        self._sleep(delay)
        return attempt + 1


def _is_retryable(error: Exception) -> bool:
    response = getattr(error, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    if code is not None:
        return code in _RETRYABLE_ERROR_CODES
    return True  # no AWS error code: a network failure or timeout, worth another try


class LocalStreamPublisher:
    def __init__(self, stream: LocalStream):
        self.stream = stream

    def publish(self, events: Sequence[StoredEvent]) -> None:
        from chalicelib.ingest.local_stream import StreamUnavailable

        try:
            self.stream.append([(partition_key(stored), encode_record(stored)) for stored in events])
        except StreamUnavailable as error:
            raise PublishError(str(error)) from error
