"""Segment's HTTP Tracking API on /v1/*: what each call stores, who may send, what is refused."""
from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.ingest.events import event_id, segment_event_id
from tests.helpers import stored_row_count, wait_until_written
from tests.segment_helpers import (NAMESPACE, OTHER_KEY, OTHER_NAMESPACE, WRITE_KEY, answer, basic_auth, post,
                                   rows, segment_client)  # noqa: F401

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/126.0.0.0 Safari/537.36")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def signed_up(**extra):
    return {"userId": "user-1", "event": "Signed Up", "messageId": "m-1",
            "properties": {"plan": "pro", "seats": 3}, **extra}


# ---- what lands --------------------------------------------------------------------------


def test_a_track_call_lands_as_a_row_of_the_write_keys_namespace(segment_client):
    reply = post(segment_client, "/v1/track", signed_up(context={"page": {"path": "/pricing"}}))
    wait_until_written()

    assert (reply.status_code, answer(reply)) == (200, {"success": True})
    [row] = rows()
    assert {name: row[name] for name in ("namespace", "type", "event", "user_id", "anonymous_id", "message_id",
                                         "experiment", "variant", "uuid", "properties", "context")} == {
        "namespace": NAMESPACE, "type": "track", "event": "Signed Up", "user_id": "user-1", "anonymous_id": None,
        "message_id": "m-1", "experiment": None, "variant": None, "uuid": None,
        "properties": {"plan": "pro", "seats": 3}, "context": {"page": {"path": "/pricing"}}}
    assert row["event_id"] == segment_event_id(NAMESPACE, "m-1")


def test_each_write_key_sends_to_its_own_namespace(segment_client):
    post(segment_client, "/v1/track", signed_up(messageId="a"))
    post(segment_client, "/v1/track", signed_up(messageId="b"), key=OTHER_KEY)
    wait_until_written()

    assert [(row["message_id"], row["namespace"]) for row in rows()] == [("a", NAMESPACE), ("b", OTHER_NAMESPACE)]


def test_the_write_key_may_come_in_the_body_instead(segment_client):
    reply = post(segment_client, "/v1/track", signed_up(writeKey=OTHER_KEY), key=None)
    wait_until_written()

    assert reply.status_code == 200
    assert [row["namespace"] for row in rows()] == [OTHER_NAMESPACE]


@pytest.mark.parametrize("path, message, expected", [
    ("/v1/page", {"anonymousId": "a-1", "name": "Pricing", "properties": {"path": "/pricing"}},
     {"type": "page", "event": "Pricing", "properties": {"path": "/pricing"}, "anonymous_id": "a-1"}),
    ("/v1/page", {"anonymousId": "a-1"}, {"type": "page", "event": None, "properties": None}),
    ("/v1/screen", {"userId": "u", "name": "Home"}, {"type": "screen", "event": "Home"}),
    ("/v1/identify", {"userId": "u", "anonymousId": "a", "traits": {"email": "x@example.com"}},
     {"type": "identify", "event": None, "traits": {"email": "x@example.com"}, "user_id": "u", "anonymous_id": "a"}),
    ("/v1/group", {"userId": "u", "groupId": "acme", "traits": {"employees": 40}},
     {"type": "group", "properties": {"groupId": "acme"}, "traits": {"employees": 40}}),
    ("/v1/alias", {"userId": "u", "previousId": "a-1"}, {"type": "alias", "properties": {"previousId": "a-1"}}),
])
def test_every_call_type_lands_with_its_fields(segment_client, path, message, expected):
    reply = post(segment_client, path, message)
    wait_until_written()

    assert reply.status_code == 200, reply.body
    [row] = rows()
    assert {name: row[name] for name in expected} == expected


@pytest.mark.parametrize("short, call", [("t", "track"), ("p", "page"), ("s", "screen"), ("i", "identify"),
                                         ("g", "group"), ("a", "alias")])
def test_analytics_js_one_letter_paths_are_the_same_calls(segment_client, short, call):
    message = {"userId": "u", "event": "E", "groupId": "g", "previousId": "p", "messageId": "m"}
    reply = post(segment_client, f"/v1/{short}", message, headers={"content-type": "text/plain"})
    wait_until_written()

    assert reply.status_code == 200, reply.body
    assert [row["type"] for row in rows()] == [call]


