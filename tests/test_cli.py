"""The deploy commands: setup, preflight, replay, snippet, template, teardown.

AWS is moto (real boto3 calls); BigQuery is the local HTTP stand-in with the real client.
Each test works on a copy of .chalice/config.json, so the policy files setup writes land
in a temporary project, never in the checkout.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest

from dalet_ops import infrastructure
from chalicelib.ingest.events import Event, stamp
from chalicelib.ingest.records import encode_record
from tests.aws_moto import ACCOUNT, REGION, aws, deploy_like_chalice, front_door_probe  # noqa: F401
from tests.bigquery_standin import bigquery_standin  # noqa: F401
from tests.stage_fixtures import bigquery, project, run  # noqa: F401

STREAM = "dalet-events"
STREAM_ARN = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{STREAM}"
QUEUE = "dalet-prod-failed-batches"
API_KEY_SECRET = "dalet/prod/api-key"
WRITER = "dalet-prod-write_events"


@pytest.fixture(autouse=True)
def _front_door_answers(front_door_probe) -> None:
    """Every preflight here probes the front door through the real handler."""


def setup(capsys, project: Path, *extra: str) -> tuple[int, str]:
    return run(capsys, "setup", "--stage", "prod", "--project-dir", str(project), *extra)


def set_up_and_deploy(capsys, project: Path) -> None:
    """The documented order: setup, chalice deploy, setup again (to tune the writer's trigger)."""
    setup(capsys, project)
    deploy_writer()
    setup(capsys, project)


def preflight(capsys, project: Path) -> tuple[int, str]:
    return run(capsys, "preflight", "--stage", "prod", "--project-dir", str(project))


def deploy_writer() -> str:
    """What `chalice deploy` leaves: the functions, the REST API and the writer's plain Kinesis trigger."""
    return deploy_like_chalice()


def api_key_value() -> str:
    return boto3.client("secretsmanager").get_secret_value(SecretId=API_KEY_SECRET)["SecretString"]


def refuse(monkeypatch, service: str, operation: str, error: str | Exception = "AccessDeniedException") -> None:
    """From now on, every `service` client boto3 makes fails `operation`: with that AWS error code
    (answered as AWS answers, so botocore raises its own ClientError), or by raising the exception."""
    from botocore.awsrequest import AWSResponse

    def answer(model, **_):
        if model.name != operation:
            return None
        if isinstance(error, Exception):
            raise error
        return AWSResponse(f"https://{service}.{REGION}.amazonaws.com/", 400, {}, None), {
            "Error": {"Code": error, "Message": f"not authorized to perform: {service}:{operation}"},
            "ResponseMetadata": {"HTTPStatusCode": 400}}

    make_client = boto3.session.Session.client

    def client(self, service_name, *args, **kwargs):
        made = make_client(self, service_name, *args, **kwargs)
        if service_name == service:
            made.meta.events.register("before-call", answer)
        return made

    monkeypatch.setattr(boto3.session.Session, "client", client)


def failed_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("FAIL")]


def checked_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("ok", "FAIL"))]


# ---- setup -------------------------------------------------------------------------


def test_setup_creates_the_stream_queue_api_key_and_tables(aws, bigquery, project, capsys):
    code, output = setup(capsys, project)

    assert code == 0, output
    stream = boto3.client("kinesis").describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]
    assert (stream["StreamStatus"], stream["StreamModeDetails"]["StreamMode"]) == ("ACTIVE", "PROVISIONED")
    assert stream["OpenShardCount"] == 1
    assert stream["RetentionPeriodHours"] == infrastructure.STREAM_RETENTION_HOURS
    assert stream["EncryptionType"] == "KMS"
    assert boto3.client("sqs").get_queue_url(QueueName=QUEUE)["QueueUrl"]
    assert len(api_key_value()) >= 32
    events = bigquery.table("dalet.events")
    assert events["timePartitioning"] == {"type": "DAY", "field": "received_at"}
    assert events["clustering"]["fields"] == ["namespace", "experiment", "event"]
    assert "dalet.dead_letters" in bigquery.tables
    answers = bigquery.table("dalet.report_answers")      # stored answers (chalicelib/reports/stored_answers.py)
    assert answers["timePartitioning"] == {"type": "DAY", "field": "stored_at", "expirationMs": "172800000"}
    assert answers["clustering"]["fields"] == ["key"]
    for thing in (f"stream {STREAM}: created", f"queue {QUEUE}: created", f"{API_KEY_SECRET} (DALET_API_KEY_SECRET)"
                  ": created", "test-project.dalet.events: created",
                  "test-project.dalet.report_answers: created (DAY partitions on stored_at, kept 2 days; clustered by key)"):
        assert thing in output


