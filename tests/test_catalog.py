"""The experiment catalog: reads that touch what they show, with the numbers a from-scratch query gives."""

from __future__ import annotations

import random
import tempfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from google.cloud import bigquery
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlglot import exp

from chalicelib.ingest.events import StoredEvent, format_timestamp, parse_event, stamp
from chalicelib.reports import catalog_queries, daily, deletion, experiments, overview, queries
from chalicelib.reports.errors import UnknownExperiment
from chalicelib.reports.fetch import target_of
from chalicelib.reports.queries import Target, Window
from chalicelib.storage import catalog_upkeep
from chalicelib.storage.bigquery_warehouse import BigQueryWarehouse
from chalicelib.storage.catalog import EXPERIMENT_FIRSTS, EXPERIMENT_TOTALS
from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse
from chalicelib.storage.schema import DEAD_LETTERS, DELETIONS, EVENTS
from tests.bigquery_standin import bigquery_standin  # noqa: F401
from tests.catalog_warehouses import AppendOnlyWarehouse, WithoutCatalog

NAMESPACE = "shop"
START = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)
BQ = Target(queries.BIGQUERY, queries.bigquery_tables("proj", "analytics", "events"), unique_identities=False)

# ---- random histories ------------------------------------------------------------------------

tracked = st.tuples(
    st.just("track"),
    st.sampled_from(["cart", "banner"]),
    st.sampled_from(["red", "blue"]),
    st.sampled_from(["participate", "participate", "buy", "click"]),
    st.sampled_from(["u1", "u2", "u3", "u4"]),
    st.one_of(st.none(), st.integers(1, 50).map(float)),
    st.one_of(st.none(), st.sampled_from(["o1", "o2"])),
    st.booleans(),  # late: written after everything else
)
step = st.one_of(
    tracked,
    tracked,
    tracked,
    tracked,
    st.tuples(st.just("redeliver"), st.integers(0, 1000)),
    st.tuples(st.just("delete"), st.sampled_from(["cart", "banner"])),
    st.tuples(
        st.just("flush"),
    ),  # end of a stream batch
    st.tuples(
        st.just("compact"),
    ),  # BigQuery's compaction (the embedded catalog is live)
)
histories = st.tuples(st.lists(step, min_size=1, max_size=40), st.integers(0, 2**32))


def _stored(
    experiment: str, variant: str, name: str, uuid: str, value: float | None, client_id: str | None, at: datetime
) -> StoredEvent:
    fields: dict[str, Any] = {
        "namespace": NAMESPACE,
        "experiment": experiment,
        "variant": variant,
        "event": name,
        "uuid": uuid,
    }
    if value is not None:
        fields["value"] = value
    if client_id is not None:
        fields["id"] = client_id
    return stamp(parse_event(fields), at)


def play(history: list[tuple], seed: int, warehouse: Any) -> datetime:
    """Write the history as the stream would: batches, redelivered copies, late events; deletions in between.
    The moment after the last event."""
    rng = random.Random(seed)
    at, batch, late, written = START, [], [], []
    for op in history:
        at += timedelta(minutes=rng.choice([1, 7, 90, 600, 1500]))
        if isinstance(warehouse, AppendOnlyWarehouse):
            warehouse.now = at  # the day BigQuery would partition the next write under
        if op[0] == "track":
            _, experiment, variant, name, uuid, value, client_id, is_late = op
            stored = _stored(experiment, variant, name, uuid, value, client_id, at)
            (late if is_late else batch).append(stored)
        elif op[0] == "redeliver" and written:
            batch.append(written[op[1] % len(written)])  # the same copy again: same receipt time
        elif op[0] == "compact":
            catalog_queries.compact(warehouse, at)
        elif op[0] == "delete" or op[0] == "flush":
            warehouse.insert_events(batch)
            written += batch
            batch = []
            if op[0] == "delete":
                try:
                    deletion.delete_experiment(warehouse, NAMESPACE, op[1], deleted_at=at)
                except UnknownExperiment:
                    pass
    warehouse.insert_events(batch + late)  # late copies share a batch with copies received after a deletion
    return at + timedelta(minutes=1)


