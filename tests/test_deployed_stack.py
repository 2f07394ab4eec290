"""The deployed stack as `chalice deploy` really builds it, and the hardening around it.

Chalice's own deploy planner (its application graph) says which functions, names and
roles `chalice deploy` creates; the policy files `setup` writes must fit those names.
"""
from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest

from chalicelib import config
from dalet_ops import infrastructure
from dalet_ops.stage import PROJECT_DIR
from tests.aws_moto import ACCOUNT, REGION, aws, deploy_like_chalice, front_door_probe  # noqa: F401
from tests.bigquery_standin import bigquery_standin  # noqa: F401
from tests.stage_fixtures import bigquery, project, run  # noqa: F401


def chalice_deploy_functions(project: Path) -> Iterator[Any]:
    """The Lambda functions `chalice deploy --stage prod` would create for this project."""
    from chalice.cli.factory import CLIFactory
    from chalice.deploy import models
    from chalice.deploy.appgraph import ApplicationGraphBuilder

    shutil.copy(PROJECT_DIR / "app.py", project / "app.py")
    shutil.copytree(PROJECT_DIR / "chalicelib", project / "chalicelib", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    config = CLIFactory(project_dir=str(project)).create_config_obj(chalice_stage_name="prod")
    pending = [ApplicationGraphBuilder().build(config, "prod")]
    while pending:
        resource = pending.pop()
        if isinstance(resource, models.LambdaFunction):
            yield resource
        pending.extend(resource.dependencies())


def log_groups_allowed(policy: dict[str, Any]) -> set[str]:
    return {resource for statement in policy["Statement"] if statement["Action"][0].startswith("logs:")
            for resource in statement["Resource"]}


def test_every_function_chalice_deploy_creates_may_write_its_own_log_group(aws, bigquery, project, capsys):
    code, output = run(capsys, "setup", "--stage", "prod", "--project-dir", str(project))
    assert code == 0, output

    functions = list(chalice_deploy_functions(project))

    assert functions
    for function in functions:
        policy = json.loads(Path(function.role.policy.filename).read_text())
        group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{function.function_name}"
        assert {group, f"{group}:*"} <= log_groups_allowed(policy), function.function_name


# ---- a public 503 hides AWS's internals ----------------------------------------------


def test_a_503_from_track_never_shows_the_account_or_role_aws_named(aws, monkeypatch, caplog):
    """AWS's own error text names the account and the role; the answer must not repeat it."""
    from chalice.test import Client

    from chalicelib import runtime

    for name, value in {"DALET_BACKEND": "aws", "DALET_STREAM_NAME": "missing-stream", "DALET_BQ_DATASET": "dalet",
                        "DALET_BQ_TABLE": "events"}.items():
        monkeypatch.setenv(name, value)
    runtime.shutdown()
    import app

    with Client(app.app) as client:
        response = client.http.get("/track?experiment=e&variant=a&event=participate&uuid=u")
    runtime.shutdown()

    assert response.status_code == 503
    assert json.loads(response.body) == {"error": "the event stream is unavailable; retry later",
                                         "reason": "stream_unavailable"}
    assert f"account {ACCOUNT}" in caplog.text       # the operator still sees AWS's words in the log


def test_a_report_503_before_the_key_is_checked_never_shows_the_secret_aws_refused(aws, monkeypatch, caplog):
    """Anyone may call a report route; if the key's secret cannot be read, the answer stays generic."""
    from chalice.test import Client

    from chalicelib import runtime

    for name, value in {"DALET_BACKEND": "aws", "DALET_STREAM_NAME": "dalet-events", "DALET_BQ_DATASET": "dalet",
                        "DALET_BQ_TABLE": "events", "DALET_API_KEY_SECRET": "internal/secret-name"}.items():
        monkeypatch.setenv(name, value)
    runtime.shutdown()
    import app

    with Client(app.app) as client:
        response = client.http.get("/experiments", headers={"x-api-key": "a guess"})
    runtime.shutdown()

    assert response.status_code == 503
    assert json.loads(response.body) == {"error": "the warehouse is unavailable; retry later",
                                         "reason": "server_misconfigured"}
    assert "internal/secret-name" in caplog.text


# ---- setup: every step reported, the trigger tuned whatever BigQuery does --------------


UNRESOLVABLE = "bigquery.dalet-test.invalid"


def setup(capsys, project: Path, *extra: str) -> tuple[int, str]:
    return run(capsys, "setup", "--stage", "prod", "--project-dir", str(project), *extra)


@pytest.fixture
def dns_failure(monkeypatch):
    """BigQuery's host does not resolve (the real client, its real retries, a real socket.gaierror)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery as bq

    from chalicelib import google_credentials

    resolve = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == UNRESOLVABLE:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    client = bq.Client(project="test-project", credentials=AnonymousCredentials(),
                       client_options={"api_endpoint": f"http://{UNRESOLVABLE}"})
    monkeypatch.setattr(google_credentials, "bigquery_client", lambda settings: client)


def test_setup_tunes_the_writer_trigger_even_when_bigquery_fails_and_reports_each_step(
        aws, bigquery, project, capsys, monkeypatch):
    from tests.bigquery_standin import HttpError

    setup(capsys, project)
    mapping_id = deploy_like_chalice()

    def forbidden(project_id, dataset, table, **_):
        raise HttpError(403, f"Access Denied: Table {project_id}:{dataset}.{table}", "accessDenied")

    monkeypatch.setattr(bigquery, "_get_table", forbidden)

    code, output = setup(capsys, project)

    mapping = boto3.client("lambda").get_event_source_mapping(UUID=mapping_id)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert f"writer trigger {mapping_id}: updated" in output
    assert code == 1 and "FAILED BigQuery tables: BigQuery refused" in output and "Data Editor" in output
    assert "1 step(s) failed (BigQuery tables)" in output


def test_setup_blames_an_unresolvable_bigquery_on_the_network_not_on_permissions(aws, project, capsys, dns_failure):
    started = time.monotonic()
    code, output = setup(capsys, project)
    elapsed = time.monotonic() - started

    line = next(line for line in output.splitlines() if line.startswith("FAILED BigQuery tables"))
    assert code == 1 and "not reachable" in line and "DNS" in line
    assert "Data Editor" not in output
    assert elapsed < 60          # bounded: the client's own default would retry for 600 s


def test_setup_before_deploy_says_to_deploy_next(aws, bigquery, project, capsys):
    code, output = setup(capsys, project)

    assert code == 0, output
    assert output.strip().splitlines()[-1].startswith("Next: chalice deploy --stage prod, then setup again")


def test_setup_after_chalice_deploy_opens_the_front_door_throttles_the_api_and_creates_alarms(
        aws, bigquery, project, capsys):
    setup(capsys, project)
    deploy_like_chalice()

    code, output = setup(capsys, project, "--alarm-email", "ops@example.com")

    assert code == 0, output
    lambda_client = boto3.client("lambda")
    url = lambda_client.get_function_url_config(FunctionName="dalet-prod-track")
    assert url["AuthType"] == "NONE" and url["Cors"]["AllowOrigins"] == ["*"]
    statements = json.loads(lambda_client.get_policy(FunctionName="dalet-prod-track")["Policy"])["Statement"]
    by_action = {statement["Action"]: statement for statement in statements}
    assert set(by_action) == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    assert (by_action["lambda:InvokeFunctionUrl"]["Principal"], by_action["lambda:InvokeFunctionUrl"][
        "FunctionUrlAuthType"]) == ("*", "NONE")
    assert by_action["lambda:InvokeFunction"]["InvokedViaFunctionUrl"] is True     # only through the URL
    assert f"AlephBet's track URL is {url['FunctionUrl'].rstrip('/')}/track" in output

    apigateway = boto3.client("apigateway")
    (api,) = apigateway.get_rest_apis()["items"]
    throttling = apigateway.get_stage(restApiId=api["id"], stageName="api")["methodSettings"]["*/*"]
    assert (throttling["throttlingRateLimit"], throttling["throttlingBurstLimit"]) == (50.0, 100)

    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:dalet-prod-alarms"
    alarms = boto3.client("cloudwatch").describe_alarms(AlarmNamePrefix="dalet-prod-")["MetricAlarms"]
    watched = {(a["MetricName"], a["Dimensions"][0]["Value"]) for a in alarms if a["Dimensions"]}
    assert {("IteratorAge", "dalet-prod-write_events"), ("ApproximateNumberOfMessagesVisible",
            "dalet-prod-failed-batches"), ("Errors", "dalet-prod"), ("Errors", "dalet-prod-track"),
            ("Errors", "dalet-prod-write_events")} <= watched
    assert all(alarm["AlarmActions"] == [topic] for alarm in alarms)
    subscriptions = boto3.client("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [s["Endpoint"] for s in subscriptions] == ["ops@example.com"]
    assert output.strip().splitlines()[-1] == "Next: python -m dalet_ops.cli preflight --stage prod"


def test_setup_run_again_after_deploy_changes_nothing(aws, bigquery, project, capsys):
    setup(capsys, project)
    deploy_like_chalice()
    setup(capsys, project, "--alarm-email", "ops@example.com")

    code, output = setup(capsys, project, "--alarm-email", "ops@example.com")

    assert code == 0, output
    assert "front door dalet-prod-track: found" in output and "stage api: found" in output
    assert len(json.loads(boto3.client("lambda").get_policy(FunctionName="dalet-prod-track")["Policy"])[
        "Statement"]) == 2


def test_setup_on_the_cloudformation_path_leaves_the_stacks_resources_alone_and_says_preflight_next(
        aws, bigquery, project, capsys):
    boto3.client("kinesis").create_stream(StreamName="dalet-events", ShardCount=1)    # the stack's stream
    deploy_like_chalice(tags={"aws:cloudformation:stack-name": "dalet-prod"})
    boto3.client("lambda").create_function_url_config(FunctionName="dalet-prod-track", AuthType="NONE")

    code, output = setup(capsys, project)

    assert code == 0, output
    assert "set by CloudFormation stack dalet-prod" in output
    assert boto3.client("cloudwatch").describe_alarms()["MetricAlarms"] == []
    assert "chalice deploy" not in output.strip().splitlines()[-1]
    assert output.strip().splitlines()[-1] == "Next: python -m dalet_ops.cli preflight --stage prod"


# ---- preflight: the REST API, the functions, the front door, the alarms -----------------


def preflight(capsys, project: Path) -> tuple[int, str]:
    return run(capsys, "preflight", "--stage", "prod", "--project-dir", str(project))


def failed_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("FAIL")]


def test_preflight_fails_when_chalice_deploy_created_the_writer_but_not_the_api(
        aws, bigquery, project, capsys, front_door_probe):
    setup(capsys, project)
    deploy_like_chalice()
    setup(capsys, project)
    boto3.client("lambda").delete_function(FunctionName="dalet-prod")

    code, output = preflight(capsys, project)

    (line,) = failed_lines(output)
    assert code == 1 and line.startswith("FAIL  API function dalet-prod: not deployed")
    assert "fix: chalice deploy --stage prod" in line


def test_preflight_passes_a_deployed_stage_and_shows_the_front_door_answering(
        aws, bigquery, project, capsys, front_door_probe):
    setup(capsys, project)
    deploy_like_chalice()
    setup(capsys, project)

    code, output = preflight(capsys, project)

    assert code == 0, output
    url = boto3.client("lambda").get_function_url_config(FunctionName="dalet-prod-track")["FunctionUrl"]
    assert f"ok    front door dalet-prod-track: {url.rstrip('/')}/track answers; reserved concurrency 25" in output
    assert "ok    REST API (stage api): " in output and "throttled to 50 requests/s, bursts of 100" in output
    assert f"ok    alarms: {len(infrastructure.ALARMS)} alarms notify" in output


def test_preflight_fails_a_front_door_that_does_not_answer_as_dalet(aws, bigquery, project, capsys, monkeypatch):
    from dalet_ops import preflight as checks

    setup(capsys, project)
    deploy_like_chalice()
    setup(capsys, project)
    monkeypatch.setattr(checks, "http_get", lambda url, timeout: (502, b'{"Message": "Internal Server Error"}'))

    code, output = preflight(capsys, project)

    (line,) = failed_lines(output)
    assert code == 1 and line.startswith("FAIL  front door dalet-prod-track: ") and "answered 502" in line


def test_preflight_says_setup_fixes_a_front_door_the_public_may_not_call(aws, bigquery, project, capsys,
                                                                        monkeypatch):
    from dalet_ops import preflight as checks

    setup(capsys, project)
    deploy_like_chalice()
    setup(capsys, project)
    monkeypatch.setattr(checks, "http_get", lambda url, timeout: (403, b'{"Message": "Forbidden"}'))

    code, output = preflight(capsys, project)

    (line,) = failed_lines(output)
    assert "answered 403: its resource policy does not let the public call it" in line
    assert line.endswith("fix: python -m dalet_ops.cli setup --stage prod")


def test_preflight_fails_an_unthrottled_rest_api(aws, bigquery, project, capsys, front_door_probe):
    setup(capsys, project)
    deploy_like_chalice()          # chalice deploy sets no throttling; setup has not run since

    code, output = preflight(capsys, project)

    line = next(line for line in failed_lines(output) if "REST API" in line)
    assert "no throttling" in line and line.endswith("fix: python -m dalet_ops.cli setup --stage prod")


def test_preflight_gives_up_on_an_unreachable_bigquery_quickly_and_says_so(aws, project, capsys, dns_failure):
    started = time.monotonic()
    code, output = preflight(capsys, project)
    elapsed = time.monotonic() - started

    tables = [line for line in output.splitlines() if "BigQuery table" in line]
    assert code == 1 and len(tables) == 4     # events, dead letters, deletions, stored answers
    assert "not reachable" in tables[0] and "DNS" in tables[0]
    assert all("not checked: BigQuery was not reachable" in line for line in tables[1:])
    assert elapsed < 60          # the client's default: 600 s of retries per table


# ---- the cost defaults' settings ---------------------------------------------------------


def test_the_defaults_log_warnings_only_and_batch_the_writer_for_30_seconds():
    settings = config.load_settings({})

    assert settings.log_level == "WARNING"
    assert config.writer_batching_window_seconds({}) == 30


@pytest.mark.parametrize("variable, value", [("DALET_LOG_LEVEL", "LOUD"), ("DALET_TRACK_URL", "lambda-url.on.aws/track")])
def test_a_bad_setting_is_refused_naming_the_variable(variable, value):
    with pytest.raises(config.ConfigError, match=variable):
        config.load_settings({variable: value})


@pytest.mark.parametrize("value", ["301", "-1", "half a minute"])
def test_a_batching_window_lambda_would_refuse_is_named(value):
    with pytest.raises(config.ConfigError, match="DALET_WRITER_BATCHING_WINDOW_SECONDS"):
        config.writer_batching_window_seconds({"DALET_WRITER_BATCHING_WINDOW_SECONDS": value})


def test_teardown_removes_the_alarms_and_their_topic(capsys):
    code, output = run(capsys, "teardown", "--stage", "prod")

    assert code == 0
    assert "aws cloudwatch delete-alarms --alarm-names dalet-prod-writer-behind" in output
    assert "aws sns delete-topic" in output and "dalet-prod-alarms" in output


def test_the_app_logs_warnings_and_above_by_default(data_dir):
    import logging

    import app

    assert app.app.log.getEffectiveLevel() == logging.WARNING
    assert not logging.getLogger("dalet.publisher").isEnabledFor(logging.INFO)    # per-retry lines
    assert logging.getLogger("chalicelib.storage.writer").isEnabledFor(logging.WARNING)    # dead letters


# ---- alarms for every silent failure -----------------------------------------------------


def alarms_by_suffix() -> dict[str, dict[str, Any]]:
    alarms = boto3.client("cloudwatch").describe_alarms(AlarmNamePrefix="dalet-prod-")["MetricAlarms"]
    return {alarm["AlarmName"].removeprefix("dalet-prod-"): alarm for alarm in alarms}


def test_writer_behind_watches_the_streams_reads_and_treats_no_reads_as_breaching(aws, bigquery, project, capsys):
    """A disabled trigger reads nothing: the metric goes missing, and that must page rather than silence."""
    setup(capsys, project)
    deploy_like_chalice()

    code, output = setup(capsys, project)

    assert code == 0, output
    behind = alarms_by_suffix()["writer-behind"]
    assert (behind["Namespace"], behind["MetricName"]) == ("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds")
    assert behind["Dimensions"] == [{"Name": "StreamName", "Value": "dalet-events"}]
    assert behind["TreatMissingData"] == "breaching"
    assert (behind["Statistic"], behind["Threshold"]) == ("Maximum", 600_000)
    # Lambda's IteratorAge exists only while the writer is called: missing there is an idle stream.
    retrying = alarms_by_suffix()["writer-retrying"]
    assert (retrying["MetricName"], retrying["Dimensions"][0]["Value"]) == ("IteratorAge", "dalet-prod-write_events")
    assert retrying["TreatMissingData"] == "notBreaching"


def test_setup_alarms_on_ingest_refusals_stream_throttling_and_dead_letters(aws, bigquery, project, capsys):
    setup(capsys, project)
    deploy_like_chalice()

    code, output = setup(capsys, project)

    assert code == 0, output
    alarms = alarms_by_suffix()
    throttled = alarms["stream-throttled"]
    assert (throttled["Namespace"], throttled["MetricName"]) == ("AWS/Kinesis", "WriteProvisionedThroughputExceeded")
    assert throttled["Dimensions"] == [{"Name": "StreamName", "Value": "dalet-events"}]
    logs = boto3.client("logs")
    for suffix, groups in (("ingest-refused", ["/aws/lambda/dalet-prod", "/aws/lambda/dalet-prod-track"]),
                           ("dead-letters", ["/aws/lambda/dalet-prod-write_events"])):
        alarm = alarms[suffix]
        assert alarm["TreatMissingData"] == "notBreaching" and alarm["Threshold"] == 1
        for group in groups:       # a metric filter on each function's log group publishes the alarm's metric
            published = [(t["metricNamespace"], t["metricName"])
                         for f in logs.describe_metric_filters(logGroupName=group)["metricFilters"]
                         for t in f["metricTransformations"]]
            assert (alarm["Namespace"], alarm["MetricName"]) in published, (suffix, group)


def filter_phrase(metric_name: str) -> str:
    """The quoted phrase a log metric filter counts (CloudWatch Logs: one quoted term matches lines holding it)."""
    (metric,) = [metric for metric in infrastructure.LOG_METRICS if metric.name == metric_name]
    assert metric.pattern.startswith('"') and metric.pattern.endswith('"') and metric.pattern.count('"') == 2
    return metric.pattern[1:-1]


def as_lambda_logs_it(record: Any) -> list[str]:
    """The record as it lands in the log group: Lambda's text format, and its JSON format."""
    message = record.getMessage()
    return [f"[{record.levelname}]\t2026-01-01T00:00:00.000Z\trequest-id\t{message}",
            json.dumps({"timestamp": "2026-01-01T00:00:00Z", "level": record.levelname, "message": message,
                        "logger": record.name, "requestId": "request-id"})]


def reaches_lambdas_handler(logger_name: str) -> bool:
    """Whether records propagate to the root logger, where Lambda's runtime formats them (with their level)."""
    import logging

    logger: logging.Logger | None = logging.getLogger(logger_name)
    while logger is not None and logger.propagate:
        logger = logger.parent
    return logger is None or logger is logging.getLogger()


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/track?experiment=e&variant=a&event=participate&uuid=u", None),
    ("POST", "/v1/track", json.dumps({"userId": "u-1", "event": "Signed Up"})),
])
def test_every_ingest_503_logs_the_line_the_refusal_filter_counts(aws, monkeypatch, caplog, method, path, body):
    import base64
    import logging

    from chalice.test import Client

    from chalicelib import runtime

    for name, value in {"DALET_BACKEND": "aws", "DALET_STREAM_NAME": "missing-stream", "DALET_BQ_DATASET": "dalet",
                        "DALET_BQ_TABLE": "events", "DALET_WRITE_KEYS": "wk1=web"}.items():
        monkeypatch.setenv(name, value)
    runtime.shutdown()
    import app

    caplog.set_level(logging.WARNING)
    with Client(app.app) as client:
        headers = {"authorization": "Basic " + base64.b64encode(b"wk1:").decode(), "content-type": "application/json"}
        response = client.http.request(method, path, headers=headers, body=body or b"")
    runtime.shutdown()

    assert response.status_code == 503
    phrase = filter_phrase("IngestRefusals")
    counted = [record for record in caplog.records if any(phrase in line for line in as_lambda_logs_it(record))]
    assert len(counted) == 1 and counted[0].levelname == "ERROR"
    assert all(phrase in line for line in as_lambda_logs_it(counted[0]))
    assert reaches_lambdas_handler(counted[0].name)      # not dropped as an unlevelled line at WARN


