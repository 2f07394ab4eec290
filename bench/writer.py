"""The writer: a 500-record Kinesis batch -> rows in DuckDB, vs a raw Arrow insert (goal <= 2x);
then sustained rows/s while the events table grows to --rows rows.

Ours is the real handler registered with `@app.on_kinesis_record`, called as Lambda
calls it (`app.write_events(event, context)`), writing to the embedded DuckDB warehouse
in a temporary folder: base64 and JSON decoding, validation, dedup, Arrow conversion,
INSERT OR IGNORE. The baseline inserts the very same rows, already in Arrow form, with
a plain INSERT into a twin table (same DDL, primary key included) in the same database
file; inserting the same rows twice into one table would only time the duplicate check.
Both tables grow alike; runs alternate; the medians are compared.

    .venv/bin/python bench/writer.py [--rows 1000000] [--rounds 40] [--quick]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _common import clear_dalet_environment, emit
from tqdm import tqdm

GOAL_RATIO = 2.0
BATCH = 500
QUICK_ROWS = 200_000
TWIN_TABLE = "events_raw_arrow"
EXPERIMENTS = [("my a/b test", ("red", "blue")), ("checkout flow", ("one page", "two pages", "wizard")),
               ("pricing", ("monthly", "yearly"))]
EVENTS = ("participate", "participate", "signed up", "bought")


class BatchMaker:
    """Fresh Kinesis batches of distinct events, numbered like one shard's sequence."""

    def __init__(self) -> None:
        self.sequence = 0

    def stored_events(self, count: int) -> list[Any]:
        from chalicelib.ingest.events import Event, now, stamp

        received_at = now()
        made = []
        for n in range(count):
            experiment, variants = EXPERIMENTS[(self.sequence + n) % len(EXPERIMENTS)]
            made.append(stamp(Event(namespace="alephbet", experiment=experiment,
                                    variant=variants[n % len(variants)], event=EVENTS[n % len(EVENTS)],
                                    uuid=str(uuid.uuid4()), value=19.99 if n % 17 == 0 else None), received_at))
        return made

    def kinesis_event(self, stored: list[Any]) -> dict[str, Any]:
        from chalicelib.ingest.local_stream import StoredRecord, kinesis_event
        from chalicelib.ingest.records import encode_record

        arrived_at = time.time()
        records = []
        for event in stored:
            self.sequence += 1
            records.append(StoredRecord(self.sequence, event.event_id, encode_record(event), arrived_at))
        return kinesis_event(records, "dalet-events")


def open_warehouse(data_dir: Path) -> tuple[Any, Any]:
    """app.py (its `write_events` is the Kinesis handler) and the embedded warehouse, on a temporary folder."""
    clear_dalet_environment()
    os.environ.update(DALET_BACKEND="local", DALET_DATA_DIR=str(data_dir))
    import app as dalet
    from chalicelib import runtime
    from chalicelib.storage.schema import EVENTS as EVENTS_TABLE
    from chalicelib.storage.schema import duckdb_ddl

    warehouse = runtime.warehouse()
    warehouse.execute(duckdb_ddl(EVENTS_TABLE, name=TWIN_TABLE))
    return dalet, warehouse


class RawArrowInsert:
    """The baseline: rows already in Arrow form, one plain INSERT ... SELECT."""

    def __init__(self, warehouse: Any):
        self.cursor = warehouse._db.cursor()

    def insert(self, rows: Any) -> None:
        self.cursor.register("raw_rows", rows)
        self.cursor.execute(f"INSERT INTO {TWIN_TABLE} SELECT * FROM raw_rows")
        self.cursor.unregister("raw_rows")


