"""Seeding and waiting helpers for tests that go through the in-process app (`client` fixture).

    from tests.helpers import API_KEY, KEY_HEADER, track, wait_for_rows, wait_until_written

    def test_something(report_client):          # or: client + monkeypatch.setenv("DALET_API_KEY", API_KEY)
        track(report_client, event("exp", "red", "participate", "u1"), event("exp", "red", "click", "u1"))
        wait_until_written()                    # the consumer has written everything acknowledged
        wait_for_rows(2)                        # or: exactly this many rows are in the warehouse
        report_client.http.get("/experiments", headers=KEY_HEADER)

`report_client` is a fixture defined here: the `client` fixture with DALET_API_KEY set to
API_KEY. Import it next to the helpers: `from tests.helpers import report_client  # noqa: F401`.
`writer_gate` (import it too) puts the writer behind a WriterGate: `writer_gate.close()` makes
the consumer wait inside the handler (the stream backs up), `writer_gate.open()` lets it go.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import closing
from typing import Any, Callable

import pytest

from chalicelib import runtime
from tests.local_server import wait_until

API_KEY = "test-report-key"
KEY_HEADER = {"x-api-key": API_KEY}


@pytest.fixture
def report_client(client, monkeypatch):
    """The in-process app with a known report API key (set before the settings are first read)."""
    monkeypatch.setenv("DALET_API_KEY", API_KEY)
    return client


def event(experiment: str, variant: str, name: str, uuid: str, **extra: Any) -> dict[str, Any]:
    """One tracked event as a client sends it (namespace defaults to alephbet, as on /track)."""
    return {"experiment": experiment, "variant": variant, "event": name, "uuid": uuid, **extra}


def track(client: Any, *events: dict[str, Any]) -> int:
    """POST the events to /track in batches of 500; the number acknowledged."""
    accepted = 0
    for start in range(0, len(events), 500):
        reply = client.http.post("/track", body=json.dumps(list(events[start:start + 500])),
                                 headers={"content-type": "application/json"})
        assert reply.status_code == 200, reply.body
        accepted += json.loads(reply.body)["accepted"]
    return accepted


def stream_backlog() -> int:
    """Records acknowledged but not yet written and checkpointed by the local consumer."""
    from chalicelib import runtime

    path = runtime.settings().data_dir / runtime.STREAM_FILE
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
        return db.execute("SELECT COUNT(*) FROM records").fetchone()[0]


def wait_until_written(timeout: float = 20.0) -> None:
    """Block until the consumer has written every acknowledged event (duplicates included)."""
    wait_until(lambda: stream_backlog() == 0, timeout=timeout, interval=0.02,
               message="the writer to catch up with the stream")


def stored_row_count() -> int:
    from chalicelib import runtime

    return runtime.warehouse().fetch("SELECT COUNT(*) AS n FROM events")[0]["n"]


def wait_for_rows(count: int, timeout: float = 20.0) -> None:
    """Block until the warehouse holds exactly `count` event rows."""
    wait_until(lambda: stored_row_count() == count, timeout=timeout, interval=0.02,
               message=f"{count} rows in the warehouse")


class WriterGate:
    """Wraps the Kinesis handler; while closed, the consumer waits inside it, so the stream backs up."""

    def __init__(self, handler: Callable[[dict[str, Any], Any], Any]):
        self._handler = handler
        self._open = threading.Event()
        self._open.set()
        self.holding = threading.Event()

    def close(self) -> None:
        self.holding.clear()
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    def __call__(self, kinesis_event: dict[str, Any], context: Any) -> Any:
        if not self._open.is_set():
            self.holding.set()
            self._open.wait(30)
        return self._handler(kinesis_event, context)


@pytest.fixture
def writer_gate(report_client, monkeypatch) -> WriterGate:
    """The in-process app's writer behind a WriterGate (import it next to report_client)."""
    import app

    gated = WriterGate(app.write_events)
    monkeypatch.setattr(runtime, "_stream_handler", [gated])
    return gated