def test_setup_run_again_finds_everything_and_keeps_the_key(aws, bigquery, project, capsys):
    setup(capsys, project)
    key = api_key_value()

    code, output = setup(capsys, project)

    assert code == 0, output
    assert "created" not in output
    assert output.count(": found") >= 4
    assert api_key_value() == key


def test_setup_never_prints_the_api_key_unless_asked(aws, bigquery, project, capsys):
    _, quiet = setup(capsys, project)
    _, asked = setup(capsys, project, "--show-key")

    assert api_key_value() not in quiet
    assert f"(x-api-key): {api_key_value()}" in asked
    assert f"aws secretsmanager get-secret-value --secret-id {API_KEY_SECRET}" in quiet


@pytest.mark.parametrize("stored", [{"SecretString": json.dumps({"api_key": "kept-key"})},
                                    {"SecretBinary": b"kept-key"}], ids=["json", "binary"])
def test_setup_shows_the_key_the_report_routes_read_from_a_json_or_binary_secret(
        aws, bigquery, project, capsys, stored):
    boto3.client("secretsmanager").create_secret(Name=API_KEY_SECRET, **stored)

    code, output = setup(capsys, project, "--show-key")

    assert code == 0, output
    assert "report API key (x-api-key): kept-key\n" in output


def test_setup_writes_policy_files_that_name_this_accounts_stream_and_nothing_wider(aws, bigquery, project, capsys):
    setup(capsys, project)

    api_handler = json.loads((project / ".chalice" / "policy-prod-api_handler.json").read_text())
    writer = json.loads((project / ".chalice" / "policy-prod-write_events.json").read_text())
    secret_arn = boto3.client("secretsmanager").describe_secret(SecretId=API_KEY_SECRET)["ARN"]
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE}"

    def resources(document, action_prefix):
        return {r for s in document["Statement"] if s["Action"][0].startswith(action_prefix) for r in s["Resource"]}

    assert resources(api_handler, "kinesis:") == {STREAM_ARN}
    assert resources(writer, "kinesis:") == {STREAM_ARN}
    assert resources(api_handler, "secretsmanager:") == {secret_arn}
    assert resources(writer, "sqs:") == {queue_arn}
    every_resource = resources(api_handler, "") | resources(writer, "")
    assert all(ACCOUNT in arn and "*" not in arn.split(":")[:5] for arn in every_resource)


def test_setup_brings_an_existing_failure_queue_to_14_days_retention(aws, bigquery, project, capsys):
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]      # SQS's default: 4 days

    code, output = setup(capsys, project)

    retention = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["MessageRetentionPeriod"])
    assert code == 0 and retention["Attributes"]["MessageRetentionPeriod"] == str(14 * 24 * 3600)
    assert f"queue {QUEUE}: found; retention raised from 96 h to 14 days" in output


def test_setup_says_which_queue_url_the_writer_needs_until_the_stage_has_it(aws, bigquery, project, capsys):
    _, output = setup(capsys, project)
    queue_url = boto3.client("sqs").get_queue_url(QueueName=QUEUE)["QueueUrl"]
    assert f'"DALET_FAILURE_QUEUE_URL": "{queue_url}"' in output

    config_file = project / ".chalice" / "config.json"
    chalice_config = json.loads(config_file.read_text())
    chalice_config["stages"]["prod"]["environment_variables"]["DALET_FAILURE_QUEUE_URL"] = queue_url
    config_file.write_text(json.dumps(chalice_config))
    _, output = setup(capsys, project)
    assert "DALET_FAILURE_QUEUE_URL" not in output


