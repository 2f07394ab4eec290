"""Helpers for the Segment tests: write-key headers, posting calls, reading stored rows back.

    from tests.segment_helpers import WRITE_KEY, segment_client, post, rows  # noqa: F401

    def test_something(segment_client):           # the in-process app with DALET_WRITE_KEYS=WRITE_KEY=web
        reply = post(segment_client, "/v1/track", {"userId": "u1", "event": "Signed Up"})
        wait_until_written()
        rows()                                    # every stored row as a dict, JSON columns parsed
"""
from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest

WRITE_KEY = "test-write-key"
NAMESPACE = "web"
OTHER_KEY, OTHER_NAMESPACE = "mobile-key", "mobile"
WRITE_KEYS = f"{WRITE_KEY}={NAMESPACE},{OTHER_KEY}={OTHER_NAMESPACE}"


def basic_auth(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


@pytest.fixture
def segment_client(client, monkeypatch):
    """The in-process app with two write keys (set before the settings are first read)."""
    monkeypatch.setenv("DALET_WRITE_KEYS", WRITE_KEYS)
    return client


def post(client: Any, path: str, body: Any, key: str | None = WRITE_KEY, gzipped: bool = False,
         headers: dict[str, str] | None = None, raw: bytes | None = None) -> Any:
    """POST a Segment call with the write key as Basic auth (key=None: no Authorization header)."""
    data = raw if raw is not None else json.dumps(body).encode("utf-8")
    all_headers = {"content-type": "application/json"}
    if key is not None:
        all_headers["authorization"] = basic_auth(key)
    if gzipped:
        data = gzip.compress(data)
        all_headers["content-encoding"] = "gzip"
    all_headers.update(headers or {})
    return client.http.post(path, body=data, headers=all_headers)


def answer(reply: Any) -> Any:
    return json.loads(reply.body)


def rows(where: str = "TRUE", params: list[Any] | None = None) -> list[dict[str, Any]]:
    """The stored rows (ordered by message_id), with the JSON columns parsed."""
    from chalicelib import runtime

    found = runtime.warehouse().fetch(f"SELECT * FROM events WHERE {where} ORDER BY message_id, event_id", params)
    for row in found:
        for column in ("properties", "traits", "context"):
            if row[column] is not None:
                row[column] = json.loads(row[column])
    return found
