"""Stored answers (chalicelib/reports/stored_answers.py): the results and daily views answered from a
computation younger than DALET_RESULTS_MAX_AGE_MINUTES, through the app (DuckDB) and on both warehouses."""
from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.cloud import bigquery

from chalicelib import config, runtime
from chalicelib.reports import stored_answers
from chalicelib.reports.errors import UnknownExperiment
from chalicelib.reports.freshness import with_freshness
from chalicelib.storage.bigquery_warehouse import BigQueryWarehouse
from chalicelib.storage.schema import REPORT_ANSWERS
from tests.bigquery_standin import HttpError, bigquery_standin  # noqa: F401
from tests.helpers import KEY_HEADER, event, report_client  # noqa: F401
from tests.standin_sql import answer_from_stored_rows, each_warehouse  # noqa: F401
from tests.test_report_routes import ab, seed

HOUR = timedelta(minutes=60)


@pytest.fixture
def stored(report_client, monkeypatch):
    """The app with answers kept an hour (locally the default is off)."""
    monkeypatch.setenv("DALET_RESULTS_MAX_AGE_MINUTES", "60")
    return report_client


def get(client, path: str) -> Any:
    reply = client.http.get(path, headers=KEY_HEADER)
    return reply.status_code, json.loads(reply.body)


def participants(view: dict[str, Any]) -> dict[str, int]:
    return {arm["label"]: arm["participants"] for arm in view["variants"]}


def stored_rows() -> list[dict[str, Any]]:
    return runtime.warehouse().fetch(f"SELECT * FROM {REPORT_ANSWERS.name} ORDER BY stored_at")


def later(monkeypatch, by: timedelta) -> None:
    """Move stored_answers' clock `by` into the future."""
    monkeypatch.setattr(stored_answers, "clock", lambda: datetime.now(UTC) + by)


# ---- the settings -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("environ", "minutes"), [
    ({}, 0), ({"DALET_BACKEND": "aws"}, 60), ({"DALET_RESULTS_MAX_AGE_MINUTES": "15"}, 15),
    ({"DALET_RESULTS_MAX_AGE_MINUTES": " 1440 "}, 1440), ({"DALET_BACKEND": "aws", "DALET_RESULTS_MAX_AGE_MINUTES": "0"}, 0),
])
def test_the_max_age_is_off_locally_an_hour_on_aws_and_settable(environ, minutes):
    assert config._results_max_age_minutes(environ, environ.get("DALET_BACKEND", "local")) == minutes


@pytest.mark.parametrize("value", ["1441", "-1", "1.5", "an hour", "²", "60m"])
def test_a_bad_max_age_is_a_config_error_naming_it(value):
    with pytest.raises(config.ConfigError, match=f"DALET_RESULTS_MAX_AGE_MINUTES must be .* got {value!r}"):
        config.load_settings({"DALET_RESULTS_MAX_AGE_MINUTES": value})


# ---- the key ------------------------------------------------------------------------------------------

class Params(dict):
    """Query parameters as Chalice hands them: each name's values, the last by [] and all by getlist."""

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name)[-1]

    def getlist(self, name: str) -> list[str]:
        return super().__getitem__(name)


def key(route: str = "results", namespace: str = "alephbet", experiment: str = "exp", **params: list[str]) -> str:
    return stored_answers.answer_key(route, namespace, experiment, Params(params)).key


def test_the_key_sorts_parameters_by_name_and_drops_blank_ones_and_refresh():
    assert stored_answers.canonical_parameters(Params({"mode": ["fixed"], "cap": [" "], "confidence": ["0.9"],
                                                       "refresh": ["true"]})) == [["confidence", "0.9"],
                                                                                  ["mode", "fixed"]]
    assert key(confidence=["0.9"], mode=["fixed"]) == key(mode=["fixed"], cap=[""], confidence=["0.9"],
                                                         refresh=["true"])


def test_the_key_tells_apart_routes_namespaces_experiments_values_and_repeats():
    keys = {key(), key("daily"), key(namespace="prod"), key(experiment="exp2"), key(cap=["p99"]),
            key(cap=["p99", "p99"]), key(cap=["p99", ""]), key(confidence=["0.9"])}
    assert len(keys) == 8
    # A name and value cannot run into the next: the parts are a JSON list.
    assert key(experiment="a", cap=["b"]) != key(experiment="ab")


# ---- through the app (DuckDB) -------------------------------------------------------------------------

