"""A small tmpfs for the full-disk tests, so a data folder can really run out of space.

Mounting needs root (CI runs as root). Where it cannot be mounted the test fails, saying why:
a full-disk test that skips quietly proves nothing. To run the rest of the suite on such a
machine anyway, set DALET_ALLOW_NO_TMPFS=1 and these tests are skipped, still saying why.

    from tests.tmpfs import fill_up, mounted_tmpfs

    with mounted_tmpfs(tmp_path / "disk", "8m") as disk:   # unmounted on leaving, whatever happened
        fill_up(disk / "filler")                             # the disk is now full
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

ALLOW_NO_TMPFS = "DALET_ALLOW_NO_TMPFS"


@contextmanager
def mounted_tmpfs(mount_point: Path, size: str) -> Iterator[Path]:
    mount_point.mkdir(parents=True, exist_ok=True)
    reason = _why_not_mounted(mount_point, size)
    if reason is not None:
        if os.environ.get(ALLOW_NO_TMPFS) == "1":
            pytest.skip(f"cannot mount a tmpfs: {reason}; skipped because {ALLOW_NO_TMPFS}=1")
        pytest.fail(f"cannot mount a tmpfs: {reason}; the full-disk tests need one: run them as root "
                    f"(CI does), or set {ALLOW_NO_TMPFS}=1 to skip them", pytrace=False)
    try:
        yield mount_point
    finally:
        # Lazily: a server the test started may still hold files there until its own teardown.
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _why_not_mounted(mount_point: Path, size: str) -> str | None:
    if not sys.platform.startswith("linux"):
        return f"tmpfs is Linux's ({sys.platform} here)"
    if shutil.which("mount") is None:
        return "no `mount` command"
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                                 capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"`mount` could not run: {error}"
    if mounted.returncode != 0:
        return f"`mount -t tmpfs` failed ({mounted.stderr.strip() or f'exit {mounted.returncode}'}, uid {os.getuid()})"
    return None


def fill_up(path: Path) -> None:
    """Write zeros to `path` until the disk refuses."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(descriptor, b"\0" * 65536)
    except OSError:
        pass
    finally:
        os.close(descriptor)
