"""Hostile Segment input: odd keys, deep nesting, 10,000 keys, huge numbers, broken UTF-8.

Each is either stored exactly as given (in DuckDB, and accepted by BigQuery's rules for its
JSON type) or refused with a 400 naming the reason; never a 5xx, never SQL.
"""
from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.ingest import segment
from chalicelib.ingest.events import now
from chalicelib.ingest.records import encode_record
from chalicelib.storage.bigquery_warehouse import BigQueryWarehouse
from chalicelib.storage.writer import StreamRecord, copy_id, write_batch
from tests.bigquery_standin import BigQueryStandIn, bigquery_standin  # noqa: F401
from tests.helpers import stored_row_count, wait_until_written
from tests.segment_helpers import answer, post, rows, segment_client  # noqa: F401
from tests.test_bigquery_writer import FAST_RETRY

ODD_KEYS = {
    'say "hi"': 'it\'s "quoted"',
    "$set": {"$inc": 1, "$": "$$"},
    "a.b.c": "d.e",
    "": "an empty key",
    "back\\slash": "\\",
    "emoji 😀": "é ü 中文",
    "'; DROP TABLE events; --": "Robert'); DROP TABLE events;--",
    "{\"json\": true}": "[1, 2",
    "\u0000nul": "tab\there\nnewline",
}
BIG_INTEGERS = {"uint64_max": 2 ** 64 - 1, "int64_min": -(2 ** 63), "beyond_doubles": 2 ** 53 + 1}
EXTREME_FLOATS = {"largest": 1.7976931348623157e308, "smallest": 5e-324, "negative_zero": -0.0}


def nested(depth: int) -> dict[str, Any]:
    """An object `depth` levels deep: {"level": {"level": ... {"level": "bottom"}}}."""
    value: Any = "bottom"
    for _ in range(depth):
        value = {"level": value}
    return value


def track(properties: Any, message_id: str = "m") -> dict[str, Any]:
    return {"userId": "u", "event": "Hostile", "messageId": message_id, "properties": properties}


ACCEPTED = {
    "odd keys": ODD_KEYS,
    "100 levels deep": nested(100),
    "500 levels deep (BigQuery's limit)": nested(500),
    "64-bit integers": BIG_INTEGERS,
    "extreme doubles": EXTREME_FLOATS,
    "long arrays": {"list": list(range(3000))},
}


@pytest.mark.parametrize("properties", list(ACCEPTED.values()), ids=list(ACCEPTED))
def test_hostile_but_valid_properties_are_stored_exactly_as_given(segment_client, properties):
    reply = post(segment_client, "/v1/track", track(properties))
    wait_until_written()

    assert reply.status_code == 200, reply.body
    [row] = rows()
    assert row["properties"] == properties
    assert row["event"] == "Hostile"


