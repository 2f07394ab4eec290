"""The event model: what a client may send, what Dalet stores, and how it travels through Kinesis."""
from __future__ import annotations

import base64
import json
import math
from datetime import datetime, timedelta, timezone

import pytest
from chalice.app import KinesisEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.ingest.events import (
    _parse_event_rule_by_rule,
    DEFAULT_NAMESPACE,
    Event,
    InvalidEvent,
    event_id,
    parse_event,
    stamp,
)
from chalicelib.ingest.records import InvalidRecord, decode_record, encode_record
from chalicelib.storage.writer import records_from_kinesis_event

VALID = {"namespace": "shop", "experiment": "checkout", "variant": "A", "event": "participate", "uuid": "u-1"}
REQUIRED = ("experiment", "variant", "event", "uuid")
TEXT_FIELDS = ("namespace", "experiment", "variant", "event", "uuid")
LIMITS = {"namespace": 256, "experiment": 256, "variant": 256, "event": 256, "uuid": 128, "id": 128}
CHECKED_TEXT = TEXT_FIELDS + ("id",)   # the fields every text rule applies to (id is optional)


def with_field(field: str, value: object) -> dict[str, object]:
    return {**VALID, field: value}


def broken_fields(fields: dict[str, object]) -> set[str]:
    with pytest.raises(InvalidEvent) as invalid:
        parse_event(fields)
    return {error.field for error in invalid.value.errors}


# --- what is accepted -------------------------------------------------------------------------

def test_a_complete_event_is_parsed_field_by_field():
    parsed = parse_event({**VALID, "value": 9.5})
    assert parsed == Event(namespace="shop", experiment="checkout", variant="A", event="participate",
                           uuid="u-1", value=9.5)


def test_namespace_defaults_to_alephbet():
    fields = {name: value for name, value in VALID.items() if name != "namespace"}
    assert parse_event(fields).namespace == DEFAULT_NAMESPACE == "alephbet"


def test_value_is_optional():
    assert parse_event(VALID).value is None


def test_unknown_fields_are_ignored():
    assert parse_event({**VALID, "_quuid": "q", "referrer": {"deep": [1, 2]}}) == parse_event(VALID)


@pytest.mark.parametrize("name", [
    "my a/b test",                       # AlephBet experiment names have spaces and slashes
    'the "quoted" one',
    "it's",
    "C:\\path\\like",
    "тест кнопки", "実験", "اختبار", "עברית", "🙂 emoji 👍🏽",
    "  leading and trailing spaces  ",
    "a",
])
@pytest.mark.parametrize("field", CHECKED_TEXT)
def test_any_printable_text_is_accepted_as_is(field, name):
    assert getattr(parse_event(with_field(field, name)), field) == name


@pytest.mark.parametrize("field", CHECKED_TEXT)
def test_each_text_field_takes_up_to_its_limit(field):
    longest = "x" * LIMITS[field]
    assert getattr(parse_event(with_field(field, longest)), field) == longest


@pytest.mark.parametrize("raw, number", [
    (3, 3.0), (-2.5, -2.5), (0, 0.0), ("12.5", 12.5), (" 7 ", 7.0), ("-1e3", -1000.0), (".5", 0.5),
    ("+4", 4.0), (1e308, 1e308),
])
def test_value_is_a_finite_number_or_a_numeric_string(raw, number):
    assert parse_event(with_field("value", raw)).value == number


# --- what is rejected, naming the field ---------------------------------------------------------

@pytest.mark.parametrize("field", REQUIRED)
def test_each_identity_field_is_required(field):
    fields = {name: value for name, value in VALID.items() if name != field}
    with pytest.raises(InvalidEvent) as invalid:
        parse_event(fields)
    assert [(e.field, e.rule) for e in invalid.value.errors] == [(field, "is required")]


def test_every_broken_field_is_named_not_just_the_first():
    assert broken_fields({"namespace": "", "value": "lots"}) == {"namespace", "experiment", "variant", "event",
                                                                "uuid", "value"}