def test_setup_can_create_a_bigger_provisioned_stream(aws, bigquery, project, capsys):
    code, output = setup(capsys, project, "--stream-mode", "PROVISIONED", "--shards", "2")

    assert code == 0, output
    stream = boto3.client("kinesis").describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]
    assert (stream["StreamModeDetails"]["StreamMode"], stream["OpenShardCount"]) == ("PROVISIONED", 2)


def test_setup_can_create_an_on_demand_stream(aws, bigquery, project, capsys):
    code, output = setup(capsys, project, "--stream-mode", "ON_DEMAND")

    assert code == 0, output
    stream = boto3.client("kinesis").describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]
    assert stream["StreamModeDetails"]["StreamMode"] == "ON_DEMAND"


def test_setup_refuses_a_retention_too_short_to_replay_a_parked_batch(aws, bigquery, project, capsys):
    code, output = setup(capsys, project, "--retention-hours", "12")

    assert code == 1
    assert "--retention-hours must be at least 24" in output
    assert boto3.client("kinesis").list_streams()["StreamNames"] == []


def test_setup_after_deploy_makes_the_writer_trigger_report_partial_failures_and_park_batches(
        aws, bigquery, project, capsys):
    _, before_deploy = setup(capsys, project)
    mapping_id = deploy_writer()

    code, output = setup(capsys, project)

    assert "not deployed yet" in before_deploy
    assert code == 0 and f"writer trigger {mapping_id}: updated" in output
    mapping = boto3.client("lambda").get_event_source_mapping(UUID=mapping_id)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == -1      # retried until 6 h old; the writer parks the records at 1 h
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE}"


def test_setup_without_aws_credentials_says_how_to_provide_them(project, capsys, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)

    code, output = setup(capsys, project)

    assert code == 1
    assert "no AWS credentials" in output and "aws configure" in output


# ---- preflight ---------------------------------------------------------------------


def test_preflight_passes_once_setup_and_deploy_are_done(aws, bigquery, project, capsys):
    setup(capsys, project)
    deploy_writer()
    setup(capsys, project)

    code, output = preflight(capsys, project)

    assert code == 0, output
    assert "FAIL" not in output and output.strip().endswith("all checks passed")


def test_preflight_before_setup_fails_each_missing_piece_with_its_fix(aws, bigquery, project, capsys):
    code, output = preflight(capsys, project)

    failures = [line for line in output.splitlines() if line.startswith("FAIL")]
    assert code == 1
    for piece in (f"stream {STREAM}", f"failed-batch queue {QUEUE}", "report API key",
                  "BigQuery table test-project.dalet.events", "BigQuery table test-project.dalet.dead_letters",
                  "BigQuery table test-project.dalet.report_answers"):
        line = next(line for line in failures if piece in line)
        assert "fix: python -m dalet_ops.cli setup --stage prod" in line


def test_preflight_notices_a_writer_trigger_that_would_lose_partial_failures(aws, bigquery, project, capsys):
    setup(capsys, project)
    deploy_writer()      # chalice deploy's plain trigger: no partial batch responses, no destination

    code, output = preflight(capsys, project)

    line = next(line for line in output.splitlines() if "writer trigger" in line)
    assert code == 1 and line.startswith("FAIL") and "FunctionResponseTypes" in line
    assert line.endswith("fix: python -m dalet_ops.cli setup --stage prod")


def test_preflight_fails_a_writer_that_does_not_know_where_to_park_records(aws, bigquery, project, capsys):
    # chalice deploy without the DALET_FAILURE_QUEUE_URL line setup prints: a batch BigQuery keeps
    # refusing would be lost when the stream (24 h) expires it, instead of being parked for 14 days.
    setup(capsys, project)
    deploy_like_chalice(writer_parks=False)
    setup(capsys, project)

    code, output = preflight(capsys, project)

    line = next(line for line in output.splitlines() if "writer parking" in line)
    assert code == 1 and line.startswith("FAIL") and "DALET_FAILURE_QUEUE_URL is not set" in line
    assert "fix: python -m dalet_ops.cli setup --stage prod prints the line" in line