def test_a_batch_lands_every_message_with_the_batch_context_and_sent_at(segment_client):
    batch = {"batch": [{"type": "identify", "userId": "u", "messageId": "1", "context": {"locale": "fr"}},
                       {"type": "track", "userId": "u", "event": "Clicked", "messageId": "2"},
                       {"type": "page", "anonymousId": "a", "messageId": "3"}],
             "context": {"library": {"name": "analytics-python"}}}
    reply = post(segment_client, "/v1/batch", batch)
    wait_until_written()

    assert reply.status_code == 200, reply.body
    assert [(row["type"], row["context"]) for row in rows()] == [
        ("identify", {"library": {"name": "analytics-python"}, "locale": "fr"}),
        ("track", {"library": {"name": "analytics-python"}}),
        ("page", {"library": {"name": "analytics-python"}})]


def test_answers_allow_any_origin_and_are_not_cached(segment_client):
    reply = post(segment_client, "/v1/t", signed_up(), headers={"content-type": "text/plain"})

    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert reply.headers["Cache-Control"] == "no-store"


def test_a_browsers_preflight_allows_the_headers_analytics_js_sends(segment_client):
    answer = segment_client.http._local_gateway.handle_request(
        method="OPTIONS", path="/v1/t", body=b"",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type,x-retry-count"})

    allowed = answer["headers"]["Access-Control-Allow-Headers"].lower().split(",")
    assert answer["statusCode"] == 200 and answer["headers"]["Access-Control-Allow-Origin"] == "*"
    assert {"authorization", "content-type", "x-retry-count"} <= set(allowed)


def test_a_gzip_encoded_body_is_read(segment_client):
    reply = post(segment_client, "/v1/batch", {"batch": [dict(signed_up(), type="track")]}, gzipped=True)
    wait_until_written()

    assert reply.status_code == 200, reply.body
    assert [row["event"] for row in rows()] == ["Signed Up"]


# ---- messageId and time --------------------------------------------------------------------


def test_a_message_sent_twice_is_stored_once_by_message_id(segment_client):
    post(segment_client, "/v1/track", signed_up())
    post(segment_client, "/v1/batch", {"batch": [dict(signed_up(), type="track")]})
    wait_until_written()

    assert stored_row_count() == 1


def test_the_same_message_id_in_two_namespaces_is_two_messages(segment_client):
    # messageId is unique per source, not across them: two namespaces may reuse one.
    post(segment_client, "/v1/track", signed_up(), key=WRITE_KEY)
    post(segment_client, "/v1/track", signed_up(), key=OTHER_KEY)
    wait_until_written()

    assert sorted((row["namespace"], row["message_id"]) for row in rows()) == [
        (OTHER_NAMESPACE, "m-1"), (NAMESPACE, "m-1")]


def test_a_message_without_a_message_id_gets_one_of_its_own(segment_client):
    message = {"userId": "u", "event": "Clicked"}
    post(segment_client, "/v1/track", message)
    post(segment_client, "/v1/track", message)
    wait_until_written()

    ids = [row["message_id"] for row in rows()]
    assert len(set(ids)) == 2 and all(ids)


def test_the_timestamp_is_corrected_by_the_client_clocks_skew(segment_client):
    # The client's clock runs an hour fast: it sent the request "at" 13:00 an event of 12:59.
    reply = post(segment_client, "/v1/track", signed_up(timestamp="2030-01-01T12:59:00Z",
                                                        sentAt="2030-01-01T13:00:00+00:00"))
    wait_until_written()

    assert reply.status_code == 200
    [row] = rows()
    assert row["received_at"] - row["timestamp"] == timedelta(minutes=1)


def test_a_batch_sent_at_corrects_every_message(segment_client):
    batch = {"batch": [dict(signed_up(timestamp="2020-05-01T00:00:00Z"), type="track")],
             "sentAt": "2020-05-01T00:00:30Z"}
    post(segment_client, "/v1/batch", batch)
    wait_until_written()

    [row] = rows()
    assert row["received_at"] - row["timestamp"] == timedelta(seconds=30)


def test_without_sent_at_the_timestamp_is_kept_and_without_either_it_is_the_arrival(segment_client):
    post(segment_client, "/v1/track", signed_up(messageId="kept", timestamp="2024-02-29T10:00:00.5+02:00"))
    post(segment_client, "/v1/track", signed_up(messageId="none"))
    wait_until_written()

    kept, none = rows()
    assert kept["timestamp"] == datetime(2024, 2, 29, 8, 0, 0, 500000, tzinfo=timezone.utc)
    assert none["timestamp"] == none["received_at"]


# ---- browser family --------------------------------------------------------------------------


def test_the_browser_family_comes_from_context_user_agent_else_the_request(segment_client):
    post(segment_client, "/v1/track", signed_up(messageId="ctx", context={"userAgent": FIREFOX}),
         headers={"user-agent": CHROME})
    post(segment_client, "/v1/track", signed_up(messageId="req"), headers={"user-agent": CHROME})
    wait_until_written()

    assert [(row["message_id"], row["browser"]) for row in rows()] == [("ctx", "Firefox"), ("req", "Chrome")]


def test_track_keeps_the_requests_browser_family(client):
    reply = client.http.get("/track?experiment=e&variant=a&event=participate&uuid=u1", headers={"user-agent": FIREFOX})
    wait_until_written()

    assert reply.status_code == 200
    [row] = rows()
    assert (row["browser"], row["event_id"]) == ("Firefox", event_id("alephbet", "e", "a", "participate", "u1"))


# ---- who may send ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key, body_key, headers", [
    (None, None, {}),
    ("not-a-key", None, {}),
    (None, "not-a-key", {}),
    (None, None, {"authorization": "Bearer " + WRITE_KEY}),
    (None, None, {"authorization": "Basic !!!"}),
])
def test_a_missing_or_unknown_write_key_gets_401_and_nothing_is_stored(segment_client, key, body_key, headers):
    message = signed_up(**({"writeKey": body_key} if body_key else {}))
    reply = post(segment_client, "/v1/track", message, key=key, headers=headers)

    assert reply.status_code == 401
    assert (answer(reply)["success"], answer(reply)["code"]) == (False, "unauthorized")
    assert stored_row_count() == 0


