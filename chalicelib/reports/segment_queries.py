"""Experiment queries over Segment rows, each defined once in BigQuery SQL (rendered for DuckDB by queries.py).

Segment's A/B testing spec: an exposure is a track event `Experiment Viewed` with
`properties.experiment_id` and `properties.variation_id`. A user is `user_id`, else
`anonymous_id`. Each user belongs to the variant of their first exposure, ordered by the
skew-corrected client `timestamp` (libraries batch and retry, so arrival order says little);
a goal is any other track event of that user at or after that first exposure.

The answer has the rows the AlephBet decision view reads (`queries.decision_counts`):
per variant a `participate` row (participants, and how many of them were exposed to more
than one variant) and per (variant, goal) the users who converted, how many carried a value,
and the sum and sum of squares of each user's summed value.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chalicelib.ingest.events import PARTICIPATE
from chalicelib.reports.dimensions import Dimension
from chalicelib.reports.queries import (
    ALL_TIME,
    SAMPLE_VARIANCE,
    Query,
    Target,
    Window,
    deviations_cte,
    folded_segments,
    render,
    window_filter,
)

SOURCE = "segment"          # the results route's `source=` for these experiments
EXPOSURE_EVENT = "Experiment Viewed"
DEFAULT_GOAL_COUNT = 10     # without `goals`: the events most users did after exposure
# Finite values only: NaN and infinities compare false in both warehouses.
_FINITE = "ABS({0}) <= 1e308"


def experiment_decision_counts(target: Target, namespace: str, experiment: str, *,
                               goals: Sequence[str] | None = None, value: Dimension | None = None,
                               dimension: Dimension | None = None, window: Window = ALL_TIME) -> Query:
    """Participants and conversions per variant (and per `dimension` value of the first exposure).

    Columns: [segment, other,] variant, event, uuids, multiple, valued, total, total_squares,
    variance. `total` sums each user's summed value; `total_squares` sums their squares and
    `variance` is their sample variance (null below two, `queries.SAMPLE_VARIANCE`'s two-pass
    formula). With a dimension, users of all but the TOP_SEGMENTS values with the most
    participants are folded into `other` (`queries.folded_segments`).
    """
    if goals is not None and not goals:
        raise ValueError("goals: name at least one, or None for the default goals")
    # Only a breakdown carries a segment: an unused column still costs DuckDB a third more time.
    segment = f", {dimension.sql('e.', 'dimension_path')} AS segment" if dimension else ""
    first_segment = ", MIN_BY(segment, seen_at) AS segment" if dimension else ""
    by = "segment, other, " if dimension else ""
    users = "folded" if dimension else "assigned"
    sql = (
        "WITH exposures AS (\n"
        "  SELECT COALESCE(e.user_id, e.anonymous_id) AS user_key,\n"
        "    JSON_VALUE(e.properties, '$.variation_id') AS variant,\n"
        f"    COALESCE(e.timestamp, e.received_at) AS seen_at{segment}\n"
        "  FROM {events} AS e\n"
        f"  WHERE e.namespace = @namespace AND e.type = 'track' AND e.event = '{EXPOSURE_EVENT}'\n"
        f"    AND JSON_VALUE(e.properties, '$.experiment_id') = @experiment{window_filter(window)}\n"
        "),\n"
        "assigned AS (\n"
        f"  SELECT user_key, MIN(seen_at) AS first_at, MIN_BY(variant, seen_at) AS variant{first_segment},\n"
        "    MIN(variant) <> MAX(variant) AS multiple\n"
        "  FROM exposures\n"
        "  WHERE user_key IS NOT NULL AND variant IS NOT NULL\n"
        "  GROUP BY user_key\n"
        "),\n"
        + (folded_segments("assigned", "user_key, first_at, variant, multiple") + ",\n" if dimension else "")
        + _goal_events(target, goals, value, window)
        + "converted AS (\n"
        f"  SELECT {by}a.variant, g.event, a.user_key, SUM(g.value) AS value\n"
        f"  FROM {users} AS a\n"
        "  JOIN goal_events AS g ON g.user_key = a.user_key AND g.seen_at >= a.first_at\n"
        f"  GROUP BY {by}a.variant, g.event, a.user_key\n"
        "),\n"
        + _chosen_goals(goals)
        + "per_user AS (\n"
        f"  SELECT {by}variant, '{PARTICIPATE}' AS event, user_key, multiple, CAST(NULL AS FLOAT64) AS value\n"
        f"  FROM {users}\n"
        "  UNION ALL\n"
        f"  SELECT {by}variant, event, user_key, FALSE AS multiple, value\n"
        f"  FROM converted{'' if goals is not None else ' WHERE event IN (SELECT event FROM chosen)'}\n"
        ")"
        + _per_user_figures(by, valued=value is not None)
    )
    params: dict[str, Any] = {"namespace": namespace, "experiment": experiment, **window.params()}
    if goals is not None:
        params.update({f"goal_{index}": goal for index, goal in enumerate(goals)})
    if value is not None:
        params.update(value.params("value_path"))
    if dimension is not None:
        params.update(dimension.params("dimension_path"))
    return render(target, sql, params)


def _per_user_figures(by: str, valued: bool) -> str:
    """The decision rows from `per_user`; the variance's deviations only where there are values."""
    figures = (f"SELECT {by}variant, event, COUNT(*) AS uuids, COUNTIF(multiple) AS multiple, COUNT(value) AS valued,\n"
               "  SUM(value) AS total, SUM(value * value) AS total_squares,\n")
    if not valued:
        return (f"\n{figures}  CAST(NULL AS FLOAT64) AS variance\n"
                "FROM per_user\n"
                f"GROUP BY {by}variant, event")
    return (
        ",\n" + deviations_cte("per_user", by, columns="*")
        + f"{figures}"
        + SAMPLE_VARIANCE
        + "FROM deviations\n"
        f"GROUP BY {by}variant, event"
    )


