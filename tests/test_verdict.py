"""The verdict on /experiments/{e}/results (issue 15 item 3), through the route on DuckDB: a won, a running,
a guardrail-failed and an SRM experiment, the mode it reads, and the order the goals and variants read in."""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from chalicelib.reports import decision, segment_results, stats, verdict
from chalicelib.reports.queries import ALL_TIME
from chalicelib.reports.stats.planning import Baseline, PlanRequest, plan
from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse
from tests.helpers import KEY_HEADER, event, report_client, track, wait_until_written  # noqa: F401
from tests.segment_rows import exposure, track as segment_track


def experiment(name: str, arms: dict[str, tuple[int, dict[str, int]]]) -> list[dict[str, Any]]:
    """Per variant: participants v-0..v-(n-1), and per goal the first k of them reaching it."""
    events = []
    for label, (participants, goals) in arms.items():
        events += [event(name, label, "participate", f"{label}-{n}") for n in range(participants)]
        for goal, reached in goals.items():
            events += [event(name, label, goal, f"{label}-{n}") for n in range(reached)]
    return events


def results(client, name: str, **query: str) -> tuple[int, dict[str, Any]]:
    reply = client.http.get(f"/experiments/{quote(name, safe='')}/results?{urlencode(query)}", headers=KEY_HEADER)
    return reply.status_code, json.loads(reply.body)


def seeded(client, name: str, arms: dict[str, tuple[int, dict[str, int]]], **query: str) -> dict[str, Any]:
    track(client, *experiment(name, arms))
    wait_until_written()
    status, view = results(client, name, **query)
    assert status == 200, view
    return view


def arm(view: dict[str, Any], goal: str, label: str) -> dict[str, Any]:
    return next(a for g in view["goals"] if g["goal"] == goal for a in g["variants"] if a["label"] == label)


def percent_interval(bounds: list[float]) -> str:
    return f"95% interval {bounds[0] * 100:+.1f}% to {bounds[1] * 100:+.1f}%"


def test_a_won_experiment_says_ship_the_winner_with_its_sequential_interval(report_client):
    view = seeded(report_client, "won", {"control": (1000, {"signup": 100}), "blue": (1000, {"signup": 200})})
    blue = arm(view, "signup", "blue")
    assert blue["sequential"]["p_value_adjusted"] < 0.05
    assert view["mode"] == "sequential" and view["primary_goal"] == "signup" and view["guardrails"] == []
    interval = percent_interval(blue["sequential"]["relative_ci"])
    assert view["decision"] == {
        "verdict": "ship", "variant": "blue", "goal": "signup",
        "sentence": f"Ship blue: 100.0% more signup than control ({interval}), checked sequentially.",
        "reasons": [{"code": "significant", "text": f"blue: 100.0% more signup than control, {interval}"}],
        "remaining": None}


def test_a_running_experiment_says_how_many_more_participants_and_days_the_plan_needs(report_client):
    view = seeded(report_client, "running", {"control": (200, {"signup": 20}), "blue": (200, {"signup": 22})})
    planned = plan(PlanRequest(Baseline.of_rate(0.1), 0.1, None, 0.95, 0.8, 2,
                               tuning_participants=stats.SEQUENTIAL_TUNING_PARTICIPANTS))
    remaining = planned.sequential.participants - 400
    per_day = 400.0      # seeded within a day: counted as one day of traffic
    verdict = view["decision"]
    assert verdict["verdict"] == "keep_running" and verdict["variant"] is None and verdict["goal"] == "signup"
    assert verdict["remaining"] == {"participants": remaining, "days": round(remaining / per_day, 2),
                                    "participants_per_day": per_day, "minimum_detectable_effect": 0.1}
    about = f"{int(round(remaining, -(int(math.log10(remaining)) - 1))):,}"
    assert verdict["sentence"] == (f"Keep running: no variant differs from control on signup yet; about {about} more "
                                   f"participants (≈ {round(remaining / per_day):,} days at today's traffic) "
                                   "to detect a 10% change.")


