"""The report routes over HTTP, on the embedded default: events in through /track, reports out."""
from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from chalicelib.reports import experiments, stats, verdict
from chalicelib import runtime
from chalicelib.storage import writer
from tests.helpers import API_KEY, KEY_HEADER, event, report_client, track, wait_for_rows, wait_until_written  # noqa: F401
from tests.local_server import local_servers, wait_until  # noqa: F401

HOSTILE = ["'; DROP TABLE events; --", '" OR 1=1', "back\\slash \\n", "emoji 🧪🔥", "é" * 256, "my a/b test?x=1&y#z"]


def get(client, path: str, headers: dict[str, str] | None = None, **query: str):
    suffix = f"?{urlencode(query)}" if query else ""
    return client.http.get(path + suffix, headers=KEY_HEADER if headers is None else headers)


def body(reply) -> Any:
    """The answer without its `freshness`, which is measured per request (pinned in test_freshness.py)."""
    answer = json.loads(reply.body)
    if isinstance(answer, dict):
        answer.pop("freshness", None)
    elif isinstance(answer, list) and answer and isinstance(answer[0], dict) and "meta" in answer[0]:
        answer[0]["meta"].pop("freshness", None)
    return answer


def path_of(experiment: str, suffix: str = "") -> str:
    return f"/experiments/{quote(experiment, safe='')}{suffix}"


def seed(client, *events: dict[str, Any]) -> None:
    track(client, *events)
    wait_until_written()


def ab(experiment: str, red: int, blue: int, goal: str = "click", red_goal: int = 0, blue_goal: int = 0,
       **extra: Any) -> list[dict[str, Any]]:
    """Participants u0..u(n-1) per variant; the first k of them reach the goal."""
    events = []
    for variant, count, reached in (("red", red, red_goal), ("blue", blue, blue_goal)):
        events += [event(experiment, variant, "participate", f"{variant}-{n}", **extra) for n in range(count)]
        events += [event(experiment, variant, goal, f"{variant}-{n}", **extra) for n in range(reached)]
    return events


# ---- counting ---------------------------------------------------------------------------------------

def test_the_list_is_gimels_shape_with_distinct_uuids(report_client):
    seed(report_client, *ab("exp", red=3, blue=2, red_goal=1))
    assert body(get(report_client, "/experiments")) == [
        {"meta": {"scope": None}},
        {"experiment": "exp", "goals": [{"goal": "click", "results": [
            {"label": "blue", "successes": 0, "trials": 2}, {"label": "red", "successes": 1, "trials": 3}]}]},
    ]


def test_duplicated_and_retried_events_never_change_a_count(report_client):
    events = ab("exp", red=3, blue=2, red_goal=2)
    seed(report_client, *events, *events[:3])          # duplicates inside one batch
    first = body(get(report_client, "/experiments/exp"))
    seed(report_client, *events)                       # the client retries everything
    track(report_client, event("exp", "red", "participate", "red-0"))
    wait_until_written()
    wait_for_rows(len(events))
    assert body(get(report_client, "/experiments/exp")) == first
    assert first[0]["results"][1] == {"label": "red", "successes": 2, "trials": 3}


def test_a_gimel_adapter_uuid_shared_by_participation_and_goals_counts_once_in_each(report_client):
    """GimelAdapter with a user id sends sha1(namespace.experiment.user_id) for every event."""
    shared = "5f3a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a"
    seed(report_client, event("exp", "red", "participate", shared), event("exp", "red", "click", shared),
         event("exp", "red", "buy", shared), event("exp", "red", "click", shared))
    assert body(get(report_client, "/experiments/exp")) == [
        {"goal": "buy", "results": [{"label": "red", "successes": 1, "trials": 1}]},
        {"goal": "click", "results": [{"label": "red", "successes": 1, "trials": 1}]},
    ]


