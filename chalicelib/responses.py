"""Response shapes shared by the routes: JSON with CORS and no caching, and the pixel."""
from __future__ import annotations

import base64
import json
import re
from typing import Any

from chalice import CORSConfig, Response

CORS = CORSConfig(allow_origin="*", allow_headers=["x-api-key", "Content-Type"], max_age=600)
NO_STORE = {"Cache-Control": "no-store"}
# A 1x1 transparent GIF.
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def json_response(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=json.dumps(body, ensure_ascii=False, allow_nan=False),
        status_code=status_code,
        headers={"Content-Type": "application/json", **NO_STORE, **(headers or {})},
    )


def text_response(body: str, content_type: str = "text/plain; charset=utf-8",
                  headers: dict[str, str] | None = None) -> Response:
    return Response(body=body, status_code=200, headers={"Content-Type": content_type, **NO_STORE, **(headers or {})})


def error_response(status_code: int, message: str, **details: Any) -> Response:
    return json_response({"error": message, **details}, status_code)


def pixel_response() -> Response:
    return Response(body=PIXEL_GIF, status_code=200, headers={"Content-Type": "image/gif", **NO_STORE})


def accepts_gif(accept: str | None) -> bool:
    """Chalice returns a binary body only when Accept names its type or */*.

    Matched the way Chalice matches (whole media types, parameters split off), so that
    e.g. `image/gifx` is not taken for `image/gif` and answered with Chalice's 400.
    """
    accept = (accept or "").lower()
    media_types = {part.strip() for part in re.split("[,;]", accept)}
    return "image/gif" in media_types or "*/*" in accept
