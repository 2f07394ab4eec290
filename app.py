"""Dalet: the routes and the Kinesis writer. Each is a few lines calling chalicelib."""
from collections.abc import Mapping

from chalice import Chalice
from chalice.app import Request

from chalicelib import config, error_answers, front_door, health, landing, runtime
from chalicelib.error_answers import answering
from chalicelib.ingest import segment, snippet, track, write_keys
from chalicelib.ingest.events import validate_name
from chalicelib.reports import api as report_api
from chalicelib.reports import dashboard
from chalicelib.reports.api import report_route
from chalicelib.request import body_bytes, current_request
from chalicelib.responses import (
    CORS,
    PIXEL_MEDIA_TYPES,
    SEGMENT_CORS,
    accepts_gif,
    json_response,
    pixel_response,
    text_response,
)
from chalicelib.storage import parking, writer

# Read (not acted on) at import: a misconfigured stage fails at start, naming the variable,
# in `chalice deploy`/`package` and in Lambda's cold start alike. Nothing is opened or started.
_settings = config.load_settings()

app = Chalice(app_name="dalet")
app.log.setLevel(_settings.log_level)
app.api.binary_types.extend(t for t in PIXEL_MEDIA_TYPES if t not in app.api.binary_types)


def _request() -> Request:
    return current_request(app)


def _accepted(stored):
    return json_response({"ok": True, "accepted": len(stored)})


def _track(events_from_request, answer=_accepted):
    """Parse, hand to the stream, answer: 200 only once the stream has every event."""
    stored = track.accept(events_from_request(), runtime.publisher(), _request().headers.get("user-agent"),
                          runtime.owned_namespaces())
    return answer(stored)


@app.route("/track", methods=["GET"], cors=CORS)
@answering(error_answers.TRACK, "track")
def track_get():
    return _track(lambda: track.parse_query(_request().query_params))


# Chalice would refuse other content types with a body of its own; the check is ours, for a clear 415.
@app.route("/track", methods=["POST"], cors=CORS, content_types=["*/*"])
@answering(error_answers.TRACK, "track")
def track_post():
    request = _request()
    return _track(lambda: track.parse_body(body_bytes(request), request.headers.get("content-type")))


@app.route("/track.gif", methods=["GET"], cors=CORS)
@answering(error_answers.TRACK, "track")
def track_pixel():
    # Chalice sends a binary body only if Accept admits it; otherwise the event still counts.
    wants_gif = accepts_gif(_request().headers.get("accept"))
    return _track(lambda: track.parse_query(_request().query_params),
                  lambda stored: pixel_response() if wants_gif else _accepted(stored))


# Segment's HTTP Tracking API: /v1/track, /page, /screen, /identify, /group, /alias, /batch,
# and analytics.js's one-letter names for them (/v1/t, /v1/p, ..., /v1/b).
@app.route("/v1/{call}", methods=["POST"], cors=SEGMENT_CORS, content_types=["*/*"])
@answering(error_answers.SEGMENT, "segment {call}")
def segment_call(call):
    request = _request()
    segment.refuse_differing_authorizations(request.to_original_event().get("multiValueHeaders"))
    segment.accept(segment.SegmentRequest(call, body_bytes(request), request.headers),
                   runtime.write_key_namespace, runtime.publisher().publish)
    return json_response({"success": True})


def _query():
    return _request().query_params


def _experiments():
    """The report modules are imported on the first request that needs them: a cold /track never loads them."""
    from chalicelib.reports import experiments

    return experiments


def _daily():
    from chalicelib.reports import daily

    return daily


def _deletion():
    from chalicelib.reports import deletion

    return deletion


def _overview():
    from chalicelib.reports import overview

    return overview


def _sources():
    from chalicelib.reports import sources

    return sources


def _segment_experiments():
    from chalicelib.reports import segment_experiments

    return segment_experiments


def _pickers():
    from chalicelib.reports import pickers

    return pickers


@app.route("/experiments", methods=["GET"], cors=CORS)
@report_route(app)
def experiments_all():
    query = _query()
    listing = report_api.listing_source(query)
    if listing == report_api.ALEPHBET:
        return _experiments().all_experiments(runtime.warehouse(), report_api.namespace(query),
                                              report_api.name(query, "scope"), report_api.window(query))
    sources = report_api.SOURCES if listing == report_api.ALL_SOURCES else (listing,)
    return _overview().overview(runtime.warehouse(), report_api.namespace(query), report_api.window(query), sources)


