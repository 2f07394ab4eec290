"""The dashboard's verdict, links, list and small screens, in headless Chromium against a real `chalice local`.

Experiments are seeded through /track (the real pipeline). The server-side `decision` (branch
verdict), `/daily`'s `uplift` (branch verdict), `/overview` and `/events`' `unique_users` (branch
identity) may not exist on this branch: tests that render them add contract-shaped JSON (see
/work/prompts/contract.md) to the real answers with Playwright's `page.route` only where the API has
none, built from the real figures so the page never shows two numbers that disagree, and expect
the real answer where there is one. Tests named `test_needs_<field>_...` use the real server only:
they report xfail while the server lacks that field and must pass once it has it.

Screenshots at 390 and 1366 px are saved under SCREENSHOTS (a temporary folder) for people to look at.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from tests.local_server import LocalServer, wait_until
from tests.test_dashboard import (API_KEY, CHROMIUM, CHROMIUM_ARGS, HOSTILE_NAME, Dashboard, goal, p_value,
                                  participants, signed_percent)

NAMESPACE = "alephbet"
WON = "signup flow"              # blue converts far better: ship it
RUNNING = "pricing page"         # no difference yet: keep running
GUARDRAIL = "checkout copy"      # primary goal flat, blue loses purchases (a guardrail): stop
SKEWED = "new onboarding"        # 1000 vs 800 participants: sample ratio mismatch
HOSTILE_GOAL = "<img src=x onerror=alert(2)>"
EXPERIMENTS = (WON, RUNNING, GUARDRAIL, SKEWED, HOSTILE_NAME)
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/126.0.0.0 Safari/537.36")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SCREENSHOTS = Path(tempfile.gettempdir()) / "dalet-dashboard-screenshots"
WIDTHS = (390, 1366)

SEEDED_EVENTS = [
    *participants(WON, "control", 1000), *goal(WON, "control", "signup", 100),
    *participants(WON, "blue", 1000), *goal(WON, "blue", "signup", 180),
    *participants(RUNNING, "control", 200), *goal(RUNNING, "control", "signup", 20),
    *participants(RUNNING, "blue", 200), *goal(RUNNING, "blue", "signup", 22),
    *participants(GUARDRAIL, "control", 1000), *goal(GUARDRAIL, "control", "click", 300),
    *goal(GUARDRAIL, "control", "purchase", 200),
    *participants(GUARDRAIL, "blue", 1000), *goal(GUARDRAIL, "blue", "click", 305),
    *goal(GUARDRAIL, "blue", "purchase", 120),
    *participants(SKEWED, "control", 1000), *goal(SKEWED, "control", "signup", 100),
    *participants(SKEWED, "blue", 800), *goal(SKEWED, "blue", "signup", 85),
    *participants(HOSTILE_NAME, "a", 20), *goal(HOSTILE_NAME, "a", HOSTILE_GOAL, 5),
    *participants(HOSTILE_NAME, "b", 20), *goal(HOSTILE_NAME, "b", HOSTILE_GOAL, 6),
]


def api_get(server: LocalServer, path: str, **query: str):
    reply = server.request("GET", path, headers={"x-api-key": API_KEY}, query={"namespace": NAMESPACE, **query})
    assert reply.status == 200, reply.text
    return reply.json()


def results_of(server: LocalServer, experiment: str, **query: str) -> dict:
    return api_get(server, f"/experiments/{quote(experiment, safe='')}/results", **query)


def listed(server: LocalServer) -> set[str]:
    return {item["experiment"] for item in api_get(server, "/experiments") if "experiment" in item}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LocalServer]:
    with LocalServer.start(tmp_path_factory.mktemp("dashboard-verdict") / "data", env={"DALET_API_KEY": API_KEY}) as running:
        # Every other person browses with Firefox, so a breakdown by browser has two segments.
        for browser_index, user_agent in enumerate((CHROME, FIREFOX)):
            events = [event for event in SEEDED_EVENTS if int(event["uuid"].rsplit("-", 1)[1]) % 2 == browser_index]
            for start in range(0, len(events), 500):
                reply = running.request("POST", "/track", json=events[start:start + 500], headers={"User-Agent": user_agent})
                assert reply.status == 200, reply.text
        wait_until(lambda: listed(running) >= set(EXPERIMENTS) and
                   sum(arm["participants"] for arm in results_of(running, WON)["variants"]) == 2000 and
                   sum(arm["participants"] for arm in results_of(running, SKEWED)["variants"]) == 1800,
                   message="the seeded events to reach the report API")
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def open_dashboard(browser, server) -> Iterator[Callable[..., Dashboard]]:
    contexts = []

    def opened(width: int = 1280) -> Dashboard:
        context = browser.new_context(viewport={"width": width, "height": 900})
        contexts.append(context)
        return Dashboard(context.new_page(), server)

    yield opened
    for context in contexts:
        for page in context.pages:
            page.unroute_all(behavior="ignoreErrors")
        context.close()


@pytest.fixture
def dashboard(open_dashboard) -> Dashboard:
    return open_dashboard()


# ---------- contract-shaped figures the API may not compute yet, built from its real answers ----------

def comparison(results: dict, goal_name: str, label: str = "blue") -> dict:
    goal_result = next(g for g in results["goals"] if g["goal"] == goal_name)
    return next(v for v in goal_result["variants"] if v["label"] == label)


def stub_decision(results: dict) -> dict | None:
    """The decision the contract describes, for each seeded experiment, from the results' own figures."""
    name = results["experiment"]
    if name == WON:
        blue = comparison(results, "signup")
        low, high = blue["sequential"]["relative_ci"]
        return {"verdict": "ship", "variant": "blue", "goal": "signup", "remaining": None,
                "sentence": f"Ship blue: {blue['uplift']['relative'] * 100:.1f}% more signup than control "
                            f"(95% interval {signed_percent(low)} to {signed_percent(high)}), checked sequentially.",
                "reasons": [{"code": "significant", "text": "blue is better than control on signup."}]}
    if name == RUNNING:
        return {"verdict": "keep_running", "variant": None, "goal": "signup",
                "sentence": "Keep running: no variant differs from control on signup yet; about 8,400 more participants "
                            "(≈ 6 days at today's traffic) to detect a 10% change.",
                "reasons": [{"code": "not_significant", "text": "No variant differs from control on signup yet."}],
                "remaining": {"participants": 8400, "days": 6.0, "participants_per_day": 1400.0,
                              "minimum_detectable_effect": 0.1}}
    if name == GUARDRAIL:
        blue = comparison(results, "purchase")
        return {"verdict": "stop", "variant": "blue", "goal": "purchase", "remaining": None,
                "sentence": f"Stop blue: it lowers purchase (a guardrail) by {-blue['uplift']['relative'] * 100:.1f}%.",
                "reasons": [{"code": "guardrail", "text": "blue is worse than control on purchase."}]}
    if name == SKEWED:
        return {"verdict": "dont_trust", "variant": None, "goal": None, "remaining": None,
                "sentence": "Don't trust these numbers yet: the split between variants is off "
                            f"(sample ratio mismatch, p {'< 0.0001' if results['srm']['p_value'] < 0.0001 else '= ' + p_value(results['srm']['p_value'])}).",
                "reasons": [{"code": "srm", "text": "The split between variants is off."}]}
    if name == HOSTILE_NAME:
        return {"verdict": "keep_running", "variant": None, "goal": HOSTILE_GOAL, "remaining": None,
                "sentence": f"Keep running: no variant differs from control on {HOSTILE_GOAL} yet.", "reasons": []}
    return None


