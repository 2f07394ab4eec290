"""`status`: the pipeline's state in four readings, for a deployed stage or the embedded default.

- stream lag: how far the writer is behind the stream (deployed: the writer's IteratorAge,
  the age of the last record it read, from CloudWatch; locally: the records not yet
  written and the age of the oldest);
- parked batches: batches the writer gave up on, waiting for `replay` (deployed: the
  failure queue's messages; locally there is no queue: the consumer retries until written);
- dead letters in the last day (the dead_letters table);
- the newest event in the warehouse (its received_at);
- locally, the server: DuckDB lets one process open the warehouse file, so while `make run`
  holds it the two warehouse readings are asked of that server (dalet_ops/running_server.py).
- locally, while the running server's warehouse is down: since when, why, and when it is reopened.

Each reading is taken on its own: one that cannot be taken says why, and the others are
still printed. Nothing is created or changed.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chalicelib.config import Settings
from dalet_ops.stage import WRITER, Stage

DEAD_LETTER_WINDOW = timedelta(days=1)
NEWEST_EVENT_LOOKBACK = timedelta(days=7)     # the newest-event query reads only these days' partitions
ITERATOR_AGE_LOOKBACK = timedelta(minutes=15)
LAG_WORTH_A_LOOK = timedelta(minutes=1)


@dataclass(frozen=True)
class Reading:
    name: str
    value: str
    attention: bool = False       # worth a look: lag, parked batches, dead letters
    failed: bool = False          # the reading could not be taken

    def line(self) -> str:
        mark = "??" if self.failed else "!!" if self.attention else "ok"
        return f"{mark:3} {self.name:17} {self.value}"


def _ago(moment: datetime, now: datetime) -> str:
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago" if seconds < 172800 else f"{seconds // 86400} days ago"


def _utc(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _taken(name: str, read: Callable[[], Reading]) -> Reading:
    try:
        return read()
    except Exception as error:  # noqa: BLE001 - each reading reports its own failure; the others go on
        return Reading(name, f"cannot read: {type(error).__name__}: {error}", failed=True)


# ---- the warehouse readings (BigQuery or DuckDB, through the same query definitions) -------------


def warehouse_readings(warehouse: Any, now: datetime) -> list[Reading]:
    return [_taken("dead letters", lambda: dead_letters(warehouse, now)),
            _taken("newest event", lambda: newest_event(warehouse, now))]


def dead_letters(warehouse: Any, now: datetime) -> Reading:
    from chalicelib.reports import queries
    from chalicelib.reports.fetch import target_of

    query = queries.dead_letters_since(target_of(warehouse), now - DEAD_LETTER_WINDOW)
    (row,) = warehouse.fetch(query.sql, query.params)
    count = int(row["dead_letters"] or 0)
    if not count:
        return Reading("dead letters", "none in the last 24 h")
    newest = _utc(row["newest"])
    return Reading("dead letters", f"{count} in the last 24 h, newest {newest:%Y-%m-%d %H:%M:%S} UTC "
                                   f"({_ago(newest, now)}); reasons in the dead_letters table", attention=True)


def newest_event(warehouse: Any, now: datetime) -> Reading:
    from chalicelib.reports import queries
    from chalicelib.reports.fetch import target_of

    query = queries.newest_event(target_of(warehouse), now - NEWEST_EVENT_LOOKBACK)
    (row,) = warehouse.fetch(query.sql, query.params)
    if row["newest"] is None:
        return Reading("newest event", f"none received in the last {NEWEST_EVENT_LOOKBACK.days} days")
    newest = _utc(row["newest"])
    return Reading("newest event", f"received {newest:%Y-%m-%d %H:%M:%S} UTC ({_ago(newest, now)})")


# ---- a deployed stage --------------------------------------------------------------------------


def cloud_status(stage: Stage, session: Any, warehouse: Callable[[], Any], now: datetime) -> list[Reading]:
    """`warehouse` builds the BigQuery warehouse (its failure is reported as the reading's)."""
    readings = [_taken("stream lag", lambda: iterator_age(session.client("cloudwatch"), stage, now)),
                _taken("parked batches", lambda: parked_batches(session.client("sqs"), stage))]
    try:
        built = warehouse()
    except Exception as error:  # noqa: BLE001 - no credentials, no project...: said on both lines
        reason = f"cannot reach BigQuery: {type(error).__name__}: {error}"
        return readings + [Reading("dead letters", reason, failed=True), Reading("newest event", reason, failed=True)]
    return readings + warehouse_readings(built, now)


def iterator_age(cloudwatch: Any, stage: Stage, now: datetime) -> Reading:
    function = stage.function_name(WRITER)
    answer = cloudwatch.get_metric_statistics(
        Namespace="AWS/Lambda", MetricName="IteratorAge", Dimensions=[{"Name": "FunctionName", "Value": function}],
        StartTime=now - ITERATOR_AGE_LOOKBACK, EndTime=now, Period=60, Statistics=["Maximum"], Unit="Milliseconds")
    points = sorted(answer.get("Datapoints", []), key=lambda point: point["Timestamp"])
    if not points:       # not "ok": a trigger that is off reads nothing either
        return Reading("stream lag", f"no batches read by {function} in the last "
                                     f"{int(ITERATOR_AGE_LOOKBACK.total_seconds() // 60)} min (an idle stream, "
                                     "or the writer's trigger is off: run preflight)", attention=True)
    latest = points[-1]
    age = timedelta(milliseconds=latest["Maximum"])
    return Reading("stream lag", f"{age.total_seconds():.1f} s: the newest batch {function} read was that old "
                                 f"(IteratorAge, {_ago(_utc(latest['Timestamp']), now)})",
                   attention=age >= LAG_WORTH_A_LOOK)


def parked_batches(sqs: Any, stage: Stage) -> Reading:
    url = sqs.get_queue_url(QueueName=stage.failure_queue_name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    counts = attributes["Attributes"]
    parked = (int(counts.get("ApproximateNumberOfMessages", 0))
              + int(counts.get("ApproximateNumberOfMessagesNotVisible", 0)))
    if not parked:
        return Reading("parked batches", f"none in {stage.failure_queue_name}")
    return Reading("parked batches", f"{parked} in {stage.failure_queue_name}: fix the cause, then "
                                     f"python -m dalet_ops.cli replay --stage {stage.name}", attention=True)


# ---- the embedded default --------------------------------------------------------------------


class ServerUnavailable(RuntimeError):
    """No running server could be asked for the readings of the warehouse it holds."""


AskServer = Callable[[], list[Reading]]
# The server holds the warehouse file while it runs, so a file status could open means none runs.
NO_SERVER = Reading("server", "none running on this data folder (make run starts one)")


def local_status(settings: Settings, now: datetime, ask_server: AskServer | None = None) -> list[Reading]:
    """`ask_server`: the warehouse readings from the running server, asked when it holds the file."""
    from chalicelib.runtime import STREAM_FILE, WAREHOUSE_FAULT_FILE, WAREHOUSE_FILE
    from chalicelib.storage.warehouse_health import read_fault_note

    stream_file, warehouse_file = settings.data_dir / STREAM_FILE, settings.data_dir / WAREHOUSE_FILE
    readings = [_taken("stream lag", lambda: local_backlog(stream_file, settings.stream_name, now)),
                Reading("parked batches", "none: the embedded consumer retries a failing batch until it is written")]
    fault = read_fault_note(settings.data_dir / WAREHOUSE_FAULT_FILE)
    if fault is not None:     # the running server's warehouse is down: leave the file to its reopening
        down = "not read: the server's warehouse is down (see above)"
        return readings + [Reading("warehouse", f"{fault.describe()} (the server retries by itself)", attention=True),
                           Reading("dead letters", down, failed=True), Reading("newest event", down, failed=True)]
    if not warehouse_file.exists():
        missing = f"no warehouse yet ({warehouse_file}): nothing written"
        return readings + [Reading("dead letters", missing), Reading("newest event", missing), NO_SERVER]
    try:
        warehouse = open_local_warehouse(warehouse_file)
    except WarehouseInUse as in_use:
        return readings + readings_from_server(in_use, ask_server)
    try:
        return readings + warehouse_readings(warehouse, now) + [NO_SERVER]
    finally:
        warehouse.close()


def local_backlog(stream_file: Path, stream_name: str, now: datetime) -> Reading:
    from chalicelib.ingest.local_stream import LocalConsumer, LocalStream

    if not stream_file.exists():
        return Reading("stream lag", f"no stream yet ({stream_file}): nothing tracked")
    stream = LocalStream(stream_file, stream_name)     # SQLite in WAL mode: readable while the server runs
    try:
        after = stream.checkpoint(LocalConsumer.CONSUMER)
        pending = stream.pending(LocalConsumer.CONSUMER)
        oldest = stream.read_after(after, limit=1)
    finally:
        stream.close()
    if not pending:
        return Reading("stream lag", "0 records waiting: the writer is up to date")
    arrived = datetime.fromtimestamp(oldest[0].arrived_at, UTC)
    age = now - arrived
    return Reading("stream lag", f"{pending} record(s) waiting, the oldest since {_ago(arrived, now)} "
                                 "(they are written while the server runs)", attention=age >= LAG_WORTH_A_LOOK)


class WarehouseInUse(RuntimeError):
    """DuckDB lets one process open the file, and another (the running server) has it."""


def readings_from_server(in_use: WarehouseInUse, ask_server: AskServer | None) -> list[Reading]:
    """The server's readings, and a `server` line; if it cannot be asked, why, on each line."""
    try:
        if ask_server is None:
            raise ServerUnavailable("no server to ask")
        return ask_server()
    except ServerUnavailable as unavailable:
        return [Reading("dead letters", str(in_use), failed=True), Reading("newest event", str(in_use), failed=True),
                Reading("server", str(unavailable), failed=True)]


def open_local_warehouse(path: Path) -> Any:
    import duckdb

    from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse

    try:
        return DuckDBWarehouse(path)
    except duckdb.IOException as error:
        raise WarehouseInUse(f"the warehouse {path} is open in another process (DuckDB allows one; "
                             f"{str(error).splitlines()[0]})") from None


def print_readings(title: str, readings: list[Reading], say: Callable[[str], None] = print) -> int:
    """Print; 1 if a reading could not be taken, else 0."""
    say(title)
    for reading in readings:
        say(reading.line())
    return 1 if any(reading.failed for reading in readings) else 0
