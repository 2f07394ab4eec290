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
