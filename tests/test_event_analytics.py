"""GET /events and /events/names: counts and distinct users over time, over both protocols' rows."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from urllib.parse import urlencode

import pytest

from chalicelib.ingest.events import Event, stamp
from chalicelib.reports import analytics, queries
from chalicelib.reports.analytics import SeriesWindow
from chalicelib.reports.dimensions import parse_dimension
from chalicelib.reports.queries import Window
from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse
from tests.helpers import KEY_HEADER, report_client  # noqa: F401
from tests.segment_rows import segment_row, track

NS = "default"
MAY_1_TO_3 = SeriesWindow(date(2024, 5, 1), date(2024, 5, 3), "day")


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2024, 5, day, hour, tzinfo=timezone.utc)


def alephbet(event: str, uuid: str, when: datetime, experiment: str = "exp"):
    return stamp(Event(NS, experiment, "red", event, uuid), when)


@pytest.fixture
def warehouse(tmp_path):
    store = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    store.insert_events([
        track("Signed Up", "u1", at(1), properties={"plan": "pro"}),
        track("Signed Up", "u1", at(1, 13), properties={"plan": "pro"}),
        track("Signed Up", "u2", at(1), properties={"plan": "free"}, browser="Firefox"),
        track("Signed Up", "u3", at(3), properties={"plan": "free"}),
        track("Signed Up", "late", at(3, 23), received_at=at(4, 1)),        # arrived after the window
        track("Signed Up", "u9", at(2), namespace="elsewhere"),
        segment_row("page", None, anonymous_id="a1", at=at(2)),             # unnamed, no path: no event
        segment_row("page", "Pricing", anonymous_id="a2", at=at(2)),        # a page: an event by its name
        segment_row("identify", None, user_id="u1", anonymous_id="a1", at=at(2)),   # not an event
        alephbet("participate", "x1", at(2)), alephbet("Signed Up", "x1", at(2)),
    ])
    yield store
    store.close()


def series(view) -> dict:
    return {line["group"]: (line["events"], line["users"]) for line in view["series"]}


def test_each_interval_counts_events_and_distinct_users_with_zeros_where_nothing_happened(warehouse):
    view = analytics.event_series(warehouse, NS, MAY_1_TO_3, "Signed Up")
    assert view["intervals"] == ["2024-05-01T00:00:00.000000Z", "2024-05-02T00:00:00.000000Z",
                                 "2024-05-03T00:00:00.000000Z"]
    assert series(view) == {None: ([3, 1, 1], [2, 1, 1])}     # day 2: AlephBet's x1
    assert view["total_events"] == 5


def test_both_protocols_count_and_every_named_event_without_an_event_filter(warehouse):
    view = analytics.event_series(warehouse, NS, MAY_1_TO_3)
    assert series(view) == {None: ([3, 3, 1], [2, 2, 1])}     # day 2: x1's participate and goal, a2's page


def test_hourly_intervals_follow_the_events_client_time(warehouse):
    view = analytics.event_series(warehouse, NS, SeriesWindow(date(2024, 5, 1), date(2024, 5, 1), "hour"),
                                  "Signed Up")
    assert len(view["intervals"]) == 24
    events, users = series(view)[None]
    assert (events[12], events[13], users[12], sum(events)) == (2, 1, 2, 3)


def test_a_group_by_splits_the_series_by_the_property(warehouse):
    view = analytics.event_series(warehouse, NS, MAY_1_TO_3, "Signed Up", parse_dimension("properties.plan"))
    assert series(view) == {"pro": ([2, 0, 0], [1, 0, 0]), "free": ([1, 0, 1], [1, 0, 1]),
                            None: ([0, 1, 0], [0, 1, 0])}
    assert [line["group"] for line in view["series"]] == ["free", "pro", None]    # most events first


def test_beyond_twenty_groups_the_rest_is_one_series_counting_its_users_once(tmp_path):
    store = DuckDBWarehouse(tmp_path / "groups.duckdb")
    try:
        rows = [track("Click", f"u{n}", at(1, hour), properties={"button": f"b{n}"}, message_id=f"m{n}-{hour}")
                for n in range(20) for hour in (1, 2, 3)]
        rows += [track("Click", "same-user", at(1), properties={"button": f"rare{n}"}) for n in range(5)]
        store.insert_events(rows)
        view = analytics.event_series(store, NS, SeriesWindow(date(2024, 5, 1), date(2024, 5, 1), "day"), "Click",
                                      parse_dimension("properties.button"))
        assert len(view["series"]) == 21
        other = view["series"][-1]
        assert (other["group"], other["other"], other["events"], other["users"]) == ("(other)", True, [5], [1])
    finally:
        store.close()


def test_a_deleted_experiments_events_are_not_counted(warehouse):
    record = queries.record_deletion(queries.Target(queries.DUCKDB, queries.DUCKDB_TABLES, True), "d", NS, "exp",
                                     at(5))
    warehouse.execute(record.sql, record.params)
    assert series(analytics.event_series(warehouse, NS, MAY_1_TO_3))[None][0] == [3, 1, 1]    # day 2: the page


def test_names_list_every_named_event_with_counts_most_frequent_first(warehouse):
    assert analytics.event_names(warehouse, NS, queries.ALL_TIME)["names"] == [
        {"name": "Signed Up", "events": 6, "users": 5},
        {"name": "Pricing", "events": 1, "users": 1},
        {"name": "participate", "events": 1, "users": 1},
    ]
    june = analytics.event_names(warehouse, NS, Window(date(2024, 6, 1), date(2024, 6, 30)))
    assert june["names"] == []


def test_the_distinct_rendering_counts_a_row_stored_twice_once(warehouse):
    warehouse.execute("CREATE TABLE events_twice AS SELECT * FROM events UNION ALL SELECT * FROM events")
    twice = queries.Target(queries.DUCKDB, queries.Tables("events_twice", "deletions"), unique_identities=False)
    once = queries.Target(queries.DUCKDB, queries.DUCKDB_TABLES, unique_identities=True)
    from chalicelib.reports import analytics_queries

    def run(target):
        built = [analytics_queries.event_names(target, NS, queries.ALL_TIME),
                 analytics_queries.event_series(target, NS, MAY_1_TO_3.start, MAY_1_TO_3.end, "day", None,
                                                parse_dimension("properties.plan"))]
        return [sorted(map(str, warehouse.fetch(q.sql, q.params))) for q in built]

    assert run(twice) == run(once)


# ---- the routes ----------------------------------------------------------------------------------

def get(client, path: str, **query: str):
    reply = client.http.get(f"{path}?{urlencode(query)}", headers=KEY_HEADER)
    return reply.status_code, json.loads(reply.body)


def test_the_events_route_answers_the_series(report_client):
    from chalicelib import runtime

    runtime.warehouse().insert_events([track("Signed Up", "u1", at(1), properties={"plan": "pro"})])
    status, body = get(report_client, "/events", namespace=NS, event="Signed Up", **{"from": "2024-05-01",
                       "to": "2024-05-02", "group_by": "properties.plan"})
    assert status == 200, body
    assert series(body) == {"pro": ([1, 0], [1, 0])}
    status, body = get(report_client, "/events/names", namespace=NS)
    assert (status, body["names"]) == (200, [{"name": "Signed Up", "events": 1, "users": 1}])


def test_without_a_window_the_events_route_shows_the_last_thirty_days(report_client):
    status, body = get(report_client, "/events", namespace=NS)
    assert status == 200, body
    assert len(body["intervals"]) == 30 and body["to"] == datetime.now(timezone.utc).date().isoformat()


@pytest.mark.parametrize("query, parameter", [
    ({"interval": "week"}, "interval"),
    ({"interval": "hour", "from": "2024-01-01", "to": "2024-03-01"}, "from"),
    ({"from": "2020-01-01", "to": "2024-01-01"}, "from"),
    ({"group_by": "properties.a-b"}, "group_by"),
    ({"group_by": "uuid"}, "group_by"),
    ({"event": "\u0000"}, "event"),
    ({"from": "2024-05-02", "to": "2024-05-01"}, "to"),
])
def test_bad_event_parameters_are_a_400_naming_them(report_client, query, parameter):
    status, body = get(report_client, "/events", namespace=NS, **query)
    assert status == 400, body
    assert body["parameter"] == parameter


@pytest.mark.parametrize("path", ["/events", "/events/names"])
def test_the_event_routes_need_the_api_key(report_client, path):
    assert report_client.http.get(path).status_code == 401
    assert report_client.http.get(path, headers={"x-api-key": "wrong"}).status_code == 403