def test_namespaces_never_leak_into_each_other(report_client):
    seed(report_client, *ab("exp", red=2, blue=1, namespace="staging"), *ab("exp", red=5, blue=5, namespace="prod"),
         *ab("only-prod", red=1, blue=0, namespace="prod"))
    staging = body(get(report_client, "/experiments", namespace="staging"))
    assert [entry.get("experiment") for entry in staging] == [None, "exp"]
    assert body(get(report_client, "/experiments/exp", namespace="staging")) == []
    results = body(get(report_client, path_of("exp", "/results"), namespace="staging"))
    assert results["variants"] == [{"label": "blue", "participants": 1}, {"label": "red", "participants": 2}]
    assert get(report_client, "/experiments/only-prod", namespace="staging").status_code == 404
    assert body(get(report_client, "/experiments")) == [{"meta": {"scope": None}}]     # alephbet: nothing


def test_scope_lists_the_named_experiments_in_its_order(report_client):
    seed(report_client, *ab("a", red=1, blue=1), *ab("b", red=1, blue=1), *ab("c", red=1, blue=1))
    listed = body(get(report_client, "/experiments", scope="c,a"))
    assert listed[0] == {"meta": {"scope": "c,a"}}
    assert [entry["experiment"] for entry in listed[1:]] == ["c", "a"]


@pytest.mark.parametrize("name", HOSTILE, ids=["drop table", "or 1=1", "backslashes", "emoji", "256 chars", "url"])
def test_hostile_names_round_trip_as_literal_strings(report_client, name):
    seed(report_client, event(name, name, "participate", "u1", namespace=name), event(name, name, name, "u1",
                                                                                      namespace=name))
    expected_goals = [{"goal": name, "results": [{"label": name, "successes": 1, "trials": 1}]}]
    assert body(get(report_client, "/experiments", namespace=name)) == [
        {"meta": {"scope": None}}, {"experiment": name, "goals": expected_goals}]
    assert body(get(report_client, "/experiments", namespace=name, scope=name))[1]["goals"] == expected_goals
    assert body(get(report_client, path_of(name), namespace=name)) == expected_goals
    assert body(get(report_client, path_of(name, "/results"), namespace=name))["experiment"] == name
    assert body(get(report_client, path_of(name, "/daily"), namespace=name))["variants"] == [name]
    assert body(report_client.http.delete(path_of(name) + "?" + urlencode({"namespace": name}),
                                          headers=KEY_HEADER))["experiment"] == name
    assert get(report_client, path_of(name), namespace=name).status_code == 404


def test_an_encoded_slash_names_one_experiment(report_client):
    seed(report_client, *ab("my a/b test", red=2, blue=1, red_goal=1))
    reply = report_client.http.get("/experiments/my%20a%2Fb%20test", headers=KEY_HEADER)
    assert body(reply)[0]["results"][1] == {"label": "red", "successes": 1, "trials": 2}


