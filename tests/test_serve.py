"""`make run` (`python -m dalet_ops.cli serve`): chalice local with the pipeline running from the start."""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import time
from typing import Iterator

import duckdb
import pytest

from chalicelib.ingest.events import now, parse_event, stamp
from chalicelib.ingest.local_stream import LocalConsumer, LocalStream
from chalicelib.ingest.records import encode_record
from chalicelib.runtime import STREAM_FILE, WAREHOUSE_FILE
from tests.local_server import LOCAL_HOST, LocalServer, wait_until
from tests.segment_helpers import WRITE_KEY, basic_auth


def _leave_a_backlog(data_dir, count: int) -> list[str]:
    """Events acknowledged before a crash: in the stream, not yet in the warehouse."""
    data_dir.mkdir(parents=True)
    stream = LocalStream(data_dir / STREAM_FILE, "dalet-events")
    stored = [stamp(parse_event({"experiment": "backlog", "variant": "a", "event": "participate",
                                 "uuid": f"u{i}"}), now()) for i in range(count)]
    stream.append([(s.event_id, encode_record(s)) for s in stored])
    return [s.event_id for s in stored]


def test_a_backlog_left_by_a_crash_drains_at_start_without_any_request(tmp_path):
    data_dir = tmp_path / "data"
    event_ids = _leave_a_backlog(data_dir, 25)
    stream = LocalStream(data_dir / STREAM_FILE, "dalet-events")

    with LocalServer.start(data_dir, env={"DALET_API_KEY": "k"}, via_make_run=True) as server:
        # Readiness probes hit no route, so nothing but the server's own start can drain the stream.
        wait_until(lambda: stream.pending(LocalConsumer.CONSUMER) == 0, timeout=30,
                   message=f"backlog not drained:\n{server.log()}")
        assert "Report API key (x-api-key): k" in server.log()

    with duckdb.connect(str(data_dir / WAREHOUSE_FILE), read_only=True) as db:
        stored = {row[0] for row in db.execute("SELECT event_id FROM events").fetchall()}
    assert stored == set(event_ids)


def test_serve_answers_track_like_chalice_local(tmp_path):
    with LocalServer.start(tmp_path / "data", via_make_run=True) as server:
        reply = server.request("GET", "/track", query={"experiment": "e", "variant": "a",
                                                     "event": "participate", "uuid": "u1"})
        assert reply.status == 200 and reply.json() == {"ok": True, "accepted": 1}


# --- the start-up banner ---------------------------------------------------------------------------


def test_the_banner_names_the_dashboard_the_key_to_paste_and_a_first_curl():
    from dalet_ops.startup import banner

    text = banner("http://127.0.0.1:8001")

    assert "Dashboard: http://127.0.0.1:8001/dashboard  (paste the report API key printed above)" in text
    assert "curl 'http://127.0.0.1:8001/track?experiment=hello&variant=a&event=participate&uuid=newcomer-1'" in text


@pytest.mark.parametrize("host, url", [("127.0.0.1", "http://127.0.0.1:8000"), ("0.0.0.0", "http://127.0.0.1:8000"),
                                       ("::", "http://[::1]:8000"), ("example.internal", "http://example.internal:8000")])
def test_the_banner_shows_an_address_a_browser_on_this_machine_opens(host, url):
    from dalet_ops.startup import browsable_url

    assert browsable_url(host, 8000) == url


def test_make_run_prints_a_first_curl_that_tracks_and_records_its_url_for_status(tmp_path):
    import shlex
    import urllib.request

    from dalet_ops.running_server import SERVER_FILE

    data_dir = tmp_path / "data"
    with LocalServer.start(data_dir, env={"DALET_API_KEY": "k"}, via_make_run=True) as server:
        log = server.log()
        assert f"Dashboard: {server.base_url}/dashboard" in log
        (curl,) = [line.split("curl ", 1)[1] for line in log.splitlines() if "curl " in line]
        with urllib.request.urlopen(shlex.split(curl)[0], timeout=10) as answer:
            assert json.loads(answer.read()) == {"ok": True, "accepted": 1}
        assert json.loads((data_dir / SERVER_FILE).read_text())["url"] == server.base_url
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0, server.log()
    assert not (data_dir / SERVER_FILE).exists()


