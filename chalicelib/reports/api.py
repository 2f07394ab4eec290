"""The HTTP side of the report routes: the API key, the query parameters, the error answers.

Every report route is wrapped in `report_route(app)`: it checks `x-api-key` (401 missing,
403 wrong, 400 repeated with different values), runs the view, answers its return value as JSON (a GET's with the
warehouse's `freshness`), and answers errors by `error_answers.REPORT` (a bad parameter 400, an unknown
experiment 404, an unreachable warehouse 503). With `stored_as` (/results, /daily) a GET may instead be
answered from a stored computation younger than DALET_RESULTS_MAX_AGE_MINUTES (`stored_answers`; `refresh=true`
computes again).
"""
from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from chalice import Chalice, Response

from chalicelib import auth, error_answers, runtime
from chalicelib.ingest.events import DEFAULT_NAMESPACE, PARTICIPATE, InvalidEvent, now, validate_name
from chalicelib.ingest.text_rules import normalized_name
from chalicelib.reports.analytics_queries import INTERVAL_PARTS, MAX_INTERVALS, SeriesWindow
from chalicelib.reports.analytics_queries import series_window as span_of
from chalicelib.reports.defaults import DEFAULT_CONFIDENCE, DEFAULT_CORRECTION
from chalicelib.reports.dimensions import (
    BROWSER,
    JSON_COLUMNS,
    Dimension,
    InvalidPath,
    parse_dimension,
    parse_json_path,
)
from chalicelib.reports.errors import BadParameter, ConflictingHeader
from chalicelib.reports.freshness import with_freshness
from chalicelib.reports.queries import Window
from chalicelib.reports.segment_queries import EXPOSURE_EVENT
from chalicelib.reports.segment_queries import SOURCE as SEGMENT_SOURCE
from chalicelib.request import current_request
from chalicelib.responses import json_response

if TYPE_CHECKING:
    from chalicelib.reports.cuped_results import CupedSettings
    from chalicelib.reports.stats import Correction

View = Callable[..., Any]

# API Gateway hands the function the last of repeated headers and chalice local the first,
# so which key "wins" would differ between them: a request carrying differing keys is refused.
CONFLICTING_KEYS = f"{auth.API_KEY_HEADER}: given several times with different values; send it once"


def refuse_conflicting_api_keys(original_event: Mapping[str, Any]) -> None:
    """400 when the request's `x-api-key` headers differ (identical repeats, as proxies add, are fine)."""
    repeated = original_event.get("multiValueHeaders") or {}
    values = {value for name, values in repeated.items() if name.lower() == auth.API_KEY_HEADER
              for value in values or ()}
    if len(values) > 1:
        raise ConflictingHeader(auth.API_KEY_HEADER, CONFLICTING_KEYS)


def report_route(app: Chalice, stored_as: str | None = None) -> Callable[[View], Callable[..., Response]]:
    """`stored_as`: the route name its answers are stored under (chalicelib/reports/stored_answers.py),
    for a GET with an `{experiment}` path parameter; answered from storage while younger than
    DALET_RESULTS_MAX_AGE_MINUTES."""
    def decorate(view: View) -> Callable[..., Response]:
        @error_answers.answering(error_answers.REPORT, "report")
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Response:
            request = current_request(app)
            refuse_conflicting_api_keys(request.to_original_event())
            auth.check_api_key(request.headers, runtime.settings())
            if request.method != "GET":
                return json_response(view(*args, **kwargs))
            measured = runtime.freshness()          # before the query: as_of is then a promise

            def compute() -> Any:
                return with_freshness(view(*args, **kwargs), measured)

            if stored_as is None:
                return json_response(compute())
            return json_response(_stored(stored_as, request.query_params, kwargs["experiment"], compute))
        return guarded
    return decorate


def _stored(route: str, params: Mapping[str, str] | None, experiment: str, compute: Callable[[], Any]) -> Any:
    from chalicelib.reports import stored_answers

    settings = runtime.settings()
    key = stored_answers.answer_key(route, namespace(params), experiment_from_path(experiment), params,
                                    defaults={"cuped_by_default": settings.cuped_by_default})
    max_age = timedelta(minutes=settings.results_max_age_minutes)
    return stored_answers.answer(runtime.warehouse(), key, max_age, compute, refresh=refresh(params))


REFRESH_CHOICES = ("true", "false")


