"""Deleting an experiment: a tombstone every report honours, and purging the rows it hides."""
from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any

from chalicelib.ingest.events import format_timestamp, now
from chalicelib.reports import queries
from chalicelib.reports.fetch import ReportWarehouse, target_of

log = logging.getLogger("dalet.reports")


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
    warehouse.insert_deletion({
        "deletion_id": deletion_id(namespace, experiment, deleted_at), "namespace": namespace,
        "experiment": experiment, "deleted_at": format_timestamp(deleted_at),
    })


def purge_all(warehouse: ReportWarehouse) -> None:
    """Remove every row a tombstone hides; raises what the warehouse raises (e.g. the streaming buffer)."""
    purge = queries.purge_all_deleted(target_of(warehouse))
    warehouse.execute(purge.sql, purge.params)
