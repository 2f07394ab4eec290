"""Segment's HTTP Tracking API: requests in, stored events on the same stream as /track.

The calls (`track`, `page`, `screen`, `identify`, `group`, `alias`, and `batch` holding
any of them) follow https://segment.com/docs/connections/sources/catalog/libraries/server/http-api/:
the write key as the Basic-auth user name (empty password) or `writeKey` in the body; JSON,
optionally gzip-encoded; at most 32 KB per event and 500 KB per batch request (400 beyond),
and per batch as stored; `userId` and/or `anonymousId` required; `event` required on track;
`messageId` the dedupe key (one is made up when absent; the first copy stored wins);
`timestamp` corrected for the client's clock by `receivedAt - sentAt`, and an absurd result
(before 2000, or more than a day after its arrival) replaced by `receivedAt`, the client's
values kept in `context.dalet`. analytics.js posts to the one-letter paths (`/v1/t`,
`/v1/p`, ..., `/v1/b`), which are the same calls.

A Segment row leaves experiment, variant and uuid null. `event` holds the track event's
name (page/screen: their `name`); `properties`, `traits` and `context` are kept as JSON text.
An alias keeps its `previousId`, and a group its `groupId`, in `properties`.
"""
from __future__ import annotations

import base64
import json
import math
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.ingest.events import MAX_TEXT_LENGTH, FieldError, InvalidEvent, StoredEvent, now
from chalicelib.ingest.segment_rows import ALIAS, GROUP, JSON_COLUMN_ENCODER, PAGE, SCREEN, TRACK, TYPES, segment_row
from chalicelib.ingest.text_rules import REPLACEMENT_CHARACTER, kept_as_sent, name_rule_broken, text_rule_broken
from chalicelib.ingest.track import UnsupportedMediaType, check_media_type
from chalicelib.ingest.useragent import browser_family

BATCH = "batch"
# Path names (after /v1/) and the call each one is; analytics.js uses the first letter.
CALLS = {**{name: name for name in TYPES + (BATCH,)}, **{name[0]: name for name in TYPES + (BATCH,)}}
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
GZIP_MAGIC = b"\x1f\x8b"
# BigQuery's JSON type nests at most 500 levels (https://cloud.google.com/bigquery/docs/json-data#limitations);
# deeper objects are refused here rather than acknowledged and then refused by the warehouse.
MAX_JSON_DEPTH = 500
INT64_MIN, UINT64_MAX = -(2 ** 63), 2 ** 64 - 1
# A refused batch names at most this many errors: 500 KB of `{}` is 100,000 bad messages, whose
# every error would make a 10 MB answer (over Lambda's 6 MB response limit, so a 502).
MAX_REPORTED_ERRORS = 100


class Unauthorized(PermissionError):
    """No write key, or one this deployment does not know (401)."""


class RequestTooLarge(ValueError):
    """Over Segment's size limits; Segment answers 400, and so does Dalet."""


class UnknownCall(LookupError):
    """A path under /v1/ that is not one of the calls (404)."""


@dataclass(frozen=True)
class SegmentRequest:
    call: str                      # the path after /v1/, e.g. "track", "t" or "batch"
    body: bytes | None
    headers: Mapping[str, str]     # case-insensitive, as Chalice gives them


def call_of(path_name: str) -> str:
    """The call a /v1/ path names (`t` is `track`, `b` is `batch`); UnknownCall otherwise."""
    call = CALLS.get(path_name)
    if call is None:
        raise UnknownCall(f"/v1/{path_name} is not a Segment call; use one of "
                          f"{', '.join('/v1/' + name for name in TYPES + (BATCH,))}")
    return call


def accept(request: SegmentRequest, namespace_for: Callable[[str | None], str | None],
           publish: Callable[[Sequence[StoredEvent]], None]) -> list[StoredEvent]:
    """Authenticate, parse and validate every message, then hand them all to the stream (or none)."""
    call = call_of(request.call)
    check_media_type(request.headers.get("content-type"))
    header_key = basic_auth_user(request.headers.get("authorization"))
    if header_key is not None and namespace_for(header_key) is None:
        raise Unauthorized("the write key in the Authorization header is not known to this deployment")
    limit = MAX_BATCH_BYTES if call == BATCH else MAX_EVENT_BYTES
    body = read_body(request.body, request.headers.get("content-encoding"), limit)
    document = parse_json(body)
    if not isinstance(document, dict):
        raise InvalidEvent([FieldError("body", "must be a JSON object")])
    namespace = namespace_for(header_key) if header_key is not None else _body_key_namespace(document, namespace_for)
    received_at = now()
    stored = parse_messages(document, call, namespace,  # type: ignore[arg-type]  # a known key's, checked above
                            received_at, request.headers.get("user-agent"), body_bytes=len(body))
    publish(stored)
    return stored


