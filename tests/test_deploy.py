"""What `chalice package --stage prod --merge-template ...` produces is deployable, small and least-privilege.

One `chalice package` run per test session (it downloads the Lambda requirements from
PyPI), on a copy of the project. The SAM template is also translated to plain
CloudFormation with the AWS SAM translator, so the assertions see the resources
CloudFormation would create.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator
from unittest import mock

import pytest

from chalicelib import config, runtime
from chalicelib.ingest.events import Event, stamp
from chalicelib.ingest.records import decode_record, encode_record
from chalicelib.storage.writer import copy_id
from dalet_ops.stage import PROJECT_DIR, load_stage
from tests.bigquery_standin import bigquery_standin  # noqa: F401
from tests.cold_start import NOT_ON_THE_TRACK_PATH, first_track_request, lambda_environment, moto_kinesis, run_cold
from tests.lambda_package import PROJECT_EXTRAS, build_package, unzip

STREAM_REF = {"Fn::Sub": "${EventStream.Arn}"}
QUEUE_REF = {"Fn::Sub": "${FailedBatchQueue.Arn}"}
SECRET_REF = {"Fn::Sub": "${ReportApiKeySecret}"}
# Lambda's limits for a .zip deployment package.
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
NOT_FOR_LAMBDA = {"dalet_ops", "duckdb", "pytest", "_pytest", "moto", "pyarrow", "sqlglot", "scipy", "statsmodels",
                  "hypothesis", "playwright", "pytest_httpserver", "cfnlint", "samtranslator"}


@dataclass(frozen=True)
class Package:
    template: dict[str, Any]          # as chalice package wrote it (SAM)
    cloudformation: dict[str, Any]    # after the SAM transform
    zip_path: Path


def _sam_to_cloudformation(template: dict[str, Any]) -> dict[str, Any]:
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    copy = json.loads(json.dumps(template))
    for resource in copy["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/deployment.zip"   # what `aws cloudformation package` does
    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": "us-east-1"}):
        return transform(copy, {}, NoManagedPolicies())


@pytest.fixture(scope="session")
def package(tmp_path_factory) -> Package:
    """`chalice package` run on a copy of the whole checkout: tooling, tests and benchmarks included."""
    out = build_package(tmp_path_factory.mktemp("chalice-package"))
    template = json.loads((out / "sam.json").read_text())
    return Package(template, _sam_to_cloudformation(template), out / "deployment.zip")


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: resource for name, resource in template["Resources"].items() if resource["Type"] == kind}


def lint(template: dict[str, Any]) -> list[str]:
    import cfnlint.api

    return [str(match) for match in cfnlint.api.lint(json.dumps(template), regions=["us-east-1"])]


# ---- the template ------------------------------------------------------------------


def test_the_packaged_template_passes_cfn_lint(package):
    assert lint(package.template) == []
    assert lint(package.cloudformation) == []


def test_the_stream_is_one_provisioned_shard_by_default_and_can_be_on_demand(package):
    stream = package.template["Resources"]["EventStream"]
    parameters = package.template["Parameters"]

    assert stream["Type"] == "AWS::Kinesis::Stream"
    assert stream["Properties"]["Name"] == load_stage("prod").settings.stream_name
    assert stream["Properties"]["StreamModeDetails"] == {"StreamMode": {"Ref": "StreamMode"}}
    assert (parameters["StreamMode"]["Default"], parameters["ShardCount"]["Default"]) == ("PROVISIONED", 1)
    assert "ON_DEMAND" in parameters["StreamMode"]["AllowedValues"]
    assert stream["Properties"]["ShardCount"] == {
        "Fn::If": ["ProvisionedStream", {"Ref": "ShardCount"}, {"Ref": "AWS::NoValue"}]}


def test_the_writer_trigger_reports_partial_failures_bisects_and_parks_failing_batches_in_sqs(package):
    mappings = resources_of_type(package.cloudformation, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 1
    (mapping,) = mappings.values()
    settings = mapping["Properties"]

    assert settings["EventSourceArn"] == STREAM_REF
    assert settings["FunctionName"] == {"Ref": "WriteEvents"}
    assert settings["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert settings["BisectBatchOnFunctionError"] is True
    # retried until 6 h old, not a count of times: the writer parks the records at 1 h (DALET_PARK_AFTER_SECONDS)
    assert settings["MaximumRetryAttempts"] == -1
    assert settings["MaximumRecordAgeInSeconds"] > config.MAX_PARK_AFTER_SECONDS
    assert 60 <= settings["MaximumRecordAgeInSeconds"] <= 7 * 24 * 3600
    assert (settings["StartingPosition"], settings["BatchSize"]) == ("TRIM_HORIZON", 500)
    assert settings["MaximumBatchingWindowInSeconds"] == 30     # the default of DALET_WRITER_BATCHING_WINDOW_SECONDS
    destination = settings["DestinationConfig"]["OnFailure"]["Destination"]
    assert destination == {"Fn::GetAtt": ["FailedBatchQueue", "Arn"]}
    assert package.cloudformation["Resources"]["FailedBatchQueue"]["Type"] == "AWS::SQS::Queue"


def test_the_stream_keeps_a_parked_batch_at_least_18_hours_after_the_trigger_parks_it(package):
    (mapping,) = resources_of_type(package.cloudformation, "AWS::Lambda::EventSourceMapping").values()
    parked_at_age_hours = mapping["Properties"]["MaximumRecordAgeInSeconds"] / 3600
    retention = package.template["Parameters"]["RetentionPeriodHours"]
    stream = package.cloudformation["Resources"]["EventStream"]["Properties"]

    assert stream["RetentionPeriodHours"] == {"Ref": "RetentionPeriodHours"}
    assert retention["MinValue"] >= parked_at_age_hours + 18
    assert retention["Default"] == 24          # Kinesis's minimum: no extended-retention charge


def test_the_writer_parks_records_in_its_failure_queue_which_keeps_them_14_days(package):
    resources = package.cloudformation["Resources"]
    variables = resources["WriteEvents"]["Properties"]["Environment"]["Variables"]

    assert variables["DALET_FAILURE_QUEUE_URL"] == {"Ref": "FailedBatchQueue"}
    assert variables["DALET_BACKEND"] == "aws"          # merged into the stage's variables, not replacing them
    assert resources["FailedBatchQueue"]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def role_statements(template: dict[str, Any], function_id: str) -> list[dict[str, Any]]:
    function = template["Resources"][function_id]["Properties"]
    role = template["Resources"][function["Role"]["Fn::GetAtt"][0]]["Properties"]
    assert not role.get("ManagedPolicyArns")
    return [statement for policy in role["Policies"] for statement in policy["PolicyDocument"]["Statement"]]


def own_logs(function_name: str) -> list[dict[str, str]]:
    group = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/" + function_name
    return [{"Fn::Sub": group}, {"Fn::Sub": group + ":*"}]


def test_the_track_and_report_function_may_only_put_on_the_stream_and_read_its_key(package):
    statements = role_statements(package.cloudformation, "APIHandler")
    by_service = {statement["Action"][0].split(":")[0]: statement for statement in statements}

    assert set(by_service) == {"kinesis", "secretsmanager", "logs"}
    assert by_service["kinesis"]["Action"] == ["kinesis:PutRecord", "kinesis:PutRecords"]
    assert by_service["kinesis"]["Resource"] == [STREAM_REF]
    assert by_service["secretsmanager"]["Resource"] == [SECRET_REF]
    assert by_service["logs"]["Resource"] == own_logs("dalet-prod")


def test_the_writer_may_only_read_the_stream_and_park_batches_in_its_queue(package):
    statements = role_statements(package.cloudformation, "WriteEvents")
    by_service = {statement["Action"][0].split(":")[0]: statement for statement in statements}

    assert set(by_service) == {"kinesis", "sqs", "logs"}
    assert all(action.split(":")[1].startswith(("Get", "Describe", "List")) for action in by_service["kinesis"]["Action"])
    assert by_service["kinesis"]["Resource"] == [STREAM_REF]
    assert by_service["sqs"] == {**by_service["sqs"], "Action": ["sqs:SendMessage"], "Resource": [QUEUE_REF]}
    assert by_service["logs"]["Resource"] == own_logs("dalet-prod-write_events")


def test_the_front_door_function_may_only_put_on_the_stream_and_write_its_logs(package):
    statements = role_statements(package.cloudformation, "Track")
    by_service = {statement["Action"][0].split(":")[0]: statement for statement in statements}

    assert set(by_service) == {"kinesis", "logs"}
    assert by_service["kinesis"]["Action"] == ["kinesis:PutRecord", "kinesis:PutRecords"]
    assert by_service["kinesis"]["Resource"] == [STREAM_REF]
    assert by_service["logs"]["Resource"] == own_logs("dalet-prod-track")


def test_no_policy_grants_a_wildcard_action_or_resource(package):
    roles = resources_of_type(package.cloudformation, "AWS::IAM::Role")
    statements = [s for role in roles.values() for policy in role["Properties"]["Policies"]
                  for s in policy["PolicyDocument"]["Statement"]]

    assert len(roles) == 3 and statements
    for statement in statements:
        assert all("*" not in action for action in statement["Action"])
        for resource in statement["Resource"]:
            text = resource["Fn::Sub"] if isinstance(resource, dict) else resource
            # The one wildcard: the log streams inside the function's own log group.
            assert "*" not in text or (text.endswith(":*") and "*" not in text[:-2]
                                       and ":log-group:/aws/lambda/dalet-prod" in text)


def test_the_report_api_key_is_generated_into_the_secret_the_functions_read(package):
    secret = package.template["Resources"]["ReportApiKeySecret"]
    configured = load_stage("prod").settings.api_key_secret

    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Properties"]["Name"] == configured
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
    assert package.template["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"][
        "DALET_API_KEY_SECRET"] == configured


def test_functions_are_sized_for_their_jobs(package):
    api = package.template["Resources"]["APIHandler"]["Properties"]
    writer = package.template["Resources"]["WriteEvents"]["Properties"]

    assert api["MemorySize"] <= 256 and api["Timeout"] <= 29       # API Gateway answers by 29 s anyway
    assert writer["MemorySize"] >= 512 and writer["Timeout"] >= 60
    assert writer["Environment"]["Variables"]["DALET_BACKEND"] == "aws"


def test_functions_and_roles_are_named_as_chalice_deploy_names_them(package):
    # Google's workload identity pool admits `assumed-role/<role name>`: the same either way.
    # Chalice names the REST API's function app-stage, without the -api_handler suffix.
    for function_id, role_id, function, role in (
            ("APIHandler", "ApiHandlerRole", "dalet-prod", "dalet-prod-api_handler"),
            ("Track", "TrackRole", "dalet-prod-track", "dalet-prod-track"),
            ("WriteEvents", "WriteEventsRole", "dalet-prod-write_events", "dalet-prod-write_events")):
        assert package.template["Resources"][function_id]["Properties"]["FunctionName"] == function
        assert package.template["Resources"][role_id]["Properties"]["RoleName"] == role


# ---- the front door, abuse bounds, cost defaults, alarms --------------------------


def test_the_ingest_routes_have_a_public_function_url_with_cors_on_their_own_function(package):
    resources = package.cloudformation["Resources"]
    (url,) = resources_of_type(package.cloudformation, "AWS::Lambda::Url").values()
    public = sorted((p["Properties"] for p in resources_of_type(package.cloudformation, "AWS::Lambda::Permission").values()
                     if p["Properties"]["Principal"] == "*"), key=lambda properties: properties["Action"])

    assert url["Properties"]["TargetFunctionArn"] == {"Fn::GetAtt": ["Track", "Arn"]}
    assert url["Properties"]["AuthType"] == "NONE"
    assert url["Properties"]["Cors"]["AllowOrigins"] == ["*"]
    assert {"GET", "POST"} <= set(url["Properties"]["Cors"]["AllowMethods"])
    assert "content-type" in url["Properties"]["Cors"]["AllowHeaders"]
    # Since October 2025 a function URL needs both actions; the second only for calls through the URL.
    assert public == [{"FunctionName": {"Ref": "Track"}, "Action": "lambda:InvokeFunction", "Principal": "*",
                       "InvokedViaFunctionUrl": True},
                      {"FunctionName": {"Ref": "Track"}, "Action": "lambda:InvokeFunctionUrl", "Principal": "*",
                       "FunctionUrlAuthType": "NONE"}]
    assert resources["Track"]["Properties"]["Handler"] == "app.track_front_door"
    assert package.template["Outputs"]["TrackURL"]["Value"] == {
        "Fn::Join": ["", [{"Fn::GetAtt": ["TrackFunctionUrl", "FunctionUrl"]}, "track"]]}


def test_the_snippet_on_the_rest_api_points_alephbet_at_the_front_door(package):
    variables = package.template["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]

    assert variables["DALET_TRACK_URL"] == package.template["Outputs"]["TrackURL"]["Value"]


def test_a_flood_is_bounded_by_reserved_concurrency_and_api_gateway_throttling(package):
    track = package.cloudformation["Resources"]["Track"]["Properties"]
    (stage,) = resources_of_type(package.cloudformation, "AWS::ApiGateway::Stage").values()
    (settings,) = stage["Properties"]["MethodSettings"]

    assert 1 <= track["ReservedConcurrentExecutions"] <= 100
    assert (settings["ResourcePath"], settings["HttpMethod"]) == ("/*", "*")
    assert 0 < settings["ThrottlingRateLimit"] <= settings["ThrottlingBurstLimit"] <= 1000


def test_every_function_logs_warnings_only_into_a_group_kept_14_days(package):
    resources = package.cloudformation["Resources"]
    groups = resources_of_type(package.cloudformation, "AWS::Logs::LogGroup")
    functions = resources_of_type(package.cloudformation, "AWS::Lambda::Function")

    assert {group["Properties"]["LogGroupName"]["Fn::Sub"] for group in groups.values()} == {
        "/aws/lambda/${%s}" % function_id for function_id in functions}
    assert all(group["Properties"]["RetentionInDays"] == 14 for group in groups.values())
    for function_id in functions:
        logging = resources[function_id]["Properties"]["LoggingConfig"]
        assert logging == {"LogFormat": "JSON", "ApplicationLogLevel": "WARN", "SystemLogLevel": "WARN"}


def test_alarms_watch_the_writers_lag_the_parked_batches_and_every_functions_errors(package):
    alarms = resources_of_type(package.cloudformation, "AWS::CloudWatch::Alarm").values()
    watched = {(a["Properties"]["MetricName"], json.dumps(a["Properties"]["Dimensions"][0]["Value"]))
               for a in alarms if a["Properties"]["Dimensions"]}
    (subscription,) = resources_of_type(package.cloudformation, "AWS::SNS::Subscription").values()

    assert {("IteratorAge", '{"Ref": "WriteEvents"}'),
            ("ApproximateNumberOfMessagesVisible", '{"Fn::GetAtt": ["FailedBatchQueue", "QueueName"]}'),
            ("Errors", '{"Ref": "APIHandler"}'), ("Errors", '{"Ref": "Track"}'),
            ("Errors", '{"Ref": "WriteEvents"}')} <= watched
    assert all(a["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in alarms)
    assert package.cloudformation["Resources"]["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}


def test_writer_behind_reads_the_streams_iterator_age_and_pages_when_nothing_reads_it(package):
    alarm = package.cloudformation["Resources"]["WriterIteratorAgeAlarm"]["Properties"]

    assert (alarm["AlarmName"], alarm["Namespace"]) == ("dalet-prod-writer-behind", "AWS/Kinesis")
    assert alarm["MetricName"] == "GetRecords.IteratorAgeMilliseconds"
    assert alarm["Dimensions"] == [{"Name": "StreamName", "Value": {"Ref": "EventStream"}}]
    assert alarm["TreatMissingData"] == "breaching"      # a disabled trigger reads nothing: no data


def test_the_template_counts_ingest_503s_and_dead_letters_in_the_function_log_groups_and_alarms_on_them(package):
    resources = package.cloudformation["Resources"]
    filters = resources_of_type(package.cloudformation, "AWS::Logs::MetricFilter").values()
    alarms = {a["Properties"]["AlarmName"]: a["Properties"]
              for a in resources_of_type(package.cloudformation, "AWS::CloudWatch::Alarm").values()}
    counted = {(f["Properties"]["LogGroupName"]["Ref"], t["MetricNamespace"], t["MetricName"])
               for f in filters for t in f["Properties"]["MetricTransformations"]}

    for alarm_name, groups in (("dalet-prod-ingest-refused", {"ApiHandlerLogGroup", "TrackLogGroup"}),
                               ("dalet-prod-dead-letters", {"WriteEventsLogGroup"})):
        alarm = alarms[alarm_name]
        assert {group for group, namespace, metric in counted
                if (namespace, metric) == (alarm["Namespace"], alarm["MetricName"])} == groups
        assert resources[next(iter(groups))]["Type"] == "AWS::Logs::LogGroup"
        assert alarm["TreatMissingData"] == "notBreaching"
    throttled = alarms["dalet-prod-stream-throttled"]
    assert (throttled["MetricName"], throttled["Dimensions"]) == (
        "WriteProvisionedThroughputExceeded", [{"Name": "StreamName", "Value": {"Ref": "EventStream"}}])


def test_the_committed_policy_files_are_the_placeholders_setup_replaces():
    """`chalice package` reads them; setup rewrites them with the account's ARNs for `chalice deploy`."""
    from dalet_ops import iam_policies

    stage = load_stage("prod")
    where = iam_policies.AwsLocation("aws", "REGION", "ACCOUNT_ID")
    documents = iam_policies.policy_documents(stage, iam_policies.StageResources(
        where, where.arn("kinesis", f"stream/{stage.settings.stream_name}"), where.arn("sqs", stage.failure_queue_name)))

    for function, document in documents.items():
        assert json.loads(stage.policy_file(function).read_text()) == document, function


