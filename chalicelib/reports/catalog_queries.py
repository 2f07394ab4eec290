"""Reads of the experiment catalog (chalicelib/storage/catalog.py), defined once in BigQuery SQL.

The experiment list reads `experiment_totals`: one row per (experiment, variant, event), never the
events. An experiment's results, daily series and breakdowns start their `received_at` range at the
experiment's first event as the catalog knows it, so BigQuery prunes every older partition (and
DuckDB skips older row groups by their min/max).

Two kinds of catalog: a live one (DuckDB: maintained by the writer with every batch) and snapshots
(BigQuery: `compact_totals` appends every group's totals as of a watermark; the list reads the newest
snapshot and `freshness.catalog_as_of` says which). Without a snapshot yet, callers read history.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.ingest.events import format_timestamp
from chalicelib.reports import segment_queries
from chalicelib.reports.fetch import ReportWarehouse, fetch, target_of
from chalicelib.reports.queries import Query, Target, Window, render


@dataclass(frozen=True)
class CatalogCounts:
    """Rows of (experiment, variant, event, uuids, first_seen, last_seen) and the watermark they hold."""
    rows: list[dict[str, Any]]
    as_of: datetime | None      # None: live, every written event is counted
    live: bool
    # A snapshot's experiments counted afresh from the firsts rows (new or deleted since it): up to date.
    recounted: frozenset[str] = frozenset()
    # A snapshot list's latest tombstone per experiment of the namespace (read once, for the list's spans too).
    tombstones: Mapping[str, datetime] = field(default_factory=dict)

    def counted_as_of(self, experiment: str) -> datetime | None:
        """The watermark an experiment's counts hold, or None when they count every written event."""
        return None if self.live or experiment in self.recounted else self.as_of

    def freshness(self) -> dict[str, Any]:
        """What `freshness` adds: the catalog's watermark (null when it is maintained with every write)."""
        return {"catalog_as_of": format_timestamp(self.as_of) if self.as_of else None, "catalog_live": self.live}


def live_totals(target: Target, namespace: str, experiment: str | None = None,
                scope: Sequence[str] | None = None) -> Query:
    sql = ("SELECT t.experiment, t.variant, t.event, t.uuids, t.first_seen, t.last_seen\n"
           "FROM {totals} AS t\n"
           f"WHERE t.namespace = @namespace{_selection(experiment, scope)}")
    return render(target, sql, _params(namespace, experiment, scope))


def snapshot_totals(target: Target, namespace: str, experiment: str | None = None,
                    scope: Sequence[str] | None = None) -> Query:
    """The newest snapshot's rows; always one row at least, whose `snapshot` is null when there is none."""
    sql = ("WITH latest AS (SELECT MAX(as_of) AS as_of FROM {totals})\n"
           "SELECT l.as_of AS snapshot, t.experiment, t.variant, t.event, t.uuids, t.first_seen, t.last_seen\n"
           "FROM latest AS l\n"
           "LEFT JOIN {totals} AS t ON t.as_of = l.as_of\n"
           f"  AND t.namespace = @namespace{_selection(experiment, scope)}")
    return render(target, sql, _params(namespace, experiment, scope))


