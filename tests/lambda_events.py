"""Events as AWS Lambda delivers them, for calling the app the way Lambda does (tests and bench/)."""
from __future__ import annotations

from typing import Any


def api_gateway_event(method: str, path: str, resource_path: str, stage: str, headers: dict[str, str],
                      query: dict[str, str] | None = None, body: str | None = None) -> dict[str, Any]:
    """What API Gateway's REST proxy integration hands the Lambda function.

    `path` is the path the client asked for (with any stage or base-path prefix);
    `resource_path` is the route it matched.
    """
    return {
        "resource": resource_path,
        "path": resource_path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {name: [value] for name, value in query.items()} if query else None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {"resourcePath": resource_path, "httpMethod": method, "path": path, "stage": stage,
                           "requestId": "test", "identity": {"sourceIp": "203.0.113.9"}},
        "body": body,
        "isBase64Encoded": False,
    }


def function_url_event(method: str, path: str, headers: dict[str, str], query_string: str = "",
                       body: str | None = None, base64_encoded: bool = False,
                       cookies: list[str] | None = None) -> dict[str, Any]:
    """What a Lambda function URL hands the function: API Gateway's payload format 2.0.

    As documented (https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html#urls-payloads):
    header names lowercased, repeated query parameters comma-joined in queryStringParameters
    (rawQueryString keeps them apart), cookies moved out of the headers.
    """
    joined: dict[str, list[str]] = {}
    for pair in filter(None, query_string.split("&")):
        name, _, value = pair.partition("=")
        joined.setdefault(name, []).append(value)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query_string,
        "headers": {name.lower(): value for name, value in headers.items()},
        "requestContext": {
            "accountId": "anonymous", "apiId": "abcdefghij", "domainName": "abcdefghij.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefghij",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9",
                     "userAgent": headers.get("user-agent", "test")},
            "requestId": "test", "routeKey": "$default", "stage": "$default",
            "time": "30/Nov/2026:05:00:00 +0000", "timeEpoch": 1795928400000,
        },
        "isBase64Encoded": base64_encoded,
    }
    if joined:
        event["queryStringParameters"] = {name: ",".join(values) for name, values in joined.items()}
    if body is not None:
        event["body"] = body
    if cookies:
        event["cookies"] = cookies
    return event
