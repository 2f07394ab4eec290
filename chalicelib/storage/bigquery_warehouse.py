"""The BigQuery warehouse, with the official client: the writer's streaming inserts
(insertAll) and the reports' queries, DML and deletion tombstones.

Every streamed row carries an insertId (`copy_id` for events, `sequence_number` for
dead letters, `deletion_id` for deletions), so BigQuery's best-effort deduplication
makes a retried insert harmless.

An event's insertId is its `copy_id` (identity and receipt time), not its bare
`event_id`: with the bare identity, a copy tracked again after a deletion would share
the insertId of the copy the deletion hides, and BigQuery's deduplication (about a
minute) could drop the one that must count. A client re-sending an event thus lands
as a second row; the reports count distinct uuids (and one value per uuid), so it
never changes a number.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exceptions
from google.cloud import bigquery

from chalicelib import google_credentials
from chalicelib.config import Settings
from chalicelib.ingest.events import StoredEvent, format_timestamp
from chalicelib.storage import catalog, segment_catalog
from chalicelib.storage.catalog import EXPERIMENT_FIRSTS, EXPERIMENT_TOTALS
from chalicelib.storage.schema import DEAD_LETTERS, DELETIONS, EVENTS, INGESTION_TIME, REPORT_ANSWERS, Table
from chalicelib.storage.segment_catalog import SEGMENT_EXPOSURES, SEGMENT_LINKS
from chalicelib.storage.writer import DeadLetter, RowRejection, TransientWarehouseError, copy_id, dead_letter_row

MAX_ROWS_PER_REQUEST = 500
# BigQuery's insertAll limit is "10 MB" per HTTP request; decimal megabytes keeps us
# under it whichever megabyte Google means.
MAX_REQUEST_BYTES = 10_000_000
DEFAULT_INSERT_RETRY: Retry = bigquery.DEFAULT_RETRY.with_timeout(30)
NO_RETRY: Any = None    # typed Retry by google-cloud-bigquery, which documents and accepts None
QUERY_TIMEOUT = 60   # seconds a report query may take
# A stored answer is a saving, never a dependency: its insert is tried once, briefly, so an answer
# already computed is not held back by retries (the insert retry's 30 s outlasts API Gateway's 29 s).
ANSWER_STORE_TIMEOUT = 5

# Per-row reasons meaning "not inserted, try again" rather than "this row is bad".
# "stopped": the row was fine but another row in its request was invalid.
_TRANSIENT_ROW_REASONS = frozenset({"stopped", "timeout", "backendError", "internalError"})
_TRANSIENT_FORBIDDEN_REASONS = frozenset({"rateLimitExceeded", "quotaExceeded"})
_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    api_exceptions.RetryError,   # the client's own retries ran out of time
    api_exceptions.ServerError,
    api_exceptions.TooManyRequests,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    auth_exceptions.TransportError,
    ConnectionError,
    TimeoutError,
)
# The JSON the client wraps the rows in: '{"rows": [' + rows joined by ', ' + '], "skipInvalidRows": true}'.
_ENVELOPE_BYTES = len(json.dumps({"rows": [], "skipInvalidRows": True}))
_SEPARATOR_BYTES = len(", ")


class DeadLetterRejected(RuntimeError):
    """BigQuery refused a dead letter for good; the batch must not be acknowledged."""


@dataclass(frozen=True)
class _Row:
    index: int              # position in the caller's sequence
    row_id: str             # the insertId
    json: dict[str, Any]
    size: int               # bytes this row adds to the request body


class BigQueryWarehouse:
    """The `Warehouse` protocol over BigQuery streaming inserts."""

    dialect = "bigquery"            # what chalicelib.reports.queries renders for
    unique_identities = False       # a copy per receipt, deduplicated best effort: count distinct uuids
    live_catalog = False            # the experiment list reads compacted snapshots (catalog_queries.compact)

    def __init__(
        self,
        client: bigquery.Client,
        dataset: str,
        table: str,
        project: str | None = None,
        retry: Retry | None = DEFAULT_INSERT_RETRY,
        timeout: float = 10,
    ):
        self._client = client
        self._dataset = bigquery.DatasetReference(project or client.project, dataset)
        self._events = self._dataset.table(table)
        self._dead_letters = self._dataset.table(DEAD_LETTERS.name)
        self._deletions = self._dataset.table(DELETIONS.name)
        self._firsts = self._dataset.table(EXPERIMENT_FIRSTS.name)
        self._totals = self._dataset.table(EXPERIMENT_TOTALS.name)
        self._segment_exposures = self._dataset.table(SEGMENT_EXPOSURES.name)
        self._segment_links = self._dataset.table(SEGMENT_LINKS.name)
        self._answers = self._dataset.table(REPORT_ANSWERS.name)
        self._report_tables_ensured = False
        # google-cloud-bigquery types `retry` as Retry, but documents and accepts None: no retrying.
        self._retry: Any = retry
        self._timeout = timeout
        self._ensured = False

    @classmethod
    def from_settings(cls, settings: Settings, client: bigquery.Client | None = None) -> BigQueryWarehouse:
        """The configured dataset and tables (DALET_BQ_*), through `client` or the configured credentials'."""
        return cls(client or google_credentials.bigquery_client(settings), settings.bq_dataset, settings.bq_table,
                   settings.bq_project)

    def ensure_tables(self) -> None:
        """Create the dataset and both tables if missing; checked once per instance."""
        if self._ensured:
            return
        wanted = ((self._events, EVENTS), (self._dead_letters, DEAD_LETTERS), (self._firsts, EXPERIMENT_FIRSTS),
                  (self._segment_exposures, SEGMENT_EXPOSURES), (self._segment_links, SEGMENT_LINKS))
        missing = [(reference, spec) for reference, spec in wanted if not self.table_exists(reference.table_id)]
        if missing and not self._dataset_exists():
            self._client.create_dataset(
                bigquery.Dataset(self._dataset), exists_ok=True, retry=self._retry, timeout=self._timeout
            )
        for reference, spec in missing:
            # exists_ok: another container may be creating the same table right now.
            self._client.create_table(_table_resource(reference, spec), exists_ok=True,
                                      retry=self._retry, timeout=self._timeout)
        self._ensured = True

    def insert_events(self, events: Sequence[StoredEvent]) -> list[RowRejection]:
        if not events:
            return []
        with _transient_as_warehouse_error(rows_written=0):
            self.ensure_tables()
        rows = [_sized(index, copy_id(stored), stored.to_row()) for index, stored in enumerate(events)]
        fitting, too_large = _split_by_fit(rows)
        refused = [(row, _too_large(row)) for row in too_large]
        for chunk in _chunks(fitting):
            # Only the unbroken run of landed rows counts as written: a refused row must
            # not be skipped by a retry "from the first unwritten row" before it is dead-lettered.
            landed = min([chunk[0].index] + [row.index for row, _ in refused])
            try:
                with _transient_as_warehouse_error(rows_written=landed):
                    failures = self._send(self._events, chunk)
                _raise_if_transient(failures, rows_written=landed)
            except TransientWarehouseError as error:
                raise self._with_catalog_of_written(events, error) from error
            refused.extend((row, _describe(errors)) for row, errors in failures)
        refused_ids = {row.row_id for row, _ in refused}
        self._append_to_catalog([stored for stored in events if copy_id(stored) not in refused_ids])
        return [RowRejection(row.row_id, reason) for row, reason in sorted(refused, key=lambda r: r[0].index)]

    def _with_catalog_of_written(self, events: Sequence[StoredEvent],
                                 error: TransientWarehouseError) -> TransientWarehouseError:
        """The error to raise for a batch written in part, once the catalogs hold the rows written.

        The stream retries only from the first unwritten row, so the written rows' catalog rows are
        appended now, or never. If that fails too, nothing counts as written: the whole batch is
        retried, which is idempotent (insertIds, and the reports' distinct counts)."""
        if error.rows_written <= 0:
            return error
        try:
            self._append_to_catalog(events[:error.rows_written])
        except TransientWarehouseError as failed:
            return TransientWarehouseError(f"{error}; then the catalog rows of the rows written: {failed}",
                                           rows_written=0)
        return error

    def _append_to_catalog(self, events: Sequence[StoredEvent]) -> None:
        """Append the batch's experiment firsts rows (chalicelib/storage/catalog.py) and its Segment exposure
        and link rows (chalicelib/storage/segment_catalog.py).

        After the events: any failure retries the whole batch, which is idempotent (insertIds,
        and the catalogs count distinct uuids or take minima and maxima, so a row stored twice changes nothing).
        """
        firsts = [_sized(index, catalog.first_row_id(row), _timestamps_as_text(row, "first_at", "last_at"))
                  for index, row in enumerate(catalog.catalog_rows(events))]
        exposures = [
            _sized(index, segment_catalog.exposure_row_id(row), _timestamps_as_text(row, "first_at", "last_at"))
            for index, row in enumerate(segment_catalog.exposure_rows(events))]
        links = [_sized(index, segment_catalog.link_row_id(row), _timestamps_as_text(row, "linked_at"))
                 for index, row in enumerate(segment_catalog.link_rows(events))]
        for table, rows, what in ((self._firsts, firsts, "experiment catalog"),
                                  (self._segment_exposures, exposures, "Segment exposure catalog"),
                                  (self._segment_links, links, "Segment link catalog")):
            self._append(table, rows, what)

    def _append(self, table: bigquery.TableReference, rows: Sequence[_Row], what: str) -> None:
        for chunk in _chunks(rows):
            with _transient_as_warehouse_error(rows_written=0):
                failures = self._send(table, chunk)
            if failures:
                row, errors = failures[0]
                raise TransientWarehouseError(
                    f"BigQuery refused {len(failures)} {what} row(s), first {row.row_id}: {_describe(errors)}")

    def insert_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        with _transient_as_warehouse_error(rows_written=0):
            self.ensure_tables()
        rows = [_sized(index, letter.sequence_number, dead_letter_row(letter)) for index, letter in enumerate(letters)]
        for row in rows:
            if not _fits_alone(row):
                raise DeadLetterRejected(f"dead letter {row.row_id}: {_too_large(row)}")
        for chunk in _chunks(rows):
            with _transient_as_warehouse_error(rows_written=0):
                failures = self._send(self._dead_letters, chunk)
            _raise_if_transient(failures, rows_written=0)
            if failures:
                row, errors = failures[0]
                raise DeadLetterRejected(
                    f"BigQuery refused {len(failures)} dead letter(s), first {row.row_id}: {_describe(errors)}"
                )

    # ---- reports (chalicelib.reports: fetch, deletion): queries, DML and deletion tombstones ----

    @property
    def project(self) -> str:
        return self._dataset.project

    @property
    def dataset(self) -> str:
        return self._dataset.dataset_id

    @property
    def table(self) -> str:
        return self._events.table_id

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a query with named parameters; rows as dicts."""
        with _transient_as_warehouse_error(rows_written=0):
            return [dict(row.items()) for row in self._query(sql, params).result(timeout=QUERY_TIMEOUT)]

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        """Run DML; how many rows it changed. BigQuery refuses DML on rows still in the streaming buffer
        (a BadRequest)."""
        with _transient_as_warehouse_error(rows_written=0):
            job = self._query(sql, params)
            job.result(timeout=QUERY_TIMEOUT)
            return job.num_dml_affected_rows or 0

    def insert_deletion(self, row: Mapping[str, Any]) -> None:
        """Stream a tombstone: queries see it at once, unlike DML."""
        with _transient_as_warehouse_error(rows_written=0):
            self.ensure_report_tables()
            errors = self._client.insert_rows_json(self._deletions, [row], row_ids=[row["deletion_id"]],
                                                   retry=self._retry, timeout=self._timeout)
        if errors:
            raise TransientWarehouseError(f"BigQuery did not record the deletion: {_describe(errors[0]['errors'])}")

    def insert_answer(self, row: Mapping[str, Any]) -> None:
        """Stream a stored answer (schema.REPORT_ANSWERS): queries read it at once, from the streaming buffer.

        Its insertId is the key and the moment, so a retried request dedupes but a refresh soon after
        (another moment) is not taken for a copy. The table is `setup`'s: a dataset not yet migrated
        refuses (NotFound), and the caller answers without storing.
        """
        json_row = {**row, "stored_at": format_timestamp(row["stored_at"])}
        row_id = f"{row['key']}:{json_row['stored_at']}"
        with _transient_as_warehouse_error(rows_written=0):
            errors = self._client.insert_rows_json(self._answers, [json_row], row_ids=[row_id], retry=NO_RETRY,
                                                   timeout=min(self._timeout, ANSWER_STORE_TIMEOUT))
        if errors:
            raise TransientWarehouseError(f"BigQuery did not store the answer: {_describe(errors[0]['errors'])}")

    def check_reachable(self, timeout: float) -> None:
        """Raise unless BigQuery answers for the events table within `timeout` (GET /health).

        A metadata read: no query runs, so no bytes are billed, and it proves the credentials too.
        """
        self._client.get_table(self._events, retry=NO_RETRY, timeout=timeout)

    def _query(self, sql: str, params: Mapping[str, Any] | None) -> bigquery.QueryJob:
        self.ensure_report_tables()
        config = bigquery.QueryJobConfig(query_parameters=query_parameters(params or {}))
        return self._client.query(sql, job_config=config, timeout=self._timeout)

    def ensure_report_tables(self) -> None:
        """The writer's tables and the deletions table, which reports read and the writer never needs."""
        if self._report_tables_ensured:
            return
        self.ensure_tables()
        for reference, spec in ((self._deletions, DELETIONS), (self._totals, EXPERIMENT_TOTALS)):
            if not self.table_exists(reference.table_id):
                self._client.create_table(_table_resource(reference, spec), exists_ok=True,
                                          retry=self._retry, timeout=self._timeout)
        self._report_tables_ensured = True

    def migrate_tables(self) -> list[str]:
        """Bring tables an older Dalet created up to today's schema; what changed, in words.

        BigQuery allows adding nullable columns and relaxing REQUIRED to NULLABLE, which is
        all schema.py's history does, so stored rows and the partitioning stay as they are.
        """
        changes = []
        # Tables later Dalets added: created on a dataset written before them.
        added = ((self._firsts, EXPERIMENT_FIRSTS), (self._totals, EXPERIMENT_TOTALS),
                 (self._segment_exposures, SEGMENT_EXPOSURES), (self._segment_links, SEGMENT_LINKS),
                 (self._answers, REPORT_ANSWERS))
        for reference, spec in added:
            if not self.table_exists(reference.table_id):
                self._client.create_table(_table_resource(reference, spec), exists_ok=True,
                                          retry=self._retry, timeout=self._timeout)
                changes.append(f"{reference.table_id}: created")
        for reference, spec in ((self._events, EVENTS), (self._dead_letters, DEAD_LETTERS),
                                (self._deletions, DELETIONS), *added):
            table = self._client.get_table(reference, retry=self._retry, timeout=self._timeout)
            fields, changed = _migrated_schema(list(table.schema), spec)
            if changed:
                table.schema = fields
                self._client.update_table(table, ["schema"], retry=self._retry, timeout=self._timeout)
                changes.append(f"{reference.table_id}: {', '.join(changed)}")
        return changes

    def _dataset_exists(self) -> bool:
        # Creating needs bigquery.datasets.create even when the dataset is there; reading does not.
        try:
            self._client.get_dataset(self._dataset, retry=self._retry, timeout=self._timeout)
        except api_exceptions.NotFound:
            return False
        return True

    def table_exists(self, name: str) -> bool:
        """Whether the dataset holds this table."""
        # A GET first: in steady state the tables exist, and reading needs no create permission.
        try:
            self._client.get_table(self._dataset.table(name), retry=self._retry, timeout=self._timeout)
        except api_exceptions.NotFound:
            return False
        return True

    def _send(self, table: bigquery.TableReference, chunk: list[_Row]) -> list[tuple[_Row, list[dict[str, Any]]]]:
        """One insertAll request; returns the rows BigQuery reported errors for."""
        try:
            errors = self._client.insert_rows_json(
                table,
                [row.json for row in chunk],
                row_ids=[row.row_id for row in chunk],
                skip_invalid_rows=True,
                retry=self._retry,
                timeout=self._timeout,
            )
        except api_exceptions.NotFound:
            # The table vanished after we checked it; look again on the next batch.
            self._ensured = False
            raise
        return [(chunk[error["index"]], error["errors"]) for error in errors]


