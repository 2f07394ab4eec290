"""The report queries: one BigQuery definition each, pinned as text, and run for real on DuckDB."""
from __future__ import annotations

import re
import statistics
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

import pytest
import sqlglot
from sqlglot import exp

from chalicelib.reports import queries
from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse
from chalicelib.ingest.events import Event, stamp
from chalicelib.reports.queries import Query, Target, Window

BQ_UNIQUE = Target(queries.BIGQUERY, queries.bigquery_tables("proj", "analytics", "events"), unique_identities=True)
BQ = Target(queries.BIGQUERY, queries.bigquery_tables("proj", "analytics", "events"), unique_identities=False)
DUCK = Target(queries.DUCKDB, queries.DUCKDB_TABLES, unique_identities=True)
DUCK_DISTINCT = Target(queries.DUCKDB, queries.DUCKDB_TABLES, unique_identities=False)
MAY = Window(date(2024, 5, 1), date(2024, 5, 31))
HOSTILE = ["'; DROP TABLE events; --", '" OR 1=1', "back\\slash\\", "emoji 🧪🔥", "x" * 256]
MOMENT = datetime(2024, 5, 2, 12, tzinfo=timezone.utc)

Builder = Callable[[Target, str, str, Window], Query]
READS: dict[str, Builder] = {
    "all experiments": lambda t, ns, ex, w: queries.experiment_counts(t, ns, w),
    "scoped experiments": lambda t, ns, ex, w: queries.experiment_counts(t, ns, w, scope=[ex, "other"]),
    "one experiment": lambda t, ns, ex, w: queries.experiment_counts(t, ns, w, experiment=ex),
    "visible counts": lambda t, ns, ex, w: queries.visible_experiment_counts(t, ns, w, scope=[ex, "other"]),
    "visible one experiment": lambda t, ns, ex, w: queries.visible_experiment_counts(t, ns, w, experiment=ex),
    "results": lambda t, ns, ex, w: queries.decision_counts(t, ns, ex, w),
    "daily": lambda t, ns, ex, w: queries.daily_first_seen(t, ns, ex, w),
}
WRITES: dict[str, Builder] = {
    "exists": lambda t, ns, ex, w: queries.experiment_exists(t, ns, ex),
    "tombstone": lambda t, ns, ex, w: queries.record_deletion(t, "id", ns, ex, MOMENT),
    "purge one": lambda t, ns, ex, w: queries.purge_deleted(t, ns, ex, MOMENT),
    "purge all": lambda t, ns, ex, w: queries.purge_all_deleted(t),
}
SPANS: dict[str, Builder] = {"exposure span": lambda t, ns, ex, w: queries.exposure_span(t, ns, ex, w)}
EVERY = {**READS, **WRITES, **SPANS}
ROW_FILTERED = ["visible counts", "visible one experiment", "results", "daily"]


def _tables(sql: str) -> set[str]:
    tree = sqlglot.parse_one(sql, read="bigquery")
    ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
    return {".".join(part for part in (t.catalog, t.db, t.name) if part)
            for t in tree.find_all(exp.Table) if t.name not in ctes}


# ---- the BigQuery text ---------------------------------------------------------------------

@pytest.mark.parametrize("target", [BQ, BQ_UNIQUE], ids=["distinct", "unique"])
@pytest.mark.parametrize("window", [queries.ALL_TIME, MAY, Window(date(2024, 5, 1)), Window(None, date(2024, 5, 1))],
                         ids=["all time", "from-to", "from", "to"])
@pytest.mark.parametrize("name", list(EVERY))
def test_every_bigquery_query_parses_as_bigquery_sql(name, window, target):
    sqlglot.parse_one(EVERY[name](target, "alephbet", "checkout", window).sql, read="bigquery")


@pytest.mark.parametrize("name", list(EVERY))
def test_bigquery_queries_read_backticked_project_dataset_tables(name):
    sql = EVERY[name](BQ, "alephbet", "checkout", MAY).sql
    assert _tables(sql) <= {"proj.analytics.events", "proj.analytics.deletions"}
    assert "`proj.analytics.events`" in sql or "`proj.analytics.deletions`" in sql


