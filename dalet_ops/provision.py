"""`setup`: create what `chalice deploy` does not, idempotently, and say what was found or made.

Order matters: the stream, queue and secrets must exist before the policy files can
name their ARNs, and the policy files before `chalice deploy` creates the roles. What
belongs to the deployed functions (the writer's trigger settings, the front door's
function URL, the REST API's throttling, log levels, log groups, alarms) can only be set once
`chalice deploy` has created them, so running `setup` again after the first deploy
finishes the job. On the CloudFormation path the template sets all of those, and
`setup` only checks the trigger and reports the front door.

Those later steps, and the BigQuery tables, are independent: each one runs and reports
its own outcome even if another failed, so a BigQuery outage never leaves the trigger
untuned. The writer's trigger goes first: without it a partly written batch is lost.
"""
from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from secrets import token_urlsafe
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import google_credentials
from chalicelib.config import Settings
from chalicelib.secrets import (
    NOT_FOUND_CODES,
    SECRETS_MANAGER,
    SSM,
    SecretReference,
    api_key_in,
    fetch_secret,
    parse_reference,
)
from chalicelib.storage import schema
from dalet_ops import iam_policies, infrastructure
from dalet_ops.stage import FUNCTIONS, TRACK, WRITER, Stage

Printer = Callable[[str], None]
TRIGGER_SETTLE_ATTEMPTS = 10
TRIGGER_SETTLE_SECONDS = 3.0
# The deploy tools wait this long for one BigQuery call, retries included (the client's
# default is 600 s per call: setup and preflight would hang for minutes on a dead network).
BIGQUERY_OPS_DEADLINE_SECONDS = 10.0
BIGQUERY_OPS_REQUEST_TIMEOUT_SECONDS = 5.0
CLOUDFORMATION_STACK_TAG = "aws:cloudformation:stack-name"


class SetupError(RuntimeError):
    """A step failed; the message says what and how to fix it."""

    def __init__(self, problem: str, fix: str = ""):
        super().__init__(f"{problem}: {fix}" if fix else problem)
        self.problem = problem
        self.fix = fix


@dataclass(frozen=True)
class Identity:
    account: str
    partition: str
    region: str
    principal: str

    @property
    def location(self) -> iam_policies.AwsLocation:
        return iam_policies.AwsLocation(self.partition, self.region, self.account)


@dataclass(frozen=True)
class StreamOptions:
    mode: str = infrastructure.DEFAULT_STREAM_MODE
    shards: int = infrastructure.DEFAULT_SHARDS
    retention_hours: int = infrastructure.STREAM_RETENTION_HOURS

    def __post_init__(self) -> None:
        lowest, highest = infrastructure.MIN_STREAM_RETENTION_HOURS, infrastructure.MAX_STREAM_RETENTION_HOURS
        if not lowest <= self.retention_hours <= highest:
            raise SetupError(
                f"--retention-hours must be at least {lowest} and at most {highest}, got {self.retention_hours}",
                f"the writer parks a failing batch when its records are {infrastructure.MAX_RECORD_AGE_HOURS} h "
                "old, and replay reads them back from the stream, so the stream must keep them at least "
                f"{infrastructure.REPLAY_WINDOW_HOURS} h longer (default {infrastructure.STREAM_RETENTION_HOURS})")


def aws_identity(session: Any) -> Identity:
    """Who and where we are; raises SetupError naming the fix when AWS is not configured."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    if not session.region_name:
        raise SetupError("no AWS region", "set AWS_DEFAULT_REGION, pass --region, or set one in your AWS profile")
    try:
        caller = session.client("sts").get_caller_identity()
    except NoCredentialsError:
        raise SetupError("no AWS credentials", "run `aws configure`, set AWS_PROFILE, "
                         "or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from None
    except (BotoCoreError, ClientError) as error:
        raise SetupError(f"AWS rejected the credentials ({error})", "check AWS_PROFILE and the keys") from None
    return Identity(caller["Account"], caller["Arn"].split(":")[1], session.region_name, caller["Arn"])


@dataclass(frozen=True)
class Deployment:
    """How the stage's functions were deployed, as far as AWS can tell."""
    deployed: bool
    stack: str | None = None        # the CloudFormation stack that owns them, if any

    @property
    def by_cloudformation(self) -> bool:
        return self.stack is not None