def _body_key_namespace(document: Mapping[str, Any], namespace_for: Callable[[str | None], str | None]) -> str:
    key = document.get("writeKey")
    if not isinstance(key, str) or not key:
        raise Unauthorized("a write key is required: the Basic-auth user name (empty password) "
                           "or `writeKey` in the body")
    namespace = namespace_for(key)
    if namespace is None:
        raise Unauthorized("the writeKey is not known to this deployment")
    return namespace


def refuse_differing_authorizations(multi_value_headers: Mapping[str, Sequence[str] | None] | None) -> None:
    """API Gateway hands the function the last of repeated headers (chalice local the first): a request
    whose `Authorization` headers differ is refused rather than credited to one of its write keys."""
    values = {value.strip() for name, repeated in (multi_value_headers or {}).items() if name.lower() == "authorization"
              for value in repeated or ()}
    if len(values) > 1:
        raise InvalidEvent([FieldError("authorization", "given several times with different values; send it once")])


def basic_auth_user(authorization: str | None) -> str | None:
    """The user name of a Basic Authorization header (Segment's write key), or None if there is none."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise Unauthorized("the Authorization header must be Basic, with the write key as the user name")
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except ValueError:   # not base64 (binascii.Error), not ASCII, or not UTF-8 once decoded
        raise Unauthorized("the Authorization header is not valid Basic credentials (base64 of key:)") from None
    return decoded.partition(":")[0] or None


def read_body(body: bytes | None, content_encoding: str | None, limit: int) -> bytes:
    """The body, gunzipped if so encoded, refused beyond `limit` bytes either way.

    Decompression stops one byte past the limit, so a small body that inflates to
    gigabytes (a zip bomb) costs no more than a body at the limit. A body labelled gzip
    that is not (a gateway already inflated it) is read as it is.
    """
    raw = body or b""
    if len(raw) > limit:
        raise RequestTooLarge(f"the body is {len(raw)} bytes; the limit is {limit}")
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        return raw
    if encoding not in ("gzip", "x-gzip"):
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not accepted; send gzip or none")
    if not raw.startswith(GZIP_MAGIC):
        return raw
    inflated = b""
    while raw:    # a gzip body is a series of members (RFC 1952 2.2), each read in turn
        if not raw.startswith(GZIP_MAGIC):
            raise InvalidEvent([FieldError("body", "has data after its gzip stream")])
        member, raw = _inflate_member(raw, limit - len(inflated), limit)
        inflated += member
    return inflated


def _inflate_member(raw: bytes, room: int, limit: int) -> tuple[bytes, bytes]:
    """The first gzip member of `raw` inflated (RequestTooLarge beyond `room` bytes), and what follows it."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(raw, room + 1)
    except zlib.error as error:
        raise InvalidEvent([FieldError("body", f"is not valid gzip ({error})")]) from None
    if len(inflated) > room:
        raise RequestTooLarge(f"the body inflates to more than {limit} bytes, the limit")
    if not inflater.eof:
        raise InvalidEvent([FieldError("body", "is truncated gzip")])
    return inflated, inflater.unused_data


class _NumberOutOfRange(ValueError):
    pass


def _bounded_int(text: str) -> int:
    # Stored as JSON, numbers must survive BigQuery: integers up to 64 bits, floats finite.
    if len(text) > 21:
        raise _NumberOutOfRange(text)
    number = int(text)
    if not INT64_MIN <= number <= UINT64_MAX:
        raise _NumberOutOfRange(text)
    return number


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise _NumberOutOfRange(text)
    return number


def _no_constants(text: str) -> Any:
    raise _NumberOutOfRange(text)     # NaN, Infinity, -Infinity: not JSON


_DECODER = json.JSONDecoder(parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_no_constants)


