"""When BigQuery's experiment catalog is compacted: by the writer, once a snapshot is older than
DALET_CATALOG_COMPACTION_HOURS (chalicelib/reports/catalog_queries.py's `compact`).

Running in the writer needs no function, role or schedule of its own. Each writer container looks
at the newest snapshot at most once an hour (one small query); a compaction that fails is logged and
tried again at the next look, never failing the batch, whose events are already written. Two
containers compacting at once append two snapshots; the list reads the newest.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chalicelib import config
from chalicelib.ingest.events import now
from chalicelib.reports import catalog_queries
from chalicelib.reports.catalog_queries import Compaction
from chalicelib.reports.fetch import ReportWarehouse, fetch, target_of

log = logging.getLogger(__name__)
LOOK_EVERY_SECONDS = 3600
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Looks:
    next_at: float = 0.0     # time.monotonic() of this container's next look at the newest snapshot


_LOOKS = Looks()


def period_start(moment: datetime, hours: int) -> datetime:
    """The start of the compaction period holding `moment`: periods are `hours` long from the Unix epoch
    (UTC), so a daily one starts at midnight UTC.

    A snapshot is due once the newest is older than the current period's start, so daily snapshots are
    taken just after midnight: a list's look for experiments started since the snapshot
    (catalog_queries.brought_up_to_date) then reads only today's partitions of the firsts rows."""
    length = timedelta(hours=hours)
    return _EPOCH + ((moment - _EPOCH) // length) * length


def compact_when_due(warehouse: ReportWarehouse, at: datetime | None = None,
                     clock: Callable[[], float] = time.monotonic, looks: Looks = _LOOKS) -> Compaction | None:
    """Compact if the newest snapshot is older than the current period's start (or there is none); else None."""
    if not catalog_queries.has_catalog(warehouse) or warehouse.live_catalog:  # type: ignore[attr-defined]
        return None
    if clock() < looks.next_at:
        return None
    looks.next_at = clock() + LOOK_EVERY_SECONDS
    moment = at or now()
    try:
        newest = fetch(warehouse, catalog_queries.latest_snapshot(target_of(warehouse)))[0]["as_of"]
        if newest is not None and newest >= period_start(moment, config.catalog_compaction_hours()):
            return None
        return catalog_queries.compact(warehouse, moment)
    except Exception as error:  # noqa: BLE001 - the batch is written; the next look tries again
        log.warning("could not compact the experiment catalog (the list shows the previous snapshot): %s", error)
        return None
