"""Every Dalet setting, read from environment variables in one place.

Defaults live here rather than in `.chalice/config.json`'s dev stage: `chalice local`
copies a stage's environment variables over the process environment, so a default
written there could no longer be overridden by the user.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

BACKEND_LOCAL = "local"
BACKEND_AWS = "aws"
BACKENDS = (BACKEND_LOCAL, BACKEND_AWS)

DEFAULT_STREAM_NAME = "dalet-events"
DEFAULT_DATASET = "dalet"
DEFAULT_TABLE = "events"
DEFAULT_DATA_DIR = ".dalet"
# Per-request lines are INFO and below; WARNING keeps the log (and its bill) to what needs a look.
DEFAULT_LOG_LEVEL = "WARNING"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# How long Lambda gathers stream records before calling the writer (at most 300 s). At low
# traffic the writer's cost is its invocations, ~ shards x month / window: 30 s is 6x fewer
# than 5 s, and events reach the warehouse up to 30 s later.
DEFAULT_WRITER_BATCHING_WINDOW_SECONDS = 30
MAX_WRITER_BATCHING_WINDOW_SECONDS = 300
# Cloud: once a batch the warehouse keeps refusing has waited this long, the writer parks
# its records themselves in the failure queue (14 days) instead of letting the trigger give
# up at 6 h with a pointer into a stream that forgets them at 24 h (chalicelib/storage/parking.py).
DEFAULT_PARK_AFTER_SECONDS = 3600
# Below the trigger's MaximumRecordAgeInSeconds (6 h, dalet_ops/infrastructure.py), with an
# hour to spare for the trigger's retries, or the trigger would give up before the writer parks.
MAX_PARK_AFTER_SECONDS = 5 * 3600
# Locally, after a fatal DuckDB error (a checkpoint that met a full disk) the warehouse is reopened
# first after this many seconds, the delay doubling per failed attempt up to the longest. The longest
# is capped so that the warehouse is back within a minute of the cause going away.
DEFAULT_WAREHOUSE_REOPEN_FIRST_SECONDS = 1
DEFAULT_WAREHOUSE_REOPEN_LONGEST_SECONDS = 15
MAX_WAREHOUSE_REOPEN_SECONDS = 45
# DuckDB folds its write-ahead log into the warehouse file once the log reaches this size (its
# checkpoint_threshold, 16 MiB by default); the fold needs about that much free disk. A fold that
# fails takes the warehouse down until it is reopened; on a small disk, a smaller size needs less room.
DEFAULT_WAREHOUSE_CHECKPOINT_MB = 16
MAX_WAREHOUSE_CHECKPOINT_MB = 1024


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the message names the variable and the fix."""


@dataclass(frozen=True)
class Settings:
    backend: str
    data_dir: Path
    stream_name: str
    bq_project: str | None
    bq_dataset: str
    bq_table: str
    api_key: str | None
    api_key_secret: str | None
    google_credentials_secret: str | None
    google_credentials_config: str | None
    write_keys: tuple[tuple[str, str], ...] | None = None   # (Segment write key, namespace) pairs: DALET_WRITE_KEYS
    write_keys_secret: str | None = None
    track_url: str | None = None      # the front door's /track URL, for /snippet (the template sets it)
    log_level: str = DEFAULT_LOG_LEVEL
    failure_queue_url: str | None = None    # cloud: the SQS queue the writer parks records in
    park_after_seconds: int = DEFAULT_PARK_AFTER_SECONDS
    warehouse_reopen_first_seconds: int = DEFAULT_WAREHOUSE_REOPEN_FIRST_SECONDS     # local only
    warehouse_reopen_longest_seconds: int = DEFAULT_WAREHOUSE_REOPEN_LONGEST_SECONDS
    warehouse_checkpoint_mb: int = DEFAULT_WAREHOUSE_CHECKPOINT_MB
    cuped_by_default: bool = True     # DALET_CUPED_DEFAULT: results adjust with CUPED unless asked cuped=off
    results_max_age_minutes: int = 0  # DALET_RESULTS_MAX_AGE_MINUTES: stored results/daily answers (0: off)

    @property
    def is_local(self) -> bool:
        return self.backend == BACKEND_LOCAL