def test_a_wrong_header_key_is_refused_even_with_a_right_body_key(segment_client):
    reply = post(segment_client, "/v1/track", signed_up(writeKey=WRITE_KEY), key="not-a-key")

    assert reply.status_code == 401


def test_the_local_backend_generates_a_write_key_for_the_default_namespace(client, data_dir):
    from chalicelib import runtime
    from chalicelib.ingest.write_keys import LOCAL_KEY_FILE

    assert runtime.write_key_namespace("anything") is None
    key = (data_dir / LOCAL_KEY_FILE).read_text().strip()
    reply = client.http.post("/v1/track", body=json.dumps(signed_up()),
                             headers={"authorization": basic_auth(key), "content-type": "application/json"})
    wait_until_written()

    assert reply.status_code == 200
    assert [row["namespace"] for row in rows()] == ["default"]
    assert (data_dir / LOCAL_KEY_FILE).stat().st_mode & 0o077 == 0


# ---- what is refused --------------------------------------------------------------------------------


@pytest.mark.parametrize("message, field, rule", [
    ({"event": "E"}, "userId", "userId or anonymousId is required"),
    ({"userId": "", "anonymousId": None, "event": "E"}, "userId", "userId or anonymousId is required"),
    ({"userId": "u"}, "event", "is required on track"),
    ({"userId": "u", "event": ""}, "event", "must be 1-256 characters, not blank"),
    ({"userId": ["u"], "event": "E"}, "userId", "must be a string"),
    ({"userId": "u", "event": "E", "properties": [1]}, "properties", "must be a JSON object"),
    ({"userId": "u", "event": "E", "context": "ua"}, "context", "must be a JSON object"),
    ({"userId": "u", "event": "E", "timestamp": "yesterday"}, "timestamp", "must be an ISO-8601 date-time"),
    ({"userId": "u", "event": "E", "sentAt": 12}, "sentAt", "must be an ISO-8601 date-time string"),
    ({"userId": "u", "event": "E", "messageId": "x" * 300}, "messageId", "must be at most 256 characters (got 300)"),
])
def test_a_bad_message_gets_400_naming_the_field(segment_client, message, field, rule):
    reply = post(segment_client, "/v1/track", message)

    assert reply.status_code == 400
    assert answer(reply)["errors"] == [{"field": field, "rule": rule}]


@pytest.mark.parametrize("path, message, field", [
    ("/v1/alias", {"userId": "u"}, "previousId"),
    ("/v1/alias", {"anonymousId": "a", "previousId": "p"}, "userId"),
    ("/v1/group", {"userId": "u"}, "groupId"),
])
def test_alias_and_group_require_their_ids(segment_client, path, message, field):
    reply = post(segment_client, path, message)

    assert reply.status_code == 400
    assert [error["field"] for error in answer(reply)["errors"]] == [field]


