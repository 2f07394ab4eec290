"""What a browser asks for first: `/` leads to the dashboard, `/favicon.ico` is answered quietly.

Without these routes API Gateway and chalice local answer both with 403 "Missing
Authentication Token", which reads like a key problem to a newcomer.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalice import Response

from chalicelib.responses import json_response

DASHBOARD_PATH = "/dashboard"
HEALTH_PATH = "/health"


def base_path(context: Mapping[str, Any]) -> str:
    """What precedes `/` in the URL the browser used: "/api" on API Gateway's stage, "" locally.

    API Gateway: path "/api/" (or "/api"), resourcePath "/", stage "api"; behind a custom domain's
    base path the path holds that base path instead. chalice local: path "/", no stage.
    """
    requested = str(context.get("path") or "")
    if requested.endswith("/"):
        return requested.rstrip("/")
    stage = context.get("stage")
    return f"/{stage}" if stage else requested


def to_dashboard(context: Mapping[str, Any]) -> Response:
    """302 to the dashboard, with a JSON body naming it and /health for clients that do not follow."""
    base = base_path(context)
    location = base + DASHBOARD_PATH
    return json_response({"dashboard": location, "health": base + HEALTH_PATH}, 302, {"Location": location})


def no_favicon() -> Response:
    """204: nothing to show, nothing for the browser's console to report; asked again at most daily."""
    return Response(body="", status_code=204, headers={"Cache-Control": "public, max-age=86400"})