def test_the_keep_running_estimate_follows_the_mode_and_the_minimum_detectable_effect(report_client):
    arms = {"control": (200, {"signup": 20}), "blue": (200, {"signup": 22})}
    sequential = seeded(report_client, "running", arms)["decision"]["remaining"]
    fixed = results(report_client, "running", mode="fixed", mde="0.2")[1]["decision"]
    expected = plan(PlanRequest(Baseline.of_rate(0.1), 0.2, None)).fixed.participants - 400
    assert fixed["remaining"]["participants"] == expected < sequential["participants"]
    assert fixed["remaining"]["minimum_detectable_effect"] == 0.2
    assert "to detect a 20% change" in fixed["sentence"]


def test_a_guardrail_failure_says_stop_the_variant_that_lowers_it(report_client):
    view = seeded(report_client, "guarded", {"control": (1000, {"signup": 100, "order": 300}),
                                             "blue": (1000, {"signup": 104, "order": 150})},
                  primary="signup", guardrails="order")
    assert [goal["goal"] for goal in view["goals"]] == ["signup", "order"]
    assert view["guardrails"] == ["order"]
    assert view["decision"]["verdict"] == "stop"
    assert view["decision"]["variant"] == "blue" and view["decision"]["goal"] == "order"
    assert view["decision"]["sentence"] == "Stop blue: it lowers order (a guardrail) by 50.0%."


def test_a_sample_ratio_mismatch_says_dont_trust_the_numbers(report_client):
    view = seeded(report_client, "lopsided", {"control": (1000, {"signup": 100}), "blue": (850, {"signup": 200})})
    p_value = stats.srm({"blue": 850, "control": 1000}).p_value
    assert view["srm"]["mismatch"] and 0.0001 < p_value < 0.01
    assert view["decision"]["verdict"] == "dont_trust" and view["decision"]["variant"] is None
    assert view["decision"]["sentence"] == ("Don't trust these numbers yet: the split between variants is off "
                                            f"(sample ratio mismatch, p = {p_value:.2g}).")
    assert view["decision"]["reasons"][0]["code"] == "srm"


def test_the_decision_reads_only_the_chosen_modes_figures(report_client):
    view = seeded(report_client, "borderline", {"control": (1000, {"signup": 100}), "blue": (1000, {"signup": 135})})
    blue = arm(view, "signup", "blue")
    assert blue["p_value_adjusted"] < 0.05 <= blue["sequential"]["p_value_adjusted"]
    assert view["decision"]["verdict"] == "keep_running"
    status, fixed = results(report_client, "borderline", mode="fixed")
    assert fixed["mode"] == "fixed"
    assert fixed["decision"]["verdict"] == "ship"
    assert fixed["decision"]["sentence"] == (f"Ship blue: 35.0% more signup than control "
                                             f"({percent_interval(blue['uplift']['relative_ci'])}), "
                                             "checked at a fixed horizon.")


def test_goals_read_primary_then_guardrails_then_by_successes_and_variants_control_first(report_client):
    arms = {"red": (50, {"a": 1, "b": 9, "c": 5, "d": 7}), "blue": (50, {"a": 1, "b": 9, "c": 5, "d": 7}),
            "green": (50, {})}
    view = seeded(report_client, "ordered", arms, control="red", primary="c", guardrails="a,d")
    assert [goal["goal"] for goal in view["goals"]] == ["c", "a", "d", "b"]
    assert [variant["label"] for variant in view["variants"]] == ["red", "blue", "green"]
    assert all([a["label"] for a in goal["variants"]] == ["red", "blue", "green"] for goal in view["goals"])
    default = results(report_client, "ordered", control="red")[1]
    assert default["primary_goal"] == "b"
    assert [goal["goal"] for goal in default["goals"]] == ["b", "d", "c", "a"]


@pytest.mark.parametrize("query, parameter", [
    ({"primary": "nope"}, "primary"), ({"guardrails": "signup,nope"}, "guardrails"),
    ({"guardrails": "signup"}, "guardrails"), ({"mode": "bayesian"}, "mode"), ({"mde": "-1"}, "mde")])
def test_bad_verdict_parameters_are_named(report_client, query, parameter):
    seeded(report_client, "named", {"control": (10, {"signup": 1}), "blue": (10, {"signup": 2})})
    status, answer = results(report_client, "named", **query)
    assert status == 400 and answer["parameter"] == parameter


# ---- the decision's rules on views the warehouse cannot easily produce -------------------------