def reports(warehouse: Any) -> dict[str, Any]:
    """Every experiment read: the list (less its meta), each experiment's goals, results and daily series."""
    answers: dict[str, Any] = {
        "list": experiments.all_experiments(warehouse, NAMESPACE)[1:],
        "scoped": experiments.all_experiments(warehouse, NAMESPACE, "banner,gone")[1:],
        # The dashboard's list; `counted_as_of` names a snapshot's watermark, which history has not.
        "overview": [{key: value for key, value in listed.items() if key != "counted_as_of"}
                     for listed in overview.overview(warehouse, NAMESPACE, sources=[overview.ALEPHBET])],
    }
    for name in ("cart", "banner"):
        try:
            answers[name] = (
                experiments.experiment_goals(warehouse, NAMESPACE, name),
                experiments.experiment_results(warehouse, NAMESPACE, name),
                daily.experiment_daily(warehouse, NAMESPACE, name),
            )
        except UnknownExperiment:
            answers[name] = "404"
    return answers


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories)
def test_the_embedded_catalog_answers_as_history_does(history):
    events, seed = history
    with tempfile.TemporaryDirectory() as folder:
        warehouse = DuckDBWarehouse(Path(folder) / "warehouse.duckdb")
        try:
            play(events, seed, warehouse)
            assert reports(warehouse) == reports(WithoutCatalog(warehouse))
        finally:
            warehouse.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories)
def test_the_bigquery_catalog_snapshot_answers_as_history_does(history):
    events, seed = history
    warehouse = AppendOnlyWarehouse()
    try:
        end = play(events, seed, warehouse)
        catalog_queries.compact(warehouse, end)
        assert reports(warehouse) == reports(WithoutCatalog(warehouse))
    finally:
        warehouse.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories, st.sampled_from(["embedded", "bigquery"]))
def test_the_results_exposure_span_is_the_first_and_last_participation_without_a_second_scan(history, make):
    """The verdict's traffic and CUPED's bounds read the span from the results' own rows; it must equal
    what the exposure-span query over the visible events says."""
    events, seed = history
    with tempfile.TemporaryDirectory() as folder:
        warehouse = DuckDBWarehouse(Path(folder) / "w.duckdb") if make == "embedded" else AppendOnlyWarehouse()
        try:
            end = play(events, seed, warehouse)
            catalog_queries.compact(warehouse, end)
            for name in ("cart", "banner"):
                try:
                    exposed = experiments.experiment_results(warehouse, NAMESPACE, name)["exposure"]
                except UnknownExperiment:
                    continue
                (span,) = warehouse.fetch(*_query(queries.exposure_span(target_of(warehouse), NAMESPACE, name)))
                expected = None if span["first_at"] is None else {
                    "first_at": format_timestamp(span["first_at"]), "last_at": format_timestamp(span["last_at"])}
                assert exposed == expected
        finally:
            warehouse.close()


def _query(query: queries.Query) -> tuple[str, Any]:
    return query.sql, query.params


# ---- what the reads touch ----------------------------------------------------------------------


def _tables(sql: str) -> set[str]:
    tree = sqlglot.parse_one(sql, read="bigquery")
    ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
    return {t.name for t in tree.find_all(exp.Table) if t.name not in ctes}


@pytest.mark.parametrize(
    "query",
    [
        catalog_queries.live_totals(BQ, NAMESPACE),
        catalog_queries.snapshot_totals(BQ, NAMESPACE),
        catalog_queries.snapshot_totals(BQ, NAMESPACE, scope=["a", "b"]),
    ],
    ids=["live", "snapshot", "scoped snapshot"],
)
def test_the_experiment_list_reads_the_totals_never_the_events(query):
    assert _tables(query.sql) == {"experiment_totals"}