EXPECTED = {WON: ("ship", "Ship"), RUNNING: ("keep_running", "Keep running"), GUARDRAIL: ("stop", "Stop"),
            SKEWED: ("dont_trust", "Don't trust")}


def with_decisions(route: Route) -> None:
    """Results as the API answers them, plus the contract's `decision` where the API has none."""
    response = route.fetch()
    results = response.json()
    if response.ok and "decision" not in results:
        results["decision"] = stub_decision(results)
    route.fulfill(response=response, json=results)


def with_uplift(route: Route) -> None:
    """/daily plus the contract's `uplift` where the API has none: a week closing on each variant's real uplift."""
    response = route.fetch()
    daily = response.json()
    if response.ok and "uplift" not in daily:
        query = {name: values[0] for name, values in parse_qs(urlsplit(route.request.url).query).items()}
        experiment = urlsplit(route.request.url).path.split("/")[2]
        results = route.fetch(url=route.request.url.replace(f"/{experiment}/daily", f"/{experiment}/results")).json()
        primary = query.get("primary") or results["goals"][0]["goal"]
        arms = [v for v in next(g for g in results["goals"] if g["goal"] == primary)["variants"]
                if v["label"] != results["control"]]
        days = [f"2026-11-{day:02d}" for day in range(24, 31)]
        daily["uplift"] = {"goal": primary, "days": [
            {"day": day, "variants": [{
                "label": arm["label"], "relative": arm["uplift"]["relative"],
                # Wider early on, as an interval narrows with participants; the last day is the real one.
                "relative_ci": [arm["uplift"]["relative"] + (bound - arm["uplift"]["relative"]) * (len(days) / (index + 1)) ** 0.5
                                for bound in arm["sequential"]["relative_ci"]]} for arm in arms]}
            for index, day in enumerate(days)]}
    route.fulfill(response=response, json=daily)


