"""Per-participant values: Welch's t-test and a confidence sequence for the difference of means."""

from __future__ import annotations

import math
from dataclasses import dataclass

from chalicelib.reports.stats.distributions import student_t_critical, student_t_two_sided_p, two_sided_z
from chalicelib.reports.stats.estimates import (
    Comparison,
    Decision,
    Estimate,
    around,
    check_confidence,
    relative_interval,
)
from chalicelib.reports.stats.sequential import (
    SEQUENTIAL_TUNING_PARTICIPANTS,
    sequence_half_width,
    sequential_p_value,
)


@dataclass(frozen=True)
class ValueSample:
    """Per-participant total value of one variant for one goal."""

    participants: int  # n; participants without a value count as 0
    mean: float  # mean of the per-participant totals
    variance: float  # sample variance (n - 1 denominator) of the per-participant totals

    def __post_init__(self) -> None:
        if self.participants < 0:
            raise ValueError(f"participants must be >= 0, got {self.participants}")
        if not self.variance >= 0:
            raise ValueError(f"variance must be >= 0, got {self.variance}")


@dataclass(frozen=True)
class MeanDifference:
    p_value: float | None
    difference: float | None  # mean(variant) - mean(control)
    ci: tuple[float, float] | None
    reason: str | None = None  # why there is no p-value


def compare_values(control: ValueSample, variant: ValueSample, confidence: float,
                   planned_participants: float = SEQUENTIAL_TUNING_PARTICIPANTS) -> Comparison:
    """The fixed-horizon and the sequential decision on the mean value per participant.

    Fixed: Welch's t-test and its interval for the difference (see
    `mean_difference`). Sequential: the asymptotic confidence sequence (see
    `sequential`, tuned to `planned_participants`) of the same difference with
    the unpooled standard error sqrt(var_c / n_c + var_v / n_v), and its
    always-valid p-value, never below Welch's (the interval holds Welch's). The
    relative intervals use log(mean_v / mean_c) with the delta-method standard
    error sqrt(var_v / (n_v mean_v^2) + var_c / (n_c mean_c^2)) (Casella &
    Berger (2002), Statistical Inference, 2nd ed., Theorem 5.5.24). That is a
    second statistic: a relative interval is shown only while it agrees with
    the decision's (excludes 0 exactly when p < 1 - confidence), and never
    unless both means are positive. Without a decision, `reason` says why.
    """
    welch = mean_difference(control, variant, confidence)
    if welch.p_value is None or welch.difference is None or welch.ci is None:
        empty = Decision(None, None, None, reason=welch.reason)
        return Comparison(empty, empty)
    alpha = 1 - confidence
    participants = control.participants + variant.participants
    difference = Estimate(welch.difference,
                          math.sqrt(control.variance / control.participants + variant.variance / variant.participants))
    ratio = _log_mean_ratio(control, variant)
    fixed = Decision(
        p_value=welch.p_value,
        relative_ci=_agreeing(relative_interval(ratio, two_sided_z(confidence) * ratio.standard_error)
                              if ratio else None, welch.p_value, alpha),
        absolute_ci=welch.ci,
    )
    # At small samples the normal limit behind the sequence is narrower than Student's t:
    # the sequential figures never claim more than the fixed-horizon test does.
    sequence = around(difference, sequence_half_width(difference.standard_error, participants, confidence,
                                                      planned_participants))
    sequential_p = max(sequential_p_value(difference, participants, confidence, planned_participants),
                       welch.p_value)
    sequential_ratio = (_hull(relative_interval(ratio, sequence_half_width(ratio.standard_error, participants,
                                                                            confidence, planned_participants)),
                              fixed.relative_ci or relative_interval(ratio, 0.0))
                        if ratio else None)
    sequential = Decision(
        p_value=sequential_p,
        relative_ci=_agreeing(sequential_ratio, sequential_p, alpha),
        absolute_ci=_hull(sequence, welch.ci),
    )
    direction = "better" if welch.difference > 0 else "worse" if welch.difference < 0 else None
    return Comparison(fixed, sequential, direction=direction)


def _agreeing(interval: tuple[float, float] | None, p_value: float, alpha: float) -> tuple[float, float] | None:
    """The interval if it excludes 0 exactly when p < alpha; None when the two statistics disagree."""
    if interval is None:
        return None
    excludes_zero = interval[0] > 0 or interval[1] < 0
    return interval if excludes_zero == (p_value < alpha) else None


def _log_mean_ratio(control: ValueSample, variant: ValueSample) -> Estimate | None:
    if not (control.mean > 0 and variant.mean > 0):
        return None
    try:
        variance = (variant.variance / (variant.participants * variant.mean**2)
                    + control.variance / (control.participants * control.mean**2))
    except (ZeroDivisionError, OverflowError):  # means so near 0 that the ratio has no scale
        return None
    if not (math.isfinite(variance) and variance >= 0):
        return None
    return Estimate(math.log(variant.mean) - math.log(control.mean), math.sqrt(variance))


def mean_difference(
    control: ValueSample, variant: ValueSample, confidence: float
) -> MeanDifference:
    """Welch's t-test of mean(variant) - mean(control) per participant.

    Welch (1947), "The generalization of 'Student's' problem when several
    different population variances are involved", Biometrika 34:28-35:
    t = d / sqrt(v_c/n_c + v_v/n_v) with the Welch-Satterthwaite degrees of
    freedom. Two constant arms (standard error 0) are a definite answer: p = 0
    and the interval the point d when the constants differ, p = 1 and the point
    0 when they are equal. Below two participants in an arm, or with figures
    beyond the range of a float, every field but `reason` is None.
    """
    check_confidence(confidence)
    for arm, sample in (("control", control), ("variant", variant)):
        if sample.participants < 2:
            return _without(f"n={sample.participants} in {arm}: a variance needs at least 2 participants")
    if not all(math.isfinite(x) for x in (control.mean, control.variance, variant.mean, variant.variance)):
        return _without("the values are beyond the range of a float")
    var_of_mean_a = control.variance / control.participants
    var_of_mean_b = variant.variance / variant.participants
    se = math.sqrt(var_of_mean_a + var_of_mean_b)
    difference = variant.mean - control.mean
    if not math.isfinite(se) or not math.isfinite(difference):
        return _without("the values are beyond the range of a float")
    if se == 0:  # every participant of each arm has the same value: nothing is uncertain
        return MeanDifference(p_value=1.0 if difference == 0 else 0.0, difference=difference,
                              ci=(difference, difference))
    df = (var_of_mean_a + var_of_mean_b) * (var_of_mean_a + var_of_mean_b) / (
        var_of_mean_a * var_of_mean_a / (control.participants - 1)
        + var_of_mean_b * var_of_mean_b / (variant.participants - 1)
    )
    p_value = student_t_two_sided_p(difference / se, df)
    half_width = student_t_critical(confidence, df) * se
    return MeanDifference(
        p_value=p_value,
        difference=difference,
        ci=(difference - half_width, difference + half_width),
    )


def _without(reason: str) -> MeanDifference:
    return MeanDifference(p_value=None, difference=None, ci=None, reason=reason)


def _hull(first: tuple[float, float], second: tuple[float, float]) -> tuple[float, float]:
    return min(first[0], second[0]), max(first[1], second[1])
