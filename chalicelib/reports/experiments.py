"""AlephBet experiments read from the warehouse: Gimel's list and goals shapes, and the rows the
results view shapes (overall, or broken down by a dimension).

Shapes (Gimel's): `[{"meta": {"scope": ...}}, {"experiment": ..., "goals": [...]}, ...]` for every
experiment, and the `goals` list alone for one experiment. Labels and goals are always sorted, so
the same data gives the same document.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from chalicelib.ingest.events import PARTICIPATE, format_timestamp
from chalicelib.reports import breakdown, catalog_queries, cuped_queries, queries, stats
from chalicelib.reports.cuped_results import DEFAULT_SETTINGS, CupedAdjustment, CupedSettings, summary
from chalicelib.reports.defaults import DEFAULT_CONFIDENCE, DEFAULT_CORRECTION
from chalicelib.reports.dimensions import Dimension
from chalicelib.reports.errors import UnknownExperiment
from chalicelib.reports.fetch import ReportWarehouse, fetch, target_of
from chalicelib.reports.queries import ALL_TIME, Window
from chalicelib.reports.results import Counts, DecisionRow, cap_name, results_view


def all_experiments(warehouse: ReportWarehouse, namespace: str, scope: str | None = None,
                    window: Window = ALL_TIME) -> list[dict[str, Any]]:
    """Every experiment of the namespace (sorted), or those named in `scope` in its order.

    As in Gimel, a scoped experiment with no events is listed with no goals.
    """
    names = scope_names(scope)
    counted = catalog_queries.catalog_counts(warehouse, namespace, scope=names) if window == ALL_TIME else None
    rows = catalog_queries.counter_rows_of(counted) if counted else counter_rows(warehouse, namespace, window,
                                                                                 scope=names)
    rows_of: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        rows_of.setdefault(row["experiment"], []).append(row)
    listed = names if names is not None else sorted(rows_of)
    meta: dict[str, Any] = {"scope": scope if names is not None else None}
    if counted and not counted.live:     # a live catalog is as fresh as the warehouse: `freshness` says so
        meta["freshness"] = counted.freshness()
    return [{"meta": meta}] + [
        {"experiment": name, "goals": gimel_goals(rows_of.get(name, []))} for name in listed
    ]


def scope_names(scope: str | None) -> list[str] | None:
    """Gimel's comma-separated scope; None when absent or blank."""
    if scope is None or not scope.strip():
        return None
    return list(dict.fromkeys(name for name in scope.split(",") if name))


def experiment_goals(warehouse: ReportWarehouse, namespace: str, experiment: str,
                     window: Window = ALL_TIME) -> list[dict[str, Any]]:
    """Gimel's single-experiment answer: the goals list."""
    counted = catalog_queries.catalog_counts(warehouse, namespace, experiment) if window == ALL_TIME else None
    # Not in the catalog: unknown, or newer than the snapshot; history says which.
    rows = catalog_queries.counter_rows_of(counted) if counted and counted.rows else \
        counter_rows(warehouse, namespace, window, experiment=experiment)
    require_experiment(warehouse, namespace, experiment, window, found=bool(rows))
    return gimel_goals(rows)