def test_the_committed_merge_template_is_rendered_from_the_stage_config():
    from dalet_ops.deploy_commands import render_merge_template

    stage = load_stage("prod")
    assert stage.merge_template_file.read_text() == render_merge_template(stage)


# ---- the deployment package --------------------------------------------------------


def test_the_deployment_package_leaves_out_local_and_test_libraries_and_fits_lambda(package):
    with zipfile.ZipFile(package.zip_path) as archive:
        entries = archive.infolist()
    top_level = {entry.filename.split("/")[0].split(".")[0].split("-")[0] for entry in entries}
    zipped = package.zip_path.stat().st_size
    unzipped = sum(entry.file_size for entry in entries)
    print(f"\ndeployment.zip: {zipped / 1e6:.1f} MB zipped, {unzipped / 1e6:.1f} MB unzipped "
          f"(Lambda limits: {MAX_ZIPPED_BYTES / 1e6:.1f} MB, {MAX_UNZIPPED_BYTES / 1e6:.1f} MB)")

    assert top_level & NOT_FOR_LAMBDA == set()
    assert {"app", "chalicelib", "google", "botocore"} <= top_level
    assert zipped < MAX_ZIPPED_BYTES and unzipped < MAX_UNZIPPED_BYTES


def test_the_deployment_package_holds_only_runtime_code_not_the_deploy_tooling_tests_or_benchmarks(package):
    with zipfile.ZipFile(package.zip_path) as archive:
        names = archive.namelist()
    top_level = {name.split("/")[0] for name in names}
    tooling_modules = {path.stem for path in (PROJECT_DIR / "dalet_ops").glob("*.py")} - {"__init__"}
    shipped_modules = {Path(name).stem.split(".")[0] for name in names if name.startswith("chalicelib/")}

    assert top_level & set(PROJECT_EXTRAS) == set()            # the package copied had them all
    assert shipped_modules & tooling_modules == set()
    assert not [name for name in names if name.startswith(("chalice/cli/", "chalice/deploy/"))]