def view_of(blue: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"confidence": 0.95, "control": "control",
            "variants": [{"label": "control", "participants": 1000}, {"label": "blue", "participants": 1000}],
            "srm": {"p_value": 1.0, "mismatch": False, "unexpected_variants": []},
            "goals": [{"goal": "signup", "variants": [
                {"label": "control", "trials": 1000, "successes": 100, "rate": 0.1},
                {"label": "blue", "trials": 1000, "successes": 120, "rate": 0.12, **blue}]}], **extra}


SIGNIFICANT = {"uplift": {"relative": 0.2, "absolute": 0.02, "relative_ci": [0.05, 0.4], "absolute_ci": [0.005, 0.04]},
               "p_value_adjusted": 0.01,
               "sequential": {"p_value_adjusted": 0.01, "relative_ci": [0.01, 0.5], "absolute_ci": [0.001, 0.05]}}


def test_many_participants_in_several_variants_mean_dont_trust():
    verdict = decision.decide(view_of(SIGNIFICANT, multiple_exposures=30), primary="signup")
    assert verdict["verdict"] == "dont_trust"
    assert verdict["sentence"] == ("Don't trust these numbers yet: 1.5% of participants saw more than one variant "
                                   "(above 1%).")
    assert decision.decide(view_of(SIGNIFICANT, multiple_exposures=20), primary="signup")["verdict"] == "ship"


def test_a_comparisons_own_direction_wins_over_the_interval():
    worse = {**SIGNIFICANT, "direction": "worse", "sequential": {**SIGNIFICANT["sequential"], "direction": "worse"}}
    assert decision.decide(view_of(worse), primary="signup")["verdict"] == "stop"


def test_no_participants_and_no_goals_are_no_data():
    empty = {**view_of(SIGNIFICANT), "variants": [], "goals": []}
    assert decision.decide(empty, primary=None)["verdict"] == "no_data"
    assert decision.decide({**view_of(SIGNIFICANT), "goals": []}, primary=None)["reasons"][0]["code"] == "no_goals"


# ---- today's traffic, and Segment's multiple exposures --------------------------------------------

def test_segment_traffic_runs_from_the_first_to_the_last_exposure_and_many_multiple_exposures_mean_dont_trust(
        tmp_path):
    def at(day: int) -> datetime:
        return datetime(2024, 5, day, 12, tzinfo=timezone.utc)

    store = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    try:
        rows = [exposure("exp", variant, f"{variant}{n}", at(1 + n % 5)) for variant in ("a", "b") for n in range(50)]
        rows += [segment_track("Buy", f"a{n}", at(6)) for n in range(5)]
        store.insert_events(rows)
        view = segment_results.experiment_results(store, "default", "exp", goals=["Buy"])
        assert verdict.participants_per_day(store, view, ALL_TIME) == 100 / 4   # May 1 to May 5
        assert verdict.with_verdict(store, view)["decision"]["verdict"] == "keep_running"
        store.insert_events([exposure("exp", "b", "a0", at(2)), exposure("exp", "b", "a1", at(2))])   # 2% saw both
        view = segment_results.experiment_results(store, "default", "exp", goals=["Buy"])
        assert view["multiple_exposures"] == 2
        assert verdict.with_verdict(store, view)["decision"]["reasons"] == [
            {"code": "multiple_exposures", "text": "2.0% of participants saw more than one variant (above 1%)"}]
    finally:
        store.close()