def compact_totals(target: Target, as_of: datetime, previous: datetime | None = None,
                   touched: Sequence[tuple[str, str]] = ()) -> Query:
    """Append every group's totals as of `as_of` from the appended firsts rows (BigQuery's maintenance).

    A firsts row is one (group, uuid) seen in one batch; the uuid counts once per group however many
    batches saw it (COUNT DISTINCT). A tombstone hides the group's receipts up to it: a uuid counts if
    any of its receipts is later (`last_at`), exactly as the events' own tombstone filter.

    With a `previous` snapshot, only the `touched` experiments (`touched_experiments`) are recounted,
    reading only their rows (`experiment IN UNNEST(...)`, a constant filter on a clustering column, so
    BigQuery skips the other experiments' blocks); every other experiment's rows are the previous
    snapshot's, which nothing written since can change.
    """
    recount = ("SELECT f.namespace, f.experiment, f.variant, f.event, COUNT(DISTINCT f.uuid) AS uuids,\n"
               "  MIN(f.first_at) AS first_seen, MAX(f.last_at) AS last_seen, @as_of AS as_of\n"
               "FROM {firsts} AS f\n"
               "LEFT JOIN deleted AS d ON d.namespace = f.namespace AND d.experiment = f.experiment\n"
               "WHERE f.first_at < @as_of AND (d.deleted_at IS NULL OR f.last_at > d.deleted_at)")
    params: dict[str, Any] = {"as_of": as_of}
    if previous is not None:
        recount += (f"\n  AND f.experiment IN UNNEST(@experiments) AND {_pair_key('f.')} IN UNNEST(@touched)\n"
                    "GROUP BY f.namespace, f.experiment, f.variant, f.event\n"
                    "UNION ALL\n"
                    "SELECT t.namespace, t.experiment, t.variant, t.event, t.uuids, t.first_seen, t.last_seen,"
                    " @as_of AS as_of\n"
                    "FROM {totals} AS t\n"
                    f"WHERE t.as_of = @previous AND t.namespace <> '' AND {_pair_key('t.')} NOT IN UNNEST(@touched)")
        params.update(previous=previous, experiments=sorted({experiment for _, experiment in touched}),
                      touched=sorted(pair_key(*pair) for pair in touched))
    else:
        recount += "\nGROUP BY f.namespace, f.experiment, f.variant, f.event"
    # The snapshot's marker: the newest snapshot must be found even when it counts nothing (every experiment
    # deleted); no namespace is empty, so no read ever lists it.
    marker = "\nUNION ALL\nSELECT '', '', '', '', 0, @as_of, @as_of, @as_of"
    sql = ("INSERT INTO {totals} (namespace, experiment, variant, event, uuids, first_seen, last_seen, as_of)\n"
           "WITH deleted AS (\n"
           "  SELECT namespace, experiment, MAX(deleted_at) AS deleted_at FROM {deletions}\n"
           "  GROUP BY namespace, experiment\n"
           ")\n" + recount + marker)
    return render(target, sql, params)


# A tombstone is stamped (`deleted_at`) by the API before it is streamed into the deletions table, by
# another container's clock: a snapshot taken in between counts the experiment as never deleted. Tombstones
# stamped up to this long before a snapshot are therefore treated as newer than it (recounted: harmless
# when the snapshot did see them). An hour covers the insert's retries and any clock skew Lambda allows.
TOMBSTONE_SKEW = timedelta(hours=1)


def touched_experiments(target: Target, previous: datetime) -> Query:
    """The experiments with firsts rows written on or after the previous snapshot's day (only those partitions
    are read; rows still in the streaming buffer have a null _PARTITIONTIME), or a tombstone stamped since
    then (TOMBSTONE_SKEW before it included)."""
    sql = ("SELECT DISTINCT f.namespace, f.experiment FROM {firsts} AS f\n"
           "WHERE f._PARTITIONTIME >= TIMESTAMP(DATE(@previous)) OR f._PARTITIONTIME IS NULL\n"
           "UNION DISTINCT\n"
           "SELECT DISTINCT d.namespace, d.experiment FROM {deletions} AS d\n"
           "WHERE d.deleted_at >= @tombstones_since")
    return render(target, sql, {"previous": previous, "tombstones_since": previous - TOMBSTONE_SKEW})


def recount_totals(target: Target, namespace: str, experiments: Sequence[str]) -> Query:
    """The named experiments' totals from their firsts rows as written so far (a snapshot's tail).

    Clustered by (namespace, experiment), BigQuery reads only these experiments' rows: the list uses it
    for experiments the snapshot does not know yet (started since) or whose tombstone is newer than it,
    whose rows are few, or whose counts the snapshot overstates."""
    sql = ("WITH deleted AS (\n"
           "  SELECT experiment, MAX(deleted_at) AS deleted_at FROM {deletions}\n"
           "  WHERE namespace = @namespace AND experiment IN UNNEST(@experiments)\n"
           "  GROUP BY experiment\n"
           ")\n"
           "SELECT f.experiment, f.variant, f.event, COUNT(DISTINCT f.uuid) AS uuids,\n"
           "  MIN(f.first_at) AS first_seen, MAX(f.last_at) AS last_seen\n"
           "FROM {firsts} AS f\n"
           "LEFT JOIN deleted AS d ON d.experiment = f.experiment\n"
           "WHERE f.namespace = @namespace AND f.experiment IN UNNEST(@experiments)\n"
           "  AND (d.deleted_at IS NULL OR f.last_at > d.deleted_at)\n"
           "GROUP BY f.experiment, f.variant, f.event")
    return render(target, sql, {"namespace": namespace, "experiments": list(experiments)})


def latest_deletions(target: Target, namespace: str) -> Query:
    """The latest tombstone of each experiment of the namespace (the deletions table is tiny)."""
    sql = ("SELECT experiment, MAX(deleted_at) AS deleted_at FROM {deletions}\n"
           "WHERE namespace = @namespace GROUP BY experiment")
    return render(target, sql, {"namespace": namespace})