def stub_contract(page: Page) -> None:
    page.route(re.compile(r".*/experiments/[^/?]+/results\?.*"), with_decisions)
    page.route(re.compile(r".*/experiments/[^/?]+/daily\?.*"), with_uplift)


def link(server: LocalServer, **fragment: str) -> str:
    return server.url("/dashboard") + "#" + urlencode({"namespace": NAMESPACE, **fragment})


def open_link(dashboard: Dashboard, **fragment: str) -> Dashboard:
    if not dashboard.page.url.startswith(dashboard.server.base_url):
        dashboard.open().enter_key()
        dashboard.page.wait_for_selector("#experiments button.experiment-link")
    dashboard.page.goto(link(dashboard.server, **fragment))
    dashboard.page.wait_for_function("name => document.getElementById('experiment-name')?.textContent === name",
                                     arg=fragment["experiment"])
    return dashboard


# ---------- the verdict first ----------

# The guardrail-failed experiment is seen with its guardrail named.
VIEWS = {WON: {}, RUNNING: {}, GUARDRAIL: {"primary": "click", "guardrails": "purchase"}, SKEWED: {}}


def decision_of(server: LocalServer, experiment: str, **query: str) -> dict:
    """The server's decision, or the contract-shaped stub the page is given where the server has none."""
    results = results_of(server, experiment, **query)
    return results.get("decision") or stub_decision(results)


@pytest.mark.parametrize("experiment", list(VIEWS))
def test_the_verdict_sentence_comes_first_with_an_icon_and_a_word(dashboard, server, experiment):
    stub_contract(dashboard.page)
    open_link(dashboard, experiment=experiment, **VIEWS[experiment])
    dashboard.page.wait_for_selector("#verdict")
    expected = decision_of(server, experiment, **VIEWS[experiment])
    verdict, word = EXPECTED[experiment]

    assert expected["verdict"] == verdict
    assert dashboard.page.get_attribute("#verdict", "data-verdict") == verdict
    assert dashboard.page.inner_text("#verdict-word") == word
    assert dashboard.page.inner_text("#verdict .verdict-icon").strip() != ""
    assert dashboard.page.inner_text("#verdict-sentence") == expected["sentence"]
    # The list says the same of the open experiment (with the guardrails this view names).
    dashboard.page.wait_for_function("([name, verdict]) => [...document.querySelectorAll('#experiments button')].find("
                                     "(b) => b.dataset.experiment === name)?.querySelector('.chip')?.dataset.verdict === verdict",
                                     arg=[experiment, verdict])
    # At the top: above every goal, in the experiment's first panel.
    assert dashboard.page.locator("#headline #verdict").count() == 1
    assert dashboard.page.evaluate("""() => [...document.querySelectorAll('.goal')].every((goal) =>
        document.getElementById('verdict').getBoundingClientRect().bottom < goal.getBoundingClientRect().top)""")