def test_a_batch_with_bad_messages_stores_nothing_and_names_each_by_index(segment_client):
    batch = {"batch": [dict(signed_up(messageId="fine"), type="track"),
                       {"type": "track", "userId": "u"},
                       "not an object",
                       {"type": "purchase", "userId": "u"},
                       {"userId": "u", "event": "E"}]}
    reply = post(segment_client, "/v1/batch", batch)
    wait_until_written()

    assert reply.status_code == 400
    assert answer(reply)["errors"] == [
        {"field": "event", "rule": "is required on track", "index": 1},
        {"field": "message", "rule": "must be a JSON object", "index": 2},
        {"field": "type", "rule": "must be one of track, page, screen, identify, group, alias", "index": 3},
        {"field": "type", "rule": "must be one of track, page, screen, identify, group, alias", "index": 4}]
    assert stored_row_count() == 0


@pytest.mark.parametrize("body", [{"batch": []}, {"batch": {"type": "track"}}, {}])
def test_a_batch_without_messages_gets_400(segment_client, body):
    reply = post(segment_client, "/v1/batch", body)

    assert reply.status_code == 400
    assert answer(reply)["errors"] == [{"field": "batch", "rule": "must be a non-empty array of messages"}]


def test_a_single_call_over_32_kb_gets_400(segment_client):
    reply = post(segment_client, "/v1/track", signed_up(properties={"text": "x" * 33_000}))

    assert reply.status_code == 400
    assert answer(reply)["code"] == "too_large"


def test_an_event_over_32_kb_in_a_batch_gets_400_naming_its_index(segment_client):
    batch = {"batch": [dict(signed_up(messageId="small"), type="track"),
                       dict(signed_up(messageId="big", properties={"text": "é" * 17_000}), type="track")]}
    reply = post(segment_client, "/v1/batch", batch)

    assert reply.status_code == 400
    [error] = answer(reply)["errors"]
    assert (error["field"], error["index"]) == ("message", 1) and "32768 bytes" in error["rule"]
    assert stored_row_count() == 0


def test_a_batch_request_over_500_kb_gets_400(segment_client):
    batch = {"batch": [dict(signed_up(messageId=str(n), properties={"text": "x" * 20_000}), type="track")
                       for n in range(26)]}
    reply = post(segment_client, "/v1/batch", batch)

    assert reply.status_code == 400
    assert answer(reply)["code"] == "too_large"


def test_a_gzip_bomb_is_refused_without_inflating_it(segment_client):
    bomb = gzip.compress(b'{"batch": [' + b" " * 200_000_000 + b"]}", compresslevel=9)
    assert len(bomb) < 500_000
    reply = post(segment_client, "/v1/batch", None, raw=bomb, headers={"content-encoding": "gzip"})

    assert reply.status_code == 400
    assert "inflates to more than" in answer(reply)["message"]


@pytest.mark.parametrize("raw, rule_part", [
    (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 20, "is not valid gzip"),
    (gzip.compress(b'{"userId": "u", "event": "E"}')[:-12], "is truncated gzip"),
])
def test_broken_gzip_gets_400(segment_client, raw, rule_part):
    reply = post(segment_client, "/v1/track", None, raw=raw, headers={"content-encoding": "gzip"})

    assert reply.status_code == 400
    assert rule_part in answer(reply)["errors"][0]["rule"]


def test_a_body_labelled_gzip_that_a_gateway_already_inflated_is_read_as_it_is(segment_client):
    reply = post(segment_client, "/v1/track", signed_up(), headers={"content-encoding": "gzip"})

    assert reply.status_code == 200


@pytest.mark.parametrize("headers, status", [
    ({"content-type": "application/x-www-form-urlencoded"}, 415),
    ({"content-encoding": "br"}, 415),
])
def test_other_media_types_and_encodings_get_415(segment_client, headers, status):
    reply = post(segment_client, "/v1/track", signed_up(), headers=headers)

    assert reply.status_code == status
    assert answer(reply)["success"] is False


def test_an_unknown_call_gets_404_listing_the_calls(segment_client):
    reply = post(segment_client, "/v1/purchase", signed_up())

    assert reply.status_code == 404
    assert "/v1/track" in answer(reply)["message"]


def test_a_stream_that_cannot_take_the_events_gets_503_and_the_client_retries(segment_client, monkeypatch, caplog):
    from chalicelib import runtime
    from chalicelib.ingest.publisher import PublishError

    class Refusing:
        def publish(self, events):
            raise PublishError("stream arn:aws:kinesis:us-east-1:123456789012:stream/x is full")

    monkeypatch.setitem(runtime._state, "publisher", Refusing())
    reply = post(segment_client, "/v1/track", signed_up())

    assert reply.status_code == 503
    assert answer(reply)["reason"] == "stream_unavailable"       # AWS's words (account, ARN) only in the log
    assert "123456789012" not in reply.body.decode() and "123456789012" in caplog.text
