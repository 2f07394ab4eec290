"""Behaviour of chalicelib.reports.stats, checked against scipy/statsmodels references."""

import ast
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, special
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    test_proportions_2indep as log_ratio_test,
)

from chalicelib.reports import stats
from chalicelib.reports.stats import (
    SRM_THRESHOLD,
    MeanDifference,
    Proportion,
    SrmResult,
    ValueSample,
    adjust_p_values,
    chance_to_be_best,
    chance_to_beat,
    compare_rates,
    compare_values,
    mean_difference,
    newcombe_difference_ci,
    rate_ci,
    srm,
)

STATS_PACKAGE = Path(__file__).resolve().parents[1] / "chalicelib" / "reports" / "stats"
BAYES_TOLERANCE = 1e-4

FEW_EXAMPLES = settings(max_examples=50, deadline=None)


@st.composite
def proportions(draw, max_trials=10_000_000):
    trials = draw(st.integers(0, max_trials))
    return Proportion(trials=trials, successes=draw(st.integers(0, trials)))


# --- references ---------------------------------------------------------------


class Posterior:
    """Beta(1 + successes, 1 + failures), evaluated with scipy.special (fast for quad)."""

    def __init__(self, p: Proportion):
        self.a, self.b = float(1 + p.successes), float(1 + p.trials - p.successes)
        self.log_norm = special.betaln(self.a, self.b)
        mean, sd = scipy_stats.beta.mean(self.a, self.b), scipy_stats.beta.std(self.a, self.b)
        self.bulk = max(0.0, mean - 15 * sd), min(1.0, mean + 15 * sd)

    def pdf(self, x: float) -> float:
        return math.exp(
            special.xlogy(self.a - 1, x) + special.xlog1py(self.b - 1, -x) - self.log_norm
        )

    def cdf(self, x: float) -> float:
        return special.betainc(self.a, self.b, x)


def integrate_over_bulk(function, posterior: Posterior) -> float:
    value, _ = integrate.quad(function, *posterior.bulk, epsabs=1e-11, epsrel=1e-11, limit=500)
    return value


def reference_chance_to_beat(control: Proportion, variant: Proportion) -> float:
    a, b = Posterior(control), Posterior(variant)
    return integrate_over_bulk(lambda x: b.pdf(x) * a.cdf(x), b)


def reference_chance_to_be_best(arms: dict[str, Proportion]) -> dict[str, float]:
    posteriors = {name: Posterior(p) for name, p in arms.items()}
    chances = {}
    for name, arm in posteriors.items():
        others = [other for other_name, other in posteriors.items() if other_name != name]
        chances[name] = integrate_over_bulk(
            lambda x: arm.pdf(x) * math.prod(other.cdf(x) for other in others), arm
        )
    return chances


def value_sample(values: np.ndarray) -> ValueSample:
    return ValueSample(participants=len(values), mean=float(values.mean()), variance=float(values.var(ddof=1)))


def per_participant_values(rng, participants, share_with_value, scale):
    values = np.zeros(participants)
    has_value = rng.random(participants) < share_with_value
    values[has_value] = rng.exponential(scale, has_value.sum())
    return values


# --- rate_ci --------------------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
@pytest.mark.parametrize(
    "trials,successes", [(1, 0), (1, 1), (10, 0), (10, 10), (10, 3), (1000, 100), (10**7, 12345)]
)
def test_rate_ci_is_the_wilson_interval_of_statsmodels(trials, successes, confidence):
    expected = proportion_confint(successes, trials, alpha=1 - confidence, method="wilson")
    assert rate_ci(Proportion(trials, successes), confidence) == pytest.approx(
        expected, rel=1e-9, abs=1e-12
    )


def test_rate_ci_is_none_without_trials():
    assert rate_ci(Proportion(0, 0), 0.95) is None


@FEW_EXAMPLES
@given(p=proportions(), confidence=st.floats(0.01, 0.999))
def test_rate_ci_brackets_the_rate_inside_the_unit_interval(p, confidence):
    interval = rate_ci(p, confidence)
    if p.trials == 0:
        assert interval is None
    else:
        low, high = interval
        assert 0.0 <= low <= p.successes / p.trials <= high <= 1.0


# --- compare_rates: one statistic per decision ---------------------------------------


ORDINARY_PAIRS = [
    (Proportion(5000, 100), Proportion(5000, 77)),
    (Proportion(1000, 100), Proportion(1000, 120)),
    (Proportion(10, 3), Proportion(12, 5)),
    (Proportion(1_000_000, 50_000), Proportion(900_000, 46_000)),
]


