"""Dalet's command line: `python -m dalet_ops.cli COMMAND`."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from chalicelib import auth, config
from dalet_ops import deploy_commands


def local_info(_: argparse.Namespace) -> int:
    """Check the local settings and print where data lives and the report API key."""
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
    except OSError as error:
        print(f"dalet: cannot use the data folder {settings.data_dir} (DALET_DATA_DIR): {error}", file=sys.stderr)
        return 2
    print(f"Dalet local backend: data in {settings.data_dir}")
    print(f"Report API key (x-api-key): {key}")
    return 0


def serve(arguments: argparse.Namespace) -> int:
    """`chalice local`, with the embedded pipeline started at once rather than on the first request,
    so a backlog left by a crash drains as soon as the server is back."""
    from chalice.cli import create_local_server
    from chalice.cli.factory import CLIFactory

    from chalicelib import runtime

    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    # As the chalice command does: the stage's environment variables go into os.environ.
    factory = CLIFactory(project_dir=str(Path(__file__).resolve().parent.parent), environ=os.environ)
    server = create_local_server(factory, arguments.host, arguments.port, arguments.stage)  # imports app.py
    status = local_info(arguments)
    if status:
        return status
    try:
        runtime.start_local_pipeline()
    except runtime.BackendUnavailable as error:
        print(f"dalet: {error}", file=sys.stderr)
        return 2
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        runtime.shutdown()
    return 0


def purge(_: argparse.Namespace) -> int:
    """Remove the rows of deleted experiments; BigQuery allows it once they leave the streaming buffer."""
    from chalicelib.reports import views as reports
    from chalicelib import runtime

    try:
        settings = config.load_settings()
        if settings.is_local:
            from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse

            warehouse = DuckDBWarehouse(settings.data_dir / runtime.WAREHOUSE_FILE)
        else:
            warehouse = runtime.warehouse()
        reports.purge_all(warehouse)
    except Exception as error:  # noqa: BLE001 - the tombstones keep deleted experiments hidden meanwhile
        print(f"dalet: purge failed, rerun it later (deleted experiments stay hidden meanwhile): {error}",
              file=sys.stderr)
        return 1
    print("dalet: purged the rows of every deleted experiment")
    return 0


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
    commands.add_parser("local-info", help="print the local data folder and API key").set_defaults(run=local_info)
    local = commands.add_parser("serve", help="run the local backend: chalice local with the pipeline started")
    local.add_argument("--host", default="127.0.0.1")
    local.add_argument("--port", type=int, default=8000)
    local.add_argument("--stage", default="dev")
    local.set_defaults(run=serve)
    deploy_commands.add_commands(commands)
    commands.add_parser("purge", help="remove the rows of deleted experiments from the warehouse").set_defaults(run=purge)
    packaged = commands.add_parser("package", help="chalice package, with bytecode compiled into deployment.zip "
                                                   "(faster cold starts)")
    packaged.add_argument("--stage", required=True)
    packaged.add_argument("--merge-template", type=Path,
                          help="default: .chalice/merge-template-STAGE.json when it exists")
    packaged.add_argument("--project-dir", type=Path, default=Path(__file__).resolve().parent.parent)
    packaged.add_argument("out", type=Path, help="folder for deployment.zip and sam.json")
    packaged.set_defaults(run=package)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    return arguments.run(arguments)


if __name__ == "__main__":
    sys.exit(main())