def pair_key(namespace: str, experiment: str) -> str:
    """One text per (namespace, experiment), unambiguous whatever the names hold: the namespace's length first."""
    return f"{len(namespace)}:{namespace}{experiment}"


def _pair_key(alias: str) -> str:
    return f"CONCAT(CAST(LENGTH({alias}namespace) AS STRING), ':', {alias}namespace, {alias}experiment)"


def _selection(experiment: str | None, scope: Sequence[str] | None) -> str:
    if experiment is not None:
        return " AND t.experiment = @experiment"
    return " AND t.experiment IN UNNEST(@scope)" if scope is not None else ""


def _params(namespace: str, experiment: str | None, scope: Sequence[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {"namespace": namespace}
    if experiment is not None:
        params["experiment"] = experiment
    if scope is not None:
        params["scope"] = list(scope)
    return params


def has_catalog(warehouse: ReportWarehouse) -> bool:
    return hasattr(warehouse, "live_catalog")


def has_segment_catalog(warehouse: ReportWarehouse) -> bool:
    """Whether the Segment catalog (chalicelib/storage/segment_catalog.py) holds every Segment message: always
    where it is maintained with every write (built on opening), on BigQuery once a compaction backfilled it."""
    if not has_catalog(warehouse):
        return False
    if warehouse.live_catalog:  # type: ignore[attr-defined]
        return True
    return fetch(warehouse, segment_queries.segment_catalog_backfilled(target_of(warehouse)))[0]["backfilled"] \
        is not None


def catalog_counts(warehouse: ReportWarehouse, namespace: str, experiment: str | None = None,
                   scope: Sequence[str] | None = None) -> CatalogCounts | None:
    """The catalog's counts, or None where the warehouse has no catalog or no snapshot yet."""
    if not has_catalog(warehouse):
        return None
    target = target_of(warehouse)
    if warehouse.live_catalog:  # type: ignore[attr-defined]
        return CatalogCounts(fetch(warehouse, live_totals(target, namespace, experiment, scope)), None, live=True)
    rows = fetch(warehouse, snapshot_totals(target, namespace, experiment, scope))
    if not rows or rows[0]["snapshot"] is None:
        return None
    counted = CatalogCounts([row for row in rows if row["experiment"] is not None], rows[0]["snapshot"], live=False)
    return counted if experiment is not None else brought_up_to_date(warehouse, namespace, counted, scope)


def brought_up_to_date(warehouse: ReportWarehouse, namespace: str, counted: CatalogCounts,
                       scope: Sequence[str] | None = None) -> CatalogCounts:
    """A list's snapshot with the experiments it cannot answer for recounted: those written to since it but
    absent from it (started since: a list must show a new experiment at once) and those deleted since.

    Finding them reads the firsts rows' (namespace, experiment) in the partitions written since the
    snapshot's day (`touched_experiments`, a compaction's own look); the recount reads only their rows.
    Experiments the snapshot holds keep its counts, and `counted_as_of` says so."""
    assert counted.as_of is not None
    target = target_of(warehouse)
    known = {row["experiment"] for row in counted.rows}
    touched = {row["experiment"] for row in fetch(warehouse, touched_experiments(target, counted.as_of))
               if row["namespace"] == namespace}
    tombstones = {row["experiment"]: as_datetime(row["deleted_at"])
                  for row in fetch(warehouse, latest_deletions(target, namespace))}
    deleted = {name for name, deleted_at in tombstones.items() if deleted_at >= counted.as_of - TOMBSTONE_SKEW}
    stale = (touched - known) | (deleted & (known | touched))
    if scope is not None:
        stale &= set(scope)
    rows = counted.rows
    if stale:
        fresh = fetch(warehouse, recount_totals(target, namespace, sorted(stale)))
        rows = [row for row in counted.rows if row["experiment"] not in stale] + fresh
    return CatalogCounts(rows, counted.as_of, live=False, recounted=frozenset(stale), tombstones=tombstones)


def earliest_written_since(target: Target, namespace: str, experiment: str, as_of: datetime) -> Query:
    """The earliest receipt among the experiment's firsts rows written since the snapshot's day (its clustered
    rows in those partitions, and the streaming buffer's): events received before the snapshot's first seen
    but written after it (a lagging shard, a replayed batch)."""
    sql = ("SELECT MIN(f.first_at) AS first_at FROM {firsts} AS f\n"
           "WHERE f.namespace = @namespace AND f.experiment = @experiment\n"
           "  AND (f._PARTITIONTIME >= TIMESTAMP(DATE(@as_of)) OR f._PARTITIONTIME IS NULL)")
    return render(target, sql, {"namespace": namespace, "experiment": experiment, "as_of": as_of})


def narrowed(warehouse: ReportWarehouse, namespace: str, experiment: str, window: Window) -> Window:
    """`window` starting no earlier than the experiment's first event, where the catalog knows it.

    Only the start is bound: events newer than the catalog are still read. A snapshot's first seen
    is the first event written by then; one written since may have been received earlier, so the
    earliest receipt among the rows written since is looked up too.
    """
    counted = catalog_counts(warehouse, namespace, experiment)
    if counted is None or not counted.rows:
        return window
    first = min(as_datetime(row["first_seen"]) for row in counted.rows)
    if not counted.live and counted.as_of is not None:
        late = fetch(warehouse, earliest_written_since(target_of(warehouse), namespace, experiment, counted.as_of))
        if late and late[0]["first_at"] is not None:
            first = min(first, as_datetime(late[0]["first_at"]))
    first_day = first.astimezone(UTC).date() if first.tzinfo else first.date()
    if window.first_day is not None and window.first_day >= first_day:
        return window
    return Window(first_day, window.last_day)


def as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def counter_rows_of(counted: CatalogCounts) -> list[Mapping[str, Any]]:
    return [{"experiment": row["experiment"], "variant": row["variant"], "event": row["event"],
             "uuids": row["uuids"]} for row in counted.rows]


def backfill_firsts(target: Target) -> Query:
    """Append firsts rows for every stored experiment event: the catalog of a dataset written before it.

    Rows the writer appended meanwhile may be appended again; counts are distinct uuids, so that is harmless.
    """
    sql = ("INSERT INTO {firsts} (namespace, experiment, variant, event, uuid, first_at, last_at)\n"
           "SELECT e.namespace, e.experiment, e.variant, e.event, e.uuid, MIN(e.received_at), MAX(e.received_at)\n"
           "FROM {events} AS e\n"
           "WHERE e.experiment IS NOT NULL AND e.variant IS NOT NULL AND e.event IS NOT NULL AND e.uuid IS NOT NULL\n"
           "GROUP BY e.namespace, e.experiment, e.variant, e.event, e.uuid")
    return render(target, sql, {})


def latest_snapshot(target: Target) -> Query:
    return render(target, "SELECT MAX(as_of) AS as_of FROM {totals}", {})


@dataclass(frozen=True)
class Compaction:
    as_of: datetime
    backfilled: bool
    segment_backfilled: bool = False


def compact(warehouse: ReportWarehouse, at: datetime) -> Compaction | None:
    """Append a totals snapshot as of `at` (the writer's maintenance); None for a live catalog.

    The first compaction of a dataset first backfills the firsts rows from the events and counts every
    experiment, so no snapshot ever counts only what was written since the catalog appeared; later ones
    recount only the experiments touched since the previous snapshot.
    """
    if not has_catalog(warehouse) or warehouse.live_catalog:  # type: ignore[attr-defined]
        return None
    target = target_of(warehouse)
    previous = fetch(warehouse, latest_snapshot(target))[0]["as_of"]
    if previous is None:
        backfill = backfill_firsts(target)
        warehouse.execute(backfill.sql, backfill.params)
        snapshot = compact_totals(target, at)
    else:
        touched = [(row["namespace"], row["experiment"])
                   for row in fetch(warehouse, touched_experiments(target, previous))]
        snapshot = compact_totals(target, at, previous, touched)
    warehouse.execute(snapshot.sql, snapshot.params)
    return Compaction(at, backfilled=previous is None, segment_backfilled=backfill_segment_catalog(warehouse, at))


def backfill_segment_catalog(warehouse: ReportWarehouse, at: datetime) -> bool:
    """Append the Segment catalog's rows for every stored Segment message, once (BigQuery's; whether it ran).

    Checked at every compaction, not only the first: a dataset may have had snapshots before the Segment
    catalog existed. The mark goes last, so an interrupted backfill runs again; rows the writer appended
    meanwhile, or a half backfill's, are then stored twice, which no answer counts (minima and maxima)."""
    if has_segment_catalog(warehouse):
        return False
    target = target_of(warehouse)
    for query in (segment_queries.backfill_segment_exposures(target), segment_queries.backfill_segment_links(target),
                  segment_queries.mark_segment_catalog_backfilled(target, at)):
        warehouse.execute(query.sql, query.params)
    return True
