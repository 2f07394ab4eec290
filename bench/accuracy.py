"""Exactness: one event stream replayed into Gimel's HyperLogLog scheme and into Dalet,
both compared with the ground truth computed in Python.

The stream is AlephBet traffic from --users users (default 100k) over several
experiments, variants and goals, as the GimelAdapter sends it:
- a logged-in user's uuid is the same for the participate and every unique goal of an
  experiment (sha1 of namespace, experiment and user id), and some of them come back on
  a second device, sending the same uuid again;
- an anonymous user's events each carry a fresh random uuid, as does every completion of
  a non-unique goal (page views);
- the client re-sends its whole queue until it sees HTTP 200, so about a third of the
  events arrive two or more times, some of them much later in the stream.

(a) Gimel: a real redis-server on loopback, no persistence; `PFADD
    namespace:counters:experiment:event:variant uuid` per event (pipelined), then PFCOUNT.
(b) Dalet, embedded default: Kinesis-shaped batches of 500 records through the real
    writer handler (`app.write_events`) into DuckDB, then the report query behind
    GET /experiments (chalicelib.reports.experiments.all_experiments).
Truth: the number of distinct uuids per cell, which is what both claim to count.
Prints the per-cell table and a summary; exits non-zero unless Dalet is exact.

    .venv/bin/python bench/accuracy.py [--users 100000] [--seed 7]
"""
from __future__ import annotations

import argparse
import hashlib
import heapq
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from _common import clear_dalet_environment, emit, free_port
from tqdm import tqdm

NAMESPACE = "alephbet"
PARTICIPATE = "participate"
BATCH = 500
REDIS_PIPELINE = 5000


@dataclass(frozen=True)
class Goal:
    name: str
    unique: bool = True


@dataclass(frozen=True)
class Experiment:
    name: str
    variants: tuple[str, ...]
    goals: tuple[Goal, ...]
    reach: float                 # share of users who enter it


EXPERIMENTS = (
    Experiment("button color", ("red", "blue"), (Goal("clicked buy"), Goal("page view", unique=False)), 0.8),
    Experiment("my a/b test", ("A", "B", "C"), (Goal("signed up"),), 0.5),
    Experiment("pricing page", ("monthly", "yearly"), (Goal("started trial"), Goal("bought")), 0.3),
    Experiment("checkout flow", ("one page", "two pages"), (Goal("bought"),), 0.05),
)


@dataclass(frozen=True)
class Sent:
    experiment: str
    variant: str
    event: str
    uuid: str


class AlephBetTraffic:
    """The event stream, generated once from a seed, in arrival order (retries arrive later)."""

    def __init__(self, users: int, seed: int):
        self.users = users
        self.random = random.Random(seed)
        self.sent = 0
        self.retries = 0

    def __iter__(self) -> Iterator[Sent]:
        delayed: list[tuple[int, int, Sent]] = []   # (send at position, tie-break, event)
        for user in range(self.users):
            for event in self._user_events(user):
                for copy in range(self._times_sent()):
                    if copy == 0:
                        yield from self._emit(event)
                    else:
                        self.retries += 1
                        later = self.sent + self.random.randint(1, 20_000)
                        heapq.heappush(delayed, (later, self.retries, event))
                while delayed and delayed[0][0] <= self.sent:
                    yield from self._emit(heapq.heappop(delayed)[2])
        while delayed:
            yield from self._emit(heapq.heappop(delayed)[2])

    def _emit(self, event: Sent) -> Iterator[Sent]:
        self.sent += 1
        yield event

    def _times_sent(self) -> int:
        draw = self.random.random()
        return 1 if draw < 0.68 else 2 if draw < 0.90 else 3 if draw < 0.97 else 5

    def _user_events(self, user: int) -> list[Sent]:
        logged_in = self.random.random() < 0.5
        devices = 2 if logged_in and self.random.random() < 0.1 else 1
        events: list[Sent] = []
        for experiment in EXPERIMENTS:
            if self.random.random() >= experiment.reach:
                continue
            variant = experiment.variants[self.random.randrange(len(experiment.variants))]
            lift = 1 + experiment.variants.index(variant) * 0.15
            shared = _gimel_uuid(experiment.name, user) if logged_in else None
            for _ in range(devices):   # a second device: same user id, same variant, same uuid
                events.append(Sent(experiment.name, variant, PARTICIPATE, shared or self._random_uuid()))
                for goal in experiment.goals:
                    if goal.unique:
                        if self.random.random() < 0.12 * lift:
                            events.append(Sent(experiment.name, variant, goal.name, shared or self._random_uuid()))
                    else:
                        for _ in range(self.random.choice((0, 1, 1, 2, 3, 5))):
                            events.append(Sent(experiment.name, variant, goal.name, self._random_uuid()))
        return events

    def _random_uuid(self) -> str:
        return str(uuidlib.UUID(int=self.random.getrandbits(128), version=4))