def test_breakdown_segments_carry_uplift_interval_and_p_corrected_across_segments(tmp_path):
    from chalicelib.reports.dimensions import parse_dimension

    def at(day: int) -> datetime:
        return datetime(2024, 5, day, 12, tzinfo=timezone.utc)

    store = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    try:
        rows, reached = [], {("free", "a"): 5, ("free", "b"): 15, ("pro", "a"): 10, ("pro", "b"): 11,
                             ("team", "a"): 3, ("team", "b"): 2}
        for (plan_name, variant), converted in reached.items():
            for n in range(40):
                user = f"{plan_name}-{variant}-{n}"
                rows.append(exposure("exp", variant, user, at(1), properties={"plan": plan_name}))
                if n < converted:
                    rows.append(segment_track("Buy", user, at(2)))
        store.insert_events(rows)
        view = segment_results.experiment_results(store, "default", "exp", goals=["Buy"], correction="holm",
                                                  dimension=parse_dimension("properties.plan"))
        view = verdict.with_verdict(store, view, guardrails=())
        segments = view["breakdown"]["segments"]
        arms = [segment["goals"][0]["variants"][1] for segment in segments]
        assert [segment["goals"][0]["variants"][0]["label"] for segment in segments] == ["a", "a", "a"]
        assert all(arm["uplift"]["relative_ci"] is not None and arm["p_value"] is not None for arm in arms)
        assert [arm["segments_p_value_adjusted"] for arm in arms] == stats.adjust_p_values(
            [arm["p_value"] for arm in arms], "holm")
        assert [arm["sequential"]["segments_p_value_adjusted"] for arm in arms] == stats.adjust_p_values(
            [arm["sequential"]["p_value"] for arm in arms], "holm")
        assert arms[0]["segments_p_value_adjusted"] > arms[0]["p_value"]
    finally:
        store.close()


# ---- /daily's cumulative uplift ---------------------------------------------------------------------

def daily(client, name: str, **query: str) -> tuple[int, dict[str, Any]]:
    reply = client.http.get(f"/experiments/{quote(name, safe='')}/daily?{urlencode(query)}", headers=KEY_HEADER)
    return reply.status_code, json.loads(reply.body)


def test_daily_carries_the_primary_goals_uplift_with_the_modes_interval(report_client):
    track(report_client, *experiment("trend", {"control": (100, {"signup": 10, "buy": 1}),
                                               "blue": (100, {"signup": 20, "buy": 2})}))
    wait_until_written()
    status, answer = daily(report_client, "trend")
    assert status == 200, answer
    comparison = stats.compare_rates(stats.Proportion(100, 10), stats.Proportion(100, 20), 0.95)
    (day,) = answer["days"]
    assert answer["uplift"] == {"goal": "signup", "control": "control", "mode": "sequential", "confidence": 0.95,
                                "days": [{"day": day["day"], "variants": [
                                    {"label": "blue", "relative": pytest.approx(1.0),
                                     "relative_ci": list(comparison.sequential.relative_ci)}]}]}
    fixed = daily(report_client, "trend", mode="fixed", primary="buy", confidence="0.9")[1]["uplift"]
    buy = stats.compare_rates(stats.Proportion(100, 1), stats.Proportion(100, 2), 0.9)
    assert fixed["goal"] == "buy" and fixed["days"][0]["variants"][0]["relative_ci"] == list(buy.fixed.relative_ci)
    assert daily(report_client, "trend", primary="nope")[1]["parameter"] == "primary"
    assert daily(report_client, "trend", mode="bayes")[1]["parameter"] == "mode"


def test_the_daily_uplift_is_cumulative_and_null_while_control_has_no_successes():
    from chalicelib.reports.daily_uplift import with_uplift

    def day(name: str, control: tuple[int, int], blue: tuple[int, int]) -> dict[str, Any]:
        return {"day": name, "variants": [
            {"label": "blue", "participants": blue[0], "successes": {"signup": blue[1]}},
            {"label": "control", "participants": control[0], "successes": {"signup": control[1]}}]}

    view = {"variants": ["blue", "control"], "goals": ["signup"],
            "days": [day("2024-05-01", (10, 0), (10, 1)), day("2024-05-02", (30, 3), (30, 6))]}
    first, second = with_uplift(view, confidence=0.95)["uplift"]["days"]
    assert first["variants"] == [{"label": "blue", "relative": None, "relative_ci": None}]
    expected = stats.compare_rates(stats.Proportion(30, 3), stats.Proportion(30, 6), 0.95).sequential.relative_ci
    assert second["variants"] == [{"label": "blue", "relative": pytest.approx(1.0), "relative_ci": list(expected)}]


def test_the_default_primary_goal_is_the_non_guardrail_with_most_successes(report_client):
    view = seeded(report_client, "guarded", {"control": (100, {"signup": 10, "order": 30}),
                                             "blue": (100, {"signup": 11, "order": 29})}, guardrails="order")
    assert (view["primary_goal"], view["guardrails"]) == ("signup", ["order"])
    status, answer = results(report_client, "guarded", guardrails="order,signup")
    assert status == 400 and answer["parameter"] == "guardrails"


