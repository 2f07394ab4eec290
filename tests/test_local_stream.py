"""The embedded stream: durable, ordered, at-least-once delivery in Lambda's Kinesis shape."""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from chalicelib import config
from chalicelib.ingest.local_stream import (RECLAIM_PAGES, WAL_SIZE_LIMIT, LocalConsumer, LocalStream,
                                            StreamUnavailable)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def stream_path(tmp_path) -> Path:
    return tmp_path / "stream.sqlite3"


def eventually(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def payloads(event: dict[str, Any]) -> list[bytes]:
    return [base64.b64decode(record["kinesis"]["data"]) for record in event["Records"]]


class Handler:
    """A Kinesis handler that records what it was given; it can fail or report failed items."""

    def __init__(self, fail_times: int = 0, failed_item: int | None = None):
        self.batches: list[dict[str, Any]] = []
        self.fail_times = fail_times
        self.failed_item = failed_item

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.batches.append(event)
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("the warehouse is down")
        if self.failed_item is not None:
            failed, self.failed_item = event["Records"][self.failed_item], None
            return {"batchItemFailures": [{"itemIdentifier": failed["kinesis"]["sequenceNumber"]}]}
        return {"batchItemFailures": []}

    @property
    def delivered(self) -> list[bytes]:
        return [data for batch in self.batches for data in payloads(batch)]


def test_appended_records_survive_reopening_in_order(stream_path):
    stream = LocalStream(stream_path, "events")
    first = stream.append([("k1", b"one"), ("k2", b"two")])
    second = stream.append([("k3", b"three")])
    reopened = LocalStream(stream_path, "events")
    records = reopened.read_after(0)
    assert [(r.partition_key, r.data) for r in records] == [("k1", b"one"), ("k2", b"two"), ("k3", b"three")]
    assert [r.sequence_number for r in records] == first + second
    assert first + second == sorted(first + second) and len(set(first + second)) == 3


def test_sequence_numbers_are_never_reused_after_trimming(stream_path):
    stream = LocalStream(stream_path, "events")
    consumed = stream.append([("k", b"a"), ("k", b"b")])
    LocalConsumer(stream, Handler()).deliver_once()
    later = LocalStream(stream_path, "events").append([("k", b"c")])
    assert int(later[0]) > int(consumed[-1])


def test_the_handler_gets_lambdas_kinesis_event_shape(stream_path):
    stream = LocalStream(stream_path, "dalet-events")
    (sequence,) = stream.append([("event-id-1", b'{"uuid": "u"}')])
    handler = Handler()
    LocalConsumer(stream, handler).deliver_once()
    (record,) = handler.batches[0]["Records"]
    assert record["eventSource"] == "aws:kinesis"
    assert record["eventSourceARN"].endswith(":stream/dalet-events")
    assert record["kinesis"]["sequenceNumber"] == sequence
    assert record["kinesis"]["partitionKey"] == "event-id-1"
    assert base64.b64decode(record["kinesis"]["data"]) == b'{"uuid": "u"}'


def test_a_batch_is_checkpointed_only_after_the_handler_returns(stream_path):
    stream = LocalStream(stream_path, "events")
    stream.append([("k", b"a"), ("k", b"b")])
    crashing = Handler(fail_times=1)
    with pytest.raises(RuntimeError):
        LocalConsumer(stream, crashing).deliver_once()
    # A restarted process (new stream object, new consumer) gets the same records again.
    restarted = Handler()
    assert LocalConsumer(LocalStream(stream_path, "events"), restarted).deliver_once() == 2
    assert restarted.delivered == [b"a", b"b"]
    assert LocalConsumer(LocalStream(stream_path, "events"), Handler()).deliver_once() == 0


def test_batch_item_failures_are_retried_from_the_lowest_failed_record(stream_path):
    stream = LocalStream(stream_path, "events")
    stream.append([("k", data) for data in (b"a", b"b", b"c", b"d")])
    handler = Handler(failed_item=2)
    consumer = LocalConsumer(stream, handler)
    with pytest.raises(RuntimeError, match="retry from"):
        consumer.deliver_once()
    consumer.deliver_once()
    assert [payloads(batch) for batch in handler.batches] == [[b"a", b"b", b"c", b"d"], [b"c", b"d"]]
    assert stream.pending(LocalConsumer.CONSUMER) == 0


def test_with_several_failed_records_the_retry_starts_from_the_lowest_whatever_their_order(stream_path):
    stream = LocalStream(stream_path, "events")
    stream.append([("k", data) for data in (b"a", b"b", b"c", b"d")])
    batches: list[list[bytes]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        batches.append(payloads(event))
        if len(batches) > 1:
            return {"batchItemFailures": []}
        records = event["Records"]       # d and b failed, listed highest first
        return {"batchItemFailures": [{"itemIdentifier": records[n]["kinesis"]["sequenceNumber"]} for n in (3, 1)]}

    consumer = LocalConsumer(stream, handler)
    with pytest.raises(RuntimeError, match="retry from"):
        consumer.deliver_once()
    consumer.deliver_once()
    assert batches == [[b"a", b"b", b"c", b"d"], [b"b", b"c", b"d"]]


def test_the_consumer_thread_retries_a_failing_handler_until_nothing_is_lost(stream_path):
    stream = LocalStream(stream_path, "events")
    handler = Handler(fail_times=2)
    done = threading.Event()

    def handle(event, context):
        answer = handler(event, context)
        if stream.pending(LocalConsumer.CONSUMER) <= len(event["Records"]):
            done.set()
        return answer

    consumer = LocalConsumer(stream, handle, batch_window=0.01, idle_poll=0.05, max_backoff=0.05)
    consumer.start()
    try:
        stream.append([("k", b"a"), ("k", b"b")])
        assert done.wait(20)
    finally:
        consumer.stop()
    assert len(handler.batches) == 3
    assert all(payloads(batch) == [b"a", b"b"] for batch in handler.batches)
    assert stream.pending(LocalConsumer.CONSUMER) == 0


def test_records_appended_while_the_consumer_runs_are_delivered_in_order(stream_path):
    stream = LocalStream(stream_path, "events")
    handler = Handler()
    consumer = LocalConsumer(stream, handler, batch_window=0.0, idle_poll=0.05)
    consumer.start()
    try:
        expected = [f"record-{n}".encode() for n in range(30)]
        for data in expected:
            stream.append([("k", data)])
        assert eventually(lambda: stream.pending(LocalConsumer.CONSUMER) == 0)
    finally:
        consumer.stop()
    assert handler.delivered == expected


def test_an_append_is_all_or_nothing(stream_path):
    stream = LocalStream(stream_path, "events")
    with pytest.raises(StreamUnavailable):
        stream.append([("k", b"fine"), ("k", None)])       # the second row breaks NOT NULL
    assert stream.read_after(0) == []


# --- import and configuration -------------------------------------------------------------------

def test_importing_app_starts_no_thread_and_creates_no_file(tmp_path):
    script = textwrap.dedent(f"""
        import os, sys, threading
        sys.path.insert(0, {str(ROOT)!r})
        import app
        print(threading.active_count(), sorted(os.listdir('.')))
    """)
    env = {name: value for name, value in os.environ.items() if not name.startswith("DALET_")}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(None, 1) == ["1", "[]\n"]


@pytest.mark.parametrize("missing", ["DALET_STREAM_NAME", "DALET_BQ_DATASET", "DALET_BQ_TABLE"])
def test_the_cloud_backend_with_a_missing_setting_fails_naming_the_variable(missing):
    environ = {"DALET_BACKEND": "aws", "DALET_STREAM_NAME": "events", "DALET_BQ_DATASET": "dalet",
               "DALET_BQ_TABLE": "events"}
    del environ[missing]
    with pytest.raises(config.ConfigError, match=missing):
        config.load_settings(environ)


def test_an_unknown_backend_is_refused_naming_the_variable():
    with pytest.raises(config.ConfigError, match="DALET_BACKEND"):
        config.load_settings({"DALET_BACKEND": "kafka"})


# Loads the app as the `chalice` command does (deploy and package alike): the factory gets
# environ=os.environ, so the stage's environment variables are in os.environ before app.py is imported.
STREAM_NAMES_OF_STAGE = """
import json, os, sys
from chalice.cli.factory import CLIFactory
project, stage = sys.argv[1], sys.argv[2]
chalice_config = CLIFactory(project, environ=os.environ).create_config_obj(chalice_stage_name=stage)
deployed = chalice_config.chalice_app.event_sources[0].stream      # the trigger `chalice deploy` creates
from chalicelib import config
print(json.dumps([deployed, config.load_settings().stream_name]))  # what the functions use at run time
"""
NOT_THE_DEFAULT_STREAM = "dalet-prod-events"


def _project_whose_prod_stage_names_its_stream(target: Path, stream: str) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "deployed", "deployments")
    shutil.copy(ROOT / "app.py", target / "app.py")
    shutil.copytree(ROOT / "chalicelib", target / "chalicelib", ignore=ignore)
    shutil.copytree(ROOT / ".chalice", target / ".chalice", ignore=ignore)
    chalice_config = json.loads((target / ".chalice" / "config.json").read_text())
    chalice_config["stages"]["prod"]["environment_variables"]["DALET_STREAM_NAME"] = stream
    (target / ".chalice" / "config.json").write_text(json.dumps(chalice_config))
    return target


def test_the_writer_is_deployed_on_the_stream_the_stage_names(tmp_path):
    assert NOT_THE_DEFAULT_STREAM != config.DEFAULT_STREAM_NAME
    project = _project_whose_prod_stage_names_its_stream(tmp_path, NOT_THE_DEFAULT_STREAM)
    env = {name: value for name, value in os.environ.items() if not name.startswith("DALET_")}
    result = subprocess.run([sys.executable, "-c", STREAM_NAMES_OF_STAGE, str(project), "prod"], cwd=project,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    deployed, at_run_time = json.loads(result.stdout)
    assert deployed == at_run_time == NOT_THE_DEFAULT_STREAM


def test_the_stream_name_defaults_to_dalet_events():
    assert config.load_settings({}).stream_name == config.stream_name({}) == "dalet-events"


def test_shutdown_stops_a_consumer_caught_inside_the_handler_and_nothing_restarts(data_dir):
    import app
    from chalicelib import runtime
    from tests.helpers import event, track

    entered, gate = threading.Event(), threading.Event()

    def slow_writer(kinesis_event: dict[str, Any], context: Any) -> Any:
        entered.set()
        gate.wait(10)
        return app.write_events(kinesis_event, context)      # asks runtime for the warehouse

    runtime.register_stream_handler(slow_writer)
    try:
        from chalice.test import Client

        with Client(app.app) as client:
            track(client, event("exp", "red", "participate", "u1"))
            assert entered.wait(10)
            threading.Timer(0.3, gate.set).start()           # released while shutdown waits for it
            runtime.shutdown()
    finally:
        runtime.register_stream_handler(app.write_events)
    assert not [t for t in threading.enumerate() if t.name == "dalet-local-consumer" and t.is_alive()]
    assert runtime._state == {}


# --- space: the file gives back what the writer consumed ---------------------------------------------

def _stream_bytes(path: Path) -> int:
    """The stream's footprint on disk: the database and its write-ahead log."""
    return sum(os.path.getsize(part) for part in (path, Path(f"{path}-wal")) if part.exists())


def _burst(stream: LocalStream, records: int, size: int = 1000) -> None:
    for start in range(0, records, 500):
        stream.append([(f"k{n}", os.urandom(size)) for n in range(start, min(records, start + 500))])


def _consume_all(stream: LocalStream) -> None:
    consumer = LocalConsumer(stream, Handler())
    while consumer.deliver_once():
        pass


# What the stream may keep once drained: the free pages below the reclaim threshold, a WAL
# truncated to its limit, and a page or two of tables.
DRAINED_BOUND = RECLAIM_PAGES * 4096 + WAL_SIZE_LIMIT + 1024 * 1024


def test_the_stream_file_shrinks_after_a_backlog_drains(stream_path):
    stream = LocalStream(stream_path, "s")
    _burst(stream, 24_000)                                   # a 24 MB backlog
    assert _stream_bytes(stream_path) > 24_000_000

    _consume_all(stream)

    assert _stream_bytes(stream_path) < DRAINED_BOUND
    stream.close()


def test_the_stream_file_stays_bounded_across_a_long_run_of_bursts(stream_path):
    stream = LocalStream(stream_path, "s")
    sizes = []
    for burst in range(12):                                  # 60 MB through the stream, in bursts of up to 12 MB
        _burst(stream, 2000 + 1000 * burst)
        _consume_all(stream)
        sizes.append(_stream_bytes(stream_path))
    stream.close()
    assert max(sizes) < DRAINED_BOUND, sizes


def test_a_stream_file_made_without_auto_vacuum_is_converted_and_shrinks_when_opened(stream_path):
    import sqlite3

    legacy = sqlite3.connect(stream_path, isolation_level=None)
    legacy.execute("PRAGMA journal_mode=WAL")
    legacy.executescript("CREATE TABLE records (sequence INTEGER PRIMARY KEY AUTOINCREMENT, partition_key TEXT NOT NULL,"
                         " data BLOB NOT NULL, arrived_at REAL NOT NULL);"
                         "CREATE TABLE checkpoints (consumer TEXT PRIMARY KEY, sequence INTEGER NOT NULL);")
    legacy.executemany("INSERT INTO records (partition_key, data, arrived_at) VALUES ('k', ?, 0)",
                       [(os.urandom(1000),) for _ in range(10_000)])
    legacy.execute("INSERT INTO checkpoints VALUES ('writer', 9990)")
    legacy.execute("DELETE FROM records WHERE sequence <= 9990")
    legacy.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    legacy.close()
    assert os.path.getsize(stream_path) > 10_000_000       # the drained backlog's pages, kept

    stream = LocalStream(stream_path, "s")

    assert _stream_bytes(stream_path) < 1_000_000
    assert [record.sequence for record in stream.read_after(stream.checkpoint("writer"))] == list(range(9991, 10_001))
    stream.close()
