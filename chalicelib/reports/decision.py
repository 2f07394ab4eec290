"""The verdict: one decision a PM can act on, read from a results view.

Rules, first match wins (`confidence` is the view's, alpha = 1 - confidence):
1. no_data: nobody exposed, no goals, or fewer than two variants with participants.
2. dont_trust: the split is off (the view's `srm.mismatch`), or more than MULTIPLE_EXPOSURE_THRESHOLD
   of the participants saw more than one variant (Segment's `multiple_exposures`).
3. stop: a variant is significantly worse than control on a guardrail (the largest drop is named).
4. ship: a variant is significantly better than control on the primary goal (the largest uplift).
5. stop: a variant is significantly worse on the primary goal (and none is better).
6. keep_running: no variant differs yet, with the participants and days a plan still needs
   (`stats.planning`, from the control's observed rate on the primary goal and today's traffic,
   at `minimum_detectable_effect`, default 10% relative, and PLANNING_POWER; where CUPED adjusted every
   comparison of the primary goal, with its smallest achieved variance reduction, said in the sentence).

"Significantly" reads only the figures of the chosen mode: sequential (the default) uses
`sequential.p_value_adjusted` with `sequential.relative_ci` (or `absolute_ci`), fixed uses
`p_value_adjusted` with `uplift.relative_ci` (or `absolute_ci`): the p-values are those adjusted across
the experiment. A comparison's `direction` ("better"/"worse"), where the view carries one, is its
direction; otherwise the direction is the side of 0 its interval lies on (the sign of the estimate
where no interval is defined).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from chalicelib.reports import stats

Mode = Literal["sequential", "fixed"]
MODES: tuple[Mode, ...] = ("sequential", "fixed")
DEFAULT_MODE: Mode = "sequential"
DEFAULT_MINIMUM_DETECTABLE_EFFECT = 0.10   # a 10% relative change: a common smallest effect worth shipping
MULTIPLE_EXPOSURE_THRESHOLD = 0.01         # above 1% of participants in several variants, counts are unreliable
PLANNING_POWER = 0.8


@dataclass(frozen=True)
class Finding:
    """One variant against control on one goal, in the chosen mode."""
    label: str
    goal: str
    significant: bool
    direction: str | None
    relative: float | None
    relative_ci: Sequence[float | None] | None
    absolute: float | None
    absolute_ci: Sequence[float | None] | None

    @property
    def better(self) -> bool:
        return self.significant and self.direction == "better"

    @property
    def worse(self) -> bool:
        return self.significant and self.direction == "worse"

    @property
    def size(self) -> float:
        return abs(self.relative if self.relative is not None else (self.absolute or 0.0))


def finding(goal: str, arm: Mapping[str, Any], mode: Mode, alpha: float) -> Finding:
    uplift = arm.get("uplift") or {}
    figures = (arm.get("sequential") or {}) if mode == "sequential" else {**uplift, **arm}
    p_value = figures.get("p_value_adjusted")
    relative_ci, absolute_ci = figures.get("relative_ci"), figures.get("absolute_ci")
    relative, absolute = uplift.get("relative"), uplift.get("absolute")
    direction = figures.get("direction") or arm.get("direction") or _direction(relative_ci, absolute_ci,
                                                                              relative, absolute)
    return Finding(arm["label"], goal, p_value is not None and p_value < alpha, direction, relative, relative_ci,
                   absolute, absolute_ci)


def _direction(relative_ci: Sequence[float | None] | None, absolute_ci: Sequence[float | None] | None,
               relative: float | None, absolute: float | None) -> str | None:
    interval = _bounds(relative_ci) or _bounds(absolute_ci)
    if interval is not None:
        low, high = interval
        if low > 0:
            return "better"
        if high < 0:
            return "worse"
    estimate = relative if relative is not None else absolute
    if not estimate:
        return None
    return "better" if estimate > 0 else "worse"


def decide(view: Mapping[str, Any], *, primary: str | None, guardrails: Sequence[str] = (),
           mode: Mode = DEFAULT_MODE, minimum_detectable_effect: float = DEFAULT_MINIMUM_DETECTABLE_EFFECT,
           participants_per_day: float | None = None) -> dict[str, Any]:
    confidence = float(view["confidence"])
    control = view.get("control")
    participants = {variant["label"]: int(variant["participants"]) for variant in view.get("variants", [])}
    total = sum(participants.values())
    judge = _Judge(view, control, confidence, mode, total, participants_per_day)
    if total == 0:
        return judge.verdict("no_data", None, None, "No data yet: nobody has been exposed to this experiment.",
                             [("no_participants", "no participants in any variant")])
    if primary is None:
        return judge.verdict("no_data", None, None, f"No goals yet: {total:,} participants, but no goal events "
                             "to judge by.", [("no_goals", "no goal events from the participants")])
    if sum(1 for count in participants.values() if count > 0) < 2:
        return judge.verdict("no_data", None, primary, "Nothing to compare yet: only one variant has "
                             "participants.", [("no_comparison", "fewer than two variants have participants")])
    distrust = _distrust(view, total)
    if distrust:
        return judge.verdict("dont_trust", None, primary, "Don't trust these numbers yet: " + distrust[0][1] + ".",
                             distrust)
    goals = {goal["goal"]: goal for goal in view.get("goals", [])}
    findings = {name: judge.findings(goals[name]) for name in [primary, *guardrails]}
    harmed = [item for name in guardrails for item in findings[name] if item.worse]
    if harmed:
        worst = max(harmed, key=lambda item: item.size)
        reasons = [("guardrail", f"{item.label} lowers {item.goal} by {judge.change(item)}") for item in harmed]
        return judge.verdict("stop", worst.label, worst.goal,
                             f"Stop {worst.label}: it lowers {worst.goal} (a guardrail) by {judge.change(worst)}.",
                             reasons)
    winners = [item for item in findings[primary] if item.better]
    if winners:
        best = max(winners, key=lambda item: item.size)
        reasons = [("significant", f"{item.label}: {judge.change(item)} more {primary} than {control}, "
                    f"{judge.interval(item)}") for item in winners]
        return judge.verdict("ship", best.label, primary,
                             f"Ship {best.label}: {judge.change(best)} more {primary} than {control} "
                             f"({judge.interval(best)}), checked {judge.checked}.", reasons)
    losers = [item for item in findings[primary] if item.worse]
    if losers:
        worst = max(losers, key=lambda item: item.size)
        reasons = [("worse", f"{item.label} lowers {primary} by {judge.change(item)}, {judge.interval(item)}")
                   for item in losers]
        return judge.verdict("stop", worst.label, primary,
                             f"Stop {worst.label}: it lowers {primary} (the primary goal) by {judge.change(worst)} "
                             f"({judge.interval(worst)}), checked {judge.checked}.", reasons)
    return judge.keep_running(goals[primary], minimum_detectable_effect)


class _Judge:
    """The figures one decision shares: the mode, the level, the traffic; and the JSON it answers."""

    def __init__(self, view: Mapping[str, Any], control: str | None, confidence: float, mode: Mode, total: int,
                 participants_per_day: float | None) -> None:
        self.view, self.control, self.confidence, self.mode = view, control, confidence, mode
        self.alpha = 1 - confidence
        self.total = total
        self.participants_per_day = participants_per_day
        self.checked = "sequentially" if mode == "sequential" else "at a fixed horizon"
        self.remaining: dict[str, Any] | None = None

    def findings(self, goal: Mapping[str, Any]) -> list[Finding]:
        return [finding(goal["goal"], arm, self.mode, self.alpha) for arm in goal["variants"]
                if arm["label"] != self.control and "uplift" in arm]

    def change(self, item: Finding) -> str:
        if item.relative is not None:
            return f"{abs(item.relative) * 100:.1f}%"
        return f"{abs(item.absolute or 0.0) * 100:.1f} percentage points"

    def interval(self, item: Finding) -> str:
        level = f"{self.confidence * 100:g}% interval"
        relative, absolute = _bounds(item.relative_ci), _bounds(item.absolute_ci)
        if relative is not None:
            return f"{level} {relative[0] * 100:+.1f}% to {relative[1] * 100:+.1f}%"
        if absolute is not None:
            return f"{level} {absolute[0] * 100:+.1f} to {absolute[1] * 100:+.1f} points"
        return f"{level} not defined"

    def keep_running(self, goal: Mapping[str, Any], effect: float) -> dict[str, Any]:
        name = goal["goal"]
        needed = self.needed(goal, effect)
        effect_text = f"{effect * 100:g}%"
        opening = f"Keep running: no variant differs from {self.control} on {name} yet"
        reasons = [("not_significant", f"no variant's {name} differs from {self.control} "
                                       f"at {self.confidence * 100:g}% ({self.checked})")]
        self.remaining = {"participants": None, "days": None, "participants_per_day": self.participants_per_day,
                          "minimum_detectable_effect": effect}
        if needed is None:
            reasons.append(("no_baseline", f"{self.control}'s {name} rate is 0 or 1: nothing to plan from"))
            return self.verdict("keep_running", None, name, f"{opening}; {self.control} has too few {name} to "
                                f"estimate how long a {effect_text} change takes to show.", reasons)
        remaining = max(0, needed - self.total)
        days = remaining / self.participants_per_day if self.participants_per_day else None
        self.remaining.update(participants=remaining, days=None if days is None else round(days, 2))
        if remaining == 0:
            reasons.append(("enough_participants", f"{needed:,} participants were planned to detect a "
                                                   f"{effect_text} change"))
            return self.verdict("keep_running", None, name, f"{opening}, though there are enough participants to "
                                f"detect a {effect_text} change: any difference is likely smaller.", reasons)
        when = "" if days is None else f" ({_days_text(days)} at today's traffic)"
        reduction = cuped_reduction(goal)
        counting = "" if reduction is None else f", counting CUPED's {reduction:.0%} variance reduction"
        reasons.append(("remaining", f"{needed:,} participants in all to detect a {effect_text} change "
                                     f"with {PLANNING_POWER:.0%} power{counting}"))
        return self.verdict("keep_running", None, name, f"{opening}; about {_about(remaining)} more participants"
                            f"{when} to detect a {effect_text} change{counting}.", reasons)

    def needed(self, goal: Mapping[str, Any], effect: float) -> int | None:
        """All participants the plan needs, from control's observed rate; None when it cannot plan."""
        arm = next((arm for arm in goal["variants"] if arm["label"] == self.control), None)
        rate = arm.get("rate") if arm else None
        variants = sum(1 for variant in self.view.get("variants", []) if variant["participants"] > 0)
        if rate is None or not 0 < rate < 1 or not 0 < rate * (1 + effect) < 1:
            return None
        tuning = ((self.view.get("sequential") or {}).get("tuned_for_participants")
                  or stats.SEQUENTIAL_TUNING_PARTICIPANTS)
        planned = stats.plan(stats.PlanRequest(stats.Baseline.of_rate(rate), effect, None, self.confidence,
                                               PLANNING_POWER, max(2, variants), tuning_participants=tuning,
                                               variance_reduction=cuped_reduction(goal) or 0.0))
        return (planned.sequential if self.mode == "sequential" else planned.fixed).participants

    def verdict(self, verdict: str, variant: str | None, goal: str | None, sentence: str,
                reasons: Sequence[tuple[str, str]]) -> dict[str, Any]:
        return {"verdict": verdict, "variant": variant, "goal": goal, "sentence": sentence,
                "reasons": [{"code": code, "text": text} for code, text in reasons], "remaining": self.remaining}