def query_parameters(params: Mapping[str, Any]) -> list[bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter]:
    """Named query parameters typed from their Python values (lists are arrays of strings)."""
    typed: list[bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter] = []
    for name, value in params.items():
        if isinstance(value, (list, tuple)):
            typed.append(bigquery.ArrayQueryParameter(name, "STRING", list(value)))
        else:
            typed.append(bigquery.ScalarQueryParameter(name, _SCALAR_TYPES[type(value)], value))
    return typed


_SCALAR_TYPES = {str: "STRING", datetime: "TIMESTAMP", int: "INT64", float: "FLOAT64", bool: "BOOL"}


def _timestamps_as_text(row: dict[str, Any], *columns: str) -> dict[str, Any]:
    """A catalog row as insertAll takes it: its timestamps as ISO-8601 UTC text."""
    return {**row, **{column: format_timestamp(row[column]) for column in columns}}


def _migrated_schema(stored: list[bigquery.SchemaField], spec: Table) -> tuple[list[bigquery.SchemaField], list[str]]:
    by_name = {field.name: field for field in stored}
    fields, changed = list(stored), []
    for column in spec.columns:
        field = by_name.get(column.name)
        if field is None:
            fields.append(bigquery.SchemaField(column.name, column.type, mode="NULLABLE"))
            changed.append(f"added {column.name} {column.type}")
        elif not column.required and field.mode == "REQUIRED":
            fields[fields.index(field)] = bigquery.SchemaField(field.name, field.field_type, mode="NULLABLE")
            changed.append(f"{column.name} now NULLABLE")
    return fields, changed


