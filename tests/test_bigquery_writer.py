"""The BigQuery warehouse, driven through the real google-cloud-bigquery client
against a local stand-in for the REST API (tests/bigquery_standin.py)."""
from __future__ import annotations

import base64
import socket
from datetime import datetime, timezone

import pytest
from google.api_core import exceptions as api_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from chalicelib.storage.bigquery_warehouse import (
    MAX_REQUEST_BYTES,
    BigQueryWarehouse,
    DeadLetterRejected,
)
from chalicelib.ingest.events import StoredEvent, now, parse_event, stamp
from chalicelib.ingest.records import encode_record
from chalicelib.storage.schema import DEAD_LETTERS, EVENTS
from chalicelib.storage.writer import (DeadLetter, RowRejection, StreamRecord, TransientWarehouseError, copy_id,
                                      write_batch)
from tests.bigquery_standin import BigQueryStandIn, QueryAnswer, bigquery_standin  # noqa: F401

# Retries the client's way, but within a fraction of a second.
FAST_RETRY = bigquery.DEFAULT_RETRY.with_timeout(0.3).with_delay(initial=0.01, maximum=0.05)
ARRIVED = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def warehouse(bigquery_standin: BigQueryStandIn) -> BigQueryWarehouse:
    return _warehouse(bigquery_standin.client)


def _warehouse(client: bigquery.Client, timeout: float = 5) -> BigQueryWarehouse:
    return BigQueryWarehouse(client, dataset="analytics", table="events", retry=FAST_RETRY, timeout=timeout)


def _event(uuid: str = "visitor-1", event: str = "participate", **fields: str) -> StoredEvent:
    body = {"experiment": "checkout", "variant": "green", "event": event, "uuid": uuid, **fields}
    return stamp(parse_event(body), now())


def _events(count: int) -> list[StoredEvent]:
    return [_event(uuid=f"visitor-{n}") for n in range(count)]


def _records(events: list[StoredEvent], first_sequence: int = 1000) -> list[StreamRecord]:
    return [
        StreamRecord(str(first_sequence + n), stored.uuid, encode_record(stored), ARRIVED)
        for n, stored in enumerate(events)
    ]


def _letter(sequence_number: str, data: bytes = b"\xff not json") -> DeadLetter:
    return DeadLetter(sequence_number, "visitor-1", data, "not UTF-8 JSON", ARRIVED, now())


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---- tables ------------------------------------------------------------------------


def test_the_first_insert_creates_the_events_table_partitioned_by_day_and_clustered(warehouse, bigquery_standin):
    warehouse.insert_events([_event()])

    table = bigquery_standin.table("analytics.events")
    assert table["timePartitioning"] == {"type": "DAY", "field": "received_at"}
    assert table["clustering"] == {"fields": ["namespace", "experiment", "event"]}
    assert [(f["name"], f["type"], f["mode"]) for f in table["schema"]["fields"]] == [
        (c.name, c.type, "REQUIRED" if c.required else "NULLABLE") for c in EVENTS.columns
    ]
    assert ("value", "FLOAT64", "NULLABLE") in [(f["name"], f["type"], f["mode"]) for f in table["schema"]["fields"]]


def test_the_dead_letters_table_is_created_in_the_same_dataset(warehouse, bigquery_standin):
    warehouse.insert_events([_event()])

    table = bigquery_standin.table("analytics.dead_letters")
    assert table["timePartitioning"] == {"type": "DAY", "field": "dead_lettered_at"}
    assert "clustering" not in table
    assert [(f["name"], f["type"]) for f in table["schema"]["fields"]] == [(c.name, c.type) for c in DEAD_LETTERS.columns]


def _event_inserts(standin) -> list[dict]:
    """The insertAll bodies sent to the events table (the writer also appends to the experiment catalog)."""
    return [call.body for call in standin.inserts_into("events")]


def test_tables_are_checked_once_per_container_not_per_batch(warehouse, bigquery_standin):
    for batch in range(5):
        warehouse.insert_events([_event(uuid=f"visitor-{batch}")])
    warehouse.insert_dead_letters([_letter("1")])

    assert len(bigquery_standin.dataset_creates) == 1
    # events, dead_letters, experiment_firsts, segment_exposures, segment_links
    assert len(bigquery_standin.table_creates) == 5
    assert len(bigquery_standin.calls_to("GET", r"/tables/[^/]+$")) == 5
    assert len(bigquery_standin.inserts_into("events")) == 5