def excludes_zero(interval: tuple[float, float]) -> bool:
    low, high = interval
    return low > 0 or high < 0


def corrected(statistic: float, contrast: float, correction: float) -> float:
    """A score statistic with half a step of the contrast taken off (Yates), from statsmodels' uncorrected one."""
    return max(0.0, abs(contrast) - correction) / abs(contrast) * abs(statistic)


def corrected_ratio_statistic(control: Proportion, variant: Proportion, theta: float) -> float:
    result = log_ratio_test(variant.successes, variant.trials, control.successes, control.trials, value=theta,
                            method="score", compare="ratio", correction=True, return_results=True)
    return corrected(result.statistic, variant.rate - theta * control.rate,
                     0.5 * (1 / variant.trials + theta / control.trials))


def corrected_difference_statistic(control: Proportion, variant: Proportion, delta: float) -> float:
    """Miettinen & Nurminen's statistic for the difference, its restricted MLE found by scipy's optimiser.

    (Not statsmodels': its closed form writes count0 * diff where Miettinen & Nurminen's cubic has
    nobs0 * diff in L1, and misses the restricted maximum at delta != 0.)
    """
    def negative_log_likelihood(p_c: float) -> float:
        p_v = p_c + delta
        return -(special.xlogy(control.successes, p_c) + special.xlog1py(control.trials - control.successes, -p_c)
                 + special.xlogy(variant.successes, p_v) + special.xlog1py(variant.trials - variant.successes, -p_v))

    low, high = max(0.0, -delta), min(1.0, 1 - delta)
    p_c = optimize.minimize_scalar(negative_log_likelihood, bounds=(low, high), method="bounded",
                                   options={"xatol": 1e-14}).x
    p_v = p_c + delta
    participants = control.trials + variant.trials
    variance = (p_v * (1 - p_v) / variant.trials + p_c * (1 - p_c) / control.trials) * participants / (participants - 1)
    contrast = variant.rate - control.rate - delta
    return corrected(contrast / math.sqrt(variance), contrast, 0.5 * (1 / variant.trials + 1 / control.trials))


@pytest.mark.parametrize("control,variant", ORDINARY_PAIRS + [(Proportion(20, 0), Proportion(20_000, 1)),
                                                              (Proportion(1000, 41), Proportion(1000, 0))])
def test_the_fixed_p_value_is_scipys_yates_corrected_chi_square_with_miettinen_nurminens_n_minus_one(
    control, variant
):
    table = [[variant.successes, variant.trials - variant.successes],
             [control.successes, control.trials - control.successes]]
    statistic = scipy_stats.chi2_contingency(table, correction=True)[0]
    participants = control.trials + variant.trials
    expected = scipy_stats.chi2.sf(statistic * (participants - 1) / participants, 1)
    assert compare_rates(control, variant, 0.95).fixed.p_value == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize("control,variant", ORDINARY_PAIRS)
def test_the_fixed_relative_interval_ends_where_the_corrected_score_test_of_the_ratio_reaches_the_quantile(
    control, variant, confidence
):
    z = scipy_stats.norm.ppf(1 - (1 - confidence) / 2)
    low, high = compare_rates(control, variant, confidence).fixed.relative_ci
    assert corrected_ratio_statistic(control, variant, 1 + low) == pytest.approx(z, rel=1e-6)
    assert corrected_ratio_statistic(control, variant, 1 + high) == pytest.approx(z, rel=1e-6)


@pytest.mark.parametrize("confidence", [0.9, 0.95])
@pytest.mark.parametrize(
    "control,variant",
    ORDINARY_PAIRS + [(Proportion(50, 5), Proportion(50, 0)), (Proportion(50, 0), Proportion(50, 5))],
)
def test_the_fixed_absolute_interval_ends_where_the_corrected_score_test_of_the_difference_reaches_the_quantile(
    control, variant, confidence
):
    z = scipy_stats.norm.ppf(1 - (1 - confidence) / 2)
    low, high = compare_rates(control, variant, confidence).fixed.absolute_ci
    assert corrected_difference_statistic(control, variant, low) == pytest.approx(z, rel=1e-6)
    assert corrected_difference_statistic(control, variant, high) == pytest.approx(z, rel=1e-6)


