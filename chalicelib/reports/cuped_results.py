"""CUPED in the results view: each goal's comparisons made on CUPED-adjusted means.

`CupedAdjustment` is the results view's `adjust_goals` hook: given the shaped goals and the
control, it replaces each comparison's decision figures (p-value, intervals, the sequential
figures, the uplift) with those of the adjusted means (`stats.cuped`), in both modes, before the
p-values are corrected across the experiment, with the sequential figures tuned to the view's
`planned_participants`. Each comparison then carries a `cuped` object: `applied`, the adjusted
means and the achieved `variance_reduction`, or the `reason` it kept its own figures: a rate
comparison keeps its exact test where the normal approximation behind CUPED does not hold, or the
rates are identical, and no comparison is adjusted where an arm's adjusted values do not vary
(`stats.cuped.rate_rule`, `variance_rule`). A goal whose participants have no history (nobody did
it in the `pre_days` before exposure) keeps its unadjusted figures and says why.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.ingest.events import PARTICIPATE
from chalicelib.reports import stats
from chalicelib.reports.cuped_queries import DEFAULT_PRE_DAYS
from chalicelib.reports.stats import cuped
from chalicelib.reports.stats.cuped import Moments

METHOD = ("CUPED (Deng, Xu, Kohavi & Walker 2013): each participant's same metric in the pre_days before "
          "first exposure is the covariate; theta pooled across variants; adjusted means compared by "
          "difference of means, fixed and sequential")


@dataclass(frozen=True)
class CupedSettings:
    """`cuped=on|off` and `pre_days=` of the results route."""
    enabled: bool = True
    pre_days: int = DEFAULT_PRE_DAYS
    by_default: bool = False       # `cuped=` was not asked: the deployment's DALET_CUPED_DEFAULT chose

    @property
    def off_reason(self) -> str:
        if self.by_default:
            return ("off by default on this deployment (DALET_CUPED_DEFAULT=off: its history read is billed by "
                    "the warehouse); cuped=on adjusts")
        return "turned off (cuped=off)"


DEFAULT_SETTINGS = CupedSettings()


def off(settings: CupedSettings, reason: str) -> dict[str, Any]:
    """The response's `cuped` when no comparison was adjusted."""
    return {"applied": False, "reason": reason, "pre_days": settings.pre_days, "method": METHOD}


def summary(adjustment: CupedAdjustment | None, settings: CupedSettings) -> dict[str, Any]:
    """The response's top-level `cuped`."""
    if adjustment is not None:
        return adjustment.summary()
    return off(settings, settings.off_reason if not settings.enabled else "no goals to adjust")


def arm_moments(rows: Sequence[Mapping[str, Any]], metric: str) -> dict[str, dict[str, Moments]]:
    """{goal: {variant: moments over all its participants}} from `segment_cuped_moments` rows."""
    participants = {row["variant"]: int(row["active"]) for row in rows if row["event"] == PARTICIPATE}
    by_goal: dict[str, dict[str, Moments]] = {}
    for row in rows:
        if row["event"] == PARTICIPATE or row.get(f"sum_y_{metric}") is None:
            continue
        active = int(row["active"])
        moments = Moments(active, float(row[f"sum_y_{metric}"]) / active, float(row[f"sum_x_{metric}"]) / active,
                          float(row[f"m2_y_{metric}"] or 0.0), float(row[f"m2_x_{metric}"] or 0.0),
                          float(row[f"c_xy_{metric}"] or 0.0))
        by_goal.setdefault(row["event"], {})[row["variant"]] = cuped.with_zeros(participants.get(row["variant"], 0),
                                                                               moments)
    return {goal: {label: arms.get(label, cuped.with_zeros(n, cuped.EMPTY)) for label, n in participants.items()}
            for goal, arms in by_goal.items()}


