"""Turning /track requests into stored events on the stream."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from chalicelib.ingest.events import (
    CLIENT_ID_FIELD,
    DEFAULT_NAMESPACE,
    MAX_TEXT_LENGTH,
    TEXT_FIELDS,
    Event,
    FieldError,
    InvalidEvent,
    StoredEvent,
    now,
    parse_event,
    parse_events,
    stamp,
)
from chalicelib.ingest.publisher import Publisher
from chalicelib.ingest.text_rules import kept_as_sent, name_rule_broken
from chalicelib.ingest.useragent import browser_family

MAX_BODY_BYTES = 1024 * 1024
MAX_EVENTS_PER_POST = 500
EVENT_FIELDS = frozenset(TEXT_FIELDS + ("value", CLIENT_ID_FIELD))


TRACK_MEDIA_TYPES = ("application/json", "text/plain")   # text/plain is what sendBeacon sends


# An experiment's name is a segment of /experiments/{experiment}; "." and ".." are resolved
# away by browsers and HTTP clients (RFC 3986 5.2.4), even percent-encoded, so such an
# experiment could never be reported on or deleted by its path. Refused here, at /track,
# not when records are decoded: events acknowledged before the rule still land.
DOT_SEGMENTS = frozenset({".", ".."})
DOT_SEGMENT_RULE = 'must not be "." or "..": the name is a URL path segment of the report routes'


def refuse_dot_segments(events: Sequence[Event], indexed: bool) -> list[Event]:
    errors = [FieldError("experiment", DOT_SEGMENT_RULE, index if indexed else None)
              for index, event in enumerate(events) if event.experiment in DOT_SEGMENTS]
    if errors:
        raise InvalidEvent(errors)
    return list(events)


NAME_FIELDS = ("namespace", "experiment", "variant", "event")


def kept_names(events: Sequence[Event], indexed: bool) -> list[Event]:
    """The events with their names in NFC; InvalidEvent naming each name with a hidden character.

    Applied at /track, not when records are decoded: events acknowledged before these rules still land.
    """
    kept: list[Event] = []
    errors: list[FieldError] = []
    for index, event in enumerate(events):
        namespace, experiment, variant, name = event[:4]
        if namespace.isascii() and experiment.isascii() and variant.isascii() and name.isascii():   # the common case
            kept.append(event)
            continue
        if kept_as_sent(namespace) and kept_as_sent(experiment) and kept_as_sent(variant) and kept_as_sent(name):
            kept.append(event)
            continue
        names: dict[str, Any] = {}
        for field in NAME_FIELDS:
            normalized, rule = name_rule_broken(getattr(event, field), MAX_TEXT_LENGTH)
            if normalized is None:
                errors.append(FieldError(field, str(rule), index if indexed else None))
            else:
                names[field] = normalized
        kept.append(event._replace(**names))
    if errors:
        raise InvalidEvent(errors)
    return kept


class PayloadTooLarge(ValueError):
    pass


class NamespaceOwned(PermissionError):
    """/track into a namespace that belongs to a Segment write key (403); `namespace` names it."""

    def __init__(self, namespace: str):
        super().__init__(f"namespace {namespace!r} belongs to a Segment write key: only /v1/ calls carrying that key "
                         f"write to it; track into another namespace (the default is {DEFAULT_NAMESPACE!r})")
        self.namespace = namespace


def refuse_owned_namespaces(events: Sequence[Event], owned: AbstractSet[str]) -> None:
    """NamespaceOwned if any event would land in a write key's namespace: no unkeyed request changes its analytics."""
    if not owned:
        return
    for event in events:
        if event.namespace in owned:
            raise NamespaceOwned(event.namespace)


class UnsupportedMediaType(ValueError):
    pass


def check_media_type(content_type: str | None) -> None:
    """A body is JSON sent as application/json or text/plain; no Content-Type means JSON."""
    media_type = (content_type or "application/json").split(";")[0].strip().lower()
    if media_type not in TRACK_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {media_type!r} is not accepted; send {' or '.join(TRACK_MEDIA_TYPES)}"
        )


def parse_query(query: Mapping[str, str] | None) -> list[Event]:
    """A GET /track or /track.gif query string (Chalice's MultiDict): one event.

    Unknown parameters are ignored, even repeated (a cache-buster `_=1&_=2`); an event
    field given twice is refused rather than guessed.
    """
    fields: dict[str, str] = {}
    query = query or {}
    for name in query:
        if name in EVENT_FIELDS:
            values = query.getlist(name) if hasattr(query, "getlist") else [query[name]]
            if len(values) > 1:
                raise InvalidEvent([FieldError(name, "must be given once, not repeated")])
            fields[name] = values[0]
    return refuse_dot_segments(kept_names([parse_event(fields)], indexed=False), indexed=False)


def parse_body(raw_body: bytes | None, content_type: str | None = None) -> list[Event]:
    """A POST /track body: one event object or an array of up to 500; all valid or none."""
    check_media_type(content_type)
    if raw_body is not None and len(raw_body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is {len(raw_body)} bytes; the limit is {MAX_BODY_BYTES}")
    document = _decode_json(raw_body or b"")
    if isinstance(document, dict):
        return refuse_dot_segments(kept_names([parse_event(document)], indexed=False), indexed=False)
    if not isinstance(document, list):
        raise InvalidEvent([FieldError("body", "must be a JSON object or an array of objects")])
    if not document:
        raise InvalidEvent([FieldError("body", "must hold at least one event")])
    if len(document) > MAX_EVENTS_PER_POST:
        raise InvalidEvent([FieldError("body",
                                       f"must hold at most {MAX_EVENTS_PER_POST} events (got {len(document)})")])
    return refuse_dot_segments(kept_names(parse_events(document), indexed=True), indexed=True)


def _decode_json(raw_body: bytes) -> Any:
    try:
        text = raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidEvent([FieldError("body", "must be UTF-8 encoded")]) from None
    if not text.strip():
        raise InvalidEvent([FieldError("body", "must not be empty")])
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidEvent([FieldError("body", f"must be valid JSON ({error.msg} at position {error.pos})")]) from None
    except RecursionError:
        raise InvalidEvent([FieldError("body", "is nested too deeply")]) from None
    except ValueError:  # json refuses integers of more than 4,300 digits
        raise InvalidEvent([FieldError("body", "must be valid JSON (a number has too many digits)")]) from None


def accept(events: Sequence[Event], publisher: Publisher, user_agent: str | None = None,
           owned_namespaces: AbstractSet[str] = frozenset()) -> list[StoredEvent]:
    """Stamp with the server's time and the browser family, and hand to the stream; raises PublishError on failure.

    NamespaceOwned, and nothing sent, if an event names one of `owned_namespaces`.
    """
    refuse_owned_namespaces(events, owned_namespaces)
    received_at = now()
    browser = browser_family(user_agent)
    stored = [stamp(event, received_at, browser) for event in events]
    publisher.publish(stored)
    return stored
