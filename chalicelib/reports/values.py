"""Value per participant: the mean and variance of per-user totals over every participant.

The warehouse answers, per variant and goal, for the k users who carried a value: how many
they are, the sum of their totals and the sample variance of their totals. The n - k
participants who carried none spent 0. This module folds those zeros in without ever
forming a sum of squares, so totals like 1e9 + noise keep their spread.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ValueMoments:
    """Per-participant totals of one variant for one goal.

    `variance` is the sample variance (divisor n - 1); 0.0 below two participants, where
    no spread can be measured (the statistics need n >= 2 anyway).
    """
    participants: int
    mean: float
    variance: float


def value_moments(participants: int, valued: int, total: float, valued_variance: float | None) -> ValueMoments:
    """The moments over all `participants` from the `valued` users' total and variance.

    Two groups are combined with the two-subsample update of Chan, Golub & LeVeque,
    "Updating formulae and a pairwise algorithm for computing sample variances", Stanford
    STAN-CS-79-773 (1979), eq. 2.1, the step of their pairwise algorithm (restated in
    "Algorithms for computing the sample variance: analysis and recommendations", The
    American Statistician 37(3), 1983, eq. 1.5), written with means instead of sums:

        M2 = M2_a + M2_b + (k_a k_b / n) (mean_b - mean_a)^2

    with group a the k valued users (mean total / k, M2_a = (k - 1) * valued_variance) and
    group b the n - k zeros (mean 0, M2_b = 0). Every term is non-negative: nothing cancels.
    """
    if participants < 0 or not 0 <= valued <= participants:
        raise ValueError(f"need 0 <= valued ({valued}) <= participants ({participants})")
    if participants == 0:
        raise ValueError("no participants: a mean per participant does not exist")
    if valued == 0:
        return ValueMoments(participants, 0.0, 0.0)
    valued_mean = total / valued
    valued_m2 = (valued - 1) * valued_variance if valued > 1 and valued_variance is not None else 0.0
    zeros = participants - valued
    m2 = max(valued_m2, 0.0) + valued * zeros / participants * valued_mean * valued_mean
    mean = total / participants
    variance = m2 / (participants - 1) if participants > 1 else 0.0
    if not (math.isfinite(mean) and math.isfinite(variance)):
        raise ValueError("the totals are beyond the range of a float")
    return ValueMoments(participants, mean, variance)
