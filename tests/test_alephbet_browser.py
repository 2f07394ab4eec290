"""The real client: AlephBet's own browser build, in headless Chromium, tracking into a
real `chalice local` from a page served by another origin (so every request is CORS)."""
from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import threading
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.local_server import LocalServer, wait_until

ROOT = Path(__file__).resolve().parent.parent
ALEPHBET_JS = ROOT / "tests" / "browser" / "node_modules" / "alephbet" / "dist" / "alephbet.min.js"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
QUEUE_DRAIN_TIMEOUT_MS = 15_000
API_KEY = "browser-test-key"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><script src="alephbet.min.js"></script></head>
<body><script>
  // One experiment with one goal, wired the way AlephBet's README shows. With a user_id the
  // GimelAdapter sends the same uuid for the participate and the goal: both must still count.
  window.runExperiment = (trackUrl, name, goalName, userId) => {
    const adapter = new AlephBet.GimelAdapter(trackUrl, "browser-test");
    const experiment = new AlephBet.Experiment({
      name: name,
      user_id: userId,
      variants: {red: {activate: () => {}}, blue: {activate: () => {}}},
      tracking_adapter: adapter,
    });
    const goal = new AlephBet.Goal(goalName);
    experiment.add_goal(goal);
    goal.complete();
    return experiment.get_stored_variant();
  };
  window.gimelQueue = () => JSON.parse(JSON.parse(localStorage.getItem("alephbet") || "{}")._gimel_queue || "[]");
</script></body></html>
"""


@pytest.fixture(scope="module")
def alephbet_js() -> Path:
    if not ALEPHBET_JS.exists():
        pytest.fail(
            f"AlephBet's browser build is missing ({ALEPHBET_JS.relative_to(ROOT)}): run `make test`, "
            "which installs it (npm install --prefix tests/browser)",
            pytrace=False,
        )
    return ALEPHBET_JS


@pytest.fixture
def page_origin(tmp_path: Path, alephbet_js: Path) -> Iterator[str]:
    """A static site on its own port: a different origin from the API's."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(PAGE, encoding="utf-8")
    shutil.copy(alephbet_js, site / "alephbet.min.js")
    handler = functools.partial(_QuietStaticFiles, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietStaticFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _report(server: LocalServer, namespace: str) -> dict[str, list]:
    """GET /experiments (Gimel's shape) as {experiment: goals}."""
    reply = server.request("GET", "/experiments", query={"namespace": namespace}, headers={"x-api-key": API_KEY})
    assert reply.status == 200, reply.text
    return {entry["experiment"]: entry["goals"] for entry in reply.json() if "experiment" in entry}


def _goals_once_counted(server: LocalServer, namespace: str, experiment: str) -> list:
    """The experiment's goals once a participant and a success show (the writer runs in the background)."""
    def counted() -> list | None:
        goals = _report(server, namespace).get(experiment, [])
        results = [result for goal in goals for result in goal["results"]]
        return goals if any(r["trials"] and r["successes"] for r in results) else None

    return wait_until(counted, timeout=15, message=f"{experiment!r} shows a participant and a goal in the report")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[LocalServer]:
    with LocalServer.start(tmp_path / "dalet-data", env={"DALET_API_KEY": API_KEY}) as server:
        yield server


def _run_in_browser(chromium, page_origin: str, api: LocalServer, experiment: str, goal: str) -> tuple[str, list]:
    """Load the page, run the experiment, wait until the client's retry queue drains."""
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(f"{page_origin}/index.html")
        assert page.evaluate("location.origin") != api.base_url
        variant = page.evaluate(
            "([url, name, goal]) => runExperiment(url, name, goal, 'user-42')",
            [f"{api.base_url}/track", experiment, goal],
        )
        # AlephBet drops an event from its queue only on an HTTP 200 the page may read (CORS).
        with contextlib.suppress(PlaywrightTimeout):
            page.wait_for_function("gimelQueue().length === 0", timeout=QUEUE_DRAIN_TIMEOUT_MS)
        return variant, page.evaluate("gimelQueue()")
    finally:
        context.close()


def test_a_participate_and_a_goal_from_another_origin_land_and_the_client_queue_drains(chromium, page_origin, api):
    variant, queue_left = _run_in_browser(chromium, page_origin, api, "button color", "clicked buy")

    assert queue_left == []
    assert _goals_once_counted(api, "browser-test", "button color") == [
        {"goal": "clicked buy", "results": [{"label": variant, "successes": 1, "trials": 1}]}
    ]


def test_an_experiment_named_with_spaces_and_a_slash_lands_intact(chromium, page_origin, api):
    # AlephBet sends spaces as '+' and the slash percent-encoded.
    variant, _ = _run_in_browser(chromium, page_origin, api, "my a/b test", "signed up")

    assert _goals_once_counted(api, "browser-test", "my a/b test") == [
        {"goal": "signed up", "results": [{"label": variant, "successes": 1, "trials": 1}]}
    ]
    assert list(_report(api, "browser-test")) == ["my a/b test"]
