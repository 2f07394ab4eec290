"""Experiment queries over Segment rows, each defined once in BigQuery SQL (rendered for DuckDB by queries.py).

Segment's A/B testing spec: an exposure is a track event `Experiment Viewed` with
`properties.experiment_id` and `properties.variation_id`. A user is a person: the ids that
identify, alias and messages carrying both ids link (segment_identity.py). Each person belongs
to the variant of their first exposure through any of their ids, ordered by the skew-corrected
client `timestamp` (libraries batch and retry, so arrival order says little); a goal is any
other track event of any of their ids at or after that first exposure.

The answer has the rows the AlephBet decision view reads (`queries.decision_counts`):
per variant a `participate` row (participants, and how many of them were exposed to more
than one variant) and per (variant, goal) the users who converted, how many carried a value,
and the sum and sum of squares of each user's summed value.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.ingest.events import PARTICIPATE
from chalicelib.reports.dimensions import Dimension
from chalicelib.reports.queries import (
    ALL_TIME,
    PRECISE_TOTAL,
    SAMPLE_VARIANCE,
    Query,
    Target,
    Window,
    capped_values,
    cuped_deviations_cte,
    cuped_moment_figures,
    cuped_moment_nulls,
    deviations_cte,
    folded_segments,
    render,
    window_filter,
)
from chalicelib.reports.segment_identity import (
    MESSAGE_ID,
    MESSAGE_TIME,
    catalog_identity_ctes,
    identity_ctes,
    link_spans,
    person_join,
    person_of,
)

SOURCE = "segment"          # the results route's `source=` for these experiments
EXPOSURE_EVENT = "Experiment Viewed"
DEFAULT_GOAL_COUNT = 10     # without `goals`: the events most users did after exposure
# An exposure, read the same way by the reports (from the events) and the Segment catalog (from each batch).
EXPERIMENT_ID = "JSON_VALUE(e.properties, '$.experiment_id')"
VARIATION_ID = "JSON_VALUE(e.properties, '$.variation_id')"
IS_EXPOSURE = f"e.type = 'track' AND e.event = '{EXPOSURE_EVENT}'"
DECISION_COLUMNS = ("segment", "other", "variant", "event", "uuids", "multiple", "valued", "total", "total_squares",
                    "variance")
# Finite values only: NaN and infinities compare false in both warehouses.
_FINITE = "ABS({0}) <= 1e308"


@dataclass(frozen=True)
class History:
    """CUPED's pre-period, read in the same pass as the decision counts: each person's goal events in
    the `pre_days` before their first exposure (by client time, whatever the window). `since`, when
    known, bounds the whole goal scan by arrival (BigQuery reads only the partitions from it on)."""
    pre_days: int
    since: datetime | None = None

    def params(self) -> dict[str, Any]:
        return {"pre_days": self.pre_days, **({"history_since": self.since} if self.since is not None else {})}


def experiment_decision_counts(target: Target, namespace: str, experiment: str, *,
                               goals: Sequence[str] | None = None, value: Dimension | None = None,
                               dimension: Dimension | None = None, window: Window = ALL_TIME,
                               cap: int | None = None, history: History | None = None) -> Query:
    """Participants and conversions per variant (and per `dimension` value of the first exposure).

    Columns: [segment, other,] variant, event, uuids, multiple, valued, total, total_squares,
    variance. `total` sums each user's summed value; `total_squares` sums their squares and
    `variance` is their sample variance (null below two, `queries.SAMPLE_VARIANCE`'s two-pass
    formula). With a dimension, users of all but the TOP_SEGMENTS values with the most
    participants are folded into `other` (`queries.folded_segments`). With `cap`, each user's value
    is winsorised at the goal's pooled percentile (`queries.capped_values`).

    With a `history` (no dimension), the same pass also gives CUPED's moments: every row has a
    `cuped` column, false on the decision rows; the true rows are per (variant, goal) the
    `cuped_queries.segment_cuped_moments` columns (`active` and the moments, uncapped); the other
    columns are null on the rows of the other kind.
    """
    if goals is not None and not goals:
        raise ValueError("goals: name at least one, or None for the default goals")
    if history is not None and dimension is not None:
        raise ValueError("history: CUPED reads no breakdown")
    # Only a breakdown carries a segment: an unused column still costs DuckDB a third more time.
    segment = f", {dimension.sql('e.', 'dimension_path')} AS segment" if dimension else ""
    first_segment = ", MIN_BY(segment, seen_at) AS segment" if dimension else ""
    by = "segment, other, " if dimension else ""
    users = "folded" if dimension else "assigned"
    sql = (
        "WITH " + identity_ctes(window)
        + exposures_cte(window, segment)
        + assigned_cte(first_segment)
        + (folded_segments("assigned", "user_key, first_at, variant, multiple") + ",\n" if dimension else "")
        + _goal_events(target, goals, value, window, history)
        + (_converted(by, users) if history is None else _person_history(value is not None) + _converted_of_history())
        + _chosen_goals(goals)
        + "per_user AS (\n"
        f"  SELECT {by}variant, '{PARTICIPATE}' AS event, user_key, multiple, CAST(NULL AS FLOAT64) AS value\n"
        f"  FROM {users}\n"
        "  UNION ALL\n"
        f"  SELECT {by}variant, event, user_key, FALSE AS multiple, value\n"
        "  FROM "
        + ('converted' if cap is None
           else '(' + capped_values('converted', by + 'variant, event, user_key', cap) + ') AS c')
        + f"{'' if goals is not None else ' WHERE event IN (SELECT event FROM chosen)'}\n"
        ")"
        + (_per_user_figures(by, valued=value is not None) if history is None
           else _figures_with_moments(goals, valued=value is not None))
    )
    params: dict[str, Any] = {"namespace": namespace, "experiment": experiment, **window.params(),
                              **(history.params() if history is not None else {})}
    if goals is not None:
        params.update({f"goal_{index}": goal for index, goal in enumerate(goals)})
    if value is not None:
        params.update(value.params("value_path"))
    if dimension is not None:
        params.update(dimension.params("dimension_path"))
    return render(target, sql, params)


def exposures_cte(window: Window, segment: str = "", every_experiment: bool = False) -> str:
    """`exposures`: (user_key: the person, variant, seen_at[, segment]) of `@experiment`'s exposures, or
    with `every_experiment` of every experiment of the namespace (and an `experiment` column)."""
    which = "" if every_experiment else f"\n    AND {EXPERIMENT_ID} = @experiment"
    listed = f", {EXPERIMENT_ID} AS experiment" if every_experiment else ""
    return (
        "exposures AS (\n"
        f"  SELECT {person_of('e')} AS user_key{listed},\n"
        f"    {VARIATION_ID} AS variant,\n"
        f"    {MESSAGE_TIME} AS seen_at{segment}\n"
        "  FROM {events} AS e\n"
        + person_join("e")
        + f"  WHERE e.namespace = @namespace AND {IS_EXPOSURE}{which}"
        f"{window_filter(window)}\n"
        "),\n"
    )


def catalog_exposures_cte() -> str:
    """`exposures` over all time from the Segment catalog's rows (chalicelib/storage/segment_catalog.py): per
    (experiment, variant, id) and batch its first and last exposure (`first_at`, `last_at`), with the person
    (user_key) the links give the id; `assigned_cte(first="first_at", last="last_at")` reads it."""
    return (
        "exposures AS (\n"
        f"  SELECT {person_of('x', 'id')} AS user_key, x.experiment, x.variant, x.first_at, x.last_at\n"
        "  FROM {segment_exposures} AS x\n"
        + person_join("x", "id")
        + "  WHERE x.namespace = @namespace\n"
        "),\n"
    )


def exposure_spans(source: str, where: str = "") -> str:
    """A SELECT of one row per (namespace, experiment, variant, id) of `source`'s exposures (aliased `e`, meeting
    `where`, conditions each opening with AND) with its first and last time: the Segment catalog's
    `segment_exposures` rows. Only the exposures `assigned_cte` counts: an experiment, a variant and an id."""
    return (
        f"SELECT e.namespace, {EXPERIMENT_ID} AS experiment, {VARIATION_ID} AS variant, {MESSAGE_ID} AS id,\n"
        f"  MIN({MESSAGE_TIME}) AS first_at, MAX({MESSAGE_TIME}) AS last_at\n"
        f"FROM {source} AS e\n"
        f"WHERE {IS_EXPOSURE}{where}\n"
        f"  AND {EXPERIMENT_ID} IS NOT NULL AND {VARIATION_ID} IS NOT NULL AND {MESSAGE_ID} IS NOT NULL\n"
        f"GROUP BY e.namespace, {EXPERIMENT_ID}, {VARIATION_ID}, {MESSAGE_ID}"
    )


def assigned_cte(first_segment: str = "", by: str = "", first: str = "seen_at", last: str = "seen_at") -> str:
    """`assigned`: each person's first exposure (`first_at`), its variant, and whether they saw another.

    `by` ("experiment, " over every experiment's exposures) groups further, and adds `last_at`, their last exposure.
    `first` and `last`: the exposures' columns holding their first and last time (one `seen_at` per message;
    a catalog row spans several).
    """
    return (
        "assigned AS (\n"
        f"  SELECT {by}user_key, MIN({first}) AS first_at, MIN_BY(variant, {first}) AS variant{first_segment},\n"
        f"    MIN(variant) <> MAX(variant) AS multiple{f', MAX({last}) AS last_at' if by else ''}\n"
        "  FROM exposures\n"
        f"  WHERE user_key IS NOT NULL AND variant IS NOT NULL{' AND experiment IS NOT NULL' if by else ''}\n"
        f"  GROUP BY {by}user_key\n"
        "),\n"
    )


def person_history_ctes(target: Target, goals: Sequence[str], value: Dimension | None, window: Window,
                        history: History) -> str:
    """From `identity_ctes` to `per_person` (`_person_history`), each followed by ",\\n": CUPED's pass alone."""
    return (identity_ctes(window) + exposures_cte(window) + assigned_cte()
            + _goal_events(target, goals, value, window, history) + _person_history(value is not None))


