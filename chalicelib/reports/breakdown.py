"""Breakdowns: the decision view once overall and once per value of a dimension.

The segment rows come from a query that split its counts by `segment`, after folding the
users of all but the top values into `other` (`queries.folded_segments`). Every segment is
shaped by the same `results_view` as the whole experiment, so every statistic applies to
both; the whole comes from its own query, never from adding segments up.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.ingest.events import PARTICIPATE
from chalicelib.reports import stats
from chalicelib.reports.defaults import DEFAULT_CORRECTION
from chalicelib.reports.results import DecisionRow, results_view

OTHER_LABEL = "(other)"
# The results view's figures that belong to the whole experiment, not repeated per segment.
_WHOLE_ONLY = ("namespace", "experiment", "confidence")

Rows = Sequence[Mapping[str, Any]]
Extras = Callable[[Rows], Mapping[str, Any]]


@dataclass(frozen=True)
class SegmentKey:
    """A dimension's value (None where the events had none), or the folded rest."""
    value: str | None
    other: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"value": OTHER_LABEL if self.other else self.value, "other": self.other}


def split(rows: Rows) -> dict[SegmentKey, list[Mapping[str, Any]]]:
    by_segment: dict[SegmentKey, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_segment.setdefault(SegmentKey(row["segment"], bool(row["other"])), []).append(row)
    return by_segment


def _zero(variant: str, event: str) -> DecisionRow:
    # Built through DecisionRow.of, so it fits whatever figures the row carries.
    return DecisionRow.of({"variant": variant, "event": event, "uuids": 0, "valued": 0, "total": None,
                           "total_squares": None, "variance": None})


def completed(rows: Rows, labels: Sequence[str], goals: Sequence[str]) -> list[DecisionRow]:
    """Every variant and goal listed, with zeros where a segment saw none (so segments line up)."""
    decision_rows = [DecisionRow.of(row) for row in rows]
    variants = {row.variant for row in decision_rows if row.event == PARTICIPATE}
    events = {row.event for row in decision_rows}
    zeros = [_zero(label, PARTICIPATE) for label in labels if label not in variants]
    if labels:
        zeros += [_zero(labels[0], goal) for goal in goals if goal not in events]
    return decision_rows + zeros


def decision_results(namespace: str, experiment: str, whole: Rows, by_segment: Rows | None = None, *,
                     dimension: str | None = None, goals: Sequence[str] = (),
                     extras: Extras = lambda rows: {}, **options: Any) -> dict[str, Any]:
    """The decision view of decision-count rows, every requested goal listed, plus with a dimension
    a `breakdown`: each segment shaped like the whole (same variants, goals and control), the
    most participants first, the folded rest last.

    `options` go to `results_view` (control, confidence, weights...); `extras` adds figures of
    the source's own (Segment's `multiple_exposures`) to the whole and to each segment.
    """
    labels = sorted({row["variant"] for row in whole})
    view = results_view(namespace, experiment, completed(whole, labels, goals), **options)
    view.update(extras(whole))
    if dimension is None:
        return view
    listed_goals = [goal["goal"] for goal in view["goals"]]
    segment_options = {**options, "control": view["control"], "adjust_goals": None}  # CUPED: the whole only
    segments = split(by_segment or [])

    def participants(key: SegmentKey) -> int:
        return sum(int(row["uuids"]) for row in segments[key] if row["event"] == PARTICIPATE)

    ordered = sorted(segments, key=lambda key: (key.other, -participants(key), key.value is None, key.value or ""))
    view["breakdown"] = {"dimension": dimension, "segments": [
        {**key.to_json(), **extras(segments[key]), **{
            name: figure for name, figure in results_view(
                namespace, experiment, completed(segments[key], labels, listed_goals), **segment_options).items()
            if name not in _WHOLE_ONLY}}
        for key in ordered
    ]}
    adjust_across_segments(view["breakdown"]["segments"], options.get("correction", DEFAULT_CORRECTION))
    return view


def adjust_across_segments(segments: Sequence[dict[str, Any]], correction: stats.Correction) -> None:
    """`segments_p_value_adjusted` (and `sequential.segments_p_value_adjusted`) on every segment's comparison:
    its p-value adjusted, by the request's correction (Holm by default), across the segments for the same
    goal, variant and figure (rate or value). A breakdown asks "in which segments does this variant differ
    on this goal?": one family per such question, so twenty segments do not make twenty chances of a false find.
    """
    families: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for segment in segments:
        for goal in segment["goals"]:
            for figure, arms in (("rate", goal["variants"]), ("value", (goal["value"] or {}).get("variants", []))):
                for arm in arms:
                    if "p_value" in arm:
                        families.setdefault((goal["goal"], arm["label"], figure), []).append(arm)
    for arms in families.values():
        fixed = stats.adjust_p_values([arm["p_value"] for arm in arms], correction)
        sequential = stats.adjust_p_values([arm["sequential"]["p_value"] for arm in arms], correction)
        for arm, adjusted, adjusted_sequential in zip(arms, fixed, sequential, strict=True):
            arm["segments_p_value_adjusted"] = adjusted
            arm["sequential"]["segments_p_value_adjusted"] = adjusted_sequential