@dataclass
class SetupOutcome:
    deployment: Deployment
    failed_steps: list[str] = field(default_factory=list)


def run_setup(stage: Stage, session: Any, say: Printer, stream: StreamOptions = StreamOptions(),
              show_key: bool = False, bigquery_settings: Settings | None = None,
              alarm_email: str | None = None) -> SetupOutcome:
    settings = stage.settings
    identity = aws_identity(session)
    say(f"AWS account {identity.account}, region {identity.region}, as {identity.principal}")
    stream_arn = ensure_stream(session.client("kinesis"), settings.stream_name, stream, say)
    queue_arn, queue_url = ensure_failure_queue(session.client("sqs"), stage.failure_queue_name, say)
    api_key_arn = ensure_api_key_secret(session, settings, show_key, say)
    google_arn = find_google_secret(session, settings, say)
    resources = iam_policies.StageResources(identity.location, stream_arn, queue_arn, api_key_arn, google_arn)
    write_policy_files(stage, resources, say)
    lambda_client = session.client("lambda")
    deployment = find_deployment(lambda_client, stage)
    advise_failure_queue_variable(stage, queue_url, deployment, say)
    steps: list[tuple[str, Callable[[], None]]] = [
        ("writer trigger", lambda: configure_trigger(lambda_client, stage.function_name(WRITER), stream_arn,
                                                     queue_arn, say)),
        ("front door", lambda: ensure_front_door(lambda_client, stage, deployment, say)),
    ]
    if deployment.by_cloudformation:
        say(f"REST API throttling, function log levels, log groups and alarms: set by CloudFormation stack "
            f"{deployment.stack}")
    elif deployment.deployed:
        steps += [
            ("REST API throttling", lambda: ensure_rest_api_throttling(session.client("apigateway"), stage, say)),
            ("function log levels", lambda: ensure_function_logging(lambda_client, stage, say)),
            ("log groups", lambda: ensure_log_groups(session.client("logs"), stage, say)),
            ("alarms", lambda: ensure_alarms(session.client("sns"), session.client("cloudwatch"), stage,
                                             alarm_email, say)),
        ]
    steps.append(("BigQuery tables", lambda: ensure_bigquery_tables(bigquery_settings or settings, say)))
    outcome = SetupOutcome(deployment)
    for name, step in steps:
        try:
            step()
        except SetupError as error:
            say(f"FAILED {name}: {error}")
            outcome.failed_steps.append(name)
        except (BotoCoreError, ClientError) as error:
            say(f"FAILED {name}: AWS answered {type(error).__name__}: {error}")
            outcome.failed_steps.append(name)
    return outcome


def find_deployment(lambda_client: Any, stage: Stage) -> Deployment:
    """Whether `chalice deploy` or a CloudFormation stack has created the writer (its tags tell which)."""
    try:
        function = lambda_client.get_function(FunctionName=stage.function_name(WRITER))
    except lambda_client.exceptions.ResourceNotFoundException:
        return Deployment(False)
    return Deployment(True, (function.get("Tags") or {}).get(CLOUDFORMATION_STACK_TAG))


def front_door_track_url(function_url: str) -> str:
    """The /track URL behind a function URL (AWS gives it with a trailing slash)."""
    return function_url.rstrip("/") + "/track"


