"""The HTTP side of the report routes: the API key, the query parameters, the error answers.

Every report route is wrapped in `report_route(app)`: it checks `x-api-key` (401 missing,
403 wrong, 400 repeated with different values), runs the view, answers its return value as JSON (a GET's with the warehouse's
`freshness`), and turns a bad parameter into 400, an unknown experiment into 404 and an
unreachable warehouse into 503.
"""
from __future__ import annotations

import functools
import math
from datetime import date
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import unquote

from chalice import Chalice, Response

from chalicelib import auth, config, runtime
from chalicelib.ingest.events import DEFAULT_NAMESPACE
from chalicelib.reports.queries import Window
from chalicelib.responses import WAREHOUSE_UNAVAILABLE, error_response, json_response, unavailable_response
from chalicelib.storage.writer import TransientWarehouseError

if TYPE_CHECKING:
    from chalicelib.reports.stats import Correction

View = Callable[..., Any]

# API Gateway hands the function the last of repeated headers and chalice local the first,
# so which key "wins" would differ between them: a request carrying differing keys is refused.
CONFLICTING_KEYS = f"{auth.API_KEY_HEADER}: given several times with different values; send it once"


class ConflictingHeader(ValueError):
    def __init__(self, header: str, message: str):
        super().__init__(message)
        self.header = header


def refuse_conflicting_api_keys(original_event: Mapping[str, Any]) -> None:
    """400 when the request's `x-api-key` headers differ (identical repeats, as proxies add, are fine)."""
    repeated = original_event.get("multiValueHeaders") or {}
    values = {value for name, values in repeated.items() if name.lower() == auth.API_KEY_HEADER
              for value in values or ()}
    if len(values) > 1:
        raise ConflictingHeader(auth.API_KEY_HEADER, CONFLICTING_KEYS)


def report_route(app: Chalice) -> Callable[[View], Callable[..., Response]]:
    def decorate(view: View) -> Callable[..., Response]:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Response:
            from chalicelib.reports.views import BadParameter, UnknownExperiment, with_freshness

            try:
                refuse_conflicting_api_keys(app.current_request.to_original_event())
                auth.check_api_key(app.current_request.headers, runtime.settings())
                if app.current_request.method != "GET":
                    return json_response(view(*args, **kwargs))
                measured = runtime.freshness()          # before the query: as_of is then a promise
                return json_response(with_freshness(view(*args, **kwargs), measured))
            except ConflictingHeader as conflicting:
                return error_response(400, str(conflicting), header=conflicting.header)
            except (auth.MissingApiKey, auth.WrongApiKey) as denied:
                return error_response(denied.status_code, str(denied))
            except BadParameter as bad:
                return error_response(400, str(bad), parameter=bad.parameter)
            except UnknownExperiment as unknown:
                return error_response(404, str(unknown), namespace=unknown.namespace, experiment=unknown.experiment)
            except (TransientWarehouseError, runtime.BackendUnavailable, config.ConfigError) as unavailable:
                return unavailable_response(unavailable, "report", WAREHOUSE_UNAVAILABLE)
        return guarded
    return decorate


def bad_parameter(name: str, message: str) -> Exception:
    # The views (and their statistics) load on the first report request, never on /track's cold start.
    from chalicelib.reports.views import BadParameter

    return BadParameter(name, message)


def single(params: Mapping[str, str] | None, name: str) -> str | None:
    """A query parameter given at most once; blank counts as absent."""
    if not params or name not in params:
        return None
    values = params.getlist(name) if hasattr(params, "getlist") else [params[name]]
    if len(values) > 1:
        raise bad_parameter(name, "must be given once, not repeated")
    return values[0] if values[0].strip() else None


def namespace(params: Mapping[str, str] | None) -> str:
    return single(params, "namespace") or DEFAULT_NAMESPACE


def experiment_from_path(raw: str) -> str:
    """Path parameters arrive percent-encoded (API Gateway REST, chalice local, the test client)."""
    return unquote(raw)


def required(params: Mapping[str, str] | None, name: str) -> str:
    value = single(params, name)
    if value is None:
        raise bad_parameter(name, "is required")
    return value


def window(params: Mapping[str, str] | None) -> Window:
    """`from` and `to`: ISO dates (YYYY-MM-DD, UTC), both days included."""
    first, last = _day(params, "from"), _day(params, "to")
    if first is not None and last is not None and first > last:
        raise bad_parameter("to", f"must not be before from ({first.isoformat()})")
    return Window(first, last)


def _day(params: Mapping[str, str] | None, name: str) -> date | None:
    text = single(params, name)
    if text is None:
        return None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise bad_parameter(name, f"must be an ISO date like 2024-05-31 (got {text!r})") from None
    if not date.min < day < date.max:  # the window reaches a day either side
        raise bad_parameter(name, f"must be a date between 0001-01-02 and 9999-12-30 (got {text!r})")
    return day


# Beyond these, interval quantiles stop being representable (0.5 + level/2 rounds to 1.0).
MIN_CONFIDENCE = 0.01
MAX_CONFIDENCE = 0.999999


def confidence(params: Mapping[str, str] | None) -> float:
    text = single(params, "confidence")
    if text is None:
        from chalicelib.reports.views import DEFAULT_CONFIDENCE

        return DEFAULT_CONFIDENCE
    try:
        level = float(text)
    except ValueError:
        level = math.nan
    if not (math.isfinite(level) and MIN_CONFIDENCE <= level <= MAX_CONFIDENCE):
        raise bad_parameter("confidence", f"must be a number from {MIN_CONFIDENCE} to {MAX_CONFIDENCE}, "
                                         f"like 0.95 (got {text!r})")
    return level


def correction(params: Mapping[str, str] | None) -> Correction:
    """`correction=holm|bh|none`: how p-values are adjusted across the experiment's comparisons."""
    from chalicelib.reports.stats import CORRECTIONS
    from chalicelib.reports.views import DEFAULT_CORRECTION

    text = single(params, "correction")
    if text is None:
        return DEFAULT_CORRECTION
    for method in CORRECTIONS:
        if text.strip().lower() == method:
            return method
    raise bad_parameter("correction", f"must be one of {', '.join(CORRECTIONS)} (got {text!r})")


def weights(params: Mapping[str, str] | None) -> dict[str, float] | None:
    """`weights=red:50,blue:50`: the planned split for the sample-ratio check."""
    text = single(params, "weights")
    if text is None:
        return None
    parsed: dict[str, float] = {}
    for item in text.split(","):
        label, colon, number = item.rpartition(":")
        try:
            weight = float(number) if colon and label else math.nan
        except ValueError:
            weight = math.nan
        if not (math.isfinite(weight) and weight > 0):
            raise bad_parameter("weights", f"must be label:weight pairs with positive weights, like red:50,blue:50 "
                                          f"(got {item!r})")
        if label in parsed:
            raise bad_parameter("weights", f"names {label!r} twice")
        parsed[label] = weight
    return parsed