@pytest.mark.parametrize("confidence", [0.9, 0.95])
@pytest.mark.parametrize(
    "control,variant",
    ORDINARY_PAIRS + [(Proportion(50, 5), Proportion(50, 0)), (Proportion(100, 100), Proportion(90, 90)),
                      (Proportion(50, 0), Proportion(50, 5))],
)
def test_newcombe_difference_ci_is_newcombes_hybrid_score_interval_of_statsmodels(control, variant, confidence):
    expected = confint_proportions_2indep(variant.successes, variant.trials, control.successes, control.trials,
                                          compare="diff", method="newcomb", alpha=1 - confidence)
    assert newcombe_difference_ci(control, variant, confidence) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_the_issues_disagreeing_pair_100_of_5000_against_77_of_5000_now_agrees():
    fixed = compare_rates(Proportion(5000, 100), Proportion(5000, 77), 0.95).fixed
    assert fixed.p_value > 0.05
    assert not excludes_zero(fixed.relative_ci)


@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_every_pair_of_small_arms_has_p_and_relative_interval_agree_in_both_modes(confidence):
    alpha = 1 - confidence
    for control_successes in range(41):
        for variant_successes in range(0, 37):
            comparison = compare_rates(Proportion(40, control_successes), Proportion(36, variant_successes), confidence)
            for decision in (comparison.fixed, comparison.sequential):
                if decision.relative_ci is not None:
                    assert (decision.p_value < alpha) == excludes_zero(decision.relative_ci)


@settings(max_examples=400, deadline=None)
@given(
    control=proportions(max_trials=1_000_000).filter(lambda p: p.trials > 0),
    variant=proportions(max_trials=1_000_000).filter(lambda p: p.trials > 0),
    confidence=st.sampled_from([0.8, 0.9, 0.95, 0.99, 0.999]),
)
def test_in_each_mode_p_is_below_one_minus_confidence_exactly_when_the_relative_interval_excludes_zero(
    control, variant, confidence
):
    comparison = compare_rates(control, variant, confidence)
    for decision in (comparison.fixed, comparison.sequential):
        assert 0.0 <= decision.p_value <= 1.0
        if decision.relative_ci is not None:
            assert (decision.p_value < 1 - confidence) == excludes_zero(decision.relative_ci)
            low, high = decision.relative_ci
            assert -1.0 <= low < high  # never below -100%, never zero-width
        low, high = decision.absolute_ci
        assert -1.0 <= low < high <= 1.0


def test_all_success_arms_get_intervals_of_real_width_around_zero():
    comparison = compare_rates(Proportion(100, 100), Proportion(100, 100), 0.95)
    for decision in (comparison.fixed, comparison.sequential):
        assert decision.p_value == 1.0
        for low, high in (decision.relative_ci, decision.absolute_ci):
            assert low < 0 < high


def test_a_variant_without_successes_cannot_rule_out_minus_100_percent():
    # No count can pin a lower bound above a rate of 0 when none converted: the bound is -100%.
    comparison = compare_rates(Proportion(50, 5), Proportion(50, 0), 0.95)
    for decision in (comparison.fixed, comparison.sequential):
        low, high = decision.relative_ci
        assert low == -1.0 < high
        assert (decision.p_value < 0.05) == excludes_zero(decision.relative_ci)


def test_small_arms_never_get_a_relative_bound_below_minus_100_percent():
    comparison = compare_rates(Proportion(50, 5), Proportion(50, 9), 0.95)
    for decision in (comparison.fixed, comparison.sequential):
        assert decision.relative_ci[0] > -1.0


def test_a_control_without_successes_has_a_relative_interval_open_above_and_an_absolute_one():
    comparison = compare_rates(Proportion(50, 0), Proportion(50, 5), 0.95)
    for decision in (comparison.fixed, comparison.sequential):
        low, high = decision.relative_ci
        assert -1.0 < low and high == math.inf
        low, high = decision.absolute_ci
        assert low < 0.1 < high
        assert 0.0 < decision.p_value < 1.0


def test_nothing_is_compared_without_trials():
    empty = stats.Decision(None, None, None)
    assert compare_rates(Proportion(0, 0), Proportion(10, 1), 0.95) == stats.Comparison(empty, empty)
    assert compare_rates(Proportion(10, 1), Proportion(0, 0), 0.95) == stats.Comparison(empty, empty)


# --- sequential (always-valid) inference ------------------------------------------------


