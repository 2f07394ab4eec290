"""Seeding and waiting helpers for tests that go through the in-process app (`client` fixture).

    from tests.helpers import API_KEY, KEY_HEADER, track, wait_for_rows, wait_until_written

    def test_something(report_client):          # or: client + monkeypatch.setenv("DALET_API_KEY", API_KEY)
        track(report_client, event("exp", "red", "participate", "u1"), event("exp", "red", "click", "u1"))
        wait_until_written()                    # the consumer has written everything acknowledged
        wait_for_rows(2)                        # or: exactly this many rows are in the warehouse
        report_client.http.get("/experiments", headers=KEY_HEADER)

`report_client` is a fixture defined here: the `client` fixture with DALET_API_KEY set to
API_KEY. Import it next to the helpers: `from tests.helpers import report_client  # noqa: F401`.
"""
from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from typing import Any

import pytest

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