def _converted(by: str, users: str) -> str:
    return (
        "converted AS (\n"
        f"  SELECT {by}a.variant, g.event, a.user_key, SUM(g.value) AS value\n"
        f"  FROM {users} AS a\n"
        "  JOIN goal_events AS g ON g.user_key = a.user_key AND g.seen_at >= a.first_at\n"
        f"  GROUP BY {by}a.variant, g.event, a.user_key\n"
        "),\n"
    )


_POST = "g.counts_after AND g.seen_at >= a.first_at"
_PRE = "g.seen_at < a.first_at AND g.seen_at >= TIMESTAMP_SUB(a.first_at, INTERVAL @pre_days DAY)"


def _person_history(valued: bool) -> str:
    """`per_person`: per (variant, goal, person) who did the goal after their first exposure (inside the
    window) or in the `pre_days` before it: `value` and `converted` as `converted` has them, and CUPED's
    Y and X: for the rate, whether they converted and how often they did the goal before; for the value,
    its sums in the two periods."""
    values = (f",\n    IFNULL(SUM(IF({_POST}, g.value, NULL)), 0) AS y_value,\n"
              f"    IFNULL(SUM(IF({_PRE}, g.value, NULL)), 0) AS x_value" if valued else "")
    return (
        "per_person AS (\n"
        "  SELECT a.variant, g.event, a.user_key,\n"
        f"    SUM(IF({_POST}, g.value, NULL)) AS value, LOGICAL_OR({_POST}) AS converted,\n"
        f"    IF(LOGICAL_OR({_POST}), 1.0, 0.0) AS y_rate, CAST(COUNTIF({_PRE}) AS FLOAT64) AS x_rate{values}\n"
        "  FROM assigned AS a\n"
        f"  JOIN goal_events AS g ON g.user_key = a.user_key AND (({_POST}) OR ({_PRE}))\n"
        "  GROUP BY a.variant, g.event, a.user_key\n"
        "),\n"
    )


