"""The HTTP server behind `make run`: uvicorn (HTTP/1.1 by h11) serving the Chalice app through
dalet_ops/lambda_asgi.py.

Why uvicorn with h11: maintained (Encode), pure Python with no compiled part (h11 is the HTTP/1.1
parser httpx and hypercorn use too), and one event loop for every connection, so a slow or silent
client costs a socket and a few kilobytes, not a thread. (waitress is WSGI and also caps connections
only by refusing to accept them; hypercorn lacks the same deadlines; uvicorn's h11 protocol is the
smallest to extend with them.) It does for us what the hand-written server
on http.server did: request parsing and framing (Content-Length and chunked, pipelining), `Expect:
100-continue` (sent only when the app first reads the body), keep-alive with an idle timeout, HEAD
without a body, TCP_NODELAY (asyncio sets it), graceful shutdown on SIGINT/SIGTERM that lets requests
in flight finish. The subclass below adds what it lacks, each a promise of `make run`:
- an absolute deadline for a request's headers, from its first byte (uvicorn has none: a client sending
  one byte every few seconds kept a connection for ever), and, in the adapter, one for its body;
- a cap on connections in all and from one address, answered with 503 at once (uvicorn's
  `limit_concurrency` answers only once a request's headers are in, which a trickling client never sends);
- JSON bodies naming the header to blame for every error the server answers itself (uvicorn's are text);
- refusal of what h11 accepts but RFC 9112 lets a server refuse: an obs-fold
  header line (h11 unfolds it), Transfer-Encoding with Content-Length, repeated Transfer-Encoding,
  HTTP versions other than 1.0 and 1.1 (505), and 414/431 for an oversized request line or headers.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import re
import signal
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from chalicelib.config import LocalServerSettings
from dalet_ops.lambda_asgi import ChaliceASGI, Receive, Refusal, Send

LISTEN_BACKLOG = 1024        # the kernel caps it at net.core.somaxconn (4096 on current Linux)
MAX_HEAD_BYTES = 64 * 1024   # request line and headers; past it 414 (the line alone) or 431
REQUEST_THREADS = 16         # Chalice routes run here; a slow client holds none of them
REQUEST_GRACE_SECONDS = 2    # at a stop, requests in flight get this long to finish
LINGER_SECONDS = 1.0         # after refusing, what the client still sends is read and dropped this long

log = logging.getLogger("dalet.server")


class CannotListen(RuntimeError):
    """The port is taken (or the address not ours); the message says how to pick another."""


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts so a taken port fails first and clearly."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise CannotListen(f"port {port} on {host} is already in use (another `make run`?); pick another "
                            f"with `make run PORT={port + 1}` (or `serve --port {port + 1}`)") from None
        raise CannotListen(f"cannot listen on {host}:{port}: {error.strerror or error}; choose another "
                        "with `make run HOST=... PORT=...`") from None


# ---------------------------------------------------------------------------------------------
# The connection layer: h11 made strict, uvicorn's protocol given deadlines, caps and JSON errors
# ---------------------------------------------------------------------------------------------

class StrictConnection(h11.Connection):
    """h11, refusing framing it would accept but RFC 9112 lets a server refuse; the last refusal is
    kept in `refusal` for the JSON answer (uvicorn's handler is told only that the request was bad)."""

    def __init__(self, our_role: Any, max_head_bytes: int):
        super().__init__(our_role, max_head_bytes)
        self.max_head_bytes = max_head_bytes
        self.refusal: Refusal | None = None
        self.head = HeadWatch(max_head_bytes)

    def receive_data(self, data: bytes) -> None:
        if self.their_state is h11.IDLE:
            self.head.add(data)
        super().receive_data(data)

    def start_next_cycle(self) -> None:
        super().start_next_cycle()
        self.head = HeadWatch(self.max_head_bytes, self.trailing_data[0])   # a pipelined head's start

    def next_event(self) -> Any:
        try:
            if self.their_state is h11.IDLE:
                self.head.check()
            event = super().next_event()
            if isinstance(event, h11.Request):
                _check_request(event)
            return event
        except Refusal as refusal:
            self.refusal = refusal
            raise h11.RemoteProtocolError(refusal.message, refusal.status) from None
        except h11.RemoteProtocolError as error:
            self.refusal = refusal_for(error)
            raise


_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")


class HeadWatch:
    """A request head as it arrives, refused if oversized (h11 bounds only a head still incomplete)
    or folded; each byte is searched once, so a head trickled a byte at a time costs linear time."""

    def __init__(self, limit: int, start: bytes = b""):
        self.limit = limit
        self.data = bytearray()
        self.searched = 0
        self.line_end = -1
        self.done = False
        self.add(start)

    def add(self, data: bytes) -> None:
        self.data += data[:max(0, self.limit + 4 - len(self.data))]   # past the limit, only "too long" matters

    def check(self) -> None:
        if self.done:
            return
        start = max(0, self.searched - 3)
        if self.line_end < 0:
            self.line_end = self.data.find(b"\n", start)
        end = _END_OF_HEAD.search(self.data, start)
        self.searched = len(self.data)
        if (self.line_end if self.line_end >= 0 else len(self.data)) > self.limit:
            raise Refusal(414, f"the request line is over {self.limit} bytes")
        if (end.start() if end else len(self.data)) > self.limit:
            raise Refusal(431, f"the request's headers are over {self.limit} bytes")
        if end is not None:
            self.done = True
            _refuse_folding(_LINE_END.split(bytes(self.data[:end.start()])))


def _refuse_folding(lines: list[bytes]) -> None:
    for previous, line in pairwise(lines[1:]):
        if line[:1] in (b" ", b"\t"):    # obs-fold: h11 would join it to the line before
            name = previous.split(b":", 1)[0].decode("latin-1").strip()[:60]
            raise Refusal(400, f"{name}: a header continued on the next line (obs-fold) is not accepted "
                               "(RFC 9112 5.2); send it on one line", name)


def _check_request(request: h11.Request) -> None:
    if request.http_version not in (b"1.0", b"1.1"):
        raise Refusal(505, f"HTTP/{request.http_version.decode()} is not supported; send HTTP/1.1")
    names = {name for name, _ in request.headers}
    if b"transfer-encoding" in names and b"content-length" in names:   # a request-smuggling vector
        raise Refusal(400, "Transfer-Encoding: not allowed together with Content-Length (RFC 9112 6.3)",
                      "Transfer-Encoding")


def refusal_for(error: h11.RemoteProtocolError) -> Refusal:
    """h11's terse reasons as JSON refusals naming the header to blame."""
    reason = str(error)
    if "Content-Length" in reason:
        return Refusal(400, f"Content-Length: must be one whole number of bytes ({reason})", "Content-Length")
    if "multiple Transfer-Encoding" in reason:
        return Refusal(400, "Transfer-Encoding: given more than once; send it once", "Transfer-Encoding")
    if "Transfer-Encoding" in reason:
        return Refusal(501, "Transfer-Encoding: only chunked is supported", "Transfer-Encoding")
    if "chunk" in reason:
        return Refusal(400, f"Transfer-Encoding: the chunked body is malformed ({_plain(reason)})", "Transfer-Encoding")
    if "Host" in reason:
        return Refusal(400, "Host: an HTTP/1.1 request must name the host once", "Host")
    if error.error_status_hint == 431:
        return Refusal(431, f"the request's headers are over {MAX_HEAD_BYTES} bytes")
    if "request line" in reason:
        return Refusal(400, "the request line must be METHOD TARGET HTTP/1.1, in ASCII")
    return Refusal(400, f"not a valid HTTP/1.1 request ({_plain(reason)})")


def _plain(reason: str) -> str:
    """h11's reason without the bytes it quotes (its repr of them, and whatever the client sent)."""
    return reason.split(":", 1)[0][:200]


@dataclass
class Tally:
    """What the server did since the last summary line."""

    requests: int = 0
    refused: int = 0            # answered 4xx
    failed: int = 0             # answered 5xx
    connections_refused: int = 0

    def count(self, status: int) -> None:
        self.requests += 1
        self.refused += 400 <= status < 500
        self.failed += status >= 500

    def take(self) -> Tally:
        taken = Tally(self.requests, self.refused, self.failed, self.connections_refused)
        self.requests = self.refused = self.failed = self.connections_refused = 0
        return taken


class DaletConfig(uvicorn.Config):
    """uvicorn's configuration carrying ours to each connection's protocol."""

    def __init__(self, app: Any, limits: LocalServerSettings, tally: Tally, **options: Any):
        super().__init__(app, **options)
        self.limits = limits
        self.tally = tally


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 connection with a header deadline, connection caps and JSON errors."""

    conn: StrictConnection

    def __init__(self, config: DaletConfig, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None):
        super().__init__(config, server_state, app_state, _loop)
        self.limits = config.limits
        self.tally = config.tally
        self.conn = StrictConnection(h11.SERVER, config.h11_max_incomplete_event_size or MAX_HEAD_BYTES)
        self.head_deadline: asyncio.TimerHandle | None = None
        self.refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = OneSendPerTurn(transport, self.loop)   # type: ignore[assignment]
        crowded = self._crowded()
        if crowded is not None:
            self.tally.connections_refused += 1
            self.refuse(crowded)
            return
        # uvicorn arms its idle timer only after a first answer; a client that never sends is idle too.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def _crowded(self) -> Refusal | None:
        if len(self.connections) > self.limits.max_connections:
            return Refusal(503, "too many connections at once; retry shortly")
        address = self.client[0] if self.client else None
        from_there = sum(1 for other in self.connections
                         if isinstance(other, H11Protocol) and other.client and other.client[0] == address)
        if from_there > self.limits.max_connections_per_address:
            return Refusal(503, f"too many connections from {address} at once; retry shortly")
        return None

    def data_received(self, data: bytes) -> None:
        if self.refused or self.transport.is_closing():    # refused: what it sends now is dropped
            return
        if self.head_deadline is None and self.conn.their_state is h11.IDLE:
            self.head_deadline = self.loop.call_later(self.limits.head_seconds, self._head_too_slow)
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._cancel_head_deadline()

    def _head_too_slow(self) -> None:
        self.head_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.refuse(Refusal(408, f"the request's headers did not arrive within {self.limits.head_seconds:g} s"))

    def _cancel_head_deadline(self) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
            self.head_deadline = None

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request h11 could not read, as JSON naming what is wrong."""
        self.refuse(self.conn.refusal or Refusal(400, msg))

    def refuse(self, refusal: Refusal) -> None:
        """Answer and close. Closing with the client's bytes unread would reset the connection, and a
        reset can discard the answer before the client reads it: so half-close, read and drop what
        still comes for a moment, then close (a "lingering close", as Apache and nginx do)."""
        self.tally.count(refusal.status)
        self._cancel_head_deadline()
        self._unset_keepalive_if_required()
        self.refused = True
        self.connections.discard(self)        # its place is free at once, not after the lingering
        self.transport.write(refusal.raw_response())
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)


