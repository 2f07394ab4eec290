"""The Segment exposure catalog: the all-time Segment list from per-person rows, with exactly the entries the
from-scratch query over every Segment message gives, on both warehouses."""

from __future__ import annotations

import json
import random
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings, strategies as st

from chalicelib.ingest.events import StoredEvent
from chalicelib.reports import catalog_queries, overview, queries, segment_queries
from chalicelib.reports.queries import Target
from chalicelib.storage import segment_catalog
from chalicelib.storage.bigquery_warehouse import BigQueryWarehouse
from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse
from tests.bigquery_standin import bigquery_standin  # noqa: F401
from tests.catalog_warehouses import AppendOnlyWarehouse, WithoutCatalog
from tests.segment_rows import EXPOSURE, segment_row
from tests.test_catalog import RecordingReads, _tables

NAMESPACE = "shop"
START = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)
BQ = Target(queries.BIGQUERY, queries.bigquery_tables("proj", "analytics", "events"), unique_identities=False)

# ---- random Segment histories ------------------------------------------------------------------

anonymous_ids = st.sampled_from(["a1", "a2", "a3"])
user_ids = st.sampled_from(["u1", "u2"])
# Who sent a message: anonymous, known, or both (which links the two).
senders = st.tuples(st.one_of(st.none(), anonymous_ids), st.one_of(st.none(), user_ids))
# Ids as clients send them: mostly text, some numbers and booleans (JSON_VALUE gives their text), some missing.
experiment_ids = st.sampled_from(["pricing", "pricing", "pricing", "banner", 7, None])
variation_ids = st.sampled_from(["a", "a", "b", "b", "c", 2, True, None])
timing = st.tuples(st.booleans(), st.booleans())  # (client timestamp missing, late: written after the rest)

STEPS = {
    "expose": st.tuples(st.just("expose"), experiment_ids, variation_ids, senders, timing,
                        st.sampled_from([NAMESPACE, NAMESPACE, NAMESPACE, "other"])),
    "identify": st.tuples(st.just("identify"), anonymous_ids, user_ids, timing),
    "alias": st.tuples(st.just("alias"), st.one_of(anonymous_ids, user_ids), user_ids,
                       st.one_of(st.none(), st.none(), anonymous_ids), timing),
    "goal": st.tuples(st.just("goal"), senders, timing),  # any message with both ids links them
    "redeliver": st.tuples(st.just("redeliver"), st.integers(0, 1000)),  # the same copy again (same receipt)
    "resend": st.tuples(st.just("resend"), st.integers(0, 1000)),  # the same message received again
    "flush": st.tuples(st.just("flush")),  # end of a stream batch
    "compact": st.tuples(st.just("compact")),  # BigQuery's compaction (backfills its Segment catalog once)
}
# Weighted by kind (one_of picks its branches evenly whatever their repeats): mostly exposures, so people meet.
step = st.sampled_from(["expose"] * 6 + ["identify", "alias", "alias", "goal", "redeliver", "resend", "flush",
                                          "flush", "compact"]).flatmap(STEPS.__getitem__)
histories = st.tuples(st.lists(step, min_size=4, max_size=40), st.integers(0, 2**32))


