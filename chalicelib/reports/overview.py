"""The list of every experiment of a namespace, AlephBet and Segment together (GET /overview,
GET /experiments?source=segment|all): when it ran, how many took part, whether the split is sound.

Entry: {"experiment", "source", "first_seen", "last_seen", "days_running", "participants",
"variants": [{"label", "participants"}], "srm": {"p_value", "mismatch"}}. AlephBet experiments
are seen by arrival (`received_at`) and count Gimel's participants (distinct uuids); Segment
experiments by their exposures' client time, counting people (segment_identity.py). Experiments
without goals are listed too. Most recently seen first.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from chalicelib.ingest.events import PARTICIPATE, format_timestamp
from chalicelib.reports import catalog_queries, queries, segment_queries
from chalicelib.reports.catalog_queries import CatalogCounts
from chalicelib.reports.experiments import counter_rows
from chalicelib.reports.fetch import ReportWarehouse, fetch, target_of
from chalicelib.reports.queries import ALL_TIME, Window
from chalicelib.reports.segment_queries import SOURCE as SEGMENT
from chalicelib.reports.stats import srm

ALEPHBET = "alephbet"
SOURCES = (ALEPHBET, SEGMENT)


def overview(warehouse: ReportWarehouse, namespace: str, window: Window = ALL_TIME,
             sources: Iterable[str] = SOURCES) -> list[dict[str, Any]]:
    chosen = set(sources)
    entries = (alephbet_entries(warehouse, namespace, window) if ALEPHBET in chosen else [])
    entries += segment_entries(warehouse, namespace, window) if SEGMENT in chosen else []
    entries.sort(key=lambda entry: entry["experiment"])
    entries.sort(key=lambda entry: entry["last_seen"] or "", reverse=True)
    return entries


def alephbet_entries(warehouse: ReportWarehouse, namespace: str, window: Window = ALL_TIME) -> list[dict[str, Any]]:
    """From the experiment catalog where there is one (all time): O(experiments x variants x goals) rows,
    not history; else from the events."""
    counted = catalog_queries.catalog_counts(warehouse, namespace) if window == ALL_TIME else None
    return _catalog_entries(warehouse, namespace, counted) if counted is not None else \
        _history_entries(warehouse, namespace, window)


def _participants(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Participants per experiment and variant (the uuids that sent `participate`); an experiment with goal
    rows only is listed too, with none."""
    participants: dict[str, dict[str, int]] = {}
    for row in rows:
        counted = participants.setdefault(row["experiment"], {})
        if row["event"] == PARTICIPATE:
            counted[row["variant"]] = counted.get(row["variant"], 0) + int(row["uuids"])
    return participants


def _catalog_entries(warehouse: ReportWarehouse, namespace: str, counted: CatalogCounts) -> list[dict[str, Any]]:
    participants = _participants(counted.rows)
    spans: dict[str, tuple[datetime, datetime]] = {}
    for row in counted.rows:
        first, last = catalog_queries.as_datetime(row["first_seen"]), catalog_queries.as_datetime(row["last_seen"])
        earliest, latest = spans.get(row["experiment"], (first, last))
        spans[row["experiment"]] = (min(earliest, first), max(latest, last))
    if not counted.live:
        # A counted first seen after the experiment's tombstone is its first visible event exactly (every row
        # counted then lies after it); only one at or before it (a batch with copies from both sides) is read.
        straddling = {name: deleted_at for name, deleted_at in counted.tombstones.items()
                      if name in spans and spans[name][0] <= deleted_at}
        for name, (first, last) in _spans_after_deletions(warehouse, namespace, straddling).items():
            # Only a snapshot's first seen can predate a tombstone (a firsts row spans its batch); its last
            # seen is right, and is as of the snapshot like its counts (events read today run past it).
            spans[name] = (first, last if counted.counted_as_of(name) is None else spans[name][1])
    entries = []
    for name, counted_here in participants.items():
        listed = entry(name, ALEPHBET, counted_here, *spans[name])
        as_of = counted.counted_as_of(name)
        if as_of is not None:
            listed["counted_as_of"] = format_timestamp(as_of)
        entries.append(listed)
    return entries


def _spans_after_deletions(warehouse: ReportWarehouse, namespace: str,
                           tombstones: Mapping[str, datetime]) -> dict[str, tuple[datetime, datetime]]:
    """The first and last visible event of these experiments (each with its latest tombstone), from the events.

    A snapshot's firsts row spans one batch, which may hold copies received before and after a deletion
    (a late copy); its first receipt would then predate what the experiment shows. Read from the
    earliest tombstone's day on (partitions pruned), only these experiments' rows (clustered)."""
    if not tombstones:
        return {}
    since = Window(min(tombstones.values()).astimezone(UTC).date())
    rows = fetch(warehouse, queries.experiment_spans(target_of(warehouse), namespace, since,
                                                     scope=sorted(tombstones)))
    return {row["experiment"]: (catalog_queries.as_datetime(row["first_seen"]),
                                catalog_queries.as_datetime(row["last_seen"])) for row in rows}


def _history_entries(warehouse: ReportWarehouse, namespace: str, window: Window) -> list[dict[str, Any]]:
    participants = _participants(counter_rows(warehouse, namespace, window))
    spans = {row["experiment"]: row for row in fetch(warehouse, queries.experiment_spans(
        target_of(warehouse), namespace, window))}
    return [entry(name, ALEPHBET, counted, spans.get(name, {}).get("first_seen"), spans.get(name, {}).get("last_seen"))
            for name, counted in participants.items()]


def segment_entries(warehouse: ReportWarehouse, namespace: str, window: Window = ALL_TIME) -> list[dict[str, Any]]:
    """From the Segment catalog where there is one (all time): per-person exposure and link rows, not every
    Segment message; else from the events. The same rows either way."""
    target = target_of(warehouse)
    listed = segment_queries.catalog_experiment_list(target, namespace) \
        if window == ALL_TIME and catalog_queries.has_segment_catalog(warehouse) \
        else segment_queries.experiment_list(target, namespace, window)
    rows_of: dict[str, list[Mapping[str, Any]]] = {}
    for row in fetch(warehouse, listed):
        rows_of.setdefault(row["experiment"], []).append(row)
    return [entry(name, SEGMENT, {row["variant"]: int(row["participants"]) for row in rows},
                  min(row["first_seen"] for row in rows), max(row["last_seen"] for row in rows),
                  multiple=sum(int(row["multiple"] or 0) for row in rows))
            for name, rows in rows_of.items()]


def entry(name: str, source: str, participants: Mapping[str, int], first_seen: datetime | None,
          last_seen: datetime | None, multiple: int | None = None) -> dict[str, Any]:
    split = srm(participants)
    listed = {
        "experiment": name, "source": source,
        "first_seen": format_timestamp(first_seen) if first_seen else None,
        "last_seen": format_timestamp(last_seen) if last_seen else None,
        "days_running": days_running(first_seen, last_seen),
        "participants": sum(participants.values()),
        "variants": [{"label": label, "participants": participants[label]} for label in sorted(participants)],
        "srm": {"p_value": split.p_value, "mismatch": split.mismatch},
    }
    if multiple is not None:
        listed["multiple_exposures"] = multiple
    return listed


def days_running(first_seen: datetime | None, last_seen: datetime | None) -> int | None:
    """Calendar days (UTC) from the first to the last event seen, both counted."""
    if first_seen is None or last_seen is None:
        return None
    return (_utc_day(last_seen) - _utc_day(first_seen)).days + 1


def _utc_day(moment: datetime) -> date:
    return (moment.astimezone(UTC) if moment.tzinfo else moment).date()