def reference_confidence_sequence_margin(participants: int, confidence: float, tuning: int) -> float:
    """Waudby-Smith et al. (2024)'s unit-variance normal-mixture margin (their R package's
    std_conjmix_margin), with rho^2 from their closed-form approximation (best_rho2_approx)."""
    alpha = 1 - confidence
    rho2 = (-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / tuning
    t = participants
    return float(np.sqrt(2 * (t * rho2 + 1) / (t**2 * rho2) * np.log(np.sqrt(t * rho2 + 1) / alpha)))


def reference_log_e_value(control: Proportion, variant: Proportion, theta: float, kappa: float) -> float:
    """Lindon & Malek's Beta mixture over the Bernoulli likelihood of the converters' arms, with scipy."""
    share = variant.trials / (control.trials + variant.trials)
    pi = share * theta / (share * theta + 1 - share)
    a, b = kappa * share, kappa * (1 - share)
    mixture = special.betaln(a + variant.successes, b + control.successes) - special.betaln(a, b)
    return mixture - special.xlogy(variant.successes, pi) - special.xlog1py(control.successes, -pi)


@pytest.mark.parametrize("confidence", [0.9, 0.95])
@pytest.mark.parametrize("control,variant", ORDINARY_PAIRS)
def test_the_sequential_relative_interval_holds_every_ratio_whose_e_value_stays_below_one_over_alpha(
    control, variant, confidence
):
    from chalicelib.reports.stats.anytime import concentration

    comparison = compare_rates(control, variant, confidence)
    pooled = (control.successes + variant.successes) / (control.trials + variant.trials)
    kappa = concentration(stats.SEQUENTIAL_TUNING_PARTICIPANTS, pooled, confidence)
    low, high = comparison.sequential.relative_ci
    threshold = math.log(1 / (1 - confidence))
    for bound, fixed_bound in ((low, comparison.fixed.relative_ci[0]), (high, comparison.fixed.relative_ci[1])):
        if bound != fixed_bound:  # the confidence sequence's own bound, not the fixed interval's
            assert reference_log_e_value(control, variant, 1 + bound, kappa) == pytest.approx(threshold, rel=1e-7)
    assert comparison.sequential.p_value == pytest.approx(
        max(comparison.fixed.p_value, min(1.0, math.exp(-reference_log_e_value(control, variant, 1.0, kappa)))),
        rel=1e-9)


@FEW_EXAMPLES
@given(
    control=proportions(max_trials=1_000_000).filter(lambda p: p.trials > 0),
    variant=proportions(max_trials=1_000_000).filter(lambda p: p.trials > 0),
)
def test_the_sequential_figures_are_more_cautious_than_the_fixed_ones(control, variant):
    comparison = compare_rates(control, variant, 0.95)
    assert comparison.sequential.p_value >= comparison.fixed.p_value
    fixed, sequential = comparison.fixed.relative_ci, comparison.sequential.relative_ci
    if fixed is not None:
        assert sequential[0] <= fixed[0] and fixed[1] <= sequential[1]


def stopped_early_share(p_value_of, experiments=300, looks=20, per_look=200, rate=0.1, seed=8):
    """A/A experiments looked at after every batch, stopped at the first p < 0.05."""
    rng = np.random.default_rng(seed)
    control = rng.binomial(per_look, rate, size=(experiments, looks)).cumsum(axis=1)
    variant = rng.binomial(per_look, rate, size=(experiments, looks)).cumsum(axis=1)
    stopped = 0
    for k in range(experiments):
        for look in range(looks):
            trials = per_look * (look + 1)
            comparison = compare_rates(Proportion(trials, int(control[k, look])),
                                       Proportion(trials, int(variant[k, look])), 0.95)
            if p_value_of(comparison) < 0.05:
                stopped += 1
                break
    return stopped / experiments


def test_peeking_at_the_sequential_p_value_after_every_batch_keeps_false_positives_at_five_percent():
    # 300 experiments: the Monte-Carlo SE of a 5% rate is 1.3%, so 9% is over three SEs away.
    assert stopped_early_share(lambda comparison: comparison.sequential.p_value) <= 0.09
    # The same harness catches a method that is not valid under peeking.
    assert stopped_early_share(lambda comparison: comparison.fixed.p_value) >= 0.15


# --- multiple comparisons ----------------------------------------------------------------


@FEW_EXAMPLES
@given(
    p_values=st.lists(st.one_of(st.none(), st.floats(0.0, 1.0)), min_size=1, max_size=15),
    method=st.sampled_from([("holm", "holm"), ("bh", "fdr_bh")]),
)
def test_adjusted_p_values_are_statsmodels_multipletests_over_the_present_ones(p_values, method):
    ours, theirs = method
    adjusted = adjust_p_values(p_values, ours)
    present = [p for p in p_values if p is not None]
    assert [a is None for a in adjusted] == [p is None for p in p_values]
    if present:
        expected = multipletests(present, method=theirs)[1]
        assert [a for a in adjusted if a is not None] == pytest.approx(list(expected), rel=1e-12, abs=1e-15)


def test_no_correction_keeps_the_raw_p_values():
    assert adjust_p_values([0.01, None, 0.5], "none") == [0.01, None, 0.5]


def test_an_unknown_correction_is_refused():
    with pytest.raises(ValueError, match="correction"):
        adjust_p_values([0.01], "bonferroni")


# --- chance_to_beat ------------------------------------------------------------------


@pytest.mark.parametrize(
    "control,variant",
    [
        (Proportion(0, 0), Proportion(0, 0)),
        (Proportion(0, 0), Proportion(10, 0)),
        (Proportion(10, 0), Proportion(0, 0)),
        (Proportion(10, 0), Proportion(10, 10)),
        (Proportion(10, 10), Proportion(10, 0)),
        (Proportion(10, 3), Proportion(12, 5)),
        (Proportion(1000, 100), Proportion(1000, 120)),
        (Proportion(3000, 1500), Proportion(3100, 1600)),
        (Proportion(20_000, 2_500), Proportion(20_000, 2_600)),
        (Proportion(1_000_000, 50_000), Proportion(1_000_000, 50_500)),
        (Proportion(10_000_000, 500_000), Proportion(100_000, 5_100)),
        (Proportion(100_000, 5_000), Proportion(10_000_000, 500_400)),
        (Proportion(10_000_000, 3), Proportion(10_000_000, 9)),
        (Proportion(10_000_000, 9_999_997), Proportion(10_000_000, 9_999_999)),
    ],
)
def test_chance_to_beat_matches_numerical_integration_of_the_posteriors(control, variant):
    expected = reference_chance_to_beat(control, variant)
    assert chance_to_beat(control, variant) == pytest.approx(expected, abs=BAYES_TOLERANCE)


@FEW_EXAMPLES
@given(control=proportions(), variant=proportions())
def test_chance_to_beat_is_a_probability_complementary_to_the_reverse(control, variant):
    chance = chance_to_beat(control, variant)
    assert 0.0 <= chance <= 1.0
    assert chance + chance_to_beat(variant, control) == pytest.approx(1.0, abs=BAYES_TOLERANCE)


# --- chance_to_be_best -----------------------------------------------------------------


@pytest.mark.parametrize(
    "arms",
    [
        {"a": Proportion(0, 0), "b": Proportion(10, 0), "c": Proportion(10, 10)},
        {
            "a": Proportion(10, 3),
            "b": Proportion(12, 5),
            "c": Proportion(9, 4),
            "d": Proportion(0, 0),
        },
        {"a": Proportion(1000, 100), "b": Proportion(1000, 120), "c": Proportion(1000, 110)},
        {
            "a": Proportion(1_000_000, 50_000),
            "b": Proportion(1_000_000, 50_500),
            "c": Proportion(1_000_000, 50_300),
            "d": Proportion(1_000_000, 49_000),
        },
        {
            "a": Proportion(10_000_000, 500_000),
            "b": Proportion(100_000, 5_050),
            "c": Proportion(1_000, 52),
        },
    ],
)
def test_chance_to_be_best_matches_numerical_integration_of_the_posteriors(arms):
    expected = reference_chance_to_be_best(arms)
    chances = chance_to_be_best(arms)
    assert chances.keys() == arms.keys()
    for name in arms:
        assert chances[name] == pytest.approx(expected[name], abs=BAYES_TOLERANCE)


@FEW_EXAMPLES
@given(arms=st.dictionaries(st.sampled_from("abcd"), proportions(1_000_000), min_size=1))
def test_chance_to_be_best_gives_probabilities_that_sum_to_one(arms):
    chances = chance_to_be_best(arms)
    assert chances.keys() == arms.keys()
    assert all(0.0 <= chance <= 1.0 for chance in chances.values())
    assert math.fsum(chances.values()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    "control,variant",
    [
        (Proportion(10, 3), Proportion(12, 5)),
        (Proportion(1_000_000, 50_000), Proportion(1_000_000, 50_500)),
    ],
)
def test_chance_to_be_best_of_two_arms_is_the_chance_to_beat(control, variant):
    chances = chance_to_be_best({"control": control, "variant": variant})
    assert chances["variant"] == pytest.approx(chance_to_beat(control, variant), abs=1e-12)
    control_wins = chance_to_beat(variant, control)
    assert chances["control"] == pytest.approx(control_wins, abs=BAYES_TOLERANCE)


def test_chance_to_be_best_of_a_single_arm_is_certain():
    assert chance_to_be_best({"only": Proportion(10, 3)}) == {"only": 1.0}


# --- srm -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "participants,weights",
    [
        ({"a": 500, "b": 520}, None),
        ({"a": 500, "b": 620}, None),
        ({"a": 1000, "b": 1010, "c": 950, "d": 1100}, None),
        ({"a": 300, "b": 700}, {"a": 0.3, "b": 0.7}),
        ({"a": 300, "b": 700}, {"a": 3, "b": 7}),
        ({"a": 300, "b": 650, "c": 40}, {"a": 30, "b": 65, "c": 5}),
        ({"a": 0, "b": 10}, None),
    ],
)
def test_srm_is_the_chi_square_goodness_of_fit_of_scipy(participants, weights):
    observed = np.array([participants[name] for name in participants], dtype=float)
    shares = np.array([1.0 if weights is None else weights[name] for name in participants])
    expected = observed.sum() * shares / shares.sum()
    reference = scipy_stats.chisquare(observed, expected).pvalue
    result = srm(participants, weights)
    assert result.p_value == pytest.approx(reference, rel=1e-9, abs=1e-300)
    assert result.mismatch == (reference < SRM_THRESHOLD)


