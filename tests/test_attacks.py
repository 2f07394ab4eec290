"""An attacker's pass over the public routes: what broke (now fixed) and what held.

Each test is one promise under attack: a clear 4xx (never a 5xx), a bounded answer, no
acknowledged event lost, no hang. Loads are bounded in count and time (seconds).
"""
from __future__ import annotations

import base64
import gzip
import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Iterator

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.ingest import segment
from tests.helpers import wait_until_written
from tests.lambda_events import function_url_event
from tests.local_server import LocalServer
from tests.segment_helpers import WRITE_KEY, answer, basic_auth, post, rows, segment_client  # noqa: F401


def test_a_batch_message_whose_context_is_not_an_object_gets_400_not_500(segment_client):
    # The batch's shared context is merged into each message's: a string or list there was spread as a mapping.
    for context in ("a string", [["userAgent", "x"]], 7):
        reply = post(segment_client, "/v1/batch", {"context": {"library": {"name": "x"}},
                                                   "batch": [{"type": "track", "userId": "u", "event": "e",
                                                              "context": context}]})
        assert reply.status_code == 400, reply.body
        assert answer(reply)["errors"] == [{"field": "context", "rule": "must be a JSON object", "index": 0}]


@pytest.mark.parametrize("authorization", ["Basic é", "Basic ключ", "Basic \u00ff\u00fe"])
def test_basic_credentials_that_are_not_ascii_get_401_not_500(segment_client, authorization):
    reply = post(segment_client, "/v1/track", {"userId": "u", "event": "e"}, key=None,
                 headers={"authorization": authorization})
    assert reply.status_code == 401, reply.body
    assert answer(reply)["code"] == "unauthorized"


def test_a_batch_of_100_000_bad_messages_gets_a_short_400_naming_the_first_ones(segment_client):
    # 400 KB of `{}` would otherwise answer with ten megabytes of errors (over Lambda's 6 MB
    # response limit: a 502 from API Gateway), computed for every one of them.
    body = {"batch": [{}] * 100_000}
    reply = post(segment_client, "/v1/batch", body)
    assert reply.status_code == 400
    assert len(reply.body) < 32 * 1024
    errors = answer(reply)["errors"]
    assert len(errors) == segment.MAX_REPORTED_ERRORS
    assert errors[0] == {"field": "type", "rule": "must be one of track, page, screen, identify, group, alias",
                         "index": 0}


def test_every_gzip_member_of_a_body_is_read_so_none_is_acknowledged_and_dropped(segment_client):
    # RFC 1952 2.2: a gzip file is a series of members. Reading only the first acknowledged the rest unread.
    first, second = b'{"batch": [{"type": "track", "userId": "u", "event": "e", "messageId": "m1"}', \
        b', {"type": "track", "userId": "u", "event": "e", "messageId": "m2"}]}'
    reply = post(segment_client, "/v1/batch", None, gzipped=False, raw=gzip.compress(first) + gzip.compress(second),
                 headers={"content-encoding": "gzip"})
    assert reply.status_code == 200, reply.body
    wait_until_written()
    assert [row["message_id"] for row in rows()] == ["m1", "m2"]


def test_the_inflation_limit_counts_every_gzip_member_of_a_body_together(segment_client):
    # Two members, each inflating to 60% of the batch limit: alone each fits, together they do not.
    share = segment.MAX_BATCH_BYTES * 6 // 10
    first = b'{"batch": [{"type": "track", "userId": "u", "event": "e", "messageId": "m1"}'
    first += b" " * (share - len(first))
    second = b" " * (share - 2) + b"]}"
    reply = post(segment_client, "/v1/batch", None, raw=gzip.compress(first) + gzip.compress(second),
                 headers={"content-encoding": "gzip"})
    assert reply.status_code == 400 and answer(reply)["code"] == "too_large", reply.body


def test_a_gzip_body_followed_by_anything_else_gets_400(segment_client):
    body = gzip.compress(b'{"userId": "u", "event": "e"}') + b'{"userId": "u", "event": "smuggled"}'
    reply = post(segment_client, "/v1/track", None, raw=body, headers={"content-encoding": "gzip"})
    assert reply.status_code == 400, reply.body
    assert answer(reply)["errors"][0]["field"] == "body"



