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
the sums of the goal's value in the same two periods. Exposure and post-exposure goals follow
`segment_queries.experiment_decision_counts` (the same person key, first exposure, window on
`received_at`); the pre-period ignores the window: it is the person's history, by client time.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chalicelib.ingest.events import PARTICIPATE
from chalicelib.reports.dimensions import Dimension
from chalicelib.reports.queries import ALL_TIME, Query, Target, Window, render, window_filter
from chalicelib.reports.segment_queries import EXPOSURE_EVENT

DEFAULT_PRE_DAYS = 14
MAX_PRE_DAYS = 90
METRICS = ("rate", "value")
# Finite values only: NaN and infinities compare false in both warehouses.
_FINITE = "ABS({0}) <= 1e308"


def co_moment(first: str, second: str) -> str:
    """Sum of (first - mean)(second - mean) over a group, from the per-row deviations `d_<name>`:
    the corrected two-pass formula of `queries.SAMPLE_VARIANCE` (Chan, Golub & LeVeque 1983,
    eq. 1.7), S = sum(d_a d_b) - sum(d_a) sum(d_b) / k, in its bivariate form."""
    return f"SUM(d_{first} * d_{second}) - SUM(d_{first}) * SUM(d_{second}) / COUNT(*)"


def segment_cuped_moments(target: Target, namespace: str, experiment: str, *, goals: Sequence[str],
                          value: Dimension | None = None, pre_days: int = DEFAULT_PRE_DAYS,
                          window: Window = ALL_TIME) -> Query:
    """Columns: variant, event, active, and per metric (`rate`, and `value` when one is named):
    sum_y_<m>, sum_x_<m>, m2_y_<m>, m2_x_<m>, c_xy_<m>. `participate` rows: active = participants.

    A person is `COALESCE(user_id, anonymous_id)`; their goals count after their first exposure by
    client time, inside the window; their history is the `pre_days` before it."""
    _check(goals, pre_days)
    if value is None:
        number = "CAST(NULL AS FLOAT64)"
    else:
        cast = f"SAFE_CAST({value.sql('e.', 'value_path')} AS FLOAT64)"
        number = f"IF({_FINITE.format(cast)}, {cast}, NULL)"
    assigned = (
        "exposures AS (\n"
        "  SELECT COALESCE(e.user_id, e.anonymous_id) AS user_key,\n"
        "    JSON_VALUE(e.properties, '$.variation_id') AS variant,\n"
        "    COALESCE(e.timestamp, e.received_at) AS seen_at\n"
        "  FROM {events} AS e\n"
        f"  WHERE e.namespace = @namespace AND e.type = 'track' AND e.event = '{EXPOSURE_EVENT}'\n"
        f"    AND JSON_VALUE(e.properties, '$.experiment_id') = @experiment{window_filter(window)}\n"
        "),\n"
        "assigned AS (\n"
        "  SELECT user_key, MIN(seen_at) AS first_at, MIN_BY(variant, seen_at) AS variant\n"
        "  FROM exposures\n"
        "  WHERE user_key IS NOT NULL AND variant IS NOT NULL\n"
        "  GROUP BY user_key\n"
        "),\n"
    )
    goal_rows = (
        "  SELECT {key}COALESCE(e.user_id, e.anonymous_id) AS user_key, e.event,\n"
        f"    COALESCE(e.timestamp, e.received_at) AS seen_at, {number} AS value,\n"
        f"    (TRUE{window_filter(window)}) AS counts_after\n"
        "  FROM {events} AS e\n"
        f"  WHERE e.namespace = @namespace AND e.type = 'track' AND {_chosen(goals)}\n"
    )
    sql = _moments_sql(target, assigned, goal_rows, post="g.counts_after AND g.seen_at >= a.first_at",
                       value=value is not None)
    return render(target, sql, _params(namespace, experiment, goals, pre_days, window, value))


def alephbet_cuped_moments(target: Target, namespace: str, experiment: str, *, goals: Sequence[str],
                           pre_days: int = DEFAULT_PRE_DAYS, window: Window = ALL_TIME) -> Query:
    """The same columns for an AlephBet experiment (rate and value: AlephBet goals carry `value`).

    A person is a `uuid` (history exists only where the page sets a stable user id); they belong to
    the variant of their first `participate`; their goals are the experiment's goal events, counted
    as `queries.decision_counts` counts them (inside the window, whatever the order); their history
    is the same goal sent to any other experiment of the namespace in the `pre_days` before their
    first participation (by arrival time, AlephBet's only clock). Rows hidden by a tombstone never count.
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
    goal_rows = (
        "  SELECT {key}e.uuid AS user_key, e.event, e.received_at AS seen_at, e.value,\n"
        f"    (e.experiment = @experiment{window_filter(window)}) AS counts_after\n"
        "  FROM {events} AS e\n"
        f"{visible}\n"
        f"    AND e.experiment IS NOT NULL AND {_chosen(goals)}\n"
    )
    sql = _moments_sql(target, assigned, goal_rows, post="g.counts_after", value=True)
    return render(target, sql, _params(namespace, experiment, goals, pre_days, window, None))


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


def _moments_sql(target: Target, assigned_ctes: str, goal_rows: str, *, post: str, value: bool) -> str:
    """The shared body: `assigned_ctes` end with `assigned` (user_key, first_at, variant); `goal_rows`
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
    metrics = METRICS if value else METRICS[:1]
    deviations = ",\n".join(
        f"    {side}_{metric} - AVG({side}_{metric}) OVER (PARTITION BY variant, event) AS d_{side}_{metric}"
        for metric in metrics for side in ("y", "x"))
    figures = ",\n".join(
        f"  SUM(y_{m}) AS sum_y_{m}, SUM(x_{m}) AS sum_x_{m}, {co_moment(f'y_{m}', f'y_{m}')} AS m2_y_{m},\n"
        f"  {co_moment(f'x_{m}', f'x_{m}')} AS m2_x_{m}, {co_moment(f'x_{m}', f'y_{m}')} AS c_xy_{m}"
        for m in metrics)
    nothing = ", ".join(f"NULL AS {name}_{m}" for m in metrics for name in ("sum_y", "sum_x", "m2_y", "m2_x", "c_xy"))
    value_columns = (f",\n    IFNULL(SUM(IF({post}, g.value, NULL)), 0) AS y_value,\n"
                     f"    IFNULL(SUM(IF({pre}, g.value, NULL)), 0) AS x_value" if value else "")
    return (
        "WITH " + assigned_ctes + goal_events
        + "per_person AS (\n"
        "  SELECT a.variant, g.event, a.user_key,\n"
        f"    IF(LOGICAL_OR({post}), 1.0, 0.0) AS y_rate,\n"
        f"    CAST(COUNTIF({pre}) AS FLOAT64) AS x_rate{value_columns}\n"
        "  FROM assigned AS a\n"
        f"  JOIN goal_events AS g ON g.user_key = a.user_key AND (({post}) OR ({pre}))\n"
        "  GROUP BY a.variant, g.event, a.user_key\n"
        "),\n"
        "deviations AS (\n"
        f"  SELECT *,\n{deviations}\n"
        "  FROM per_person\n"
        ")\n"
        f"SELECT variant, event, COUNT(*) AS active,\n{figures}\n"
        "FROM deviations\n"
        "GROUP BY variant, event\n"
        "UNION ALL\n"
        f"SELECT variant, '{PARTICIPATE}' AS event, COUNT(*) AS active, {nothing}\n"
        "FROM assigned\n"
        "GROUP BY variant"
    )
