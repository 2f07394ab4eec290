"""Warehouse access for the reports: which tables a warehouse holds, and running a query on it."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from chalicelib.reports import queries
from chalicelib.reports.queries import Query, Target


class ReportWarehouse(Protocol):
    dialect: str
    unique_identities: bool

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None: ...


def target_of(warehouse: ReportWarehouse) -> Target:
    if warehouse.dialect == queries.BIGQUERY:
        tables = queries.bigquery_tables(warehouse.project, warehouse.dataset, warehouse.table)  # type: ignore[attr-defined]
    else:
        tables = queries.DUCKDB_TABLES
    return Target(warehouse.dialect, tables, warehouse.unique_identities)


def fetch(warehouse: ReportWarehouse, query: Query) -> list[dict[str, Any]]:
    return warehouse.fetch(query.sql, query.params)
