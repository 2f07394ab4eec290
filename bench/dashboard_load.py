"""What one dashboard page load bills on BigQuery: the page's own reads, recorded and priced.

A load of the dashboard (chalicelib/reports/dashboard.js) asks for:
  * the list: GET /overview (AlephBet and Segment experiments);
  * a verdict chip per list entry on screen: GET /experiments/NAME/results for each (LIST_VERDICTS of
    them: the entries a 1366 x 900 screen shows);
  * the opened experiment: GET .../results and GET .../daily.
The same report functions the routes call (overview.overview; experiments.experiment_results with
verdict.with_verdict; daily.experiment_daily) run against a small BigQuery-shaped history
(tests/catalog_warehouses.AppendOnlyWarehouse: append-only events, appended catalog rows, a snapshot
compacted just after midnight, an experiment started since), and every query they send is recorded.

Each recorded query is then priced at scale, table by table, as BigQuery bills it: the bytes of the
columns it references (`reads.EVENT_COLUMN_BYTES`; Segment's columns are null on AlephBet rows, 0
bytes) times the rows it reaches after partition pruning (its `received_at` range) and clustering (a
filter on one experiment, or a list of them, reaches only their rows), at least 10 MB per table.
Nothing here runs on BigQuery: the row counts come from `Traffic`, the columns from the query text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlglot
from sqlglot import exp

from chalicelib.ingest.events import Event, stamp
from chalicelib.reports import catalog_queries, daily, experiments, overview, verdict
from chalicelib.reports.cuped_results import CupedSettings
from chalicelib.storage.schema import EVENTS
from tests.catalog_warehouses import AppendOnlyWarehouse, WithoutCatalog

NAMESPACE = "alephbet"
VIEWED = "checkout-000"          # the largest experiment, the one opened
EXPERIMENTS = 100
LIST_VERDICTS = 9                # list entries on a 1366 x 900 screen, each a chip (a /results)
NEW_TODAY = "checkout-new"       # started since the snapshot: the list recounts it
SNAPSHOT = datetime(2026, 11, 30, 0, 5, tzinfo=timezone.utc)   # taken just after midnight
NOW = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)          # the load: half a day after it
MIN_BYTES_PER_TABLE = 10 * 1024 * 1024
PARTS = ("list", "results", "daily", "chips")
STORED_REQUESTS = 2 + LIST_VERDICTS - 1    # results, daily and the chips: what stored answers serve


@dataclass(frozen=True)
class Recorded:
    part: str
    sql: str                     # BigQuery's text
    params: dict[str, Any]


@dataclass
class RecordingWarehouse:
    """A BigQuery-shaped warehouse that records each read's text (back in BigQuery's dialect) and parameters."""
    inner: Any
    part: str = ""
    recorded: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dialect, self.unique_identities = self.inner.dialect, self.inner.unique_identities
        if hasattr(self.inner, "live_catalog"):
            self.live_catalog = self.inner.live_catalog

    def fetch(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        self.recorded.append(Recorded(self.part, _bigquery_text(sql), dict(params or {})))
        return self.inner.fetch(sql, params)

    def execute(self, sql: str, params: Any = None) -> None:
        self.inner.execute(sql, params)


def _bigquery_text(duckdb_sql: str) -> str:
    return sqlglot.transpile(duckdb_sql, read="duckdb", write="bigquery")[0]


def _history() -> AppendOnlyWarehouse:
    """A small history shaped like the priced one: EXPERIMENTS experiments (a few people each), a snapshot
    just after midnight, today's events, and one experiment started since the snapshot."""
    warehouse = AppendOnlyWarehouse()

    def visitors(name: str, at: datetime, people: int) -> list[Any]:
        rows = []
        for person in range(people):
            variant = ("red", "blue")[person % 2]
            rows.append(stamp(Event(NAMESPACE, name, variant, "participate", f"{name}-{person}"), at))
            if person % 3 == 0:
                rows.append(stamp(Event(NAMESPACE, name, variant, "purchase", f"{name}-{person}", 9.0), at))
        return rows

    yesterday = SNAPSHOT - timedelta(hours=12)
    started = NOW - timedelta(days=30)      # the experiments on screen started a month ago, as priced
    for at in (started, yesterday):
        warehouse.now = at
        warehouse.insert_events([row for n in range(EXPERIMENTS) for row in visitors(f"checkout-{n:03d}", at, 3)])
    catalog_queries.compact(warehouse, SNAPSHOT)
    warehouse.now = NOW
    warehouse.insert_events([row for n in range(LIST_VERDICTS) for row in visitors(f"checkout-{n:03d}", NOW, 2)]
                            + visitors(NEW_TODAY, NOW, 4))
    return warehouse


def _results(warehouse: Any, name: str, cuped: bool) -> dict[str, Any]:
    """GET /experiments/NAME/results as the route answers it (results, then the verdict)."""
    view = experiments.experiment_results(warehouse, NAMESPACE, name, cuped=CupedSettings(enabled=cuped))
    return verdict.with_verdict(warehouse, {"source": "alephbet", **view})


