"""Dalet: the routes and the Kinesis writer. Each is a few lines calling chalicelib."""
from chalice import Chalice

from chalicelib import config, error_answers, front_door, health, landing, runtime
from chalicelib.reports import api as report_api, dashboard
from chalicelib.ingest import segment, snippet, track, write_keys
from chalicelib.storage import parking, writer
from chalicelib.error_answers import answering
from chalicelib.ingest.events import validate_name
from chalicelib.reports.api import report_route
from chalicelib.responses import (CORS, PIXEL_MEDIA_TYPES, SEGMENT_CORS, accepts_gif, json_response, pixel_response,
                                  text_response)

# Read (not acted on) at import: a misconfigured stage fails at start, naming the variable,
# in `chalice deploy`/`package` and in Lambda's cold start alike. Nothing is opened or started.
_settings = config.load_settings()

app = Chalice(app_name="dalet")
app.log.setLevel(_settings.log_level)
app.api.binary_types.extend(t for t in PIXEL_MEDIA_TYPES if t not in app.api.binary_types)


def _accepted(stored):
    return json_response({"ok": True, "accepted": len(stored)})


def _track(events_from_request, answer=_accepted):
    """Parse, hand to the stream, answer: 200 only once the stream has every event."""
    stored = track.accept(events_from_request(), runtime.publisher(), app.current_request.headers.get("user-agent"))
    return answer(stored)


@app.route("/track", methods=["GET"], cors=CORS)
@answering(error_answers.TRACK, "track")
def track_get():
    return _track(lambda: track.parse_query(app.current_request.query_params))


# Chalice would refuse other content types with a body of its own; the check is ours, for a clear 415.
@app.route("/track", methods=["POST"], cors=CORS, content_types=["*/*"])
@answering(error_answers.TRACK, "track")
def track_post():
    request = app.current_request
    return _track(lambda: track.parse_body(request.raw_body, request.headers.get("content-type")))


@app.route("/track.gif", methods=["GET"], cors=CORS)
@answering(error_answers.TRACK, "track")
def track_pixel():
    # Chalice sends a binary body only if Accept admits it; otherwise the event still counts.
    wants_gif = accepts_gif(app.current_request.headers.get("accept"))
    return _track(lambda: track.parse_query(app.current_request.query_params),
                  lambda stored: pixel_response() if wants_gif else _accepted(stored))


# Segment's HTTP Tracking API: /v1/track, /page, /screen, /identify, /group, /alias, /batch,
# and analytics.js's one-letter names for them (/v1/t, /v1/p, ..., /v1/b).
@app.route("/v1/{call}", methods=["POST"], cors=SEGMENT_CORS, content_types=["*/*"])
@answering(error_answers.SEGMENT, "segment {call}")
def segment_call(call):
    request = app.current_request
    segment.refuse_differing_authorizations(request.to_original_event().get("multiValueHeaders"))
    segment.accept(segment.SegmentRequest(call, request.raw_body, request.headers),
                   runtime.write_key_namespace, runtime.publisher().publish)
    return json_response({"success": True})


def _query():
    return app.current_request.query_params


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


@app.route("/experiments", methods=["GET"], cors=CORS)
@report_route(app)
def experiments_all():
    return _experiments().all_experiments(runtime.warehouse(), report_api.namespace(_query()),
                                          report_api.single(_query(), "scope"), report_api.window(_query()))


@app.route("/experiments/{experiment}", methods=["GET"], cors=CORS)
@report_route(app)
def experiment_goals(experiment):
    return _experiments().experiment_goals(runtime.warehouse(), report_api.namespace(_query()),
                                           report_api.experiment_from_path(experiment), report_api.window(_query()))


@app.route("/experiments/{experiment}/results", methods=["GET"], cors=CORS)
@report_route(app)
def experiment_results(experiment):
    query = _query()
    source = report_api.source(query)
    common = dict(control=report_api.single(query, "control"), confidence=report_api.confidence(query),
                  weights=report_api.weights(query), window=report_api.window(query),
                  correction=report_api.correction(query), dimension=report_api.dimension(query, source))
    name, namespace = report_api.experiment_from_path(experiment), report_api.namespace(query)
    if source == report_api.SEGMENT_SOURCE:
        return _segment_results().experiment_results(runtime.warehouse(), namespace, name,
                                                     goals=report_api.goals(query),
                                                     value=report_api.value_property(query), **common)
    return _experiments().experiment_results(runtime.warehouse(), namespace, name, **common)


@app.route("/experiments/{experiment}/daily", methods=["GET"], cors=CORS)
@report_route(app)
def experiment_daily(experiment):
    return _daily().experiment_daily(runtime.warehouse(), report_api.namespace(_query()),
                                     report_api.experiment_from_path(experiment), report_api.window(_query()))


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
                                         report_api.required(_query(), "experiment"))


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
    return landing.to_dashboard(app.current_request.context)


@app.route("/favicon.ico", methods=["GET"])
def favicon():
    return landing.no_favicon()


@app.route("/snippet", methods=["GET"], cors=CORS)
@answering(error_answers.SNIPPET, "snippet")
def snippet_for_namespace():
    request, query = app.current_request, app.current_request.query_params or {}
    if snippet.chosen_kind(query.get("kind")) == "segment":
        pasted = _segment_snippet(query.get("namespace", write_keys.LOCAL_NAMESPACE), request)
    else:
        pasted = snippet.snippet_for_request(query.get("namespace"), request.headers, request.context,
                                             runtime.settings().track_url)
    if snippet.wants_json(request.headers.get("accept")):
        return json_response(pasted.to_json())
    return text_response(pasted.text)


def _segment_snippet(namespace, request):
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
    from chalicelib.storage import catalog_upkeep     # the writer's, kept off the /track path

    catalog_upkeep.compact_when_due(runtime.warehouse())
    return written


runtime.register_stream_handler(write_events)