def counter_rows(warehouse: ReportWarehouse, namespace: str, window: Window = ALL_TIME,
                 experiment: str | None = None, scope: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Rows of (experiment, variant, event, uuids): one pass, then an exact recount of the
    experiments whose tombstones still hide rows (rarely any: deletions purge them) or whose
    row counts may count a uuid twice (events with client ids)."""
    target = target_of(warehouse)
    rows = fetch(warehouse, queries.experiment_counts(target, namespace, window, experiment, scope))
    repeating = {row["experiment"] for row in rows if row["repeats_uuids"]}
    hiding = sorted({row["experiment"] for row in rows if row["hides_rows"]} | repeating)
    if not hiding:
        return rows
    exact = fetch(warehouse, queries.visible_experiment_counts(target, namespace, window, scope=hiding,
                                                               repeated_uuids=bool(repeating)))
    return [row for row in rows if row["experiment"] not in hiding] + exact


def gimel_goals(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every variant seen under every goal; trials are participants, 0 where nothing was seen."""
    counts = Counts.from_rows(rows)
    return [
        {"goal": goal, "results": [
            {"label": label, "successes": counts.count(goal, label), "trials": counts.participants(label)}
            for label in counts.variants
        ]}
        for goal in counts.goals
    ]


def require_experiment(warehouse: ReportWarehouse, namespace: str, experiment: str,
                       window: Window, found: bool) -> None:
    """404 unless the experiment has events; an empty date window alone is not a 404."""
    if found:
        return
    if window == ALL_TIME or not fetch(warehouse,
                                       queries.experiment_exists(target_of(warehouse), namespace, experiment)):
        raise UnknownExperiment(namespace, experiment)


def experiment_results(warehouse: ReportWarehouse, namespace: str, experiment: str, *,
                       control: str | None = None, confidence: float = DEFAULT_CONFIDENCE,
                       weights: Mapping[str, float] | None = None, window: Window = ALL_TIME,
                       correction: stats.Correction = DEFAULT_CORRECTION,
                       dimension: Dimension | None = None,
                       planned_participants: float = stats.SEQUENTIAL_TUNING_PARTICIPANTS,
                       cap: int | None = None, cuped: CupedSettings = DEFAULT_SETTINGS) -> dict[str, Any]:
    """The results view; `cap` winsorises per-participant values at that pooled percentile."""
    read = catalog_queries.narrowed(warehouse, namespace, experiment, window)
    query = queries.decision_counts(target_of(warehouse), namespace, experiment, read, cap=cap, spans=True)
    fetched = fetch(warehouse, query)
    require_experiment(warehouse, namespace, experiment, window, found=bool(fetched))
    exposure = exposure_of(fetched)
    adjustment = _cuped_adjustment(warehouse, namespace, experiment, fetched, window, confidence, cuped, exposure)
    if dimension is not None:
        by_segment = queries.decision_counts(target_of(warehouse), namespace, experiment, read, dimension, cap)
        view = breakdown.decision_results(namespace, experiment, fetched, fetch(warehouse, by_segment),
                                          dimension=dimension.name, control=control, confidence=confidence,
                                          weights=weights, correction=correction,
                                          planned_participants=planned_participants, adjust_goals=adjustment)
    else:
        rows = [DecisionRow.of(row) for row in fetched]
        view = results_view(namespace, experiment, rows, control=control, confidence=confidence, weights=weights,
                            correction=correction, planned_participants=planned_participants,
                            adjust_goals=adjustment)
    exposed = {"first_at": format_timestamp(exposure[0]), "last_at": format_timestamp(exposure[1])} \
        if exposure else None
    return {**view, "cap": cap_name(cap), "cuped": summary(adjustment, cuped), "exposure": exposed}


def exposure_of(rows: Sequence[Mapping[str, Any]]) -> tuple[datetime, datetime] | None:
    """The first and last participation received (`decision_counts(spans=True)`), or None without any."""
    spans = [(row["first_at"], row["last_at"]) for row in rows
             if row["event"] == PARTICIPATE and row.get("first_at") is not None]
    if not spans:
        return None
    return (min(catalog_queries.as_datetime(first) for first, _ in spans),
            max(catalog_queries.as_datetime(last) for _, last in spans))


def _cuped_adjustment(warehouse: ReportWarehouse, namespace: str, experiment: str, rows: Sequence[Mapping[str, Any]],
                      window: Window, confidence: float, settings: CupedSettings,
                      exposure: tuple[datetime, datetime] | None) -> CupedAdjustment | None:
    """The CUPED hook over the experiment's goals (one more query), or None when off or goal-less.

    On BigQuery the history's scan is bounded by the first and last participation (`exposure`, from
    the results' own rows), so it reads those partitions, not the namespace's history."""
    goals = sorted({row["event"] for row in rows if row["event"] != PARTICIPATE})
    if not settings.enabled or not goals:
        return None
    target = target_of(warehouse)
    participations = exposure if target.dialect == queries.BIGQUERY else None
    moments = cuped_queries.alephbet_cuped_moments(target, namespace, experiment, goals=goals,
                                                   pre_days=settings.pre_days, window=window,
                                                   participations=participations)
    return CupedAdjustment(fetch(warehouse, moments), confidence, settings)