def ensure_front_door(lambda_client: Any, stage: Stage, deployment: Deployment, say: Printer) -> None:
    """The track function's public URL, with CORS, created if missing (chalice deploy cannot)."""
    name = stage.function_name(TRACK)
    try:
        lambda_client.get_function(FunctionName=name)
    except lambda_client.exceptions.ResourceNotFoundException:
        say(f"front door: {name} is not deployed yet; after `chalice deploy`, run setup again to give it "
            "its function URL")
        return
    wanted = {"AuthType": infrastructure.FRONT_DOOR_AUTH, "Cors": infrastructure.FRONT_DOOR_CORS}
    try:
        current = lambda_client.get_function_url_config(FunctionName=name)
    except lambda_client.exceptions.ResourceNotFoundException:
        if deployment.by_cloudformation:
            raise SetupError(f"{name} has no function URL, though stack {deployment.stack} should have made it",
                             "deploy the template that `chalice package --merge-template` writes") from None
        current = lambda_client.create_function_url_config(FunctionName=name, **wanted)
        status = "created"
    else:
        status = "found"
        if not deployment.by_cloudformation and {k: current.get(k) for k in wanted} != wanted:
            current = lambda_client.update_function_url_config(FunctionName=name, **wanted)
            status = "updated"
    if not deployment.by_cloudformation:
        _allow_public_url_calls(lambda_client, name)
    url = front_door_track_url(current["FunctionUrl"])
    say(f"front door {name}: {status}; AlephBet's track URL is {url}")
    if not deployment.by_cloudformation and stage.environment.get("DALET_TRACK_URL") != url:
        say(f"  so that /snippet hands it out: add \"DALET_TRACK_URL\": \"{url}\" to the {stage.name} stage's "
            f"environment_variables in .chalice/config.json and run chalice deploy --stage {stage.name} again")


def _allow_public_url_calls(lambda_client: Any, name: str) -> None:
    """The resource policy statements that let anyone call the URL (auth NONE), each added once."""
    try:
        policy = json.loads(lambda_client.get_policy(FunctionName=name)["Policy"])
    except lambda_client.exceptions.ResourceNotFoundException:
        policy = {"Statement": []}
    present = {statement.get("Sid") for statement in policy["Statement"]}
    for sid, action, condition in infrastructure.FRONT_DOOR_PERMISSIONS:
        if sid not in present:
            lambda_client.add_permission(FunctionName=name, StatementId=sid, Action=action, Principal="*",
                                         **condition)


def deployed_rest_api_id(apigateway: Any, stage: Stage) -> str | None:
    """The REST API `chalice deploy` created: from its record in .chalice/deployed, else by name."""
    record = stage.project_dir / ".chalice" / "deployed" / f"{stage.name}.json"
    try:
        for resource in json.loads(record.read_text())["resources"]:
            if resource.get("resource_type") == "rest_api" and resource.get("rest_api_id"):
                return str(resource["rest_api_id"])
    except (OSError, ValueError, KeyError):
        pass
    named = [api["id"] for api in apigateway.get_rest_apis(limit=500)["items"] if api["name"] == stage.app_name]
    return named[0] if len(named) == 1 else None


