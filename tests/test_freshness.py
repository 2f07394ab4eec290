"""Reports say how far the warehouse is behind the stream: `"freshness": {"lag_seconds", "as_of"}`."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

from chalicelib import runtime
from chalicelib.ingest.events import parse_timestamp
from chalicelib.reports import freshness
from tests.helpers import KEY_HEADER, event, report_client, track, writer_gate, wait_until_written  # noqa: F401
from tests.local_server import wait_until


def answer(client: Any, path: str) -> Any:
    reply = client.http.get(path, headers=KEY_HEADER)
    assert reply.status_code == 200, reply.body
    return json.loads(reply.body)


def freshness_of(report: Any) -> dict[str, Any]:
    return report[0]["meta"]["freshness"] if isinstance(report, list) else report["freshness"]


REPORTS = ["/experiments", "/experiments/checkout/results", "/experiments/checkout/daily"]


def test_every_report_says_it_is_current_once_the_writer_has_caught_up(report_client):
    track(report_client, event("checkout", "red", "participate", "u1"))
    wait_until_written()
    before = datetime.now(timezone.utc)

    for path in REPORTS:
        freshness = freshness_of(answer(report_client, path))
        assert freshness["lag_seconds"] == 0
        assert parse_timestamp(freshness["as_of"]) >= before


def test_while_the_writer_lags_reports_say_by_how_much_and_as_of_when(report_client, writer_gate):
    track(report_client, event("checkout", "red", "participate", "u1"))
    wait_until_written()
    writer_gate.close()
    track(report_client, event("checkout", "red", "participate", "u-waiting-0"))
    wait_until(writer_gate.holding.is_set, timeout=10, message="the writer to wait at the gate")
    tracked_at = datetime.now(timezone.utc)
    track(report_client, event("checkout", "red", "participate", "u-waiting-1"))
    time.sleep(0.5)

    for path in REPORTS:
        freshness = freshness_of(answer(report_client, path))
        assert freshness["lag_seconds"] >= 0.5
        assert parse_timestamp(freshness["as_of"]) <= tracked_at      # the waiting events are not in it
    writer_gate.open()
    wait_until_written()
    assert freshness_of(answer(report_client, "/experiments"))["lag_seconds"] == 0


def test_gimels_single_experiment_list_keeps_its_shape(report_client):
    track(report_client, event("checkout", "red", "participate", "u1"))
    wait_until_written()

    goals = answer(report_client, "/experiments/checkout")

    assert goals == []          # a bare list of goals, as Gimel answers; /results carries the freshness


def test_lag_is_how_long_the_oldest_unwritten_event_has_waited():
    assert freshness.freshness(1_700_000_000.0, at=1_700_000_055.5) == {
        "lag_seconds": 55.5, "as_of": "2023-11-14T22:13:20.000000Z"}
    assert freshness.freshness(None, at=1_700_000_055.5) == {
        "lag_seconds": 0.0, "as_of": "2023-11-14T22:14:15.500000Z"}


def test_on_aws_freshness_is_null_with_the_reason(monkeypatch, data_dir):
    for name, value in {"DALET_BACKEND": "aws", "DALET_STREAM_NAME": "dalet-events", "DALET_BQ_DATASET": "dalet",
                        "DALET_BQ_TABLE": "events"}.items():
        monkeypatch.setenv(name, value)
    runtime.shutdown()

    measured = runtime.freshness()

    assert measured["lag_seconds"] is None and measured["as_of"] is None
    assert "IteratorAge" in measured["reason"]
