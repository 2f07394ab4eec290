"""Planning: how many participants (and days at a given traffic) an experiment needs to detect an effect.

Both modes plan the same normal-approximation statistic, the difference of the variant's and the
control's means (a conversion rate is the mean of 0/1), with the unpooled standard error
    SE(n) = sqrt((var_control + var_variant) / n)        for n participants per variant.
An effect delta is detected with power 1 - beta when the statistic's critical value lies z_beta
standard errors below delta: delta = SE(n) * (critical + z_beta).

Fixed horizon: critical = z_{1 - alpha/2}, which solves in closed form to the textbook formula
    n = (z_{1 - alpha/2} + z_beta)^2 (var_control + var_variant) / delta^2
(Chow, Shao & Wang, "Sample Size Calculations in Clinical Research", 2nd ed. 2008, Section 4.2
(two proportions, test for equality: var = p (1 - p)) and Section 3.2.1 (two means, equal variance
sigma^2: var_control + var_variant = 2 sigma^2); the same as Fleiss, Levin & Paik, "Statistical
Methods for Rates and Proportions", 3rd ed. 2003, eq. 4.14 without the continuity correction).

Sequential, values (and CUPED-adjusted means): the critical value is the boundary of the
asymptotic confidence sequence the results use (`sequential.sequence_boundary`: Waudby-Smith et
al. 2024's normal-mixture boundary, in standard errors)
    b(t) = sqrt( 2 (t rho^2 + 1) / (t rho^2) * log( sqrt(t rho^2 + 1) / alpha ) ),
at t = 2n participants of the compared pair, rho^2 tuned to `tuning_participants`. So n solves
    delta = SE(n) * (b(2n) + z_beta).
SE(n) b(2n) (the half width) and SE(n) both fall as n grows (log(1 + x) / x and (1 + 1/x) / x fall),
so the left minus the right side rises with n: the smallest integer n is found by doubling and
bisection. Tuned to the plan itself (`tuning_participants=None`: the experiment's
`planned_participants` is the answer), t rho^2 is a constant and so is b, so n is the fixed
formula with b in place of z_{1 - alpha/2}; at alpha = 0.05, b = 3.03 against 1.96.

Sequential, rates: the results run the exact anytime-valid test of which arm the converters are
in (`anytime`, Lindon & Malek 2022), so the plan is that test's power, not a normal boundary's.
With n per arm (equal split, pi0 = 1/2) about T = n (p_c + p_v) people convert, and each converter
is in the variant with probability pi1 = p_v / (p_c + p_v). The test rejects at the final look when
the variant's converters x_v reach the smallest count whose e-value E(1) (with the mixture's
concentration tuned as the results tune it) is at least 1 / alpha; x_v is Binomial(T, pi1), taken
as normal with the continuity correction. n is the smallest count whose power is at least the
requested one (doubling and bisection: the power rises with n).

The power is that of the final look at n: the test may stop earlier (it is looked at all the
time), so the real chance to detect by n is at least the requested power (checked by simulation in
tests/test_planning.py).

CUPED (`variance_reduction`): the adjusted means are compared as values are, with the
per-participant variance shrunk by the achieved reduction (Deng et al. 2013: var (1 - rho^2)),
so both modes plan with the normal approximation on the reduced variance.

Several variants: each is compared with the control, and the results adjust p-values across
comparisons (Holm by default); the plan spends alpha / (variants - 1) per comparison (Bonferroni,
which Holm's first step equals), so the plan holds whatever the correction.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

from chalicelib.reports.stats.anytime import concentration, log_e_value
from chalicelib.reports.stats.distributions import two_sided_z
from chalicelib.reports.stats.estimates import check_confidence
from chalicelib.reports.stats.sequential import sequence_boundary

MAX_PARTICIPANTS_PER_VARIANT = 10**15  # beyond this a plan is no plan: the effect is too small to detect


@dataclass(frozen=True)
class Baseline:
    """The control's mean and per-participant variance (a rate p: mean p, variance p (1 - p))."""
    mean: float
    variance: float
    is_rate: bool

    @classmethod
    def of_rate(cls, rate: float) -> Baseline:
        if not 0 < rate < 1:
            raise ValueError(f"a baseline rate must be between 0 and 1 (exclusive), got {rate}")
        return cls(rate, rate * (1 - rate), True)

    @classmethod
    def of_values(cls, mean: float, variance: float) -> Baseline:
        if not (math.isfinite(mean) and mean != 0):
            raise ValueError(f"a baseline mean must be a nonzero number, got {mean}")
        if not (math.isfinite(variance) and variance > 0):
            raise ValueError(f"a baseline variance must be a positive number, got {variance}")
        return cls(mean, variance, False)

    def variant(self, effect: float) -> tuple[float, float]:
        """The variant's mean and variance under a relative effect (values keep their variance)."""
        mean = self.mean * (1 + effect)
        if self.is_rate:
            if not 0 < mean < 1:
                raise ValueError(f"the rate under the effect, {mean:.6g}, must be between 0 and 1")
            return mean, mean * (1 - mean)
        return mean, self.variance


