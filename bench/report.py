"""The report query on the embedded warehouse vs a bare DuckDB GROUP BY over the same table.

Generates --events events (default 10M: 50 experiments x 3 variants x 3 events, participate
and two goals, spread over 30 days in arrival order) straight into a DuckDB file with the
app's own schema (primary key included), then times side by side, alternating:

  all experiments   ours: `reports.all_experiments(warehouse, namespace)`, exactly what
                    GET /experiments runs (query, tombstone filter, Gimel shaping);
                    baseline: SELECT experiment, event, variant, COUNT(*) FROM events GROUP BY ALL
                    goal: <= 1.5x
  one experiment    ours: `reports.experiment_goals(...)` (GET /experiments/{experiment});
                    baseline: the same bare COUNT(*) GROUP BY restricted to that experiment
  ... with deletions  the all-experiments report again once the namespace holds tombstones:
                    10 deleted (and purged) experiments, and one live experiment whose name was
                    deleted once before its current events arrived (goal <= 1.5x)
  ... a deletion unpurged  and once a tombstone hides rows still stored (informational: the
                    experiment is recounted row by row; DuckDB purges at deletion, so this is
                    BigQuery's state until DML is allowed)

    .venv/bin/python bench/report.py [--events 10000000] [--rounds 7] [--db PATH]

--db keeps the generated file (and reuses it when it already holds --events events).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from _common import clear_dalet_environment, emit, generate_in_chunks, time_against

GOAL_RATIO = 1.5
NAMESPACE = "alephbet"
EXPERIMENTS = 50
CHUNK = 500_000
START = datetime(2024, 5, 1, tzinfo=timezone.utc)
SPREAD_SECONDS = 30 * 86_400

# Row i belongs to participant i // 3 and is its participate, click or purchase event.
GENERATE = f"""
INSERT INTO events BY NAME
SELECT md5(concat_ws('|', $namespace, experiment, variant, event, uuid)) AS event_id,
       $namespace AS namespace, experiment, variant, event, uuid,
       CASE WHEN event = 'purchase' THEN (participant % 97)::DOUBLE END AS value,
       $start + to_microseconds((i / $total * {SPREAD_SECONDS} * 1000000)::BIGINT) AS received_at
