"""Behaviour of chalicelib.reports.stats, checked against scipy/statsmodels references."""

import ast
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, special
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from chalicelib.reports.stats import (
    SRM_THRESHOLD,
    MeanDifference,
    Proportion,
    SrmResult,
    ValueSample,
    chance_to_be_best,
    chance_to_beat,
    mean_difference,
    rate_ci,
    relative_uplift_ci,
    srm,
    two_proportion_p_value,
)

STATS_MODULE = Path(__file__).resolve().parents[1] / "chalicelib" / "reports" / "stats.py"
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
        self.a, self.b = 1 + p.successes, 1 + p.trials - p.successes
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
    return ValueSample(
        participants=len(values),
        count=int(np.count_nonzero(values)),
        total=float(values.sum()),
        total_squares=float((values**2).sum()),
    )


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


# --- two_proportion_p_value -----------------------------------------------------------


@pytest.mark.parametrize(
    "control,variant",
    [
        (Proportion(10, 3), Proportion(12, 5)),
        (Proportion(1000, 100), Proportion(1000, 120)),
        (Proportion(1000, 0), Proportion(1000, 1)),
        (Proportion(500, 500), Proportion(400, 399)),
        (Proportion(1_000_000, 50_000), Proportion(1_000_000, 50_500)),
        (Proportion(1_000_000, 50_000), Proportion(1_000_000, 55_000)),
    ],
)
def test_two_proportion_p_value_is_the_pooled_z_test_of_statsmodels(control, variant):
    _, expected = proportions_ztest(
        [variant.successes, control.successes], [variant.trials, control.trials]
    )
    p_value = two_proportion_p_value(control, variant)
    assert p_value == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_two_proportion_p_value_is_none_when_a_side_has_no_trials():
    assert two_proportion_p_value(Proportion(0, 0), Proportion(10, 1)) is None
    assert two_proportion_p_value(Proportion(10, 1), Proportion(0, 0)) is None


def test_two_proportion_p_value_is_one_when_both_sides_are_all_or_nothing():
    assert two_proportion_p_value(Proportion(10, 0), Proportion(20, 0)) == 1.0
    assert two_proportion_p_value(Proportion(10, 10), Proportion(20, 20)) == 1.0


@FEW_EXAMPLES
@given(control=proportions(), variant=proportions())
def test_two_proportion_p_value_is_a_probability(control, variant):
    p_value = two_proportion_p_value(control, variant)
    if control.trials == 0 or variant.trials == 0:
        assert p_value is None
    else:
        assert 0.0 <= p_value <= 1.0


# --- relative_uplift_ci ------------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.9, 0.95])
@pytest.mark.parametrize(
    "control,variant",
    [
        (Proportion(1000, 100), Proportion(1000, 120)),
        (Proportion(200, 10), Proportion(180, 0)),
        (Proportion(1_000_000, 50_000), Proportion(900_000, 46_000)),
    ],
)
def test_relative_uplift_ci_is_the_delta_method_interval_of_the_rate_ratio(
    control, variant, confidence
):
    mean_a, mean_b = control.successes / control.trials, variant.successes / variant.trials
    var_a = mean_a * (1 - mean_a) / control.trials
    var_b = mean_b * (1 - mean_b) / variant.trials
    se = math.sqrt(var_b / mean_a**2 + var_a * mean_b**2 / mean_a**4)
    z = scipy_stats.norm.ppf(1 - (1 - confidence) / 2)
    uplift = mean_b / mean_a - 1
    assert relative_uplift_ci(control, variant, confidence) == pytest.approx(
        (uplift - z * se, uplift + z * se), rel=1e-9
    )


def test_relative_uplift_ci_is_none_without_control_conversions_or_trials():
    assert relative_uplift_ci(Proportion(100, 0), Proportion(100, 5), 0.95) is None
    assert relative_uplift_ci(Proportion(0, 0), Proportion(100, 5), 0.95) is None
    assert relative_uplift_ci(Proportion(100, 5), Proportion(0, 0), 0.95) is None


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
    control = ValueSample(participants=10, count=10, total=50.0, total_squares=300.0)
    variant = ValueSample(participants=12, count=12, total=84.0, total_squares=700.0)
    var_a = (300.0 - 50.0**2 / 10) / 9 / 10
    var_b = (700.0 - 84.0**2 / 12) / 11 / 12
    df = (var_a + var_b) ** 2 / (var_a**2 / 9 + var_b**2 / 11)
    half_width = scipy_stats.t.ppf(0.975, df) * math.sqrt(var_a + var_b)

    result = mean_difference(control, variant, 0.95)

    assert result.ci == pytest.approx((2.0 - half_width, 2.0 + half_width), rel=1e-9)


def test_mean_difference_is_empty_below_two_participants_or_without_variance():
    empty = MeanDifference(p_value=None, difference=None, ci=None)
    two = ValueSample(participants=2, count=2, total=3.0, total_squares=5.0)
    one = ValueSample(participants=1, count=1, total=3.0, total_squares=9.0)
    constant = ValueSample(participants=5, count=0, total=0.0, total_squares=0.0)
    assert mean_difference(one, two, 0.95) == empty
    assert mean_difference(two, one, 0.95) == empty
    assert mean_difference(constant, constant, 0.95) == empty


# --- input validation and packaging -------------------------------------------------------


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5, math.nan])
def test_confidence_must_lie_strictly_between_zero_and_one(confidence):
    sample = ValueSample(participants=3, count=3, total=3.0, total_squares=5.0)
    with pytest.raises(ValueError, match="confidence"):
        rate_ci(Proportion(10, 1), confidence)
    with pytest.raises(ValueError, match="confidence"):
        relative_uplift_ci(Proportion(10, 1), Proportion(10, 2), confidence)
    with pytest.raises(ValueError, match="confidence"):
        mean_difference(sample, sample, confidence)


@pytest.mark.parametrize("trials,successes", [(-1, 0), (10, 11), (10, -1)])
def test_proportion_rejects_impossible_counts(trials, successes):
    with pytest.raises(ValueError):
        Proportion(trials=trials, successes=successes)


@pytest.mark.parametrize(
    "participants,count,total_squares", [(-1, 0, 0.0), (5, 6, 1.0), (5, -1, 1.0), (5, 2, -1.0)]
)
def test_value_sample_rejects_impossible_counts(participants, count, total_squares):
    with pytest.raises(ValueError):
        ValueSample(participants=participants, count=count, total=1.0, total_squares=total_squares)


def test_srm_rejects_negative_participant_counts():
    with pytest.raises(ValueError):
        srm({"a": -1, "b": 10})


def test_stats_module_imports_only_the_standard_library():
    tree = ast.parse(STATS_MODULE.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative imports would pull in project code"
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)
