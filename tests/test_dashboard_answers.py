"""The dashboard and stored answers (chalicelib/reports/stored_answers.py), in headless Chromium against a
real local server that keeps answers an hour: a stored answer says when it was computed, and Refresh
computes the results and the daily series again.

Screenshots at 390 and 1366 px are saved under SCREENSHOTS (a temporary folder) for people to look at.
"""
from __future__ import annotations

import re
from typing import Callable, Iterator
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from playwright.sync_api import Route

from tests.local_server import LocalServer, wait_until
from tests.test_dashboard import API_KEY, Dashboard, goal, participants
from tests.test_dashboard_verdict import (  # noqa: F401 - browser and open_dashboard are fixtures
    SCREENSHOTS, WIDTHS, browser, link, no_horizontal_overflow, open_dashboard)

NAMESPACE = "alephbet"
OPENED, OTHER = "stored checkout", "stored banner"


def api_get(server: LocalServer, path: str, **query: str) -> dict:
    reply = server.request("GET", path, headers={"x-api-key": API_KEY}, query={"namespace": NAMESPACE, **query})
    assert reply.status == 200, reply.text
    return reply.json()


def track(server: LocalServer, events: list[dict]) -> None:
    reply = server.request("POST", "/track", json=events)
    assert reply.status == 200, reply.text


def written(server: LocalServer, experiment: str, count: int) -> bool:
    """The experiment's participants, computed afresh (so the check itself stores nothing stale)."""
    reply = server.request("GET", f"/experiments/{quote(experiment, safe='')}/results", headers={"x-api-key": API_KEY},
                           query={"namespace": NAMESPACE, "refresh": "true"})
    return reply.status == 200 and sum(arm["participants"] for arm in reply.json()["variants"]) == count


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LocalServer]:
    env = {"DALET_API_KEY": API_KEY, "DALET_RESULTS_MAX_AGE_MINUTES": "60"}
    with LocalServer.start(tmp_path_factory.mktemp("dashboard-answers") / "data", env=env) as running:
        track(running, [*participants(OPENED, "control", 40), *goal(OPENED, "control", "buy", 8),
                        *participants(OPENED, "blue", 40), *goal(OPENED, "blue", "buy", 12),
                        *participants(OTHER, "control", 10), *participants(OTHER, "blue", 10)])
        wait_until(lambda: written(running, OPENED, 80) and written(running, OTHER, 20),
                   message="the seeded events to reach the report API")
        yield running


def opened(dashboard: Dashboard, experiment: str = OPENED) -> Dashboard:
    dashboard.open().enter_key().wait_for_list()
    dashboard.page.goto(link(dashboard.server, experiment=experiment))
    dashboard.page.wait_for_selector("#participants")
    dashboard.page.wait_for_function("name => document.getElementById('experiment-name')?.textContent === name",
                                     arg=experiment)
    return dashboard


def reported(requested: list[str], suffix: str) -> list[dict[str, list[str]]]:
    """The query of each request to an experiment's `suffix` (/results, /daily)."""
    return [parse_qs(urlsplit(url).query) for url in requested if urlsplit(url).path.endswith(suffix)]


