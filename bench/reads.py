"""Reads that do not grow with history: the same dashboard cells with 1x and 10x history, catalog vs today's design.

History grows the way a year of use grows it: the 41 experiments of the namespace stay the same, 40 of
them run ten times as long (their older events pile up), and the experiment the dashboard opens is a
recent one, the same in both (its people do not change). "Today's design" is the same warehouse with its
catalog hidden (tests/catalog_warehouses.WithoutCatalog): the list and the one-experiment views read
every stored event, as before the catalog.

DuckDB: the median latency of the experiment list, one experiment's results and its daily series, at
1x and at 10x; the goal is 10x <= 1.2 x 1x for each.

BigQuery (priced, not run): the bytes one dashboard load (list + the viewed experiment's results)
bills, from the columns each query's BigQuery text references (sqlglot) and the partitions it reads
(`received_at` from the catalog's first event; 10 MB minimum per table referenced), at 100M events a
month after a year, 100 experiments, the largest holding 10% of the traffic, running 30 days when
viewed. Two bounds: without clustering (every row of the partitions read) and with the events table's
clustering (namespace, experiment, event: only the experiment's blocks). Goal: <= 1 GB a load.

The maintenance this design adds (BigQuery: firsts rows streamed with every batch and stored, a daily
compaction recounting the experiments written to since the previous one) is priced by `maintenance_usd`,
which bench/cost.py adds to its all-in headline.

    .venv/bin/python bench/reads.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from _common import ROOT, emit  # noqa: F401 - ROOT puts the project on sys.path

import sqlglot
from sqlglot import exp

from chalicelib.ingest.events import Event, stamp
from chalicelib.reports import daily, experiments, queries
from chalicelib.reports.queries import Target, Window
from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse
from chalicelib.storage.schema import EVENTS
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
BQ = Target(queries.BIGQUERY, queries.bigquery_tables("bench", "dalet", "events"), unique_identities=False)

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


def referenced(sql: str) -> tuple[set[str], set[str]]:
    """The tables (not CTEs) and the events columns a query's BigQuery text references."""
    tree = sqlglot.parse_one(sql, read="bigquery")
    ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
    tables = {table.name for table in tree.find_all(exp.Table) if table.name not in ctes}
    columns = {column.name for column in tree.find_all(exp.Column)} & set(EVENTS.column_names)
    return tables, columns


@dataclass(frozen=True)
class Traffic:
    events_per_month: float
    experiments: int = 100
    largest_share: float = 0.10
    viewed_days: int = 30
    goals: int = 3
    variants: int = 2

    @property
    def stored(self) -> float:
        return self.events_per_month * STORED_MONTHS


def _events_query_bytes(sql: str, rows: float) -> float:
    tables, columns = referenced(sql)
    scanned = rows * sum(EVENT_COLUMN_BYTES.get(column, 8) for column in columns)
    return max(scanned, MIN_BYTES_PER_TABLE) + MIN_BYTES_PER_TABLE * (len(tables) - 1)


def load_bytes_today(traffic: Traffic) -> float:
    """Today's load: the list and the results each read every stored event of the namespace."""
    listed = queries.experiment_counts(BQ, NAMESPACE)
    results = queries.decision_counts(BQ, NAMESPACE, VIEWED)
    return _events_query_bytes(listed.sql, traffic.stored) + _events_query_bytes(results.sql, traffic.stored)


def totals_bytes(traffic: Traffic) -> float:
    """The totals table after a year of daily snapshots."""
    rows = traffic.experiments * traffic.variants * (traffic.goals + 1) * COMPACTIONS_PER_MONTH * STORED_MONTHS
    return rows * (FIRSTS_ROW_BYTES - 38 + 8 * 4)


def load_bytes_catalog(traffic: Traffic, clustered: bool) -> float:
    """The catalog's load: the list and the range read the totals (twice each: latest + rows); the results read
    the partitions since the viewed experiment's first event, all of their rows or, clustered, its own."""
    catalog_reads = 2 * 2 * max(totals_bytes(traffic), MIN_BYTES_PER_TABLE)
    partition_rows = traffic.events_per_month * traffic.viewed_days / 30
    rows = partition_rows * (traffic.largest_share if clustered else 1.0)
    results = queries.decision_counts(BQ, NAMESPACE, VIEWED, Window(date(2026, 11, 1)))
    return catalog_reads + _events_query_bytes(results.sql, rows)


