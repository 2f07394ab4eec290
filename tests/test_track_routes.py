"""The /track routes as a browser sees them (chalice.test.Client on the embedded backend)."""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlencode

import pytest

from chalicelib import runtime
from chalicelib.ingest.events import StoredEvent
from chalicelib.ingest.publisher import PublishError
from chalicelib.responses import PIXEL_GIF

EVENT = {"namespace": "shop", "experiment": "my a/b test", "variant": "A", "event": "participate", "uuid": "u-1"}
JSON = {"Content-Type": "application/json"}
BEACON = {"Content-Type": "text/plain;charset=UTF-8"}
BROWSER_IMAGE_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[StoredEvent] = []

    def publish(self, events: Sequence[StoredEvent]) -> None:
        self.published.extend(events)


class FailingPublisher:
    def publish(self, events: Sequence[StoredEvent]) -> None:
        raise PublishError("Kinesis did not take the events in time: 3 records failed")


@pytest.fixture
def published(client, monkeypatch) -> list[StoredEvent]:
    recorder = RecordingPublisher()
    monkeypatch.setattr(runtime, "publisher", lambda: recorder)
    return recorder.published


def body_of(response) -> Any:
    return json.loads(response.body)


def query(**overrides: str) -> str:
    """EVENT as a query string, with some fields changed."""
    return urlencode({**EVENT, **overrides})


def post(client, payload: Any, headers: dict[str, str] = JSON):
    return client.http.post("/track", headers=headers, body=json.dumps(payload).encode())


