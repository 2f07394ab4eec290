"""Google credentials for BigQuery: workload identity federation, a key in Secrets Manager, or ADC."""
from __future__ import annotations

import json
import logging
import socket
import uuid

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import aws as google_aws
from google.oauth2 import service_account

from chalicelib import config, google_credentials
from tests.aws_moto import aws  # noqa: F401

SERVICE_ACCOUNT = "dalet-writer@my-project.iam.gserviceaccount.com"
AUDIENCE = ("//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/"
            "dalet-pool/providers/aws")
# What `gcloud iam workload-identity-pools create-cred-config ... --aws` writes.
FEDERATION_CONFIG = {
    "type": "external_account",
    "audience": AUDIENCE,
    "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
    "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"
                                         f"{SERVICE_ACCOUNT}:generateAccessToken",
    "token_url": "https://sts.googleapis.com/v1/token",
    "credential_source": {
        "environment_id": "aws1",
        "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
        "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
        "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
    },
}


def cloud_settings(**variables: str) -> config.Settings:
    return config.load_settings({
        "DALET_BACKEND": "aws", "DALET_STREAM_NAME": "dalet-events",
        "DALET_BQ_DATASET": "dalet", "DALET_BQ_TABLE": "events", **variables,
    })


@pytest.fixture(autouse=True)
def fresh_clients():
    google_credentials.clear_cache()
    yield
    google_credentials.clear_cache()


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def service_account_key() -> dict[str, str]:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    return {
        "type": "service_account", "project_id": "key-project", "private_key_id": "abc123",
        "private_key": pem, "client_email": SERVICE_ACCOUNT, "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def test_workload_identity_federation_builds_aws_based_credentials_without_a_network_call(no_network):
    settings = cloud_settings(DALET_GOOGLE_CREDENTIALS_CONFIG=json.dumps(FEDERATION_CONFIG),
                              DALET_BQ_PROJECT="my-project")

    client = google_credentials.bigquery_client(settings)

    assert isinstance(client._credentials, google_aws.Credentials)
    assert client._credentials.service_account_email == SERVICE_ACCOUNT
    assert client._credentials.info["audience"] == AUDIENCE
    assert client.project == "my-project"


def test_the_federation_config_may_be_a_file(tmp_path, no_network):
    path = tmp_path / "wif.json"
    path.write_text(json.dumps(FEDERATION_CONFIG))

    found = google_credentials.load_credentials(
        cloud_settings(DALET_GOOGLE_CREDENTIALS_CONFIG=str(path), DALET_BQ_PROJECT="my-project"))

    assert isinstance(found.credentials, google_aws.Credentials)


def test_federation_without_a_project_names_DALET_BQ_PROJECT(no_network):
    with pytest.raises(google_credentials.GoogleCredentialsError, match="DALET_BQ_PROJECT"):
        google_credentials.load_credentials(
            cloud_settings(DALET_GOOGLE_CREDENTIALS_CONFIG=json.dumps(FEDERATION_CONFIG)))


def test_a_service_account_key_in_the_config_variable_is_refused_and_sent_to_secrets_manager(service_account_key):
    settings = cloud_settings(DALET_GOOGLE_CREDENTIALS_CONFIG=json.dumps(service_account_key),
                              DALET_BQ_PROJECT="my-project")

    with pytest.raises(google_credentials.GoogleCredentialsError) as failure:
        google_credentials.load_credentials(settings)

    assert "DALET_GOOGLE_CREDENTIALS_SECRET" in str(failure.value)
    assert "PRIVATE KEY" not in str(failure.value)


def test_a_service_account_key_is_read_from_secrets_manager_into_memory_once(aws, service_account_key, caplog):
    caplog.set_level(logging.DEBUG)
    name = f"dalet/test/google-key-{uuid.uuid4().hex[:8]}"
    client = boto3.client("secretsmanager")
    client.create_secret(Name=name, SecretString=json.dumps(service_account_key))
    settings = cloud_settings(DALET_GOOGLE_CREDENTIALS_SECRET=name)

    first = google_credentials.bigquery_client(settings)
    client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    google_credentials.clear_cache()    # a new client, but the same container: the key stays in memory
    second = google_credentials.bigquery_client(settings)

    assert isinstance(first._credentials, service_account.Credentials)
    assert second._credentials.service_account_email == SERVICE_ACCOUNT
    assert second.project == "key-project"
    # botocore's own wire log (DEBUG, never enabled by Dalet) shows API bodies; everything else must not.
    leaks = [r.name for r in caplog.records if "PRIVATE KEY" in r.getMessage() and not r.name.startswith("botocore")]
    assert leaks == []


def test_a_missing_key_secret_is_named_with_its_variable(aws):
    name = f"dalet/test/absent-{uuid.uuid4().hex[:8]}"
    with pytest.raises(config.ConfigError) as failure:
        google_credentials.load_credentials(cloud_settings(DALET_GOOGLE_CREDENTIALS_SECRET=name))

    assert name in str(failure.value) and "DALET_GOOGLE_CREDENTIALS_SECRET" in str(failure.value)


def test_federation_and_a_key_together_are_refused():
    settings = cloud_settings(DALET_GOOGLE_CREDENTIALS_CONFIG=json.dumps(FEDERATION_CONFIG),
                              DALET_GOOGLE_CREDENTIALS_SECRET="dalet/google-key")

    with pytest.raises(google_credentials.GoogleCredentialsError, match="keep one"):
        google_credentials.load_credentials(settings)


def test_without_any_credentials_the_error_names_every_way_to_provide_them(tmp_path, monkeypatch):
    from google.auth.compute_engine import _metadata

    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))      # no gcloud login here
    monkeypatch.setattr(_metadata, "is_on_gce", lambda *args, **kwargs: False)

    with pytest.raises(google_credentials.GoogleCredentialsError) as failure:
        google_credentials.bigquery_client(cloud_settings())

    message = str(failure.value)
    for piece in ("DALET_GOOGLE_CREDENTIALS_CONFIG", "DALET_GOOGLE_CREDENTIALS_SECRET",
                  "gcloud auth application-default login"):
        assert piece in message
