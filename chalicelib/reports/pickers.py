"""The goal and value pickers of AlephBet experiments (Segment's: segment_experiments.py).

goals: [{"goal", "users"}] the experiment's goals with the uuids that reached them, most first.
values: always [] — an AlephBet goal carries its one `value`, which results report without choosing.
"""
from __future__ import annotations

from typing import Any

from chalicelib.ingest.events import PARTICIPATE
from chalicelib.reports.experiments import counter_rows, require_experiment
from chalicelib.reports.fetch import ReportWarehouse
from chalicelib.reports.queries import ALL_TIME, Window


def goal_picker(warehouse: ReportWarehouse, namespace: str, experiment: str,
                window: Window = ALL_TIME) -> list[dict[str, Any]]:
    rows = counter_rows(warehouse, namespace, window, experiment=experiment)
    require_experiment(warehouse, namespace, experiment, window, found=bool(rows))
    users: dict[str, int] = {}
    for row in rows:
        if row["event"] != PARTICIPATE:
            users[row["event"]] = users.get(row["event"], 0) + int(row["uuids"])
    ranked = sorted(users.items(), key=lambda item: (-item[1], item[0]))
    return [{"goal": goal, "users": count} for goal, count in ranked]


def value_picker(warehouse: ReportWarehouse, namespace: str, experiment: str,
                 window: Window = ALL_TIME) -> list[dict[str, Any]]:
    rows = counter_rows(warehouse, namespace, window, experiment=experiment)
    require_experiment(warehouse, namespace, experiment, window, found=bool(rows))
    return []
