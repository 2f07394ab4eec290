"""How `status` reaches the running `make run` server, which holds the warehouse file.

DuckDB lets one process open warehouse.duckdb, so while the server runs, `status` cannot
read it. `serve` therefore leaves `server.json` (its URL and process id) in the data folder,
removed when it stops, and adds a route of its own, `GET /local/status` (API key required),
that answers the warehouse readings. The route is registered by `serve` alone: it lives here
in dalet_ops, which is never packaged, so no deployed stage has it.
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chalicelib.auth import API_KEY_HEADER
from chalicelib.config import Settings
from dalet_ops.status import Reading, ServerUnavailable, warehouse_readings

SERVER_FILE = "server.json"
STATUS_PATH = "/local/status"
ASK_TIMEOUT_SECONDS = 10.0


class NoAnswer(ServerUnavailable):
    """The server recorded in the data folder did not answer (stopped by a crash, or hung)."""


def record(data_dir: Path, url: str) -> Path:
    """Leave the server's URL for `status`; written whole or not at all."""
    path = data_dir / SERVER_FILE
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps({"url": url, "pid": os.getpid()}) + "\n")
    partial.replace(path)
    return path


def forget(data_dir: Path) -> None:
    """Remove the record, if it is this process's (another server may have started on the same folder since)."""
    path = data_dir / SERVER_FILE
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def recorded_url(data_dir: Path) -> str | None:
    """The URL a running server left; None if none is recorded."""
    try:
        url = json.loads((data_dir / SERVER_FILE).read_text())["url"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if isinstance(url, str) and url.startswith("http://") else None


def readings_from_running_server(settings: Settings) -> list[Reading]:
    """The warehouse readings, asked of the server recorded in the data folder; ServerUnavailable if none answers."""
    from chalicelib.auth import expected_api_key

    url = recorded_url(settings.data_dir)
    if url is None:
        raise ServerUnavailable(f"no running Dalet server recorded its URL in {settings.data_dir / SERVER_FILE}: "
                                "whatever holds the warehouse, stop it to read this")
    return ask_readings(url, expected_api_key(settings)) + [
        Reading("server", f"running at {url}, which holds the warehouse: the two readings above are its")]


def ask_readings(url: str, api_key: str, timeout: float = ASK_TIMEOUT_SECONDS) -> list[Reading]:
    """The warehouse readings, taken by the server at `url`."""
    request = urllib.request.Request(url + STATUS_PATH, headers={API_KEY_HEADER: api_key})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            document = json.load(answer)
    except urllib.error.HTTPError as refused:
        reason = refused.read(300).decode(errors="replace")
        raise NoAnswer(f"{url}{STATUS_PATH} answered {refused.code}: {reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        cause = getattr(error, "reason", None) or error
        raise NoAnswer(f"the server recorded in the data folder ({url}) does not answer ({cause}): "
                       "whatever holds the warehouse, stop it to read this") from None
    return [Reading(**reading) for reading in document["readings"]]


def add_status_route(app: Any) -> None:
    """Register GET /local/status on the app `serve` runs (before the server is built)."""
    from chalicelib import auth, error_answers, runtime
    from chalicelib.responses import json_response

    def readings() -> Any:
        auth.check_api_key(app.current_request.headers, runtime.settings())
        taken = warehouse_readings(runtime.warehouse(), datetime.now(UTC))
        return json_response({"readings": [asdict(reading) for reading in taken]})

    def local_status() -> Any:
        # As the reports answer: 401/403 for the key, 503 with a reason while the warehouse is down (not 500).
        return error_answers.answered(error_answers.REPORT, "local status", readings)

    app.route(STATUS_PATH, methods=["GET"], name="local_status")(local_status)
