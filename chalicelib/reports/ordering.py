"""The order a results view reads in: the primary goal first, then the guardrails in the order asked
for, then the other goals by successes (most first, then by name); within a goal the control first,
then the other variants in label order.

Pure reordering of the view's JSON (and of each breakdown segment's); no figure changes.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chalicelib.reports.errors import BadParameter


def goal_successes(goal: Mapping[str, Any]) -> int:
    return sum(int(arm.get("successes") or 0) for arm in goal["variants"])


def choose_primary(goals: Sequence[Mapping[str, Any]], requested: str | None,
                   guardrails: Sequence[str] = ()) -> str | None:
    """The requested goal; else the goal with the most successes that is not a guardrail (ties: the first
    name); None without such a goal."""
    names = [goal["goal"] for goal in goals]
    if requested is not None:
        if requested not in names:
            raise BadParameter("primary", f"no goal named {requested!r} (goals: {', '.join(sorted(names)) or 'none'})")
        return requested
    candidates = [goal for goal in goals if goal["goal"] not in guardrails]
    if not candidates:
        return None
    return min(candidates, key=lambda goal: (-goal_successes(goal), goal["goal"]))["goal"]


def check_guardrails(goals: Sequence[Mapping[str, Any]], guardrails: Sequence[str], primary: str | None) -> None:
    names = {goal["goal"] for goal in goals}
    unknown = [name for name in guardrails if name not in names]
    if unknown:
        raise BadParameter("guardrails", f"no goal named {', '.join(map(repr, unknown))} "
                                         f"(goals: {', '.join(sorted(names)) or 'none'})")
    if primary in guardrails:
        raise BadParameter("guardrails", f"{primary!r} is the primary goal; a guardrail is another goal")
    if primary is None and guardrails:
        raise BadParameter("guardrails", "names every goal: name the primary goal with primary=, or fewer guardrails")


def order_view(view: dict[str, Any], primary: str | None, guardrails: Sequence[str]) -> None:
    """Reorder `view` in place (and every segment of its breakdown) as the module says."""
    _order(view, view.get("control"), primary, guardrails)
    for segment in (view.get("breakdown") or {}).get("segments", []):
        _order(segment, view.get("control"), primary, guardrails)


def _order(view: dict[str, Any], control: str | None, primary: str | None, guardrails: Sequence[str]) -> None:
    def goal_place(goal: Mapping[str, Any]) -> tuple[int, int, int, str]:
        name = goal["goal"]
        if name == primary:
            return (0, 0, 0, name)
        if name in guardrails:
            return (1, list(guardrails).index(name), 0, name)
        return (2, 0, -goal_successes(goal), name)

    def variant_place(arm: Mapping[str, Any]) -> tuple[bool, str]:
        return (arm["label"] != control, arm["label"])

    if "variants" in view:
        view["variants"] = sorted(view["variants"], key=variant_place)
    view["goals"] = sorted(view.get("goals", []), key=goal_place)
    for goal in view["goals"]:
        goal["variants"] = sorted(goal["variants"], key=variant_place)
        if goal.get("value"):
            goal["value"]["variants"] = sorted(goal["value"]["variants"], key=variant_place)
