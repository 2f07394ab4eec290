"""An ASGI app that hands each HTTP request to the Chalice app as API Gateway would: a Lambda proxy event.

`make run` serves it on uvicorn (dalet_ops/local_http.py). Chalice's `LocalGateway` builds the event,
runs the route and shapes the answer exactly as `chalice local` does; this adapter adds what API
Gateway (or the local server's promises) put in front of the app:
- unknown paths answer 404 JSON (chalice local answered 403 "Missing Authentication Token", or with an
  `Authorization` header a SigV4 message); on AWS API Gateway answers them before the function runs;
- HEAD on a GET route is that GET without its body (RFC 9110 9.3.2; chalice local answered 405);
- repeated headers: API Gateway passes the last; differing `x-api-key` or `Authorization` headers are
  refused with 400 naming the header, identical repeats pass;
- the body is bounded before it is read: a `Content-Length` over 1 MiB gets 413 before the client is
  invited to send it (so also in answer to `Expect: 100-continue`); a chunked body is refused with 413
  as soon as it passes 1 MiB; the whole body must arrive within an absolute deadline (else 408);
- Chalice's routes are blocking code: each runs on a worker thread, never on the event loop.
Every refusal is JSON `{"error": ..., "header": ...}` (the header, when one is to blame).
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from http import HTTPStatus
from typing import Any

from chalice.local import LocalGateway, LocalGatewayException, RouteMatcher

from chalicelib.auth import API_KEY_HEADER
from chalicelib.ingest.track import MAX_BODY_BYTES
from chalicelib.reports.api import CONFLICTING_KEYS

log = logging.getLogger("dalet.server")

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]

# What API Gateway's REST APIs route; anything else is not a method of this API.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
# Credentials: a proxy that appends its own must not make the app read a different one than API Gateway.
SINGLE_VALUED = {API_KEY_HEADER: CONFLICTING_KEYS,
                 "authorization": "Authorization: given several times with different values; send it once"}


class Refusal(Exception):
    """A request the server answers itself: `status`, a message, and the header to blame (if any)."""

    def __init__(self, status: int, message: str, header: str | None = None):
        super().__init__(message)
        self.status, self.message, self.header = status, message, header

    def body(self) -> bytes:
        document = {"error": self.message, **({"header": self.header} if self.header else {})}
        return json.dumps(document).encode("utf-8")

    def raw_response(self) -> bytes:
        """The whole answer as bytes, for the connection layer to write before it closes."""
        body = self.body()
        head = [f"HTTP/1.1 {self.status} {HTTPStatus(self.status).phrase}",
                *(f"{name}: {value}" for name, value in self.headers(len(body)))]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body

    def headers(self, length: int) -> list[tuple[str, str]]:
        retry = [("Retry-After", "1")] if self.status == 503 else []
        return [("Content-Type", "application/json"), ("Content-Length", str(length)),
                ("Access-Control-Allow-Origin", "*"), ("Connection", "close"), *retry]


def too_large(header: str) -> Refusal:
    return Refusal(413, f"body over {MAX_BODY_BYTES} bytes (1 MiB)", header)


class ChaliceASGI:
    """The ASGI 3 application: HTTP request in, Lambda proxy event to Chalice, its answer out."""

    def __init__(self, chalice_app: Any, chalice_config: Any, executor: Executor, body_seconds: float,
                 max_body_bytes: int = MAX_BODY_BYTES):
        self._gateway = LocalGateway(chalice_app, chalice_config)
        self._routes = RouteMatcher(list(chalice_app.routes))
        self._methods = {path: set(entries) for path, entries in chalice_app.routes.items()}
        self._executor = executor
        self._body_seconds = body_seconds
        self._max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            method, target, headers = self._routed(scope)
            body = await self._body(headers, receive)
        except Refusal as refusal:
            await _send(send, refusal.status, refusal.headers(len(refusal.body())), refusal.body())
            return
        except ConnectionResetError:      # the client left while sending its body
            return
        loop = asyncio.get_running_loop()
        try:
            status, answer_headers, answer = await loop.run_in_executor(
                self._executor, self._answer, method, target, headers, body)
        except Exception:     # Chalice answers its routes' errors itself; this is the adapter failing
            log.exception("the request could not be handed to the app: %s %s", method, target[:200])
            failed = Refusal(500, "the server failed to handle the request; its log says why")
            status, answer_headers, answer = failed.status, failed.headers(len(failed.body())), failed.body()
        await _send(send, status, answer_headers, answer)

    def _routed(self, scope: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
        """The method Chalice sees, the request target and the headers; Refusal if it goes no further."""
        method = scope["method"]
        if method not in KNOWN_METHODS:
            raise Refusal(501, f"method {method[:20]} is not supported here")
        query = scope["query_string"].decode("latin-1")
        target = scope["raw_path"].decode("latin-1") + (f"?{query}" if query else "")
        try:
            route = self._routes.match_route(target).route
        except ValueError:
            raise Refusal(404, f"no such path: {scope['path'][:200]} (the routes are in docs/api.md)") from None
        if method == "HEAD" and "HEAD" not in self._methods[route] and "GET" in self._methods[route]:
            method = "GET"                # the server leaves the body out (the scope's method is HEAD)
        return method, target, single_headers(scope["headers"])

    async def _body(self, headers: dict[str, str], receive: Receive) -> bytes | None:
        chunked = "transfer-encoding" in headers      # the server let only `chunked` through
        length = int(headers.get("content-length", "0"))    # the server checked it is a number
        blame = "Transfer-Encoding" if chunked else "Content-Length"
        if length > self._max_body_bytes:
            raise too_large("Content-Length")          # before the first receive() invites the body
        if not chunked and not length:
            return None
        try:
            async with asyncio.timeout(self._body_seconds):
                return await self._read_up_to_limit(receive)
        except TimeoutError:
            raise Refusal(408, f"the body did not arrive within {self._body_seconds:g} s", blame) from None
        except _TooLarge:
            raise too_large(blame) from None

    async def _read_up_to_limit(self, receive: Receive) -> bytes:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ConnectionResetError("the client left")
            body += message.get("body", b"")
            if len(body) > self._max_body_bytes:
                raise _TooLarge()
            if not message.get("more_body"):
                return bytes(body)

    def _answer(self, method: str, target: str, headers: dict[str, str],
                body: bytes | None) -> tuple[int, list[tuple[str, str]], bytes]:
        """What Chalice answers (on a worker thread): status, headers, body; as `chalice local` shapes it."""
        try:
            response = self._gateway.handle_request(method=method, path=target, headers=headers, body=body)
        except LocalGatewayException as error:
            return error.CODE, _header_list(error.headers), error.body or b""
        answer = response.get("body")
        if response.get("isBase64Encoded"):
            answer = base64.b64decode(answer or b"")
        elif isinstance(answer, str):
            answer = answer.encode("utf-8")
        header_list = _header_list({**response["headers"], **response.get("multiValueHeaders", {})})
        if not any(name.lower() == "content-type" for name, _ in header_list):
            header_list.append(("Content-Type", "application/json"))
        return response["statusCode"], header_list, answer or b""


class _TooLarge(Exception):
    pass


def single_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """One value per header name, lower-cased, as API Gateway's `headers` (the last of repeats);
    a credential given twice with different values is refused instead of guessed."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1").strip()
        if name in SINGLE_VALUED and name in headers and headers[name] != value:
            raise Refusal(400, SINGLE_VALUED[name], API_KEY_HEADER if name == API_KEY_HEADER else "Authorization")
        headers[name] = value
    return headers


def _header_list(headers: dict[str, Any]) -> list[tuple[str, str]]:
    listed: list[tuple[str, str]] = []
    for name, value in headers.items():
        listed.extend((name, str(item)) for item in (value if isinstance(value, list) else [value]))
    return listed


async def _send(send: Send, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    without_length = [(name, value) for name, value in headers if name.lower() != "content-length"]
    encoded = [(name.encode("latin-1"), value.encode("latin-1"))
               for name, value in [*without_length, ("Content-Length", str(len(body)))]]
    await send({"type": "http.response.start", "status": status, "headers": encoded})
    await send({"type": "http.response.body", "body": body})
