"""The report API key: who may read and delete results.

API Gateway's `api_key_required` is not enforced by `chalice local` or
`chalice.test.Client`, so the app checks the `x-api-key` header itself.
"""
from __future__ import annotations

import hmac
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from chalicelib.config import Settings

API_KEY_HEADER = "x-api-key"
LOCAL_KEY_FILE = "api_key"
# A rotated key takes effect in every warm container within this time, at the price of one
# Secrets Manager read per container per TTL (about $0.05 per 10,000 reads).
API_KEY_TTL_SECONDS = 300.0
Clock = Callable[[], float]

log = logging.getLogger(__name__)
_cache: dict[str, tuple[str, float]] = {}     # cache key -> (API key, when it was read)
_lock = threading.Lock()


class MissingApiKey(PermissionError):
    status_code = 401


class WrongApiKey(PermissionError):
    status_code = 403


def local_api_key(data_dir: Path) -> str:
    return local_key(data_dir / LOCAL_KEY_FILE, 32)


def local_key(path: Path, random_bytes: int) -> str:
    """A key generated once and kept in the data folder, readable only by its owner."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(random_bytes)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:     # another process wrote it first: use theirs
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    return key


def expected_api_key(settings: Settings, clock: Clock = time.monotonic) -> str:
    """DALET_API_KEY if set; else the secret (cloud) or the generated key (local), kept for a TTL.

    If the key cannot be read again when its TTL has run out, the key read last keeps
    serving (and the failure is logged): a brief Secrets Manager outage must not lock
    every report out.
    """
    if settings.api_key:
        return settings.api_key
    cache_key = f"{settings.backend}:{settings.data_dir}:{settings.api_key_secret}"
    with _lock:
        cached = _cache.get(cache_key)
        now = clock()
        if cached is not None and now - cached[1] < API_KEY_TTL_SECONDS:
            return cached[0]
        try:
            key = _load_api_key(settings)
        except Exception as error:
            if cached is None:
                raise
            log.error("could not read the report API key again, still using the one read before: %s", error)
            key = cached[0]
        _cache[cache_key] = (key, now)
        return key


def _load_api_key(settings: Settings) -> str:
    if settings.is_local:
        return local_api_key(settings.data_dir)
    from chalicelib.secrets import read_api_key_secret

    return read_api_key_secret(settings, cached=False)


def check_api_key(headers: Mapping[str, str], settings: Settings, clock: Clock = time.monotonic) -> None:
    """Raise MissingApiKey (401) or WrongApiKey (403); compared in constant time."""
    given = headers.get(API_KEY_HEADER)
    if not given:
        raise MissingApiKey(f"the {API_KEY_HEADER} header is required")
    if not hmac.compare_digest(given.encode("utf-8"), expected_api_key(settings, clock).encode("utf-8")):
        raise WrongApiKey(f"the {API_KEY_HEADER} header does not match this deployment's API key")
