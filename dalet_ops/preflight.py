"""`preflight`: is a deployed stage ready for traffic? One line per check, with the fix when not.

Checks only read: nothing is created or changed (that is `setup`'s job). A check that
AWS or Google refuses, or cannot be reached for, fails with what was refused and how to
fix it, and the other checks still run.
"""
from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

from chalicelib import google_credentials
from chalicelib.config import ConfigError, Settings
from chalicelib.secrets import NOT_FOUND_CODES, parse_reference
from chalicelib.storage import schema
from dalet_ops import infrastructure, provision
from dalet_ops.iam_policies import AwsLocation
from dalet_ops.stage import API_HANDLER, FUNCTIONS, TRACK, WRITER, Stage

AWS_ERRORS = (ClientError, BotoCoreError)
_EXPIRED_CREDENTIAL_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId",
                                       "UnrecognizedClientException", "InvalidSignatureException",
                                       "SignatureDoesNotMatch"})
# IAM actions that cannot be limited to one resource: a policy must grant them on "*".
_ACTIONS_ON_ANY_RESOURCE = frozenset({"lambda:ListEventSourceMappings"})

FRONT_DOOR_PROBE_TIMEOUT_SECONDS = 10.0

# BigQuery's REST API answers with the legacy type names.
_LEGACY_TYPES = {"FLOAT64": "FLOAT", "INT64": "INTEGER", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        if self.ok:
            return f"ok    {self.name}: {self.detail}"
        return f"FAIL  {self.name}: {self.detail} -- fix: {self.fix}"


def run_preflight(stage: Stage, session: Any, bigquery_settings: Settings | None = None) -> Iterator[Check]:
    """Every check, in order; AWS checks stop early if there are no AWS credentials."""
    settings = stage.settings
    setup_fix = f"python -m dalet_ops.cli setup --stage {stage.name}"
    try:
        identity = provision.aws_identity(session)
    except provision.SetupError as error:
        yield Check("AWS credentials", False, error.problem, error.fix)
    else:
        yield Check("AWS credentials", True, f"account {identity.account}, region {identity.region}, "
                                             f"as {identity.principal}")
        yield from _aws_checks(stage, session, identity.location, setup_fix)
    yield from _bigquery_checks(bigquery_settings or settings, setup_fix)


def _aws_checks(stage: Stage, session: Any, location: AwsLocation, setup_fix: str) -> Iterator[Check]:
    settings = stage.settings
    stream_arn = location.arn("kinesis", f"stream/{settings.stream_name}")
    queue_arn = location.arn("sqs", stage.failure_queue_name)
    stream_missing, stream_check = _check_stream(session.client("kinesis"), settings.stream_name, stream_arn,
                                                 location.region, setup_fix)
    yield stream_check
    queue_missing, queue_check = _check_queue(session.client("sqs"), stage.failure_queue_name, queue_arn, stage.name,
                                              location.region, setup_fix)
    yield queue_check
    yield _check_api_key(session, settings, location, setup_fix)
    if settings.google_credentials_secret:
        yield _check_secret_exists(session, location, settings.google_credentials_secret,
                                   "DALET_GOOGLE_CREDENTIALS_SECRET", "Google service-account key",
                                   "store the key file there with "
                                   "`aws secretsmanager create-secret --secret-string file://key.json`")
    if not (stream_missing or queue_missing):     # else setup comes first, and its line says so
        yield _check_trigger(session.client("lambda"), stage, stream_arn, queue_arn, location, setup_fix)
        yield _check_writer_parks(session.client("lambda"), stage, location, setup_fix)
    lambda_client = session.client("lambda")
    api_check, deployment = _check_api_function(lambda_client, stage, location)
    yield api_check
    if deployment is not None and deployment.deployed:
        yield _check_rest_api(session, stage, deployment, location, setup_fix)
        yield _check_front_door(lambda_client, stage, location, setup_fix)
        fix = _stack_fix(deployment) if deployment.by_cloudformation else setup_fix
        yield from _check_log_groups(session.client("logs"), stage, location, fix)
        yield _check_alarms(session.client("cloudwatch"), session.client("sns"), stage, location, fix)


def _stack_fix(deployment: provision.Deployment) -> str:
    return (f"deploy the template `python -m dalet_ops.cli package` writes to stack {deployment.stack} "
            "(docs/deploy.md, section 4b)")


def _check_log_groups(logs: Any, stage: Stage, location: AwsLocation, fix: str) -> Iterator[Check]:
    """Each function's real log group keeps the stage's retention and carries its metric filters."""
    days = infrastructure.log_retention_days(stage)
    for function in FUNCTIONS:
        group = infrastructure.log_group_name(stage, function)
        label = f"log group {group}"
        wanted = {infrastructure.metric_filter_name(stage, metric)
                  for metric in infrastructure.LOG_METRICS if function in metric.functions}
        try:
            exists, retention = provision.log_group_retention(logs, group)
            filters = {found["filterName"] for found in
                       logs.describe_metric_filters(logGroupName=group)["metricFilters"]} if exists else set()
        except AWS_ERRORS as error:
            yield aws_failure(label, error, "logs", location.arn("logs", f"log-group:{group}"), location.region)
            continue
        if not exists:
            yield Check(label, False, "does not exist: Lambda will create it on the first call and keep the logs "
                                      "forever", fix)
        elif retention != days:
            yield Check(label, False, f"keeps {provision.retention_words(retention)}, not {days} days", fix)
        elif wanted - filters:
            yield Check(label, False, f"no metric filter {', '.join(sorted(wanted - filters))}: its alarm cannot "
                                      "fire", fix)
        else:
            counts = f"; counted by {', '.join(sorted(wanted))}" if wanted else ""
            yield Check(label, True, f"keeps {days} days{counts}")


def _check_stream(kinesis: Any, name: str, arn: str, region: str, setup_fix: str) -> tuple[bool, Check]:
    """Whether AWS said the stream does not exist, and the check."""
    label = f"stream {name}"
    try:
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    except kinesis.exceptions.ResourceNotFoundException:
        return True, Check(label, False, "not found in this account and region", setup_fix)
    except AWS_ERRORS as error:
        return False, aws_failure(label, error, "kinesis", arn, region)
    status = summary["StreamStatus"]
    mode = summary.get("StreamModeDetails", {}).get("StreamMode", "PROVISIONED")
    retention = summary["RetentionPeriodHours"]
    if status != "ACTIVE":
        return False, Check(label, False, f"is {status}, not ACTIVE",
                            f"wait for it, then run preflight again ({setup_fix} waits)")
    if retention < infrastructure.MIN_STREAM_RETENTION_HOURS:
        return False, Check(label, False, f"{retention} h retention: a batch the writer parks when its records "
                                          f"are {infrastructure.MAX_RECORD_AGE_HOURS} h old is gone before replay "
                                          f"can read it (at least {infrastructure.MIN_STREAM_RETENTION_HOURS} h "
                                          "needed)", setup_fix)
    return False, Check(label, True, f"ACTIVE, {mode}, {retention} h retention")


def _check_queue(sqs: Any, name: str, arn: str, stage_name: str, region: str, setup_fix: str) -> tuple[bool, Check]:
    """Whether AWS said the queue does not exist, and the check."""
    label = f"failed-batch queue {name}"
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    except sqs.exceptions.QueueDoesNotExist:
        return True, Check(label, False, "not found", setup_fix)
    except AWS_ERRORS as error:
        return False, aws_failure(label, error, "sqs", arn, region)
    parked = int(attributes["Attributes"].get("ApproximateNumberOfMessages", "0"))
    if parked:
        return False, Check(label, False, f"{parked} failed batch(es) parked, not yet in BigQuery",
                            "fix the cause (see the writer's logs), then "
                            f"python -m dalet_ops.cli replay --stage {stage_name}")
    return False, Check(label, True, "exists, no failed batches parked")


def _check_api_key(session: Any, settings: Settings, location: AwsLocation, setup_fix: str) -> Check:
    if not settings.api_key_secret:
        if settings.api_key:
            return Check("report API key", True, "DALET_API_KEY is set in .chalice/config.json "
                                                 "(a secret, DALET_API_KEY_SECRET, is safer)")
        return Check("report API key", False, "neither DALET_API_KEY_SECRET nor DALET_API_KEY is set",
                     "set DALET_API_KEY_SECRET in the stage's environment_variables, then " + setup_fix)
    return _check_secret_exists(session, location, settings.api_key_secret, "DALET_API_KEY_SECRET",
                                "report API key", setup_fix)


def _check_secret_exists(session: Any, location: AwsLocation, value: str, variable: str, label: str,
                         fix: str) -> Check:
    """The secret exists (its value is not read)."""
    reference = parse_reference(value, variable)
    try:
        provision.secret_arn(session, reference)
    except AWS_ERRORS as error:
        if provision.aws_error_code(error) in NOT_FOUND_CODES:
            return Check(label, False, f"{reference} does not exist", fix)
        return aws_failure(label, error, reference.store, location.secret_arn(reference), location.region)
    return Check(label, True, f"{reference} exists")


def _check_trigger(lambda_client: Any, stage: Stage, stream_arn: str, queue_arn: str, location: AwsLocation,
                   setup_fix: str) -> Check:
    function_name = stage.function_name(WRITER)
    label = f"writer trigger ({function_name})"
    try:
        deployed = provision.function_deployed(lambda_client, function_name)
        mapping = provision.writer_trigger(lambda_client, function_name, stream_arn) if deployed else None
    except AWS_ERRORS as error:
        return aws_failure(label, error, "lambda", location.arn("lambda", f"function:{function_name}"),
                           location.region)
    if not deployed:
        return Check(label, False, "the writer is not deployed", _deploy_fix(stage))
    if mapping is None:
        return Check(label, False, f"the writer has no trigger on the stream {stream_arn}: nothing writes the "
                                   "events to BigQuery", provision.missing_trigger_fix(function_name))
    problems = provision.trigger_problems(mapping, queue_arn)
    if problems:
        return Check(label, False, "; ".join(problems), setup_fix)
    if mapping.get("State") in provision.DISABLED_TRIGGER_STATES:
        return Check(label, False, f"{mapping['State']}: nothing reads the stream, which forgets what it holds "
                                   "after its retention", provision.enable_trigger_command(mapping))
    return Check(label, True, f"{mapping.get('State', 'Enabled')}, partial batch responses, bisect on error, "
                              f"{_retries(mapping)}, failed batches to the queue")


def _retries(mapping: dict[str, Any]) -> str:
    """How long the trigger retries a failing batch, in words (-1 attempts means: until the age limit)."""
    attempts, age = mapping.get("MaximumRetryAttempts"), mapping.get("MaximumRecordAgeInSeconds")
    until_age = f"retried until its records are {age // 3600} h old" if isinstance(age, int) and age > 0 else \
        "retried until its records expire"
    return until_age if attempts in (None, -1) else f"{attempts} retries"


def _deploy_fix(stage: Stage) -> str:
    return (f"chalice deploy --stage {stage.name}, then python -m dalet_ops.cli setup --stage {stage.name} "
            "(or deploy the packaged CloudFormation template: docs/deploy.md, section 4b)")


def _check_writer_parks(lambda_client: Any, stage: Stage, location: AwsLocation, setup_fix: str) -> Check:
    """The writer knows the failure queue: else a batch failing past the stream's retention is lost."""
    name = stage.function_name(WRITER)
    label = f"writer parking ({name})"
    try:
        environment = lambda_client.get_function_configuration(FunctionName=name).get("Environment") or {}
    except lambda_client.exceptions.ResourceNotFoundException:
        return Check(label, False, "the writer is not deployed", _deploy_fix(stage))
    except AWS_ERRORS as error:
        return aws_failure(label, error, "lambda", location.arn("lambda", f"function:{name}"), location.region)
    queue_url = (environment.get("Variables") or {}).get(infrastructure.FAILURE_QUEUE_URL_VARIABLE)
    if not queue_url or not queue_url.endswith("/" + stage.failure_queue_name):
        found = f"{infrastructure.FAILURE_QUEUE_URL_VARIABLE} is {queue_url!r}" if queue_url else \
            f"{infrastructure.FAILURE_QUEUE_URL_VARIABLE} is not set"
        return Check(label, False, f"{found}: a batch the warehouse keeps refusing is lost when the stream "
                                   f"expires it", f"{setup_fix} prints the line to add to .chalice/config.json; "
                                                  "then chalice deploy")
    return Check(label, True, f"failing batches' records are parked in {stage.failure_queue_name}")


def _check_api_function(lambda_client: Any, stage: Stage,
                        location: AwsLocation) -> tuple[Check, provision.Deployment | None]:
    """The REST API's function: deployed (by chalice deploy or a stack)? Also how the stage was deployed."""
    name = stage.function_name(API_HANDLER)
    label = f"API function {name}"
    try:
        lambda_client.get_function(FunctionName=name)
        deployment = provision.find_deployment(lambda_client, stage)
    except lambda_client.exceptions.ResourceNotFoundException:
        return Check(label, False, "not deployed (did `chalice deploy` fail?)", _deploy_fix(stage)), None
    except AWS_ERRORS as error:
        return aws_failure(label, error, "lambda", location.arn("lambda", f"function:{name}"), location.region), None
    how = f"CloudFormation stack {deployment.stack}" if deployment.by_cloudformation else "chalice deploy"
    return Check(label, True, f"deployed by {how}"), deployment


def _check_rest_api(session: Any, stage: Stage, deployment: provision.Deployment, location: AwsLocation,
                    setup_fix: str) -> Check:
    label = f"REST API (stage {stage.api_gateway_stage})"
    apigateway = session.client("apigateway")
    try:
        if deployment.by_cloudformation:
            api_id = session.client("cloudformation").describe_stack_resource(
                StackName=deployment.stack, LogicalResourceId=infrastructure.REST_API_ID,
            )["StackResourceDetail"]["PhysicalResourceId"]
        else:
            api_id = provision.deployed_rest_api_id(apigateway, stage)
        if api_id is None:
            return Check(label, False, f"no REST API named {stage.app_name} (or more than one)", _deploy_fix(stage))
        rate, burst = provision.rest_api_throttling(apigateway, api_id, stage.api_gateway_stage)
    except AWS_ERRORS as error:
        if provision.aws_error_code(error) == "NotFoundException":
            return Check(label, False, f"stage {stage.api_gateway_stage} not found", _deploy_fix(stage))
        return aws_failure(label, error, "apigateway", f"arn:{location.partition}:apigateway:{location.region}::"
                                                       "/restapis/*", location.region)
    url = f"https://{api_id}.execute-api.{location.region}.amazonaws.com/{stage.api_gateway_stage}/"
    if rate is None or burst is None:
        return Check(label, False, f"{url}: no throttling, so a flood runs up the bill", setup_fix)
    return Check(label, True, f"{url}, throttled to {rate:g} requests/s, bursts of {burst}")


def http_get(url: str, timeout: float) -> tuple[int, bytes]:
    """GET the URL: its status and body, whatever the status."""
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "dalet-preflight"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:    # noqa: S310 - https from AWS
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _check_front_door(lambda_client: Any, stage: Stage, location: AwsLocation, setup_fix: str) -> Check:
    """The track function's URL exists, is public with CORS, is bounded, and answers as Dalet does."""
    name = stage.function_name(TRACK)
    label = f"front door {name}"
    try:
        config = lambda_client.get_function_url_config(FunctionName=name)
        concurrency = lambda_client.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
    except lambda_client.exceptions.ResourceNotFoundException:
        return Check(label, False, "no function URL (or the function is not deployed)", setup_fix)
    except AWS_ERRORS as error:
        return aws_failure(label, error, "lambda", location.arn("lambda", f"function:{name}"), location.region)
    if config.get("AuthType") != infrastructure.FRONT_DOOR_AUTH or not (config.get("Cors") or {}).get("AllowOrigins"):
        return Check(label, False, f"the URL has AuthType {config.get('AuthType')} and CORS {config.get('Cors')}: "
                                   "browsers on other sites cannot send events", setup_fix)
    if not concurrency:
        return Check(label, False, "no reserved concurrency: nothing bounds a flood",
                     "set reserved_concurrency for track in .chalice/config.json, then chalice deploy")
    url = provision.front_door_track_url(config["FunctionUrl"])
    try:
        status, body = http_get(url, FRONT_DOOR_PROBE_TIMEOUT_SECONDS)
    except (OSError, ValueError) as error:
        return Check(label, False, f"{url} did not answer: {type(error).__name__}: {error}",
                     "check the network; then the function's log group (/aws/lambda/" + name + ")")
    # An empty GET names the missing fields (400) and stores nothing: Dalet's own answer.
    if status == 403:
        return Check(label, False, f"{url} answered 403: its resource policy does not let the public call it",
                     setup_fix)
    if status != 400 or b'"errors"' not in body:
        return Check(label, False, f"{url} answered {status} {body[:200]!r}, not Dalet's 400 for an empty event",
                     f"see the log group /aws/lambda/{name}; redeploy with chalice deploy --stage {stage.name}")
    return Check(label, True, f"{url} answers; reserved concurrency {concurrency}")


def _check_alarms(cloudwatch: Any, sns: Any, stage: Stage, location: AwsLocation, setup_fix: str) -> Check:
    label = "alarms"
    wanted = {infrastructure.alarm_name(stage, alarm) for alarm in infrastructure.ALARMS}
    try:
        found = cloudwatch.describe_alarms(AlarmNames=sorted(wanted))["MetricAlarms"]
        topics = {arn for alarm in found for arn in alarm.get("AlarmActions", [])}
        subscribers = sum(len(sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]) for arn in topics)
    except AWS_ERRORS as error:
        return aws_failure(label, error, "cloudwatch", location.arn("cloudwatch", "alarm:*"), location.region)
    missing = sorted(wanted - {alarm["AlarmName"] for alarm in found})
    silent = sorted(alarm["AlarmName"] for alarm in found if not alarm.get("AlarmActions"))
    stale = sorted(alarm["AlarmName"] for alarm in found if _alarm_differs(stage, alarm))
    if missing or silent or stale:
        return Check(label, False, f"missing: {', '.join(missing) or 'none'}; notifying no one: "
                                   f"{', '.join(silent) or 'none'}; watching another metric or treating missing "
                                   f"data otherwise than Dalet's: {', '.join(stale) or 'none'}", setup_fix)
    note = f"{subscribers} subscriber(s)" if subscribers else \
        "no subscribers yet: setup --alarm-email, or aws sns subscribe"
    return Check(label, True, f"{len(found)} alarms notify {', '.join(sorted(topics))} ({note})")


