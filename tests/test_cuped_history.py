"""CUPED's history (docs/statistics.md, "CUPED"): who a person is and what their history is, pinned on both
warehouses from the same rows (DuckDB, and BigQuery's text through the real client against the stand-in).

Segment: the same person as the results (one person across linked ids), their history the goal events of
any of their ids before their first exposure, read in the decision counts' own pass. AlephBet: the same goal
sent to any experiment of the namespace, tombstones and windows honoured. On BigQuery both scans start
`pre_days` before the first exposure, so older partitions are not read.
"""
from __future__ import annotations

from dataclasses import astuple
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.ingest.events import Event, format_timestamp, stamp
from chalicelib.reports import cuped_queries, experiments, segment_queries, segment_results
from chalicelib.reports.cuped_results import arm_moments
from chalicelib.reports.dimensions import parse_json_path
from chalicelib.reports.fetch import fetch, target_of
from chalicelib.reports.queries import Window
from tests.bigquery_standin import bigquery_standin  # noqa: F401
from tests.segment_rows import exposure, segment_row, track
from tests.standin_sql import each_warehouse  # noqa: F401

NS = "default"
EXPOSED = datetime(2024, 5, 20, 12, tzinfo=timezone.utc)
REVENUE = parse_json_path("properties.revenue")


@pytest.fixture
def warehouse(each_warehouse):
    return each_warehouse


def days(number: float) -> timedelta:
    return timedelta(days=number)


def identify(user: str, anonymous: str, when: datetime):
    return segment_row("identify", None, user_id=user, anonymous_id=anonymous, at=when)


def seen(variant: str, anonymous: str, when: datetime = EXPOSED):
    return exposure("exp", variant, anonymous, when, anonymous=True)


def buy(user: str, when: datetime, revenue: float = 1.0):
    return track("Buy", user, when, properties={"revenue": revenue})


def moments(warehouse, **options):
    rows = fetch(warehouse, cuped_queries.segment_cuped_moments(target_of(warehouse), NS, "exp", goals=["Buy"],
                                                                value=REVENUE, **options))
    return arm_moments(rows, "rate")["Buy"], arm_moments(rows, "value")["Buy"]


# ---- Segment: one person across ids ------------------------------------------------------------------

def test_a_persons_history_is_any_of_their_ids_goals_before_their_first_exposure(warehouse):
    warehouse.insert_events([
        seen("a", "anon-1"), identify("user-1", "anon-1", EXPOSED + timedelta(hours=1)),
        exposure("exp", "a", "user-1", EXPOSED + days(2)),        # a later exposure under the other id
        buy("user-1", EXPOSED - days(2), 5), buy("anon-1", EXPOSED - days(3), 7),   # history under both ids
        buy("user-1", EXPOSED - days(20), 100),                   # before the 14 days
        buy("user-1", EXPOSED + days(1), 11),                     # after the first exposure: a result, not history
        seen("a", "anon-2"),
    ])
    rate, value = moments(warehouse)
    assert rate["a"].participants == 2                            # anon-1 and user-1 are one person
    assert (rate["a"].mean_x * 2, rate["a"].mean_y * 2) == (2.0, 1.0)
    assert (value["a"].mean_x * 2, value["a"].mean_y * 2) == (12.0, 11.0)


def linked_people(count: int = 12) -> list:
    """Per arm: people exposed anonymously who sign in; history and conversions under their userId."""
    rows = []
    for label in ("control", "b"):
        for number in range(count):
            anonymous, user = f"anon-{label}-{number}", f"user-{label}-{number}"
            rows += [seen(label, anonymous), identify(user, anonymous, EXPOSED + timedelta(hours=1))]
            rows += [buy(user, EXPOSED - days(day + 1)) for day in range(number % 3)]
            if number % 3 == 2 or number % 5 == 0 or (label == "b" and number % 7 == 1):
                rows.append(buy(user, EXPOSED + days(1)))
    return rows


def test_with_linked_ids_cuped_counts_the_results_participants_and_applies(warehouse):
    # 60 an arm with differing rates: enough successes and non-successes for CUPED on a rate.
    warehouse.insert_events(linked_people(60))
    view = segment_results.experiment_results(warehouse, NS, "exp", goals=["Buy"], control="control")
    assert view["cuped"]["applied"] is True and view["cuped"]["goals"] == ["Buy"]
    assert {arm["label"]: (arm["trials"], arm["successes"]) for arm in view["goals"][0]["variants"]} == {
        "control": (60, 28), "b": (60, 33)}
    treated = next(arm for arm in view["goals"][0]["variants"] if arm["label"] == "b")
    assert treated["cuped"]["variance_reduction"] > 0


@pytest.mark.parametrize("goals, cap", [(["Buy"], None), (None, 90)], ids=["goals", "default goals, capped"])
def test_the_decision_counts_pass_gives_the_decision_rows_unchanged_and_the_moments_of_cupeds_own_query(
        warehouse, goals, cap):
    warehouse.insert_events(linked_people() + [buy("user-b-1", EXPOSED + days(2), 40), seen("b", "anon-late"),
                                               track("Other", "user-b-2", EXPOSED + days(1))])
    target = target_of(warehouse)

    def decision(history):
        return fetch(warehouse, segment_queries.experiment_decision_counts(
            target, NS, "exp", goals=goals, value=REVENUE, cap=cap, history=history))

    together = decision(segment_queries.History(14))
    counted = [{name: row[name] for name in segment_queries.DECISION_COLUMNS if name in row}
               for row in together if not row["cuped"]]
    # The same rows; totals and variances to the last bits the two passes' summation orders leave.
    assert [[(key, pytest.approx(value, rel=1e-12) if isinstance(value, float) else value) for key, value in row]
            for row in sorted(map(sorted_items, counted))] == sorted(map(sorted_items, decision(None)))
    participants = [{"variant": row["variant"], "event": "participate", "active": row["uuids"]}
                    for row in counted if row["event"] == "participate"]
    alone = fetch(warehouse, cuped_queries.segment_cuped_moments(target, NS, "exp", goals=goals or ["Buy", "Other"],
                                                                 value=REVENUE))
    for metric in ("rate", "value"):
        assert same_moments(arm_moments([row for row in together if row["cuped"]] + participants, metric),
                            arm_moments(alone, metric))


