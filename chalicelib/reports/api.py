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
from chalicelib.ingest.events import DEFAULT_NAMESPACE, PARTICIPATE, InvalidEvent, now, validate_name
from chalicelib.ingest.text_rules import normalized_name
from chalicelib.reports.analytics_queries import INTERVAL_PARTS, MAX_INTERVALS, SeriesWindow, series_window as span_of
from chalicelib.reports.dimensions import JSON_COLUMNS, Dimension, InvalidPath, parse_dimension, parse_json_path
from chalicelib.reports.queries import Window
from chalicelib.reports.segment_queries import EXPOSURE_EVENT, SOURCE as SEGMENT_SOURCE
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


def name(params: Mapping[str, str] | None, parameter: str) -> str | None:
    """A parameter that names an experiment, variant, event or namespace: in NFC, as ingestion keeps names."""
    text = single(params, parameter)
    return None if text is None else normalized_name(text)


def namespace(params: Mapping[str, str] | None) -> str:
    """`namespace`, by the rules /track names follow (a name /track would refuse is a 400, not a 404)."""
    chosen = name(params, "namespace") or DEFAULT_NAMESPACE
    try:
        return validate_name("namespace", chosen)
    except InvalidEvent as invalid:
        raise bad_parameter("namespace", invalid.errors[0].rule) from None


def experiment_from_path(raw: str) -> str:
    """Path parameters arrive percent-encoded (API Gateway REST, chalice local, the test client); names are NFC."""
    return normalized_name(unquote(raw))


def required_name(params: Mapping[str, str] | None, parameter: str) -> str:
    value = name(params, parameter)
    if value is None:
        raise bad_parameter(parameter, "is required")
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
    text = name(params, "weights")     # its labels are variant names
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


# ---- the results route's choice of source, goals, value and breakdown -------------------------

ALEPHBET = "alephbet"
SOURCES = (ALEPHBET, SEGMENT_SOURCE)
MAX_GOALS = 20
SEGMENT_ONLY = ("goals", "value")


def source(params: Mapping[str, str] | None) -> str:
    """`source=alephbet` (the default: AlephBet's participate/goal events) or `segment`."""
    chosen = single(params, "source") or ALEPHBET
    if chosen not in SOURCES:
        raise bad_parameter("source", f"must be {' or '.join(SOURCES)} (got {chosen!r})")
    if chosen == ALEPHBET:
        for name in SEGMENT_ONLY:
            if single(params, name) is not None:
                raise bad_parameter(name, f"applies only with source={SEGMENT_SOURCE}")
    return chosen


def goals(params: Mapping[str, str] | None) -> list[str] | None:
    """`goals=Signed Up,Order Completed`: track event names, at most MAX_GOALS, each named once."""
    text = name(params, "goals")
    if text is None:
        return None
    names = [goal.strip() for goal in text.split(",")]
    if len(names) > MAX_GOALS:
        raise bad_parameter("goals", f"must name at most {MAX_GOALS} events (got {len(names)})")
    for goal in names:
        try:
            validate_name("goals", goal)
        except InvalidEvent as invalid:
            raise bad_parameter("goals", f"{invalid.errors[0].rule} (got {goal!r})") from None
        if goal in (EXPOSURE_EVENT, PARTICIPATE):
            raise bad_parameter("goals", f"{goal!r} marks exposure, it cannot be a goal")
    duplicates = sorted({goal for goal in names if names.count(goal) > 1})
    if duplicates:
        raise bad_parameter("goals", f"names {', '.join(map(repr, duplicates))} more than once")
    return names


def value_property(params: Mapping[str, str] | None) -> Dimension | None:
    """`value=properties.revenue`: the goal events' numeric property, summed per user."""
    text = single(params, "value")
    if text is None:
        return None
    try:
        return parse_json_path(text, columns=("properties",))
    except InvalidPath as invalid:
        raise bad_parameter("value", str(invalid)) from None


def dimension(params: Mapping[str, str] | None, chosen_source: str) -> Dimension | None:
    """`dimension=properties.plan|context.page.path|browser` (AlephBet events: browser only)."""
    text = single(params, "dimension")
    if text is None:
        return None
    try:
        return parse_dimension(text, columns=JSON_COLUMNS if chosen_source == SEGMENT_SOURCE else ())
    except InvalidPath as invalid:
        raise bad_parameter("dimension", str(invalid)) from None


# ---- the event analytics routes -------------------------------------------------------------

def interval(params: Mapping[str, str] | None) -> str:
    chosen = single(params, "interval") or "day"
    if chosen not in INTERVAL_PARTS:
        raise bad_parameter("interval", f"must be {' or '.join(INTERVAL_PARTS)} (got {chosen!r})")
    return chosen


def event_name(params: Mapping[str, str] | None) -> str | None:
    """`event=Signed Up` (optional: every named event when absent)."""
    text = name(params, "event")
    if text is None:
        return None
    try:
        return validate_name("event", text)
    except InvalidEvent as invalid:
        raise bad_parameter("event", invalid.errors[0].rule) from None


def group_by(params: Mapping[str, str] | None) -> Dimension | None:
    """`group_by=properties.plan|context.page.path|browser`."""
    text = single(params, "group_by")
    if text is None:
        return None
    try:
        return parse_dimension(text)
    except InvalidPath as invalid:
        raise bad_parameter("group_by", str(invalid)) from None


def series_window(params: Mapping[str, str] | None, chosen_interval: str) -> SeriesWindow:
    """`from`/`to` as for every report, open ends filled with a default span, at most MAX_INTERVALS intervals."""
    span = span_of(window(params), chosen_interval, today=now().date())
    if span.count > MAX_INTERVALS:
        raise bad_parameter("from", f"the window holds {span.count} {chosen_interval}s; at most "
                                   f"{MAX_INTERVALS} fit in one answer (narrow from/to or use a longer interval)")
    return span
