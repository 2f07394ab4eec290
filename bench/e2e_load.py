"""End to end on the embedded default, over HTTP on loopback, in two phases.

1. Fixed rate: starts `make run`'s server (`python -m dalet_ops.cli serve`, a subprocess,
   temporary data folder, DALET_API_KEY set) and sends requests on a fixed schedule for
   --seconds: GET /track singles and POST /track batches, each event with a fresh uuid.
   Latency is measured from each request's scheduled time (so a slow server cannot hide
   its queueing). After the load, it polls GET /experiments?namespace=... (x-api-key)
   until the report counts every accepted event.
2. Concurrency, before/after side by side: 64 keep-alive clients connect at the same
   instant and send as fast as they are answered, against plain `chalice local
   --no-autoreload` (the "before": listen backlog 5, headers and body in two writes with
   Nagle's algorithm on) and `make run`'s hardened server (dalet_ops.local_http, the
   "after"). Both run throughout and take turns, --rounds of them, splitting
   --concurrent-seconds; each turn starts with one keep-alive client alone (the cost per
   request). Per server: every connect time (goal: none over 1 s), p50/p99 latency, and
   accepted events/s.

    .venv/bin/python bench/e2e_load.py [--seconds 30] [--rate 100] [--batch 50] [--post-share 0.2]
                                       [--concurrent-seconds 15] [--rounds 4] [--clients 64]
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import queue
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from _common import clear_dalet_environment, emit, percentile
from tqdm import tqdm

NAMESPACE = "bench-load"
API_KEY = "bench-load-key"
EXPERIMENTS = {"hero image": ("cat", "dog"), "my a/b test": ("A", "B", "C"), "pricing": ("monthly", "yearly")}
GOALS = ("signed up", "bought")
WORKERS = 16
REQUEST_TIMEOUT = 10.0
VISIBILITY_TIMEOUT = 120.0
QUICK_SECONDS = 10
CLIENTS = 64
CONCURRENT_SECONDS = 15
QUICK_CONCURRENT_SECONDS = 8
CONNECT_BUDGET = 1.0     # seconds a connect may take: beyond it, a browser's user waits on a SYN retransmit


@dataclass
class Outcome:
    kind: str            # "GET" or "POST"
    events: int
    status: int          # 0: no answer (connection error or timeout)
    latency: float       # seconds from the scheduled send time to the answer


@dataclass
class LoadResult:
    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)


def random_event(rng: random.Random) -> dict[str, str]:
    experiment = rng.choice(sorted(EXPERIMENTS))
    event = "participate" if rng.random() < 0.7 else rng.choice(GOALS)
    return {"namespace": NAMESPACE, "experiment": experiment, "variant": rng.choice(EXPERIMENTS[experiment]),
            "event": event, "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4))}


def plan_request(rng: random.Random, batch: int, post_share: float) -> tuple[str, str, bytes | None, int]:
    """(method, path, body, events) for one request."""
    if rng.random() < post_share:
        events = [random_event(rng) for _ in range(batch)]
        return "POST", "/track", json.dumps(events).encode(), batch
    return "GET", "/track?" + urlencode(random_event(rng)), None, 1


def worker(port: int, work: queue.Queue, result: LoadResult) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    while True:
        item = work.get()
        if item is None:
            connection.close()
            return
        scheduled, (method, path, body, events) = item
        status = 0
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
        result.add(Outcome(method, events, status, time.perf_counter() - scheduled))


def run_load(port: int, seconds: float, rate: float, batch: int, post_share: float, seed: int) -> tuple[LoadResult, float]:
    """Send on a fixed schedule for `seconds`; returns the outcomes and when the last answer came."""
    rng = random.Random(seed)
    work: queue.Queue = queue.Queue()
    result = LoadResult()
    threads = [threading.Thread(target=worker, args=(port, work, result), daemon=True) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    total = int(seconds * rate)
    started = time.perf_counter()
    with tqdm(total=total, desc="e2e_load.py load", unit="req", file=sys.stderr) as progress:
        for number in range(total):
            scheduled = started + number / rate
            request = plan_request(rng, batch, post_share)   # prepared before its slot
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            work.put((scheduled, request))
            progress.update(1)
    for _ in threads:
        work.put(None)
    for thread in threads:
        thread.join(REQUEST_TIMEOUT + 5)
    return result, time.perf_counter()


@dataclass
class ClientRun:
    connect_seconds: float | None          # None: the connect failed
    outcomes: list[Outcome] = field(default_factory=list)


def keep_alive_client(port: int, start: threading.Barrier, seconds: float, seed: int, batch: int,
                      post_share: float, run: ClientRun) -> None:
    """Connect when every client does, then send on one connection as fast as answers come, for `seconds`."""
    rng = random.Random(seed)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    start.wait()
    began = time.perf_counter()
    try:
        connection.connect()
    except OSError:
        return
    run.connect_seconds = time.perf_counter() - began
    deadline = began + seconds
    wanted_at: float | None = began          # the first request waited for the connect, as a browser's does
    while time.perf_counter() < deadline:
        method, path, body, events = plan_request(rng, batch, post_share)
        sent, wanted_at = wanted_at or time.perf_counter(), None
        status = 0
        try:
            connection.request(method, path, body=body,
                               headers={"Content-Type": "application/json"} if body is not None else {})
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
        run.outcomes.append(Outcome(method, events, status, time.perf_counter() - sent))
    connection.close()


@dataclass
class ConcurrencyResult:
    server: str
    runs: list[ClientRun]
    seconds: float

    @property
    def connects(self) -> list[float]:
        return [run.connect_seconds for run in self.runs if run.connect_seconds is not None]

    @property
    def answered(self) -> list[Outcome]:
        return [outcome for run in self.runs for outcome in run.outcomes if outcome.status == 200]

    @property
    def accepted_per_second(self) -> float:
        return sum(outcome.events for outcome in self.answered) / self.seconds

    def latency_ms(self, fraction: float) -> float:
        return percentile([outcome.latency * 1e3 for outcome in self.answered] or [float("nan")], fraction)

    def describe(self) -> str:
        statuses = Counter(outcome.status for run in self.runs for outcome in run.outcomes)
        connects = self.connects
        slow = sum(1 for seconds in connects if seconds > CONNECT_BUDGET)
        return (f"{self.server}: {len(self.runs)} keep-alive client connections over {self.seconds:g} s: "
                f"connect max {max(connects, default=float('nan')) * 1e3:,.0f} ms, "
                f"median {percentile(connects or [float('nan')], 0.5) * 1e3:,.1f} ms, {slow} over {CONNECT_BUDGET:g} s, "
                f"{len(self.runs) - len(connects)} failed; latency p50 {self.latency_ms(0.5):.1f} ms, "
                f"p99 {self.latency_ms(0.99):.1f} ms; {self.accepted_per_second:,.0f} events/s accepted; "
                f"statuses {dict(sorted(statuses.items()))}")


SINGLE_CLIENT_SECONDS = 3.0


def clients_at_once(port: int, clients: int, seconds: float, batch: int, post_share: float, seed: int,
                    server_name: str) -> ConcurrencyResult:
    start = threading.Barrier(clients)
    runs = [ClientRun(None) for _ in range(clients)]
    threads = [threading.Thread(target=keep_alive_client, daemon=True,
                                args=(port, start, seconds, seed + number, batch, post_share, run))
               for number, run in enumerate(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + REQUEST_TIMEOUT + 30)
    return ConcurrencyResult(server_name, runs, seconds)


def concurrency_phase(clients: int, seconds: float, rounds: int, batch: int, post_share: float, seed: int) -> bool:
    """Before and after side by side: both servers run throughout and take turns (ABBA...), so a
    machine shared with other work slows both alike. Returns whether make run met the connect budget."""
    from tests.local_server import LocalServer

    names = {False: "before: chalice local", True: "after: make run"}
    alone: dict[bool, list[ConcurrencyResult]] = {False: [], True: []}
    crowd: dict[bool, list[ConcurrencyResult]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="dalet-bench-e2e-concurrent-") as folder:
        servers = {hardened: LocalServer.start(Path(folder) / f"data-{hardened}", env={"DALET_API_KEY": API_KEY},
                                               via_make_run=hardened) for hardened in (False, True)}
        try:
            for server in servers.values():
                report_totals(server)   # the embedded pipeline is open before the clients arrive
            for round_number in tqdm(range(rounds), desc="e2e_load.py concurrency", unit="round", file=sys.stderr):
                for hardened in ((False, True) if round_number % 2 == 0 else (True, False)):
                    port, name = servers[hardened].port, names[hardened]
                    alone[hardened].append(clients_at_once(port, 1, SINGLE_CLIENT_SECONDS / rounds, batch,
                                                           post_share, seed, name))
                    crowd[hardened].append(clients_at_once(port, clients, seconds / rounds, batch, post_share,
                                                           seed + 1000 * round_number, name))
        finally:
            for server in servers.values():
                server.terminate()
    before_alone, after_alone = merged(alone[False]), merged(alone[True])
    before, after = merged(crowd[False]), merged(crowd[True])
    for result in (before_alone, after_alone, before, after):
        print(result.describe())
    emit("e2e: one keep-alive client, p50 latency (make run vs plain chalice local)",
         after_alone.latency_ms(0.5), before_alone.latency_ms(0.5), None, "ms")
    emit(f"e2e: {clients} keep-alive clients, accepted events/s (make run vs plain chalice local)",
         after.accepted_per_second, before.accepted_per_second, None, "events/s")
    emit(f"e2e: {clients} keep-alive clients, p50 latency (make run vs plain chalice local)",
         after.latency_ms(0.5), before.latency_ms(0.5), None, "ms")
    emit(f"e2e: {clients} keep-alive clients, p99 latency (make run vs plain chalice local)",
         after.latency_ms(0.99), before.latency_ms(0.99), None, "ms")
    slowest_after, slowest_before = max(after.connects, default=math.inf), max(before.connects, default=math.inf)
    emit(f"e2e: slowest of {clients} simultaneous connects, make run (chalice local: {slowest_before:.2f} s) "
         f"vs the {CONNECT_BUDGET:g} s budget", slowest_after, CONNECT_BUDGET, 1, "s")
    return len(after.connects) == clients * rounds and slowest_after <= CONNECT_BUDGET


def merged(results: list[ConcurrencyResult]) -> ConcurrencyResult:
    return ConcurrencyResult(results[0].server, [run for result in results for run in result.runs],
                             sum(result.seconds for result in results))


def report_totals(server: Any) -> int:
    """Events counted by GET /experiments: participants per variant plus successes per goal and variant."""
    reply = server.request("GET", "/experiments", query={"namespace": NAMESPACE}, headers={"x-api-key": API_KEY})
    if reply.status != 200:
        raise RuntimeError(f"GET /experiments answered {reply.status}: {reply.text[:300]}")
    total = 0
    for entry in reply.json()[1:]:
        goals = entry["goals"]
        if goals:
            total += sum(result["trials"] for result in goals[0]["results"])
        total += sum(result["successes"] for goal in goals for result in goal["results"])
    return total


def wait_until_visible(server: Any, accepted: int, since: float) -> tuple[float | None, int]:
    """Seconds from `since` until the report counts `accepted` events (None on timeout)."""
    counted = 0
    while time.perf_counter() - since < VISIBILITY_TIMEOUT:
        counted = report_totals(server)
        if counted >= accepted:
            return time.perf_counter() - since, counted
        time.sleep(0.05)
    return None, counted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30, help="how long the load runs (bounded)")
    parser.add_argument("--rate", type=float, default=100, help="requests per second")
    parser.add_argument("--batch", type=int, default=50, help="events per POST")
    parser.add_argument("--post-share", type=float, default=0.2, help="share of requests that are POST batches")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--clients", type=int, default=CLIENTS, help="keep-alive clients of the concurrency phase")
    parser.add_argument("--concurrent-seconds", type=float, default=CONCURRENT_SECONDS,
                        help="how long the concurrency phase runs against each server (0 skips it)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="turns each server takes in the concurrency phase (the seconds are split among them)")
    parser.add_argument("--quick", action="store_true",
                        help=f"--seconds {QUICK_SECONDS} --concurrent-seconds {QUICK_CONCURRENT_SECONDS} unless given")
    arguments = parser.parse_args(argv)
    given = argv if argv is not None else sys.argv[1:]
    seconds = QUICK_SECONDS if arguments.quick and "--seconds" not in given else arguments.seconds
    concurrent_seconds = (QUICK_CONCURRENT_SECONDS if arguments.quick and "--concurrent-seconds" not in given
                          else arguments.concurrent_seconds)
    if not 0 < seconds <= 600:
        parser.error("--seconds must be in (0, 600]")
    if not 0 <= concurrent_seconds <= 600:
        parser.error("--concurrent-seconds must be in [0, 600]")

    clear_dalet_environment()
    from tests.local_server import LocalServer

    with tempfile.TemporaryDirectory(prefix="dalet-bench-e2e-") as folder:
        with LocalServer.start(Path(folder) / "data", env={"DALET_API_KEY": API_KEY}, via_make_run=True) as server:
            report_totals(server)   # opens the embedded pipeline, which starts lazily on first use
            load_started = time.perf_counter()
            result, load_ended = run_load(server.port, seconds, arguments.rate, arguments.batch,
                                          arguments.post_share, arguments.seed)
            accepted = sum(o.events for o in result.outcomes if o.status == 200)
            visible_after, counted = wait_until_visible(server, accepted, load_ended)

    duration = load_ended - load_started
    statuses = Counter(o.status for o in result.outcomes)
    offered = sum(o.events for o in result.outcomes)
    print(f"load: {seconds:g} s at {arguments.rate:g} requests/s ({1 - arguments.post_share:.0%} GET singles, "
          f"{arguments.post_share:.0%} POSTs of {arguments.batch}), {len(result.outcomes)} requests, "
          f"{offered} events offered; statuses: {dict(sorted(statuses.items()))}")
    print(f"accepted: {accepted} events, {accepted / duration:,.0f} events/s "
          f"({statuses[200] / duration:,.1f} requests/s answered 200)")
    latencies: dict[str, list[float]] = {}
    for outcome in result.outcomes:
        if outcome.status == 200:
            latencies.setdefault(outcome.kind, []).append(outcome.latency * 1e3)
            latencies.setdefault("all", []).append(outcome.latency * 1e3)
    for kind, values in sorted(latencies.items()):
        print(f"latency {kind:4}: p50 {percentile(values, 0.5):.1f} ms, p99 {percentile(values, 0.99):.1f} ms, "
              f"max {max(values):.1f} ms ({len(values)} requests)")
    if visible_after is None:
        print(f"NOT VISIBLE: the report counted {counted} of {accepted} accepted events after {VISIBILITY_TIMEOUT:g} s")
    else:
        print(f"every accepted event visible in GET /experiments {visible_after:.2f} s after the load ended "
              f"(report counted {counted})")
    every = latencies.get("all", [float("nan")])
    emit("e2e: accepted events/s on make run (vs offered)", accepted / duration, offered / duration, None,
         "events/s")
    emit("e2e: p50 latency (GET and POST)", percentile(every, 0.5), None, None, "ms")
    emit("e2e: p99 latency (GET and POST)", percentile(every, 0.99), None, None, "ms")
    emit("e2e: seconds until every accepted event is in a report", visible_after if visible_after is not None
         else float("nan"), None, None, "s")
    # Every event carries a fresh uuid: a report above what was accepted would be double counting
    # (unless a request's 200 was lost on the way back, which a non-200 status would show).
    all_answered = statuses[200] == len(result.outcomes)
    if all_answered and counted != accepted:
        print(f"WRONG COUNT: the report counted {counted} events, {accepted} were accepted")
    connects_in_budget = True
    if concurrent_seconds > 0:
        connects_in_budget = concurrency_phase(arguments.clients, concurrent_seconds, arguments.rounds,
                                               arguments.batch, arguments.post_share, arguments.seed)
    return 0 if visible_after is not None and all_answered and counted == accepted and connects_in_budget else 1


if __name__ == "__main__":
    sys.exit(main())
