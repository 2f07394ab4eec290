"""Experiments tracked with Segment's A/B testing spec, analysed from the rows the Segment routes store.

Rows are inserted straight into a DuckDB warehouse (tests/segment_rows.py follows the storage
conventions). Exposures are `Experiment Viewed` track events; goals are later track events.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest

from chalicelib.ingest.events import Event, stamp
from chalicelib.reports import experiments, fetch, queries, segment_queries, segment_results
from chalicelib.reports.cuped_results import CupedSettings
from chalicelib.reports.dimensions import parse_dimension, parse_json_path
from chalicelib.reports.queries import Window
from chalicelib.reports.errors import UnknownExperiment
from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse
from tests.helpers import KEY_HEADER, report_client  # noqa: F401
from tests.bigquery_standin import bigquery_standin  # noqa: F401
from tests.segment_rows import exposure, segment_row, track

NS = "default"


def at(day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2024, 5, day, hour, minute, tzinfo=timezone.utc)


@pytest.fixture
def warehouse(tmp_path):
    store = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    yield store
    store.close()


def results(warehouse, experiment: str = "exp", **options):
    return segment_results.experiment_results(warehouse, NS, experiment, **options)


def counts(view) -> dict[str, dict[str, int]]:
    """{goal: {variant: successes}} plus {"participants": {variant: n}}."""
    table = {"participants": {v["label"]: v["participants"] for v in view["variants"]}}
    for goal in view["goals"]:
        table[goal["goal"]] = {arm["label"]: arm["successes"] for arm in goal["variants"]}
    return table


# ---- exposures, goals and their order ----------------------------------------------------------

def test_participants_are_exposed_users_per_variation_and_successes_users_with_the_goal_after(warehouse):
    warehouse.insert_events([
        exposure("exp", "a", "u1", at(1)), exposure("exp", "a", "u2", at(1)), exposure("exp", "b", "u3", at(1)),
        exposure("exp", "a", "u1", at(2)),                                   # seen again: still one participant
        track("Signed Up", "u1", at(2)), track("Signed Up", "u1", at(3)),    # twice: one success
        track("Signed Up", "u3", at(2)), track("Order Completed", "u2", at(2)),
        exposure("other", "a", "u9", at(1)), track("Signed Up", "u9", at(2)),  # another experiment
    ])
    view = results(warehouse, goals=["Signed Up", "Order Completed"])
    assert counts(view) == {"participants": {"a": 2, "b": 1}, "Order Completed": {"a": 1, "b": 0},
                            "Signed Up": {"a": 1, "b": 1}}
    assert view["source"] == "segment" and view["multiple_exposures"] == 0


def test_a_goal_counts_by_client_timestamp_at_or_after_the_first_exposure_not_by_arrival(warehouse):
    warehouse.insert_events([
        exposure("exp", "a", "early", at(1, 12), received_at=at(3)),          # arrived late, happened first
        track("Buy", "early", at(1, 13), received_at=at(1, 13)),             # counted
        exposure("exp", "a", "late", at(2, 12), received_at=at(2, 12)),
        track("Buy", "late", at(2, 11), received_at=at(2, 13)),              # happened before: not counted
        exposure("exp", "a", "same", at(2, 12)), track("Buy", "same", at(2, 12)),   # same moment: counted
    ])
    assert counts(results(warehouse, goals=["Buy"]))["Buy"] == {"a": 2}


def test_a_user_is_the_user_id_else_the_anonymous_id(warehouse):
    warehouse.insert_events([
        exposure("exp", "a", "anon-1", at(1), anonymous=True),
        segment_row("track", "Buy", anonymous_id="anon-1", at=at(2)),
        exposure("exp", "a", "known", at(1)),
        segment_row("track", "Buy", user_id="known", anonymous_id="whatever", at=at(2)),
        segment_row("track", "Buy", user_id="stranger", anonymous_id="anon-1", at=at(2)),  # the user is "stranger"
    ])
    assert counts(results(warehouse, goals=["Buy"])) == {"participants": {"a": 2}, "Buy": {"a": 2}}


def test_a_user_exposed_to_two_variants_counts_once_in_the_first_and_is_reported(warehouse):
    warehouse.insert_events([
        exposure("exp", "b", "u1", at(2)), exposure("exp", "a", "u1", at(1)),   # a came first (by timestamp)
        exposure("exp", "b", "u2", at(1)),
        track("Buy", "u1", at(3)),
    ])
    view = results(warehouse, goals=["Buy"])
    assert counts(view) == {"participants": {"a": 1, "b": 1}, "Buy": {"a": 1, "b": 0}}
    assert view["multiple_exposures"] == 1


def test_exposures_without_a_variation_or_a_user_are_ignored(warehouse):
    warehouse.insert_events([
        segment_row("track", "Experiment Viewed", user_id="u1", at=at(1), properties={"experiment_id": "exp"}),
        segment_row("track", "Experiment Viewed", at=at(1), properties={"experiment_id": "exp", "variation_id": "a"}),
        exposure("exp", "a", "u2", at(1)),
    ])
    assert counts(results(warehouse))["participants"] == {"a": 1}


def test_numeric_experiment_and_variation_ids_match_their_text(warehouse):
    warehouse.insert_events([segment_row("track", "Experiment Viewed", user_id="u1", at=at(1),
                                         properties={"experiment_id": 42, "variation_id": 7})])
    assert counts(results(warehouse, "42"))["participants"] == {"7": 1}


def test_without_goals_the_events_most_users_did_after_exposure_are_the_goals(warehouse):
    rows = [exposure("exp", "a", f"u{n}", at(1)) for n in range(12)]
    for rank in range(12):      # event e0 done by 12 users, e1 by 11, ... e11 by 1
        rows += [track(f"e{rank}", f"u{n}", at(2)) for n in range(12 - rank)]
    rows += [track("before", f"u{n}", at(1, 1)) for n in range(12)]    # before exposure: never a goal
    warehouse.insert_events(rows)
    goals = [goal["goal"] for goal in results(warehouse)["goals"]]
    assert goals == sorted(f"e{rank}" for rank in range(segment_queries.DEFAULT_GOAL_COUNT))


def test_a_requested_goal_nobody_reached_is_listed_with_zero_successes(warehouse):
    warehouse.insert_events([exposure("exp", "a", "u1", at(1)), exposure("exp", "b", "u2", at(1))])
    assert counts(results(warehouse, goals=["Never"]))["Never"] == {"a": 0, "b": 0}


def test_values_come_from_a_numeric_property_summed_per_user(warehouse):
    warehouse.insert_events([
        exposure("exp", "a", "u1", at(1)), exposure("exp", "a", "u2", at(1)), exposure("exp", "a", "u3", at(1)),
        track("Order", "u1", at(2), properties={"revenue": 10}),
        track("Order", "u1", at(3), properties={"revenue": "5.5"}),          # a numeric string counts
        track("Order", "u2", at(2), properties={"revenue": "lots"}),         # not a number: no value
        track("Order", "u3", at(0 + 1, 1), properties={"revenue": 100}),     # before exposure: not counted
    ])
    value = results(warehouse, goals=["Order"], value=parse_json_path("properties.revenue"))["goals"][0]["value"]
    assert value["variants"] == [{"label": "a", "count": 1, "sum": 15.5, "mean": pytest.approx(15.5 / 3)}]


def test_the_decision_view_equals_alephbets_for_the_same_behaviour(warehouse, tmp_path):
    """Same users, variants, goals and values tracked both ways: the same statistics."""
    plan = [("control", 40, 8, 2.0), ("treatment", 44, 15, 3.0)]   # variant, participants, converters, value each
    segment_rows, alephbet_rows = [], []
    for variant, participants, converters, value in plan:
        for n in range(participants):
            user = f"{variant}-{n}"
            segment_rows.append(exposure("exp", variant, user, at(1)))
            alephbet_rows.append(stamp(Event("alephbet", "exp", variant, "participate", user), at(1)))
            if n < converters:
                segment_rows.append(track("Buy", user, at(2), properties={"revenue": value * (n + 1)}))
                alephbet_rows.append(stamp(Event("alephbet", "exp", variant, "Buy", user, value * (n + 1)), at(2)))
    warehouse.insert_events(segment_rows + alephbet_rows)
    ours = results(warehouse, goals=["Buy"], value=parse_json_path("properties.revenue"), confidence=0.9)
    theirs = experiments.experiment_results(warehouse, "alephbet", "exp", confidence=0.9)
    # `exposure` is AlephBet's own (its span, read in the results' scan; docs/api.md).
    shared = {key: value for key, value in theirs.items() if key not in ("namespace", "exposure")}
    assert {key: ours[key] for key in shared} == shared
    assert shared["goals"][0]["value"] is not None


def _to_12_digits(value):
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {key: _to_12_digits(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_12_digits(item) for item in value]
    return value


def test_capped_values_are_the_same_as_alephbets_for_the_same_behaviour(warehouse):
    """cap=p90 winsorises each user's total at the goal's pooled 90th percentile in both sources' queries."""
    segment_rows, alephbet_rows = [], []
    for variant, participants in (("control", 30), ("treatment", 30)):
        for n in range(participants):
            user, value = f"{variant}-{n}", float(n * n + (500 if variant == "treatment" and n == 0 else 0))
            segment_rows += [exposure("exp", variant, user, at(1)), track("Buy", user, at(2), properties={"revenue": value})]
            alephbet_rows += [stamp(Event("alephbet", "exp", variant, "participate", user), at(1)),
                              stamp(Event("alephbet", "exp", variant, "Buy", user, value), at(2))]
    warehouse.insert_events(segment_rows + alephbet_rows)
    ours = results(warehouse, goals=["Buy"], value=parse_json_path("properties.revenue"), cap=90)
    theirs = experiments.experiment_results(warehouse, "alephbet", "exp", cap=90)
    # The same figures; the two queries sum in different orders, so the last bits may differ.
    assert _to_12_digits(ours["goals"][0]["value"]) == _to_12_digits(theirs["goals"][0]["value"])
    assert ours["cap"] == theirs["cap"] == "p90"
    uncapped = experiments.experiment_results(warehouse, "alephbet", "exp")["goals"][0]["value"]["variants"]
    capped = theirs["goals"][0]["value"]["variants"]
    assert all(arm["sum"] < before["sum"] for arm, before in zip(capped, uncapped))


