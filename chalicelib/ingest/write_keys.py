"""Segment write keys: which key may send events, and into which namespace.

DALET_WRITE_KEYS (`key=namespace,...`) if set; else, in the cloud, the secret named by
DALET_WRITE_KEYS_SECRET; else, locally, one key for namespace `default`, generated once
into the data folder. A write key is no password (analytics.js puts it in every page); it
only routes events to a namespace and keeps strangers' traffic out.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

from chalicelib.auth import API_KEY_HEADER, check_api_key, local_key
from chalicelib.config import Settings

LOCAL_KEY_FILE = "write_key"
LOCAL_NAMESPACE = "default"
_cache: dict[tuple, dict[str, str]] = {}
_owned_cache: dict[tuple, frozenset[str]] = {}
_lock = threading.Lock()


def local_write_key(data_dir: Path) -> str:
    return local_key(data_dir / LOCAL_KEY_FILE, 24)


def _cache_key(settings: Settings) -> tuple:
    return (settings.backend, settings.data_dir, settings.write_keys_secret, settings.write_keys)


def write_keys(settings: Settings) -> dict[str, str]:
    """Each write key and its namespace, read once per settings and then served from memory."""
    cache_key = _cache_key(settings)
    known = _cache.get(cache_key)   # read without the lock on the hot path
    if known is not None:
        return known
    with _lock:
        if cache_key not in _cache:
            _cache[cache_key] = _load(settings)
        return _cache[cache_key]


def _load(settings: Settings) -> dict[str, str]:
    if settings.write_keys:
        return dict(settings.write_keys)
    if settings.is_local and not settings.write_keys_secret:
        return {local_write_key(settings.data_dir): LOCAL_NAMESPACE}
    from chalicelib.secrets import read_write_keys_secret

    return read_write_keys_secret(settings)


def namespace_for(key: str | None, settings: Settings) -> str | None:
    """The namespace `key` writes to, or None for a missing or unknown key."""
    if not key:
        return None
    return write_keys(settings).get(key)


class NoWriteKey(LookupError):
    """No write key sends to the namespace asked for."""


def key_for_namespace(namespace: str, settings: Settings) -> str:
    """A write key that sends to `namespace` (the first configured); NoWriteKey if there is none."""
    for key, key_namespace in write_keys(settings).items():
        if key_namespace == namespace:
            return key
    raise NoWriteKey(f"no write key sends to namespace {namespace!r} (DALET_WRITE_KEYS names them)")


def disclosed_write_key(namespace: str, headers: Mapping[str, str], settings: Settings) -> str | None:
    """For /snippet: the namespace's write key to a caller holding the report API key, None to anyone else.

    Any page can read a write key, but a namespace sent to only from servers keeps its key private:
    an anonymous caller gets a placeholder. A wrong key raises auth.WrongApiKey (403), as on reports.
    """
    if not headers.get(API_KEY_HEADER):
        return None
    check_api_key(headers, settings)
    return key_for_namespace(namespace, settings)


def owned_namespaces(settings: Settings) -> frozenset[str]:
    """The namespaces write keys send to: each is written only by /v1/ calls carrying its key.

    A cloud stage with no write keys configured owns none (and its /v1/ answers 503); an
    unreadable secret raises ConfigError, so /track refuses rather than guess.
    """
    if not (settings.write_keys or settings.write_keys_secret or settings.is_local):
        return frozenset()
    cache_key = _cache_key(settings)
    owned = _owned_cache.get(cache_key)   # the hot path of every /track: a dict lookup
    if owned is None:
        owned = _owned_cache.setdefault(cache_key, frozenset(write_keys(settings).values()))
    return owned