class RecordingReads:
    """A warehouse whose every read is recorded as the tables it references."""

    def __init__(self, warehouse: Any):
        self._warehouse = warehouse
        self.dialect, self.unique_identities = warehouse.dialect, warehouse.unique_identities
        self.live_catalog = warehouse.live_catalog
        self.read: list[set[str]] = []

    def fetch(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        self.read.append(_tables(sqlglot.transpile(sql, read="duckdb", write="bigquery")[0]))
        return self._warehouse.fetch(sql, params)


@pytest.mark.parametrize("make", ["embedded", "bigquery"])
def test_the_dashboard_list_reads_the_catalog_never_the_events(make, tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb") if make == "embedded" else AppendOnlyWarehouse()
    try:
        warehouse.insert_events([_stored(name, "red", event, "u1", None, None, START)
                                 for name in ("cart", "banner") for event in ("participate", "buy")])
        catalog_queries.compact(warehouse, START + timedelta(hours=1))
        recording = RecordingReads(warehouse)
        listed = overview.overview(recording, NAMESPACE, sources=[overview.ALEPHBET])
        assert [(entry["experiment"], entry["participants"]) for entry in listed] == [("banner", 1), ("cart", 1)]
        assert recording.read and all("events" not in tables for tables in recording.read)
    finally:
        warehouse.close()


def test_a_snapshot_list_shows_an_experiment_started_since_it_at_once_with_exact_counts():
    warehouse = AppendOnlyWarehouse()
    try:
        warehouse.insert_events([_stored("cart", "red", "participate", "u1", None, None, START)])
        as_of = START + timedelta(hours=1)
        catalog_queries.compact(warehouse, as_of)
        later = START + timedelta(hours=2)
        warehouse.now = later
        warehouse.insert_events([_stored("cart", "red", "participate", "u2", None, None, later)]
                                + [_stored("fresh", variant, "participate", uuid, None, None, later)
                                   for variant, uuid in (("red", "u1"), ("blue", "u2"), ("blue", "u3"))])
        listed = {entry["experiment"]: entry for entry in overview.overview(warehouse, NAMESPACE,
                                                                             sources=[overview.ALEPHBET])}
        assert listed["fresh"]["participants"] == 3 and "counted_as_of" not in listed["fresh"]
        assert listed["fresh"]["first_seen"] == "2026-03-01T11:00:00.000000Z"
        # The experiment the snapshot knows keeps its counts, and says as of when.
        assert listed["cart"]["participants"] == 1
        assert listed["cart"]["counted_as_of"] == "2026-03-01T10:00:00.000000Z"
        gimel = experiments.all_experiments(warehouse, NAMESPACE)
        assert [entry["experiment"] for entry in gimel[1:]] == ["cart", "fresh"]
    finally:
        warehouse.close()


def test_a_snapshot_list_recounts_an_experiment_deleted_since_it():
    warehouse = AppendOnlyWarehouse()
    try:
        warehouse.insert_events([_stored(name, "red", "participate", "u1", None, None, START)
                                 for name in ("cart", "banner")])
        catalog_queries.compact(warehouse, START + timedelta(hours=1))
        deletion.delete_experiment(warehouse, NAMESPACE, "cart", deleted_at=START + timedelta(hours=2))
        listed = overview.overview(warehouse, NAMESPACE, sources=[overview.ALEPHBET])
        assert [entry["experiment"] for entry in listed] == ["banner"]
        assert [entry["experiment"] for entry in experiments.all_experiments(warehouse, NAMESPACE)[1:]] == ["banner"]
    finally:
        warehouse.close()


def test_a_batch_retried_after_its_catalog_update_failed_is_counted_once(tmp_path, monkeypatch):
    from chalicelib.storage import catalog
    from chalicelib.storage.writer import TransientWarehouseError

    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    batch = [_stored("cart", "red", "participate", uuid, None, None, START) for uuid in ("u1", "u2")]
    real = catalog.record_batch
    failing = {"left": 1}

    def record_once_failing(*args: Any) -> None:
        if failing["left"]:
            failing["left"] -= 1
            raise duckdb.IOException("No space left on device")
        real(*args)

    monkeypatch.setattr(catalog, "record_batch", record_once_failing)
    try:
        with pytest.raises(TransientWarehouseError):
            warehouse.insert_events(batch)
        warehouse.insert_events(batch)      # the stream hands the batch again
        later = _stored("cart", "red", "participate", "u1", None, None, START + timedelta(days=3))
        warehouse.insert_events([later])    # a repeat of a stored identity: not stored, not seen
        assert reports(warehouse) == reports(WithoutCatalog(warehouse))
        (entry,) = overview.overview(warehouse, NAMESPACE, sources=[overview.ALEPHBET])
        assert entry["participants"] == 2 and entry["last_seen"] == "2026-03-01T09:00:00.000000Z"
    finally:
        warehouse.close()


def test_results_and_daily_start_at_the_experiments_first_event(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    try:
        warehouse.insert_events(
            [
                _stored("old", "red", "participate", "u1", None, None, START),
                _stored("new", "red", "participate", "u1", None, None, START + timedelta(days=40)),
            ]
        )
        assert catalog_queries.narrowed(warehouse, NAMESPACE, "new", queries.ALL_TIME) == Window(
            (START + timedelta(days=40)).date()
        )
        assert catalog_queries.narrowed(warehouse, NAMESPACE, "new", Window(date(2026, 5, 1))) == Window(
            date(2026, 5, 1)
        )
        assert catalog_queries.narrowed(warehouse, NAMESPACE, "unknown", queries.ALL_TIME) == queries.ALL_TIME
    finally:
        warehouse.close()


def test_the_narrowed_bigquery_results_query_filters_received_at_so_partitions_prune():
    sql = queries.decision_counts(BQ, NAMESPACE, "cart", Window(date(2026, 3, 1))).sql
    assert "e.received_at >= @from_ts" in sql


# ---- freshness -------------------------------------------------------------------------------


def test_a_snapshot_list_names_its_watermark_and_lags_behind_until_the_next_compaction():
    warehouse = AppendOnlyWarehouse()

    def visitor(uuid: str, at: datetime) -> list[StoredEvent]:
        return [
            _stored("cart", "red", "participate", uuid, None, None, at),
            _stored("cart", "red", "buy", uuid, None, None, at),
        ]

    try:
        warehouse.insert_events(visitor("u1", START))
        as_of = START + timedelta(hours=1)
        catalog_queries.compact(warehouse, as_of)
        warehouse.insert_events(visitor("u2", as_of + timedelta(minutes=5)))

        meta, listed = experiments.all_experiments(warehouse, NAMESPACE)
        assert meta["meta"]["freshness"] == {"catalog_as_of": "2026-03-01T10:00:00.000000Z", "catalog_live": False}
        assert listed["goals"][0]["results"] == [{"label": "red", "successes": 1, "trials": 1}]
        catalog_queries.compact(warehouse, as_of + timedelta(hours=1))
        _, listed = experiments.all_experiments(warehouse, NAMESPACE)
        assert listed["goals"][0]["results"] == [{"label": "red", "successes": 2, "trials": 2}]
    finally:
        warehouse.close()


def test_without_a_snapshot_the_list_reads_history():
    warehouse = AppendOnlyWarehouse()
    try:
        warehouse.insert_events(
            [
                _stored("cart", "red", "participate", "u1", None, None, START),
                _stored("cart", "red", "buy", "u1", None, None, START),
            ]
        )
        meta, listed = experiments.all_experiments(warehouse, NAMESPACE)
        assert "freshness" not in meta["meta"]
        assert listed["goals"] == [{"goal": "buy", "results": [{"label": "red", "successes": 1, "trials": 1}]}]
    finally:
        warehouse.close()


# ---- maintenance -------------------------------------------------------------------------------


def test_the_writer_compacts_once_a_snapshot_is_older_than_the_period_and_looks_at_most_hourly(monkeypatch):
    monkeypatch.setenv("DALET_CATALOG_COMPACTION_HOURS", "24")
    warehouse = AppendOnlyWarehouse()
    looks, clock = catalog_upkeep.Looks(), [0.0]
    try:
        warehouse.insert_events([_stored("cart", "red", "participate", "u1", None, None, START)])
        first = catalog_upkeep.compact_when_due(warehouse, START + timedelta(hours=1), lambda: clock[0], looks)
        assert first is not None and first.backfilled
        clock[0] += 10
        assert catalog_upkeep.compact_when_due(warehouse, START + timedelta(hours=30), lambda: clock[0], looks) is None
        clock[0] += catalog_upkeep.LOOK_EVERY_SECONDS
        assert catalog_upkeep.compact_when_due(warehouse, START + timedelta(hours=2), lambda: clock[0], looks) is None
        clock[0] += catalog_upkeep.LOOK_EVERY_SECONDS
        second = catalog_upkeep.compact_when_due(warehouse, START + timedelta(hours=26), lambda: clock[0], looks)
        assert second is not None and not second.backfilled
    finally:
        warehouse.close()


def test_daily_snapshots_are_taken_just_after_midnight_utc(monkeypatch):
    monkeypatch.setenv("DALET_CATALOG_COMPACTION_HOURS", "24")
    warehouse = AppendOnlyWarehouse()
    evening = datetime(2026, 3, 1, 23, 50, tzinfo=timezone.utc)
    try:
        warehouse.insert_events([_stored("cart", "red", "participate", "u1", None, None, evening)])
        assert catalog_upkeep.compact_when_due(warehouse, evening, lambda: 0.0, catalog_upkeep.Looks()) is not None
        # Twenty minutes later, not a day: the snapshot belongs to yesterday.
        after_midnight = evening + timedelta(minutes=20)
        assert catalog_upkeep.compact_when_due(warehouse, after_midnight, lambda: 0.0, catalog_upkeep.Looks())
        assert catalog_upkeep.period_start(after_midnight, 24) == datetime(2026, 3, 2, tzinfo=timezone.utc)
        assert catalog_upkeep.period_start(after_midnight, 6) == datetime(2026, 3, 2, tzinfo=timezone.utc)
        assert catalog_upkeep.period_start(evening, 6) == datetime(2026, 3, 1, 18, tzinfo=timezone.utc)
    finally:
        warehouse.close()


def test_the_embedded_catalog_never_compacts(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    try:
        assert catalog_upkeep.compact_when_due(warehouse, START, lambda: 0.0, catalog_upkeep.Looks()) is None
    finally:
        warehouse.close()


def test_the_first_compaction_backfills_the_events_written_before_the_catalog():
    warehouse = AppendOnlyWarehouse()
    try:
        warehouse.insert_events([_stored("cart", "red", "participate", "u1", None, None, START)])
        warehouse.execute("DELETE FROM experiment_firsts")  # as an older Dalet left the dataset
        catalog_queries.compact(warehouse, START + timedelta(hours=1))
        _, listed = experiments.all_experiments(warehouse, NAMESPACE)
        assert listed == {"experiment": "cart", "goals": []}
        assert catalog_queries.catalog_counts(warehouse, NAMESPACE).rows[0]["uuids"] == 1
    finally:
        warehouse.close()


def test_a_redelivered_batch_adds_nothing_to_the_embedded_totals(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    batch = [_stored("cart", "red", "participate", f"u{i}", None, None, START) for i in range(3)]
    try:
        warehouse.insert_events(batch)
        warehouse.insert_events(batch)
        (row,) = catalog_queries.catalog_counts(warehouse, NAMESPACE).rows
        assert row["uuids"] == 3
    finally:
        warehouse.close()


def test_a_data_folder_from_before_the_catalog_is_backfilled_when_opened(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(path)
    warehouse.insert_events(
        [
            _stored("cart", "red", "participate", "u1", None, None, START),
            _stored("cart", "blue", "participate", "u2", None, None, START),
            _stored("gone", "red", "participate", "u3", None, None, START),
        ]
    )
    deletion.delete_experiment(warehouse, NAMESPACE, "gone", deleted_at=START + timedelta(hours=1))
    warehouse.close()
    older = duckdb.connect(str(path))  # as a Dalet without the catalog left the folder
    older.execute("DROP TABLE experiment_firsts")
    older.execute("DROP TABLE experiment_totals")
    older.close()

    warehouse = DuckDBWarehouse(path)
    try:
        counted = catalog_queries.catalog_counts(warehouse, NAMESPACE)
        assert sorted((row["experiment"], row["variant"], row["uuids"]) for row in counted.rows) == [
            ("cart", "blue", 1),
            ("cart", "red", 1),
        ]
        assert experiments.all_experiments(warehouse, NAMESPACE) == experiments.all_experiments(
            WithoutCatalog(warehouse), NAMESPACE
        )
    finally:
        warehouse.close()


@pytest.mark.parametrize("make", [AppendOnlyWarehouse, None], ids=["bigquery", "duckdb"])
def test_a_batch_holding_a_copy_a_deletion_hides_and_one_after_it_counts_the_later(make, tmp_path):
    warehouse = make() if make else DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    deleted_at = START + timedelta(hours=1)
    try:
        warehouse.insert_events([_stored("cart", "red", "participate", "u1", None, None, START)])
        deletion.delete_experiment(warehouse, NAMESPACE, "cart", deleted_at=deleted_at)
        warehouse.insert_events(
            [
                _stored("cart", "red", "participate", "u2", None, "late", START),
                _stored("cart", "red", "participate", "u2", None, None, deleted_at + timedelta(hours=1)),
            ]
        )
        catalog_queries.compact(warehouse, deleted_at + timedelta(hours=2))
        assert reports(warehouse) == reports(WithoutCatalog(warehouse))
        assert catalog_queries.catalog_counts(warehouse, NAMESPACE).rows[0]["uuids"] == 1
    finally:
        warehouse.close()


def test_an_experiment_newer_than_the_snapshot_is_found_in_history_not_refused():
    warehouse = AppendOnlyWarehouse()
    try:
        warehouse.insert_events([_stored("cart", "red", "participate", "u1", None, None, START)])
        catalog_queries.compact(warehouse, START + timedelta(hours=1))
        warehouse.insert_events(
            [
                _stored("fresh", "red", "participate", "u1", None, None, START + timedelta(hours=2)),
                _stored("fresh", "red", "buy", "u1", None, None, START + timedelta(hours=2)),
            ]
        )
        assert experiments.experiment_goals(warehouse, NAMESPACE, "fresh") == [
            {"goal": "buy", "results": [{"label": "red", "successes": 1, "trials": 1}]}
        ]
        with pytest.raises(UnknownExperiment):
            experiments.experiment_goals(warehouse, NAMESPACE, "never")
    finally:
        warehouse.close()


# ---- BigQuery through the real client, against the stand-in -------------------------------------


def test_setup_adds_the_catalog_tables_to_a_dataset_written_before_them(bigquery_standin):
    client = bigquery_standin.client
    client.create_dataset("dalet")
    for spec in (EVENTS, DEAD_LETTERS, DELETIONS):
        client.create_table(
            bigquery.Table(
                f"{client.project}.dalet.{spec.name}",
                schema=[
                    bigquery.SchemaField(c.name, c.type, mode="REQUIRED" if c.required else "NULLABLE")
                    for c in spec.columns
                ],
            )
        )
    warehouse = BigQueryWarehouse(client, "dalet", "events")

    assert warehouse.migrate_tables() == ["experiment_firsts: created", "experiment_totals: created",
                                          "segment_exposures: created", "segment_links: created",
                                          "report_answers: created"]

    firsts = bigquery_standin.table("dalet.experiment_firsts")
    assert [f["name"] for f in firsts["schema"]["fields"]] == EXPERIMENT_FIRSTS.column_names
    assert firsts["timePartitioning"] == {"type": "DAY"}  # by write day: _PARTITIONTIME
    assert firsts["clustering"]["fields"] == ["namespace", "experiment"]
    assert [
        f["name"] for f in bigquery_standin.table("dalet.experiment_totals")["schema"]["fields"]
    ] == EXPERIMENT_TOTALS.column_names
    assert warehouse.migrate_tables() == []


def test_the_bigquery_writer_appends_one_firsts_row_per_person_and_goal_and_a_redelivery_dedupes(bigquery_standin):
    warehouse = BigQueryWarehouse(bigquery_standin.client, "dalet", "events")
    batch = [
        _stored("cart", "red", "participate", "u1", None, None, START),
        _stored("cart", "red", "buy", "u1", 5.0, "o1", START + timedelta(seconds=1)),
        _stored("cart", "red", "buy", "u1", 7.0, "o2", START + timedelta(seconds=2)),
    ]

    warehouse.insert_events(batch)
    warehouse.insert_events(batch)  # the stream redelivers the batch

    rows = bigquery_standin.rows("dalet.experiment_firsts")
    assert sorted((row["event"], row["uuid"]) for row in rows) == [("buy", "u1"), ("participate", "u1")]
    (buy,) = [row for row in rows if row["event"] == "buy"]
    assert (buy["first_at"], buy["last_at"]) == ("2026-03-01T09:00:01.000000Z", "2026-03-01T09:00:02.000000Z")
