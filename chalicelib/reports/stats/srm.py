"""Sample ratio mismatch: a chi-square goodness-of-fit test of the participant split."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.reports.stats.distributions import chi_square_survival

SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class SrmResult:
    p_value: float | None
    mismatch: bool  # p_value < SRM_THRESHOLD


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
    p_value = chi_square_survival(statistic, len(participants) - 1)
    return SrmResult(p_value=p_value, mismatch=p_value < SRM_THRESHOLD)
