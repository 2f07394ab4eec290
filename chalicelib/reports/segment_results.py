"""The results of an experiment tracked with Segment's A/B testing spec (`Experiment Viewed` events).

Shaped by the same decision view as AlephBet experiments (`results.results_view`): variants
are labelled by `variation_id`, goals by track event name, and every statistic applies.
Added: `source`, the goals asked for, and `multiple_exposures`, the users who saw more than
one variant (each counted once, in the variant they saw first).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chalicelib.ingest.events import PARTICIPATE
from chalicelib.reports import breakdown, cuped_queries, segment_queries
from chalicelib.reports.cuped_results import DEFAULT_SETTINGS, CupedAdjustment, CupedSettings, summary
from chalicelib.reports.defaults import DEFAULT_CONFIDENCE
from chalicelib.reports.dimensions import Dimension
from chalicelib.reports.errors import UnknownExperiment
from chalicelib.reports.fetch import ReportWarehouse, fetch, target_of
from chalicelib.reports.queries import ALL_TIME, Window
from chalicelib.reports.results import cap_name
from chalicelib.reports.segment_queries import SOURCE


def experiment_results(warehouse: ReportWarehouse, namespace: str, experiment: str, *,
                       goals: Sequence[str] | None = None, value: Dimension | None = None,
                       dimension: Dimension | None = None, control: str | None = None,
                       confidence: float = DEFAULT_CONFIDENCE, weights: Mapping[str, float] | None = None,
                       window: Window = ALL_TIME, cap: int | None = None, cuped: CupedSettings = DEFAULT_SETTINGS,
                       **options: Any) -> dict[str, Any]:
    """404 when nobody was ever exposed; an empty date window alone answers the empty view.

    Further `options` of the decision view (`results.results_view`) pass through unchanged, so
    every option /results has applies here too.
    """
    target = target_of(warehouse)

    def counts(split_by: Dimension | None) -> list[dict[str, Any]]:
        return fetch(warehouse, segment_queries.experiment_decision_counts(
            target, namespace, experiment, goals=goals, value=value, dimension=split_by, window=window, cap=cap))

    whole = counts(None)
    if not whole and (window == ALL_TIME or not fetch(warehouse, segment_queries.experiment_seen(
            target, namespace, experiment))):
        raise UnknownExperiment(namespace, experiment)
    adjustment = _cuped_adjustment(warehouse, namespace, experiment, whole, goals=goals, value=value,
                                   window=window, confidence=confidence, settings=cuped)
    view = breakdown.decision_results(
        namespace, experiment, whole, counts(dimension) if dimension else None,
        dimension=dimension.name if dimension else None, goals=goals or (), extras=_multiple_exposures,
        control=control, confidence=confidence, weights=weights, adjust_goals=adjustment, **options)
    return {"source": SOURCE, **view, "value_property": value.name if value else None, "cap": cap_name(cap),
            "cuped": summary(adjustment, cuped)}


def _cuped_adjustment(warehouse: ReportWarehouse, namespace: str, experiment: str,
                      whole: Sequence[Mapping[str, Any]], *, goals: Sequence[str] | None, value: Dimension | None,
                      window: Window, confidence: float, settings: CupedSettings) -> CupedAdjustment | None:
    """The CUPED hook over the goals the view lists (one more query), or None when off or goal-less."""
    listed = list(goals) if goals else sorted({row["event"] for row in whole if row["event"] != PARTICIPATE})
    if not settings.enabled or not listed:
        return None
    rows = fetch(warehouse, cuped_queries.segment_cuped_moments(
        target_of(warehouse), namespace, experiment, goals=listed, value=value, pre_days=settings.pre_days,
        window=window))
    return CupedAdjustment(rows, confidence, settings)


def _multiple_exposures(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    return {"multiple_exposures": sum(int(row["multiple"] or 0) for row in rows)}