class OneSendPerTurn:
    """A transport whose writes of one event-loop turn leave in one send. uvicorn writes an answer's
    head and body apart; two segments let a client read the head alone and wait for the rest."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


# ---------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------

@dataclass
class Summary:
    """The periodic line that replaces per-request logging: what happened since the last one."""

    tally: Tally
    accepted: Callable[[], int]                 # events accepted into the stream since start
    lag: Callable[[], float | None]             # seconds the oldest unwritten event has waited
    say: Callable[[str], None] = print
    _accepted_before: int = field(default=0)

    async def __call__(self) -> None:
        taken = self.tally.take()
        accepted = self.accepted()
        new_events, self._accepted_before = accepted - self._accepted_before, accepted
        if not (taken.requests or taken.connections_refused or new_events):
            return
        lag = await asyncio.to_thread(self.lag)
        refused = f", {taken.connections_refused} connections refused (503)" if taken.connections_refused else ""
        self.say(f"dalet: {taken.requests} requests ({taken.refused} answered 4xx, {taken.failed} 5xx){refused}, "
                 f"{new_events} events accepted; writer lag {'unknown' if lag is None else f'{lag:.1f} s'}")


def counting(app: Any, tally: Tally) -> Any:
    """The ASGI app, counting the status of every answer it gives."""
    async def counted(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        async def send_counted(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                tally.count(message["status"])
            await send(message)
        await app(scope, receive, send_counted)
    return counted


def build_server(chalice_app: Any, chalice_config: Any, limits: LocalServerSettings,
                 summary: Callable[[Tally], Any] | None = None) -> tuple[uvicorn.Server, ThreadPoolExecutor]:
    """A uvicorn server around the Chalice app (`chalice local`'s routing and Lambda events), not yet running."""
    from chalice.local import CustomLocalChalice, LocalChalice

    # As chalice.local.create_local_server does: current_request per thread, as routes run on several.
    CustomLocalChalice.__bases__ = (LocalChalice, chalice_app.__class__)
    chalice_app.__class__ = CustomLocalChalice
    executor = ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="dalet-request")
    tally = Tally()
    app = counting(ChaliceASGI(chalice_app, chalice_config, executor, limits.body_seconds), tally)
    config = DaletConfig(
        app, limits, tally, http=GuardedH11Protocol, loop="asyncio", lifespan="off", ws="none",
        interface="asgi3", log_config=None, access_log=limits.access_log, proxy_headers=False,
        server_header=False, timeout_keep_alive=limits.idle_seconds,
        timeout_graceful_shutdown=REQUEST_GRACE_SECONDS, h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        callback_notify=summary(tally) if summary else None, timeout_notify=limits.summary_seconds)
    # Not its start/stop chatter, nor a warning per malformed request (the summary counts those):
    # its errors (an exception in a request) still show.
    logging.getLogger("uvicorn.error").setLevel(logging.ERROR)
    return uvicorn.Server(config), executor


def serve(chalice_app: Any, chalice_config: Any, listening: socket.socket, limits: LocalServerSettings,
          summary: Callable[[Tally], Any] | None = None, on_stop: Callable[[], None] = lambda: None) -> None:
    """Serve until SIGINT or SIGTERM, then stop taking connections, let requests in flight finish (up to
    REQUEST_GRACE_SECONDS) and call `on_stop` (the pipeline's drain). Returns normally in both cases."""
    # uvicorn re-raises the signal it stopped for once it is done: these handlers take it, and a
    # second Ctrl-C or SIGTERM during `on_stop`, instead of a KeyboardInterrupt or a kill mid-drain.
    previous = {number: signal.signal(number, _noted) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        server, executor = build_server(chalice_app, chalice_config, limits, summary)
        host, port = listening.getsockname()[:2]
        print(f"Serving on http://{host}:{port}", flush=True)
        try:
            server.run(sockets=[listening])
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
    finally:
        try:
            on_stop()
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


def _noted(signal_number: int, _frame: Any) -> None:
    log.info("signal %d: already stopping", signal_number)


__all__ = ["GuardedH11Protocol", "CannotListen", "StrictConnection", "Summary", "Tally", "build_server", "listen",
           "refusal_for", "serve"]
