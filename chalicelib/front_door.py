"""The cost-lean front door: the public ingest routes behind a Lambda function URL.

API Gateway's REST API costs $3.50 per million requests, and AlephBet sends one request
per event. A Lambda function URL costs nothing beyond the function's own invocation, so
the ingest routes (`/track`, `/track.gif`, and any route under `/v1/`) are also served
by a function of their own behind a function URL, with a reserved concurrency that bounds
what a flood can cost. The report routes and the dashboard stay on the REST API.

Function URLs send API Gateway's *payload format 2.0*, and Chalice routes only the 1.0
shape REST APIs send. `rest_event` turns one into the other (matching the path against
the app's own routes, so any route added later works unchanged) and `url_response` turns
Chalice's answer back: function URLs ignore `multiValueHeaders`, so repeated headers are
joined with commas, and `Set-Cookie` values go to the 2.0 `cookies` list.
Reference: https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

# Exact paths, and prefixes ending in "/": what the function URL serves; all else is 404.
SERVED_PATHS = ("/track", "/track.gif", "/v1/")
PREFLIGHT = "OPTIONS"


def is_served(path: str) -> bool:
    return any(path.startswith(served) if served.endswith("/") else path == served for served in SERVED_PATHS)


def match_route(routes: Mapping[str, Any], path: str) -> tuple[str, dict[str, str]] | None:
    """The app's route pattern that `path` matches, and its captured `{parameters}`.

    A literal segment beats a `{parameter}` in the same place, as in API Gateway.
    """
    if path in routes:                       # all literal: nothing can match more exactly
        return path, {}
    segments = path.strip("/").split("/")
    candidates = []
    for pattern in routes:
        parts = pattern.strip("/").split("/")
        if len(parts) != len(segments):
            continue
        captured: dict[str, str] = {}
        for part, segment in zip(parts, segments, strict=True):
            if part.startswith("{") and part.endswith("}") and segment:
                captured[part[1:-1]] = segment
            elif part != segment:
                break
        else:
            candidates.append((len(captured), pattern, captured))
    if not candidates:
        return None
    _, pattern, captured = min(candidates, key=lambda candidate: candidate[0])
    return pattern, captured


def _decoded(text: str) -> str:
    return unquote_plus(text) if "%" in text or "+" in text else text


def _query(raw_query: str) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    """Both query shapes of format 1.0, decoded as API Gateway decodes them (`+` is a space).

    The format 2.0 `queryStringParameters` joins repeated names with commas, which would
    make `a=1,2` and `a=1&a=2` alike, so the raw query string is parsed instead.
    """
    multi: dict[str, list[str]] = {}
    for pair in raw_query.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            multi.setdefault(_decoded(name), []).append(_decoded(value))
    if not multi:
        return None, None
    return {name: values[-1] for name, values in multi.items()}, multi


def rest_event(event: Mapping[str, Any], route: str, path_parameters: dict[str, str]) -> dict[str, Any]:
    """The REST API (format 1.0) event for a function URL (format 2.0) event routed to `route`."""
    context = event.get("requestContext") or {}
    http = context.get("http") or {}
    headers = dict(event.get("headers") or {})
    if event.get("cookies"):
        headers["cookie"] = "; ".join(event["cookies"])     # format 2.0 moves cookies out of the headers
    query, multi_query = _query(event.get("rawQueryString") or "")
    return {
        "resource": route,
        "path": event.get("rawPath") or "/",
        "httpMethod": http.get("method", "GET"),
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": route,
            "httpMethod": http.get("method", "GET"),
            "path": event.get("rawPath") or "/",
            "stage": None,                       # a function URL has no stage: the path is the route's own
            "requestId": context.get("requestId"),
            "domainName": context.get("domainName"),
            "identity": {"sourceIp": http.get("sourceIp"), "userAgent": http.get("userAgent")},
        },
        "body": event.get("body"),
        "isBase64Encoded": bool(event.get("isBase64Encoded")),
    }


def url_response(response: Mapping[str, Any]) -> dict[str, Any]:
    """A function URL (format 2.0) answer from Chalice's REST API (format 1.0) answer."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    combined: dict[str, list[str]] = {}
    for name, value in (response.get("headers") or {}).items():
        combined.setdefault(name, []).append(str(value))
    for name, values in (response.get("multiValueHeaders") or {}).items():
        combined.setdefault(name, []).extend(str(value) for value in values)
    for name, values in combined.items():
        if name.lower() == "set-cookie":
            cookies.extend(values)
        else:
            headers[name] = ", ".join(values)
    answer: dict[str, Any] = {
        "statusCode": response.get("statusCode", 200),
        "headers": headers,
        "body": response.get("body") or "",
        "isBase64Encoded": bool(response.get("isBase64Encoded")),
    }
    if cookies:
        answer["cookies"] = cookies
    return answer


def _plain(status: int, message: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json", "Cache-Control": "no-store",
                                              **(headers or {})},
            "body": json.dumps({"error": message}), "isBase64Encoded": False}


def handle(app: Any, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Answer a function URL request with the Chalice app's own routes."""
    path = event.get("rawPath") or "/"
    method = ((event.get("requestContext") or {}).get("http") or {}).get("method", "GET")
    matched = match_route(app.routes, path) if is_served(path) else None
    if matched is None:
        return _plain(404, f"no such route here: {path} (this URL serves only {', '.join(SERVED_PATHS)})")
    route, parameters = matched
    if method == PREFLIGHT and PREFLIGHT not in app.routes[route]:
        return _preflight(app.routes[route])
    return url_response(app(rest_event(event, route, parameters), context))


def _preflight(methods: Mapping[str, Any]) -> dict[str, Any]:
    """What API Gateway's generated OPTIONS method answers for a route with CORS.

    The function URL's own CORS configuration normally answers preflights before the
    function runs; this keeps the function correct without it.
    """
    cors = next((entry.cors for entry in methods.values() if getattr(entry, "cors", None)), None)
    if cors is None:
        return _plain(405, "OPTIONS is not allowed on this route", {"Allow": ", ".join(methods)})
    headers = {**cors.get_access_control_headers(),
               "Access-Control-Allow-Methods": ", ".join(sorted({*methods, PREFLIGHT}))}
    return {"statusCode": 200, "headers": headers, "body": "", "isBase64Encoded": False}
