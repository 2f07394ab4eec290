"""The verdict over simulated experiments looked at daily, through results_view and decide
(tests/verdict_simulation.py; the long runs are bench/verdict.py). Fixed seeds: the same
experiments every run. 10 daily looks, sequential tuned to the plan, confidence 95%.
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.verdict_simulation import (ALPHA, GUARDRAIL, PRIMARY, Scenario, decisions_unchanged_without_bayes,
                                      simulate, two_arms)

LOOKS = 10
RUNS = 40

A_A = [
    two_arms("small: 20 per arm a day", 40, 0.05, looks=LOOKS),
    two_arms("zero rate", 2_000, 0.0, looks=LOOKS),
    two_arms("1:99 allocation", 2_000, 0.05, split=(0.01, 0.99), looks=LOOKS),
    two_arms("99:1 allocation", 2_000, 0.05, split=(0.99, 0.01), looks=LOOKS),
    two_arms("small and 1:99: 2 vs 198 a day", 200, 0.2, split=(0.01, 0.99), looks=LOOKS),
    two_arms("0.1% base rate", 2_000, 0.001, looks=LOOKS),
]


def test_the_simulation_reads_no_bayesian_chance():
    scenario = two_arms("+10%", 2_000, 0.05, 0.10, looks=LOOKS)
    assert decisions_unchanged_without_bayes(np.random.default_rng(1), scenario, 10)


@pytest.mark.parametrize("scenario", A_A, ids=lambda scenario: scenario.name)
def test_under_a_a_with_daily_looks_the_sequential_verdict_rarely_ships_or_stops(scenario):
    tally = simulate(np.random.default_rng(7), scenario, RUNS)
    decided = tally.ever_said("ship") + tally.ever_said("stop")
    assert decided <= ALPHA * RUNS
    assert tally.ever_said("dont_trust") <= ALPHA * RUNS


def test_nobody_converting_never_gives_a_decision_in_either_mode():
    tally = simulate(np.random.default_rng(3), two_arms("zero rate", 200, 0.0, looks=LOOKS), 10)
    for mode in ("sequential", "fixed"):
        assert tally.last_said("keep_running", mode=mode) == 10
        assert tally.ever_said("ship", mode=mode) == tally.ever_said("stop", mode=mode) == 0


def test_a_real_effect_ships_the_right_variant_and_never_the_wrong_one():
    # +20% here (10 looks of 2,000 per arm); bench/verdict.py measures +10% over 30 looks
    scenario = Scenario("+20% and unchanged", 6_000, {"control": 1.0, "better": 1.0, "same": 1.0},
                        {PRIMARY: {"control": 0.05, "better": 0.06, "same": 0.05}}, looks=LOOKS)
    tally = simulate(np.random.default_rng(11), scenario, RUNS)
    assert tally.last_said("ship", "better") >= RUNS // 2
    assert tally.ever_said("ship", "same") <= ALPHA * RUNS
    assert tally.ever_said("stop") == 0


def test_a_worse_variant_is_never_shipped_and_mostly_stopped():
    tally = simulate(np.random.default_rng(12), two_arms("-20%", 4_000, 0.05, -0.20, looks=LOOKS), RUNS)
    assert tally.ever_said("ship") == 0
    assert tally.last_said("stop", "variant") >= RUNS * 3 // 4


def test_a_sample_ratio_mismatch_says_dont_trust():
    scenario = two_arms("53:47", 2_000, 0.05, 0.10, split=(0.53, 0.47), planned=(0.5, 0.5), looks=LOOKS)
    tally = simulate(np.random.default_rng(13), scenario, RUNS)
    assert tally.last_said("dont_trust") == RUNS


def test_a_harmed_guardrail_says_stop_even_when_the_primary_goal_wins():
    scenario = Scenario("primary +20%, guardrail -15%", 4_000, {"control": 0.5, "variant": 0.5},
                        {PRIMARY: {"control": 0.05, "variant": 0.06}, GUARDRAIL: {"control": 0.2, "variant": 0.17}},
                        looks=LOOKS, guardrails=(GUARDRAIL,))
    tally = simulate(np.random.default_rng(14), scenario, RUNS)
    assert tally.last_said("stop", "variant") >= RUNS * 9 // 10
    assert tally.last_said("ship") == 0