def throttling_patch() -> list[dict[str, str]]:
    return [{"op": "replace", "path": "/*/*/throttling/rateLimit", "value": str(infrastructure.REST_API_RATE_LIMIT)},
            {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": str(infrastructure.REST_API_BURST_LIMIT)}]


def rest_api_throttling(apigateway: Any, api_id: str, stage_name: str) -> tuple[float | None, int | None]:
    settings = apigateway.get_stage(restApiId=api_id, stageName=stage_name).get("methodSettings", {}).get("*/*", {})
    return settings.get("throttlingRateLimit"), settings.get("throttlingBurstLimit")


def ensure_rest_api_throttling(apigateway: Any, stage: Stage, say: Printer) -> None:
    """Every method of the REST API's stage throttled (chalice deploy sets no limit)."""
    api_id = deployed_rest_api_id(apigateway, stage)
    if api_id is None:
        raise SetupError(f"no REST API named {stage.app_name} found (or more than one)",
                         f"run chalice deploy --stage {stage.name}, then setup again")
    wanted = (infrastructure.REST_API_RATE_LIMIT, infrastructure.REST_API_BURST_LIMIT)
    status = "found"
    if rest_api_throttling(apigateway, api_id, stage.api_gateway_stage) != wanted:
        apigateway.update_stage(restApiId=api_id, stageName=stage.api_gateway_stage, patchOperations=throttling_patch())
        status = "updated"
    say(f"REST API {api_id} stage {stage.api_gateway_stage}: {status}, every method throttled to "
        f"{wanted[0]:g} requests/s, bursts of {wanted[1]}")


def ensure_function_logging(lambda_client: Any, stage: Stage, say: Printer) -> None:
    """JSON logs at WARN for every function: no per-request lines (chalice deploy cannot set this)."""
    for function in FUNCTIONS:
        name = stage.function_name(function)
        current = lambda_client.get_function_configuration(FunctionName=name).get("LoggingConfig") or {}
        if any(current.get(key) != value for key, value in infrastructure.LOGGING_CONFIG.items()):
            update = partial(lambda_client.update_function_configuration,
                             FunctionName=name, LoggingConfig=dict(infrastructure.LOGGING_CONFIG))
            _while_settling(update, lambda_client)
    say(f"function log levels: {', '.join(stage.function_name(f) for f in FUNCTIONS)} log JSON at "
        f"{infrastructure.LOGGING_CONFIG['ApplicationLogLevel']} (application and platform lines)")


def log_group_retention(logs: Any, group: str) -> tuple[bool, int | None]:
    """Whether the log group exists, and how many days it keeps (None: forever)."""
    for found in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
        if found["logGroupName"] == group:
            return True, found.get("retentionInDays")
    return False, None


def ensure_log_groups(logs: Any, stage: Stage, say: Printer) -> None:
    """Every function's real log group, with the stage's retention and its metric filters.

    `chalice deploy` gives the API function's retention to `/aws/lambda/app-stage-api_handler`,
    a group the function (named `app-stage`) never writes to; Lambda then creates the real one
    itself on the first call, keeping logs forever. So the groups are made here, by the
    functions' real names.
    """
    days = infrastructure.log_retention_days(stage)
    for function in FUNCTIONS:
        group = infrastructure.log_group_name(stage, function)
        exists, retention = log_group_retention(logs, group)
        if not exists:
            logs.create_log_group(logGroupName=group)
        if retention != days:
            logs.put_retention_policy(logGroupName=group, retentionInDays=days)
        counted = [metric for metric in infrastructure.LOG_METRICS if function in metric.functions]
        for metric in counted:
            logs.put_metric_filter(**infrastructure.metric_filter_settings(stage, metric, group))
        status = "created" if not exists else "found" if retention == days else \
            f"found keeping {retention_words(retention)}, changed"
        counts = f"; counts {', '.join(m.name for m in counted)}" if counted else ""
        say(f"log group {group}: {status}; keeps {days} days{counts}")


def retention_words(days: int | None) -> str:
    return f"{days} days" if days else "logs forever"


def _while_settling(update: Callable[[], Any], lambda_client: Any) -> None:
    """Run a Lambda update, waiting while the function is still being created or updated."""
    for attempt in range(TRIGGER_SETTLE_ATTEMPTS):
        try:
            update()
            return
        except (lambda_client.exceptions.ResourceConflictException,
                lambda_client.exceptions.ResourceInUseException):
            if attempt == TRIGGER_SETTLE_ATTEMPTS - 1:
                raise SetupError("the function is still being deployed or updated",
                                 "run setup again in a minute") from None
            time.sleep(TRIGGER_SETTLE_SECONDS)


def ensure_alarms(sns: Any, cloudwatch: Any, stage: Stage, email: str | None, say: Printer) -> None:
    """The alarm topic, the alarms that notify it, and the email subscription if asked for."""
    topic_arn = sns.create_topic(Name=infrastructure.alarm_topic_name(stage))["TopicArn"]   # idempotent
    for alarm in infrastructure.ALARMS:
        cloudwatch.put_metric_alarm(**infrastructure.alarm_settings(stage, alarm), ActionsEnabled=True,
                                    AlarmActions=[topic_arn])
    subscribed = [s["Endpoint"] for s in sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]]
    if email and email not in subscribed:
        sns.subscribe(TopicArn=topic_arn, Protocol="email", Endpoint=email)
        subscribed.append(email)
        say(f"alarm topic: subscribed {email} (confirm the email AWS sends)")
    names = ", ".join(alarm.suffix for alarm in infrastructure.ALARMS)
    say(f"alarms ({names}) notify {topic_arn}; subscribers: {', '.join(subscribed) or 'none yet'} "
        f"(add one with --alarm-email or aws sns subscribe --topic-arn {topic_arn} --protocol email ...)")


def ensure_stream(kinesis: Any, name: str, options: StreamOptions, say: Printer) -> str:
    """The stream, created if missing, ACTIVE, encrypted and keeping data long enough to replay."""
    try:
        kinesis.describe_stream_summary(StreamName=name)
        status = "found"
    except kinesis.exceptions.ResourceNotFoundException:
        create: dict[str, Any] = {"StreamName": name, "StreamModeDetails": {"StreamMode": options.mode}}
        if options.mode == "PROVISIONED":
            create["ShardCount"] = options.shards
        kinesis.create_stream(**create)
        status = "created"
    summary = _wait_active(kinesis, name)
    changes = []
    if summary["RetentionPeriodHours"] < options.retention_hours:
        kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=options.retention_hours)
        changes.append(f"retention raised to {options.retention_hours} h")
        summary = _wait_active(kinesis, name)
    if summary.get("EncryptionType", "NONE") == "NONE":
        kinesis.start_stream_encryption(StreamName=name, EncryptionType="KMS",
                                        KeyId=infrastructure.STREAM_ENCRYPTION_KEY)
        changes.append("encryption turned on")
        summary = _wait_active(kinesis, name)
    mode = summary.get("StreamModeDetails", {}).get("StreamMode", "PROVISIONED")
    say(f"stream {name}: {status}, {summary['StreamStatus']}, {mode}, "
        f"{summary['RetentionPeriodHours']} h retention{''.join('; ' + c for c in changes)}")
    return summary["StreamARN"]


