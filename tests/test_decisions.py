"""Issue 14: decisions right at small, zero and lopsided counts, in both modes; values that always answer.

The exact checks enumerate every outcome of the two arms (scipy's binomial probabilities as
weights), with the p-values of `stats.rate_p_values`, the very ones `compare_rates` reports.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from scipy import stats as scipy_stats

from chalicelib.reports.stats import Proportion, ValueSample, compare_rates, compare_values, rate_p_values

ALPHA = 0.05
SIZES = (5, 10, 20, 50, 100, 200)
# Every pair of SIZES (allocations up to 1:40) and 1:100 both ways.
GRID = [(a, b) for a in SIZES for b in SIZES] + [(5, 500), (500, 5), (10, 1000), (1000, 10), (20, 2000), (2000, 20)]
BASE_RATES = (0.001, 0.01, 0.05, 0.2, 0.5)
MODES = ("fixed", "sequential")


@lru_cache(maxsize=None)
def p_values(control_trials: int, variant_trials: int) -> np.ndarray:
    """p[mode, control successes, variant successes] for every outcome."""
    table = np.empty((2, control_trials + 1, variant_trials + 1))
    for control in range(control_trials + 1):
        for variant in range(variant_trials + 1):
            table[:, control, variant] = rate_p_values(Proportion(control_trials, control),
                                                       Proportion(variant_trials, variant), 1 - ALPHA)
    return table


def exact_size(control_trials: int, variant_trials: int, rate: float, mode: int) -> float:
    """P(p < alpha) when both arms convert at `rate`: every outcome weighed by its probability."""
    rejects = (p_values(control_trials, variant_trials)[mode] < ALPHA).astype(float)
    control = scipy_stats.binom.pmf(np.arange(control_trials + 1), control_trials, rate)
    variant = scipy_stats.binom.pmf(np.arange(variant_trials + 1), variant_trials, rate)
    return float(control @ rejects @ variant)


@pytest.mark.parametrize("mode", [0, 1], ids=MODES)
def test_the_exact_size_stays_within_alpha_plus_half_a_percent_on_the_whole_grid(mode):
    worst = max((exact_size(n_c, n_v, rate, mode), n_c, n_v, rate)
                for n_c, n_v in GRID for rate in BASE_RATES)
    assert worst[0] <= ALPHA + 0.005, worst


@pytest.mark.parametrize("mode", [0, 1], ids=MODES)
def test_moving_the_variant_one_step_towards_the_control_never_lowers_its_p(mode):
    for n_c, n_v in GRID:
        p = p_values(n_c, n_v)[mode]
        for control in range(n_c + 1):
            for variant in range(n_v + 1):
                gap = variant * n_c - control * n_v  # the sign of rate(variant) - rate(control)
                step = variant - 1 if gap > 0 else variant + 1
                if gap == 0 or (step * n_c - control * n_v) * gap < 0:
                    continue  # at the control already, or the step would cross it
                assert p[control, step] >= p[control, variant], (n_c, control, n_v, variant)


@pytest.mark.parametrize("mode", [0, 1], ids=MODES)
def test_identical_rates_are_never_significant(mode):
    for n_c, n_v in GRID:
        p = p_values(n_c, n_v)[mode]
        for control in range(n_c + 1):
            if (control * n_v) % n_c == 0:
                assert p[control, control * n_v // n_c] >= ALPHA


def test_the_issues_identical_zero_rates_are_not_significant():
    comparison = compare_rates(Proportion(20, 0), Proportion(20_000, 0), 0.95)
    assert comparison.fixed.p_value == comparison.sequential.p_value == 1.0  # Fisher's exact p = 1
    assert comparison.direction is None


def test_the_direction_is_the_statistics_and_a_tiny_variant_over_an_empty_control_is_not_significant():
    # 1 in 20,000 against 0 in 20: higher, but nowhere near significant.
    comparison = compare_rates(Proportion(20, 0), Proportion(20_000, 1), 0.95)
    assert comparison.direction == "better"
    assert comparison.fixed.p_value >= ALPHA and comparison.sequential.p_value >= ALPHA


@pytest.mark.parametrize("control,variant", [((1000, 41), (1000, 0)), ((5000, 100), (5000, 200)),
                                             ((20, 1), (2000, 1400)), ((1000, 100), (100, 0))])
def test_a_significant_interval_lies_on_the_side_the_direction_names(control, variant):
    comparison = compare_rates(Proportion(*control), Proportion(*variant), 0.95)
    for decision in (comparison.fixed, comparison.sequential):
        assert decision.p_value < ALPHA
        low, high = decision.relative_ci
        assert (low > 0) == (comparison.direction == "better") and (high < 0) == (comparison.direction == "worse")


def first_flagged(per_arm: int, p_value_of) -> int:
    """The smallest control count against a variant with no conversions at which p < alpha."""
    return next(count for count in range(1, 200) if p_value_of(count) < ALPHA)


@pytest.mark.parametrize("per_arm", [1000, 1_000_000])
def test_a_variant_with_no_conversions_is_flagged_where_fishers_exact_test_flags_it(per_arm):
    def fisher(count: int) -> float:
        return scipy_stats.fisher_exact([[count, per_arm - count], [0, per_arm]]).pvalue

    fishers = first_flagged(per_arm, fisher)
    fixed = first_flagged(per_arm, lambda count: compare_rates(
        Proportion(per_arm, count), Proportion(per_arm, 0), 0.95).fixed.p_value)
    assert abs(fixed - fishers) <= 1
    for planned in (5_000, 2 * per_arm):
        sequential = first_flagged(per_arm, lambda count: compare_rates(
            Proportion(per_arm, count), Proportion(per_arm, 0), 0.95, planned).sequential.p_value)
        assert sequential <= 2 * fishers


def test_the_issues_broken_variants_are_flagged_in_both_modes():
    for control, variant in (((20_000, 41), (20_000, 0)), ((1_000_000, 101), (1_000_000, 0))):
        comparison = compare_rates(Proportion(*control), Proportion(*variant), 0.95)
        assert comparison.fixed.p_value < ALPHA and comparison.sequential.p_value < ALPHA
        assert comparison.direction == "worse"
        assert comparison.sequential.absolute_ci[1] < 0


def test_the_issues_variants_closer_to_control_get_larger_p_values():
    for mode in MODES:
        p = [getattr(compare_rates(Proportion(1000, 41), Proportion(1000, k), 0.95), mode).p_value for k in range(5)]
        assert p == sorted(p)


def excludes_zero(interval: tuple[float, float]) -> bool:
    return interval[0] > 0 or interval[1] < 0


def contains(outer: tuple[float, float], inner: tuple[float, float]) -> bool:
    return outer[0] <= inner[0] and inner[1] <= outer[1]


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize("n_c,n_v", [(5, 200), (20, 20), (50, 10), (10, 1000)])
def test_each_modes_interval_excludes_zero_exactly_when_p_is_significant_and_the_sequential_one_is_wider(
    n_c, n_v, confidence
):
    for control in range(n_c + 1):
        for variant in range(0, n_v + 1, max(1, n_v // 30)):
            comparison = compare_rates(Proportion(n_c, control), Proportion(n_v, variant), confidence)
            fixed, sequential = comparison.fixed, comparison.sequential
            for decision in (fixed, sequential):
                assert excludes_zero(decision.relative_ci) == (decision.p_value < 1 - confidence)
            assert contains(sequential.relative_ci, fixed.relative_ci)
            assert contains(sequential.absolute_ci, fixed.absolute_ci)
            assert sequential.p_value >= fixed.p_value


def test_the_issues_sequential_absolute_interval_is_no_narrower_than_the_fixed_one():
    comparison = compare_rates(Proportion(5, 0), Proportion(1000, 500), 0.95)
    assert contains(comparison.sequential.absolute_ci, comparison.fixed.absolute_ci)


def test_tuning_the_sequence_to_a_larger_plan_narrows_it_there():
    control, variant = Proportion(500_000, 25_000), Proportion(500_000, 25_600)
    default = compare_rates(control, variant, 0.95).sequential
    tuned = compare_rates(control, variant, 0.95, planned_participants=1_000_000).sequential
    assert tuned.p_value < default.p_value
    assert contains(default.relative_ci, tuned.relative_ci)


# --- values (issue 14, item 4) ------------------------------------------------------------------


def test_two_constant_arms_give_a_definite_answer_in_both_modes():
    comparison = compare_values(ValueSample(100, 0.0, 0.0), ValueSample(100, 10.0, 0.0), 0.95)
    for decision in (comparison.fixed, comparison.sequential):
        assert decision.p_value == 0.0
        assert decision.absolute_ci == (10.0, 10.0)
    assert comparison.direction == "better"


def test_one_participant_gives_a_named_reason_not_a_silent_null():
    comparison = compare_values(ValueSample(1, 5.0, 0.0), ValueSample(100, 10.0, 4.0), 0.95)
    for decision in (comparison.fixed, comparison.sequential):
        assert decision.p_value is None
        assert decision.reason == "n=1 in control: a variance needs at least 2 participants"


def test_the_issues_disagreeing_relative_interval_is_not_reported():
    # Welch p = 0.103 while the delta-method relative interval (+7.6%..+271.7%) excludes 0.
    comparison = compare_values(ValueSample(100, 1.0, 1.0), ValueSample(100, 2.0, 36.0), 0.95)
    assert comparison.fixed.p_value == pytest.approx(0.103, abs=1e-3)
    assert comparison.fixed.relative_ci is None


def test_a_reported_relative_value_interval_always_agrees_with_the_decision():
    rng = np.random.default_rng(14)
    for _ in range(400):
        control = ValueSample(int(rng.integers(2, 300)), float(rng.uniform(0.1, 3)), float(rng.uniform(0, 40)))
        variant = ValueSample(int(rng.integers(2, 300)), float(rng.uniform(0.1, 3)), float(rng.uniform(0, 40)))
        comparison = compare_values(control, variant, 0.95)
        for decision in (comparison.fixed, comparison.sequential):
            if decision.relative_ci is not None:
                assert excludes_zero(decision.relative_ci) == (decision.p_value < ALPHA)


def test_a_stated_split_is_the_sequential_tests_null_share_and_otherwise_the_observed_one():
    from chalicelib.reports.results import DecisionRow, results_view

    rows = [DecisionRow("control", "participate", 5200, 0, 0.0, None), DecisionRow("b", "participate", 4800, 0, 0.0, None),
            DecisionRow("control", "buy", 260, 0, 0.0, None), DecisionRow("b", "buy", 300, 0, 0.0, None)]
    control, variant = Proportion(5200, 260), Proportion(4800, 300)

    def sequential_p(weights):
        view = results_view("ns", "exp", rows, control="control", confidence=0.95, weights=weights,
                            correction="none")
        return view["goals"][0]["variants"][0]["sequential"]["p_value"]
    assert sequential_p({"control": 1, "b": 1}) == rate_p_values(control, variant, 0.95, design_share=0.5)[1]
    assert sequential_p({"control": 3, "b": 1}) == rate_p_values(control, variant, 0.95, design_share=0.25)[1]
    assert sequential_p(None) == rate_p_values(control, variant, 0.95)[1] != sequential_p({"control": 1, "b": 1})