def test_a_sample_ratio_mismatch_reads_dont_trust_with_or_without_a_server_decision(dashboard, server):
    open_link(dashboard, experiment=SKEWED)

    assert dashboard.page.get_attribute("#verdict", "data-verdict") == "dont_trust"
    assert dashboard.page.inner_text("#verdict-word") == "Don't trust"
    assert "sample ratio mismatch" in dashboard.page.inner_text("#verdict-sentence")


def needs(field: str, branch: str, present: bool) -> None:
    """A test of the real server's `field`: xfail (not run) while the server has none, from before `branch` merged."""
    if not present:
        pytest.xfail(f"needs {field} from branch {branch}")


@pytest.mark.parametrize("experiment", list(VIEWS))
def test_needs_decision_the_real_servers_sentence_is_shown(dashboard, server, experiment):
    decision = results_of(server, experiment, **VIEWS[experiment]).get("decision")
    needs("`decision` in GET /experiments/{e}/results", "verdict", decision is not None)
    open_link(dashboard, experiment=experiment, **VIEWS[experiment])

    assert decision["verdict"] == EXPECTED[experiment][0]
    assert dashboard.page.inner_text("#verdict-word") == EXPECTED[experiment][1]
    assert dashboard.page.inner_text("#verdict-sentence") == decision["sentence"]


def test_significance_is_a_word_and_an_arrow_as_well_as_a_colour(dashboard, server):
    open_link(dashboard, experiment=GUARDRAIL, primary="click", guardrails="purchase")

    purchase = dashboard.row(".goal[data-goal='purchase'] .goal-table", "blue")
    assert purchase.locator("[data-field='significance']").inner_text() == "▼ Worse"
    click = dashboard.row(".goal[data-goal='click'] .goal-table", "blue")
    assert click.locator("[data-field='significance']").inner_text() == "No clear difference"


def test_the_list_shows_each_experiments_verdict_as_a_word(dashboard, server):
    stub_contract(dashboard.page)
    dashboard.open().enter_key().wait_for_list()

    words = {verdict: word for verdict, word in EXPECTED.values()}
    for experiment in EXPECTED:
        verdict = decision_of(server, experiment)["verdict"]   # the list names no guardrails
        chip = dashboard.page.locator(f"#experiments button[data-experiment='{experiment}'] .chip")
        chip.wait_for()
        assert chip.get_attribute("data-verdict") == verdict
        assert words[verdict] in chip.inner_text()
    assert dashboard.page.locator(f"#experiments button[data-experiment='{SKEWED}'] .srm-flag").inner_text() == "⚠ SRM"


# ---------- one page, one story ----------

def test_control_comes_first_and_the_primary_goal_then_the_guardrails(dashboard, server):
    open_link(dashboard, experiment=GUARDRAIL, primary="click", guardrails="purchase")

    goals = dashboard.page.locator(".goal").evaluate_all("goals => goals.map(g => [g.dataset.goal, g.dataset.role || ''])")
    assert goals[:2] == [["click", "primary"], ["purchase", "guardrail"]]
    for name, _ in goals:
        labels = dashboard.page.locator(f".goal[data-goal='{name}'] .goal-table tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.variant)")
        assert labels == ["control", "blue"]


def test_the_primary_goal_picker_reorders_and_asks_the_api_for_that_goal(dashboard, server):
    open_link(dashboard, experiment=GUARDRAIL, primary="click")
    dashboard.requested.clear()

    dashboard.page.select_option("#primary", "purchase")
    dashboard.page.wait_for_function("() => document.querySelector('.goal')?.dataset.goal === 'purchase'")

    asked = [parse_qs(urlsplit(url).query) for url in dashboard.requested if "/results" in url and "primary=" in url]
    assert asked and asked[-1]["primary"] == ["purchase"]
    assert "primary=purchase" in dashboard.page.url