def record_load(cuped: bool = False, catalog: bool = True) -> list[Recorded]:
    """The reads of one page load, by part; `catalog=False`: the same with the catalog hidden (the design
    before it), `cuped`: results adjusted with CUPED (the default locally; off on AWS)."""
    history = _history()
    try:
        recorder = RecordingWarehouse(history if catalog else WithoutCatalog(history))
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("list", lambda: overview.overview(recorder, NAMESPACE)),
            ("chips", lambda: [_results(recorder, f"checkout-{n:03d}", cuped) for n in range(1, LIST_VERDICTS)]),
            ("results", lambda: _results(recorder, VIEWED, cuped)),
            ("daily", lambda: daily.experiment_daily(recorder, NAMESPACE, VIEWED)),
        ]
        for part, step in steps:
            recorder.part = part
            step()
        return recorder.recorded
    finally:
        history.close()


# ---- pricing ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scale:
    """The priced deployment: `events_per_month` for `stored_months`; the viewed experiment holds
    `largest_share` of the traffic, the other EXPERIMENTS - 1 share the rest; each ran `running_days`."""
    events_per_month: float
    stored_months: int = 12
    largest_share: float = 0.10
    running_days: int = 30
    pre_days: int = 14

    @property
    def per_day(self) -> float:
        return self.events_per_month / 30

    def share(self, experiment: str) -> float:
        if experiment == VIEWED:
            return self.largest_share
        if experiment == NEW_TODAY:
            return (1 - self.largest_share) / (EXPERIMENTS - 1) * (NOW - SNAPSHOT).total_seconds() / 86_400 / 30
        return (1 - self.largest_share) / (EXPERIMENTS - 1)


def _referenced(sql: str) -> tuple[set[str], dict[str, set[str]]]:
    tree = sqlglot.parse_one(sql, read="bigquery")
    ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
    tables = {table.name for table in tree.find_all(exp.Table) if table.name not in ctes}
    names = {column.name for column in tree.find_all(exp.Column)}
    return tables, {"events": names & set(EVENTS.column_names), "all": names}


def _events_rows(query: Recorded, scale: Scale) -> float:
    """Rows of the events table a query reaches: one experiment's, a list of them, or the namespace's;
    over its `received_at` range (from_ts on, else all it ever had)."""
    days_since = (NOW - query.params["from_ts"]).total_seconds() / 86_400 if "from_ts" in query.params else None
    if "pre_days" in query.params or "history_from" in query.params:     # CUPED: the namespace's history
        return scale.per_day * (scale.running_days + scale.pre_days)
    names = [query.params["experiment"]] if "experiment" in query.params else query.params.get("scope")
    if names is not None:
        days = min(days_since if days_since is not None else scale.running_days, scale.running_days)
        return sum(scale.share(name) for name in names) * scale.per_day * days
    days = days_since if days_since is not None else scale.stored_months * 30
    return scale.per_day * days


def _firsts_rows(query: Recorded, scale: Scale) -> float:
    """Rows of experiment_firsts (about one per event): today's partitions, or the listed experiments' own."""
    if "_PARTITIONTIME" in query.sql:     # the partitions written since the snapshot's day
        today = scale.per_day * (NOW - SNAPSHOT.replace(hour=0, minute=0)).total_seconds() / 86_400
        return today * (scale.share(query.params["experiment"]) if "experiment" in query.params else 1.0)
    names = query.params.get("experiments")
    if names is not None:
        return sum(scale.share(name) for name in names) * scale.per_day * scale.running_days
    return scale.events_per_month * scale.stored_months


def _row_bytes(columns: set[str], sizes: dict[str, float]) -> float:
    return sum(sizes.get(column, 0.0) for column in columns)


def query_bytes(query: Recorded, scale: Scale, event_bytes: dict[str, float]) -> float:
    """What BigQuery bills for one recorded query at `scale` (10 MB at least per table referenced)."""
    tables, columns = _referenced(query.sql)
    billed = 0.0
    for table in tables:
        if table == "events":
            scanned = _events_rows(query, scale) * _row_bytes(columns["events"], event_bytes)
        elif table == "experiment_firsts":
            firsts = {name: event_bytes.get(name, 8.0) for name in ("namespace", "experiment", "variant", "event",
                                                                    "uuid")}
            firsts.update(first_at=8.0, last_at=8.0)
            scanned = _firsts_rows(query, scale) * _row_bytes(columns["all"], firsts)
        elif table == "experiment_totals":
            # A snapshot a day for a year: every group's row (4 groups an experiment) in each.
            scanned = EXPERIMENTS * 2 * 2 * 30 * scale.stored_months * 80.0
        else:   # deletions: a few rows
            scanned = 0.0
        billed += max(scanned, MIN_BYTES_PER_TABLE)
    return billed


def priced(recorded: Sequence[Recorded], scale: Scale, event_bytes: dict[str, float]) -> dict[str, float]:
    """Bytes a load bills, by part."""
    parts = dict.fromkeys(PARTS, 0.0)
    for query in recorded:
        parts[query.part] += query_bytes(query, scale, event_bytes)
    return parts