def firsts_rows_per_month(traffic: Traffic) -> float:
    """One per (group, uuid) per batch: for AlephBet, whose events are distinct by construction, about one per event."""
    return traffic.events_per_month


# The experiments a compaction recounts (those written to since the previous one) hold at most this much of the
# traffic, all their history included: experiments that run about a month (`Traffic.viewed_days`).
ACTIVE_MONTHS = 1.0


def compaction_bytes(events_per_month: float) -> float:
    """One daily compaction: the touched experiments (namespace and experiment of the rows written since the
    previous day: two days of partitions), their firsts rows recounted (clustering skips the others'), the
    previous snapshot and the deletions (10 MB minimums)."""
    touched = max(2 / 30 * events_per_month * (2 + 9 + 2 + 14), MIN_BYTES_PER_TABLE) + MIN_BYTES_PER_TABLE
    recount = max(ACTIVE_MONTHS * events_per_month * FIRSTS_ROW_BYTES, MIN_BYTES_PER_TABLE)
    return touched + recount + 2 * MIN_BYTES_PER_TABLE


def maintenance_usd(events_per_month: float) -> dict[str, float]:
    """What the catalog adds to the BigQuery bill a month after a year: firsts rows streamed and stored, and the
    daily compactions."""
    traffic = Traffic(events_per_month)
    rows = firsts_rows_per_month(traffic)
    stored_gb = rows * STORED_MONTHS * FIRSTS_ROW_BYTES / 1e9
    return {
        "catalog rows streamed": rows * 1024 / 200e6 * STREAMING_USD_PER_200MB,
        "catalog storage": stored_gb * STORAGE_USD_PER_GB_MONTH,
        "compactions": COMPACTIONS_PER_MONTH * compaction_bytes(events_per_month) / TIB * QUERY_USD_PER_TIB,
    }


def reads_usd(events_per_month: float, loads: int, catalog: bool = True) -> float:
    """A month of dashboard loads after a year, each the list + the viewed experiment's results (clustered bound)."""
    traffic = Traffic(events_per_month)
    per_load = load_bytes_catalog(traffic, clustered=True) if catalog else load_bytes_today(traffic)
    return loads * per_load / TIB * QUERY_USD_PER_TIB


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

    traffic = Traffic(100_000_000)
    today = load_bytes_today(traffic)
    unclustered, clustered = load_bytes_catalog(traffic, clustered=False), load_bytes_catalog(traffic, clustered=True)
    print(
        f"\nBigQuery, one load (list + results) at 100M events/month after a year, {traffic.experiments} experiments, "
        f"the viewed one {traffic.largest_share:.0%} of traffic for {traffic.viewed_days} days:"
    )
    print(f"    today's design (every stored event, twice)  {today / 1e9:10.2f} GB")
    print(f"    catalog, without clustering (bound)         {unclustered / 1e9:10.2f} GB")
    print(
        f"    catalog, clustered (the experiment's rows)  {clustered / 1e9:10.2f} GB   "
        f"goal <= {GOAL_LOAD_BYTES / 1e9:g} GB: "
        f"{'met' if clustered <= GOAL_LOAD_BYTES else 'SHORTFALL'}"
    )
    if clustered > GOAL_LOAD_BYTES:
        print(
            "    cause: the results read the viewed experiment's events (every goal row of its "
            f"{traffic.largest_share * traffic.events_per_month * traffic.viewed_days / 30 / 1e6:.0f}M), not one row "
            "per person; per-person aggregates kept incrementally would be next"
        )
    emit(
        "reads: BigQuery bytes a load at 100M/month after a year",
        clustered / 1e9,
        today / 1e9,
        f"ours <= {GOAL_LOAD_BYTES / 1e9:g}",
        "GB",
    )
    print(f"    upkeep a month after a year (daily compactions recount the experiments written to, assumed to hold "
          f"<= {ACTIVE_MONTHS:g} month of traffic):")
    for volume in (15_000_000, 100_000_000, 1_000_000_000):
        upkeep = maintenance_usd(volume)
        print(
            f"    at {volume / 1e6:g}M/month: catalog upkeep "
            + ", ".join(f"{k} ${v:,.2f}" for k, v in upkeep.items())
            + f"; 2,000 loads ${reads_usd(volume, 2000):,.2f} (today ${reads_usd(volume, 2000, catalog=False):,.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
