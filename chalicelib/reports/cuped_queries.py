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

from typing import Any, Sequence

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
    sum_y_<m>, sum_x_<m>, m2_y_<m>, m2_x_<m>, c_xy_<m>. `participate` rows: active = participants."""
    if not goals:
        raise ValueError("goals: name at least one")
    if not 1 <= pre_days <= MAX_PRE_DAYS:
        raise ValueError(f"pre_days must be 1..{MAX_PRE_DAYS}, got {pre_days}")
    metrics = METRICS if value is not None else METRICS[:1]
    deviations = ",\n".join(
        f"    {side}_{metric}, {side}_{metric} - AVG({side}_{metric}) OVER (PARTITION BY variant, event) "
        f"AS d_{side}_{metric}"
        for metric in metrics for side in ("y", "x"))
    figures = ",\n".join(
        f"  SUM(y_{m}) AS sum_y_{m}, SUM(x_{m}) AS sum_x_{m}, {co_moment(f'y_{m}', f'y_{m}')} AS m2_y_{m},\n"
        f"  {co_moment(f'x_{m}', f'x_{m}')} AS m2_x_{m}, {co_moment(f'x_{m}', f'y_{m}')} AS c_xy_{m}"
        for m in metrics)
    nothing = ", ".join(f"NULL AS {name}_{m}" for m in metrics for name in ("sum_y", "sum_x", "m2_y", "m2_x", "c_xy"))
    value_columns = (",\n    IFNULL(SUM(IF(g.seen_at >= a.first_at AND g.in_window, g.value, NULL)), 0) AS y_value,\n"
                     "    IFNULL(SUM(IF(g.seen_at < a.first_at, g.value, NULL)), 0) AS x_value"
                     if value is not None else "")
    sql = (
        "WITH exposures AS (\n"
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
        + _goal_events(target, len(goals), value, window)
        + "per_person AS (\n"
        "  SELECT a.variant, g.event, a.user_key,\n"
        "    IF(LOGICAL_OR(g.seen_at >= a.first_at AND g.in_window), 1.0, 0.0) AS y_rate,\n"
        f"    CAST(COUNTIF(g.seen_at < a.first_at) AS FLOAT64) AS x_rate{value_columns}\n"
        "  FROM assigned AS a\n"
        "  JOIN goal_events AS g ON g.user_key = a.user_key\n"
        "    AND g.seen_at >= TIMESTAMP_SUB(a.first_at, INTERVAL @pre_days DAY)\n"
        "  GROUP BY a.variant, g.event, a.user_key\n"
        "),\n"
        "deviations AS (\n"
        f"  SELECT variant, event,\n{deviations}\n"
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
    params: dict[str, Any] = {"namespace": namespace, "experiment": experiment, "pre_days": pre_days,
                              **window.params(), **{f"goal_{index}": goal for index, goal in enumerate(goals)}}
    if value is not None:
        params.update(value.params("value_path"))
    return render(target, sql, params)


def _goal_events(target: Target, goal_count: int, value: Dimension | None, window: Window) -> str:
    """The goals' events at any time (`in_window`: received inside the window), with their finite
    value. Where a row may be stored twice (BigQuery's insertId dedup is best effort), one copy counts."""
    chosen = f"e.event IN ({', '.join(f'@goal_{index}' for index in range(goal_count))})"
    if value is None:
        number = "CAST(NULL AS FLOAT64)"
    else:
        cast = f"SAFE_CAST({value.sql('e.', 'value_path')} AS FLOAT64)"
        number = f"IF({_FINITE.format(cast)}, {cast}, NULL)"
    key = "" if target.unique_identities else "e.event_id, "
    source = (
        f"  SELECT {key}COALESCE(e.user_id, e.anonymous_id) AS user_key, e.event,\n"
        f"    COALESCE(e.timestamp, e.received_at) AS seen_at, {number} AS value,\n"
        f"    (TRUE{window_filter(window)}) AS in_window\n"
        "  FROM {events} AS e\n"
        f"  WHERE e.namespace = @namespace AND e.type = 'track' AND {chosen}\n"
    )
    if target.unique_identities:
        return "goal_events AS (\n" + source + "),\n"
    return (
        "goal_events AS (\n"
        "  SELECT ANY_VALUE(user_key) AS user_key, ANY_VALUE(event) AS event, ANY_VALUE(seen_at) AS seen_at,\n"
        "    ANY_VALUE(value) AS value, ANY_VALUE(in_window) AS in_window\n"
        "  FROM (\n" + source + "  )\n"
        "  GROUP BY event_id\n"
        "),\n"
    )