def cuped_reduction(goal: Mapping[str, Any]) -> float | None:
    """The smallest variance reduction CUPED achieved on the goal's rate comparisons (the plan must hold for
    each), None where CUPED did not apply to every one (the others run the exact test)."""
    compared = [arm for arm in goal.get("variants", []) if "uplift" in arm]
    reductions = [(arm.get("cuped") or {}).get("variance_reduction") if (arm.get("cuped") or {}).get("applied")
                  else None for arm in compared]
    if not reductions or any(reduction is None for reduction in reductions):
        return None
    smallest = min(float(reduction) for reduction in reductions if reduction is not None)
    return smallest if 0 < smallest < 1 else None


def _bounds(interval: Sequence[float | None] | None) -> tuple[float, float] | None:
    """Both ends of an interval, or None where it (or an end of it) is undefined."""
    if not interval or len(interval) != 2:
        return None
    low, high = interval
    return None if low is None or high is None else (low, high)


def _distrust(view: Mapping[str, Any], total: int) -> list[tuple[str, str]]:
    reasons = []
    srm = view.get("srm") or {}
    if srm.get("mismatch"):
        unexpected = srm.get("unexpected_variants") or []
        if srm.get("p_value") is not None and not unexpected:
            detail = f"sample ratio mismatch, {_p_text(srm['p_value'])}"
        else:
            detail = f"goal events from {', '.join(unexpected)}, which has no participants"
        reasons.append(("srm", f"the split between variants is off ({detail})"))
    multiple = int(view.get("multiple_exposures") or 0)
    if total and multiple / total > MULTIPLE_EXPOSURE_THRESHOLD:
        reasons.append(("multiple_exposures", f"{multiple / total:.1%} of participants saw more than one variant "
                                              f"(above {MULTIPLE_EXPOSURE_THRESHOLD:.0%})"))
    return reasons


def _p_text(p: float) -> str:
    return "p < 0.0001" if p < 0.0001 else f"p = {p:.2g}"


def _about(count: int) -> str:
    """Two significant figures: a plan is an estimate."""
    if count < 100:
        return f"{count:,}"
    digits = int(math.floor(math.log10(count))) - 1
    return f"{round(count, -digits):,}"


def _days_text(days: float) -> str:
    if days < 1:
        return "less than a day"
    whole = round(days)
    return f"≈ {whole:,} day{'s' if whole != 1 else ''}"