@app.route("/overview", methods=["GET"], cors=CORS)
@report_route(app)
def experiments_overview():
    """Every experiment of both sources, for the dashboard's list (not under /experiments/: no name collides)."""
    return _overview().overview(runtime.warehouse(), report_api.namespace(_query()), report_api.window(_query()))


@app.route("/experiments/{experiment}", methods=["GET"], cors=CORS)
@report_route(app)
def experiment_goals(experiment):
    return _experiments().experiment_goals(runtime.warehouse(), report_api.namespace(_query()),
                                           report_api.experiment_from_path(experiment), report_api.window(_query()))


@app.route("/experiments/{experiment}/results", methods=["GET"], cors=CORS)
@report_route(app, stored_as="results")
def experiment_results(experiment):
    query = _query()
    source = report_api.source(query)
    common = dict(control=report_api.name(query, "control"), confidence=report_api.confidence(query),
                  weights=report_api.weights(query), window=report_api.window(query),
                  correction=report_api.correction(query), dimension=report_api.dimension(query, source),
                  planned_participants=report_api.planned_participants(query), cap=report_api.cap(query),
                  cuped=report_api.cuped(query, runtime.settings().cuped_by_default))
    name, namespace = report_api.experiment_from_path(experiment), report_api.namespace(query)
    goals, value = report_api.goals(query), report_api.value_property(query)
    verdict_options = report_api.verdict_options(query)
    view = _sources().detected(source, {
        report_api.SEGMENT_SOURCE: lambda: _segment_results().experiment_results(
            runtime.warehouse(), namespace, name, goals=goals, value=value, **common),
        report_api.ALEPHBET: _sources().alephbet_reader(
            runtime.warehouse(), namespace, name, report_api.alephbet_refusal(query),
            lambda: _experiments().experiment_results(runtime.warehouse(), namespace, name, **common)),
    })
    return _verdict().with_verdict(runtime.warehouse(), view, window=common["window"], **verdict_options)


def _verdict():
    from chalicelib.reports import verdict

    return verdict


def _plans():
    from chalicelib.reports import plans

    return plans


@app.route("/plan", methods=["GET"], cors=CORS)
@report_route(app)
def experiment_plan():
    return _plans().plan_answer(**report_api.plan_parameters(_query()))


@app.route("/experiments/{experiment}/daily", methods=["GET"], cors=CORS)
@report_route(app, stored_as="daily")
def experiment_daily(experiment):
    query = _query()
    source, goals, window = report_api.source(query), report_api.goals(query), report_api.window(query)
    name, namespace = report_api.experiment_from_path(experiment), report_api.namespace(query)
    uplift_options = report_api.uplift_options(query)
    daily = _sources().detected(source, {
        report_api.SEGMENT_SOURCE: lambda: _segment_experiments().experiment_daily(
            runtime.warehouse(), namespace, name, goals=goals, window=window),
        report_api.ALEPHBET: _sources().alephbet_reader(
            runtime.warehouse(), namespace, name, report_api.alephbet_refusal(query),
            lambda: _daily().experiment_daily(runtime.warehouse(), namespace, name, window)),
    })
    return _daily_uplift().with_uplift(daily, **uplift_options)


def _daily_uplift():
    from chalicelib.reports import daily_uplift

    return daily_uplift


@app.route("/experiments/{experiment}/goals", methods=["GET"], cors=CORS)
@report_route(app)
def experiment_goal_picker(experiment):
    query = _query()
    source, window = report_api.source(query), report_api.window(query)
    name, namespace = report_api.experiment_from_path(experiment), report_api.namespace(query)
    return _sources().detected(source, {
        report_api.SEGMENT_SOURCE: lambda: _segment_experiments().goal_picker(runtime.warehouse(), namespace, name,
                                                                              window),
        report_api.ALEPHBET: lambda: _pickers().goal_picker(runtime.warehouse(), namespace, name, window),
    })


