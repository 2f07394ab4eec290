"""A namespace that belongs to a write key is written only with that key (issue 17, finding 5).

The write key is no password, but it decides which namespace a Segment call lands in; the
public /track names its namespace itself, so without this rule anyone could add event names
and users to a Segment namespace's analytics.
"""
from __future__ import annotations

import json
import uuid
from urllib.parse import urlencode

import pytest

from chalicelib import config
from chalicelib.ingest import write_keys
from tests.helpers import KEY_HEADER, report_client, wait_until_written  # noqa: F401
from tests.aws_moto import aws  # noqa: F401
from tests.lambda_events import function_url_event
from tests.segment_helpers import NAMESPACE, OTHER_NAMESPACE, WRITE_KEYS, post, rows

ORDER = {"experiment": "checkout", "variant": "red", "event": "Order Completed", "uuid": "intruder"}


@pytest.fixture
def keyed_client(report_client, monkeypatch):
    """The in-process app with two write keys (web, mobile) and the report API key."""
    monkeypatch.setenv("DALET_WRITE_KEYS", WRITE_KEYS)
    return report_client


def event_names(client, namespace: str) -> list[dict]:
    reply = client.http.get(f"/events/names?namespace={namespace}", headers=KEY_HEADER)
    assert reply.status_code == 200, reply.body
    return json.loads(reply.body)["names"]


def test_track_into_a_write_keys_namespace_gets_403_and_changes_nothing_it_shows(keyed_client):
    # The case: POST /track with "namespace": "web" turned Order Completed's 5 users into 6.
    assert post(keyed_client, "/v1/track", {"userId": "u1", "event": "Order Completed"}).status_code == 200
    wait_until_written()
    before = event_names(keyed_client, NAMESPACE)

    reply = keyed_client.http.post("/track", body=json.dumps({**ORDER, "namespace": NAMESPACE}),
                                   headers={"content-type": "application/json"})

    assert reply.status_code == 403, reply.body
    answer = json.loads(reply.body)
    assert answer["namespace"] == NAMESPACE and "write key" in answer["error"]
    assert answer["errors"] == [{"field": "namespace", "rule": "belongs to a write key"}]
    wait_until_written()
    assert event_names(keyed_client, NAMESPACE) == before == [{"name": "Order Completed", "events": 1, "users": 1}]


@pytest.mark.parametrize("path", ["/track", "/track.gif"])
def test_a_get_or_pixel_into_a_write_keys_namespace_gets_403(keyed_client, path):
    reply = keyed_client.http.get(f"{path}?{urlencode({**ORDER, 'namespace': OTHER_NAMESPACE})}")
    assert reply.status_code == 403, reply.body
    assert json.loads(reply.body)["namespace"] == OTHER_NAMESPACE


def test_a_batch_with_one_event_in_a_write_keys_namespace_is_refused_whole(keyed_client):
    batch = [{**ORDER, "uuid": "u1"}, {**ORDER, "uuid": "u2", "namespace": NAMESPACE}]
    reply = keyed_client.http.post("/track", body=json.dumps(batch), headers={"content-type": "application/json"})
    assert reply.status_code == 403, reply.body
    wait_until_written()
    assert rows() == []


def test_other_namespaces_stay_open_to_track(keyed_client):
    reply = keyed_client.http.post("/track", body=json.dumps([ORDER, {**ORDER, "namespace": "webshop"}]),
                                   headers={"content-type": "application/json"})
    assert reply.status_code == 200, reply.body


def test_the_generated_local_key_owns_the_default_namespace(report_client):
    # No DALET_WRITE_KEYS: `make run` generates one key for namespace `default`.
    reply = report_client.http.get(f"/track?{urlencode({**ORDER, 'namespace': write_keys.LOCAL_NAMESPACE})}")
    assert reply.status_code == 403, reply.body
    assert report_client.http.get(f"/track?{urlencode(ORDER)}").status_code == 200


def test_the_front_door_refuses_track_into_a_write_keys_namespace(keyed_client):
    import app

    event = function_url_event("POST", "/track", {"content-type": "application/json"},
                               body=json.dumps({**ORDER, "namespace": NAMESPACE}))
    answer = app.track_front_door(event, None)
    assert answer["statusCode"] == 403, answer
    assert json.loads(answer["body"])["namespace"] == NAMESPACE


def cloud_settings(**variables: str) -> config.Settings:
    return config.load_settings({"DALET_BACKEND": "aws", "DALET_STREAM_NAME": "dalet-events",
                                 "DALET_BQ_DATASET": "dalet", "DALET_BQ_TABLE": "events", **variables})


def test_a_cloud_stage_without_write_keys_owns_no_namespace():
    assert write_keys.owned_namespaces(cloud_settings()) == frozenset()


def test_a_cloud_stage_reads_its_owned_namespaces_from_the_write_keys_secret(aws):
    import boto3

    name = f"dalet/test/write-keys-{uuid.uuid4().hex[:8]}"    # unique: secrets are cached per process
    boto3.client("secretsmanager").create_secret(Name=name, SecretString="k1=web,k2=ios")
    owned = write_keys.owned_namespaces(cloud_settings(DALET_WRITE_KEYS_SECRET=name))
    assert owned == frozenset({"web", "ios"})


def test_no_snippet_is_made_for_a_write_keys_namespace(keyed_client):
    # Its every event would be refused: the snippet says so now, not the browser console later.
    reply = keyed_client.http.get(f"/snippet?namespace={NAMESPACE}", headers={"host": "ab.example.com"})
    assert reply.status_code == 403, reply.body
    assert json.loads(reply.body)["namespace"] == NAMESPACE