def test_a_new_container_finds_the_tables_and_creates_nothing(warehouse, bigquery_standin):
    warehouse.insert_events([_event()])
    creates = len(bigquery_standin.table_creates) + len(bigquery_standin.dataset_creates)

    _warehouse(bigquery_standin.client).insert_events([_event(uuid="visitor-2")])

    assert len(bigquery_standin.table_creates) + len(bigquery_standin.dataset_creates) == creates
    assert len(bigquery_standin.rows("events")) == 2


def test_an_existing_dataset_is_reused_without_asking_to_create_it(warehouse, bigquery_standin):
    bigquery_standin.client.create_dataset("analytics")
    bigquery_standin.calls.clear()

    warehouse.ensure_tables()

    assert set(bigquery_standin.tables) == {"analytics.events", "analytics.dead_letters", "analytics.experiment_firsts",
                                            "analytics.segment_exposures", "analytics.segment_links"}
    assert bigquery_standin.dataset_creates == []      # an identity without bigquery.datasets.create suffices


def test_an_empty_batch_makes_no_request(warehouse, bigquery_standin):
    assert warehouse.insert_events([]) == []
    warehouse.insert_dead_letters([])

    assert bigquery_standin.calls == []


# ---- rows and identities -------------------------------------------------------------


def test_each_row_is_inserted_under_its_identity_and_receipt_time(warehouse, bigquery_standin):
    stored = _event(value="4.5")

    assert warehouse.insert_events([stored]) == []

    (body,) = _event_inserts(bigquery_standin)
    assert body["skipInvalidRows"] is True
    assert body["rows"] == [{"json": stored.to_row(), "insertId": copy_id(stored)}]
    assert bigquery_standin.rows("events") == [stored.to_row()]


def test_two_purchases_with_ids_land_as_two_events_and_a_retry_keeps_its_identity(warehouse, bigquery_standin):
    # A retry received at another time is another receipt (its insertId holds the receipt time, so a
    # deletion in between can never swallow it); reports dedupe by event_id, so it adds no value.
    first, second = _event(event="buy", value="10", id="order-1"), _event(event="buy", value="20", id="order-2")
    write_batch(_records([first, second, _event(event="buy", value="10", id="order-1")]), warehouse)
    assert sorted({(row["event_id"], row["message_id"], row["value"]) for row in bigquery_standin.rows("events")}) == \
        sorted([(first.event_id, "order-1", 10.0), (second.event_id, "order-2", 20.0)])


def test_a_participate_and_a_goal_from_one_visitor_land_as_two_rows(warehouse, bigquery_standin):
    participate = _event(uuid="same-visitor", event="participate")
    goal = _event(uuid="same-visitor", event="purchased")

    warehouse.insert_events([participate, goal])

    insert_ids = [row["insertId"] for row in bigquery_standin.insert_requests[0]["rows"]]
    assert insert_ids == [copy_id(participate), copy_id(goal)]
    assert len(set(insert_ids)) == 2
    assert sorted(row["event"] for row in bigquery_standin.rows("events")) == ["participate", "purchased"]


def _received_at(stored: StoredEvent, moment: datetime) -> StoredEvent:
    return stored._replace(received_at=moment)


BEFORE_DELETE = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
AFTER_DELETE = datetime(2024, 5, 1, 12, 1, tzinfo=timezone.utc)   # the experiment was deleted in between


def test_a_copy_tracked_again_after_a_deletion_lands_beside_the_hidden_one_in_one_batch(warehouse, bigquery_standin):
    hidden = _received_at(_event(uuid="visitor-x"), BEFORE_DELETE)
    tracked_again = _received_at(hidden, AFTER_DELETE)

    assert write_batch(_records([hidden, tracked_again]), warehouse) == {"batchItemFailures": []}

    # Reports hide the first by its received_at and count the second.
    assert sorted(row["received_at"] for row in bigquery_standin.rows("events")) == [
        hidden.to_row()["received_at"], tracked_again.to_row()["received_at"]]