def count_rows(warehouse: Any, table: str) -> int:
    return warehouse.fetch(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"]


def compare_batches(app: Any, warehouse: Any, maker: BatchMaker, rounds: int) -> tuple[float, float, float]:
    """Median ms per batch for ours and the baseline, and the median per-round ratio."""
    from chalicelib.storage.duckdb_warehouse import events_to_arrow
    from chalicelib.ingest.local_stream import LocalContext

    raw = RawArrowInsert(warehouse)
    ours_times, raw_times, ratios = [], [], []
    for round_number in tqdm(range(rounds), desc="writer.py batch vs Arrow", unit="round", file=sys.stderr):
        stored = maker.stored_events(BATCH)
        event = maker.kinesis_event(stored)
        rows = events_to_arrow(stored)
        context = LocalContext()

        def ours() -> float:
            started = time.perf_counter()
            response = app.write_events(event, context)
            elapsed = time.perf_counter() - started
            if response and response.get("batchItemFailures"):
                sys.exit(f"the writer asked for a retry: {response}")
            return elapsed

        def baseline() -> float:
            started = time.perf_counter()
            raw.insert(rows)
            return time.perf_counter() - started

        if round_number % 2 == 0:
            ours_time, raw_time = ours(), baseline()
        else:
            raw_time, ours_time = baseline(), ours()
        ours_times.append(ours_time)
        raw_times.append(raw_time)
        ratios.append(ours_time / raw_time)
    return statistics.median(ours_times) * 1e3, statistics.median(raw_times) * 1e3, statistics.median(ratios)


def sustained(app: Any, warehouse: Any, maker: BatchMaker, target_rows: int) -> dict[str, float]:
    """Write fresh batches until the table holds target_rows; rows/s of the handler alone."""
    from chalicelib.ingest.local_stream import LocalContext

    rows_now = count_rows(warehouse, "events")
    decile = max(BATCH, (target_rows - rows_now) // 10)
    windows: list[tuple[int, float]] = []   # (rows, seconds) per tenth of the run
    window_rows, window_seconds, total_seconds, written = 0, 0.0, 0.0, 0
    with tqdm(total=target_rows, initial=rows_now, desc="writer.py sustained", unit="row", unit_scale=True,
              file=sys.stderr) as progress:
        while rows_now < target_rows:
            size = min(BATCH, target_rows - rows_now)
            event = maker.kinesis_event(maker.stored_events(size))
            started = time.perf_counter()
            app.write_events(event, LocalContext())
            elapsed = time.perf_counter() - started
            rows_now += size
            written += size
            total_seconds += elapsed
            window_rows += size
            window_seconds += elapsed
            if window_rows >= decile:
                windows.append((window_rows, window_seconds))
                window_rows, window_seconds = 0, 0.0
            progress.update(size)
    if window_rows:
        windows.append((window_rows, window_seconds))
    landed = count_rows(warehouse, "events")
    return {
        "rows_per_second": written / total_seconds,
        "first_tenth": windows[0][0] / windows[0][1],
        "last_tenth": windows[-1][0] / windows[-1][1],
        "rows": landed,
        "seconds": total_seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="grow the events table to this many rows")
    parser.add_argument("--rounds", type=int, default=40, help="alternating rounds of the batch comparison")
    parser.add_argument("--quick", action="store_true", help=f"--rows {QUICK_ROWS} unless --rows is given")
    arguments = parser.parse_args(argv)
    target_rows = QUICK_ROWS if arguments.quick and "--rows" not in (argv or sys.argv[1:]) else arguments.rows

    with tempfile.TemporaryDirectory(prefix="dalet-bench-writer-") as folder:
        app, warehouse = open_warehouse(Path(folder) / "data")
        maker = BatchMaker()
        ours_ms, raw_ms, batch_ratio = compare_batches(app, warehouse, maker, arguments.rounds)
        both_landed = count_rows(warehouse, "events") == count_rows(warehouse, TWIN_TABLE) == BATCH * arguments.rounds
        print(f"{BATCH}-record batch: handler {ours_ms:.2f} ms, raw Arrow insert {raw_ms:.2f} ms, "
              f"ratio {batch_ratio:.2f}x (goal <= {GOAL_RATIO}x); {arguments.rounds} rounds; "
              f"rows landed in both tables: {'yes' if both_landed else 'NO'}")
        result = sustained(app, warehouse, maker, target_rows)
        print(f"sustained: {result['rows_per_second']:,.0f} rows/s while the table grew to {result['rows']:,} rows "
              f"({result['seconds']:.1f} s in the handler); first tenth {result['first_tenth']:,.0f} rows/s, "
              f"last tenth {result['last_tenth']:,.0f} rows/s")
        from chalicelib import runtime

        runtime.shutdown()
    emit("writer: 500-record Kinesis batch -> DuckDB vs raw Arrow insert", ours_ms, raw_ms, GOAL_RATIO,
         "ms/batch", batch_ratio)
    emit(f"writer: sustained rows/s up to {result['rows']:,} rows", result["rows_per_second"], None, None, "rows/s")
    emit("writer: rows/s in the last tenth vs the first tenth", result["last_tenth"], result["first_tenth"], None,
         "rows/s")
    return 0 if both_landed and result["rows"] == target_rows else 1


if __name__ == "__main__":
    sys.exit(main())
