"""The report API key: who may read and delete results.

API Gateway's `api_key_required` is not enforced by `chalice local` or
`chalice.test.Client`, so the app checks the `x-api-key` header itself.
"""
from __future__ import annotations

import hmac
import os
import secrets
import threading
from pathlib import Path
from typing import Mapping

from chalicelib.config import Settings

API_KEY_HEADER = "x-api-key"
LOCAL_KEY_FILE = "api_key"
_cache: dict[str, str] = {}
_lock = threading.Lock()


class MissingApiKey(PermissionError):
    status_code = 401


class WrongApiKey(PermissionError):
    status_code = 403


def local_api_key(data_dir: Path) -> str:
    """Generated once and kept in the data folder, readable only by its owner."""
    path = data_dir / LOCAL_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    return key


def expected_api_key(settings: Settings) -> str:
    """DALET_API_KEY if set; else the secret (cloud) or the generated key (local), cached."""
    if settings.api_key:
        return settings.api_key
    with _lock:
        cache_key = f"{settings.backend}:{settings.data_dir}:{settings.api_key_secret}"
        if cache_key not in _cache:
            _cache[cache_key] = _load_api_key(settings)
        return _cache[cache_key]


def _load_api_key(settings: Settings) -> str:
    if settings.is_local:
        return local_api_key(settings.data_dir)
    from chalicelib.secrets import read_api_key_secret

    return read_api_key_secret(settings)


def check_api_key(headers: Mapping[str, str], settings: Settings) -> None:
    """Raise MissingApiKey (401) or WrongApiKey (403); compared in constant time."""
    given = headers.get(API_KEY_HEADER)
    if not given:
        raise MissingApiKey(f"the {API_KEY_HEADER} header is required")
    if not hmac.compare_digest(given.encode("utf-8"), expected_api_key(settings).encode("utf-8")):
        raise WrongApiKey(f"the {API_KEY_HEADER} header does not match this deployment's API key")