def refresh(params: Mapping[str, str] | None) -> bool:
    """`refresh=true|false` (default false): compute the answer again rather than answer a stored one."""
    text = single(params, "refresh")
    chosen = "false" if text is None else text.strip().lower()
    if chosen not in REFRESH_CHOICES:
        raise bad_parameter("refresh", f"must be true or false (got {text!r})")
    return chosen == "true"


def bad_parameter(name: str, message: str) -> Exception:
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
        return DEFAULT_CONFIDENCE
    try:
        level = float(text)
    except ValueError:
        level = math.nan
    if not (math.isfinite(level) and MIN_CONFIDENCE <= level <= MAX_CONFIDENCE):
        raise bad_parameter("confidence", f"must be a number from {MIN_CONFIDENCE} to {MAX_CONFIDENCE}, "
                                         f"like 0.95 (got {text!r})")
    return level


MIN_PLANNED_PARTICIPANTS = 2
MAX_PLANNED_PARTICIPANTS = 10**12


def planned_participants(params: Mapping[str, str] | None) -> int:
    """`planned_participants=60000`: the participants (all variants together) the experiment plans to reach;
    the sequential figures are tightest there. Default 5,000."""
    text = single(params, "planned_participants")
    if text is None:
        from chalicelib.reports.stats import SEQUENTIAL_TUNING_PARTICIPANTS

        return SEQUENTIAL_TUNING_PARTICIPANTS
    cleaned = text.strip().replace("_", "")
    if not (_is_ascii_whole_number(cleaned) and MIN_PLANNED_PARTICIPANTS <= int(cleaned) <= MAX_PLANNED_PARTICIPANTS):
        raise bad_parameter("planned_participants", f"must be a whole number of participants from "
                                                    f"{MIN_PLANNED_PARTICIPANTS} to {MAX_PLANNED_PARTICIPANTS:,}, "
                                                    f"like 60000 (got {text!r})")
    return int(cleaned)


def _is_ascii_whole_number(text: str) -> bool:
    """0-9 only: str.isdigit() also admits digits int() refuses, like "²"."""
    return text.isascii() and text.isdigit()


def cap(params: Mapping[str, str] | None) -> int | None:
    """`cap=p99` (p50..p100) winsorises each participant's value at that percentile of the goal's values,
    pooled across variants; `cap=none` (the default) leaves values as they are."""
    from chalicelib.reports.queries import CAP_PERCENTILES

    text = single(params, "cap")
    if text is None or text.strip().lower() == "none":
        return None
    cleaned = text.strip().lower()
    digits = cleaned[1:]
    if not (cleaned.startswith("p") and _is_ascii_whole_number(digits) and int(digits) in CAP_PERCENTILES):
        raise bad_parameter("cap", f"must be none or pNN with NN from {CAP_PERCENTILES.start} to "
                                   f"{CAP_PERCENTILES.stop - 1}, like p99 (got {text!r})")
    return int(digits)


def correction(params: Mapping[str, str] | None) -> Correction:
    """`correction=holm|bh|none`: how p-values are adjusted across the experiment's comparisons."""
    # The statistics load on the first report request, never on /track's cold start (app.py imports this module).
    from chalicelib.reports.stats import CORRECTIONS

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


# ---- CUPED (chalicelib/reports/cuped_results.py) ---------------------------------------------

CUPED_CHOICES = ("on", "off")


def cuped(params: Mapping[str, str] | None, on_by_default: bool = True) -> CupedSettings:
    """`cuped=on|off` (default: the deployment's DALET_CUPED_DEFAULT) and `pre_days=1..90` (default 14):
    the covariate's history window."""
    from chalicelib.reports.cuped_queries import DEFAULT_PRE_DAYS, MAX_PRE_DAYS
    from chalicelib.reports.cuped_results import CupedSettings

    asked = single(params, "cuped")
    chosen = asked.strip().lower() if asked is not None else ("on" if on_by_default else "off")
    if chosen not in CUPED_CHOICES:
        raise bad_parameter("cuped", f"must be on or off (got {asked!r})")
    enabled, by_default = chosen == "on", asked is None
    text = single(params, "pre_days")
    if text is None:
        return CupedSettings(enabled, DEFAULT_PRE_DAYS, by_default)
    days = int(text.strip()) if re.fullmatch(r"[0-9]{1,3}", text.strip()) else 0
    if not 1 <= days <= MAX_PRE_DAYS:
        raise bad_parameter("pre_days", f"must be a whole number of days from 1 to {MAX_PRE_DAYS} (got {text!r})")
    return CupedSettings(enabled, days, by_default)