def test_the_lambda_code_imports_from_the_package_alone_without_local_only_modules(package, tmp_path):
    with zipfile.ZipFile(package.zip_path) as archive:
        archive.extractall(tmp_path)
    probe = (
        "import json, sys\n"
        "sys.path.insert(0, '.')\n"
        "import app\n"
        "from chalicelib import google_credentials, runtime, secrets\n"
        "from chalicelib.ingest import publisher\n"
        "from chalicelib.storage import bigquery_warehouse\n"
        f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(NOT_FOR_LAMBDA)!r}))\n"
        "print(json.dumps(loaded))\n"
    )
    environment = {"PATH": os.environ.get("PATH", ""), "DALET_BACKEND": "aws", "DALET_STREAM_NAME": "dalet-events",
                   "DALET_BQ_DATASET": "dalet", "DALET_BQ_TABLE": "events", "AWS_DEFAULT_REGION": "us-east-1"}
    # -I -S: no site-packages, so only what the package holds (and the standard library) can load.
    finished = subprocess.run([sys.executable, "-I", "-S", "-c", probe], cwd=tmp_path, env=environment,
                              capture_output=True, text=True, timeout=120)

    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout) == []


def test_the_first_track_of_a_cold_function_loads_no_s3_report_bigquery_or_local_storage_code(package, tmp_path):
    task = unzip(package.zip_path, tmp_path / "task")
    mode, first_track = first_track_request(task)       # through the function URL front door, if there is one
    event_file = tmp_path / "track.json"
    event_file.write_text(json.dumps(first_track))

    with moto_kinesis() as kinesis_url:
        cold = run_cold(task, mode, event_file, lambda_environment(AWS_ENDPOINT_URL_KINESIS=kinesis_url))

    assert cold.answer["statusCode"] == 200
    assert cold.loaded(NOT_ON_THE_TRACK_PATH) == []