def test_namespaces_and_experiments_never_mix(warehouse):
    warehouse.insert_events([exposure("exp", "a", "u1", at(1)), exposure("exp", "a", "u2", at(1), namespace="other"),
                             track("Buy", "u1", at(2), namespace="other")])
    assert counts(results(warehouse, goals=["Buy"])) == {"participants": {"a": 1}, "Buy": {"a": 0}}


def test_an_experiment_nobody_was_exposed_to_is_unknown_but_an_empty_window_is_an_empty_view(warehouse):
    warehouse.insert_events([exposure("exp", "a", "u1", at(1))])
    with pytest.raises(UnknownExperiment):
        results(warehouse, "missing")
    assert results(warehouse, window=Window(date(2024, 6, 1), date(2024, 6, 2)))["variants"] == []


def test_a_window_keeps_exposures_and_goals_received_on_its_days(warehouse):
    warehouse.insert_events([exposure("exp", "a", "u1", at(1)), exposure("exp", "a", "u2", at(2)),
                             track("Buy", "u1", at(2)), track("Buy", "u2", at(3))])
    view = results(warehouse, goals=["Buy"], window=Window(date(2024, 5, 2), date(2024, 5, 2)))
    assert counts(view) == {"participants": {"a": 1}, "Buy": {"a": 0}}


