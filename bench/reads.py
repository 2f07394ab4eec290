"""Reads that do not grow with history: the same dashboard cells with 1x and 10x history, catalog vs today's design.

History grows the way a year of use grows it: the 41 experiments of the namespace stay the same, 40 of
them run ten times as long (their older events pile up), and the experiment the dashboard opens is a
recent one, the same in both (its people do not change). "Today's design" is the same warehouse with its
catalog hidden (tests/catalog_warehouses.WithoutCatalog): the list and the one-experiment views read
every stored event, as before the catalog.

DuckDB: the median latency of the experiment list, one experiment's results and its daily series, at
1x and at 10x; the goal is 10x <= 1.2 x 1x for each.

BigQuery (priced, not run): what one dashboard page load bills, from the page's own requests
(bench/dashboard_load.py: the list, a verdict chip per other entry on screen, the opened experiment's
results and daily series), each query priced by the columns its text references and the partitions and
clustered blocks it reaches (10 MB minimum per table), at 100M events a month after a year, 100
experiments, the opened one holding 10% of the traffic and running 30 days. Goal: list + results <= 1 GB.
Beside it, the same page with the catalog hidden, and with CUPED on (the local default; off on AWS).
A month's reads then count stored answers (DALET_RESULTS_MAX_AGE_MINUTES of the prod stage): computed at
most once per max age while people look, read stored otherwise.

The maintenance the catalog adds (firsts rows streamed with every batch and stored, a daily compaction
recounting the experiments written to since the previous one) is priced by `maintenance_usd`; bench/cost.py
adds both to its all-in headline.

    .venv/bin/python bench/reads.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from _common import ROOT, emit  # noqa: F401 - ROOT puts the project on sys.path

import dashboard_load
from chalicelib.ingest.events import Event, stamp
from chalicelib.reports import daily, experiments, overview
from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse
from tests.catalog_warehouses import WithoutCatalog

NAMESPACE = "alephbet"
VIEWED = "checkout-041"
EXPERIMENTS = 41
GOAL_LATENCY_RATIO = 1.2
GOAL_LOAD_BYTES = 1e9
TIB = 2**40
QUERY_USD_PER_TIB = 6.25
STREAMING_USD_PER_200MB = 0.01  # BigQuery legacy streaming inserts, each row rounded up to 1 KB
STORAGE_USD_PER_GB_MONTH = 0.015  # a year's mix: 3 months active ($0.02), the rest long-term ($0.01)
MIN_BYTES_PER_TABLE = 10 * 1024 * 1024
STORED_MONTHS = 12
COMPACTIONS_PER_MONTH = 30  # DALET_CATALOG_COMPACTION_HOURS = 24

# Logical bytes per column of a realistic AlephBet row (BigQuery's sizes: STRING 2 + UTF-8 bytes, 8 for numbers
# and timestamps, 0 for NULL): 36-character uuids and event ids, short names, a value on one row in ten.
EVENT_COLUMN_BYTES = {
    "event_id": 2 + 32,
    "namespace": 2 + 9,
    "experiment": 2 + 14,
    "variant": 2 + 5,
    "event": 2 + 10,
    "uuid": 2 + 36,
    "value": 0.8,
    "received_at": 8,
    "message_id": 0.0,
}
FIRSTS_ROW_BYTES = sum(EVENT_COLUMN_BYTES[c] for c in ("namespace", "experiment", "variant", "event", "uuid")) + 16


# ---- DuckDB: latency at 1x and 10x history ------------------------------------------------------


def history(events: int, scale: int) -> list[list[Any]]:
    """Batches of stored events in receipt order: the viewed experiment's `events / 10` over its last 30 days,
    the other 40 experiments' rest spread over `30 x scale` days before and during them."""
    end = datetime(2026, 11, 30, tzinfo=timezone.utc)
    viewed = events // 10
    others = (events - viewed) * scale
    span = timedelta(days=30 * scale)
    rows = []
    for n in range(others):
        at = end - span + span * n / others
        experiment = f"checkout-{n % (EXPERIMENTS - 1):03d}"
        rows.append(
            stamp(
                Event(
                    NAMESPACE,
                    experiment,
                    ("red", "blue")[n % 2],
                    ("participate", "purchase", "click")[n % 3],
                    f"{n // 3:036d}",
                ),
                at,
            )
        )
    for n in range(viewed):
        at = end - timedelta(days=30) + timedelta(days=30) * n / viewed
        rows.append(
            stamp(
                Event(
                    NAMESPACE,
                    VIEWED,
                    ("red", "blue")[n % 2],
                    ("participate", "purchase")[n % 2 if n % 5 else 0],
                    f"v{n // 2:035d}",
                    float(n % 7) if n % 10 == 0 else None,
                ),
                at,
            )
        )
    rows.sort(key=lambda stored: stored.received_at)
    return [rows[i : i + 5000] for i in range(0, len(rows), 5000)]


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


