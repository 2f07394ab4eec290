"""Event analytics: how often events happen, and to how many users, over time (GET /events, /events/names).

Every interval of the window is listed, with zeros where nothing happened, so a chart needs
no gap filling; the window is bounded (`analytics_queries.MAX_INTERVALS`) so the answer always is.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from chalicelib.ingest.events import format_timestamp
from chalicelib.reports import analytics_queries
from chalicelib.reports.analytics_queries import SeriesWindow
from chalicelib.reports.dimensions import Dimension
from chalicelib.reports.fetch import ReportWarehouse, fetch, target_of
from chalicelib.reports.queries import Window

OTHER_LABEL = "(other)"


def event_series(warehouse: ReportWarehouse, namespace: str, span: SeriesWindow, event: str | None = None,
                 group: Dimension | None = None) -> dict[str, Any]:
    query = analytics_queries.event_series(target_of(warehouse), namespace, span.start, span.end, span.interval,
                                           event, group)
    return series_view(namespace, span, event, group, fetch(warehouse, query))


def series_view(namespace: str, span: SeriesWindow, event: str | None, group: Dimension | None,
                rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each series' events and distinct users per interval, and `unique_users`: distinct over the window
    (per series, and at the top over every series together; a user active in two intervals counts once)."""
    moments = span.moments()
    index = {moment: position for position, moment in enumerate(moments)}
    series: dict[tuple[bool, str | None], dict[str, Any]] = {}
    unique_users = 0
    for row in rows:
        if row["all_groups"]:
            unique_users = int(row["users"])
            continue
        key = (bool(row["other"]), row["grp"])
        line = series.setdefault(key, {"group": OTHER_LABEL if key[0] else key[1], "other": key[0],
                                       "events": [0] * len(moments), "users": [0] * len(moments),
                                       "unique_users": 0})
        if row["window_total"]:
            line["unique_users"] = int(row["users"])
            continue
        position = index[_utc(row["bucket"])]
        line["events"][position] = int(row["events"])
        line["users"][position] = int(row["users"])
    if group is None:
        for line in series.values():        # the one series is everything
            line["unique_users"] = unique_users
    ordered = sorted(series.values(), key=lambda line: (line["other"], -sum(line["events"]), line["group"] is None,
                                                          line["group"] or ""))
    return {
        "namespace": namespace, "event": event, "interval": span.interval,
        "from": span.first_day.isoformat(), "to": span.last_day.isoformat(),
        "group_by": group.name if group else None,
        "intervals": [format_timestamp(moment) for moment in moments],
        "series": ordered,
        "total_events": sum(sum(line["events"]) for line in ordered),
        "unique_users": unique_users,
    }


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def event_names(warehouse: ReportWarehouse, namespace: str, window: Window) -> dict[str, Any]:
    rows = fetch(warehouse, analytics_queries.event_names(target_of(warehouse), namespace, window))
    return {"namespace": namespace, "names": [
        {"name": row["name"], "events": int(row["events"]), "users": int(row["users"])} for row in rows
    ]}
