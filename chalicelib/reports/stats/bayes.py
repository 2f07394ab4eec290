"""Conversion rates (Bayesian): chance to beat the control and chance to be best."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from chalicelib.reports.stats.distributions import clamp_probability, log_gamma_ratio
from chalicelib.reports.stats.rates import Proportion

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
    return dict(zip(names, _chance_to_be_best(posteriors), strict=True))


def _chance_to_beat(a: _BetaPosterior, b: _BetaPosterior) -> float:
    if _exact_sum_terms(a, b) <= _EXACT_SUM_MAX_TERMS:
        return clamp_probability(_exact_chance_to_beat(a, b))
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
        log_term = log_gamma_ratio(beta_a, beta_b) - log_gamma_ratio(alpha_a + beta_a, beta_b)
    else:
        log_term = log_gamma_ratio(beta_a, alpha_a) - log_gamma_ratio(beta_a + beta_b, alpha_a)
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
    widths = [hi - lo for lo, hi in pairwise(breakpoints)]

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
    midpoints = [(lo + hi) / 2 for lo, hi in pairwise(breakpoints)]
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
    for k, (lo, hi) in enumerate(pairwise(breakpoints)):
        width = hi - lo
        f0, fm, f1 = at_breaks[k], at_mids[k], at_breaks[k + 1]
        to_mids.append(running + width / 24 * (5 * f0 + 8 * fm - f1))
        running += width / 6 * (f0 + 4 * fm + f1)
        to_breaks.append(running)
    return to_breaks, to_mids