def test_an_encoded_slash_names_one_experiment_under_chalice_local(local_servers, tmp_path):
    server = local_servers(tmp_path / "data", env={"DALET_API_KEY": API_KEY})
    assert server.request("POST", "/track", json=ab("my a/b test", red=2, blue=1, red_goal=1)).status == 200
    path = "/experiments/my%20a%2Fb%20test"
    reply = wait_until(lambda: (r := server.request("GET", path, headers=KEY_HEADER)).status == 200 and r,
                       message="the experiment to be written")
    assert reply.json()[0]["results"][1] == {"label": "red", "successes": 1, "trials": 2}
    assert server.request("GET", path + "/results", headers=KEY_HEADER).json()["experiment"] == "my a/b test"
    assert server.request("DELETE", path, headers=KEY_HEADER).json()["deleted"] is True
    assert server.request("GET", path + "/daily", headers=KEY_HEADER).status == 404
    for method, protected in PROTECTED:     # a dashboard on another origin may send the key
        preflight = server.request("OPTIONS", protected.split("?")[0], headers={
            "Origin": "https://dashboard.example", "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "x-api-key"})
        assert preflight.status == 200
        assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower().split(",")
        assert method in preflight.headers["access-control-allow-methods"].split(",")


def test_from_and_to_keep_the_events_received_on_those_days(report_client):
    seed(report_client, *ab("exp", red=2, blue=1, red_goal=1))
    stored = runtime.warehouse().fetch("SELECT MIN(received_at) AS first, MAX(received_at) AS last FROM events")[0]
    assert stored["first"].date() == stored["last"].date()   # seeded on one UTC day (not across midnight)
    today = stored["first"].date()        # /track stamps the server's time in UTC
    yesterday, tomorrow = (today - timedelta(days=1)).isoformat(), (today + timedelta(days=1)).isoformat()
    everything = body(get(report_client, "/experiments/exp"))
    assert body(get(report_client, "/experiments/exp", **{"from": yesterday, "to": tomorrow})) == everything
    assert body(get(report_client, "/experiments/exp", to=yesterday)) == []
    assert body(get(report_client, "/experiments", **{"from": tomorrow})) == [{"meta": {"scope": None}}]
    assert body(get(report_client, path_of("exp", "/daily"), **{"from": tomorrow}))["days"] == []


# ---- the results and daily views ----------------------------------------------------------------------

def test_the_results_view_answers_the_contract_fields(report_client):
    seed(report_client, *ab("exp", red=40, blue=50, red_goal=10, blue_goal=5),
         *[event("exp", variant, "buy", f"{variant}-{n}", value=n) for variant in ("red", "blue") for n in range(4)])
    view = body(get(report_client, path_of("exp", "/results"), control="blue", confidence="0.9",
                    weights="red:45,blue:55"))
    assert {key: view[key] for key in ("namespace", "experiment", "control", "confidence")} == {
        "namespace": "alephbet", "experiment": "exp", "control": "blue", "confidence": 0.9}
    assert view["variants"] == [{"label": "blue", "participants": 50}, {"label": "red", "participants": 40}]
    assert view["srm"]["p_value"] == stats.srm({"blue": 50, "red": 40}, {"blue": 55.0, "red": 45.0}).p_value
    click, buy = view["goals"]   # the primary goal (most successes) first
    assert (view["primary_goal"], click["goal"], buy["goal"]) == ("click", "click", "buy")
    blue, red = click["variants"]
    assert set(blue) == {"label", "trials", "successes", "rate", "rate_ci"}
    assert set(red) == {"label", "trials", "successes", "rate", "rate_ci", "uplift", "p_value", "p_value_adjusted",
                        "sequential", "chance_to_beat_control", "direction"}
    assert set(red["uplift"]) == {"absolute", "relative", "relative_ci", "absolute_ci"}
    assert set(red["sequential"]) == {"p_value", "p_value_adjusted", "relative_ci", "absolute_ci"}
    # The stated weights are the sequential test's null share: red's 45 of red and blue's 100.
    comparison = stats.compare_rates(stats.Proportion(50, 5), stats.Proportion(40, 10), 0.9, design_share=0.45)
    assert red["p_value"] == comparison.fixed.p_value
    assert red["sequential"]["p_value"] == comparison.sequential.p_value
    assert view["correction"] == "holm"
    assert sum(click["chance_to_be_best"].values()) == pytest.approx(1)
    assert [arm["label"] for arm in buy["value"]["variants"]] == ["blue", "red"]
    assert set(buy["value"]["variants"][1]) == {"label", "count", "sum", "mean", "p_value", "p_value_adjusted",
                                                "difference", "ci", "relative_ci", "sequential", "direction", "reason"}
    assert click["value"] is None


def test_the_results_view_is_the_reports_module_answer_naming_its_detected_source(report_client):
    seed(report_client, *ab("exp", red=7, blue=9, red_goal=3, blue_goal=2))
    over_http = body(get(report_client, path_of("exp", "/results")))
    module = experiments.experiment_results(runtime.warehouse(), "alephbet", "exp")
    view = verdict.with_verdict(runtime.warehouse(), {"source": "alephbet", **module})
    assert over_http == json.loads(json.dumps(view))


def test_the_daily_views_last_day_equals_the_totals(report_client):
    seed(report_client, *ab("exp", red=4, blue=3, red_goal=2, blue_goal=1))
    daily = body(get(report_client, path_of("exp", "/daily")))
    assert daily["days"][-1]["variants"] == [
        {"label": "blue", "participants": 3, "successes": {"click": 1}},
        {"label": "red", "participants": 4, "successes": {"click": 2}},
    ]


# ---- errors -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "query", "parameter"), [
    ("/experiments", {"from": "2024-02-30"}, "from"),
    ("/experiments", {"to": "yesterday"}, "to"),
    ("/experiments", {"from": "2024-05-02", "to": "2024-05-01"}, "to"),
    ("/experiments/exp", {"from": "05/01/2024"}, "from"),
    ("/experiments/exp/daily", {"to": "2024-5"}, "to"),
    ("/experiments/exp/results", {"confidence": "1"}, "confidence"),
    ("/experiments/exp/results", {"confidence": "0"}, "confidence"),
    ("/experiments/exp/results", {"confidence": "nan"}, "confidence"),
    ("/experiments/exp/results", {"confidence": "95%"}, "confidence"),
    ("/experiments/exp/results", {"control": "purple"}, "control"),
    ("/experiments/exp/results", {"weights": "red=1,blue=1"}, "weights"),
    ("/experiments/exp/results", {"weights": "red:1,blue:-1"}, "weights"),
    ("/experiments/exp/results", {"weights": "red:1"}, "weights"),
    ("/experiments/exp/results", {"weights": "red:1,red:2,blue:1"}, "weights"),
    ("/experiments/exp/results", {"correction": "bonferroni"}, "correction"),
    ("/experiments/exp/results", {"correction": "holm,bh"}, "correction"),
])
def test_a_bad_parameter_is_a_400_naming_it(report_client, path, query, parameter):
    seed(report_client, *ab("exp", red=1, blue=1))
    reply = get(report_client, path, **query)
    assert reply.status_code == 400
    assert body(reply)["parameter"] == parameter and parameter in body(reply)["error"]


