"""Experiment reports: run the queries on the warehouse and shape what the routes answer.

Shapes:
- Gimel's: `[{"meta": {"scope": ...}}, {"experiment": ..., "goals": [...]}, ...]` for every
  experiment, and the `goals` list alone for one experiment;
- the results view: rates with intervals, uplift, p-values and Bayesian chances per goal;
- the daily view: cumulative participants and successes per day and variant.
Labels and goals are always sorted, so the same data gives the same document.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Protocol, Sequence

from chalicelib.reports import queries, stats
from chalicelib.reports.values import value_moments
from chalicelib.ingest.events import PARTICIPATE, format_timestamp, now
from chalicelib.reports.dimensions import Dimension
from chalicelib.reports.queries import ALL_TIME, Query, Target, Window

log = logging.getLogger("dalet.reports")

CONTROL_NAME = "control"
DEFAULT_CONFIDENCE = 0.95
DEFAULT_CORRECTION: stats.Correction = "holm"


class BadParameter(ValueError):
    """A request parameter is invalid; `parameter` names it."""

    def __init__(self, parameter: str, message: str):
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


class UnknownExperiment(LookupError):
    """No visible events: never tracked, or deleted with nothing tracked since."""

    def __init__(self, namespace: str, experiment: str):
        super().__init__(f"no experiment {experiment!r} in namespace {namespace!r}")
        self.namespace = namespace
        self.experiment = experiment


class ReportWarehouse(Protocol):
    dialect: str
    unique_identities: bool

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int | None: ...


def target_of(warehouse: ReportWarehouse) -> Target:
    if warehouse.dialect == queries.BIGQUERY:
        tables = queries.bigquery_tables(warehouse.project, warehouse.dataset, warehouse.table)  # type: ignore[attr-defined]
    else:
        tables = queries.DUCKDB_TABLES
    return Target(warehouse.dialect, tables, warehouse.unique_identities)


def _fetch(warehouse: ReportWarehouse, query: Query) -> list[dict[str, Any]]:
    return warehouse.fetch(query.sql, query.params)


# ---------------------------------------------------------------------------
# Gimel's shapes
# ---------------------------------------------------------------------------

def all_experiments(warehouse: ReportWarehouse, namespace: str, scope: str | None = None,
                    window: Window = ALL_TIME) -> list[dict[str, Any]]:
    """Every experiment of the namespace (sorted), or those named in `scope` in its order.

    As in Gimel, a scoped experiment with no events is listed with no goals.
    """
    names = scope_names(scope)
    rows_of: dict[str, list[Mapping[str, Any]]] = {}
    for row in counter_rows(warehouse, namespace, window, scope=names):
        rows_of.setdefault(row["experiment"], []).append(row)
    listed = names if names is not None else sorted(rows_of)
    return [{"meta": {"scope": scope if names is not None else None}}] + [
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
    rows = counter_rows(warehouse, namespace, window, experiment=experiment)
    _require_experiment(warehouse, namespace, experiment, window, found=bool(rows))
    return gimel_goals(rows)


def counter_rows(warehouse: ReportWarehouse, namespace: str, window: Window = ALL_TIME,
                 experiment: str | None = None, scope: Sequence[str] | None = None) -> list[Mapping[str, Any]]:
    """Rows of (experiment, variant, event, uuids): one pass, then an exact recount of the
    experiments whose tombstones still hide rows (rarely any: deletions purge them) or whose
    row counts may count a uuid twice (events with client ids)."""
    target = target_of(warehouse)
    rows = _fetch(warehouse, queries.experiment_counts(target, namespace, window, experiment, scope))
    repeating = {row["experiment"] for row in rows if row["repeats_uuids"]}
    hiding = sorted({row["experiment"] for row in rows if row["hides_rows"]} | repeating)
    if not hiding:
        return rows
    exact = _fetch(warehouse, queries.visible_experiment_counts(target, namespace, window, scope=hiding,
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


@dataclass(frozen=True)
class Counts:
    """Distinct uuids per (event, variant), with the sorted variants and goals seen."""
    by_event_variant: Mapping[tuple[str, str], int]
    variants: list[str]
    goals: list[str]

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> "Counts":
        by_event_variant = {(row["event"], row["variant"]): int(row["uuids"]) for row in rows}
        return cls(
            by_event_variant=by_event_variant,
            variants=sorted({variant for _, variant in by_event_variant}),
            goals=sorted({event for event, _ in by_event_variant if event != PARTICIPATE}),
        )

    def count(self, event: str, variant: str) -> int:
        return self.by_event_variant.get((event, variant), 0)

    def participants(self, variant: str) -> int:
        return self.count(PARTICIPATE, variant)


def _require_experiment(warehouse: ReportWarehouse, namespace: str, experiment: str,
                        window: Window, found: bool) -> None:
    """404 unless the experiment has events; an empty date window alone is not a 404."""
    if found:
        return
    if window == ALL_TIME or not _fetch(warehouse, queries.experiment_exists(target_of(warehouse), namespace, experiment)):
        raise UnknownExperiment(namespace, experiment)


# ---------------------------------------------------------------------------
# The results (decision) view
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DecisionRow:
    """`decision_counts`' answer for one (variant, event): distinct uuids, and over the
    `valued` uuids that carried a value, the sum and sample variance of their per-uuid totals."""
    variant: str
    event: str
    uuids: int
    valued: int
    total: float
    variance: float | None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> "DecisionRow":
        variance = row["variance"]
        return cls(row["variant"], row["event"], int(row["uuids"]), int(row["valued"] or 0),
                   float(row["total"] or 0.0), None if variance is None else float(variance))


def experiment_results(warehouse: ReportWarehouse, namespace: str, experiment: str, *,
                       control: str | None = None, confidence: float = DEFAULT_CONFIDENCE,
                       weights: Mapping[str, float] | None = None, window: Window = ALL_TIME,
                       correction: stats.Correction = DEFAULT_CORRECTION,
                       dimension: Dimension | None = None) -> dict[str, Any]:
    query = queries.decision_counts(target_of(warehouse), namespace, experiment, window)
    fetched = _fetch(warehouse, query)
    _require_experiment(warehouse, namespace, experiment, window, found=bool(fetched))
    if dimension is not None:
        from chalicelib.reports import breakdown  # it shapes every segment with results_view below

        by_segment = queries.decision_counts(target_of(warehouse), namespace, experiment, window, dimension)
        return breakdown.decision_results(namespace, experiment, fetched, _fetch(warehouse, by_segment),
                                          dimension=dimension.name, control=control, confidence=confidence,
                                          weights=weights, correction=correction)
    rows = [DecisionRow.of(row) for row in fetched]
    return results_view(namespace, experiment, rows, control=control, confidence=confidence, weights=weights,
                        correction=correction)


SEQUENTIAL_METHOD = ("asymptotic confidence sequences (Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas 2024), "
                     "valid however often the results are looked at")


def results_view(namespace: str, experiment: str, rows: Sequence[DecisionRow], *, control: str | None,
                 confidence: float, weights: Mapping[str, float] | None,
                 correction: stats.Correction = DEFAULT_CORRECTION) -> dict[str, Any]:
    counts = Counts.from_rows({"event": row.event, "variant": row.variant, "uuids": row.uuids} for row in rows)
    labels = counts.variants
    participants = {label: counts.participants(label) for label in labels}
    chosen = choose_control(labels, control, participants)
    goals = [
        _goal_view(goal, labels, chosen, participants, {row.variant: row for row in rows if row.event == goal},
                   confidence)
        for goal in counts.goals
    ]
    _adjust_for_multiple_comparisons(goals, correction)
    return {
        "namespace": namespace,
        "experiment": experiment,
        "control": chosen,
        "confidence": confidence,
        "correction": correction,
        "sequential": {"method": SEQUENTIAL_METHOD,
                       "tuned_for_participants": stats.SEQUENTIAL_TUNING_PARTICIPANTS},
        "variants": [{"label": label, "participants": participants[label]} for label in labels],
        "srm": _srm(participants, weights),
        "goals": goals,
    }


def choose_control(labels: Sequence[str], requested: str | None,
                   participants: Mapping[str, int] | None = None) -> str | None:
    """The requested variant; else the one named "control"; else the first in sort order that has
    participants (a variant seen only in goals makes a poor baseline)."""
    if requested is not None:
        if requested not in labels:
            raise BadParameter("control", f"no variant named {requested!r} (variants: {', '.join(labels) or 'none'})")
        return requested
    if CONTROL_NAME in labels:
        return CONTROL_NAME
    with_participants = [label for label in labels if participants is None or participants.get(label, 0) > 0]
    return (with_participants or list(labels) or [None])[0]


def _srm(participants: Mapping[str, int], weights: Mapping[str, float] | None) -> dict[str, Any]:
    """Every variant seen against an equal split, or against `weights`.

    A variant seen only in goal events counts 0 participants: nobody was assigned to it, yet
    its events arrived, the starkest mismatch of all. It is named in `unexpected_variants` and
    makes `mismatch` true. Weights may name a planned variant nobody was assigned to, must
    cover every variant that has participants, and may leave out the unexpected ones.
    """
    unexpected = sorted(label for label, count in participants.items() if count == 0)
    tested = dict(participants)
    if weights is not None:
        missing = sorted(label for label, count in participants.items() if count > 0 and label not in weights)
        if missing:
            raise BadParameter("weights", f"must name every variant with participants; missing {', '.join(missing)}")
        tested = {label: participants.get(label, 0) for label in weights}
    result = stats.srm(tested, weights)
    return {"p_value": _finite(result.p_value), "mismatch": result.mismatch or bool(unexpected),
            "unexpected_variants": unexpected}


def _goal_view(goal: str, labels: Sequence[str], control: str | None, participants: Mapping[str, int],
               row_of: Mapping[str, DecisionRow], confidence: float) -> dict[str, Any]:
    arms = {label: Arm(participants[label], row_of[label].uuids if label in row_of else 0) for label in labels}
    # Only arms that are proportions compete; the others get null rather than a flat prior's guess.
    competing = {label: arm.proportion for label, arm in arms.items() if arm.proportion is not None}
    best: dict[str, float | None] = {label: None for label in labels}
    if len(competing) >= 2:
        best.update({label: _finite(p) for label, p in stats.chance_to_be_best(competing).items()})
    return {
        "goal": goal,
        "variants": [_arm_view(label, arms, control, confidence) for label in labels],
        "chance_to_be_best": best,
        "value": _value_view(labels, control, participants, row_of, confidence),
    }


@dataclass(frozen=True)
class Arm:
    """A variant under a goal, counted as Gimel counts.

    Successes can outnumber trials (a goal tracked with a fresh uuid each time it happens,
    or a date window that cuts participations off); such an arm is not a proportion, and
    the statistics that need one are null.
    """
    trials: int
    successes: int

    @property
    def rate(self) -> float | None:
        return self.successes / self.trials if self.trials else None

    @property
    def proportion(self) -> stats.Proportion | None:
        """None without participants (a variant seen only in goals) or with more successes than trials."""
        return stats.Proportion(self.trials, self.successes) if 0 < self.trials and self.successes <= self.trials else None


_NO_COMPARISON = stats.Comparison(stats.Decision(None, None, None), stats.Decision(None, None, None))


def _arm_view(label: str, arms: Mapping[str, Arm], control: str | None, confidence: float) -> dict[str, Any]:
    arm = arms[label]
    proportion = arm.proportion
    view: dict[str, Any] = {
        "label": label,
        "trials": arm.trials,
        "successes": arm.successes,
        "rate": arm.rate,
        "rate_ci": _interval(stats.rate_ci(proportion, confidence)) if proportion else None,
    }
    if control is None or label == control:
        return view
    base = arms[control]
    base_proportion = base.proportion
    comparable = proportion is not None and base_proportion is not None
    comparison = stats.compare_rates(base_proportion, proportion, confidence) if comparable else _NO_COMPARISON
    view["uplift"] = {
        "absolute": arm.rate - base.rate if arm.rate is not None and base.rate is not None else None,
        "relative": arm.rate / base.rate - 1 if arm.rate is not None and base.rate else None,
        "relative_ci": _interval(comparison.fixed.relative_ci),
        "absolute_ci": _interval(comparison.fixed.absolute_ci),
    }
    view["p_value"] = _finite(comparison.fixed.p_value)
    view["p_value_adjusted"] = None  # filled in across the whole experiment
    view["sequential"] = _sequential_view(comparison.sequential)
    view["chance_to_beat_control"] = _finite(stats.chance_to_beat(base_proportion, proportion)) if comparable else None
    return view


def _sequential_view(decision: stats.Decision) -> dict[str, Any]:
    return {"p_value": _finite(decision.p_value), "p_value_adjusted": None,
            "relative_ci": _interval(decision.relative_ci), "absolute_ci": _interval(decision.absolute_ci)}


def _value_view(labels: Sequence[str], control: str | None, participants: Mapping[str, int],
                row_of: Mapping[str, DecisionRow], confidence: float) -> dict[str, Any] | None:
    """Per-participant value statistics; None when no goal event carried a value.

    The mean is per participant: participants without a value count as 0.
    """
    if not any(row.valued for row in row_of.values()):
        return None
    empty = DecisionRow("", "", 0, 0, 0.0, None)
    samples = {label: value_sample(participants[label], row_of.get(label, empty)) for label in labels}
    views = []
    for label in labels:
        row = row_of.get(label, empty)
        view: dict[str, Any] = {
            "label": label,
            "count": row.valued,
            "sum": _finite(row.total),
            "mean": _finite(row.total / participants[label]) if participants[label] else None,
        }
        if control is not None and label != control:
            sample, base = samples[label], samples[control]
            comparison = stats.compare_values(base, sample, confidence) if sample and base else _NO_COMPARISON
            fixed = comparison.fixed
            difference = (_finite(sample.mean - base.mean)
                          if sample and base and fixed.p_value is not None else None)
            view.update(
                p_value=_finite(fixed.p_value),
                p_value_adjusted=None,
                difference=difference,
                ci=_interval(fixed.absolute_ci),
                relative_ci=_interval(fixed.relative_ci),
                sequential=_sequential_view(comparison.sequential),
            )
        views.append(view)
    return {"variants": views}


def value_sample(participants: int, row: DecisionRow) -> stats.ValueSample | None:
    """Per-participant value moments (participants without a value count as 0); None without
    participants, with more valued uuids than participants (goal uuids that never participated:
    not a per-participant quantity), or with totals beyond the range of a float."""
    if participants == 0 or row.valued > participants:
        return None
    try:
        moments = value_moments(participants, row.valued, row.total, row.variance)
    except ValueError:
        return None
    return stats.ValueSample(participants=moments.participants, mean=moments.mean, variance=moments.variance)


def _adjust_for_multiple_comparisons(goals: Sequence[dict[str, Any]], correction: stats.Correction) -> None:
    """One family: every variant against the control under every goal, and every value comparison.

    The fixed-horizon p-values are adjusted together, and so are the sequential ones.
    """
    comparisons = [arm for goal in goals for arm in goal["variants"] if "p_value" in arm]
    comparisons += [arm for goal in goals if goal["value"] for arm in goal["value"]["variants"] if "p_value" in arm]
    fixed = stats.adjust_p_values([arm["p_value"] for arm in comparisons], correction)
    sequential = stats.adjust_p_values([arm["sequential"]["p_value"] for arm in comparisons], correction)
    for arm, adjusted, adjusted_sequential in zip(comparisons, fixed, sequential):
        arm["p_value_adjusted"] = adjusted
        arm["sequential"]["p_value_adjusted"] = adjusted_sequential


def _finite(number: float | None) -> float | None:
    return number if number is not None and math.isfinite(number) else None


def _interval(bounds: tuple[float, float] | None) -> list[float | None] | None:
    return None if bounds is None else [_finite(bounds[0]), _finite(bounds[1])]


# ---------------------------------------------------------------------------
# The daily view
# ---------------------------------------------------------------------------

def experiment_daily(warehouse: ReportWarehouse, namespace: str, experiment: str,
                     window: Window = ALL_TIME) -> dict[str, Any]:
    query = queries.daily_first_seen(target_of(warehouse), namespace, experiment, window)
    rows = _fetch(warehouse, query)
    _require_experiment(warehouse, namespace, experiment, window, found=bool(rows))
    return {"namespace": namespace, "experiment": experiment, **daily_view(rows)}


def daily_view(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Cumulative participants and successes per day and variant, from the first to the last day seen.

    Each uuid counts from its first day, so the last day equals the totals; a day without
    events repeats the day before.
    """
    new_on: dict[tuple[date, str, str], int] = {
        (_as_date(row["day"]), row["event"], row["variant"]): int(row["uuids"]) for row in rows
    }
    labels = sorted({variant for _, _, variant in new_on})
    goals = sorted({event for _, event, _ in new_on if event != PARTICIPATE})
    days: list[dict[str, Any]] = []
    if new_on:
        running = {(event, label): 0 for event in [PARTICIPATE, *goals] for label in labels}
        first, last = min(day for day, _, _ in new_on), max(day for day, _, _ in new_on)
        for offset in range((last - first).days + 1):
            day = first + timedelta(days=offset)
            for event, label in running:
                running[event, label] += new_on.get((day, event, label), 0)
            days.append({"day": day.isoformat(), "variants": [
                {"label": label, "participants": running[PARTICIPATE, label],
                 "successes": {goal: running[goal, label] for goal in goals}}
                for label in labels
            ]})
    return {"variants": labels, "goals": goals, "days": days}


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