# `make run`'s HTTP server (dalet_ops/local_http.py); nothing in AWS reads these.
@dataclass(frozen=True)
class LocalServerSettings:
    access_log: bool = False               # DALET_ACCESS_LOG=1: a line per request (else errors and a summary)
    idle_seconds: float = 20.0             # DALET_IDLE_SECONDS: a connection silent this long is closed
    head_seconds: float = 10.0             # DALET_HEAD_SECONDS: a request's headers, from its first byte
    body_seconds: float = 30.0             # DALET_BODY_SECONDS: its body (up to 1 MiB), after the headers
    max_connections: int = 256             # DALET_MAX_CONNECTIONS: more get 503 at once
    max_connections_per_address: int = 128   # DALET_MAX_CONNECTIONS_PER_ADDRESS: so one address cannot take all
    summary_seconds: float = 60.0          # DALET_SUMMARY_SECONDS: the summary line, when anything happened


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def local_server_settings(environ: Mapping[str, str] | None = None, access_log: bool = False) -> LocalServerSettings:
    """`make run`'s server limits; `access_log` (serve --access-log) turns the access log on whatever the env says."""
    env = os.environ if environ is None else environ
    flag = (_get(env, "DALET_ACCESS_LOG") or "0").lower()
    if flag not in _TRUE + _FALSE:
        raise ConfigError(f"DALET_ACCESS_LOG must be 1 (a log line per request) or 0, got {flag!r}")
    defaults = LocalServerSettings()
    return LocalServerSettings(
        access_log=access_log or flag in _TRUE,
        idle_seconds=_positive(env, "DALET_IDLE_SECONDS", defaults.idle_seconds),
        head_seconds=_positive(env, "DALET_HEAD_SECONDS", defaults.head_seconds),
        body_seconds=_positive(env, "DALET_BODY_SECONDS", defaults.body_seconds),
        max_connections=int(_positive(env, "DALET_MAX_CONNECTIONS", defaults.max_connections, whole=True)),
        max_connections_per_address=int(_positive(env, "DALET_MAX_CONNECTIONS_PER_ADDRESS",
                                                  defaults.max_connections_per_address, whole=True)),
        summary_seconds=_positive(env, "DALET_SUMMARY_SECONDS", defaults.summary_seconds),
    )


def _positive(env: Mapping[str, str], name: str, default: float, whole: bool = False) -> float:
    value = _get(env, name)
    if value is None:
        return default
    try:
        number = int(value) if whole else float(value)
    except ValueError:
        number = 0
    if not number > 0 or number == float("inf"):
        raise ConfigError(f"{name} must be a positive {'whole ' if whole else ''}number, got {value!r}")
    return number