def test_a_variant_significantly_worse_on_the_primary_goal_is_stopped():
    worse = {"uplift": {"relative": -0.2, "absolute": -0.02, "relative_ci": [-0.4, -0.05],
                        "absolute_ci": [-0.04, -0.005]},
             "p_value_adjusted": 0.01,
             "sequential": {"p_value_adjusted": 0.2, "relative_ci": [-0.5, 0.1], "absolute_ci": [-0.05, 0.01]}}
    fixed = decision.decide(view_of(worse), primary="signup", mode="fixed")
    assert (fixed["verdict"], fixed["variant"]) == ("stop", "blue")
    assert fixed["sentence"] == ("Stop blue: it lowers signup (the primary goal) by 20.0% "
                                 "(95% interval -40.0% to -5.0%), checked at a fixed horizon.")
    assert decision.decide(view_of(worse), primary="signup")["verdict"] == "keep_running"


def test_keep_running_says_when_the_plans_participants_are_already_in_or_control_gives_nothing_to_plan_from():
    neutral = {"uplift": {"relative": 0.01, "absolute": 0.001, "relative_ci": [-0.1, 0.1],
                          "absolute_ci": [-0.01, 0.01]},
               "p_value_adjusted": 0.9, "sequential": {"p_value_adjusted": 1.0, "relative_ci": [-0.2, 0.2]}}
    view = view_of(neutral)
    view["variants"] = [{"label": "control", "participants": 10**7}, {"label": "blue", "participants": 10**7}]
    enough = decision.decide(view, primary="signup", participants_per_day=1000.0)
    assert enough["remaining"]["participants"] == 0 and enough["remaining"]["days"] == 0
    assert enough["sentence"] == ("Keep running: no variant differs from control on signup yet, though there are "
                                  "enough participants to detect a 10% change: any difference is likely smaller.")
    view["goals"][0]["variants"][0].update(successes=0, rate=0.0)
    nothing = decision.decide(view, primary="signup")
    assert nothing["remaining"]["participants"] is None and nothing["reasons"][-1]["code"] == "no_baseline"


def test_the_segment_exposure_span_is_bigquery_sql_with_values_as_parameters():
    import sqlglot

    from chalicelib.reports import queries, segment_queries

    target = queries.Target(queries.BIGQUERY, queries.bigquery_tables("proj", "analytics", "events"), False)
    hostile = "'; DROP TABLE events; --"
    query = segment_queries.exposure_span(target, hostile, hostile, queries.Window(None, None))
    sqlglot.parse_one(query.sql, read="bigquery")
    assert hostile not in query.sql and query.params == {"namespace": hostile, "experiment": hostile}


def test_keep_running_counts_cupeds_variance_reduction_when_cuped_adjusted_the_primary_goal():
    neutral = {"uplift": {"relative": 0.01, "absolute": 0.001, "relative_ci": [-0.1, 0.1],
                          "absolute_ci": [-0.01, 0.01]},
               "p_value_adjusted": 0.9, "sequential": {"p_value_adjusted": 1.0, "relative_ci": [-0.2, 0.2]}}
    plain = decision.decide(view_of(neutral), primary="signup", participants_per_day=1000.0)
    adjusted_arm = {**neutral, "cuped": {"applied": True, "reason": None, "variance_reduction": 0.36}}
    adjusted = decision.decide(view_of(adjusted_arm), primary="signup", participants_per_day=1000.0)
    kept = {**neutral, "cuped": {"applied": False, "reason": "the exact test stands", "variance_reduction": None}}
    exact = decision.decide(view_of(kept), primary="signup", participants_per_day=1000.0)

    expected = plan(PlanRequest(Baseline.of_rate(0.1), 0.1, None, tuning_participants=stats.SEQUENTIAL_TUNING_PARTICIPANTS,
                                variance_reduction=0.36)).sequential.participants
    assert adjusted["remaining"]["participants"] == expected - 2000
    assert adjusted["remaining"]["participants"] < plain["remaining"]["participants"]
    assert adjusted["sentence"].endswith("to detect a 10% change, counting CUPED's 36% variance reduction.")
    assert exact["remaining"] == plain["remaining"] and "CUPED" not in exact["sentence"]
