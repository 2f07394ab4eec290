"""The tracked event: what a client sends, how it is validated, what Dalet stores.

A client sends `namespace` (optional), `experiment`, `variant`, `event`, `uuid`, an
optional numeric `value` and an optional event `id`. Dalet stores that (the `id` in the
`message_id` column) plus `event_id` (the dedup key) and `received_at` (server time, UTC).
"""
from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from chalicelib.ingest.text_rules import REPLACEMENT_CHARACTER, text_rule_broken

DEFAULT_NAMESPACE = "alephbet"
PARTICIPATE = "participate"
MAX_TEXT_LENGTH = 256
MAX_UUID_LENGTH = 128
MAX_ID_LENGTH = 128
MAX_BROWSER_LENGTH = 32
TEXT_FIELDS = ("namespace", "experiment", "variant", "event", "uuid")
CLIENT_ID_FIELD = "id"            # what a client sends
RECORD_ID_FIELD = "message_id"    # where the stream record and the tables keep it
_LIMITS = {"uuid": MAX_UUID_LENGTH, CLIENT_ID_FIELD: MAX_ID_LENGTH, RECORD_ID_FIELD: MAX_ID_LENGTH}
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


# Event and StoredEvent are built once per event on the hot paths (track, writer); a
# NamedTuple is as immutable as a frozen dataclass and four times cheaper to construct.
class Event(NamedTuple):
    namespace: str
    experiment: str
    variant: str
    event: str
    uuid: str
    value: float | None = None
    id: str | None = None   # the client's event id: one user's distinct events of one name (purchases)


class StoredEvent(NamedTuple):
    """A row of the events table (its fields are the table's columns, in order)."""
    event_id: str
    namespace: str
    experiment: str | None
    variant: str | None
    event: str | None
    uuid: str | None
    value: float | None
    received_at: datetime
    type: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    message_id: str | None = None
    timestamp: datetime | None = None
    properties: str | None = None      # JSON text
    traits: str | None = None          # JSON text
    context: str | None = None         # JSON text
    browser: str | None = None

    def to_row(self) -> dict[str, Any]:
        """The JSON-ready row, without empty columns: timestamps as ISO-8601 UTC strings."""
        row = {name: value for name, value in zip(self._fields, self, strict=True) if value is not None}
        row["received_at"] = format_timestamp(self.received_at)
        if self.timestamp is not None:
            row["timestamp"] = format_timestamp(self.timestamp)
        return row