def test_a_report_503_is_not_counted_as_an_ingest_refusal(aws, monkeypatch, caplog):
    from chalice.test import Client

    from chalicelib import runtime

    for name, value in {"DALET_BACKEND": "aws", "DALET_STREAM_NAME": "dalet-events", "DALET_BQ_DATASET": "dalet",
                        "DALET_BQ_TABLE": "events", "DALET_API_KEY_SECRET": "internal/secret-name"}.items():
        monkeypatch.setenv(name, value)
    runtime.shutdown()
    import app

    with Client(app.app) as client:
        response = client.http.get("/experiments", headers={"x-api-key": "a guess"})
    runtime.shutdown()

    assert response.status_code == 503
    assert "answered 503" in caplog.text and filter_phrase("IngestRefusals") not in caplog.text


def test_preflight_fails_an_alarm_left_as_an_older_setup_made_it(aws, bigquery, project, capsys, front_door_probe):
    setup(capsys, project)
    deploy_like_chalice()
    setup(capsys, project)
    old = {**alarms_by_suffix()["writer-behind"]}
    boto3.client("cloudwatch").put_metric_alarm(
        AlarmName=old["AlarmName"], Namespace="AWS/Lambda", MetricName="IteratorAge",
        Dimensions=[{"Name": "FunctionName", "Value": "dalet-prod-write_events"}], Statistic="Maximum", Period=300,
        EvaluationPeriods=2, Threshold=600_000, ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching", AlarmActions=old["AlarmActions"])

    code, output = preflight(capsys, project)

    (line,) = failed_lines(output)
    assert code == 1 and line.startswith("FAIL  alarms: ") and "treating missing data otherwise" in line
    assert "dalet-prod-writer-behind" in line and line.endswith("fix: python -m dalet_ops.cli setup --stage prod")


# ---- log retention on the `chalice deploy` path ---------------------------------------------------


def retention(group: str) -> int | None:
    (found,) = boto3.client("logs").describe_log_groups(logGroupNamePrefix=group)["logGroups"][:1]
    assert found["logGroupName"] == group
    return found.get("retentionInDays")


def test_setup_gives_the_api_functions_real_log_group_and_every_other_14_days(aws, bigquery, project, capsys):
    setup(capsys, project)
    deploy_like_chalice()
    # What Lambda does on the API function's first call: the group chalice deploy did not make, kept forever.
    boto3.client("logs").create_log_group(logGroupName="/aws/lambda/dalet-prod")

    code, output = setup(capsys, project)

    assert code == 0, output
    for group in ("/aws/lambda/dalet-prod", "/aws/lambda/dalet-prod-track", "/aws/lambda/dalet-prod-write_events"):
        assert retention(group) == 14, group
    assert "log group /aws/lambda/dalet-prod: found keeping logs forever, changed; keeps 14 days" in output
    assert "log group /aws/lambda/dalet-prod-track: created; keeps 14 days" in output


def test_preflight_fails_a_function_log_group_that_keeps_logs_forever_naming_setup(
        aws, bigquery, project, capsys, front_door_probe):
    setup(capsys, project)
    deploy_like_chalice()
    setup(capsys, project)
    boto3.client("logs").delete_retention_policy(logGroupName="/aws/lambda/dalet-prod")

    code, output = preflight(capsys, project)

    (line,) = failed_lines(output)
    assert code == 1
    assert line == ("FAIL  log group /aws/lambda/dalet-prod: keeps logs forever, not 14 days -- fix: "
                    "python -m dalet_ops.cli setup --stage prod")
    assert "ok    log group /aws/lambda/dalet-prod-write_events: keeps 14 days; counted by dalet-prod-DeadLetters" \
        in output


def test_teardown_lists_the_real_log_groups_the_template_bucket_and_the_write_keys_secret(project, capsys):
    path = project / ".chalice" / "config.json"
    chalice_config = json.loads(path.read_text())
    chalice_config["stages"]["prod"]["environment_variables"]["DALET_WRITE_KEYS_SECRET"] = "dalet/prod/write-keys"
    path.write_text(json.dumps(chalice_config))

    code, output = run(capsys, "teardown", "--stage", "prod", "--project-dir", str(project))

    assert code == 0
    for group in ("/aws/lambda/dalet-prod", "/aws/lambda/dalet-prod-track", "/aws/lambda/dalet-prod-write_events"):
        assert f"aws logs delete-log-group --log-group-name {group}\n" in output
    assert "aws s3 rm s3://YOUR_BUCKET --recursive" in output and "--s3-bucket" in output
    assert "aws secretsmanager delete-secret --secret-id dalet/prod/write-keys" in output


# ---- what the tools say ------------------------------------------------------------------------


def test_setup_says_the_writer_has_no_trigger_rather_than_that_it_is_not_deployed(aws, bigquery, project, capsys):
    setup(capsys, project)
    mapping_id = deploy_like_chalice()
    boto3.client("lambda").delete_event_source_mapping(UUID=mapping_id)

    code, output = setup(capsys, project)

    line = next(line for line in output.splitlines() if line.startswith("FAILED writer trigger"))
    assert code == 1 and "not deployed yet" not in output
    assert "dalet-prod-write_events is deployed but has no trigger on the stream" in line
    assert "chalice deploy" in line


def test_preflight_says_the_writer_has_no_trigger_and_how_to_get_one(aws, bigquery, project, capsys,
                                                                    front_door_probe):
    setup(capsys, project)
    mapping_id = deploy_like_chalice()
    setup(capsys, project)
    boto3.client("lambda").delete_event_source_mapping(UUID=mapping_id)

    code, output = preflight(capsys, project)

    line = next(line for line in failed_lines(output) if "writer trigger" in line)
    assert code == 1 and "not deployed" not in line and "has no trigger on the stream" in line
    assert "chalice deploy creates it" in line.replace("`", "")


def test_preflight_fails_a_disabled_writer_trigger_with_the_command_that_enables_it(
        aws, bigquery, project, capsys, front_door_probe):
    setup(capsys, project)
    mapping_id = deploy_like_chalice()
    setup(capsys, project)
    boto3.client("lambda").update_event_source_mapping(UUID=mapping_id, Enabled=False)

    code, output = preflight(capsys, project)

    (line,) = failed_lines(output)
    assert code == 1 and line.startswith("FAIL  writer trigger (dalet-prod-write_events): Disabled")
    assert line.endswith(f"fix: aws lambda update-event-source-mapping --uuid {mapping_id} --enabled")


def test_setup_names_every_function_whose_iam_policy_it_wrote(aws, bigquery, project, capsys):
    code, output = setup(capsys, project)

    line = next(line for line in output.splitlines() if line.startswith("IAM policies"))
    assert code == 0
    for function in ("dalet-prod", "dalet-prod-track", "dalet-prod-write_events"):
        assert f"{function}," in line or f"{function}:" in line, function


LOCAL_QUEUE_URL = "http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/dalet-prod-failed-batches"


@pytest.mark.parametrize("url", [LOCAL_QUEUE_URL, "http://localhost:4566/000000000000/dalet-prod-failed-batches",
                                 "http://127.0.0.1:5000/123456789012/dalet-prod-failed-batches"])
def test_an_http_failure_queue_on_this_machine_is_accepted(url):
    assert config.load_settings({"DALET_FAILURE_QUEUE_URL": url}).failure_queue_url == url


def test_an_http_failure_queue_elsewhere_is_refused_saying_what_is_accepted():
    with pytest.raises(config.ConfigError, match="DALET_FAILURE_QUEUE_URL must be .*https://.*http:// only for a "
                                                 "stand-in on this machine"):
        config.load_settings({"DALET_FAILURE_QUEUE_URL": "http://sqs.example.com/123/dalet-prod-failed-batches"})


def test_a_local_stand_in_queue_url_blocks_no_command(project, capsys):
    path = project / ".chalice" / "config.json"
    chalice_config = json.loads(path.read_text())
    chalice_config["stages"]["prod"]["environment_variables"]["DALET_FAILURE_QUEUE_URL"] = LOCAL_QUEUE_URL
    path.write_text(json.dumps(chalice_config))

    code, output = run(capsys, "teardown", "--stage", "prod", "--project-dir", str(project))

    assert code == 0, output
    assert "chalice delete --stage prod" in output
