"""Dalet's command line: `python -m dalet_ops.cli COMMAND`."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import UTC
from pathlib import Path
from typing import Any

from chalicelib import auth, config
from chalicelib.ingest import write_keys
from dalet_ops import deploy_commands


def local_info(_: argparse.Namespace) -> int:
    """Check the local settings and print where data lives, the report API key and the Segment write keys."""
    try:
        settings = config.load_settings()
    except config.ConfigError as error:
        print(f"dalet: {error}", file=sys.stderr)
        return 2
    if not settings.is_local:
        print(f"dalet: DALET_BACKEND={settings.backend}; `make run` serves the local backend only "
              "(unset DALET_BACKEND)", file=sys.stderr)
        return 2
    try:
        key = auth.expected_api_key(settings)
        segment_keys = write_keys.write_keys(settings)
    except OSError as error:
        print(f"dalet: cannot use the data folder {settings.data_dir} (DALET_DATA_DIR): {error}", file=sys.stderr)
        return 2
    except config.ConfigError as error:    # e.g. DALET_WRITE_KEYS_SECRET set but unreadable
        print(f"dalet: {error}", file=sys.stderr)
        return 2
    print(f"Dalet local backend: data in {settings.data_dir}")
    print(f"Report API key (x-api-key): {key}")
    for write_key, namespace in segment_keys.items():
        print(f"Segment write key (namespace {namespace}): {write_key}")
    return 0


def serve(arguments: argparse.Namespace) -> int:
    """The Chalice app on uvicorn (dalet_ops.local_http), with the embedded pipeline started at once
    rather than on the first request, so a backlog left by a crash drains as soon as the server is
    back. SIGTERM (docker stop, systemd) stops it as cleanly as Ctrl-C."""
    from chalice.cli import validate_routes
    from chalice.cli.factory import CLIFactory

    from chalicelib import runtime
    from dalet_ops import local_http, running_server

    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    try:
        limits = config.local_server_settings(access_log=arguments.access_log)
        listening = local_http.listen(arguments.host, arguments.port)   # first: a taken port fails at once
    except (config.ConfigError, local_http.CannotListen) as error:
        print(f"dalet: {error}", file=sys.stderr)
        return 1
    with listening:
        # As the chalice command does: the stage's environment variables go into os.environ.
        factory = CLIFactory(project_dir=str(Path(__file__).resolve().parent.parent), environ=os.environ)
        chalice_config = factory.create_config_obj(chalice_stage_name=arguments.stage)   # imports app.py
        running_server.add_status_route(chalice_config.chalice_app)
        validate_routes(chalice_config.chalice_app.routes)
        status = local_info(arguments)
        if status:
            return status
        try:
            runtime.start_local_pipeline()
        except runtime.BackendUnavailable as error:
            print(f"dalet: {error}", file=sys.stderr)
            return 2
        data_dir = runtime.settings().data_dir
        url = announce(listening, arguments.host)
        running_server.record(data_dir, url)
        try:
            local_http.serve(chalice_config.chalice_app, chalice_config, listening, limits, _summary(runtime),
                             on_stop=lambda: _stop(runtime))
        finally:
            running_server.forget(data_dir)
    return 0


def announce(listening: Any, host: str) -> str:
    """Print the way in (dashboard, a first curl); the URL this machine reaches the server at."""
    from dalet_ops.startup import banner, browsable_url

    url = browsable_url(host, listening.getsockname()[1])    # the bound port, should --port be 0
    print(banner(url), flush=True)
    return url


DRAIN_SECONDS = 5.0    # the writer drains the stream this long at most, within `docker stop`'s 10 s


def _summary(runtime: Any) -> Any:
    from dalet_ops.local_http import Summary

    return lambda tally: Summary(tally, runtime.local_events_accepted,
                                 lambda: runtime.freshness().get("lag_seconds"))


def _stop(runtime: Any) -> None:
    """After the server stopped (requests in flight finished): let the writer drain the stream, then
    close the files (DuckDB checkpoints its WAL on close)."""
    print("dalet: stopping: draining the stream into the warehouse", flush=True)
    runtime.shutdown(drain_seconds=DRAIN_SECONDS)
    print("dalet: stopped; stream and warehouse closed", flush=True)


PURGE_NOT_NEEDED = ("dalet: purge is not needed on the embedded default: DuckDB removes a deleted experiment's rows "
                    "when it is deleted (and before the experiment takes new rows, should that have failed). "
                    "It is for BigQuery, which refuses to delete rows still in its streaming buffer (recently "
                    "streamed ones): run it with DALET_BACKEND=aws and the stage's settings")


def purge(_: argparse.Namespace) -> int:
    """Remove the rows of deleted experiments; BigQuery allows it once they leave the streaming buffer."""
    try:
        settings = config.load_settings()
    except config.ConfigError as error:
        print(f"dalet: {error}", file=sys.stderr)
        return 2
    if settings.is_local:
        print(PURGE_NOT_NEEDED)
        return 0
    from chalicelib import runtime
    from chalicelib.reports import deletion

    try:
        deletion.purge_all(runtime.warehouse())
    except Exception as error:  # noqa: BLE001 - the tombstones keep deleted experiments hidden meanwhile
        print(f"dalet: purge failed, rerun it later (deleted experiments stay hidden meanwhile): {error}",
              file=sys.stderr)
        return 1
    print("dalet: purged the rows of every deleted experiment")
    return 0


def status(arguments: argparse.Namespace) -> int:
    """The pipeline's state: a deployed stage's with --stage, else the embedded default's."""
    from datetime import datetime
    from functools import partial

    from dalet_ops import status as pipeline
    from dalet_ops.running_server import readings_from_running_server

    now = datetime.now(UTC)
    try:
        if arguments.stage is None:
            settings = config.load_settings()
            if not settings.is_local:
                print(f"dalet: DALET_BACKEND={settings.backend}: name the deployed stage with --stage", file=sys.stderr)
                return 2
            readings = pipeline.local_status(settings, now, partial(readings_from_running_server, settings))
            return pipeline.print_readings(f"Dalet local pipeline ({settings.data_dir}):", readings)
        stage, session, bigquery = _deployed_stage(arguments)
    except config.ConfigError as error:
        print(f"dalet: {error}", file=sys.stderr)
        return 2

    def warehouse() -> Any:
        from chalicelib.storage.bigquery_warehouse import BigQueryWarehouse

        return BigQueryWarehouse.from_settings(bigquery)

    return pipeline.print_readings(f"Dalet stage {stage.name} (stream {stage.settings.stream_name}, "
                                   f"region {session.region_name}):",
                                   pipeline.cloud_status(stage, session, warehouse, now))