@dataclass(frozen=True)
class PlanRequest:
    baseline: Baseline
    effect: float                       # the smallest relative effect worth detecting, e.g. 0.1 for +10%
    participants_per_day: float | None  # all variants together; None: no days estimate
    confidence: float = 0.95
    power: float = 0.8
    variants: int = 2                   # control included
    tuning_participants: float | None = None  # sequential: None tunes the sequence to the plan itself
    variance_reduction: float = 0.0     # CUPED's achieved share of the variance removed (0: no CUPED)

    def __post_init__(self) -> None:
        check_confidence(self.confidence)
        if not (math.isfinite(self.effect) and self.effect != 0 and self.effect > -1):
            raise ValueError(f"effect must be a nonzero relative change above -1, got {self.effect}")
        if not 0 < self.power < 1:
            raise ValueError(f"power must be between 0 and 1 (exclusive), got {self.power}")
        if self.variants < 2:
            raise ValueError(f"variants must be at least 2 (control and one more), got {self.variants}")
        if self.participants_per_day is not None and not (
                math.isfinite(self.participants_per_day) and self.participants_per_day > 0):
            raise ValueError(f"participants per day must be positive, got {self.participants_per_day}")
        if self.tuning_participants is not None and not self.tuning_participants > 0:
            raise ValueError(f"tuning participants must be positive, got {self.tuning_participants}")
        if not 0 <= self.variance_reduction < 1:
            raise ValueError(f"variance reduction must be in [0, 1), got {self.variance_reduction}")


@dataclass(frozen=True)
class Horizon:
    participants_per_variant: int
    participants: int        # all variants together
    days: float | None       # at the request's participants per day


@dataclass(frozen=True)
class Plan:
    fixed: Horizon
    sequential: Horizon
    alpha_per_comparison: float
    tuning_participants: float  # what the sequential horizon was tuned to (its planned participants)


def plan(request: PlanRequest) -> Plan:
    control_mean, control_variance = request.baseline.mean, request.baseline.variance
    variant_mean, variant_variance = request.baseline.variant(request.effect)
    delta = abs(variant_mean - control_mean)
    variance = (control_variance + variant_variance) * (1 - request.variance_reduction)
    alpha = (1 - request.confidence) / (request.variants - 1)
    z_power = NormalDist().inv_cdf(request.power)
    fixed = fixed_participants(delta, variance, alpha, z_power)
    if request.baseline.is_rate and request.variance_reduction == 0:
        sequential = anytime_participants(control_mean, variant_mean, alpha, request.power, request.confidence,
                                          request.tuning_participants)
    else:
        sequential = sequential_participants(delta, variance, alpha, z_power, request.tuning_participants)
    tuning = request.tuning_participants or 2.0 * sequential
    return Plan(_horizon(fixed, request), _horizon(sequential, request), alpha, tuning)


def fixed_participants(delta: float, variance: float, alpha: float, z_power: float) -> int:
    """Per variant: Chow, Shao & Wang (2008) 4.2 / 3.2.1, n = (z_{1-alpha/2} + z_beta)^2 var / delta^2."""
    z_alpha = two_sided_z(1 - alpha)
    return _capped(math.ceil((z_alpha + z_power) ** 2 * variance / delta**2))


def sequential_participants(delta: float, variance: float, alpha: float, z_power: float,
                            tuning_participants: float | None) -> int:
    """Per variant: the smallest n with SE(n) (b(2n) + z_beta) <= delta (see the module's text)."""
    if tuning_participants is None:
        # Tuned to the plan: t = t*, so b is the same at every n and the equation is the fixed one's.
        boundary = sequence_boundary(1, 1 - alpha, 1.0)
        return _capped(math.ceil((boundary + z_power) ** 2 * variance / delta**2))
    return _smallest(lambda n: math.sqrt(variance / n) * (
        sequence_boundary(2 * n, 1 - alpha, tuning_participants) + z_power) <= delta)


def anytime_participants(control_rate: float, variant_rate: float, alpha: float, power: float, confidence: float,
                         tuning_participants: float | None) -> int:
    """Per variant: the smallest n at which the exact anytime-valid test has `power` (see the module's text)."""
    return _smallest(lambda n: anytime_power(n, control_rate, variant_rate, alpha, confidence,
                                             tuning_participants or 2.0 * n) >= power)


def anytime_power(per_variant: int, control_rate: float, variant_rate: float, alpha: float, confidence: float,
                  tuning_participants: float) -> float:
    """The chance that the anytime-valid test rejects at a final look at `per_variant` participants per arm."""
    converters = round(per_variant * (control_rate + variant_rate))
    if converters == 0:
        return 0.0
    kappa = concentration(tuning_participants, (control_rate + variant_rate) / 2, confidence)
    higher = max(control_rate, variant_rate)  # by symmetry (pi0 = 1/2), count the arm the effect favours
    share = higher / (control_rate + variant_rate)

    def rejects(count: int) -> bool:
        return log_e_value(count, converters - count, 0.5, kappa) >= math.log(1 / alpha)

    if not rejects(converters):
        return 0.0
    low, high = converters // 2, converters  # rejects(high); not at an even split
    while high - low > 1:
        middle = (low + high) // 2
        if rejects(middle):
            high = middle
        else:
            low = middle
    spread = math.sqrt(converters * share * (1 - share))
    return 1 - NormalDist().cdf((high - 0.5 - converters * share) / spread)


def _smallest(enough: Callable[[int], bool]) -> int:
    """The smallest n >= 1 for which `enough` holds (it holds from some n on), by doubling and bisection."""
    high = 1
    while not enough(high):
        if high >= MAX_PARTICIPANTS_PER_VARIANT:
            return MAX_PARTICIPANTS_PER_VARIANT
        high *= 2
    low = high // 2  # enough(low) is false (or low is 0)
    while high - low > 1:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle
    return high


def _capped(participants: int) -> int:
    return max(1, min(participants, MAX_PARTICIPANTS_PER_VARIANT))


def _horizon(per_variant: int, request: PlanRequest) -> Horizon:
    total = per_variant * request.variants
    days = total / request.participants_per_day if request.participants_per_day else None
    return Horizon(per_variant, total, days)