def warehouse_rows(sql: str, params: list[Any], expected_count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Poll the embedded warehouse until `expected_count` rows match (the consumer is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = runtime.warehouse().fetch(sql, params)
        if len(rows) >= expected_count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


# --- success ----------------------------------------------------------------------------------

def test_get_track_accepts_what_alephbet_sends_with_a_200(client, published):
    # AlephBet encodes spaces as '+' and the slash as %2F.
    response = client.http.get("/track?namespace=shop&experiment=my+a%2Fb+test&variant=A&event=participate&uuid=u-1")
    assert response.status_code == 200
    assert body_of(response) == {"ok": True, "accepted": 1}
    (stored,) = published
    assert (stored.namespace, stored.experiment, stored.variant, stored.event, stored.uuid, stored.value) == (
        "shop", "my a/b test", "A", "participate", "u-1", None)


def test_get_track_takes_a_numeric_value(client, published):
    assert client.http.get(f"/track?{query(event='purchase', value='19.99')}").status_code == 200
    assert published[0].value == 19.99


def test_post_track_accepts_one_event_object(client, published):
    response = post(client, {**EVENT, "value": 5})
    assert response.status_code == 200
    assert body_of(response) == {"ok": True, "accepted": 1}
    assert [(e.uuid, e.value) for e in published] == [("u-1", 5.0)]


def test_post_track_accepts_an_array_of_events_in_order(client, published):
    batch = [{**EVENT, "uuid": f"u-{n}"} for n in range(20)]
    response = post(client, batch)
    assert response.status_code == 200
    assert body_of(response) == {"ok": True, "accepted": 20}
    assert [e.uuid for e in published] == [f"u-{n}" for n in range(20)]


def test_post_track_accepts_a_text_plain_beacon(client, published):
    response = post(client, [EVENT, {**EVENT, "event": "purchase"}], headers=BEACON)
    assert response.status_code == 200
    assert [e.event for e in published] == ["participate", "purchase"]


def test_post_without_a_content_type_is_read_as_json(client, published):
    response = client.http.post("/track", body=json.dumps(EVENT).encode())
    assert response.status_code == 200 and len(published) == 1


def test_post_track_takes_500_events(client, published):
    assert post(client, [{**EVENT, "uuid": f"u-{n}"} for n in range(500)]).status_code == 200
    assert len(published) == 500


def test_pixel_answers_a_browser_with_a_transparent_gif(client, published):
    response = client.http.get(f"/track.gif?{query()}", headers={"Accept": BROWSER_IMAGE_ACCEPT})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/gif"
    assert response.body == PIXEL_GIF and response.body.startswith(b"GIF89a")
    assert len(published) == 1


@pytest.mark.parametrize("accept", ["image/gif", "image/*", "*/*", "image/webp,image/*;q=0.9"])
def test_pixel_answers_any_image_accept_with_the_gif(client, published, accept):
    response = client.http.get(f"/track.gif?{query()}", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.body == PIXEL_GIF


@pytest.mark.parametrize("accept", [None, "application/json", "text/html", "image/gifx", "image/webp"])
def test_pixel_without_an_image_accept_still_counts_the_event_with_a_200(client, published, accept):
    headers = {} if accept is None else {"Accept": accept}
    response = client.http.get(f"/track.gif?{query()}", headers=headers)
    assert response.status_code == 200
    assert body_of(response) == {"ok": True, "accepted": 1}
    assert len(published) == 1


def test_an_accepted_pixel_without_accept_lands_in_the_warehouse(client):
    assert client.http.get(f"/track.gif?{query(uuid='pixel-user')}").status_code == 200
    rows = warehouse_rows("SELECT uuid, experiment FROM events WHERE uuid = ?", ["pixel-user"], 1)
    assert rows == [{"uuid": "pixel-user", "experiment": "my a/b test"}]


def test_events_from_every_route_land_in_the_warehouse_once(client):
    client.http.get(f"/track?{query(uuid='g')}")
    post(client, [{**EVENT, "uuid": "p1"}, {**EVENT, "uuid": "p2"}])
    post(client, {**EVENT, "uuid": "b"}, headers=BEACON)
    client.http.get(f"/track.gif?{query(uuid='i')}", headers={"Accept": BROWSER_IMAGE_ACCEPT})
    client.http.get(f"/track?{query(uuid='g')}")        # AlephBet re-sends until it sees a 200
    rows = warehouse_rows("SELECT uuid FROM events ORDER BY uuid", [], 5)
    assert [row["uuid"] for row in rows] == ["b", "g", "i", "p1", "p2"]


def test_an_event_id_is_taken_from_a_post_a_query_string_and_a_pixel(client, published):
    post(client, {**EVENT, "event": "purchase", "id": "order-1"})
    client.http.get(f"/track?{query(event='purchase', id='order-2')}")
    client.http.get(f"/track.gif?{query(event='purchase', id='order-3')}", headers={"Accept": BROWSER_IMAGE_ACCEPT})
    assert [stored.message_id for stored in published] == ["order-1", "order-2", "order-3"]


def test_two_purchases_by_one_user_both_land_and_a_retried_one_lands_once(client):
    purchase = {**EVENT, "event": "purchase", "uuid": "buyer"}
    post(client, [{**purchase, "id": "order-1", "value": 10}, {**purchase, "id": "order-2", "value": 25}])
    post(client, {**purchase, "id": "order-1", "value": 10})                 # a retry of the first
    client.http.get(f"/track?{query(event='purchase', uuid='buyer')}")      # without an id: deduped as always
    client.http.get(f"/track?{query(event='purchase', uuid='buyer')}")
    post(client, {**EVENT, "uuid": "sentinel"})   # the stream is read in order: once it lands, all did
    warehouse_rows("SELECT uuid FROM events WHERE uuid = ?", ["sentinel"], 1)
    rows = runtime.warehouse().fetch("SELECT message_id, value FROM events WHERE uuid = ? "
                                     "ORDER BY message_id NULLS LAST", ["buyer"])
    assert rows == [{"message_id": "order-1", "value": 10.0}, {"message_id": "order-2", "value": 25.0},
                    {"message_id": None, "value": None}]


def test_a_bad_event_id_gets_a_400_naming_id(client, published):
    response = post(client, [EVENT, {**EVENT, "id": "x" * 129}])
    assert response.status_code == 400
    assert body_of(response)["errors"] == [{"field": "id", "rule": "must be at most 128 characters (got 129)",
                                            "index": 1}]
    response = client.http.get(f"/track?{query(id='')}")
    assert body_of(response)["errors"] == [{"field": "id", "rule": "must be 1-128 characters, not blank"}]
    assert published == []


def test_unknown_query_parameters_are_ignored_even_repeated(client, published):
    response = client.http.get(f"/track?{query()}&_=1&_=2&utm_source=x")
    assert response.status_code == 200 and len(published) == 1


# --- headers ----------------------------------------------------------------------------------

def test_every_answer_allows_any_origin_and_is_not_cached(client, monkeypatch):
    recorder = RecordingPublisher()
    monkeypatch.setattr(runtime, "publisher", lambda: recorder)
    answers = {
        "GET 200": client.http.get(f"/track?{query()}"),
        "POST 200": post(client, EVENT),
        "pixel 200": client.http.get(f"/track.gif?{query()}", headers={"Accept": BROWSER_IMAGE_ACCEPT}),
        "GET 400": client.http.get("/track?experiment=e"),
        "POST 400": post(client, {"uuid": ""}),
        "pixel 400": client.http.get("/track.gif", headers={"Accept": BROWSER_IMAGE_ACCEPT}),
        "POST 413": client.http.post("/track", headers=JSON, body=b" " * (1024 * 1024 + 1)),
    }
    monkeypatch.setattr(runtime, "publisher", FailingPublisher)
    answers["GET 503"] = client.http.get(f"/track?{query()}")
    answers["POST 503"] = post(client, EVENT)
    for name, response in answers.items():
        assert str(response.status_code) == name.split()[-1], name
        assert response.headers["Access-Control-Allow-Origin"] == "*", name
        assert response.headers["Cache-Control"] == "no-store", name


def test_a_refused_content_type_still_carries_cors_headers(client):
    response = client.http.post("/track", headers={"Content-Type": "application/x-www-form-urlencoded"},
                                body=b"experiment=e")
    assert response.status_code == 415
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "application/x-www-form-urlencoded" in body_of(response)["error"]
    assert response.headers["Cache-Control"] == "no-store"


def test_a_cross_origin_json_post_passes_the_preflight(client):
    # chalice.test's Client cannot read a body-less answer, so ask the gateway it wraps directly.
    answer = client.http._local_gateway.handle_request(
        method="OPTIONS", path="/track", body=b"",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"},
    )
    assert answer["statusCode"] == 200
    headers = answer["headers"]
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in headers["Access-Control-Allow-Methods"].split(",")
    assert "content-type" in headers["Access-Control-Allow-Headers"].lower().split(",")


# --- 400: bad events, all or nothing ------------------------------------------------------------

def test_get_with_missing_fields_names_each_of_them(client, published):
    response = client.http.get("/track?experiment=e")
    assert response.status_code == 400
    assert body_of(response)["errors"] == [
        {"field": "variant", "rule": "is required"},
        {"field": "event", "rule": "is required"},
        {"field": "uuid", "rule": "is required"},
    ]
    assert published == []


def test_a_post_with_bad_events_lists_each_bad_index_and_field_and_publishes_none(client, published):
    batch = [EVENT, {**EVENT, "uuid": ""}, EVENT, {**EVENT, "variant": "x" * 300, "value": "NaN"}, "not an event"]
    response = post(client, batch)
    assert response.status_code == 400
    errors = {(error["index"], error["field"]) for error in body_of(response)["errors"]}
    assert errors == {(1, "uuid"), (3, "variant"), (3, "value"), (4, "event")}
    assert published == []


@pytest.mark.parametrize("count", [501, 10_000])
def test_more_than_500_events_in_one_post_are_refused(client, published, count):
    response = post(client, [{"uuid": "u"}] * count)
    assert response.status_code == 400
    (error,) = body_of(response)["errors"]
    assert error["field"] == "body" and "500" in error["rule"]
    assert published == []


DOT_RULE = 'must not be "." or "..": the name is a URL path segment of the report routes'


@pytest.mark.parametrize("name", [".", ".."])
def test_an_experiment_named_dot_or_dot_dot_is_refused_naming_the_rule(client, published, name):
    # /experiments/./results would reach the experiment "results"; /experiments/.. the list.
    for response in (client.http.get(f"/track?{query(experiment=name)}"), post(client, {**EVENT, "experiment": name}),
                     client.http.get(f"/track.gif?{query(experiment=name)}")):
        assert response.status_code == 400
        assert body_of(response)["errors"] == [{"field": "experiment", "rule": DOT_RULE}]
    response = post(client, [EVENT, {**EVENT, "experiment": name}])
    assert body_of(response)["errors"] == [{"field": "experiment", "rule": DOT_RULE, "index": 1}]
    assert published == []


def test_names_with_dots_that_are_not_whole_segments_are_accepted(client, published):
    for name in ("...", ".hidden", "v1.2", ". "):
        assert client.http.get(f"/track?{query(experiment=name)}").status_code == 200
    assert [stored.experiment for stored in published] == ["...", ".hidden", "v1.2", ". "]


def test_a_repeated_event_field_in_the_query_is_refused(client, published):
    response = client.http.get(f"/track?{query()}&variant=B")
    assert response.status_code == 400
    assert body_of(response)["errors"] == [{"field": "variant", "rule": "must be given once, not repeated"}]
    assert published == []


@pytest.mark.parametrize("body, problem", [
    (b"", "empty"),
    (b"{not json", "valid JSON"),
    (b"\xff\xfe{}", "UTF-8"),
    (b"42", "object or an array"),
    (b"[]", "at least one"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
])
def test_a_body_that_is_not_events_gets_a_400_saying_why(client, published, body, problem):
    response = client.http.post("/track", headers=JSON, body=body)
    assert response.status_code == 400
    (error,) = body_of(response)["errors"]
    assert error["field"] == "body" and problem in error["rule"]
    assert published == []


def test_a_body_over_1_mib_gets_a_413_and_publishes_nothing(client, published):
    events = [{**EVENT, "uuid": f"u-{n}", "padding": "x" * 3000} for n in range(400)]
    body = json.dumps(events).encode()
    assert len(body) > 1024 * 1024
    response = client.http.post("/track", headers=JSON, body=body)
    assert response.status_code == 413
    assert "limit" in body_of(response)["error"]
    assert published == []


def test_a_body_of_exactly_1_mib_is_tracked_and_one_byte_more_gets_a_413(client, published):
    def padded_to(size: int) -> bytes:
        text = json.dumps(EVENT).encode()
        return text + b" " * (size - len(text))

    exact = client.http.post("/track", headers=JSON, body=padded_to(1024 * 1024))
    over = client.http.post("/track", headers=JSON, body=padded_to(1024 * 1024 + 1))
    assert (exact.status_code, over.status_code) == (200, 413), exact.body
    assert [stored.uuid for stored in published] == ["u-1"]


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                          "application/xml", "image/png"])
def test_an_unsupported_content_type_gets_a_415_with_a_json_body(client, published, content_type):
    response = client.http.post("/track", headers={"Content-Type": content_type}, body=json.dumps(EVENT).encode())
    assert response.status_code == 415
    assert content_type.split(";")[0] in body_of(response)["error"]
    assert published == []


# --- 503: the stream cannot take the events -----------------------------------------------------

@pytest.mark.parametrize("send", [
    lambda client: client.http.get(f"/track?{query()}"),
    lambda client: post(client, [EVENT, {**EVENT, "uuid": "u-2"}]),
    lambda client: client.http.get(f"/track.gif?{query()}", headers={"Accept": BROWSER_IMAGE_ACCEPT}),
])
def test_a_publisher_failure_answers_503_with_a_generic_reason_and_logs_the_cause(client, monkeypatch, send,
                                                                                 caplog):
    monkeypatch.setattr(runtime, "publisher", FailingPublisher)
    response = send(client)
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/json"
    assert body_of(response) == {"error": "the event stream is unavailable; retry later",
                                 "reason": "stream_unavailable"}
    assert "Kinesis did not take the events in time: 3 records failed" in caplog.text


def test_a_stream_failure_midway_through_a_batch_appends_none_of_it(client, data_dir, caplog):
    assert post(client, {**EVENT, "uuid": "before"}).status_code == 200     # starts the pipeline
    stream_file = data_dir / runtime.STREAM_FILE
    with sqlite3.connect(stream_file) as db:   # a real SQLite failure on the batch's third record
        db.execute("CREATE TRIGGER fail_third BEFORE INSERT ON records WHEN CAST(NEW.data AS TEXT) LIKE '%u-third%'"
                   " BEGIN SELECT RAISE(ABORT, 'disk trouble'); END")
    before = _stream_sequence(stream_file)
    response = post(client, [{**EVENT, "uuid": "u-first"}, {**EVENT, "uuid": "u-second"}, {**EVENT, "uuid": "u-third"}])
    assert response.status_code == 503
    assert "disk trouble" in caplog.text and "disk trouble" not in response.body.decode()
    assert _stream_sequence(stream_file) == before          # nothing of the batch was appended
    assert post(client, {**EVENT, "uuid": "after"}).status_code == 200
    rows = warehouse_rows("SELECT uuid FROM events ORDER BY uuid", [], 2)
    assert [row["uuid"] for row in rows] == ["after", "before"]


def _stream_sequence(stream_file: Path) -> int:
    with sqlite3.connect(stream_file) as db:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
    return row[0] if row else 0


def test_an_unusable_data_folder_answers_503_and_logs_dalet_data_dir(client, monkeypatch, tmp_path, caplog):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    monkeypatch.setenv("DALET_DATA_DIR", str(not_a_folder / "data"))
    runtime.shutdown()
    response = client.http.get(f"/track?{query()}")
    assert response.status_code == 503
    assert "DALET_DATA_DIR" in caplog.text and body_of(response)["reason"] == "stream_unavailable"


def test_a_misconfigured_cloud_backend_answers_503_and_logs_the_missing_variable(client, monkeypatch, caplog):
    monkeypatch.setenv("DALET_BACKEND", "aws")
    monkeypatch.setenv("DALET_STREAM_NAME", "events")
    monkeypatch.setenv("DALET_BQ_TABLE", "events")
    runtime.shutdown()
    response = post(client, EVENT)
    assert response.status_code == 503
    assert "DALET_BQ_DATASET" in caplog.text and body_of(response)["reason"] == "server_misconfigured"


def test_the_api_reference_documents_every_field_track_accepts():
    from chalicelib.ingest.track import EVENT_FIELDS

    reference = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text(encoding="utf-8")
    fields_section = reference[reference.index("\nFields: "):reference.index("| answer | meaning |")]
    assert {field for field in EVENT_FIELDS if f"`{field}`" not in fields_section} == set()
