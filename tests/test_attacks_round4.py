"""An attacker's pass over the routes added in round 4 (plan, verdict, pickers, snippet kinds, local status).

Each test is one promise under attack: every input gets a 4xx naming the problem (never a 500),
a report costs bounded work whatever the events carry, and credentials are read one way only.
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from chalicelib.reports import segment_experiments
from tests.helpers import KEY_HEADER, event, report_client, track, wait_until_written  # noqa: F401


def _get(client: Any, path: str, headers: dict[str, str] | None = None, **query: str) -> Any:
    return client.http.get(f"{path}?{urlencode(query)}", headers=KEY_HEADER if headers is None else headers)


def _seed_an_experiment(client: Any) -> None:
    """Twenty participants a side, a few clicks: results reach the keep-running verdict that plans."""
    events = []
    for number in range(40):
        variant = "red" if number % 2 else "blue"
        events.append(event("exp", variant, "participate", f"u{number}"))
        if number % 5 == 0:
            events.append(event("exp", variant, "click", f"u{number}"))
    track(client, *events)
    wait_until_written()


# ---- numbers that passed the parameter checks and failed later: 500 -----------------------------

@pytest.mark.parametrize("parameter, value", [
    ("planned_participants", "²"),      # str.isdigit() is true for it, int() refuses it
    ("planned_participants", "1²"),
    ("cap", "p²"),
    ("cap", "p9⁹"),
    ("mde", "1e-320"),                  # the plan's squared difference underflows to 0
    ("mde", "1e-300"),
])
def test_results_parameters_that_look_numeric_get_400_naming_them(report_client, parameter, value):
    _seed_an_experiment(report_client)
    reply = _get(report_client, "/experiments/exp/results", **{parameter: value})
    assert reply.status_code == 400, reply.body
    assert json.loads(reply.body)["parameter"] == parameter


def test_the_smallest_mde_still_plans(report_client):
    from chalicelib.reports.api import MIN_MDE

    _seed_an_experiment(report_client)
    reply = _get(report_client, "/experiments/exp/results", mde=str(MIN_MDE))
    assert reply.status_code == 200, reply.body
    assert json.loads(reply.body)["decision"]["remaining"]["minimum_detectable_effect"] == MIN_MDE


@pytest.mark.parametrize("query, named", [
    ({"baseline_rate": "0.05", "effect": "1e-300"}, "effect"),           # difference squared is 0
    ({"baseline_rate": "1e-300", "effect": "0.1"}, "effect"),
    ({"baseline_rate": "0.9999999999999999", "effect": "1e-16"}, "effect"),
    ({"baseline_mean": "1e-300", "baseline_variance": "1e300", "effect": "0.1"}, "effect"),
    ({"baseline_mean": "-1e300", "baseline_variance": "1e300", "effect": "-0.999999999"}, "effect"),  # overflow
    ({"baseline_rate": "0.05", "effect": "1e-12", "per_day": "1e-300"}, "per_day"),   # days beyond a float
])
def test_plans_beyond_double_precision_get_400_naming_the_parameter(report_client, query, named):
    reply = _get(report_client, "/plan", **query)
    assert reply.status_code == 400, reply.body
    answer = json.loads(reply.body)
    assert answer["parameter"] == named and named in answer["error"]


# ---- the value picker's work is bounded by what it answers, not by what events carry -------------

def test_the_value_picker_parses_only_the_paths_it_answers_from_wide_documents(monkeypatch):
    # 50 events of 3,000 distinct numeric keys each: every one was tallied, sorted and parsed (the
    # route's 2,000-event sample of such events took 100 s of CPU).
    parsed: list[str] = []
    parse = segment_experiments.parse_json_path
    monkeypatch.setattr(segment_experiments, "parse_json_path",
                        lambda text, columns: parsed.append(text) or parse(text, columns=columns))
    documents = [json.dumps({"revenue": 5, **{f"k{document}_{key}": 1 for key in range(3000)}})
                 for document in range(50)]
    found = segment_experiments.numeric_paths(documents)
    assert found[0].name == "properties.revenue"
    assert len(found) == segment_experiments.MAX_VALUE_PROPERTIES
    assert len(parsed) == segment_experiments.MAX_VALUE_PROPERTIES


def test_the_value_picker_still_ranks_paths_by_how_many_documents_carry_them():
    documents = [{"revenue": 1, "items": {"count": 2}}, {"revenue": 3}, {"tax": 0.5, "revenue": 2}]
    assert [path.name for path in segment_experiments.numeric_paths(documents)] == [
        "properties.revenue", "properties.items.count", "properties.tax"]


# ---- credentials read one way: the write key /snippet discloses ------------------------------------

def test_the_segment_snippet_refuses_differing_api_keys_as_the_reports_do(report_client, monkeypatch):
    # API Gateway hands the function the last of repeated headers and chalice local the first: a wrong key
    # followed by the right one disclosed the write key on one and was refused on the other.
    import app as dalet_app
    from tests.lambda_events import api_gateway_event

    monkeypatch.setenv("DALET_WRITE_KEYS", "secret-write-key=web")
    event = api_gateway_event("GET", "/api/snippet", "/snippet", "api",
                              {"Host": "ab.example.com", "x-api-key": KEY_HEADER["x-api-key"]},
                              {"kind": "segment", "namespace": "web"})
    event["multiValueHeaders"]["x-api-key"] = ["a-guess", KEY_HEADER["x-api-key"]]
    reply = dalet_app.app(event, None)
    assert reply["statusCode"] == 400, reply["body"]
    assert "secret-write-key" not in reply["body"]
    assert json.loads(reply["body"])["header"] == "x-api-key"


def test_the_segment_snippet_discloses_the_write_key_to_one_right_key(report_client, monkeypatch):
    monkeypatch.setenv("DALET_WRITE_KEYS", "secret-write-key=web")
    host = {"host": "ab.example.com"}
    with_key = _get(report_client, "/snippet", headers={**host, **KEY_HEADER}, kind="segment", namespace="web")
    without = _get(report_client, "/snippet", headers=host, kind="segment", namespace="web")
    assert with_key.status_code == without.status_code == 200
    assert "secret-write-key" in with_key.body.decode() and "secret-write-key" not in without.body.decode()


# ---- a results answer's cost is bounded: /track is public, variants and goals are free text ---------

def test_results_of_more_comparisons_than_one_answer_computes_get_422_naming_the_counts(report_client):
    from chalicelib.reports.results import MAX_COMPARISONS

    variants, goals = 35, MAX_COMPARISONS // 34 + 1      # 34 comparisons per goal: just over the limit
    track(report_client, *[event("wide", f"v{variant}", name, f"u{variant}")
                           for variant in range(variants)
                           for name in ["participate", *(f"goal {goal}" for goal in range(goals))]])
    wait_until_written()
    reply = _get(report_client, "/experiments/wide/results")
    assert reply.status_code == 422, reply.body[:300]
    answer = json.loads(reply.body)
    assert (answer["experiment"], answer["variants"], answer["goals"]) == ("wide", variants, goals)
    assert f"{MAX_COMPARISONS:,}" in answer["error"]


def test_results_just_within_the_comparison_limit_are_answered(report_client):
    track(report_client, *[event("fits", f"v{variant}", name, f"u{variant}")
                           for variant in range(3) for name in ["participate", "click", "buy"]])
    wait_until_written()
    assert _get(report_client, "/experiments/fits/results").status_code == 200


# ---- GET /local/status (added by `serve` only) answers as the reports do ----------------------------

@pytest.fixture
def status_client(report_client):
    from chalice import Chalice
    from chalice.test import Client

    from dalet_ops.running_server import STATUS_PATH, add_status_route

    served = Chalice(app_name="status-only")
    add_status_route(served)
    with Client(served) as client:
        yield client, STATUS_PATH


def test_local_status_answers_503_with_a_reason_while_the_warehouse_is_down(status_client, monkeypatch):
    from chalicelib import runtime

    def down() -> Any:
        raise runtime.BackendUnavailable("/secret/path/warehouse.duckdb: disk full")

    monkeypatch.setattr(runtime, "warehouse", down)
    client, path = status_client
    reply = client.http.get(path, headers=KEY_HEADER)
    assert reply.status_code == 503, reply.body
    assert "/secret/path" not in reply.body.decode()


@pytest.mark.parametrize("headers, status", [({}, 401), ({"x-api-key": "a-guess"}, 403), (KEY_HEADER, 200)])
def test_local_status_needs_the_api_key(status_client, headers, status):
    client, path = status_client
    assert client.http.get(path, headers=headers).status_code == status


def test_guardrails_name_at_most_as_many_goals_as_goals_may(report_client):
    from chalicelib.reports.api import MAX_GOALS

    _seed_an_experiment(report_client)
    many = ",".join(f"goal {number}" for number in range(MAX_GOALS + 1))
    reply = _get(report_client, "/experiments/exp/results", guardrails=many)
    assert reply.status_code == 400, reply.body
    answer = json.loads(reply.body)
    assert answer["parameter"] == "guardrails" and f"at most {MAX_GOALS}" in answer["error"]