def _wait_active(kinesis: Any, name: str) -> dict[str, Any]:
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 5, "MaxAttempts": 120})
    return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]


def ensure_failure_queue(sqs: Any, name: str, say: Printer) -> tuple[str, str]:
    """The failed-batch queue (its ARN and URL), created or brought to 14 days' retention.

    The writer parks records there that the stream may already have forgotten: a queue
    keeping them less (SQS's default is 4 days) would lose them on a long weekend.
    """
    retention = str(infrastructure.FAILURE_QUEUE_RETENTION_SECONDS)
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        status = "found"
    except sqs.exceptions.QueueDoesNotExist:
        url = sqs.create_queue(QueueName=name, Attributes={
            "MessageRetentionPeriod": retention,
            "SqsManagedSseEnabled": "true",
        })["QueueUrl"]
        status = "created"
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "MessageRetentionPeriod"])
    if attributes["Attributes"]["MessageRetentionPeriod"] != retention:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"MessageRetentionPeriod": retention})
        status += (f"; retention raised from {int(attributes['Attributes']['MessageRetentionPeriod']) // 3600} h "
                   "to 14 days")
    say(f"failed-batch queue {name}: {status} ({url}), keeps messages 14 days")
    return attributes["Attributes"]["QueueArn"], url


def advise_failure_queue_variable(stage: Stage, queue_url: str, deployment: Deployment, say: Printer) -> None:
    """With `chalice deploy`, the writer learns where to park records only from the stage's configuration."""
    if deployment.by_cloudformation or stage.environment.get(infrastructure.FAILURE_QUEUE_URL_VARIABLE) == queue_url:
        return
    say(f"  so that the writer parks failing batches' records in the queue (they outlive the stream): add "
        f"\"{infrastructure.FAILURE_QUEUE_URL_VARIABLE}\": \"{queue_url}\" to the {stage.name} stage's "
        "environment_variables in .chalice/config.json, then chalice deploy")


