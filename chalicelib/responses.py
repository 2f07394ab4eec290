"""Response shapes shared by the routes: JSON with CORS and no caching, and the pixel."""
from __future__ import annotations

import base64
import json
import logging
import re
from typing import Any

from chalice import CORSConfig, Response

from chalicelib.config import ConfigError

# Not under the "dalet" logger: Chalice stops that one's records at its own handler.
log = logging.getLogger(__name__)

CORS = CORSConfig(allow_origin="*", allow_headers=["x-api-key", "Content-Type"], max_age=600)
# Segment's browser library sends its write key as Basic auth (Authorization is always allowed by
# Chalice) and, on a retry, X-Retry-Count.
SEGMENT_CORS = CORSConfig(allow_origin="*", allow_headers=["Content-Type", "Content-Encoding", "X-Retry-Count"],
                          max_age=600)
NO_STORE = {"Cache-Control": "no-store"}
# A 1x1 transparent GIF.
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)  # built once: /track is a hot path


def json_response(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=_JSON_ENCODER.encode(body),
        status_code=status_code,
        headers={"Content-Type": "application/json", **NO_STORE, **(headers or {})},
    )


def text_response(body: str, content_type: str = "text/plain; charset=utf-8",
                  headers: dict[str, str] | None = None) -> Response:
    return Response(body=body, status_code=200, headers={"Content-Type": content_type, **NO_STORE, **(headers or {})})


def error_response(status_code: int, message: str, **details: Any) -> Response:
    return json_response({"error": message, **details}, status_code)


def segment_error(status_code: int, message: str, code: str, **details: Any) -> Response:
    """An error as Segment's libraries read it (`code`, `message`), with Dalet's `error` as well."""
    return json_response({"success": False, "code": code, "message": message, "error": message, **details},
                         status_code)


STREAM_UNAVAILABLE = "stream_unavailable"
WAREHOUSE_UNAVAILABLE = "warehouse_unavailable"
MISCONFIGURED = "server_misconfigured"
_UNAVAILABLE = {STREAM_UNAVAILABLE: "the event stream is unavailable; retry later",
                WAREHOUSE_UNAVAILABLE: "the warehouse is unavailable; retry later"}


def unavailable_response(cause: Exception, what: str, unavailable: str = STREAM_UNAVAILABLE) -> Response:
    """503 with a generic reason; the cause goes to the log only.

    The cause may carry the account id, a role ARN or a stream name (AWS puts them in its
    error messages); a public endpoint must not hand those to anyone who asks.
    """
    return error_response(503, _UNAVAILABLE[unavailable], reason=unavailable_reason(cause, what, unavailable))


def refusal_log_mark(unavailable: str) -> str:
    """The words every such 503 logs: the deployed stage counts them (a log metric filter) and alarms."""
    return f"answered 503 {unavailable}"


def unavailable_reason(cause: Exception, what: str, unavailable: str = STREAM_UNAVAILABLE) -> str:
    """Log the cause; the generic reason a public answer may carry instead."""
    log.error("%s %s: %s: %s", what, refusal_log_mark(unavailable), type(cause).__name__, cause)
    return MISCONFIGURED if isinstance(cause, ConfigError) else unavailable


def pixel_response() -> Response:
    return Response(body=PIXEL_GIF, status_code=200, headers={"Content-Type": "image/gif", **NO_STORE})


# Binary media types of the app for the pixel. API Gateway decodes a binary body only when the
# request's first Accept type matches one (Chrome's <img> Accept starts with image/avif, which
# image/* matches); Chalice itself answers 400 unless Accept names one of them or */*.
PIXEL_MEDIA_TYPES = ("image/gif", "image/*")


def accepts_gif(accept: str | None) -> bool:
    """Whether the pixel may be answered with the GIF itself rather than JSON.

    Matched the way Chalice matches (whole media types, parameters split off), so that
    e.g. `image/gifx` is not taken for `image/gif` and answered with Chalice's 400.
    """
    accept = (accept or "").lower()
    media_types = {part.strip() for part in re.split("[,;]", accept)}
    return bool(media_types & set(PIXEL_MEDIA_TYPES)) or "*/*" in accept