@dataclass
class CupedAdjustment:
    """The `adjust_goals` hook of `results.results_view` for one experiment's CUPED rows."""
    rows: Sequence[Mapping[str, Any]]
    confidence: float
    settings: CupedSettings = field(default_factory=CupedSettings)
    adjusted_goals: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    unmet: list[str] = field(default_factory=list)
    planned_participants: float = stats.SEQUENTIAL_TUNING_PARTICIPANTS  # the view's, set on each call

    def __call__(self, goals: list[dict[str, Any]], control: str | None,
                 planned_participants: float = stats.SEQUENTIAL_TUNING_PARTICIPANTS) -> None:
        self.planned_participants = planned_participants
        rates, values = arm_moments(self.rows, "rate"), arm_moments(self.rows, "value")
        for goal in goals:
            name = goal["goal"]
            differing = _differing_participants(goal["variants"], rates.get(name, {}))
            if differing:
                goal["cuped"] = {"applied": False, "theta": None, "reason": differing}
                self.mismatches.append(differing)
                if goal.get("value"):
                    goal["value"]["cuped"] = dict(goal["cuped"])
                continue
            goal["cuped"] = self._adjust(goal["variants"], rates.get(name, {}), control, name, "rate")
            if goal.get("value"):
                goal["value"]["cuped"] = self._adjust(goal["value"]["variants"], values.get(name, {}), control,
                                                      name, "value")
            if goal["cuped"]["applied"]:
                self.adjusted_goals.append(name)
            elif goal["cuped"]["theta"] is not None:     # history there, but no comparison met CUPED's conditions
                self.unmet.append(goal["cuped"]["reason"])

    def summary(self) -> dict[str, Any]:
        if not self.adjusted_goals and self.mismatches:
            return off(self.settings, self.mismatches[0])
        if not self.adjusted_goals and self.unmet:
            return off(self.settings, self.unmet[0])
        if not self.adjusted_goals:
            return off(self.settings, f"no participant did any goal in the {self.settings.pre_days} days before "
                                      "their first exposure: there is no history to adjust with")
        return {"applied": True, "reason": None, "pre_days": self.settings.pre_days, "method": METHOD,
                "goals": sorted(self.adjusted_goals)}

    def _adjust(self, views: list[dict[str, Any]], arms: Mapping[str, Moments], control: str | None,
                goal: str, metric: str) -> dict[str, Any]:
        theta = cuped.pooled_theta(list(arms.values()))
        if theta is None or control is None or control not in arms:
            return {"applied": False, "theta": None,
                    "reason": f"no participant did {goal!r} in the {self.settings.pre_days} days before exposure"}
        mean_x = cuped.pooled_mean_x(list(arms.values()))
        control_view = next((view for view in views if view["label"] == control), {})
        applied = False
        for view in views:
            label = view["label"]
            if label == control or not _comparable(view, control_view, arms.get(label), arms[control]):
                continue
            adjusted = cuped.compare_adjusted(arms[control], arms[label], theta, mean_x, self.confidence,
                                              self.planned_participants)
            reason = (_rate_rule(view, control_view) if metric == "rate" else None) or cuped.variance_rule(
                adjusted.control, adjusted.variant)
            if reason is not None:
                view["cuped"] = {"applied": False, "reason": reason, "adjusted_mean": None,
                                 "control_adjusted_mean": None, "variance_reduction": None}
                continue
            (_rate_figures if metric == "rate" else _value_figures)(view, adjusted)
            view["cuped"] = {"applied": True, "reason": None, "adjusted_mean": _finite(adjusted.variant.mean),
                             "control_adjusted_mean": _finite(adjusted.control.mean),
                             "variance_reduction": _finite(adjusted.variance_reduction)}
            applied = True
        if not applied:
            return {"applied": False, "theta": _finite(theta),
                    "reason": "no comparison met CUPED's conditions: each variant's `cuped` says why"}
        return {"applied": True, "theta": _finite(theta), "reason": None}


def _rate_rule(view: Mapping[str, Any], control_view: Mapping[str, Any]) -> str | None:
    return cuped.rate_rule(int(control_view["trials"]), int(control_view["successes"]), int(view["trials"]),
                           int(view["successes"]))


def _differing_participants(views: Sequence[Mapping[str, Any]], arms: Mapping[str, Moments]) -> str | None:
    """Why the pre-period query's participants cannot stand for the view's, if they cannot (AlephBet: a
    uuid that participated in two variants counts in both there, in its first here)."""
    differing = sorted(view["label"] for view in views
                       if view["label"] in arms and arms[view["label"]].participants != view["trials"])
    if not differing:
        return None
    return f"the participants of {', '.join(differing)} differ from those CUPED's history was read for"


def _comparable(view: Mapping[str, Any], control_view: Mapping[str, Any], variant: Moments | None,
                control: Moments) -> bool:
    """Two arms of at least two participants each, and (rates) no more successes than participants:
    AlephBet goal uuids that never participated make a rate that is not per participant."""
    if variant is None or variant.participants < 2 or control.participants < 2:
        return False
    return not any(shown.get("successes", 0) > shown.get("trials", math.inf) for shown in (view, control_view))


def _rate_figures(view: dict[str, Any], adjusted: cuped.CupedComparison) -> None:
    fixed, sequential = adjusted.comparison.fixed, adjusted.comparison.sequential
    difference = adjusted.variant.mean - adjusted.control.mean
    view["uplift"] = {
        "absolute": _finite(difference),
        "relative": _finite(adjusted.variant.mean / adjusted.control.mean - 1) if adjusted.control.mean > 0 else None,
        "relative_ci": _interval(fixed.relative_ci),
        "absolute_ci": _interval(fixed.absolute_ci),
    }
    view["p_value"] = _finite(fixed.p_value)
    view["sequential"] = _sequential(sequential)
    if "direction" in view:  # the decisions view's field, where present
        view["direction"] = "better" if difference > 0 else "worse" if difference < 0 else None


def _value_figures(view: dict[str, Any], adjusted: cuped.CupedComparison) -> None:
    fixed = adjusted.comparison.fixed
    view.update(p_value=_finite(fixed.p_value), difference=_finite(adjusted.variant.mean - adjusted.control.mean),
                ci=_interval(fixed.absolute_ci), relative_ci=_interval(fixed.relative_ci),
                sequential=_sequential(adjusted.comparison.sequential))


def _sequential(decision: stats.Decision) -> dict[str, Any]:
    return {"p_value": _finite(decision.p_value), "p_value_adjusted": None,
            "relative_ci": _interval(decision.relative_ci), "absolute_ci": _interval(decision.absolute_ci)}


def _finite(number: float | None) -> float | None:
    return number if number is not None and math.isfinite(number) else None


def _interval(bounds: tuple[float, float] | None) -> list[float | None] | None:
    return None if bounds is None else [_finite(bounds[0]), _finite(bounds[1])]