def test_the_cumulative_uplift_of_the_primary_goal_is_charted_with_its_interval(dashboard, server):
    stub_contract(dashboard.page)
    open_link(dashboard, experiment=WON)
    dashboard.page.wait_for_selector("#uplift-chart")
    daily = api_get(server, f"/experiments/{quote(WON)}/daily")
    if "uplift" in daily:
        last = daily["uplift"]["days"][-1]
        day, blue = last["day"], next(v for v in last["variants"] if v["label"] == "blue")
        relative, (low, high) = blue["relative"], blue["relative_ci"]
    else:   # the stub's last day: the results' own figures
        blue = comparison(results_of(server, WON), "signup")
        day, relative, (low, high) = "2026-11-30", blue["uplift"]["relative"], blue["sequential"]["relative_ci"]

    assert dashboard.page.locator("#uplift-chart polyline.uplift-line").evaluate_all(
        "lines => lines.map(l => l.dataset.variant)") == ["blue"]
    assert dashboard.page.locator("#uplift-chart .uplift-band[data-variant='blue']").count() == 1
    assert dashboard.page.locator("#uplift-chart circle.uplift-point title").last.text_content() == (
        f"blue · {day}: {signed_percent(relative)} ({signed_percent(low)} to {signed_percent(high)})")


def test_needs_uplift_the_real_daily_uplift_is_charted(dashboard, server):
    daily = api_get(server, f"/experiments/{quote(WON)}/daily")
    needs("`uplift` in GET /experiments/{e}/daily", "verdict", "uplift" in daily)
    open_link(dashboard, experiment=WON)

    dashboard.page.wait_for_selector("#uplift-chart polyline.uplift-line[data-variant='blue']", state="attached")
    assert dashboard.page.locator("#uplift-chart circle.uplift-point[data-variant='blue']").count() == len(daily["uplift"]["days"])


def test_breakdown_rows_show_each_segments_uplift_interval_and_p(dashboard, server):
    open_link(dashboard, experiment=WON, breakdown="browser")
    dashboard.page.wait_for_selector("#breakdown tbody tr")
    answer = results_of(server, WON, dimension="browser")

    segments = answer["breakdown"]["segments"]
    assert {segment["value"] for segment in segments} == {"Chrome", "Firefox"}
    for segment in segments:
        blue = next(v for v in next(g for g in segment["goals"] if g["goal"] == "signup")["variants"] if v["label"] == "blue")
        low, high = blue["sequential"]["relative_ci"]
        row = dashboard.page.locator(f"#breakdown tr[data-segment='{segment['value']}'][data-variant='blue'] td[data-goal='signup']")
        assert row.locator("[data-field='segment-uplift']").inner_text() == (
            f"{signed_percent(blue['uplift']['relative'])} ({signed_percent(low)} to {signed_percent(high)})")
        assert p_value(blue["sequential"]["p_value_adjusted"]) in row.locator("[data-field='segment-p']").inner_text()


# ---------- links reproduce views ----------

