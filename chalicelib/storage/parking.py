"""Parking: the records of a batch the warehouse cannot take, sent whole to the failure queue.

The stream keeps records 24 hours; the writer's trigger gives up on a batch after 6 hours
and then sends the failure queue only a pointer (shard and sequence numbers), which
`replay` can follow only while the stream still has the records. So once a batch has
waited `DALET_PARK_AFTER_SECONDS` (1 h by default) and the warehouse still fails, the
writer parks the records themselves in the queue, which keeps messages 14 days, and
reports the batch as handled. `replay` writes them later through the same `write_batch`,
idempotent by event id.

A message is JSON of at most MAX_MESSAGE_BYTES: a header (kind, reason, part of parts)
and the records as compact arrays [sequence number, partition key, arrival time in epoch
seconds, base64 of the raw data]. A batch larger than one message is split into several.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from chalicelib.config import Settings
from chalicelib.ingest.events import now
from chalicelib.storage.writer import StreamRecord

log = logging.getLogger("dalet.parking")

PARKED_KIND = "dalet.parked-records"
PARKED_VERSION = 1
# SQS takes at most 256 KiB (262,144 bytes) per message; the margin covers the envelope.
MAX_MESSAGE_BYTES = 250_000
MAX_REASON_CHARACTERS = 1000     # an error message can be long; the records must fit beside it
# Sending runs inside the writer's 120 s timeout: a few quick attempts, then Lambda retries the batch.
SQS_CLIENT_SETTINGS = {"connect_timeout": 2, "read_timeout": 5, "retries": {"total_max_attempts": 3}}

Sender = Callable[[str, str], None]    # (queue URL, message body)


class ParkingFailed(RuntimeError):
    """The records could not all be sent to the queue; the batch must be retried, not acknowledged."""


@dataclass(frozen=True)
class ParkedRecords:
    """One parked message, read back: its records and why they were parked."""
    reason: str
    part: int
    parts: int
    records: list[StreamRecord]


def send_with_sqs(queue_url: str, body: str) -> None:
    _sqs_client().send_message(QueueUrl=queue_url, MessageBody=body)


@lru_cache(maxsize=1)
def _sqs_client() -> Any:
    """Built on the first parking only: a cold start of the writer never pays for it."""
    import botocore.session
    from botocore.config import Config

    return botocore.session.get_session().create_client("sqs", config=Config(**SQS_CLIENT_SETTINGS))


@dataclass(frozen=True)
class Parking:
    """Where and when the writer parks a batch the warehouse keeps refusing."""
    queue_url: str
    after: timedelta
    send: Sender = send_with_sqs

    def due(self, records: Sequence[StreamRecord], at: datetime | None = None) -> bool:
        """Whether the batch's oldest record has waited at least `after`."""
        if not records:
            return False
        oldest = min(record.arrived_at for record in records)
        return (at or now()) - oldest >= self.after

    def park(self, records: Sequence[StreamRecord], reason: str) -> int:
        """Send every record to the queue; the number of messages. ParkingFailed if any send fails."""
        bodies = message_bodies(records, reason)
        for index, body in enumerate(bodies):
            try:
                self.send(self.queue_url, body)
            except Exception as error:
                raise ParkingFailed(f"could not park records in {self.queue_url} (message {index + 1} of "
                                    f"{len(bodies)}): {type(error).__name__}: {error}") from error
        log.warning("parked %d records in %d message(s) in the failure queue: %s", len(records), len(bodies), reason)
        return len(bodies)


def parking_for(settings: Settings) -> Parking | None:
    """The stage's parking, or None: the local backend (its stream keeps records until written) or no queue."""
    if settings.is_local or not settings.failure_queue_url:
        return None
    return Parking(settings.failure_queue_url, timedelta(seconds=settings.park_after_seconds))


def message_bodies(records: Sequence[StreamRecord], reason: str) -> list[str]:
    """The records as JSON message bodies, each within MAX_MESSAGE_BYTES, in sequence order."""
    reason = reason[:MAX_REASON_CHARACTERS]
    entries = [json.dumps(_entry(record), separators=(",", ":")) for record in records]
    groups: list[list[str]] = []
    header_bytes = len(_body(reason, 999, 999, [])) + 8      # room for the part numbers
    size = MAX_MESSAGE_BYTES
    for entry in entries:
        if header_bytes + len(entry) + 1 > MAX_MESSAGE_BYTES:
            raise ParkingFailed(f"a record of {len(entry)} bytes encoded cannot fit in one queue message")
        if size + len(entry) + 1 > MAX_MESSAGE_BYTES:
            groups.append([])
            size = header_bytes
        groups[-1].append(entry)
        size += len(entry) + 1
    return [_body(reason, part, len(groups), group) for part, group in enumerate(groups, start=1)]


def _entry(record: StreamRecord) -> list[Any]:
    return [record.sequence_number, record.partition_key, record.arrived_at.timestamp(),
            base64.b64encode(record.data).decode("ascii")]


def _body(reason: str, part: int, parts: int, entries: list[str]) -> str:
    header = json.dumps({"kind": PARKED_KIND, "version": PARKED_VERSION, "reason": reason,
                         "part": part, "parts": parts}, separators=(",", ":"))
    return f'{header[:-1]},"records":[{",".join(entries)}]}}'


def parked_records(body: str) -> ParkedRecords | None:
    """A parked message's records, or None if the body is not one (e.g. Lambda's pointer note).

    A body that says it is parked records but cannot be read raises ValueError: it must stay on the queue.
    """
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("kind") != PARKED_KIND:
        return None
    if message.get("version") != PARKED_VERSION:
        raise ValueError(f"parked records of version {message.get('version')!r}; this replay reads {PARKED_VERSION}")
    try:
        records = [StreamRecord(str(sequence), str(key), binascii.a2b_base64(data),
                                datetime.fromtimestamp(arrived, UTC))
                   for sequence, key, arrived, data in message["records"]]
        return ParkedRecords(str(message["reason"]), int(message["part"]), int(message["parts"]), records)
    except (KeyError, TypeError, ValueError, binascii.Error) as error:
        raise ValueError(f"unreadable parked records: {error}") from error
