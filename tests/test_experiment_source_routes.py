"""The routes that find and read experiments of either source: GET /overview, /experiments?source=,
source detection on /results and /daily, the goal and value pickers, and their refusals."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from chalicelib import runtime
from chalicelib.ingest.events import Event, stamp
from tests.helpers import API_KEY, KEY_HEADER, event, report_client, track, wait_until_written  # noqa: F401
from tests.segment_rows import exposure, segment_row
from tests.segment_rows import track as segment_track

NS = "default"
HOSTILE = ["'; DROP TABLE events; --", "my a/b test?x=1&y#z", "emoji 🧪", "goals", "é" * 200]


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2024, 5, day, hour, tzinfo=timezone.utc)


def get(client, path: str, headers: dict[str, str] | None = None, **query: str) -> tuple[int, Any]:
    reply = client.http.get(f"{path}?{urlencode({'namespace': NS, **query})}",
                            headers=KEY_HEADER if headers is None else headers)
    answer = json.loads(reply.body)
    if isinstance(answer, dict):
        answer.pop("freshness", None)
    return reply.status_code, answer


def path_of(experiment: str, suffix: str = "") -> str:
    return f"/experiments/{quote(experiment, safe='')}{suffix}"


def seed_alephbet(client, experiment: str = "button") -> None:
    # Stored directly: /track may not write into a write key's namespace (it answers 403), but a namespace
    # can hold AlephBet rows from before its key, and every report reads both sources there.
    runtime.warehouse().insert_events([
        stamp(Event(NS, experiment, "red", "participate", "r1"), at(1)),
        stamp(Event(NS, experiment, "blue", "participate", "b1"), at(1)),
        stamp(Event(NS, experiment, "red", "click", "r1"), at(1, 13)),
    ])


def seed_segment(experiment: str = "pricing") -> None:
    runtime.warehouse().insert_events([
        exposure(experiment, "cheap", "anon-1", at(1), anonymous=True),
        segment_row("identify", None, user_id="user-1", anonymous_id="anon-1", at=at(1, 13)),
        segment_track("Subscription Started", "user-1", at(2), properties={"revenue": 12}),
        exposure(experiment, "dear", "user-2", at(1)),
    ])


# ---- finding experiments ----------------------------------------------------------------------------

def test_the_overview_lists_alephbet_and_segment_experiments_together(report_client):
    seed_alephbet(report_client)
    seed_segment()
    status, listed = get(report_client, "/overview")
    assert status == 200, listed
    assert sorted((entry["experiment"], entry["source"], entry["participants"]) for entry in listed) == [
        ("button", "alephbet", 2), ("pricing", "segment", 2)]
    assert set(listed[0]) >= {"first_seen", "last_seen", "days_running", "variants", "srm"}


def test_experiments_lists_by_source_and_stays_gimels_shape_without_one(report_client):
    seed_alephbet(report_client)
    seed_segment()
    _, gimel = get(report_client, "/experiments")
    assert [item.get("experiment") for item in gimel[1:]] == ["button"] and "meta" in gimel[0]
    _, segment = get(report_client, "/experiments", source="segment")
    assert [(entry["experiment"], entry["variants"]) for entry in segment] == [
        ("pricing", [{"label": "cheap", "participants": 1}, {"label": "dear", "participants": 1}])]
    _, everything = get(report_client, "/experiments", source="all")
    assert {entry["source"] for entry in everything} == {"alephbet", "segment"}


# ---- reading one, whatever its source -----------------------------------------------------------------

def test_results_and_daily_detect_a_segment_experiment_and_say_so(report_client):
    seed_segment()
    status, results = get(report_client, path_of("pricing", "/results"))
    assert status == 200, results
    assert results["source"] == "segment"
    assert {goal["goal"]: [arm["successes"] for arm in goal["variants"]] for goal in results["goals"]} == {
        "Subscription Started": [1, 0]}
    status, daily = get(report_client, path_of("pricing", "/daily"))
    assert status == 200, daily
    assert daily["source"] == "segment" and daily["days"][-1]["variants"][0]["successes"] == {"Subscription Started": 1}


def test_alephbet_is_read_first_when_both_sources_have_the_name(report_client):
    seed_alephbet(report_client, "shared")
    seed_segment("shared")
    assert get(report_client, path_of("shared", "/results"))[1]["source"] == "alephbet"
    assert get(report_client, path_of("shared", "/daily"))[1]["source"] == "alephbet"
    assert get(report_client, path_of("shared", "/results"), source="segment")[1]["source"] == "segment"


def test_segment_only_parameters_on_an_alephbet_experiment_are_a_400_naming_them(report_client):
    seed_alephbet(report_client)
    for parameter, value in (("goals", "click"), ("value", "properties.revenue"), ("dimension", "properties.plan")):
        status, answer = get(report_client, path_of("button", "/results"), **{parameter: value})
        assert (status, answer["parameter"]) == (400, parameter), answer


def test_segment_only_parameters_select_nothing_for_a_segment_experiment(report_client):
    seed_segment()
    status, results = get(report_client, path_of("pricing", "/results"), dimension="properties.variation_id",
                          value="properties.revenue")
    assert status == 200, results
    assert results["source"] == "segment" and results["value_property"] == "properties.revenue"


def test_the_pickers_list_goals_and_numeric_values_for_either_source(report_client):
    seed_alephbet(report_client)
    seed_segment()
    assert get(report_client, path_of("pricing", "/goals")) == (200, [{"goal": "Subscription Started", "users": 1}])
    assert get(report_client, path_of("pricing", "/values")) == (200, [{"property": "properties.revenue", "users": 1}])
    assert get(report_client, path_of("button", "/goals")) == (200, [{"goal": "click", "users": 1}])
    assert get(report_client, path_of("button", "/values")) == (200, [])


# ---- attacks ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("suffix", ["/results", "/daily", "/goals", "/values"])
def test_hostile_experiment_names_are_read_as_text(report_client, name, suffix):
    seed_segment(name)
    status, answer = get(report_client, path_of(name, suffix))
    assert status == 200, answer
    status, answer = get(report_client, path_of(name + "x", suffix))
    assert status == 404 and answer["experiment"] == name + "x"


@pytest.mark.parametrize("path", ["/overview", "/experiments", "/experiments/pricing/goals",
                                  "/experiments/pricing/values"])
def test_the_new_routes_need_the_api_key(report_client, path):
    assert get(report_client, path, headers={})[0] == 401
    assert get(report_client, path, headers={"x-api-key": API_KEY + "x"})[0] == 403


@pytest.mark.parametrize("path, query, parameter", [
    ("/overview", {"namespace": "x" * 10_000}, "namespace"),
    ("/overview", {"from": "9" * 5_000}, "from"),
    ("/overview", {"from": "2024-05-02", "to": "2024-05-01"}, "to"),
    ("/experiments", {"source": "mixpanel"}, "source"),
    ("/experiments", {"source": "x" * 10_000}, "source"),
    ("/experiments/pricing/goals", {"source": "both"}, "source"),
    ("/experiments/pricing/values", {"goals": ",".join(f"g{n}" for n in range(500))}, "goals"),
    ("/experiments/pricing/values", {"goals": "Experiment Viewed"}, "goals"),
    ("/experiments/pricing/values", {"source": "alephbet", "goals": "Signed Up"}, "goals"),
    ("/experiments/pricing/daily", {"goals": "a,a"}, "goals"),
    ("/experiments/pricing/daily", {"to": "2024-13-01"}, "to"),
])
def test_bad_parameters_are_a_400_naming_them(report_client, path, query, parameter):
    seed_segment()
    status, answer = get(report_client, path, **query)
    assert status == 400, answer
    assert answer["parameter"] == parameter
