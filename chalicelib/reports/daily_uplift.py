"""The daily view's uplift: each variant's cumulative relative uplift on the primary goal against control,
with its interval in the chosen mode, as of each day.

Computed from the daily view's own cumulative counts (any source whose daily view has that shape), by
the same `stats.compare_rates` as the results: in sequential mode the interval is the confidence
sequence, valid on every day at once (so a chart of it can be read day by day); in fixed mode it is
the fixed-horizon interval, valid only for a day chosen in advance. Intervals are per comparison
(not adjusted across variants or goals, unlike the results' p-values).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from chalicelib.reports import stats
from chalicelib.reports.decision import DEFAULT_MODE, Mode
from chalicelib.reports.errors import BadParameter
from chalicelib.reports.results import choose_control


def with_uplift(daily: dict[str, Any], *, primary: str | None = None, mode: Mode = DEFAULT_MODE,
                confidence: float, control: str | None = None) -> dict[str, Any]:
    goals: Sequence[str] = daily.get("goals", [])
    days: Sequence[Mapping[str, Any]] = daily.get("days", [])
    last = {variant["label"]: variant for variant in days[-1]["variants"]} if days else {}
    goal = _primary(goals, primary, last)
    chosen = choose_control(daily.get("variants", []), control,
                            {label: variant["participants"] for label, variant in last.items()})
    daily["uplift"] = {"goal": goal, "control": chosen, "mode": mode, "confidence": confidence, "days": [
        {"day": day["day"], "variants": _uplifts(day["variants"], goal, chosen, mode, confidence)}
        for day in days
    ] if goal is not None and chosen is not None else []}
    return daily


def _primary(goals: Sequence[str], requested: str | None, last: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The requested goal, else the one with the most successes by the last day (ties: the first name)."""
    if requested is not None:
        if requested not in goals:
            raise BadParameter("primary", f"no goal named {requested!r} (goals: {', '.join(goals) or 'none'})")
        return requested
    if not goals:
        return None
    return min(goals, key=lambda goal: (-sum(v["successes"].get(goal, 0) for v in last.values()), goal))


def _uplifts(variants: Sequence[Mapping[str, Any]], goal: str, control: str, mode: Mode,
             confidence: float) -> list[dict[str, Any]]:
    arms = {variant["label"]: _proportion(variant, goal) for variant in variants}
    base = arms.get(control)
    return [{"label": label, **_uplift(base, arm, mode, confidence)}
            for label, arm in arms.items() if label != control]


def _proportion(variant: Mapping[str, Any], goal: str) -> stats.Proportion | None:
    """None without participants or with more successes than participants (not a proportion)."""
    trials, successes = int(variant["participants"]), int(variant["successes"].get(goal, 0))
    return stats.Proportion(trials, successes) if 0 < trials and successes <= trials else None


def _uplift(base: stats.Proportion | None, arm: stats.Proportion | None, mode: Mode,
            confidence: float) -> dict[str, Any]:
    if base is None or arm is None or base.successes == 0:
        return {"relative": None, "relative_ci": None}
    comparison = stats.compare_rates(base, arm, confidence)
    interval = (comparison.sequential if mode == "sequential" else comparison.fixed).relative_ci
    bounds = None if interval is None else [bound if math.isfinite(bound) else None for bound in interval]
    return {"relative": arm.rate / base.rate - 1, "relative_ci": bounds}