def test_rows_stored_twice_count_once_where_the_warehouse_may_keep_duplicates(warehouse):
    """BigQuery's insertId dedup is best effort: its rendering must not double a value."""
    warehouse.insert_events([exposure("exp", "a", "u1", at(1)), exposure("exp", "a", "u2", at(1)),
                             track("Buy", "u1", at(2), properties={"revenue": 4})])
    warehouse.execute("CREATE TABLE events_twice AS SELECT * FROM events UNION ALL SELECT * FROM events")
    twice = queries.Target(queries.DUCKDB, queries.Tables("events_twice", "deletions"), unique_identities=False)
    value = parse_json_path("properties.revenue")
    query = segment_queries.experiment_decision_counts(twice, NS, "exp", goals=["Buy"], value=value)
    once = segment_queries.experiment_decision_counts(queries.Target(queries.DUCKDB, queries.DUCKDB_TABLES, True),
                                                      NS, "exp", goals=["Buy"], value=value)
    def fetched(q):
        return sorted(tuple(row.values()) for row in warehouse.fetch(q.sql, q.params))
    assert fetched(query) == fetched(once)
    assert ("a", "Buy", 1, 0, 1, 4.0, 16.0, None) in fetched(once)


def test_the_rows_carry_the_sample_variance_of_each_users_summed_value(warehouse):
    """For a results view that reads a variance (its successor's DecisionRow) rather than sums of squares."""
    import statistics

    per_user = {"u1": [1e9 + 0.5, 2.25], "u2": [1e9 + 3.0], "u3": [1e9 - 1.0, 0.0, 4.5]}
    rows = [exposure("exp", "a", user, at(1)) for user in per_user]
    rows += [track("Buy", user, at(2, hour), properties={"revenue": amount})
             for user, amounts in per_user.items() for hour, amount in enumerate(amounts, start=1)]
    warehouse.insert_events(rows)
    query = segment_queries.experiment_decision_counts(fetch.target_of(warehouse), NS, "exp", goals=["Buy"],
                                                       value=parse_json_path("properties.revenue"))
    [bought] = [row for row in warehouse.fetch(query.sql, query.params) if row["event"] == "Buy"]
    assert bought["variance"] == pytest.approx(statistics.variance([sum(v) for v in per_user.values()]), rel=1e-9)


