"""Segment messages on the stream: compact records the writer decodes back into rows, or dead-letters."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.ingest import segment
from chalicelib.ingest.events import event_id, parse_event, segment_event_id, stamp
from chalicelib.ingest.records import InvalidRecord, decode_record, encode_record
from tests.test_writer import KinesisBatch, kinesis_batch, warehouse, write  # noqa: F401

RECEIVED = datetime(2026, 5, 1, 9, 30, tzinfo=timezone.utc)
CONTEXT = {"library": {"name": "analytics.js", "version": "next-1.84.3"}, "page": {"path": "/pricing",
           "url": "https://example.com/pricing?q=\"x\""}, "userAgent": "Mozilla/5.0 Firefox/128.0"}


def message(**fields):
    return {"type": "track", "userId": "user-1", "anonymousId": "anon-1", "event": "Order Completed",
            "messageId": "m-1", "timestamp": "2026-05-01T09:29:00Z", "sentAt": "2026-05-01T09:29:30Z",
            "properties": {"revenue": 19.99, "sku": "a\"b"}, "traits": {"plan": "pro"}, "context": CONTEXT, **fields}


def stored(**fields):
    return segment.parse_messages({"batch": [message(**fields)]}, segment.BATCH, "web", RECEIVED, None)[0]


def test_a_record_decodes_to_the_stored_event_it_was_made_from():
    original = stored()

    assert decode_record(encode_record(original)) == original


@pytest.mark.parametrize("field", ["messageId", "userId", "anonymousId"])
def test_ids_up_to_segments_256_characters_survive_the_writer(field):
    # AlephBet's own `id` stops at 128 characters; a Segment id of 129-256 must not be dead-lettered.
    original = stored(**{field: "x" * 256})

    assert decode_record(encode_record(original)) == original


def test_the_json_columns_travel_as_json_not_as_escaped_strings():
    original = stored()
    record = encode_record(original)
    as_strings = json.dumps(original.to_row(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    assert json.loads(record)["context"] == CONTEXT
    assert len(record) < len(as_strings)
    assert b"event_id" not in record           # derived again from namespace and messageId


def test_the_writer_lands_segment_and_alephbet_records_of_one_batch(warehouse, kinesis_batch):
    alephbet = stamp(parse_event({"experiment": "e", "variant": "a", "event": "participate", "uuid": "u"}), RECEIVED,
                     "Chrome")
    write(kinesis_batch.event(stored(), alephbet), warehouse)

    found = warehouse.fetch("SELECT type, namespace, event, browser, properties FROM events ORDER BY type NULLS FIRST")
    assert [(row["type"], row["namespace"], row["event"], row["browser"]) for row in found] == [
        (None, "alephbet", "participate", "Chrome"), ("track", "web", "Order Completed", "Firefox")]
    assert json.loads(found[1]["properties"]) == {"revenue": 19.99, "sku": "a\"b"}


@pytest.mark.parametrize("change, reason", [
    ({"type": "purchase"}, "type: must be one of"),
    ({"message_id": None}, "message_id: is required"),
    ({"namespace": ""}, "namespace: must be 1-256 characters"),
    ({"user_id": None, "anonymous_id": None}, "user_id: user_id or anonymous_id is required"),
    ({"properties": [1, 2]}, "properties: must be a JSON object"),
    ({"received_at": "yesterday"}, "received_at/timestamp: must be ISO-8601"),
    ({"browser": {"name": "Chrome"}}, "browser: must be a string"),
])
def test_a_bad_segment_record_is_dead_lettered_with_its_reason_while_the_rest_lands(warehouse, kinesis_batch,
                                                                                    change, reason):
    bad = json.loads(encode_record(stored(messageId="bad")))
    bad.update(change)
    write(kinesis_batch.event(stored(messageId="good"), json.dumps(bad).encode("utf-8")), warehouse)

    assert [row["message_id"] for row in warehouse.fetch("SELECT message_id FROM events")] == ["good"]
    [letter] = warehouse.fetch("SELECT reason FROM dead_letters")
    assert reason in letter["reason"]


def test_a_redelivered_segment_record_lands_once(warehouse, kinesis_batch):
    record = encode_record(stored())
    write(kinesis_batch.event(record, record), warehouse)
    write(kinesis_batch.event(record), warehouse)

    assert warehouse.fetch("SELECT COUNT(*) AS n FROM events")[0]["n"] == 1


def test_the_decoder_refuses_a_record_that_is_not_a_segment_type():
    with pytest.raises(InvalidRecord, match="type: must be one of"):
        decode_record(b'{"type": null, "namespace": "web", "message_id": "m", "user_id": "u"}')


names = st.text(min_size=1, max_size=12)


@given(namespace=names, message_id=names, experiment=names, variant=names, name=names, uuid=names)
def test_a_segment_message_never_shares_an_id_with_an_alephbet_event(namespace, message_id, experiment, variant,
                                                                     name, uuid):
    assert segment_event_id(namespace, message_id) != event_id(namespace, experiment, variant, name, uuid)
    # Even when the message id is spelled like an AlephBet identity's tail:
    spelled = f"{len(experiment)}:{experiment}{len(variant)}:{variant}{len(name)}:{name}{len(uuid)}:{uuid}"
    assert segment_event_id(namespace, spelled) != event_id(namespace, experiment, variant, name, uuid)


def test_the_writer_reports_no_failures_for_a_full_segment_batch(warehouse, kinesis_batch):
    batch = [stored(messageId=f"m-{n}") for n in range(500)]

    assert write(kinesis_batch.event(*batch), warehouse) == {"batchItemFailures": []}
    assert warehouse.fetch("SELECT COUNT(DISTINCT message_id) AS n FROM events")[0]["n"] == 500


ids = st.none() | st.text(max_size=20) | st.integers(min_value=-(2 ** 40), max_value=2 ** 40)
moments = st.none() | st.datetimes(timezones=st.sampled_from([timezone.utc, None])).map(lambda d: d.isoformat())
objects = st.none() | st.dictionaries(st.text(max_size=8), st.text(max_size=8) | st.integers() | st.floats(
    allow_nan=False, allow_infinity=False) | st.booleans() | st.none(), max_size=4)


@given(call=st.sampled_from(segment.TYPES), user_id=ids, anonymous_id=ids, message_id=ids, name=st.none() | st.text(),
       properties=objects, traits=objects, context=objects, timestamp=moments, sent_at=moments,
       previous_id=ids, group_id=ids)
def test_every_message_the_route_accepts_reaches_the_warehouse_unchanged(call, user_id, anonymous_id, message_id, name,
                                                                         properties, traits, context, timestamp,
                                                                         sent_at, previous_id, group_id):
    # Nothing acknowledged may be lost: what ingestion accepts, the writer must decode to the same row.
    message = {"type": call, "userId": user_id, "anonymousId": anonymous_id, "messageId": message_id, "event": name,
               "name": name, "properties": properties, "traits": traits, "context": context,
               "timestamp": timestamp, "sentAt": sent_at, "previousId": previous_id, "groupId": group_id}
    try:
        [accepted] = segment.parse_messages({"batch": [message]}, segment.BATCH, "web", RECEIVED, "curl/8")
    except segment.InvalidEvent:
        return
    assert decode_record(encode_record(accepted)) == accepted
