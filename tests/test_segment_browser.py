"""Segment's browser library (@segment/analytics-next) in headless Chromium, on a page served from
another origin, tracking into a real `chalice local` through Segment's HTTP API on /v1.

The library is configured with inline CDN settings, so it fetches no settings; any request for
Segment's CDN (its lazily loaded bundles) is answered from the npm package by Playwright, and
anything else off this machine is refused: no network beyond loopback.
"""
from __future__ import annotations

import functools
import http.server
import json
import re
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any, Iterator

import duckdb
import pytest

from chalicelib.runtime import STREAM_FILE, WAREHOUSE_FILE
from tests.local_server import LocalServer, wait_until
from tests.test_alephbet_browser import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parent.parent
ANALYTICS_NEXT = ROOT / "tests" / "browser" / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"
WRITE_KEY = "browser-write-key"
NAMESPACE = "site"
REPORT_KEY = "browser-report-key"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><script src="analytics-next.js"></script></head>
<body><script>
  // As Segment's docs show for npm installs, with the settings inline and Dalet as the API host.
  window.startAnalytics = async (writeKey, apiHost) => {
    const [analytics] = await AnalyticsNext.AnalyticsBrowser.load(
      {writeKey, cdnSettings: {integrations: {"Segment.io": {apiKey: writeKey, apiHost, protocol: "http"}}}},
      {initialPageview: false, integrations: {"Segment.io": {apiHost, protocol: "http"}}});
    window.analytics = analytics;
    return analytics.user().anonymousId();
  };
  // Resolves once the event is delivered (or delivery failed for good).
  window.trackNow = async (name, properties) => {
    const context = await window.analytics.track(name, properties);
    return {delivered: !context.failedDelivery(), messageId: context.event.messageId};
  };
  // Signing in: identify carries the anonymousId the earlier events were sent with.
  window.identifyNow = async (userId) => {
    const context = await window.analytics.identify(userId);
    return {delivered: !context.failedDelivery(), messageId: context.event.messageId};
  };
</script></body></html>
"""


@pytest.fixture(scope="module")
def analytics_next() -> Path:
    if not (ANALYTICS_NEXT / "index.js").exists():
        pytest.fail(f"Segment's browser build is missing ({ANALYTICS_NEXT.relative_to(ROOT)}): run `make test`, "
                    "which installs it (npm install --prefix tests/browser)", pytrace=False)
    return ANALYTICS_NEXT


class _QuietStaticFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def page_origin(tmp_path: Path, analytics_next: Path) -> Iterator[str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(PAGE, encoding="utf-8")
    (site / "analytics-next.js").write_bytes((analytics_next / "index.js").read_bytes())
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietStaticFiles, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def dalet(tmp_path: Path) -> Iterator[LocalServer]:
    with LocalServer.start(tmp_path / "dalet-data", env={"DALET_WRITE_KEYS": f"{WRITE_KEY}={NAMESPACE}",
                                                         "DALET_API_KEY": REPORT_KEY}) as server:
        yield server


def offline(context: Any, analytics_next: Path, refused: list[str]) -> None:
    """Serve Segment's CDN bundles from the npm package; refuse every other non-loopback request."""
    def route(route: Any) -> None:
        url = route.request.url
        if url.startswith("http://127.0.0.1:"):
            route.continue_()
        elif "/analytics-next/bundles/" in url and (analytics_next / url.rsplit("/", 1)[1]).is_file():
            route.fulfill(path=str(analytics_next / url.rsplit("/", 1)[1]), content_type="application/javascript")
        else:
            refused.append(url)
            route.abort()

    context.route("**/*", route)


def wait_until_written(server: LocalServer) -> None:
    stream = server.data_dir / STREAM_FILE

    def drained() -> bool:
        with closing(sqlite3.connect(f"file:{stream}?mode=ro", uri=True, timeout=30)) as db:
            return db.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 0

    wait_until(drained, timeout=20, message="the writer to drain the stream")


def _experiment_results(server: LocalServer) -> dict[str, Any]:
    reply = server.request("GET", "/experiments/checkout/results", headers={"x-api-key": REPORT_KEY},
                           query={"namespace": NAMESPACE, "source": "segment", "goals": "Order Completed",
                                  "value": "properties.revenue", "correction": "none"})
    assert reply.status == 200, reply.body
    return json.loads(reply.body)