# ---- the results route's choice of source, goals, value and breakdown -------------------------

ALEPHBET = "alephbet"
ALL_SOURCES = "all"
SOURCES = (ALEPHBET, SEGMENT_SOURCE)
MAX_GOALS = 20
SEGMENT_ONLY = ("goals", "value")


def source(params: Mapping[str, str] | None) -> str | None:
    """`source=alephbet|segment`; None when absent (the experiment's own is detected: `sources.detected`)."""
    chosen = single(params, "source")
    if chosen is not None and chosen not in SOURCES:
        raise bad_parameter("source", f"must be {' or '.join(SOURCES)} (got {chosen!r})")
    refusal = alephbet_refusal(params)
    if chosen == ALEPHBET and refusal is not None:
        raise refusal
    return chosen


def alephbet_refusal(params: Mapping[str, str] | None) -> BadParameter | None:
    """The 400 for parameters only Segment experiments take (`goals`, `value`, a JSON `dimension`), if any
    is given: raised once the experiment turns out to be AlephBet's (`sources.alephbet_reader`)."""
    for name in SEGMENT_ONLY:
        if single(params, name) is not None:
            return BadParameter(name, f"applies only to Segment experiments (source={SEGMENT_SOURCE})")
    text = single(params, "dimension")
    if text not in (None, BROWSER):
        return BadParameter("dimension", f"AlephBet experiments split by {BROWSER} only (got {text[:60]!r})")
    return None


LISTINGS = (ALEPHBET, SEGMENT_SOURCE, ALL_SOURCES)


def listing_source(params: Mapping[str, str] | None) -> str:
    """`GET /experiments`' `source=alephbet|segment|all` (default alephbet: Gimel's shape)."""
    chosen = single(params, "source") or ALEPHBET
    if chosen not in LISTINGS:
        raise bad_parameter("source", f"must be {', '.join(LISTINGS)} (got {chosen!r})")
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


def dimension(params: Mapping[str, str] | None, chosen_source: str | None) -> Dimension | None:
    """`dimension=properties.plan|context.page.path|browser` (AlephBet events: browser only, checked by
    `alephbet_dimension` once the source is known)."""
    text = single(params, "dimension")
    if text is None:
        return None
    try:
        return parse_dimension(text, columns=() if chosen_source == ALEPHBET else JSON_COLUMNS)
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


# ---- the planning route -----------------------------------------------------------------------

DEFAULT_POWER = 0.8
MAX_VARIANTS = 100


def _number(params: Mapping[str, str] | None, name: str, rule: str, valid: Callable[[float], bool],
            problems: dict[str, str], default: float | None = None) -> float | None:
    """A number passing `valid`, else `default` when absent; a bad one is recorded in `problems`."""
    try:
        text = single(params, name)
    except BadParameter as repeated:
        problems[name] = str(repeated).split(": ", 1)[1]
        return None
    if text is None:
        return default
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and valid(number)):
        problems[name] = f"must be {rule} (got {text!r})"
        return None
    return number