def test_a_repeated_parameter_is_a_400(report_client):
    reply = report_client.http.get("/experiments?namespace=a&namespace=b", headers=KEY_HEADER)
    assert (reply.status_code, body(reply)["parameter"]) == (400, "namespace")


def test_gimels_delete_needs_the_experiment(report_client):
    reply = report_client.http.delete("/delete?namespace=alephbet", headers=KEY_HEADER)
    assert (reply.status_code, body(reply)["parameter"]) == (400, "experiment")


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/experiments/missing"), ("GET", "/experiments/missing/results"), ("GET", "/experiments/missing/daily"),
])
def test_an_unknown_experiment_is_a_404(report_client, method, path):
    seed(report_client, *ab("exp", red=1, blue=1))
    reply = report_client.http.request(method, path, headers=KEY_HEADER)
    assert reply.status_code == 404
    assert body(reply)["experiment"] == "missing"


PROTECTED = [("GET", "/experiments"), ("GET", "/experiments/exp"), ("GET", "/experiments/exp/results"),
             ("GET", "/experiments/exp/daily"), ("DELETE", "/experiments/exp"), ("DELETE", "/delete?experiment=exp")]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_report_routes_answer_401_without_the_api_key_and_403_with_a_wrong_one(report_client, method, path):
    seed(report_client, *ab("exp", red=1, blue=1))
    missing = report_client.http.request(method, path)
    wrong = report_client.http.request(method, path, headers={"x-api-key": API_KEY + "x"})
    assert (missing.status_code, wrong.status_code) == (401, 403)
    assert "x-api-key" in body(missing)["error"] and "x-api-key" in body(wrong)["error"]
    assert get(report_client, "/experiments/exp").status_code == 200      # nothing was deleted


@pytest.mark.parametrize("part", [API_KEY[:-1], API_KEY[:1], API_KEY[1:]], ids=["prefix", "first-char", "suffix"])
def test_a_key_that_is_only_part_of_the_api_key_gets_403(report_client, part):
    reply = report_client.http.get("/experiments", headers={"x-api-key": part})
    assert reply.status_code == 403, reply.body


def test_track_stays_public(report_client):
    assert report_client.http.post("/track", body=json.dumps(event("exp", "red", "participate", "u1")),
                                   headers={"content-type": "application/json"}).status_code == 200
    query = urlencode(event("exp", "red", "click", "u1"))
    assert report_client.http.get(f"/track?{query}").status_code == 200
    assert report_client.http.get(f"/track.gif?{query}").status_code == 200