CELLS: dict[str, Callable[[Any], Any]] = {
    "list": lambda w: experiments.all_experiments(w, NAMESPACE),
    "overview": lambda w: overview.overview(w, NAMESPACE),
    "results": lambda w: experiments.experiment_results(w, NAMESPACE, VIEWED),
    "daily": lambda w: daily.experiment_daily(w, NAMESPACE, VIEWED),
}


def measure_duckdb(events: int, rounds: int, folder: Path) -> dict[tuple[str, str, int], float]:
    """Median latency per (design, cell, scale); every round times each combination once, interleaved, so the
    machine's load falls on all alike."""
    warehouses = {}
    for scale in (1, 10):
        warehouse = DuckDBWarehouse(folder / f"history-{scale}x.duckdb")
        started = time.perf_counter()
        for batch in history(events, scale):
            warehouse.insert_events(batch)
        stored = warehouse.fetch("SELECT COUNT(*) AS n FROM events")[0]["n"]
        print(
            f"  {scale:>2}x history: {stored:,} events written in {time.perf_counter() - started:.1f} s "
            f"(with the catalog kept)",
            flush=True,
        )
        warehouse.close()  # measured as a server finds its folder: checkpointed, reopened
        warehouses[scale] = DuckDBWarehouse(folder / f"history-{scale}x.duckdb")
    readers = {
        (design, scale): reader
        for scale, warehouse in warehouses.items()
        for design, reader in (("catalog", warehouse), ("today", WithoutCatalog(warehouse)))
    }
    timings: dict[tuple[str, str, int], list[float]] = {}
    for round_ in range(rounds + 1):
        for cell, call in CELLS.items():
            for (design, scale), reader in readers.items():
                seconds = timed(lambda: call(reader))
                if round_:  # the first round warms the caches (and the SQL transpilation)
                    timings.setdefault((design, cell, scale), []).append(seconds)
    for warehouse in warehouses.values():
        warehouse.close()
    return {key: statistics.median(values) for key, values in timings.items()}


# ---- BigQuery: bytes billed per load -------------------------------------------------------------

# What a load reads comes from the page's own requests (bench/dashboard_load.py); here they are priced.
LOAD_EVENTS_PER_MONTH = 100_000_000
WORKING_HOURS_PER_MONTH = 160           # 2,000 loads = 10 people x 10 a working day, over 8-hour days
STORED_ANSWER_BYTES = 2 * MIN_BYTES_PER_TABLE   # a stored answer's read: report_answers + deletions, 10 MB each


@lru_cache(maxsize=None)
def recorded(cuped: bool, catalog: bool) -> tuple[dashboard_load.Recorded, ...]:
    return tuple(dashboard_load.record_load(cuped=cuped, catalog=catalog))


def load_bytes(events_per_month: float, cuped: bool = False, catalog: bool = True) -> dict[str, float]:
    """Bytes one dashboard load bills, by part (list, results, daily, chips), computed (no stored answer)."""
    return dashboard_load.priced(recorded(cuped, catalog), dashboard_load.Scale(events_per_month),
                                 EVENT_COLUMN_BYTES)


def stored_parts_bytes() -> float:
    """A load's requests that stored answers serve (results, daily, a chip per other entry on screen), each
    read stored."""
    return dashboard_load.STORED_REQUESTS * STORED_ANSWER_BYTES


def monthly_read_bytes(events_per_month: float, loads: int, max_age_minutes: int, cuped: bool = False) -> float:
    """A month of loads after a year. With stored answers (`max_age_minutes` > 0) a load's results, daily and
    chips are computed once per max age while people look (the working hours), and read stored otherwise."""
    parts = load_bytes(events_per_month, cuped)
    computed = sum(parts.values())
    if max_age_minutes <= 0:
        return loads * computed
    misses = min(loads, WORKING_HOURS_PER_MONTH * 60 / max_age_minutes)
    stored = parts["list"] + stored_parts_bytes()
    return misses * (computed + stored_parts_bytes()) + (loads - misses) * stored   # a miss looks first


def prod_results_max_age_minutes() -> int:
    """What the deployed stage answers with: DALET_RESULTS_MAX_AGE_MINUTES as .chalice/config.json's prod
    stage sets it, else the AWS default (chalicelib/config.py)."""
    from chalicelib import config

    stage = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["prod"]
    environ = {"DALET_BACKEND": "aws", **stage.get("environment_variables", {})}
    return config._results_max_age_minutes(environ, config.BACKEND_AWS)