def ensure_api_key_secret(session: Any, settings: Settings, show_key: bool, say: Printer) -> str | None:
    """The report API key's secret, generated if absent; the key itself is printed only on request."""
    if not settings.api_key_secret:
        if settings.api_key:
            say("report API key: DALET_API_KEY is set in .chalice/config.json (a secret is safer: "
                "set DALET_API_KEY_SECRET instead)")
            return None
        raise SetupError("no report API key configured: set DALET_API_KEY_SECRET (e.g. dalet/prod/api-key) "
                         "in the stage's environment_variables in .chalice/config.json")
    reference = parse_reference(settings.api_key_secret, "DALET_API_KEY_SECRET")
    found = _existing_secret_arn(session, reference)
    arn = found or _create_api_key_secret(session, reference)
    say(f"report API key {reference}: {'found' if found else 'created'}; read it with: {read_command(reference)}")
    if show_key:
        # The key as the report routes see it: plain text, or a JSON secret's api_key field.
        say(f"report API key (x-api-key): {api_key_in(reference, fetch_secret(reference, session))}")
    return arn


def read_command(reference: SecretReference) -> str:
    if reference.store == SSM:
        return f"aws ssm get-parameter --name {reference.name} --with-decryption --query Parameter.Value --output text"
    return f"aws secretsmanager get-secret-value --secret-id {reference.name} --query SecretString --output text"


def _create_api_key_secret(session: Any, reference: SecretReference) -> str:
    """A new random key in the missing secret or parameter; its ARN."""
    description = "Dalet: the x-api-key for the report routes"
    if reference.store == SSM:
        session.client(SSM).put_parameter(Name=reference.name, Value=token_urlsafe(32), Type="SecureString",
                                          Description=description)
        return secret_arn(session, reference)
    if reference.name.startswith("arn:"):
        raise SetupError(f"{reference} does not exist; give a secret name instead of an ARN and setup will create it")
    return session.client(SECRETS_MANAGER).create_secret(Name=reference.name, SecretString=token_urlsafe(32),
                                                         Description=description)["ARN"]


def secret_arn(session: Any, reference: SecretReference) -> str:
    """The secret's or parameter's ARN (its value is not read); AWS's ClientError if missing or refused."""
    if reference.store == SSM:
        return session.client(SSM).get_parameter(Name=reference.name)["Parameter"]["ARN"]
    return session.client(SECRETS_MANAGER).describe_secret(SecretId=reference.name)["ARN"]


def _existing_secret_arn(session: Any, reference: SecretReference) -> str | None:
    """The secret's or parameter's ARN, or None if AWS says it does not exist."""
    try:
        return secret_arn(session, reference)
    except ClientError as error:
        if aws_error_code(error) in NOT_FOUND_CODES:
            return None
        raise


def find_google_secret(session: Any, settings: Settings, say: Printer) -> str | None:
    """The service-account key's secret, if that is how BigQuery is reached; setup never invents a key."""
    if not settings.google_credentials_secret:
        return None
    reference = parse_reference(settings.google_credentials_secret, "DALET_GOOGLE_CREDENTIALS_SECRET")
    arn = _existing_secret_arn(session, reference)
    if arn is None:
        raise SetupError(
            f"{reference} does not exist: store the key file there, e.g. `aws secretsmanager create-secret "
            f"--name {reference.name} --secret-string file://key.json` (or switch to workload identity "
            "federation with DALET_GOOGLE_CREDENTIALS_CONFIG, which needs no key)"
        )
    say(f"Google service-account key {reference}: found")
    return arn


def write_policy_files(stage: Stage, resources: iam_policies.StageResources, say: Printer) -> None:
    documents = iam_policies.policy_documents(stage, resources)
    for function in FUNCTIONS:
        stage.policy_file(function).write_text(json.dumps(documents[function], indent=2) + "\n")
    names = ", ".join(str(stage.policy_file(f).relative_to(stage.project_dir)) for f in FUNCTIONS)
    functions = ", ".join(stage.function_name(f) for f in FUNCTIONS)
    say(f"IAM policies for {functions}: wrote {names}")


