"""Puts the verdict on a results view: the primary goal and guardrails, the order they read in, today's
traffic from the warehouse, and `decision.decide`'s answer.

Adds `mode`, `primary_goal`, `guardrails` and `decision` to the view (the API contract of issue 15).
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from chalicelib.ingest.events import parse_timestamp
from chalicelib.reports import decision, ordering, queries, segment_queries
from chalicelib.reports.fetch import ReportWarehouse, fetch, target_of
from chalicelib.reports.queries import ALL_TIME, Window

SECONDS_PER_DAY = 86_400.0


def with_verdict(warehouse: ReportWarehouse, view: dict[str, Any], *, window: Window = ALL_TIME,
                 primary: str | None = None, guardrails: Sequence[str] = (),
                 mode: decision.Mode = decision.DEFAULT_MODE,
                 minimum_detectable_effect: float = decision.DEFAULT_MINIMUM_DETECTABLE_EFFECT) -> dict[str, Any]:
    chosen = ordering.choose_primary(view["goals"], primary, guardrails)
    ordering.check_guardrails(view["goals"], guardrails, chosen)
    ordering.order_view(view, chosen, guardrails)
    per_day = participants_per_day(warehouse, view, window)
    view.update(mode=mode, primary_goal=chosen, guardrails=list(guardrails))
    view["decision"] = decision.decide(view, primary=chosen, guardrails=guardrails, mode=mode,
                                       minimum_detectable_effect=minimum_detectable_effect,
                                       participants_per_day=per_day)
    return view


def participants_per_day(warehouse: ReportWarehouse, view: dict[str, Any], window: Window) -> float | None:
    """All participants over the days from the first to the last exposure, counted as at least one day
    (a few hours of traffic would otherwise extrapolate to absurd daily rates); None without participants."""
    total = sum(int(variant["participants"]) for variant in view.get("variants", []))
    if total == 0:
        return None
    first, last = _exposure_span(warehouse, view, window)
    days = _days_between(first, last) if isinstance(first, datetime) and isinstance(last, datetime) else 0.0
    return total / max(1.0, days)


def _exposure_span(warehouse: ReportWarehouse, view: dict[str, Any], window: Window) -> tuple[Any, Any]:
    """The first and last exposure: the results' own `exposure` where they carry it (AlephBet's, read in
    the same scan), else one query."""
    exposed = view.get("exposure")
    if exposed:
        return parse_timestamp(exposed["first_at"]), parse_timestamp(exposed["last_at"])
    if "exposure" in view and view.get("source") != segment_queries.SOURCE:
        return None, None      # AlephBet results that saw no participation
    spans = segment_queries.exposure_span if view.get("source") == segment_queries.SOURCE else queries.exposure_span
    rows = fetch(warehouse, spans(target_of(warehouse), view["namespace"], view["experiment"], window))
    return (rows[0].get("first_at"), rows[0].get("last_at")) if rows else (None, None)


def _days_between(first: datetime, last: datetime) -> float:
    return (last - first).total_seconds() / SECONDS_PER_DAY
