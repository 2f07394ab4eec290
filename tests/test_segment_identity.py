"""One person across Segment ids (docs/statistics.md, "One person across ids"), pinned on both
warehouses from the same rows: DuckDB, and BigQuery's text through the real client against the
stand-in answering from the rows it stored (tests/standin_sql.py).
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chalicelib.reports import segment_results
from chalicelib.reports.segment_identity import LINK_DEPTH
from tests.bigquery_standin import bigquery_standin  # noqa: F401
from tests.segment_rows import exposure, segment_row, track
from tests.standin_sql import each_warehouse  # noqa: F401

NS = "default"


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2024, 5, day, hour, tzinfo=timezone.utc)


@pytest.fixture
def warehouse(each_warehouse):
    return each_warehouse


def identify(user: str, anonymous: str, when: datetime, **extra):
    return segment_row("identify", None, user_id=user, anonymous_id=anonymous, at=when, **extra)


def alias(previous: str, user: str, when: datetime):
    return segment_row("alias", None, user_id=user, at=when, properties={"previousId": previous})


def seen(variant: str, anonymous: str, when: datetime, experiment: str = "exp"):
    return exposure(experiment, variant, anonymous, when, anonymous=True)


def view(warehouse, goal: str = "Subscription Started"):
    return segment_results.experiment_results(warehouse, NS, "exp", goals=[goal])


def table(result) -> dict[str, dict[str, int]]:
    counted = {"participants": {v["label"]: v["participants"] for v in result["variants"]}}
    for goal in result["goals"]:
        counted[goal["goal"]] = {arm["label"]: arm["successes"] for arm in goal["variants"]}
    return counted


def test_the_browser_pattern_counts_a_server_side_conversion_in_the_browsers_variant(warehouse):
    warehouse.insert_events([
        seen("blue", "anon-1", at(1)), identify("user-1", "anon-1", at(1, 13)),
        track("Subscription Started", "user-1", at(2)),
        seen("red", "anon-2", at(1)),
    ])
    assert table(view(warehouse)) == {"participants": {"blue": 1, "red": 1},
                                      "Subscription Started": {"blue": 1, "red": 0}}


def test_any_message_carrying_both_ids_links_them(warehouse):
    warehouse.insert_events([
        seen("blue", "anon-1", at(1)),
        segment_row("page", "Home", user_id="user-1", anonymous_id="anon-1", at=at(1, 14)),
        track("Subscription Started", "user-1", at(2)),
    ])
    assert table(view(warehouse))["Subscription Started"] == {"blue": 1}


def test_an_alias_links_its_previous_id_to_its_user_id(warehouse):
    warehouse.insert_events([
        seen("blue", "anon-1", at(1)), alias("anon-1", "user-1", at(1, 13)),
        track("Subscription Started", "user-1", at(2)),
    ])
    assert table(view(warehouse))["Subscription Started"] == {"blue": 1}


def test_an_anonymous_id_meeting_two_user_ids_stays_with_the_earliest_link(warehouse):
    warehouse.insert_events([
        seen("blue", "anon-1", at(1)),
        identify("user-2", "anon-1", at(3), received_at=at(3)),         # arrived first, happened later
        identify("user-1", "anon-1", at(2), received_at=at(4)),
        track("Subscription Started", "user-2", at(5)),                 # user-2 is someone else
    ])
    assert table(view(warehouse))["Subscription Started"] == {"blue": 0}
    warehouse.insert_events([track("Subscription Started", "user-1", at(5))])
    assert table(view(warehouse))["Subscription Started"] == {"blue": 1}


def test_a_persons_exposure_is_the_earliest_of_any_of_their_ids_and_two_variants_count_as_multiple(warehouse):
    warehouse.insert_events([
        exposure("exp", "red", "user-1", at(3)),                        # signed in later, shown red
        seen("blue", "anon-1", at(1)), identify("user-1", "anon-1", at(2)),
        track("Subscription Started", "user-1", at(2, 14)),             # after the anonymous exposure
    ])
    result = view(warehouse)
    assert table(result) == {"participants": {"blue": 1}, "Subscription Started": {"blue": 1}}
    assert result["multiple_exposures"] == 1


def test_a_conversion_before_the_persons_first_exposure_does_not_count(warehouse):
    warehouse.insert_events([
        track("Subscription Started", "user-1", at(1)),
        seen("blue", "anon-1", at(2)), identify("user-1", "anon-1", at(3)),
    ])
    assert table(view(warehouse))["Subscription Started"] == {"blue": 0}


def test_links_chain_through_an_alias_to_the_newest_user_id(warehouse):
    warehouse.insert_events([
        seen("blue", "anon-1", at(1)), identify("old-id", "anon-1", at(1, 13)),
        alias("old-id", "new-id", at(2)),
        track("Subscription Started", "new-id", at(3)),
    ])
    assert table(view(warehouse)) == {"participants": {"blue": 1}, "Subscription Started": {"blue": 1}}


def test_a_chain_of_the_full_depth_resolves_and_a_cycle_is_one_person(warehouse):
    ids = [f"id-{n}" for n in range(LINK_DEPTH + 1)]
    rows = [seen("blue", ids[0], at(1))]
    rows += [alias(before, after, at(2)) for before, after in zip(ids, ids[1:])]
    rows += [track("Subscription Started", ids[-1], at(3))]
    rows += [seen("red", "loop-a", at(1)), alias("loop-a", "loop-b", at(2)), alias("loop-b", "loop-a", at(2, 13)),
             track("Subscription Started", "loop-b", at(3))]
    warehouse.insert_events(rows)
    assert table(view(warehouse)) == {"participants": {"blue": 1, "red": 1},
                                      "Subscription Started": {"blue": 1, "red": 1}}


def test_links_never_cross_namespaces(warehouse):
    warehouse.insert_events([
        seen("blue", "anon-1", at(1)), identify("user-1", "anon-1", at(1, 13), namespace="elsewhere"),
        track("Subscription Started", "user-1", at(2)),
    ])
    assert table(view(warehouse))["Subscription Started"] == {"blue": 0}
