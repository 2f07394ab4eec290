"""The batch writer: Kinesis-shaped records in, warehouse rows and dead letters out.

One record's failure never poisons a batch: a record that cannot be decoded or that
the warehouse rejects goes to the `dead_letters` table with its reason, and the rest
of the batch lands. Only a transient warehouse failure is retried, and retrying is
safe because every write is idempotent.

Identity across deletions. An event's identity (`event_id`) is what reports count once,
but a deletion splits an identity's history: a copy received before the tombstone is
hidden, a copy received after it must count from zero. The writer therefore never
collapses two copies received at different times: within a batch it drops only exact
copies (the same `copy_id`: identity and receipt time, i.e. a redelivered record or a
publisher retry) and hands the warehouse every distinct receipt, in order. Each
warehouse then applies its tombstones before it keeps one copy per identity (DuckDB),
or stores each receipt under its own insertId (BigQuery, whose reports count distinct
uuids, so a re-sent copy never changes a count). Keeping only the first copy of an
identity instead would keep the pre-deletion one, which the tombstone hides, and lose
the copy acknowledged after the deletion.

Parking. Given a `Parking` (chalicelib/storage/parking.py; the cloud writer has one), a
batch whose warehouse write fails (for any reason) once its oldest record has waited
long enough is not retried: its unwritten records go to the failure queue, where they outlive
the stream's retention, and the batch is reported as handled. If the queue cannot take
them, the batch fails as before and Lambda retries it.
"""
from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, NamedTuple, Protocol

from chalicelib.ingest.events import StoredEvent, format_timestamp, now
from chalicelib.ingest.records import InvalidRecord, decode_record

# Not under the "dalet" logger: Chalice prints that one as plain text, which Lambda's JSON log
# format files as INFO and drops at the functions' WARN level; this one reaches the log group.
log = logging.getLogger(__name__)
# The words every dead-lettering logs: the deployed stage counts them (a log metric filter) and alarms.
DEAD_LETTER_LOG_MARK = "dead-lettered"
BatchResponse = dict[str, list[dict[str, str]]]


class StreamRecord(NamedTuple):  # one per record on the writer's hot path: cheap to build
    sequence_number: str
    partition_key: str
    data: bytes
    arrived_at: datetime


@dataclass(frozen=True)
class DeadLetter:
    sequence_number: str
    partition_key: str
    data: bytes
    reason: str
    arrived_at: datetime
    dead_lettered_at: datetime


@dataclass(frozen=True)
class RowRejection:
    """The warehouse refused one row for good (not a transient failure)."""
    copy_id: str          # `copy_id(stored)` of the refused row
    reason: str


class TransientWarehouseError(RuntimeError):
    """The warehouse could not take the rows now; the batch must be retried.

    `rows_written` says how many of the rows, in order, are known to have landed.
    """

    def __init__(self, message: str, rows_written: int = 0):
        super().__init__(message)
        self.rows_written = rows_written


class Parking(Protocol):
    """Where a batch the warehouse keeps refusing goes (chalicelib.storage.parking.Parking; it builds on this
    module)."""

    def due(self, records: Sequence[StreamRecord], at: datetime | None = None) -> bool:
        """Whether the batch has waited long enough to be parked rather than retried."""

    def park(self, records: Sequence[StreamRecord], reason: str) -> int:
        """Park the records, or raise if they cannot be parked; the number of messages sent."""


class Warehouse(Protocol):
    def insert_events(self, events: Sequence[StoredEvent]) -> list[RowRejection]:
        """Insert idempotently by `copy_id`, honouring tombstones before any per-identity
        dedupe (see the module docstring); return the rows refused for good."""

    def insert_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Insert idempotently by sequence_number."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def copy_id(stored: StoredEvent) -> str:
    """One received copy of an event: its identity and its receipt time in microseconds.

    A redelivered record carries the same receipt time (stamped once, at /track), so a
    retry is still idempotent; a copy received later, such as one tracked again after a
    deletion, is a different copy and is never mistaken for the first.
    """
    return f"{stored.event_id}-{(stored.received_at - _EPOCH) // _MICROSECOND}"


CopyKey = tuple[str, datetime]


def _copy_key(stored: StoredEvent) -> CopyKey:
    """`copy_id` as a tuple: what it says, without formatting a string per record on the hot path."""
    return stored.event_id, stored.received_at


def records_from_kinesis_event(event: Any) -> list[StreamRecord]:
    """The records of Chalice's KinesisEvent as plain StreamRecords.

    Read from the event's raw dict: the same fields Chalice's KinesisRecord decodes,
    without building an object per record that the writer would only copy.
    """
    return [_stream_record(raw["kinesis"]) for raw in event.to_dict()["Records"]]


def _stream_record(kinesis: dict[str, Any]) -> StreamRecord:
    return StreamRecord(kinesis["sequenceNumber"], kinesis["partitionKey"], binascii.a2b_base64(kinesis["data"]),
                        datetime.fromtimestamp(kinesis["approximateArrivalTimestamp"], UTC))