def test_preflight_reports_a_table_whose_schema_differs(aws, bigquery, project, capsys):
    from google.cloud import bigquery as bq

    setup(capsys, project)
    bigquery.drop_table("dalet.events")
    bigquery.client.create_table(bq.Table("test-project.dalet.events", schema=[bq.SchemaField("uuid", "STRING")]))

    code, output = preflight(capsys, project)

    line = next(line for line in output.splitlines() if "dalet.events" in line)
    assert code == 1 and line.startswith("FAIL") and "columns are uuid STRING, expected event_id STRING REQUIRED" in line


def test_preflight_reports_parked_batches(aws, bigquery, project, capsys):
    setup(capsys, project)
    queue_url = boto3.client("sqs").get_queue_url(QueueName=QUEUE)["QueueUrl"]
    boto3.client("sqs").send_message(QueueUrl=queue_url, MessageBody="{}")

    code, output = preflight(capsys, project)

    line = next(line for line in output.splitlines() if "failed-batch queue" in line)
    assert code == 1 and "1 failed batch(es) parked" in line and "replay --stage prod" in line


def test_preflight_fails_a_stream_that_forgets_parked_batches_before_replay_can_read_them(
        aws, bigquery, project, capsys, monkeypatch):
    set_up_and_deploy(capsys, project)
    # Kinesis keeps at least 24 h, today's minimum; a trigger that parked batches later (a longer
    # MAX_RECORD_AGE_HOURS) would need more, which a 24 h stream does not give.
    monkeypatch.setattr(infrastructure, "MIN_STREAM_RETENTION_HOURS", 48)

    code, output = preflight(capsys, project)

    (line,) = failed_lines(output)
    assert code == 1 and line.startswith(f"FAIL  stream {STREAM}: 24 h retention")
    assert line.endswith("fix: python -m dalet_ops.cli setup --stage prod")


SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{API_KEY_SECRET}-??????"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE}"
WRITER_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{WRITER}"


@pytest.mark.parametrize("service, operation, check, fix", [
    ("kinesis", "DescribeStreamSummary", f"stream {STREAM}",
     f"give your identity kinesis:DescribeStreamSummary on {STREAM_ARN}"),
    ("sqs", "GetQueueUrl", f"failed-batch queue {QUEUE}", f"give your identity sqs:GetQueueUrl on {QUEUE_ARN}"),
    ("sqs", "GetQueueAttributes", f"failed-batch queue {QUEUE}",
     f"give your identity sqs:GetQueueAttributes on {QUEUE_ARN}"),
    ("secretsmanager", "DescribeSecret", "report API key",
     f"give your identity secretsmanager:DescribeSecret on {SECRET_ARN}"),
    ("lambda", "ListEventSourceMappings", f"writer trigger ({WRITER})",
     "give your identity lambda:ListEventSourceMappings on *"),
    ("lambda", "GetFunctionUrlConfig", "front door dalet-prod-track",
     f"give your identity lambda:GetFunctionUrlConfig on arn:aws:lambda:{REGION}:{ACCOUNT}:function:dalet-prod-track"),
    ("apigateway", "GetStage", "REST API (stage api)",
     f"give your identity apigateway:GetStage on arn:aws:apigateway:{REGION}::/restapis/*"),
    ("cloudwatch", "DescribeAlarms", "alarms",
     f"give your identity cloudwatch:DescribeAlarms on arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:*"),
])
def test_preflight_reports_an_aws_permission_it_lacks_and_runs_every_other_check(
        aws, bigquery, project, capsys, monkeypatch, service, operation, check, fix):
    set_up_and_deploy(capsys, project)
    refuse(monkeypatch, service, operation)

    code, output = preflight(capsys, project)

    (line,) = failed_lines(output)
    assert code == 1 and output.strip().endswith("1 check(s) failed")
    assert line.startswith(f"FAIL  {check}: {operation} answered AccessDeniedException")
    assert line.endswith(f"fix: {fix}")
    # credentials, stream, queue, key, trigger, parking, API function, REST API, front door, 3 log groups,
    # alarms, Google, 3 tables
    assert len(checked_lines(output)) == 18


