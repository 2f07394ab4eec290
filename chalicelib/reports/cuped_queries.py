"""CUPED's inputs, computed in the warehouse: per arm and goal, the moments of each participant's
metric after exposure (Y) and of the same metric in the `pre_days` before it (X).

Defined once in BigQuery SQL and rendered for DuckDB by `queries.render`. No per-person row
leaves the warehouse: per (variant, goal) the answer holds how many participants were active
(any goal event from `pre_days` before their first exposure on), and over those the sums of Y
and X and their co-moments (sums of squared or crossed deviations from the group means). The
other participants have Y = X = 0; `stats.cuped.with_zeros` folds them in. `participate` rows
hold each variant's participants.

Per person and goal: for a rate, Y = 1 if they did the goal at or after their first exposure
(0 otherwise) and X = how often they did it in the `pre_days` before; for a value, Y and X are
the sums of the goal's value in the same two periods. On Segment, people, exposure and post-exposure
goals are `segment_queries.experiment_decision_counts`'s own CTEs (one person across linked ids,
first exposure, window on `received_at`), and the results read the moments in that query's pass;
the pre-period ignores the window: it is the history of any of the person's ids, by client time.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from chalicelib.ingest.events import PARTICIPATE
from chalicelib.reports.dimensions import Dimension
from chalicelib.reports.queries import (
    ALL_TIME,
    Query,
    Target,
    Window,
    cuped_deviations_cte,
    cuped_moment_figures,
    cuped_moment_nulls,
    render,
    window_filter,
)
from chalicelib.reports.segment_queries import History, person_history_ctes

DEFAULT_PRE_DAYS = 14
MAX_PRE_DAYS = 90
# How far ahead of its arrival an event's client time may be and still be read as history: the scans
# start this long before the first exposure's pre-period (arrival time, the partitioning column).
CLOCK_MARGIN = timedelta(days=1)


def history_since(first_exposure: datetime | None, pre_days: int) -> datetime | None:
    """Where the goal scan of a CUPED query may start: `pre_days` (and CLOCK_MARGIN) before the first exposure."""
    return None if first_exposure is None else first_exposure - timedelta(days=pre_days) - CLOCK_MARGIN


def segment_cuped_moments(target: Target, namespace: str, experiment: str, *, goals: Sequence[str],
                          value: Dimension | None = None, pre_days: int = DEFAULT_PRE_DAYS,
                          window: Window = ALL_TIME, since: datetime | None = None) -> Query:
    """Columns: variant, event, active, and per metric (`rate`, and `value` when one is named):
    sum_y_<m>, sum_x_<m>, m2_y_<m>, m2_x_<m>, c_xy_<m>. `participate` rows: active = participants.

    People, first exposures and goals after it are `segment_queries.experiment_decision_counts`'s
    (one person across linked ids, `segment_identity`); a person's history is the goal events of any
    of their ids in the `pre_days` before their first exposure. The results route reads the same
    moments in the decision counts' own pass (its `history`); this query is them alone. `since`
    bounds the goal scan by arrival (`history_since`)."""
    _check(goals, pre_days)
    history = History(pre_days, since)
    sql = (
        "WITH " + person_history_ctes(target, goals, value, window, history)
        + cuped_deviations_cte("per_person", value is not None)
        + f"SELECT variant, event, COUNT(*) AS active,\n{cuped_moment_figures(value is not None)}\n"
        "FROM cuped_deviations\n"
        "GROUP BY variant, event\n"
        "UNION ALL\n"
        f"SELECT variant, '{PARTICIPATE}' AS event, COUNT(*) AS active, {cuped_moment_nulls(value is not None)}\n"
        "FROM assigned\n"
        "GROUP BY variant"
    )
    params = {**_params(namespace, experiment, goals, pre_days, window, value), **history.params()}
    return render(target, sql, params)


def alephbet_cuped_moments(target: Target, namespace: str, experiment: str, *, goals: Sequence[str],
                           pre_days: int = DEFAULT_PRE_DAYS, window: Window = ALL_TIME,
                           participations: tuple[datetime, datetime] | None = None) -> Query:
    """The same columns for an AlephBet experiment (rate and value: AlephBet goals carry `value`).

    A person is a `uuid` (history exists only where the page sets a stable user id); they belong to
    the variant of their first `participate` inside the window; their goals are the experiment's goal
    events, counted as `queries.decision_counts` counts them (inside the window, whatever the order);
    their history is the same goal sent to any experiment of the namespace (this one's only outside
    the window) in the `pre_days` before their first participation, by arrival time, AlephBet's only
    clock. Rows hidden by their experiment's tombstone never count, in either period.

    `participations`, the first and last participation inside the window (`queries.exposure_span`),
    bound the history's scan to the arrivals between `pre_days` before the first and the last: on
    BigQuery it reads those partitions only, instead of the namespace's whole history.
    """
    _check(goals, pre_days)
    visible = ("  LEFT JOIN deleted AS d ON d.experiment = e.experiment\n"
               "  WHERE e.namespace = @namespace AND e.uuid IS NOT NULL\n"
               "    AND (d.deleted_at IS NULL OR e.received_at > d.deleted_at)")
    assigned = (
        "deleted AS (\n"
        "  SELECT experiment, MAX(deleted_at) AS deleted_at\n"
        "  FROM {deletions}\n"
        "  WHERE namespace = @namespace\n"
        "  GROUP BY experiment\n"
        "),\n"
        "assigned AS (\n"
        "  SELECT e.uuid AS user_key, MIN(e.received_at) AS first_at, MIN_BY(e.variant, e.received_at) AS variant\n"
        "  FROM {events} AS e\n"
        f"{visible}\n"
        f"    AND e.experiment = @experiment AND e.event = '{PARTICIPATE}' AND e.variant IS NOT NULL"
        f"{window_filter(window)}\n"
        "  GROUP BY e.uuid\n"
        "),\n"
    )
    this_experiment = f"e.experiment = @experiment{window_filter(window)}"
    bounded = ("\n    AND e.received_at >= @history_since AND e.received_at <= @history_until"
               if participations is not None else "")
    goal_rows = (
        # After: the experiment's own goals (the decision counts'); before: any experiment's, in the bounds.
        "  SELECT {key}e.uuid AS user_key, e.event, e.received_at AS seen_at, e.value, TRUE AS counts_after\n"
        "  FROM {events} AS e\n"
        f"{visible}\n"
        f"    AND {_chosen(goals)} AND {this_experiment}\n"
        "  UNION ALL\n"
        "  SELECT {key}e.uuid AS user_key, e.event, e.received_at AS seen_at, e.value, FALSE AS counts_after\n"
        "  FROM {events} AS e\n"
        f"{visible}\n"
        f"    AND e.experiment IS NOT NULL AND {_chosen(goals)}{bounded}\n"
        f"    AND NOT ({this_experiment})\n"
    )
    sql = _moments_sql(target, assigned, goal_rows, post="g.counts_after")
    params = _params(namespace, experiment, goals, pre_days, window, None)
    if participations is not None:
        params.update(history_since=history_since(participations[0], pre_days), history_until=participations[1])
    return render(target, sql, params)


def _check(goals: Sequence[str], pre_days: int) -> None:
    if not goals:
        raise ValueError("goals: name at least one")
    if not 1 <= pre_days <= MAX_PRE_DAYS:
        raise ValueError(f"pre_days must be 1..{MAX_PRE_DAYS}, got {pre_days}")


def _chosen(goals: Sequence[str]) -> str:
    # One scalar parameter per goal: DuckDB filters a plain IN list in its scan.
    return f"e.event IN ({', '.join(f'@goal_{index}' for index in range(len(goals)))})"


def _params(namespace: str, experiment: str, goals: Sequence[str], pre_days: int, window: Window,
            value: Dimension | None) -> dict[str, Any]:
    params: dict[str, Any] = {"namespace": namespace, "experiment": experiment, "pre_days": pre_days,
                              **window.params(), **{f"goal_{index}": goal for index, goal in enumerate(goals)}}
    if value is not None:
        params.update(value.params("value_path"))
    return params


def _moments_sql(target: Target, assigned_ctes: str, goal_rows: str, *, post: str) -> str:
    """The AlephBet body: `assigned_ctes` end with `assigned` (user_key, first_at, variant); `goal_rows`
    selects (user_key, event, seen_at, value, counts_after) with a `{key}` slot for the event id.

    A goal event counts in Y when `post` holds, in X when it came in the `pre_days` before first_at
    and does not count in Y. Where a row may be stored twice (BigQuery's insertId dedup is best
    effort), one copy counts."""
    if target.unique_identities:
        goal_events = "goal_events AS (\n" + goal_rows.replace("{key}", "") + "),\n"
    else:
        goal_events = (
            "goal_events AS (\n"
            "  SELECT ANY_VALUE(user_key) AS user_key, ANY_VALUE(event) AS event, ANY_VALUE(seen_at) AS seen_at,\n"
            "    ANY_VALUE(value) AS value, ANY_VALUE(counts_after) AS counts_after\n"
            "  FROM (\n" + goal_rows.replace("{key}", "e.event_id, ") + "  )\n"
            "  GROUP BY event_id\n"
            "),\n"
        )
    pre = (f"NOT ({post}) AND g.seen_at < a.first_at"
           " AND g.seen_at >= TIMESTAMP_SUB(a.first_at, INTERVAL @pre_days DAY)")
    return (
        "WITH " + assigned_ctes + goal_events
        + "per_person AS (\n"
        "  SELECT a.variant, g.event, a.user_key,\n"
        f"    IF(LOGICAL_OR({post}), 1.0, 0.0) AS y_rate,\n"
        f"    CAST(COUNTIF({pre}) AS FLOAT64) AS x_rate,\n"
        f"    IFNULL(SUM(IF({post}, g.value, NULL)), 0) AS y_value,\n"
        f"    IFNULL(SUM(IF({pre}, g.value, NULL)), 0) AS x_value\n"
        "  FROM assigned AS a\n"
        f"  JOIN goal_events AS g ON g.user_key = a.user_key AND (({post}) OR ({pre}))\n"
        "  GROUP BY a.variant, g.event, a.user_key\n"
        "),\n"
        + cuped_deviations_cte("per_person", valued=True)
        + f"SELECT variant, event, COUNT(*) AS active,\n{cuped_moment_figures(valued=True)}\n"
        "FROM cuped_deviations\n"
        "GROUP BY variant, event\n"
        "UNION ALL\n"
        f"SELECT variant, '{PARTICIPATE}' AS event, COUNT(*) AS active, {cuped_moment_nulls(valued=True)}\n"
        "FROM assigned\n"
        "GROUP BY variant"
    )
