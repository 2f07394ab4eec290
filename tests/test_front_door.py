"""The ingest routes behind a Lambda function URL: payload format 2.0 through the real handler.

Each test builds the documented function URL event and calls `app.track_front_door`, the
function the URL invokes, on the local backend, then looks at what was stored.
"""
from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from chalicelib import front_door
from chalicelib.responses import PIXEL_GIF
from tests.helpers import report_client, wait_for_rows  # noqa: F401
from tests.lambda_events import function_url_event

BROWSER_IMAGE_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"


@pytest.fixture
def handler(client):
    """app.track_front_door on the local backend (the `client` fixture gives a fresh data folder)."""
    import app

    return app.track_front_door


def call(handler: Any, event: dict[str, Any]) -> dict[str, Any]:
    answer = handler(event, None)
    assert "multiValueHeaders" not in answer         # function URLs ignore it
    assert all(isinstance(value, str) for value in answer["headers"].values())
    return answer


def stored(query: str = "SELECT namespace, experiment, variant, event, uuid FROM events ORDER BY uuid"):
    from chalicelib import runtime

    return runtime.warehouse().fetch(query)


def test_a_get_with_a_query_string_is_tracked_as_alephbet_sends_it(handler):
    query = "namespace=alephbet&experiment=my+a%2Fb+test&variant=red&event=participate&uuid=u1&_=1&_=2"

    answer = call(handler, function_url_event("GET", "/track", {"accept": "*/*"}, query))

    assert answer["statusCode"] == 200 and json.loads(answer["body"]) == {"ok": True, "accepted": 1}
    assert answer["headers"]["Access-Control-Allow-Origin"] == "*"
    wait_for_rows(1)
    assert stored() == [{"namespace": "alephbet", "experiment": "my a/b test", "variant": "red",
                         "event": "participate", "uuid": "u1"}]


def test_a_json_post_is_tracked(handler):
    body = json.dumps([{"experiment": "checkout", "variant": "red", "event": "purchase", "uuid": "u1", "value": 19.99},
                       {"experiment": "checkout", "variant": "red", "event": "participate", "uuid": "u2"}])

    answer = call(handler, function_url_event("POST", "/track", {"content-type": "application/json"}, body=body))

    assert answer["statusCode"] == 200 and json.loads(answer["body"])["accepted"] == 2
    wait_for_rows(2)
    assert [row["uuid"] for row in stored()] == ["u1", "u2"]


def test_a_base64_body_is_decoded_as_a_sendbeacon_post(handler):
    body = json.dumps({"experiment": "checkout", "variant": "blue", "event": "participate", "uuid": "beacon"})
    event = function_url_event("POST", "/track", {"content-type": "text/plain;charset=UTF-8"},
                               body=base64.b64encode(body.encode()).decode(), base64_encoded=True)

    answer = call(handler, event)

    assert answer["statusCode"] == 200, answer
    wait_for_rows(1)
    assert stored()[0]["uuid"] == "beacon"


def test_the_pixel_answers_the_gif_base64_encoded_when_accept_names_an_image(handler):
    query = "experiment=checkout&variant=red&event=participate&uuid=pixel"

    answer = call(handler, function_url_event("GET", "/track.gif", {"accept": BROWSER_IMAGE_ACCEPT}, query))

    assert answer["statusCode"] == 200 and answer["headers"]["Content-Type"] == "image/gif"
    assert answer["isBase64Encoded"] is True and base64.b64decode(answer["body"]) == PIXEL_GIF
    wait_for_rows(1)


def test_the_pixel_answers_json_when_accept_names_no_image(handler):
    answer = call(handler, function_url_event("GET", "/track.gif", {"accept": "application/json"},
                                              "experiment=e&variant=a&event=participate&uuid=u"))

    assert answer["statusCode"] == 200 and answer["isBase64Encoded"] is False
    assert json.loads(answer["body"]) == {"ok": True, "accepted": 1}


def test_a_cors_preflight_is_answered_with_the_routes_cors_headers(handler):
    event = function_url_event("OPTIONS", "/track", {"origin": "https://shop.example",
                                                     "access-control-request-method": "POST",
                                                     "access-control-request-headers": "content-type"})

    answer = call(handler, event)

    assert answer["statusCode"] == 200
    assert answer["headers"]["Access-Control-Allow-Origin"] == "*"
    assert "POST" in answer["headers"]["Access-Control-Allow-Methods"]
    assert "Content-Type" in answer["headers"]["Access-Control-Allow-Headers"]


def test_a_bad_event_gets_the_same_400_naming_the_field(handler):
    answer = call(handler, function_url_event("GET", "/track", {}, "experiment=e&variant=a&event=participate"))

    assert answer["statusCode"] == 400
    assert {"field": "uuid", "rule": "is required"}.items() <= json.loads(answer["body"])["errors"][0].items()


@pytest.mark.parametrize("path", ["/experiments", "/dashboard", "/dashboard.js", "/snippet", "/delete", "/", "/track/extra"])
def test_the_url_serves_only_the_ingest_routes(handler, path):
    answer = call(handler, function_url_event("GET", path, {"x-api-key": "anything"}, "namespace=alephbet"))

    assert answer["statusCode"] == 404
    assert "/track" in json.loads(answer["body"])["error"]


def test_any_route_under_v1_is_served_with_its_path_parameters():
    """Routes added later (the Segment /v1/* routes) need nothing more than their @app.route."""
    from chalice import Chalice

    app = Chalice(app_name="probe")

    @app.route("/v1/{kind}", methods=["POST"], content_types=["application/json"])
    def segment(kind):
        return {"kind": kind, "body": app.current_request.json_body, "cookie": app.current_request.headers["cookie"]}

    event = function_url_event("POST", "/v1/batch", {"content-type": "application/json"}, body='{"a": 1}',
                               cookies=["a=1", "b=2"])

    answer = front_door.handle(app, event, None)

    assert answer["statusCode"] == 200
    assert json.loads(answer["body"]) == {"kind": "batch", "body": {"a": 1}, "cookie": "a=1; b=2"}


def test_repeated_response_headers_are_joined_and_cookies_listed():
    answer = front_door.url_response({"statusCode": 201, "body": "x", "headers": {"X-One": "1"},
                                      "multiValueHeaders": {"Vary": ["Origin", "Accept"],
                                                            "Set-Cookie": ["a=1; Path=/", "b=2; Path=/"]}})

    assert answer == {"statusCode": 201, "body": "x", "isBase64Encoded": False,
                      "headers": {"X-One": "1", "Vary": "Origin, Accept"}, "cookies": ["a=1; Path=/", "b=2; Path=/"]}


def test_the_snippet_on_the_rest_api_points_alephbet_at_the_front_door(monkeypatch, data_dir):
    from chalicelib import runtime
    from tests.lambda_events import api_gateway_event

    front_door_track = "https://abcdefghij.lambda-url.us-east-1.on.aws/track"
    monkeypatch.setenv("DALET_TRACK_URL", front_door_track)
    runtime.shutdown()
    import app

    answer = app.app(api_gateway_event("GET", "/api/snippet", "/snippet", "api",
                                       {"Host": "abc123.execute-api.us-east-1.amazonaws.com",
                                        "X-Forwarded-Proto": "https", "Accept": "application/json"}), None)

    assert json.loads(answer["body"])["track_url"] == front_door_track
    assert f'new AlephBet.GimelAdapter("{front_door_track}", "alephbet")' in json.loads(answer["body"])["snippet"]
