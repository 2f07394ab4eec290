"""What the running backend's warehouse offers, whichever it is (DuckDB locally, BigQuery deployed).

`runtime.warehouse()` returns one: the writer inserts into it, the reports query it, /health probes it.
Only read by the type checker (runtime imports it under TYPE_CHECKING): it names no class to build.
"""
from __future__ import annotations

from typing import Protocol

from chalicelib.reports.stored_answers import AnswerWarehouse
from chalicelib.storage.writer import Warehouse


class BackendWarehouse(AnswerWarehouse, Warehouse, Protocol):
    def check_reachable(self, timeout: float) -> None:
        """Raise unless the warehouse answers within `timeout` seconds (GET /health)."""
        ...
