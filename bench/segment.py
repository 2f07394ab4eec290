"""Segment's /v1/batch of 100 events vs /track POST of the same 100 events, through the Lambda entry (goal <= 1.5x).

Both requests go to Dalet's app in this process exactly as Lambda calls it, `app(event,
context)` with API Gateway proxy events. The same 100 purchases are sent both ways: as
AlephBet events (experiment, variant, event, uuid, value) and as Segment track calls
carrying the same facts in properties, with the messageId and timestamps Segment's
libraries always send. The publisher encodes each record, as the Kinesis publisher does,
and keeps it in memory, so what is measured is each route's own work. Runs alternate
between the two in rounds; the medians are compared.

    .venv/bin/python bench/segment.py [--rounds 30] [--calls 40] [--quick]
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
from typing import Any, Sequence

from _common import LambdaContext, clear_dalet_environment, emit, interleaved_medians, proxy_event
from tqdm import tqdm

GOAL_RATIO = 1.5
EVENTS = 100
WRITE_KEY = "bench-write-key"
USER_AGENT = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "Version/17.5 Safari/605.1.15")


class EncodingMemoryPublisher:
    """Encodes each record as a Kinesis publisher does, then keeps only the byte count."""

    def __init__(self) -> None:
        self.published = 0
        self.record_bytes = 0

    def publish(self, events: Sequence[Any]) -> None:
        from chalicelib.ingest.records import encode_record

        self.published += len(events)
        self.record_bytes += sum(len(encode_record(stored)) for stored in events)


def alephbet_events() -> list[dict[str, Any]]:
    return [{"experiment": "checkout", "variant": "red" if n % 2 else "control", "event": "purchase",
             "uuid": f"6f1c9b1e-8a53-4bb0-9a35-{n:012d}", "value": 19.99} for n in range(EVENTS)]


def segment_batch() -> dict[str, Any]:
    return {"batch": [{"type": "track", "userId": event["uuid"], "event": event["event"],
                       "messageId": f"c7a1e2b4-5d6f-4a8b-9c0d-{n:012d}", "timestamp": "2026-05-01T09:29:00.123Z",
                       "properties": {"experiment": event["experiment"], "variant": event["variant"],
                                      "value": event["value"]}}
                      for n, event in enumerate(alephbet_events())],
            "sentAt": "2026-05-01T09:29:01.456Z"}


def segment_proxy_event(body: str) -> dict[str, Any]:
    """POST /v1/batch as API Gateway hands it to Lambda (the route is /v1/{call})."""
    event = proxy_event("POST", "/v1/{call}", body=body, content_type="application/json")
    authorization = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    for name, value in (("Authorization", authorization), ("User-Agent", USER_AGENT)):
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    event["pathParameters"] = {"call": "batch"}
    event["requestContext"]["path"] = "/api/v1/batch"
    return event


def track_proxy_event(body: str) -> dict[str, Any]:
    event = proxy_event("POST", "/track", body=body, content_type="application/json")
    event["headers"]["User-Agent"] = event["multiValueHeaders"]["User-Agent"][0] = USER_AGENT
    event["multiValueHeaders"]["User-Agent"] = [USER_AGENT]
    return event


def dalet_app() -> tuple[Any, EncodingMemoryPublisher]:
    import os

    clear_dalet_environment()
    os.environ["DALET_WRITE_KEYS"] = f"{WRITE_KEY}=bench"
    import app as dalet
    from chalicelib import runtime

    publisher = EncodingMemoryPublisher()
    runtime._state["publisher"] = publisher   # the lazily built publisher, replaced before first use
    return dalet.app, publisher


def check_answer(app: Any, event: dict[str, Any], context: LambdaContext) -> None:
    response = app(event, context)
    if response["statusCode"] != 200:
        sys.exit(f"the benchmark's request failed: {response['statusCode']} {response.get('body')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="alternating rounds")
    parser.add_argument("--calls", type=int, default=40, help="requests per route per round")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (for bench/run.py)")
    arguments = parser.parse_args(argv)
    rounds = 10 if arguments.quick else arguments.rounds

    app, publisher = dalet_app()
    context = LambdaContext()
    segment_event = segment_proxy_event(json.dumps(segment_batch()))
    track_event = track_proxy_event(json.dumps(alephbet_events()))
    check_answer(app, segment_event, context)
    check_answer(app, track_event, context)
    segment_bytes, track_bytes = len(segment_event["body"]), len(track_event["body"])
    publisher.record_bytes = publisher.published = 0
    check_answer(app, segment_event, context)
    segment_record_bytes = publisher.record_bytes
    publisher.record_bytes = 0
    check_answer(app, track_event, context)
    track_record_bytes = publisher.record_bytes

    print(f"{EVENTS} events per request: /v1/batch body {segment_bytes} bytes, /track body {track_bytes} bytes; "
          f"{rounds} rounds x {arguments.calls} requests each")
    with tqdm(total=rounds, desc="segment.py", unit="round", file=sys.stderr) as progress:
        ours, baseline, median_ratio = interleaved_medians(
            lambda: app(segment_event, context), lambda: app(track_event, context), rounds, arguments.calls, progress)
    print(f"/v1/batch: {ours * 1e3:.2f} ms per request ({ours / EVENTS * 1e6:.1f} us/event); "
          f"/track: {baseline * 1e3:.2f} ms per request ({baseline / EVENTS * 1e6:.1f} us/event); "
          f"ratio {median_ratio:.2f}x (goal <= {GOAL_RATIO}x)")
    print(f"stream record bytes for the {EVENTS} events: Segment {segment_record_bytes}, "
          f"AlephBet {track_record_bytes} ({segment_record_bytes / EVENTS:.0f} vs {track_record_bytes / EVENTS:.0f} "
          "per event)")
    emit(f"segment: POST /v1/batch vs /track, {EVENTS} events", ours * 1e3, baseline * 1e3, GOAL_RATIO,
         "ms/request", median_ratio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