class Clock:
    """Message times that never tie: a tie between two variants of one person leaves MIN_BY's pick open in
    either query (the warehouses choose freely), so the histories avoid it. Client timestamps and arrivals
    are minutes apart at random (late, skewed, out of order), each with a microsecond of its own."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.count = 0

    def next(self, missing: bool) -> tuple[datetime | None, datetime]:
        self.count += 1
        client = START + timedelta(minutes=self.rng.randint(0, 5000), microseconds=self.count)
        arrival = START + timedelta(minutes=self.rng.randint(0, 5000), microseconds=500_000 + self.count)
        return (None if missing else client), arrival


def _message(kind: str, name: str | None, sender: tuple[str | None, str | None], at: tuple[datetime | None, datetime],
             namespace: str = NAMESPACE, properties: dict[str, Any] | None = None) -> StoredEvent:
    client, arrival = at
    row = segment_row(kind, name, anonymous_id=sender[0], user_id=sender[1], at=client or arrival,
                      received_at=arrival, namespace=namespace, properties=properties)
    return row._replace(timestamp=client)


def _exposure(op: tuple, clock: Clock) -> StoredEvent:
    _, experiment, variant, sender, (missing, _), namespace = op
    properties = {key: value for key, value in (("experiment_id", experiment), ("variation_id", variant))
                  if value is not None}
    return _message("track", EXPOSURE, sender, clock.next(missing), namespace, properties)


def _step_message(op: tuple, clock: Clock) -> tuple[StoredEvent, bool] | None:
    """The message an op sends and whether it is late; None for an op that sends none."""
    if op[0] == "expose":
        return _exposure(op, clock), op[4][1]
    if op[0] == "identify":
        _, anonymous, user, (missing, late) = op
        return _message("identify", None, (anonymous, user), clock.next(missing)), late
    if op[0] == "alias":
        _, previous, user, anonymous, (missing, late) = op
        return _message("alias", None, (anonymous, user), clock.next(missing), properties={"previousId": previous}), late
    if op[0] == "goal":
        _, sender, (missing, late) = op
        return _message("track", "Bought", sender, clock.next(missing)), late
    return None


def play(history: list[tuple], seed: int, warehouse: Any) -> None:
    """Write the history as the stream would: batches, redelivered copies, resent messages, late ones."""
    clock = Clock(seed)
    batch: list[StoredEvent] = []
    late: list[StoredEvent] = []
    written: list[StoredEvent] = []
    for op in history:
        sent = _step_message(op, clock)
        if sent is not None:
            (late if sent[1] else batch).append(sent[0])
        elif op[0] == "redeliver" and written:
            batch.append(written[op[1] % len(written)])
        elif op[0] == "resend" and written:
            again = written[op[1] % len(written)]
            batch.append(again._replace(received_at=clock.next(False)[1]))
        elif op[0] == "compact":
            catalog_queries.compact(warehouse, START + timedelta(days=10))
        elif op[0] == "flush":
            warehouse.insert_events(batch)
            written += batch
            batch = []
    warehouse.insert_events(batch + late)


def segment_list(warehouse: Any, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    return sorted(overview.overview(warehouse, namespace, sources=[segment_queries.SOURCE]),
                  key=lambda entry: entry["experiment"])


def assert_catalog_answers_as_history(warehouse: Any) -> None:
    assert catalog_queries.has_segment_catalog(warehouse)
    for namespace in (NAMESPACE, "other"):
        assert segment_list(warehouse, namespace) == segment_list(WithoutCatalog(warehouse), namespace)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories)
def test_the_embedded_segment_catalog_lists_as_history_does(history):
    events, seed = history
    with tempfile.TemporaryDirectory() as folder:
        warehouse = DuckDBWarehouse(Path(folder) / "warehouse.duckdb")
        try:
            play(events, seed, warehouse)
            assert_catalog_answers_as_history(warehouse)
        finally:
            warehouse.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories, st.booleans(), st.booleans())
def test_the_bigquery_segment_catalog_lists_as_history_does(history, dedupe, backfill_first):
    events, seed = history
    warehouse = AppendOnlyWarehouse(dedupe=dedupe)
    try:
        if backfill_first:  # else the backfill (from the events) may come last and hide the writer's rows
            catalog_queries.compact(warehouse, START)
        play(events, seed, warehouse)
        catalog_queries.compact(warehouse, START + timedelta(days=11))
        assert_catalog_answers_as_history(warehouse)
    finally:
        warehouse.close()


def _person_history() -> list[StoredEvent]:
    """Two people, each exposed anonymously then signed in, one of them seeing both variants."""
    def at(minutes: int) -> tuple[datetime, datetime]:
        return START + timedelta(minutes=minutes), START + timedelta(minutes=minutes, seconds=1)

    return [
        _message("track", EXPOSURE, ("a1", None), at(0), properties={"experiment_id": "pricing", "variation_id": "a"}),
        _message("identify", None, ("a1", "u1"), at(1)),
        _message("track", EXPOSURE, (None, "u1"), at(2), properties={"experiment_id": "pricing", "variation_id": "b"}),
        _message("track", EXPOSURE, ("a2", None), at(3), properties={"experiment_id": "pricing", "variation_id": "b"}),
        _message("alias", None, (None, "u2"), at(4), properties={"previousId": "a2"}),
    ]


def test_the_people_example_lists_two_people_one_seeing_both_variants(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    try:
        warehouse.insert_events(_person_history())
        (entry,) = segment_list(warehouse)
        assert entry["participants"] == 2 and entry["multiple_exposures"] == 1
        assert entry["variants"] == [{"label": "a", "participants": 1}, {"label": "b", "participants": 1}]
        assert segment_list(warehouse) == segment_list(WithoutCatalog(warehouse))
    finally:
        warehouse.close()


# ---- what the list reads -----------------------------------------------------------------------


def test_the_catalog_list_query_reads_the_catalog_never_the_events():
    assert _tables(segment_queries.catalog_experiment_list(BQ, NAMESPACE).sql) == {
        "segment_exposures", "segment_links"}
    assert _tables(segment_queries.segment_catalog_backfilled(BQ).sql) == {"segment_exposures"}


@pytest.mark.parametrize("make", ["embedded", "bigquery"])
def test_the_dashboard_segment_list_reads_no_events_once_the_catalog_holds_them(make, tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb") if make == "embedded" else AppendOnlyWarehouse()
    try:
        warehouse.insert_events(_person_history())
        catalog_queries.compact(warehouse, START + timedelta(hours=1))
        recording = RecordingReads(warehouse)
        assert [entry["participants"] for entry in segment_list(recording)] == [2]
        assert recording.read and all("events" not in tables for tables in recording.read)
    finally:
        warehouse.close()


class Reads:
    """A warehouse with a live catalog that answers nothing and records the tables each read references."""

    dialect, unique_identities, live_catalog = queries.DUCKDB, True, True

    def __init__(self) -> None:
        self.read: list[set[str]] = []

    def fetch(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        self.read.append(_tables(sqlglot.transpile(sql, read="duckdb", write="bigquery")[0]))
        return []


def test_a_window_reads_history_and_all_time_the_catalog():
    reads = Reads()
    overview.segment_entries(reads, NAMESPACE, queries.Window(START.date()))
    overview.segment_entries(reads, NAMESPACE)
    assert reads.read == [{"events"}, {"segment_exposures", "segment_links"}]


# ---- backfills ---------------------------------------------------------------------------------


def test_a_data_folder_written_before_the_segment_catalog_is_backfilled_when_opened(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(path)
    warehouse.insert_events(_person_history())
    listed = segment_list(warehouse)
    warehouse.close()
    older = duckdb.connect(str(path))  # as a Dalet without the Segment catalog left the folder
    older.execute("DROP TABLE segment_exposures")
    older.execute("DROP TABLE segment_links")
    older.close()

    warehouse = DuckDBWarehouse(path)
    try:
        assert warehouse.fetch("SELECT COUNT(*) AS n FROM segment_exposures")[0]["n"] == 3
        assert segment_list(warehouse) == listed == segment_list(WithoutCatalog(warehouse))
        assert listed[0]["participants"] == 2
    finally:
        warehouse.close()


def test_bigquery_reads_history_until_a_compaction_backfills_the_segment_catalog_even_after_snapshots():
    warehouse = AppendOnlyWarehouse()
    try:
        warehouse.insert_events(_person_history())
        first = catalog_queries.compact(warehouse, START + timedelta(hours=1))
        assert first is not None and first.segment_backfilled
        # A dataset whose experiment snapshots predate the Segment catalog: its rows and mark absent.
        warehouse.execute("DELETE FROM segment_exposures")
        warehouse.execute("DELETE FROM segment_links")
        assert not catalog_queries.has_segment_catalog(warehouse)
        assert segment_list(warehouse)[0]["participants"] == 2  # from history meanwhile

        second = catalog_queries.compact(warehouse, START + timedelta(hours=2))
        assert second is not None and second.segment_backfilled and not second.backfilled
        assert_catalog_answers_as_history(warehouse)
        third = catalog_queries.compact(warehouse, START + timedelta(hours=3))
        assert third is not None and not third.segment_backfilled
        assert segment_list(warehouse)[0]["participants"] == 2
    finally:
        warehouse.close()


# ---- BigQuery through the real client, against the stand-in ------------------------------------


def test_the_bigquery_writer_appends_segment_rows_and_a_redelivery_dedupes(bigquery_standin):
    warehouse = BigQueryWarehouse(bigquery_standin.client, "dalet", "events")
    batch = _person_history()

    warehouse.insert_events(batch)
    warehouse.insert_events(batch)  # the stream redelivers the batch

    exposures = bigquery_standin.rows("dalet.segment_exposures")
    assert sorted((row["experiment"], row["variant"], row["id"]) for row in exposures) == [
        ("pricing", "a", "a1"), ("pricing", "b", "a2"), ("pricing", "b", "u1")]
    links = bigquery_standin.rows("dalet.segment_links")
    assert sorted((row["from_id"], row["to_id"], row["linked_at"]) for row in links) == [
        ("a1", "u1", "2026-03-01T09:01:00.000000Z"), ("a2", "u2", "2026-03-01T09:04:00.000000Z")]


def test_json_value_reads_a_scalar_as_the_warehouses_do():
    db = duckdb.connect()
    try:
        for value in ["x", "", "café", 7, -3, 12345678901234567890, 1.5, True, False, None, {"a": 1}, [1]]:
            text = segment_catalog.json_value({"v": value}, "v")
            rendered = queries.to_duckdb("SELECT JSON_VALUE(?, '$.v') AS v")
            assert db.execute(rendered, [json.dumps({"v": value})]).fetchone()[0] == text, value
    finally:
        db.close()


@pytest.mark.parametrize("make", ["embedded", "bigquery"])
def test_an_id_linked_to_two_users_follows_its_earliest_link_whichever_batch_brings_it(make, tmp_path):
    """a1 meets u1 first (minute 5), then u2 (30); u1's link comes again later, in the same batch and in the
    next one. Each catalog row and each upkeep must keep a link's earliest time, or a1 would follow u2."""
    def at(minutes: int) -> tuple[datetime, datetime]:
        return START + timedelta(minutes=minutes), START + timedelta(minutes=minutes, seconds=1)

    def exposed(sender: tuple[str | None, str | None], variant: str, minutes: int) -> StoredEvent:
        return _message("track", EXPOSURE, sender, at(minutes),
                        properties={"experiment_id": "pricing", "variation_id": variant})

    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb") if make == "embedded" else AppendOnlyWarehouse()
    try:
        catalog_queries.compact(warehouse, START)  # BigQuery's backfill first: the lists read the writer's rows
        warehouse.insert_events([_message("identify", None, ("a1", "u1"), at(5)),
                                 _message("identify", None, ("a1", "u1"), at(60))])
        warehouse.insert_events([_message("identify", None, ("a1", "u1"), at(50)),
                                 _message("identify", None, ("a1", "u2"), at(30)),
                                 exposed(("a1", None), "b", 70), exposed((None, "u1"), "b", 80),
                                 exposed((None, "u2"), "a", 90)])
        (entry,) = segment_list(warehouse)
        assert entry["variants"] == [{"label": "a", "participants": 1}, {"label": "b", "participants": 1}]
        assert entry["multiple_exposures"] == 0
        assert_catalog_answers_as_history(warehouse)
    finally:
        warehouse.close()


