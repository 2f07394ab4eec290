"""The tracked event: what a client sends, how it is validated, what Dalet stores.

A client sends `namespace` (optional), `experiment`, `variant`, `event`, `uuid` and an
optional numeric `value`. Dalet stores that plus `event_id` (the dedup key) and
`received_at` (server time, UTC).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

DEFAULT_NAMESPACE = "alephbet"
PARTICIPATE = "participate"
MAX_TEXT_LENGTH = 256
MAX_UUID_LENGTH = 128
TEXT_FIELDS = ("namespace", "experiment", "variant", "event", "uuid")
IDENTITY_FIELDS = TEXT_FIELDS
# Control characters, surrogates and line/paragraph separators are never part of a name.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_REPLACEMENT_CHARACTER = "\ufffd"
_DECIMAL_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class FieldError:
    field: str
    rule: str
    index: int | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"field": self.field, "rule": self.rule}
        if self.index is not None:
            body["index"] = self.index
        return body


class InvalidEvent(ValueError):
    """One or more fields broke a rule; `errors` names each field and rule."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.rule}" for e in errors))


@dataclass(frozen=True)
class Event:
    namespace: str
    experiment: str
    variant: str
    event: str
    uuid: str
    value: float | None = None


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    namespace: str
    experiment: str
    variant: str
    event: str
    uuid: str
    value: float | None
    received_at: datetime

    def to_row(self) -> dict[str, Any]:
        """The JSON-ready row: `received_at` as an ISO-8601 UTC string."""
        row = asdict(self)
        row["received_at"] = format_timestamp(self.received_at)
        return row


def event_id(namespace: str, experiment: str, variant: str, event: str, uuid: str) -> str:
    """A deterministic hash of the identity.

    The fields are JSON-encoded as a list before hashing, so no choice of names can
    make two identities collide the way joining them with a separator would.
    """
    identity = json.dumps([namespace, experiment, variant, event, uuid], ensure_ascii=False)
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("timestamp has no time zone")
    return moment.astimezone(timezone.utc)


def _text_rule_broken(field: str, raw: Any) -> str | None:
    if not isinstance(raw, str):
        return "must be a string"
    limit = MAX_UUID_LENGTH if field == "uuid" else MAX_TEXT_LENGTH
    if not raw or raw.isspace():
        return f"must be 1-{limit} characters, not blank"
    if len(raw) > limit:
        return f"must be at most {limit} characters (got {len(raw)})"
    if _REPLACEMENT_CHARACTER in raw:
        return "must be valid UTF-8 (found an undecodable byte sequence)"
    for character in raw:
        if unicodedata.category(character) in _FORBIDDEN_CATEGORIES:
            return f"must not contain control characters (found U+{ord(character):04X})"
    return None


def validate_name(field: str, raw: Any) -> str:
    """One name checked alone, by the rules events follow (e.g. a route's `namespace` parameter)."""
    rule = _text_rule_broken(field, raw)
    if rule:
        raise InvalidEvent([FieldError(field, rule)])
    return raw


def _parse_value(raw: Any) -> tuple[float | None, str | None]:
    if raw is None:
        return None, None
    if isinstance(raw, bool):
        return None, "must be a finite number"
    if isinstance(raw, (int, float)):
        number = float(raw) if abs(raw) < 1e308 or isinstance(raw, float) else math.inf
    elif isinstance(raw, str):
        # Python's float() also takes "1_000", "inf" and non-ASCII digits; a value is a plain decimal.
        if not _DECIMAL_NUMBER.fullmatch(raw.strip()):
            return None, "must be a finite number"
        number = float(raw.strip())
    else:
        return None, "must be a finite number"
    if not math.isfinite(number):
        return None, "must be a finite number"
    return number, None


def parse_event(fields: Mapping[str, Any], index: int | None = None) -> Event:
    """Validate a client's fields into an Event; unknown fields are ignored."""
    errors: list[FieldError] = []
    values: dict[str, Any] = {}
    for field in TEXT_FIELDS:
        raw = fields.get(field)
        if raw is None and field == "namespace":
            raw = DEFAULT_NAMESPACE
        if raw is None:
            errors.append(FieldError(field, "is required", index))
            continue
        rule = _text_rule_broken(field, raw)
        if rule:
            errors.append(FieldError(field, rule, index))
        values[field] = raw
    value, rule = _parse_value(fields.get("value"))
    if rule:
        errors.append(FieldError("value", rule, index))
    if errors:
        raise InvalidEvent(errors)
    return Event(value=value, **values)


def parse_events(items: Iterable[Any]) -> list[Event]:
    """All-or-nothing: every item valid, or InvalidEvent listing each bad index and field."""
    events: list[Event] = []
    errors: list[FieldError] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            errors.append(FieldError("event", "must be a JSON object", index))
            continue
        try:
            events.append(parse_event(item, index))
        except InvalidEvent as invalid:
            errors.extend(invalid.errors)
    if errors:
        raise InvalidEvent(errors)
    return events


def stamp(event: Event, received_at: datetime) -> StoredEvent:
    return StoredEvent(
        event_id=event_id(event.namespace, event.experiment, event.variant, event.event, event.uuid),
        namespace=event.namespace,
        experiment=event.experiment,
        variant=event.variant,
        event=event.event,
        uuid=event.uuid,
        value=event.value,
        received_at=received_at.astimezone(timezone.utc),
    )


def now() -> datetime:
    return datetime.now(timezone.utc)


def encode_record(stored: StoredEvent) -> bytes:
    """Compact JSON of the stored event: the Kinesis record's data."""
    return json.dumps(stored.to_row(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class InvalidRecord(ValueError):
    """A stream record that cannot become a stored event; the message is the reason."""


def decode_record(data: bytes) -> StoredEvent:
    try:
        fields = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as error:  # bad UTF-8, bad JSON, a 5,000-digit number, deep nesting
        raise InvalidRecord(f"not UTF-8 JSON: {type(error).__name__}: {error}") from None
    if not isinstance(fields, dict):
        raise InvalidRecord("not a JSON object")
    if fields.get("namespace") is None:
        raise InvalidRecord("namespace: is required")
    try:
        event = parse_event(fields)
    except InvalidEvent as invalid:
        raise InvalidRecord(str(invalid)) from None
    try:
        received_at = parse_timestamp(str(fields["received_at"]))
    except (KeyError, ValueError, OverflowError):
        raise InvalidRecord("received_at: must be an ISO-8601 timestamp with a time zone") from None
    stored = stamp(event, received_at)
    if fields.get("event_id") != stored.event_id:
        raise InvalidRecord("event_id: does not match the event's identity")
    return stored
