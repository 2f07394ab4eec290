"""Run every benchmark under bench/ and print one table: metric, ours, baseline, ratio, goal, met?

This is what `make bench` runs. Each script prints its own findings (shown as it runs,
with its progress bars) and one JSON line per metric, collected here. The default run
uses quick settings and takes a few minutes; --full runs the long ones at full size
(10M-event report, 1M-row writer, 30 s load).

    .venv/bin/python bench/run.py [--full] [--only writer,accuracy] [--strict]

Exit status: 1 if a script failed (e.g. Dalet inexact, an event lost); with --strict,
also 2 if a goal was missed.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import METRIC_KEYS, goal_met

BENCH = Path(__file__).resolve().parent
SCRIPT_TIMEOUT_SECONDS = 60 * 60
# Known scripts in running order, with their quick and full arguments; any other script
# found under bench/ runs after them with --quick (or no flag under --full).
PLAN: dict[str, tuple[list[str], list[str]]] = {
    "track.py": (["--quick"], []),
    "segment.py": (["--quick"], []),
    "kinesis_calls.py": ([], []),
    "writer.py": (["--quick"], ["--rows", "1000000"]),
    "report.py": (["--events", "1000000"], ["--events", "10000000"]),
    "segment_results.py": ([], ["--full"]),
    "accuracy.py": ([], []),
    "e2e_load.py": (["--quick"], ["--seconds", "30"]),
    "decisions.py": (["--quick"], ["--full"]),
    "coldstart.py": (["--quick"], []),
    "cost.py": (["--quick"], []),
}


NOT_BENCHMARKS = {"run.py", "screenshots.py"}    # screenshots.py makes the README's dashboard images


def scripts(only: set[str] | None) -> list[Path]:
    found = {path.name: path for path in BENCH.glob("*.py") if not path.name.startswith("_") and path.name not in NOT_BENCHMARKS}
    ordered = [found.pop(name) for name in PLAN if name in found] + [found[name] for name in sorted(found)]
    if only:
        ordered = [path for path in ordered if path.stem in only or path.name in only]
    return ordered


def arguments_for(script: Path, full: bool) -> list[str]:
    if script.name in PLAN:
        quick, long = PLAN[script.name]
        return long if full else quick
    return [] if full else ["--quick"]


def run_script(script: Path, arguments: list[str]) -> tuple[int, list[dict[str, Any]], float]:
    """Run one script, echoing its output; its exit status, metric lines and seconds taken."""
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, str(script), *arguments], cwd=BENCH.parent,
                               stdout=subprocess.PIPE, text=True, bufsize=1, start_new_session=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    metrics: list[dict[str, Any]] = []
    assert process.stdout is not None
    try:
        for line in process.stdout:
            metric = _metric(line)
            if metric is not None:
                metrics.append(metric)
            print(f"    {line}", end="", flush=True)
            if time.monotonic() - started > SCRIPT_TIMEOUT_SECONDS:
                raise TimeoutError
        status = process.wait()
    except (TimeoutError, KeyboardInterrupt):
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        status = -1
    return status, metrics, time.monotonic() - started


def _metric(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and set(METRIC_KEYS) <= set(record) else None


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return f"{value:,}"


def _goal(goal: Any) -> str:
    if goal is None:
        return "-"
    return f"ratio <= {goal:g}" if isinstance(goal, (int, float)) else str(goal)


def print_table(rows: list[tuple[str, dict[str, Any]]], failures: list[str]) -> int:
    """The summary table; the number of goals missed."""
    headers = ("metric", "ours", "baseline", "ratio", "goal", "met?")
    table = []
    missed = 0
    for _, record in rows:
        met = goal_met(record)
        missed += met is False
        unit = f" {record['unit']}" if record.get("unit") else ""
        table.append((record["metric"], _number(record["ours"]) + unit,
                      _number(record["baseline"]) + (unit if record["baseline"] is not None else ""),
                      _number(record["ratio"]) + ("x" if record["ratio"] is not None else ""),
                      _goal(record["goal"]), {True: "yes", False: "NO", None: "-"}[met]))
    widths = [max(len(str(row[i])) for row in [headers, *table]) for i in range(len(headers))]
    line = "  ".join("{:<%d}" % width for width in widths)
    print()
    print(line.format(*headers))
    print(line.format(*("-" * width for width in widths)))
    for row in table:
        print(line.format(*row))
    for failure in failures:
        print(f"FAILED: {failure}")
    met_count = sum(1 for _, record in rows if goal_met(record))
    print(f"\n{met_count} goals met, {missed} missed, {len(failures)} scripts failed")
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the long runs at full size")
    parser.add_argument("--only", help="comma-separated script names to run (e.g. track,writer)")
    parser.add_argument("--strict", action="store_true", help="exit 2 if any goal is missed")
    arguments = parser.parse_args(argv)
    only = {name.strip() for name in arguments.only.split(",")} if arguments.only else None

    chosen = scripts(only)
    if not chosen:
        print("no benchmark scripts matched", file=sys.stderr)
        return 1
    if "report.py" in PLAN and not (BENCH / "report.py").exists() and not only:
        print("note: bench/report.py is not there yet; its metrics are missing from the table", file=sys.stderr)
    rows: list[tuple[str, dict[str, Any]]] = []
    failures: list[str] = []
    for number, script in enumerate(chosen, start=1):
        script_arguments = arguments_for(script, arguments.full)
        print(f"[{number}/{len(chosen)}] bench/{script.name} {' '.join(script_arguments)}".rstrip(), flush=True)
        status, metrics, seconds = run_script(script, script_arguments)
        print(f"[{number}/{len(chosen)}] bench/{script.name}: exit {status} after {seconds:.0f} s", flush=True)
        rows.extend((script.name, record) for record in metrics)
        if status != 0:
            failures.append(f"bench/{script.name} exited with {status}")
        elif not metrics:
            failures.append(f"bench/{script.name} printed no metric line")
    missed = print_table(rows, failures)
    if failures:
        return 1
    return 2 if arguments.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
