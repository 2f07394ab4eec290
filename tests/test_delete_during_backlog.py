"""A delete while the writer is behind deletes what was acknowledged before it (issue 17, finding 4).

With the writer ~3 s behind, 200 participants tracked and then `DELETE /experiments/delx`
answered 404 and recorded nothing; once the backlog drained the 200 were back. Locally through
the real pipeline (the embedded stream, the consumer, the writer, DuckDB); on BigQuery through
the real client against the stand-in, the backlog written by the same writer after the delete.
"""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.ingest.events import Event, now, parse_timestamp, stamp
from chalicelib.ingest.records import encode_record
from chalicelib.reports import deletion, queries
from chalicelib.reports.fetch import target_of
from chalicelib.storage.bigquery_warehouse import BigQueryWarehouse
from chalicelib.storage.writer import StreamRecord, write_batch
from tests.bigquery_standin import BigQueryStandIn, QueryAnswer, bigquery_standin  # noqa: F401
from tests.helpers import (KEY_HEADER, event, report_client, stored_row_count, track, wait_until_written,  # noqa: F401
                           writer_gate)
from tests.local_server import wait_until

DELETES = {
    "experiment route": lambda client, name: client.http.delete(f"/experiments/{name}", headers=KEY_HEADER),
    "Gimel's /delete": lambda client, name: client.http.delete(f"/delete?experiment={name}", headers=KEY_HEADER),
}


def results(client: Any, experiment: str) -> tuple[int, Any]:
    reply = client.http.get(f"/experiments/{experiment}/results", headers=KEY_HEADER)
    return reply.status_code, json.loads(reply.body)


def hold_the_writer(client: Any, gate: Any) -> None:
    """Close the gate and make the consumer wait inside the handler: what is tracked next stays on the stream."""
    gate.close()
    track(client, event("elsewhere", "red", "participate", "u-0"))
    wait_until(gate.holding.is_set, timeout=10, message="the writer to wait at the gate")


@pytest.mark.parametrize("delete", DELETES.values(), ids=DELETES.keys())
def test_a_delete_while_the_participants_are_still_on_the_stream_hides_them_for_good(report_client, writer_gate,
                                                                                    delete):
    hold_the_writer(report_client, writer_gate)
    track(report_client, *(event("delx", "red", "participate", f"u{n}") for n in range(200)))

    deleted = delete(report_client, "delx")

    assert deleted.status_code == 200, deleted.body
    answer = json.loads(deleted.body)
    assert (answer["deleted"], answer["experiment"], answer["removed"]) == (True, "delx", 0)
    writer_gate.open()
    wait_until_written()
    assert results(report_client, "delx")[0] == 404
    assert report_client.http.get("/experiments", headers=KEY_HEADER).body.count(b"delx") == 0


def test_a_delete_removes_the_written_rows_says_how_many_and_hides_the_backlog(report_client, writer_gate):
    track(report_client, *(event("delx", "red", "participate", f"written-{n}") for n in range(30)))
    wait_until_written()
    hold_the_writer(report_client, writer_gate)
    track(report_client, *(event("delx", "red", "participate", f"behind-{n}") for n in range(20)))

    deleted = report_client.http.delete("/experiments/delx", headers=KEY_HEADER)

    assert json.loads(deleted.body)["removed"] == 30
    track(report_client, event("delx", "blue", "participate", "after"))    # acknowledged after the delete
    writer_gate.open()
    wait_until_written()
    assert results(report_client, "delx")[1]["variants"] == [{"label": "blue", "participants": 1}]
    assert stored_row_count() == 2    # elsewhere's u-0 and delx's "after": the backlog was never stored


def test_a_delete_of_a_name_never_seen_answers_200_with_nothing_removed(report_client):
    deleted = report_client.http.delete("/experiments/never-tracked", headers=KEY_HEADER)
    assert deleted.status_code == 200, deleted.body
    assert json.loads(deleted.body)["removed"] == 0
    track(report_client, event("never-tracked", "red", "participate", "later"))
    wait_until_written()
    assert results(report_client, "never-tracked")[1]["variants"] == [{"label": "red", "participants": 1}]


# ---- BigQuery: the backlog reaches the warehouse after the delete -----------------------------------

def test_on_bigquery_a_delete_before_the_backlog_lands_records_a_tombstone_that_hides_all_of_it(
        bigquery_standin: BigQueryStandIn):
    warehouse = BigQueryWarehouse(bigquery_standin.client, dataset="analytics", table="events")
    received = now() - timedelta(seconds=3)     # acknowledged 3 s ago, still on the stream
    backlog = [stamp(Event("alephbet", "delx", "red", "participate", f"u{n}"), received) for n in range(200)]
    nothing_stored_yet = lambda query: (QueryAnswer(schema=[], dml_affected_rows=0)  # noqa: E731
                                        if query.sql.startswith("DELETE") else QueryAnswer(schema=[("found", "INT64")]))
    bigquery_standin.answer_queries(nothing_stored_yet)

    answer = deletion.delete_experiment(warehouse, "alephbet", "delx")
    records = [StreamRecord(str(1000 + n), stored.uuid, encode_record(stored), received)
               for n, stored in enumerate(backlog)]
    write_batch(records, warehouse)

    assert (answer["deleted"], answer["removed"]) == (True, 0)
    [tombstone] = bigquery_standin.rows("analytics.deletions")
    landed = bigquery_standin.rows("analytics.events")
    assert len(landed) == 200
    # Every report reads only rows received after the experiment's latest tombstone: none of these.
    assert all(parse_timestamp(row["received_at"]) <= parse_timestamp(tombstone["deleted_at"]) for row in landed)
    visible = queries.experiment_exists(target_of(warehouse), "alephbet", "delx")
    assert "e.received_at > d.deleted_at" in visible.sql
