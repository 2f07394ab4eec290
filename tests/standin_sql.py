"""Let the BigQuery stand-in answer queries from the rows it stores, so one set of rows can be
checked on both warehouses through their real clients.

    bigquery_standin.answer_queries(answer_from_stored_rows(bigquery_standin))

or, for a test to run on each warehouse from the same rows, the `each_warehouse` fixture (import it
with `bigquery_standin`, as for any fixture defined outside conftest.py).

Each query's BigQuery text, exactly as the real client sent it, with the parameters decoded by
the types the client declared, runs on an in-memory DuckDB copy of the stored tables (sqlglot
renders the text, as chalicelib.reports.queries does for the embedded warehouse). What it proves:
the BigQuery text and its typed parameters, the rows as BigQuery's insertAll keeps them (copies
by insertId, JSON columns as text), and the client's decoding give the DuckDB answer. What it
cannot prove: that BigQuery itself accepts every function the text uses.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

import duckdb
import pytest
import sqlglot

from chalicelib.storage.catalog import CATALOG_TABLES
from chalicelib.storage.segment_catalog import SEGMENT_CATALOG_TABLES
from chalicelib.storage.schema import TABLES
from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse
from tests.bigquery_standin import BigQueryStandIn, HttpError, Query, QueryAnswer

_DUCKDB_TYPES = {"STRING": "VARCHAR", "FLOAT64": "DOUBLE", "TIMESTAMP": "TIMESTAMPTZ", "BYTES": "VARCHAR",
                 "JSON": "VARCHAR", "INT64": "BIGINT", "BOOL": "BOOLEAN"}
_BIGQUERY_TYPES = {"VARCHAR": "STRING", "DOUBLE": "FLOAT64", "FLOAT": "FLOAT64", "BIGINT": "INT64",
                   "HUGEINT": "INT64", "INTEGER": "INT64", "BOOLEAN": "BOOL", "DATE": "DATE",
                   "TIMESTAMP WITH TIME ZONE": "TIMESTAMP", "TIMESTAMP": "TIMESTAMP", "JSON": "STRING"}


def answer_from_stored_rows(standin: BigQueryStandIn, project: str = "test-project",
                            dataset: str = "analytics") -> Callable[[Query], QueryAnswer]:
    def answer(query: Query) -> QueryAnswer:
        db = duckdb.connect()
        try:
            db.execute("SET TimeZone='UTC'")
            for table in (*TABLES, *CATALOG_TABLES, *SEGMENT_CATALOG_TABLES):
                _load(db, standin, dataset, table)
            sql = query.sql.replace(f"`{project}.{dataset}.", "`")
            rendered = sqlglot.transpile(sql, read="bigquery", write="duckdb")[0]
            try:
                result = db.execute(rendered, _typed_parameters(query.body.get("queryParameters", [])))
            except duckdb.Error as refused:  # BigQuery's answer to a query it cannot run: a 400 the client does not retry
                raise HttpError(400, f"the stand-in could not run the query: {refused}", "invalidQuery") from None
            names = [column[0] for column in result.description]
            kinds = [_BIGQUERY_TYPES.get(str(column[1]).upper(), "STRING") for column in result.description]
            return QueryAnswer(schema=list(zip(names, kinds)),
                               rows=[dict(zip(names, row)) for row in result.fetchall()])
        finally:
            db.close()

    return answer


def _load(db: duckdb.DuckDBPyConnection, standin: BigQueryStandIn, dataset: str, table: Any) -> None:
    columns = ", ".join(f"{column.name} {_DUCKDB_TYPES[column.type]}" for column in table.columns)
    db.execute(f"CREATE TABLE {table.name} ({columns})")
    rows = standin.stored.get(f"{dataset}.{table.name}", {}).values()
    names = table.column_names
    if rows:
        placeholders = ", ".join("?" for _ in names)
        db.executemany(f"INSERT INTO {table.name} VALUES ({placeholders})",
                       [[row.get(name) for name in names] for row in rows])


def _typed_parameters(parameters: list[dict[str, Any]]) -> dict[str, Any]:
    typed: dict[str, Any] = {}
    for parameter in parameters:
        kind = parameter["parameterType"]
        value = parameter.get("parameterValue", {})
        if kind["type"] == "ARRAY":
            typed[parameter["name"]] = [_scalar(kind["arrayType"]["type"], item.get("value"))
                                        for item in value.get("arrayValues", [])]
        else:
            typed[parameter["name"]] = _scalar(kind["type"], value.get("value"))
    return typed


def _scalar(kind: str, text: str | None) -> Any:
    if text is None:
        return None
    if kind == "TIMESTAMP":
        return datetime.fromisoformat(text.replace(" ", "T").replace("Z", "+00:00"))
    if kind == "INT64":
        return int(text)
    if kind == "FLOAT64":
        return float(text)
    if kind == "BOOL":
        return text.lower() == "true"
    return text


@pytest.fixture(params=["duckdb", "bigquery"])
def each_warehouse(request, tmp_path):
    """A DuckDB warehouse, then a BigQuery one (the real client, the stand-in answering from its rows)."""
    if request.param == "duckdb":
        store = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
        yield store
        store.close()
        return
    from chalicelib.storage.bigquery_warehouse import BigQueryWarehouse

    standin = request.getfixturevalue("bigquery_standin")
    standin.answer_queries(answer_from_stored_rows(standin))
    yield BigQueryWarehouse(standin.client, dataset="analytics", table="events")
