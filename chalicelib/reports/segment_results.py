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
from chalicelib.reports.queries import ALL_TIME, BIGQUERY, Window
from chalicelib.reports.results import cap_name
from chalicelib.reports.segment_queries import DECISION_COLUMNS, SOURCE, History


def experiment_results(warehouse: ReportWarehouse, namespace: str, experiment: str, *,
                       goals: Sequence[str] | None = None, value: Dimension | None = None,
                       dimension: Dimension | None = None, control: str | None = None,
                       confidence: float = DEFAULT_CONFIDENCE, weights: Mapping[str, float] | None = None,
                       window: Window = ALL_TIME, cap: int | None = None, cuped: CupedSettings = DEFAULT_SETTINGS,
                       **options: Any) -> dict[str, Any]:
    """404 when nobody was ever exposed; an empty date window alone answers the empty view.

    Further `options` of the decision view (`results.results_view`) pass through unchanged, so
    every option /results has applies here too. CUPED's moments come in the decision counts' own
    pass over the goal events (`segment_queries.History`), not in a query of their own.
    """
    target = target_of(warehouse)

    def counts(split_by: Dimension | None, history: History | None = None) -> list[dict[str, Any]]:
        return fetch(warehouse, segment_queries.experiment_decision_counts(
            target, namespace, experiment, goals=goals, value=value, dimension=split_by, window=window, cap=cap,
            history=history))

    whole, moments = _split(counts(None, _history(warehouse, namespace, experiment, window, cuped)))
    if not whole and (window == ALL_TIME or not fetch(warehouse, segment_queries.experiment_seen(
            target, namespace, experiment))):
        raise UnknownExperiment(namespace, experiment)
    adjustment = _cuped_adjustment(whole, moments, goals, confidence, cuped)
    view = breakdown.decision_results(
        namespace, experiment, whole, counts(dimension) if dimension else None,
        dimension=dimension.name if dimension else None, goals=goals or (), extras=_multiple_exposures,
        control=control, confidence=confidence, weights=weights, adjust_goals=adjustment, **options)
    return {"source": SOURCE, **view, "value_property": value.name if value else None, "cap": cap_name(cap),
            "cuped": summary(adjustment, cuped)}


def _history(warehouse: ReportWarehouse, namespace: str, experiment: str, window: Window,
             settings: CupedSettings) -> History | None:
    """CUPED's pre-period for the decision counts' pass, or None when off. On BigQuery the goal scan
    starts `pre_days` before the first exposure (one small query finds it), so only those partitions
    are read; DuckDB has no partitions to prune, and the extra query would cost more than it saves."""
    if not settings.enabled:
        return None
    since = None
    if warehouse.dialect == BIGQUERY:
        span = fetch(warehouse, segment_queries.exposure_span(target_of(warehouse), namespace, experiment, window))
        since = cuped_queries.history_since(span[0]["first_at"] if span else None, settings.pre_days)
    return History(settings.pre_days, since)


def _split(rows: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The decision rows, and CUPED's moment rows with each variant's participants (`participate` rows),
    as `cuped_results.arm_moments` reads them. Without CUPED every row is a decision row."""
    if not any("cuped" in row for row in rows):
        return [dict(row) for row in rows], []
    counted = [{name: row[name] for name in DECISION_COLUMNS if name in row} for row in rows if not row["cuped"]]
    moments = [dict(row) for row in rows if row["cuped"]]
    participants = [{"variant": row["variant"], "event": PARTICIPATE, "active": row["uuids"]}
                    for row in counted if row["event"] == PARTICIPATE]
    return counted, moments + participants


def _cuped_adjustment(whole: Sequence[Mapping[str, Any]], moments: Sequence[Mapping[str, Any]],
                      goals: Sequence[str] | None, confidence: float,
                      settings: CupedSettings) -> CupedAdjustment | None:
    """The CUPED hook over the goals the view lists (asked for, or seen), or None when off or goal-less."""
    if not settings.enabled or not (goals or any(row["event"] != PARTICIPATE for row in whole)):
        return None
    return CupedAdjustment(moments, confidence, settings)


def _multiple_exposures(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    return {"multiple_exposures": sum(int(row["multiple"] or 0) for row in rows)}
