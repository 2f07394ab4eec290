"""An asymptotically normal estimate, the intervals built around it, and the decision they make."""

from __future__ import annotations

import math
from dataclasses import dataclass


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
    reason: str | None = None  # why p_value is None, in words a reader can act on


@dataclass(frozen=True)
class Comparison:
    fixed: Decision  # valid when looked at once, at a sample size fixed in advance
    sequential: Decision  # valid however often it is looked at
    # The sign of the decision statistic (both modes share it): "better" when it
    # says the variant is higher, "worse" when lower, None when it has no sign.
    direction: str | None = None


@dataclass(frozen=True)
class Estimate:
    """An asymptotically normal estimate and its standard error."""

    value: float
    standard_error: float

    def z(self) -> float:
        return self.value / self.standard_error


def check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")


def relative_interval(log_ratio: Estimate, half_width: float) -> tuple[float, float]:
    # expm1 keeps the sign of its argument exactly: the interval excludes 0
    # exactly when the log-scale interval does.
    return _expm1(log_ratio.value - half_width), _expm1(log_ratio.value + half_width)


def _expm1(x: float) -> float:
    """exp(x) - 1, infinite rather than an error past float range (an unbounded upper bound)."""
    return math.expm1(x) if x < 709.0 else math.inf


def around(estimate: Estimate, half_width: float) -> tuple[float, float]:
    return estimate.value - half_width, estimate.value + half_width
