"""Bad input on the /track routes: whatever arrives, the answer is a 200 or a 4xx with a JSON
error, never a 5xx, and the server stays up."""
from __future__ import annotations

import json
import socket
from typing import Any, Iterator
from urllib.parse import quote_from_bytes, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.local_server import LocalServer

EVENT = {"namespace": "fuzz", "experiment": "e", "variant": "A", "event": "participate", "uuid": "u"}
FIELDS = ["namespace", "experiment", "variant", "event", "uuid", "value"]
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_answered_properly(status: int, body: bytes) -> Any:
    """A 200, or a 4xx whose JSON body says what is wrong; never a 5xx."""
    assert status == 200 or 400 <= status < 500, (status, body[:300])
    if status == 200 and body.startswith(b"GIF"):
        return None
    document = json.loads(body)
    if status >= 400:
        assert document.get("error") or document.get("Message"), document
    return document


# --- hypothesis through chalice.test --------------------------------------------------------------

any_text = st.text(max_size=300)
parameter_names = st.sampled_from(FIELDS) | st.text(min_size=1, max_size=10)
query_strings = st.lists(st.tuples(parameter_names, any_text), max_size=10).map(urlencode)
raw_query_values = st.binary(max_size=60).map(quote_from_bytes)


@FUZZ
@given(query=query_strings, route=st.sampled_from(["/track", "/track.gif"]))
def test_any_query_string_gets_200_or_a_json_4xx(client, query, route):
    response = client.http.get(f"{route}?{query}")
    assert_answered_properly(response.status_code, response.body)


@FUZZ
@given(field=st.sampled_from(FIELDS), raw=raw_query_values)
def test_any_bytes_percent_encoded_into_a_field_get_200_or_a_json_4xx(client, field, raw):
    others = urlencode({name: value for name, value in EVENT.items() if name != field})
    response = client.http.get(f"/track?{others}&{field}={raw}")
    document = assert_answered_properly(response.status_code, response.body)
    if response.status_code == 400:
        assert {error["field"] for error in document["errors"]} == {field}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
event_like = st.fixed_dictionaries({}, optional={field: json_values | any_text for field in FIELDS})
bodies = (
    json_values | event_like | st.lists(event_like, max_size=20)
).map(lambda document: json.dumps(document).encode())     # NaN and Infinity included, as JSON's literals


@FUZZ
@given(body=bodies, content_type=st.sampled_from(["application/json", "text/plain;charset=UTF-8", None]))
def test_any_json_body_gets_200_or_a_json_4xx(client, body, content_type):
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = client.http.post("/track", headers=headers, body=body)
    assert_answered_properly(response.status_code, response.body)


@FUZZ
@given(body=st.binary(max_size=500))
def test_any_bytes_as_a_body_get_200_or_a_json_4xx(client, body):
    response = client.http.post("/track", headers={"Content-Type": "application/json"}, body=body)
    assert_answered_properly(response.status_code, response.body)


@FUZZ
@given(content_type=st.text(max_size=60))
def test_any_content_type_gets_200_or_a_json_4xx(client, content_type):
    response = client.http.post("/track", headers={"Content-Type": content_type}, body=json.dumps(EVENT).encode())
    assert_answered_properly(response.status_code, response.body)


@FUZZ
@given(accept=st.none() | st.text(max_size=60) | st.sampled_from(["image/gif", "*/*", "image/*", "image/gifx"]))
def test_the_pixel_answers_200_whatever_accept_says(client, accept):
    headers = {} if accept is None else {"Accept": accept}
    response = client.http.get(f"/track.gif?{urlencode(EVENT)}", headers=headers)
    assert response.status_code == 200
    assert_answered_properly(response.status_code, response.body)


# --- specific hostile shapes ------------------------------------------------------------------------

@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"9" * 5000])
def test_nan_infinity_and_huge_numbers_are_refused_as_the_value(client, literal):
    body = json.dumps({**EVENT, "value": 0}).encode().replace(b'"value": 0', b'"value": ' + literal)
    response = client.http.post("/track", headers={"Content-Type": "application/json"}, body=body)
    assert response.status_code == 400
    fields = {error["field"] for error in json.loads(response.body)["errors"]}
    assert fields <= {"value", "body"} and fields


