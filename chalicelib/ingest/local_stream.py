"""The embedded stream: a durable, ordered log in SQLite that stands in for Kinesis.

`chalice local` serves routes but never invokes Kinesis handlers, so on the local
backend the publisher appends records here and a consumer thread in the same process
hands them, in the exact event shape Lambda delivers, to the same handler that
`@app.on_kinesis_record` registers. The consumer checkpoints only after the handler
returns, so a crash re-delivers (at least once; dedup by event_id makes it exact).

Space: written records are deleted at each checkpoint, and the file gives the freed
pages back (auto_vacuum=INCREMENTAL, an incremental vacuum once `RECLAIM_PAGES` are
free; the WAL is truncated to `WAL_SIZE_LIMIT` after each checkpoint), so after a
backlog drains the stream shrinks instead of keeping its peak size for ever. A file
made before this (auto_vacuum off) is converted by one VACUUM when opened.
"""
from __future__ import annotations

import base64
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("dalet.local_stream")

SHARD_ID = "shardId-000000000000"
REGION = "local"
MAX_BATCH_RECORDS = 500
RECLAIM_PAGES = 1024          # free pages (4 MiB at SQLite's default page size) worth giving back
WAL_SIZE_LIMIT = 4 * 1024 * 1024
_AUTO_VACUUM_INCREMENTAL = 2
_SEQUENCE_WIDTH = 21   # Kinesis sequence numbers are long decimal strings; pad so they sort as text too
_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    partition_key TEXT NOT NULL,
    data BLOB NOT NULL,
    arrived_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    consumer TEXT PRIMARY KEY,
    sequence INTEGER NOT NULL
);
"""


class StreamUnavailable(RuntimeError):
    """The stream could not durably take the records (disk full, read-only folder...)."""


@dataclass(frozen=True)
class StoredRecord:
    sequence: int
    partition_key: str
    data: bytes
    arrived_at: float

    @property
    def sequence_number(self) -> str:
        return format_sequence(self.sequence)


def format_sequence(sequence: int) -> str:
    return str(sequence).zfill(_SEQUENCE_WIDTH)


class LocalStream:
    """Append-only log; every append is committed (fsync'd) before it returns."""

    def __init__(self, path: Path | str, name: str):
        self.path = str(path)
        self.name = name
        self._appended = threading.Condition()
        # One connection for every thread, used under a lock: `chalice local` starts a thread
        # per request, and a connection per thread would be opened (and leaked) per request.
        self._lock = threading.Lock()
        self.appended = 0     # records this object committed: the server's periodic summary reads it
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        # Before any table exists, so a new file is created with it; an older file needs the VACUUM below.
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        self._db.executescript(_SCHEMA)
        if self._db.execute("PRAGMA auto_vacuum").fetchone()[0] != _AUTO_VACUUM_INCREMENTAL:
            log.info("converting %s to give freed space back (one VACUUM)", self.path)
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()   # VACUUM's copy went to the WAL

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    def append(self, records: Sequence[tuple[str, bytes]]) -> list[str]:
        """Append (partition_key, data) pairs atomically; their sequence numbers, in order."""
        arrived_at = time.time()
        try:
            with self._connection() as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    sequences = [
                        db.execute(
                            "INSERT INTO records (partition_key, data, arrived_at) VALUES (?, ?, ?)",
                            (key, data, arrived_at),
                        ).lastrowid
                        for key, data in records
                    ]
                    db.execute("COMMIT")
                except BaseException:
                    _roll_back(db)
                    raise
                self.appended += len(sequences)
        except sqlite3.Error as error:
            raise StreamUnavailable(f"the local stream at {self.path} cannot take records: {error}") from error
        self.wake()
        return [format_sequence(sequence) for sequence in sequences]  # type: ignore[arg-type]  # an INSERT's rowid

    def wake(self) -> None:
        """Wake whoever waits for records (new records, or a consumer asked to stop)."""
        with self._appended:
            self._appended.notify_all()

    def wait_for_records(self, timeout: float) -> None:
        with self._appended:
            self._appended.wait(timeout)

    def checkpoint(self, consumer: str) -> int:
        with self._connection() as db:
            row = db.execute("SELECT sequence FROM checkpoints WHERE consumer = ?", (consumer,)).fetchone()
        return row[0] if row else 0

    def read_after(self, sequence: int, limit: int = MAX_BATCH_RECORDS) -> list[StoredRecord]:
        with self._connection() as db:
            rows = db.execute(
                "SELECT sequence, partition_key, data, arrived_at FROM records"
                " WHERE sequence > ? ORDER BY sequence LIMIT ?",
                (sequence, limit),
            ).fetchall()
        return [StoredRecord(*row) for row in rows]

    def commit_checkpoint(self, consumer: str, sequence: int) -> None:
        """Record progress and trim what every reader has consumed (the one consumer here)."""
        with self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT INTO checkpoints (consumer, sequence) VALUES (?, ?)"
                    " ON CONFLICT (consumer) DO UPDATE SET sequence = excluded.sequence",
                    (consumer, sequence),
                )
                db.execute("DELETE FROM records WHERE sequence <= ?", (sequence,))
                db.execute("COMMIT")
            except BaseException:
                _roll_back(db)
                raise
            _reclaim_space(db)

    def oldest_unwritten_arrival(self, consumer: str) -> float | None:
        """When the oldest record the consumer has not checkpointed arrived (epoch seconds); None if none."""
        with self._connection() as db:
            row = db.execute(
                "SELECT arrived_at FROM records WHERE sequence > "
                "(SELECT IFNULL(MAX(sequence), 0) FROM checkpoints WHERE consumer = ?) ORDER BY sequence LIMIT 1",
                (consumer,),
            ).fetchone()
        return row[0] if row else None

    def pending(self, consumer: str) -> int:
        after = self.checkpoint(consumer)
        with self._connection() as db:
            return db.execute("SELECT COUNT(*) FROM records WHERE sequence > ?", (after,)).fetchone()[0]


