"""The results (decision) view: rates with intervals, uplift, p-values and Bayesian chances per goal,
value statistics per participant, and p-values adjusted across the experiment.

Pure shaping of decision-count rows; reading them from the warehouse is `experiments.experiment_results`'s
job. Labels and goals are always sorted, so the same data gives the same document.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.ingest.events import PARTICIPATE
from chalicelib.reports import stats
from chalicelib.reports.defaults import CONTROL_NAME, DEFAULT_CORRECTION
from chalicelib.reports.errors import BadParameter, TooManyComparisons
from chalicelib.reports.values import value_moments


@dataclass(frozen=True)
class Counts:
    """Distinct uuids per (event, variant), with the sorted variants and goals seen."""
    by_event_variant: Mapping[tuple[str, str], int]
    variants: list[str]
    goals: list[str]

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> Counts:
        by_event_variant = {(row["event"], row["variant"]): int(row["uuids"]) for row in rows}
        return cls(
            by_event_variant=by_event_variant,
            variants=sorted({variant for _, variant in by_event_variant}),
            goals=sorted({event for event, _ in by_event_variant if event != PARTICIPATE}),
        )

    def count(self, event: str, variant: str) -> int:
        return self.by_event_variant.get((event, variant), 0)

    def participants(self, variant: str) -> int:
        return self.count(PARTICIPATE, variant)


@dataclass(frozen=True)
class DecisionRow:
    """`decision_counts`' answer for one (variant, event): distinct uuids, and over the
    `valued` uuids that carried a value, the sum and sample variance of their per-uuid totals."""
    variant: str
    event: str
    uuids: int
    valued: int
    total: float
    variance: float | None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> DecisionRow:
        variance = row["variance"]
        return cls(row["variant"], row["event"], int(row["uuids"]), int(row["valued"] or 0),
                   float(row["total"] or 0.0), None if variance is None else float(variance))


# (goals, control, planned participants): may replace comparisons' figures, tuned like the view's own.
GoalsHook = Callable[[list[dict[str, Any]], "str | None", float], None]


def cap_name(cap: int | None) -> str | None:
    """How the request's `cap` reads back: `p99`, or None when values are not capped."""
    return None if cap is None else f"p{cap}"


SEQUENTIAL_METHOD = ("rates: an exact anytime-valid test of which arm the converters are in (Lindon & Malek 2022); "
                     "values: asymptotic confidence sequences (Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas 2024); "
                     "valid however often the results are looked at")


# Each comparison costs milliseconds (score intervals are found by root-finding): /track is public, and 200
# variants of 50 goals (20,000 events) took 15 s and answered 8 MB, beyond Lambda's 6 MB response limit.
MAX_COMPARISONS = 1000


def results_view(namespace: str, experiment: str, rows: Sequence[DecisionRow], *, control: str | None,
                 confidence: float, weights: Mapping[str, float] | None,
                 correction: stats.Correction = DEFAULT_CORRECTION,
                 planned_participants: float = stats.SEQUENTIAL_TUNING_PARTICIPANTS,
                 adjust_goals: GoalsHook | None = None) -> dict[str, Any]:
    """`adjust_goals(goals, control, planned_participants)` may replace comparisons' figures before the
    p-values are corrected (CUPED: `cuped_results.CupedAdjustment`)."""
    counts = Counts.from_rows({"event": row.event, "variant": row.variant, "uuids": row.uuids} for row in rows)
    labels = counts.variants
    if (len(labels) - 1) * len(counts.goals) > MAX_COMPARISONS:
        raise TooManyComparisons(experiment, len(labels), len(counts.goals), MAX_COMPARISONS)
    participants = {label: counts.participants(label) for label in labels}
    chosen = choose_control(labels, control, participants)
    plan = ComparisonSettings(confidence, planned_participants, weights)
    goals = [
        _goal_view(goal, labels, chosen, participants, {row.variant: row for row in rows if row.event == goal}, plan)
        for goal in counts.goals
    ]
    if adjust_goals is not None:
        adjust_goals(goals, chosen, planned_participants)
    _adjust_for_multiple_comparisons(goals, correction)
    return {
        "namespace": namespace,
        "experiment": experiment,
        "control": chosen,
        "confidence": confidence,
        "correction": correction,
        "sequential": {"method": SEQUENTIAL_METHOD,
                       "tuned_for_participants": planned_participants},
        "variants": [{"label": label, "participants": participants[label]} for label in labels],
        "srm": _srm(participants, weights),
        "goals": goals,
    }


