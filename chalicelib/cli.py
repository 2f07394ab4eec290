"""Dalet's command line: `python -m chalicelib.cli COMMAND`."""
from __future__ import annotations

import argparse
import sys

from chalicelib import auth, config


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("local-info", help="print the local data folder and API key").set_defaults(run=local_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    return arguments.run(arguments)


if __name__ == "__main__":
    sys.exit(main())