def _alarm_differs(stage: Stage, found: dict[str, Any]) -> bool:
    """Whether an alarm of Dalet's name watches another metric than Dalet's, or reads missing data otherwise."""
    for alarm in infrastructure.ALARMS:
        if infrastructure.alarm_name(stage, alarm) == found["AlarmName"]:
            wanted = infrastructure.alarm_settings(stage, alarm)
            return any(found.get(key) != wanted[key] for key in ("Namespace", "MetricName", "TreatMissingData"))
    return False


def _bigquery_checks(settings: Settings, setup_fix: str) -> Iterator[Check]:
    source = google_credentials.source_label(settings)
    try:
        client = google_credentials.bigquery_client(settings)
    except ConfigError as error:  # GoogleCredentialsError, or the service-account key's secret cannot be read
        yield Check("Google credentials", False, source, str(error))
        return
    except Exception as error:    # a broken key...
        yield Check("Google credentials", False, f"{source}: {type(error).__name__}: {error}",
                    "see docs/deploy.md, Google credentials")
        return
    yield Check("Google credentials", True, f"{source}, project {client.project}")
    unreachable: Check | None = None
    for name, table in provision.warehouse_tables(settings):
        if unreachable is not None:        # one bounded wait is enough to know the network is down
            yield Check(f"BigQuery table {client.project}.{settings.bq_dataset}.{name}", False,
                        "not checked: BigQuery was not reachable for the table before", unreachable.fix)
            continue
        check = _check_table(client, settings, name, table, setup_fix)
        if not check.ok and check.detail.startswith("not reachable"):
            unreachable = check
        yield check


