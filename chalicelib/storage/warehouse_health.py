"""The embedded warehouse's health: when it went down, why, when it is tried again, and the note `status` reads.

DuckDB invalidates its database after a fatal error (a checkpoint that hit a full disk, an
internal error): every later statement fails until the database is opened again. The
warehouse then closes its connection and reopens it with a growing delay (`Backoff`)
until the cause is gone; meanwhile it raises `WarehouseDown`, a transient failure, so the
writer retries its batch (the stream keeps it) and the report routes answer 503.

`status` runs in another process and cannot ask the server, so the server keeps a small
note in the data folder (`FaultNote`). The note's bytes are reserved when the server
starts: writing the fault over them needs no new space on a full disk.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from chalicelib.config import DEFAULT_WAREHOUSE_REOPEN_FIRST_SECONDS, DEFAULT_WAREHOUSE_REOPEN_LONGEST_SECONDS
from chalicelib.storage.writer import TransientWarehouseError

log = logging.getLogger("dalet.warehouse")

NOTE_BYTES = 4096
MAX_CAUSE_CHARACTERS = 500     # escaped, it still fits NOTE_BYTES


@dataclass(frozen=True)
class Backoff:
    """The delay before the n-th reopening attempt: `first`, doubled per failure, at most `longest` seconds."""
    first: float = DEFAULT_WAREHOUSE_REOPEN_FIRST_SECONDS
    longest: float = DEFAULT_WAREHOUSE_REOPEN_LONGEST_SECONDS

    def delay(self, failures: int) -> float:
        return min(self.first * 2 ** max(failures - 1, 0), self.longest)


@dataclass(frozen=True)
class WarehouseFault:
    since: datetime          # when the warehouse went down (UTC)
    cause: str               # the error that took it down, or the latest reopening failure
    retry_at: datetime       # the next reopening attempt, at the first use from then on (UTC)

    def describe(self) -> str:
        return (f"down since {self.since:%Y-%m-%d %H:%M:%S} UTC: {self.cause}; "
                f"next reopening attempt at {self.retry_at:%H:%M:%S} UTC")


class WarehouseDown(TransientWarehouseError):
    """The warehouse's connection is closed after a fatal error and not reopened yet."""

    def __init__(self, fault: WarehouseFault):
        super().__init__(f"the warehouse is {fault.describe()}")
        self.fault = fault


class FaultNote:
    """The fault of the warehouse a running server holds, in a file of reserved size in the data folder.

    Never raises: a note that cannot be written (a full disk before the bytes were reserved,
    a read-only folder) costs `status` its fault line, not the server its start.
    """

    def __init__(self, path: Path):
        self.path = path
        self._descriptor: int | None = None
        try:
            self._descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            self._write(b"")     # a new server: whatever an earlier one noted is over
            os.fsync(self._descriptor)
        except OSError as error:
            log.warning("cannot keep the warehouse's state in %s for `status`: %s", path, error)

    def record(self, fault: WarehouseFault | None) -> None:
        """Note the fault (None: healthy again)."""
        if fault is None:
            text = b""
        else:
            text = json.dumps({"pid": os.getpid(), "since": fault.since.isoformat(),
                               "cause": fault.cause[:MAX_CAUSE_CHARACTERS],
                               "retry_at": fault.retry_at.isoformat()}).encode("utf-8")
        try:
            self._write(text)
        except OSError as error:
            log.warning("could not note the warehouse's state in %s for `status`: %s", self.path, error)

    def _write(self, text: bytes) -> None:
        if self._descriptor is not None:
            # The whole reserved length at offset 0: overwriting allocated bytes needs no free space.
            os.pwrite(self._descriptor, text.ljust(NOTE_BYTES, b" "), 0)

    def close(self) -> None:
        self.record(None)
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


def read_fault_note(path: Path) -> WarehouseFault | None:
    """The fault a running server noted; None if there is none or the server that noted it is gone."""
    try:
        text = path.read_bytes().strip()
    except FileNotFoundError:
        return None
    if not text:
        return None
    note = json.loads(text)
    if not _running(int(note["pid"])):
        return None
    return WarehouseFault(datetime.fromisoformat(note["since"]), note["cause"],
                          datetime.fromisoformat(note["retry_at"]))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:     # alive, someone else's
        return True
    return True
