"""A local stand-in for the BigQuery REST API v2, for testing the real client offline.

Use it through the `bigquery_standin` fixture:

    from tests.bigquery_standin import bigquery_standin  # noqa: F401

    def test_something(bigquery_standin):
        client = bigquery_standin.client          # a real google.cloud.bigquery.Client
        ...
        assert bigquery_standin.rows("analytics.events") == [...]

What it serves (enough for the official client, not a full emulator):
  datasets   GET / POST                        (POST answers 409 if it exists)
  tables     GET / POST / DELETE, tabledata list (the resource is kept as sent:
             schema, timePartitioning, clustering); PATCH of the schema, refusing
             what BigQuery refuses (dropped or retyped columns, new REQUIRED ones)
  insertAll  rows are checked against the schema (unknown field, missing REQUIRED
             field, wrong type → per-row "invalid"; without skipInvalidRows the other
             rows are "stopped"), and deduplicated by insertId as BigQuery does
             best-effort
  queries    jobs.query, jobs.insert/get, getQueryResults, answered by the function
             given to `answer_queries` (nothing is executed here; tests/standin_sql.py's
             `answer_from_stored_rows` runs the text on the rows the stand-in stored)

Scripting:
  fail_inserts(status, times, after, ...)  answer insertAll with an HTTP error
  delay_inserts(seconds, times)            answer late (the rows land first)
  reject_rows(*insert_ids)                 per-row insertErrors for those rows
  clear_failures() / accept_rows()         undo the above
  drop_table(table_id)
"""
from __future__ import annotations

import base64
import itertools
import json
import math
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from http import HTTPStatus
from typing import Any, Callable, Iterator, Mapping, Sequence

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

PROJECT = "test-project"
LOCATION = "US"

_DEFAULT_REASONS = {
    400: "invalid", 403: "accessDenied", 404: "notFound", 409: "duplicate", 413: "invalid",
    429: "rateLimitExceeded", 500: "backendError", 502: "badGateway", 503: "backendError",
}


@dataclass(frozen=True)
class Call:
    """One HTTP request the stand-in received."""
    method: str
    path: str                 # below /bigquery/v2, e.g. /projects/p/datasets/d/tables
    args: dict[str, str]
    body: Any                 # parsed JSON, or None
    size: int                 # bytes of request body
    table: str | None = None  # "dataset.table" for insertAll calls


@dataclass(frozen=True)
class Query:
    sql: str
    parameters: dict[str, Any]    # named scalar/array parameters, values as the REST API sends them (strings)
    body: dict[str, Any]          # the raw query request / job configuration


@dataclass(frozen=True)
class QueryAnswer:
    schema: Sequence[tuple[str, str]]             # (name, BigQuery type)
    rows: Sequence[Mapping[str, Any]] = ()
    dml_affected_rows: int | None = None          # a DML statement's count (numDmlAffectedRows)


@dataclass
class _InsertRule:
    status: int | None          # HTTP error status, or None for "answer normally"
    reason: str | None
    times: int | None           # None: forever
    after: int                  # let this many matching requests through first
    table: str | None
    land: bool                  # store the rows before failing (the response was lost)
    delay: float = 0.0
    seen: int = 0

    def applies(self, table: str) -> bool:
        if self.table is not None and self.table not in (table, table.split(".")[-1]):
            return False
        self.seen += 1
        if self.seen <= self.after:
            return False
        return self.times is None or self.seen - self.after <= self.times


class HttpError(Exception):
    def __init__(self, status: int, message: str, reason: str | None = None):
        super().__init__(message)
        self.status = status
        self.reason = reason or _DEFAULT_REASONS.get(status, "invalid")