def _padded_to(size: int, document: dict) -> bytes:
    """`document` as JSON, padded with whitespace to exactly `size` bytes."""
    text = json.dumps(document).encode()
    return text[:-1] + b" " * (size - len(text)) + b"}"


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("path, limit, document", [
    ("/v1/track", segment.MAX_EVENT_BYTES, {"userId": "u", "event": "e", "messageId": "edge"}),
    ("/v1/batch", segment.MAX_BATCH_BYTES, {"batch": [{"type": "track", "userId": "u", "event": "e",
                                                        "messageId": "edge"}]}),
])
def test_a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_400(segment_client, path, limit, document,
                                                                          gzipped):
    def send(size: int):
        raw = _padded_to(size, document)
        return post(segment_client, path, None, raw=gzip.compress(raw) if gzipped else raw,
                    headers={"content-encoding": "gzip"} if gzipped else None)

    over = send(limit + 1)
    assert over.status_code == 400 and answer(over)["code"] == "too_large"
    assert send(limit).status_code == 200
    wait_until_written()
    assert [row["message_id"] for row in rows()] == ["edge"]


def _deployed_segment_track(authorizations: list[str]) -> dict:
    """POST /v1/track as API Gateway hands it over: `headers` holds the last of repeated headers."""
    import app as dalet_app
    from tests.lambda_events import api_gateway_event

    event = api_gateway_event("POST", "/api/v1/track", "/v1/{call}", "api",
                              {"authorization": authorizations[-1], "content-type": "application/json"},
                              body=json.dumps({"userId": "u", "event": "e"}))
    event["pathParameters"] = {"call": "track"}
    event["multiValueHeaders"]["authorization"] = authorizations
    return dalet_app.app(event, None)


def test_differing_repeated_authorization_headers_are_refused_naming_the_header_on_aws_too(segment_client):
    from tests.segment_helpers import OTHER_KEY

    for keys in ([WRITE_KEY, OTHER_KEY], [OTHER_KEY, WRITE_KEY]):
        response = _deployed_segment_track([basic_auth(key) for key in keys])
        assert response["statusCode"] == 400, response
        assert json.loads(response["body"])["errors"][0]["field"] == "authorization"
    assert _deployed_segment_track([basic_auth(WRITE_KEY)] * 2)["statusCode"] == 200


# --- make run's HTTP server (dalet_ops/local_http.py) ---------------------------------------