def choose_control(labels: Sequence[str], requested: str | None,
                   participants: Mapping[str, int] | None = None) -> str | None:
    """The requested variant; else the one named "control"; else the first in sort order that has
    participants (a variant seen only in goals makes a poor baseline)."""
    if requested is not None:
        if requested not in labels:
            raise BadParameter("control", f"no variant named {requested!r} (variants: {', '.join(labels) or 'none'})")
        return requested
    if CONTROL_NAME in labels:
        return CONTROL_NAME
    with_participants = [label for label in labels if participants is None or participants.get(label, 0) > 0]
    candidates = with_participants or list(labels)
    return candidates[0] if candidates else None


def _srm(participants: Mapping[str, int], weights: Mapping[str, float] | None) -> dict[str, Any]:
    """Every variant seen against an equal split, or against `weights`.

    A variant seen only in goal events counts 0 participants: nobody was assigned to it, yet
    its events arrived, the starkest mismatch of all. It is named in `unexpected_variants` and
    makes `mismatch` true. Weights may name a planned variant nobody was assigned to, must
    cover every variant that has participants, and may leave out the unexpected ones.
    """
    unexpected = sorted(label for label, count in participants.items() if count == 0)
    tested = dict(participants)
    if weights is not None:
        missing = sorted(label for label, count in participants.items() if count > 0 and label not in weights)
        if missing:
            raise BadParameter("weights", f"must name every variant with participants; missing {', '.join(missing)}")
        tested = {label: participants.get(label, 0) for label in weights}
    result = stats.srm(tested, weights)
    return {"p_value": _finite(result.p_value), "mismatch": result.mismatch or bool(unexpected),
            "unexpected_variants": unexpected}


@dataclass(frozen=True)
class ComparisonSettings:
    """What every comparison of a results view is asked at: the confidence, and the participants
    (both arms) the sequential figures are tuned for."""
    confidence: float
    planned_participants: float = stats.SEQUENTIAL_TUNING_PARTICIPANTS
    weights: Mapping[str, float] | None = None  # the design's split, where the request states it

    def design_share(self, control: str, variant: str) -> float | None:
        """The variant's share of the pair's participants by design; None where the weights do not say."""
        if self.weights is None or control not in self.weights or variant not in self.weights:
            return None
        total = self.weights[control] + self.weights[variant]
        share = self.weights[variant] / total if total > 0 else None
        return share if share is not None and 0 < share < 1 else None


def _goal_view(goal: str, labels: Sequence[str], control: str | None, participants: Mapping[str, int],
               row_of: Mapping[str, DecisionRow], plan: ComparisonSettings) -> dict[str, Any]:
    arms = {label: Arm(participants[label], row_of[label].uuids if label in row_of else 0) for label in labels}
    # Only arms that are proportions compete; the others get null rather than a flat prior's guess.
    competing = {label: arm.proportion for label, arm in arms.items() if arm.proportion is not None}
    best: dict[str, float | None] = {label: None for label in labels}
    if len(competing) >= 2:
        best.update({label: _finite(p) for label, p in stats.chance_to_be_best(competing).items()})
    return {
        "goal": goal,
        "variants": [_arm_view(label, arms, control, plan) for label in labels],
        "chance_to_be_best": best,
        "value": _value_view(labels, control, participants, row_of, plan),
    }


@dataclass(frozen=True)
class Arm:
    """A variant under a goal, counted as Gimel counts.

    Successes can outnumber trials (a goal tracked with a fresh uuid each time it happens,
    or a date window that cuts participations off); such an arm is not a proportion, and
    the statistics that need one are null.
    """
    trials: int
    successes: int

    @property
    def rate(self) -> float | None:
        return self.successes / self.trials if self.trials else None

    @property
    def proportion(self) -> stats.Proportion | None:
        """None without participants (a variant seen only in goals) or with more successes than trials."""
        if 0 < self.trials and self.successes <= self.trials:
            return stats.Proportion(self.trials, self.successes)
        return None


_NO_COMPARISON = stats.Comparison(stats.Decision(None, None, None), stats.Decision(None, None, None))


def _arm_view(label: str, arms: Mapping[str, Arm], control: str | None, plan: ComparisonSettings) -> dict[str, Any]:
    arm = arms[label]
    confidence = plan.confidence
    proportion = arm.proportion
    view: dict[str, Any] = {
        "label": label,
        "trials": arm.trials,
        "successes": arm.successes,
        "rate": arm.rate,
        "rate_ci": _interval(stats.rate_ci(proportion, confidence)) if proportion else None,
    }
    if control is None or label == control:
        return view
    base = arms[control]
    base_proportion = base.proportion
    pair = (base_proportion, proportion) if proportion is not None and base_proportion is not None else None
    comparison = (stats.compare_rates(*pair, confidence, plan.planned_participants, plan.design_share(control, label))
                  if pair else _NO_COMPARISON)
    view["uplift"] = {
        "absolute": arm.rate - base.rate if arm.rate is not None and base.rate is not None else None,
        "relative": arm.rate / base.rate - 1 if arm.rate is not None and base.rate else None,
        "relative_ci": _interval(comparison.fixed.relative_ci),
        "absolute_ci": _interval(comparison.fixed.absolute_ci),
    }
    view["direction"] = comparison.direction  # the decision statistic's sign: colour by this, not by the uplift
    view["p_value"] = _finite(comparison.fixed.p_value)
    view["p_value_adjusted"] = None  # filled in across the whole experiment
    view["sequential"] = _sequential_view(comparison.sequential)
    view["chance_to_beat_control"] = _finite(stats.chance_to_beat(*pair)) if pair else None
    return view