def _converted_of_history() -> str:
    return ("converted AS (\n"
            "  SELECT variant, event, user_key, value FROM per_person WHERE converted\n"
            "),\n")


def _figures_with_moments(goals: Sequence[str] | None, valued: bool) -> str:
    """The decision rows, then CUPED's moment rows (`cuped` true), in one answer."""
    chosen = "" if goals is not None else "\nWHERE event IN (SELECT event FROM chosen)"
    no_counts = ("CAST(NULL AS INT64) AS uuids, CAST(NULL AS INT64) AS multiple, CAST(NULL AS INT64) AS valued,\n"
                 "  CAST(NULL AS FLOAT64) AS total, CAST(NULL AS FLOAT64) AS total_squares, "
                 "CAST(NULL AS FLOAT64) AS variance")
    return (
        (",\n" + deviations_cte("per_user", "", columns="*").rstrip("\n") if valued else "")
        + ",\n" + cuped_deviations_cte("per_person", valued)
        + _per_user_select("", valued, f",\n  FALSE AS cuped, CAST(NULL AS INT64) AS active, "
                                       f"{cuped_moment_nulls(valued)}")
        + "\nUNION ALL\n"
        f"SELECT variant, event, {no_counts},\n"
        f"  TRUE AS cuped, COUNT(*) AS active,\n{cuped_moment_figures(valued)}\n"
        f"FROM cuped_deviations{chosen}\n"
        "GROUP BY variant, event"
    )


