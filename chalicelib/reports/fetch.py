"""Warehouse access for the reports: which tables a warehouse holds, and running a query on it."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, cast

from chalicelib.reports import queries
from chalicelib.reports.queries import Query, Target


class ReportWarehouse(Protocol):
    dialect: str
    unique_identities: bool

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int | None: ...

    def insert_deletion(self, row: Mapping[str, Any]) -> None:
        """Record a tombstone row (schema.DELETIONS) so that queries see it at once."""
        ...


class BigQueryLocation(Protocol):
    """Where a BigQuery warehouse keeps its tables (chalicelib.storage.bigquery_warehouse)."""

    @property
    def project(self) -> str: ...

    @property
    def dataset(self) -> str: ...

    @property
    def table(self) -> str: ...


def target_of(warehouse: ReportWarehouse) -> Target:
    if warehouse.dialect == queries.BIGQUERY:
        location = cast(BigQueryLocation, warehouse)   # the BigQuery dialect is only BigQueryWarehouse's
        tables = queries.bigquery_tables(location.project, location.dataset, location.table)
    else:
        tables = queries.DUCKDB_TABLES
    return Target(warehouse.dialect, tables, warehouse.unique_identities)


def fetch(warehouse: ReportWarehouse, query: Query) -> list[dict[str, Any]]:
    return warehouse.fetch(query.sql, query.params)