def test_the_same_parameters_in_another_order_share_one_stored_answer(stored):
    seed(stored, *ab("exp", red=3, blue=2, red_goal=1))
    status, first = get(stored, "/experiments/exp/results?confidence=0.9&correction=bh&cap=")
    seed(stored, *ab("exp", red=5, blue=2))                  # more people, not yet in the stored answer
    status_again, again = get(stored, "/experiments/exp/results?correction=bh&confidence=0.9")

    assert (status, status_again) == (200, 200)
    assert first["freshness"]["age_seconds"] == 0
    assert again["freshness"]["age_seconds"] > 0
    assert again["freshness"]["answered_at"] == first["freshness"]["answered_at"]
    assert participants(again) == participants(first) == {"red": 3, "blue": 2}
    assert again == with_freshness(first, again["freshness"])  # the body as computed, freshness included
    assert len(stored_rows()) == 1


def test_a_stored_answer_keeps_the_freshness_measured_when_it_was_computed(stored):
    seed(stored, *ab("exp", red=3, blue=2))
    _, first = get(stored, "/experiments/exp/results")
    _, again = get(stored, "/experiments/exp/results")
    assert {**first["freshness"], "age_seconds": None} == {**again["freshness"], "age_seconds": None}
    assert set(first["freshness"]) >= {"as_of", "lag_seconds", "answered_at", "age_seconds"}


def test_other_parameters_are_another_answer(stored):
    seed(stored, *ab("exp", red=3, blue=2))
    get(stored, "/experiments/exp/results")
    seed(stored, *ab("exp", red=4, blue=2))
    _, other = get(stored, "/experiments/exp/results?confidence=0.9")
    assert other["freshness"]["age_seconds"] == 0 and participants(other) == {"red": 4, "blue": 2}


def test_refresh_recomputes_and_replaces_the_stored_answer(stored):
    seed(stored, *ab("exp", red=3, blue=2))
    get(stored, "/experiments/exp/results")
    seed(stored, *ab("exp", red=6, blue=2))
    _, refreshed = get(stored, "/experiments/exp/results?refresh=true")
    _, after = get(stored, "/experiments/exp/results")

    assert refreshed["freshness"]["age_seconds"] == 0 and participants(refreshed) == {"red": 6, "blue": 2}
    assert after["freshness"]["age_seconds"] > 0 and participants(after) == {"red": 6, "blue": 2}
    assert after["freshness"]["answered_at"] == refreshed["freshness"]["answered_at"]
    _, not_refreshed = get(stored, "/experiments/exp/results?refresh=false")
    assert not_refreshed["freshness"]["age_seconds"] > 0


def test_an_answer_older_than_the_max_age_is_recomputed(stored, monkeypatch):
    seed(stored, *ab("exp", red=3, blue=2))
    get(stored, "/experiments/exp/results")
    seed(stored, *ab("exp", red=4, blue=2))
    later(monkeypatch, timedelta(minutes=59))
    _, young = get(stored, "/experiments/exp/results")
    later(monkeypatch, timedelta(minutes=61))
    _, old = get(stored, "/experiments/exp/results")

    assert participants(young) == {"red": 3, "blue": 2} and 59 * 60 <= young["freshness"]["age_seconds"] < 60 * 60
    assert participants(old) == {"red": 4, "blue": 2} and old["freshness"]["age_seconds"] == 0


def test_the_daily_view_is_stored_under_its_own_key(stored):
    seed(stored, *ab("exp", red=3, blue=2, red_goal=1))
    _, results = get(stored, "/experiments/exp/results")
    _, daily = get(stored, "/experiments/exp/daily")
    seed(stored, *ab("exp", red=5, blue=2, red_goal=1))
    _, daily_again = get(stored, "/experiments/exp/daily")

    assert results["freshness"]["age_seconds"] == daily["freshness"]["age_seconds"] == 0
    assert daily_again["freshness"]["age_seconds"] > 0
    assert daily_again == with_freshness(daily, daily_again["freshness"])
    assert len(stored_rows()) == 2


@pytest.mark.parametrize("delete", ["/experiments/exp", "/delete?experiment=exp"])
def test_a_deletion_makes_the_answers_stored_before_it_unusable(stored, delete):
    seed(stored, *ab("exp", red=3, blue=2))
    get(stored, "/experiments/exp/results")
    get(stored, "/experiments/exp/daily")
    assert stored.http.delete(delete, headers=KEY_HEADER).status_code == 200

    assert get(stored, "/experiments/exp/results")[0] == 404       # not the answer stored before
    assert get(stored, "/experiments/exp/daily")[0] == 404
    seed(stored, event("exp", "red", "participate", "new-1"), event("exp", "blue", "participate", "new-2"))
    status, results = get(stored, "/experiments/exp/results")
    assert status == 200 and participants(results) == {"red": 1, "blue": 1}
    assert results["freshness"]["age_seconds"] == 0


