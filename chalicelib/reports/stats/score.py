"""Score tests of two conversion rates, and the intervals obtained by inverting them.

Miettinen & Nurminen (1985), "Comparative analysis of two rates", Statistics in
Medicine 4:213-226: for a hypothesised rate ratio theta = r_v / r_c (their
Section 3, the same statistic as Koopman (1984), "Confidence intervals for the
ratio of two binomial proportions", Biometrics 40:513-517) or rate difference
delta = r_v - r_c (their Section 2), the statistic is

    z = (observed contrast - hypothesised contrast) / sqrt(V~ * N / (N - 1))

where V~ is the variance of the contrast at the rates' maximum-likelihood
estimates restricted to the hypothesis (closed forms below) and N the
participants of both arms. Every hypothesis gives the same statistic at "no
difference" (theta = 1, delta = 0): the pooled score test. The interval is the
set of hypotheses the test does not reject, so it excludes "no difference"
exactly when p < 1 - confidence.

Small counts: the contrast moves in steps of 1/n_v and theta/n_c (1/n_c for the
difference), and half a step is taken off its distance to the hypothesis
(Yates (1934), "Contingency tables involving small numbers and the chi-square
test", JRSS Suppl. 1:217-235; at theta = 1 the statistic squared is Yates'
corrected chi-square times (N - 1)/N). Uncorrected score tests exceed their
nominal size at small and unbalanced counts; the correction keeps the size
at or below alpha + 0.005 on the exact grid of bench/decisions.py (exact
enumeration of every outcome) while moving large-sample answers by less
than half a count.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.reports.stats.distributions import two_sided_normal_p

_BISECTION_STEPS = 80
# Bisection stops within this relative (and absolute) step: far below any figure shown.
_TOLERANCE = 1e-10
_TINY_STEP = 1e-14
_LOG_RATIO_REACH = 60.0  # exp(+-60): beyond any ratio two counted rates can show


@dataclass(frozen=True)
class Table:
    """A 2x2 table: successes and trials of the control and the variant (trials > 0)."""

    control_successes: int
    control_trials: int
    variant_successes: int
    variant_trials: int

    @property
    def control_rate(self) -> float:
        return self.control_successes / self.control_trials

    @property
    def variant_rate(self) -> float:
        return self.variant_successes / self.variant_trials

    @property
    def participants(self) -> int:
        return self.control_trials + self.variant_trials

    @property
    def degenerate(self) -> bool:
        """An arm without successes or without failures: the restricted likelihood's equations gain spurious roots."""
        return (self.control_successes in (0, self.control_trials)
                or self.variant_successes in (0, self.variant_trials))

    @property
    def direction(self) -> int:
        """+1 when the variant's rate is higher, -1 when lower, 0 when equal (exact integer comparison)."""
        lhs = self.variant_successes * self.control_trials
        rhs = self.control_successes * self.variant_trials
        return (lhs > rhs) - (lhs < rhs)


def no_difference_statistic(table: Table) -> float:
    """|z| of the corrected pooled score test (theta = 1, delta = 0); 0 when the rates are within half a step."""
    return ratio_statistic(table, 1.0)


def score_p_value(table: Table) -> float:
    """Two-sided p of the corrected pooled score test."""
    return min(1.0, two_sided_normal_p(no_difference_statistic(table)))


def ratio_statistic(table: Table, theta: float) -> float:
    """|z| of the corrected Miettinen-Nurminen test of r_v / r_c = theta (Koopman's restricted estimates)."""
    p_c, p_v = _restricted_for_ratio(table, theta)
    contrast = abs(table.variant_rate - theta * table.control_rate)
    correction = 0.5 * (1 / table.variant_trials + theta / table.control_trials)
    variance = p_v * (1 - p_v) / table.variant_trials + theta * theta * p_c * (1 - p_c) / table.control_trials
    return _corrected_z(contrast, correction, variance, table.participants)


def difference_statistic(table: Table, delta: float) -> float:
    """|z| of the corrected Miettinen-Nurminen test of r_v - r_c = delta."""
    p_v, p_c = _restricted_for_difference(table, delta)
    contrast = abs(table.variant_rate - table.control_rate - delta)
    correction = 0.5 * (1 / table.variant_trials + 1 / table.control_trials)
    variance = p_v * (1 - p_v) / table.variant_trials + p_c * (1 - p_c) / table.control_trials
    return _corrected_z(contrast, correction, variance, table.participants)


def _corrected_z(contrast: float, correction: float, variance: float, participants: int) -> float:
    distance = contrast - correction
    if distance <= 1e-15:
        return 0.0
    variance *= participants / (participants - 1)  # Miettinen & Nurminen's N / (N - 1)
    return math.inf if variance <= 0 else distance / math.sqrt(variance)


def _restricted_for_ratio(table: Table, theta: float) -> tuple[float, float]:
    """Koopman (1984) / Miettinen & Nurminen (1985), Section 3: the restricted MLE (p_c, p_v = theta p_c),
    a root of  N theta p^2 - (n_v theta + x_v + n_c + x_c theta) p + (x_v + x_c) = 0."""
    x_c, n_c, x_v, n_v = table.control_successes, table.control_trials, table.variant_successes, table.variant_trials
    a = (n_c + n_v) * theta
    b = -(n_v * theta + x_v + n_c + x_c * theta)
    c = x_v + x_c
    root = math.sqrt(max(0.0, b * b - 4 * a * c))
    # The smaller root (Koopman's), written so that it does not cancel; with an empty or full
    # cell the likeliest feasible of both roots and the boundaries.
    roots = [2 * c / (-b + root) if c else 0.0, (-b + root) / (2 * a)]
    if not table.degenerate:
        return min(1.0, max(0.0, roots[0])), min(1.0, theta * max(0.0, roots[0]))
    p_v, p_c = _likeliest(table, [(theta * p, p) for p in roots + [0.0, min(1.0, 1 / theta)]])
    return p_c, p_v


