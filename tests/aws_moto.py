"""An offline AWS account (moto) for tests that make real boto3 calls.

    from tests.aws_moto import aws  # noqa: F401

    def test_something(aws):
        boto3.client("kinesis").create_stream(...)
"""
from __future__ import annotations

from typing import Iterator

import pytest
from moto import mock_aws

REGION = "us-east-1"
ACCOUNT = "123456789012"    # moto's account


@pytest.fixture
def aws(monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    with mock_aws():
        yield


def deploy_like_chalice(app_name: str = "dalet", stage: str = "prod", stream: str = "dalet-events",
                        tags: dict[str, str] | None = None, writer_parks: bool = True) -> str:
    """What `chalice deploy --stage prod` leaves in the account: the three functions (the API's named
    app-stage), the writer's plain Kinesis trigger, and the REST API with its `api` stage.
    The writer trigger's UUID. `tags` mark a CloudFormation deployment (aws:cloudformation:stack-name).
    `writer_parks`: the stage's config names the failure queue's URL (the line setup prints).
    """
    import io
    import json
    import zipfile

    import boto3

    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return {}\n")
    lambda_client = boto3.client("lambda")
    names = {"api_handler": f"{app_name}-{stage}", "track": f"{app_name}-{stage}-track",
             "write_events": f"{app_name}-{stage}-write_events"}
    for function, name in names.items():
        role = boto3.client("iam").create_role(RoleName=f"{app_name}-{stage}-{function}", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "lambda.amazonaws.com"}}]}))
        environment = {"DALET_FAILURE_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/"
                                                  f"{app_name}-{stage}-failed-batches"} \
            if function == "write_events" and writer_parks else {}
        lambda_client.create_function(FunctionName=name, Runtime="python3.11", Role=role["Role"]["Arn"],
                                      Handler="app.handler", Code={"ZipFile": code.getvalue()}, Tags=tags or {},
                                      Environment={"Variables": environment})
    # chalice deploy applies .chalice/config.json's reserved_concurrency
    lambda_client.put_function_concurrency(FunctionName=names["track"], ReservedConcurrentExecutions=25)
    apigateway = boto3.client("apigateway")
    api_id = apigateway.create_rest_api(name=app_name)["id"]
    root = apigateway.get_resources(restApiId=api_id)["items"][0]["id"]
    apigateway.put_method(restApiId=api_id, resourceId=root, httpMethod="GET", authorizationType="NONE")
    apigateway.put_integration(restApiId=api_id, resourceId=root, httpMethod="GET", type="MOCK")
    apigateway.create_deployment(restApiId=api_id, stageName="api")
    stream_arn = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{stream}"
    return lambda_client.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=names["write_events"],
                                                     BatchSize=500, StartingPosition="TRIM_HORIZON")["UUID"]


@pytest.fixture
def front_door_probe(monkeypatch, tmp_path) -> None:
    """preflight's HTTP probe of the function URL answered by the real handler (app.track_front_door,
    local backend in a temporary data folder), as the URL would: moto's URLs lead nowhere."""
    from urllib.parse import urlsplit

    from chalicelib import runtime
    from dalet_ops import preflight
    from tests.lambda_events import function_url_event

    monkeypatch.setenv("DALET_DATA_DIR", str(tmp_path / "front-door-data"))

    def answer(url: str, timeout: float) -> tuple[int, bytes]:
        import app

        parts = urlsplit(url)
        reply = app.track_front_door(function_url_event("GET", parts.path, {"accept": "application/json"},
                                                        parts.query), None)
        return reply["statusCode"], reply["body"].encode()

    monkeypatch.setattr(preflight, "http_get", answer)
    yield
    runtime.shutdown()