def test_srm_flags_a_mismatch_below_the_threshold():
    assert srm({"a": 5000, "b": 5000}) == SrmResult(p_value=1.0, mismatch=False)
    assert srm({"a": 5000, "b": 5400}).mismatch


def test_srm_has_no_p_value_without_two_variants_or_participants():
    assert srm({"a": 100}) == SrmResult(p_value=None, mismatch=False)
    assert srm({"a": 0, "b": 0}) == SrmResult(p_value=None, mismatch=False)
    assert srm({}) == SrmResult(p_value=None, mismatch=False)


@pytest.mark.parametrize(
    "weights", [{"a": 1.0}, {"a": 1.0, "b": 0.0}, {"a": 1.0, "b": -1.0}, {"a": 1.0, "c": 1.0}]
)
def test_srm_rejects_weights_that_do_not_describe_the_variants(weights):
    with pytest.raises(ValueError):
        srm({"a": 10, "b": 10}, weights)


@FEW_EXAMPLES
@given(st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 10**7)))
def test_srm_p_value_is_a_probability(participants):
    result = srm(participants)
    if result.p_value is not None:
        assert 0.0 <= result.p_value <= 1.0


# --- mean_difference ----------------------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize(
    "control_shape,variant_shape",
    [
        ((400, 0.3, 10.0), (350, 0.35, 10.0)),
        ((2, 1.0, 5.0), (3, 1.0, 8.0)),
        ((50, 0.1, 100.0), (5000, 0.5, 1.0)),
        ((20_000, 0.05, 30.0), (20_000, 0.05, 31.0)),
    ],
)
def test_mean_difference_is_welchs_t_test_of_scipy(control_shape, variant_shape, confidence):
    rng = np.random.default_rng(7)
    control_values = per_participant_values(rng, *control_shape)
    variant_values = per_participant_values(rng, *variant_shape)
    reference = scipy_stats.ttest_ind(variant_values, control_values, equal_var=False)
    reference_ci = reference.confidence_interval(confidence)

    control, variant = value_sample(control_values), value_sample(variant_values)
    result = mean_difference(control, variant, confidence)

    expected_difference = variant_values.mean() - control_values.mean()
    assert result.difference == pytest.approx(expected_difference, rel=1e-9)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-6, abs=1e-12)
    assert result.ci == pytest.approx((reference_ci.low, reference_ci.high), rel=1e-6)


