"""An attacker's pass over the public routes: what broke (now fixed) and what held.

Each test is one promise under attack: a clear 4xx (never a 5xx), a bounded answer, no
acknowledged event lost, no hang. Loads are bounded in count and time (seconds).
"""
from __future__ import annotations

import base64
import gzip
import json

import pytest

from chalicelib.ingest import segment
from tests.helpers import wait_until_written
from tests.segment_helpers import WRITE_KEY, answer, basic_auth, post, rows, segment_client  # noqa: F401


def test_a_batch_message_whose_context_is_not_an_object_gets_400_not_500(segment_client):
    # The batch's shared context is merged into each message's: a string or list there was spread as a mapping.
    for context in ("a string", [["userAgent", "x"]], 7):
        reply = post(segment_client, "/v1/batch", {"context": {"library": {"name": "x"}},
                                                   "batch": [{"type": "track", "userId": "u", "event": "e",
                                                              "context": context}]})
        assert reply.status_code == 400, reply.body
        assert answer(reply)["errors"] == [{"field": "context", "rule": "must be a JSON object", "index": 0}]


@pytest.mark.parametrize("authorization", ["Basic é", "Basic ключ", "Basic \u00ff\u00fe"])
def test_basic_credentials_that_are_not_ascii_get_401_not_500(segment_client, authorization):
    reply = post(segment_client, "/v1/track", {"userId": "u", "event": "e"}, key=None,
                 headers={"authorization": authorization})
    assert reply.status_code == 401, reply.body
    assert answer(reply)["code"] == "unauthorized"


def test_a_batch_of_100_000_bad_messages_gets_a_short_400_naming_the_first_ones(segment_client):
    # 400 KB of `{}` would otherwise answer with ten megabytes of errors (over Lambda's 6 MB
    # response limit: a 502 from API Gateway), computed for every one of them.
    body = {"batch": [{}] * 100_000}
    reply = post(segment_client, "/v1/batch", body)
    assert reply.status_code == 400
    assert len(reply.body) < 32 * 1024
    errors = answer(reply)["errors"]
    assert len(errors) == segment.MAX_REPORTED_ERRORS
    assert errors[0] == {"field": "type", "rule": "must be one of track, page, screen, identify, group, alias",
                         "index": 0}


def test_every_gzip_member_of_a_body_is_read_so_none_is_acknowledged_and_dropped(segment_client):
    # RFC 1952 2.2: a gzip file is a series of members. Reading only the first acknowledged the rest unread.
    first, second = b'{"batch": [{"type": "track", "userId": "u", "event": "e", "messageId": "m1"}', \
        b', {"type": "track", "userId": "u", "event": "e", "messageId": "m2"}]}'
    reply = post(segment_client, "/v1/batch", None, gzipped=False, raw=gzip.compress(first) + gzip.compress(second),
                 headers={"content-encoding": "gzip"})
    assert reply.status_code == 200, reply.body
    wait_until_written()
    assert [row["message_id"] for row in rows()] == ["m1", "m2"]


def test_a_gzip_body_followed_by_anything_else_gets_400(segment_client):
    body = gzip.compress(b'{"userId": "u", "event": "e"}') + b'{"userId": "u", "event": "smuggled"}'
    reply = post(segment_client, "/v1/track", None, raw=body, headers={"content-encoding": "gzip"})
    assert reply.status_code == 400, reply.body
    assert answer(reply)["errors"][0]["field"] == "body"