def test_preflight_reports_a_function_it_may_not_look_at_and_runs_every_other_check(
        aws, bigquery, project, capsys, monkeypatch):
    set_up_and_deploy(capsys, project)
    refuse(monkeypatch, "lambda", "GetFunction")

    code, output = preflight(capsys, project)

    failures = failed_lines(output)
    assert code == 1 and len(checked_lines(output)) == 12   # no deployment seen: no REST API, front door, alarms
    assert failures[0].startswith(f"FAIL  writer trigger ({WRITER}): GetFunction answered AccessDeniedException")
    assert failures[0].endswith(f"fix: give your identity lambda:GetFunction on {WRITER_ARN}")
    assert failures[1].startswith("FAIL  API function dalet-prod: GetFunction answered AccessDeniedException")


def test_preflight_reports_an_unreachable_aws_endpoint_and_runs_the_other_checks(
        aws, bigquery, project, capsys, monkeypatch):
    from botocore.exceptions import EndpointConnectionError

    set_up_and_deploy(capsys, project)
    refuse(monkeypatch, "sqs", "GetQueueUrl", EndpointConnectionError(endpoint_url="https://sqs.us-east-1.amazonaws.com"))

    code, output = preflight(capsys, project)

    (line,) = failed_lines(output)
    assert code == 1 and line.startswith(f"FAIL  failed-batch queue {QUEUE}: Could not connect to the endpoint URL")
    assert "fix: check the network and that us-east-1 is the right region (--region)" in line
    assert any(line.startswith(f"ok    stream {STREAM}") for line in checked_lines(output))
    assert sum("BigQuery table" in line for line in checked_lines(output)) == 4


def test_preflight_without_aws_credentials_midway_says_how_to_provide_them(aws, bigquery, project, capsys,
                                                                           monkeypatch):
    from botocore.exceptions import NoCredentialsError

    set_up_and_deploy(capsys, project)
    refuse(monkeypatch, "secretsmanager", "DescribeSecret", NoCredentialsError())

    code, output = preflight(capsys, project)

    (line,) = failed_lines(output)
    assert code == 1 and line.startswith("FAIL  report API key: no AWS credentials") and "aws configure" in line


def test_preflight_reports_bigquery_refusing_access_with_the_roles_to_grant(aws, bigquery, project, capsys,
                                                                            monkeypatch):
    from tests.bigquery_standin import HttpError

    set_up_and_deploy(capsys, project)

    def forbidden(project_id, dataset, table, **_):
        raise HttpError(403, f"Access Denied: Table {project_id}:{dataset}.{table}: Permission bigquery.tables.get "
                             "denied", "accessDenied")

    monkeypatch.setattr(bigquery, "_get_table", forbidden)

    code, output = preflight(capsys, project)

    failures = failed_lines(output)
    assert code == 1 and len(failures) == 4 and len(checked_lines(output)) == 18
    for line, table in zip(failures, ("events", "dead_letters", "deletions", "report_answers"), strict=True):
        assert line.startswith(f"FAIL  BigQuery table test-project.dalet.{table}: BigQuery refused access (403")
        assert line.endswith("fix: grant the identity of Application Default Credentials the BigQuery Data Editor "
                             "role on dataset test-project.dalet and BigQuery Job User on project test-project")


def test_preflight_reports_google_refusing_the_credentials_and_runs_every_check(aws, bigquery, project, capsys,
                                                                                monkeypatch):
    from google.auth.exceptions import RefreshError

    set_up_and_deploy(capsys, project)

    def refused(*_, **__):
        raise RefreshError("invalid_grant: Invalid JWT Signature.")

    monkeypatch.setattr(bigquery.client, "get_table", refused)

    code, output = preflight(capsys, project)

    tables = [line for line in checked_lines(output) if "BigQuery table" in line]
    assert code == 1 and len(tables) == 4
    for line in tables:
        assert "FAIL" in line and "Google refused the credentials: invalid_grant: Invalid JWT Signature." in line
        assert "fix: run `gcloud auth application-default login` again" in line


# ---- replay ------------------------------------------------------------------------