def test_errors_are_not_stored(stored):
    assert get(stored, "/experiments/exp/results")[0] == 404
    assert get(stored, "/experiments/exp/results?confidence=2")[0] == 400
    assert stored_rows() == []
    seed(stored, *ab("exp", red=1, blue=1))
    status, view = get(stored, "/experiments/exp/results")
    assert status == 200 and view["freshness"]["age_seconds"] == 0


def test_a_repeated_parameter_is_still_a_400_when_the_single_one_is_stored(stored):
    seed(stored, *ab("exp", red=1, blue=1))
    assert get(stored, "/experiments/exp/results?cap=p99")[0] == 200
    status, refused = get(stored, "/experiments/exp/results?cap=p99&cap=")
    assert (status, refused["parameter"]) == (400, "cap")


@pytest.mark.parametrize("value", ["yes", "1", "tru"])
def test_a_bad_refresh_is_a_400_naming_it(report_client, value):
    seed(report_client, *ab("exp", red=1, blue=1))
    status, refused = get(report_client, f"/experiments/exp/results?refresh={value}")
    assert (status, refused["parameter"]) == (400, "refresh")
    assert get(report_client, f"/experiments/exp/daily?refresh={value}")[0] == 400


class Spy:
    """Every SQL text the warehouse ran, and every answer it was asked to store."""

    def __init__(self, warehouse: Any, monkeypatch):
        self.sql: list[str] = []
        self.stored: list[Any] = []
        fetch, insert = warehouse.fetch, warehouse.insert_answer
        monkeypatch.setattr(warehouse, "fetch", lambda sql, params=None: self.sql.append(sql) or fetch(sql, params))
        monkeypatch.setattr(warehouse, "insert_answer", lambda row: self.stored.append(row) or insert(row))


def test_a_max_age_of_zero_never_reads_or_writes_the_table(report_client, monkeypatch):
    seed(report_client, *ab("exp", red=3, blue=2))
    spy = Spy(runtime.warehouse(), monkeypatch)
    for path in ("/experiments/exp/results", "/experiments/exp/results", "/experiments/exp/daily",
                 "/experiments/exp/results?refresh=true"):
        status, view = get(report_client, path)
        assert status == 200 and view["freshness"]["age_seconds"] == 0
    assert spy.sql and not [sql for sql in spy.sql if REPORT_ANSWERS.name in sql]
    assert spy.stored == []


def test_a_missing_table_answers_computed_with_a_warning(stored, caplog):
    seed(stored, *ab("exp", red=3, blue=2))
    runtime.warehouse().execute(f"DROP TABLE {REPORT_ANSWERS.name}")
    with caplog.at_level(logging.WARNING, logger="dalet.reports"):
        first = get(stored, "/experiments/exp/results")
        second = get(stored, "/experiments/exp/results")
    assert first[0] == second[0] == 200
    assert first[1]["freshness"]["age_seconds"] == second[1]["freshness"]["age_seconds"] == 0
    messages = [record.getMessage() for record in caplog.records]
    assert any("could not read a stored answer" in message for message in messages)
    assert any("could not store an answer" in message for message in messages)


# ---- on both warehouses (DuckDB, and BigQuery through the real client and the stand-in) --------------

NAMESPACE, EXPERIMENT = "alephbet", "exp"


def prepared(warehouse: Any) -> Any:
    """BigQuery's tables as `setup` leaves them (it creates report_answers; the API never does)."""
    if isinstance(warehouse, BigQueryWarehouse):
        warehouse.ensure_report_tables()
        warehouse.migrate_tables()
    return warehouse