def test_a_link_opens_the_view_it_names(dashboard, server):
    view = {"experiment": GUARDRAIL, "source": "alephbet", "mode": "fixed", "confidence": "0.99", "correction": "bh",
            "primary": "click", "guardrails": "purchase", "breakdown": "browser", "planned_participants": "5000"}
    open_link(dashboard, **view)
    dashboard.page.wait_for_selector("#breakdown")

    assert {control: dashboard.page.input_value(f"#{control}") for control in ("mode", "confidence", "correction", "primary")} == {
        "mode": "fixed", "confidence": "0.99", "correction": "bh", "primary": "click"}
    assert dashboard.page.input_value("#dimension") == "browser"
    assert dashboard.page.locator("#guardrails input.guardrail:checked").evaluate_all("boxes => boxes.map(b => b.value)") == ["purchase"]
    # The view's own request (the list's lazy verdict requests name no primary goal).
    asked = parse_qs(urlsplit([url for url in dashboard.requested if "/results" in url and "primary=" in url][-1]).query)
    assert {name: asked[name] for name in ("source", "mode", "confidence", "correction", "primary", "guardrails",
                                           "dimension", "planned_participants")} == {
        "source": ["alephbet"], "mode": ["fixed"], "confidence": ["0.99"], "correction": ["bh"], "primary": ["click"],
        "guardrails": ["purchase"], "dimension": ["browser"], "planned_participants": ["5000"]}
    shown = parse_qs(urlsplit(dashboard.page.url).fragment)
    assert {name: value[0] for name, value in shown.items() if name in view} == view


def test_changing_a_setting_writes_the_link_and_the_link_reopens_it(open_dashboard, server):
    first = open_dashboard()
    open_link(first, experiment=WON)
    first.page.select_option("#mode", "fixed")
    first.page.wait_for_selector("#mode-note[data-mode='fixed']")
    first.page.select_option("#confidence", "0.9")
    first.page.wait_for_function("() => location.hash.includes('confidence=0.9')")

    second = open_dashboard()
    second.open().enter_key().wait_for_list()
    second.page.goto(first.page.url)
    second.page.wait_for_selector("#mode-note[data-mode='fixed']")

    assert second.page.inner_text("#experiment-name") == WON
    assert second.page.input_value("#confidence") == "0.9"


# ---------- the list ----------

def overview_of(server: LocalServer, segment: list[dict]) -> Callable[[Route], None]:
    """GET /overview as the contract describes it, from the AlephBet experiments' real results plus `segment`."""
    def answer(route: Route) -> None:
        experiments = []
        for name in sorted(listed(server)):
            results = results_of(server, name)
            experiments.append({"experiment": name, "source": "alephbet", "first_seen": "2026-11-24", "last_seen": "2026-11-30",
                                "days_running": 7, "participants": sum(v["participants"] for v in results["variants"]),
                                "variants": results["variants"], "srm": {"p_value": results["srm"]["p_value"],
                                                                         "mismatch": results["srm"]["mismatch"]}})
        route.fulfill(json=experiments + segment)
    return answer


SEGMENT_ITEM = {"experiment": "hero banner", "source": "segment", "first_seen": "2026-11-28", "last_seen": "2026-11-30",
                "days_running": 3, "participants": 42, "variants": [{"label": "a", "participants": 20},
                                                                  {"label": "b", "participants": 22}],
                "srm": {"p_value": 0.76, "mismatch": False}}


def test_the_list_holds_alephbet_and_segment_experiments_with_source_days_participants_and_srm(dashboard, server):
    dashboard.page.route(re.compile(r".*/overview\?.*"), overview_of(server, [SEGMENT_ITEM]))
    dashboard.open().enter_key().wait_for_list()

    sources = dict(dashboard.page.locator("#experiments button.experiment-link").evaluate_all(
        "buttons => buttons.map(b => [b.dataset.experiment, b.dataset.source])"))
    assert sources["hero banner"] == "segment" and sources[WON] == "alephbet"
    facts = dashboard.page.inner_text("#experiments button[data-experiment='hero banner'] .count")
    assert facts == "Segment · 3 days · 42 participants"
    assert dashboard.page.inner_text(f"#experiments button[data-experiment='{WON}'] .count") == "AlephBet · 7 days · 2000 participants"
    assert dashboard.page.locator(f"#experiments button[data-experiment='{SKEWED}'] .srm-flag").count() == 1
    assert dashboard.page.locator(f"#experiments button[data-experiment='{WON}'] .srm-flag").count() == 0


def test_a_segment_experiment_alone_is_listed_never_no_experiments(dashboard, server):
    dashboard.page.route(re.compile(r".*/overview\?.*"), lambda route: route.fulfill(json=[SEGMENT_ITEM]))
    dashboard.open().enter_key().wait_for_list()

    assert dashboard.experiment_names() == ["hero banner"]
    assert dashboard.page.is_hidden("#experiments-empty")