# ---------------------------------------------------------------------------
# Freshness: how far the warehouse is behind the stream
# ---------------------------------------------------------------------------

def freshness(oldest_unwritten_arrival: float | None, at: float) -> dict[str, Any]:
    """`lag_seconds`: how long the oldest event not yet written has waited (0 when none waits);
    `as_of`: every event received before it is in the warehouse. Both measured before the query runs."""
    caught_up_to = at if oldest_unwritten_arrival is None else min(oldest_unwritten_arrival, at)
    return {"lag_seconds": round(at - caught_up_to, 3),
            "as_of": format_timestamp(datetime.fromtimestamp(caught_up_to, timezone.utc))}


def freshness_unknown(reason: str) -> dict[str, Any]:
    return {"lag_seconds": None, "as_of": None, "reason": reason}


def with_freshness(report: Any, measured: Mapping[str, Any]) -> Any:
    """The report carrying `freshness`: at the top of a document, in the `meta` of Gimel's list.

    Gimel's single-experiment answer is a bare list of goals with nowhere to put it; the
    results and daily views of the same experiment carry it.
    """
    if isinstance(report, dict):
        return {**report, "freshness": dict(measured)}
    if isinstance(report, list) and report and isinstance(report[0], dict) and "meta" in report[0]:
        return [{"meta": {**report[0]["meta"], "freshness": dict(measured)}}, *report[1:]]
    return report