def _in_process_server(**limits: float) -> Iterator[int]:
    """make run's server (uvicorn, the guarded protocol, the Chalice adapter) on a free port, in this
    process, around a one-route app, with short deadlines so a stalled client is seen in seconds."""
    from chalice import Chalice
    from chalice.config import Config

    from chalicelib.config import LocalServerSettings
    from dalet_ops import local_http

    tiny = Chalice(app_name="tiny")

    @tiny.route("/echo", methods=["POST"], content_types=["*/*"])
    def echo():
        return {"bytes": len(tiny.current_request.raw_body or b"")}

    settings = LocalServerSettings(**{"idle_seconds": 0.5, "head_seconds": 1.0, "body_seconds": 0.5, **limits})
    server, executor = local_http.build_server(tiny, Config.create(chalice_app=tiny), settings)
    listening = local_http.listen("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    yield listening.getsockname()[1]
    server.should_exit = True
    thread.join(timeout=10)
    executor.shutdown()


@pytest.fixture
def impatient_server() -> Iterator[int]:
    yield from _in_process_server()


def _everything_until_closed(connection: socket.socket) -> bytes:
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def _json_body(answer: bytes) -> dict:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


def test_a_body_that_stops_arriving_gets_408_and_its_connection_closed(impatient_server):
    # Slowloris: a declared body that never comes held a server thread (and its connection) forever.
    with socket.create_connection(("127.0.0.1", impatient_server), timeout=10) as connection:
        connection.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        reply = _everything_until_closed(connection)
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert _json_body(reply)["header"] == "Content-Length"


def _trickle(connection: socket.socket, data: bytes, pause: float) -> bytes:
    """Send `data` a byte at a time, `pause` seconds apart, until the server answers; its answer."""
    connection.settimeout(pause)
    for byte in data:
        try:
            connection.sendall(bytes([byte]))
            if answer := connection.recv(65536):
                connection.settimeout(10)
                return answer + _everything_until_closed(connection)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
    return b""


def test_headers_trickled_a_byte_at_a_time_meet_an_absolute_deadline(impatient_server):
    # The idle timeout is per read: a byte every 0.3 s never trips a 0.5 s one. Headers get 1 s in all.
    with socket.create_connection(("127.0.0.1", impatient_server), timeout=10) as connection:
        answer = _trickle(connection, b"POST /echo HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: y\r\n" * 40, 0.3)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert "headers" in _json_body(answer)["error"]


def test_a_body_trickled_a_byte_at_a_time_meets_an_absolute_deadline(impatient_server):
    with socket.create_connection(("127.0.0.1", impatient_server), timeout=10) as connection:
        connection.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n")
        answer = _trickle(connection, b"{" * 200, 0.2)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert _json_body(answer)["header"] == "Content-Length"


def test_an_idle_connection_is_closed(impatient_server):
    with socket.create_connection(("127.0.0.1", impatient_server), timeout=10) as connection:
        assert _everything_until_closed(connection) == b""


def test_a_kept_alive_connection_serves_requests_until_it_goes_idle(impatient_server):
    with socket.create_connection(("127.0.0.1", impatient_server), timeout=10) as connection:
        for _ in range(3):
            connection.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            assert connection.recv(65536).startswith(b"HTTP/1.1 200")
        assert _everything_until_closed(connection) == b""


def test_make_run_bounds_how_long_a_client_may_hold_a_connection_by_default():
    from chalicelib.config import local_server_settings

    defaults = local_server_settings({})
    assert 0 < defaults.idle_seconds <= 60 and 0 < defaults.head_seconds <= 60 and 0 < defaults.body_seconds <= 60
    assert defaults.max_connections_per_address < defaults.max_connections


def _exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        return _everything_until_closed(connection)


def test_a_content_length_of_thousands_of_digits_is_answered_not_dropped(impatient_server):
    # int() refuses strings of more than 4,300 digits with a ValueError: the connection was dropped unanswered.
    # h11 takes at most 20 digits: both are a 400 naming the header (before: 413, and 200 for the padded one).
    for digits in (b"9" * 5000, b"0" * 5000 + b"2"):
        answer = _exchange(impatient_server, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + digits
                           + b"\r\n\r\n{}")
        assert answer.startswith(b"HTTP/1.1 400"), answer
        assert _json_body(answer)["header"] == "Content-Length"


@pytest.fixture
def two_connection_server() -> Iterator[int]:
    """The impatient server, allowed two connections at once and 3 s for a body."""
    yield from _in_process_server(max_connections=2, body_seconds=3.0, idle_seconds=3.0)


def test_connections_beyond_the_limit_get_503_at_once_so_stalled_bodies_cannot_pile_up(two_connection_server):
    # Each connection may buffer a body of up to 1 MiB: without a cap, thousands of clients stalling just
    # short of 1 MiB held gigabytes.
    stalled = [socket.create_connection(("127.0.0.1", two_connection_server), timeout=10) for _ in range(2)]
    for connection in stalled:
        connection.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
    try:
        crowded = _exchange(two_connection_server, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert crowded.startswith(b"HTTP/1.1 503"), crowded
        assert b"Retry-After: 1" in crowded and "too many connections" in _json_body(crowded)["error"]
        for connection in stalled:                    # the body deadline frees their places
            assert _everything_until_closed(connection).startswith(b"HTTP/1.1 408")
    finally:
        for connection in stalled:
            connection.close()
    served = _exchange(two_connection_server, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                               b"Connection: close\r\n\r\n{}")
    assert served.startswith(b"HTTP/1.1 200"), served


# --- races, against make run's server -------------------------------------------------------

def test_the_same_batches_sent_at_once_from_eight_clients_are_stored_once_each(tmp_path):
    # Retries that overlap (a client timing out and resending while the first send is in flight).
    from tests.test_end_to_end import wait_until_written as wait_until_drained

    data_dir = tmp_path / "data"
    segment_batch = {"batch": [{"type": "track", "userId": f"u{n}", "event": "Bought", "messageId": f"m{n}"}
                               for n in range(20)]}
    alephbet_events = [{"experiment": "race", "variant": "red", "event": event, "uuid": f"u{n}", "id": f"order-{n}"}
                       for n in range(20) for event in ("participate", "buy")]

    def send_both(_: int) -> tuple[int, int]:
        segment_reply = server.request("POST", "/v1/batch", json=segment_batch,
                                       headers={"Authorization": basic_auth(WRITE_KEY)})
        track_reply = server.request("POST", "/track", json=alephbet_events)
        return segment_reply.status, track_reply.status

    with LocalServer.start(data_dir, env={"DALET_API_KEY": "k", "DALET_WRITE_KEYS": f"{WRITE_KEY}=web"},
                           via_make_run=True) as server:
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(send_both, range(24)))
        assert set(statuses) == {(200, 200)}
        wait_until_drained(data_dir)
    with closing(duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)) as db:
        counts = db.execute("SELECT namespace, COUNT(*), COUNT(DISTINCT event_id) FROM events GROUP BY namespace "
                            "ORDER BY namespace").fetchall()
    assert counts == [("alephbet", 40, 40), ("web", 20, 20)]


