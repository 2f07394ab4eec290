"""A real `chalice local` on the embedded default: events in over HTTP, out through the report
API, and row by row out of the DuckDB file once the server has stopped (DuckDB lets one
process open it for writing). The SQLite stream's backlog (records the writer has not yet
committed and checkpointed) says when the writer has caught up.
"""
from __future__ import annotations

import http.client
import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, urlencode

import duckdb
import pytest

from tests.local_server import PROJECT_DIR, LocalServer, local_servers, wait_until  # noqa: F401
from tests.tmpfs import fill_up, mounted_tmpfs

EVENT = {"namespace": "e2e", "experiment": "my a/b test", "variant": "A", "event": "participate"}
API_KEY = "end-to-end-key"
SERVER_ENV = {"DALET_API_KEY": API_KEY}
BROWSER_IMAGE_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"


def stream_backlog(data_dir: Path) -> int:
    """Records appended but not yet written to the warehouse and checkpointed."""
    with closing(sqlite3.connect(f"file:{data_dir / 'stream.sqlite3'}?mode=ro", uri=True, timeout=30)) as db:
        return db.execute("SELECT COUNT(*) FROM records").fetchone()[0]


def wait_until_written(data_dir: Path, timeout: float = 30.0) -> None:
    wait_until(lambda: stream_backlog(data_dir) == 0, timeout=timeout, interval=0.05,
               message="the writer to catch up with the stream")


def stored_rows(data_dir: Path) -> list[dict[str, Any]]:
    """Every row of the events table; only once the server has stopped."""
    with closing(duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)) as db:
        cursor = db.execute("SELECT namespace, experiment, variant, event, uuid, value FROM events ORDER BY uuid")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def uuid_counts(data_dir: Path) -> Counter[str]:
    return Counter(row["uuid"] for row in stored_rows(data_dir))


def report(server: LocalServer) -> dict[str, Any] | None:
    """The results report of EVENT's experiment; None while it has no events yet."""
    reply = server.request("GET", f"/experiments/{quote(EVENT['experiment'], safe='')}/results",
                           query={"namespace": EVENT["namespace"]}, headers={"x-api-key": API_KEY})
    if reply.status == 404:
        return None
    assert reply.status == 200, reply.text
    return reply.json()


def participants(server: LocalServer) -> int:
    answer = report(server)
    return sum(variant["participants"] for variant in answer["variants"]) if answer else 0


# --- the happy path ---------------------------------------------------------------------------------

def test_events_sent_by_get_post_beacon_and_pixel_land_in_the_warehouse_once(local_servers, tmp_path):
    data_dir = tmp_path / "data"
    server = local_servers(data_dir, env=SERVER_ENV)

    # AlephBet's GET, with its '+' for spaces; then its retry of the same event.
    for _ in range(2):
        reply = server.request("GET", "/track", query={**EVENT, "uuid": "get-ü"})
        assert reply.status == 200 and reply.json() == {"ok": True, "accepted": 1}
    reply = server.request("POST", "/track", json=[{**EVENT, "uuid": f"post-{n}", "value": n} for n in range(3)])
    assert reply.status == 200 and reply.json()["accepted"] == 3
    beacon = json.dumps({**EVENT, "uuid": "beacon", "event": "purchase", "value": "12.5"}).encode()
    assert server.request("POST", "/track", body=beacon,
                          headers={"Content-Type": "text/plain;charset=UTF-8"}).status == 200
    pixel = server.request("GET", "/track.gif", query={**EVENT, "uuid": "pixel"},
                           headers={"Accept": BROWSER_IMAGE_ACCEPT})
    assert pixel.status == 200 and pixel.headers["content-type"] == "image/gif"
    assert pixel.body.startswith(b"GIF89a")
    bare_pixel = server.request("GET", "/track.gif", query={**EVENT, "uuid": "pixel-no-accept"})   # no Accept
    assert bare_pixel.status == 200 and bare_pixel.headers["access-control-allow-origin"] == "*"

    # Visible in the report (under this light load, typically well within 2 s).
    wait_until(lambda: participants(server) == 6, timeout=30, message="6 participants in the report")
    (goal,) = report(server)["goals"]
    assert goal["goal"] == "purchase" and goal["variants"][0]["successes"] == 1
    server.stop()
    rows = {row["uuid"]: row for row in stored_rows(data_dir)}
    assert sorted(rows) == ["beacon", "get-ü", "pixel", "pixel-no-accept", "post-0", "post-1", "post-2"]
    assert rows["get-ü"] == {**EVENT, "uuid": "get-ü", "value": None}
    assert rows["beacon"]["event"] == "purchase" and rows["beacon"]["value"] == 12.5
    assert [rows[f"post-{n}"]["value"] for n in range(3)] == [0.0, 1.0, 2.0]