# ---------------------------------------------------------------------------
# Deletion
# ---------------------------------------------------------------------------

def delete_experiment(warehouse: ReportWarehouse, namespace: str, experiment: str,
                      deleted_at: datetime | None = None) -> dict[str, Any]:
    """Record a tombstone every report honours, then purge the rows it hides if the warehouse lets us.

    The tombstone is recorded even when no row of the experiment is stored yet: its events
    may still be on the stream (a writer backlog), and every event received before the
    deletion stays hidden when it lands. `removed` counts the stored rows the purge removed.
    BigQuery refuses DML on rows still in its streaming buffer; the deletion holds anyway
    (the tombstone) and `python -m dalet_ops.cli purge` can remove the rows later.
    """
    target = target_of(warehouse)
    moment = deleted_at or now()
    _record_tombstone(warehouse, namespace, experiment, moment)
    purge = queries.purge_deleted(target, namespace, experiment, moment)
    try:
        removed, purged = warehouse.execute(purge.sql, purge.params) or 0, True
    except Exception as error:  # noqa: BLE001 - the tombstone already holds; the purge can wait
        log.warning("deleted %r/%r but could not purge its rows yet (run `purge` later): %s",
                    namespace, experiment, error)
        removed, purged = 0, False
    return {"deleted": True, "namespace": namespace, "experiment": experiment,
            "deleted_at": format_timestamp(moment), "purged": purged, "removed": removed}


def deletion_id(namespace: str, experiment: str, deleted_at: datetime) -> str:
    identity = json.dumps([namespace, experiment, format_timestamp(deleted_at)], ensure_ascii=False)
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]


def _record_tombstone(warehouse: ReportWarehouse, namespace: str, experiment: str, deleted_at: datetime) -> None:
    """Both warehouses take it as a row: BigQuery streams it (visible at once, unlike DML)."""
    warehouse.insert_deletion({  # type: ignore[attr-defined]
        "deletion_id": deletion_id(namespace, experiment, deleted_at), "namespace": namespace,
        "experiment": experiment, "deleted_at": format_timestamp(deleted_at),
    })


def purge_all(warehouse: ReportWarehouse) -> None:
    """Remove every row a tombstone hides; raises what the warehouse raises (e.g. the streaming buffer)."""
    purge = queries.purge_all_deleted(target_of(warehouse))
    warehouse.execute(purge.sql, purge.params)
