"""The planning route's answer: participants and days an experiment needs, in fixed and in sequential mode.

The statistics are `stats.planning`'s; this module builds its request from the route's parameters
and shapes the plan as JSON.
"""
from __future__ import annotations

import math
from typing import Any

from chalicelib.reports.errors import BadParameter
from chalicelib.reports.stats import Baseline, Horizon, Plan, PlanRequest, plan

METHOD = ("fixed horizon: per variant n = (z_(1-alpha/2) + z_power)^2 (var_control + var_variant) / delta^2 for "
          "the difference of means (Chow, Shao & Wang 2008, 4.2 and 3.2.1); sequential, values: the same with the "
          "confidence sequence's boundary at 2n participants; sequential, rates: the smallest n at which the exact "
          "anytime-valid test the results run (Lindon & Malek 2022) has the power at its final look; alpha split "
          "over variants - 1 comparisons")


def plan_answer(*, baseline_rate: float | None, baseline_mean: float | None, baseline_variance: float | None,
                effect: float, per_day: float | None, confidence: float, power: float, variants: int,
                planned_participants: float | None) -> dict[str, Any]:
    if baseline_rate is not None:
        baseline, shown = Baseline.of_rate(baseline_rate), {"rate": baseline_rate}
    else:
        assert baseline_mean is not None and baseline_variance is not None
        baseline, shown = Baseline.of_values(baseline_mean, baseline_variance), {
            "mean": baseline_mean, "variance": baseline_variance}
    try:
        baseline.variant(effect)
    except ValueError as impossible:
        raise BadParameter("effect", f"{impossible} (baseline_rate {baseline_rate} changed by {effect:+})") from None
    try:
        answer = plan(PlanRequest(baseline, effect, per_day, confidence, power, variants, planned_participants))
    except ArithmeticError:     # the difference's square underflows to 0 or overflows a float
        raise BadParameter("effect", f"{effect} is beyond what a plan can compute from this baseline in "
                                     f"double precision: the change is too small or too large") from None
    days = [horizon.days for horizon in (answer.fixed, answer.sequential) if horizon.days is not None]
    if not all(map(math.isfinite, days)):
        raise BadParameter("per_day", f"at {per_day} participants per day the days needed are beyond a float's range")
    return {"baseline": shown, "effect": effect, "participants_per_day": per_day, "confidence": confidence,
            "power": power, "variants": variants, **plan_json(answer), "method": METHOD}


def plan_json(answer: Plan) -> dict[str, Any]:
    tuning = answer.tuning_participants
    return {"alpha_per_comparison": round(answer.alpha_per_comparison, 12),
            "fixed": horizon_json(answer.fixed),
            "sequential": {**horizon_json(answer.sequential),
                           "tuned_for_participants": int(tuning) if tuning == int(tuning) else tuning}}


def horizon_json(horizon: Horizon) -> dict[str, Any]:
    return {"participants_per_variant": horizon.participants_per_variant, "participants": horizon.participants,
            "days": None if horizon.days is None else round(horizon.days, 2)}