def event_id(namespace: str, experiment: str, variant: str, event: str, uuid: str,
             client_id: str | None = None) -> str:
    """A deterministic hash of the identity.

    Each field is prefixed with its length before hashing (as in a netstring), so no
    choice of names can make two identities collide the way joining them with a
    separator would. A client event id is one more length-prefixed field: an identity
    with it never equals one without, and an event without it keeps the hash it always had.
    """
    identity = (f"{len(namespace)}:{namespace}{len(experiment)}:{experiment}{len(variant)}:{variant}"
                f"{len(event)}:{event}{len(uuid)}:{uuid}")
    if client_id is not None:
        identity += f"{len(client_id)}:{client_id}"
    return hashlib.blake2b(identity.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def segment_event_id(namespace: str, message_id: str) -> str:
    """The dedup key of a Segment message: its namespace and messageId.

    The hashed text starts with "segment" and each AlephBet identity with a digit (a
    length), so a Segment message and an AlephBet event never share an id.
    """
    identity = f"segment{len(namespace)}:{namespace}{len(message_id)}:{message_id}"
    return hashlib.blake2b(identity.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    moment = datetime.fromisoformat(text)  # Python 3.11+ reads a trailing "Z" as UTC
    if moment.tzinfo is None:
        raise ValueError("timestamp has no time zone")
    return moment.astimezone(UTC)


def _rule_broken(field: str, raw: Any) -> str | None:
    """The rule `raw` breaks as the AlephBet field `field`, within that field's own length limit."""
    return text_rule_broken(raw, _LIMITS.get(field, MAX_TEXT_LENGTH))


def validate_name(field: str, raw: Any) -> str:
    """One name checked alone, by the rules events follow (e.g. a route's `namespace` parameter)."""
    rule = _rule_broken(field, raw)
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


def _plainly_valid(namespace: Any, experiment: Any, variant: Any, event: Any, uuid: Any, value: Any,
                   client_id: Any) -> bool:
    """Whether the fields certainly keep the rules: the common case, decided by C string methods.

    Anything this cannot vouch for goes to the rule-by-rule check, which decides and explains.
    """
    if not (type(namespace) is str and type(experiment) is str and type(variant) is str
            and type(event) is str and type(uuid) is str):
        return False
    if not (0 < len(namespace) <= MAX_TEXT_LENGTH and 0 < len(experiment) <= MAX_TEXT_LENGTH
            and 0 < len(variant) <= MAX_TEXT_LENGTH and 0 < len(event) <= MAX_TEXT_LENGTH
            and 0 < len(uuid) <= MAX_UUID_LENGTH):
        return False
    joined = namespace + experiment + variant + event + uuid
    if client_id is not None:
        if not (type(client_id) is str and 0 < len(client_id) <= MAX_ID_LENGTH) or client_id.isspace():
            return False
        joined += client_id
    if not joined.isprintable() or REPLACEMENT_CHARACTER in joined:
        return False
    if namespace.isspace() or experiment.isspace() or variant.isspace() or event.isspace() or uuid.isspace():
        return False
    return (value is None or (type(value) is float and math.isfinite(value))
            or (type(value) is int and abs(value) < 1e308))


def parse_event(fields: Mapping[str, Any], index: int | None = None, id_field: str = CLIENT_ID_FIELD) -> Event:
    """Validate a client's fields into an Event; unknown fields are ignored.

    `id_field` names where the optional event id is read from (a stream record keeps it
    in `message_id`), and is the field an error about it names.
    """
    namespace = fields.get("namespace")
    if namespace is None:
        namespace = DEFAULT_NAMESPACE
    experiment, variant, event, uuid = (fields.get("experiment"), fields.get("variant"),
                                        fields.get("event"), fields.get("uuid"))
    value, client_id = fields.get("value"), fields.get(id_field)
    if _plainly_valid(namespace, experiment, variant, event, uuid, value, client_id):
        return Event(namespace, experiment, variant, event, uuid,  # type: ignore[arg-type]  # checked just above
                     None if value is None else float(value), client_id)
    return _parse_event_rule_by_rule(fields, index, id_field)


def _parse_event_rule_by_rule(fields: Mapping[str, Any], index: int | None,
                              id_field: str = CLIENT_ID_FIELD) -> Event:
    """The authority on the rules: accepts what the fast path could not decide, names what is broken."""
    errors: list[FieldError] = []
    values: dict[str, Any] = {}
    for field in TEXT_FIELDS:
        raw = fields.get(field)
        if raw is None and field == "namespace":
            raw = DEFAULT_NAMESPACE
        if raw is None:
            errors.append(FieldError(field, "is required", index))
            continue
        rule = _rule_broken(field, raw)
        if rule:
            errors.append(FieldError(field, rule, index))
        values[field] = raw
    value, rule = _parse_value(fields.get("value"))
    if rule:
        errors.append(FieldError("value", rule, index))
    client_id = fields.get(id_field)
    rule = None if client_id is None else _rule_broken(id_field, client_id)
    if rule:
        errors.append(FieldError(id_field, rule, index))
    if errors:
        raise InvalidEvent(errors)
    return Event(value=value, id=client_id, **values)


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


def stamp(event: Event, received_at: datetime, browser: str | None = None) -> StoredEvent:
    namespace, experiment, variant, name, uuid, value, client_id = event
    return StoredEvent(event_id(namespace, experiment, variant, name, uuid, client_id),
                       namespace, experiment, variant, name, uuid, value, received_at.astimezone(UTC),
                       message_id=client_id, browser=browser)


def now() -> datetime:
    return datetime.now(UTC)
