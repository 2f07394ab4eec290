"""The running backend, built lazily: importing app.py starts nothing and creates nothing.

On the local backend the first use creates the data folder, opens the embedded stream
and warehouse, and starts the consumer thread that feeds the stream to the writer.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalicelib import config
from chalicelib.ingest.publisher import (
    KINESIS_CLIENT_SETTINGS,
    KinesisPublisher,
    LocalStreamPublisher,
    Publisher,
    PublishError,
)
from chalicelib.reports.freshness import freshness as freshness_view
from chalicelib.reports.freshness import freshness_unknown

if TYPE_CHECKING:   # the warehouse modules load only with the backend that uses them
    from chalicelib.storage.backend import BackendWarehouse
    from chalicelib.storage.warehouse_health import FaultNote

log = logging.getLogger("dalet.runtime")

_lock = threading.RLock()
_state: dict[str, Any] = {}
_stream_handler: list[Callable[[dict[str, Any], Any], Any]] = []

STREAM_FILE = "stream.sqlite3"
WAREHOUSE_FILE = "warehouse.duckdb"
WAREHOUSE_FAULT_FILE = "warehouse.fault"     # the running server's note of a warehouse fault, for `status`


class BackendUnavailable(RuntimeError):
    """The backend cannot start (unwritable data folder, missing setting...)."""


def register_stream_handler(handler: Callable[[dict[str, Any], Any], Any]) -> None:
    """The function `@app.on_kinesis_record` registered; the local consumer calls it."""
    _stream_handler[:] = [handler]


def settings() -> config.Settings:
    with _lock:
        if "settings" not in _state:
            _state["settings"] = config.load_settings()
        return _state["settings"]


def write_key_namespace(key: str | None) -> str | None:
    """The namespace a Segment write key sends to (None if unknown); locally a key is generated on first use."""
    from chalicelib.ingest import write_keys

    return write_keys.namespace_for(key, settings())


def owned_namespaces() -> frozenset[str]:
    """The namespaces that belong to a write key: /track may not write them."""
    from chalicelib.ingest import write_keys

    return write_keys.owned_namespaces(settings())


def publisher() -> Publisher:
    built = _state.get("publisher")   # built once; read without the lock on the hot path
    if built is not None:
        return built
    with _lock:
        if "publisher" not in _state:
            _state["publisher"] = _build_publisher(settings())
        return _state["publisher"]


def warehouse() -> BackendWarehouse:
    built = _state.get("warehouse")
    if built is not None:
        return built
    with _lock:
        if "warehouse" not in _state:
            _state["warehouse"] = _build_warehouse(settings())
        return _state["warehouse"]


def _build_publisher(current: config.Settings) -> Publisher:
    if current.is_local:
        start_local_pipeline()
        return LocalStreamPublisher(_state["local_stream"])
    return KinesisPublisher(kinesis_client(), current.stream_name)


def kinesis_client() -> Any:
    """boto3's Kinesis client, built on a plain botocore session.

    `import boto3` alone imports s3transfer (about a third of the track function's cold
    start) for S3 helpers this client never uses; boto3.client is a thin wrapper over
    the same botocore call, credential chain and configuration.
    """
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    try:
        return botocore.session.get_session().create_client("kinesis", config=Config(**KINESIS_CLIENT_SETTINGS))
    except BotoCoreError as error:  # e.g. no region configured
        raise BackendUnavailable(f"cannot create the Kinesis client: {error}") from error


def _build_warehouse(current: config.Settings) -> BackendWarehouse:
    if current.is_local:
        start_local_pipeline()
        return _state["warehouse"]
    from chalicelib.storage.bigquery_warehouse import BigQueryWarehouse

    return BigQueryWarehouse.from_settings(current)


# Kinesis has no cheap "oldest unwritten record" to ask per report; its measure is the
# writer's IteratorAge metric in CloudWatch, which reports do not read.
FRESHNESS_NOT_MEASURED = ("not measured on AWS: the writer's lag is the IteratorAge metric of its Kinesis "
                          "trigger in CloudWatch")


def freshness() -> dict[str, Any]:
    """How far the warehouse is behind the stream, as the reports carry it (see reports.freshness)."""
    if not settings().is_local:
        return freshness_unknown(FRESHNESS_NOT_MEASURED)
    start_local_pipeline()
    from chalicelib.ingest.local_stream import LocalConsumer

    stream = _state.get("local_stream")
    if stream is None:   # shut down meanwhile
        return freshness_unknown("the local pipeline is stopped")
    oldest = stream.oldest_unwritten_arrival(LocalConsumer.CONSUMER)
    return freshness_view(oldest, time.time())


def local_events_accepted() -> int:
    """Records the embedded stream took since this process opened it; 0 before (or after) it runs."""
    stream = _state.get("local_stream")
    return 0 if stream is None else stream.appended


def start_local_pipeline() -> None:
    """Open the embedded stream and warehouse and start the consumer, once per process."""
    with _lock:
        if "consumer" in _state:
            return
        from chalicelib.ingest.local_stream import LocalConsumer, LocalStream
        from chalicelib.storage.warehouse_health import FaultNote

        current = settings()
        try:
            current.data_dir.mkdir(parents=True, exist_ok=True)
            stream = LocalStream(current.data_dir / STREAM_FILE, current.stream_name)
            fault_note = FaultNote(current.data_dir / WAREHOUSE_FAULT_FILE)
            store = _local_warehouse(current, fault_note)
        except Exception as error:
            raise BackendUnavailable(
                f"cannot open the local data folder {current.data_dir} (DALET_DATA_DIR): {error}"
            ) from error
        if not _stream_handler:
            raise BackendUnavailable("no Kinesis handler registered: import app.py first")
        consumer = LocalConsumer(stream, _stream_handler[0])
        _state.update(local_stream=stream, warehouse=store, consumer=consumer, fault_note=fault_note)
        consumer.start()
        log.info("local pipeline started in %s", current.data_dir)


def _local_warehouse(current: config.Settings, fault_note: FaultNote) -> BackendWarehouse:
    """The DuckDB warehouse, reopened after a fatal error as the settings pace it, its faults noted for `status`."""
    from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse
    from chalicelib.storage.warehouse_health import Backoff

    return DuckDBWarehouse(current.data_dir / WAREHOUSE_FILE,
                           reopen=Backoff(current.warehouse_reopen_first_seconds,
                                          current.warehouse_reopen_longest_seconds),
                           checkpoint_mb=current.warehouse_checkpoint_mb, on_fault=fault_note.record)


def shutdown(drain_seconds: float = 0.0) -> None:
    """Stop the consumer and close files; the next use starts afresh (tests, benchmarks).

    `drain_seconds`: first let the consumer write what the stream holds, for at most that
    long (a clean stop of `make run`); what it cannot write stays in the stream for the next start.
    """
    with _lock:
        consumer = _state.get("consumer")
    if consumer is not None:
        if drain_seconds > 0:
            consumer.drain(drain_seconds)
        # Outside the lock: the consumer may be inside the handler, waiting for runtime.warehouse().
        consumer.stop()
    with _lock:
        for opened in (_state.get("warehouse"), _state.get("local_stream"), _state.get("fault_note")):
            if opened is not None and hasattr(opened, "close"):
                opened.close()
        _state.clear()


__all__ = ["BackendUnavailable", "PublishError", "freshness", "local_events_accepted", "owned_namespaces", "publisher",
           "register_stream_handler", "settings", "shutdown", "start_local_pipeline", "warehouse",
           "write_key_namespace"]