def _get(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def stream_name(environ: Mapping[str, str] | None = None) -> str:
    """The Kinesis stream name; used at `chalice deploy` time and at run time alike."""
    env = os.environ if environ is None else environ
    return _get(env, "DALET_STREAM_NAME") or DEFAULT_STREAM_NAME


def writer_batching_window_seconds(environ: Mapping[str, str] | None = None) -> int:
    """DALET_WRITER_BATCHING_WINDOW_SECONDS, read when `chalice deploy`/`package` imports app.py."""
    env = os.environ if environ is None else environ
    return _whole_seconds(env, "DALET_WRITER_BATCHING_WINDOW_SECONDS", DEFAULT_WRITER_BATCHING_WINDOW_SECONDS,
                          MAX_WRITER_BATCHING_WINDOW_SECONDS, "Lambda's limit")


DEFAULT_CATALOG_COMPACTION_HOURS = 24
MAX_CATALOG_COMPACTION_HOURS = 24 * 7


def catalog_compaction_hours(environ: Mapping[str, str] | None = None) -> int:
    """DALET_CATALOG_COMPACTION_HOURS: how often BigQuery's experiment catalog is compacted (a full scan of
    its firsts rows each time; read when `chalice deploy`/`package` imports app.py)."""
    env = os.environ if environ is None else environ
    value = _get(env, "DALET_CATALOG_COMPACTION_HOURS")
    if value is None:
        return DEFAULT_CATALOG_COMPACTION_HOURS
    if not value.isdigit() or not 1 <= int(value) <= MAX_CATALOG_COMPACTION_HOURS:
        raise ConfigError(f"DALET_CATALOG_COMPACTION_HOURS must be a whole number of hours from 1 to "
                          f"{MAX_CATALOG_COMPACTION_HOURS}, got {value!r}")
    return int(value)


def _whole_seconds(env: Mapping[str, str], name: str, default: int, maximum: int, why_maximum: str) -> int:
    value = _get(env, name)
    if value is None:
        return default
    if not value.isdigit() or int(value) > maximum:
        raise ConfigError(f"{name} must be a whole number of seconds from 0 to {maximum} ({why_maximum}), "
                          f"got {value!r}")
    return int(value)


def _log_level(env: Mapping[str, str]) -> str:
    level = (_get(env, "DALET_LOG_LEVEL") or DEFAULT_LOG_LEVEL).upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"DALET_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return level


def _track_url(env: Mapping[str, str]) -> str | None:
    url = _get(env, "DALET_TRACK_URL")
    if url is not None and not url.startswith(("https://", "http://")):
        raise ConfigError(f"DALET_TRACK_URL must be an http(s) URL (the front door's /track), got {url!r}")
    return url


# Hosts an http:// queue URL may name: an SQS stand-in on this machine (LocalStack, moto's server).
# LocalStack's queue URLs name *.localhost.localstack.cloud, which resolves to 127.0.0.1.
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_LOOPBACK_SUFFIXES = (".localhost", ".localhost.localstack.cloud")


def _loopback(host: str) -> bool:
    host = host.lower()
    return host in _LOOPBACK_HOSTS or host.startswith("127.") or host.endswith(_LOOPBACK_SUFFIXES)


def _failure_queue_url(env: Mapping[str, str]) -> str | None:
    url = _get(env, "DALET_FAILURE_QUEUE_URL")
    if url is None or url.startswith("https://"):
        return url
    parts = urlsplit(url)
    if parts.scheme == "http" and _loopback(parts.hostname or ""):
        return url
    raise ConfigError(f"DALET_FAILURE_QUEUE_URL must be the failure queue's https:// URL (SQS QueueUrl; http:// "
                      f"only for a stand-in on this machine, e.g. http://localhost:4566/...), got {url!r}")


def _park_after_seconds(env: Mapping[str, str]) -> int:
    return _whole_seconds(env, "DALET_PARK_AFTER_SECONDS", DEFAULT_PARK_AFTER_SECONDS, MAX_PARK_AFTER_SECONDS,
                          "the writer's trigger gives up on a batch at 6 h")


def _warehouse_reopen_seconds(env: Mapping[str, str]) -> tuple[int, int]:
    why = "the warehouse must be back within a minute of the cause going away"
    first = _whole_seconds(env, "DALET_WAREHOUSE_REOPEN_FIRST_SECONDS", DEFAULT_WAREHOUSE_REOPEN_FIRST_SECONDS,
                           MAX_WAREHOUSE_REOPEN_SECONDS, why)
    longest = _whole_seconds(env, "DALET_WAREHOUSE_REOPEN_LONGEST_SECONDS", DEFAULT_WAREHOUSE_REOPEN_LONGEST_SECONDS,
                             MAX_WAREHOUSE_REOPEN_SECONDS, why)
    if first > longest:
        raise ConfigError(f"DALET_WAREHOUSE_REOPEN_FIRST_SECONDS ({first}) must not exceed "
                          f"DALET_WAREHOUSE_REOPEN_LONGEST_SECONDS ({longest})")
    return first, longest


def _warehouse_checkpoint_mb(env: Mapping[str, str]) -> int:
    value = _get(env, "DALET_WAREHOUSE_CHECKPOINT_MB")
    if value is None:
        return DEFAULT_WAREHOUSE_CHECKPOINT_MB
    if not value.isdigit() or not 1 <= int(value) <= MAX_WAREHOUSE_CHECKPOINT_MB:
        raise ConfigError(f"DALET_WAREHOUSE_CHECKPOINT_MB must be a whole number of MiB from 1 to "
                          f"{MAX_WAREHOUSE_CHECKPOINT_MB}, got {value!r}")
    return int(value)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    backend = (_get(env, "DALET_BACKEND") or BACKEND_LOCAL).lower()
    if backend not in BACKENDS:
        raise ConfigError(
            f"DALET_BACKEND must be one of {', '.join(BACKENDS)}, got {backend!r}"
        )
    reopen_first, reopen_longest = _warehouse_reopen_seconds(env)
    settings = Settings(
        backend=backend,
        data_dir=Path(_get(env, "DALET_DATA_DIR") or DEFAULT_DATA_DIR).absolute(),
        stream_name=stream_name(env),
        bq_project=_get(env, "DALET_BQ_PROJECT"),
        bq_dataset=_get(env, "DALET_BQ_DATASET") or DEFAULT_DATASET,
        bq_table=_get(env, "DALET_BQ_TABLE") or DEFAULT_TABLE,
        api_key=_get(env, "DALET_API_KEY"),
        api_key_secret=_get(env, "DALET_API_KEY_SECRET"),
        google_credentials_secret=_get(env, "DALET_GOOGLE_CREDENTIALS_SECRET"),
        google_credentials_config=_get(env, "DALET_GOOGLE_CREDENTIALS_CONFIG"),
        write_keys=_write_keys_setting(env),
        write_keys_secret=_get(env, "DALET_WRITE_KEYS_SECRET"),
        track_url=_track_url(env),
        log_level=_log_level(env),
        failure_queue_url=_failure_queue_url(env),
        park_after_seconds=_park_after_seconds(env),
        warehouse_reopen_first_seconds=reopen_first,
        warehouse_reopen_longest_seconds=reopen_longest,
        warehouse_checkpoint_mb=_warehouse_checkpoint_mb(env),
        cuped_by_default=_cuped_by_default(env, backend),
        results_max_age_minutes=_results_max_age_minutes(env, backend),
    )
    if backend == BACKEND_AWS:
        _require_aws_settings(env)
    elif _get(env, "AWS_LAMBDA_FUNCTION_NAME"):
        raise ConfigError(
            "DALET_BACKEND is local (the default) but this runs in AWS Lambda, which has no local "
            "storage to keep events in: deploy the cloud stage (chalice deploy --stage prod), "
            "which sets DALET_BACKEND=aws"
        )
    return settings


def _cuped_by_default(env: Mapping[str, str], backend: str) -> bool:
    """DALET_CUPED_DEFAULT=on|off; unset: on locally, off on AWS.

    CUPED reads each participant's history in the `pre_days` before their exposure, across the
    namespace's events: BigQuery bills every partition of the experiment's span plus those days (tens
    of GB a results view at 100M events a month, bench/reads.py), where the results alone read the
    experiment's own clustered rows. Locally the same read costs only time. `cuped=on` still asks for it.
    """
    text = _get(env, "DALET_CUPED_DEFAULT")
    if text is None:
        return backend == BACKEND_LOCAL
    chosen = text.strip().lower()
    if chosen not in _TRUE + _FALSE:
        raise ConfigError(f"DALET_CUPED_DEFAULT must be on or off, got {text!r}")
    return chosen in _TRUE


DEFAULT_RESULTS_MAX_AGE_MINUTES_AWS = 60
MAX_RESULTS_MAX_AGE_MINUTES = 24 * 60


def _results_max_age_minutes(env: Mapping[str, str], backend: str) -> int:
    """DALET_RESULTS_MAX_AGE_MINUTES=0..1440; unset: 0 (off) locally, 60 on AWS.

    How old a stored results or daily answer may be and still be answered
    (chalicelib/reports/stored_answers.py). On BigQuery each view of an experiment re-reads its
    events (about 1 GB a load for the largest at 100M events a month), so a team's dashboard loads
    dominate the bill; locally a read costs only time, and answers stay live.
    """
    value = _get(env, "DALET_RESULTS_MAX_AGE_MINUTES")
    if value is None:
        return DEFAULT_RESULTS_MAX_AGE_MINUTES_AWS if backend == BACKEND_AWS else 0
    if not _is_ascii_digits(value) or int(value) > MAX_RESULTS_MAX_AGE_MINUTES:
        raise ConfigError(f"DALET_RESULTS_MAX_AGE_MINUTES must be a whole number of minutes from 0 (off) to "
                          f"{MAX_RESULTS_MAX_AGE_MINUTES}, got {value!r}")
    return int(value)


def _is_ascii_digits(text: str) -> bool:
    """0-9 only: str.isdigit() also admits digits int() refuses, like "²"."""
    return text.isascii() and text.isdigit()


def _write_keys_setting(env: Mapping[str, str]) -> tuple[tuple[str, str], ...] | None:
    text = _get(env, "DALET_WRITE_KEYS")
    return None if text is None else tuple(parse_write_keys(text, "DALET_WRITE_KEYS").items())


def parse_write_keys(text: str, source: str) -> dict[str, str]:
    """`key=namespace,key2=namespace2` as a mapping; ConfigError naming `source` if malformed.

    A namespace follows the rules of event names (1-256 printable characters); a key is
    1-256 printable characters without `=`, `,`, `:` or spaces (it travels as a Basic-auth user name).
    """
    keys: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        key, separator, namespace = (part.strip() for part in pair.partition("="))
        if not separator or not _WRITE_KEY.fullmatch(key) or not _plain_name(namespace):
            raise ConfigError(f"{source} must be comma-separated key=namespace pairs (keys without spaces, "
                              f"':' or '='); cannot read {_redacted(pair)!r}")
        if key in keys and keys[key] != namespace:
            raise ConfigError(f"{source} gives one write key two namespaces ({keys[key]!r} and {namespace!r})")
        keys[key] = namespace
    if not keys:
        raise ConfigError(f"{source} holds no key=namespace pair")
    return keys


_WRITE_KEY = re.compile(r"[^\s=,:]{1,256}")


def _plain_name(namespace: str) -> bool:
    return 0 < len(namespace) <= 256 and namespace.isprintable() and not namespace.isspace()


def _redacted(pair: str) -> str:
    """A malformed pair for an error message, without the secret key's characters."""
    key, separator, namespace = pair.partition("=")
    return f"{'*' * min(len(key.strip()), 8)}{separator}{namespace.strip()}"


def _require_aws_settings(env: Mapping[str, str]) -> None:
    """With DALET_BACKEND=aws, the destination must be spelled out: never guess, never fall back."""
    for name in ("DALET_STREAM_NAME", "DALET_BQ_DATASET", "DALET_BQ_TABLE"):
        if _get(env, name) is None:
            raise ConfigError(
                f"{name} is not set: DALET_BACKEND=aws needs it "
                "(set it in the stage's environment_variables in .chalice/config.json)"
            )
