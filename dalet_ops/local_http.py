"""The HTTP server behind `make run`: chalice local's request handler, hardened for a long-running install.

Chalice's local server is a development tool; `make run` keeps it (same routing and
Lambda event conversion) but replaces the parts that hurt a server left running:
- the listen backlog: socketserver's default of 5 made simultaneous connects wait for
  SYN retransmits (1 s, 3 s, ...); here it is `LISTEN_BACKLOG`;
- response writes: headers and body left in two writes, and Nagle's algorithm held the
  second until the client's delayed ACK (about 40 ms per request on a kept-alive
  connection). Here the socket has TCP_NODELAY and the response leaves in one write;
- the request body: read whole before any size check (a 300 MB POST was buffered).
  Here a Content-Length over `MAX_BODY_BYTES` is refused (413) before reading, a
  chunked body is read only up to the limit, and a malformed length gets a 400
  naming the header instead of a dropped connection and a traceback;
- repeated headers: chalice local passes on the first, API Gateway the last; differing
  `x-api-key` headers are refused (400) as the report routes refuse them on AWS.
- silent clients: every read times out after `IDLE_TIMEOUT_SECONDS` (an idle connection is
  closed, a stalled body gets 408), and at most `MAX_CONNECTIONS` are handled at once (more get
  503 at once), so slowloris-style clients cannot hold threads or buffered bodies without bound;
- HEAD: answered with headers only (chalice local wrote the body too).
"""
from __future__ import annotations

import json
import re
import threading
from typing import Any, BinaryIO

from chalice.local import ChaliceRequestHandler, LocalDevServer, ThreadedHTTPServer

from chalicelib.auth import API_KEY_HEADER
from chalicelib.ingest.track import MAX_BODY_BYTES
from chalicelib.reports.api import CONFLICTING_KEYS

LISTEN_BACKLOG = 1024        # the kernel caps it at net.core.somaxconn (4096 on current Linux)
# How long a connection may stay silent (between requests, or in the middle of headers or a body)
# before it is closed. Without it a client that opens connections and sends nothing (slowloris)
# holds one thread each, forever. Generous for a slow phone; bounded for the server.
IDLE_TIMEOUT_SECONDS = 20.0
# Connections handled at once (a thread each, and each may buffer a body of up to 1 MiB); more are
# answered 503 at once. Without a cap, clients stalling just short of 1 MiB could hold gigabytes.
MAX_CONNECTIONS = 256
_CROWDED = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
            b"Access-Control-Allow-Origin: *\r\nConnection: close\r\nContent-Length: 57\r\n\r\n"
            b'{"error": "too many connections at once; retry shortly"}\n')
_MAX_CHUNK_LINE = 1024
_DIGITS = re.compile(r"[0-9]+")
_HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]+")


class RefusedRequest(Exception):
    """The request cannot be read as sent; answered with `status` and a body naming `header`."""

    def __init__(self, status: int, message: str, header: str):
        super().__init__(message)
        self.status = status
        self.header = header

    def body(self) -> bytes:
        return json.dumps({"error": str(self), "header": self.header}).encode("utf-8")


class _TooLarge(RefusedRequest):
    def __init__(self, header: str):
        super().__init__(413, f"body over {MAX_BODY_BYTES} bytes (1 MiB)", header)


def declared_length(values: list[str]) -> int | None:
    """The Content-Length header's value; None when absent. Several copies must agree (RFC 9110 8.6)."""
    if not values:
        return None
    distinct = {value.strip() for value in values}
    if len(distinct) > 1:
        raise RefusedRequest(400, "Content-Length: given several times with different values", "Content-Length")
    (text,) = distinct
    if not _DIGITS.fullmatch(text):
        raise RefusedRequest(400, f"Content-Length: must be a whole number of bytes (got {text[:40]!r})",
                             "Content-Length")
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(MAX_BODY_BYTES)):   # certainly over the limit; and int() refuses 4,300+ digits
        raise _TooLarge("Content-Length")
    return int(digits)


def refuse_conflicting_api_keys(headers: Any) -> None:
    """chalice local would pass on the first of repeated headers; differing report keys are refused
    here as the report routes refuse them on API Gateway (chalicelib.reports.api)."""
    if len({value.strip() for value in headers.get_all(API_KEY_HEADER) or []}) > 1:
        raise RefusedRequest(400, CONFLICTING_KEYS, API_KEY_HEADER)


