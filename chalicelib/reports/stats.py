"""Statistics for experiment reports.

Pure functions over frozen dataclasses, standard library only (this module
ships inside the Lambda package, so no numpy/scipy).

Conventions:
- one decision statistic per mode. A variant's rate is compared with the
  control's on the log scale of the rate ratio (an unpooled Wald statistic):
  the fixed-horizon p-value and relative interval are that statistic and its
  inversion, and so are the sequential (always-valid) p-value and confidence
  sequence. At confidence c, p < 1 - c exactly when the interval excludes 0;
- the absolute difference of rates gets Newcombe's hybrid score interval
  (fixed horizon) and an asymptotic confidence sequence (sequential);
- the Bayesian figures use independent Beta(1 + successes, 1 + failures)
  posteriors (a flat prior);
- per-participant values are compared with Welch's t-test (fixed horizon)
  and an asymptotic confidence sequence for the difference of means;
- many comparisons are corrected with Holm's step-down or the
  Benjamini-Hochberg step-up procedure;
- sample ratio mismatch is a chi-square goodness-of-fit test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal, Mapping, Sequence

SRM_THRESHOLD = 0.001

# The asymptotic confidence sequences are tightest at this many participants
# (both arms together); GrowthBook's default. Wider at smaller and larger
# samples, valid at every one.
SEQUENTIAL_TUNING_PARTICIPANTS = 5_000

Correction = Literal["holm", "bh", "none"]
CORRECTIONS: tuple[Correction, ...] = ("holm", "bh", "none")


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

    @property
    def degenerate(self) -> bool:
        """No successes or no failures: the plug-in variance of the rate is 0."""
        return self.successes == 0 or self.successes == self.trials


@dataclass(frozen=True)
class SrmResult:
    p_value: float | None
    mismatch: bool  # p_value < SRM_THRESHOLD


@dataclass(frozen=True)
class ValueSample:
    """Per-participant total value of one variant for one goal."""

    participants: int  # n; participants without a value count as 0
    mean: float  # mean of the per-participant totals
    variance: float  # sample variance (n - 1 denominator) of the per-participant totals

    def __post_init__(self) -> None:
        if self.participants < 0:
            raise ValueError(f"participants must be >= 0, got {self.participants}")
        if not self.variance >= 0:
            raise ValueError(f"variance must be >= 0, got {self.variance}")


@dataclass(frozen=True)
class MeanDifference:
    p_value: float | None
    difference: float | None  # mean(variant) - mean(control)
    ci: tuple[float, float] | None


@dataclass(frozen=True)
class Decision:
    """One mode's answer for a variant against the control.

    `p_value` and `relative_ci` come from one statistic (for values, `p_value`
    and `absolute_ci`: a mean can be 0 or negative, a ratio of means then
    means nothing). Any field is None where no honest figure exists.
    """

    p_value: float | None
    relative_ci: tuple[float, float] | None  # of variant / control - 1
    absolute_ci: tuple[float, float] | None  # of variant - control


@dataclass(frozen=True)
class Comparison:
    fixed: Decision  # valid when looked at once, at a sample size fixed in advance
    sequential: Decision  # valid however often it is looked at


@dataclass(frozen=True)
class Estimate:
    """An asymptotically normal estimate and its standard error."""

    value: float
    standard_error: float

    def z(self) -> float:
        return self.value / self.standard_error


# ---------------------------------------------------------------------------
# Conversion rates (frequentist)
# ---------------------------------------------------------------------------


def rate_ci(p: Proportion, confidence: float) -> tuple[float, float] | None:
    """Wilson score interval for the conversion rate; None without trials.

    Wilson (1927), "Probable inference, the law of succession, and
    statistical inference", JASA 22:209-212.
    """
    _check_confidence(confidence)
    if p.trials == 0:
        return None
    return _wilson(p, _two_sided_z(confidence))


def _wilson(p: Proportion, z: float) -> tuple[float, float]:
    n, rate = p.trials, p.rate
    z2_over_n = z * z / n
    centre = (rate + z2_over_n / 2) / (1 + z2_over_n)
    half_width = z / (1 + z2_over_n) * math.sqrt(rate * (1 - rate) / n + z2_over_n / (4 * n))
    # Clamp float noise so that 0 <= low <= rate <= high <= 1 holds exactly.
    return max(0.0, min(centre - half_width, rate)), min(1.0, max(centre + half_width, rate))


def compare_rates(control: Proportion, variant: Proportion, confidence: float) -> Comparison:
    """The fixed-horizon and the sequential decision for variant against control.

    Relative uplift: the log rate ratio log(r_v / r_c) with its delta-method
    standard error sqrt(1/s_v - 1/n_v + 1/s_c - 1/n_c) (Katz, Baptista, Azen
    & Pike (1978), "Obtaining confidence intervals for the risk ratio in
    cohort studies", Biometrics 34:469-474). Its Wald test is the
    p-value and its inversion, exp(log ratio +- half width) - 1, the interval:
    both from one statistic, and the bounds stay above -100%. When an arm has
    no successes or no failures, 0.5 is added to every cell of the 2x2 table
    (Haldane (1956) / Anscombe (1956)) so that real uncertainty never gets a
    zero-width interval. A control rate of 0 leaves the relative uplift
    undefined: its intervals are None, the p-value still tests equality.

    Absolute uplift: Newcombe's hybrid score interval (fixed) and an
    asymptotic confidence sequence of the unpooled Wald difference (sequential).
    """
    _check_confidence(confidence)
    if control.trials == 0 or variant.trials == 0:
        empty = Decision(None, None, None)
        return Comparison(empty, empty)
    ratio = _log_rate_ratio(control, variant)
    difference = _rate_difference(control, variant)
    participants = control.trials + variant.trials
    relative_defined = control.successes > 0

    z = _two_sided_z(confidence)
    fixed = Decision(
        p_value=_two_sided_normal_p(ratio.z()) if ratio.standard_error > 0 else 1.0,
        relative_ci=_relative(ratio, z * ratio.standard_error) if relative_defined else None,
        absolute_ci=newcombe_difference_ci(control, variant, confidence),
    )
    sequential = Decision(
        p_value=sequential_p_value(ratio, participants, confidence),
        relative_ci=_relative(ratio, _sequence_half_width(ratio.standard_error, participants, confidence))
        if relative_defined else None,
        absolute_ci=_within(
            _around(difference, _sequence_half_width(difference.standard_error, participants, confidence)),
            -1.0, 1.0),
    )
    return Comparison(fixed, sequential)


def _table(control: Proportion, variant: Proportion) -> tuple[float, float, float, float]:
    """(s_c, n_c, s_v, n_v), with Haldane-Anscombe's 0.5 per cell when an arm is degenerate."""
    if control.degenerate or variant.degenerate:
        return (control.successes + 0.5, control.trials + 1.0, variant.successes + 0.5, variant.trials + 1.0)
    return (float(control.successes), float(control.trials), float(variant.successes), float(variant.trials))


def _log_rate_ratio(control: Proportion, variant: Proportion) -> Estimate:
    s_c, n_c, s_v, n_v = _table(control, variant)
    # Katz et al. (1978): var(log RR) = (1 - r_v)/s_v + (1 - r_c)/s_c = 1/s_v - 1/n_v + 1/s_c - 1/n_c.
    variance = (1 / s_v - 1 / n_v) + (1 / s_c - 1 / n_c)
    return Estimate(math.log(s_v / n_v) - math.log(s_c / n_c), math.sqrt(max(0.0, variance)))


def _rate_difference(control: Proportion, variant: Proportion) -> Estimate:
    """The observed difference; its unpooled variance from the (corrected) table."""
    s_c, n_c, s_v, n_v = _table(control, variant)
    r_c, r_v = s_c / n_c, s_v / n_v
    variance = r_c * (1 - r_c) / control.trials + r_v * (1 - r_v) / variant.trials
    return Estimate(variant.rate - control.rate, math.sqrt(variance))


def newcombe_difference_ci(control: Proportion, variant: Proportion, confidence: float) -> tuple[float, float] | None:
    """Interval of rate(variant) - rate(control) from the two Wilson intervals.

    Newcombe (1998), "Interval estimation for the difference between
    independent proportions: comparison of eleven methods", Statistics in
    Medicine 17:873-890, method 10 (hybrid score):
        low  = d - sqrt((r_v - l_v)^2 + (u_c - r_c)^2)
        high = d + sqrt((u_v - r_v)^2 + (r_c - l_c)^2)
    Never zero-width while an arm has trials, and inside [-1, 1].
    """
    _check_confidence(confidence)
    if control.trials == 0 or variant.trials == 0:
        return None
    z = _two_sided_z(confidence)
    (l_c, u_c), (l_v, u_v) = _wilson(control, z), _wilson(variant, z)
    r_c, r_v = control.rate, variant.rate
    difference = r_v - r_c
    low = difference - math.hypot(r_v - l_v, u_c - r_c)
    high = difference + math.hypot(u_v - r_v, r_c - l_c)
    return max(-1.0, low), min(1.0, high)


def _relative(log_ratio: Estimate, half_width: float) -> tuple[float, float]:
    # expm1 keeps the sign of its argument exactly: the interval excludes 0
    # exactly when the log-scale interval does.
    return _expm1(log_ratio.value - half_width), _expm1(log_ratio.value + half_width)


def _expm1(x: float) -> float:
    """exp(x) - 1, infinite rather than an error past float range (an unbounded upper bound)."""
    return math.expm1(x) if x < 709.0 else math.inf


def _around(estimate: Estimate, half_width: float) -> tuple[float, float]:
    return estimate.value - half_width, estimate.value + half_width


def _hull(first: tuple[float, float], second: tuple[float, float]) -> tuple[float, float]:
    return min(first[0], second[0]), max(first[1], second[1])


def _within(bounds: tuple[float, float], low: float, high: float) -> tuple[float, float]:
    """Intersect with the parameter's range (keeps coverage: the truth lies in it)."""
    return max(low, bounds[0]), min(high, bounds[1])


# ---------------------------------------------------------------------------
# Sequential (always-valid) inference
# ---------------------------------------------------------------------------
#
# Asymptotic confidence sequences: Waudby-Smith, Arbour, Sinha, Kennedy &
# Ramdas (2024), "Time-uniform central limit theory and asymptotic
# confidence sequences", Annals of Statistics 52(6) (arXiv:2103.06476),
# Section 2: the asymptotic CS for a mean from Robbins' normal mixture. For an
# estimate whose variance is sigma^2 / t after t observations, the two-sided
# normal-mixture boundary
#     estimate +- sigma * sqrt( 2 (t rho^2 + 1) / (t^2 rho^2) * log( sqrt(t rho^2 + 1) / alpha ) )
# covers the truth at every t at once with probability -> 1 - alpha. With
# t = participants of both arms and sigma^2 = t * SE^2 the half width is
#     SE * sqrt( 2 (t rho^2 + 1) / (t rho^2) * log( sqrt(t rho^2 + 1) / alpha ) ).
# rho tunes where the sequence is tightest; for a target t* the paper's
# closed-form approximation of the optimum (their Appendix, the authors'
# `best_rho2_approx`) is
#     rho^2 = ( -2 log alpha + log(-2 log alpha + 1) ) / t*,
# with t* = SEQUENTIAL_TUNING_PARTICIPANTS.
#
# The always-valid p-value is the inverted sequence, the smallest alpha at
# which it excludes 0 (Johari, Koomen, Pekelis & Walsh (2017), "Peeking at
# A/B tests", KDD, Section 3's duality of always-valid p-values and
# confidence sequences): solving |estimate| = half width for alpha gives
#     p = min(1, sqrt(t rho^2 + 1) * exp( -z^2 t rho^2 / (2 (t rho^2 + 1)) )),  z = estimate / SE.
# rho is tuned at alpha = 1 - confidence, so p < 1 - confidence exactly when
# the sequence at that confidence excludes 0.


def sequential_rho_squared(confidence: float, tuning_participants: float = SEQUENTIAL_TUNING_PARTICIPANTS) -> float:
    alpha = 1 - confidence
    return (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning_participants


def _sequence_half_width(standard_error: float, participants: int, confidence: float) -> float:
    alpha = 1 - confidence
    t_rho2 = participants * sequential_rho_squared(confidence)
    return standard_error * math.sqrt(2 * (t_rho2 + 1) / t_rho2 * math.log(math.sqrt(t_rho2 + 1) / alpha))


def sequential_p_value(estimate: Estimate, participants: int, confidence: float) -> float:
    if estimate.standard_error == 0:
        return 1.0
    t_rho2 = participants * sequential_rho_squared(confidence)
    z = estimate.z()
    log_p = 0.5 * math.log1p(t_rho2) - z * z * t_rho2 / (2 * (t_rho2 + 1))
    return math.exp(min(0.0, log_p))


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

    @staticmethod
    def of(p: Proportion) -> _BetaPosterior:
        return _BetaPosterior(1 + p.successes, 1 + p.trials - p.successes)

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def sd(self) -> float:
        total = self.alpha + self.beta
        return math.sqrt(self.alpha * self.beta / (total * total * (total + 1)))

    def pdf(self, x: float) -> float:
        """The density up to a constant factor: its ratio to the density at the mean.

        Written around the mean, (alpha - 1) log1p((x - m) / m) keeps full
        precision at any sample size; (alpha - 1) log x less lgamma terms of
        order 1e13 would carry rounding noise of order 1e-3 at n = 1e12.
        The quadrature renormalises, so the constant never matters.
        """
        if x < 0.0 or x > 1.0:
            return 0.0
        mean = self.mean
        step = x - mean
        log_ratio = 0.0
        if self.alpha != 1:
            if x == 0.0:
                return 0.0
            log_ratio += (self.alpha - 1) * math.log1p(step / mean)
        if self.beta != 1:
            if x == 1.0:
                return 0.0
            log_ratio += (self.beta - 1) * math.log1p(-step / (1 - mean))
        return math.exp(log_ratio)


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
    # log B(alpha_a, beta_a + beta_b) - log B(alpha_a, beta_a), as a difference of
    # log-gamma ratios with the smaller step (no lgamma of 1e12 minus another).
    if beta_b <= alpha_a:
        log_term = _log_gamma_ratio(beta_a, beta_b) - _log_gamma_ratio(alpha_a + beta_a, beta_b)
    else:
        log_term = _log_gamma_ratio(beta_a, alpha_a) - _log_gamma_ratio(beta_a + beta_b, alpha_a)
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
# Multiple comparisons
# ---------------------------------------------------------------------------


def adjust_p_values(p_values: Sequence[float | None], method: Correction) -> list[float | None]:
    """Adjusted p-values of one family of comparisons; None entries are not part of it.

    holm: Holm (1979), "A simple sequentially rejective multiple test
    procedure", Scand. J. Statist. 6:65-70, controls the family-wise error:
    with p sorted ascending, adjusted_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)).
    bh: Benjamini & Hochberg (1995), "Controlling the false discovery rate",
    JRSS B 57:289-300, controls the false discovery rate:
    adjusted_(i) = min_{j >= i} min(1, m p_(j) / j).
    none: the raw p-values.
    """
    if method not in CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, got {method!r}")
    present = sorted((p, index) for index, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = list(p_values)
    m = len(present)
    if method == "holm":
        running = 0.0
        for rank, (p, index) in enumerate(present):
            running = max(running, min(1.0, (m - rank) * p))
            adjusted[index] = running
    elif method == "bh":
        running = 1.0
        for rank in range(m - 1, -1, -1):
            p, index = present[rank]
            running = min(running, m * p / (rank + 1))
            adjusted[index] = min(1.0, running)
    return adjusted


# ---------------------------------------------------------------------------
# Per-participant values
# ---------------------------------------------------------------------------


def compare_values(control: ValueSample, variant: ValueSample, confidence: float) -> Comparison:
    """The fixed-horizon and the sequential decision on the mean value per participant.

    Fixed: Welch's t-test and its interval for the difference (see
    `mean_difference`). Sequential: the asymptotic confidence sequence (above)
    of the same difference with the unpooled standard error
    sqrt(var_c / n_c + var_v / n_v), and its always-valid p-value. The
    relative intervals use log(mean_v / mean_c) with the delta-method standard
    error sqrt(var_v / (n_v mean_v^2) + var_c / (n_c mean_c^2)) (Casella &
    Berger (2002), Statistical Inference, 2nd ed., Theorem 5.5.24), and are
    None unless both means are positive.
    """
    welch = mean_difference(control, variant, confidence)
    if welch.difference is None:
        empty = Decision(None, None, None)
        return Comparison(empty, empty)
    participants = control.participants + variant.participants
    difference = Estimate(variant.mean - control.mean,
                           math.sqrt(control.variance / control.participants + variant.variance / variant.participants))
    ratio = _log_mean_ratio(control, variant)
    fixed = Decision(
        p_value=welch.p_value,
        relative_ci=_relative(ratio, _two_sided_z(confidence) * ratio.standard_error) if ratio else None,
        absolute_ci=welch.ci,
    )
    # At small samples the normal limit behind the sequence is narrower than Student's t:
    # the sequential figures never claim more than the fixed-horizon test does.
    sequence = _around(difference, _sequence_half_width(difference.standard_error, participants, confidence))
    sequential = Decision(
        p_value=max(sequential_p_value(difference, participants, confidence), welch.p_value or 0.0),
        relative_ci=_relative(ratio, _sequence_half_width(ratio.standard_error, participants, confidence))
        if ratio else None,
        absolute_ci=_hull(sequence, welch.ci) if welch.ci else sequence,
    )
    return Comparison(fixed, sequential)


def _log_mean_ratio(control: ValueSample, variant: ValueSample) -> Estimate | None:
    if not (control.mean > 0 and variant.mean > 0):
        return None
    try:
        variance = (variant.variance / (variant.participants * variant.mean**2)
                    + control.variance / (control.participants * control.mean**2))
    except (ZeroDivisionError, OverflowError):  # means so near 0 that the ratio has no scale
        return None
    if not (math.isfinite(variance) and variance > 0):
        return None
    return Estimate(math.log(variant.mean) - math.log(control.mean), math.sqrt(variance))


def mean_difference(
    control: ValueSample, variant: ValueSample, confidence: float
) -> MeanDifference:
    """Welch's t-test of mean(variant) - mean(control) per participant.

    Welch (1947), "The generalization of 'Student's' problem when several
    different population variances are involved", Biometrika 34:28-35:
    t = d / sqrt(v_c/n_c + v_v/n_v) with the Welch-Satterthwaite degrees of
    freedom. All fields are None when a side has fewer than 2
    participants, a figure is not finite or the standard error is 0.
    """
    _check_confidence(confidence)
    nothing = MeanDifference(p_value=None, difference=None, ci=None)
    if control.participants < 2 or variant.participants < 2:
        return nothing
    if not all(math.isfinite(x) for x in (control.mean, control.variance, variant.mean, variant.variance)):
        return nothing
    var_of_mean_a = control.variance / control.participants
    var_of_mean_b = variant.variance / variant.participants
    se = math.sqrt(var_of_mean_a + var_of_mean_b)
    difference = variant.mean - control.mean
    if se == 0 or not math.isfinite(se) or not math.isfinite(difference):
        return nothing
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


# From here on Stirling's series with three correction terms is exact to double precision.
_STIRLING_MIN = 1e6


def _log_gamma_ratio(x: float, step: float) -> float:
    """lgamma(x + step) - lgamma(x), without the cancellation of two huge lgammas.

    Stirling's series (Abramowitz & Stegun 6.1.41) for large x:
        lgamma(y) = (y - 1/2) log y - y + log(2 pi)/2 + 1/(12 y) - 1/(360 y^3) + 1/(1260 y^5),
    whose difference is (x - 1/2) log1p(step/x) + step log(x + step) - step + corrections.
    """
    if x < _STIRLING_MIN:
        return math.lgamma(x + step) - math.lgamma(x)
    y = x + step

    def correction(z: float) -> float:
        return 1 / (12 * z) - 1 / (360 * z**3) + 1 / (1260 * z**5)

    return (x - 0.5) * math.log1p(step / x) + step * math.log(y) - step + correction(y) - correction(x)


# Beyond this many degrees of freedom the incomplete beta's continued fraction
# converges too slowly and its lgamma terms lose precision; the first term of
# the large-df expansion is then within 1e-11 of the exact value.
_T_EXPANSION_MIN_DF = 1e5


def _student_t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with df degrees of freedom.

    Up to _T_EXPANSION_MIN_DF: I_x(df/2, 1/2) with x = df / (df + t^2)
    (Abramowitz & Stegun, Handbook of Mathematical Functions, Section 26.7).
    Beyond: the expansion in
    powers of 1/df (Fisher (1925), "Expansion of 'Student's' integral in
    powers of n^-1", Metron 5:109-112; also Abramowitz & Stegun Section 26.7)
        P(|T| >= t) = 2 (1 - Phi(t)) + 2 phi(t) (t^3 + t) / (4 df) + O(df^-2).
    """
    if df > _T_EXPANSION_MIN_DF:
        t = abs(t)
        density = math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
        return min(1.0, _two_sided_normal_p(t) + 2 * density * (t**3 + t) / (4 * df))
    t_squared = t * t
    return _regularized_incomplete_beta(df / (df + t_squared), df / 2, 0.5, complement=t_squared / (df + t_squared))


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


def _regularized_incomplete_beta(x: float, a: float, b: float, complement: float | None = None) -> float:
    """I_x(a, b), via the continued fraction (Numerical Recipes' betai).

    `complement` is 1 - x when the caller knows it more precisely than 1 - x rounds.
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    one_minus_x = 1.0 - x if complement is None else complement
    log_x = math.log1p(-complement) if complement is not None and complement < 0.5 else math.log(x)
    log_one_minus_x = math.log(complement) if complement is not None else math.log1p(-x)
    log_front = a * log_x + b * log_one_minus_x - _log_beta_fn(a, b)
    # The fraction converges fast only left of the mean; use the mirror image otherwise.
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _incomplete_beta_fraction(x, a, b) / a
    return 1.0 - math.exp(log_front) * _incomplete_beta_fraction(one_minus_x, b, a) / b


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
