"""Segment experiments and event analytics from events sent through the Segment routes (/v1/batch)."""
from __future__ import annotations

import json
from urllib.parse import urlencode

from tests.helpers import API_KEY, KEY_HEADER, wait_until_written
from tests.segment_helpers import NAMESPACE, post, segment_client  # noqa: F401


def batch(*messages: dict) -> dict:
    return {"batch": list(messages), "sentAt": "2026-05-02T12:00:00.000Z"}


def exposure(user: str, variation: str, at: str, **context) -> dict:
    return {"type": "track", "userId": user, "event": "Experiment Viewed", "timestamp": at,
            "properties": {"experiment_id": "pricing", "variation_id": variation}, "context": context}


def goal(user: str, at: str, revenue: float | None = None) -> dict:
    return {"type": "track", "userId": user, "event": "Order Completed", "timestamp": at,
            "properties": {} if revenue is None else {"revenue": revenue}}


def get(client, path: str, **query: str):
    reply = client.http.get(f"{path}?{urlencode(query)}", headers=KEY_HEADER)
    return reply.status_code, json.loads(reply.body)


def test_an_experiment_tracked_through_the_segment_routes_has_results_breakdowns_and_event_series(
        segment_client, monkeypatch):
    monkeypatch.setenv("DALET_API_KEY", API_KEY)
    reply = post(segment_client, "/v1/batch", batch(
        exposure("u1", "cheap", "2026-05-02T11:00:00.000Z", page={"path": "/a"}),
        exposure("u2", "dear", "2026-05-02T11:00:00.000Z", page={"path": "/b"}),
        exposure("u3", "cheap", "2026-05-02T11:00:00.000Z", page={"path": "/a"}),
        goal("u1", "2026-05-02T11:30:00.000Z", 20), goal("u1", "2026-05-02T11:40:00.000Z", 5),
        goal("u2", "2026-05-02T10:00:00.000Z", 99),                     # before its exposure: not a success
        {"type": "page", "userId": "u3", "name": "Order Completed", "timestamp": "2026-05-02T11:50:00.000Z"},
    ))
    assert reply.status_code == 200, reply.body
    wait_until_written()

    status, body = get(segment_client, "/experiments/pricing/results", namespace=NAMESPACE, source="segment",
                       goals="Order Completed", value="properties.revenue", dimension="context.page.path")
    assert status == 200, body
    assert {v["label"]: v["participants"] for v in body["variants"]} == {"cheap": 2, "dear": 1}
    [order] = body["goals"]
    assert {arm["label"]: arm["successes"] for arm in order["variants"]} == {"cheap": 1, "dear": 0}
    assert {v["label"]: v["sum"] for v in order["value"]["variants"]}["cheap"] == 25
    assert [segment["value"] for segment in body["breakdown"]["segments"]] == ["/a", "/b"]

    status, names = get(segment_client, "/events/names", namespace=NAMESPACE)
    # The page named "Order Completed" is an event of the Events view (by its name), never an experiment goal.
    assert {item["name"]: item["events"] for item in names["names"]} == {"Experiment Viewed": 3, "Order Completed": 4}