def _reclaim_space(db: sqlite3.Connection) -> None:
    """Give the pages of deleted records back to the file system once there are enough of them.

    Under steady ingest the free pages are reused by new records and stay few; after a
    backlog drains they are many, and the file shrinks to what it still holds. Failing to
    shrink (e.g. a full disk) loses nothing, so it is only logged.
    """
    try:
        if db.execute("PRAGMA freelist_count").fetchone()[0] >= RECLAIM_PAGES:
            # executescript steps the pragma to the end; execute() frees one page per step taken.
            db.executescript("PRAGMA incremental_vacuum;")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.Error as error:
        log.warning("could not give the stream's free space back yet: %s", error)


def _roll_back(db: sqlite3.Connection) -> None:
    # SQLite has already rolled back after e.g. "database or disk is full"; a second
    # ROLLBACK would fail and hide that reason behind "no transaction is active".
    if db.in_transaction:
        db.execute("ROLLBACK")


def kinesis_event(records: Sequence[StoredRecord], stream_name: str) -> dict[str, Any]:
    """The event dict Lambda hands a Kinesis-triggered function."""
    source_arn = f"arn:aws:kinesis:{REGION}:000000000000:stream/{stream_name}"
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": record.partition_key,
                    "sequenceNumber": record.sequence_number,
                    "data": base64.b64encode(record.data).decode("ascii"),
                    "approximateArrivalTimestamp": record.arrived_at,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{SHARD_ID}:{record.sequence_number}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::000000000000:role/dalet-local",
                "awsRegion": REGION,
                "eventSourceARN": source_arn,
            }
            for record in records
        ]
    }


class LocalContext:
    """The bits of a Lambda context a handler may look at."""

    function_name = "dalet-local-writer"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:dalet-local-writer"

    def __init__(self, timeout_seconds: float = 60):
        self.aws_request_id = f"local-{time.time_ns()}"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


Handler = Callable[[dict[str, Any], Any], Any]


class LocalConsumer(threading.Thread):
    """Feeds the stream to a Kinesis handler, in order, with Lambda's retry semantics."""

    CONSUMER = "writer"

    def __init__(self, stream: LocalStream, handler: Handler, batch_window: float = 0.05,
                 idle_poll: float = 0.5, max_backoff: float = 5.0):
        super().__init__(name="dalet-local-consumer", daemon=True)
        self.stream = stream
        self.handler = handler
        self.batch_window = batch_window
        self.idle_poll = idle_poll
        self.max_backoff = max_backoff
        self._stopping = threading.Event()

    def drain(self, timeout: float) -> bool:
        """Wait until every record is written (or `timeout` passes); whether the stream is empty."""
        deadline = time.monotonic() + timeout
        while self.is_alive() and self.stream.pending(self.CONSUMER) > 0:
            if time.monotonic() >= deadline:
                return False
            self.stream.wake()
            time.sleep(0.02)
        return self.stream.pending(self.CONSUMER) == 0

    def stop(self, timeout: float = 10) -> None:
        self._stopping.set()
        self.stream.wake()
        self.join(timeout)

    def run(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                delivered = self.deliver_once()
                backoff = 0.1
            except Exception:  # the handler failed: keep the records, retry later, never drop
                log.exception("the writer failed; the batch will be redelivered in %.1fs", backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            if not delivered:
                self.stream.wait_for_records(self.idle_poll)
                self._stopping.wait(self.batch_window)   # let a burst gather into one batch

    def deliver_once(self) -> int:
        """Hand the next batch to the handler; the number of records checkpointed."""
        after = self.stream.checkpoint(self.CONSUMER)
        batch = self.stream.read_after(after)
        if not batch:
            return 0
        response = self.handler(kinesis_event(batch, self.stream.name), LocalContext())
        done_through = _last_done(batch, response)
        if done_through > after:
            self.stream.commit_checkpoint(self.CONSUMER, done_through)
        if done_through < batch[-1].sequence:
            raise RuntimeError(f"the writer asked to retry from sequence {format_sequence(done_through + 1)}")
        return len(batch)


def _last_done(batch: Sequence[StoredRecord], response: Any) -> int:
    """Honour ReportBatchItemFailures: everything before the lowest failed sequence is done."""
    failures = (response or {}).get("batchItemFailures") if isinstance(response, dict) else None
    if not failures:
        return batch[-1].sequence
    lowest_failed = min(int(failure["itemIdentifier"]) for failure in failures)
    return lowest_failed - 1