# ---- breakdowns ----------------------------------------------------------------------------------

def _plans(warehouse):
    rows = []
    for n, (plan, variant, buys) in enumerate([("pro", "a", True), ("pro", "b", False), ("pro", "b", True),
                                              ("free", "a", False), ("free", "a", True), ("free", "b", False),
                                              ("free", "a", False)]):
        user = f"u{n}"
        rows.append(exposure("exp", variant, user, at(1), properties={"plan": plan},
                             context={"page": {"path": f"/{plan}"}}, browser="Firefox" if n % 2 else "Chrome"))
        if buys:
            rows.append(track("Buy", user, at(2)))
    warehouse.insert_events(rows + [exposure("exp", "b", "nobody-knows", at(1))])   # no plan, no path


def segments(view) -> dict:
    return {(item["value"], item["other"]): counts(item) for item in view["breakdown"]["segments"]}


@pytest.mark.parametrize("dimension", ["properties.plan", "context.page.path"])
def test_a_breakdown_splits_every_figure_by_the_exposures_property(warehouse, dimension):
    _plans(warehouse)
    view = results(warehouse, goals=["Buy"], dimension=parse_dimension(dimension))
    named = {value.strip("/") if value else value: figures for (value, _), figures in segments(view).items()}
    assert named == {
        "free": {"participants": {"a": 3, "b": 1}, "Buy": {"a": 1, "b": 0}},
        "pro": {"participants": {"a": 1, "b": 2}, "Buy": {"a": 1, "b": 1}},
        None: {"participants": {"a": 0, "b": 1}, "Buy": {"a": 0, "b": 0}},
    }
    assert view["breakdown"]["dimension"] == dimension
    assert counts(view) == {"participants": {"a": 4, "b": 4}, "Buy": {"a": 2, "b": 1}}


def test_a_breakdown_by_browser_uses_the_stored_browser_family(warehouse):
    _plans(warehouse)
    view = results(warehouse, goals=["Buy"], dimension=parse_dimension("browser"))
    assert {value: figures["participants"] for (value, _), figures in segments(view).items()} == {
        "Chrome": {"a": 3, "b": 1}, "Firefox": {"a": 1, "b": 2}, None: {"a": 0, "b": 1}}


def test_each_segment_has_the_whole_views_statistics_against_the_same_control(warehouse):
    _plans(warehouse)
    view = results(warehouse, goals=["Buy"], dimension=parse_dimension("properties.plan"), control="b")
    for item in view["breakdown"]["segments"]:
        assert item["control"] == "b"
        assert {"srm", "goals", "variants"} <= set(item)
        assert set(item["goals"][0]["variants"][0]) >= {"label", "trials", "successes", "rate", "rate_ci"}