def test_mean_difference_ci_uses_the_student_t_quantile():
    control = ValueSample(participants=10, mean=5.0, variance=(300.0 - 50.0**2 / 10) / 9)
    variant = ValueSample(participants=12, mean=7.0, variance=(700.0 - 84.0**2 / 12) / 11)
    var_a = control.variance / 10
    var_b = variant.variance / 12
    df = (var_a + var_b) ** 2 / (var_a**2 / 9 + var_b**2 / 11)
    half_width = scipy_stats.t.ppf(0.975, df) * math.sqrt(var_a + var_b)

    result = mean_difference(control, variant, 0.95)

    assert result.ci == pytest.approx((2.0 - half_width, 2.0 + half_width), rel=1e-9)


def test_mean_difference_names_the_reason_below_two_participants():
    two = ValueSample(participants=2, mean=1.5, variance=0.5)
    one = ValueSample(participants=1, mean=3.0, variance=0.0)
    assert mean_difference(one, two, 0.95) == MeanDifference(
        p_value=None, difference=None, ci=None, reason="n=1 in control: a variance needs at least 2 participants")
    assert mean_difference(two, one, 0.95).reason == "n=1 in variant: a variance needs at least 2 participants"


def test_two_constant_arms_are_a_definite_answer():
    zeros, tens = ValueSample(participants=5, mean=0.0, variance=0.0), ValueSample(participants=7, mean=10.0, variance=0.0)
    assert mean_difference(zeros, tens, 0.95) == MeanDifference(p_value=0.0, difference=10.0, ci=(10.0, 10.0))
    assert mean_difference(zeros, zeros, 0.95) == MeanDifference(p_value=1.0, difference=0.0, ci=(0.0, 0.0))


