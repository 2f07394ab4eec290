"""Event analytics over both protocols' rows, each query defined once in BigQuery SQL (rendered by queries.py).

An event is a Segment track event, a Segment page call, or an AlephBet participate or goal
(`type` track, page or null; screen, identify, group and alias calls are not events here). Its
name is `event` (a page's name), or for an unnamed page its path (`properties.path`, else
`context.page.path`), so top pages, UTM campaigns (`context.campaign.source|medium|name`) and
referrers (`context.page.referrer`) are a `group_by` away. Its user is `user_id`, else `anonymous_id`, else AlephBet's
`uuid`; its time is the skew-corrected client `timestamp`, else (AlephBet) `received_at`.
Rows an experiment's deletion hides stay hidden here too.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from chalicelib.reports.dimensions import Dimension
from chalicelib.reports.queries import Query, Target, Window, render, window_filter

# The interval names users choose from, and BigQuery's date parts for them (never user text).
INTERVAL_PARTS = {"day": "DAY", "hour": "HOUR"}
TOP_GROUPS = 20
MAX_NAMES = 1000

MAX_INTERVALS = 1000
STEPS = {"day": timedelta(days=1), "hour": timedelta(hours=1)}
# Without from/to: the last 30 days by day, by hour the last 2 (yesterday and today, UTC: 48 intervals).
DEFAULT_DAYS = {"day": 30, "hour": 2}


@dataclass(frozen=True)
class SeriesWindow:
    """Whole UTC days from `first_day` to `last_day`, cut into intervals."""
    first_day: date
    last_day: date
    interval: str

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, datetime.min.time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last_day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)

    @property
    def count(self) -> int:
        return int((self.end - self.start) / STEPS[self.interval])

    def moments(self) -> list[datetime]:
        step = STEPS[self.interval]
        return [self.start + step * index for index in range(self.count)]


def series_window(window: Window, interval: str, today: date) -> SeriesWindow:
    """The asked window, its open ends filled from DEFAULT_DAYS (callers check MAX_INTERVALS)."""
    last = window.last_day or max(today, window.first_day or today)
    first = window.first_day or last - timedelta(days=DEFAULT_DAYS[interval] - 1)
    return SeriesWindow(first, last, interval)


_USER = "COALESCE(e.user_id, e.anonymous_id, e.uuid)"
_TIME = "COALESCE(e.timestamp, e.received_at)"
PAGE_PATH = "COALESCE(JSON_VALUE(e.properties, '$.path'), JSON_VALUE(e.context, '$.page.path'))"
# A page's name, else its path; every other event's own name.
EVENT_NAME = f"IF(e.type = 'page', COALESCE(e.event, {PAGE_PATH}), e.event)"
# EVENT_NAME = @event, written so the clustered `event` column still prunes named events.
_NAMED_EVENT = f"(e.event = @event OR (e.type = 'page' AND e.event IS NULL AND {PAGE_PATH} = @event))"


def _visible(columns: str, event: bool, window_filter: str) -> str:
    """`WITH deleted, picked`: the namespace's named events not hidden by a tombstone."""
    return (
        "WITH deleted AS (\n"
        "  SELECT experiment, MAX(deleted_at) AS deleted_at\n"
        "  FROM {deletions}\n"
        "  WHERE namespace = @namespace\n"
        "  GROUP BY experiment\n"
        "),\n"
        "picked AS (\n"
        f"  SELECT {columns}\n"
        "  FROM {events} AS e\n"
        "  LEFT JOIN deleted AS d ON d.experiment = e.experiment\n"
        f"  WHERE e.namespace = @namespace AND {_NAMED_EVENT if event else EVENT_NAME + ' IS NOT NULL'}\n"
        "    AND (e.type IS NULL OR e.type IN ('track', 'page'))"
        f"{window_filter}\n"
        "    AND (d.deleted_at IS NULL OR e.received_at > d.deleted_at)\n"
        ")\n"
    )


def _events_counted(target: Target) -> str:
    return "COUNT(*)" if target.unique_identities else "COUNT(DISTINCT event_id)"


def event_series(target: Target, namespace: str, start: datetime, end: datetime, interval: str,
                 event: str | None = None, group: Dimension | None = None) -> Query:
    """Events and distinct users per interval from `start` to `end` (and per `group` value).

    Both the arrival (`received_at`, the partition column: BigQuery prunes by it) and the
    event's own time must fall in [start, end). With a group, the TOP_GROUPS values with the
    most events keep their series; the rest are one series with `other` true, its users
    counted distinct across the values it folds.

    In the same pass (grouping sets), the window's totals: rows with `window_total` 1 count
    each series' events and distinct users over the whole window (no bucket), and the row
    with `all_groups` 1 too counts them over every series together.
    """
    part = INTERVAL_PARTS[interval]
    columns = (f"TIMESTAMP_TRUNC({_TIME}, {part}) AS bucket, {_USER} AS user_key"
               + ("" if target.unique_identities else ", e.event_id")
               + (f", {group.sql('e.', 'group_path')} AS grp" if group else ""))
    window_filter = (
        "\n    AND e.received_at >= @from_ts AND e.received_at < @until_ts"
        f"\n    AND {_TIME} >= @from_ts AND {_TIME} < @until_ts"
    )
    sql = _visible(columns, event is not None, window_filter)
    if group is None:
        sql += (f"SELECT bucket, CAST(NULL AS STRING) AS grp, FALSE AS other, GROUPING(bucket) AS window_total,\n"
                f"  GROUPING(bucket) AS all_groups, {_events_counted(target)} AS events,\n"
                "  COUNT(DISTINCT user_key) AS users\n"
                "FROM picked\n"
                "GROUP BY GROUPING SETS ((bucket), ())")
    else:
        sql += (
            ", sized AS (\n"
            "  SELECT p.*, COUNT(*) OVER (PARTITION BY p.grp) AS size\n"
            "  FROM picked AS p\n"
            "), placed AS (\n"
            "  SELECT s.*, DENSE_RANK() OVER (ORDER BY s.size DESC, s.grp) AS place\n"
            "  FROM sized AS s\n"
            "), folded AS (\n"
            f"  SELECT bucket, user_key,{'' if target.unique_identities else ' event_id,'}"
            f" IF(place <= {TOP_GROUPS}, grp, NULL) AS grp, place > {TOP_GROUPS} AS other\n"
            "  FROM placed\n"
            ")\n"
            "SELECT bucket, grp, other, GROUPING(bucket) AS window_total, GROUPING(grp) AS all_groups,\n"
            f"  {_events_counted(target)} AS events, COUNT(DISTINCT user_key) AS users\n"
            "FROM folded\n"
            "GROUP BY GROUPING SETS ((bucket, grp, other), (grp, other), ())"
        )
    params: dict[str, Any] = {"namespace": namespace, "from_ts": start, "until_ts": end}
    if event is not None:
        params["event"] = event
    if group is not None:
        params.update(group.params("group_path"))
    return render(target, sql, params)


def event_names(target: Target, namespace: str, window: Window) -> Query:
    """Every event name of the namespace with its events and distinct users, the most frequent first."""
    columns = f"{EVENT_NAME} AS event, {_USER} AS user_key" + ("" if target.unique_identities else ", e.event_id")
    sql = (
        _visible(columns, False, window_filter(window))
        + f"SELECT event AS name, {_events_counted(target)} AS events, COUNT(DISTINCT user_key) AS users\n"
        "FROM picked\n"
        "GROUP BY event\n"
        "ORDER BY events DESC, name\n"
        f"LIMIT {MAX_NAMES}"
    )
    return render(target, sql, {"namespace": namespace, **window.params()})