# --- the hardened HTTP server (dalet_ops.local_http) --------------------------------------------------

TRACK_QUERY = "/track?experiment=e&variant=a&event=participate&uuid=u1"


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[LocalServer]:
    with LocalServer.start(tmp_path_factory.mktemp("serve") / "data",
                           env={"DALET_API_KEY": "k", "DALET_WRITE_KEYS": f"{WRITE_KEY}=web"},
                           via_make_run=True) as server:
        yield server


def _connect(server: LocalServer, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection((LOCAL_HOST, server.port), timeout=timeout)


def _read_response(connection: socket.socket, to_head: bool = False) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response read off a raw socket: status, lower-cased headers, body (none `to_head`)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole response: {received!r}")
        received += chunk
    head, body = received.split(b"\r\n\r\n", 1)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in header_lines)}
    while len(body) < int(headers.get("content-length", 0)) and not to_head:
        body += connection.recv(65536)
    return int(status_line.split()[1]), headers, body


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()


def test_64_simultaneous_connects_are_all_accepted_while_the_server_is_busy(served):
    # Stopped, the server accepts nothing: only the kernel's listen queue takes connections.
    os.kill(served.process.pid, signal.SIGSTOP)
    try:
        pending = []
        for _ in range(64):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex((LOCAL_HOST, served.port))
            pending.append(client)
        _, writable, _ = select.select([], pending, [], 1.0)
        connected = [client for client in writable if client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0]
        assert len(connected) == 64
    finally:
        os.kill(served.process.pid, signal.SIGCONT)
    for client in pending:
        client.setblocking(True)
        client.settimeout(10)
        client.sendall(_get(TRACK_QUERY))
    statuses = [_read_response(client)[0] for client in pending]
    for client in pending:
        client.close()
    assert statuses == [200] * 64


def test_a_response_on_a_kept_alive_connection_leaves_in_one_write(served):
    # Headers and body written apart wait for the client's delayed ACK (Nagle): ~40 ms a request.
    with _connect(served) as connection:
        for _ in range(2):
            connection.sendall(_get(TRACK_QUERY))
            assert _read_response(connection)[0] == 200
        connection.sendall(_get(TRACK_QUERY))
        first_read = connection.recv(65536)
    head, _, body = first_read.partition(b"\r\n\r\n")
    assert json.loads(body) == {"ok": True, "accepted": 1}, first_read