def _check_table(client: Any, settings: Settings, name: str, spec: schema.Table, setup_fix: str) -> Check:
    from google.api_core import exceptions as google_errors

    table_id = f"{client.project}.{settings.bq_dataset}.{name}"
    label = f"BigQuery table {table_id}"
    try:
        table = client.get_table(table_id, retry=provision.bigquery_ops_retry(),
                                 timeout=provision.BIGQUERY_OPS_REQUEST_TIMEOUT_SECONDS)
    except google_errors.NotFound:
        return Check(label, False, "not found", setup_fix)
    except Exception as error:    # refusals, token exchange and transport failures
        return google_failure(label, error, settings, client.project)
    problems = schema_problems(table, spec)
    if problems:
        return Check(label, False, "; ".join(problems),
                     f"the table predates this version of Dalet: {setup_fix} adds the new columns "
                     f"(partitioning and clustering changes need the table recreated)")
    return Check(label, True, "reachable, schema matches")


def aws_failure(label: str, error: Exception, service: str, resource: str, region: str) -> Check:
    """A failed check for an AWS error: what AWS answered and what to do about it."""
    if isinstance(error, ClientError):
        code = provision.aws_error_code(error)
        operation = error.operation_name
        message = error.response.get("Error", {}).get("Message", "")
        detail = f"{operation} answered {code}" + (f" ({message})" if message else "")
        action = f"{service}:{operation}"
        if "AccessDenied" in code or "Unauthorized" in code or code == "AuthorizationError":
            on = "*" if action in _ACTIONS_ON_ANY_RESOURCE else resource
            return Check(label, False, detail, f"give your identity {action} on {on}")
        if code in _EXPIRED_CREDENTIAL_CODES:
            return Check(label, False, detail, "renew your AWS credentials (e.g. `aws sso login`, or new access "
                                               "keys), then run preflight again")
        return Check(label, False, detail, "run preflight again; if this persists, check the AWS Health "
                                           f"Dashboard for {region}")
    if isinstance(error, NoCredentialsError):
        return Check(label, False, "no AWS credentials", "run `aws configure`, set AWS_PROFILE, or export "
                                                         "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if isinstance(error, EndpointConnectionError):
        return Check(label, False, str(error), f"check the network and that {region} is the right region (--region)")
    return Check(label, False, f"{type(error).__name__}: {error}",
                 "check the AWS configuration (profile, region) and the network")


def google_failure(label: str, error: Exception, settings: Settings, project: str) -> Check:
    """A failed check for a Google error: what was refused or unreachable and what to do about it."""
    from google.api_core import exceptions as google_errors
    from google.auth import exceptions as auth_errors

    if provision.google_unreachable(error):
        return Check(label, False, f"not reachable: {type(error).__name__}: {error}",
                     "check the network, DNS and any proxy (BigQuery is https://bigquery.googleapis.com)")
    if isinstance(error, google_errors.Forbidden):
        return Check(label, False, f"BigQuery refused access ({_google_message(error)})",
                     f"grant the identity of {google_credentials.source_label(settings)} the BigQuery Data Editor "
                     f"role on dataset {project}.{settings.bq_dataset} and BigQuery Job User on project {project}")
    if isinstance(error, (google_errors.Unauthorized, auth_errors.RefreshError)):
        return Check(label, False, f"Google refused the credentials: {_google_message(error)}",
                     _credentials_fix(settings))
    if isinstance(error, google_errors.GoogleAPIError):
        return Check(label, False, f"BigQuery answered {_google_message(error)}",
                     "run preflight again; if this persists, see https://status.cloud.google.com")
    if isinstance(error, auth_errors.DefaultCredentialsError):
        return Check(label, False, f"no Google credentials: {error}", _credentials_fix(settings))
    return Check(label, False, f"not reachable: {type(error).__name__}: {error}",
                 "check the network (BigQuery is https://bigquery.googleapis.com)")


def _credentials_fix(settings: Settings) -> str:
    if settings.google_credentials_config:
        return ("workload identity federation admits only the Lambda roles: from a workstation, run preflight "
                "with --adc; otherwise check the pool's AWS provider and attribute condition")
    if settings.google_credentials_secret:
        return (f"the key in {settings.google_credentials_secret} may be disabled or deleted: create a new "
                "service-account key and store it there")
    return "run `gcloud auth application-default login` again"


def _google_message(error: Exception) -> str:
    """BigQuery's own words, without the request line the client prefixes to them."""
    code = getattr(error, "code", None)
    details = getattr(error, "errors", None) or [{}]
    first = details[0] if isinstance(details[0], dict) else {}
    # google.auth's errors carry (message, response): the message is enough.
    message = (first.get("message") or getattr(error, "message", None)
               or (str(error.args[0]) if error.args else type(error).__name__))
    return f"{code} {message}" if isinstance(code, int) else message


def schema_problems(table: Any, spec: schema.Table) -> list[str]:
    """How a BigQuery table differs from the schema Dalet writes, in words."""
    actual = [(field.name, _legacy(field.field_type), field.mode or "NULLABLE") for field in table.schema]
    expected = [(c.name, _legacy(c.type), "REQUIRED" if c.required else "NULLABLE") for c in spec.columns]
    problems = []
    if actual != expected:
        problems.append(f"columns are {_columns(actual)}, expected {_columns(expected)}")
    partition_field = table.time_partitioning.field if table.time_partitioning else None
    if spec.partition_by and partition_field != spec.partition_by:
        problems.append(f"partitioned on {partition_field or 'nothing'}, expected {spec.partition_by}")
    if tuple(table.clustering_fields or ()) != spec.cluster_by:
        problems.append(f"clustered by {list(table.clustering_fields or [])}, expected {list(spec.cluster_by)}")
    return problems


def _legacy(type_name: str) -> str:
    return _LEGACY_TYPES.get(type_name.upper(), type_name.upper())


def _columns(columns: list[tuple[str, str, str]]) -> str:
    return ", ".join(f"{name} {kind}{'' if mode == 'NULLABLE' else ' ' + mode}" for name, kind, mode in columns)

