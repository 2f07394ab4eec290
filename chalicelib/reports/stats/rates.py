"""Conversion rates (frequentist): Wilson, Newcombe, and the score and anytime-valid tests, fixed and sequential."""

from __future__ import annotations

import math
from dataclasses import dataclass

from chalicelib.reports.stats.anytime import concentration, ratio_sequence
from chalicelib.reports.stats.anytime import p_value as anytime_p_value
from chalicelib.reports.stats.distributions import two_sided_z
from chalicelib.reports.stats.estimates import Comparison, Decision, check_confidence
from chalicelib.reports.stats.score import Table, difference_interval, ratio_interval, score_p_value
from chalicelib.reports.stats.sequential import SEQUENTIAL_TUNING_PARTICIPANTS, sequence_boundary


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


def compare_rates(control: Proportion, variant: Proportion, confidence: float,
                  planned_participants: float = SEQUENTIAL_TUNING_PARTICIPANTS,
                  design_share: float | None = None) -> Comparison:
    """The fixed-horizon and the sequential decision for variant against control.

    Fixed horizon (see `score`): the continuity-corrected Miettinen-Nurminen
    score test; its p-value tests equal rates, its relative interval inverts the
    test of the rate ratio and its absolute interval the test of the rate
    difference. Both inversions share the p-value's statistic at "no
    difference", so each interval excludes 0 exactly when p < 1 - confidence;
    at identical rates p = 1. A ratio bound that no count can pin (a variant
    with no successes has no lower bound above -100%, a control with none no
    upper bound) is -1 or inf.

    Sequential (see `anytime`): the exact anytime-valid test of which arm the
    converters are in (Lindon & Malek 2022), tuned to `planned_participants`,
    and its confidence sequence of the rate ratio, with pi0 the variant's share of
    the pair's participants by design (`design_share`, from the experiment's
    weights) where known, else the observed share; each joined with the fixed
    horizon's (p the larger, interval the hull): the sequential answer never
    claims more than a single look would. The absolute interval inverts the
    score test of the difference at the asymptotic confidence sequence's
    boundary (`sequential.sequence_boundary`), never below the fixed one's,
    and holds 0 whenever the sequential p is not significant.
    """
    check_confidence(confidence)
    if control.trials == 0 or variant.trials == 0:
        empty = Decision(None, None, None)
        return Comparison(empty, empty)
    table = Table(control.successes, control.trials, variant.successes, variant.trials)
    alpha = 1 - confidence
    z = two_sided_z(confidence)
    fixed_ratio = ratio_interval(table, z)
    fixed_p, fixed_absolute = score_p_value(table), difference_interval(table, z)
    fixed = Decision(p_value=fixed_p, relative_ci=_uplift(fixed_ratio), absolute_ci=fixed_absolute)
    share, kappa = _mixture(control, variant, confidence, planned_participants, design_share)
    sequential_p = max(fixed_p, anytime_p_value(variant.successes, control.successes, share, kappa))
    sequence = ratio_sequence(variant.successes, control.successes, share, kappa, confidence)
    boundary = max(z, sequence_boundary(table.participants, confidence, planned_participants))
    sequential_absolute = _hull(difference_interval(table, boundary), fixed_absolute)
    if sequential_p >= alpha:
        sequential_absolute = _hull(sequential_absolute, (0.0, 0.0))
    sequential = Decision(
        p_value=sequential_p,
        relative_ci=_uplift(_hull(sequence, fixed_ratio)),
        absolute_ci=sequential_absolute,
    )
    return Comparison(fixed, sequential, direction=_direction(table.direction))


def rate_p_values(control: Proportion, variant: Proportion, confidence: float,
                  planned_participants: float = SEQUENTIAL_TUNING_PARTICIPANTS,
                  design_share: float | None = None) -> tuple[float, float]:
    """(fixed, sequential) p-values of `compare_rates` alone, without the intervals (for exhaustive checks)."""
    if control.trials == 0 or variant.trials == 0:
        raise ValueError("both arms need trials")
    fixed = score_p_value(Table(control.successes, control.trials, variant.successes, variant.trials))
    share, kappa = _mixture(control, variant, confidence, planned_participants, design_share)
    return fixed, max(fixed, anytime_p_value(variant.successes, control.successes, share, kappa))


def _mixture(control: Proportion, variant: Proportion, confidence: float, planned_participants: float,
             design_share: float | None) -> tuple[float, float]:
    """(pi0, kappa): the variant's share of participants and the mixture's tuned concentration.

    The design's share makes the e-value an exact martingale under equal rates (`anytime`); the
    observed share, used where the design is not known, is a mild approximation of it."""
    participants = control.trials + variant.trials
    pooled_rate = (control.successes + variant.successes) / participants
    if design_share is not None and not 0 < design_share < 1:
        raise ValueError(f"a design share must be between 0 and 1 (exclusive), got {design_share}")
    share = design_share if design_share is not None else variant.trials / participants
    return share, concentration(planned_participants, pooled_rate, confidence)


def _direction(sign: int) -> str | None:
    return "better" if sign > 0 else "worse" if sign < 0 else None


def _uplift(ratio: tuple[float, float]) -> tuple[float, float]:
    return ratio[0] - 1, ratio[1] - 1


def _hull(first: tuple[float, float], second: tuple[float, float]) -> tuple[float, float]:
    return min(first[0], second[0]), max(first[1], second[1])


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


