"""An event tracked again after its experiment was deleted counts, even while the writer lags.

Through the real pipeline: /track into the embedded stream, the consumer feeding the
registered Kinesis handler, the writer, DuckDB, and the report routes.
"""
from __future__ import annotations

import json
from typing import Any

from tests.helpers import KEY_HEADER, WriterGate, event, report_client, track, writer_gate, wait_until_written  # noqa: F401
from tests.local_server import wait_until


def participants(client: Any, experiment: str) -> list[dict[str, Any]] | int:
    reply = client.http.get(f"/experiments/{experiment}/results", headers=KEY_HEADER)
    return json.loads(reply.body)["variants"] if reply.status_code == 200 else reply.status_code


def test_an_event_tracked_again_after_a_delete_counts_while_the_writer_has_a_backlog(report_client, writer_gate):
    track(report_client, event("checkout", "red", "participate", "u-early"))
    wait_until_written()

    writer_gate.close()
    track(report_client, event("elsewhere", "red", "participate", "u-0"))   # the writer takes it, then waits
    wait_until(writer_gate.holding.is_set, timeout=10, message="the writer to wait at the gate")
    track(report_client, event("checkout", "red", "participate", "u-x"))     # in the backlog
    deleted = report_client.http.delete("/experiments/checkout", headers=KEY_HEADER)
    assert deleted.status_code == 200, deleted.body
    track(report_client, event("checkout", "red", "participate", "u-x"))     # acknowledged after the delete
    writer_gate.open()
    wait_until_written()

    # The writer met both copies of u-x in one batch: the hidden one must not swallow the new one.
    assert participants(report_client, "checkout") == [{"label": "red", "participants": 1}]