def test_beyond_twenty_values_the_rest_are_one_other_segment_and_the_figures_still_add_up(warehouse):
    rows = []
    for value in range(25):                  # value v has 25 - v users, so 0..19 are the top twenty
        for n in range(25 - value):
            user = f"v{value}-{n}"
            rows.append(exposure("exp", "ab"[n % 2], user, at(1), properties={"plan": f"p{value}"}))
            rows.append(track("Buy", user, at(2)))
    warehouse.insert_events(rows)
    view = results(warehouse, goals=["Buy"], dimension=parse_dimension("properties.plan"))
    listed = view["breakdown"]["segments"]
    assert [item["value"] for item in listed] == [f"p{value}" for value in range(20)] + ["(other)"]
    assert listed[-1]["other"] is True
    assert sum(v["participants"] for v in listed[-1]["variants"]) == 5 + 4 + 3 + 2 + 1
    for field in ("participants",):
        assert sum(v[field] for item in listed for v in item["variants"]) == sum(v[field] for v in view["variants"])


def test_alephbet_results_break_down_by_browser(warehouse):
    def row(variant, event, uuid, browser):
        return stamp(Event("alephbet", "exp", variant, event, uuid), at(1))._replace(browser=browser)

    warehouse.insert_events([row("a", "participate", "u1", "Chrome"), row("a", "participate", "u2", "Safari"),
                             row("b", "participate", "u3", "Chrome"), row("a", "click", "u1", "Chrome"),
                             row("b", "click", "u3", "Chrome")])
    view = experiments.experiment_results(warehouse, "alephbet", "exp", dimension=parse_dimension("browser", columns=()))
    assert segments(view) == {
        ("Chrome", False): {"participants": {"a": 1, "b": 1}, "click": {"a": 1, "b": 1}},
        ("Safari", False): {"participants": {"a": 1, "b": 0}, "click": {"a": 0, "b": 0}},
    }
    assert counts(view) == {"participants": {"a": 2, "b": 1}, "click": {"a": 1, "b": 1}}


def test_hostile_property_values_come_back_as_literal_text(warehouse):
    hostile = "'; DROP TABLE events; -- \" $.x \\ 🧪"
    warehouse.insert_events([exposure("exp", "a", "u1", at(1), properties={"plan": hostile})])
    view = results(warehouse, dimension=parse_dimension("properties.plan"))
    assert [item["value"] for item in view["breakdown"]["segments"]] == [hostile]


# ---- the route -----------------------------------------------------------------------------------

def _seed_route(client):
    from chalicelib import runtime

    runtime.warehouse().insert_events([
        exposure("exp", "a", "u1", at(1), properties={"plan": "pro"}), exposure("exp", "b", "u2", at(1)),
        track("Signed Up", "u1", at(2), properties={"revenue": 3}),
    ])


def get(client, path: str, **query: str):
    from urllib.parse import urlencode

    reply = client.http.get(f"{path}?{urlencode(query)}", headers=KEY_HEADER)
    return reply.status_code, json.loads(reply.body)


def test_the_results_route_answers_segment_experiments(report_client):
    _seed_route(report_client)
    status, body = get(report_client, "/experiments/exp/results", namespace=NS, source="segment",
                       goals="Signed Up", value="properties.revenue", dimension="properties.plan")
    assert status == 200, body
    assert counts(body) == {"participants": {"a": 1, "b": 1}, "Signed Up": {"a": 1, "b": 0}}
    assert body["goals"][0]["value"]["variants"][0]["sum"] == 3
    assert [item["value"] for item in body["breakdown"]["segments"]] == ["pro", None]


@pytest.mark.parametrize("query, parameter", [
    ({"source": "mixpanel"}, "source"),
    ({"source": "segment", "goals": "a," + "x" * 300}, "goals"),
    ({"source": "segment", "goals": ",".join(f"g{n}" for n in range(21))}, "goals"),
    ({"source": "segment", "goals": "Experiment Viewed"}, "goals"),
    ({"source": "segment", "goals": "a,a"}, "goals"),
    ({"source": "segment", "value": "context.revenue"}, "value"),
    ({"source": "segment", "value": "properties.rev'enue"}, "value"),
    ({"source": "segment", "dimension": "traits.plan"}, "dimension"),
    ({"source": "segment", "dimension": "properties." + ".".join(["k"] * 9)}, "dimension"),
    ({"source": "segment", "dimension": "properties.$x"}, "dimension"),
    ({"source": "segment", "dimension": "properties.a b"}, "dimension"),
    ({"source": "alephbet", "dimension": "properties.plan"}, "dimension"),    # AlephBet events: browser only
    ({"source": "alephbet", "goals": "Signed Up"}, "goals"),                 # AlephBet goals are its own events
    ({"source": "alephbet", "value": "properties.revenue"}, "value"),
])
def test_bad_segment_parameters_are_a_400_naming_them(report_client, query, parameter):
    _seed_route(report_client)
    status, body = get(report_client, "/experiments/exp/results", namespace=NS, **query)
    assert status == 400, body
    assert body["parameter"] == parameter