def _table_resource(reference: bigquery.TableReference, spec: Table) -> bigquery.Table:
    table = bigquery.Table(reference, schema=[
        bigquery.SchemaField(column.name, column.type, mode="REQUIRED" if column.required else "NULLABLE")
        for column in spec.columns
    ])
    if spec.partition_by:
        field = None if spec.partition_by == INGESTION_TIME else spec.partition_by
        expiration_ms = spec.partition_expiration_days * 86_400_000 if spec.partition_expiration_days else None
        table.time_partitioning = bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.DAY, field=field,
                                                            expiration_ms=expiration_ms)
    if spec.cluster_by:
        table.clustering_fields = list(spec.cluster_by)
    return table


def _sized(index: int, row_id: str, row: dict[str, Any]) -> _Row:
    # Serialized exactly as the client does (json.dumps defaults, so non-ASCII is \u-escaped).
    size = len(json.dumps({"json": row, "insertId": row_id}).encode("utf-8"))
    return _Row(index, row_id, row, size)


def _split_by_fit(rows: Sequence[_Row]) -> tuple[list[_Row], list[_Row]]:
    """The rows that fit in an insertAll request on their own, and those too large to."""
    fitting: list[_Row] = []
    too_large: list[_Row] = []
    for row in rows:
        (fitting if _fits_alone(row) else too_large).append(row)
    return fitting, too_large


