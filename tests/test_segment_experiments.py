"""Segment experiments first-class: listed with AlephBet's, a daily series, goal and value pickers,
on both warehouses from the same rows (people resolved across ids, docs/statistics.md)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chalicelib.ingest.events import Event, stamp
from chalicelib.reports import overview, segment_experiments, segment_results
from chalicelib.reports.errors import UnknownExperiment
from chalicelib.reports.queries import Window
from tests.bigquery_standin import bigquery_standin  # noqa: F401
from tests.segment_rows import exposure, segment_row, track
from tests.standin_sql import each_warehouse  # noqa: F401

NS = "default"


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2024, 5, day, hour, tzinfo=timezone.utc)


@pytest.fixture
def warehouse(each_warehouse):
    return each_warehouse


def alephbet(experiment: str, variant: str, event: str, uuid: str, when: datetime):
    return stamp(Event(NS, experiment, variant, event, uuid, None), when)


def browser_person(anonymous: str, user: str, variant: str, day: int, experiment: str = "pricing"):
    """Exposed anonymously in the browser, then signed in."""
    return [exposure(experiment, variant, anonymous, at(day), anonymous=True),
            segment_row("identify", None, user_id=user, anonymous_id=anonymous, at=at(day, 13))]


# ---- the list -------------------------------------------------------------------------------------

def test_the_overview_lists_both_sources_with_people_dates_and_the_split_check(warehouse):
    warehouse.insert_events([
        alephbet("button", "red", "participate", "r1", at(1)), alephbet("button", "blue", "participate", "b1", at(3)),
        alephbet("button", "red", "click", "r1", at(3)),
        *browser_person("anon-1", "user-1", "cheap", 2), exposure("pricing", "dear", "user-1", at(4)),   # one person
        *browser_person("anon-2", "user-2", "dear", 5),
    ])
    listed = overview.overview(warehouse, NS)
    assert listed == [
        {"experiment": "pricing", "source": "segment", "first_seen": "2024-05-02T12:00:00.000000Z",
         "last_seen": "2024-05-05T12:00:00.000000Z", "days_running": 4, "participants": 2,
         "variants": [{"label": "cheap", "participants": 1}, {"label": "dear", "participants": 1}],
         "srm": {"p_value": pytest.approx(1.0), "mismatch": False}, "multiple_exposures": 1},
        {"experiment": "button", "source": "alephbet", "first_seen": "2024-05-01T12:00:00.000000Z",
         "last_seen": "2024-05-03T12:00:00.000000Z", "days_running": 3, "participants": 2,
         "variants": [{"label": "blue", "participants": 1}, {"label": "red", "participants": 1}],
         "srm": {"p_value": pytest.approx(1.0), "mismatch": False}},
    ]


def test_experiments_without_goals_are_listed_and_a_lopsided_split_is_flagged(warehouse):
    rows = [exposure("lopsided", "a", f"a{n}", at(1)) for n in range(60)]
    rows += [exposure("lopsided", "b", f"b{n}", at(1)) for n in range(10)]
    warehouse.insert_events(rows)
    [listed] = overview.overview(warehouse, NS, sources=["segment"])
    assert listed["participants"] == 70 and listed["srm"]["mismatch"] is True
    assert overview.overview(warehouse, NS, sources=["alephbet"]) == []


def test_the_list_reads_only_its_window(warehouse):
    warehouse.insert_events([exposure("old", "a", "u1", at(1)), exposure("new", "a", "u2", at(9))])
    assert [entry["experiment"] for entry in overview.overview(warehouse, NS, Window(at(8).date(), None))] == ["new"]


# ---- the daily series -------------------------------------------------------------------------------

def test_the_daily_series_counts_each_person_on_their_first_exposure_and_first_conversion_day(warehouse):
    warehouse.insert_events([
        *browser_person("anon-1", "user-1", "cheap", 1), track("Subscription Started", "user-1", at(2)),
        track("Subscription Started", "user-1", at(3)),                                  # once, on day 2
        exposure("pricing", "cheap", "user-1", at(2)),                                  # seen again: day 1 still
        *browser_person("anon-2", "user-2", "dear", 2), track("Subscription Started", "user-2", at(1)),  # before
    ])
    daily = segment_experiments.experiment_daily(warehouse, NS, "pricing", goals=["Subscription Started"])
    assert daily["source"] == "segment" and daily["goals"] == ["Subscription Started"]
    assert [(day["day"], [(v["participants"], v["successes"]["Subscription Started"]) for v in day["variants"]])
            for day in daily["days"]] == [("2024-05-01", [(1, 0), (0, 0)]), ("2024-05-02", [(1, 1), (1, 0)])]
    totals = segment_results.experiment_results(warehouse, NS, "pricing", goals=["Subscription Started"])
    assert [v["participants"] for v in totals["variants"]] == [v["participants"] for v in daily["days"][-1]["variants"]]


def test_an_unknown_segment_experiment_has_no_daily_series(warehouse):
    with pytest.raises(UnknownExperiment):
        segment_experiments.experiment_daily(warehouse, NS, "nothing")


# ---- the pickers -----------------------------------------------------------------------------------

def test_the_goal_picker_lists_what_the_exposed_people_did_after_exposure_most_people_first(warehouse):
    warehouse.insert_events([
        *browser_person("anon-1", "user-1", "cheap", 2), *browser_person("anon-2", "user-2", "dear", 2),
        track("Order Completed", "user-1", at(3)), track("Order Completed", "user-2", at(3)),
        track("Order Completed", "user-2", at(4)), track("Signed Up", "user-1", at(3)),
        track("Before", "user-1", at(1)),                     # before exposure
        track("Stranger", "user-9", at(3)),                   # never exposed
    ])
    assert segment_experiments.goal_picker(warehouse, NS, "pricing") == [
        {"goal": "Order Completed", "users": 2}, {"goal": "Signed Up", "users": 1}]


def test_an_exposed_experiment_without_later_events_has_an_empty_goal_picker(warehouse):
    warehouse.insert_events([exposure("pricing", "a", "u1", at(1))])
    assert segment_experiments.goal_picker(warehouse, NS, "pricing") == []
    with pytest.raises(UnknownExperiment):
        segment_experiments.goal_picker(warehouse, NS, "nothing")


def test_the_value_picker_lists_numeric_properties_with_the_people_who_sent_them(warehouse):
    warehouse.insert_events([
        *browser_person("anon-1", "user-1", "cheap", 2), *browser_person("anon-2", "user-2", "dear", 2),
        track("Order Completed", "user-1", at(3), properties={"revenue": 20, "plan": "pro", "gift": True,
                                                               "cart": {"items": 3}}),
        track("Order Completed", "user-2", at(3), properties={"revenue": 9.5, "odd key": 1}),
        track("Order Completed", "user-2", at(1), properties={"discount": 5}),          # before exposure
    ])
    assert segment_experiments.value_picker(warehouse, NS, "pricing") == [
        {"property": "properties.revenue", "users": 2}, {"property": "properties.cart.items", "users": 1}]
    assert segment_experiments.value_picker(warehouse, NS, "pricing", goals=["Signed Up"]) == []