def _restricted_for_difference(table: Table, delta: float) -> tuple[float, float]:
    """Miettinen & Nurminen (1985), Appendix: the restricted MLE (p_v = p_c + delta, p_c), a root of the
    cubic L3 p^3 + L2 p^2 + L1 p + L0 in p_c, solved in closed form (trigonometric)."""
    x_c, n_c, n_v = table.control_successes, table.control_trials, table.variant_trials
    total, successes = n_c + n_v, table.control_successes + table.variant_successes
    l3 = total
    l2 = (n_v + 2 * n_c) * delta - total - successes
    l1 = (n_c * delta - total - 2 * x_c) * delta + successes
    l0 = x_c * delta * (1 - delta)
    q = (l2 / (3 * l3)) ** 3 - l1 * l2 / (6 * l3 * l3) + l0 / (2 * l3)
    p = math.copysign(math.sqrt(max(0.0, (l2 / (3 * l3)) ** 2 - l1 / (3 * l3))), q)
    shift = -l2 / (3 * l3)
    if p == 0:
        roots = [shift]
    else:
        # MN's root is the first; the cubic's other two follow from the same angle. With no successes
        # (or no failures) in an arm a spurious root sits on the boundary, so the likeliest feasible wins.
        angle = math.acos(max(-1.0, min(1.0, q / p**3)))
        roots = [2 * p * math.cos((math.pi + angle + 2 * math.pi * k) / 3) + shift for k in range(3)]
    low, high = max(0.0, -delta), min(1.0, 1 - delta)
    if not table.degenerate:
        p_c = min(high, max(low, roots[0]))
        return min(1.0, max(0.0, p_c + delta)), p_c
    p_v, p_c = _likeliest(table, [(p_c + delta, p_c) for p_c in roots + [low, high]])
    return p_v, p_c


def _likeliest(table: Table, candidates: list[tuple[float, float]]) -> tuple[float, float]:
    """The feasible (p_v, p_c) pair of highest binomial likelihood."""
    def log_likelihood(pair: tuple[float, float]) -> float:
        p_v, p_c = pair
        return (_xlogy(table.variant_successes, p_v) + _xlogy(table.variant_trials - table.variant_successes, 1 - p_v)
                + _xlogy(table.control_successes, p_c)
                + _xlogy(table.control_trials - table.control_successes, 1 - p_c))

    eps = 1e-12
    feasible = [(min(1.0, max(0.0, p_v)), min(1.0, max(0.0, p_c))) for p_v, p_c in candidates
                if -eps <= p_v <= 1 + eps and -eps <= p_c <= 1 + eps]
    return max(feasible, key=log_likelihood)


def _xlogy(x: int, y: float) -> float:
    if x == 0:
        return 0.0
    return x * math.log(y) if y > 0 else -math.inf


def invert(statistic: Callable[[float], float], estimate: float, null: float, critical: float,
           low_end: float, high_end: float) -> tuple[float, float]:
    """The interval {h : statistic(h) <= critical} around `estimate`, searched within [low_end, high_end].

    Bisection towards each end. The null hypothesis decides the interval's relation to it by
    itself: when the test rejects it, it is the outer bracket of its side (so the bound falls
    strictly between it and the estimate); when not, the interval is stretched to hold it.
    Either way the interval excludes the null exactly when statistic(null) > critical.
    """
    rejects_null = statistic(null) > critical
    low = _bound(statistic, estimate, null if rejects_null and null < estimate else low_end, critical)
    high = _bound(statistic, estimate, null if rejects_null and null > estimate else high_end, critical)
    if not rejects_null:
        low, high = min(low, null), max(high, null)
    return low, high


def _bound(statistic: Callable[[float], float], inside: float, outside: float, critical: float) -> float:
    if statistic(outside) <= critical:
        return outside
    for _ in range(_BISECTION_STEPS):
        if abs(outside - inside) <= _TOLERANCE * abs(inside) + _TINY_STEP:
            break
        middle = (inside + outside) / 2
        if statistic(middle) > critical:
            outside = middle
        else:
            inside = middle
    return inside


def ratio_interval(table: Table, critical: float) -> tuple[float, float]:
    """The rate ratio r_v / r_c the corrected score test does not reject at `critical`; 0 and inf where open."""
    estimate = _log_ratio_estimate(table)

    def on_log_scale(log_theta: float) -> float:
        return ratio_statistic(table, math.exp(log_theta))

    low, high = invert(on_log_scale, estimate, 0.0, critical, -_LOG_RATIO_REACH, _LOG_RATIO_REACH)
    return (0.0 if low <= -_LOG_RATIO_REACH else math.exp(low),
            math.inf if high >= _LOG_RATIO_REACH else math.exp(high))


def _log_ratio_estimate(table: Table) -> float:
    if table.control_successes == 0 and table.variant_successes == 0:
        return 0.0
    if table.control_successes == 0:
        return _LOG_RATIO_REACH
    if table.variant_successes == 0:
        return -_LOG_RATIO_REACH
    return math.log(table.variant_rate) - math.log(table.control_rate)


def difference_interval(table: Table, critical: float) -> tuple[float, float]:
    """The rate difference r_v - r_c the corrected score test does not reject at `critical`."""
    estimate = table.variant_rate - table.control_rate
    return invert(lambda delta: difference_statistic(table, delta), estimate, 0.0, critical,
                  -1.0 + 1e-12, 1.0 - 1e-12)