def _fits_alone(row: _Row) -> bool:
    return _ENVELOPE_BYTES + row.size <= MAX_REQUEST_BYTES


def _too_large(row: _Row) -> str:
    return f"row too large: {row.size} bytes of JSON exceeds the {MAX_REQUEST_BYTES}-byte insertAll request limit"


def _chunks(rows: Sequence[_Row]) -> Iterator[list[_Row]]:
    """Consecutive runs of at most MAX_ROWS_PER_REQUEST rows and MAX_REQUEST_BYTES of body."""
    chunk: list[_Row] = []
    size = _ENVELOPE_BYTES
    for row in rows:
        grown = size + row.size + (_SEPARATOR_BYTES if chunk else 0)
        if chunk and (len(chunk) == MAX_ROWS_PER_REQUEST or grown > MAX_REQUEST_BYTES):
            yield chunk
            chunk, grown = [], _ENVELOPE_BYTES + row.size
        chunk.append(row)
        size = grown
    if chunk:
        yield chunk


def _describe(errors: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{error.get('reason', 'unknown')}: {error.get('message', '')}"
        + (f" (at {error['location']})" if error.get("location") else "")
        for error in errors
    )


def _raise_if_transient(failures: list[tuple[_Row, list[dict[str, Any]]]], rows_written: int) -> None:
    transient = [
        (row, errors) for row, errors in failures
        if any(error.get("reason") in _TRANSIENT_ROW_REASONS for error in errors)
    ]
    if transient:
        row, errors = transient[0]
        raise TransientWarehouseError(
            f"BigQuery did not insert {len(transient)} row(s), first {row.row_id}: {_describe(errors)}",
            rows_written=rows_written,
        )


def is_transient(error: BaseException) -> bool:
    """Would the same request succeed later? (Throttling, 5xx, network trouble.)"""
    if isinstance(error, requests.exceptions.SSLError):
        return False    # the client treats these as configuration errors, and so do we
    if isinstance(error, api_exceptions.Forbidden):
        return any(e.get("reason") in _TRANSIENT_FORBIDDEN_REASONS for e in error.errors if isinstance(e, dict))
    return isinstance(error, _TRANSIENT_ERRORS)


@contextmanager
def _transient_as_warehouse_error(rows_written: int) -> Iterator[None]:
    try:
        yield
    except TransientWarehouseError:
        raise
    except Exception as error:
        if is_transient(error):
            raise TransientWarehouseError(f"BigQuery unavailable: {error}", rows_written=rows_written) from error
        raise