def _per_user_figures(by: str, valued: bool) -> str:
    """The decision rows from `per_user`; the variance's deviations only where there are values."""
    if not valued:
        return "\n" + _per_user_select(by, valued)
    return ",\n" + deviations_cte("per_user", by, columns="*") + _per_user_select(by, valued)


def _per_user_select(by: str, valued: bool, extra: str = "") -> str:
    """The decision figures per group, over `deviations` where there are values (else `per_user`); `extra`
    columns follow them."""
    variance = SAMPLE_VARIANCE.rstrip("\n") if valued else "  CAST(NULL AS FLOAT64) AS variance"
    return (f"SELECT {by}variant, event, COUNT(*) AS uuids, COUNTIF(multiple) AS multiple, COUNT(value) AS valued,\n"
            f"  {PRECISE_TOTAL if valued else 'SUM(value) AS total'}, SUM(value * value) AS total_squares,\n"
            f"{variance}{extra}\n"
            f"FROM {'deviations' if valued else 'per_user'}\n"
            f"GROUP BY {by}variant, event")


def _goal_events(target: Target, goals: Sequence[str] | None, value: Dimension | None, window: Window,
                 history: History | None = None) -> str:
    """The candidate goal events, with their finite value if one is asked for.

    With a `history`, events before the window are read too (CUPED's pre-period) and `counts_after`
    says which are inside it; the scan starts at `history.since` when that is known.
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
    if history is None:
        flag, scanned, carried = "", window_filter(window), ""
    else:
        flag = f",\n    (TRUE{window_filter(window)}) AS counts_after"
        scanned = "\n    AND e.received_at >= @history_since" if history.since is not None else ""
        carried = ", ANY_VALUE(counts_after) AS counts_after"
    source = (
        f"  SELECT {key}{person_of('e')} AS user_key, e.event,\n"
        f"    COALESCE(e.timestamp, e.received_at) AS seen_at, {number} AS value{flag}\n"
        "  FROM {events} AS e\n"
        + person_join("e")
        + f"  WHERE e.namespace = @namespace AND e.type = 'track' AND {chosen}{scanned}\n"
    )
    if target.unique_identities:
        return "goal_events AS (\n" + source + "),\n"
    return (
        "goal_events AS (\n"
        "  SELECT ANY_VALUE(user_key) AS user_key, ANY_VALUE(event) AS event, ANY_VALUE(seen_at) AS seen_at,\n"
        f"    ANY_VALUE(value) AS value{carried}\n"
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


def exposure_span(target: Target, namespace: str, experiment: str, window: Window = ALL_TIME) -> Query:
    """The first and the last exposure's time (`first_at`, `last_at`), for the traffic a plan assumes."""
    sql = (
        "SELECT MIN(COALESCE(e.timestamp, e.received_at)) AS first_at,\n"
        "  MAX(COALESCE(e.timestamp, e.received_at)) AS last_at\n"
        "FROM {events} AS e\n"
        f"WHERE e.namespace = @namespace AND e.type = 'track' AND e.event = '{EXPOSURE_EVENT}'\n"
        f"  AND JSON_VALUE(e.properties, '$.experiment_id') = @experiment{window_filter(window)}"
    )
    return render(target, sql, {"namespace": namespace, "experiment": experiment, **window.params()})


# ---- the experiment list, the daily series and the pickers ------------------------------------

MAX_PICKED = 100            # goals or value properties a picker lists
VALUE_SAMPLE_ROWS = 2000    # post-exposure events whose properties are read to find numeric ones