def _goal_events(target: Target, goals: Sequence[str] | None, value: Dimension | None, window: Window) -> str:
    """The candidate goal events, with their finite value if one is asked for.

    Where a row may be stored twice (BigQuery's insertId dedup is best effort), one copy counts.
    """
    # One scalar parameter per goal: DuckDB filters a plain IN list in its scan (UNNEST becomes a CASE).
    chosen = (f"e.event IN ({', '.join(f'@goal_{index}' for index in range(len(goals)))})" if goals is not None
              else f"e.event IS NOT NULL AND e.event NOT IN ('{EXPOSURE_EVENT}', '{PARTICIPATE}')")
    if value is None:
        number = "CAST(NULL AS FLOAT64)"
    else:
        cast = f"SAFE_CAST({value.sql('e.', 'value_path')} AS FLOAT64)"
        number = f"IF({_FINITE.format(cast)}, {cast}, NULL)"
    key = "" if target.unique_identities else "e.event_id, "
    source = (
        f"  SELECT {key}COALESCE(e.user_id, e.anonymous_id) AS user_key, e.event,\n"
        f"    COALESCE(e.timestamp, e.received_at) AS seen_at, {number} AS value\n"
        "  FROM {events} AS e\n"
        f"  WHERE e.namespace = @namespace AND e.type = 'track' AND {chosen}{window_filter(window)}\n"
    )
    if target.unique_identities:
        return "goal_events AS (\n" + source + "),\n"
    return (
        "goal_events AS (\n"
        "  SELECT ANY_VALUE(user_key) AS user_key, ANY_VALUE(event) AS event, ANY_VALUE(seen_at) AS seen_at,\n"
        "    ANY_VALUE(value) AS value\n"
        "  FROM (\n" + source + "  )\n"
        "  GROUP BY event_id\n"
        "),\n"
    )


def _chosen_goals(goals: Sequence[str] | None) -> str:
    if goals is not None:
        return ""
    return (
        "chosen AS (\n"
        "  SELECT event FROM converted\n"
        "  GROUP BY event\n"
        "  ORDER BY COUNT(*) DESC, event\n"
        f"  LIMIT {DEFAULT_GOAL_COUNT}\n"
        "),\n"
    )


def experiment_seen(target: Target, namespace: str, experiment: str) -> Query:
    """One row if any user was ever exposed to the experiment (a 404 otherwise)."""
    sql = (
        "SELECT 1 AS found\n"
        "FROM {events} AS e\n"
        f"WHERE e.namespace = @namespace AND e.type = 'track' AND e.event = '{EXPOSURE_EVENT}'\n"
        "  AND JSON_VALUE(e.properties, '$.experiment_id') = @experiment\n"
        "LIMIT 1"
    )
    return render(target, sql, {"namespace": namespace, "experiment": experiment})