# ---- deletion -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("delete", [
    lambda client: client.http.delete("/experiments/exp?namespace=prod", headers=KEY_HEADER),
    lambda client: client.http.delete("/delete?namespace=prod&experiment=exp", headers=KEY_HEADER),
], ids=["DELETE /experiments/{experiment}", "Gimel's DELETE /delete"])
def test_a_deleted_experiment_is_gone_and_new_events_start_from_zero(report_client, delete):
    seed(report_client, *ab("exp", red=3, blue=2, red_goal=1, namespace="prod"),
         *ab("kept", red=1, blue=1, namespace="prod"))
    answer = delete(report_client)
    assert answer.status_code == 200
    assert {key: body(answer)[key] for key in ("deleted", "namespace", "experiment", "purged", "removed")} == {
        "deleted": True, "namespace": "prod", "experiment": "exp", "purged": True, "removed": 6}
    assert get(report_client, "/experiments/exp", namespace="prod").status_code == 404
    assert [entry.get("experiment") for entry in body(get(report_client, "/experiments", namespace="prod"))] == \
        [None, "kept"]
    again = delete(report_client)    # nothing stored is left, but events may still be on the stream
    assert (again.status_code, body(again)["removed"]) == (200, 0)

    seed(report_client, event("exp", "red", "participate", "red-0", namespace="prod"),
         event("exp", "red", "click", "red-9", namespace="prod"))
    assert body(get(report_client, "/experiments/exp", namespace="prod")) == [
        {"goal": "click", "results": [{"label": "red", "successes": 1, "trials": 1}]}]


@pytest.fixture
def held_back_writer(monkeypatch):
    """An open gate before the writer: clear it, and events are acknowledged but not written until set."""
    gate = threading.Event()
    gate.set()
    write_batch = writer.write_batch

    def held_back(records, warehouse, *rest):
        gate.wait(10)
        return write_batch(records, warehouse, *rest)

    monkeypatch.setattr(writer, "write_batch", held_back)
    yield gate
    gate.set()


def test_events_acknowledged_before_a_deletion_but_written_after_it_stay_hidden(report_client, held_back_writer):
    seed(report_client, *ab("exp", red=2, blue=2))
    held_back_writer.clear()
    track(report_client, *ab("exp", red=0, blue=3, goal="late", blue_goal=3))      # acknowledged, not written
    assert report_client.http.delete("/experiments/exp", headers=KEY_HEADER).status_code == 200
    held_back_writer.set()
    wait_until_written()
    assert get(report_client, "/experiments/exp").status_code == 404
    assert body(get(report_client, "/experiments")) == [{"meta": {"scope": None}}]


def test_the_same_users_after_a_deletion_count_even_if_late_events_arrived_in_between(report_client,
                                                                                      held_back_writer):
    seed(report_client, *ab("exp", red=1, blue=0))
    held_back_writer.clear()
    track(report_client, event("exp", "red", "participate", "late-user"))         # acknowledged, not yet written
    assert report_client.http.delete("/experiments/exp", headers=KEY_HEADER).status_code == 200
    held_back_writer.set()
    wait_until_written()
    seed(report_client, event("exp", "red", "participate", "late-user"), event("exp", "red", "participate", "new"))
    results = body(get(report_client, "/experiments/exp/results"))
    assert results["variants"] == [{"label": "red", "participants": 2}]


@pytest.mark.parametrize(("query", "parameter"), [
    ({"to": "9999-12-31"}, "to"),
    ({"from": "0001-01-01"}, "from"),
    ({"confidence": "0.9999999999999999"}, "confidence"),
    ({"confidence": "1e-300"}, "confidence"),
])
def test_dates_and_confidences_at_the_edge_of_what_floats_hold_are_a_400(report_client, query, parameter):
    seed(report_client, *ab("exp", red=3, blue=3))
    reply = get(report_client, "/experiments/exp/results", **query)
    assert reply.status_code == 400
    assert body(reply)["parameter"] == parameter


def test_extreme_weights_give_a_mismatch_not_an_error(report_client):
    seed(report_client, *ab("exp", red=3, blue=3))
    reply = get(report_client, "/experiments/exp/results", weights="red:1e-320,blue:1")
    assert reply.status_code == 200
    assert body(reply)["srm"] == {"p_value": 0.0, "mismatch": True, "unexpected_variants": []}