def experiment_list(target: Target, namespace: str, window: Window = ALL_TIME) -> Query:
    """Every Segment experiment of the namespace: per (experiment, variant) its people, how many of them
    saw another variant too, and the first and last exposure (client time)."""
    sql = (
        "WITH " + identity_ctes(window)
        + exposures_cte(window, every_experiment=True)
        + assigned_cte(by="experiment, ")
        + _LISTED
    )
    return render(target, sql, {"namespace": namespace, **window.params()})


def catalog_experiment_list(target: Target, namespace: str) -> Query:
    """`experiment_list` over all time from the Segment catalog (chalicelib/storage/segment_catalog.py): the
    same rows, read from its per-person exposure and link rows instead of every Segment message."""
    sql = (
        "WITH " + catalog_identity_ctes()
        + catalog_exposures_cte()
        + assigned_cte(by="experiment, ", first="first_at", last="last_at")
        + _LISTED
    )
    return render(target, sql, {"namespace": namespace})


_LISTED = (
    "counted AS (\n"
    "  SELECT experiment, variant, COUNT(*) AS participants, COUNTIF(multiple) AS multiple,\n"
    "    MIN(first_at) AS first_seen, MAX(last_at) AS last_seen\n"
    "  FROM assigned\n"
    "  GROUP BY experiment, variant\n"
    ")\n"
    "SELECT experiment, variant, participants, multiple, first_seen, last_seen FROM counted"
)


def _converted_firsts(target: Target, goals: Sequence[str] | None, window: Window) -> str:
    """`converted`: (variant, event, user_key, converted_at) each person's first goal event at or after exposure."""
    return (
        _goal_events(target, goals, None, window)
        + "converted AS (\n"
        "  SELECT a.variant, g.event, a.user_key, MIN(g.seen_at) AS converted_at\n"
        "  FROM assigned AS a\n"
        "  JOIN goal_events AS g ON g.user_key = a.user_key AND g.seen_at >= a.first_at\n"
        "  GROUP BY a.variant, g.event, a.user_key\n"
        "),\n"
    )


def daily_first_seen(target: Target, namespace: str, experiment: str, *, goals: Sequence[str] | None = None,
                     window: Window = ALL_TIME) -> Query:
    """People per (day, variant, event): exposure on the day of their first exposure, a goal on the day
    of their first such event after it (client time, UTC days). Summed over days: the results' counts."""
    sql = (
        "WITH " + identity_ctes(window)
        + exposures_cte(window)
        + assigned_cte()
        + _converted_firsts(target, goals, window)
        + _chosen_goals(goals)
        + "per_day AS (\n"
        f"  SELECT DATE(first_at) AS day, variant, '{PARTICIPATE}' AS event FROM assigned\n"
        "  UNION ALL\n"
        "  SELECT DATE(converted_at) AS day, variant, event FROM converted"
        f"{'' if goals is not None else ' WHERE event IN (SELECT event FROM chosen)'}\n"
        ")\n"
        "SELECT day, variant, event, COUNT(*) AS uuids FROM per_day GROUP BY day, variant, event"
    )
    params: dict[str, Any] = {"namespace": namespace, "experiment": experiment, **window.params()}
    if goals is not None:
        params.update({f"goal_{index}": goal for index, goal in enumerate(goals)})
    return render(target, sql, params)


def exposed_goals(target: Target, namespace: str, experiment: str, window: Window = ALL_TIME) -> Query:
    """The goal picker: track events the exposed people did at or after exposure, by people, most first."""
    sql = (
        "WITH " + identity_ctes(window)
        + exposures_cte(window)
        + assigned_cte()
        + _converted_firsts(target, None, window)
        + "picked AS (\n"
        "  SELECT event, COUNT(*) AS users FROM converted GROUP BY event\n"
        ")\n"
        f"SELECT event AS goal, users FROM picked ORDER BY users DESC, goal LIMIT {MAX_PICKED}"
    )
    return render(target, sql, {"namespace": namespace, "experiment": experiment, **window.params()})