@dataclass
class BigQueryStandIn:
    url: str
    project: str = PROJECT
    calls: list[Call] = field(default_factory=list)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)      # datasetId -> resource
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)        # "dataset.table" -> resource
    stored: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # "dataset.table" -> insertId -> row
    queries: list[Query] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _rules: list[_InsertRule] = field(default_factory=list)
    _rejections: dict[str, tuple[str, str]] = field(default_factory=dict)
    _answer: Callable[[Query], QueryAnswer] | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _ids: Iterator[int] = field(default_factory=itertools.count)
    client: bigquery.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = bigquery.Client(
            project=self.project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )

    # ---- what happened -------------------------------------------------------------

    @property
    def insert_requests(self) -> list[dict[str, Any]]:
        """Every insertAll body received, in order, whatever the answer was."""
        return [call.body for call in self.calls if call.table is not None]

    def inserts_into(self, table: str) -> list[Call]:
        """insertAll calls for "dataset.table" (or just "table")."""
        return [call for call in self.calls if call.table is not None and _same_table(call.table, table)]

    def calls_to(self, method: str, pattern: str) -> list[Call]:
        """Calls whose path matches the regex (searched, not anchored)."""
        return [call for call in self.calls if call.method == method and re.search(pattern, call.path)]

    @property
    def table_creates(self) -> list[Call]:
        return self.calls_to("POST", r"/datasets/[^/]+/tables$")

    @property
    def dataset_creates(self) -> list[Call]:
        return self.calls_to("POST", r"/datasets$")

    def rows(self, table: str) -> list[dict[str, Any]]:
        """The rows that landed in "dataset.table" (or just "table"), one per insertId."""
        with self._lock:
            return [row for key, rows in self.stored.items() if _same_table(key, table) for row in rows.values()]

    def insert_ids(self, table: str) -> list[str]:
        with self._lock:
            return [i for key, rows in self.stored.items() if _same_table(key, table) for i in rows]

    def table(self, table: str) -> dict[str, Any]:
        return next(resource for key, resource in self.tables.items() if _same_table(key, table))

    # ---- scripting -----------------------------------------------------------------

    def fail_inserts(
        self,
        status: int = 503,
        times: int | None = 1,
        after: int = 0,
        table: str | None = None,
        reason: str | None = None,
        land: bool = False,
    ) -> None:
        """Answer insertAll with `status` `times` times (None: forever), after `after` requests pass.

        `reason` goes in error.errors[0].reason (default per status, e.g. 503 → backendError;
        "" for none). `land=True` stores the rows first, as when a response is lost.
        """
        self._rules.append(_InsertRule(status, reason, times, after, table, land))

    def delay_inserts(self, seconds: float, times: int | None = 1, after: int = 0, table: str | None = None) -> None:
        """Answer insertAll only after `seconds`; the rows land before the wait."""
        self._rules.append(_InsertRule(None, None, times, after, table, land=True, delay=seconds))

    def reject_rows(self, *insert_ids: str, reason: str = "invalid", message: str = "scripted rejection") -> None:
        """Every insertAll answers these insertIds with a per-row error (until cleared)."""
        for insert_id in insert_ids:
            self._rejections[insert_id] = (reason, message)

    def clear_failures(self) -> None:
        """Forget fail_inserts/delay_inserts scripts (row rejections stay: see accept_rows)."""
        self._rules.clear()

    def accept_rows(self) -> None:
        """Forget reject_rows scripts."""
        self._rejections.clear()

    def drop_table(self, table: str) -> None:
        with self._lock:
            for key in [key for key in self.tables if _same_table(key, table)]:
                del self.tables[key]
                self.stored.pop(key, None)

    def answer_queries(self, answer: Callable[[Query], QueryAnswer]) -> None:
        self._answer = answer

    # ---- HTTP ----------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        raw = request.get_data()
        path = request.path.removeprefix("/bigquery/v2")
        body = json.loads(raw) if raw else None
        table = _insert_target(path)
        with self._lock:
            self.calls.append(Call(request.method, path, dict(request.args), body, len(raw), table))
        try:
            status, answer, delay = self._route(request.method, path, dict(request.args), body)
        except HttpError as error:
            status, answer, delay = error.status, _error_body(error), 0.0
        if delay:
            time.sleep(delay)
        text = "" if answer is None else json.dumps(answer)
        return Response(text, status=status, content_type="application/json")

    def _route(self, method: str, path: str, args: dict[str, str], body: Any) -> tuple[int, Any, float]:
        routes: list[tuple[str, str, Callable[..., tuple[int, Any, float]]]] = [
            ("POST", r"/projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)/insertAll", self._insert_all),
            ("GET", r"/projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)/data", self._list_rows),
            ("GET", r"/projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)", self._get_table),
            ("DELETE", r"/projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)", self._delete_table),
            ("PATCH", r"/projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)", self._patch_table),
            ("POST", r"/projects/([^/]+)/datasets/([^/]+)/tables", self._create_table),
            ("GET", r"/projects/([^/]+)/datasets/([^/]+)", self._get_dataset),
            ("POST", r"/projects/([^/]+)/datasets", self._create_dataset),
            ("POST", r"/projects/([^/]+)/queries", self._jobs_query),
            ("GET", r"/projects/([^/]+)/queries/([^/]+)", self._get_query_results),
            ("POST", r"/projects/([^/]+)/jobs", self._insert_job),
            ("GET", r"/projects/([^/]+)/jobs/([^/]+)", self._get_job),
        ]
        for route_method, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match and method == route_method:
                with self._lock:
                    return handler(*match.groups(), args=args, body=body)
        raise HttpError(404, f"the stand-in does not serve {method} {path}", "notFound")

    # datasets and tables

    def _get_dataset(self, project: str, dataset: str, **_: Any) -> tuple[int, Any, float]:
        if dataset not in self.datasets:
            raise HttpError(404, f"Not found: Dataset {project}:{dataset}")
        return 200, self.datasets[dataset], 0.0

    def _create_dataset(self, project: str, body: dict[str, Any], **_: Any) -> tuple[int, Any, float]:
        dataset = body["datasetReference"]["datasetId"]
        if dataset in self.datasets:
            raise HttpError(409, f"Already Exists: Dataset {project}:{dataset}")
        self.datasets[dataset] = {
            **body, "kind": "bigquery#dataset", "id": f"{project}:{dataset}", "etag": "e",
            "location": body.get("location", LOCATION), "creationTime": _millis_now(),
        }
        return 200, self.datasets[dataset], 0.0

    def _get_table(self, project: str, dataset: str, table: str, **_: Any) -> tuple[int, Any, float]:
        return 200, self._existing_table(project, dataset, table), 0.0

    def _delete_table(self, project: str, dataset: str, table: str, **_: Any) -> tuple[int, Any, float]:
        self._existing_table(project, dataset, table)
        self.drop_table(f"{dataset}.{table}")
        return 204, None, 0.0

    def _create_table(self, project: str, dataset: str, body: dict[str, Any], **_: Any) -> tuple[int, Any, float]:
        if dataset not in self.datasets:
            raise HttpError(404, f"Not found: Dataset {project}:{dataset}")
        key = f"{dataset}.{body['tableReference']['tableId']}"
        if key in self.tables:
            raise HttpError(409, f"Already Exists: Table {project}:{key}")
        _check_table_resource(body)
        self.tables[key] = {
            **body, "kind": "bigquery#table", "id": f"{project}:{key}", "etag": "e", "type": "TABLE",
            "creationTime": _millis_now(), "location": LOCATION,
        }
        self.stored[key] = {}
        return 200, self.tables[key], 0.0

    def _patch_table(self, project: str, dataset: str, table: str, body: dict[str, Any], **_: Any) -> tuple[int, Any, float]:
        """tables.patch of the schema, with BigQuery's rules: columns are only added (nullable) or relaxed."""
        resource = self._existing_table(project, dataset, table)
        if "schema" in body:
            _check_schema_change(resource["schema"]["fields"], body["schema"]["fields"])
            resource["schema"] = body["schema"]
        resource["etag"] = resource["etag"] + "'"
        return 200, resource, 0.0

    def _existing_table(self, project: str, dataset: str, table: str) -> dict[str, Any]:
        key = f"{dataset}.{table}"
        if key not in self.tables:
            raise HttpError(404, f"Not found: Table {project}:{key}")
        return self.tables[key]

    def _list_rows(self, project: str, dataset: str, table: str, **_: Any) -> tuple[int, Any, float]:
        resource = self._existing_table(project, dataset, table)
        fields = resource["schema"]["fields"]
        rows = list(self.stored[f"{dataset}.{table}"].values())
        return 200, {
            "kind": "bigquery#tableDataList", "totalRows": str(len(rows)),
            "rows": [{"f": [{"v": row.get(f["name"])} for f in fields]} for row in rows],
        }, 0.0

    # insertAll

    def _insert_all(self, project: str, dataset: str, table: str, body: dict[str, Any],
                    **_: Any) -> tuple[int, Any, float]:
        resource = self._existing_table(project, dataset, table)
        key = f"{dataset}.{table}"
        # Every rule counts every request to its table, so `after` means "after N requests".
        rule = next(iter([rule for rule in self._rules if rule.applies(key)]), None)
        if rule is not None and rule.status is not None:
            if rule.land:
                self._land(key, body["rows"])
            raise HttpError(rule.status, f"scripted failure {rule.status}", rule.reason)
        errors = {
            index: problems for index, entry in enumerate(body["rows"])
            if (problems := self._row_problems(resource, entry, body.get("ignoreUnknownValues", False)))
        }
        if errors and not body.get("skipInvalidRows", False):
            for index in range(len(body["rows"])):
                errors.setdefault(index, [{"reason": "stopped", "location": "", "debugInfo": "", "message": ""}])
        else:
            self._land(key, [entry for index, entry in enumerate(body["rows"]) if index not in errors])
        answer: dict[str, Any] = {"kind": "bigquery#tableDataInsertAllResponse"}
        if errors:
            answer["insertErrors"] = [{"index": index, "errors": errors[index]} for index in sorted(errors)]
        return 200, answer, rule.delay if rule else 0.0

    def _land(self, key: str, entries: list[dict[str, Any]]) -> None:
        rows = self.stored.setdefault(key, {})
        for entry in entries:
            insert_id = entry.get("insertId") or f"_no_insert_id_{next(self._ids)}"
            rows.setdefault(insert_id, entry["json"])   # the first copy wins, as in BigQuery

    def _row_problems(self, resource: dict[str, Any], entry: dict[str, Any], ignore_unknown: bool) -> list[dict[str, str]]:
        if entry.get("insertId") in self._rejections:
            reason, message = self._rejections[entry["insertId"]]
            return [{"reason": reason, "location": "", "debugInfo": "", "message": message}]
        return _schema_problems(resource["schema"]["fields"], entry["json"], ignore_unknown)

    # queries

    def _run_query(self, body: dict[str, Any]) -> QueryAnswer:
        query = Query(body.get("query", ""), _decode_parameters(body.get("queryParameters", [])), body)
        self.queries.append(query)
        if self._answer is None:
            raise HttpError(400, "the stand-in has no answer for queries: call answer_queries()", "invalidQuery")
        return self._answer(query)

    def _jobs_query(self, project: str, body: dict[str, Any], **_: Any) -> tuple[int, Any, float]:
        answer = self._run_query(body)
        job_id = f"job_{next(self._ids)}"
        self.jobs[job_id] = _query_job(project, job_id, {"query": body}, answer)
        return 200, _query_results(project, job_id, answer), 0.0

    def _insert_job(self, project: str, body: dict[str, Any], **_: Any) -> tuple[int, Any, float]:
        configuration = body.get("configuration", {})
        if "query" not in configuration:
            raise HttpError(400, "the stand-in runs query jobs only")
        answer = self._run_query(configuration["query"])
        job_id = body.get("jobReference", {}).get("jobId") or f"job_{next(self._ids)}"
        self.jobs[job_id] = _query_job(project, job_id, configuration, answer)
        return 200, self.jobs[job_id]["resource"], 0.0

    def _get_job(self, project: str, job_id: str, **_: Any) -> tuple[int, Any, float]:
        if job_id not in self.jobs:
            raise HttpError(404, f"Not found: Job {project}:{job_id}")
        return 200, self.jobs[job_id]["resource"], 0.0

    def _get_query_results(self, project: str, job_id: str, args: dict[str, str], **_: Any) -> tuple[int, Any, float]:
        if job_id not in self.jobs:
            raise HttpError(404, f"Not found: Job {project}:{job_id}")
        answer = self.jobs[job_id]["answer"]
        results = _query_results(project, job_id, answer)
        if args.get("maxResults") == "0":
            results.pop("rows", None)
        return 200, results, 0.0