def _sequential_view(decision: stats.Decision) -> dict[str, Any]:
    return {"p_value": _finite(decision.p_value), "p_value_adjusted": None,
            "relative_ci": _interval(decision.relative_ci), "absolute_ci": _interval(decision.absolute_ci)}


def _value_view(labels: Sequence[str], control: str | None, participants: Mapping[str, int],
                row_of: Mapping[str, DecisionRow], plan: ComparisonSettings) -> dict[str, Any] | None:
    """Per-participant value statistics; None when no goal event carried a value.

    The mean is per participant: participants without a value count as 0.
    """
    if not any(row.valued for row in row_of.values()):
        return None
    empty = DecisionRow("", "", 0, 0, 0.0, None)
    samples = {label: value_sample(participants[label], row_of.get(label, empty)) for label in labels}
    views = []
    for label in labels:
        row = row_of.get(label, empty)
        view: dict[str, Any] = {
            "label": label,
            "count": row.valued,
            "sum": _finite(row.total),
            "mean": _finite(row.total / participants[label]) if participants[label] else None,
        }
        if control is not None and label != control:
            sample, base = samples[label], samples[control]
            comparison = (stats.compare_values(base, sample, plan.confidence, plan.planned_participants)
                          if sample and base else _no_value_comparison(base is None, participants[control]))
            fixed = comparison.fixed
            difference = (_finite(sample.mean - base.mean)
                          if sample and base and fixed.p_value is not None else None)
            view.update(
                p_value=_finite(fixed.p_value),
                p_value_adjusted=None,
                difference=difference,
                ci=_interval(fixed.absolute_ci),
                relative_ci=_interval(fixed.relative_ci),
                direction=comparison.direction,
                reason=fixed.reason,
                sequential=_sequential_view(comparison.sequential),
            )
        views.append(view)
    return {"variants": views}


def _no_value_comparison(control_missing: bool, control_participants: int) -> stats.Comparison:
    """No comparison of values, with the reason: an arm without a per-participant mean."""
    if control_missing:
        reason = ("no participants in control: a mean per participant needs some" if not control_participants
                  else "control's values are not per participant (more valued users than participants, "
                       "or totals beyond the range of a float)")
    else:
        reason = ("the variant has no per-participant mean (no participants, more valued users than "
                  "participants, or totals beyond the range of a float)")
    empty = stats.Decision(None, None, None, reason=reason)
    return stats.Comparison(empty, empty)


def value_sample(participants: int, row: DecisionRow) -> stats.ValueSample | None:
    """Per-participant value moments (participants without a value count as 0); None without
    participants, with more valued uuids than participants (goal uuids that never participated:
    not a per-participant quantity), or with totals beyond the range of a float."""
    if participants == 0 or row.valued > participants:
        return None
    try:
        moments = value_moments(participants, row.valued, row.total, row.variance)
    except ValueError:
        return None
    return stats.ValueSample(participants=moments.participants, mean=moments.mean, variance=moments.variance)


def _adjust_for_multiple_comparisons(goals: Sequence[dict[str, Any]], correction: stats.Correction) -> None:
    """One family: every variant against the control under every goal, and every value comparison.

    The fixed-horizon p-values are adjusted together, and so are the sequential ones.
    """
    comparisons = [arm for goal in goals for arm in goal["variants"] if "p_value" in arm]
    comparisons += [arm for goal in goals if goal["value"] for arm in goal["value"]["variants"] if "p_value" in arm]
    fixed = stats.adjust_p_values([arm["p_value"] for arm in comparisons], correction)
    sequential = stats.adjust_p_values([arm["sequential"]["p_value"] for arm in comparisons], correction)
    for arm, adjusted, adjusted_sequential in zip(comparisons, fixed, sequential, strict=True):
        arm["p_value_adjusted"] = adjusted
        arm["sequential"]["p_value_adjusted"] = adjusted_sequential


def _finite(number: float | None) -> float | None:
    return number if number is not None and math.isfinite(number) else None


def _interval(bounds: tuple[float, float] | None) -> list[float | None] | None:
    return None if bounds is None else [_finite(bounds[0]), _finite(bounds[1])]