def warehouse_tables(settings: Settings) -> list[tuple[str, schema.Table]]:
    """Every table the warehouse keeps, by its BigQuery name (the events table's name is configurable)."""
    tables = [(settings.bq_table, schema.EVENTS)]
    tables += sorted(((t.name, t) for t in vars(schema).values()
                      if isinstance(t, schema.Table) and t is not schema.EVENTS), key=lambda pair: pair[0])
    return tables


def ensure_bigquery_tables(settings: Settings, say: Printer) -> None:
    from chalicelib.storage.bigquery_warehouse import BigQueryWarehouse

    source = google_credentials.source_label(settings)
    client = google_credentials.bigquery_client(settings)
    tables = warehouse_tables(settings)
    warehouse = BigQueryWarehouse(client, settings.bq_dataset, settings.bq_table, retry=bigquery_ops_retry(),
                                  timeout=BIGQUERY_OPS_REQUEST_TIMEOUT_SECONDS)
    try:
        existed = {name: warehouse.table_exists(name) for name, _ in tables}
        # The warehouse's own creation (no second copy of the DDL here); the report tables
        # include the writer's.
        warehouse.ensure_report_tables()
        migrated = warehouse.migrate_tables()
    except Exception as error:
        raise bigquery_setup_error(error, settings, source, client.project) from None
    for name, table in tables:
        say(f"BigQuery table {client.project}.{settings.bq_dataset}.{name}: "
            f"{'found' if existed[name] else 'created'}{_layout(table)} (credentials: {source})")
    for change in migrated:
        say(f"BigQuery table migrated: {change}")


def bigquery_ops_retry() -> Any:
    from google.cloud import bigquery

    return bigquery.DEFAULT_RETRY.with_timeout(BIGQUERY_OPS_DEADLINE_SECONDS)