def _same_table(key: str, table: str) -> bool:
    return key == table or key.split(".")[-1] == table


def _insert_target(path: str) -> str | None:
    match = re.fullmatch(r"/projects/[^/]+/datasets/([^/]+)/tables/([^/]+)/insertAll", path)
    return f"{match[1]}.{match[2]}" if match else None


def _millis_now() -> str:
    return str(int(time.time() * 1000))


def _error_body(error: HttpError) -> dict[str, Any]:
    details = [{"message": str(error), "domain": "global", "reason": error.reason}] if error.reason else []
    return {"error": {"code": error.status, "message": str(error), "errors": details,
                      "status": HTTPStatus(error.status).phrase.upper().replace(" ", "_")}}


def _check_table_resource(body: dict[str, Any]) -> None:
    """Refuse what BigQuery refuses: partitioning or clustering on a column that is not there."""
    types = {f["name"]: f["type"] for f in body.get("schema", {}).get("fields", [])}
    partition = body.get("timePartitioning", {}).get("field")
    if partition is not None and types.get(partition) not in ("TIMESTAMP", "DATE", "DATETIME"):
        raise HttpError(400, f"The field specified for time partitioning can only be of type "
                             f"TIMESTAMP, DATE or DATETIME: {partition}")
    clustering = body.get("clustering", {}).get("fields", [])
    if len(clustering) > 4 or any(name not in types for name in clustering):
        raise HttpError(400, f"Invalid clustering fields: {clustering}")


