"""The report queries, each defined once in BigQuery Standard SQL and rendered per warehouse.

BigQuery runs the text as written; DuckDB runs sqlglot's transpilation of it (cached),
with `@name` parameters becoming `$name`. User values only ever travel as query
parameters; the only names formatted into the text are the table names, which come
from settings. Optional filters are added to the text only when given, so BigQuery
sees a plain `received_at` range and prunes partitions.

Counting (Gimel's): a variant's trials are the distinct uuids that sent `participate`
to it, a goal's successes the distinct uuids that sent that event to it. On a warehouse
that stores each identity (namespace, experiment, variant, event, uuid) once,
`COUNT(*)` is that count and costs a tenth of `COUNT(DISTINCT uuid)`. Events sent with a
client event id (`message_id`) are the exception: one uuid may hold several (two
purchases), so groups holding any are recounted by distinct uuid.

Deletion: every report ignores an experiment's events received up to its latest
tombstone in the deletions table (`experiment_counts` flags the groups concerned
instead, so the hot all-experiments report needs no per-row join).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from chalicelib.ingest.events import PARTICIPATE
from chalicelib.reports.dimensions import Dimension
from chalicelib.storage.schema import DEAD_LETTERS, DELETIONS, EVENTS, REPORT_ANSWERS

BIGQUERY = "bigquery"
DUCKDB = "duckdb"


@dataclass(frozen=True)
class Tables:
    """Table names as they appear in the SQL text (from settings, never from users)."""
    events: str
    deletions: str
    dead_letters: str = DEAD_LETTERS.name
    firsts: str = "experiment_firsts"       # the experiment catalog (chalicelib/storage/catalog.py)
    totals: str = "experiment_totals"
    segment_exposures: str = "segment_exposures"     # the Segment catalog (chalicelib/storage/segment_catalog.py)
    segment_links: str = "segment_links"
    answers: str = REPORT_ANSWERS.name      # stored answers (chalicelib/reports/stored_answers.py)


DUCKDB_TABLES = Tables(events=EVENTS.name, deletions=DELETIONS.name)


def bigquery_tables(project: str, dataset: str, events_table: str) -> Tables:
    def path(table: str) -> str:
        return f"`{project}.{dataset}.{table}`"

    return Tables(events=path(events_table), deletions=path(DELETIONS.name), dead_letters=path(DEAD_LETTERS.name),
                  firsts=path(Tables.firsts), totals=path(Tables.totals),
                  segment_exposures=path(Tables.segment_exposures), segment_links=path(Tables.segment_links),
                  answers=path(Tables.answers))


@dataclass(frozen=True)
class Target:
    """Where a query runs: the dialect, the table names, and whether identities are stored once."""
    dialect: str
    tables: Tables
    unique_identities: bool


@dataclass(frozen=True)
class Window:
    """Optional first and last day (UTC, both inclusive) of `received_at`."""
    first_day: date | None = None
    last_day: date | None = None

    def params(self) -> dict[str, datetime]:
        params = {}
        if self.first_day is not None:
            params["from_ts"] = _midnight(self.first_day)
        if self.last_day is not None:
            params["until_ts"] = _midnight(self.last_day + timedelta(days=1))
        return params


ALL_TIME = Window()


@dataclass(frozen=True)
class Query:
    sql: str
    params: dict[str, Any] = field(default_factory=dict)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


# ---------------------------------------------------------------------------
# The definitions
# ---------------------------------------------------------------------------

def experiment_counts(target: Target, namespace: str, window: Window = ALL_TIME,
                      experiment: str | None = None, scope: Sequence[str] | None = None) -> Query:
    """Distinct uuids per (experiment, variant, event), Gimel's counters, in one pass over the rows.

    One experiment, the experiments named in `scope`, or every experiment of the namespace.
    Tombstones are applied per group, not per row: `hides_rows` is true where a tombstone
    hides some of the group's rows (its first row is not after the deletion), and the
    caller recounts those experiments with `visible_experiment_counts`. Deleted rows are
    usually purged already, so the common case costs no more than a bare GROUP BY.
    Where rows are counted, `repeats_uuids` flags a group holding events with a client id
    (its row count may count a uuid more than once): the caller recounts those too.
    """
    has_experiment, has_scope = experiment is not None, scope is not None
    selection = _selection("e.", has_experiment, has_scope)
    # LOGICAL_OR costs DuckDB a third of what COUNT(e.message_id) does on the hot report.
    with_ids, repeats = ((",\n    LOGICAL_OR(e.message_id IS NOT NULL) AS with_ids", "t.with_ids")
                         if target.unique_identities else ("", "FALSE"))
    sql = (
        "WITH " + _deleted(_selection("", has_experiment, has_scope)) + ",\n"
        "totals AS (\n"
        f"  SELECT e.experiment, e.variant, e.event, {_distinct_uuids(target, 'e.')} AS uuids,\n"
        f"    MIN(e.received_at) AS first_at{with_ids}\n"
        "  FROM {events} AS e\n"
        f"  WHERE e.namespace = @namespace{selection}{window_filter(window)}\n"
        "  GROUP BY e.experiment, e.variant, e.event\n"
        ")\n"
        "SELECT t.experiment, t.variant, t.event, t.uuids, IFNULL(t.first_at <= d.deleted_at, FALSE) AS hides_rows,\n"
        f"  {repeats} AS repeats_uuids\n"
        "FROM totals AS t\n"
        "LEFT JOIN deleted AS d ON d.experiment = t.experiment"
    )
    return render(target, sql, _selection_params(namespace, window, experiment, scope))


def visible_experiment_counts(target: Target, namespace: str, window: Window = ALL_TIME,
                              experiment: str | None = None, scope: Sequence[str] | None = None,
                              repeated_uuids: bool = False) -> Query:
    """`experiment_counts` with the tombstones applied to every row: exact where they hide rows.

    `repeated_uuids`: count distinct uuids even where identities are stored once, as a
    uuid may hold several events with client ids (`experiment_counts`' `repeats_uuids`).
    """
    distinct = not target.unique_identities or repeated_uuids
    columns = "e.experiment, e.variant, e.event" + (", e.uuid" if distinct else "")
    sql = (
        _scoped(columns, experiment=experiment is not None, scope=scope is not None, window=window)
        + f"SELECT experiment, variant, event, {'COUNT(DISTINCT uuid)' if distinct else 'COUNT(*)'} AS uuids\n"
        "FROM scoped\n"
        "GROUP BY experiment, variant, event"
    )
    return render(target, sql, _selection_params(namespace, window, experiment, scope))


def _selection_params(namespace: str, window: Window, experiment: str | None,
                      scope: Sequence[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {"namespace": namespace, **window.params()}
    if experiment is not None:
        params["experiment"] = experiment
    if scope is not None:
        params["scope"] = list(scope)
    return params


def experiment_exists(target: Target, namespace: str, experiment: str) -> Query:
    """One row if the experiment has any event not hidden by a deletion, at any time."""
    sql = (_scoped("e.experiment", experiment=True, scope=False, window=ALL_TIME)
           + "SELECT 1 AS found FROM scoped LIMIT 1")
    return render(target, sql, {"namespace": namespace, "experiment": experiment})


# `cap=pNN`: the percentiles a value can be capped at. BigQuery takes PERCENTILE_CONT's percentile
# as a literal only, so the SQL spells one of these fixed texts, never the request's.
CAP_PERCENTILES = range(50, 101)
_CAP_LITERALS = {percentile: f"{percentile / 100:.2f}" for percentile in CAP_PERCENTILES}


def capped_values(source: str, columns: str, percentile: int | None) -> str:
    """`SELECT columns, value` from `source`, each per-user value winsorised at the event's `percentile`
    over every user with a value, pooled across variants; value as is when `percentile` is None."""
    if percentile is None:
        return f"SELECT {columns}, value FROM {source}"
    if percentile not in _CAP_LITERALS:
        raise ValueError(f"cap: a percentile from {CAP_PERCENTILES.start} to {CAP_PERCENTILES.stop - 1}, "
                         f"got {percentile}")
    cap = f"PERCENTILE_CONT(value, {_CAP_LITERALS[percentile]}) OVER (PARTITION BY event)"
    return f"SELECT {columns}, CASE WHEN value > {cap} THEN {cap} ELSE value END AS value FROM {source}"


def decision_counts(target: Target, namespace: str, experiment: str, window: Window = ALL_TIME,
                    dimension: Dimension | None = None, cap: int | None = None, spans: bool = False) -> Query:
    """The results view's inputs per (variant, event), with value sums per uuid.

    `uuids`: distinct uuids (participants for `participate`, successes for a goal);
    `valued`: how many of them carried a value; `total`: the sum of their per-uuid value
    sums (a user's two purchases, sent with distinct event ids, both count); `variance`:
    the sample variance of those per-uuid sums (null below two). AlephBet sends a fresh
    random uuid per event unless the page sets a user id, so successes are not matched
    against participants.

    The variance is `SAMPLE_VARIANCE`'s two-pass formula over `deviations_cte`.

    With a `dimension` (a column such as `browser`), the counts are split by its value as each
    identity was stored: the top values by participants, the rest folded into `other` (`folded_segments`).

    With `cap` (a percentile, 50..100), each per-uuid sum above the event's pooled percentile
    counts as that percentile (winsorising, `capped_values`).

    With `spans` (not with a dimension), each group also carries its first and last visible receipt
    (`first_at`, `last_at`): the verdict's traffic estimate and CUPED's history bounds come from the
    `participate` group's, and `received_at` is read for the tombstone filter anyway, so the exposure
    span costs no second scan of the experiment's rows.
    """
    if spans and dimension:
        raise ValueError("spans are read without a dimension")
    segment = f", {dimension.sql('e.', 'dimension_path')} AS segment" if dimension else ""
    first_segment = ", MIN(segment) AS segment" if dimension else ""
    columns = "e.variant, e.event, e.uuid, e.value" + (", e.received_at" if spans else "") + segment
    receipts = ", MIN(received_at) AS first_at, MAX(received_at) AS last_at" if spans else ""
    span_columns = ", first_at, last_at" if spans else ""
    if target.unique_identities:
        per_event = ""
        events_once = "scoped"
    else:
        # BigQuery's insertId dedupe is best effort: a row may be stored twice. Each event counts
        # once, with one value, before a user's events are summed. Within one experiment an event's
        # identity (`event_id`, events.event_id) is its (variant, event, uuid, client id), and the client
        # id is stored as `message_id` (null for AlephBet's own events): grouping by those columns is
        # the same as grouping by event_id without billing its 34 bytes a row (a third of the scan).
        columns = "e.message_id, " + columns
        per_event = ("events_once AS (\n"
                     f"  SELECT variant, event, uuid, MAX(value) AS value{receipts}{first_segment} FROM scoped\n"
                     "  GROUP BY variant, event, uuid, message_id\n),\n")
        events_once = "events_once"
        receipts = ", MIN(first_at) AS first_at, MAX(last_at) AS last_at" if spans else ""
    users, by, fold = "per_uuid", "", ""
    if dimension:
        fold = folded_segments("per_uuid", "variant, event, value", f"SUM(IF(s.event = '{PARTICIPATE}', 1, 0))") + ",\n"
        users, by = "folded", "segment, other, "
    per_uuid = (
        per_event
        + ("summed" if cap is not None else "per_uuid") + " AS (\n"
        f"  SELECT variant, event, uuid, SUM(value) AS value{receipts}{first_segment} FROM {events_once}\n"
        "  GROUP BY variant, event, uuid\n"
        "),\n"
        + ("per_uuid AS (\n  "
           f"{capped_values('summed', 'variant, event, uuid' + (', segment' if dimension else '') + span_columns, cap)}"
           "\n),\n" if cap is not None else "")
        + fold
        + deviations_cte(users, by, f"{by}variant, event, value{span_columns}" if spans else "")
    )
    sql = (
        _scoped(columns, experiment=True, scope=False, window=window, more_ctes=per_uuid)
        + f"SELECT {by}variant, event, COUNT(*) AS uuids, COUNT(value) AS valued, {PRECISE_TOTAL},\n"
        + ("  MIN(first_at) AS first_at, MAX(last_at) AS last_at,\n" if spans else "")
        + SAMPLE_VARIANCE
        + "FROM deviations\n"
        f"GROUP BY {by}variant, event"
    )
    params = {"namespace": namespace, "experiment": experiment, **window.params()}
    return render(target, sql, {**params, **(dimension.params("dimension_path") if dimension else {})})


# The sample variance of `value` per group, over the `deviations` CTE (`deviations_cte`): the corrected
# two-pass formula of Chan, Golub & LeVeque, "Algorithms for computing the sample variance: analysis and
# recommendations", The American Statistician 37(3), 1983, eq. 1.7: S = sum(d^2) - (sum d)^2 / k with
# d = x - mean, divided by k - 1 (null below two values). Deviations from the group mean keep values like
# 1e9 + noise exact, where the sum of squares cancels away; DuckDB's one-pass VAR_SAMP is 1e-8 off there.
SAMPLE_VARIANCE = ("  (SUM(deviation * deviation) - SUM(deviation) * SUM(deviation) / COUNT(value))\n"
                   "    / NULLIF(COUNT(value) - 1, 0) AS variance\n")


# The sum of `value` per group over the `deviations` CTE, as count x mean + the sum of deviations from
# it: the corrected two-pass mean (Chan, Golub & LeVeque 1983, the same paper, Section 3; Bjorck, "Numerical
# Methods for Least Squares Problems", 1996, 2.1.4). A plain SUM of values near 1e9 rounds every partial sum
# to the ulp of ~1e13 (1e-3..1e-2), and DuckDB adds in an order that changes from run to run (parallel
# aggregation): the mean of 20,000 such values moved by ~4e-6 between identical queries, enough to move a
# p-value on a 0.02 difference by 5e-4. The window mean carries the same rounding, but the deviations from
# it are small and exact enough that their sum puts the error back.
PRECISE_TOTAL = "MAX(group_mean) * COUNT(value) + SUM(deviation) AS total"

# CUPED's per-(variant, event) moments (`stats.cuped.Moments`) over a CTE of per-person rows with columns
# variant, event, y_rate, x_rate[, y_value, x_value]: the `cuped_deviations` CTE, then `cuped_moment_figures`.
CUPED_METRICS = ("rate", "value")


def co_moment(first: str, second: str) -> str:
    """Sum of (first - mean)(second - mean) over a group, from the per-row deviations `d_<name>`:
    the corrected two-pass formula of `SAMPLE_VARIANCE` (Chan, Golub & LeVeque 1983,
    eq. 1.7), S = sum(d_a d_b) - sum(d_a) sum(d_b) / k, in its bivariate form."""
    return f"SUM(d_{first} * d_{second}) - SUM(d_{first}) * SUM(d_{second}) / COUNT(*)"


def cuped_metrics(valued: bool) -> tuple[str, ...]:
    return CUPED_METRICS if valued else CUPED_METRICS[:1]


def cuped_deviations_cte(source: str, valued: bool) -> str:
    """`cuped_means` and `cuped_deviations`: `source`'s rows with each y_ and x_ column's deviation from its
    (variant, event) mean. The means are joined, not windowed: a hash join of a few groups costs less."""
    columns = [f"{side}_{metric}" for metric in cuped_metrics(valued) for side in ("y", "x")]
    means = ", ".join(f"AVG({column}) AS mean_{column}" for column in columns)
    deviations = ",\n".join(f"    s.{column} - m.mean_{column} AS d_{column}" for column in columns)
    return ("cuped_means AS (\n"
            f"  SELECT variant, event, {means}\n"
            f"  FROM {source}\n"
            "  GROUP BY variant, event\n"
            "),\n"
            "cuped_deviations AS (\n"
            f"  SELECT s.*,\n{deviations}\n"
            f"  FROM {source} AS s\n"
            "  JOIN cuped_means AS m ON m.variant = s.variant AND m.event = s.event\n"
            ")\n")


def cuped_moment_figures(valued: bool) -> str:
    """Per metric m: sum_y_m, sum_x_m, m2_y_m, m2_x_m, c_xy_m, over a (variant, event) group of `cuped_deviations`."""
    return ",\n".join(
        f"  SUM(y_{m}) AS sum_y_{m}, SUM(x_{m}) AS sum_x_{m}, {co_moment(f'y_{m}', f'y_{m}')} AS m2_y_{m},\n"
        f"  {co_moment(f'x_{m}', f'x_{m}')} AS m2_x_{m}, {co_moment(f'x_{m}', f'y_{m}')} AS c_xy_{m}"
        for m in cuped_metrics(valued))


def cuped_moment_nulls(valued: bool) -> str:
    """The same columns, null: rows that carry no moments."""
    return ", ".join(f"CAST(NULL AS FLOAT64) AS {name}_{m}" for m in cuped_metrics(valued)
                     for name in ("sum_y", "sum_x", "m2_y", "m2_x", "c_xy"))


def deviations_cte(source: str, by: str, columns: str = "") -> str:
    """The `deviations` CTE: each `value` of `source` less its (`by`, variant, event) group's mean
    (`group_mean`, carried for `PRECISE_TOTAL`).

    `columns` are carried along (default: the group's own, and `value`); `by` is empty or ends in ", ".
    """
    carried = columns or f"{by}variant, event, value"
    window = f"OVER (PARTITION BY {by}variant, event)"
    return ("deviations AS (\n"
            f"  SELECT {carried}, AVG(value) {window} AS group_mean, value - AVG(value) {window} AS deviation\n"
            f"  FROM {source}\n"
            ")\n")


def daily_first_seen(target: Target, namespace: str, experiment: str, window: Window = ALL_TIME) -> Query:
    """Distinct uuids per (day, variant, event), each counted on its first day only.

    Summed cumulatively over days this reaches exactly `experiment_counts`. Grouped by uuid
    on every warehouse: a uuid may hold several events (duplicates, or client event ids).
    """
    columns = "e.variant, e.event, e.uuid, e.received_at"
    firsts = ("firsts AS (\n  SELECT variant, event, uuid, MIN(DATE(received_at)) AS day FROM scoped\n"
              "  GROUP BY variant, event, uuid\n)\n")
    sql = (
        _scoped(columns, experiment=True, scope=False, window=window,
                more_ctes=firsts)
        + "SELECT day, variant, event, COUNT(*) AS uuids\n"
        "FROM firsts\n"
        "GROUP BY day, variant, event"
    )
    return render(target, sql, {"namespace": namespace, "experiment": experiment, **window.params()})


def exposure_span(target: Target, namespace: str, experiment: str, window: Window = ALL_TIME) -> Query:
    """The first and the last participation's time (`first_at`, `last_at`), for the traffic a plan assumes."""
    sql = (
        _scoped("e.event, e.received_at", experiment=True, scope=False, window=window)
        + "SELECT MIN(received_at) AS first_at, MAX(received_at) AS last_at\n"
        "FROM scoped\n"
        f"WHERE event = '{PARTICIPATE}'"
    )
    return render(target, sql, {"namespace": namespace, "experiment": experiment, **window.params()})


def record_deletion(target: Target, deletion_id: str, namespace: str, experiment: str, deleted_at: datetime) -> Query:
    """The tombstone (BigQuery records it by a streaming insert instead, visible at once)."""
    sql = (
        f"INSERT INTO {target.tables.deletions} (deletion_id, namespace, experiment, deleted_at)\n"
        "VALUES (@deletion_id, @namespace, @experiment, @deleted_at)"
    )
    return render(target, sql, {"deletion_id": deletion_id, "namespace": namespace,
                                 "experiment": experiment, "deleted_at": deleted_at})


def purge_deleted(target: Target, namespace: str, experiment: str, deleted_at: datetime) -> Query:
    """Remove the rows one tombstone hides."""
    sql = (
        f"DELETE FROM {target.tables.events}\n"
        "WHERE namespace = @namespace AND experiment = @experiment AND received_at <= @deleted_at"
    )
    return render(target, sql, {"namespace": namespace, "experiment": experiment, "deleted_at": deleted_at})


def purge_all_deleted(target: Target) -> Query:
    """Remove every row any tombstone hides (the CLI's `purge`, once BigQuery allows DML on them)."""
    sql = (
        f"DELETE FROM {target.tables.events} AS e\n"
        "WHERE EXISTS (\n"
        f"  SELECT 1 FROM {target.tables.deletions} AS d\n"
        "  WHERE d.namespace = e.namespace AND d.experiment = e.experiment AND e.received_at <= d.deleted_at\n"
        ")"
    )
    return render(target, sql, {})


def dead_letters_since(target: Target, since: datetime) -> Query:
    """How many records were dead-lettered since a moment, and the newest one's time (`status`)."""
    sql = (
        "SELECT COUNT(*) AS dead_letters, MAX(dead_lettered_at) AS newest\n"
        "FROM {dead_letters}\n"
        "WHERE dead_lettered_at >= @since"
    )
    return render(target, sql, {"since": since})


def newest_event(target: Target, since: datetime) -> Query:
    """The newest event's `received_at`, looking back only to `since` (partitions before it are not read)."""
    sql = (
        "SELECT MAX(received_at) AS newest\n"
        "FROM {events}\n"
        "WHERE received_at >= @since"
    )
    return render(target, sql, {"since": since})


# ---------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------

def _distinct_uuids(target: Target, alias: str = "") -> str:
    return "COUNT(*)" if target.unique_identities else f"COUNT(DISTINCT {alias}uuid)"


def _selection(alias: str, experiment: bool, scope: bool) -> str:
    """Which experiments a query reads; never Segment rows, whose experiment is null."""
    if experiment:
        return f" AND {alias}experiment = @experiment"
    return f" AND {alias}experiment IN UNNEST(@scope)" if scope else f" AND {alias}experiment IS NOT NULL"


def window_filter(window: Window) -> str:
    """The `received_at` conditions of a window, on events aliased `e` (nothing for an open end)."""
    text = ""
    if window.first_day is not None:
        text += "\n    AND e.received_at >= @from_ts"
    if window.last_day is not None:
        text += "\n    AND e.received_at < @until_ts"
    return text


def _deleted(selection: str) -> str:
    """The latest tombstone of each (selected) experiment of the namespace."""
    return (
        "deleted AS (\n"
        "  SELECT experiment, MAX(deleted_at) AS deleted_at\n"
        "  FROM {deletions}\n"
        f"  WHERE namespace = @namespace{selection}\n"
        "  GROUP BY experiment\n"
        ")"
    )


def _scoped(columns: str, *, experiment: bool, scope: bool, window: Window, more_ctes: str = "") -> str:
    """`WITH deleted, scoped[, more]`: the namespace's events not hidden by a tombstone."""
    return (
        "WITH " + _deleted(_selection("", experiment, scope)) + ",\n"
        "scoped AS (\n"
        f"  SELECT {columns}\n"
        "  FROM {events} AS e\n"
        "  LEFT JOIN deleted AS d ON d.experiment = e.experiment\n"
        f"  WHERE e.namespace = @namespace{_selection('e.', experiment, scope)}{window_filter(window)}\n"
        "    AND (d.deleted_at IS NULL OR e.received_at > d.deleted_at)\n"
        ")"
        + (",\n" + more_ctes if more_ctes else "\n")
    )


TOP_SEGMENTS = 20    # a breakdown keeps the values with the most participants; the rest are folded into one


def folded_segments(source: str, columns: str, participants: str = "COUNT(*)") -> str:
    """CTEs `ranked` and `folded` over a CTE of per-user rows with a `segment` column.

    `ranked` places each segment by its participants (`participants`: an aggregate over `s`,
    the source's rows); `folded` is `source`'s rows (`columns` of them) with `segment` kept for
    the TOP_SEGMENTS first and null for the rest, which have `other` true. Folding users, not
    their counts, keeps every figure computed from them exact, whatever the figure. Only the
    distinct segments are sorted; rows find their place by a hash join (the null segment, which
    no join matches, by a one-row subquery).
    """
    qualified = ", ".join(f"s.{column.strip()}" for column in columns.split(","))
    place = "COALESCE(r.place, (SELECT n.place FROM ranked AS n WHERE n.segment IS NULL))"
    return (
        "ranked AS (\n"
        f"  SELECT s.segment, ROW_NUMBER() OVER (ORDER BY {participants} DESC, s.segment) AS place\n"
        f"  FROM {source} AS s\n"
        "  GROUP BY s.segment\n"
        "),\n"
        "folded AS (\n"
        f"  SELECT IF({place} <= {TOP_SEGMENTS}, s.segment, NULL) AS segment, {place} > {TOP_SEGMENTS} AS other,\n"
        f"    {qualified}\n"
        f"  FROM {source} AS s\n"
        "  LEFT JOIN ranked AS r ON r.segment = s.segment\n"
        ")"
    )


def render(target: Target, bigquery_sql: str, params: dict[str, Any]) -> Query:
    """BigQuery SQL with the target's tables, in the target's dialect."""
    sql = (bigquery_sql.replace("{events}", target.tables.events).replace("{deletions}", target.tables.deletions)
           .replace("{dead_letters}", target.tables.dead_letters).replace("{firsts}", target.tables.firsts)
           .replace("{totals}", target.tables.totals).replace("{segment_exposures}", target.tables.segment_exposures)
           .replace("{segment_links}", target.tables.segment_links).replace("{answers}", target.tables.answers))
    if target.dialect == BIGQUERY:
        return Query(sql, params)
    if target.dialect == DUCKDB:
        return Query(to_duckdb(sql), params)
    raise ValueError(f"no rendering for the {target.dialect!r} dialect")


@lru_cache(maxsize=256)
def to_duckdb(bigquery_sql: str) -> str:
    """Transpile once per distinct text: the texts differ only by which filters are present."""
    import sqlglot  # a development dependency: the Lambda package runs BigQuery's text as is

    return sqlglot.transpile(bigquery_sql, read="bigquery", write="duckdb")[0]


def experiment_spans(target: Target, namespace: str, window: Window = ALL_TIME,
                     scope: Sequence[str] | None = None) -> Query:
    """The first and last arrival (`received_at`) of each AlephBet experiment's visible events (of those
    named in `scope`, when given)."""
    sql = (
        _scoped("e.experiment, e.received_at", experiment=False, scope=scope is not None, window=window)
        + "SELECT experiment, MIN(received_at) AS first_seen, MAX(received_at) AS last_seen\n"
        "FROM scoped\n"
        "GROUP BY experiment"
    )
    return render(target, sql, _selection_params(namespace, window, None, scope))