@pytest.mark.parametrize("raw, rule_part", [
    (b'{"userId": "u", "event": "E", "properties": {"n": 18446744073709551616}}', "integers fit in 64 bits"),
    (b'{"userId": "u", "event": "E", "properties": {"n": -9223372036854775809}}', "integers fit in 64 bits"),
    (b'{"userId": "u", "event": "E", "properties": {"n": 1e400}}', "numbers must be finite"),
    (b'{"userId": "u", "event": "E", "properties": {"n": NaN}}', "numbers must be finite"),
    (b'{"userId": "u", "event": "E", "properties": {"n": -Infinity}}', "numbers must be finite"),
    (b'{"userId": "u", "event": "E", "properties": {"n": ' + b"9" * 5000 + b"}}", "integers fit in 64 bits"),
    (b'{"userId": "u", "event": "E", "properties": {"name": "caf\xe9"}}', "must be UTF-8 encoded"),
    (b'{"userId": "u", "event": "E", "properties": {"\xff": 1}}', "must be UTF-8 encoded"),
    (b'{"userId": "u", "event": "E", "properties": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
])
def test_numbers_bigquery_cannot_store_and_broken_text_get_400(segment_client, raw, rule_part):
    reply = post(segment_client, "/v1/track", None, raw=raw)

    assert reply.status_code == 400
    [error] = answer(reply)["errors"]
    assert error["field"] == "body" and rule_part in error["rule"]
    assert stored_row_count() == 0


@pytest.mark.parametrize("properties, field, rule_part", [
    (nested(501), "properties", "must nest at most 500 levels deep"),
    ({"bad": "\ud800"}, "properties", "unpaired UTF-16 surrogate"),
    ({"\udfff": 1}, "properties", "unpaired UTF-16 surrogate"),
])
def test_json_bigquery_would_refuse_gets_400_naming_the_field(segment_client, properties, field, rule_part):
    body = json.dumps(track(properties)).encode("ascii")     # surrogates travel as \\ud800 escapes
    reply = post(segment_client, "/v1/track", None, raw=body)

    assert reply.status_code == 400
    [error] = answer(reply)["errors"]
    assert error["field"] == field and rule_part in error["rule"]


def test_ten_thousand_keys_are_over_the_32_kb_event_limit(segment_client):
    many = {f"k{n}": n for n in range(10_000)}
    reply = post(segment_client, "/v1/batch", {"batch": [dict(track(many), type="track")]})

    assert reply.status_code == 400
    [error] = answer(reply)["errors"]
    assert (error["field"], error["index"]) == ("message", 0) and "at most 32768 bytes" in error["rule"]


def test_ten_thousand_keys_in_one_call_are_over_the_32_kb_request_limit(segment_client):
    reply = post(segment_client, "/v1/track", track({f"k{n}": n for n in range(10_000)}))

    assert (reply.status_code, answer(reply)["code"]) == (400, "too_large")


def test_hostile_names_and_ids_are_stored_as_given(segment_client):
    odd = "'; DROP TABLE events; -- \"$x.y\" 😀"
    reply = post(segment_client, "/v1/track", {"userId": odd, "anonymousId": odd, "event": odd, "messageId": odd})
    wait_until_written()

    assert reply.status_code == 200
    [row] = rows()
    assert (row["user_id"], row["anonymous_id"], row["event"], row["message_id"]) == (odd, odd, odd, odd)


# ---- BigQuery takes what Dalet stores ----------------------------------------------------------


def test_the_writer_lands_every_hostile_but_valid_message_in_bigquery(bigquery_standin):
    warehouse = BigQueryWarehouse(bigquery_standin.client, dataset="analytics", table="events", retry=FAST_RETRY,
                                  timeout=5)
    document = {"batch": [dict(track(properties, message_id=name), type="track")
                          for name, properties in ACCEPTED.items()]}
    stored = segment.parse_messages(document, segment.BATCH, "web", now(), "curl/8.0")
    records = [StreamRecord(str(n), s.event_id, encode_record(s), now()) for n, s in enumerate(stored)]

    assert write_batch(records, warehouse) == {"batchItemFailures": []}
    assert bigquery_standin.rows("analytics.dead_letters") == []
    landed = {row["message_id"]: json.loads(row["properties"]) for row in bigquery_standin.rows("analytics.events")}
    assert landed == ACCEPTED


@pytest.mark.parametrize("properties", [{"n": 2 ** 64}, {"n": float("inf")}, nested(501)],
                         ids=["beyond 64 bits", "infinite", "501 levels"])
def test_the_stand_in_refuses_json_bigquery_refuses(bigquery_standin, properties):
    # What the route refuses above, BigQuery would refuse: checked here on the stand-in the writer tests use.
    warehouse = BigQueryWarehouse(bigquery_standin.client, dataset="analytics", table="events", retry=FAST_RETRY,
                                  timeout=5)
    text = json.dumps(properties)    # Python writes inf as Infinity, which is not JSON
    stored = segment.parse_messages({"userId": "u", "event": "E", "messageId": "m"}, "track", "web", now(), None)[0]

    [rejection] = warehouse.insert_events([stored._replace(properties=text)])
    assert rejection.copy_id == copy_id(stored)


# ---- anything at all ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 63), max_value=2 ** 64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=15), children, max_size=5),
    max_leaves=30,
)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(properties=st.dictionaries(st.text(max_size=20), json_values, max_size=8), event=st.text(max_size=40))
def test_any_properties_and_event_name_get_200_and_are_stored_as_given_or_a_json_400(segment_client, properties, event):
    message_id = f"fuzz-{stored_row_count()}-{hash(json.dumps(properties, sort_keys=True))}-{hash(event)}"
    reply = post(segment_client, "/v1/track", {"userId": "u", "event": event, "messageId": message_id,
                                               "properties": properties})

    assert reply.status_code in (200, 400), reply.body
    if reply.status_code == 400:
        assert answer(reply)["errors"]
        return
    wait_until_written()
    [row] = rows("message_id = ?", [message_id])
    assert (row["event"], row["properties"]) == (event, properties)


@FUZZ
@given(body=st.binary(max_size=300) | json_values.map(lambda value: json.dumps(value).encode()),
       path=st.sampled_from(["/v1/batch", "/v1/track", "/v1/identify", "/v1/b"]), gzipped=st.booleans())
def test_any_body_gets_a_json_answer_never_a_5xx(segment_client, body, path, gzipped):
    reply = post(segment_client, path, None, raw=body, gzipped=gzipped)

    assert reply.status_code in (200, 400), reply.body
    assert answer(reply)["success"] is (reply.status_code == 200)


@FUZZ
@given(batch=st.lists(st.dictionaries(st.sampled_from(["type", "userId", "anonymousId", "event", "messageId", "name",
                                                       "properties", "traits", "context", "timestamp", "sentAt",
                                                       "groupId", "previousId"]), json_values, max_size=8),
                      min_size=1, max_size=5))
def test_any_batch_of_messages_is_accepted_or_refused_whole_never_a_5xx(segment_client, batch):
    before = stored_row_count()
    reply = post(segment_client, "/v1/batch", {"batch": batch})

    assert reply.status_code in (200, 400), reply.body
    if reply.status_code == 400:
        assert all("field" in error and "rule" in error for error in answer(reply)["errors"])
        wait_until_written()
        assert stored_row_count() == before
