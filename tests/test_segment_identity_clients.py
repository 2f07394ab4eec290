"""The sign-in pattern end to end with Segment's real libraries, into a real `chalice local`:
@segment/analytics-next in headless Chromium sends `Experiment Viewed` with its anonymousId and then
`identify(userId)`; the backend, with segment-analytics-python, sends `track(userId, "Subscription
Started")`. Every post-exposure subscription counts in the variant the browser saw."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from segment.analytics.client import Client

from tests.local_server import LocalServer
from tests.test_segment_browser import (analytics_next, chromium, offline, page_origin,  # noqa: F401
                                        wait_until_written)

WRITE_KEY = "identity-write-key"
NAMESPACE = "shop"
REPORT_KEY = "identity-report-key"
VISITORS = [("visitor-0", "monthly", True), ("visitor-1", "annual", True), ("visitor-2", "monthly", True),
            ("visitor-3", "annual", False), ("visitor-4", "monthly", False)]


@pytest.fixture
def dalet(tmp_path: Path) -> Iterator[LocalServer]:
    with LocalServer.start(tmp_path / "dalet-data", env={"DALET_WRITE_KEYS": f"{WRITE_KEY}={NAMESPACE}",
                                                         "DALET_API_KEY": REPORT_KEY}) as server:
        yield server


def browse_and_sign_in(chromium, analytics_next, page_origin, dalet, user: str, variant: str) -> None:  # noqa: F811
    context = chromium.new_context()        # a fresh context: a new visitor with a new anonymousId
    refused: list[str] = []
    offline(context, analytics_next, refused)
    try:
        page = context.new_page()
        page.goto(f"{page_origin}/index.html")
        page.evaluate("([key, host]) => startAnalytics(key, host)", [WRITE_KEY, f"127.0.0.1:{dalet.port}/v1"])
        seen = page.evaluate("(variant) => trackNow('Experiment Viewed', {experiment_id: 'plans', "
                             "variation_id: variant})", variant)
        signed_in = page.evaluate("(user) => identifyNow(user)", user)
    finally:
        context.close()
    assert seen["delivered"] and signed_in["delivered"] and refused == [], (seen, signed_in, refused)


def report(dalet: LocalServer, path: str, **query: str) -> Any:
    reply = dalet.request("GET", path, headers={"x-api-key": REPORT_KEY}, query={"namespace": NAMESPACE, **query})
    assert reply.status == 200, reply.body
    return json.loads(reply.body)


def test_server_side_subscriptions_count_in_the_variant_the_browser_saw(chromium, analytics_next, page_origin,  # noqa: F811
                                                                        dalet):
    for user, variant, _ in VISITORS:
        browse_and_sign_in(chromium, analytics_next, page_origin, dalet, user, variant)
    errors: list[Any] = []
    backend = Client(WRITE_KEY, host=dalet.base_url, upload_interval=0.05,
                     on_error=lambda error, batch: errors.append(error))
    for user, _, subscribes in VISITORS:
        if subscribes:
            backend.track(user, "Subscription Started", {"revenue": 9.0})
    backend.shutdown()
    assert errors == []
    wait_until_written(dalet)

    results = report(dalet, "/experiments/plans/results", goals="Subscription Started")    # no source: detected
    assert results["source"] == "segment"
    [subscription] = results["goals"]
    assert {arm["label"]: (arm["trials"], arm["successes"]) for arm in subscription["variants"]} == {
        "monthly": (3, 2), "annual": (2, 1)}
    daily = report(dalet, "/experiments/plans/daily", goals="Subscription Started")
    assert {v["label"]: v["successes"]["Subscription Started"] for v in daily["days"][-1]["variants"]} == {
        "annual": 1, "monthly": 2}
    assert report(dalet, "/experiments/plans/goals") == [{"goal": "Subscription Started", "users": 3}]
    [listed] = report(dalet, "/overview")
    assert (listed["experiment"], listed["source"], listed["participants"]) == ("plans", "segment", 5)
