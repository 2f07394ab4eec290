"""Statistics for experiment reports.

Pure functions over frozen dataclasses, standard library only (this module
ships inside the Lambda package, so no numpy/scipy).

Conventions:
- conversion rates are compared with a two-sided pooled z-test, Wilson score
  intervals and a delta-method interval for the relative uplift;
- the Bayesian figures use independent Beta(1 + successes, 1 + failures)
  posteriors (a flat prior);
- per-participant values are compared with Welch's t-test;
- sample ratio mismatch is a chi-square goodness-of-fit test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Mapping, Sequence

SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class Proportion:
    trials: int  # participants of a variant
    successes: int  # distinct participants who reached the goal

    def __post_init__(self) -> None:
        if self.trials < 0:
            raise ValueError(f"trials must be >= 0, got {self.trials}")
        if not 0 <= self.successes <= self.trials:
            raise ValueError(
                f"successes must be between 0 and trials ({self.trials}), got {self.successes}"
            )

    @property
    def rate(self) -> float:
        return self.successes / self.trials if self.trials else 0.0


@dataclass(frozen=True)
class SrmResult:
    p_value: float | None
    mismatch: bool  # p_value < SRM_THRESHOLD


@dataclass(frozen=True)
class ValueSample:
    """Per-participant total value of one variant for one goal."""

    participants: int  # n; participants without a value count as 0
    count: int  # participants that carried a value
    total: float  # sum of per-participant totals
    total_squares: float  # sum of squares of per-participant totals

    def __post_init__(self) -> None:
        if self.participants < 0:
            raise ValueError(f"participants must be >= 0, got {self.participants}")
        if not 0 <= self.count <= self.participants:
            raise ValueError(
                f"count must be between 0 and participants ({self.participants}), got {self.count}"
            )
        if self.total_squares < 0:
            raise ValueError(f"total_squares must be >= 0, got {self.total_squares}")


@dataclass(frozen=True)
class MeanDifference:
    p_value: float | None
    difference: float | None  # mean(variant) - mean(control), mean = total / participants
    ci: tuple[float, float] | None


# ---------------------------------------------------------------------------
# Conversion rates (frequentist)
# ---------------------------------------------------------------------------


def rate_ci(p: Proportion, confidence: float) -> tuple[float, float] | None:
    """Wilson score interval for the conversion rate; None without trials."""
    _check_confidence(confidence)
    if p.trials == 0:
        return None
    z = _two_sided_z(confidence)
    n, rate = p.trials, p.rate
    z2_over_n = z * z / n
    centre = (rate + z2_over_n / 2) / (1 + z2_over_n)
    half_width = z / (1 + z2_over_n) * math.sqrt(rate * (1 - rate) / n + z2_over_n / (4 * n))
    # Clamp float noise so that 0 <= low <= rate <= high <= 1 holds exactly.
    return max(0.0, min(centre - half_width, rate)), min(1.0, max(centre + half_width, rate))


def two_proportion_p_value(control: Proportion, variant: Proportion) -> float | None:
    """Two-sided pooled z-test (statsmodels' proportions_ztest).

    None when a side has no trials; 1.0 when the pooled rate is 0 or 1
    (identical, degenerate samples carry no evidence of a difference).
    """
    if control.trials == 0 or variant.trials == 0:
        return None
    pooled = (control.successes + variant.successes) / (control.trials + variant.trials)
    variance = pooled * (1 - pooled) * (1 / control.trials + 1 / variant.trials)
    if variance <= 0:
        return 1.0
    z = (variant.rate - control.rate) / math.sqrt(variance)
    return _two_sided_normal_p(z)


def relative_uplift_ci(
    control: Proportion, variant: Proportion, confidence: float
) -> tuple[float, float] | None:
    """Confidence interval of rate(variant) / rate(control) - 1.

    Delta method on the ratio itself (not on its log), as GrowthBook's
    frequentist engine does:
        var = var_b / mean_a**2 + var_a * mean_b**2 / mean_a**4
    with var_x = rate_x * (1 - rate_x) / trials_x, and a normal quantile.
    None when a side has no trials or the control rate is 0.
    """
    _check_confidence(confidence)
    if control.trials == 0 or variant.trials == 0 or control.successes == 0:
        return None
    mean_a, mean_b = control.rate, variant.rate
    var_a = mean_a * (1 - mean_a) / control.trials
    var_b = mean_b * (1 - mean_b) / variant.trials
    variance = var_b / mean_a**2 + var_a * mean_b**2 / mean_a**4
    uplift = mean_b / mean_a - 1
    half_width = _two_sided_z(confidence) * math.sqrt(variance)
    return uplift - half_width, uplift + half_width


# ---------------------------------------------------------------------------
# Conversion rates (Bayesian)
# ---------------------------------------------------------------------------

# Beyond this many terms the exact sum gets slower than the quadrature.
_EXACT_SUM_MAX_TERMS = 2_000
# Posterior mass outside mean ± this many sd is negligible: < 1e-30 for the
# near-normal posteriors of large samples and ~e^-13 for the most skewed
# ones, Beta(1, n); the remainder is renormalised away.
_TAIL_SDS = 12.0
# Simpson cells per posterior sd; 8 gives errors well below 1e-6.
_CELLS_PER_SD = 8


@dataclass(frozen=True)
class _BetaPosterior:
    alpha: float
    beta: float
    log_beta_fn: float  # log B(alpha, beta), the density's normaliser

    @staticmethod
    def of(p: Proportion) -> _BetaPosterior:
        alpha, beta = 1 + p.successes, 1 + p.trials - p.successes
        return _BetaPosterior(alpha, beta, _log_beta_fn(alpha, beta))

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def sd(self) -> float:
        total = self.alpha + self.beta
        return math.sqrt(self.alpha * self.beta / (total * total * (total + 1)))

    def pdf(self, x: float) -> float:
        # alpha, beta >= 1: the density is finite at the edges, non-zero only on a flat side.
        if x <= 0.0:
            return math.exp(-self.log_beta_fn) if self.alpha == 1 else 0.0
        if x >= 1.0:
            return math.exp(-self.log_beta_fn) if self.beta == 1 else 0.0
        return math.exp(
            (self.alpha - 1) * math.log(x) + (self.beta - 1) * math.log1p(-x) - self.log_beta_fn
        )


def chance_to_beat(control: Proportion, variant: Proportion) -> float | None:
    """P(rate_variant > rate_control) under independent flat-prior Beta posteriors.

    Exact closed form (Evan Miller's sum) when it needs few terms, otherwise
    a quadrature of pdf_variant * cdf_control. Never None: with no trials a
    side's posterior is the flat prior.
    """
    return _chance_to_beat(_BetaPosterior.of(control), _BetaPosterior.of(variant))


def chance_to_be_best(arms: Mapping[str, Proportion]) -> dict[str, float]:
    """P(each arm has the highest rate) under independent flat-prior Beta posteriors."""
    names = list(arms)
    posteriors = [_BetaPosterior.of(arms[name]) for name in names]
    if len(names) == 1:
        return {names[0]: 1.0}
    if len(names) == 2:
        # Same answer as the quadrature, but exact for small counts.
        second_wins = _chance_to_beat(*posteriors)
        return {names[0]: 1.0 - second_wins, names[1]: second_wins}
    return dict(zip(names, _chance_to_be_best(posteriors)))


def _chance_to_beat(a: _BetaPosterior, b: _BetaPosterior) -> float:
    if _exact_sum_terms(a, b) <= _EXACT_SUM_MAX_TERMS:
        return _clamp_probability(_exact_chance_to_beat(a, b))
    return _chance_to_be_best([a, b])[1]


def _exact_sum_terms(a: _BetaPosterior, b: _BetaPosterior) -> int:
    return int(min(a.alpha, a.beta, b.alpha, b.beta))


def _exact_chance_to_beat(a: _BetaPosterior, b: _BetaPosterior) -> float:
    """P(X_b > X_a), summing over the smallest of the four parameters.

    The sum runs over b.alpha terms; the symmetries P(X_b > X_a) =
    1 - P(X_a > X_b) and X -> 1 - X (which swaps alpha and beta) let it run
    over any of the four parameters instead.
    """
    cheapest = min(a.alpha, a.beta, b.alpha, b.beta)
    if b.alpha == cheapest:
        return _evan_miller_sum(a.alpha, a.beta, b.alpha, b.beta)
    if a.alpha == cheapest:
        return 1.0 - _evan_miller_sum(b.alpha, b.beta, a.alpha, a.beta)
    if a.beta == cheapest:
        return _evan_miller_sum(b.beta, b.alpha, a.beta, a.alpha)
    return 1.0 - _evan_miller_sum(a.beta, a.alpha, b.beta, b.alpha)


def _evan_miller_sum(alpha_a: float, beta_a: float, alpha_b: float, beta_b: float) -> float:
    """P(X_b > X_a) = sum_{i < alpha_b} B(alpha_a + i, beta_a + beta_b)
    / ((beta_b + i) B(1 + i, beta_b) B(alpha_a, beta_a)), alpha_b integer.

    Terms are built by their ratio in log space: they can underflow
    individually while their sum is of order one.
    """
    log_term = _log_beta_fn(alpha_a, beta_a + beta_b) - _log_beta_fn(alpha_a, beta_a)
    log_terms = [log_term]
    for i in range(int(alpha_b) - 1):
        log_term += math.log(
            (alpha_a + i) * (beta_b + i) / ((alpha_a + beta_a + beta_b + i) * (1 + i))
        )
        log_terms.append(log_term)
    peak = max(log_terms)
    return math.exp(peak) * math.fsum(math.exp(t - peak) for t in log_terms)


def _chance_to_be_best(posteriors: Sequence[_BetaPosterior]) -> list[float]:
    """P(X_i is the largest) = integral of pdf_i * prod_{j != i} cdf_j.

    Every cdf is integrated along one shared grid (composite Simpson), which
    costs one density evaluation per node and posterior. The incomplete beta
    continued fraction would cost about 1 ms per node at ten million trials,
    and the grid has hundreds of nodes.
    """
    breakpoints = _shared_breakpoints(posteriors)
    tables = [_tabulate(post, breakpoints) for post in posteriors]
    widths = [hi - lo for lo, hi in zip(breakpoints, breakpoints[1:])]

    chances = []
    for i, arm in enumerate(tables):
        others = tables[:i] + tables[i + 1 :]
        at_breaks = [
            f * math.prod(other.cdf_at_breaks[k] for other in others)
            for k, f in enumerate(arm.pdf_at_breaks)
        ]
        at_mids = [
            f * math.prod(other.cdf_at_mids[k] for other in others)
            for k, f in enumerate(arm.pdf_at_mids)
        ]
        chance = math.fsum(
            width / 6 * (at_breaks[k] + 4 * at_mids[k] + at_breaks[k + 1])
            for k, width in enumerate(widths)
        )
        chances.append(max(0.0, chance))
    total = sum(chances)
    return [c / total for c in chances]


@dataclass(frozen=True)
class _Tabulated:
    """A posterior's density and cdf at every grid breakpoint and cell midpoint."""

    pdf_at_breaks: list[float]
    pdf_at_mids: list[float]
    cdf_at_breaks: list[float]
    cdf_at_mids: list[float]


def _tabulate(post: _BetaPosterior, breakpoints: Sequence[float]) -> _Tabulated:
    midpoints = [(lo + hi) / 2 for lo, hi in zip(breakpoints, breakpoints[1:])]
    pdf_at_breaks = [post.pdf(x) for x in breakpoints]
    pdf_at_mids = [post.pdf(x) for x in midpoints]
    cdf_at_breaks, cdf_at_mids = _cumulative_simpson(breakpoints, pdf_at_breaks, pdf_at_mids)
    # Renormalise away the truncated tails and the quadrature error.
    total = cdf_at_breaks[-1]

    def normalised(values: list[float]) -> list[float]:
        return [v / total for v in values]

    return _Tabulated(
        pdf_at_breaks=normalised(pdf_at_breaks),
        pdf_at_mids=normalised(pdf_at_mids),
        cdf_at_breaks=normalised(cdf_at_breaks),
        cdf_at_mids=normalised(cdf_at_mids),
    )


def _shared_breakpoints(posteriors: Sequence[_BetaPosterior]) -> list[float]:
    """Union of evenly spaced grids, one over each posterior's bulk.

    Every region where some density matters is covered at that posterior's
    resolution; the cells in between carry negligible mass for all of them.
    """
    points: set[float] = set()
    for post in posteriors:
        mean, sd = post.mean, post.sd
        lo, hi = max(0.0, mean - _TAIL_SDS * sd), min(1.0, mean + _TAIL_SDS * sd)
        cell_count = max(2, math.ceil((hi - lo) / sd * _CELLS_PER_SD))
        points.update(lo + (hi - lo) * k / cell_count for k in range(cell_count + 1))
    return sorted(points)


def _cumulative_simpson(
    breakpoints: Sequence[float], at_breaks: Sequence[float], at_mids: Sequence[float]
) -> tuple[list[float], list[float]]:
    """Running integral from the first breakpoint to every breakpoint and cell midpoint.

    A whole cell uses Simpson's rule; its first half integrates the same
    parabola: (h / 2) / 12 * (5 f0 + 8 f_mid - f1).
    """
    to_breaks = [0.0]
    to_mids = []
    running = 0.0
    for k, (lo, hi) in enumerate(zip(breakpoints, breakpoints[1:])):
        width = hi - lo
        f0, fm, f1 = at_breaks[k], at_mids[k], at_breaks[k + 1]
        to_mids.append(running + width / 24 * (5 * f0 + 8 * fm - f1))
        running += width / 6 * (f0 + 4 * fm + f1)
        to_breaks.append(running)
    return to_breaks, to_mids


# ---------------------------------------------------------------------------
# Sample ratio mismatch
# ---------------------------------------------------------------------------


def srm(participants: Mapping[str, int], weights: Mapping[str, float] | None = None) -> SrmResult:
    """Chi-square goodness of fit of the participant split against the weights.

    Weights default to an equal split and are normalised; p is None with
    fewer than two variants or no participants.
    """
    if any(n < 0 for n in participants.values()):
        raise ValueError("participant counts must be >= 0")
    if weights is not None:
        if set(weights) != set(participants):
            raise ValueError("weights must name exactly the variants in participants")
        if any(not (w > 0 and math.isfinite(w)) for w in weights.values()):
            raise ValueError("weights must be positive and finite")
    total = sum(participants.values())
    if len(participants) < 2 or total == 0:
        return SrmResult(p_value=None, mismatch=False)

    weight_of = weights or {name: 1.0 for name in participants}
    weight_total = sum(weight_of.values())
    statistic = 0.0
    for name, observed in participants.items():
        expected = total * weight_of[name] / weight_total
        statistic += (observed - expected) ** 2 / expected
    if not math.isfinite(statistic):  # a weight so small that any participant is infinitely unlikely
        return SrmResult(p_value=0.0, mismatch=True)
    p_value = _chi_square_survival(statistic, len(participants) - 1)
    return SrmResult(p_value=p_value, mismatch=p_value < SRM_THRESHOLD)


# ---------------------------------------------------------------------------
# Per-participant values
# ---------------------------------------------------------------------------


def mean_difference(
    control: ValueSample, variant: ValueSample, confidence: float
) -> MeanDifference:
    """Welch's t-test of mean(variant) - mean(control) per participant.

    All fields are None when a side has fewer than 2 participants or the
    standard error is 0.
    """
    _check_confidence(confidence)
    nothing = MeanDifference(p_value=None, difference=None, ci=None)
    if control.participants < 2 or variant.participants < 2:
        return nothing
    if not all(math.isfinite(x) for x in (control.total, control.total_squares, variant.total, variant.total_squares)):
        return nothing  # sums beyond float range: no honest statistic exists
    var_of_mean_a = _sample_variance(control) / control.participants
    var_of_mean_b = _sample_variance(variant) / variant.participants
    se = math.sqrt(var_of_mean_a + var_of_mean_b)
    if se == 0 or not math.isfinite(se):
        return nothing

    difference = _mean(variant) - _mean(control)
    # Welch–Satterthwaite degrees of freedom.
    df = (var_of_mean_a + var_of_mean_b) * (var_of_mean_a + var_of_mean_b) / (
        var_of_mean_a * var_of_mean_a / (control.participants - 1)
        + var_of_mean_b * var_of_mean_b / (variant.participants - 1)
    )
    p_value = _student_t_two_sided_p(difference / se, df)
    half_width = _student_t_critical(confidence, df) * se
    return MeanDifference(
        p_value=p_value,
        difference=difference,
        ci=(difference - half_width, difference + half_width),
    )


def _mean(sample: ValueSample) -> float:
    return sample.total / sample.participants


def _sample_variance(sample: ValueSample) -> float:
    n = sample.participants
    sum_of_squared_deviations = sample.total_squares - sample.total * (sample.total / n)
    # Cancellation can leave a tiny negative number when all values are equal.
    return max(0.0, sum_of_squared_deviations / (n - 1))


# ---------------------------------------------------------------------------
# Distributions
# ---------------------------------------------------------------------------

_STANDARD_NORMAL = NormalDist()
_CONTINUED_FRACTION_EPS = 1e-15
_CONTINUED_FRACTION_MAX_ITER = 100_000
_TINY = 1e-300


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")


def _clamp_probability(p: float) -> float:
    return min(1.0, max(0.0, p))


def _two_sided_z(confidence: float) -> float:
    return _STANDARD_NORMAL.inv_cdf(0.5 + confidence / 2)


def _two_sided_normal_p(z: float) -> float:
    # erfc keeps full relative precision far into the tail, unlike 1 - cdf.
    return math.erfc(abs(z) / math.sqrt(2))


def _log_beta_fn(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _student_t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with df degrees of freedom."""
    return _regularized_incomplete_beta(df / (df + t * t), df / 2, 0.5)


def _student_t_critical(confidence: float, df: float) -> float:
    """t > 0 with P(|T| >= t) = 1 - confidence, by bisection."""
    alpha = 1 - confidence
    low, high = 0.0, max(1.0, 2 * _two_sided_z(confidence))
    while _student_t_two_sided_p(high, df) > alpha:
        low, high = high, 2 * high
    while high - low > 1e-12 * high:
        middle = (low + high) / 2
        if _student_t_two_sided_p(middle, df) > alpha:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _chi_square_survival(statistic: float, df: int) -> float:
    return _regularized_upper_gamma(df / 2, statistic / 2)


def _regularized_incomplete_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), via the continued fraction (Numerical Recipes' betai)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = a * math.log(x) + b * math.log1p(-x) - _log_beta_fn(a, b)
    # The fraction converges fast only left of the mean; use the mirror image otherwise.
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _incomplete_beta_fraction(x, a, b) / a
    return 1.0 - math.exp(log_front) * _incomplete_beta_fraction(1 - x, b, a) / b


def _incomplete_beta_fraction(x: float, a: float, b: float) -> float:
    """Continued fraction of I_x(a, b), evaluated with the modified Lentz method."""

    def guarded(value: float) -> float:
        return value if abs(value) > _TINY else _TINY

    c = 1.0
    d = 1.0 / guarded(1.0 - (a + b) * x / (a + 1))
    result = d
    for m in range(1, _CONTINUED_FRACTION_MAX_ITER + 1):
        even_step = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 / guarded(1.0 + even_step * d)
        c = guarded(1.0 + even_step / c)
        result *= d * c
        odd_step = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 / guarded(1.0 + odd_step * d)
        c = guarded(1.0 + odd_step / c)
        delta = d * c
        result *= delta
        if abs(delta - 1.0) < _CONTINUED_FRACTION_EPS:
            return result
    raise ArithmeticError(f"incomplete beta did not converge for x={x}, a={a}, b={b}")


def _regularized_upper_gamma(a: float, x: float) -> float:
    """Q(a, x) = Gamma(a, x) / Gamma(a): series below a + 1, continued fraction above."""
    if x <= 0.0:
        return 1.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        return 1.0 - math.exp(log_front) * _lower_gamma_series(a, x)
    return math.exp(log_front) * _upper_gamma_fraction(a, x)


def _lower_gamma_series(a: float, x: float) -> float:
    term = total = 1.0 / a
    denominator = a
    for _ in range(_CONTINUED_FRACTION_MAX_ITER):
        denominator += 1
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * _CONTINUED_FRACTION_EPS:
            return total
    raise ArithmeticError(f"incomplete gamma series did not converge for a={a}, x={x}")


def _upper_gamma_fraction(a: float, x: float) -> float:
    b = x + 1 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    result = d
    for i in range(1, _CONTINUED_FRACTION_MAX_ITER + 1):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = b + an / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        result *= delta
        if abs(delta - 1.0) < _CONTINUED_FRACTION_EPS:
            return result
    raise ArithmeticError(f"incomplete gamma fraction did not converge for a={a}, x={x}")