def _gimel_uuid(experiment: str, user: int) -> str:
    """GimelAdapter._user_uuid for a user with an id: the same for participate and unique goals."""
    return hashlib.sha1(f"{NAMESPACE}.{experiment}.user-{user}".encode()).hexdigest()


Cell = tuple[str, str, str]   # experiment, event, variant


class GroundTruth:
    def __init__(self) -> None:
        self.uuids: dict[Cell, set[str]] = defaultdict(set)

    def add(self, event: Sent) -> None:
        self.uuids[(event.experiment, event.event, event.variant)].add(event.uuid)

    def counts(self) -> dict[Cell, int]:
        return {cell: len(uuids) for cell, uuids in self.uuids.items()}


class RedisServer:
    """A throwaway redis-server on a loopback port, with no persistence."""

    def __init__(self, folder: Path):
        executable = shutil.which("redis-server")
        if executable is None:
            sys.exit("redis-server is not installed (Debian package redis-server; .ci/run installs it)")
        import redis

        self.port = free_port()
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(folder), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    sys.exit("redis-server did not start")
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class GimelCounters:
    """Gimel's track and report, reduced to the counting: PFADD per event, PFCOUNT per key."""

    def __init__(self, client: Any):
        self.client = client
        self.pipeline = client.pipeline(transaction=False)
        self.pending = 0
        self.keys: dict[str, Cell] = {}

    @staticmethod
    def key(event: Sent) -> str:
        return f"{NAMESPACE}:counters:{event.experiment}:{event.event}:{event.variant}"

    def track(self, event: Sent) -> None:
        key = self.key(event)
        self.keys.setdefault(key, (event.experiment, event.event, event.variant))
        self.pipeline.pfadd(key, event.uuid)
        self.pending += 1
        if self.pending >= REDIS_PIPELINE:
            self.flush()

    def flush(self) -> None:
        self.pipeline.execute()
        self.pending = 0

    def counts(self) -> dict[Cell, int]:
        self.flush()
        keys = sorted(self.keys)
        reading = self.client.pipeline(transaction=False)
        for key in keys:
            reading.pfcount(key)
        return {self.keys[key]: count for key, count in zip(keys, reading.execute())}


class DaletPipeline:
    """Kinesis-shaped batches through the real writer handler into the embedded DuckDB."""

    def __init__(self, data_dir: Path):
        clear_dalet_environment()
        os.environ.update(DALET_BACKEND="local", DALET_DATA_DIR=str(data_dir))
        import app as dalet
        from chalicelib import runtime

        self.handler = dalet.write_events
        self.warehouse = runtime.warehouse()
        self.batch: list[Sent] = []
        self.sequence = 0

    def track(self, event: Sent) -> None:
        self.batch.append(event)
        if len(self.batch) == BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        from chalicelib.ingest.events import now, parse_event, stamp
        from chalicelib.ingest.local_stream import LocalContext, StoredRecord, kinesis_event
        from chalicelib.ingest.records import encode_record

        received_at = now()
        records = []
        for sent in self.batch:
            stored = stamp(parse_event({"namespace": NAMESPACE, "experiment": sent.experiment,
                                        "variant": sent.variant, "event": sent.event, "uuid": sent.uuid}),
                           received_at)
            self.sequence += 1
            records.append(StoredRecord(self.sequence, stored.event_id, encode_record(stored), time.time()))
        response = self.handler(kinesis_event(records, "dalet-events"), LocalContext())
        if response and response.get("batchItemFailures"):
            sys.exit(f"the writer asked for a retry: {response}")
        self.batch = []

    def counts(self) -> dict[Cell, int]:
        """Cells as GET /experiments reports them: trials per variant, successes per goal and variant."""
        self.flush()
        from chalicelib.reports import experiments

        counts: dict[Cell, int] = {}
        for entry in experiments.all_experiments(self.warehouse, NAMESPACE)[1:]:
            for goal in entry["goals"]:
                for result in goal["results"]:
                    counts[(entry["experiment"], PARTICIPATE, result["label"])] = result["trials"]
                    counts[(entry["experiment"], goal["goal"], result["label"])] = result["successes"]
        return counts

    def dead_letters(self) -> int:
        return self.warehouse.fetch("SELECT COUNT(*) AS n FROM dead_letters")[0]["n"]


