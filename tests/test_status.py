"""`python -m dalet_ops.cli status`: stream lag, parked batches, dead letters in the last day, newest event;
for a deployed stage (moto + the BigQuery stand-in) and for the embedded default (the real stream and DuckDB)."""
from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import boto3
import pytest

from chalicelib import google_credentials, runtime
from chalicelib.reports import queries
from chalicelib.reports.queries import Target
from chalicelib.storage.bigquery_warehouse import BigQueryWarehouse
from chalicelib.storage.warehouse_health import WarehouseFault
from dalet_ops import cli
from tests.aws_moto import aws  # noqa: F401
from tests.bigquery_standin import Query, QueryAnswer, bigquery_standin  # noqa: F401
from tests.stage_fixtures import project  # noqa: F401
from tests.helpers import event, track, wait_until_written
from tests.local_server import LocalServer, free_port, wait_until

BQ = Target(queries.BIGQUERY, queries.bigquery_tables("proj", "analytics", "events"), unique_identities=False)
MOMENT = datetime(2024, 5, 2, 12, tzinfo=timezone.utc)
WRITER = "dalet-prod-write_events"
QUEUE = "dalet-prod-failed-batches"


def run(capsys, *arguments: str) -> tuple[int, dict[str, str]]:
    """The exit status and each reading's line, by reading name."""
    code = cli.main(list(arguments))
    output = capsys.readouterr()
    lines = {}
    for line in (output.out + output.err).splitlines():
        for name in ("stream lag", "parked batches", "dead letters", "newest event", "server", "warehouse"):
            if line[4:].startswith(name):
                lines[name] = line
    return code, lines


# ---- the two queries: defined once in BigQuery SQL ---------------------------------------------


def test_the_dead_letter_count_reads_one_days_partitions_of_the_dead_letters_table():
    query = queries.dead_letters_since(BQ, MOMENT)

    assert query.sql == ("SELECT COUNT(*) AS dead_letters, MAX(dead_lettered_at) AS newest\n"
                         "FROM `proj.analytics.dead_letters`\n"
                         "WHERE dead_lettered_at >= @since")
    assert query.params == {"since": MOMENT}


def test_the_newest_event_reads_only_the_partitions_since_the_lookback():
    query = queries.newest_event(BQ, MOMENT)

    assert query.sql == ("SELECT MAX(received_at) AS newest\n"
                         "FROM `proj.analytics.events`\n"
                         "WHERE received_at >= @since")
    assert query.params == {"since": MOMENT}


# ---- a deployed stage --------------------------------------------------------------------------


@pytest.fixture
def deployed(aws, bigquery_standin, monkeypatch, project):
    """The stage's failure queue, and BigQuery answering the two status queries from `facts`."""
    monkeypatch.setattr(google_credentials, "bigquery_client", lambda settings: bigquery_standin.client)
    boto3.client("sqs").create_queue(QueueName=QUEUE)
    BigQueryWarehouse(bigquery_standin.client, "dalet", "events").ensure_report_tables()     # what setup did
    bigquery_standin.calls.clear()
    facts = {"dead_letters": 0, "dead_newest": None, "newest": None}

    def answer(query: Query) -> QueryAnswer:
        if "dead_letters" in query.sql:
            return QueryAnswer([("dead_letters", "INT64"), ("newest", "TIMESTAMP")],
                               [{"dead_letters": facts["dead_letters"], "newest": facts["dead_newest"]}])
        return QueryAnswer([("newest", "TIMESTAMP")], [{"newest": facts["newest"]}])

    bigquery_standin.answer_queries(answer)
    return facts


def put_iterator_age(milliseconds: float) -> None:
    boto3.client("cloudwatch").put_metric_data(Namespace="AWS/Lambda", MetricData=[{
        "MetricName": "IteratorAge", "Dimensions": [{"Name": "FunctionName", "Value": WRITER}],
        "Timestamp": datetime.now(timezone.utc) - timedelta(minutes=1), "Value": milliseconds, "Unit": "Milliseconds"}])


