"""Cold starts from the Lambda package, next to a bare `python -c`; and the package's largest parts.

The package is what `chalice package --stage prod` builds from this checkout, unzipped;
and the same zip with bytecode compiled in, as `python -m dalet_ops.cli package` builds
it (dalet_ops/package.py). Each run is a fresh process started as Lambda starts one on a
.zip package (no site-packages, no bytecode written beside the source, nothing cached
from an earlier run), timed from spawn to the handler's answer:

- track: import app.py, then the first GET /track through the Lambda entry: the Kinesis
  client built and one PutRecord to a moto server on loopback (goal <= 0.35 s);
- writer: import app.py, then the first 500-record Kinesis batch through write_events:
  Google credentials loaded from a key file (a JWT signed, a token fetched from
  loopback), the tables checked, one insertAll to the BigQuery stand-in (goal <= 1 s).

Runs alternate (bare, then each case of each package) so machine noise hits all alike;
medians are printed, of wall time and of the process's CPU time (user + system). On a
shared machine other processes stretch the wall times; the CPU time is what the cold
start costs on an idle one (less the loopback round trips, a few ms), so both are shown
against the goals.

    .venv/bin/python bench/coldstart.py [--runs 7] [--quick]
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import tempfile
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from _common import emit
from tqdm import tqdm

from tests.cold_start import (ColdRun, bare_interpreter_seconds, first_track_request, google_token_endpoint,
                              kinesis_batch, lambda_environment, moto_kinesis, run_cold, service_account_key_file)
from dalet_ops.package import compile_into_zip
from tests.lambda_package import build_package, unzip

TRACK_GOAL_SECONDS = 0.35
WRITER_GOAL_SECONDS = 1.0
WRITER_BATCH = 500
LARGEST_SHOWN = 12
SOURCE_ONLY = "as chalice package builds it (source only)"
WITH_BYTECODE = "with bytecode compiled in (python -m dalet_ops.cli package)"


def largest_parts(zip_path: Path) -> list[tuple[str, int]]:
    """Unzipped bytes per top-level package (a distribution's metadata counted with its package)."""
    sizes: dict[str, int] = defaultdict(int)
    with zipfile.ZipFile(zip_path) as archive:
        for entry in archive.infolist():
            top = entry.filename.split("/")[0]
            name = top.split("-")[0] if top.endswith((".dist-info", ".data")) else top.split(".")[0]
            sizes[name.lower()] += entry.file_size
    return sorted(sizes.items(), key=lambda item: -item[1])


def print_package(zip_path: Path) -> tuple[int, int]:
    parts = largest_parts(zip_path)
    unzipped = sum(size for _, size in parts)
    zipped = zip_path.stat().st_size
    print(f"deployment.zip: {zipped / 1e6:.1f} MB zipped, {unzipped / 1e6:.1f} MB unzipped; largest parts:")
    for name, size in parts[:LARGEST_SHOWN]:
        print(f"    {name:28} {size / 1e6:6.1f} MB  {100 * size / unzipped:4.1f}%")
    return zipped, unzipped


def measure(packages: dict[str, Path], runs: int, track_mode: str, track_file: Path, writer_files: list[Path],
            track_env: dict[str, str], writer_env: dict[str, str], progress: Any) -> dict[str, dict[str, list[Any]]]:
    """Per package: fresh-process runs of the track and writer cases; and the bare interpreter."""
    found: dict[str, dict[str, list[Any]]] = {name: {"track": [], "writer": []} for name in packages}
    found["bare"] = {"bare": []}
    batches = iter(writer_files)
    for _ in range(runs):
        found["bare"]["bare"].append(bare_interpreter_seconds())
        for name, package_dir in packages.items():
            found[name]["track"].append(_checked(run_cold(package_dir, track_mode, track_file, track_env), "track"))
            found[name]["writer"].append(_checked(run_cold(package_dir, "writer", next(batches), writer_env),
                                                  "writer"))
        progress.update(1)
    return found


def _checked(run: ColdRun, mode: str) -> ColdRun:
    if mode == "track" and run.answer.get("statusCode") != 200:
        sys.exit(f"the cold /track failed (a machine too busy for the 2 s Kinesis retry budget?): {run.answer}")
    if mode == "writer" and run.answer != {"batchItemFailures": []}:
        sys.exit(f"the cold writer did not write its batch: {run.answer}")
    return run


def _median(runs: list[ColdRun], field: str) -> float:
    return statistics.median(getattr(run, field) for run in runs)


def report(label: str, found: dict[str, list[Any]]) -> dict[str, tuple[float, float]]:
    """Per case: (median wall seconds, median CPU seconds)."""
    medians = {}
    print(f"{label}:")
    for mode in ("track", "writer"):
        runs = found[mode]
        medians[mode] = (_median(runs, "seconds"), _median(runs, "cpu_seconds"))
        print(f"    first {mode:6}: {medians[mode][0] * 1000:4.0f} ms wall, {medians[mode][1] * 1000:4.0f} ms CPU, "
              f"medians of {len(runs)} (import app {_median(runs, 'import_seconds') * 1000:.0f} ms, first call "
              f"{_median(runs, 'call_seconds') * 1000:.0f} ms; wall of each run "
              f"{', '.join(f'{run.seconds * 1000:.0f}' for run in runs)} ms)")
    return medians


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=11, help="fresh processes per case (at least 5)")
    parser.add_argument("--quick", action="store_true", help="7 runs per case (for bench/run.py)")
    arguments = parser.parse_args(argv)
    runs = 7 if arguments.quick else max(5, arguments.runs)

    from tests.bigquery_standin import serving_standin

    logging.getLogger("werkzeug").setLevel(logging.ERROR)   # the stand-in's request log
    with tempfile.TemporaryDirectory(prefix="dalet-coldstart-") as folder:
        work = Path(folder)
        print("building the package: chalice package --stage prod ...", flush=True)
        out = build_package(work / "build")
        _, unzipped = print_package(out / "deployment.zip")
        compiled_zip = shutil.copy(out / "deployment.zip", work / "compiled.zip")
        compiled = compile_into_zip(Path(compiled_zip))
        print(f"with bytecode compiled in (python -m dalet_ops.cli package): {compiled.added} .pyc files, "
              f"{compiled.zipped_before / 1e6:.1f} -> {compiled.zipped_after / 1e6:.1f} MB zipped")
        packages = {SOURCE_ONLY: unzip(out / "deployment.zip", work / "source-only"),
                    WITH_BYTECODE: unzip(Path(compiled_zip), work / "with-bytecode")}
        track_mode, first_track = first_track_request(packages[SOURCE_ONLY])
        print(f"first /track through {'the function URL front door' if track_mode == 'front-door' else 'the REST API'}")
        track_file = work / "track.json"
        track_file.write_text(json.dumps(first_track))
        writer_files = []
        for run in range(len(packages) * runs):
            writer_files.append(work / f"batch-{run}.json")
            writer_files[-1].write_text(json.dumps(kinesis_batch(WRITER_BATCH, prefix=f"run-{run}")))

        with moto_kinesis() as kinesis_url, google_token_endpoint() as token_url, serving_standin() as bigquery:
            key_file = service_account_key_file(work, token_url, bigquery.project)
            track_env = lambda_environment(AWS_ENDPOINT_URL_KINESIS=kinesis_url)
            writer_env = lambda_environment(GOOGLE_APPLICATION_CREDENTIALS=str(key_file),
                                            BIGQUERY_EMULATOR_HOST=bigquery.url, DALET_BQ_PROJECT=bigquery.project)
            with tqdm(total=runs, desc="coldstart.py", unit="round", file=sys.stderr) as progress:
                found = measure(packages, runs, track_mode, track_file, writer_files, track_env, writer_env, progress)
            landed = len(bigquery.rows("dalet.events"))

    bare = statistics.median(wall for wall, _ in found["bare"]["bare"])
    bare_cpu = statistics.median(cpu for _, cpu in found["bare"]["bare"])
    fastest_bare = min(wall for wall, _ in found["bare"]["bare"])
    print(f"python -I -S -B -c 'print(1)' (a bare interpreter): {bare * 1000:.0f} ms wall, {bare_cpu * 1000:.0f} ms "
          f"CPU, medians of {runs}")
    if bare > 1.5 * fastest_bare:
        print(f"note: the machine is busy (the bare interpreter's median is {bare / fastest_bare:.1f}x its fastest "
              "run); wall times are inflated alike, the CPU times are not")
    medians = {name: report(name, found[name]) for name in packages}
    expected = len(writer_files) * WRITER_BATCH
    print(f"rows written by the cold writers: {landed} of {expected}")
    if landed != expected:
        return 1
    for name, short in ((WITH_BYTECODE, "bytecode in the zip"), (SOURCE_ONLY, "chalice package, source only")):
        for mode, label, goal in (("track", "first /track", TRACK_GOAL_SECONDS),
                                  ("writer", "first writer batch of 500", WRITER_GOAL_SECONDS)):
            wall, cpu = medians[name][mode]
            emit(f"cold start: {label} ({short}), wall", wall, bare, f"ours <= {goal}", "s")
            emit(f"cold start: {label} ({short}), CPU", cpu, bare_cpu, f"ours <= {goal}", "s")
    emit("deployment.zip unzipped (source only)", unzipped / 1e6, None, None, "MB")
    return 0

if __name__ == "__main__":
    sys.exit(main())