@pytest.mark.parametrize(("offset", "shift"), [(1e8, 0.016), (1e9, 0.038), (0.0, 0.02)])
def test_values_far_from_zero_keep_their_variance_and_match_scipys_welch_test(offset, shift):
    rng = np.random.default_rng(11)
    control_values = offset + rng.normal(0.0, 1.0, 20_000)
    variant_values = offset + shift + rng.normal(0.0, 1.0, 20_000)
    reference = scipy_stats.ttest_ind(variant_values, control_values, equal_var=False)

    comparison = compare_values(value_sample(control_values), value_sample(variant_values), 0.95)

    assert comparison.fixed.p_value == pytest.approx(reference.pvalue, rel=1e-6)
    assert comparison.fixed.absolute_ci == pytest.approx(tuple(reference.confidence_interval(0.95)), rel=1e-6, abs=1e-9)


@FEW_EXAMPLES
@given(
    means=st.tuples(st.floats(-100, 100), st.floats(-100, 100)),
    variances=st.tuples(st.floats(0.01, 1e4), st.floats(0.01, 1e4)),
    sizes=st.tuples(st.integers(2, 10**7), st.integers(2, 10**7)),
    confidence=st.sampled_from([0.9, 0.95, 0.99]),
)
def test_value_p_values_agree_with_the_absolute_interval_in_both_modes(means, variances, sizes, confidence):
    control = ValueSample(sizes[0], means[0], variances[0])
    variant = ValueSample(sizes[1], means[1], variances[1])
    comparison = compare_values(control, variant, confidence)
    for decision in (comparison.fixed, comparison.sequential):
        assert (decision.p_value < 1 - confidence) == excludes_zero(decision.absolute_ci)
        if decision.relative_ci is not None:
            assert decision.relative_ci[0] >= -1.0
    low, high = comparison.fixed.absolute_ci
    seq_low, seq_high = comparison.sequential.absolute_ci
    assert seq_low <= low and high <= seq_high


def test_the_sequential_value_p_value_is_never_below_welchs_when_the_control_is_tiny():
    # Three wildly spread control values against a thousand tight ones: the normal limit behind the
    # confidence sequence alone gives p = 0.036, below Welch's 0.072 (Student's t on about 2 degrees
    # of freedom), so the sequential figure would claim more than the fixed-horizon test does.
    control, variant = ValueSample(3, -6.726, 44.29), ValueSample(1000, 6.799, 0.0057)
    welch = scipy_stats.ttest_ind_from_stats(variant.mean, math.sqrt(variant.variance), variant.participants,
                                             control.mean, math.sqrt(control.variance), control.participants,
                                             equal_var=False)

    comparison = compare_values(control, variant, 0.95)

    assert comparison.fixed.p_value == pytest.approx(welch.pvalue, rel=1e-6)
    assert comparison.sequential.p_value >= comparison.fixed.p_value


def test_value_relative_intervals_need_positive_means():
    positive, negative = ValueSample(100, 2.0, 1.0), ValueSample(100, -1.0, 1.0)
    assert compare_values(positive, positive, 0.95).fixed.relative_ci is not None
    for control, variant in ((positive, negative), (negative, positive)):
        comparison = compare_values(control, variant, 0.95)
        assert comparison.fixed.relative_ci is None and comparison.sequential.relative_ci is None
        assert comparison.fixed.absolute_ci is not None and comparison.sequential.absolute_ci is not None


# --- extreme sample sizes ------------------------------------------------------------------


def scipy_chance_to_be_best(arms: dict[str, Proportion], name: str) -> float:
    """scipy's own beta distributions (float parameters), integrated piecewise over the arm's bulk."""
    posteriors = {label: scipy_stats.beta(1.0 + p.successes, 1.0 + p.trials - p.successes) for label, p in arms.items()}
    arm = posteriors[name]
    others = [posterior for label, posterior in posteriors.items() if label != name]
    mean, sd = arm.mean(), arm.std()
    points = np.linspace(max(0.0, mean - 15 * sd), min(1.0, mean + 15 * sd), 61)
    return math.fsum(integrate.quad(lambda x: arm.pdf(x) * math.prod(other.cdf(x) for other in others), lo, hi,
                                    epsabs=1e-13, epsrel=1e-12, limit=200)[0] for lo, hi in zip(points, points[1:]))