def test_a_healthy_deployed_stage_reads_all_clear(deployed, project, capsys, bigquery_standin):
    put_iterator_age(850)
    deployed["newest"] = datetime.now(timezone.utc) - timedelta(seconds=30)

    code, lines = run(capsys, "status", "--stage", "prod", "--project-dir", str(project))

    assert code == 0
    assert lines["stream lag"].startswith("ok") and "0.8 s" in lines["stream lag"] and WRITER in lines["stream lag"]
    assert lines["parked batches"].startswith("ok") and f"none in {QUEUE}" in lines["parked batches"]
    assert lines["dead letters"].startswith("ok") and "none in the last 24 h" in lines["dead letters"]
    assert lines["newest event"].startswith("ok") and "s ago" in lines["newest event"]
    assert bigquery_standin.table_creates == [] and bigquery_standin.insert_requests == []    # status only reads
    sent = [query for query in bigquery_standin.queries if "dead_letters" in query.sql]
    since = datetime.fromisoformat(sent[0].parameters["since"].replace(" ", "T"))
    assert abs(datetime.now(timezone.utc) - timedelta(days=1) - since) < timedelta(minutes=1)


def test_a_lagging_writer_parked_batches_and_dead_letters_are_flagged(deployed, project, capsys):
    put_iterator_age(300_000)
    queue_url = boto3.client("sqs").get_queue_url(QueueName=QUEUE)["QueueUrl"]
    boto3.client("sqs").send_message(QueueUrl=queue_url, MessageBody="{}")
    deployed.update(dead_letters=3, dead_newest=datetime.now(timezone.utc) - timedelta(hours=2))

    code, lines = run(capsys, "status", "--stage", "prod", "--project-dir", str(project))

    assert code == 0
    assert lines["stream lag"].startswith("!!") and "300.0 s" in lines["stream lag"]
    assert lines["parked batches"].startswith("!!") and "1 in" in lines["parked batches"]
    assert "replay --stage prod" in lines["parked batches"]
    assert lines["dead letters"].startswith("!!") and "3 in the last 24 h" in lines["dead letters"]


def test_an_idle_writer_is_flagged_not_ok_since_a_trigger_that_is_off_reads_nothing_either(
        deployed, project, capsys):
    code, lines = run(capsys, "status", "--stage", "prod", "--project-dir", str(project))

    assert code == 0
    assert lines["stream lag"].startswith("!!") and "no batches read" in lines["stream lag"]
    assert "trigger is off" in lines["stream lag"] and "preflight" in lines["stream lag"]
    assert "none received in the last 7 days" in lines["newest event"]


def test_a_missing_queue_is_reported_and_the_other_readings_still_taken(aws, bigquery_standin, monkeypatch, project,
                                                                        capsys):
    monkeypatch.setattr(google_credentials, "bigquery_client", lambda settings: bigquery_standin.client)
    bigquery_standin.answer_queries(lambda query: QueryAnswer(
        [("dead_letters", "INT64"), ("newest", "TIMESTAMP")], [{"dead_letters": 0, "newest": None}]))

    code, lines = run(capsys, "status", "--stage", "prod", "--project-dir", str(project))

    assert code == 1
    assert lines["parked batches"].startswith("??") and "QueueDoesNotExist" in lines["parked batches"]
    assert lines["dead letters"].startswith("ok")


# ---- the embedded default ----------------------------------------------------------------------


def test_the_local_pipeline_after_tracking_reads_no_lag_and_the_newest_event(client, capsys):
    track(client, event("checkout", "red", "participate", "u1"), event("checkout", "red", "buy", "u1"))
    wait_until_written()
    runtime.shutdown()                     # the server stops; status opens the files itself

    code, lines = run(capsys, "status")

    assert code == 0
    assert "0 records waiting" in lines["stream lag"]
    assert lines["dead letters"].startswith("ok") and "none in the last 24 h" in lines["dead letters"]
    assert lines["newest event"].startswith("ok") and "s ago" in lines["newest event"]


def test_the_local_pipeline_counts_dead_letters_and_records_waiting(client, capsys):
    track(client, event("checkout", "red", "participate", "u1"))
    runtime.start_local_pipeline()
    runtime._state["local_stream"].append([("bad", b"\xff not an event")])
    wait_until_written()
    runtime.shutdown()
    stream = _stream()
    stream.append([("late-1", b"{}"), ("late-2", b"{}")])     # acknowledged while no consumer runs
    stream.close()

    code, lines = run(capsys, "status")

    assert code == 0
    assert "2 record(s) waiting" in lines["stream lag"]
    assert lines["dead letters"].startswith("!!") and "1 in the last 24 h" in lines["dead letters"]


def _stream():
    from chalicelib.ingest.local_stream import LocalStream

    settings = runtime.settings()
    return LocalStream(settings.data_dir / runtime.STREAM_FILE, settings.stream_name)