def same_moments(got: dict, expected: dict) -> bool:
    """Equal up to the order the warehouse summed in."""
    return {goal: sorted(arms) for goal, arms in got.items()} == {goal: sorted(arms) for goal, arms in expected.items()} \
        and all(astuple(got[goal][arm]) == pytest.approx(astuple(expected[goal][arm]), rel=1e-12, abs=1e-12)
                for goal in expected for arm in expected[goal])


def sorted_items(row: dict) -> list:
    return sorted(row.items())


def test_on_bigquery_the_goal_scan_starts_pre_days_and_a_day_before_the_first_exposure(bigquery_standin):
    from chalicelib.storage.bigquery_warehouse import BigQueryWarehouse
    from tests.standin_sql import answer_from_stored_rows

    bigquery_standin.answer_queries(answer_from_stored_rows(bigquery_standin))
    warehouse = BigQueryWarehouse(bigquery_standin.client, dataset="analytics", table="events")
    warehouse.insert_events(linked_people(60))
    view = segment_results.experiment_results(warehouse, NS, "exp", goals=["Buy"], control="control")
    assert view["cuped"]["applied"] is True
    sent = next(query for query in bigquery_standin.queries if "per_person" in query.sql)
    assert "e.received_at >= @history_since" in sent.sql
    assert datetime.fromisoformat(sent.parameters["history_since"]) == EXPOSED - days(14) - cuped_queries.CLOCK_MARGIN


# ---- AlephBet: the same goal under any experiment of the namespace ------------------------------------

def aleph(experiment: str, event: str, uuid: str, when: datetime, variant: str = "x"):
    return stamp(Event(NS, experiment, variant, event, uuid), when)


def aleph_moments(warehouse, window: Window | None = None):
    view_options = {"window": window} if window else {}
    return experiments.experiment_results(warehouse, NS, "exp", control="red", **view_options)


def test_alephbet_history_honours_tombstones_and_counts_before_the_window(warehouse):
    rows = []
    for number in range(10):
        uuid = f"u{number}"
        rows.append(aleph("exp", "participate", uuid, EXPOSED, "red" if number % 2 else "blue"))
        if number % 3 == 0:
            rows.append(aleph("older", "buy", uuid, EXPOSED - days(3)))             # history, before the window
        if number % 3 == 1:
            rows.append(aleph("deleted", "buy", uuid, EXPOSED - days(2)))           # hidden by a tombstone
        if number % 3 == 0 or number == 1:
            rows.append(aleph("exp", "buy", uuid, EXPOSED + timedelta(hours=2), "red" if number % 2 else "blue"))
    warehouse.insert_events(rows)
    warehouse.insert_deletion({"deletion_id": "t1", "namespace": NS, "experiment": "deleted",
                               "deleted_at": format_timestamp(EXPOSED - days(1))})
    window = Window(EXPOSED.date(), EXPOSED.date())
    target = target_of(warehouse)
    fetched = fetch(warehouse, cuped_queries.alephbet_cuped_moments(target, NS, "exp", goals=["buy"], window=window))
    rate = arm_moments(fetched, "rate")["buy"]
    # history: u0, u6 (blue) and u3, u9 (red) bought under `older`; the deleted experiment's buys never count
    assert (rate["blue"].participants, rate["blue"].mean_x * 5) == (5, pytest.approx(2.0))
    assert (rate["red"].participants, rate["red"].mean_x * 5) == (5, pytest.approx(2.0))
    bounded = fetch(warehouse, cuped_queries.alephbet_cuped_moments(
        target, NS, "exp", goals=["buy"], window=window, participations=(EXPOSED, EXPOSED)))
    assert same_moments(arm_moments(bounded, "rate"), arm_moments(fetched, "rate"))
    # The history is there, but 5 participants an arm are too few for CUPED: the exact tests stand, and say so.
    assert "no comparison met CUPED's conditions" in aleph_moments(warehouse, window)["cuped"]["reason"]


def test_alephbet_history_outside_the_bounds_is_not_read(warehouse):
    warehouse.insert_events([aleph("exp", "participate", "u1", EXPOSED, "red"),
                             aleph("exp", "participate", "u2", EXPOSED, "red"),
                             aleph("older", "buy", "u1", EXPOSED - days(1)),
                             aleph("exp", "buy", "u2", EXPOSED + days(1), "red")])
    target = target_of(warehouse)

    def history(participations):
        return arm_moments(fetch(warehouse, cuped_queries.alephbet_cuped_moments(
            target, NS, "exp", goals=["buy"], participations=participations)), "rate")["buy"]["red"].mean_x

    assert history((EXPOSED, EXPOSED)) == 0.5
    # Bounds that (wrongly) start after the history show the scan honours them: nothing older is read.
    assert history((EXPOSED + days(14) + cuped_queries.CLOCK_MARGIN, EXPOSED)) == 0.0