def _check_schema_change(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
    new_by_name = {f["name"]: f for f in new}
    for old_field in old:
        changed = new_by_name.get(old_field["name"])
        if changed is None:
            raise HttpError(400, f"Provided Schema does not match Table. Field {old_field['name']} is missing in new schema")
        if changed["type"] != old_field["type"]:
            raise HttpError(400, f"Provided Schema does not match Table. Field {old_field['name']} has changed type")
        if old_field.get("mode", "NULLABLE") != "REQUIRED" and changed.get("mode", "NULLABLE") == "REQUIRED":
            raise HttpError(400, f"Provided Schema does not match Table. Field {old_field['name']} has changed mode "
                                 "from NULLABLE to REQUIRED")
    old_names = {f["name"] for f in old}
    for new_field in new:
        if new_field["name"] not in old_names and new_field.get("mode") == "REQUIRED":
            raise HttpError(400, f"Provided Schema does not match Table. Cannot add required field {new_field['name']}")


def _schema_problems(fields: list[dict[str, Any]], row: Any, ignore_unknown: bool) -> list[dict[str, str]]:
    def invalid(location: str, message: str) -> dict[str, str]:
        return {"reason": "invalid", "location": location, "debugInfo": "", "message": message}

    if not isinstance(row, dict):
        return [invalid("", "Row is not a JSON object.")]
    by_name = {f["name"]: f for f in fields}
    problems = [] if ignore_unknown else [invalid(name, f"no such field: {name}.") for name in row if name not in by_name]
    for name, spec in by_name.items():
        value = row.get(name)
        if value is None:
            if spec.get("mode") == "REQUIRED":
                problems.append(invalid(name, f"Missing required field: {name}."))
        elif not _fits_type(spec["type"], value):
            problems.append(invalid(name, f"Cannot convert value to {spec['type'].lower()}: {str(value)[:40]!r}."))
    return problems


def _fits_type(kind: str, value: Any) -> bool:
    try:
        if kind == "STRING":
            return isinstance(value, str)
        if kind in ("FLOAT64", "FLOAT", "NUMERIC"):
            return not isinstance(value, bool) and math.isfinite(float(value))
        if kind in ("INT64", "INTEGER"):
            return not isinstance(value, bool) and float(value) == int(value)
        if kind in ("BOOL", "BOOLEAN"):
            return isinstance(value, bool) or str(value).lower() in ("true", "false")
        if kind == "TIMESTAMP":
            return isinstance(value, (int, float)) or datetime.fromisoformat(str(value).replace("Z", "+00:00")) is not None
        if kind == "BYTES":
            return isinstance(value, str) and base64.b64decode(value, validate=True) is not None
        if kind == "JSON":      # BigQuery's insertAll takes a JSON column as JSON text
            return isinstance(value, str) and _bigquery_json(value)
    except (TypeError, ValueError):
        return False
    return True     # types the stand-in does not check


def _refuse(text: str) -> Any:
    raise ValueError(f"not a JSON number BigQuery stores exactly: {text[:40]}")


def _bigquery_int(text: str) -> int:
    number = int(text)
    if not -(2 ** 63) <= number < 2 ** 64:
        _refuse(text)
    return number


def _bigquery_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        _refuse(text)
    return number


_BIGQUERY_JSON = json.JSONDecoder(parse_int=_bigquery_int, parse_float=_bigquery_float, parse_constant=_refuse)
BIGQUERY_JSON_MAX_DEPTH = 500


def _bigquery_json(text: str) -> bool:
    """Whether BigQuery's JSON type takes `text` (https://cloud.google.com/bigquery/docs/json-data):
    strict JSON (no NaN/Infinity), numbers that fit INT64/UINT64/FLOAT64, at most 500 levels deep."""
    try:
        value = _BIGQUERY_JSON.decode(text)
    except RecursionError:
        return False
    deepest, pending = 0, [(value, 1)]
    while pending:
        current, depth = pending.pop()
        if isinstance(current, (dict, list)):
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in (current.values() if isinstance(current, dict) else current))
    return deepest <= BIGQUERY_JSON_MAX_DEPTH


