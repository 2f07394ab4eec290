"""CUPED: variance reduction with each participant's own pre-experiment value of the metric.

Deng, Xu, Kohavi & Walker (2013), "Improving the sensitivity of online controlled experiments
by utilizing pre-experiment data", WSDM, Section 3.2: for a metric Y and a covariate X
unaffected by the treatment,

    Y_cv = mean(Y) - theta (mean(X) - E X),   theta = cov(Y, X) / var(X)       (their eq. 3-4)

is unbiased and var(Y_cv) = var(mean(Y)) (1 - rho^2), rho = corr(Y, X). Between two arms
with one theta (Section 3.3) the E X cancels out of the difference:

    Delta_cv = (mean(Y_v) - mean(Y_c)) - theta (mean(X_v) - mean(X_c)).

Here X is the same metric for the same person in the days before their first exposure (0
for people without history), so it cannot be moved by the treatment. theta is estimated once
per metric from every arm's participants pooled. Each arm's adjusted per-participant sample,
Y - theta (X - mean X over all arms), has mean mean(Y) - theta (mean(X) - pooled mean X) and
sample variance var(Y) + theta^2 var(X) - 2 theta cov(Y, X); those feed the same comparison as
unadjusted values (`values.compare_values`: Welch / z and the asymptotic confidence sequence),
as GrowthBook and Statsig do for CUPED-adjusted rates and means. The uncertainty of theta is
ignored (O(1/n), as in the paper).

Rates (0/1 per person) are compared exactly without CUPED (`rates.compare_rates`: the score test
and the exact anytime-valid test); the adjusted comparison is a normal approximation, so it
replaces them only where that approximation holds (`rate_rule`): the success-failure condition,
at least MIN_SUCCESSES_AND_FAILURES successes and as many non-successes in each arm (Diez,
Cetinkaya-Rundel & Barr, "OpenIntro Statistics", 4th ed. 2019, Section 6.2.1, conditions for
the sampling distribution of a proportion to be nearly normal; Brown, Cai & DasGupta (2001),
"Interval estimation for a binomial proportion", Statistical Science 16(2), on how badly the
Wald approximation fails below it), rates that differ (identical rates are never significant:
the exact test's p = 1 stands, however the arms' histories differ) and, for rates and values,
no arm whose adjusted values are all alike (zero variance: the normal approximation would make
any difference certain).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from chalicelib.reports.stats.estimates import Comparison
from chalicelib.reports.stats.sequential import SEQUENTIAL_TUNING_PARTICIPANTS
from chalicelib.reports.stats.values import ValueSample, compare_values


@dataclass(frozen=True)
class Moments:
    """One arm's per-participant (Y, X): means, and the sums of squared / crossed deviations
    from those means (co-moments: sample variance = m2 / (n - 1))."""
    participants: int
    mean_y: float
    mean_x: float
    m2_y: float
    m2_x: float
    c_xy: float

    def __post_init__(self) -> None:
        if self.participants < 0:
            raise ValueError(f"participants must be >= 0, got {self.participants}")


EMPTY = Moments(0, 0.0, 0.0, 0.0, 0.0, 0.0)


def combined(first: Moments, second: Moments) -> Moments:
    """The moments of two groups together.

    Chan, Golub & LeVeque (1979), "Updating formulae and a pairwise algorithm for computing
    sample variances", STAN-CS-79-773, eq. 2.1, and its bivariate form for the co-moment:
        C = C_a + C_b + (n_a n_b / n) (mean_ya - mean_yb) (mean_xa - mean_xb).
    Every term is built from deviations: nothing large cancels.
    """
    n = first.participants + second.participants
    if first.participants == 0:
        return second
    if second.participants == 0:
        return first
    weight = first.participants * second.participants / n
    dy, dx = second.mean_y - first.mean_y, second.mean_x - first.mean_x
    return Moments(
        participants=n,
        mean_y=first.mean_y + dy * second.participants / n,
        mean_x=first.mean_x + dx * second.participants / n,
        m2_y=first.m2_y + second.m2_y + weight * dy * dy,
        m2_x=first.m2_x + second.m2_x + weight * dx * dx,
        c_xy=first.c_xy + second.c_xy + weight * dx * dy,
    )


def with_zeros(participants: int, active: Moments) -> Moments:
    """All `participants` of an arm from the `active` ones (any pre- or post-period activity):
    the rest have Y = 0 and X = 0, a group of zero spread."""
    if not 0 <= active.participants <= participants:
        raise ValueError(f"need 0 <= active ({active.participants}) <= participants ({participants})")
    return combined(active, Moments(participants - active.participants, 0.0, 0.0, 0.0, 0.0, 0.0))


def pooled_theta(arms: Sequence[Moments]) -> float | None:
    """theta = cov(Y, X) / var(X) over every arm's participants together (Deng et al. eq. 4);
    None when X does not vary (nobody, or everybody alike, has history)."""
    pooled = EMPTY
    for arm in arms:
        pooled = combined(pooled, arm)
    if not (pooled.m2_x > 0 and math.isfinite(pooled.m2_x) and math.isfinite(pooled.c_xy)):
        return None
    return pooled.c_xy / pooled.m2_x


def pooled_mean_x(arms: Sequence[Moments]) -> float:
    pooled = EMPTY
    for arm in arms:
        pooled = combined(pooled, arm)
    return pooled.mean_x


def adjusted_sample(arm: Moments, theta: float, mean_x: float) -> ValueSample:
    """The arm's per-participant Y - theta (X - mean_x): its mean and sample variance."""
    n = arm.participants
    m2 = arm.m2_y + theta * theta * arm.m2_x - 2 * theta * arm.c_xy
    return ValueSample(participants=n, mean=arm.mean_y - theta * (arm.mean_x - mean_x),
                       variance=max(m2, 0.0) / (n - 1) if n > 1 else 0.0)