def test_values_too_large_to_sum_leave_the_value_statistics_empty_not_broken(report_client):
    events = ab("exp", red=3, blue=3, goal="buy", red_goal=2, blue_goal=2)
    for purchase in (e for e in events if e["event"] == "buy"):
        purchase["value"] = 1e308
    seed(report_client, *events)
    reply = get(report_client, "/experiments/exp/results")
    assert reply.status_code == 200
    values = {v["label"]: v for v in body(reply)["goals"][0]["value"]["variants"]}
    assert values["blue"]["sum"] is None and values["red"]["sum"] is None
    assert values["red"]["p_value"] is None  # red is compared with blue, the control


def test_a_variant_seen_only_in_goals_gets_no_chances_and_is_not_the_default_control(report_client):
    seed(report_client, *ab("exp", red=1000, blue=1000, red_goal=10, blue_goal=12),
         event("exp", "aaa-stray", "click", "someone"))
    results = body(get(report_client, "/experiments/exp/results"))
    assert results["control"] == "blue"
    goal = results["goals"][0]
    assert goal["chance_to_be_best"]["aaa-stray"] is None
    assert goal["chance_to_be_best"]["blue"] + goal["chance_to_be_best"]["red"] == pytest.approx(1)
    stray = next(v for v in goal["variants"] if v["label"] == "aaa-stray")
    assert stray["chance_to_beat_control"] is None and stray["p_value"] is None


@pytest.mark.parametrize("correction", ["holm", "bh", "none"])
def test_the_correction_parameter_chooses_how_p_values_are_adjusted(report_client, correction):
    seed(report_client, *ab("exp", red=1000, blue=1000, red_goal=60, blue_goal=40))
    view = body(get(report_client, "/experiments/exp/results", correction=correction))
    assert view["correction"] == correction
    red = view["goals"][0]["variants"][1]
    assert red["p_value_adjusted"] == stats.adjust_p_values([red["p_value"]], correction)[0]


def test_a_variant_seen_only_in_goals_is_an_unexpected_variant_and_a_sample_ratio_mismatch(report_client):
    seed(report_client, *ab("exp", red=1000, blue=1000, red_goal=10, blue_goal=12),
         event("exp", "aaa-stray", "click", "someone"))
    srm = body(get(report_client, "/experiments/exp/results"))["srm"]
    assert srm["unexpected_variants"] == ["aaa-stray"] and srm["mismatch"] is True
    assert srm["p_value"] == stats.srm({"aaa-stray": 0, "blue": 1000, "red": 1000}).p_value


# ---- repeated x-api-key headers ----------------------------------------------------------------------

def _deployed_report_request(keys: list[str]) -> dict[str, Any]:
    """GET /experiments as API Gateway hands it over: `headers` holds the last of repeated headers."""
    from tests.lambda_events import api_gateway_event
    import app as dalet_app

    event = api_gateway_event("GET", "/api/experiments", "/experiments", "api", {"x-api-key": keys[-1]})
    event["multiValueHeaders"] = {"x-api-key": keys}
    return dalet_app.app(event, None)


def test_differing_repeated_api_keys_are_refused_naming_the_header(report_client):
    for keys in ([API_KEY, "attacker-guess"], ["attacker-guess", API_KEY]):
        response = _deployed_report_request(keys)
        assert response["statusCode"] == 400
        assert json.loads(response["body"])["header"] == "x-api-key"


def test_a_repeated_identical_api_key_is_accepted(report_client):
    assert _deployed_report_request([API_KEY, API_KEY])["statusCode"] == 200


@pytest.mark.parametrize("namespace, rule", [("n" * 257, "at most 256"), ("tab\there", "control characters")])
def test_a_namespace_track_would_refuse_is_a_400_naming_it_not_a_404(report_client, namespace, rule):
    seed(report_client, *ab("exp", red=2, blue=1, red_goal=1))
    for path in ("/experiments", "/experiments/exp", "/experiments/exp/results", "/experiments/exp/daily"):
        answer = get(report_client, path, namespace=namespace)
        assert answer.status_code == 400, path
        assert json.loads(answer.body)["parameter"] == "namespace" and rule in json.loads(answer.body)["error"]