def scipy_chance_to_beat(control: Proportion, variant: Proportion) -> float:
    return scipy_chance_to_be_best({"control": control, "variant": variant}, "variant")


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
@pytest.mark.parametrize("control,variant", [
    (Proportion(10**12, 10**11), Proportion(10**12, 10**11 + 300_000)),
    (Proportion(10**12, 1_500), Proportion(10**12, 1_600)),
    (Proportion(10**10, 10**9), Proportion(10**10, 10**9 + 40_000)),
])
def test_chance_to_beat_stays_within_a_millionth_of_scipy_up_to_a_trillion_participants(control, variant):
    assert chance_to_beat(control, variant) == pytest.approx(scipy_chance_to_beat(control, variant), abs=1e-6)


def test_chance_to_beat_with_almost_every_participant_converting_at_a_trillion_is_the_gamma_limit():
    # 3 and 1 failures: the failure shares are Beta(4, n) and Beta(2, n), which for huge n
    # compare like Gamma(4) and Gamma(2): P = P(Beta(2, 4) < 1/2), to within 1/n.
    result = chance_to_beat(Proportion(10**12, 10**12 - 3), Proportion(10**12, 10**12 - 1))
    assert result == pytest.approx(scipy_stats.beta(2, 4).cdf(0.5), abs=1e-6)


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
def test_chance_to_be_best_stays_within_a_millionth_of_scipy_at_a_trillion_participants():
    arms = {"a": Proportion(10**12, 10**11), "b": Proportion(10**12, 10**11 + 300_000),
            "c": Proportion(10**12, 10**11 - 200_000)}
    best = chance_to_be_best(arms)
    for name in arms:
        assert best[name] == pytest.approx(scipy_chance_to_be_best(arms, name), abs=1e-6)


@pytest.mark.parametrize("participants", [10, 1_000, 10**5, 10**6, 10**8, 10**10, 10**12])
@pytest.mark.parametrize("t", [0.3, 2.0, 5.0])
def test_welch_figures_stay_within_a_millionth_of_scipys_student_t_up_to_a_trillion_participants(participants, t):
    control = ValueSample(participants, 10.0, 4.0)
    se = math.sqrt(2 * 4.0 / participants)
    variant = ValueSample(participants, 10.0 + t * se, 4.0)
    df = 2 * participants - 2
    result = mean_difference(control, variant, 0.95)
    assert result.p_value == pytest.approx(2 * scipy_stats.t.sf(t, df), abs=1e-6)
    half_width = scipy_stats.t.ppf(0.975, df) * se
    assert result.ci == pytest.approx((t * se - half_width, t * se + half_width), rel=1e-6)


# --- input validation and packaging -------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5, math.nan])
def test_confidence_must_lie_strictly_between_zero_and_one(confidence):
    sample = ValueSample(participants=3, mean=1.0, variance=1.0)
    with pytest.raises(ValueError, match="confidence"):
        rate_ci(Proportion(10, 1), confidence)
    with pytest.raises(ValueError, match="confidence"):
        compare_rates(Proportion(10, 1), Proportion(10, 2), confidence)
    with pytest.raises(ValueError, match="confidence"):
        mean_difference(sample, sample, confidence)


@pytest.mark.parametrize("trials,successes", [(-1, 0), (10, 11), (10, -1)])
def test_proportion_rejects_impossible_counts(trials, successes):
    with pytest.raises(ValueError):
        Proportion(trials=trials, successes=successes)


@pytest.mark.parametrize("participants,variance", [(-1, 0.0), (5, -1.0), (5, math.nan)])
def test_value_sample_rejects_impossible_figures(participants, variance):
    with pytest.raises(ValueError):
        ValueSample(participants=participants, mean=1.0, variance=variance)


def test_srm_rejects_negative_participant_counts():
    with pytest.raises(ValueError):
        srm({"a": -1, "b": 10})


def test_stats_package_imports_only_the_standard_library_and_itself():
    modules = sorted(STATS_PACKAGE.glob("*.py"))
    assert modules, STATS_PACKAGE
    imported = set()
    for module in modules:
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, "relative imports would pull in project code"
                if not node.module.startswith("chalicelib.reports.stats."):
                    imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)
