"""The report API key in the cloud: read from Secrets Manager or SSM once per container."""
from __future__ import annotations

import json
import re
import uuid

import boto3
import pytest

from chalicelib import auth, config, secrets
from tests.aws_moto import aws  # noqa: F401


def cloud_settings(**variables: str) -> config.Settings:
    return config.load_settings({
        "DALET_BACKEND": "aws", "DALET_STREAM_NAME": "dalet-events",
        "DALET_BQ_DATASET": "dalet", "DALET_BQ_TABLE": "events", **variables,
    })


@pytest.fixture
def secret_name() -> str:
    # Unique per test: the key is cached per container, i.e. per process here.
    return f"dalet/test/api-key-{uuid.uuid4().hex[:8]}"


def test_report_routes_check_the_key_kept_in_secrets_manager(aws, secret_name):
    boto3.client("secretsmanager").create_secret(Name=secret_name, SecretString="the-key\n")
    settings = cloud_settings(DALET_API_KEY_SECRET=secret_name)

    auth.check_api_key({"x-api-key": "the-key"}, settings)
    with pytest.raises(auth.WrongApiKey):
        auth.check_api_key({"x-api-key": "another-key"}, settings)


def test_the_key_is_read_once_per_container(aws, secret_name):
    client = boto3.client("secretsmanager")
    client.create_secret(Name=secret_name, SecretString="first-key")
    settings = cloud_settings(DALET_API_KEY_SECRET=secret_name)
    assert secrets.read_api_key_secret(settings) == "first-key"

    client.put_secret_value(SecretId=secret_name, SecretString="rotated-key")

    assert secrets.read_api_key_secret(settings) == "first-key"


def test_a_secret_holding_json_gives_its_api_key_field(aws, secret_name):
    boto3.client("secretsmanager").create_secret(Name=secret_name, SecretString=json.dumps({"api_key": "from-json"}))

    assert secrets.read_api_key_secret(cloud_settings(DALET_API_KEY_SECRET=secret_name)) == "from-json"


def test_the_key_may_be_an_ssm_secure_string_parameter(aws, secret_name):
    parameter = "/" + secret_name
    boto3.client("ssm").put_parameter(Name=parameter, Value="ssm-key", Type="SecureString")

    assert secrets.read_api_key_secret(cloud_settings(DALET_API_KEY_SECRET=f"ssm:{parameter}")) == "ssm-key"


def test_a_missing_secret_is_named_with_the_fix_and_no_value(aws, secret_name):
    with pytest.raises(secrets.SecretUnavailable) as failure:
        secrets.read_api_key_secret(cloud_settings(DALET_API_KEY_SECRET=secret_name))

    message = str(failure.value)
    assert secret_name in message and "DALET_API_KEY_SECRET" in message and "setup" in message


def test_no_key_configured_names_both_variables():
    with pytest.raises(config.ConfigError) as failure:
        secrets.read_api_key_secret(cloud_settings())

    message = str(failure.value)
    assert "DALET_API_KEY_SECRET" in message and re.search(r"DALET_API_KEY\b", message)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def accepts(key: str, settings: config.Settings, clock: FakeClock) -> bool:
    try:
        auth.check_api_key({"x-api-key": key}, settings, clock)
    except auth.WrongApiKey:
        return False
    return True


def test_a_rotated_key_takes_effect_in_a_warm_container_once_the_ttl_runs_out(aws, secret_name):
    client = boto3.client("secretsmanager")
    client.create_secret(Name=secret_name, SecretString="first-key")
    settings, clock = cloud_settings(DALET_API_KEY_SECRET=secret_name), FakeClock()
    assert accepts("first-key", settings, clock)

    client.put_secret_value(SecretId=secret_name, SecretString="rotated-key")
    clock.now += auth.API_KEY_TTL_SECONDS - 1
    assert accepts("first-key", settings, clock) and not accepts("rotated-key", settings, clock)

    clock.now += 1
    assert accepts("rotated-key", settings, clock) and not accepts("first-key", settings, clock)


def test_the_key_read_last_keeps_serving_while_the_secret_cannot_be_read(aws, secret_name, monkeypatch):
    client = boto3.client("secretsmanager")
    client.create_secret(Name=secret_name, SecretString="the-key")
    settings, clock = cloud_settings(DALET_API_KEY_SECRET=secret_name), FakeClock()
    assert accepts("the-key", settings, clock)

    def unreachable(*_, **__):
        raise secrets.SecretUnavailable("Secrets Manager is down")

    monkeypatch.setattr(secrets, "fetch_secret", unreachable)
    clock.now += auth.API_KEY_TTL_SECONDS + 1

    assert accepts("the-key", settings, clock)