@app.route("/experiments/{experiment}/values", methods=["GET"], cors=CORS)
@report_route(app)
def experiment_value_picker(experiment):
    query = _query()
    source, goals, window = report_api.source(query), report_api.goals(query), report_api.window(query)
    name, namespace = report_api.experiment_from_path(experiment), report_api.namespace(query)
    return _sources().detected(source, {
        report_api.SEGMENT_SOURCE: lambda: _segment_experiments().value_picker(
            runtime.warehouse(), namespace, name, goals=goals, window=window),
        report_api.ALEPHBET: _sources().alephbet_reader(
            runtime.warehouse(), namespace, name, report_api.alephbet_refusal(query),
            lambda: _pickers().value_picker(runtime.warehouse(), namespace, name, window)),
    })


@app.route("/experiments/{experiment}", methods=["DELETE"], cors=CORS)
@report_route(app)
def experiment_delete(experiment):
    return _deletion().delete_experiment(runtime.warehouse(), report_api.namespace(_query()),
                                         report_api.experiment_from_path(experiment))


@app.route("/delete", methods=["DELETE"], cors=CORS)
@report_route(app)
def gimel_delete():
    """Gimel's deployed delete: DELETE /delete?namespace=&experiment=."""
    return _deletion().delete_experiment(runtime.warehouse(), report_api.namespace(_query()),
                                         report_api.required_name(_query(), "experiment"))


def _segment_results():
    from chalicelib.reports import segment_results

    return segment_results


def _analytics():
    from chalicelib.reports import analytics

    return analytics


@app.route("/events", methods=["GET"], cors=CORS)
@report_route(app)
def event_series():
    query = _query()
    interval = report_api.interval(query)
    return _analytics().event_series(runtime.warehouse(), report_api.namespace(query),
                                     report_api.series_window(query, interval), report_api.event_name(query),
                                     report_api.group_by(query))


@app.route("/events/names", methods=["GET"], cors=CORS)
@report_route(app)
def event_names():
    return _analytics().event_names(runtime.warehouse(), report_api.namespace(_query()), report_api.window(_query()))


@app.route("/dashboard", methods=["GET"])
def dashboard_page():
    return text_response(dashboard.page(), "text/html; charset=utf-8", dashboard.headers())


@app.route("/dashboard.js", methods=["GET"])
def dashboard_script():
    return text_response(dashboard.script(), dashboard.SCRIPT_MEDIA_TYPE, dashboard.script_headers())


@app.route("/health", methods=["GET"], cors=CORS)
def health_check():
    """No key, no internals: see chalicelib/health.py."""
    status, document = health.check()
    return json_response(document, status)


@app.route("/", methods=["GET"])
def front_page():
    return landing.to_dashboard(_request().context)


@app.route("/favicon.ico", methods=["GET"])
def favicon():
    return landing.no_favicon()


@app.route("/snippet", methods=["GET"], cors=CORS)
@answering(error_answers.SNIPPET, "snippet")
def snippet_for_namespace():
    request = _request()
    query: Mapping[str, str] = request.query_params or {}
    if snippet.chosen_kind(query.get("kind")) == "segment":
        pasted = _segment_snippet(query.get("namespace", write_keys.LOCAL_NAMESPACE), request)
    else:
        pasted = snippet.snippet_for_request(query.get("namespace"), request.headers, request.context,
                                             runtime.settings().track_url, runtime.owned_namespaces())
    if snippet.wants_json(request.headers.get("accept")):
        return json_response(pasted.to_json())
    return text_response(pasted.text)


def _segment_snippet(namespace, request):
    report_api.refuse_conflicting_api_keys(request.to_original_event())   # it may disclose a write key
    settings = runtime.settings()
    namespace = validate_name("namespace", namespace)
    return snippet.segment_snippet_for_request(namespace, request.headers, request.context, settings.track_url,
                                               write_keys.disclosed_write_key(namespace, request.headers, settings))


@app.lambda_function(name="track")
def track_front_door(event, context):
    """The ingest routes behind a Lambda function URL (payload format 2.0): see chalicelib/front_door.py."""
    return front_door.handle(app, event, context)


@app.on_kinesis_record(
    stream=config.stream_name(),
    batch_size=500,
    starting_position="TRIM_HORIZON",
    maximum_batching_window_in_seconds=config.writer_batching_window_seconds(),
)
def write_events(event):
    written = writer.write_batch(writer.records_from_kinesis_event(event), runtime.warehouse(),
                                 parking.parking_for(runtime.settings()))
    from chalicelib.storage import catalog_upkeep  # the writer's, kept off the /track path

    catalog_upkeep.compact_when_due(runtime.warehouse())
    return written


runtime.register_stream_handler(write_events)

