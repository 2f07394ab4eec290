"""Google credentials for BigQuery, built once per container.

Three sources, in order of preference:
1. Workload identity federation (`DALET_GOOGLE_CREDENTIALS_CONFIG`): an `external_account`
   configuration, as JSON text or a file path, with AWS as the identity source. The
   function's IAM role is the identity; the configuration holds no secret.
2. A service-account key JSON kept in AWS Secrets Manager or SSM
   (`DALET_GOOGLE_CREDENTIALS_SECRET`), read once into memory, never written to disk.
3. Application Default Credentials (a workstation after `gcloud auth application-default login`).
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.config import ConfigError, Settings

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
EXTERNAL_ACCOUNT = "external_account"
SERVICE_ACCOUNT = "service_account"

_clients: dict[tuple[str | None, str | None, str | None], Any] = {}
_lock = threading.Lock()


class GoogleCredentialsError(ConfigError):
    """No usable Google credentials; the message names the missing piece and the fix."""


@dataclass(frozen=True)
class GoogleCredentials:
    credentials: Any
    project: str


def bigquery_client(settings: Settings) -> Any:
    """A BigQuery client with the configured credentials, one per container."""
    cache_key = (settings.google_credentials_config, settings.google_credentials_secret, settings.bq_project)
    with _lock:
        if cache_key not in _clients:
            from google.cloud import bigquery

            found = load_credentials(settings)
            _clients[cache_key] = bigquery.Client(project=found.project, credentials=found.credentials)
        return _clients[cache_key]


def clear_cache() -> None:
    with _lock:
        _clients.clear()


def source_label(settings: Settings) -> str:
    """Which credentials the settings choose, in words (nothing is loaded)."""
    if settings.google_credentials_config:
        return "workload identity federation (DALET_GOOGLE_CREDENTIALS_CONFIG)"
    if settings.google_credentials_secret:
        return f"service-account key in {settings.google_credentials_secret} (DALET_GOOGLE_CREDENTIALS_SECRET)"
    return "Application Default Credentials"


def load_credentials(settings: Settings) -> GoogleCredentials:
    if settings.google_credentials_config and settings.google_credentials_secret:
        raise GoogleCredentialsError(
            "both DALET_GOOGLE_CREDENTIALS_CONFIG and DALET_GOOGLE_CREDENTIALS_SECRET are set: keep one "
            "(workload identity federation needs no secret)"
        )
    if settings.google_credentials_config:
        return federated_credentials(settings.google_credentials_config, settings.bq_project)
    if settings.google_credentials_secret:
        return service_account_credentials(settings.google_credentials_secret, settings.bq_project)
    return application_default_credentials(settings.bq_project)


def federated_credentials(config_value: str, project: str | None) -> GoogleCredentials:
    """Workload identity federation from an external_account configuration; no network call here."""
    from google.auth import aws, exceptions, identity_pool

    info = _external_account_config(config_value)
    # The specific class, not google.auth's generic loader: that one asks Google for the project.
    from_aws = str(info.get("credential_source", {}).get("environment_id", "")).startswith("aws")
    kind = aws.Credentials if from_aws else identity_pool.Credentials
    try:
        credentials = kind.from_info(info, scopes=list(SCOPES))
    except (exceptions.GoogleAuthError, ValueError) as error:
        raise GoogleCredentialsError(f"DALET_GOOGLE_CREDENTIALS_CONFIG is not a usable external_account "
                                     f"configuration: {error}") from error
    if not project:
        raise GoogleCredentialsError(
            "DALET_BQ_PROJECT is not set: workload identity federation credentials do not name a Google "
            "Cloud project, so set DALET_BQ_PROJECT in the stage's environment_variables"
        )
    return GoogleCredentials(credentials, project)


def service_account_credentials(secret: str, project: str | None) -> GoogleCredentials:
    """A service-account key read from Secrets Manager/SSM straight into memory."""
    from google.oauth2 import service_account

    from chalicelib.secrets import parse_reference, read_secret

    reference = parse_reference(secret, "DALET_GOOGLE_CREDENTIALS_SECRET")
    try:
        info = json.loads(read_secret(reference))
    except ValueError:
        raise GoogleCredentialsError(f"{reference} does not hold JSON: store the service-account key file's "
                                     "contents in it") from None
    if not isinstance(info, dict) or info.get("type") != SERVICE_ACCOUNT:
        raise GoogleCredentialsError(f"{reference} does not hold a service-account key "
                                     '(a JSON object with "type": "service_account")')
    try:
        credentials = service_account.Credentials.from_service_account_info(info, scopes=list(SCOPES))
    except (ValueError, KeyError) as error:
        # The message may quote the key's fields; name only what is wrong.
        raise GoogleCredentialsError(f"{reference} holds an unusable service-account key "
                                     f"({type(error).__name__})") from None
    chosen = project or info.get("project_id")
    if not chosen:
        raise GoogleCredentialsError("DALET_BQ_PROJECT is not set and the service-account key names no project_id")
    return GoogleCredentials(credentials, chosen)


def application_default_credentials(project: str | None) -> GoogleCredentials:
    import google.auth
    from google.auth import exceptions

    try:
        credentials, found_project = google.auth.default(scopes=list(SCOPES))
    except exceptions.DefaultCredentialsError as error:
        raise GoogleCredentialsError(
            "no Google credentials for BigQuery: set DALET_GOOGLE_CREDENTIALS_CONFIG (workload identity "
            "federation, preferred on AWS) or DALET_GOOGLE_CREDENTIALS_SECRET (a service-account key in "
            "Secrets Manager) in the stage's environment_variables; on a workstation, run "
            "`gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS "
            f"(Application Default Credentials: {error})"
        ) from None
    chosen = project or found_project
    if not chosen:
        raise GoogleCredentialsError("DALET_BQ_PROJECT is not set and the Application Default Credentials "
                                     "name no project: set DALET_BQ_PROJECT")
    return GoogleCredentials(credentials, chosen)


def _external_account_config(value: str) -> dict[str, Any]:
    text = value.strip()
    if not text.startswith("{"):
        try:
            text = Path(text).read_text()
        except OSError as error:
            raise GoogleCredentialsError(
                f"DALET_GOOGLE_CREDENTIALS_CONFIG names the file {value!r}, which cannot be read "
                f"({error.strerror}): give the configuration's JSON text or a readable path"
            ) from None
    try:
        info = json.loads(text)
    except json.JSONDecodeError as error:
        raise GoogleCredentialsError(f"DALET_GOOGLE_CREDENTIALS_CONFIG is not valid JSON ({error.msg})") from None
    if not isinstance(info, dict) or info.get("type") != EXTERNAL_ACCOUNT:
        raise GoogleCredentialsError(
            'DALET_GOOGLE_CREDENTIALS_CONFIG must be an external_account configuration ("type": '
            '"external_account", from `gcloud iam workload-identity-pools create-cred-config --aws`); '
            "a service-account key belongs in Secrets Manager (DALET_GOOGLE_CREDENTIALS_SECRET)"
        )
    return info
