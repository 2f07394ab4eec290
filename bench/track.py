"""/track through the Chalice Lambda entry vs a bare Chalice route returning {} (goal <= 1.5x).

Both apps are called in this process exactly as Lambda calls them, `app(event, context)`
with API Gateway proxy events; Dalet's publisher writes to memory, so what is measured
is the route's own work: parsing, validation, stamping, the event_id hash, the response.
Runs alternate between the two apps in rounds; the medians are compared.

    .venv/bin/python bench/track.py [--rounds 30] [--calls 300]
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence
from urllib.parse import urlencode

from _common import LambdaContext, clear_dalet_environment, emit, interleaved_medians, proxy_event
from chalice import Chalice
from tqdm import tqdm

GOAL_RATIO = 1.5
QUERY = {"namespace": "alephbet", "experiment": "my a/b test", "variant": "red",
         "event": "participate", "uuid": "6f1c9b1e-8a53-4bb0-9a35-0f2f0a4f8b11"}


class MemoryPublisher:
    """Keeps what it is given; stands in for Kinesis so only the route is timed."""

    def __init__(self) -> None:
        self.published = 0

    def publish(self, events: Sequence[Any]) -> None:
        self.published += len(events)


def bare_app() -> Chalice:
    bare = Chalice(app_name="bare")

    @bare.route("/bare", methods=["GET", "POST"])
    def answer() -> dict:
        return {}

    return bare


def dalet_app_with_memory_publisher() -> tuple[Chalice, MemoryPublisher]:
    clear_dalet_environment()
    import app as dalet
    from chalicelib import runtime

    publisher = MemoryPublisher()
    runtime._state["publisher"] = publisher   # the lazily built publisher, replaced before first use
    return dalet.app, publisher


def check_answers(app: Chalice, event: dict[str, Any], context: LambdaContext) -> None:
    response = app(event, context)
    if response["statusCode"] != 200:
        sys.exit(f"the benchmark's request failed: {response['statusCode']} {response.get('body')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="alternating rounds per comparison")
    parser.add_argument("--calls", type=int, default=300, help="calls per app per round")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (for bench/run.py)")
    arguments = parser.parse_args(argv)
    rounds = 12 if arguments.quick else arguments.rounds

    dalet, publisher = dalet_app_with_memory_publisher()
    bare = bare_app()
    context = LambdaContext()
    body = json.dumps(QUERY)
    cases = {
        "GET /track (1 event)": (proxy_event("GET", "/track", QUERY), proxy_event("GET", "/bare", QUERY)),
        "POST /track (1 event)": (proxy_event("POST", "/track", body=body, content_type="application/json"),
                                  proxy_event("POST", "/bare", body=body, content_type="application/json")),
    }
    print(f"/track via the Lambda entry vs a bare Chalice route, {rounds} rounds x {arguments.calls} calls each")
    print(f"query string: {urlencode(QUERY)}")
    results = []
    with tqdm(total=rounds * len(cases), desc="track.py", unit="round", file=sys.stderr) as progress:
        for name, (ours_event, bare_event) in cases.items():
            check_answers(dalet, ours_event, context)
            check_answers(bare, bare_event, context)
            ours, baseline, median_ratio = interleaved_medians(
                lambda: dalet(ours_event, context), lambda: bare(bare_event, context),
                rounds, arguments.calls, progress)
            results.append((name, ours, baseline, median_ratio))
    for name, ours, baseline, median_ratio in results:
        print(f"{name}: Dalet {ours * 1e6:.1f} us/call, bare route {baseline * 1e6:.1f} us/call, "
              f"ratio {median_ratio:.2f}x (goal <= {GOAL_RATIO}x)")
    print(f"events handed to the memory publisher: {publisher.published}")
    for name, ours, baseline, median_ratio in results:
        emit(f"track: {name} vs bare route", ours * 1e6, baseline * 1e6, GOAL_RATIO, "us/call", median_ratio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