def google_unreachable(error: BaseException) -> bool:
    """Whether the error (or what it wraps) is a network failure: DNS, refused or timed-out connection.

    The BigQuery client gives up with a RetryError, a GoogleAPIError like any refusal, and
    keeps the network error as its cause; token exchanges raise google.auth's TransportError.
    """
    import requests
    from google.auth import exceptions as auth_errors

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (socket.gaierror, ConnectionError, TimeoutError, auth_errors.TransportError,
                                requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
            return True
        current = getattr(current, "cause", None) or current.__cause__ or current.__context__
    return False


def bigquery_setup_error(error: Exception, settings: Settings, source: str, project: str) -> SetupError:
    """Refused (a permission to grant), unreachable (the network), or something else, told apart."""
    from google.api_core import exceptions as google_errors
    from google.auth import exceptions as auth_errors

    if google_unreachable(error):
        return SetupError(f"BigQuery is not reachable from here ({type(error).__name__}: {error})",
                          "check the network, DNS and any proxy: this machine must reach "
                          "https://bigquery.googleapis.com and https://oauth2.googleapis.com")
    if isinstance(error, google_errors.Forbidden):
        return SetupError(f"BigQuery refused ({source}): {error}",
                          f"give the identity the BigQuery Data Editor role on project {project}")
    if isinstance(error, (google_errors.Unauthorized, auth_errors.RefreshError, auth_errors.DefaultCredentialsError)):
        fix = ("workload identity federation admits only the Lambda roles: run this with --adc "
               "(your gcloud application-default login)") if settings.google_credentials_config else \
            "check the Google credentials (gcloud auth application-default login, or the key's secret)"
        return SetupError(f"Google refused the credentials ({source}): {error}", fix)
    return SetupError(f"BigQuery failed ({source}): {type(error).__name__}: {error}",
                      "run setup again; if it persists, see https://status.cloud.google.com")


def _layout(table: schema.Table) -> str:
    parts = []
    if table.partition_by:
        parts.append(f"DAY partitions on {table.partition_by}"
                     + (f", kept {table.partition_expiration_days} days" if table.partition_expiration_days else ""))
    if table.cluster_by:
        parts.append(f"clustered by {', '.join(table.cluster_by)}")
    return f" ({'; '.join(parts)})" if parts else ""


def configure_trigger(lambda_client: Any, function_name: str, stream_arn: str, queue_arn: str,
                      say: Printer) -> None:
    """Give the deployed writer's Kinesis trigger the settings `chalice deploy` cannot set."""
    if not function_deployed(lambda_client, function_name):
        say(f"writer trigger: {function_name} is not deployed yet; after `chalice deploy`, run setup "
            "again to make it report partial failures and park failing batches")
        return
    mapping = writer_trigger(lambda_client, function_name, stream_arn)
    if mapping is None:
        raise SetupError(f"{function_name} is deployed but has no trigger on the stream {stream_arn}, so nothing "
                         "writes the events to BigQuery", missing_trigger_fix(function_name))
    wanted = trigger_update(queue_arn)
    if trigger_problems(mapping, queue_arn) == []:
        say(f"writer trigger {mapping['UUID']}: found, already reporting partial failures to the queue"
            + (f"; but it is {mapping['State']}: {enable_trigger_command(mapping)}"
               if mapping.get("State") in DISABLED_TRIGGER_STATES else ""))
        return
    for attempt in range(TRIGGER_SETTLE_ATTEMPTS):
        try:
            lambda_client.update_event_source_mapping(UUID=mapping["UUID"], **wanted)
            break
        except lambda_client.exceptions.ResourceInUseException:
            if attempt == TRIGGER_SETTLE_ATTEMPTS - 1:
                raise SetupError("the writer's trigger is still being created or updated; run setup again "
                                 "in a minute") from None
            time.sleep(TRIGGER_SETTLE_SECONDS)
    say(f"writer trigger {mapping['UUID']}: updated (partial batch responses, bisect on error, retries until "
        f"the records are {infrastructure.MAX_RECORD_AGE_HOURS} h old, failed batches to the queue)")


# A mapping in these states reads nothing: the stream fills up and then forgets.
DISABLED_TRIGGER_STATES = ("Disabled", "Disabling")


def function_deployed(lambda_client: Any, function_name: str) -> bool:
    try:
        lambda_client.get_function(FunctionName=function_name)
    except lambda_client.exceptions.ResourceNotFoundException:
        return False
    return True


def writer_trigger(lambda_client: Any, function_name: str, stream_arn: str) -> dict[str, Any] | None:
    """The deployed writer's event source mapping on the stream, or None if there is none."""
    mappings = lambda_client.list_event_source_mappings(FunctionName=function_name,
                                                        EventSourceArn=stream_arn)["EventSourceMappings"]
    return mappings[0] if mappings else None


def missing_trigger_fix(function_name: str) -> str:
    return (f"`chalice deploy` creates it (app.py's on_kinesis_record for {function_name}); "
            "or redeploy the CloudFormation stack; then run setup again")


def enable_trigger_command(mapping: dict[str, Any]) -> str:
    return f"aws lambda update-event-source-mapping --uuid {mapping['UUID']} --enabled"


def trigger_update(queue_arn: str) -> dict[str, Any]:
    return {**infrastructure.TRIGGER_SETTINGS, "DestinationConfig": {"OnFailure": {"Destination": queue_arn}}}


def trigger_problems(mapping: dict[str, Any], queue_arn: str) -> list[str]:
    """How the mapping differs from what the writer needs, in words."""
    problems = []
    for key, value in infrastructure.TRIGGER_SETTINGS.items():
        if mapping.get(key) != value:
            problems.append(f"{key} is {mapping.get(key)!r}, not {value!r}")
    destination = mapping.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    if destination != queue_arn:
        problems.append(f"failed batches go to {destination or 'nowhere'}, not {queue_arn}")
    return problems


def without_stage_google_credentials(settings: Settings) -> Settings:
    """The settings with the workstation's Application Default Credentials instead of the stage's."""
    return replace(settings, google_credentials_config=None, google_credentials_secret=None)


def aws_error_code(error: Exception) -> str:
    """The code in an AWS error answer (botocore's ClientError), or "" for any other error."""
    response = getattr(error, "response", None) or {}
    return response.get("Error", {}).get("Code", "")

