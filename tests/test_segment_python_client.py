"""Segment's own Python library (segment-analytics-python) sending to a real `chalice local`."""
from __future__ import annotations

import http.server
import json
import sqlite3
import threading
import urllib.error
import urllib.request
from contextlib import closing
from pathlib import Path
from typing import Any, Iterator

import duckdb
import pytest
from segment.analytics.client import Client

from chalicelib.runtime import STREAM_FILE, WAREHOUSE_FILE
from tests.local_server import LocalServer, wait_until

WRITE_KEY = "python-write-key"
NAMESPACE = "backend"


@pytest.fixture
def dalet(tmp_path: Path) -> Iterator[LocalServer]:
    with LocalServer.start(tmp_path / "dalet-data", env={"DALET_WRITE_KEYS": f"{WRITE_KEY}={NAMESPACE}"}) as server:
        yield server


def segment_client(host: str, errors: list[Any], **options: Any) -> Client:
    options.setdefault("upload_interval", 0.05)
    return Client(WRITE_KEY, host=host, on_error=lambda error, batch: errors.append(error), **options)


def stored_rows(server: LocalServer) -> list[dict[str, Any]]:
    """Every row, once the stream is drained; read with the server stopped (DuckDB has one writer)."""
    stream = server.data_dir / STREAM_FILE

    def drained() -> bool:
        with closing(sqlite3.connect(f"file:{stream}?mode=ro", uri=True, timeout=30)) as db:
            return db.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 0

    wait_until(drained, timeout=20, message="the writer to drain the stream")
    server.terminate()
    with duckdb.connect(str(server.data_dir / WAREHOUSE_FILE), read_only=True) as db:
        cursor = db.execute("SELECT * FROM events ORDER BY type, message_id")
        names = [column[0] for column in cursor.description]
        found = [dict(zip(names, row)) for row in cursor.fetchall()]
    for row in found:
        for column in ("properties", "traits", "context"):
            row[column] = json.loads(row[column]) if row[column] is not None else None
    return found


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_track_page_and_identify_land_with_their_properties(dalet, gzip):
    errors: list[Any] = []
    analytics = segment_client(dalet.base_url, errors, gzip=gzip)
    analytics.identify("user-1", {"email": "ada@example.com", "plan": "pro"}, message_id="identify-1")
    analytics.track("user-1", "Signed Up", {"plan": "pro", "seats": 3, "price": 49.5}, message_id="track-1")
    analytics.page("user-1", "Docs", "Getting Started", {"path": "/docs/start"}, message_id="page-1")
    analytics.shutdown()

    assert errors == []
    rows = stored_rows(dalet)
    assert [(row["type"], row["event"], row["user_id"], row["namespace"]) for row in rows] == [
        ("identify", None, "user-1", NAMESPACE), ("page", "Getting Started", "user-1", NAMESPACE),
        ("track", "Signed Up", "user-1", NAMESPACE)]
    identify, page, track = rows
    assert identify["traits"] == {"email": "ada@example.com", "plan": "pro"}
    assert page["properties"] == {"path": "/docs/start"}
    assert track["properties"] == {"plan": "pro", "seats": 3, "price": 49.5}
    assert track["context"]["library"]["name"] == "analytics-python"
    assert track["browser"] == "Other"        # the library's User-Agent names no browser


class _FailFirstProxy(http.server.BaseHTTPRequestHandler):
    """Forwards each request to Dalet, but answers the first with a 503: a response lost on the way back."""

    upstream = ""
    seen: list[dict[str, Any]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {name: value for name, value in self.headers.items() if name.lower() not in ("host", "content-length")}
        request = urllib.request.Request(self.upstream + self.path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                status, answer = reply.status, reply.read()
        except urllib.error.HTTPError as error:
            status, answer = error.code, error.read()
        with self.lock:
            self.seen.append({"status": status, "retry": self.headers.get("X-Retry-Count"), "body": body})
            first = len(self.seen) == 1
        if first:
            status, answer = 503, b'{"code": "unavailable", "message": "try again"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fail_first_proxy(dalet: LocalServer) -> Iterator[type[_FailFirstProxy]]:
    handler = type("Proxy", (_FailFirstProxy,), {"upstream": dalet.base_url, "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_batch_the_library_retries_lands_once_by_message_id(dalet, fail_first_proxy):
    errors: list[Any] = []
    # One batch of exactly five: the consumer waits (up to 5 s) until it holds five messages.
    analytics = segment_client(fail_first_proxy.url, errors, upload_size=5, upload_interval=5)
    for n in range(5):
        analytics.track(f"user-{n}", "Order Completed", {"revenue": 10 + n})
    analytics.shutdown()

    assert errors == []
    attempts = fail_first_proxy.seen
    assert [(attempt["status"], attempt["retry"]) for attempt in attempts] == [(200, None), (200, "1")]
    first, again = (json.loads(attempt["body"])["batch"] for attempt in attempts)
    assert [m["messageId"] for m in first] == [m["messageId"] for m in again]
    rows = stored_rows(dalet)
    assert sorted(row["message_id"] for row in rows) == sorted(m["messageId"] for m in first)
    assert sorted(row["properties"]["revenue"] for row in rows) == [10, 11, 12, 13, 14]
