"""/track through the front door (function URL, payload 2.0) vs the REST API entry (payload 1.0).

The front door turns the function URL's event into the REST shape Chalice routes and the
answer back; this measures what that costs per call, side by side with the same request
through `app.app` as API Gateway's REST API invokes it. Part of the work is inherent: on
the REST path API Gateway parses the query string before the function runs; here the
function does. Goal <= 1.5x: the adapter costs less than half of the route's own work
(tens of microseconds, against Lambda's 1 ms billing unit). Dalet's publisher writes to
memory, so only the entry, the route and the adapter are timed.

    .venv/bin/python bench/front_door.py [--rounds 30] [--calls 300]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import urlencode

from _common import LambdaContext, emit, interleaved_medians, proxy_event
from tqdm import tqdm
from track import QUERY, dalet_app_with_memory_publisher

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.lambda_events import function_url_event  # noqa: E402

GOAL_RATIO = 1.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="alternating rounds per comparison")
    parser.add_argument("--calls", type=int, default=300, help="calls per entry per round")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (for bench/run.py)")
    arguments = parser.parse_args(argv)
    rounds = 12 if arguments.quick else arguments.rounds

    rest_app, publisher = dalet_app_with_memory_publisher()
    import app as dalet

    context = LambdaContext()
    body = json.dumps(QUERY)
    cases = {
        "GET /track": (function_url_event("GET", "/track", {"accept": "*/*"}, urlencode(QUERY)),
                       proxy_event("GET", "/track", QUERY)),
        "POST /track": (function_url_event("POST", "/track", {"content-type": "application/json"}, body=body),
                        proxy_event("POST", "/track", body=body, content_type="application/json")),
    }
    print(f"/track via the function URL entry vs the REST API entry, {rounds} rounds x {arguments.calls} calls each")
    results = []
    with tqdm(total=rounds * len(cases), desc="front_door.py", unit="round", file=sys.stderr) as progress:
        for name, (url_event, rest_event) in cases.items():
            for answer in (dalet.track_front_door(url_event, context), rest_app(rest_event, context)):
                if answer["statusCode"] != 200:
                    sys.exit(f"the benchmark's request failed: {answer['statusCode']} {answer.get('body')}")
            ours, baseline, median_ratio = interleaved_medians(
                lambda: dalet.track_front_door(url_event, context), lambda: rest_app(rest_event, context),
                rounds, arguments.calls, progress)
            results.append((name, ours, baseline, median_ratio))
    for name, ours, baseline, median_ratio in results:
        print(f"{name}: function URL entry {ours * 1e6:.1f} us/call, REST API entry {baseline * 1e6:.1f} us/call, "
              f"ratio {median_ratio:.2f}x (goal <= {GOAL_RATIO}x)")
    print(f"events handed to the memory publisher: {publisher.published}")
    for name, ours, baseline, median_ratio in results:
        emit(f"front door: {name} vs REST API entry", ours * 1e6, baseline * 1e6, GOAL_RATIO, "us/call", median_ratio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
