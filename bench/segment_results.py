"""Segment experiment results on the embedded warehouse vs a bare DuckDB join of first exposures to goals.

Generates --events Segment track events (default quick 1M; --full 10M) for --events/10 users
straight into a DuckDB file with the app's schema (DuckDB SQL, no Python loops). Each user has
10 events: an `Experiment Viewed` exposure (`checkout`, one of three variations; every 50th user
is later exposed to a second variation, every 7th sees the experiment twice), one goal-like
event before the exposure, and goals after it (`Product Viewed`, `Added to Cart`, `Signed Up`,
`Order Completed` with a `revenue`), by skew-corrected client `timestamp`, over 30 days.

  results     ours: `segment_results.experiment_results(...)`, exactly what
              GET /experiments/checkout/results?source=segment&goals=Signed Up,Order Completed runs
              (query, first exposure by timestamp, multiple exposures, decision view and statistics);
              baseline: one bare DuckDB query joining each user's first exposure (MIN/ARG_MIN) to
              their goal events at or after it, COUNT(DISTINCT user) per variant and goal.
              goal: <= 1.5x (CUPED on, the default: its pre-period moments, read in the same pass)
  + value and breakdown  ours with value=properties.revenue and dimension=context.page.path
              against the same baseline (informational: it does more)
  results, cuped=off   ours without CUPED's pre-period columns (informational: CUPED's cost)

    .venv/bin/python bench/segment_results.py [--full | --events N] [--rounds 5] [--db PATH]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _common import clear_dalet_environment, emit, generate_in_chunks, time_against

GOAL_RATIO = 1.5
NAMESPACE = "default"
EXPERIMENT = "checkout"
GOALS = ["Signed Up", "Order Completed"]
EVENTS_PER_USER = 10
CHUNK = 1_000_000
START = datetime(2024, 5, 1, tzinfo=timezone.utc)
SPREAD_SECONDS = 30 * 86_400

# Row i is event i % 10 of user i // 10. Slot 0: the exposure; slot 1: a second exposure for every
# 7th user (same variation) and every 50th (the next variation); slot 2: a goal before exposure.
GENERATE = f"""
INSERT INTO events (event_id, namespace, received_at, type, event, user_id, anonymous_id, message_id, timestamp,
                    properties, context, browser)
SELECT md5(i::VARCHAR) AS event_id, $namespace, seen + INTERVAL 1 SECOND, 'track',
       CASE WHEN exposure THEN 'Experiment Viewed' ELSE goal END,
       CASE WHEN user_number % 4 <> 0 THEN 'user-' || user_number::VARCHAR END,
       'anon-' || user_number::VARCHAR, md5(i::VARCHAR), seen,
       CASE WHEN exposure THEN ('{{"experiment_id":"{EXPERIMENT}","variation_id":"' || variation
                                || '","plan":"p' || (user_number % 5)::VARCHAR || '"}}')::JSON
            WHEN goal = 'Order Completed' THEN ('{{"revenue":' || (user_number % 97)::VARCHAR || '}}')::JSON END,
       ('{{"page":{{"path":"/page-' || (user_number % 30)::VARCHAR || '"}}}}')::JSON,
       ['Chrome', 'Firefox', 'Safari', 'Other'][user_number % 4 + 1]