def _decode_parameters(parameters: list[dict[str, Any]]) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for parameter in parameters:
        value = parameter.get("parameterValue", {})
        if "arrayValues" in value:
            decoded[parameter.get("name", "")] = [item.get("value") for item in value["arrayValues"]]
        else:
            decoded[parameter.get("name", "")] = value.get("value")
    return decoded


def _encode_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        # The client asks for formatOptions.useInt64Timestamp: microseconds since the epoch.
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return str(round(moment.timestamp() * 1_000_000))
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _query_results(project: str, job_id: str, answer: QueryAnswer) -> dict[str, Any]:
    names = [name for name, _ in answer.schema]
    return {
        "kind": "bigquery#getQueryResultsResponse",
        "jobReference": {"projectId": project, "jobId": job_id, "location": LOCATION},
        "schema": {"fields": [{"name": name, "type": kind, "mode": "NULLABLE"} for name, kind in answer.schema]},
        "rows": [{"f": [{"v": _encode_value(row.get(name))} for name in names]} for row in answer.rows],
        "totalRows": str(len(answer.rows)),
        "jobComplete": True,
        "cacheHit": False,
        **({} if answer.dml_affected_rows is None else {"numDmlAffectedRows": str(answer.dml_affected_rows)}),
    }


def _query_job(project: str, job_id: str, configuration: dict[str, Any], answer: QueryAnswer) -> dict[str, Any]:
    now = _millis_now()
    resource = {
        "kind": "bigquery#job",
        "id": f"{project}:{LOCATION}.{job_id}",
        "jobReference": {"projectId": project, "jobId": job_id, "location": LOCATION},
        "configuration": {**configuration, "jobType": "QUERY"},
        "status": {"state": "DONE"},
        "statistics": {"creationTime": now, "startTime": now, "endTime": now,
                       "query": {"totalBytesProcessed": "0", **_statement(answer)}},
    }
    return {"resource": resource, "answer": answer}