def test_needs_overview_the_real_list_comes_from_overview(dashboard, server):
    reply = server.request("GET", "/overview", headers={"x-api-key": API_KEY}, query={"namespace": NAMESPACE})
    needs("GET /overview", "identity", reply.status == 200)
    dashboard.open().enter_key().wait_for_list()

    assert set(dashboard.experiment_names()) == {item["experiment"] for item in reply.json()}
    assert dashboard.page.locator("#experiments button[data-source='alephbet'] .count").first.inner_text().startswith("AlephBet · ")


# ---------- names from data are text ----------

def test_names_from_data_are_shown_as_text_everywhere(dashboard, server):
    stub_contract(dashboard.page)
    open_link(dashboard, experiment=HOSTILE_NAME, primary=HOSTILE_GOAL, breakdown="browser")
    dashboard.page.wait_for_selector("#breakdown")
    dashboard.page.click("#bayesian summary")

    assert dashboard.page.inner_text("#verdict-sentence") == decision_of(
        server, HOSTILE_NAME, primary=HOSTILE_GOAL, dimension="browser")["sentence"]
    assert dashboard.page.locator(".goal .goal-name").first.inner_text() == HOSTILE_GOAL
    assert dashboard.page.locator("img").count() == 0
    assert dashboard.dialogs == []


# ---------- the events view ----------

def test_the_events_view_counts_unique_users_over_the_window_not_a_peak(dashboard, server):
    answered: list[dict] = []

    def with_unique_users(route: Route) -> None:   # the server's count where it has one (branch identity)
        response = route.fetch()
        series = response.json()
        for number, line in enumerate(series["series"]):
            line.setdefault("unique_users", 1000 + number)
        answered.append(series)
        route.fulfill(response=response, json=series)

    dashboard.page.route(re.compile(r".*/events\?.*"), with_unique_users)
    dashboard.open().enter_key().wait_for_list()
    dashboard.page.click("#view-events")
    dashboard.page.wait_for_selector("#events-table tbody tr")

    headings = dashboard.page.locator("#events-table th").all_inner_texts()
    assert "Unique users over the window" in headings and not [h for h in headings if "Peak" in h]
    assert dashboard.page.inner_text("#events-table [data-field='users-window']") == str(answered[-1]["series"][0]["unique_users"])


# ---------- small screens ----------