@pytest.mark.parametrize("catalog_fails", [False, True], ids=["catalog appended", "catalog refused"])
def test_a_batch_written_in_part_appends_the_catalog_rows_of_what_landed(bigquery_standin, catalog_fails):
    """The stream retries from the first unwritten row only, so the written rows' catalog rows come now (or the
    whole batch is retried). Two requests of events (500 rows a request); the second fails."""
    from chalicelib.ingest.events import Event, stamp
    from chalicelib.storage.writer import TransientWarehouseError

    warehouse = BigQueryWarehouse(bigquery_standin.client, "dalet", "events", retry=None)
    warehouse.ensure_tables()
    batch = [_message("track", EXPOSURE, (None, f"u{n}"), (START + timedelta(seconds=n), START + timedelta(seconds=n)),
                      properties={"experiment_id": "pricing", "variation_id": "a"}) for n in range(300)]
    batch += [stamp(Event("default", "cart", "red", "participate", f"v{n}", None), START) for n in range(300)]
    bigquery_standin.fail_inserts(status=503, after=1, table="events")
    if catalog_fails:
        bigquery_standin.fail_inserts(status=503, table="segment_exposures")

    with pytest.raises(TransientWarehouseError) as raised:
        warehouse.insert_events(batch)

    if catalog_fails:
        assert raised.value.rows_written == 0
        return
    assert raised.value.rows_written == 500
    assert len(bigquery_standin.rows("dalet.segment_exposures")) == 300
    assert len(bigquery_standin.rows("dalet.experiment_firsts")) == 200