def test_a_copy_tracked_again_after_a_deletion_is_not_deduplicated_away_by_a_later_batch(warehouse, bigquery_standin):
    hidden = _received_at(_event(uuid="visitor-x"), BEFORE_DELETE)
    tracked_again = _received_at(hidden, AFTER_DELETE)

    write_batch(_records([hidden], first_sequence=1000), warehouse)
    write_batch(_records([tracked_again], first_sequence=2000), warehouse)   # within BigQuery's dedupe window

    assert len(set(bigquery_standin.insert_ids("events"))) == 2
    assert [row["received_at"] for row in bigquery_standin.rows("events")] == [
        hidden.to_row()["received_at"], tracked_again.to_row()["received_at"]]


def test_a_record_delivered_twice_in_one_batch_is_sent_once(warehouse, bigquery_standin):
    stored = _event()
    records = _records([stored, stored])        # e.g. a PutRecords retry of a record that had landed

    write_batch(records, warehouse)

    assert [row["insertId"] for row in bigquery_standin.insert_requests[0]["rows"]] == [copy_id(stored)]


def test_1200_events_go_in_three_requests_of_at_most_500_rows(warehouse, bigquery_standin):
    events = _events(1200)

    assert warehouse.insert_events(events) == []

    assert [len(body["rows"]) for body in _event_inserts(bigquery_standin)] == [500, 500, 200]
    assert bigquery_standin.insert_ids("events") == [copy_id(stored) for stored in events]


def test_huge_rows_are_split_into_requests_under_10_mb(warehouse, bigquery_standin):
    # "é" is 2 bytes of UTF-8 but 6 bytes of JSON as the client sends it ("\u00e9"):
    # measuring anything but the client's own serialization would overflow a request.
    events = [
        StoredEvent(f"id-{n}", "alephbet", "é" * 400_000, "green", "participate", f"visitor-{n}", None, now())
        for n in range(12)
    ]

    assert warehouse.insert_events(events) == []

    calls = bigquery_standin.inserts_into("events")
    assert len(calls) > 1
    assert all(call.size <= MAX_REQUEST_BYTES for call in calls)
    assert bigquery_standin.insert_ids("events") == [copy_id(stored) for stored in events]


def test_a_row_too_large_for_any_request_is_rejected_without_being_sent(warehouse, bigquery_standin):
    huge = StoredEvent("huge", "alephbet", "x" * MAX_REQUEST_BYTES, "green", "participate", "v", None, now())
    small = _event()

    rejections = warehouse.insert_events([huge, small])

    assert [r.copy_id for r in rejections] == [copy_id(huge)]
    assert "too large" in rejections[0].reason
    assert bigquery_standin.insert_ids("events") == [copy_id(small)]


# ---- per-row errors ------------------------------------------------------------------


def test_rows_bigquery_refuses_are_returned_as_rejections(warehouse, bigquery_standin):
    good, bad = _event(uuid="good"), _event(uuid="bad")
    bigquery_standin.reject_rows(copy_id(bad), reason="invalid", message="Cannot convert value")

    rejections = warehouse.insert_events([good, bad])

    assert rejections == [RowRejection(copy_id(bad), "invalid: Cannot convert value")]
    assert bigquery_standin.insert_ids("events") == [copy_id(good)]


def test_refused_rows_end_in_dead_letters_and_the_rest_land(warehouse, bigquery_standin):
    events = _events(10)
    records = _records(events)
    bigquery_standin.reject_rows(copy_id(events[3]), copy_id(events[7]), message="no such field: colour.")

    assert write_batch(records, warehouse) == {"batchItemFailures": []}

    assert bigquery_standin.insert_ids("events") == [copy_id(e) for n, e in enumerate(events) if n not in (3, 7)]
    letters = bigquery_standin.rows("dead_letters")
    assert [letter["sequence_number"] for letter in letters] == [records[3].sequence_number, records[7].sequence_number]
    assert base64.b64decode(letters[0]["data"]) == records[3].data
    assert "no such field: colour." in letters[0]["reason"]


def test_stopped_rows_are_transient_not_rejected(warehouse, bigquery_standin):
    stored = _event()
    bigquery_standin.reject_rows(copy_id(stored), reason="stopped", message="")

    with pytest.raises(TransientWarehouseError) as raised:
        warehouse.insert_events([stored])

    assert raised.value.rows_written == 0