def test_a_cold_track_reading_the_write_keys_secret_still_loads_no_boto3(package, tmp_path):
    # /track refuses a write key's namespace, so a stage with write keys reads the secret on the first
    # /track; botocore's own client does it, without boto3's S3 helpers.
    import boto3

    task = unzip(package.zip_path, tmp_path / "task")
    mode, first_track = first_track_request(task)
    event_file = tmp_path / "track.json"
    event_file.write_text(json.dumps(first_track))

    secret = f"dalet/write-keys-{tmp_path.name}"      # moto's accounts live as long as the process
    with moto_kinesis() as moto_url:
        boto3.client("secretsmanager", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_secret(Name=secret, SecretString="k1=web")
        cold = run_cold(task, mode, event_file, lambda_environment(
            AWS_ENDPOINT_URL_KINESIS=moto_url, AWS_ENDPOINT_URL_SECRETS_MANAGER=moto_url,
            DALET_WRITE_KEYS_SECRET=secret))

    assert cold.answer["statusCode"] == 200, cold.answer
    assert cold.loaded(NOT_ON_THE_TRACK_PATH) == []
    assert "botocore.client" in cold.modules


def test_dalet_package_ships_bytecode_that_lambda_uses_whatever_the_files_dates(package, tmp_path):
    project = package.zip_path.parent.parent
    finished = subprocess.run([sys.executable, "-m", "dalet_ops.cli", "package", "--stage", "prod", "compiled"],
                              cwd=project, env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
                              capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stderr
    zip_path = project / "compiled" / "deployment.zip"
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
        flags = {name: int.from_bytes(archive.read(name)[4:8], "little") for name in names if name.endswith(".pyc")}
    tag = f"cpython-{sys.version_info.major}{sys.version_info.minor}"
    expected = {str(Path(name).parent / "__pycache__" / f"{Path(name).stem}.{tag}.pyc").removeprefix("./")
                for name in names if name.endswith(".py")}

    assert expected <= set(flags)
    assert set(flags.values()) == {0b01}      # PEP 552: hash-based, source not checked
    # Lambda unzips with other dates and never looks at the source again: a broken source still imports.
    task = unzip(zip_path, tmp_path / "task")
    (task / "chalicelib" / "config.py").write_text("raise SystemExit('compiled from source')\n")
    probe = "import sys; sys.path.insert(0, '.'); import app; print(app.app.app_name)"
    imported = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", probe], cwd=task,
                              env=lambda_environment(), capture_output=True, text=True, timeout=120)
    assert (imported.returncode, imported.stdout.strip()) == (0, "dalet"), imported.stderr


# ---- the writer's answer to Lambda -------------------------------------------------


def kinesis_event(payloads: list[bytes]) -> dict[str, Any]:
    """The event Lambda passes a function with a Kinesis trigger."""
    arrival = datetime(2024, 5, 1, tzinfo=timezone.utc).timestamp()
    return {"Records": [{
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": f"key-{index}",
                    "sequenceNumber": str(49600000000000000000000000000000000000000000000000000000 + index),
                    "data": base64.b64encode(payload).decode(), "approximateArrivalTimestamp": arrival},
        "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventName": "aws:kinesis:record",
        "eventID": f"shardId-000000000000:{index}", "awsRegion": "us-east-1",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/dalet-prod-write_events",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/dalet-events",
    } for index, payload in enumerate(payloads)]}


