"""Conversion rates (frequentist): Wilson, Newcombe and the log rate ratio, fixed and sequential."""

from __future__ import annotations

import math
from dataclasses import dataclass

from chalicelib.reports.stats.distributions import two_sided_normal_p, two_sided_z
from chalicelib.reports.stats.estimates import (
    Comparison,
    Decision,
    Estimate,
    around,
    check_confidence,
    relative_interval,
)
from chalicelib.reports.stats.sequential import sequence_half_width, sequential_p_value


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


def rate_ci(p: Proportion, confidence: float) -> tuple[float, float] | None:
    """Wilson score interval for the conversion rate; None without trials.

    Wilson (1927), "Probable inference, the law of succession, and
    statistical inference", JASA 22:209-212.
    """
    check_confidence(confidence)
    if p.trials == 0:
        return None
    return _wilson(p, two_sided_z(confidence))


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
    check_confidence(confidence)
    if control.trials == 0 or variant.trials == 0:
        empty = Decision(None, None, None)
        return Comparison(empty, empty)
    ratio = _log_rate_ratio(control, variant)
    difference = _rate_difference(control, variant)
    participants = control.trials + variant.trials
    relative_defined = control.successes > 0

    z = two_sided_z(confidence)
    fixed = Decision(
        p_value=two_sided_normal_p(ratio.z()) if ratio.standard_error > 0 else 1.0,
        relative_ci=relative_interval(ratio, z * ratio.standard_error) if relative_defined else None,
        absolute_ci=newcombe_difference_ci(control, variant, confidence),
    )
    sequential = Decision(
        p_value=sequential_p_value(ratio, participants, confidence),
        relative_ci=relative_interval(ratio, sequence_half_width(ratio.standard_error, participants, confidence))
        if relative_defined else None,
        absolute_ci=_within(
            around(difference, sequence_half_width(difference.standard_error, participants, confidence)),
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
    check_confidence(confidence)
    if control.trials == 0 or variant.trials == 0:
        return None
    z = two_sided_z(confidence)
    (l_c, u_c), (l_v, u_v) = _wilson(control, z), _wilson(variant, z)
    r_c, r_v = control.rate, variant.rate
    difference = r_v - r_c
    low = difference - math.hypot(r_v - l_v, u_c - r_c)
    high = difference + math.hypot(u_v - r_v, r_c - l_c)
    return max(-1.0, low), min(1.0, high)


def _within(bounds: tuple[float, float], low: float, high: float) -> tuple[float, float]:
    """Intersect with the parameter's range (keeps coverage: the truth lies in it)."""
    return max(low, bounds[0]), min(high, bounds[1])