FIRSTS_ROW_BYTES = sum(EVENT_COLUMN_BYTES[c] for c in ("namespace", "experiment", "variant", "event", "uuid")) + 16
ACTIVE_MONTHS = 1.0    # the experiments a compaction recounts hold at most a month of traffic, their history included


def compaction_bytes(events_per_month: float) -> float:
    """One daily compaction: the touched experiments (namespace and experiment of the rows written since the
    previous day: two days of partitions), their firsts rows recounted (clustering skips the others'), the
    previous snapshot and the deletions (10 MB minimums)."""
    touched = max(2 / 30 * events_per_month * (2 + 9 + 2 + 14), MIN_BYTES_PER_TABLE) + MIN_BYTES_PER_TABLE
    recount = max(ACTIVE_MONTHS * events_per_month * FIRSTS_ROW_BYTES, MIN_BYTES_PER_TABLE)
    return touched + recount + 2 * MIN_BYTES_PER_TABLE


def maintenance_usd(events_per_month: float) -> dict[str, float]:
    """What the catalog adds to the BigQuery bill a month after a year: firsts rows streamed (about one per
    AlephBet event, rounded up to 1 KB each) and stored, and the daily compactions."""
    stored_gb = events_per_month * STORED_MONTHS * FIRSTS_ROW_BYTES / 1e9
    return {
        "catalog rows streamed": events_per_month * 1024 / 200e6 * STREAMING_USD_PER_200MB,
        "catalog storage": stored_gb * STORAGE_USD_PER_GB_MONTH,
        "compactions": COMPACTIONS_PER_MONTH * compaction_bytes(events_per_month) / TIB * QUERY_USD_PER_TIB,
    }


def reads_usd(events_per_month: float, loads: int, max_age_minutes: int | None = None) -> float:
    """A month of dashboard loads after a year, as deployed (CUPED off on AWS, the prod stage's max age)."""
    age = prod_results_max_age_minutes() if max_age_minutes is None else max_age_minutes
    return monthly_read_bytes(events_per_month, loads, age) / TIB * QUERY_USD_PER_TIB


