"""Where Segment write keys come from: DALET_WRITE_KEYS, a secret in the cloud, a generated key locally."""
from __future__ import annotations

import json
import uuid

import boto3
import pytest

from chalicelib import config, secrets
from chalicelib.ingest import write_keys
from dalet_ops import cli
from tests.aws_moto import aws  # noqa: F401
from tests.test_secrets import cloud_settings


def test_write_keys_are_comma_separated_key_namespace_pairs():
    settings = config.load_settings({"DALET_WRITE_KEYS": " web-key=web , app-key = mobile app,"})

    assert write_keys.write_keys(settings) == {"web-key": "web", "app-key": "mobile app"}
    assert write_keys.namespace_for("app-key", settings) == "mobile app"
    assert write_keys.namespace_for("nope", settings) is None


@pytest.mark.parametrize("text", ["just-a-key", "key=", "=web", "a key=web", "k:1=web", "k=web,k=app", ","])
def test_a_malformed_setting_is_refused_naming_the_variable_without_the_key(text):
    with pytest.raises(config.ConfigError, match="DALET_WRITE_KEYS") as refused:
        config.load_settings({"DALET_WRITE_KEYS": text})

    assert "just-a-key" not in str(refused.value)


@pytest.fixture
def secret_name() -> str:
    return f"dalet/test/write-keys-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("secret_text", ["web-key=web,app-key=app", json.dumps({"web-key": "web", "app-key": "app"})])
def test_the_cloud_reads_write_keys_from_secrets_manager(aws, secret_name, secret_text):
    boto3.client("secretsmanager").create_secret(Name=secret_name, SecretString=secret_text)
    settings = cloud_settings(DALET_WRITE_KEYS_SECRET=secret_name)

    assert write_keys.write_keys(settings) == {"web-key": "web", "app-key": "app"}


@pytest.mark.parametrize("secret_text", ["no pairs here", json.dumps({"web-key": 3}), "{not json"])
def test_an_unreadable_write_keys_secret_names_the_secret(aws, secret_name, secret_text):
    boto3.client("secretsmanager").create_secret(Name=secret_name, SecretString=secret_text)

    with pytest.raises(secrets.SecretUnavailable, match=secret_name):
        write_keys.write_keys(cloud_settings(DALET_WRITE_KEYS_SECRET=secret_name))


def test_the_cloud_without_write_keys_says_which_variable_to_set(aws):
    with pytest.raises(config.ConfigError, match="DALET_WRITE_KEYS_SECRET"):
        write_keys.namespace_for("any", cloud_settings())


def test_a_missing_cloud_secret_gets_503_not_a_401_and_names_it_only_in_the_log(aws, monkeypatch, client, caplog):
    from tests.segment_helpers import post

    for name, value in {"DALET_BACKEND": "aws", "DALET_STREAM_NAME": "s", "DALET_BQ_DATASET": "d",
                        "DALET_BQ_TABLE": "t", "DALET_WRITE_KEYS_SECRET": "dalet/test/absent"}.items():
        monkeypatch.setenv(name, value)
    reply = post(client, "/v1/track", {"userId": "u", "event": "E"}, key="some-key")

    assert reply.status_code == 503
    assert json.loads(reply.body)["reason"] == "server_misconfigured"
    assert "dalet/test/absent" not in reply.body.decode() and "dalet/test/absent" in caplog.text


def test_local_info_prints_the_generated_write_key_next_to_the_report_key(data_dir, capsys):
    assert cli.local_info(None) == 0

    key = (data_dir / write_keys.LOCAL_KEY_FILE).read_text().strip()
    assert f"Segment write key (namespace default): {key}" in capsys.readouterr().out


def test_local_info_prints_configured_write_keys_instead(data_dir, monkeypatch, capsys):
    monkeypatch.setenv("DALET_WRITE_KEYS", "k1=web")

    assert cli.local_info(None) == 0
    assert "Segment write key (namespace web): k1" in capsys.readouterr().out
    assert not (data_dir / write_keys.LOCAL_KEY_FILE).exists()


def test_the_functions_serving_v1_may_read_the_write_keys_secret_and_nothing_more():
    from pathlib import Path

    from dalet_ops.iam_policies import AwsLocation, StageResources, policy_documents
    from dalet_ops.stage import API_HANDLER, TRACK, WRITER, Stage

    location = AwsLocation("aws", "eu-west-1", "123456789012")
    resources = StageResources(location, stream="arn:stream", failure_queue="arn:queue")
    environment = {"DALET_BACKEND": "aws", "DALET_STREAM_NAME": "s", "DALET_BQ_DATASET": "d", "DALET_BQ_TABLE": "t"}
    with_secret = Stage("prod", "dalet", Path("."), {**environment, "DALET_WRITE_KEYS_SECRET": "dalet/prod/write-keys"})

    documents = policy_documents(with_secret, resources)
    for serving_v1 in (API_HANDLER, TRACK):     # the REST API and the front door both serve /v1/*
        [statement] = [s for s in documents[serving_v1]["Statement"] if s["Sid"] == "ReadTheSegmentWriteKeys"]
        assert statement["Resource"] == [
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:dalet/prod/write-keys-??????"]
    assert "ReadTheSegmentWriteKeys" not in {s["Sid"] for s in documents[WRITER]["Statement"]}
    without = policy_documents(Stage("prod", "dalet", Path("."), environment), resources)
    assert "ReadTheSegmentWriteKeys" not in {s["Sid"] for s in without[API_HANDLER]["Statement"]}