def test_an_unexposed_segment_experiment_is_a_404(report_client):
    status, body = get(report_client, "/experiments/nothing/results", namespace=NS, source="segment")
    assert status == 404, body


# ---- BigQuery: the pinned text through the real client ------------------------------------------

def test_bigquery_runs_the_segment_text_with_the_json_path_and_goals_as_typed_parameters(bigquery_standin):
    from chalicelib.storage.bigquery_warehouse import BigQueryWarehouse
    from tests.bigquery_standin import QueryAnswer

    warehouse = BigQueryWarehouse(bigquery_standin.client, dataset="analytics", table="events")
    bigquery_standin.answer_queries(lambda query: QueryAnswer(
        schema=[("segment", "STRING"), ("other", "BOOL"), ("variant", "STRING"), ("event", "STRING"),
                ("uuids", "INT64"), ("multiple", "INT64"), ("valued", "INT64"), ("total", "FLOAT64"),
                ("total_squares", "FLOAT64"), ("variance", "FLOAT64")],
        rows=[{"segment": "pro", "other": False, "variant": "a", "event": "participate", "uuids": 3, "multiple": 1,
               "valued": 0, "total": None, "total_squares": None, "variance": None},
              {"segment": "pro", "other": False, "variant": "a", "event": "Buy", "uuids": 1, "multiple": 0,
               "valued": 1, "total": 5.0, "total_squares": 25.0, "variance": None}]))
    window = Window(date(2024, 5, 1), date(2024, 5, 2))
    view = results(warehouse, goals=["Buy"], value=parse_json_path("properties.revenue"),
                   dimension=parse_dimension("properties.plan"), window=window, cuped=CupedSettings(enabled=False))
    assert counts(view) == {"participants": {"a": 3}, "Buy": {"a": 1}} and view["multiple_exposures"] == 1
    sent = bigquery_standin.queries[-1]
    target = queries.Target(queries.BIGQUERY, queries.bigquery_tables("test-project", "analytics", "events"), False)
    assert sent.sql == segment_queries.experiment_decision_counts(
        target, NS, "exp", goals=["Buy"], value=parse_json_path("properties.revenue"),
        dimension=parse_dimension("properties.plan"), window=window).sql
    types = {p["name"]: p["parameterType"] for p in sent.body["queryParameters"]}
    assert types["dimension_path"] == {"type": "STRING"} and types["value_path"] == {"type": "STRING"}
    assert types["goal_0"] == {"type": "STRING"} and types["from_ts"] == {"type": "TIMESTAMP"}
    assert (sent.parameters["dimension_path"], sent.parameters["value_path"]) == ("$.plan", "$.revenue")


# ---- the dimension grammar -----------------------------------------------------------------------

@pytest.mark.parametrize("text, column, json_path", [
    ("browser", "browser", None),
    ("properties.plan", "properties", "$.plan"),
    ("context.page.path", "context", "$.page.path"),
    ("properties._a1.B_2", "properties", "$._a1.B_2"),
])
def test_a_dimension_names_an_allowed_column_and_a_json_path(text, column, json_path):
    dimension = parse_dimension(text)
    assert (dimension.column, dimension.json_path, dimension.name) == (column, json_path, text)


@pytest.mark.parametrize("text", ["properties", "properties.", "properties.1a", "properties.a..b", "properties.a-b",
                                  "properties.a b", "properties.$x", "properties.a[0]", "traits.plan", "uuid",
                                  "properties." + ".".join(["k"] * 9), "properties." + "k" * 65, "Properties.plan",
                                  "properties.plan\n", "properties.pl\u00e4n"])
def test_anything_outside_the_grammar_is_refused(text):
    from chalicelib.reports.dimensions import InvalidPath

    with pytest.raises(InvalidPath):
        parse_dimension(text)
