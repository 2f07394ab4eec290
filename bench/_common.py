"""What every benchmark shares: the project on sys.path, side-by-side timing, the result line.

Each benchmark prints human-readable lines, then one JSON line per metric:
    {"metric": ..., "ours": ..., "baseline": ..., "ratio": ..., "goal": ..., "unit": ...}
`goal` is a number (met when ratio <= goal), a string "ours == baseline" / "ours == 0" /
"ours <= LIMIT" (an absolute bound, in the metric's unit), or null (informational). bench/run.py collects these lines into one table.
"""
from __future__ import annotations

import json
import math
import os
import socket
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

METRIC_KEYS = ("metric", "ours", "baseline", "ratio", "goal", "unit")


def clear_dalet_environment() -> None:
    """Benchmarks choose their own settings; a user's DALET_* variables must not leak in."""
    for name in list(os.environ):
        if name.startswith("DALET_"):
            del os.environ[name]


def ratio(ours: float, baseline: float) -> float | None:
    return ours / baseline if baseline else None


def goal_met(record: dict[str, Any]) -> bool | None:
    """True/False against the record's goal; None when it has no goal."""
    goal, ours, baseline, measured = record.get("goal"), record.get("ours"), record.get("baseline"), record.get("ratio")
    if goal is None:
        return None
    if isinstance(goal, (int, float)):
        return measured is not None and measured <= goal
    if goal == "ours == baseline":
        return ours == baseline
    if goal == "ours == 0":
        return ours == 0
    if goal.startswith("ours <= "):
        return ours is not None and ours <= float(goal.removeprefix("ours <= "))
    raise ValueError(f"unknown goal {goal!r}")


def emit(metric: str, ours: float, baseline: float | None, goal: Any, unit: str,
         measured_ratio: float | None = None) -> dict[str, Any]:
    """Print the machine-readable line for one metric (last lines of a benchmark's output)."""
    if measured_ratio is None and baseline is not None:
        measured_ratio = ratio(ours, baseline)
    record = {
        "metric": metric,
        "ours": _rounded(ours),
        "baseline": _rounded(baseline),
        "ratio": _rounded(measured_ratio),
        "goal": goal,
        "unit": unit,
    }
    print(json.dumps(record, ensure_ascii=False), flush=True)
    return record


def _rounded(number: float | None) -> float | None:
    if number is None or isinstance(number, int):
        return number
    if not math.isfinite(number):
        return None
    return float(f"{number:.4g}")


def interleaved_medians(ours: Callable[[], None], baseline: Callable[[], None], rounds: int,
                        calls_per_round: int, progress: Any = None) -> tuple[float, float, float]:
    """Alternate the two in rounds (so machine noise hits both alike); per-call seconds.

    Returns (median of ours, median of baseline, median of the per-round ratios).
    """
    ours_times, baseline_times, ratios = [], [], []
    for round_number in range(rounds):
        first, second = (ours, baseline) if round_number % 2 == 0 else (baseline, ours)
        first_time = _per_call(first, calls_per_round)
        second_time = _per_call(second, calls_per_round)
        ours_time, baseline_time = (first_time, second_time) if first is ours else (second_time, first_time)
        ours_times.append(ours_time)
        baseline_times.append(baseline_time)
        ratios.append(ours_time / baseline_time)
        if progress is not None:
            progress.update(1)
    return statistics.median(ours_times), statistics.median(baseline_times), statistics.median(ratios)


def _per_call(function: Callable[[], None], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - started) / calls


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


class LambdaContext:
    function_name = "dalet-bench"
    memory_limit_in_mb = 128
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 3000


def proxy_event(method: str, path: str, query: dict[str, str] | None = None, body: str | None = None,
                content_type: str | None = None) -> dict[str, Any]:
    """An API Gateway (REST, proxy integration) event as Lambda delivers it, on stage `api`."""
    from tests.lambda_events import api_gateway_event

    headers = {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "Accept": "*/*",
               "Origin": "https://shop.example", "User-Agent": "Mozilla/5.0 (bench)"}
    if content_type:
        headers["Content-Type"] = content_type
    return api_gateway_event(method, f"/api{path}", path, "api", headers, query, body)


def generate_in_chunks(warehouse: Any, generate_sql: str, params: dict[str, Any], total: int, chunk: int,
                       what: str) -> None:
    """Run a generating INSERT over [first, last) slices of `total` rows, with progress, then CHECKPOINT."""
    from tqdm import tqdm

    print(f"generating {what} into {warehouse.path}", flush=True)
    started = time.perf_counter()
    with tqdm(total=total, unit="event", unit_scale=True, file=sys.stderr, mininterval=2) as progress:
        for first in range(0, total, chunk):
            last = min(first + chunk, total)
            warehouse.execute(generate_sql, {**params, "total": total, "first": first, "last": last})
            progress.update(last - first)
    warehouse.execute("CHECKPOINT")
    print(f"generated in {time.perf_counter() - started:.0f} s; "
          f"file size {os.path.getsize(warehouse.path) / 1e6:,.0f} MB", flush=True)


def time_against(name: str, ours: Callable[[], None], baseline: Callable[[], None], goal: float | None, total: int,
                 rounds: int, baseline_label: str) -> tuple[str, float, float, Any]:
    """Warm both, time them interleaved (medians), print the ratio against the goal; (name, ours, baseline, goal)."""
    from tqdm import tqdm

    ours(), baseline()      # warm the caches alike
    with tqdm(total=rounds, desc=name, unit="round", file=sys.stdout, leave=False) as progress:
        ours_time, baseline_time, _ = interleaved_medians(ours, baseline, rounds, 1, progress)
    ratio = ours_time / baseline_time
    verdict = "informational" if goal is None else f"{'meets' if ratio <= goal else 'MISSES'} the <= {goal}x goal"
    print(f"{name:38s} ours {ours_time * 1000:8.1f} ms   {baseline_label} {baseline_time * 1000:8.1f} ms   "
          f"ratio {ratio:.2f}x ({verdict}) over {total:,} events", flush=True)
    return name, ours_time, baseline_time, goal


# ---- simulation benches' shared lines (decisions.py, verdict.py) ----------------------------------

def standard_error(share: float, runs: int) -> float:
    """The Monte Carlo standard error of a share over `runs` independent runs."""
    return math.sqrt(share * (1 - share) / runs)


def share_line(name: str, count: int, runs: int, width: int = 62) -> str:
    share = count / runs
    return f"  {name:<{width}} {share:7.2%}  (± {standard_error(share, runs):.2%} MC SE, {count}/{runs})"


@dataclass
class Goal:
    """One printed goal: met, or the shortfall with its cause."""
    name: str
    met: bool
    measured: str
    cause: str = ""

    def line(self, width: int = 92) -> str:
        verdict = "met" if self.met else f"SHORTFALL ({self.cause})"
        return f"  {self.name:<{width}} {self.measured:>9}  {verdict}"