def read_body(headers: Any, rfile: BinaryIO, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """The request body, never reading more than `limit` bytes of it; RefusedRequest otherwise."""
    length = declared_length(headers.get_all("Content-Length") or [])
    coding = headers.get("Transfer-Encoding")
    if coding is not None:
        if length is not None:   # both: a request smuggling vector, refused as RFC 9112 6.3 allows
            raise RefusedRequest(400, "Transfer-Encoding: not allowed together with Content-Length",
                                 "Transfer-Encoding")
        if coding.strip().lower() != "chunked":
            raise RefusedRequest(501, f"Transfer-Encoding: only chunked is supported (got {coding[:40]!r})",
                                 "Transfer-Encoding")
        return read_chunked(rfile, limit)
    if not length:
        return None
    if length > limit:
        raise _TooLarge("Content-Length")
    return rfile.read(length)


def read_chunked(rfile: BinaryIO, limit: int) -> bytes:
    """A chunked body (RFC 9112 7.1), refused with 413 as soon as it passes `limit`."""
    body = bytearray()
    while True:
        size = _chunk_size(rfile.readline(_MAX_CHUNK_LINE + 1))
        if size == 0:
            break
        if len(body) + size > limit:
            raise _TooLarge("Transfer-Encoding")
        chunk = rfile.read(size)
        if len(chunk) < size or rfile.readline(3).rstrip(b"\r\n") != b"":
            raise RefusedRequest(400, "Transfer-Encoding: a chunk is cut short or not followed by CRLF",
                                 "Transfer-Encoding")
        body += chunk
    while rfile.readline(_MAX_CHUNK_LINE + 1) not in (b"\r\n", b"\n", b""):
        pass   # trailer fields: none of them matter here
    return bytes(body)


def _chunk_size(line: bytes) -> int:
    text = line.split(b";", 1)[0].strip()
    if len(line) > _MAX_CHUNK_LINE or not _HEX_DIGITS.fullmatch(text) or len(text) > 16:
        raise RefusedRequest(400, "Transfer-Encoding: a chunk size is not a hexadecimal number",
                             "Transfer-Encoding")
    return int(text, 16)


def _body_header(headers: Any) -> str:
    return "Transfer-Encoding" if headers.get("Transfer-Encoding") is not None else "Content-Length"


class DaletRequestHandler(ChaliceRequestHandler):
    """chalice local's handler with a bounded body and one write per response."""

    disable_nagle_algorithm = True  # TCP_NODELAY on every accepted connection
    wbufsize = -1                   # a buffered wfile: headers and body leave together at the flush
    timeout = IDLE_TIMEOUT_SECONDS  # socket timeout of every read: the idle and slow-body bound

    def handle_expect_100(self) -> bool:
        """Refuse an oversized or malformed body before the client sends it, else invite it."""
        try:
            length = declared_length(self.headers.get_all("Content-Length") or [])
            if length is not None and length > MAX_BODY_BYTES:
                raise _TooLarge("Content-Length")
        except RefusedRequest as refused:
            self._refuse(refused)
            return False
        self.send_response_only(100)
        self.end_headers()
        self.wfile.flush()                      # the buffered wfile would otherwise hold it back
        return True

    def _generic_handle(self) -> None:
        try:
            refuse_conflicting_api_keys(self.headers)
            self._body = read_body(self.headers, self.rfile)
        except TimeoutError:
            self._refuse(RefusedRequest(408, f"the body stopped arriving for {self.timeout:g} s",
                                        _body_header(self.headers)))
            return
        except RefusedRequest as refused:
            self._refuse(refused)
            return
        tracker: InFlight = self.server.tracker  # type: ignore[attr-defined]
        if not tracker.begin():
            self._refuse(RefusedRequest(503, "the server is stopping; retry shortly", "Connection"))
            return
        try:
            super()._generic_handle()
        finally:
            tracker.end()

    def _send_http_response_with_body(self, code: int, headers: Any, body: str | bytes) -> None:
        if self.command == "HEAD":   # headers only (RFC 9110 9.3.2), else the body is read as the next answer
            self.send_response(code)
            length = len(body.encode("utf-8") if isinstance(body, str) else body)
            self._send_headers({**headers, "Content-Length": str(length)})
            return
        super()._send_http_response_with_body(code, headers, body)

    def _refuse(self, refused: RefusedRequest) -> None:
        self.close_connection = True            # an unread body would be taken for the next request
        self._send_http_response(refused.status, {"Content-Type": "application/json",
                                                  "Access-Control-Allow-Origin": "*",
                                                  "Connection": "close"}, refused.body())

    def _parse_payload(self) -> tuple[dict[str, str], bytes | None]:
        return dict(self.headers), self._body

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle


class InFlight:
    """Counts requests being handled, so a shutdown can refuse new ones and let these finish."""

    def __init__(self) -> None:
        self._count = 0
        self._closing = False
        self._idle = threading.Condition()

    def begin(self) -> bool:
        """Count a request in; False once closing (a kept-alive connection must not reopen the pipeline)."""
        with self._idle:
            if self._closing:
                return False
            self._count += 1
            return True

    def end(self) -> None:
        with self._idle:
            self._count -= 1
            self._idle.notify_all()

    def close_and_wait(self, timeout: float) -> bool:
        """Refuse new requests; whether those in flight finished within `timeout`."""
        with self._idle:
            self._closing = True
            return self._idle.wait_for(lambda: self._count == 0, timeout)


class DaletHTTPServer(ThreadedHTTPServer):
    request_queue_size = LISTEN_BACKLOG
    max_connections = MAX_CONNECTIONS

    def __init__(self, *args: Any, **kwargs: Any):
        self.tracker = InFlight()
        self._places = threading.BoundedSemaphore(self.max_connections)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread for the connection if there is a place for it; else 503 and close, without reading."""
        if not self._places.acquire(blocking=False):
            try:
                request.sendall(_CROWDED)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._places.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._places.release()


def local_server(app: Any, config: Any, host: str, port: int) -> LocalDevServer:
    """What `chalice local` builds (its routing, its Lambda events), on the hardened server."""
    from chalice.local import CustomLocalChalice, LocalChalice

    CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)   # as chalice.local.create_local_server does
    app.__class__ = CustomLocalChalice
    return LocalDevServer(app, config, host, port, handler_cls=DaletRequestHandler, server_cls=DaletHTTPServer)
