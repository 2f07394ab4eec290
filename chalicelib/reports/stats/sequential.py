"""Sequential (always-valid) inference: confidence sequences and their p-values."""

from __future__ import annotations

import math

from chalicelib.reports.stats.estimates import Estimate

# The asymptotic confidence sequences are tightest at this many participants
# (both arms together) unless the request names its plan (`planned_participants`);
# GrowthBook's default. Wider at smaller and larger samples, valid at every one.
SEQUENTIAL_TUNING_PARTICIPANTS = 5_000

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


def sequence_boundary(participants: int, confidence: float,
                      tuning_participants: float = SEQUENTIAL_TUNING_PARTICIPANTS) -> float:
    """The half width in standard errors: the sequential counterpart of the normal quantile."""
    alpha = 1 - confidence
    t_rho2 = participants * sequential_rho_squared(confidence, tuning_participants)
    return math.sqrt(2 * (t_rho2 + 1) / t_rho2 * math.log(math.sqrt(t_rho2 + 1) / alpha))


def sequence_half_width(standard_error: float, participants: int, confidence: float,
                        tuning_participants: float = SEQUENTIAL_TUNING_PARTICIPANTS) -> float:
    return standard_error * sequence_boundary(participants, confidence, tuning_participants)


def sequential_p_value(estimate: Estimate, participants: int, confidence: float,
                       tuning_participants: float = SEQUENTIAL_TUNING_PARTICIPANTS) -> float:
    """The always-valid p-value; 0 for a nonzero estimate known exactly (standard error 0), 1 for a zero one."""
    if estimate.standard_error == 0:
        return 1.0 if estimate.value == 0 else 0.0
    t_rho2 = participants * sequential_rho_squared(confidence, tuning_participants)
    z = estimate.z()
    log_p = 0.5 * math.log1p(t_rho2) - z * z * t_rho2 / (2 * (t_rho2 + 1))
    return math.exp(min(0.0, log_p))
