"""The README's dashboard screenshots, from a real local run: one command, rerun after dashboard changes.

Starts the server `make run` starts on a temporary data folder, tracks a small realistic
experiment through /track (seeded, so every run draws the same users), opens the dashboard
on it in headless Chromium (Debian's /usr/bin/chromium through Playwright) at 1366 and 390
px wide, and writes docs/img/dashboard-1366.png and docs/img/dashboard-390.png.

    .venv/bin/python bench/screenshots.py [--out docs/img]

Not a benchmark: bench/run.py skips it (it prints no metric lines).
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import ROOT

from tests.local_server import LocalServer, wait_until

API_KEY = "screenshot-key"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WIDTHS = {1366: 900, 390: 844}          # width: viewport height (a laptop; a phone)
EXPERIMENT = "checkout button"
USERS_PER_VARIANT = 1500
# variant: (chance to add to cart, chance to purchase after adding, mean order value)
VARIANTS = {"control": (0.22, 0.30, 48.0), "green": (0.25, 0.34, 50.0)}
BATCH = 500


def experiment_events(seed: int = 18) -> list[dict[str, Any]]:
    """Participations, then goals, of USERS_PER_VARIANT users per variant; purchases carry an order value."""
    draw = random.Random(seed)
    events: list[dict[str, Any]] = []
    for variant, (cart_rate, purchase_rate, mean_value) in VARIANTS.items():
        for number in range(USERS_PER_VARIANT):
            user = f"{variant}-{number}"
            base = {"experiment": EXPERIMENT, "variant": variant, "uuid": user}
            events.append({**base, "event": "participate"})
            if draw.random() < cart_rate:
                events.append({**base, "event": "add to cart"})
                if draw.random() < purchase_rate:
                    value = round(draw.lognormvariate(0, 0.4) * mean_value, 2)
                    events.append({**base, "event": "purchase", "value": value})
    return events


def track(server: LocalServer, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), BATCH):
        reply = server.request("POST", "/track", json=events[start:start + BATCH])
        if reply.status != 200:
            raise SystemExit(f"/track answered {reply.status}: {reply.text}")


def participants(server: LocalServer) -> int:
    reply = server.request("GET", "/experiments", headers={"x-api-key": API_KEY})
    if reply.status != 200:
        return 0
    return sum(result["trials"] for experiment in reply.json()[1:] for goal in experiment["goals"][:1]
               for result in goal["results"])


def screenshot(server: LocalServer, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written = []
    url = server.url("/dashboard") + "#namespace=alephbet&experiment=" + EXPERIMENT.replace(" ", "%20")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for width, height in WIDTHS.items():
                context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
                context.add_init_script(f"localStorage.setItem('dalet.apiKey', {API_KEY!r})")
                page = context.new_page()
                page.goto(url)
                page.wait_for_function("name => document.getElementById('experiment-name')?.textContent === name",
                                       arg=EXPERIMENT)
                page.wait_for_load_state("networkidle")
                path = out / f"dashboard-{width}.png"
                page.screenshot(path=str(path))
                written.append(path)
                context.close()
        finally:
            browser.close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    arguments = parser.parse_args()
    arguments.out.mkdir(parents=True, exist_ok=True)
    events = experiment_events()
    with tempfile.TemporaryDirectory(prefix="dalet-screenshots-") as folder:
        with LocalServer.start(Path(folder) / "data", env={"DALET_API_KEY": API_KEY}, via_make_run=True) as server:
            track(server, events)
            wait_until(lambda: participants(server) == USERS_PER_VARIANT * len(VARIANTS), timeout=60,
                       message="the tracked events to reach the reports")
            for path in screenshot(server, arguments.out):
                print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
                      f"({path.stat().st_size / 1000:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