# ---- transient failures ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [(500, "backendError"), (503, "backendError"), (500, ""), (503, ""), (429, "rateLimitExceeded"),
     (403, "rateLimitExceeded"), (403, "quotaExceeded")],
)
def test_server_errors_with_nothing_written_make_write_batch_raise(warehouse, bigquery_standin, status, reason):
    warehouse.ensure_tables()
    bigquery_standin.fail_inserts(status=status, reason=reason, times=None)

    with pytest.raises(TransientWarehouseError) as raised:
        write_batch(_records(_events(3)), warehouse)

    assert raised.value.rows_written == 0
    assert bigquery_standin.rows("events") == []


def test_the_client_retries_a_503_itself_with_the_same_insert_ids(warehouse, bigquery_standin):
    warehouse.ensure_tables()
    bigquery_standin.fail_inserts(status=503, times=2, land=True)
    events = _events(3)

    assert warehouse.insert_events(events) == []

    first, *retries = _event_inserts(bigquery_standin)
    assert len(retries) == 2
    assert all(retry["rows"] == first["rows"] for retry in retries)
    assert bigquery_standin.insert_ids("events") == [copy_id(e) for e in events]


def test_a_retried_batch_lands_each_identity_exactly_once(warehouse, bigquery_standin):
    warehouse.ensure_tables()
    events = _events(5)
    records = _records(events)
    bigquery_standin.fail_inserts(status=503, times=None, land=True)   # landed, but the answer was lost
    with pytest.raises(TransientWarehouseError):
        write_batch(records, warehouse)
    bigquery_standin.clear_failures()

    assert write_batch(records, warehouse) == {"batchItemFailures": []}

    insert_ids = {tuple(row["insertId"] for row in body["rows"]) for body in _event_inserts(bigquery_standin)}
    assert insert_ids == {tuple(copy_id(e) for e in events)}
    assert bigquery_standin.insert_ids("events") == [copy_id(e) for e in events]


def test_when_a_later_chunk_fails_the_batch_resumes_at_the_first_unwritten_record(warehouse, bigquery_standin):
    warehouse.ensure_tables()
    events = _events(1200)
    records = _records(events)
    # The events table only: the written rows' catalog rows are appended before the error is raised.
    bigquery_standin.fail_inserts(status=503, times=None, after=1, table="events")

    response = write_batch(records, warehouse)

    assert response == {"batchItemFailures": [{"itemIdentifier": records[500].sequence_number}]}
    assert bigquery_standin.insert_ids("events") == [copy_id(e) for e in events[:500]]
    assert len(bigquery_standin.rows("experiment_firsts")) == 500   # the written rows' catalog rows


def test_when_the_catalog_rows_of_a_partial_write_fail_too_the_whole_batch_is_retried(warehouse, bigquery_standin):
    warehouse.ensure_tables()
    bigquery_standin.fail_inserts(status=503, times=None, after=1)   # every table, after the first request

    with pytest.raises(TransientWarehouseError) as raised:
        write_batch(_records(_events(700)), warehouse)

    assert raised.value.rows_written == 0       # a resumed batch would never append the written rows' catalog rows


def test_a_refused_row_is_not_skipped_when_a_later_chunk_fails(warehouse, bigquery_standin):
    warehouse.ensure_tables()
    events = _events(700)
    records = _records(events)
    bigquery_standin.reject_rows(copy_id(events[10]))
    bigquery_standin.fail_inserts(status=503, times=None, after=1, table="events")

    response = write_batch(records, warehouse)

    assert response == {"batchItemFailures": [{"itemIdentifier": records[10].sequence_number}]}
    assert bigquery_standin.rows("dead_letters") == []
    # Lambda retries from that record on; this time BigQuery is well.
    bigquery_standin.clear_failures()
    assert write_batch(records[10:], warehouse) == {"batchItemFailures": []}
    assert [letter["sequence_number"] for letter in bigquery_standin.rows("dead_letters")] == [records[10].sequence_number]
    assert len(bigquery_standin.rows("events")) == 699