def error_percent(estimate: int, truth: int) -> float:
    return (estimate - truth) / truth * 100 if truth else (0.0 if estimate == 0 else float("inf"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000, help="simulated users (10k-1M)")
    parser.add_argument("--seed", type=int, default=7, help="the stream's random seed")
    parser.add_argument("--quick", action="store_true", help="accepted for bench/run.py (same as the defaults)")
    arguments = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="dalet-bench-accuracy-") as folder:
        redis_server = RedisServer(Path(folder))
        try:
            gimel = GimelCounters(redis_server.client)
            dalet = DaletPipeline(Path(folder) / "data")
            truth = GroundTruth()
            traffic = AlephBetTraffic(arguments.users, arguments.seed)
            with tqdm(desc="accuracy.py replay", unit="event", unit_scale=True, file=sys.stderr) as progress:
                for event in traffic:
                    truth.add(event)
                    gimel.track(event)
                    dalet.track(event)
                    progress.update(1)
            true_counts, hll_counts, dalet_counts = truth.counts(), gimel.counts(), dalet.counts()
            dead = dalet.dead_letters()
        finally:
            redis_server.stop()
            from chalicelib import runtime

            runtime.shutdown()

    cells = sorted(set(true_counts) | set(hll_counts) | set(dalet_counts))
    print(f"{arguments.users:,} users, {traffic.sent:,} events sent ({traffic.retries:,} of them re-sent copies), "
          f"{sum(true_counts.values()):,} distinct (cell, uuid) pairs; dead letters in Dalet: {dead}")
    header = f"{'experiment':14} {'event':14} {'variant':10} {'truth':>8} {'Gimel HLL':>10} {'error %':>8} " \
             f"{'Dalet':>8} {'error':>6}"
    print(header)
    print("-" * len(header))
    hll_errors, dalet_misses = [], 0
    for cell in cells:
        true_count = true_counts.get(cell, 0)
        hll, ours = hll_counts.get(cell, 0), dalet_counts.get(cell, 0)
        hll_error = error_percent(hll, true_count)
        hll_errors.append(abs(hll_error))
        dalet_misses += abs(ours - true_count)
        experiment, event, variant = cell
        print(f"{experiment:14} {event:14} {variant:10} {true_count:>8,} {hll:>10,} {hll_error:>+8.2f} "
              f"{ours:>8,} {ours - true_count:>+6}")
    max_hll, mean_hll = max(hll_errors), sum(hll_errors) / len(hll_errors)
    dalet_exact = dalet_misses == 0 and dead == 0
    print(f"Gimel HLL: max abs error {max_hll:.2f} %, mean abs error {mean_hll:.2f} % over {len(cells)} cells")
    print(f"Dalet: {'exact in every cell' if dalet_exact else f'WRONG by {dalet_misses} in total'}")
    dalet_max = max(abs(error_percent(dalet_counts.get(c, 0), true_counts.get(c, 0))) for c in cells)
    emit(f"accuracy: max abs count error ({arguments.users:,} users), Dalet vs Gimel HLL", dalet_max, max_hll,
         "ours == 0", "%")
    emit(f"accuracy: mean abs count error ({arguments.users:,} users), Dalet vs Gimel HLL",
         sum(abs(error_percent(dalet_counts.get(c, 0), true_counts.get(c, 0))) for c in cells) / len(cells),
         mean_hll, "ours == 0", "%")
    return 0 if dalet_exact else 1


if __name__ == "__main__":
    sys.exit(main())