def _statement(answer: QueryAnswer) -> dict[str, str]:
    if answer.dml_affected_rows is None:
        return {"statementType": "SELECT"}
    return {"statementType": "DML", "numDmlAffectedRows": str(answer.dml_affected_rows)}


# One server per test process: stopping a werkzeug server costs up to half a second.
_server: HTTPServer | None = None
_current: list[BigQueryStandIn] = []


def _dispatch(request: Request) -> Response:
    return _current[-1].handle(request)


def _shared_server() -> HTTPServer:
    global _server
    if _server is None:
        _server = HTTPServer(host="127.0.0.1", threaded=True)    # threaded: a delayed answer blocks no one
        _server.expect_request(re.compile(".*")).respond_with_handler(_dispatch)
        _server.start()
    return _server


@contextmanager
def serving_standin() -> Iterator[BigQueryStandIn]:
    """A fresh, empty BigQuery (no datasets, no scripts) and a client pointed at it; also for
    other processes, at `standin.url` (BIGQUERY_EMULATOR_HOST)."""
    server = _shared_server()
    server.clear_log()
    server.clear_handler_errors()
    standin = BigQueryStandIn(url=server.url_for("").rstrip("/"))
    _current.append(standin)
    try:
        yield standin
        server.check_handler_errors()    # a bug in the stand-in itself fails the test
    finally:
        _current.remove(standin)
        server.clear_log()


@pytest.fixture
def bigquery_standin() -> Iterator[BigQueryStandIn]:
    """A fresh, empty BigQuery (no datasets, no scripts) and a client pointed at it."""
    with serving_standin() as standin:
        yield standin
