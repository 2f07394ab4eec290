"""Issue 14's cases end to end: stored events, then GET /experiments/{e}/results (Chalice test client + DuckDB)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pytest

from chalicelib import runtime
from chalicelib.ingest.events import Event, stamp
from tests.helpers import KEY_HEADER, report_client  # noqa: F401

ALPHA = 0.05
RECEIVED = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)


def store(experiment: str, variant: str, participants: int, converted: int = 0,
          values: list[float] | None = None) -> list:
    """`participants` uuids in `variant`; the first `converted` (or len(values)) reach `buy`, with `values`."""
    rows = [stamp(Event("alephbet", experiment, variant, "participate", f"{variant}-{n}", None), RECEIVED)
            for n in range(participants)]
    reached = [None] * converted if values is None else values
    rows += [stamp(Event("alephbet", experiment, variant, "buy", f"{variant}-{n}", value), RECEIVED)
             for n, value in enumerate(reached)]
    return rows


def seed(*arms: list) -> None:
    runtime.warehouse().insert_events([row for arm in arms for row in arm])


def results(client, experiment: str, **query: str) -> Any:
    suffix = "&".join(f"{name}={value}" for name, value in query.items())
    reply = client.http.get(f"/experiments/{experiment}/results?control=control&correction=none&{suffix}",
                            headers=KEY_HEADER)
    return reply.status_code, json.loads(reply.body)


def arms_of(view: dict[str, Any], goal: str = "buy") -> dict[str, dict[str, Any]]:
    (shown,) = [g for g in view["goals"] if g["goal"] == goal]
    return {arm["label"]: arm for arm in shown["variants"]}


def excludes_zero(interval: list[float | None]) -> bool:
    low, high = interval
    return (low is not None and low > 0) or (high is not None and high < 0)


def agrees(arm: dict[str, Any]) -> bool:
    """In each mode the relative interval excludes 0 exactly when p < alpha."""
    return (excludes_zero(arm["uplift"]["relative_ci"]) == (arm["p_value"] < ALPHA)
            and excludes_zero(arm["sequential"]["relative_ci"]) == (arm["sequential"]["p_value"] < ALPHA))


def contains(outer: list[float | None], inner: list[float | None]) -> bool:
    low = outer[0] is None or (inner[0] is not None and outer[0] <= inner[0])
    high = outer[1] is None or (inner[1] is not None and inner[1] <= outer[1])
    return low and high


def test_identical_zero_rates_are_not_significant(report_client):
    # a third variant's conversion makes `buy` a goal of the experiment
    seed(store("zeros", "control", 20), store("zeros", "variant", 20_000), store("zeros", "third", 20, 1))
    variant = arms_of(results(report_client, "zeros")[1])["variant"]
    assert variant["p_value"] == 1.0 and variant["sequential"]["p_value"] == 1.0  # Fisher's exact p = 1
    assert variant["direction"] is None and agrees(variant)


def test_one_in_twenty_thousand_over_none_in_twenty_points_the_way_its_statistic_does(report_client):
    seed(store("tiny", "control", 20), store("tiny", "variant", 20_000, 1))
    variant = arms_of(results(report_client, "tiny")[1])["variant"]
    assert variant["direction"] == "better"
    assert variant["p_value"] >= ALPHA and variant["sequential"]["p_value"] >= ALPHA and agrees(variant)


def test_a_broken_variant_is_flagged_in_both_modes_and_its_intervals_say_so(report_client):
    seed(store("broken", "control", 20_000, 41), store("broken", "variant", 20_000, 0))
    variant = arms_of(results(report_client, "broken")[1])["variant"]
    assert variant["direction"] == "worse"
    assert variant["p_value"] < 1e-6 and variant["sequential"]["p_value"] < ALPHA and agrees(variant)
    assert variant["sequential"]["absolute_ci"][1] < 0
    assert contains(variant["sequential"]["relative_ci"], variant["uplift"]["relative_ci"])


def test_variants_closer_to_the_control_get_larger_p_values(report_client):
    seed(store("closer", "control", 1000, 41), *[store("closer", f"v{k}", 1000, k) for k in range(5)])
    arms = arms_of(results(report_client, "closer")[1])
    for mode in (lambda arm: arm["p_value"], lambda arm: arm["sequential"]["p_value"]):
        p = [mode(arms[f"v{k}"]) for k in range(5)]
        assert p == sorted(p)
    assert all(agrees(arms[f"v{k}"]) for k in range(5))


def test_the_sequential_absolute_interval_is_no_narrower_than_the_fixed_one(report_client):
    seed(store("lopsided", "control", 1000, 500), store("lopsided", "variant", 5, 0))
    variant = arms_of(results(report_client, "lopsided")[1])["variant"]
    assert contains(variant["sequential"]["absolute_ci"], variant["uplift"]["absolute_ci"])
    assert contains(variant["sequential"]["relative_ci"], variant["uplift"]["relative_ci"])


def test_planned_participants_tunes_the_sequential_figures_and_is_reported(report_client):
    seed(store("planned", "control", 30_000, 1500), store("planned", "variant", 30_000, 1680))
    default = results(report_client, "planned")[1]
    status, tuned = results(report_client, "planned", planned_participants="60000")
    assert status == 200
    assert (default["sequential"]["tuned_for_participants"], tuned["sequential"]["tuned_for_participants"]) == (
        5000, 60000)
    before, after = arms_of(default)["variant"], arms_of(tuned)["variant"]
    assert after["sequential"]["p_value"] < before["sequential"]["p_value"]
    assert after["p_value"] == before["p_value"]  # the fixed horizon has no plan


@pytest.mark.parametrize("bad", ["0", "1", "-5", "lots", "5000.5", "1e99"])
def test_a_bad_planned_participants_is_a_400_naming_it(report_client, bad):
    seed(store("planned", "control", 10, 1), store("planned", "variant", 10, 2))
    status, answer = results(report_client, "planned", planned_participants=bad)
    assert status == 400 and answer["parameter"] == "planned_participants"


def test_two_constant_arms_give_a_definite_value_answer(report_client):
    seed(store("constant", "control", 50), store("constant", "variant", 50, values=[10.0] * 50))
    (variant,) = [arm for arm in [g for g in results(report_client, "constant")[1]["goals"]
                                  if g["goal"] == "buy"][0]["value"]["variants"] if arm["label"] == "variant"]
    assert variant["p_value"] == 0.0 and variant["ci"] == [10.0, 10.0]
    assert variant["sequential"]["p_value"] == 0.0 and variant["direction"] == "better"


def value_arm(view: dict[str, Any], label: str) -> dict[str, Any]:
    (goal,) = [g for g in view["goals"] if g["goal"] == "buy"]
    return {arm["label"]: arm for arm in goal["value"]["variants"]}[label]


def test_one_participant_gives_a_named_reason(report_client):
    seed(store("single", "control", 1, values=[3.0]), store("single", "variant", 40, values=[1.0] * 20))
    variant = value_arm(results(report_client, "single")[1], "variant")
    assert variant["p_value"] is None
    assert variant["reason"] == "n=1 in control: a variance needs at least 2 participants"


def test_cap_winsorises_each_participants_value_at_the_pooled_percentile(report_client):
    rng = np.random.default_rng(5)
    control, variant = list(rng.exponential(10.0, 200)), list(rng.exponential(10.0, 200))
    variant[0] = 1e6  # one whale
    seed(store("whale", "control", 300, values=control), store("whale", "variant", 300, values=variant))
    status, view = results(report_client, "whale", cap="p99")
    assert status == 200 and view["cap"] == "p99"
    cap = np.percentile(control + variant, 99)  # linear interpolation, as PERCENTILE_CONT
    assert value_arm(view, "variant")["sum"] == pytest.approx(float(np.minimum(variant, cap).sum()), rel=1e-9)
    assert value_arm(view, "control")["sum"] == pytest.approx(float(np.minimum(control, cap).sum()), rel=1e-9)
    uncapped = results(report_client, "whale")[1]
    assert uncapped["cap"] is None and value_arm(uncapped, "variant")["sum"] == pytest.approx(sum(variant))


@pytest.mark.parametrize("bad", ["p49", "p101", "99", "pp9", "p9.5", "max"])
def test_a_bad_cap_is_a_400_naming_it(report_client, bad):
    seed(store("whale", "control", 10, values=[1.0]), store("whale", "variant", 10, values=[2.0]))
    status, answer = results(report_client, "whale", cap=bad)
    assert status == 400 and answer["parameter"] == "cap"
