"""GET /health: is this Dalet up? For load balancers, uptime checks and a newcomer's first curl.

It answers without the API key, so it carries no internals: no paths, no resource names, no
error text (causes go to the log). And it is cheap to ask: the warehouse is checked with a short
deadline by a free call (DuckDB: SELECT 1; BigQuery: reading the events table's metadata, which
no query bill counts), and the answer is kept for `WAREHOUSE_CHECK_TTL_SECONDS`, so asking
/health in a loop cannot run up the warehouse's costs.

200 when the stream can take events and the warehouse answers; 503 (`"ok": false`, same shape)
otherwise, so that a load balancer's status-code check sees it.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from time import monotonic
from typing import Any

from chalicelib import config, runtime

WAREHOUSE_DEADLINE_SECONDS = 2.0
WAREHOUSE_CHECK_TTL_SECONDS = 10.0
STREAM_NOT_MEASURED = ("not measured by the deployed backend's /health (the writer's lag is a metrics query "
                       "away): python -m dalet_ops.cli status --stage STAGE reads it")
UNREACHABLE = "the warehouse did not answer; the cause is in the server's log"
MISCONFIGURED = "the server is misconfigured; the cause is in the server's log"
STREAM_UNAVAILABLE = "the embedded stream cannot be opened; the cause is in the server's log"

# Not under the "dalet" logger: Chalice stops that one's records at its own handler.
log = logging.getLogger(__name__)
Clock = Callable[[], float]


@dataclass(frozen=True)
class WarehouseCheck:
    reachable: bool
    checked_at: float                # on the monotonic clock
    reason: str | None = None
    settings: Any = None             # the settings checked with (new ones, after a restart, are checked anew)

    def to_json(self, now: float) -> dict[str, Any]:
        answer: dict[str, Any] = {"reachable": self.reachable,
                                  "checked_seconds_ago": round(max(0.0, now - self.checked_at), 1)}
        return answer if self.reason is None else {**answer, "reason": self.reason}


_lock = threading.Lock()
_last: list[WarehouseCheck] = []


def check(clock: Clock | None = None) -> tuple[int, dict[str, Any]]:
    """The status code and the document of GET /health; `clock`: monotonic seconds."""
    clock = clock or monotonic
    stream, stream_ok = stream_state()
    warehouse = warehouse_check(clock)
    ok = stream_ok and warehouse.reachable
    return (200 if ok else 503), {"ok": ok, "stream": stream, "warehouse": warehouse.to_json(clock())}


def stream_state() -> tuple[dict[str, Any], bool]:
    """The writer's lag as the reports' freshness measures it; whether the stream can take events."""
    try:
        if not runtime.settings().is_local:
            return {"lag_seconds": None, "reason": STREAM_NOT_MEASURED}, True
        measured = runtime.freshness()
    except (runtime.BackendUnavailable, config.ConfigError) as error:
        log.error("/health: the stream is unavailable: %s: %s", type(error).__name__, error)
        reason = MISCONFIGURED if isinstance(error, config.ConfigError) else STREAM_UNAVAILABLE
        return {"lag_seconds": None, "reason": reason}, False
    return {name: value for name, value in measured.items() if value is not None}, measured["lag_seconds"] is not None


def warehouse_check(clock: Clock) -> WarehouseCheck:
    """The last check if it is fresh and made with the current settings; else a new one, one at a time."""
    with _lock:
        try:
            settings = runtime.settings()
        except config.ConfigError as error:
            return _failed(None, error, clock)
        if _last and _last[0].settings is settings and clock() - _last[0].checked_at < WAREHOUSE_CHECK_TTL_SECONDS:
            return _last[0]
        try:
            # Building the warehouse is within the deadline too: deployed, it may read a secret first.
            within(WAREHOUSE_DEADLINE_SECONDS, lambda: runtime.warehouse().check_reachable(WAREHOUSE_DEADLINE_SECONDS))
        except Exception as error:  # noqa: BLE001 - whatever it is, the answer is "not reachable"
            return _failed(settings, error, clock)
        return _remember(WarehouseCheck(True, clock(), settings=settings))


def _failed(settings: Any, error: BaseException, clock: Clock) -> WarehouseCheck:
    log.error("/health: the warehouse check failed: %s: %s", type(error).__name__, error)
    if isinstance(error, TimeoutError):
        reason = f"no answer within {WAREHOUSE_DEADLINE_SECONDS:g} s"
    else:
        reason = MISCONFIGURED if isinstance(error, config.ConfigError) else UNREACHABLE
    return _remember(WarehouseCheck(False, clock(), reason, settings=settings))


def _remember(result: WarehouseCheck) -> WarehouseCheck:
    _last[:] = [result]
    return result


def within(seconds: float, call: Callable[[], Any]) -> None:
    """Run `call`, raising TimeoutError if it has not returned after `seconds`.

    A client's own timeout covers one HTTP request, not the credential refresh or DNS before
    it; a thread bounds the whole. One left running past the deadline ends on its own.
    """
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            outcome.append(error)

    worker = threading.Thread(target=run, name="dalet-health-check", daemon=True)
    worker.start()
    worker.join(seconds)
    if not outcome:
        raise TimeoutError(f"no answer within {seconds:g} s")
    if outcome[0] is not None:
        raise outcome[0]