FROM (
    SELECT i, i // {EVENTS_PER_USER} AS user_number, i % {EVENTS_PER_USER} AS slot,
           slot = 0 OR (slot = 1 AND (user_number % 7 = 0 OR user_number % 50 = 0)) AS exposure,
           ['control', 'red', 'blue'][(user_number + CASE WHEN slot = 1 AND user_number % 50 = 0 THEN 1 ELSE 0 END)
                                      % 3 + 1] AS variation,
           ['Product Viewed', 'Added to Cart', 'Signed Up', 'Order Completed'][(i * 7 + user_number) % 4 + 1] AS goal,
           $start + to_microseconds(((user_number * {EVENTS_PER_USER}) / $total * {SPREAD_SECONDS} * 1000000
                                     + (slot - 2) * 60000000)::BIGINT) AS seen
    FROM range($first, $last) AS r(i)
)
"""

BASELINE = """
WITH firsts AS (
    SELECT COALESCE(user_id, anonymous_id) AS user_key, MIN(timestamp) AS first_at,
           ARG_MIN(json_extract_string(properties, '$.variation_id'), timestamp) AS variant
    FROM events
    WHERE namespace = $namespace AND type = 'track' AND event = 'Experiment Viewed'
      AND json_extract_string(properties, '$.experiment_id') = $experiment
    GROUP BY ALL
)
SELECT variant, 'participate' AS event, COUNT(*) AS users FROM firsts GROUP BY ALL
UNION ALL
SELECT f.variant, g.event, COUNT(DISTINCT f.user_key) AS users
FROM firsts AS f
JOIN events AS g ON COALESCE(g.user_id, g.anonymous_id) = f.user_key AND g.timestamp >= f.first_at
WHERE g.namespace = $namespace AND g.type = 'track' AND g.event IN ('Signed Up', 'Order Completed')
GROUP BY ALL
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--full", action="store_true", help="10M events, 1M users")
    parser.add_argument("--quick", action="store_true", help="the default size (1M events); for bench/run.py")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds per metric")
    parser.add_argument("--db", type=Path, help="keep the DuckDB file here (reused if it holds the same events)")
    arguments = parser.parse_args()
    total = 10_000_000 if arguments.full else arguments.events
    clear_dalet_environment()

    from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse

    with tempfile.TemporaryDirectory(prefix="dalet-bench-segment-") as scratch:
        path = arguments.db or Path(scratch) / "warehouse.duckdb"
        warehouse = DuckDBWarehouse(path)
        try:
            if warehouse.fetch("SELECT COUNT(*) AS n FROM events")[0]["n"] != total:
                _generate(warehouse, total)
            return _measure(warehouse, total, arguments.rounds)
        finally:
            warehouse.close()


def _generate(warehouse, total: int) -> None:
    warehouse.execute("DELETE FROM events")
    generate_in_chunks(warehouse, GENERATE, {"namespace": NAMESPACE, "start": START}, total, CHUNK,
                       f"{total:,} Segment events for {total // EVENTS_PER_USER:,} users")


def _measure(warehouse, total: int, rounds: int) -> int:
    from chalicelib.reports import segment_results
    from chalicelib.reports.cuped_results import CupedSettings
    from chalicelib.reports.dimensions import parse_dimension, parse_json_path

    def ours() -> dict[str, Any]:
        return segment_results.experiment_results(warehouse, NAMESPACE, EXPERIMENT, goals=GOALS)

    def ours_with_more() -> dict[str, Any]:
        return segment_results.experiment_results(warehouse, NAMESPACE, EXPERIMENT, goals=GOALS,
                                          value=parse_json_path("properties.revenue"),
                                          dimension=parse_dimension("context.page.path"))

    def ours_without_cuped() -> dict[str, Any]:
        return segment_results.experiment_results(warehouse, NAMESPACE, EXPERIMENT, goals=GOALS,
                                                  cuped=CupedSettings(enabled=False))

    def baseline() -> list[dict[str, Any]]:
        return warehouse.fetch(BASELINE, {"namespace": NAMESPACE, "experiment": EXPERIMENT})

    _check_same_counts(ours(), baseline())
    results = [_time("results", ours, baseline, GOAL_RATIO, total, rounds),
               _time("results + value + breakdown", ours_with_more, baseline, None, total, rounds),
               _time("results, cuped=off (no pre-period moments)", ours_without_cuped, baseline, None, total, rounds)]
    print()
    for name, ours_time, baseline_time, goal in results:
        emit(f"segment {name} ({total:,} events, {total // EVENTS_PER_USER:,} users)", ours_time * 1000,
             baseline_time * 1000, goal, "ms")
    return 0


def _check_same_counts(view: dict[str, Any], bare: list[dict[str, Any]]) -> None:
    """Ours must count what the bare join counts, or the comparison means nothing."""
    ours = {(variant["label"], "participate"): variant["participants"] for variant in view["variants"]}
    ours.update({(arm["label"], goal["goal"]): arm["successes"] for goal in view["goals"] for arm in goal["variants"]})
    theirs = {(row["variant"], row["event"]): row["users"] for row in bare}
    if {key: count for key, count in ours.items() if count} != theirs:
        raise SystemExit(f"the results differ from the bare join: the benchmark is void\n{ours}\n{theirs}")
    print(f"same counts as the bare join; {view['multiple_exposures']:,} users exposed to two variations", flush=True)


def _time(name: str, ours, baseline, goal: float | None, total: int, rounds: int) -> tuple[str, float, float, Any]:
    return time_against(name, ours, baseline, goal, total, rounds, "bare join")


if __name__ == "__main__":
    sys.exit(main())
