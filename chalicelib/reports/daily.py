"""The daily view: cumulative participants and successes per day and variant."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from chalicelib.ingest.events import PARTICIPATE
from chalicelib.reports import catalog_queries, queries
from chalicelib.reports.experiments import require_experiment
from chalicelib.reports.fetch import ReportWarehouse, fetch, target_of
from chalicelib.reports.queries import ALL_TIME, Window


def experiment_daily(warehouse: ReportWarehouse, namespace: str, experiment: str,
                     window: Window = ALL_TIME) -> dict[str, Any]:
    read = catalog_queries.narrowed(warehouse, namespace, experiment, window)
    query = queries.daily_first_seen(target_of(warehouse), namespace, experiment, read)
    rows = fetch(warehouse, query)
    require_experiment(warehouse, namespace, experiment, window, found=bool(rows))
    return {"namespace": namespace, "experiment": experiment, **daily_view(rows)}


def daily_view(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Cumulative participants and successes per day and variant, from the first to the last day seen.

    Each uuid counts from its first day, so the last day equals the totals; a day without
    events repeats the day before.
    """
    new_on: dict[tuple[date, str, str], int] = {
        (_as_date(row["day"]), row["event"], row["variant"]): int(row["uuids"]) for row in rows
    }
    labels = sorted({variant for _, _, variant in new_on})
    goals = sorted({event for _, event, _ in new_on if event != PARTICIPATE})
    days: list[dict[str, Any]] = []
    if new_on:
        running = {(event, label): 0 for event in [PARTICIPATE, *goals] for label in labels}
        first, last = min(day for day, _, _ in new_on), max(day for day, _, _ in new_on)
        for offset in range((last - first).days + 1):
            day = first + timedelta(days=offset)
            for event, label in running:
                running[event, label] += new_on.get((day, event, label), 0)
            days.append({"day": day.isoformat(), "variants": [
                {"label": label, "participants": running[PARTICIPATE, label],
                 "successes": {goal: running[goal, label] for goal in goals}}
                for label in labels
            ]})
    return {"variants": labels, "goals": goals, "days": days}


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