FROM (
    SELECT i, i // 3 AS participant,
           'experiment-' || lpad(((i // 3) % {EXPERIMENTS})::VARCHAR, 2, '0') AS experiment,
           ['control', 'red', 'blue'][((i // 3) // {EXPERIMENTS}) % 3 + 1] AS variant,
           ['participate', 'click', 'purchase'][i % 3 + 1] AS event,
           md5((i // 3)::VARCHAR) AS uuid
    FROM range($first, $last) AS r(i)
)
"""
BASELINE_ALL = "SELECT experiment, event, variant, COUNT(*) FROM events GROUP BY ALL"
BASELINE_ONE = "SELECT event, variant, COUNT(*) FROM events WHERE experiment = $experiment GROUP BY ALL"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=7, help="alternating timing rounds per metric")
    parser.add_argument("--db", type=Path, help="keep the DuckDB file here (reused if it holds --events events)")
    arguments = parser.parse_args()
    clear_dalet_environment()

    from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse

    with tempfile.TemporaryDirectory(prefix="dalet-bench-report-") as scratch:
        path = arguments.db or Path(scratch) / "warehouse.duckdb"
        warehouse = DuckDBWarehouse(path)
        try:
            if _event_count(warehouse) != arguments.events:
                _generate(warehouse, arguments.events)
            return _measure(warehouse, arguments.events, arguments.rounds)
        finally:
            warehouse.close()


def _event_count(warehouse) -> int:
    return warehouse.fetch("SELECT COUNT(*) AS n FROM events")[0]["n"]


def _generate(warehouse, total: int) -> None:
    warehouse.execute("DELETE FROM events")
    warehouse.execute("DELETE FROM deletions")
    generate_in_chunks(warehouse, GENERATE, {"namespace": NAMESPACE, "start": START}, total, CHUNK,
                       f"{total:,} events ({EXPERIMENTS} experiments x 3 variants x 3 events)")


def _measure(warehouse, total: int, rounds: int) -> int:
    from chalicelib.reports import experiments

    one = "experiment-07"
    metrics = [
        ("all experiments", lambda: experiments.all_experiments(warehouse, NAMESPACE),
         lambda: warehouse.fetch(BASELINE_ALL), GOAL_RATIO),
        ("one experiment", lambda: experiments.experiment_goals(warehouse, NAMESPACE, one),
         lambda: warehouse.fetch(BASELINE_ONE, {"experiment": one}), GOAL_RATIO),
    ]
    warehouse.execute("DELETE FROM deletions")      # a reused file may hold a previous run's
    _check_same_counts(warehouse)
    results = [_time(name, ours, baseline, goal, total, rounds) for name, ours, baseline, goal in metrics]

    _add_tombstones(warehouse, reused=one)
    _check_same_counts(warehouse)                    # those tombstones predate every row: nothing hidden
    results.append(_time("all experiments, with deletions", metrics[0][1], metrics[0][2], GOAL_RATIO, total, rounds))
    deleted_at = _add_unpurged_deletion(warehouse, "experiment-03")
    _check_same_counts(warehouse, hidden=("experiment-03", deleted_at))
    results.append(_time("all experiments, a deletion unpurged", metrics[0][1], metrics[0][2], None, total, rounds))

    print()
    for name, ours, baseline, goal in results:
        emit(f"report: {name} ({total:,} events)", ours * 1000, baseline * 1000, goal, "ms")
    return 0


def _check_same_counts(warehouse, hidden: tuple[str, Any] | None = None) -> None:
    """The report must count what the baseline counts, or the comparison means nothing.

    `hidden`: (experiment, deleted_at) whose rows up to deleted_at the report must leave out.
    """
    from chalicelib.reports import experiments

    report = experiments.all_experiments(warehouse, NAMESPACE)
    ours = {(entry["experiment"], goal["goal"], result["label"]): result["successes"]
            for entry in report[1:] for goal in entry["goals"] for result in goal["results"]}
    ours.update({(entry["experiment"], "participate", result["label"]): result["trials"]
                 for entry in report[1:] for goal in entry["goals"] for result in goal["results"]})
    visible = warehouse.fetch(
        "SELECT experiment, event, variant, COUNT(*) AS n FROM events"
        " WHERE NOT (experiment = $experiment AND received_at <= $deleted_at) GROUP BY ALL",
        {"experiment": hidden[0] if hidden else "", "deleted_at": hidden[1] if hidden else START})
    bare = {(row["experiment"], row["event"], row["variant"]): row["n"] for row in visible}
    if ours != bare:
        raise SystemExit("the report's counts differ from the bare GROUP BY: the benchmark is void")


def _time(name: str, ours, baseline, goal: float | None, total: int, rounds: int) -> tuple[str, float, float, Any]:
    return time_against(name, ours, baseline, goal, total, rounds, "bare GROUP BY")


def _add_tombstones(warehouse, reused: str) -> None:
    from chalicelib.reports import deletion, fetch, queries

    target = fetch.target_of(warehouse)
    deleted = [(f"old-experiment-{n}", START - timedelta(days=n + 1)) for n in range(10)]
    deleted.append((reused, START - timedelta(hours=1)))
    for name, deleted_at in deleted:
        record = queries.record_deletion(target, deletion.deletion_id(NAMESPACE, name, deleted_at), NAMESPACE,
                                         name, deleted_at)
        warehouse.execute(record.sql, record.params)


def _add_unpurged_deletion(warehouse, experiment: str) -> Any:
    """A tombstone hiding half of a live experiment's rows, not purged: BigQuery's state until DML
    is allowed; on DuckDB only events acknowledged before a deletion but written after it."""
    from chalicelib.reports import deletion, fetch, queries

    deleted_at = START + timedelta(seconds=SPREAD_SECONDS // 2)
    record = queries.record_deletion(fetch.target_of(warehouse),
                                     deletion.deletion_id(NAMESPACE, experiment, deleted_at),
                                     NAMESPACE, experiment, deleted_at)
    warehouse.execute(record.sql, record.params)
    return deleted_at


if __name__ == "__main__":
    sys.exit(main())