def no_horizontal_overflow(page: Page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def smallest_chart_text(page: Page) -> float | None:
    """The smallest rendered chart text, in CSS px: its font size times the chart's scale."""
    return page.evaluate("""() => {
        const sizes = [...document.querySelectorAll('svg[viewBox] text')].filter((t) => t.getClientRects().length).map((t) => {
            const chart = t.ownerSVGElement, scale = chart.getBoundingClientRect().width / chart.viewBox.baseVal.width;
            return parseFloat(getComputedStyle(t).fontSize) * scale;
        });
        return sizes.length ? Math.min(...sizes) : null;
    }""")


@pytest.mark.parametrize("width", WIDTHS)
def test_every_view_fits_the_screen_with_readable_charts(open_dashboard, server, width):
    dashboard = open_dashboard(width)
    errors: list[str] = []
    dashboard.page.on("pageerror", lambda error: errors.append(str(error)))
    stub_contract(dashboard.page)
    SCREENSHOTS.mkdir(exist_ok=True)
    page = dashboard.page

    dashboard.open().enter_key().wait_for_list()
    page.wait_for_selector(f"#experiments button[data-experiment='{WON}'] .chip")
    views = {"list": None}
    page.screenshot(path=SCREENSHOTS / f"{width}-list.png", full_page=True)
    assert no_horizontal_overflow(page), "list"

    open_link(dashboard, experiment=WON)
    page.wait_for_selector("#uplift-chart")
    page.screenshot(path=SCREENSHOTS / f"{width}-results.png", full_page=True)
    views["results"] = smallest_chart_text(page)
    assert no_horizontal_overflow(page), "results"

    open_link(dashboard, experiment=WON, breakdown="browser", primary="signup")
    page.wait_for_selector("#breakdown tbody tr")
    page.screenshot(path=SCREENSHOTS / f"{width}-breakdown.png", full_page=True)
    views["breakdown"] = smallest_chart_text(page)
    assert no_horizontal_overflow(page), "breakdown"

    open_link(dashboard, experiment=GUARDRAIL, primary="click", guardrails="purchase")
    page.wait_for_selector("#verdict")
    page.screenshot(path=SCREENSHOTS / f"{width}-guardrail.png", full_page=True)
    assert no_horizontal_overflow(page), "guardrail"

    page.click("#view-events")
    page.wait_for_selector("#events-chart")
    page.screenshot(path=SCREENSHOTS / f"{width}-events.png", full_page=True)
    views["events"] = smallest_chart_text(page)
    assert no_horizontal_overflow(page), "events"

    assert all(size is None or size >= 10 for size in views.values()), views
    assert views["results"] is not None and views["events"] is not None
    assert errors == []


def test_the_open_experiments_results_are_read_once_and_its_list_chip_is_the_views_verdict(dashboard, server):
    open_link(dashboard, experiment=WON)
    requested: list[str] = []
    dashboard.page.on("request", lambda request: requested.append(urlsplit(request.url).path))
    dashboard.page.reload()     # a fresh load of the link: the list, its chips and the open experiment
    dashboard.page.wait_for_function("name => document.getElementById('experiment-name')?.textContent === name",
                                     arg=WON)
    chip = dashboard.page.locator(f"#experiments button[data-experiment='{WON}'] .chip")
    chip.wait_for()
    dashboard.page.wait_for_function(   # every entry's chip is shown: the list's reads are done
        "() => [...document.querySelectorAll('#experiments button.experiment-link')].every(b => b.querySelector('.chip'))")
    dashboard.page.wait_for_load_state("networkidle")
    since_reload = requested[requested.index("/dashboard"):]
    assert since_reload.count(f"/experiments/{quote(WON)}/results") == 1
    assert chip.get_attribute("data-verdict") == dashboard.page.get_attribute("#verdict", "data-verdict")


def test_an_experiment_left_before_its_view_arrived_keeps_a_list_chip(dashboard, server):
    """The list skips the open experiment's chip, counting on its view to show it; leave that experiment before
    its results arrive (the slow, largest one) and its entry must still get its chip (found by a review)."""
    open_link(dashboard, experiment=RUNNING)
    dashboard.page.wait_for_function(
        "() => [...document.querySelectorAll('#experiments button.experiment-link')].every(b => b.querySelector('.chip'))")
    held: list[Route] = []
    pattern = re.compile(r"/experiments/" + re.escape(quote(WON)) + r"/results")
    dashboard.page.route(pattern, lambda route: held.append(route))
    dashboard.page.goto(link(server, experiment=WON))      # WON's results are slow to come
    dashboard.page.wait_for_function("() => document.querySelectorAll('#experiments button.experiment-link').length > 0")
    for _ in range(100):                 # Playwright calls pump the route handler
        if held:
            break
        dashboard.page.wait_for_timeout(100)
    assert held, "WON's results were not asked"
    dashboard.page.click(f"#experiments button[data-experiment='{RUNNING}']")   # the reader moves on
    dashboard.page.wait_for_function("name => document.getElementById('experiment-name')?.textContent === name",
                                     arg=RUNNING)
    for route in held:
        route.continue_()
    dashboard.page.unroute(pattern)
    dashboard.page.wait_for_load_state("networkidle")
    dashboard.page.wait_for_timeout(500)
    chip = dashboard.page.locator(f"#experiments button[data-experiment='{WON}'] .chip")
    assert chip.count() == 1, "the list shows no verdict for an experiment that has one"
