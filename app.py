"""Dalet: the routes and the Kinesis writer. Each is a few lines calling chalicelib."""
from chalice import Chalice

from chalicelib import config, front_door, runtime
from chalicelib.reports import api as report_api, dashboard
from chalicelib.ingest import segment, snippet, track
from chalicelib.storage import parking, writer
from chalicelib.ingest.events import InvalidEvent
from chalicelib.reports.api import report_route
from chalicelib.responses import (CORS, PIXEL_MEDIA_TYPES, SEGMENT_CORS, accepts_gif, error_response, json_response,
                                  pixel_response, segment_error, text_response, unavailable_reason,
                                  unavailable_response)

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
    try:
        stored = track.accept(events_from_request(), runtime.publisher(), app.current_request.headers.get("user-agent"),
                              runtime.owned_namespaces())
    except InvalidEvent as invalid:
        return error_response(400, "invalid event", errors=[e.to_json() for e in invalid.errors])
    except track.NamespaceOwned as owned:
        return error_response(403, str(owned), errors=[{"field": "namespace", "rule": "belongs to a write key"}],
                              namespace=owned.namespace)
    except track.PayloadTooLarge as too_large:
        return error_response(413, str(too_large))
    except track.UnsupportedMediaType as unsupported:
        return error_response(415, str(unsupported))
    except (runtime.PublishError, runtime.BackendUnavailable, config.ConfigError) as unavailable:
        return unavailable_response(unavailable, "track")
    return answer(stored)


@app.route("/track", methods=["GET"], cors=CORS)
def track_get():
    return _track(lambda: track.parse_query(app.current_request.query_params))


# Chalice would refuse other content types with a body of its own; the check is ours, for a clear 415.
@app.route("/track", methods=["POST"], cors=CORS, content_types=["*/*"])
def track_post():
    request = app.current_request
    return _track(lambda: track.parse_body(request.raw_body, request.headers.get("content-type")))


@app.route("/track.gif", methods=["GET"], cors=CORS)
def track_pixel():
    # Chalice sends a binary body only if Accept admits it; otherwise the event still counts.
    wants_gif = accepts_gif(app.current_request.headers.get("accept"))
    return _track(lambda: track.parse_query(app.current_request.query_params),
                  lambda stored: pixel_response() if wants_gif else _accepted(stored))


# Segment's HTTP Tracking API: /v1/track, /page, /screen, /identify, /group, /alias, /batch,
# and analytics.js's one-letter names for them (/v1/t, /v1/p, ..., /v1/b).
@app.route("/v1/{call}", methods=["POST"], cors=SEGMENT_CORS, content_types=["*/*"])
def segment_call(call):
    request = app.current_request
    try:
        segment.accept(segment.SegmentRequest(call, request.raw_body, request.headers),
                       runtime.write_key_namespace, runtime.publisher().publish)
    except segment.UnknownCall as unknown:
        return segment_error(404, str(unknown), "not_found")
    except segment.Unauthorized as unauthorized:
        return segment_error(401, str(unauthorized), "unauthorized")
    except segment.RequestTooLarge as too_large:
        return segment_error(400, str(too_large), "too_large")
    except InvalidEvent as invalid:
        return segment_error(400, f"invalid message: {invalid}"[:1000], "invalid_request",
                             errors=[e.to_json() for e in invalid.errors])
    except segment.UnsupportedMediaType as unsupported:
        return segment_error(415, str(unsupported), "unsupported_media_type")
    except (runtime.PublishError, runtime.BackendUnavailable, config.ConfigError) as unavailable:
        return segment_error(503, "the event stream is unavailable; retry later", "unavailable",
                             reason=unavailable_reason(unavailable, f"segment {call}"))
    return json_response({"success": True})


def _query():
    return app.current_request.query_params


def _reports():
    """The report views, imported on the first report request: a cold /track never loads them."""
    from chalicelib.reports import views

    return views


@app.route("/experiments", methods=["GET"], cors=CORS)
@report_route(app)
def experiments_all():
    return _reports().all_experiments(runtime.warehouse(), report_api.namespace(_query()),
                                   report_api.name(_query(), "scope"), report_api.window(_query()))


@app.route("/experiments/{experiment}", methods=["GET"], cors=CORS)
@report_route(app)
def experiment_goals(experiment):
    return _reports().experiment_goals(runtime.warehouse(), report_api.namespace(_query()),
                                    report_api.experiment_from_path(experiment), report_api.window(_query()))


@app.route("/experiments/{experiment}/results", methods=["GET"], cors=CORS)
@report_route(app)
def experiment_results(experiment):
    query = _query()
    source = report_api.source(query)
    common = dict(control=report_api.name(query, "control"), confidence=report_api.confidence(query),
                  weights=report_api.weights(query), window=report_api.window(query),
                  correction=report_api.correction(query), dimension=report_api.dimension(query, source))
    name, namespace = report_api.experiment_from_path(experiment), report_api.namespace(query)
    if source == report_api.SEGMENT_SOURCE:
        return _segment_results().experiment_results(runtime.warehouse(), namespace, name,
                                                     goals=report_api.goals(query),
                                                     value=report_api.value_property(query), **common)
    return _reports().experiment_results(runtime.warehouse(), namespace, name, **common)


@app.route("/experiments/{experiment}/daily", methods=["GET"], cors=CORS)
@report_route(app)
def experiment_daily(experiment):
    return _reports().experiment_daily(runtime.warehouse(), report_api.namespace(_query()),
                                    report_api.experiment_from_path(experiment), report_api.window(_query()))


@app.route("/experiments/{experiment}", methods=["DELETE"], cors=CORS)
@report_route(app)
def experiment_delete(experiment):
    return _reports().delete_experiment(runtime.warehouse(), report_api.namespace(_query()),
                                     report_api.experiment_from_path(experiment))


@app.route("/delete", methods=["DELETE"], cors=CORS)
@report_route(app)
def gimel_delete():
    """Gimel's deployed delete: DELETE /delete?namespace=&experiment=."""
    return _reports().delete_experiment(runtime.warehouse(), report_api.namespace(_query()),
                                     report_api.required_name(_query(), "experiment"))


def _segment_results():
    """Imported on the first request that needs it, like every report module: a cold /track never loads them."""
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


@app.route("/snippet", methods=["GET"], cors=CORS)
def snippet_for_namespace():
    request = app.current_request
    try:
        pasted = snippet.snippet_for_request((request.query_params or {}).get("namespace"), request.headers,
                                             request.context, runtime.settings().track_url, runtime.owned_namespaces())
    except InvalidEvent as invalid:
        return error_response(400, "invalid namespace", errors=[e.to_json() for e in invalid.errors])
    except track.NamespaceOwned as owned:
        return error_response(403, str(owned), errors=[{"field": "namespace", "rule": "belongs to a write key"}],
                              namespace=owned.namespace)
    except snippet.InvalidRequest as bad_header:
        return error_response(400, str(bad_header), header=bad_header.header)
    if snippet.wants_json(request.headers.get("accept")):
        return json_response(pasted.to_json())
    return text_response(pasted.text)


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
    return writer.write_batch(writer.records_from_kinesis_event(event), runtime.warehouse(),
                              parking.parking_for(runtime.settings()))


runtime.register_stream_handler(write_events)