@contextmanager
def held_by_another_process(warehouse_file: Path) -> Iterator[None]:
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; held = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(60)", str(warehouse_file)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()


def test_while_the_server_holds_the_warehouse_status_says_so_and_still_reads_the_stream(client, capsys):
    track(client, event("checkout", "red", "participate", "u1"))
    wait_until_written()
    runtime.shutdown()
    with held_by_another_process(runtime.settings().data_dir / runtime.WAREHOUSE_FILE):
        code, lines = run(capsys, "status")

    assert code == 1
    assert "0 records waiting" in lines["stream lag"]
    assert lines["dead letters"].startswith("??") and "open in another process" in lines["dead letters"]
    assert lines["newest event"].startswith("??")
    assert lines["server"].startswith("??") and "no running Dalet server" in lines["server"] and "stop it" in lines["server"]


def test_status_while_make_run_runs_asks_it_for_the_warehouse_readings(tmp_path, monkeypatch, capsys):
    data_dir = tmp_path / "data"
    with LocalServer.start(data_dir, env={"DALET_API_KEY": "k"}, via_make_run=True) as server:
        assert server.request("GET", "/track", query={"experiment": "e", "variant": "a", "event": "participate",
                                                     "uuid": "u1"}).status == 200
        monkeypatch.setenv("DALET_DATA_DIR", str(data_dir))
        monkeypatch.setenv("DALET_API_KEY", "k")

        def written() -> tuple[int, dict[str, str]] | None:
            code, lines = run(capsys, "status")
            return (code, lines) if "received" in lines.get("newest event", "") else None

        code, lines = wait_until(written, timeout=30, interval=0.5, message="the event never reached the warehouse")

    assert code == 0
    assert lines["dead letters"].startswith("ok") and "none in the last 24 h" in lines["dead letters"]
    assert lines["newest event"].startswith("ok")
    assert lines["server"].startswith("ok") and f"running at {server.base_url}" in lines["server"]


def test_a_server_recorded_but_gone_is_said_to_not_answer(client, capsys):
    from dalet_ops.running_server import record

    track(client, event("checkout", "red", "participate", "u1"))
    wait_until_written()
    runtime.shutdown()
    data_dir = runtime.settings().data_dir
    record(data_dir, f"http://127.0.0.1:{free_port()}")      # left by a server that crashed

    with held_by_another_process(data_dir / runtime.WAREHOUSE_FILE):
        code, lines = run(capsys, "status")

    assert code == 1 and "does not answer" in lines["server"]


def test_status_says_when_no_server_runs(client, capsys):
    track(client, event("checkout", "red", "participate", "u1"))
    wait_until_written()
    runtime.shutdown()

    code, lines = run(capsys, "status")

    assert code == 0 and "none running" in lines["server"]


def test_while_the_servers_warehouse_is_down_status_shows_the_fault_and_leaves_the_file_alone(client, capsys):
    track(client, event("checkout", "red", "participate", "u1"))
    wait_until_written()
    since = datetime.now(timezone.utc)
    runtime._state["fault_note"].record(WarehouseFault(since, "FatalException: No space left on device",
                                                       since + timedelta(seconds=4)))

    code, lines = run(capsys, "status")

    assert code == 1
    assert lines["warehouse"].startswith("!!") and "down since" in lines["warehouse"]
    assert "No space left on device" in lines["warehouse"]
    assert f"next reopening attempt at {since + timedelta(seconds=4):%H:%M:%S} UTC" in lines["warehouse"]
    assert lines["dead letters"].startswith("??") and "warehouse is down" in lines["dead letters"]
    runtime._state["fault_note"].record(None)          # recovered: no fault line any more
    code, lines = run(capsys, "status")
    assert "warehouse" not in lines


def test_a_fresh_data_folder_reads_nothing_tracked_yet(data_dir, capsys):
    code, lines = run(capsys, "status")

    assert code == 0
    assert "nothing tracked" in lines["stream lag"] and "nothing written" in lines["newest event"]
    assert not data_dir.exists()            # status creates nothing


def test_status_without_a_stage_on_the_cloud_backend_asks_for_the_stage(monkeypatch, capsys):
    monkeypatch.setenv("DALET_BACKEND", "aws")
    for name in ("DALET_STREAM_NAME", "DALET_BQ_DATASET", "DALET_BQ_TABLE"):
        monkeypatch.setenv(name, "x")

    code = cli.main(["status"])

    assert code == 2 and "--stage" in capsys.readouterr().err

