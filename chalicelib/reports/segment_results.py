"""The results of an experiment tracked with Segment's A/B testing spec (`Experiment Viewed` events).

Shaped by the same decision view as AlephBet experiments (`results.results_view`): variants
are labelled by `variation_id`, goals by track event name, and every statistic applies.
Added: `source`, the goals asked for, and `multiple_exposures`, the users who saw more than
one variant (each counted once, in the variant they saw first).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chalicelib.reports import breakdown, segment_queries
from chalicelib.reports.defaults import DEFAULT_CONFIDENCE
from chalicelib.reports.dimensions import Dimension
from chalicelib.reports.errors import UnknownExperiment
from chalicelib.reports.fetch import ReportWarehouse, fetch, target_of
from chalicelib.reports.queries import ALL_TIME, Window
from chalicelib.reports.segment_queries import SOURCE


def experiment_results(warehouse: ReportWarehouse, namespace: str, experiment: str, *,
                       goals: Sequence[str] | None = None, value: Dimension | None = None,
                       dimension: Dimension | None = None, control: str | None = None,
                       confidence: float = DEFAULT_CONFIDENCE, weights: Mapping[str, float] | None = None,
                       window: Window = ALL_TIME, **options: Any) -> dict[str, Any]:
    """404 when nobody was ever exposed; an empty date window alone answers the empty view.

    Further `options` of the decision view (`results.results_view`) pass through unchanged, so
    every option /results has applies here too.
    """
    target = target_of(warehouse)

    def counts(split_by: Dimension | None) -> list[dict[str, Any]]:
        return fetch(warehouse, segment_queries.experiment_decision_counts(
            target, namespace, experiment, goals=goals, value=value, dimension=split_by, window=window))

    whole = counts(None)
    if not whole and (window == ALL_TIME or not fetch(warehouse, segment_queries.experiment_seen(
            target, namespace, experiment))):
        raise UnknownExperiment(namespace, experiment)
    view = breakdown.decision_results(
        namespace, experiment, whole, counts(dimension) if dimension else None,
        dimension=dimension.name if dimension else None, goals=goals or (), extras=_multiple_exposures,
        control=control, confidence=confidence, weights=weights, **options)
    return {"source": SOURCE, **view, "value_property": value.name if value else None}


def _multiple_exposures(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    return {"multiple_exposures": sum(int(row["multiple"] or 0) for row in rows)}
