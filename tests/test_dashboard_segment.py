"""The dashboard's breakdown selector, Segment experiments and Events view, in headless Chromium.

The data folder is seeded before the server starts (Segment rows as the ingestion routes store
them, AlephBet rows with a browser family), then every number the page shows is compared with
the API's answer.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.sync_api import Browser, sync_playwright

from chalicelib.ingest.events import Event, stamp
from chalicelib.runtime import WAREHOUSE_FILE
from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse
from tests.local_server import LocalServer
from tests.segment_rows import exposure, track
from tests.test_dashboard import API_KEY, CHROMIUM, CHROMIUM_ARGS, Dashboard, percent
from tests.test_dashboard_verdict import SCREENSHOTS, WIDTHS, no_horizontal_overflow

NAMESPACE = "alephbet"
TODAY = datetime.now(timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0)
DAY_BEFORE = TODAY - timedelta(days=1)
HOSTILE_PLAN = "<img src=x onerror=alert(1)>"
# Stored before ingestion refused hidden characters in names: reads "refund-test" unescaped.
SPOOFED_EVENT = "refund\u200b-\u202etset"


def _rows() -> list:
    rows = []
    for n in range(30):                                   # Segment experiment "pricing"
        user = f"s{n}"
        plan = ["pro", "free", HOSTILE_PLAN][n % 3]
        rows.append(exposure("pricing", "cheap" if n % 2 else "dear", user, DAY_BEFORE, namespace=NAMESPACE,
                             properties={"plan": plan}))
        if n % 4 == 0:
            rows.append(track("Order Completed", user, TODAY, namespace=NAMESPACE, properties={"plan": plan}))
    rows.append(track(SPOOFED_EVENT, "s0", TODAY, namespace=NAMESPACE))
    for n in range(12):                                   # AlephBet experiment "button" with browsers
        uuid, variant = f"a{n}", "red" if n % 2 else "blue"
        browser = "Firefox" if n % 3 == 0 else "Chrome"
        rows.append(stamp(Event(NAMESPACE, "button", variant, "participate", uuid), DAY_BEFORE)._replace(browser=browser))
        if n % 3 != 2:
            rows.append(stamp(Event(NAMESPACE, "button", variant, "click", uuid), TODAY)._replace(browser=browser))
    return rows


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LocalServer]:
    data = tmp_path_factory.mktemp("dashboard-segment") / "data"
    data.mkdir()
    store = DuckDBWarehouse(data / WAREHOUSE_FILE)
    store.insert_events(_rows())
    store.close()
    with LocalServer.start(data, env={"DALET_API_KEY": API_KEY}) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def dashboard(browser, server) -> Iterator[Dashboard]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    yield Dashboard(page, server)
    page.unroute_all(behavior="ignoreErrors")   # the list's verdicts may still be in flight through a route
    context.close()


def api(server: LocalServer, path: str, **query: str) -> dict:
    reply = server.request("GET", path, headers={"x-api-key": API_KEY}, query={"namespace": NAMESPACE, **query})
    assert reply.status == 200, reply.text
    return reply.json()


def breakdown_cells(dashboard: Dashboard) -> dict[tuple[str, str], tuple[str, list[str]]]:
    dashboard.page.wait_for_selector("#breakdown tbody tr")
    return {tuple(row[:2]): (row[2], row[3:]) for row in dashboard.page.locator("#breakdown tbody tr").evaluate_all(
        """rows => rows.map(r => [r.getAttribute('data-segment'), r.getAttribute('data-variant'),
            r.querySelector("[data-field='participants']").textContent,
            ...[...r.querySelectorAll("[data-field='rate']")].map(c => c.textContent)])""")}


def expected_cells(answer: dict) -> dict[tuple[str, str], tuple[str, list[str]]]:
    cells = {}
    for segment in answer["breakdown"]["segments"]:
        name = "(other)" if segment["other"] else segment["value"] if segment["value"] is not None else "(none)"
        for variant in segment["variants"]:
            rates = [next(arm for arm in goal["variants"] if arm["label"] == variant["label"])["rate"]
                     for goal in segment["goals"]]
            cells[name, variant["label"]] = (str(variant["participants"]),
                                             [percent(rate) if rate is not None else "—" for rate in rates])
    return cells


def test_an_alephbet_experiment_breaks_down_by_browser_as_the_api_does(dashboard, server):
    dashboard.open().enter_key().choose("button")
    dashboard.page.fill("#dimension", "browser")
    dashboard.page.click("#dimension-form button[type=submit]")

    shown = breakdown_cells(dashboard)
    assert shown == expected_cells(api(server, "/experiments/button/results", dimension="browser"))
    assert {segment for segment, _ in shown} == {"Chrome", "Firefox"}


def test_a_segment_experiment_opens_by_id_with_its_results_and_a_property_breakdown(dashboard, server):
    dashboard.open().enter_key().wait_for_list()
    dashboard.page.fill("#segment-experiment", "pricing")
    dashboard.page.click("#segment-form button[type=submit]")
    dashboard.page.wait_for_function("() => document.getElementById('experiment-name')?.textContent === 'pricing'")
    answer = api(server, "/experiments/pricing/results", source="segment")
    for variant in answer["variants"]:
        assert dashboard.cell("#participants", variant["label"], "participants") == str(variant["participants"])
    assert dashboard.page.locator("#delete-experiment").count() == 0

    dashboard.page.fill("#dimension", "properties.plan")
    dashboard.page.click("#dimension-form button[type=submit]")
    shown = breakdown_cells(dashboard)
    assert shown == expected_cells(api(server, "/experiments/pricing/results", source="segment",
                                       dimension="properties.plan"))
    assert HOSTILE_PLAN in {segment for segment, _ in shown}          # shown as text
    assert dashboard.page.locator("#breakdown img").count() == 0
    assert dashboard.dialogs == []


def test_a_bad_dimension_shows_the_apis_reason(dashboard):
    dashboard.open().enter_key().choose("button")
    dashboard.page.fill("#dimension", "properties.plan")
    dashboard.page.click("#dimension-form button[type=submit]")
    assert "dimension" in dashboard.message() and "400" in dashboard.message()


def test_the_events_view_charts_one_line_per_group_with_the_apis_numbers(dashboard, server):
    dashboard.open().enter_key().wait_for_list()
    dashboard.page.click("#view-events")
    dashboard.page.wait_for_selector("#events-chart .events-line")
    last_48_hours = {"interval": "hour", "from": DAY_BEFORE.date().isoformat(), "to": TODAY.date().isoformat()}
    everything = api(server, "/events", **last_48_hours)
    assert len(everything["intervals"]) == 48
    assert dashboard.page.input_value("#events-interval") == "hour"
    assert dashboard.page.locator("#events-chart .events-line").get_attribute("data-values") == \
        ",".join(map(str, everything["series"][0]["events"]))

    dashboard.page.select_option("#events-event", "Order Completed")
    dashboard.page.fill("#events-group", "properties.plan")
    dashboard.page.select_option("#events-metric", "users")
    dashboard.page.click("#events-form button[type=submit]")
    dashboard.page.wait_for_function("() => document.querySelectorAll('#events-chart .events-line').length === 3")
    grouped = api(server, "/events", event="Order Completed", group_by="properties.plan", **last_48_hours)
    lines = dashboard.page.locator("#events-chart .events-line").evaluate_all(
        "lines => lines.map(l => [l.getAttribute('data-group'), l.getAttribute('data-values')])")
    assert lines == [[line["group"], ",".join(map(str, line["users"]))] for line in grouped["series"]]
    totals = {row.get_attribute("data-group"): row.locator("[data-field='events-total']").inner_text()
              for row in dashboard.page.locator("#events-table tbody tr").all()}
    assert totals == {line["group"]: str(sum(line["events"])) for line in grouped["series"]}


def test_the_event_names_list_offers_every_named_event(dashboard, server):
    dashboard.open().enter_key().wait_for_list()
    dashboard.page.click("#view-events")
    dashboard.page.wait_for_selector("#events-chart")
    offered = dashboard.page.locator("#events-event option").evaluate_all("options => options.map(o => o.value)")
    assert offered == [""] + [item["name"] for item in api(server, "/events/names", **{"from": DAY_BEFORE.date().isoformat(), "to": TODAY.date().isoformat()})["names"]]


def test_the_event_names_list_shows_invisible_and_direction_changing_characters_escaped(dashboard):
    dashboard.open().enter_key().wait_for_list()
    dashboard.page.click("#view-events")
    dashboard.page.wait_for_selector("#events-chart")
    option = dashboard.page.locator("#events-event option", has_text="refund")
    assert option.inner_text() == "refund\\u200B-\\u202Etset (1)"
    assert option.get_attribute("value") == SPOOFED_EVENT


# ---------- links and pickers for Segment experiments ----------

def open_link(dashboard: Dashboard, **fragment: str) -> Dashboard:
    dashboard.open().enter_key().wait_for_list()
    dashboard.page.goto(dashboard.server.url("/dashboard") + "#" + urlencode({"namespace": NAMESPACE, **fragment}))
    dashboard.page.wait_for_function("name => document.getElementById('experiment-name')?.textContent === name",
                                     arg=fragment["experiment"])
    return dashboard


def test_a_link_opens_a_segment_experiments_view(dashboard, server):
    open_link(dashboard, experiment="pricing", source="segment", mode="fixed", breakdown="properties.plan")

    assert dashboard.page.inner_text("#experiment-source") == "Segment"
    assert dashboard.page.input_value("#mode") == "fixed"
    assert breakdown_cells(dashboard) == expected_cells(api(server, "/experiments/pricing/results", source="segment",
                                                            dimension="properties.plan"))


def test_a_link_without_a_source_still_opens_a_segment_experiment_and_then_names_it(dashboard, server):
    open_link(dashboard, experiment="pricing")

    assert dashboard.page.inner_text("#experiment-source") == "Segment"
    assert parse_qs(urlsplit(dashboard.page.url).fragment)["source"] == ["segment"]


def test_the_goal_picker_lists_what_exposed_people_did_and_asks_for_the_chosen_goals(dashboard, server):
    goals = [{"goal": "Order Completed", "users": 8}, {"goal": HOSTILE_PLAN, "users": 3}]
    values = [{"property": "properties.revenue", "users": 8}]
    dashboard.page.route(re.compile(r".*/experiments/pricing/goals\?.*"), lambda route: route.fulfill(json=goals))
    dashboard.page.route(re.compile(r".*/experiments/pricing/values\?.*"), lambda route: route.fulfill(json=values))
    open_link(dashboard, experiment="pricing", source="segment")
    dashboard.page.click("#goal-picker summary")

    offered = [text.strip() for text in dashboard.page.locator("#goal-picker label.check").all_inner_texts()]
    assert offered == ["Order Completed 8 users", f"{HOSTILE_PLAN} 3 users"]   # names as text
    assert dashboard.page.locator("img").count() == 0
    dashboard.requested.clear()
    dashboard.page.select_option("#value", "properties.revenue")
    dashboard.page.wait_for_function("() => location.hash.includes('value=properties.revenue')")

    asked = [parse_qs(urlsplit(url).query) for url in dashboard.requested if "/pricing/results" in url]
    assert asked and asked[-1]["value"] == ["properties.revenue"] and asked[-1]["source"] == ["segment"]


@pytest.mark.parametrize("width", WIDTHS)
def test_a_segment_experiment_and_its_breakdown_fit_the_screen(browser, server, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    dashboard = Dashboard(context.new_page(), server)
    try:
        open_link(dashboard, experiment="pricing", source="segment", breakdown="properties.plan")
        dashboard.page.wait_for_selector("#breakdown tbody tr")
        SCREENSHOTS.mkdir(exist_ok=True)
        dashboard.page.screenshot(path=SCREENSHOTS / f"{width}-segment-breakdown.png", full_page=True)

        assert no_horizontal_overflow(dashboard.page)
    finally:
        context.close()