def put_events(count: int) -> list[str]:
    kinesis = boto3.client("kinesis")
    received = datetime(2024, 5, 1, tzinfo=timezone.utc)
    sequence_numbers = []
    for index in range(count):
        stored = stamp(Event("alephbet", "button color", "red", "participate", f"user-{index}"), received)
        answer = kinesis.put_record(StreamName=STREAM, Data=encode_record(stored), PartitionKey=stored.event_id,
                                    ExplicitHashKey="0")
        sequence_numbers.append(answer["SequenceNumber"])
    return sequence_numbers


def park(first: str, last: str, shard: str = "shardId-000000000000") -> None:
    """What Lambda sends the on-failure destination when a batch exhausts its retries."""
    note = {"requestContext": {"condition": "RetryAttemptsExhausted"}, "KinesisBatchInfo": {
        "shardId": shard, "startSequenceNumber": first, "endSequenceNumber": last, "batchSize": 3,
        "streamArn": STREAM_ARN}}
    queue_url = boto3.client("sqs").get_queue_url(QueueName=QUEUE)["QueueUrl"]
    boto3.client("sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps(note))


def queued_messages() -> int:
    sqs = boto3.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"],
                                          AttributeNames=["ApproximateNumberOfMessages",
                                                          "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(value) for value in attributes.values())


def test_replay_writes_exactly_the_parked_batch_and_removes_it_from_the_queue(aws, bigquery, project, capsys):
    setup(capsys, project)
    sequence_numbers = put_events(5)
    park(sequence_numbers[1], sequence_numbers[3])

    code, output = run(capsys, "replay", "--stage", "prod", "--project-dir", str(project))

    assert code == 0, output
    assert sorted(row["uuid"] for row in bigquery.rows("dalet.events")) == ["user-1", "user-2", "user-3"]
    assert queued_messages() == 0
    assert "1 batch(es), 3 record(s) written; 0 left on the queue" in output


def test_replay_writes_parked_records_and_pointer_notes_in_one_run(aws, bigquery, project, capsys):
    from datetime import timedelta

    from chalicelib.storage.parking import Parking
    from chalicelib.storage.writer import StreamRecord

    setup(capsys, project)
    sequence_numbers = put_events(2)
    park(sequence_numbers[0], sequence_numbers[1])
    queue_url = boto3.client("sqs").get_queue_url(QueueName=QUEUE)["QueueUrl"]
    received = datetime(2024, 5, 1, tzinfo=timezone.utc)
    parked = [StreamRecord(str(9000 + n), f"key-{n}", encode_record(stamp(
        Event("alephbet", "button color", "red", "participate", f"parked-{n}"), received)), received)
        for n in range(3)]
    Parking(queue_url, timedelta(hours=1)).park(parked, "BigQuery was down")

    code, output = run(capsys, "replay", "--stage", "prod", "--project-dir", str(project))

    assert code == 0, output
    assert sorted(row["uuid"] for row in bigquery.rows("dalet.events")) == [
        "parked-0", "parked-1", "parked-2", "user-0", "user-1"]
    assert queued_messages() == 0
    assert "parked because BigQuery was down): 3 records written" in output


def test_replay_leaves_a_batch_on_the_queue_while_bigquery_still_fails(aws, bigquery, project, capsys):
    from dalet_ops import replay
    from chalicelib.storage.bigquery_warehouse import BigQueryWarehouse
    from chalicelib.storage.writer import TransientWarehouseError

    setup(capsys, project)
    sequence_numbers = put_events(2)
    park(sequence_numbers[0], sequence_numbers[1])
    bigquery.fail_inserts(503, times=None)
    sqs, kinesis = boto3.client("sqs"), boto3.client("kinesis")
    warehouse = BigQueryWarehouse(bigquery.client, "dalet", "events", retry=None)

    with pytest.raises(TransientWarehouseError):
        replay.replay_parked_batches(sqs, sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"], kinesis, STREAM,
                                     STREAM_ARN, warehouse, print)

    assert bigquery.rows("dalet.events") == []
    visible = sqs.get_queue_attributes(QueueUrl=sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"],
                                       AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert visible["ApproximateNumberOfMessages"] == "1"


# ---- snippet, template, teardown ---------------------------------------------------


def test_snippet_points_alephbet_at_the_deployed_track_url(capsys):
    code, output = run(capsys, "snippet", "--url", "https://abc123.execute-api.us-east-1.amazonaws.com/api/",
                       "--namespace", "shop")

    assert code == 0
    assert 'new AlephBet.GimelAdapter("https://abc123.execute-api.us-east-1.amazonaws.com/api/track", "shop")' in output


def test_snippet_without_a_front_door_falls_back_to_the_rest_api_chalice_deploy_recorded(aws, project, capsys):
    deployed = project / ".chalice" / "deployed"
    deployed.mkdir()
    (deployed / "prod.json").write_text(json.dumps({"resources": [
        {"name": "rest_api", "resource_type": "rest_api", "rest_api_id": "xyz",
         "rest_api_url": "https://xyz.execute-api.eu-west-1.amazonaws.com/api/"}]}))

    code, output = run(capsys, "snippet", "--stage", "prod", "--project-dir", str(project))

    assert code == 0 and '"https://xyz.execute-api.eu-west-1.amazonaws.com/api/track"' in output
    assert "no front door found" in output


def test_snippet_points_alephbet_at_the_front_door_setup_opened(aws, bigquery, project, capsys):
    setup(capsys, project)
    deploy_writer()
    setup(capsys, project)
    url = boto3.client("lambda").get_function_url_config(FunctionName="dalet-prod-track")["FunctionUrl"]

    code, output = run(capsys, "snippet", "--stage", "prod", "--project-dir", str(project))

    assert code == 0 and f'new AlephBet.GimelAdapter("{url.rstrip("/")}/track", "alephbet")' in output


def test_snippet_refuses_a_url_that_is_not_http(capsys):
    code, output = run(capsys, "snippet", "--url", "abc123.execute-api.us-east-1.amazonaws.com")

    assert code == 1 and "--url must be an http(s) URL" in output


def test_teardown_prints_the_commands_and_runs_nothing(capsys):
    code, output = run(capsys, "teardown", "--stage", "prod")

    assert code == 0
    for command in ("chalice delete --stage prod", f"aws kinesis delete-stream --stream-name {STREAM}",
                    f"--queue-name {QUEUE}", f"aws secretsmanager delete-secret --secret-id {API_KEY_SECRET}"):
        assert command in output


def test_the_merge_template_in_the_checkout_matches_the_stage_config(capsys):
    code, output = run(capsys, "template", "--stage", "prod", "--check")

    assert code == 0, output


# ---- a command line that explains itself -------------------------------------------------------


def test_purge_on_the_embedded_default_says_it_is_not_needed_and_why(data_dir, capsys):
    code, output = run(capsys, "purge")

    assert code == 0
    assert "not needed" in output and "when it is deleted" in output and "DALET_BACKEND=aws" in output
    assert not data_dir.exists()            # nothing opened


@pytest.mark.parametrize("arguments, status", [
    (["snippet", "--url", "http://127.0.0.1:8000"], 141), (["teardown", "--stage", "prod"], 141),
    (["--help"], 0),        # argparse itself stops writing help nobody reads
])
def test_a_reader_that_went_away_ends_the_command_quietly(arguments, status):
    # `... | head` closes the pipe early; here it is closed before the command writes at all.
    import os
    import subprocess
    import sys

    reader, writer = os.pipe()
    os.close(reader)
    try:
        finished = subprocess.run([sys.executable, "-m", "dalet_ops.cli", *arguments], stdout=writer,
                                  stderr=subprocess.PIPE, text=True, timeout=120, cwd=Path(__file__).parent.parent)
    finally:
        os.close(writer)

    assert finished.stderr == "" and finished.returncode == status      # 141: as if killed by SIGPIPE


def _every_option():
    import argparse

    from dalet_ops import cli

    parser = cli.build_parser()
    (commands,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    for name, command in commands.choices.items():
        for action in command._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                yield name, action


@pytest.mark.parametrize("command, option", [(name, action) for name, action in _every_option()],
                         ids=lambda value: value if isinstance(value, str) else "/".join(value.option_strings))
def test_every_option_of_every_command_has_help_text(command, option):
    assert option.help and option.help.strip(), f"{command} {'/'.join(option.option_strings)} has no help"
