"""An event tracked again after its experiment was deleted counts, even while the writer lags.

Through the real pipeline: /track into the embedded stream, the consumer feeding the
registered Kinesis handler, the writer, DuckDB, and the report routes.
"""
from __future__ import annotations

import json
import threading
from typing import Any, Callable

import pytest

from chalicelib import runtime
from tests.helpers import KEY_HEADER, event, report_client, track, wait_until_written  # noqa: F401
from tests.local_server import wait_until


class WriterGate:
    """Wraps the Kinesis handler; while closed, the consumer waits inside it, so the stream backs up."""

    def __init__(self, handler: Callable[[dict[str, Any], Any], Any]):
        self._handler = handler
        self._open = threading.Event()
        self._open.set()
        self.holding = threading.Event()

    def close(self) -> None:
        self.holding.clear()
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    def __call__(self, kinesis_event: dict[str, Any], context: Any) -> Any:
        if not self._open.is_set():
            self.holding.set()
            self._open.wait(30)
        return self._handler(kinesis_event, context)


@pytest.fixture
def gate(report_client, monkeypatch) -> WriterGate:
    import app

    gated = WriterGate(app.write_events)
    monkeypatch.setattr(runtime, "_stream_handler", [gated])
    return gated


def participants(client: Any, experiment: str) -> list[dict[str, Any]] | int:
    reply = client.http.get(f"/experiments/{experiment}/results", headers=KEY_HEADER)
    return json.loads(reply.body)["variants"] if reply.status_code == 200 else reply.status_code


def test_an_event_tracked_again_after_a_delete_counts_while_the_writer_has_a_backlog(report_client, gate):
    track(report_client, event("checkout", "red", "participate", "u-early"))
    wait_until_written()

    gate.close()
    track(report_client, event("elsewhere", "red", "participate", "u-0"))   # the writer takes it, then waits
    wait_until(gate.holding.is_set, timeout=10, message="the writer to wait at the gate")
    track(report_client, event("checkout", "red", "participate", "u-x"))     # in the backlog
    deleted = report_client.http.delete("/experiments/checkout", headers=KEY_HEADER)
    assert deleted.status_code == 200, deleted.body
    track(report_client, event("checkout", "red", "participate", "u-x"))     # acknowledged after the delete
    gate.open()
    wait_until_written()

    # The writer met both copies of u-x in one batch: the hidden one must not swallow the new one.
    assert participants(report_client, "checkout") == [{"label": "red", "participants": 1}]
