"""One table per surface from exception to HTTP answer, and `answering`, the route decorator that applies one.

A table is read in order and the first class the error is an instance of answers it, as an
`except` chain would; an error no table names propagates (Chalice answers 500). An answer gets
the error and `what` failed, which only the log of an unavailable backend names.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from chalice import Response

from chalicelib import auth
from chalicelib.config import ConfigError
from chalicelib.ingest import segment, snippet, track, write_keys
from chalicelib.ingest.events import InvalidEvent
from chalicelib.ingest.publisher import PublishError
from chalicelib.reports.errors import BadParameter, ConflictingHeader, TooManyComparisons, UnknownExperiment
from chalicelib.responses import (
    WAREHOUSE_UNAVAILABLE,
    error_response,
    segment_error,
    unavailable_reason,
    unavailable_response,
)
from chalicelib.runtime import BackendUnavailable
from chalicelib.storage.writer import TransientWarehouseError

Answer = Callable[[Any, str], Response]
ErrorTable = Mapping[type[Exception], Answer]
Route = Callable[..., Response]

STREAM_DOWN: tuple[type[Exception], ...] = (PublishError, BackendUnavailable, ConfigError)
WAREHOUSE_DOWN: tuple[type[Exception], ...] = (TransientWarehouseError, BackendUnavailable, ConfigError)


def _field_errors(invalid: InvalidEvent) -> list[dict[str, Any]]:
    return [error.to_json() for error in invalid.errors]


def _segment_unavailable(down: Exception, what: str) -> Response:
    return segment_error(503, "the event stream is unavailable; retry later", "unavailable",
                         reason=unavailable_reason(down, what))


# /track, /track.gif: Dalet's `error` (and `errors` per field of an invalid event).
TRACK: ErrorTable = {
    InvalidEvent: lambda invalid, _: error_response(400, "invalid event", errors=_field_errors(invalid)),
    track.NamespaceOwned: lambda owned, _: error_response(
        403, str(owned), errors=[{"field": "namespace", "rule": "belongs to a write key"}], namespace=owned.namespace),
    track.PayloadTooLarge: lambda too_large, _: error_response(413, str(too_large)),
    track.UnsupportedMediaType: lambda unsupported, _: error_response(415, str(unsupported)),
    **dict.fromkeys(STREAM_DOWN, lambda down, what: unavailable_response(down, what)),
}

# /v1/{call}: as Segment's libraries read errors (`success`, `code`, `message`), with Dalet's `error`.
SEGMENT: ErrorTable = {
    segment.UnknownCall: lambda unknown, _: segment_error(404, str(unknown), "not_found"),
    segment.Unauthorized: lambda unauthorized, _: segment_error(401, str(unauthorized), "unauthorized"),
    segment.RequestTooLarge: lambda too_large, _: segment_error(400, str(too_large), "too_large"),
    InvalidEvent: lambda invalid, _: segment_error(400, f"invalid message: {invalid}"[:1000], "invalid_request",
                                                   errors=_field_errors(invalid)),
    segment.UnsupportedMediaType: lambda unsupported, _: segment_error(415, str(unsupported),
                                                                       "unsupported_media_type"),
    **dict.fromkeys(STREAM_DOWN, _segment_unavailable),
}

# /snippet (the Segment kind discloses a write key to the report key's holder only)
SNIPPET: ErrorTable = {
    snippet.UnknownKind: lambda unknown, _: error_response(400, str(unknown), parameter="kind"),
    ConflictingHeader: lambda conflicting, _: error_response(400, str(conflicting), header=conflicting.header),
    track.NamespaceOwned: lambda owned, _: error_response(
        403, str(owned), errors=[{"field": "namespace", "rule": "belongs to a write key"}], namespace=owned.namespace),
    InvalidEvent: lambda invalid, _: error_response(400, "invalid namespace", errors=_field_errors(invalid)),
    snippet.InvalidRequest: lambda bad_header, _: error_response(400, str(bad_header), header=bad_header.header),
    **dict.fromkeys((auth.MissingApiKey, auth.WrongApiKey),
                    lambda denied, _: error_response(denied.status_code, str(denied))),
    write_keys.NoWriteKey: lambda missing, _: error_response(404, str(missing), parameter="namespace"),
    ConfigError: lambda down, what: error_response(503, "the write keys could not be read; retry later",
                                                   reason=unavailable_reason(down, what)),
}

# The report routes (reports/api.py's `report_route`): the API key, the parameters, the experiment.
REPORT: ErrorTable = {
    ConflictingHeader: lambda conflicting, _: error_response(400, str(conflicting), header=conflicting.header),
    **dict.fromkeys((auth.MissingApiKey, auth.WrongApiKey),
                    lambda denied, _: error_response(denied.status_code, str(denied))),
    BadParameter: lambda bad, _: error_response(400, str(bad), parameter=bad.parameter),
    UnknownExperiment: lambda unknown, _: error_response(404, str(unknown), namespace=unknown.namespace,
                                                         experiment=unknown.experiment),
    TooManyComparisons: lambda too_many, _: error_response(422, str(too_many), experiment=too_many.experiment,
                                                           variants=too_many.variants, goals=too_many.goals),
    **dict.fromkeys(WAREHOUSE_DOWN, lambda down, what: unavailable_response(down, what, WAREHOUSE_UNAVAILABLE)),
}


def answered(table: ErrorTable, what: str, attempt: Callable[[], Response]) -> Response:
    """`attempt`'s response, or the table's answer to the error it raised."""
    try:
        return attempt()
    except tuple(table) as error:
        answer = next(answer for raised, answer in table.items() if isinstance(error, raised))
        return answer(error, what)


def answering(table: ErrorTable, what: str) -> Callable[[Route], Route]:
    """Decorate a route so the table answers its errors; `what` may name its path parameters ("segment {call}")."""
    def decorate(route: Route) -> Route:
        @functools.wraps(route)
        def answer(*args: Any, **kwargs: Any) -> Response:
            return answered(table, what.format(**kwargs), lambda: route(*args, **kwargs))
        return answer
    return decorate