def write_batch(records: Iterable[StreamRecord], warehouse: Warehouse,
                parking: Parking | None = None) -> BatchResponse:
    """Write one Kinesis batch; the return value is Lambda's partial batch response."""
    ordered = sorted(records, key=lambda r: int(r.sequence_number))
    unique, letters, record_of = _decode(ordered)
    # Any warehouse failure may be parked, not only a transient one: a refusal that lasts
    # (credentials revoked, a dataset deleted) would otherwise outlast the stream's retention too.
    try:
        # Undecodable records are dead-lettered first, so a retry "from sequence N" never skips one.
        _dead_letter(warehouse, letters, len(ordered))
    except Exception as error:
        return _park_or(parking, ordered, ordered, error, _raise(error))
    try:
        rejections = warehouse.insert_events(unique)
    except TransientWarehouseError as error:
        unwritten = [record_of[_copy_key(stored)] for stored in unique[max(error.rows_written, 0):]]
        return _park_or(parking, ordered, unwritten, error,
                        partial(_retry_from, error, unique, record_of))
    except Exception as error:
        return _park_or(parking, ordered, [record_of[_copy_key(stored)] for stored in unique], error, _raise(error))
    rejected = _rejected_letters(rejections, unique, record_of)
    try:
        _dead_letter(warehouse, rejected, len(ordered))
    except Exception as error:
        # Replay writes the accepted copies again (idempotently) and dead-letters the refused ones.
        return _park_or(parking, ordered, [_record_of_letter(letter, ordered) for letter in rejected], error,
                        _raise(error))
    return {"batchItemFailures": []}


def _park_or(parking: Parking | None, batch: list[StreamRecord], unwritten: list[StreamRecord],
             error: Exception, otherwise: Callable[[], BatchResponse]) -> BatchResponse:
    """Park the unwritten records if the batch has waited long enough, else fail as `otherwise` does."""
    if parking is None or not parking.due(batch):
        return otherwise()
    parking.park(unwritten, f"the warehouse kept failing: {type(error).__name__}: {error}")
    return {"batchItemFailures": []}


def _raise(error: Exception) -> Callable[[], BatchResponse]:
    def fail() -> BatchResponse:
        raise error
    return fail


def _record_of_letter(letter: DeadLetter, records: list[StreamRecord]) -> StreamRecord:
    return next(record for record in records if record.sequence_number == letter.sequence_number)


def _dead_letter(warehouse: Warehouse, letters: list[DeadLetter], batch_size: int) -> None:
    if letters:
        warehouse.insert_dead_letters(letters)
        log.warning("%s %d of %d records: %s", DEAD_LETTER_LOG_MARK, len(letters), batch_size, letters[0].reason)


def _decode(records: list[StreamRecord]) -> tuple[list[StoredEvent], list[DeadLetter], dict[CopyKey, StreamRecord]]:
    """Each distinct copy (by `copy_id`), in order; dead letters; the record each copy came from.

    Copies of one identity received at different times are all kept: which of them counts
    depends on the tombstones, which only the warehouse knows.
    """
    unique: list[StoredEvent] = []
    letters: list[DeadLetter] = []
    record_of: dict[CopyKey, StreamRecord] = {}
    for record in records:
        try:
            stored = decode_record(record.data)
        except InvalidRecord as invalid:
            letters.append(dead_letter(record, str(invalid)))
            continue
        key = _copy_key(stored)
        if key not in record_of:
            record_of[key] = record
            unique.append(stored)
    return unique, letters, record_of


def _rejected_letters(rejections: list[RowRejection], unique: list[StoredEvent],
                      record_of: dict[CopyKey, StreamRecord]) -> list[DeadLetter]:
    if not rejections:
        return []
    record_of_copy = {copy_id(stored): record_of[_copy_key(stored)] for stored in unique}
    return [
        dead_letter(record_of_copy[rejection.copy_id], f"warehouse rejected the row: {rejection.reason}")
        for rejection in rejections
    ]


def _retry_from(
    error: TransientWarehouseError, unique: list[StoredEvent], record_of: dict[CopyKey, StreamRecord]
) -> BatchResponse:
    """Nothing written: raise so the whole batch is retried; some written: retry from the first unwritten."""
    if error.rows_written <= 0:
        raise error
    first_unwritten = record_of[_copy_key(unique[error.rows_written])]
    log.warning("warehouse failed after %d rows (%s); retrying from sequence %s",
                error.rows_written, error, first_unwritten.sequence_number)
    return {"batchItemFailures": [{"itemIdentifier": first_unwritten.sequence_number}]}


def dead_letter(record: StreamRecord, reason: str) -> DeadLetter:
    return DeadLetter(
        sequence_number=record.sequence_number,
        partition_key=record.partition_key,
        data=record.data,
        reason=reason,
        arrived_at=record.arrived_at,
        dead_lettered_at=now(),
    )


def dead_letter_row(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as a JSON-ready row (`data` base64, as BigQuery's BYTES expects)."""
    return {
        "sequence_number": letter.sequence_number,
        "partition_key": letter.partition_key,
        "data": base64.b64encode(letter.data).decode("ascii"),
        "reason": letter.reason,
        "arrived_at": format_timestamp(letter.arrived_at),
        "dead_lettered_at": format_timestamp(letter.dead_lettered_at),
    }
