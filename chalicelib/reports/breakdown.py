"""Breakdowns: the decision view once overall and once per value of a dimension.

The rows come from a query that split its counts by `segment` and folded all but the
top values into `other` rows (`queries.folded_segments`). Each user counts in exactly
one segment, so the overall figures are the segments' sums, and every segment is shaped
by the same `results_view` as the whole experiment: every statistic applies to both.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from chalicelib.ingest.events import PARTICIPATE
from chalicelib.reports.views import DecisionRow, results_view

OTHER_LABEL = "(other)"

Shape = Callable[[Sequence[DecisionRow], "str | None"], dict[str, Any]]


@dataclass(frozen=True)
class SegmentKey:
    """A dimension's value (None where the events had none), or the folded rest."""
    value: str | None
    other: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"value": OTHER_LABEL if self.other else self.value, "other": self.other}


def split(rows: Iterable[Mapping[str, Any]]) -> dict[SegmentKey, list[Mapping[str, Any]]]:
    by_segment: dict[SegmentKey, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_segment.setdefault(SegmentKey(row["segment"], bool(row["other"])), []).append(row)
    return by_segment


def summed(rows: Iterable[DecisionRow]) -> list[DecisionRow]:
    """One row per (variant, event): the segments' counts and sums added up."""
    totals: dict[tuple[str, str], DecisionRow] = {}
    for row in rows:
        key = (row.variant, row.event)
        before = totals.get(key)
        totals[key] = row if before is None else replace(
            before, uuids=before.uuids + row.uuids, valued=before.valued + row.valued,
            total=before.total + row.total, total_squares=before.total_squares + row.total_squares)
    return list(totals.values())


def completed(rows: Sequence[DecisionRow], labels: Sequence[str], goals: Sequence[str]) -> list[DecisionRow]:
    """Every variant and goal listed, with zeros where a segment saw none (so segments line up)."""
    variants = {row.variant for row in rows if row.event == PARTICIPATE}
    events = {row.event for row in rows}
    zeros = [DecisionRow(label, PARTICIPATE, 0, 0, 0.0, 0.0) for label in labels if label not in variants]
    if labels:
        zeros += [DecisionRow(labels[0], goal, 0, 0, 0.0, 0.0) for goal in goals if goal not in events]
    return list(rows) + zeros


def breakdown_view(dimension: str, segments: Mapping[SegmentKey, Sequence[DecisionRow]], labels: Sequence[str],
                   goals: Sequence[str], control: str | None, shape: Shape,
                   extras: Callable[[SegmentKey], Mapping[str, Any]] = lambda key: {}) -> dict[str, Any]:
    """Every segment shaped like the whole (same variants, goals and control); the most
    participants first, the folded rest last."""
    def participants(key: SegmentKey) -> int:
        return sum(row.uuids for row in segments[key] if row.event == PARTICIPATE)

    ordered = sorted(segments, key=lambda key: (key.other, -participants(key), key.value is None, key.value or ""))
    return {"dimension": dimension, "segments": [
        {**key.to_json(), **extras(key), **shape(completed(segments[key], labels, goals), control)}
        for key in ordered
    ]}


Extras = Callable[[Sequence[Mapping[str, Any]]], Mapping[str, Any]]


def decision_results(namespace: str, experiment: str, fetched: Sequence[Mapping[str, Any]], *,
                     dimension: str | None, control: str | None, confidence: float,
                     weights: Mapping[str, float] | None, goals: Sequence[str] = (),
                     extras: Extras = lambda rows: {}) -> dict[str, Any]:
    """The decision view of decision-count rows, every requested goal listed; with a dimension,
    the rows are per segment and the view gains a `breakdown` of the same shape per segment.

    `extras` adds figures of the source's own (Segment's `multiple_exposures`) to the whole
    and to each segment, from the raw rows concerned.
    """
    rows = [DecisionRow.of(row) for row in fetched]
    overall = summed(rows) if dimension is not None else rows
    labels = sorted({row.variant for row in overall})
    view = results_view(namespace, experiment, completed(overall, labels, goals), control=control,
                        confidence=confidence, weights=weights)
    view.update(extras(fetched))
    if dimension is None:
        return view

    def shape(segment_rows: Sequence[DecisionRow], chosen: str | None) -> dict[str, Any]:
        shaped = results_view(namespace, experiment, segment_rows, control=chosen, confidence=confidence, weights=weights)
        return {key: value for key, value in shaped.items() if key not in ("namespace", "experiment", "confidence")}

    raw = split(fetched)
    segments = {key: [DecisionRow.of(row) for row in raw[key]] for key in raw}
    view["breakdown"] = breakdown_view(dimension, segments, labels, [goal["goal"] for goal in view["goals"]],
                                       view["control"], shape, lambda key: extras(raw[key]))
    return view
