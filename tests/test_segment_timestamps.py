"""A Segment timestamp is the event's time only when it is plausible (issue 17, finding 10).

Corrected for the client's clock (`timestamp + receivedAt - sentAt`), a timestamp before 2000
or more than a day after its arrival is a broken clock: the row takes its arrival time, and
what the client sent is kept in `context.dalet` (`original_timestamp`, `original_sent_at`).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.ingest import segment
from tests.helpers import wait_until_written
from tests.segment_helpers import post, rows, segment_client  # noqa: F401

RECEIVED = datetime(2026, 5, 1, 9, 30, tzinfo=timezone.utc)


def stored(**fields):
    message = {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "m-1", **fields}
    return segment.parse_messages({"batch": [message]}, segment.BATCH, "web", RECEIVED, None)[0]


def test_the_issues_case_a_year_1_sent_at_is_not_a_year_4049_event(segment_client):
    reply = post(segment_client, "/v1/track", {"userId": "u1", "event": "Order Completed", "messageId": "m-1",
                                               "timestamp": "2024-05-01T10:00:00Z", "sentAt": "0001-01-01T00:00:00Z",
                                               "context": {"app": {"name": "shop"}}})
    assert reply.status_code == 200, reply.body
    wait_until_written()
    [row] = rows()
    assert row["timestamp"] == row["received_at"]
    assert row["context"] == {"app": {"name": "shop"}, "dalet": {"original_timestamp": "2024-05-01T10:00:00Z",
                                                                 "original_sent_at": "0001-01-01T00:00:00+00:00"}}


@pytest.mark.parametrize("timestamp", ["0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "9999-12-31T23:59:59Z",
                                       "2026-05-02T09:30:01Z"], ids=["year 1", "1999", "year 9999", "a day ahead"])
def test_an_absurd_timestamp_is_replaced_by_the_arrival_and_kept_in_context(timestamp):
    row = stored(timestamp=timestamp)
    assert row.timestamp == RECEIVED
    assert '"dalet":{"original_timestamp":"' + timestamp + '"}' in row.context


@pytest.mark.parametrize("timestamp", ["2000-01-01T00:00:00Z", "2026-05-02T09:30:00Z", "2026-05-01T09:29:00Z"],
                         ids=["2000", "a day ahead exactly", "a minute ago"])
def test_a_plausible_timestamp_is_kept_and_the_context_untouched(timestamp):
    row = stored(timestamp=timestamp, context={"app": {"name": "shop"}})
    assert row.timestamp == datetime.fromisoformat(timestamp)
    assert row.context == '{"app":{"name":"shop"}}'


def test_the_bounds_apply_after_the_clock_skew_correction():
    # The client's clock is 30 years slow; corrected, its event is a minute before arrival.
    row = stored(timestamp="1996-05-01T09:29:00Z", sentAt="1996-05-01T09:30:00Z")
    assert row.timestamp == RECEIVED - timedelta(minutes=1) and row.context is None


def test_a_client_dalet_context_keeps_its_other_keys():
    row = stored(timestamp="1970-01-01T00:00:00Z", context={"dalet": {"mine": 1}})
    assert row.context == '{"dalet":{"mine":1,"original_timestamp":"1970-01-01T00:00:00Z"}}'
