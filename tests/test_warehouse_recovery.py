"""The embedded warehouse after a fatal DuckDB error: down (WarehouseDown, a transient failure) until
reopened, reopened no sooner than its backoff allows, and nothing it had committed lost."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import config
from chalicelib.ingest.events import now, parse_event, stamp
from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse
from chalicelib.storage.warehouse_health import Backoff, FaultNote, WarehouseDown, WarehouseFault, read_fault_note
from chalicelib.storage.writer import TransientWarehouseError
from tests.tmpfs import fill_up, mounted_tmpfs

FAULT = WarehouseFault(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), "FatalException: no space",
                       datetime(2026, 1, 2, 3, 4, 9, tzinfo=timezone.utc))


def events(count: int):
    received = now()
    return [stamp(parse_event({"namespace": "disk", "experiment": "full", "variant": "A", "event": "participate",
                               "uuid": secrets.token_hex(60)}), received) for _ in range(count)]


def count(store: DuckDBWarehouse) -> int:
    return store.fetch("SELECT COUNT(*) AS n FROM events")[0]["n"]


def take_down_on_a_full_disk(store: DuckDBWarehouse, disk) -> int:
    """Fill the disk but for room for DuckDB's log, not for its checkpoint; insert until the checkpoint
    fails. The number of events whose insert returned (the failing one's commit may be durable too)."""
    filler = disk / "filler"
    fill_up(filler)
    os.truncate(filler, filler.stat().st_size - 400 * 1024)
    inserted = 0
    for _ in range(100):
        batch = events(100)
        try:
            store.insert_events(batch)
            inserted += len(batch)
        except WarehouseDown:
            return inserted
        except TransientWarehouseError:    # the log itself did not fit: the batch was rolled back
            pass
    pytest.fail("the warehouse never went down")


def test_a_failed_checkpoint_takes_the_warehouse_down_and_once_space_returns_it_reopens(tmp_path):
    with mounted_tmpfs(tmp_path / "disk", "8m") as disk:
        noted: list[WarehouseFault | None] = []
        store = DuckDBWarehouse(disk / "warehouse.duckdb", reopen=Backoff(first=0, longest=0), checkpoint_mb=1,
                                on_fault=noted.append)
        try:
            inserted = take_down_on_a_full_disk(store, disk)
            assert store.fault is not None and "No space left on device" in store.fault.cause
            assert noted and noted[0] is not None and "checkpoint" in noted[0].cause

            (disk / "filler").unlink()
            assert count(store) >= inserted          # reopened on first use: no restart, nothing committed lost
            assert store.fault is None and noted[-1] is None
            store.insert_events(events(10))
        finally:
            store.close()


def test_while_its_backoff_runs_the_warehouse_is_not_reopened(tmp_path):
    with mounted_tmpfs(tmp_path / "disk", "8m") as disk:
        store = DuckDBWarehouse(disk / "warehouse.duckdb", reopen=Backoff(first=3600, longest=3600), checkpoint_mb=1)
        try:
            take_down_on_a_full_disk(store, disk)
            (disk / "filler").unlink()
            with pytest.raises(WarehouseDown, match="next reopening attempt at"):
                store.fetch("SELECT 1")
        finally:
            store.close()


def test_the_reopening_delay_doubles_from_the_first_up_to_the_longest():
    backoff = Backoff(first=1, longest=15)
    assert [backoff.delay(failures) for failures in range(1, 7)] == [1, 2, 4, 8, 15, 15]


def test_the_reopening_pace_is_read_from_the_environment_and_bounded():
    settings = config.load_settings({"DALET_WAREHOUSE_REOPEN_FIRST_SECONDS": "2",
                                     "DALET_WAREHOUSE_REOPEN_LONGEST_SECONDS": "30",
                                     "DALET_WAREHOUSE_CHECKPOINT_MB": "4"})
    assert (settings.warehouse_reopen_first_seconds, settings.warehouse_reopen_longest_seconds) == (2, 30)
    assert settings.warehouse_checkpoint_mb == 4
    defaults = config.load_settings({})
    assert (defaults.warehouse_reopen_first_seconds, defaults.warehouse_reopen_longest_seconds,
            defaults.warehouse_checkpoint_mb) == (1, 15, 16)
    with pytest.raises(config.ConfigError, match="DALET_WAREHOUSE_REOPEN_LONGEST_SECONDS must be .* 0 to 45"):
        config.load_settings({"DALET_WAREHOUSE_REOPEN_LONGEST_SECONDS": "46"})
    with pytest.raises(config.ConfigError, match="must not exceed"):
        config.load_settings({"DALET_WAREHOUSE_REOPEN_FIRST_SECONDS": "20",
                              "DALET_WAREHOUSE_REOPEN_LONGEST_SECONDS": "10"})
    with pytest.raises(config.ConfigError, match="DALET_WAREHOUSE_CHECKPOINT_MB"):
        config.load_settings({"DALET_WAREHOUSE_CHECKPOINT_MB": "0"})


def test_the_fault_note_holds_a_running_servers_fault_until_it_recovers(tmp_path):
    note = FaultNote(tmp_path / "warehouse.fault")
    try:
        note.record(FAULT)
        assert read_fault_note(tmp_path / "warehouse.fault") == FAULT
        note.record(None)
        assert read_fault_note(tmp_path / "warehouse.fault") is None
    finally:
        note.close()


def test_a_fault_noted_by_a_server_that_is_gone_is_not_read(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = int(finished.stdout)
    (tmp_path / "warehouse.fault").write_text(json.dumps(
        {"pid": gone, "since": FAULT.since.isoformat(), "cause": "x", "retry_at": FAULT.retry_at.isoformat()}))
    assert read_fault_note(tmp_path / "warehouse.fault") is None


def test_the_fault_note_is_written_over_its_reserved_bytes_so_a_full_disk_does_not_stop_it(tmp_path):
    with mounted_tmpfs(tmp_path / "disk", "1m") as disk:
        note = FaultNote(disk / "warehouse.fault")
        try:
            fill_up(disk / "filler")
            long_fault = WarehouseFault(FAULT.since, "é" * 2000, FAULT.since + timedelta(seconds=1))
            note.record(long_fault)
            assert read_fault_note(disk / "warehouse.fault").cause == "é" * 500
        finally:
            note.close()
