"""Names read as they are (issue 17, finding 9): no hidden characters, one Unicode form.

Event, experiment, variant and namespace names (Segment's event, page and screen names too)
refuse characters that change how a name reads without being seen, and are kept in Unicode
Normalization Form C, so "Café" typed precomposed or as "Cafe" + U+0301 is one name. Report
parameters are normalised the same way. Ids (uuid, userId, messageId) keep their own rules.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from urllib.parse import quote, urlencode

import pytest

from chalicelib.ingest.events import event_id
from chalicelib.ingest.records import decode_record
from tests.helpers import KEY_HEADER, event, report_client, wait_until_written  # noqa: F401
from tests.segment_helpers import answer, post, rows, segment_client  # noqa: F401

COMPOSED, DECOMPOSED = "Caf\u00e9", "Cafe\u0301"
HIDDEN = {
    "right-to-left override": "\u202e", "zero-width space": "\u200b", "byte order mark": "\ufeff",
    "tag letter": "\U000e0041", "non-character U+FDD0": "\ufdd0", "non-character U+FFFE": "\ufffe",
    "non-character U+1FFFF": "\U0001ffff", "left-to-right isolate": "\u2066",
}


def post_track(client, *events) -> object:
    return client.http.post("/track", body=json.dumps(list(events)), headers={"content-type": "application/json"})


@pytest.mark.parametrize("field", ["namespace", "experiment", "variant", "event"])
@pytest.mark.parametrize("character", HIDDEN.values(), ids=HIDDEN.keys())
def test_a_track_name_with_a_hidden_character_gets_400_naming_the_field_and_the_rule(client, field, character):
    sent = {**event("checkout", "red", "participate", "u1"), field: f"refund{character}tset"}
    reply = post_track(client, sent)
    assert reply.status_code == 400, reply.body
    [error] = json.loads(reply.body)["errors"]
    assert (error["field"], error["index"]) == (field, 0)
    assert error["rule"].startswith("must not contain invisible, bidirectional control, tag or non-characters")
    assert f"U+{ord(character):04X}" in error["rule"]


def test_a_pixel_with_a_hidden_character_in_its_experiment_gets_400(client):
    reply = client.http.get("/track.gif?" + urlencode(event("refund\u200b-\u202etset", "red", "participate", "u1")))
    assert reply.status_code == 400, reply.body
    assert json.loads(reply.body)["errors"][0]["field"] == "experiment"


@pytest.mark.parametrize("path, message, field", [
    ("/v1/track", {"userId": "u1", "event": "Order\u202eCompleted"}, "event"),
    ("/v1/page", {"userId": "u1", "name": "Home\u200b"}, "name"),
    ("/v1/screen", {"userId": "u1", "name": "Tag\U000e0041"}, "name"),
])
def test_a_segment_name_with_a_hidden_character_gets_400_naming_it(segment_client, path, message, field):
    reply = post(segment_client, path, message)
    assert reply.status_code == 400, reply.body
    [error] = answer(reply)["errors"]
    assert error["field"] == field and "bidirectional control" in error["rule"]


def test_joiners_and_variation_selectors_in_emoji_names_are_kept(client):
    family, heart = "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\u2764\ufe0f"
    assert post_track(client, event(family, heart, "participate", "u1")).status_code == 200


def test_ids_are_not_names_and_keep_their_characters(client):
    assert post_track(client, event("checkout", "red", "participate", "u\u200b1")).status_code == 200


def test_a_decomposed_name_is_stored_composed_and_counts_with_the_composed_one(report_client):
    assert post_track(report_client, event(DECOMPOSED, "red", "participate", "u1"),
                      event(COMPOSED, "red", "participate", "u1"), event(COMPOSED, "red", "participate", "u2"),
                      event(DECOMPOSED, "red", "participate", "u3", namespace=f"shop-{DECOMPOSED}")).status_code == 200
    wait_until_written()
    stored = {(row["namespace"], row["experiment"], row["uuid"], row["event_id"]) for row in rows()}
    assert stored == {("alephbet", COMPOSED, "u1", event_id("alephbet", COMPOSED, "red", "participate", "u1")),
                      ("alephbet", COMPOSED, "u2", event_id("alephbet", COMPOSED, "red", "participate", "u2")),
                      (f"shop-{COMPOSED}", COMPOSED, "u3",
                       event_id(f"shop-{COMPOSED}", COMPOSED, "red", "participate", "u3"))}


@pytest.mark.parametrize("typed", [COMPOSED, DECOMPOSED], ids=["composed", "decomposed"])
def test_reports_find_a_name_typed_in_either_form(report_client, typed):
    post_track(report_client, event(DECOMPOSED, "red", "participate", "u1"),
               event(DECOMPOSED, "red", f"{DECOMPOSED} goal", "u1"))
    wait_until_written()
    reply = report_client.http.get(f"/experiments/{quote(typed)}/results?control=red", headers=KEY_HEADER)
    assert reply.status_code == 200, reply.body
    assert json.loads(reply.body)["variants"] == [{"label": "red", "participants": 1}]
    gimel = report_client.http.get(f"/experiments/{quote(typed)}", headers=KEY_HEADER)
    assert [goal["goal"] for goal in json.loads(gimel.body)] == [f"{COMPOSED} goal"]


def test_a_segment_event_name_is_stored_composed_and_found_by_either_form(segment_client, monkeypatch):
    monkeypatch.setenv("DALET_API_KEY", "test-report-key")
    assert post(segment_client, "/v1/track", {"userId": "u1", "event": f"{DECOMPOSED} Ordered"}).status_code == 200
    wait_until_written()
    assert [row["event"] for row in rows()] == [f"{COMPOSED} Ordered"]
    reply = segment_client.http.get("/events?" + urlencode({"namespace": "web", "event": f"{DECOMPOSED} Ordered"}),
                                    headers=KEY_HEADER)
    assert reply.status_code == 200, reply.body
    assert sum(json.loads(reply.body)["series"][0]["events"]) == 1


def test_a_record_acknowledged_before_the_rules_still_lands_as_it_was_sent():
    # Refused at /track and /v1/, not when the writer decodes: what was acknowledged is never lost.
    sent = {"namespace": "alephbet", "experiment": "refund\u202etset", "variant": "red", "event": "participate",
            "uuid": "u1", "received_at": datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat()}
    assert decode_record(json.dumps(sent).encode()).experiment == "refund\u202etset"


def test_a_snippet_namespace_follows_the_name_rules(client):
    hidden = client.http.get("/snippet?namespace=" + quote("shop\u202e"), headers={"host": "ab.example.com",
                                                                                    "accept": "application/json"})
    assert hidden.status_code == 400 and "bidirectional control" in json.loads(hidden.body)["errors"][0]["rule"]
    composed = client.http.get("/snippet?namespace=" + quote(DECOMPOSED), headers={"host": "ab.example.com",
                                                                                   "accept": "application/json"})
    assert json.loads(composed.body)["namespace"] == COMPOSED