@pytest.mark.parametrize("field", CHECKED_TEXT)
def test_each_text_field_rejects_one_character_over_its_limit(field):
    assert broken_fields(with_field(field, "x" * (LIMITS[field] + 1))) == {field}


@pytest.mark.parametrize("blank", ["", " ", "\u3000 \t"])
@pytest.mark.parametrize("field", CHECKED_TEXT)
def test_each_text_field_rejects_empty_and_blank_text(field, blank):
    assert broken_fields(with_field(field, blank)) == {field}


@pytest.mark.parametrize("control", ["\x00", "\x07", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\u2028", "\u2029"])
@pytest.mark.parametrize("field", CHECKED_TEXT)
def test_each_text_field_rejects_control_characters(field, control):
    with pytest.raises(InvalidEvent) as invalid:
        parse_event(with_field(field, f"before{control}after"))
    (error,) = invalid.value.errors
    assert error.field == field and "control character" in error.rule


@pytest.mark.parametrize("field", CHECKED_TEXT)
def test_each_text_field_rejects_lone_surrogates_and_undecodable_bytes(field):
    assert broken_fields(with_field(field, "half \ud800 a pair")) == {field}
    assert broken_fields(with_field(field, b"bad \xff byte".decode("utf-8", "replace"))) == {field}


@pytest.mark.parametrize("not_text", [5, 1.5, True, ["a"], {"a": 1}])
@pytest.mark.parametrize("field", CHECKED_TEXT)
def test_each_text_field_must_be_a_string(field, not_text):
    assert broken_fields(with_field(field, not_text)) == {field}


@pytest.mark.parametrize("raw", [
    "NaN", "nan", "Infinity", "-Infinity", "inf", float("nan"), float("inf"), -math.inf, 10 ** 400, "1e999",
    True, False, "lots", "", "1_000", "١٢", "0x10", [1], {"amount": 1},
])
def test_value_rejects_anything_but_a_finite_number(raw):
    assert broken_fields(with_field("value", raw)) == {"value"}


def test_a_rejection_says_which_rule_was_broken():
    with pytest.raises(InvalidEvent) as invalid:
        parse_event(with_field("uuid", "x" * 129))
    assert invalid.value.errors[0].to_json() == {"field": "uuid", "rule": "must be at most 128 characters (got 129)"}


# --- event_id: the dedup key ------------------------------------------------------------------

def test_event_id_is_a_deterministic_function_of_the_identity():
    first = stamp(parse_event({**VALID, "value": 1}), datetime(2024, 1, 1, tzinfo=timezone.utc))
    again = stamp(parse_event({**VALID, "value": 99}), datetime(2025, 6, 1, tzinfo=timezone.utc))
    assert first.event_id == again.event_id == event_id("shop", "checkout", "A", "participate", "u-1")


@pytest.mark.parametrize("one, other", [
    (("a:b", "c"), ("a", "b:c")),
    (("a|b", "c"), ("a", "b|c")),
    (("a.b", "c"), ("a", "b.c")),
    (('a", "b', "c"), ("a", 'b", "c')),      # a JSON-looking separator inside a name
    (("a\\", "b"), ("a", "\\b")),
])
def test_event_id_has_no_separator_collisions(one, other):
    assert event_id("ns", *one, "goal", "u") != event_id("ns", *other, "goal", "u")
    assert event_id(*one, "exp", "goal", "u") != event_id(*other, "exp", "goal", "u")
    assert event_id("ns", "exp", "A", *one) != event_id("ns", "exp", "A", *other)


def test_an_event_without_an_id_keeps_the_identity_it_always_had():
    # AlephBet traffic (no id) must dedupe against rows stored before ids existed.
    assert stamp(parse_event({**VALID, "event": "purchase"}), datetime.now(timezone.utc)).event_id == (
        "0cb86a4f342c5d921c777cf528a0282b")  # what Dalet stored before ids existed


def test_an_event_id_is_stored_as_message_id_and_is_part_of_the_identity():
    first = stamp(parse_event({**VALID, "event": "purchase", "id": "order-1"}), datetime.now(timezone.utc))
    second = stamp(parse_event({**VALID, "event": "purchase", "id": "order-2"}), datetime.now(timezone.utc))
    without = stamp(parse_event({**VALID, "event": "purchase"}), datetime.now(timezone.utc))
    assert (first.message_id, second.message_id, without.message_id) == ("order-1", "order-2", None)
    assert len({first.event_id, second.event_id, without.event_id}) == 3


def test_a_retried_copy_of_an_event_with_an_id_has_the_same_identity():
    once = stamp(parse_event({**VALID, "id": "order-1", "value": 5}), datetime(2024, 1, 1, tzinfo=timezone.utc))
    again = stamp(parse_event({**VALID, "id": "order-1", "value": 5}), datetime(2024, 1, 2, tzinfo=timezone.utc))
    assert once.event_id == again.event_id == event_id("shop", "checkout", "A", "participate", "u-1", "order-1")


def test_an_id_cannot_pose_as_part_of_the_uuid():
    # Without the length prefix, uuid "u" + id "1:x" and uuid "u1:x" without an id could hash alike.
    assert event_id("ns", "exp", "A", "goal", "u", "1:x") != event_id("ns", "exp", "A", "goal", "u1:x")
    assert event_id("ns", "exp", "A", "goal", "u", "") != event_id("ns", "exp", "A", "goal", "u")


def test_participate_and_a_goal_of_the_same_uuid_are_different_events():
    # The GimelAdapter sends the same uuid for a user's participate and every goal.
    participate = parse_event(with_field("event", "participate"))
    goal = parse_event(with_field("event", "purchase"))
    now = datetime.now(timezone.utc)
    assert stamp(participate, now).event_id != stamp(goal, now).event_id


identity_text = st.text(min_size=0, max_size=6, alphabet="ab01:|,\"\\ ")  # digits and ':' could fool a length prefix


@given(st.tuples(*[identity_text] * 5, st.none() | identity_text),
       st.tuples(*[identity_text] * 5, st.none() | identity_text))
def test_event_ids_differ_whenever_identities_differ(one, other):
    assert (event_id(*one) == event_id(*other)) == (one == other)


# --- Kinesis round trip -----------------------------------------------------------------------

printable = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\ufffd")


def name_text(limit: int) -> st.SearchStrategy[str]:
    return st.text(printable, min_size=1, max_size=limit).filter(lambda text: not text.isspace())


valid_events = st.builds(
    Event,
    namespace=name_text(256), experiment=name_text(256), variant=name_text(256), event=name_text(256),
    uuid=name_text(128),
    value=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    id=st.none() | name_text(128),
)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                       timezones=st.just(timezone.utc))


def through_kinesis(data: bytes, sequence_number: str = "49590338271490256608559692538361571095921575989136588898"):
    """Wrap record data the way Lambda delivers it, then read it back as the writer does."""
    lambda_event = {"Records": [{
        "kinesis": {
            "kinesisSchemaVersion": "1.0", "partitionKey": "pk", "sequenceNumber": sequence_number,
            "data": base64.b64encode(data).decode("ascii"), "approximateArrivalTimestamp": 1700000000.25,
        },
        "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventName": "aws:kinesis:record",
        "eventID": f"shardId-000000000000:{sequence_number}", "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/dalet-events",
    }]}
    (record,) = records_from_kinesis_event(KinesisEvent(lambda_event, None))
    return record


@settings(max_examples=200)
@given(valid_events, moments)
def test_every_valid_event_round_trips_through_kinesis_unchanged(event, received_at):
    fields = {"namespace": event.namespace, "experiment": event.experiment, "variant": event.variant,
              "event": event.event, "uuid": event.uuid, "value": event.value, "id": event.id}
    stored = stamp(parse_event(fields), received_at)
    assert decode_record(through_kinesis(encode_record(stored)).data) == stored


def test_record_data_is_compact_json_of_the_stored_event():
    stored = stamp(parse_event({**VALID, "value": 2}), datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc))
    data = encode_record(stored)
    assert json.loads(data) == {**VALID, "value": 2.0, "event_id": stored.event_id,
                                "received_at": "2024-05-06T07:08:09.123456Z"}
    assert b", " not in data and b": " not in data