def plan_parameters(params: Mapping[str, str] | None) -> dict[str, Any]:
    """/plan's parameters: `baseline_rate` (or `baseline_mean` and `baseline_variance`), `effect`,
    `per_day`, `confidence`, `power`, `variants`, `planned_participants`. Every bad one is named at once."""
    problems: dict[str, str] = {}
    rate = _number(params, "baseline_rate", "a rate between 0 and 1 (exclusive), like 0.05",
                   lambda x: 0 < x < 1, problems)
    mean = _number(params, "baseline_mean", "a nonzero number, like 12.5", lambda x: x != 0, problems)
    variance = _number(params, "baseline_variance", "a positive number, like 400", lambda x: x > 0, problems)
    given = {name for name in ("baseline_rate", "baseline_mean", "baseline_variance")
             if single_or_none(params, name) is not None}
    if not given:
        problems["baseline_rate"] = "is required (or baseline_mean and baseline_variance)"
    elif "baseline_rate" in given and given - {"baseline_rate"}:
        problems["baseline_rate"] = "give either baseline_rate or baseline_mean and baseline_variance, not both"
    elif "baseline_rate" not in given:
        for name in ("baseline_mean", "baseline_variance"):
            if name not in given:
                problems[name] = "is required with " + ({"baseline_mean", "baseline_variance"} - {name}).pop()
    effect = _number(params, "effect", "a nonzero relative change above -1, like 0.1 for +10%",
                     lambda x: x != 0 and x > -1, problems)
    if single_or_none(params, "effect") is None:
        problems["effect"] = "is required: the smallest relative change worth detecting, like 0.1 for +10%"
    per_day = _number(params, "per_day", "a positive number of participants per day (all variants), like 2000",
                      lambda x: x > 0, problems)
    power = _number(params, "power", "a number between 0 and 1 (exclusive), like 0.8", lambda x: 0 < x < 1,
                    problems, DEFAULT_POWER)
    variants = _number(params, "variants", f"a whole number from 2 to {MAX_VARIANTS}, control included",
                       lambda x: x == int(x) and 2 <= x <= MAX_VARIANTS, problems, 2)
    planned = _number(params, "planned_participants", "a positive number of participants, like 50000",
                      lambda x: x >= 1, problems)
    try:
        level = confidence(params)
    except BadParameter as bad:
        problems["confidence"] = str(bad).split(": ", 1)[1]
        level = DEFAULT_CONFIDENCE
    if problems:
        raise bad_parameter(", ".join(problems), "; ".join(f"{name} {rule}" for name, rule in problems.items()))
    return {"baseline_rate": rate, "baseline_mean": mean, "baseline_variance": variance, "effect": effect,
            "per_day": per_day, "confidence": level, "power": power, "variants": int(variants or 2),
            "planned_participants": planned}


def single_or_none(params: Mapping[str, str] | None, name: str) -> str | None:
    """`single`, with a repeated parameter counted as given (its error is reported elsewhere)."""
    try:
        return single(params, name)
    except BadParameter:
        return "repeated"


# ---- the verdict's parameters (results) ------------------------------------------------------

VERDICT_MODES = ("sequential", "fixed")


def mode(params: Mapping[str, str] | None) -> str:
    """`mode=sequential|fixed`: which figures the decision reads (default sequential)."""
    chosen = (single(params, "mode") or VERDICT_MODES[0]).strip().lower()
    if chosen not in VERDICT_MODES:
        raise bad_parameter("mode", f"must be {' or '.join(VERDICT_MODES)} (got {single(params, 'mode')!r})")
    return chosen


def guardrails(params: Mapping[str, str] | None) -> list[str]:
    """`guardrails=Order Completed,Refund`: goal names, each once (checked against the goals by the verdict)."""
    text = single(params, "guardrails")
    if text is None:
        return []
    names = [name.strip() for name in text.split(",")]
    if len(names) > MAX_GOALS:     # checked first: the duplicate check below is quadratic
        raise bad_parameter("guardrails", f"must name at most {MAX_GOALS} goals (got {len(names)})")
    if any(not name for name in names):
        raise bad_parameter("guardrails", f"must be comma-separated goal names (got {text[:200]!r})")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise bad_parameter("guardrails", f"names {', '.join(map(repr, duplicates))} more than once")
    return names


# Below it a plan's squared difference of rates underflows to 0 (mde=1e-320 answered 500).
MIN_MDE = 1e-6


def minimum_detectable_effect(params: Mapping[str, str] | None) -> float | None:
    """`mde=0.1`: the smallest relative change the keep-running estimate plans for (default 10%)."""
    problems: dict[str, str] = {}
    effect = _number(params, "mde", f"a relative change from {MIN_MDE:g} to below 100, like 0.1 for 10%",
                     lambda x: MIN_MDE <= x < 100, problems)
    if problems:
        raise bad_parameter("mde", problems["mde"])
    return effect


def verdict_options(params: Mapping[str, str] | None) -> dict[str, Any]:
    """The verdict's parameters: `primary=`, `guardrails=`, `mode=`, `mde=`."""
    options: dict[str, Any] = {"primary": single(params, "primary"), "guardrails": guardrails(params),
                               "mode": mode(params)}
    effect = minimum_detectable_effect(params)
    if effect is not None:
        options["minimum_detectable_effect"] = effect
    return options


def uplift_options(params: Mapping[str, str] | None) -> dict[str, Any]:
    """/daily's uplift parameters: `primary=`, `mode=`, `confidence=`, `control=`."""
    return {"primary": single(params, "primary"), "mode": mode(params), "confidence": confidence(params),
            "control": single(params, "control")}