def test_deep_nesting_inside_a_field_is_refused_not_crashed_on(client):
    body = b'{"experiment": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = client.http.post("/track", headers={"Content-Type": "application/json"}, body=body)
    assert response.status_code == 400
    assert json.loads(response.body)["errors"][0]["field"] == "body"


def test_a_10k_element_array_of_junk_is_refused(client):
    response = client.http.post("/track", headers={"Content-Type": "application/json"},
                                body=json.dumps(list(range(10_000))).encode())
    assert response.status_code == 400


def test_a_body_of_many_megabytes_gets_413(client):
    response = client.http.post("/track", headers={"Content-Type": "text/plain"}, body=b"[" + b" " * (5 << 20))
    assert response.status_code == 413


# --- through a real chalice local, with raw bytes on the wire ------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LocalServer]:
    with LocalServer.start(tmp_path_factory.mktemp("fuzz") / "data") as running:
        yield running


def raw_exchange(server: LocalServer, head: bytes, body: bytes = b"") -> bytes:
    """Send bytes exactly as given; everything the server sent back."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(head + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                           + (f"Content-Length: {len(body)}\r\n".encode() if body else b"") + b"\r\n" + body)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def raw_request(server: LocalServer, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """The status and body of a well-formed HTTP/1.1 exchange made of raw bytes."""
    status_line_and_headers, _, answer_body = raw_exchange(server, head, body).partition(b"\r\n\r\n")
    return int(status_line_and_headers.split(b" ", 2)[1]), answer_body


def still_up(server: LocalServer) -> bool:
    return server.request("GET", "/track", query={**EVENT, "uuid": "still-up"}).status == 200


def test_percent_encoded_invalid_utf8_in_the_query_is_a_400_naming_the_field(server):
    status, body = raw_request(server, b"GET /track?namespace=fuzz&experiment=%FF%FE%80&variant=A"
                                       b"&event=participate&uuid=u HTTP/1.1")
    assert status == 400
    assert json.loads(body)["errors"][0]["field"] == "experiment"


def test_raw_non_utf8_bytes_in_the_request_line_never_get_a_5xx(server):
    status, body = raw_request(server, b"GET /track?namespace=fuzz&experiment=\xff\xfe\x80&variant=A"
                                       b"&event=participate&uuid=u HTTP/1.1")
    assert_answered_properly(status, body)
    assert still_up(server)


def test_an_invalid_utf8_body_on_the_wire_is_a_400(server):
    status, body = raw_request(server, b"POST /track HTTP/1.1\r\nContent-Type: application/json",
                               b'{"experiment": "\xff\xfe", "variant": "A", "event": "e", "uuid": "u"}')
    assert status == 400
    assert json.loads(body)["errors"][0] == {"field": "body", "rule": "must be UTF-8 encoded"}


# Bytes http.server splits a request line on (str.split() of its Latin-1 text) make it malformed
# HTTP, refused before the app sees it; `#` would end the query. Malformed HTTP is tested below.
LINE_BREAKING = set(b" \t\r\n\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0#")


@settings(max_examples=100, deadline=None)
@given(raw=st.binary(min_size=1, max_size=40).filter(lambda b: not LINE_BREAKING.intersection(b)))
def test_any_bytes_in_a_raw_query_value_never_get_a_5xx(server, raw):
    status, body = raw_request(server, b"GET /track?namespace=fuzz&variant=A&event=e&uuid=u&experiment=" + raw
                                       + b" HTTP/1.1")
    assert_answered_properly(status, body)


@pytest.mark.parametrize("head", [
    b"GARBAGE",
    b"GET /track HTTP/9.9",
    b"POST /track HTTP/1.1\r\nContent-Length: not-a-number",
    b"GET /track?" + b"a=" + b"x" * 60_000 + b" HTTP/1.1",
])
def test_malformed_http_never_takes_the_server_down(server, head):
    raw_exchange(server, head)
    assert still_up(server)