@pytest.mark.parametrize("name", list(READS))
def test_reads_honour_the_tombstones(name):
    assert _tables(READS[name](BQ, "alephbet", "checkout", MAY).sql) == {"proj.analytics.events",
                                                                          "proj.analytics.deletions"}


@pytest.mark.parametrize("name", list(READS))
def test_a_date_window_filters_the_partition_column_from_the_first_midnight_to_the_one_after_the_last_day(name):
    query = READS[name](BQ, "alephbet", "checkout", MAY)
    assert "e.received_at >= @from_ts" in query.sql and "e.received_at < @until_ts" in query.sql
    assert query.params["from_ts"] == datetime(2024, 5, 1, tzinfo=timezone.utc)
    assert query.params["until_ts"] == datetime(2024, 6, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("name", list(READS))
def test_without_a_window_there_is_no_received_at_range(name):
    query = READS[name](BQ, "alephbet", "checkout", queries.ALL_TIME)
    assert "@from_ts" not in query.sql and "@until_ts" not in query.sql
    assert "from_ts" not in query.params and "until_ts" not in query.params


@pytest.mark.parametrize("target", [BQ, DUCK], ids=["bigquery", "duckdb"])
@pytest.mark.parametrize("name", list(EVERY))
@pytest.mark.parametrize("hostile", HOSTILE, ids=["drop table", "or 1=1", "backslashes", "emoji", "256 chars"])
def test_user_values_travel_only_as_parameters(hostile, name, target):
    query = EVERY[name](target, hostile, hostile, MAY)
    assert hostile not in query.sql
    if name != "purge all":
        assert hostile in query.params.values() or [hostile, "other"] in query.params.values()


# The counters; the others group by uuid on every warehouse (a uuid may hold several events
# with client ids): the daily first days, the results' per-uuid sums.
ROW_COUNTERS = ["all experiments", "scoped experiments", "one experiment", "visible counts", "visible one experiment"]


@pytest.mark.parametrize("name", ROW_COUNTERS)
def test_warehouses_storing_identities_once_count_rows_others_count_distinct_uuids(name):
    distinct = READS[name](BQ, "ns", "x", MAY).sql
    assert re.search(r"COUNT\(DISTINCT (e\.)?uuid\)", distinct)
    unique = sqlglot.parse_one(READS[name](BQ_UNIQUE, "ns", "x", MAY).sql, read="bigquery")
    assert "uuid" not in {column.name for column in unique.find_all(exp.Column)}    # not even read


@pytest.mark.parametrize("name", [name for name in READS if name not in ROW_COUNTERS])
def test_the_other_reads_count_distinct_uuids_on_every_warehouse(name):
    for target in (BQ, BQ_UNIQUE):
        sql = READS[name](target, "ns", "x", MAY).sql
        assert re.search(r"COUNT\(DISTINCT (e\.)?uuid\)", sql) or "GROUP BY variant, event, uuid" in sql


def test_counting_rows_flags_the_groups_holding_events_with_client_ids(warehouse):
    warehouse.insert_events([stored("checkout", "red", "buy", "u1", at(3), 5.0, client_id="order-1"),
                             stored("checkout", "red", "buy", "u1", at(3), 6.0, client_id="order-2")])
    flagged = {row[:3]: row[5] for row in run(warehouse, queries.experiment_counts(DUCK, "alephbet"))}
    assert {group for group, repeats in flagged.items() if repeats} == {("checkout", "red", "buy")}
    recount = queries.visible_experiment_counts(DUCK, "alephbet", repeated_uuids=True)
    assert ("checkout", "red", "buy", 1) in counted(warehouse, recount)


def test_the_bigquery_results_query_dedupes_events_then_sums_values_per_uuid():
    assert queries.decision_counts(BQ, "alephbet", "checkout", queries.ALL_TIME).sql == """\
WITH deleted AS (
  SELECT experiment, MAX(deleted_at) AS deleted_at
  FROM `proj.analytics.deletions`
  WHERE namespace = @namespace AND experiment = @experiment
  GROUP BY experiment
),
scoped AS (
  SELECT e.message_id, e.variant, e.event, e.uuid, e.value
  FROM `proj.analytics.events` AS e
  LEFT JOIN deleted AS d ON d.experiment = e.experiment
  WHERE e.namespace = @namespace AND e.experiment = @experiment
    AND (d.deleted_at IS NULL OR e.received_at > d.deleted_at)
),
events_once AS (
  SELECT variant, event, uuid, MAX(value) AS value FROM scoped
  GROUP BY variant, event, uuid, message_id
),
per_uuid AS (
  SELECT variant, event, uuid, SUM(value) AS value FROM events_once
  GROUP BY variant, event, uuid
),
deviations AS (
  SELECT variant, event, value, AVG(value) OVER (PARTITION BY variant, event) AS group_mean, value - AVG(value) OVER (PARTITION BY variant, event) AS deviation
  FROM per_uuid
)
SELECT variant, event, COUNT(*) AS uuids, COUNT(value) AS valued, MAX(group_mean) * COUNT(value) + SUM(deviation) AS total,
  (SUM(deviation * deviation) - SUM(deviation) * SUM(deviation) / COUNT(value))
    / NULLIF(COUNT(value) - 1, 0) AS variance
FROM deviations
GROUP BY variant, event"""


def test_the_duckdb_text_is_transpiled_once_per_shape():
    queries.to_duckdb.cache_clear()
    for namespace in ("a", "b", "c"):
        queries.experiment_counts(DUCK, namespace, MAY)
    assert queries.to_duckdb.cache_info().misses == 1


# ---- the DuckDB rendering, run for real --------------------------------------------------------

def at(day: int, hour: int = 12) -> datetime:
    return datetime(2024, 5, day, hour, tzinfo=timezone.utc)


def stored(experiment: str, variant: str, event: str, uuid: str, when: datetime, value: float | None = None,
           namespace: str = "alephbet", client_id: str | None = None):
    return stamp(Event(namespace, experiment, variant, event, uuid, value, client_id), when)


SEED = [
    stored("checkout", "red", "participate", "u1", at(1)),
    stored("checkout", "red", "participate", "u2", at(1)),
    stored("checkout", "red", "buy", "u1", at(2), 10.0),
    stored("checkout", "blue", "participate", "u3", at(2)),
    stored("checkout", "blue", "buy", "u3", at(4), 4.0),
    stored("checkout", "blue", "buy", "u4", at(4)),
    stored("checkout", "green", "click", "u5", at(3)),
    stored("other", "red", "participate", "u1", at(1)),
    stored("checkout", "red", "participate", "u9", at(1), namespace="elsewhere"),
]


@pytest.fixture
def warehouse(tmp_path) -> DuckDBWarehouse:
    store = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    store.insert_events(SEED)
    yield store
    store.close()


def run(warehouse: DuckDBWarehouse, query: Query) -> list[tuple[Any, ...]]:
    return sorted(tuple(row.values()) for row in warehouse.fetch(query.sql, query.params))


COUNTS = {"one pass": queries.experiment_counts, "row by row": queries.visible_experiment_counts}


def counted(warehouse: DuckDBWarehouse, query: Query) -> list[tuple[Any, ...]]:
    """(experiment, variant, event, uuids), whichever of the two counting queries ran."""
    return [row[:4] for row in run(warehouse, query)]


@pytest.mark.parametrize("count", list(COUNTS.values()), ids=list(COUNTS))
def test_counts_are_distinct_uuids_per_experiment_variant_and_event(warehouse, count):
    assert counted(warehouse, count(DUCK, "alephbet")) == [
        ("checkout", "blue", "buy", 2), ("checkout", "blue", "participate", 1), ("checkout", "green", "click", 1),
        ("checkout", "red", "buy", 1), ("checkout", "red", "participate", 2), ("other", "red", "participate", 1),
    ]


@pytest.mark.parametrize("count", list(COUNTS.values()), ids=list(COUNTS))
def test_scope_and_experiment_select_what_they_name(warehouse, count):
    scoped = counted(warehouse, count(DUCK, "alephbet", scope=["other", "missing"]))
    assert scoped == [("other", "red", "participate", 1)]
    assert counted(warehouse, count(DUCK, "alephbet", experiment="other")) == scoped


@pytest.mark.parametrize("count", list(COUNTS.values()), ids=list(COUNTS))
def test_a_window_keeps_the_events_received_on_its_days(warehouse, count):
    rows = counted(warehouse, count(DUCK, "alephbet", Window(date(2024, 5, 2), date(2024, 5, 3))))
    assert rows == [("checkout", "blue", "participate", 1), ("checkout", "green", "click", 1),
                    ("checkout", "red", "buy", 1)]


def test_the_one_pass_count_flags_the_groups_a_tombstone_hides_rows_of(warehouse):
    _delete(warehouse, "checkout", at(2))        # hides what arrived on day 1 and at noon on day 2
    flagged = {row[:3]: row[4] for row in run(warehouse, queries.experiment_counts(DUCK, "alephbet"))}
    assert flagged == {
        ("checkout", "red", "participate"): True, ("checkout", "red", "buy"): True,
        ("checkout", "blue", "participate"): True, ("checkout", "blue", "buy"): False,
        ("checkout", "green", "click"): False, ("other", "red", "participate"): False,
    }


def test_results_inputs_carry_valued_uuids_their_total_and_variance(warehouse):
    rows = run(warehouse, queries.decision_counts(DUCK, "alephbet", "checkout"))
    assert rows == [
        ("blue", "buy", 2, 1, 4.0, None), ("blue", "participate", 1, 0, None, None),
        ("green", "click", 1, 0, None, None),
        ("red", "buy", 1, 1, 10.0, None), ("red", "participate", 2, 0, None, None),
    ]


PURCHASES = [   # u1 buys twice, u2 once (and retries it), u3 once without an id, u4 buys nothing
    stored("shop", "red", "buy", "u1", at(1), 10.0, client_id="order-1"),
    stored("shop", "red", "buy", "u1", at(2), 25.0, client_id="order-2"),
    stored("shop", "red", "buy", "u2", at(1), 5.0, client_id="order-3"),
    stored("shop", "red", "buy", "u2", at(3), 5.0, client_id="order-3"),
    stored("shop", "red", "buy", "u3", at(2), 7.0),
    stored("shop", "red", "buy", "u4", at(2)),
]


@pytest.mark.parametrize("target", [DUCK, DUCK_DISTINCT], ids=["duckdb", "bigquery rendering"])
def test_a_users_purchases_are_summed_and_a_retried_one_counts_once(tmp_path, target):
    store = DuckDBWarehouse(tmp_path / "purchases.duckdb")
    try:
        store.insert_events(PURCHASES)
        ((variant, event, uuids, valued, total, variance),) = run(store, queries.decision_counts(
            target, "alephbet", "shop"))
        assert (variant, event, uuids, valued, total) == ("red", "buy", 4, 3, 47.0)
        assert variance == pytest.approx(statistics.variance([35.0, 5.0, 7.0]), rel=1e-12)
    finally:
        store.close()


def test_the_bigquery_rendering_counts_a_duplicated_row_of_a_purchase_once(tmp_path):
    """BigQuery may keep a retried row twice (same event_id); the sum must not double it, and a user's two
    purchases with distinct client ids (stored as message_id) stay two."""
    store = DuckDBWarehouse(tmp_path / "purchases.duckdb")
    try:
        store.insert_events(PURCHASES)
        store.execute("CREATE TABLE events_twice AS SELECT * FROM events UNION ALL SELECT * FROM events")
        twice = Target(queries.DUCKDB, queries.Tables("events_twice", "deletions"), unique_identities=False)
        assert run(store, queries.decision_counts(twice, "alephbet", "shop")) == \
            run(store, queries.decision_counts(DUCK, "alephbet", "shop"))
        assert run(store, queries.decision_counts(twice, "alephbet", "shop"))[0][4] == 47.0
    finally:
        store.close()


def test_the_exposure_span_is_the_first_and_last_participation(warehouse):
    assert run(warehouse, queries.exposure_span(DUCK, "alephbet", "checkout")) == [(at(1), at(2))]
    assert run(warehouse, queries.exposure_span(DUCK, "alephbet", "checkout", Window(date(2024, 5, 2)))) == [
        (at(2), at(2))]


def test_daily_counts_each_uuid_on_its_day(warehouse):
    rows = run(warehouse, queries.daily_first_seen(DUCK, "alephbet", "checkout"))
    assert rows == [
        (date(2024, 5, 1), "red", "participate", 2), (date(2024, 5, 2), "blue", "participate", 1),
        (date(2024, 5, 2), "red", "buy", 1), (date(2024, 5, 3), "green", "click", 1),
        (date(2024, 5, 4), "blue", "buy", 2),
    ]


@pytest.mark.parametrize("name", list(READS))
def test_counting_rows_and_counting_distinct_uuids_agree_where_identities_are_stored_once(warehouse, name):
    build = READS[name]
    assert run(warehouse, build(DUCK, "alephbet", "checkout", MAY)) == \
        run(warehouse, build(DUCK_DISTINCT, "alephbet", "checkout", MAY))


@pytest.mark.parametrize("name", list(READS))
def test_the_distinct_rendering_ignores_duplicate_rows_as_bigquery_may_keep_them(warehouse, name):
    """BigQuery's insertId dedup is best effort: a retried row may be stored twice, on a later day."""
    warehouse.execute("CREATE TABLE events_twice AS SELECT * FROM events UNION ALL "
                      "SELECT * REPLACE (received_at + INTERVAL 1 DAY AS received_at, value * 2 AS value) FROM events")
    twice = Target(queries.DUCKDB, queries.Tables("events_twice", "deletions"), unique_identities=False)
    build = READS[name]
    expected = run(warehouse, build(DUCK, "alephbet", "checkout", queries.ALL_TIME))
    if name == "results":   # one value per uuid: the larger of the two copies
        expected = [row[:4] + (row[4] and row[4] * 2, row[5] and row[5] * 4) for row in expected]
    assert run(warehouse, build(twice, "alephbet", "checkout", queries.ALL_TIME)) == expected


def _delete(warehouse: DuckDBWarehouse, experiment: str, deleted_at: datetime, deletion_id: str = "d1") -> None:
    record = queries.record_deletion(DUCK, deletion_id, "alephbet", experiment, deleted_at)
    warehouse.execute(record.sql, record.params)


@pytest.mark.parametrize("name", ROW_FILTERED)
def test_reads_ignore_events_received_up_to_the_latest_tombstone(warehouse, name):
    _delete(warehouse, "checkout", at(1, 23), "early")
    _delete(warehouse, "checkout", at(2, 12), "latest")      # exactly the red buy's moment: hidden too
    build = READS[name]
    visible = [event for event in SEED if not (event.experiment == "checkout" and event.received_at <= at(2, 12))]
    expected_store = DuckDBWarehouse(warehouse.path + ".expected")
    try:
        expected_store.insert_events(visible)
        assert run(warehouse, build(DUCK, "alephbet", "checkout", queries.ALL_TIME)) == \
            run(expected_store, build(DUCK, "alephbet", "checkout", queries.ALL_TIME))
    finally:
        expected_store.close()


def test_a_tombstone_hides_only_its_own_namespace_and_experiment(warehouse):
    _delete(warehouse, "other", at(9))
    visible = queries.visible_experiment_counts
    assert ("other", "red", "participate", 1) not in run(warehouse, visible(DUCK, "alephbet"))
    assert run(warehouse, visible(DUCK, "elsewhere")) == [("checkout", "red", "participate", 1)]
    assert len(run(warehouse, visible(DUCK, "alephbet", experiment="checkout"))) == 5


def test_exists_sees_any_visible_event_whatever_the_window(warehouse):
    assert run(warehouse, queries.experiment_exists(DUCK, "alephbet", "other")) == [(1,)]
    assert run(warehouse, queries.experiment_exists(DUCK, "alephbet", "missing")) == []
    _delete(warehouse, "other", at(9))
    assert run(warehouse, queries.experiment_exists(DUCK, "alephbet", "other")) == []


def test_purging_one_deletion_removes_exactly_the_rows_it_hides(warehouse):
    purge = queries.purge_deleted(DUCK, "alephbet", "checkout", at(2))
    warehouse.execute(purge.sql, purge.params)
    remaining = warehouse.fetch("SELECT experiment, uuid, event FROM events ORDER BY ALL")
    assert [tuple(r.values()) for r in remaining] == [
        ("checkout", "u3", "buy"), ("checkout", "u4", "buy"), ("checkout", "u5", "click"),
        ("checkout", "u9", "participate"), ("other", "u1", "participate"),
    ]


def test_purging_everything_removes_the_rows_every_tombstone_hides(warehouse):
    _delete(warehouse, "checkout", at(2), "a")
    _delete(warehouse, "other", at(9), "b")
    purge = queries.purge_all_deleted(DUCK)
    warehouse.execute(purge.sql, purge.params)
    remaining = warehouse.fetch("SELECT namespace, uuid, event FROM events ORDER BY ALL")
    assert [tuple(r.values()) for r in remaining] == [
        ("alephbet", "u3", "buy"), ("alephbet", "u4", "buy"), ("alephbet", "u5", "click"),
        ("elsewhere", "u9", "participate"),
    ]


@pytest.mark.parametrize("hostile", HOSTILE, ids=["drop table", "or 1=1", "backslashes", "emoji", "256 chars"])
def test_hostile_names_are_matched_as_literal_strings(tmp_path, hostile):
    store = DuckDBWarehouse(tmp_path / "hostile.duckdb")
    try:
        store.insert_events([stored(hostile, hostile, "participate", "u1", at(1), namespace=hostile),
                             stored(hostile, hostile, hostile, "u1", at(1), namespace=hostile)])
        assert counted(store, queries.experiment_counts(DUCK, hostile, scope=[hostile])) == sorted([
            (hostile, hostile, "participate", 1), (hostile, hostile, hostile, 1)])
        assert run(store, queries.experiment_counts(DUCK, "alephbet")) == []
        assert store.fetch("SELECT COUNT(*) AS n FROM events")[0]["n"] == 2
    finally:
        store.close()


def test_every_day_of_a_window_is_a_whole_utc_day(warehouse):
    late = stored("checkout", "red", "click", "u1", datetime(2024, 5, 2, 23, 59, 59, 999999, tzinfo=timezone.utc))
    warehouse.insert_events([late])
    rows = counted(warehouse, queries.experiment_counts(DUCK, "alephbet", Window(None, date(2024, 5, 2))))
    assert ("checkout", "red", "click", 1) in rows
    rows = counted(warehouse, queries.experiment_counts(DUCK, "alephbet", Window(date(2024, 5, 2) + timedelta(days=1))))
    assert ("checkout", "red", "click", 1) not in rows


# ---- Segment rows share the table: AlephBet's answers do not change -----------------------------

def _segment_rows(namespace: str) -> list:
    from tests.segment_rows import exposure, segment_row, track

    return [
        exposure("checkout", "red", "s1", at(1), namespace=namespace),
        track("participate", "s1", at(2), namespace=namespace),
        track("buy", "s1", at(3), namespace=namespace, properties={"revenue": 5}),
        segment_row("page", None, anonymous_id="a1", at=at(2), namespace=namespace),
        segment_row("identify", None, user_id="s1", at=at(2), namespace=namespace),
    ]


@pytest.mark.parametrize("target", [DUCK, DUCK_DISTINCT], ids=["unique", "distinct"])
@pytest.mark.parametrize("name", list(READS) + ["exists"])
def test_segment_rows_in_the_namespace_leave_every_alephbet_answer_unchanged(warehouse, tmp_path, name, target):
    build = EVERY[name]
    alone = [run(warehouse, build(target, "alephbet", experiment, window))
             for experiment in ("checkout", "other", "missing") for window in (queries.ALL_TIME, MAY)]
    warehouse.insert_events(_segment_rows("alephbet"))
    mixed = [run(warehouse, build(target, "alephbet", experiment, window))
             for experiment in ("checkout", "other", "missing") for window in (queries.ALL_TIME, MAY)]
    assert mixed == alone


@pytest.mark.parametrize("name", ["purge one", "purge all"])
def test_purging_a_deletion_never_removes_segment_rows(warehouse, name):
    segment = _segment_rows("alephbet")
    warehouse.insert_events(segment)
    _delete(warehouse, "checkout", at(9))
    purge = EVERY[name](DUCK, "alephbet", "checkout", queries.ALL_TIME)
    warehouse.execute(purge.sql, purge.params)
    kept = warehouse.fetch("SELECT COUNT(*) AS n FROM events WHERE experiment IS NULL")[0]["n"]
    assert kept == len(segment)


# ---- Segment results, breakdowns and event analytics: the same rules ------------------------------

from chalicelib.reports import analytics_queries, segment_queries  # noqa: E402
from chalicelib.reports.dimensions import parse_dimension, parse_json_path  # noqa: E402

PLAN = parse_dimension("context.page.path")
REVENUE = parse_json_path("properties.revenue")
BROWSER = parse_dimension("browser")
START, END = datetime(2024, 5, 1, tzinfo=timezone.utc), datetime(2024, 6, 1, tzinfo=timezone.utc)

NEW_READS: dict[str, Builder] = {
    "segment results": lambda t, ns, ex, w: segment_queries.experiment_decision_counts(
        t, ns, ex, goals=[ex, "other"], value=REVENUE, dimension=PLAN, window=w),
    "segment results, default goals": lambda t, ns, ex, w: segment_queries.experiment_decision_counts(
        t, ns, ex, window=w),
    "results by browser": lambda t, ns, ex, w: queries.decision_counts(t, ns, ex, w, BROWSER),
    "event names": lambda t, ns, ex, w: analytics_queries.event_names(t, ns, w),
}
ANALYTICS_SERIES: dict[str, Builder] = {
    "event series": lambda t, ns, ex, w: analytics_queries.event_series(t, ns, START, END, "hour", ex, PLAN),
    "all events series": lambda t, ns, ex, w: analytics_queries.event_series(t, ns, START, END, "day"),
}
NEW = {**NEW_READS, **ANALYTICS_SERIES,
       "segment seen": lambda t, ns, ex, w: segment_queries.experiment_seen(t, ns, ex)}


@pytest.mark.parametrize("target", [BQ, BQ_UNIQUE], ids=["distinct", "unique"])
@pytest.mark.parametrize("window", [queries.ALL_TIME, MAY], ids=["all time", "from-to"])
@pytest.mark.parametrize("name", list(NEW))
def test_every_new_bigquery_query_parses_and_reads_backticked_tables(name, window, target):
    sql = NEW[name](target, "default", "checkout", window).sql
    sqlglot.parse_one(sql, read="bigquery")
    assert _tables(sql) <= {"proj.analytics.events", "proj.analytics.deletions"}


@pytest.mark.parametrize("name", list(NEW_READS))
def test_a_window_on_a_new_query_filters_the_partition_column(name):
    query = NEW_READS[name](BQ, "default", "checkout", MAY)
    assert "e.received_at >= @from_ts" in query.sql and "e.received_at < @until_ts" in query.sql
    assert "@from_ts" not in NEW_READS[name](BQ, "default", "checkout", queries.ALL_TIME).sql


@pytest.mark.parametrize("name", list(ANALYTICS_SERIES))
def test_event_series_always_filter_the_partition_column_and_the_event_time(name):
    query = ANALYTICS_SERIES[name](BQ, "default", "Signed Up", queries.ALL_TIME)
    assert "e.received_at >= @from_ts AND e.received_at < @until_ts" in query.sql
    assert "COALESCE(e.timestamp, e.received_at) >= @from_ts" in query.sql
    assert (query.params["from_ts"], query.params["until_ts"]) == (START, END)


@pytest.mark.parametrize("target", [BQ, DUCK], ids=["bigquery", "duckdb"])
@pytest.mark.parametrize("name", [name for name in NEW if name not in ("event names", "all events series")])
@pytest.mark.parametrize("hostile", HOSTILE, ids=["drop table", "or 1=1", "backslashes", "emoji", "256 chars"])
def test_new_queries_take_user_values_only_as_parameters(hostile, name, target):
    query = NEW[name](target, hostile, hostile, MAY)
    assert hostile not in query.sql
    assert hostile in query.params.values() or [hostile, "other"] in query.params.values()


@pytest.mark.parametrize("name", ["segment results", "event series"])
def test_json_paths_travel_as_parameters_never_in_the_text(name):
    query = NEW[name](BQ, "default", "checkout", MAY)
    # The events' own name for an unnamed page reads a fixed path (analytics_queries.EVENT_NAME); not the user's.
    text = query.sql.replace(analytics_queries.EVENT_NAME, "").replace(analytics_queries.PAGE_PATH, "")
    assert "page.path" not in text and "revenue" not in text
    assert "$.page.path" in query.params.values()
    if name == "segment results":
        assert query.params["value_path"] == "$.revenue" and query.params["dimension_path"] == "$.page.path"


def test_the_segment_results_bigquery_text_is_pinned():
    sql = NEW["segment results"](BQ_UNIQUE, "default", "checkout", MAY).sql
    for fragment in [
        "e.type = 'track' AND e.event = 'Experiment Viewed'",
        "JSON_VALUE(e.properties, '$.experiment_id') = @experiment",
        "JSON_VALUE(e.properties, '$.variation_id') AS variant",
        "COALESCE(p_e.person, e.user_id, e.anonymous_id) AS user_key",
        "LEFT JOIN people AS p_e ON p_e.id = COALESCE(e.user_id, e.anonymous_id)",
        "COALESCE(e.timestamp, e.received_at) AS seen_at, JSON_VALUE(e.context, @dimension_path) AS segment",
        "MIN_BY(segment, seen_at) AS segment",
        "MIN(seen_at) AS first_at, MIN_BY(variant, seen_at) AS variant",
        "JOIN goal_events AS g ON g.user_key = a.user_key AND g.seen_at >= a.first_at",
        "SAFE_CAST(JSON_VALUE(e.properties, @value_path) AS FLOAT64)",
        "e.event IN (@goal_0, @goal_1)",
        "ROW_NUMBER() OVER (ORDER BY COUNT(*) DESC, s.segment) AS place",
        "LEFT JOIN ranked AS r ON r.segment = s.segment",
        f"<= {queries.TOP_SEGMENTS}, s.segment, NULL) AS segment",
    ]:
        assert fragment in sql, fragment


def test_the_event_series_bigquery_text_is_pinned():
    sql = NEW["event series"](BQ_UNIQUE, "default", "Signed Up", MAY).sql
    for fragment in [
        "TIMESTAMP_TRUNC(COALESCE(e.timestamp, e.received_at), HOUR) AS bucket",
        "COALESCE(e.user_id, e.anonymous_id, e.uuid) AS user_key",
        "JSON_VALUE(e.context, @group_path) AS grp",
        "e.event = @event",
        "(e.type IS NULL OR e.type IN ('track', 'page'))",
        "GROUP BY GROUPING SETS ((bucket, grp, other), (grp, other), ())",
        "(d.deleted_at IS NULL OR e.received_at > d.deleted_at)",
        "COUNT(*) AS events, COUNT(DISTINCT user_key) AS users",
    ]:
        assert fragment in sql, fragment
    assert "COUNT(DISTINCT event_id) AS events" in NEW["event series"](BQ, "default", "x", MAY).sql


def test_a_cap_is_bigquerys_percentile_cont_over_the_event_with_a_fixed_literal():
    capped = queries.decision_counts(BQ, "alephbet", "checkout", queries.ALL_TIME, cap=99).sql
    assert "CASE WHEN value > PERCENTILE_CONT(value, 0.99) OVER (PARTITION BY event)" in capped
    assert "PERCENTILE_CONT" not in queries.decision_counts(BQ, "alephbet", "checkout", queries.ALL_TIME).sql
    with pytest.raises(ValueError, match="cap"):
        queries.decision_counts(BQ, "alephbet", "checkout", queries.ALL_TIME, cap=12)
