"""Dalet's command line: `python -m chalicelib.cli COMMAND`."""
from __future__ import annotations

import argparse
import sys

from chalicelib import auth, config, deploy_commands


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


def purge(_: argparse.Namespace) -> int:
    """Remove the rows of deleted experiments; BigQuery allows it once they leave the streaming buffer."""
    from chalicelib import reports, runtime

    try:
        settings = config.load_settings()
        if settings.is_local:
            from chalicelib.duckdb_warehouse import DuckDBWarehouse

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("local-info", help="print the local data folder and API key").set_defaults(run=local_info)
    deploy_commands.add_commands(commands)
    commands.add_parser("purge", help="remove the rows of deleted experiments from the warehouse").set_defaults(run=purge)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    return arguments.run(arguments)


if __name__ == "__main__":
    sys.exit(main())