def unadjusted_sample(arm: Moments) -> ValueSample:
    n = arm.participants
    return ValueSample(participants=n, mean=arm.mean_y, variance=arm.m2_y / (n - 1) if n > 1 else 0.0)


MIN_SUCCESSES_AND_FAILURES = 10  # the success-failure condition (OpenIntro Statistics 6.2.1)


def rate_rule(control_trials: int, control_successes: int, variant_trials: int, variant_successes: int) -> str | None:
    """Why CUPED may not replace the exact comparison of two rates; None when it may (see the module)."""
    for arm, trials, successes in (("control", control_trials, control_successes),
                                   ("the variant", variant_trials, variant_successes)):
        if min(successes, trials - successes) < MIN_SUCCESSES_AND_FAILURES:
            return (f"{arm} has {successes} successes and {trials - successes} non-successes: the adjusted "
                    f"comparison is a normal approximation, which needs at least {MIN_SUCCESSES_AND_FAILURES} "
                    "of each per arm, so the exact test stands")
    if control_successes * variant_trials == variant_successes * control_trials:
        return "the rates are identical: never significant, so the exact test (p = 1) stands"
    return None


def variance_rule(control: ValueSample, variant: ValueSample) -> str | None:
    """Why the adjusted comparison would claim certainty it does not have; None when it would not."""
    for arm, sample in (("control", control), ("the variant", variant)):
        if not sample.variance > 0:
            return (f"{arm}'s adjusted values do not vary: a normal approximation with zero variance would make "
                    "any difference certain, so the unadjusted test stands")
    return None


@dataclass(frozen=True)
class CupedComparison:
    comparison: Comparison     # on the adjusted means, both modes
    control: ValueSample       # the adjusted samples compared
    variant: ValueSample
    variance_reduction: float | None  # 1 - var(adjusted difference) / var(unadjusted difference)


def compare_adjusted(control: Moments, variant: Moments, theta: float, mean_x: float, confidence: float,
                     planned_participants: float = SEQUENTIAL_TUNING_PARTICIPANTS) -> CupedComparison:
    """Variant against control on CUPED-adjusted means, by the comparison unadjusted values get
    (the sequential figures tuned to `planned_participants`, as the view's own)."""
    adjusted_control = adjusted_sample(control, theta, mean_x)
    adjusted_variant = adjusted_sample(variant, theta, mean_x)
    return CupedComparison(
        comparison=compare_values(adjusted_control, adjusted_variant, confidence, planned_participants),
        control=adjusted_control,
        variant=adjusted_variant,
        variance_reduction=variance_reduction(control, variant, adjusted_control, adjusted_variant),
    )


def variance_reduction(control: Moments, variant: Moments, adjusted_control: ValueSample,
                       adjusted_variant: ValueSample) -> float | None:
    """The share of the difference's variance CUPED removed (rho^2 in the paper's notation, per arm pair)."""
    if control.participants < 2 or variant.participants < 2:
        return None
    before = unadjusted_sample(control).variance / control.participants + \
        unadjusted_sample(variant).variance / variant.participants
    after = adjusted_control.variance / control.participants + adjusted_variant.variance / variant.participants
    return 1 - after / before if before > 0 else None
