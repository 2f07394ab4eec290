"""Freshness: how far the warehouse is behind the stream, as every report GET carries it."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from chalicelib.ingest.events import format_timestamp


def freshness(oldest_unwritten_arrival: float | None, at: float) -> dict[str, Any]:
    """`lag_seconds`: how long the oldest event not yet written has waited (0 when none waits);
    `as_of`: every event received before it is in the warehouse. Both measured before the query runs."""
    caught_up_to = at if oldest_unwritten_arrival is None else min(oldest_unwritten_arrival, at)
    return {"lag_seconds": round(at - caught_up_to, 3),
            "as_of": format_timestamp(datetime.fromtimestamp(caught_up_to, UTC))}


def freshness_unknown(reason: str) -> dict[str, Any]:
    return {"lag_seconds": None, "as_of": None, "reason": reason}


def with_freshness(report: Any, measured: Mapping[str, Any]) -> Any:
    """The report carrying `freshness`: at the top of a document, in the `meta` of Gimel's list.
    What the report already says of its own freshness (the experiment catalog's watermark) is kept.

    Gimel's single-experiment answer is a bare list of goals with nowhere to put it; the
    results and daily views of the same experiment carry it.
    """
    if isinstance(report, dict):
        return {**report, "freshness": {**report.get("freshness", {}), **measured}}
    if isinstance(report, list) and report and isinstance(report[0], dict) and "meta" in report[0]:
        meta = report[0]["meta"]
        return [{"meta": {**meta, "freshness": {**meta.get("freshness", {}), **measured}}}, *report[1:]]
    return report