def print_bigquery() -> None:
    events = LOAD_EVENTS_PER_MONTH
    ours, before = load_bytes(events), load_bytes(events, catalog=False)
    cuped, cuped_before = load_bytes(events, cuped=True), load_bytes(events, cuped=True, catalog=False)
    print(
        f"\nBigQuery, one dashboard load at {events / 1e6:g}M events/month after a year: {dashboard_load.EXPERIMENTS} "
        f"experiments, the opened one {dashboard_load.Scale(events).largest_share:.0%} of the traffic for 30 days, "
        f"{dashboard_load.LIST_VERDICTS - 1} other entries on screen (a verdict chip each). GB billed, computed:"
    )
    print(f"    {'part':32}{'catalog hidden':>16}{'now':>10}{'CUPED on: hidden':>19}{'now':>10}")
    for part in ("list", "results"):
        print(f"    {part:32}{before[part] / 1e9:16.2f}{ours[part] / 1e9:10.2f}"
              f"{cuped_before[part] / 1e9:19.2f}{cuped[part] / 1e9:10.2f}")
    goal_part = ours["list"] + ours["results"]
    print(f"    {'list + results (the goal)':32}{(before['list'] + before['results']) / 1e9:16.2f}"
          f"{goal_part / 1e9:10.2f}   goal <= {GOAL_LOAD_BYTES / 1e9:g} GB: "
          f"{'met' if goal_part <= GOAL_LOAD_BYTES else 'SHORTFALL'}")
    for part in ("chips", "daily"):
        print(f"    {part:32}{before[part] / 1e9:16.2f}{ours[part] / 1e9:10.2f}"
              f"{cuped_before[part] / 1e9:19.2f}{cuped[part] / 1e9:10.2f}")
    print(f"    {'the whole page':32}{sum(before.values()) / 1e9:16.2f}{sum(ours.values()) / 1e9:10.2f}"
          f"{sum(cuped_before.values()) / 1e9:19.2f}{sum(cuped.values()) / 1e9:10.2f}")
    if goal_part > GOAL_LOAD_BYTES:
        print(f"    cause: the results read each of the opened experiment's "
              f"{dashboard_load.Scale(events).largest_share * events / 1e6:.0f}M events once (variant, event, uuid, "
              "value, received_at, and the namespace and experiment they are filtered by: ~93 bytes a row; "
              "AlephBet's uuids are one per person, experiment and goal, so per-person rows would be as many), "
              "and the list's small reads are billed BigQuery's 10 MB minimum each")
    age = prod_results_max_age_minutes()
    if age:
        misses = min(2000, WORKING_HOURS_PER_MONTH * 60 / age)
        stored = ours["list"] + 2 * STORED_ANSWER_BYTES
        average = (misses * (goal_part + 2 * STORED_ANSWER_BYTES) + (2000 - misses) * stored) / 2000
        print(f"    with stored answers (as deployed), list + results bill {stored / 1e9:.2f} GB when the results are "
              f"stored and {average / 1e9:.2f} GB averaged over 2,000 loads a month: "
              f"{'met' if average <= GOAL_LOAD_BYTES else 'SHORTFALL'} on average")
    print("    CUPED (on locally, DALET_CUPED_DEFAULT=off on AWS) reads the namespace's every event in the "
          "experiment's span plus pre_days: the 'CUPED on' columns")
    emit("reads: BigQuery GB a load bills (list + results) at 100M/month after a year",
         goal_part / 1e9, (before["list"] + before["results"]) / 1e9, f"ours <= {GOAL_LOAD_BYTES / 1e9:g}", "GB")
    print(f"\n    stored answers on AWS (DALET_RESULTS_MAX_AGE_MINUTES={age}): results, daily and chips are computed "
          f"at most once per {age} min while people look ({WORKING_HOURS_PER_MONTH} working hours a month) and read "
          f"stored otherwise ({STORED_ANSWER_BYTES * dashboard_load.STORED_REQUESTS / 1e6:.0f} MB a load)"
          if age else "\n    no stored answers (DALET_RESULTS_MAX_AGE_MINUTES=0): every load computes its reads")
    for volume in (15_000_000, 100_000_000, 1_000_000_000):
        upkeep = maintenance_usd(volume)
        monthly = monthly_read_bytes(volume, 2000, age)
        print(
            f"    at {volume / 1e6:g}M/month: 2,000 loads bill {monthly / 1e12:,.2f} TB = "
            f"${monthly / TIB * QUERY_USD_PER_TIB:,.2f} (every load computed: "
            f"${monthly_read_bytes(volume, 2000, 0) / TIB * QUERY_USD_PER_TIB:,.2f}; catalog hidden: "
            f"${2000 * sum(load_bytes(volume, catalog=False).values()) / TIB * QUERY_USD_PER_TIB:,.2f}); "
            "catalog upkeep " + ", ".join(f"{k} ${v:,.2f}" for k, v in upkeep.items())
        )


# ---- the report ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="22k events at 1x instead of 220k, fewer rounds")
    arguments = parser.parse_args(argv)
    events, rounds = (22_000, 15) if arguments.quick else (220_000, 15)

    print(
        f"DuckDB: {EXPERIMENTS} experiments, {events:,} events at 1x; 10x: 40 of them run ten times as long; "
        f"the viewed experiment ({VIEWED}) is the same",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="dalet-reads-") as folder:
        latencies = measure_duckdb(events, rounds, Path(folder))
    print(
        f"\n{'median latency (ms)':22}{'catalog 1x':>12}{'10x':>10}{'ratio':>8}   "
        f"{'today 1x':>10}{'10x':>10}{'ratio':>8}"
    )
    shortfalls = []
    for cell in CELLS:
        ours = latencies["catalog", cell, 10] / latencies["catalog", cell, 1]
        today = latencies["today", cell, 10] / latencies["today", cell, 1]
        print(
            f"{cell:22}{latencies['catalog', cell, 1] * 1e3:>12.2f}{latencies['catalog', cell, 10] * 1e3:>10.2f}"
            f"{ours:>8.2f}   {latencies['today', cell, 1] * 1e3:>10.2f}{latencies['today', cell, 10] * 1e3:>10.2f}"
            f"{today:>8.2f}"
        )
        if ours > GOAL_LATENCY_RATIO:
            shortfalls.append((cell, ours))
        emit(f"reads: DuckDB {cell}, 10x / 1x history", ours, today, GOAL_LATENCY_RATIO, "x")
    for cell, ratio in shortfalls:
        if arguments.quick:
            cause = ("at 22k events each cell takes a few ms, where the shared machine's noise decides; "
                     "the full run (220k vs 2.2M) is the measurement")
        else:
            cause = ("DuckDB has no partitions: skipping the older row groups needs their min/max on received_at, "
                     "and the per-experiment filter still reads every row group since the experiment's first event")
        print(f"  shortfall: {cell} 10x costs {ratio:.2f}x > {GOAL_LATENCY_RATIO}x; cause: {cause}")

    print_bigquery()
    return 0


if __name__ == "__main__":
    sys.exit(main())
