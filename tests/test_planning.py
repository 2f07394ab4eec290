"""Planning: participants and days needed, checked against statsmodels' power functions (fixed horizon)
and a simulation of the results' own sequential test (sequential mode); and the /plan route."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from statsmodels.stats.power import NormalIndPower, zt_ind_solve_power

from chalicelib.reports import stats
from chalicelib.reports.stats.planning import Baseline, PlanRequest, anytime_power, plan
from chalicelib.reports.stats.sequential import sequence_boundary
from tests.helpers import KEY_HEADER, report_client  # noqa: F401


@pytest.mark.parametrize("rate, effect, confidence, power", [
    (0.05, 0.1, 0.95, 0.8), (0.2, -0.15, 0.9, 0.9), (0.001, 0.5, 0.99, 0.8), (0.5, 0.02, 0.95, 0.95)])
def test_fixed_sample_size_of_two_rates_is_statsmodels_normal_approximation(rate, effect, confidence, power):
    variant = rate * (1 + effect)
    # Cohen's d of the unpooled normal approximation: (p2 - p1) / sqrt((p1 q1 + p2 q2) / 2).
    effect_size = (variant - rate) / math.sqrt((rate * (1 - rate) + variant * (1 - variant)) / 2)
    expected = NormalIndPower().solve_power(effect_size=effect_size, alpha=1 - confidence, power=power, ratio=1)
    planned = plan(PlanRequest(Baseline.of_rate(rate), effect, None, confidence, power))
    assert planned.fixed.participants_per_variant == math.ceil(expected)
    assert planned.fixed.participants == 2 * math.ceil(expected)


@pytest.mark.parametrize("mean, variance, effect", [(12.5, 400.0, 0.1), (-3.0, 2.0, 0.05), (100.0, 1.0, -0.001)])
def test_fixed_sample_size_of_two_means_is_statsmodels_z_test(mean, variance, effect):
    effect_size = mean * effect / math.sqrt(variance)
    expected = zt_ind_solve_power(effect_size=effect_size, alpha=0.05, power=0.8, ratio=1)
    planned = plan(PlanRequest(Baseline.of_values(mean, variance), effect, None))
    assert planned.fixed.participants_per_variant == math.ceil(expected)


def test_more_variants_split_alpha_like_bonferroni():
    two = plan(PlanRequest(Baseline.of_rate(0.05), 0.1, None, confidence=0.95))
    four = plan(PlanRequest(Baseline.of_rate(0.05), 0.1, None, confidence=0.95, variants=4))
    effect_size = 0.005 / math.sqrt((0.05 * 0.95 + 0.055 * 0.945) / 2)
    expected = NormalIndPower().solve_power(effect_size=effect_size, alpha=0.05 / 3, power=0.8)
    assert four.fixed.participants_per_variant == math.ceil(expected) > two.fixed.participants_per_variant
    assert four.fixed.participants == 4 * four.fixed.participants_per_variant


def test_days_are_all_participants_over_the_daily_traffic():
    planned = plan(PlanRequest(Baseline.of_rate(0.05), 0.1, 2000.0))
    assert planned.fixed.days == pytest.approx(planned.fixed.participants / 2000)
    assert planned.sequential.days == pytest.approx(planned.sequential.participants / 2000)


def test_sequential_boundary_tuned_to_the_plan_is_the_issues_3_03():
    assert sequence_boundary(10**6, 0.95, 1e6) == pytest.approx(3.03, abs=0.01)


def test_sequential_plan_of_values_meets_the_effect_at_its_size_and_not_one_participant_before():
    request = PlanRequest(Baseline.of_values(10.0, 25.0), 0.05, None, tuning_participants=5000)
    n = plan(request).sequential.participants_per_variant
    variance, delta, z_power = 50.0, 0.5, 0.8416212335729143

    def reach(m: int) -> float:
        return math.sqrt(variance / m) * (sequence_boundary(2 * m, 0.95, 5000) + z_power)
    assert reach(n) <= delta < reach(n - 1)


def test_sequential_plan_of_rates_is_the_first_size_at_which_the_anytime_test_has_the_power():
    request = PlanRequest(Baseline.of_rate(0.05), 0.1, None, tuning_participants=5000)
    n = plan(request).sequential.participants_per_variant
    assert anytime_power(n, 0.05, 0.055, 0.05, 0.95, 5000) >= 0.8 > anytime_power(n - 1, 0.05, 0.055, 0.05, 0.95, 5000)


def test_cuped_shrinks_both_plans_by_its_variance_reduction():
    plain = plan(PlanRequest(Baseline.of_rate(0.05), 0.1, None))
    reduced = plan(PlanRequest(Baseline.of_rate(0.05), 0.1, None, variance_reduction=0.36))
    assert reduced.fixed.participants_per_variant == pytest.approx(0.64 * plain.fixed.participants_per_variant,
                                                                   abs=1)
    assert reduced.sequential.participants_per_variant < 0.7 * plain.sequential.participants_per_variant


def test_sequential_needs_more_than_fixed_and_tuning_to_the_plan_needs_less_than_a_mistuned_sequence():
    tuned = plan(PlanRequest(Baseline.of_rate(0.05), 0.1, None))
    mistuned = plan(PlanRequest(Baseline.of_rate(0.05), 0.1, None, tuning_participants=5000))
    assert tuned.fixed.participants < tuned.sequential.participants < mistuned.sequential.participants
    assert tuned.tuning_participants == tuned.sequential.participants


def _simulated_power(per_variant: int, control_rate: float, variant_rate: float, sims: int = 800,
                     looks: int = 20) -> float:
    """Share of experiments whose sequential p (the results' own test) falls below 0.05 at any of `looks` looks."""
    rng = np.random.default_rng(20240531)
    steps = np.diff(np.linspace(0, per_variant, looks + 1).round().astype(int))
    sizes = steps.cumsum()
    control = rng.binomial(steps, control_rate, size=(sims, looks)).cumsum(axis=1)
    variant = rng.binomial(steps, variant_rate, size=(sims, looks)).cumsum(axis=1)
    detected = 0
    for run in range(sims):
        detected += any(stats.compare_rates(stats.Proportion(int(sizes[k]), int(control[run, k])),
                                            stats.Proportion(int(sizes[k]), int(variant[run, k])),
                                            0.95).sequential.p_value < 0.05 for k in range(looks))
    return detected / sims


def test_sequential_plan_gives_the_requested_power_in_a_simulation_of_the_results_test():
    request = PlanRequest(Baseline.of_rate(0.2), 0.2, None, power=0.8,
                          tuning_participants=stats.SEQUENTIAL_TUNING_PARTICIPANTS)
    n = plan(request).sequential.participants_per_variant
    monte_carlo_error = math.sqrt(0.8 * 0.2 / 800)
    assert _simulated_power(n, 0.2, 0.24) >= 0.8 - 3 * monte_carlo_error
    assert _simulated_power(n // 2, 0.2, 0.24) < 0.8 - 3 * monte_carlo_error


# ---- the route --------------------------------------------------------------------------------------

def _plan(client, **query: str):
    from urllib.parse import urlencode

    return client.http.get("/plan?" + urlencode(query), headers=KEY_HEADER)


def test_plan_route_answers_both_modes(report_client):
    reply = _plan(report_client, baseline_rate="0.05", effect="0.1", per_day="2000", confidence="0.95",
                  power="0.8", variants="2")
    assert reply.status_code == 200, reply.body
    answer = json.loads(reply.body)
    expected = plan(PlanRequest(Baseline.of_rate(0.05), 0.1, 2000.0))
    assert answer["fixed"] == {"participants_per_variant": expected.fixed.participants_per_variant,
                               "participants": expected.fixed.participants,
                               "days": round(expected.fixed.days, 2)}
    assert answer["sequential"]["participants"] == expected.sequential.participants
    assert answer["sequential"]["tuned_for_participants"] == expected.sequential.participants
    assert answer["baseline"] == {"rate": 0.05}


def test_plan_route_takes_a_mean_and_variance(report_client):
    answer = json.loads(_plan(report_client, baseline_mean="12.5", baseline_variance="400", effect="0.1").body)
    assert answer["baseline"] == {"mean": 12.5, "variance": 400.0}
    assert answer["fixed"]["days"] is None
    assert answer["fixed"]["participants_per_variant"] == plan(
        PlanRequest(Baseline.of_values(12.5, 400.0), 0.1, None)).fixed.participants_per_variant


def test_plan_route_needs_the_api_key(report_client):
    assert report_client.http.get("/plan?baseline_rate=0.05&effect=0.1").status_code == 401


@pytest.mark.parametrize("query, named", [
    ({"effect": "0.1"}, ["baseline_rate"]),
    ({"baseline_rate": "1.5", "effect": "0", "power": "1", "variants": "1.5", "per_day": "-3", "confidence": "7"},
     ["baseline_rate", "effect", "per_day", "power", "variants", "confidence"]),
    ({"baseline_mean": "10", "effect": "0.1"}, ["baseline_variance"]),
    ({"baseline_rate": "0.05", "baseline_mean": "10", "baseline_variance": "2", "effect": "0.1"}, ["baseline_rate"]),
    ({"baseline_rate": "0.6", "effect": "1"}, ["effect"]),
    ({"baseline_rate": "0.05", "effect": "ten"}, ["effect"]),
])
def test_plan_route_names_each_bad_parameter(report_client, query, named):
    reply = _plan(report_client, **query)
    assert reply.status_code == 400, reply.body
    answer = json.loads(reply.body)
    assert sorted(answer["parameter"].split(", ")) == sorted(named)
    for name in named:
        assert name in answer["error"]