def test_a_timed_out_insert_is_transient(bigquery_standin):
    warehouse = _warehouse(bigquery_standin.client, timeout=0.2)
    warehouse.ensure_tables()
    bigquery_standin.delay_inserts(1.0, times=None)
    events = _events(2)

    with pytest.raises(TransientWarehouseError) as raised:
        write_batch(_records(events), warehouse)

    assert "timed out" in str(raised.value).lower()
    # The request reached BigQuery before the client gave up; the retry must not duplicate it.
    bigquery_standin.clear_failures()
    assert write_batch(_records(events), warehouse) == {"batchItemFailures": []}
    assert bigquery_standin.insert_ids("events") == [copy_id(e) for e in events]


def test_an_unreachable_bigquery_is_transient():
    client = bigquery.Client(
        project="test-project", credentials=AnonymousCredentials(),
        client_options={"api_endpoint": f"http://127.0.0.1:{_closed_port()}"},
    )

    with pytest.raises(TransientWarehouseError):
        _warehouse(client).insert_events([_event()])


# ---- permanent failures ------------------------------------------------------------


def test_a_table_deleted_after_the_check_is_a_clear_error_and_recreated_next_batch(warehouse, bigquery_standin):
    warehouse.insert_events([_event(uuid="before")])
    bigquery_standin.drop_table("events")

    with pytest.raises(api_exceptions.NotFound, match="Not found: Table"):
        warehouse.insert_events([_event(uuid="during")])

    warehouse.insert_events([_event(uuid="after")])
    assert [row["uuid"] for row in bigquery_standin.rows("events")] == ["after"]


@pytest.mark.parametrize(("status", "error"), [(400, api_exceptions.BadRequest), (403, api_exceptions.Forbidden)])
def test_a_request_refused_as_a_whole_propagates(warehouse, bigquery_standin, status, error):
    warehouse.ensure_tables()
    bigquery_standin.fail_inserts(status=status, times=None)   # invalid / accessDenied

    with pytest.raises(error):
        warehouse.insert_events([_event()])


# ---- dead letters --------------------------------------------------------------------


def test_dead_letters_are_inserted_under_their_sequence_number(warehouse, bigquery_standin):
    letters = [_letter("101"), _letter("102", data="ünïcode".encode())]

    warehouse.insert_dead_letters(letters)

    (call,) = bigquery_standin.inserts_into("dead_letters")
    assert [row["insertId"] for row in call.body["rows"]] == ["101", "102"]
    stored = bigquery_standin.rows("dead_letters")
    assert [base64.b64decode(row["data"]) for row in stored] == [letter.data for letter in letters]


def test_a_dead_letter_bigquery_refuses_raises(warehouse, bigquery_standin):
    bigquery_standin.reject_rows("101")

    with pytest.raises(DeadLetterRejected, match="101"):
        warehouse.insert_dead_letters([_letter("100"), _letter("101")])


def test_dead_letters_that_cannot_be_written_now_raise(warehouse, bigquery_standin):
    warehouse.ensure_tables()
    bigquery_standin.fail_inserts(status=503, times=None, table="dead_letters")
    records = _records([_event()]) + [StreamRecord("2000", "k", b"\xff", ARRIVED)]

    with pytest.raises(TransientWarehouseError):
        write_batch(records, warehouse)


# ---- the stand-in, for query tests to come ---------------------------------------------


def test_the_standin_answers_queries(bigquery_standin):
    bigquery_standin.answer_queries(lambda query: QueryAnswer(
        schema=[("variant", "STRING"), ("visitors", "INT64"), ("first_seen", "TIMESTAMP")],
        rows=[{"variant": "green", "visitors": 3, "first_seen": ARRIVED}],
    ))
    job_config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("e", "STRING", "checkout")])
    sql = "SELECT variant, COUNT(*) AS visitors FROM analytics.events WHERE experiment = @e GROUP BY 1"

    waited = list(bigquery_standin.client.query_and_wait(sql, job_config=job_config))
    resulted = list(bigquery_standin.client.query(sql, job_config=job_config).result())

    for rows in (waited, resulted):
        assert [(r["variant"], r["visitors"], r["first_seen"]) for r in rows] == [("green", 3, ARRIVED)]
    assert [(q.sql, q.parameters) for q in bigquery_standin.queries] == [(sql, {"e": "checkout"})] * 2