def _post_head(length: str, *extra: str) -> bytes:
    lines = ["POST /track HTTP/1.1", "Host: localhost", "Content-Type: application/json",
             f"Content-Length: {length}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_body_declared_over_1_mib_is_refused_before_it_is_read(served):
    with _connect(served) as connection:
        connection.sendall(_post_head("300000000"))          # and not one byte of the body
        status, headers, body = _read_response(connection)
    assert status == 413
    assert json.loads(body)["header"] == "Content-Length"
    assert headers["connection"] == "close"


def test_a_body_of_exactly_1_mib_is_read_and_tracked(served):
    event = json.dumps({"experiment": "e", "variant": "a", "event": "participate", "uuid": "u-mib"}).encode()
    payload = event + b" " * (1024 * 1024 - len(event))
    with _connect(served) as connection:
        connection.sendall(_post_head(str(len(payload))) + payload)
        status, _, body = _read_response(connection)
    assert (status, json.loads(body)) == (200, {"ok": True, "accepted": 1})


def test_a_client_expecting_100_continue_hears_413_instead(served):
    with _connect(served) as connection:
        connection.sendall(_post_head("300000000", "Expect: 100-continue"))
        status, _, body = _read_response(connection)
    assert status == 413 and "1 MiB" in json.loads(body)["error"]


def test_a_small_body_expecting_100_continue_is_invited_and_tracked(served):
    payload = json.dumps({"experiment": "e", "variant": "a", "event": "participate", "uuid": "u-100"}).encode()
    with _connect(served) as connection:
        connection.sendall(_post_head(str(len(payload)), "Expect: 100-continue"))
        assert connection.recv(65536).startswith(b"HTTP/1.1 100")
        connection.sendall(payload)
        status, _, body = _read_response(connection)
    assert (status, json.loads(body)) == (200, {"ok": True, "accepted": 1})


@pytest.mark.parametrize("length", ["abc", "-1", "1e3", "12, 13"])
def test_a_malformed_content_length_gets_a_400_naming_the_header(served, length):
    with _connect(served) as connection:
        connection.sendall(_post_head(length) + b"{}")
        status, _, body = _read_response(connection)
    assert status == 400
    assert json.loads(body)["header"] == "Content-Length" and "Content-Length" in json.loads(body)["error"]
    assert "Traceback" not in served.log()


def _chunked(payload: bytes, chunk_size: int) -> bytes:
    chunks = [payload[start:start + chunk_size] for start in range(0, len(payload), chunk_size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"


def _chunked_head() -> bytes:
    return (b"POST /track HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")


def test_a_chunked_body_is_read_and_tracked(served):
    payload = json.dumps([{"experiment": "e", "variant": "a", "event": "participate", "uuid": f"c{n}"}
                          for n in range(3)]).encode()
    with _connect(served) as connection:
        connection.sendall(_chunked_head() + _chunked(payload, 50))
        status, _, body = _read_response(connection)
    assert (status, json.loads(body)) == (200, {"ok": True, "accepted": 3})


def test_a_chunked_body_is_refused_once_it_passes_1_mib(served):
    with _connect(served) as connection:
        connection.sendall(_chunked_head())
        sent = 0
        try:
            while sent <= 2 * 1024 * 1024:      # the server answers and stops reading after 1 MiB
                connection.sendall(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")
                sent += 0x10000
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, _, body = _read_response(connection)
    assert status == 413 and json.loads(body)["header"] == "Transfer-Encoding"


def test_sigterm_drains_the_stream_and_closes_the_warehouse_leaving_no_wal(tmp_path):
    # What docker stop, systemd and process managers send.
    data_dir = tmp_path / "data"
    wal = data_dir / (WAREHOUSE_FILE + ".wal")
    server = LocalServer.start(data_dir, via_make_run=True)
    try:
        assert server.request("GET", TRACK_QUERY).status == 200
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0, server.log()
    finally:
        server.kill()
    assert "stream and warehouse closed" in server.log()
    assert not wal.exists()
    with duckdb.connect(str(data_dir / WAREHOUSE_FILE), read_only=True) as db:
        assert db.execute("SELECT uuid FROM events").fetchall() == [("u1",)]


def test_differing_repeated_api_keys_are_refused_by_make_run_too(served):
    # chalice local alone would pass the first of them on.
    request = (b"GET /experiments HTTP/1.1\r\nHost: localhost\r\nx-api-key: k\r\nx-api-key: guess\r\n\r\n")
    with _connect(served) as connection:
        connection.sendall(request)
        status, _, body = _read_response(connection)
    assert status == 400 and json.loads(body)["header"] == "x-api-key"
    with _connect(served) as connection:
        connection.sendall(request.replace(b"guess", b"k"))
        assert _read_response(connection)[0] == 200


def test_at_a_stop_a_kept_alive_connection_is_closed_so_no_request_reopens_the_pipeline(tmp_path):
    server = LocalServer.start(tmp_path / "data", via_make_run=True)
    try:
        with _connect(server) as connection:
            connection.sendall(_get(TRACK_QUERY))
            assert _read_response(connection)[0] == 200
            server.process.send_signal(signal.SIGTERM)
            assert connection.recv(65536) == b""          # closed by the server, no answer pending
        assert server.process.wait(timeout=30) == 0, server.log()
    finally:
        server.kill()
    assert "stream and warehouse closed" in server.log()



# --- HTTP edges: every answer the server gives itself is JSON -----------------------------------

def _exchange(server: LocalServer, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with _connect(server) as connection:
        connection.sendall(request)
        return _read_response(connection)


SEGMENT_TRACK = json.dumps({"userId": "u", "event": "Viewed"}).encode()


@pytest.mark.parametrize("request_bytes, status, header", [
    pytest.param(b"GET /track?" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, None, id="414-long-line"),
    pytest.param(b"GET /track HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 70_000 + b"\r\n\r\n", 431, None,
                 id="431-long-headers"),
    pytest.param(b"BREW /track HTTP/1.1\r\nHost: x\r\n\r\n", 501, None, id="501-method"),
    pytest.param(b"POST /track HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "Transfer-Encoding",
                 id="501-coding"),
    pytest.param(b"GET /track HTTP/2.0\r\nHost: x\r\n\r\n", 505, None, id="505-version"),
    pytest.param(b"GET /track HTTP/1.1\r\n\r\n", 400, "Host", id="400-no-host"),
    pytest.param(b"POST /track HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
                 400, "Transfer-Encoding", id="400-folded-transfer-encoding"),
    pytest.param(b"POST /track HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"2\r\n{}\r\n0\r\n\r\n", 400, "Transfer-Encoding", id="400-two-transfer-encodings"),
    pytest.param(b"POST /track HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n"
                 b"2\r\n{}\r\n0\r\n\r\n", 400, "Transfer-Encoding", id="400-transfer-encoding-and-length"),
    pytest.param(b"POST /v1/track HTTP/1.1\r\nHost: x\r\nAuthorization: " + basic_auth(WRITE_KEY).encode()
                 + b"\r\nAuthorization: " + basic_auth("other").encode() + b"\r\nContent-Length: "
                 + str(len(SEGMENT_TRACK)).encode() + b"\r\n\r\n" + SEGMENT_TRACK, 400, "Authorization",
                 id="400-two-authorizations"),
])
def test_what_the_server_refuses_itself_is_answered_in_json_naming_the_cause(served, request_bytes, status, header):
    answered, headers, body = _exchange(served, request_bytes)
    assert answered == status, body
    assert headers["content-type"] == "application/json"
    document = json.loads(body)
    assert document["error"] and document.get("header") == header


def test_identical_repeated_authorization_headers_are_one(served):
    auth = b"Authorization: " + basic_auth(WRITE_KEY).encode() + b"\r\n"
    answered, _, body = _exchange(served, b"POST /v1/track HTTP/1.1\r\nHost: x\r\n" + auth + auth
                                  + b"Content-Length: " + str(len(SEGMENT_TRACK)).encode() + b"\r\n\r\n" + SEGMENT_TRACK)
    assert answered == 200, body


@pytest.mark.parametrize("path, headers", [("/robots.txt", {}), ("/v1/", {"Authorization": "Basic eDo="}),
                                           ("/no/such/route", {})])
def test_an_unknown_path_is_a_json_404(served, path, headers):
    # chalice local answered 403 "Missing Authentication Token", or a SigV4 message given an Authorization.
    reply = served.request("GET", path, headers=headers)
    assert reply.status == 404 and reply.headers["content-type"] == "application/json"
    assert path in reply.json()["error"]


def test_head_on_a_get_route_is_the_get_without_its_body(served):
    get_status, get_headers, get_body = _exchange(served, _get("/dashboard"))
    with _connect(served) as connection:
        connection.sendall(b"HEAD /dashboard HTTP/1.1\r\nHost: x\r\n\r\n" + _get(TRACK_QUERY))
        head_status, head_headers, rest = _read_response(connection, to_head=True)
        # No body: else the next answer would be read off the wrong bytes.
        assert rest == b"" or rest.startswith(b"HTTP/1.1 200")
        assert rest or connection.recv(65536).startswith(b"HTTP/1.1 200")
    assert (head_status, head_headers["content-length"], head_headers["content-type"]) == \
        (get_status, str(len(get_body)), get_headers["content-type"]) == (200, str(len(get_body)), "text/html; charset=utf-8")


# --- one address cannot starve the others -----------------------------------------------------

ATTACKER = "127.0.0.2"      # loopback is all of 127.0.0.0/8: a second source address on one machine


class Trickler:
    """Connections from one address, each sending a request's headers one byte per round, never finishing;
    a connection the server closes is opened again, as an attacker would."""

    HEAD = b"GET /track HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000

    def __init__(self, port: int, connections: int):
        self.port, self.wanted = port, connections
        self.open: dict[socket.socket, int] = {}        # connection -> bytes sent
        self.answers: list[int] = []                    # statuses the server answered them with

    def round(self) -> None:
        while len(self.open) < self.wanted:
            connection = socket.socket()
            connection.bind((ATTACKER, 0))
            connection.connect((LOCAL_HOST, self.port))
            connection.setblocking(False)
            self.open[connection] = 0
        for connection, sent in list(self.open.items()):
            try:
                answer = connection.recv(65536)
            except BlockingIOError:
                answer = None
            except OSError:
                answer = b""
            if answer is None:
                try:
                    self.open[connection] = sent + connection.send(self.HEAD[sent:sent + 1])
                    continue
                except OSError:
                    answer = b""
            if answer.startswith(b"HTTP/1.1 "):
                self.answers.append(int(answer.split()[1]))
            connection.close()
            del self.open[connection]

    def close(self) -> None:
        for connection in self.open:
            connection.close()


def test_a_client_trickling_headers_from_many_connections_cannot_starve_another_address(tmp_path):
    # The finding: one address trickling a header byte every 15 s held all 256 places; everyone else got 503.
    # Here 40 places, 20 per address, headers due 3 s after their first byte; the attacker wants 60.
    limits = {"DALET_MAX_CONNECTIONS": "40", "DALET_MAX_CONNECTIONS_PER_ADDRESS": "20", "DALET_HEAD_SECONDS": "3"}
    with LocalServer.start(tmp_path / "data", env=limits, via_make_run=True) as server:
        attacker = Trickler(server.port, connections=60)
        statuses = []
        try:
            for _ in range(8):
                attacker.round()
                statuses += [server.request("GET", TRACK_QUERY).status for _ in range(3)]
                time.sleep(1)
        finally:
            attacker.close()
    assert statuses == [200] * len(statuses)
    assert 503 in attacker.answers          # the places beyond its 20
    assert 408 in attacker.answers          # the headers that never finished


# --- start-up and logs ---------------------------------------------------------------------------

def _serve_and_fail(tmp_path, port: int, **env: str) -> "subprocess.CompletedProcess[str]":
    import sys

    from tests.local_server import PROJECT_DIR

    environment = {name: value for name, value in os.environ.items() if not name.startswith("DALET_")}
    return subprocess.run([sys.executable, "-m", "dalet_ops.cli", "serve", "--host", LOCAL_HOST, "--port", str(port)],
                          cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60,
                          env={**environment, "DALET_DATA_DIR": str(tmp_path / "data"), **env})


def test_a_port_in_use_is_one_line_naming_it_and_how_to_pick_another(tmp_path):
    with socket.create_server((LOCAL_HOST, 0)) as taken:
        port = taken.getsockname()[1]
        finished = _serve_and_fail(tmp_path, port)
    assert finished.returncode != 0
    assert finished.stdout == ""                       # not even the keys: the port is checked first
    (line,) = finished.stderr.splitlines()
    assert f"port {port}" in line and f"make run PORT={port + 1}" in line


@pytest.mark.parametrize("variable, value", [("DALET_HEAD_SECONDS", "-1"), ("DALET_MAX_CONNECTIONS", "many"),
                                             ("DALET_ACCESS_LOG", "maybe")])
def test_a_bad_server_setting_is_one_line_naming_the_variable(tmp_path, variable, value):
    finished = _serve_and_fail(tmp_path, 1, **{variable: value})
    assert finished.returncode != 0
    (line,) = finished.stderr.splitlines()
    assert variable in line and repr(value) in line


def _summed(log: str, pattern: str) -> int:
    import re

    return sum(int(number) for number in re.findall(pattern, log))


def test_by_default_no_line_per_request_but_a_summary_of_what_happened(tmp_path):
    with LocalServer.start(tmp_path / "data", env={"DALET_SUMMARY_SECONDS": "1"}, via_make_run=True) as server:
        for _ in range(3):
            assert server.request("GET", TRACK_QUERY).status == 200
        assert server.request("GET", "/no/such/route").status == 404
        wait_until(lambda: _summed(server.log(), r"(\d+) events accepted") == 3, timeout=30, message=server.log())
        log = server.log()
    assert _summed(log, r"(\d+) requests") >= 4 and _summed(log, r"(\d+) answered 4xx") >= 1, log
    assert "writer lag" in log and "GET /track" not in log


def test_the_access_log_is_there_when_asked_for(tmp_path):
    with LocalServer.start(tmp_path / "data", env={"DALET_ACCESS_LOG": "1"}, via_make_run=True) as server:
        assert server.request("GET", TRACK_QUERY).status == 200
        wait_until(lambda: "GET /track" in server.log(), timeout=10, message=server.log())