def test_the_preflight_for_a_cross_origin_post_is_answered(local_servers, tmp_path):
    server = local_servers(tmp_path / "data")
    reply = server.request("OPTIONS", "/track", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert reply.status == 200
    assert reply.headers["access-control-allow-origin"] == "*"
    assert "POST" in reply.headers["access-control-allow-methods"]


def test_events_acknowledged_just_before_a_kill_9_are_written_after_the_restart(local_servers, tmp_path):
    data_dir = tmp_path / "data"
    server = local_servers(data_dir, env=SERVER_ENV)
    assert server.request("POST", "/track", json=[{**EVENT, "uuid": f"r-{n}"} for n in range(50)]).status == 200
    server.kill()
    server.restart()
    assert server.request("GET", "/track", query={**EVENT, "uuid": "wake-up"}).status == 200
    wait_until_written(data_dir)
    server.stop()
    assert uuid_counts(data_dir) == Counter([f"r-{n}" for n in range(50)] + ["wake-up"])


# --- kill -9 under load ---------------------------------------------------------------------------

class SteadyLoad:
    """POSTs and GETs unique events from two threads; remembers what was sent and what got a 200."""

    def __init__(self, server: LocalServer):
        self.server = server
        self.sent: set[str] = set()
        self.acknowledged: list[str] = []
        self.refused: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(name,), daemon=True) for name in ("a", "b")]

    def __enter__(self) -> "SteadyLoad":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(30)

    def acknowledged_count(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def _run(self, name: str) -> None:
        rng = random.Random()
        number = 0
        while not self._stopping.is_set():
            size = rng.choice([1, 1, 3, 10, 40])
            uuids = [f"{name}-{number + k}" for k in range(size)]
            number += size
            with self._lock:
                self.sent.update(uuids)
            status = self._send(uuids)
            with self._lock:
                if status == 200:
                    self.acknowledged.extend(uuids)
                else:
                    self.refused[status] += 1
            if status != 200:
                self._stopping.wait(0.05)

    def _send(self, uuids: list[str]) -> int:
        """The HTTP status, or 0 when the connection failed (the server was being killed)."""
        if len(uuids) == 1:
            method, path, body = "GET", "/track?" + urlencode({**EVENT, "uuid": uuids[0]}), None
        else:
            method, path, body = "POST", "/track", json.dumps([{**EVENT, "uuid": u} for u in uuids])
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
            try:
                connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                return response.status
            finally:
                connection.close()
        except (OSError, http.client.HTTPException):
            return 0


def test_every_acknowledged_event_survives_kill_9_exactly_once(local_servers, tmp_path):
    data_dir = tmp_path / "data"
    server = local_servers(data_dir, env=SERVER_ENV)
    rng = random.Random()
    with SteadyLoad(server) as load:
        for _ in range(3):
            progress = load.acknowledged_count() + 30
            wait_until(lambda: load.acknowledged_count() >= progress, timeout=60, message="load to flow")
            threading.Event().wait(rng.uniform(0.0, 0.6))     # a random moment mid-stream
            server.kill()
            server.restart(port=server.port)
        progress = load.acknowledged_count() + 30
        wait_until(lambda: load.acknowledged_count() >= progress, timeout=60, message="load after the last restart")
    wait_until_written(data_dir)
    reported = participants(server)
    server.stop()

    stored = uuid_counts(data_dir)
    assert reported == len(stored)          # the report counts each stored event once
    missing = [uuid for uuid in load.acknowledged if uuid not in stored]
    assert missing == [], f"acknowledged with 200 but lost: {missing[:10]}"
    assert [uuid for uuid, count in stored.items() if count > 1] == []
    assert set(stored) <= load.sent
    assert set(load.refused) <= {0, 503}, load.refused     # no 4xx or 5xx other than "retry later"


# --- an unusable data folder -------------------------------------------------------------------------

@pytest.fixture
def folder_under_a_file(tmp_path) -> Path:
    # Root ignores permissions, so "unwritable" means a path no one can create: under a file.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker / "data"


def test_local_info_refuses_an_unusable_data_folder_naming_dalet_data_dir(folder_under_a_file):
    env = {name: value for name, value in os.environ.items() if not name.startswith("DALET_")}
    result = subprocess.run([sys.executable, "-m", "dalet_ops.cli", "local-info"], cwd=PROJECT_DIR,
                            env={**env, "DALET_DATA_DIR": str(folder_under_a_file)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "DALET_DATA_DIR" in result.stderr and str(folder_under_a_file) in result.stderr


def test_track_answers_503_and_logs_dalet_data_dir_when_the_folder_is_unusable(local_servers, tmp_path,
                                                                               folder_under_a_file):
    server = local_servers(tmp_path / "log-only", env={"DALET_DATA_DIR": str(folder_under_a_file)})
    reply = server.request("POST", "/track", json={**EVENT, "uuid": "u"})
    assert reply.status == 503
    assert reply.json()["reason"] == "stream_unavailable"      # the cause is for the operator's log only
    assert "DALET_DATA_DIR" in server.log()
    assert server.request("GET", "/track", query={**EVENT, "uuid": "u"}).status == 503   # still not a 200


@pytest.fixture
def tiny_disk(tmp_path) -> Iterator[Path]:
    """A 4 MiB tmpfs, so the data folder can really run out of space (see tests/tmpfs.py)."""
    with mounted_tmpfs(tmp_path / "data", "4m") as mount_point:
        yield mount_point


def test_a_full_disk_answers_503_and_loses_nothing_it_acknowledged(local_servers, tiny_disk):
    server = local_servers(tiny_disk)
    assert server.request("GET", "/track", query={**EVENT, "uuid": "before"}).status == 200
    wait_until_written(tiny_disk)

    filler = tiny_disk / "filler"
    fill_up(filler)
    acknowledged, reasons = ["before"], []
    for n in range(40):
        batch = [f"full-{n}-{k}" for k in range(5)]
        reply = server.request("POST", "/track", json=[{**EVENT, "uuid": u} for u in batch])
        assert reply.status in (200, 503), reply.text
        if reply.status == 200:
            acknowledged += batch
        else:
            reasons.append(reply.json()["reason"])
    assert reasons, "the full disk never refused an event"
    assert set(reasons) == {"stream_unavailable"}
    assert "full" in server.log() or "space" in server.log()

    filler.unlink()
    assert server.request("GET", "/track", query={**EVENT, "uuid": "after"}).status == 200
    acknowledged.append("after")
    wait_until_written(tiny_disk, timeout=60)
    server.stop()
    stored = uuid_counts(tiny_disk)
    assert [uuid for uuid in acknowledged if stored[uuid] != 1] == []
