"""The stream record: how a stored event travels on the stream (Kinesis, or the local stream) to the writer.

AlephBet events and Segment messages share the stream. An AlephBet event's record is the
compact JSON of its row. A Segment message's record has a `type` (no AlephBet record has
one); its JSON columns travel as JSON objects spliced in as they are (not as escaped
strings), and its event id is left out (the writer derives it from namespace and messageId):
Kinesis bills by the byte. Decoding checks every field again: a record is input like any other.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from chalicelib.ingest.events import (
    MAX_BROWSER_LENGTH,
    MAX_TEXT_LENGTH,
    RECORD_ID_FIELD,
    InvalidEvent,
    StoredEvent,
    event_id,
    parse_event,
    parse_timestamp,
)
from chalicelib.ingest.segment_rows import JSON_COLUMN_ENCODER, JSON_FIELDS, TYPES, segment_row
from chalicelib.ingest.text_rules import text_rule_broken

log = logging.getLogger("dalet.events")

_RECORD_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # built once: /track's hot path
_JSON_DECODER = json.JSONDecoder()


class InvalidRecord(ValueError):
    """A stream record that cannot become a stored event; the message is the reason."""


def encode_record(stored: StoredEvent) -> bytes:
    """Compact JSON of the stored event: the Kinesis record's data."""
    if stored.type is not None:
        return _encode_segment_message(stored)
    return _RECORD_ENCODER.encode(stored.to_row()).encode("utf-8")


def _encode_segment_message(stored: StoredEvent) -> bytes:
    # Timestamps as isoformat(): they are UTC already, and it is several times cheaper than strftime.
    row = {"namespace": stored.namespace, "type": stored.type, "message_id": stored.message_id,
           "received_at": stored.received_at.isoformat()}
    if stored.event is not None:
        row["event"] = stored.event
    if stored.user_id is not None:
        row["user_id"] = stored.user_id
    if stored.anonymous_id is not None:
        row["anonymous_id"] = stored.anonymous_id
    if stored.browser is not None:
        row["browser"] = stored.browser
    if stored.timestamp is not None:
        row["timestamp"] = stored.timestamp.isoformat()
    text = _RECORD_ENCODER.encode(row)[:-1]
    if stored.properties is not None:
        text += ',"properties":' + stored.properties
    if stored.traits is not None:
        text += ',"traits":' + stored.traits
    if stored.context is not None:
        text += ',"context":' + stored.context
    return (text + "}").encode("utf-8")


def _json_document(data: bytes) -> Any:
    """json.loads without its per-call overhead (it shows at 500 records a batch)."""
    text = data.decode("utf-8").strip()
    document, end = _JSON_DECODER.raw_decode(text)
    if end != len(text):
        raise ValueError(f"extra data after the JSON document at position {end}")
    return document


def decode_record(data: bytes) -> StoredEvent:
    """The stored event a record holds; InvalidRecord says why there is none."""
    try:
        fields = _json_document(data)
    except (ValueError, RecursionError) as error:  # bad UTF-8, bad JSON, a 5,000-digit number, deep nesting
        raise InvalidRecord(f"not UTF-8 JSON: {type(error).__name__}: {error}") from None
    if type(fields) is not dict:
        raise InvalidRecord("not a JSON object")
    if "type" in fields:   # only Segment messages have a type
        return _decode_segment_message(fields)
    return _decode_event(fields)


def _decode_event(fields: Mapping[str, Any]) -> StoredEvent:
    if fields.get("namespace") is None:
        raise InvalidRecord("namespace: is required")
    try:
        event = parse_event(fields, id_field=RECORD_ID_FIELD)
    except InvalidEvent as invalid:
        raise InvalidRecord(str(invalid)) from None
    try:
        received_at = parse_timestamp(str(fields["received_at"]))
    except (KeyError, ValueError, OverflowError):
        raise InvalidRecord("received_at: must be an ISO-8601 timestamp with a time zone") from None
    namespace, experiment, variant, name, uuid, value, client_id = event
    identity = event_id(namespace, experiment, variant, name, uuid, client_id)
    if fields.get("event_id") != identity:
        # The identity, not the carried id, is the dedup key: a record from a publisher that
        # computed ids differently (another version, mid-deploy) still lands, deduplicated.
        log.warning("record carried event_id %r; stored under its identity's %s", fields.get("event_id"), identity)
    browser = fields.get("browser")
    if browser is not None and (type(browser) is not str or len(browser) > MAX_BROWSER_LENGTH):
        raise InvalidRecord(f"browser: must be a string of at most {MAX_BROWSER_LENGTH} characters")
    return StoredEvent(identity, namespace, experiment, variant, name, uuid, value, received_at,
                       message_id=client_id, browser=browser)


def _decode_segment_message(fields: Mapping[str, Any]) -> StoredEvent:
    """A Segment record (a decoded JSON object with a `type`) as a row; InvalidRecord says why not."""
    problems = [f"{name}: {rule}" for name, rule in _segment_record_problems(fields)]
    if problems:
        raise InvalidRecord("; ".join(problems))
    try:
        received_at = parse_timestamp(fields["received_at"])
        timestamp = parse_timestamp(fields["timestamp"]) if fields.get("timestamp") is not None else None
    except (KeyError, ValueError, OverflowError, TypeError):
        raise InvalidRecord("received_at/timestamp: must be ISO-8601 timestamps with a time zone") from None
    texts = {}
    for name in JSON_FIELDS:
        value = fields.get(name)
        try:
            texts[name] = None if value is None else JSON_COLUMN_ENCODER.encode(value)
        except (ValueError, RecursionError) as error:
            raise InvalidRecord(f"{name}: cannot be stored as JSON ({error})") from None
    return segment_row(namespace=fields["namespace"], type=fields["type"], message_id=fields["message_id"],
                       received_at=received_at, event=fields.get("event"), user_id=fields.get("user_id"),
                       anonymous_id=fields.get("anonymous_id"), timestamp=timestamp, browser=fields.get("browser"),
                       **texts)


def _segment_record_problems(fields: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems = []
    if fields.get("type") not in TYPES:
        problems.append(("type", f"must be one of {', '.join(TYPES)}"))
    for name in ("namespace", "message_id"):
        rule = text_rule_broken(fields.get(name), MAX_TEXT_LENGTH) if fields.get(name) is not None else "is required"
        if rule:
            problems.append((name, rule))
    for name in ("event", "user_id", "anonymous_id"):
        value = fields.get(name)
        rule = None if value is None else text_rule_broken(value, MAX_TEXT_LENGTH)
        if rule:
            problems.append((name, rule))
    if fields.get("user_id") is None and fields.get("anonymous_id") is None:
        problems.append(("user_id", "user_id or anonymous_id is required"))
    browser = fields.get("browser")
    if browser is not None and (not isinstance(browser, str) or len(browser) > MAX_BROWSER_LENGTH):
        problems.append(("browser", f"must be a string of at most {MAX_BROWSER_LENGTH} characters"))
    for name in JSON_FIELDS:
        if fields.get(name) is not None and not isinstance(fields[name], dict):
            problems.append((name, "must be a JSON object"))
    return problems
