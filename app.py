"""Dalet: the routes and the Kinesis writer. Each is a few lines calling chalicelib."""
from chalice import Chalice

from chalicelib import config, runtime, track, writer
from chalicelib.events import InvalidEvent
from chalicelib.responses import CORS, accepts_gif, error_response, json_response, pixel_response

app = Chalice(app_name="dalet")

TRACK_CONTENT_TYPES = ["application/json", "text/plain"]


def _track(events_from_request, answer=lambda stored: json_response({"ok": True, "accepted": len(stored)})):
    """Parse, hand to the stream, answer: 200 only once the stream has every event."""
    try:
        stored = track.accept(events_from_request(), runtime.publisher())
    except InvalidEvent as invalid:
        return error_response(400, "invalid event", errors=[e.to_json() for e in invalid.errors])
    except track.PayloadTooLarge as too_large:
        return error_response(413, str(too_large))
    except (runtime.PublishError, runtime.BackendUnavailable, config.ConfigError) as unavailable:
        app.log.error("track failed: %s", unavailable)
        return error_response(503, "the event stream is unavailable; retry later", reason=str(unavailable))
    return answer(stored)


@app.route("/track", methods=["GET"], cors=CORS)
def track_get():
    return _track(lambda: track.parse_query(app.current_request.query_params))


@app.route("/track", methods=["POST"], cors=CORS, content_types=TRACK_CONTENT_TYPES)
def track_post():
    return _track(lambda: track.parse_body(app.current_request.raw_body))


@app.route("/track.gif", methods=["GET"], cors=CORS)
def track_pixel():
    # Chalice sends a binary body only if Accept admits it; otherwise the event still counts.
    wants_gif = accepts_gif(app.current_request.headers.get("accept"))
    return _track(lambda: track.parse_query(app.current_request.query_params),
                  lambda stored: pixel_response() if wants_gif else json_response({"ok": True, "accepted": 1}))


@app.on_kinesis_record(
    stream=config.stream_name(),
    batch_size=500,
    starting_position="TRIM_HORIZON",
    maximum_batching_window_in_seconds=5,
)
def write_events(event):
    return writer.write_batch(writer.records_from_kinesis_event(event), runtime.warehouse())


runtime.register_stream_handler(write_events)