def _deployed_stage(arguments: argparse.Namespace) -> tuple[Any, Any, config.Settings]:
    """The stage, an AWS session (--region, --profile) and the settings BigQuery is reached with (--adc)."""
    from dalet_ops.deploy_commands import aws_session, bigquery_settings
    from dalet_ops.stage import load_stage

    stage = load_stage(arguments.stage, arguments.project_dir)
    return stage, aws_session(arguments), bigquery_settings(stage, arguments)


def package(arguments: argparse.Namespace) -> int:
    """`chalice package` with bytecode compiled into deployment.zip (cold starts without compiling)."""
    from dalet_ops import package as packaging
    from dalet_ops.stage import load_stage

    out = arguments.out.absolute()
    try:
        stage = load_stage(arguments.stage, arguments.project_dir)
        merge_template = arguments.merge_template or stage.merge_template_file
        compiled = packaging.package(stage, out, merge_template if merge_template.exists() else None)
    except (packaging.PackageError, config.ConfigError) as error:
        print(f"dalet: {error}", file=sys.stderr)
        return 1
    print(f"{out / packaging.DEPLOYMENT_ZIP}: bytecode for {compiled.added} of {compiled.sources} modules "
          f"({packaging.runtime_tag()}), {compiled.zipped_before / 1e6:.1f} -> {compiled.zipped_after / 1e6:.1f} MB "
          f"zipped; template: {out / 'sam.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dalet_ops.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("local-info", help="print the local data folder, the report API key and the Segment write keys"
                        ).set_defaults(run=local_info)
    local = commands.add_parser("serve", help="run the local backend: the app on uvicorn, the pipeline started")
    local.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for every interface)")
    local.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000; 0 picks a free one)")
    local.add_argument("--stage", default="dev",
                       help="the .chalice/config.json stage whose environment variables apply (default dev)")
    local.add_argument("--access-log", action="store_true", help="a log line per request (also DALET_ACCESS_LOG=1); "
                                                                "by default errors and a summary every 60 s")
    local.set_defaults(run=serve)
    deploy_commands.add_commands(commands)
    commands.add_parser("purge", help="remove the rows of deleted experiments from BigQuery (DALET_BACKEND=aws); "
                                      "not needed locally").set_defaults(run=purge)
    state = commands.add_parser("status", help="the pipeline's state: stream lag, parked batches, dead letters "
                                               "in the last day, newest event (the embedded default, asking the "
                                               "running server if it holds the warehouse; or --stage)")
    state.add_argument("--stage", help="a deployed stage of .chalice/config.json, e.g. prod (default: the local "
                                       "embedded pipeline)")
    state.add_argument("--project-dir", type=Path, default=Path(__file__).resolve().parent.parent,
                       help="the folder holding app.py and .chalice/ (default: this checkout)")
    state.add_argument("--region", help="AWS region (default: your AWS configuration)")
    state.add_argument("--profile", help="AWS profile (default: AWS_PROFILE or the default profile)")
    state.add_argument("--adc", action="store_true", help=deploy_commands.ADC_HELP)
    state.set_defaults(run=status)
    packaged = commands.add_parser("package", help="chalice package, with bytecode compiled into deployment.zip "
                                                   "(faster cold starts)")
    packaged.add_argument("--stage", required=True, help="a stage of .chalice/config.json, e.g. prod")
    packaged.add_argument("--merge-template", type=Path,
                          help="default: .chalice/merge-template-STAGE.json when it exists")
    packaged.add_argument("--project-dir", type=Path, default=Path(__file__).resolve().parent.parent,
                          help="the folder holding app.py and .chalice/ (default: this checkout)")
    packaged.add_argument("out", type=Path, help="folder for deployment.zip and sam.json")
    packaged.set_defaults(run=package)
    return parser


PIPE_CLOSED_STATUS = 141     # 128 + SIGPIPE: what `yes | head` leaves for `yes`


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            arguments = build_parser().parse_args(argv)
            return arguments.run(arguments)
        finally:
            sys.stdout.flush()      # now, while a reader gone away (`snippet ... | head`) can still be handled
    except BrokenPipeError:
        _stdout_to_nowhere()
        return PIPE_CLOSED_STATUS


def _stdout_to_nowhere() -> None:
    """Python flushes stdout once more at exit; pointed at /dev/null, that flush cannot fail and print a traceback.
    (The recipe of https://docs.python.org/3/library/signal.html#note-on-sigpipe.)"""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