def test_record_data_carries_the_event_id_as_message_id():
    stored = stamp(parse_event({**VALID, "id": "order-7"}), datetime(2024, 5, 6, tzinfo=timezone.utc))
    assert json.loads(encode_record(stored))["message_id"] == "order-7"
    assert decode_record(encode_record(stored)) == stored


def test_a_record_with_a_bad_message_id_is_refused_naming_it():
    row = stamp(parse_event(VALID), datetime.now(timezone.utc)).to_row()
    with pytest.raises(InvalidRecord, match="message_id"):
        decode_record(json.dumps({**row, "message_id": "x" * 129}).encode())


def test_received_at_is_stored_in_utc():
    local_time = datetime(2024, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert stamp(parse_event(VALID), local_time).received_at == datetime(2024, 1, 1, 10, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("change, reason", [
    ({"experiment": ""}, "experiment"),
    ({"received_at": "yesterday"}, "received_at"),
    ({"received_at": "0001-01-01T00:00:00+01:00"}, "received_at"),
])
def test_a_record_that_does_not_hold_together_is_refused_with_the_reason(change, reason):
    row = stamp(parse_event(VALID), datetime.now(timezone.utc)).to_row()
    with pytest.raises(InvalidRecord, match=reason):
        decode_record(json.dumps({**row, **change}).encode())


@pytest.mark.parametrize("data", [b"\xff\xfe", b"not json", b"[1, 2]", b'{"value": ' + b"9" * 5000 + b"}",
                                  b"[" * 100_000])
def test_undecodable_records_are_refused_not_crashed_on(data):
    with pytest.raises(InvalidRecord):
        decode_record(data)


# --- invalid events through the route -----------------------------------------------------------

invalid_text = (
    st.just("")
    | st.text(" \t", min_size=1, max_size=3)
    | st.builds(lambda prefix, bad: prefix + bad, st.text(printable, max_size=5),
                st.sampled_from(["\x00", "\x1f", "\x7f", "\n", "\u2028", "\ud800", "\ufffd"]))
    | st.integers() | st.booleans() | st.lists(st.integers(), max_size=2)
)
too_long = st.sampled_from(CHECKED_TEXT).map(lambda field: (field, "y" * (LIMITS[field] + 1)))
invalid_value = st.sampled_from(["NaN", "Infinity", "-Infinity", "abc", "", "1,5", True, [], {}])
invalid_field = (
    st.tuples(st.sampled_from(CHECKED_TEXT), invalid_text) | too_long | st.tuples(st.just("value"), invalid_value)
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(invalid_field)
def test_every_invalid_event_gets_a_400_naming_the_field(client, field_and_value):
    field, value = field_and_value
    body = json.dumps(with_field(field, value)).encode()
    response = client.http.post("/track", headers={"Content-Type": "application/json"}, body=body)
    assert response.status_code == 400
    named = {error["field"] for error in json.loads(response.body)["errors"]}
    assert named == {field}


# The fast path in parse_event decides the common case alone; the rule-by-rule check is the
# authority. They must never disagree, whatever the fields hold.
tricky_text = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.sampled_from(" \t\u00a0\u200d\u2028\ufffd\x00\x1fa/é😀"), max_size=6),
    st.integers(), st.none(), st.just(""), st.just(" "), st.just("x" * 257), st.just("u" * 129),
)
tricky_value = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                         st.booleans(), st.text(max_size=8), st.just(10 ** 400))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional={name: tricky_text for name in
                                            ("namespace", "experiment", "variant", "event", "uuid", "id")}),
       tricky_value)
def test_the_fast_path_agrees_with_the_rule_by_rule_check(fields, value):
    fields = {**fields, "value": value}
    try:
        expected = _parse_event_rule_by_rule(fields, None)
    except InvalidEvent:
        with pytest.raises(InvalidEvent):
            parse_event(fields)
        return
    assert parse_event(fields) == expected