class Computations:
    """A view that counts its computations and answers the count."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> dict[str, Any]:
        self.count += 1
        return {"computed": self.count, "freshness": {"as_of": "then"}}


def ask(warehouse: Any, computations: Computations, refresh: bool = False, experiment: str = EXPERIMENT,
        max_age: timedelta = HOUR, **params: list[str]) -> dict[str, Any]:
    key = stored_answers.answer_key("results", NAMESPACE, experiment, Params(params))
    return stored_answers.answer(warehouse, key, max_age, computations, refresh)


def test_an_answer_is_stored_and_answered_until_refreshed_on_each_warehouse(each_warehouse):
    warehouse, computations = prepared(each_warehouse), Computations()
    first = ask(warehouse, computations, confidence=["0.9"], mode=["fixed"])
    again = ask(warehouse, computations, mode=["fixed"], confidence=["0.9"], cap=[""])
    refreshed = ask(warehouse, computations, refresh=True, mode=["fixed"], confidence=["0.9"])
    after = ask(warehouse, computations, mode=["fixed"], confidence=["0.9"])

    assert (first["computed"], again["computed"], refreshed["computed"], after["computed"]) == (1, 1, 2, 2)
    assert again["freshness"]["as_of"] == "then" and again["freshness"]["age_seconds"] > 0
    assert again["freshness"]["answered_at"] == first["freshness"]["answered_at"]
    assert after["freshness"]["answered_at"] == refreshed["freshness"]["answered_at"]


def test_an_answer_older_than_the_max_age_is_recomputed_on_each_warehouse(each_warehouse, monkeypatch):
    warehouse, computations = prepared(each_warehouse), Computations()
    ask(warehouse, computations)
    later(monkeypatch, timedelta(minutes=30))
    assert ask(warehouse, computations)["computed"] == 1
    assert ask(warehouse, computations, max_age=timedelta(minutes=29))["computed"] == 2


def test_a_tombstone_hides_the_answers_stored_before_it_on_each_warehouse(each_warehouse, monkeypatch):
    warehouse, computations = prepared(each_warehouse), Computations()
    ask(warehouse, computations)
    ask(warehouse, computations, experiment="other")
    warehouse.insert_deletion({"deletion_id": "d1", "namespace": NAMESPACE, "experiment": EXPERIMENT,
                               "deleted_at": datetime.now(UTC).isoformat()})
    # An answer stored while a tombstone may still be landing is never answered (attack2): past that.
    later(monkeypatch, stored_answers.TOMBSTONE_LANDING + timedelta(seconds=1))

    assert ask(warehouse, computations)["computed"] == 3       # computed again
    assert ask(warehouse, computations)["computed"] == 3       # and stored after the deletion
    assert ask(warehouse, computations, experiment="other")["computed"] == 2   # another experiment's answer stays


def test_errors_are_not_stored_on_each_warehouse(each_warehouse):
    warehouse = prepared(each_warehouse)

    def unknown() -> dict[str, Any]:
        raise UnknownExperiment(NAMESPACE, EXPERIMENT)

    key = stored_answers.answer_key("results", NAMESPACE, EXPERIMENT, None)
    with pytest.raises(UnknownExperiment):
        stored_answers.answer(warehouse, key, HOUR, unknown)
    assert ask(warehouse, Computations())["freshness"]["age_seconds"] == 0


def test_bigquery_stores_answers_by_streaming_insert_with_a_unique_insert_id(bigquery_standin):
    bigquery_standin.answer_queries(answer_from_stored_rows(bigquery_standin))
    warehouse, computations = prepared(BigQueryWarehouse(bigquery_standin.client, "analytics", "events")), \
        Computations()
    ask(warehouse, computations)
    ask(warehouse, computations, refresh=True)

    rows = bigquery_standin.rows("analytics.report_answers")
    assert [json.loads(row["answer"])["computed"] for row in rows] == [1, 2]     # a refresh is a second row
    assert {(row["namespace"], row["experiment"]) for row in rows} == {(NAMESPACE, EXPERIMENT)}
    assert len(set(bigquery_standin.insert_ids("analytics.report_answers"))) == 2
    (read,) = [query for query in bigquery_standin.queries if REPORT_ANSWERS.name in query.sql]
    assert "@key" in read.sql and "`test-project.analytics.report_answers`" in read.sql


def test_setup_creates_the_answers_table_partitioned_by_day_kept_two_days_clustered_by_key(bigquery_standin):
    warehouse = BigQueryWarehouse(bigquery_standin.client, "dalet", "events")
    warehouse.ensure_report_tables()          # what the API creates: never the answers table
    assert "report_answers" not in [call.body["tableReference"]["tableId"] for call in bigquery_standin.table_creates]

    assert warehouse.migrate_tables() == ["report_answers: created"]
    table = bigquery_standin.table("dalet.report_answers")
    assert [field["name"] for field in table["schema"]["fields"]] == REPORT_ANSWERS.column_names
    assert table["timePartitioning"] == {"type": "DAY", "field": "stored_at", "expirationMs": str(2 * 86_400_000)}
    assert table["clustering"]["fields"] == ["key"]
    assert warehouse.migrate_tables() == []


def test_a_bigquery_dataset_without_the_table_answers_computed_with_a_warning(bigquery_standin, caplog):
    stored_rows_answer = answer_from_stored_rows(bigquery_standin)

    def answer(query):
        if REPORT_ANSWERS.name in query.sql:
            raise HttpError(404, "Not found: Table test-project:analytics.report_answers", "notFound")
        return stored_rows_answer(query)

    bigquery_standin.answer_queries(answer)
    warehouse, computations = BigQueryWarehouse(bigquery_standin.client, "analytics", "events"), Computations()
    warehouse.ensure_report_tables()          # not migrated: no report_answers
    with caplog.at_level(logging.WARNING, logger="dalet.reports"):
        answers = [ask(warehouse, computations) for _ in range(2)]

    assert [answer["computed"] for answer in answers] == [1, 2]
    assert [answer["freshness"]["age_seconds"] for answer in answers] == [0, 0]
    messages = [record.getMessage() for record in caplog.records]
    assert sum("could not read a stored answer" in message for message in messages) == 2
    assert sum("could not store an answer" in message for message in messages) == 2


def test_the_table_is_created_with_every_duckdb_warehouse(tmp_path):
    from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    try:
        names = [row["column_name"] for row in warehouse.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [REPORT_ANSWERS.name])]
        assert names == REPORT_ANSWERS.column_names
    finally:
        warehouse.close()


def test_bigquery_types_the_table_as_schema_says(bigquery_standin):
    warehouse = BigQueryWarehouse(bigquery_standin.client, "dalet", "events")
    warehouse.ensure_report_tables()
    warehouse.migrate_tables()
    fields = bigquery_standin.client.get_table(f"{bigquery_standin.project}.dalet.report_answers").schema
    assert [(field.name, field.field_type, field.mode) for field in fields] == [
        (column.name, column.type, "REQUIRED") for column in REPORT_ANSWERS.columns]
    assert isinstance(fields[0], bigquery.SchemaField)


# ---- the deployed backend: the routes on BigQuery, through the real client --------------------------

@pytest.fixture
def deployed(client, bigquery_standin, monkeypatch):
    """DALET_BACKEND=aws (answers kept 60 minutes by default) on the stand-in, its tables as `setup` left them."""
    from chalicelib import google_credentials

    for name, value in (("DALET_BACKEND", "aws"), ("DALET_STREAM_NAME", "dalet-events"),
                        ("DALET_BQ_DATASET", "analytics"), ("DALET_BQ_TABLE", "events")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DALET_API_KEY", "test-report-key")
    monkeypatch.setattr(google_credentials, "bigquery_client", lambda settings: bigquery_standin.client)
    bigquery_standin.answer_queries(answer_from_stored_rows(bigquery_standin))
    runtime.shutdown()
    prepared(BigQueryWarehouse(bigquery_standin.client, "analytics", "events"))
    yield client
    runtime.shutdown()


def test_on_aws_a_second_view_reads_the_stored_answer_not_the_events(deployed, bigquery_standin):
    from chalicelib.ingest.events import parse_event, stamp

    at = datetime.now(UTC) - timedelta(hours=1)
    runtime.warehouse().insert_events([
        stamp(parse_event({"namespace": NAMESPACE, "experiment": EXPERIMENT, "variant": variant,
                           "event": "participate", "uuid": f"{variant}-{n}"}), at)
        for variant in ("red", "blue") for n in range(3)])
    events = "`test-project.analytics.events`"

    status, first = get(deployed, "/experiments/exp/results")
    read_events = sum(events in query.sql for query in bigquery_standin.queries)
    again = [get(deployed, path)[1] for path in ("/experiments/exp/results", "/experiments/exp/results?cap=")]

    assert status == 200 and participants(first) == {"red": 3, "blue": 3}
    assert first["freshness"]["age_seconds"] == 0 and first["freshness"]["lag_seconds"] is None
    assert [answer["freshness"]["age_seconds"] > 0 for answer in again] == [True, True]
    assert sum(events in query.sql for query in bigquery_standin.queries) == read_events   # no event read again
    assert len(bigquery_standin.rows("analytics.report_answers")) == 1