def _stored_rows(server: LocalServer) -> list[dict[str, Any]]:
    server.terminate()      # DuckDB has one writer: read once the server is gone
    with duckdb.connect(str(server.data_dir / WAREHOUSE_FILE), read_only=True) as db:
        cursor = db.execute("SELECT * FROM events ORDER BY timestamp")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def test_an_exposure_and_a_later_goal_from_another_origin_land_and_the_results_route_computes_them(chromium, page_origin, dalet, analytics_next):
    context = chromium.new_context()
    refused: list[str] = []
    offline(context, analytics_next, refused)
    try:
        page = context.new_page()
        page.goto(f"{page_origin}/index.html")
        assert page.evaluate("location.origin") != dalet.base_url
        anonymous_id = page.evaluate("([key, host]) => startAnalytics(key, host)",
                                     [WRITE_KEY, f"127.0.0.1:{dalet.port}/v1"])
        exposure = page.evaluate("() => trackNow('Experiment Viewed', {experiment_id: 'checkout', variation_id: 'red'})")
        goal = page.evaluate("() => trackNow('Order Completed', {revenue: 42.5, currency: 'EUR'})")
    finally:
        context.close()

    assert exposure["delivered"] and goal["delivered"], (exposure, goal, dalet.log()[-2000:])
    wait_until_written(dalet)
    results = _experiment_results(dalet)
    (order,) = results["goals"]
    (red,) = order["variants"]
    assert (order["goal"], red["label"], red["trials"], red["successes"]) == ("Order Completed", "red", 1, 1)
    assert results["variants"] == [{"label": "red", "participants": 1}]
    assert order["value"]["variants"][0]["sum"] == 42.5
    rows = _stored_rows(dalet)
    assert [(row["type"], row["event"], row["namespace"], row["anonymous_id"], row["message_id"]) for row in rows] == [
        ("track", "Experiment Viewed", NAMESPACE, anonymous_id, exposure["messageId"]),
        ("track", "Order Completed", NAMESPACE, anonymous_id, goal["messageId"])]
    viewed, completed = rows
    assert json.loads(viewed["properties"]) == {"experiment_id": "checkout", "variation_id": "red"}
    assert json.loads(completed["properties"]) == {"revenue": 42.5, "currency": "EUR"}
    assert viewed["timestamp"] <= completed["timestamp"]
    assert json.loads(viewed["context"])["page"]["url"] == f"{page_origin}/index.html"
    assert viewed["browser"] == "Bot"          # headless Chromium says HeadlessChrome: automation, not a person
    assert refused == []          # no settings fetched, nothing sent beyond loopback


# ---------- the snippets as pasted: /snippet?kind=segment and the README's script tag ----------

def _snippet_from_the_route(dalet: LocalServer) -> str:
    reply = dalet.request("GET", "/snippet", query={"kind": "segment", "namespace": NAMESPACE},
                          headers={"x-api-key": REPORT_KEY})
    assert reply.status == 200, reply.text
    # The snippet leaves the tracking to the page; a page that shows variant red tracks its exposure:
    return reply.text + '<script>analytics.track("Experiment Viewed", {experiment_id: "checkout", variation_id: "red"});</script>\n'


def _snippet_from_the_readme(dalet: LocalServer) -> str:
    from tests.test_readme_quickstart import README_HOST, readme_section

    (html,) = re.findall(r"^```html\n(.*?)^```", readme_section("Quick start with Segment"), flags=re.MULTILINE | re.DOTALL)
    return html.replace('"WRITE_KEY"', json.dumps(WRITE_KEY)).replace(README_HOST, f"127.0.0.1:{dalet.port}")


def _exposures(dalet: LocalServer) -> list[dict[str, Any]] | None:
    reply = dalet.request("GET", "/experiments/checkout/results", headers={"x-api-key": REPORT_KEY},
                          query={"namespace": NAMESPACE, "source": "segment"})
    return reply.json()["variants"] if reply.status == 200 else None


@pytest.mark.parametrize("pasted", [_snippet_from_the_route, _snippet_from_the_readme], ids=["route", "readme"])
def test_the_segment_script_tag_snippet_pasted_into_a_page_delivers_its_exposure(pasted, chromium, page_origin, dalet,
                                                                                 analytics_next, tmp_path):
    snippet = pasted(dalet)
    assert '<script src="/js/analytics-next/index.js"></script>' in snippet
    # The one edit both ask for: the src where the site serves analytics-next's build.
    page = snippet.replace('src="/js/analytics-next/index.js"', 'src="analytics-next.js"')
    (tmp_path / "site" / "pasted.html").write_text(f"<!doctype html>\n<meta charset='utf-8'>\n{page}", encoding="utf-8")
    context = chromium.new_context()
    refused: list[str] = []
    offline(context, analytics_next, refused)
    try:
        browser_page = context.new_page()
        browser_page.goto(f"{page_origin}/pasted.html")
        deadline = time.monotonic() + 20
        while _exposures(dalet) != [{"label": "red", "participants": 1}]:
            assert time.monotonic() < deadline, f"the pasted snippet's exposure never reached the results:\n{dalet.log()[-2000:]}"
            browser_page.wait_for_timeout(200)    # (not time.sleep: Playwright serves the page's requests meanwhile)
    finally:
        context.close()
    assert refused == []