def _exposed_properties(goals: Sequence[str] | None, window: Window) -> str:
    """`valued`: (user_key, properties) of the exposed people's track events at or after exposure."""
    chosen = (f"e.event IN ({', '.join(f'@goal_{index}' for index in range(len(goals)))})" if goals is not None
              else f"e.event IS NOT NULL AND e.event NOT IN ('{EXPOSURE_EVENT}', '{PARTICIPATE}')")
    return (
        "valued AS (\n"
        "  SELECT a.user_key, e.properties\n"
        "  FROM {events} AS e\n"
        + person_join("e")
        + f"  JOIN assigned AS a ON a.user_key = {person_of('e')}\n"
        f"  WHERE e.namespace = @namespace AND e.type = 'track' AND {chosen}{window_filter(window)}\n"
        "    AND e.properties IS NOT NULL AND COALESCE(e.timestamp, e.received_at) >= a.first_at\n"
        ")\n"
    )


def _picker_params(namespace: str, experiment: str, goals: Sequence[str] | None, window: Window) -> dict[str, Any]:
    params: dict[str, Any] = {"namespace": namespace, "experiment": experiment, **window.params()}
    if goals is not None:
        params.update({f"goal_{index}": goal for index, goal in enumerate(goals)})
    return params


def exposed_properties_sample(target: Target, namespace: str, experiment: str, *,
                              goals: Sequence[str] | None = None, window: Window = ALL_TIME) -> Query:
    """Up to VALUE_SAMPLE_ROWS `properties` of the exposed people's events after exposure: where the value
    picker looks for numeric properties (then counted exactly by `value_property_users`)."""
    sql = (
        "WITH " + identity_ctes(window) + exposures_cte(window) + assigned_cte() + _exposed_properties(goals, window)
        + f"SELECT properties FROM valued LIMIT {VALUE_SAMPLE_ROWS}"
    )
    return render(target, sql, _picker_params(namespace, experiment, goals, window))


def value_property_users(target: Target, namespace: str, experiment: str, paths: Sequence[Dimension], *,
                         goals: Sequence[str] | None = None, window: Window = ALL_TIME) -> Query:
    """One row: per path (column `users_<n>`) the exposed people with a finite number there after exposure."""
    if not paths:
        raise ValueError("paths: name at least one")
    counts = []
    for index, path in enumerate(paths):
        number = f"SAFE_CAST({path.sql('', f'path_{index}')} AS FLOAT64)"
        counts.append(f"  COUNT(DISTINCT IF({_FINITE.format(number)}, user_key, NULL)) AS users_{index}")
    sql = (
        "WITH " + identity_ctes(window) + exposures_cte(window) + assigned_cte() + _exposed_properties(goals, window)
        + "SELECT\n" + ",\n".join(counts) + "\nFROM valued"
    )
    params = _picker_params(namespace, experiment, goals, window)
    for index, path in enumerate(paths):
        params.update(path.params(f"path_{index}"))
    return render(target, sql, params)


# ---- the Segment catalog's BigQuery upkeep (chalicelib/storage/segment_catalog.py) -------------------

# The backfill's mark: a `segment_exposures` row of the empty namespace (no namespace is empty, so no list
# reads it). Written last, so a backfill interrupted half-way is run again; its rows are then appended twice,
# which changes no answer (the lists take minima and maxima, never sums).
_MARK = "namespace = ''"


def segment_catalog_backfilled(target: Target) -> Query:
    """One row: when the Segment catalog was backfilled from the events (`backfilled`), null before."""
    return render(target, f"SELECT MIN(first_at) AS backfilled FROM {{segment_exposures}} WHERE {_MARK}", {})


def backfill_segment_exposures(target: Target) -> Query:
    """Append the exposure rows of every stored Segment message: the catalog of a dataset written before it."""
    sql = ("INSERT INTO {segment_exposures} (namespace, experiment, variant, id, first_at, last_at)\n"
           + exposure_spans("{events}"))
    return render(target, sql, {})


def backfill_segment_links(target: Target) -> Query:
    sql = "INSERT INTO {segment_links} (namespace, from_id, to_id, linked_at)\n" + link_spans("{events}")
    return render(target, sql, {})


def mark_segment_catalog_backfilled(target: Target, at: datetime) -> Query:
    sql = ("INSERT INTO {segment_exposures} (namespace, experiment, variant, id, first_at, last_at)\n"
           "SELECT '', '', '', '', @at, @at")
    return render(target, sql, {"at": at})
