"""The Events view's API: page calls are events (top pages, UTM campaigns and referrers a `group_by`
away), unique users over the window, and a 48-hour hourly default; on both warehouses from the same rows."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from urllib.parse import urlencode

import pytest

from chalicelib.reports import analytics
from chalicelib.reports.analytics_queries import SeriesWindow
from chalicelib.reports.dimensions import parse_dimension
from chalicelib.reports.queries import Window
from tests.bigquery_standin import bigquery_standin  # noqa: F401
from tests.helpers import KEY_HEADER, report_client  # noqa: F401
from tests.segment_rows import segment_row, track
from tests.standin_sql import each_warehouse  # noqa: F401

NS = "default"
MAY_1_TO_2 = SeriesWindow(date(2024, 5, 1), date(2024, 5, 2), "day")


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2024, 5, day, hour, tzinfo=timezone.utc)


def page(name: str | None, user: str, when: datetime, path: str = "/", source: str | None = None,
         referrer: str | None = None):
    context = {"page": {"path": path, **({"referrer": referrer} if referrer else {})}}
    if source:
        context["campaign"] = {"source": source, "medium": "email", "name": "spring"}
    return segment_row("page", name, anonymous_id=user, at=when, properties={"path": path}, context=context)


@pytest.fixture
def warehouse(each_warehouse):
    each_warehouse.insert_events([
        page("Pricing", "a1", at(1), "/pricing", source="newsletter", referrer="https://news.example/"),
        page("Pricing", "a2", at(1), "/pricing"),
        page(None, "a1", at(2), "/docs/start", source="newsletter"),       # unnamed: its path
        track("Signed Up", "a1", at(2)),
    ])
    return each_warehouse


def totals(view) -> dict:
    return {line["group"]: sum(line["events"]) for line in view["series"]}


def test_page_calls_are_events_by_name_or_else_path(warehouse):
    names = analytics.event_names(warehouse, NS, Window(date(2024, 5, 1), date(2024, 5, 2)))["names"]
    assert {item["name"]: (item["events"], item["users"]) for item in names} == {
        "Pricing": (2, 2), "/docs/start": (1, 1), "Signed Up": (1, 1)}
    assert totals(analytics.event_series(warehouse, NS, MAY_1_TO_2, "/docs/start")) == {None: 1}


@pytest.mark.parametrize("group_by, expected", [
    ("context.page.path", {"/pricing": 2, "/docs/start": 1, None: 1}),
    ("context.campaign.source", {"newsletter": 2, None: 2}),
    ("context.campaign.medium", {"email": 2, None: 2}),
    ("context.page.referrer", {"https://news.example/": 1, None: 3}),
])
def test_top_pages_campaigns_and_referrers_are_a_group_by_away(warehouse, group_by, expected):
    assert totals(analytics.event_series(warehouse, NS, MAY_1_TO_2, group=parse_dimension(group_by))) == expected


def test_unique_users_count_each_user_once_over_the_window_per_series_and_in_all(warehouse):
    view = analytics.event_series(warehouse, NS, MAY_1_TO_2)
    [line] = view["series"]
    assert line["users"] == [2, 1] and line["unique_users"] == 2 and view["unique_users"] == 2
    grouped = analytics.event_series(warehouse, NS, MAY_1_TO_2, group=parse_dimension("context.campaign.source"))
    assert {line["group"]: line["unique_users"] for line in grouped["series"]} == {"newsletter": 1, None: 2}
    assert grouped["unique_users"] == 2


def test_an_empty_window_has_no_series_and_no_users(warehouse):
    view = analytics.event_series(warehouse, NS, SeriesWindow(date(2024, 6, 1), date(2024, 6, 1), "day"))
    assert (view["series"], view["unique_users"], view["total_events"]) == ([], 0, 0)


def test_hourly_without_a_window_shows_the_last_48_hours(report_client):
    reply = report_client.http.get(f"/events?{urlencode({'namespace': NS, 'interval': 'hour'})}", headers=KEY_HEADER)
    body = json.loads(reply.body)
    assert reply.status_code == 200, body
    assert len(body["intervals"]) == 48 and body["to"] == datetime.now(timezone.utc).date().isoformat()
    assert body["unique_users"] == 0