def test_a_batch_context_merged_into_thousands_of_messages_cannot_multiply_the_request(segment_client):
    # 450 KB of request: a 31 KB shared context and 7,000 tiny messages made 217 MB of events.
    body = {"context": {"blob": "x" * 31_000},
            "batch": [{"type": "track", "userId": "u", "event": "e", "messageId": f"m{n}"} for n in range(7_000)]}
    raw = json.dumps(body, separators=(",", ":")).encode()
    assert len(raw) < segment.MAX_BATCH_BYTES
    reply = post(segment_client, "/v1/batch", None, raw=raw)
    assert reply.status_code == 400, reply.body
    assert answer(reply)["code"] == "too_large"
    assert rows() == []


def test_the_issues_amplification_batch_is_refused_naming_the_stored_size(segment_client):
    # Issue 17, finding 3: 41.5 KB sent, a 31 KB context and 160 identify messages, stored ~5 MB.
    body = {"context": {"blob": "x" * 31_000},
            "batch": [{"type": "identify", "userId": f"u{n}", "messageId": f"m{n:03}",
                       "traits": {"plan": "pro"}} for n in range(160)]}
    raw = json.dumps(body, separators=(",", ":")).encode()
    assert 40_000 < len(raw) < 45_000
    reply = post(segment_client, "/v1/batch", None, raw=raw)
    assert reply.status_code == 400, reply.body
    assert answer(reply)["code"] == "too_large"
    assert "as stored" in answer(reply)["message"] and "context" in answer(reply)["message"]
    assert rows() == []


def test_a_batch_whose_merged_contexts_fit_the_batch_limit_is_stored_with_each(segment_client):
    body = {"context": {"app": {"name": "shop"}, "blob": "x" * 2_000},
            "batch": [{"type": "track", "userId": "u", "event": "e", "messageId": f"m{n:03}"} for n in range(100)]}
    assert post(segment_client, "/v1/batch", body).status_code == 200
    wait_until_written()
    stored = rows()
    assert len(stored) == 100 and all(row["context"]["app"] == {"name": "shop"} for row in stored)
    stored_bytes = sum(len(json.dumps(row["context"], separators=(",", ":"))) for row in stored)
    assert stored_bytes <= segment.MAX_BATCH_BYTES


def test_a_message_overriding_the_batch_context_counts_only_what_the_merge_adds(segment_client):
    # Each message brings its own 3 KB context (already in the body); the batch's 1 KB one is merged
    # into each of the 100.
    body = {"context": {"library": {"name": "x" * 1_000}},
            "batch": [{"type": "track", "userId": "u", "event": "e", "messageId": f"m{n:03}",
                       "context": {"page": {"url": "y" * 3_000}}} for n in range(100)]}
    raw = json.dumps(body, separators=(",", ":")).encode()
    assert len(raw) + 100 * 1_030 < segment.MAX_BATCH_BYTES
    assert post(segment_client, "/v1/batch", None, raw=raw).status_code == 200