def stored_for(minutes: int, answered_at: str = "2026-12-02T09:41:27.123456Z") -> Callable[[Route], None]:
    """The real answer, told as stored `minutes` ago (what a deployment keeping answers would say)."""
    def stored(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        if response.ok and "refresh=true" not in route.request.url:
            body["freshness"] = {**body["freshness"], "answered_at": answered_at, "age_seconds": minutes * 60 + 7}
        route.fulfill(response=response, json=body)
    return stored


def age_text(freshness: dict) -> str:
    age = freshness["age_seconds"]
    ago = "less than 1 min" if age < 60 else f"{round(age / 60)} min"
    return f"Results as of {freshness['answered_at'][11:16]} UTC ({ago} ago)"


def test_a_stored_answer_says_when_it_was_computed_and_refresh_computes_it_again(open_dashboard, server):
    dashboard = opened(open_dashboard())        # computed, or stored by an earlier view: stored now either way
    opened_results = f"/experiments/{quote(OPENED, safe='')}/results"
    with dashboard.page.expect_response(lambda reply: urlsplit(reply.url).path == opened_results) as answer:
        dashboard.page.reload()
    freshness = answer.value.json()["freshness"]
    text = dashboard.page.locator("#answer-age-text")
    text.wait_for()

    assert freshness["age_seconds"] > 0
    assert text.text_content() == age_text(freshness)
    with dashboard.page.expect_response(lambda reply: urlsplit(reply.url).path == opened_results) as answer:
        dashboard.page.click("#refresh-results")
    dashboard.page.wait_for_selector("#answer-age", state="detached")      # computed for this request: no age
    assert answer.value.json()["freshness"]["age_seconds"] == 0
    assert "Results as of" not in dashboard.page.locator("#headline").text_content()


def test_the_age_is_shown_in_minutes_near_the_results_header(open_dashboard, server):
    dashboard = open_dashboard()
    dashboard.page.route(re.compile(r".*/experiments/[^/?]+/results\?.*"), stored_for(25))
    opened(dashboard)
    age = dashboard.page.locator("#headline #answer-age")
    assert age.locator("#answer-age-text").text_content() == "Results as of 09:41 UTC (25 min ago)"
    assert age.locator("#refresh-results").text_content() == "Refresh"


def test_refresh_reloads_the_results_and_daily_with_refresh_true_and_shows_new_events(open_dashboard, server):
    dashboard = open_dashboard()
    dashboard.page.route(re.compile(r".*/experiments/[^/?]+/results\?.*"), stored_for(40))
    opened(dashboard)
    shown = dashboard.page.locator("#participants").text_content()
    track(server, participants(OPENED, "green", 5))
    wait_until(lambda: written(server, OPENED, 85), message="green's participants to be written")
    before = len(dashboard.requested)

    dashboard.page.click("#refresh-results")
    dashboard.page.wait_for_selector("#answer-age", state="detached")    # a computation: no age to show
    dashboard.page.wait_for_function("() => document.getElementById('participants').textContent.includes('green')")

    after = dashboard.requested[before:]
    results, daily = reported(after, "/results"), reported(after, "/daily")
    assert [query["refresh"] for query in results] == [["true"]]
    assert [query["refresh"] for query in daily] == [["true"]]
    assert "green" not in shown


def test_the_list_chips_ask_as_before_and_never_refresh(open_dashboard, server):
    dashboard = open_dashboard()
    dashboard.page.route(re.compile(r".*/experiments/[^/?]+/results\?.*"), stored_for(5))
    opened(dashboard)
    dashboard.page.wait_for_function(
        "() => [...document.querySelectorAll('#experiments button.experiment-link')].every(b => b.querySelector('.chip'))")
    dashboard.page.click("#refresh-results")
    dashboard.page.wait_for_selector("#answer-age", state="detached")

    chips = [query for url, query in ((url, parse_qs(urlsplit(url).query)) for url in dashboard.requested)
             if urlsplit(url).path.endswith(f"/{quote(OTHER)}/results")]
    assert chips and all(set(query) == {"namespace", "source", "mode", "confidence", "correction"} for query in chips)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_age_and_refresh_fit_the_screen(open_dashboard, server, width):
    dashboard = open_dashboard(width)
    errors: list[str] = []
    dashboard.page.on("pageerror", lambda error: errors.append(str(error)))
    dashboard.page.route(re.compile(r".*/experiments/[^/?]+/results\?.*"), stored_for(25))
    opened(dashboard)
    SCREENSHOTS.mkdir(exist_ok=True)
    dashboard.page.locator("#headline").screenshot(path=SCREENSHOTS / f"{width}-stored-answer.png")
    dashboard.page.screenshot(path=SCREENSHOTS / f"{width}-stored-answer-page.png", full_page=True)

    assert no_horizontal_overflow(dashboard.page)
    button = dashboard.page.locator("#refresh-results").bounding_box()
    assert button is not None and button["x"] + button["width"] <= width and button["height"] >= 20
    assert errors == []