def parse_json(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidEvent([FieldError(
            "body", f"must be UTF-8 encoded (invalid byte at position {error.start})")]) from None
    if not text.strip():
        raise InvalidEvent([FieldError("body", "must not be empty")])
    try:
        return _DECODER.decode(text)
    except _NumberOutOfRange as number:
        raise InvalidEvent([FieldError(
            "body", f"numbers must be finite and integers fit in 64 bits (got {str(number)[:40]})")]) from None
    except json.JSONDecodeError as error:
        raise InvalidEvent([FieldError("body", f"must be valid JSON ({error.msg} at position {error.pos})")]) from None
    except RecursionError:
        raise InvalidEvent([FieldError("body", "is nested too deeply")]) from None


def parse_messages(document: Mapping[str, Any], call: str, namespace: str, received_at: datetime,
                   user_agent: str | None, body_bytes: int = 0) -> list[StoredEvent]:
    """Every message of the request, validated; InvalidEvent naming each bad field (and index) otherwise.

    `body_bytes`: the request body's size (gunzipped), which with the copies of the batch's
    context merged into its messages must stay within MAX_BATCH_BYTES (see StoredBatchSize).
    """
    if call != BATCH:
        return [_message(document, call, None, namespace, received_at, _sent_at(document, None), user_agent)]
    batch = document.get(BATCH)
    if not isinstance(batch, list) or not batch:
        raise InvalidEvent([FieldError(BATCH, "must be a non-empty array of messages")])
    batch_sent_at, shared_context = _sent_at(document, None), document.get("context")
    if shared_context is not None and not isinstance(shared_context, dict):
        raise InvalidEvent([FieldError("context", "must be a JSON object")])
    stored: list[StoredEvent] = []
    errors: list[FieldError] = []
    stored_size = StoredBatchSize(body_bytes, shared_context)
    for index, message in enumerate(batch):
        try:
            if type(message) is not dict:
                raise InvalidEvent([FieldError("message", "must be a JSON object", index)])
            own_context = message.get("context")
            if isinstance(shared_context, dict) and (own_context is None or isinstance(own_context, dict)):
                stored_size.add_merge(own_context)
                message = {**message, "context": {**shared_context, **(own_context or {})}}
            sent_at = _sent_at(message, index) if "sentAt" in message else batch_sent_at
            stored.append(_message(message, message.get("type"), index, namespace, received_at, sent_at, user_agent))
        except InvalidEvent as invalid:
            errors.extend(invalid.errors)
            if len(errors) >= MAX_REPORTED_ERRORS:   # the batch is refused already; name the first ones only
                raise InvalidEvent(errors[:MAX_REPORTED_ERRORS]) from None
    if errors:
        raise InvalidEvent(errors)
    return stored


class StoredBatchSize:
    """The batch as stored: its body plus every copy of the batch-level `context` merged into a message.

    Segment's 500 KB batch limit is on the request; Dalet copies the batch's `context` into
    each message it stores, so a 41.5 KB batch with a 31 KB context and 160 messages would
    store 5 MB, and 11 MB sent could fill a gigabyte of disk. The limit therefore holds for
    the batch as stored: a batch without a batch-level context is unaffected.
    """

    def __init__(self, body_bytes: int, shared_context: Mapping[str, Any] | None):
        self.total = body_bytes
        self.merges = 0
        self._shared = shared_context or {}
        self._shared_bytes = _json_bytes(self._shared) if shared_context else 0

    def add_merge(self, own_context: Mapping[str, Any] | None) -> None:
        """Count one message's merged context; RequestTooLarge once the stored batch is over the limit."""
        if own_context:
            added = _json_bytes({**self._shared, **own_context}) - _json_bytes(own_context)
        else:
            added = self._shared_bytes
        self.total += added
        self.merges += 1
        if self.total > MAX_BATCH_BYTES:
            raise RequestTooLarge(
                f"the batch as stored is over {MAX_BATCH_BYTES} bytes, the batch limit: its {self._shared_bytes}-byte "
                f"`context` is copied into each message (over the limit at message {self.merges}); send the "
                f"context with fewer messages per batch, or a smaller context")


def _json_bytes(value: Mapping[str, Any]) -> int:
    try:
        return len(JSON_COLUMN_ENCODER.encode(value).encode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):   # refused with its reason when the message itself is checked
        return 0


def _sent_at(holder: Mapping[str, Any], index: int | None) -> datetime | None:
    try:
        return _optional_time(holder.get("sentAt"))
    except ValueError as broken:
        raise InvalidEvent([FieldError("sentAt", str(broken), index)]) from None


def _plain(text: Any) -> bool:
    """Whether `text` certainly keeps the rules of ids and names; decided by C string methods (the common case)."""
    return (type(text) is str and 0 < len(text) <= MAX_TEXT_LENGTH and text.isprintable()
            and not text.isspace() and REPLACEMENT_CHARACTER not in text)


def _message(message: Mapping[str, Any], call: Any, index: int | None, namespace: str, received_at: datetime,
             sent_at: datetime | None, user_agent: str | None) -> StoredEvent:
    if call not in TYPES:
        raise InvalidEvent([FieldError("type", f"must be one of {', '.join(TYPES)}", index)])
    errors: list[FieldError] = []

    def checked(field: str, check: Callable[[Any], Any]) -> Any:
        try:
            return check(message.get(field))
        except ValueError as broken:
            errors.append(FieldError(field, str(broken), index))
            return None

    user_id, anonymous_id, message_id = message.get("userId"), message.get("anonymousId"), message.get("messageId")
    if not (_plain(user_id) or user_id is None) or not (_plain(anonymous_id) or anonymous_id is None):
        user_id, anonymous_id = checked("userId", _optional_id), checked("anonymousId", _optional_id)
    if user_id is None and anonymous_id is None and not errors:
        errors.append(FieldError("userId", "userId or anonymousId is required", index))
    if not _plain(message_id):
        message_id = checked("messageId", _optional_id) or f"dalet-{uuid.uuid4()}"
    event = None
    if call == TRACK:
        event = message.get("event")
        if not (isinstance(event, str) and _plain(event) and kept_as_sent(event)):
            event = checked("event", _required_name)
    elif call in (PAGE, SCREEN):
        event = checked("name", _optional_name)
    properties, traits, context = (checked("properties", _json_object_text), checked("traits", _json_object_text),
                                   checked("context", _json_object_text))
    if call in (ALIAS, GROUP):
        properties = _with_call_ids(message, call, properties, user_id, index, errors)
    timestamp = checked("timestamp", _optional_time)
    if errors:
        raise InvalidEvent(errors)
    size = _size_in_bytes([properties, traits, context, event, message_id, user_id, anonymous_id])
    if size > MAX_EVENT_BYTES:
        raise InvalidEvent([FieldError("message", f"must be at most {MAX_EVENT_BYTES} bytes of JSON (got {size})",
                                       index)])
    corrected = plausible_timestamp(timestamp, sent_at, received_at)
    if corrected is None:     # absurd: stored at its arrival, the client's values kept beside it
        corrected, context = received_at, with_original_timestamp(context, message.get("timestamp"), sent_at)
    return segment_row(namespace=namespace, type=call, message_id=message_id,  # type: ignore[arg-type]  # a str now
                       received_at=received_at, event=event,
                       user_id=user_id, anonymous_id=anonymous_id, timestamp=corrected, properties=properties,
                       traits=traits, context=context,
                       browser=browser_family(_context_user_agent(message.get("context")) or user_agent))


def _size_in_bytes(texts: list[str | None]) -> int:
    characters = sum(len(text) for text in texts if text)
    if characters * 4 <= MAX_EVENT_BYTES:     # a character is at most 4 bytes of UTF-8: certainly small enough
        return characters
    return sum(len(text.encode("utf-8")) for text in texts if text)


def corrected_timestamp(timestamp: datetime | None, sent_at: datetime | None, received_at: datetime) -> datetime:
    """Segment's clock-skew correction: timestamp + (receivedAt - sentAt) when both are given.

    The client's clock may be off, but by the same amount for `timestamp` and `sentAt`;
    the server's `receivedAt` puts the event on the server's clock.
    """
    if timestamp is None:
        return received_at
    if sent_at is None:
        return timestamp
    return timestamp + (received_at - sent_at)


# A corrected timestamp outside these bounds is a broken client clock, not an event's time
# (`timestamp` 2024 with `sentAt` 0001 corrects to about year 4049).
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_AHEAD = timedelta(days=1)
ORIGINAL_TIMESTAMP_KEY = "dalet"     # context.dalet.original_timestamp (and .original_sent_at)


def plausible_timestamp(timestamp: datetime | None, sent_at: datetime | None, received_at: datetime) -> datetime | None:
    """The corrected timestamp, or None when it is absurd: before 2000 or more than a day after its arrival."""
    try:
        corrected = corrected_timestamp(timestamp, sent_at, received_at)
    except OverflowError:
        return None
    if EARLIEST_TIMESTAMP <= corrected <= received_at + LATEST_AHEAD:
        return corrected
    return None


def with_original_timestamp(context: str | None, timestamp: Any, sent_at: datetime | None) -> str:
    """The context's JSON text with what the client sent kept in `context.dalet`: its timestamp as sent, and the
    sentAt that corrected it (ISO-8601, UTC)."""
    document = json.loads(context) if context else {}
    kept = document.get(ORIGINAL_TIMESTAMP_KEY)
    original: dict[str, Any] = {**(kept if isinstance(kept, dict) else {}), "original_timestamp": timestamp}
    if sent_at is not None:
        original["original_sent_at"] = sent_at.isoformat()
    return JSON_COLUMN_ENCODER.encode({**document, ORIGINAL_TIMESTAMP_KEY: original})


def _with_call_ids(message: Mapping[str, Any], call: str, properties: str | None, user_id: str | None,
                   index: int | None, errors: list[FieldError]) -> str | None:
    """What alias (previousId, and a userId) and group (groupId) require; the id is kept in properties."""
    field = "previousId" if call == ALIAS else "groupId"
    if call == ALIAS and user_id is None:
        errors.append(FieldError("userId", "is required on alias", index))
    try:
        value = _optional_id(message.get(field))
    except ValueError as broken:
        errors.append(FieldError(field, str(broken), index))
        return properties
    if value is None:
        errors.append(FieldError(field, f"is required on {call}", index))
        return properties
    return JSON_COLUMN_ENCODER.encode({**(json.loads(properties) if properties else {}), field: value})


def _optional_id(raw: Any) -> str | None:
    """A user id, anonymous id or message id: a string (numbers are taken as their digits)."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    rule = text_rule_broken(raw, MAX_TEXT_LENGTH)   # Segment ids: 256, not AlephBet's 128
    if rule:
        raise ValueError(rule)
    return raw


def _required_name(raw: Any) -> str:
    """An event (or page/screen) name, in NFC; the text rules of names otherwise (see text_rules.name_rule_broken)."""
    if raw is None:
        raise ValueError("is required on track")
    name, rule = name_rule_broken(raw, MAX_TEXT_LENGTH)
    if name is None:
        raise ValueError(rule)
    return name


def _optional_name(raw: Any) -> str | None:
    return None if raw is None or raw == "" else _required_name(raw)


def _json_object_text(raw: Any) -> str | None:
    """Compact JSON text of an object, exactly as given (keys with quotes, `$` or dots included)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("must be a JSON object")
    try:
        text = JSON_COLUMN_ENCODER.encode(raw)
        if not text.isascii():
            text.encode("utf-8")     # refuses unpaired surrogates
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (holds an unpaired UTF-16 surrogate escape such as \\ud800)") from None
    except RecursionError:
        raise ValueError(f"must nest at most {MAX_JSON_DEPTH} levels deep") from None
    if text.count("{") + text.count("[") > MAX_JSON_DEPTH and json_depth(raw) > MAX_JSON_DEPTH:
        raise ValueError(f"must nest at most {MAX_JSON_DEPTH} levels deep")
    return text


def json_depth(value: Any) -> int:
    """Levels of objects and arrays: {} is 1, {"a": []} is 2. Iterative, so any depth is measured."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        current, depth = pending.pop()
        children = current.values() if isinstance(current, dict) else current if isinstance(current, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest


def _optional_time(raw: Any) -> datetime | None:
    """An ISO-8601 date-time; one without a time zone is UTC, as Segment reads it."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or len(raw) > 64:
        raise ValueError("must be an ISO-8601 date-time string")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError("must be an ISO-8601 date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None


def _context_user_agent(context: Any) -> str | None:
    agent = context.get("userAgent") if isinstance(context, dict) else None
    return agent if isinstance(agent, str) else None


__all__ = ["BATCH", "CALLS", "MAX_BATCH_BYTES", "MAX_EVENT_BYTES", "TYPES", "RequestTooLarge", "SegmentRequest",
           "Unauthorized", "UnknownCall", "UnsupportedMediaType", "accept", "basic_auth_user", "call_of",
           "corrected_timestamp", "parse_json", "parse_messages", "read_body"]
