"""A full disk takes the embedded warehouse down; once space returns it is back, without a restart.

DuckDB folds its write-ahead log into the warehouse file (a checkpoint) once the log reaches
DALET_WAREHOUSE_CHECKPOINT_MB; a checkpoint that meets a full disk invalidates the database.
The server runs with a 1 MiB log, so a few hundred kilobytes of events reach a checkpoint.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import duckdb

from tests.local_server import PROJECT_DIR, LocalServer, local_servers, wait_until  # noqa: F401
from tests.tmpfs import fill_up, mounted_tmpfs

API_KEY = "full-disk-key"
# The first reopening waits 5 s, so the test sees the warehouse down before it is tried again (on a
# full disk a reopening may succeed, and the next checkpoint take it down again).
SERVER_ENV = {"DALET_API_KEY": API_KEY, "DALET_WAREHOUSE_CHECKPOINT_MB": "1",
              "DALET_WAREHOUSE_REOPEN_FIRST_SECONDS": "5"}
EVENT = {"namespace": "disk", "experiment": "full", "event": "participate"}
RECOVERY_SECONDS = 60


def events(count: int) -> list[dict[str, str]]:
    """Participants with long random uuids, so the log grows quickly and does not compress away."""
    return [{**EVENT, "variant": "AB"[n % 2], "uuid": secrets.token_hex(60)} for n in range(count)]


def track(server: LocalServer, batch: list[dict[str, str]], acknowledged: list[str]) -> int:
    reply = server.request("POST", "/track", json=batch)
    assert reply.status in (200, 503), reply.text
    if reply.status == 200:
        acknowledged += [event["uuid"] for event in batch]
    else:
        assert reply.json()["reason"] == "stream_unavailable"     # nothing acknowledged is then lost
    return reply.status


def report(server: LocalServer):
    return server.request("GET", f"/experiments/{EVENT['experiment']}/results", query={"namespace": EVENT["namespace"]},
                          headers={"x-api-key": API_KEY})


def participants(server: LocalServer) -> int:
    reply = report(server)
    return sum(variant["participants"] for variant in reply.json()["variants"]) if reply.status == 200 else -1


def stored_uuids(disk: Path) -> list[str]:
    """The uuids of every stored event; only once the server has stopped (DuckDB allows one process)."""
    with closing(duckdb.connect(str(disk / "warehouse.duckdb"), read_only=True)) as db:
        return [uuid for (uuid,) in db.execute("SELECT uuid FROM events").fetchall()]


def status_lines(disk: Path) -> dict[str, str]:
    """`status`'s readings by name (run as an operator would, beside the server)."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("DALET_")}
    printed = subprocess.run([sys.executable, "-m", "dalet_ops.cli", "status"], cwd=PROJECT_DIR,
                             env={**environment, "DALET_DATA_DIR": str(disk)},
                             capture_output=True, text=True, timeout=60).stdout
    return {line[4:21].strip(): line for line in printed.splitlines()[1:]}


def test_a_full_disk_takes_reports_to_503_and_they_recover_without_a_restart(local_servers, tmp_path):
    with mounted_tmpfs(tmp_path / "disk", "16m") as disk:
        server = local_servers(disk, env=SERVER_ENV)        # its log is written beside the disk, not on it
        acknowledged: list[str] = []
        # With room: the stream's write-ahead log grows to its steady size (4 MiB, reused from then on),
        # so that on the full disk the stream still takes events while the warehouse's log grows.
        for _ in range(40):
            assert track(server, events(100), acknowledged) == 200
            wait_until(lambda: participants(server) == len(acknowledged), message="the writer to catch up")

        filler = disk / "filler"
        fill_up(filler)
        os.truncate(filler, filler.stat().st_size - 400 * 1024)     # room for the warehouse's log, not a checkpoint
        answers: list[int] = []
        for _ in range(60):
            track(server, events(100), acknowledged)
            down = report(server)
            answers.append(down.status)
            if down.status == 503:
                break
        assert 500 not in answers, f"a report answered 500 on the full disk; the server's log:\n{server.log()[-6000:]}"
        assert answers[-1] == 503, f"the warehouse never went down: reports answered {answers}"
        assert down.json()["reason"] == "warehouse_unavailable"
        assert track(server, events(100), acknowledged) == 200         # the stream still takes events
        fault = status_lines(disk)["warehouse"]
        assert fault.startswith("!!") and "down since" in fault and "No space left on device" in fault

        filler.unlink()
        freed = time.monotonic()
        wait_until(lambda: participants(server) == len(acknowledged), timeout=RECOVERY_SECONDS, interval=0.5,
                   message="every acknowledged event in the report")
        print(f"recovered {time.monotonic() - freed:.1f} s after space returned")
        assert "warehouse" not in status_lines(disk)
        server.stop()
        assert sorted(stored_uuids(disk)) == sorted(acknowledged)     # each once: nothing lost, nothing twice
