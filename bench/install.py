"""What a newcomer's first `make run` costs: the fresh .venv's size and the time until Dalet answers.

Builds a fresh virtual environment in a temporary folder through the Makefile itself
(`make run VENV=<tmp>/.venv PORT=<free>`: the runtime-only set, requirements-local.txt),
and times it from the command's start until the server answers GET /health with 200
(GET /dashboard where /health does not exist yet). Then the same for the test set that
`make test` installs (requirements-dev.txt, what `make run` installed before the split),
as the baseline. Each server gets its own temporary data folder and is stopped (SIGTERM to
its process group) once it has answered.

"Warm package cache" means pip finds every wheel locally (its cache or a find-links
folder): run the script twice and read the second run when the first had to download.

    .venv/bin/python bench/install.py [--local-only] [--quick]

--quick is accepted for bench/run.py and changes nothing; --local-only skips the baseline.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from _common import ROOT, emit, free_port

SIZE_GOAL_MB = 400
SERVE_GOAL_SECONDS = 60
READY_TIMEOUT_SECONDS = 900
PROBES = ("/health", "/dashboard")


@dataclass(frozen=True)
class Install:
    label: str
    size_mb: float
    install_seconds: float
    serve_seconds: float     # from the command's start until the server answered


def environment(data_dir: Path) -> dict[str, str]:
    """The caller's environment without its DALET_* settings or virtual environment."""
    chosen = {name: value for name, value in os.environ.items()
              if not name.startswith("DALET_") and name not in ("VIRTUAL_ENV", "PYTHONHOME")}
    chosen.update(DALET_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    return chosen


def answers(base_url: str) -> str | None:
    """The first probe path that answers 200, else None."""
    for path in PROBES:
        try:
            with urllib.request.urlopen(base_url + path, timeout=2) as response:
                if response.status == 200:
                    return path
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            continue
    return None


def folder_megabytes(folder: Path) -> float:
    """Disk usage as `du -s` counts it (allocated blocks), in MB (10^6 bytes)."""
    used = 0
    for directory, _, files in os.walk(folder):
        for name in files:
            path = Path(directory) / name
            if not path.is_symlink():
                used += path.stat().st_blocks * 512
    return used / 1e6


def make(arguments: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as output:
        return subprocess.Popen(["make", "--no-print-directory", "-C", str(ROOT), *arguments], env=env,
                                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the process group `make run` leads (the server drains and exits), SIGKILL what is left."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def serve_until_answered(workspace: Path, venv: Path, env: dict[str, str], started: float) -> float:
    """`make run` on an existing or absent .venv; seconds from `started` until it answers."""
    port = free_port()
    log = workspace / "make.log"
    process = make(["run", f"VENV={venv}", f"PORT={port}"], env, log)
    try:
        while time.monotonic() - started < READY_TIMEOUT_SECONDS:
            if process.poll() is not None:
                raise SystemExit(f"make run exited with {process.returncode}:\n{log.read_text(errors='replace')}")
            probe = answers(f"http://127.0.0.1:{port}")
            if probe:
                seconds = time.monotonic() - started
                print(f"  answered {probe} after {seconds:.1f} s", flush=True)
                return seconds
            time.sleep(0.2)
        raise SystemExit(f"no answer within {READY_TIMEOUT_SECONDS} s:\n{log.read_text(errors='replace')}")
    finally:
        stop(process)


def measure(label: str, install_target: str | None) -> Install:
    """A fresh .venv: optionally `make <install_target>` first (timed with the rest), then `make run`."""
    with tempfile.TemporaryDirectory(prefix="dalet-install-") as folder:
        workspace = Path(folder)
        venv = workspace / ".venv"
        env = environment(workspace / "data")
        print(f"{label}: fresh {venv}", flush=True)
        started = time.monotonic()
        install_seconds = 0.0
        if install_target:
            finished = make([install_target, f"VENV={venv}"], env, workspace / "make.log")
            if finished.wait() != 0:
                raise SystemExit(f"make {install_target} failed:\n{(workspace / 'make.log').read_text(errors='replace')}")
            install_seconds = time.monotonic() - started
        serve_seconds = serve_until_answered(workspace, venv, env, started)
        size = folder_megabytes(venv)
        print(f"  .venv {size:,.0f} MB", flush=True)
        return Install(label, size, install_seconds, serve_seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local-only", action="store_true", help="skip the baseline (the test set)")
    parser.add_argument("--quick", action="store_true", help="accepted for bench/run.py; changes nothing")
    arguments = parser.parse_args()
    if shutil.which("make") is None:
        raise SystemExit("bench/install.py needs `make`")

    local = measure("make run (requirements-local.txt)", None)
    dev = None if arguments.local_only else measure("make test's set, then make run (requirements-dev.txt)",
                                                    "install")
    print()
    print(f"{'':56s} {'.venv MB':>9s} {'serving after s':>16s}")
    for result in (local, dev):
        if result is not None:
            print(f"{result.label:56s} {result.size_mb:9,.0f} {result.serve_seconds:16.1f}")
    if dev is not None:
        print(f"{'ratio (make run / test set)':56s} {local.size_mb / dev.size_mb:9.2f} "
              f"{local.serve_seconds / dev.serve_seconds:16.2f}")
    emit("make run: fresh .venv size", local.size_mb, dev.size_mb if dev else None,
         f"ours <= {SIZE_GOAL_MB}", "MB")
    emit("make run: fresh clone to serving (warm package cache)", local.serve_seconds,
         dev.serve_seconds if dev else None, f"ours <= {SERVE_GOAL_SECONDS}", "s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
