"""Kinesis API calls per N posted events, counted against moto (goal: exactly ceil(N/500) per batch).

DALET_BACKEND=aws with moto standing in for Kinesis: real boto3 calls, counted with
botocore's event hooks. The events go through POST /track via the Lambda entry; the
route takes at most 500 events (and 1 MiB) per POST, so N > 500 arrives as ceil(N/500)
POSTs, the way a client batches. The publisher is also given all N at once.

The "largest events" case sends events with every field at its length limit in 4-byte
UTF-8 characters: the biggest records Dalet can produce. It shows the 5 MiB PutRecords
bound is never the binding one for valid events (500 of them stay far below 5 MiB).

    .venv/bin/python bench/kinesis_calls.py
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import Counter
from typing import Any

from _common import LambdaContext, clear_dalet_environment, emit, proxy_event
from tqdm import tqdm

STREAM = "dalet-bench-events"
PER_CALL = 500
COUNTS = (1, 499, 500, 501, 1200)
WIDE = "\U0001F600"   # 4 bytes in UTF-8


class CallCounter:
    """Kinesis API calls (not HTTP retries) and the size of each PutRecords request."""

    def __init__(self, client: Any):
        self.calls: Counter[str] = Counter()
        self.request_bytes: list[int] = []
        client.meta.events.register("before-call.kinesis.PutRecord", self._count)
        client.meta.events.register("before-call.kinesis.PutRecords", self._count)
        client.meta.events.register("before-parameter-build.kinesis.PutRecords", self._measure)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def _measure(self, params: dict[str, Any], **_: Any) -> None:
        self.request_bytes.append(sum(len(r["Data"]) + len(r["PartitionKey"].encode()) for r in params["Records"]))

    def take(self) -> tuple[int, Counter[str], int]:
        """(calls, calls by operation, largest PutRecords bytes) since the last take."""
        calls, largest = self.calls.copy(), max(self.request_bytes, default=0)
        self.calls.clear()
        self.request_bytes.clear()
        return sum(calls.values()), calls, largest


def client_events(count: int, prefix: str, widest: bool = False) -> list[dict[str, str]]:
    if widest:
        return [{"namespace": WIDE * 256, "experiment": WIDE * 256, "variant": WIDE * 256,
                 "event": WIDE * 256, "uuid": f"{prefix}-{n}-".ljust(128, WIDE)} for n in range(count)]
    return [{"experiment": "my a/b test", "variant": "AB"[n % 2], "event": "participate",
             "uuid": f"{prefix}-{n}"} for n in range(count)]


def post_through_route(app: Any, events: list[dict[str, str]], context: LambdaContext) -> list[int]:
    """POST in batches the route accepts (<= 500 events, <= 1 MiB); the size of each POST."""
    posts = []
    for batch in _route_sized_batches(events):
        body = json.dumps(batch if len(batch) > 1 else batch[0], ensure_ascii=False)
        response = app(proxy_event("POST", "/track", body=body, content_type="application/json"), context)
        if response["statusCode"] != 200:
            sys.exit(f"POST /track answered {response['statusCode']}: {response['body'][:300]}")
        posts.append(len(batch))
    return posts


def fewest_calls(batch_sizes: list[int]) -> int:
    """The goal: ceil(n/500) calls for each batch handed over (= ceil(N/500) for full batches)."""
    return sum(math.ceil(size / PER_CALL) for size in batch_sizes)


def _route_sized_batches(events: list[dict[str, str]]) -> list[list[dict[str, str]]]:
    from chalicelib.ingest.track import MAX_BODY_BYTES, MAX_EVENTS_PER_POST

    batches: list[list[dict[str, str]]] = [[]]
    size = 2
    for event in events:
        event_bytes = len(json.dumps(event, ensure_ascii=False).encode()) + 2
        if len(batches[-1]) == MAX_EVENTS_PER_POST or size + event_bytes > MAX_BODY_BYTES:
            batches.append([])
            size = 2
        batches[-1].append(event)
        size += event_bytes
    return batches


def records_on_stream(kinesis: Any) -> int:
    total = 0
    for shard in kinesis.list_shards(StreamName=STREAM)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=STREAM, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            total += len(page["Records"])
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="accepted for bench/run.py; the run is short anyway")
    parser.parse_args(argv)

    clear_dalet_environment()
    os.environ.update({
        "DALET_BACKEND": "aws", "DALET_STREAM_NAME": STREAM, "DALET_BQ_DATASET": "bench", "DALET_BQ_TABLE": "events",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    })
    os.environ.pop("AWS_PROFILE", None)
    import boto3
    from moto import mock_aws

    with mock_aws():
        kinesis = boto3.client("kinesis")
        kinesis.create_stream(StreamName=STREAM, ShardCount=4)
        import app as dalet
        from chalicelib import runtime
        from chalicelib.ingest.events import now, parse_events, stamp

        counter = CallCounter(runtime.publisher().client)
        context = LambdaContext()
        cases = [(n, False) for n in COUNTS] + [(1200, True)]
        rows, sent = [], 0
        for count, widest in tqdm(cases, desc="kinesis_calls.py", unit="case", file=sys.stderr):
            noun = "event" if count == 1 else "events"
            label = f"{count} largest {noun}" if widest else f"{count} {noun}"
            events = client_events(count, prefix=f"{label}-route", widest=widest)
            posts = post_through_route(dalet.app, events, context)
            calls, by_operation, largest = counter.take()
            rows.append((f"POST {label} ({len(posts)} POST{'s' if len(posts) > 1 else ''})", count,
                         fewest_calls(posts), calls, by_operation, largest))
            direct = client_events(count, prefix=f"{label}-direct", widest=widest)
            received_at = now()
            runtime.publisher().publish([stamp(event, received_at) for event in parse_events(direct)])
            calls, by_operation, largest = counter.take()
            rows.append((f"publish {label} at once", count, fewest_calls([count]), calls, by_operation, largest))
            sent += 2 * count
        landed = records_on_stream(kinesis)

    print(f"{'case':36} {'N':>5} {'calls':>5} {'goal':>5}  operations                  largest PutRecords")
    for name, count, goal, calls, by_operation, largest in rows:
        operations = ", ".join(f"{operation} x{n}" for operation, n in sorted(by_operation.items()))
        size = f"{largest / 2**20:.2f} MiB" if largest else "-"
        print(f"{name:36} {count:>5} {calls:>5} {goal:>5}  {operations:27} {size}")
    print("goal: ceil(n/500) calls per batch of n handed to the publisher; a POST carries at most 500 events"
          " and 1 MiB, so the largest events need more POSTs than ceil(N/500)")
    print(f"records on the stream: {landed} of {sent} events sent"
          f" ({'all landed' if landed == sent else 'MISSING RECORDS'})")
    largest_request = max(row[5] for row in rows)
    print(f"largest PutRecords request: {largest_request / 2**20:.2f} MiB (Kinesis limit: 5 MiB)")
    for name, _, goal, calls, _, _ in rows:
        emit(f"kinesis calls: {name}", calls, goal, "ours == baseline", "calls")
    return 0 if landed == sent else 1


if __name__ == "__main__":
    sys.exit(main())
