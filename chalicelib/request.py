"""The request a route is answering, typed for the routes (Chalice's `current_request` is Optional)."""
from __future__ import annotations

from chalice import Chalice
from chalice.app import Request


def current_request(app: Chalice) -> Request:
    """Chalice sets the request before it calls a route, so a route never sees None here."""
    request = app.current_request
    if request is None:
        raise RuntimeError("no request is being answered: current_request() is for routes")
    return request


def body_bytes(request: Request) -> bytes | None:
    """The raw body; Chalice types it str | bytes but encodes a str body to UTF-8 bytes before returning it."""
    body = request.raw_body
    return body.encode("utf-8") if isinstance(body, str) else body
