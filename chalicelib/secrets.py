"""Secrets the cloud deployment reads at run time: once per container, or (the report key) per TTL.

A secret is named by a Secrets Manager secret (name or ARN) or an SSM parameter
(`ssm:/name` or a parameter ARN). Values are kept in memory only: never written to
disk, never put in a log line or an error message.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from chalicelib.config import ConfigError, Settings, parse_write_keys

SECRETS_MANAGER = "secretsmanager"
SSM = "ssm"
SSM_PREFIX = "ssm:"
API_KEY_FIELD = "api_key"
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "ParameterNotFound"})

_cache: dict[SecretReference, str] = {}
_lock = threading.Lock()


class SecretUnavailable(ConfigError):
    """The secret could not be read; the message names it, the variable and the fix (never the value)."""


@dataclass(frozen=True)
class SecretReference:
    store: str        # SECRETS_MANAGER or SSM
    name: str         # secret name/ARN, or parameter name/ARN
    variable: str     # the environment variable that named it

    def __str__(self) -> str:
        where = "SSM parameter" if self.store == SSM else "Secrets Manager secret"
        return f"{where} {self.name} ({self.variable})"


def parse_reference(value: str, variable: str) -> SecretReference:
    value = value.strip()
    if value.startswith(SSM_PREFIX):
        return SecretReference(SSM, value[len(SSM_PREFIX):], variable)
    if value.startswith("arn:") and value.split(":")[2:3] == [SSM]:
        return SecretReference(SSM, value, variable)
    return SecretReference(SECRETS_MANAGER, value, variable)


def read_secret(reference: SecretReference) -> str:
    """The secret's text, fetched on first use and then served from memory."""
    with _lock:
        if reference not in _cache:
            _cache[reference] = fetch_secret(reference)
        return _cache[reference]


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def read_api_key_secret(settings: Settings, cached: bool = True) -> str:
    """The report API key from DALET_API_KEY_SECRET (a plain string, or JSON with an `api_key` field).

    `cached=False` reads the secret now (auth keeps the key for a TTL of its own).
    """
    if not settings.api_key_secret:
        raise ConfigError(
            "no report API key: set DALET_API_KEY_SECRET (a Secrets Manager secret name/ARN, or ssm:/parameter) "
            "or DALET_API_KEY in the stage's environment_variables in .chalice/config.json"
        )
    reference = parse_reference(settings.api_key_secret, "DALET_API_KEY_SECRET")
    return api_key_in(reference, read_secret(reference) if cached else fetch_secret(reference))


def api_key_in(reference: SecretReference, text: str) -> str:
    """The report API key a secret's text holds: the text itself, or its JSON's `api_key` field."""
    text = text.strip()
    key = _api_key_field(text) if text.startswith("{") else text
    if not key:
        raise SecretUnavailable(f"{reference} is empty: put the key in it (python -m dalet_ops.cli setup creates one)")
    return key


def _api_key_field(text: str) -> str:
    try:
        value = json.loads(text).get(API_KEY_FIELD, "")
    except (ValueError, AttributeError):
        return text
    return value.strip() if isinstance(value, str) else ""


def read_write_keys_secret(settings: Settings) -> dict[str, str]:
    """The Segment write keys from DALET_WRITE_KEYS_SECRET: `key=namespace,...` text, or a JSON object
    key -> namespace."""
    if not settings.write_keys_secret:
        raise ConfigError(
            "no Segment write keys: set DALET_WRITE_KEYS_SECRET (a Secrets Manager secret name/ARN, or ssm:/parameter) "
            "or DALET_WRITE_KEYS (key=namespace,...) in the stage's environment_variables in .chalice/config.json"
        )
    reference = parse_reference(settings.write_keys_secret, "DALET_WRITE_KEYS_SECRET")
    return write_keys_in(reference, read_secret(reference))


def write_keys_in(reference: SecretReference, text: str) -> dict[str, str]:
    text = text.strip()
    if text.startswith("{"):
        try:
            mapping = json.loads(text)
        except ValueError:
            raise SecretUnavailable(f"{reference} is not valid JSON") from None
        if not all(isinstance(value, str) for value in mapping.values()):
            raise SecretUnavailable(f"{reference} must map each write key to a namespace (a string)")
        text = ",".join(f"{key}={namespace}" for key, namespace in mapping.items())
    try:
        return parse_write_keys(text, str(reference))
    except ConfigError as error:
        raise SecretUnavailable(str(error)) from None


def fetch_secret(reference: SecretReference, session: Any = None) -> str:
    """The secret's text, read now through `session` (a boto3 Session; default: botocore's own).

    botocore rather than boto3 by default: /track reads the write keys on a cold start, and
    `import boto3` costs it the S3 helpers (see runtime.kinesis_client).
    """
    import botocore.session
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = session.client if session is not None else botocore.session.get_session().create_client
        if reference.store == SSM:
            return client(SSM).get_parameter(Name=reference.name, WithDecryption=True)["Parameter"]["Value"]
        return _secret_text(client(SECRETS_MANAGER).get_secret_value(SecretId=reference.name))
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        raise SecretUnavailable(f"cannot read {reference}: {code}. {_fix_for(code)}") from None
    except BotoCoreError as error:
        raise SecretUnavailable(f"cannot read {reference}: {error}") from None


def _secret_text(response: dict[str, Any]) -> str:
    if "SecretString" in response:
        return response["SecretString"]
    return bytes(response["SecretBinary"]).decode("utf-8")


def _fix_for(code: str) -> str:
    if code in NOT_FOUND_CODES:
        return "Create it (python -m dalet_ops.cli setup --stage STAGE) or fix the name."
    if code in ("AccessDeniedException", "AccessDenied"):
        return "Let the function's IAM role read it (the .chalice/policy-*.json files that setup writes)."
    return "Check the name, the region and the IAM role."