@pytest.mark.parametrize("context", ["a string", [1, 2], 0])
def test_a_batch_context_that_is_not_an_object_gets_400_naming_it(segment_client, context):
    reply = post(segment_client, "/v1/batch", {"context": context,
                                               "batch": [{"type": "track", "userId": "u", "event": "e"}]})
    assert reply.status_code == 400, reply.body
    assert answer(reply)["errors"] == [{"field": "context", "rule": "must be a JSON object"}]


def test_a_head_answer_carries_no_body_so_the_next_answer_on_the_connection_is_read_right(impatient_server):
    # RFC 9110 9.3.2: HEAD is answered without content. chalice local wrote the 405's JSON body anyway,
    # and a client reusing the connection read those bytes as the start of its next answer.
    with socket.create_connection(("127.0.0.1", impatient_server), timeout=10) as connection:
        connection.sendall(b"HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\n"
                           b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        received = _everything_until_closed(connection)
    head_answer, rest = received.split(b"\r\n\r\n", 1)
    assert head_answer.startswith(b"HTTP/1.1 405")
    assert rest.startswith(b"HTTP/1.1 200"), rest


# --- the function URL front door, any request it can be handed ----------------------------

_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["type", "userId", "event", "context", "batch", "properties", "writeKey", "experiment",
                         "variant", "uuid", "messageId", "timestamp", "sentAt"]) | _TEXT, inner, max_size=5),
    max_leaves=15)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(method=st.sampled_from(["GET", "POST", "OPTIONS", "HEAD", "PUT", "DELETE"]),
       path=st.sampled_from(["/track", "/track.gif", "/v1/track", "/v1/b", "/v1/", "/v1/t/", "/track/", "/"])
       | _TEXT.map(lambda text: "/v1/" + text),
       query=st.lists(st.tuples(st.sampled_from(["experiment", "variant", "event", "uuid", "value", "id", "%65vent"]),
                                _TEXT), max_size=6).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)),
       authorization=st.none() | st.sampled_from([basic_auth(WRITE_KEY), "Basic", "Bearer x", "Basic é",
                                                   f"{basic_auth(WRITE_KEY)},{basic_auth('other')}"]) | _TEXT,
       content_type=st.none() | st.sampled_from(["application/json", "text/plain", "image/gif",
                                                 "application/json,text/plain"]) | _TEXT,
       content_encoding=st.none() | st.sampled_from(["gzip", "br", "identity", "gzip, gzip"]),
       body=st.none() | st.binary(max_size=200) | _JSON.map(lambda value: json.dumps(value).encode()),
       base64_flag=st.booleans(), cookies=st.lists(_TEXT, max_size=2))
def test_any_request_a_function_url_can_deliver_gets_an_answer_below_500(
        segment_client, method, path, query, authorization, content_type, content_encoding, body, base64_flag, cookies):
    import app

    headers = {name: value for name, value in (("authorization", authorization), ("content-type", content_type),
                                                ("content-encoding", content_encoding)) if value is not None}
    encoded = body is not None and (base64_flag or not body.isascii())
    text = None if body is None else base64.b64encode(body).decode() if encoded else body.decode()
    event = function_url_event(method, path, headers, query_string=query, body=text, base64_encoded=encoded,
                               cookies=cookies or None)
    assert app.track_front_door(event, None)["statusCode"] < 500


def test_a_500_kb_batch_of_thousands_of_tiny_messages_lands_whole(segment_client):
    messages = [{"type": "identify", "userId": "u", "messageId": f"m{n:05}"} for n in range(8_000)]
    raw = json.dumps({"batch": messages}, separators=(",", ":")).encode()
    assert len(raw) <= segment.MAX_BATCH_BYTES

    assert post(segment_client, "/v1/batch", None, raw=raw).status_code == 200
    wait_until_written()
    from tests.helpers import stored_row_count

    assert stored_row_count() == 8_000
