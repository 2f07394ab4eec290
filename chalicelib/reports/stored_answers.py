"""Stored answers: the results and daily views answered from a computation at most a maximum age old.

On BigQuery every view of an experiment re-reads its events (about 1 GB for the largest at 100M events a
month, for /results and again for /daily, and the list's verdict chips ask /results for each experiment
on screen), so a team opening the dashboard all day pays mostly for the same answers. As GrowthBook
does, an answer is computed once, stored, and shown with its age until it is older than
DALET_RESULTS_MAX_AGE_MINUTES; `refresh=true` computes it again.

Stored in the warehouse (`schema.REPORT_ANSWERS`), not in process memory: Lambda runs several API
containers at once and a dashboard's ~10 parallel requests spread over them, so an in-memory store would
miss on most, and each container would keep its own ages. A read is one query on a small table (the
key's cluster of the last partitions, and the experiment's tombstones), billed BigQuery's minimum
instead of the experiment's events.

What is never answered from storage: an answer older than the maximum age, one computed before the
experiment's latest deletion (`stored_at` is when the computation began, so a deletion during it also
counts, and so does one stored within TOMBSTONE_LANDING after it: the tombstone may not have landed
yet), and an error (only answers are stored). Storage is a saving, never a dependency: a failing read
or store logs a warning and the request is answered by computing.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from chalicelib.ingest.events import format_timestamp, now
from chalicelib.reports.fetch import ReportWarehouse, fetch, target_of
from chalicelib.reports.freshness import with_freshness
from chalicelib.reports.queries import Query, Target, render

log = logging.getLogger("dalet.reports")

REFRESH = "refresh"     # the query parameter that asks for a computation; never part of the key

# The same text json_response sends (chalicelib/responses.py), so a stored answer reads back unchanged.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)

clock: Callable[[], datetime] = now     # when an answer is computed and how old a stored one is


class AnswerWarehouse(ReportWarehouse, Protocol):
    def insert_answer(self, row: Mapping[str, Any]) -> None:
        """Store one row of schema.REPORT_ANSWERS (`stored_at` a datetime), readable by the next query."""
        ...


@dataclass(frozen=True)
class AnswerKey:
    key: str            # sha256 of the route, namespace, experiment and canonical query parameters
    namespace: str
    experiment: str


def canonical_parameters(params: Mapping[str, str] | None) -> list[list[str]]:
    """The query parameters that choose an answer: `[name, value, ...]` sorted by name.

    A parameter given once with a blank value is left out (`api.single` reads blank as absent); one
    given several times keeps every value, in order, so it never shares a key with a valid request and
    the view's 400 still happens. `refresh` asks how to answer, not what: it is left out.
    """
    if not params:
        return []
    chosen = []
    for name in sorted(params):
        if name == REFRESH:
            continue
        values = list(params.getlist(name)) if hasattr(params, "getlist") else [params[name]]
        if len(values) == 1 and not values[0].strip():
            continue
        chosen.append([name, *values])
    return chosen


def answer_key(route: str, namespace: str, experiment: str, params: Mapping[str, str] | None,
               defaults: Mapping[str, Any] | None = None) -> AnswerKey:
    """`defaults`: the deployment's settings that choose an answer a parameter left out (DALET_CUPED_DEFAULT),
    so a changed setting never answers with what the old one computed."""
    parts: list[Any] = [route, namespace, experiment, canonical_parameters(params)]
    if defaults:
        parts.append(sorted(defaults.items()))
    identity = _ENCODER.encode(parts)
    return AnswerKey(hashlib.sha256(identity.encode("utf-8")).hexdigest(), namespace, experiment)


# A deletion's moment is taken before its tombstone is written (on BigQuery a streaming insert retried up
# to 30 s, each try up to 10 s): a computation that begins in between reads the deleted events, yet is
# stored after `deleted_at`. An answer stored this soon after a deletion is never answered.
TOMBSTONE_LANDING = timedelta(minutes=2)


def stored_answer(target: Target, key: AnswerKey, since: datetime) -> Query:
    """The key's newest answer stored at or after `since`, with the experiment's latest tombstone (or NULL)."""
    sql = ("SELECT a.stored_at, a.answer, (\n"
           "    SELECT MAX(d.deleted_at) FROM {deletions} AS d\n"
           "    WHERE d.namespace = @namespace AND d.experiment = @experiment\n"
           "  ) AS deleted_at\n"
           "FROM {answers} AS a\n"
           "WHERE a.key = @key AND a.stored_at >= @since\n"
           "ORDER BY a.stored_at DESC\n"
           "LIMIT 1")
    return render(target, sql, {"key": key.key, "since": since, "namespace": key.namespace,
                                "experiment": key.experiment})


def answer(warehouse: AnswerWarehouse, key: AnswerKey, max_age: timedelta, compute: Callable[[], Any],
           refresh: bool = False) -> Any:
    """The stored answer if one is fresh (and `refresh` is not asked), else `compute()`'s, stored.

    `compute` answers the response body with its `freshness`; the answer's freshness gains `answered_at`
    (when its computation began) and `age_seconds` (0 for this computation). A `max_age` of zero never
    reads or writes the table.
    """
    if max_age > timedelta(0) and not refresh:
        stored = _read(warehouse, key, max_age)
        if stored is not None:
            return stored
    started = clock()
    body = compute()
    if max_age > timedelta(0):
        _store(warehouse, key, started, body)
    return _answered(body, started, 0)


def _read(warehouse: AnswerWarehouse, key: AnswerKey, max_age: timedelta) -> Any | None:
    at = clock()
    try:
        rows = fetch(warehouse, stored_answer(target_of(warehouse), key, at - max_age))
        if not rows:
            return None
        stored_at, deleted_at = rows[0]["stored_at"], rows[0]["deleted_at"]
        if deleted_at is not None and stored_at <= deleted_at + TOMBSTONE_LANDING:
            return None     # computed before the deletion, or while its tombstone was landing
        body = json.loads(rows[0]["answer"])
    except Exception as error:  # noqa: BLE001 - storage is a saving: answer by computing
        log.warning("could not read a stored answer (answering by computing): %s", error)
        return None
    # At least a millisecond: a stored answer always says so (`age_seconds` > 0), even across clock skew.
    return _answered(body, stored_at, max(round((at - stored_at).total_seconds(), 3), 0.001))


def _store(warehouse: AnswerWarehouse, key: AnswerKey, started: datetime, body: Any) -> None:
    try:
        warehouse.insert_answer({"key": key.key, "stored_at": started, "namespace": key.namespace,
                                 "experiment": key.experiment, "answer": _ENCODER.encode(body)})
    except Exception as error:  # noqa: BLE001 - the answer stands; the next request computes again
        log.warning("could not store an answer (the next request computes it again): %s", error)


def _answered(body: Any, answered_at: datetime, age_seconds: float) -> Any:
    return with_freshness(body, {"answered_at": format_timestamp(answered_at), "age_seconds": age_seconds})