def encoded_events(count: int) -> list[bytes]:
    received = datetime(2024, 5, 1, tzinfo=timezone.utc)
    return [encode_record(stamp(Event("alephbet", "button color", "red", "participate", f"user-{n}"), received))
            for n in range(count)]


@pytest.fixture
def cloud_writer(bigquery_standin, monkeypatch) -> Iterator[Any]:
    """app.write_events as deployed: DALET_BACKEND=aws, BigQuery reached through the stand-in."""
    from chalicelib import google_credentials

    for name, value in {"DALET_BACKEND": "aws", "DALET_STREAM_NAME": "dalet-events", "DALET_BQ_DATASET": "dalet",
                        "DALET_BQ_TABLE": "events"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(google_credentials, "bigquery_client", lambda settings: bigquery_standin.client)
    runtime.shutdown()
    import app

    yield app.write_events
    runtime.shutdown()


def test_the_writer_tells_lambda_which_record_to_retry_from_when_bigquery_takes_part_of_a_batch(
        cloud_writer, bigquery_standin):
    payloads = encoded_events(600)         # two insertAll requests of 500 and 100 rows
    event = kinesis_event(payloads)
    bigquery_standin.reject_rows(copy_id(decode_record(payloads[550])), reason="backendError")

    answer = cloud_writer(event, None)

    retry_from = event["Records"][500]["kinesis"]["sequenceNumber"]
    assert answer == {"batchItemFailures": [{"itemIdentifier": retry_from}]}
    landed = {row["uuid"] for row in bigquery_standin.rows("dalet.events")}
    assert {f"user-{n}" for n in range(500)} <= landed and "user-550" not in landed


def test_the_writer_tells_lambda_a_fully_written_batch_has_no_failures(cloud_writer, bigquery_standin):
    answer = cloud_writer(kinesis_event(encoded_events(3)), None)

    assert answer == {"batchItemFailures": []}
    assert len(bigquery_standin.rows("dalet.events")) == 3


def test_a_dead_letter_logs_the_line_the_dead_letter_filter_counts_where_lambda_keeps_it(cloud_writer, caplog):
    import logging

    from dalet_ops import infrastructure

    (metric,) = [m for m in infrastructure.LOG_METRICS if m.name == "DeadLetters"]
    caplog.set_level(logging.WARNING)

    answer = cloud_writer(kinesis_event([b"not a record", *encoded_events(2)]), None)

    assert answer == {"batchItemFailures": []}
    (record,) = [r for r in caplog.records if metric.pattern.strip('"') in r.getMessage()]
    assert record.levelno == logging.WARNING
    # Chalice prints its own "dalet" logger as plain text, which Lambda's JSON log format files as
    # INFO and drops at WARN; the line must reach the root logger, whose handler Lambda formats.
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None and logger.propagate:
        logger = logger.parent
    assert logger is None or logger is logging.getLogger()
