"""The AWS resources around the functions, defined once for `setup` and for CloudFormation.

`chalice deploy` creates functions, roles and the API but no stream; `setup` creates
the rest with boto3. `chalice package --merge-template` instead gets the rest from the
merge template rendered here, so both ways deploy the same stream, trigger settings,
queue and policies.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.responses import STREAM_UNAVAILABLE, refusal_log_mark
from chalicelib.secrets import SECRETS_MANAGER, parse_reference
from chalicelib.storage.writer import DEAD_LETTER_LOG_MARK
from dalet_ops import iam_policies
from dalet_ops.stage import API_HANDLER, TRACK, WRITER, Stage

STREAM_MODES = ("ON_DEMAND", "PROVISIONED")
# One provisioned shard (1,000 records/s, 1 MiB/s in) costs $10.95 a month against on-demand's
# $29.20 fixed; ON_DEMAND suits spiky or large traffic (docs/deploy.md, "Cost defaults").
DEFAULT_STREAM_MODE = "PROVISIONED"
DEFAULT_SHARDS = 1
# The writer's trigger gives up on a batch whose records are this old (or after its retries)
# and parks it (its shard and sequence numbers) in SQS; the batches-parked alarm fires.
MAX_RECORD_AGE_HOURS = 6
# A batch the trigger gives up on is replayed from the stream (`python -m dalet_ops.cli
# replay`), so the stream must keep records this long after that. The writer itself parks
# a failing batch's records in the queue well before (DALET_PARK_AFTER_SECONDS, 1 h), so
# the trigger's pointer is the fallback, not the rule.
REPLAY_WINDOW_HOURS = 18
MIN_STREAM_RETENTION_HOURS = MAX_RECORD_AGE_HOURS + REPLAY_WINDOW_HOURS
# Kinesis's own minimum, which costs nothing extra; every hour beyond 24 is billed
# ($0.02 per shard-hour provisioned: $14.60 a month per shard for any longer retention).
# A week (168) gives 162 h to replay a parked batch instead of 18 (docs/deploy.md).
STREAM_RETENTION_HOURS = 24
MAX_STREAM_RETENTION_HOURS = 8760                 # Kinesis's maximum
STREAM_ENCRYPTION_KEY = "alias/aws/kinesis"      # the AWS-managed key needs no IAM permission
# SQS's maximum: records the writer parks there are safe this long, whatever the stream's retention.
FAILURE_QUEUE_RETENTION_SECONDS = 14 * 24 * 3600
# The writer's trigger: report partial failures, split failing batches, retry a failing
# batch until its records are MAX_RECORD_AGE_HOURS old, then send SQS a pointer to it.
# Retries are bounded by that age, not by a count: the writer parks a failing batch's
# records itself once they are DALET_PARK_AFTER_SECONDS (1 h) old, and a count (20 was
# used) can run out within minutes when each attempt fails fast, leaving only the pointer
# into a stream that forgets the records at 24 h.
UNTIL_RECORD_AGE = -1
TRIGGER_SETTINGS: dict[str, Any] = {
    "FunctionResponseTypes": ["ReportBatchItemFailures"],
    "BisectBatchOnFunctionError": True,
    "MaximumRetryAttempts": UNTIL_RECORD_AGE,
    "MaximumRecordAgeInSeconds": MAX_RECORD_AGE_HOURS * 3600,
}

# The front door: the ingest routes behind a function URL anyone may call (browsers post
# events from any site), CORS answered by Lambda itself.
FRONT_DOOR_AUTH = "NONE"
FRONT_DOOR_CORS: dict[str, Any] = {
    "AllowOrigins": ["*"],
    "AllowMethods": ["GET", "POST"],
    # content-type for AlephBet; content-encoding and x-retry-count for Segment's libraries (/v1/*).
    "AllowHeaders": ["content-type", "content-encoding", "x-retry-count"],
    "MaxAge": 600,
}
# Who may call the URL: anyone (auth NONE). Since October 2025 a new function URL needs both
# actions; `InvokedViaFunctionUrl` keeps the second one from opening the function to direct
# Invoke calls (https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html).
FRONT_DOOR_PERMISSIONS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("FunctionURLAllowPublicAccess", "lambda:InvokeFunctionUrl", {"FunctionUrlAuthType": FRONT_DOOR_AUTH}),
    ("FunctionURLAllowInvokeAction", "lambda:InvokeFunction", {"InvokedViaFunctionUrl": True}),
)
# The REST API now carries the reports, the dashboard and the snippet (and /track for old
# snippets): 50 requests/s steady, bursts of 100, per stage. Beyond, API Gateway answers 429.
REST_API_RATE_LIMIT = 50.0
REST_API_BURST_LIMIT = 100
# Per-request lines only at WARNING and above: JSON logs let Lambda drop the rest, and the
# platform's START/END/REPORT lines too (CloudWatch's Lambda metrics still count every call).
LOGGING_CONFIG: dict[str, str] = {"LogFormat": "JSON", "ApplicationLogLevel": "WARN", "SystemLogLevel": "WARN"}

# Every function's log group keeps this many days unless the stage's `log_retention_in_days` says
# otherwise (`chalice package` applies that setting; on the `chalice deploy` path `setup` does, as
# Chalice gives the API function's group a name the function never writes to).
DEFAULT_LOG_RETENTION_DAYS = 14

# Logical IDs Chalice gives its resources in `chalice package` output.
CHALICE_IDS = {
    API_HANDLER: ("APIHandler", "ApiHandlerRole"),
    TRACK: ("Track", "TrackRole"),
    WRITER: ("WriteEvents", "WriteEventsRole"),
}
CHALICE_LOG_GROUP_IDS = {API_HANDLER: "ApiHandlerLogGroup", TRACK: "TrackLogGroup", WRITER: "WriteEventsLogGroup"}
WRITER_EVENT_SOURCE_ID = "WriteEventsKinesisEventSource"
REST_API_ID = "RestAPI"
FRONT_DOOR_URL_ID = "TrackFunctionUrl"
FRONT_DOOR_PERMISSION_IDS = {"lambda:InvokeFunctionUrl": "TrackFunctionUrlPublicAccess",
                             "lambda:InvokeFunction": "TrackFunctionUrlPublicInvoke"}
ALARM_TOPIC_ID = "AlarmTopic"
ALARM_SUBSCRIPTION_ID = "AlarmEmailSubscription"
STREAM_ID = "EventStream"
QUEUE_ID = "FailedBatchQueue"
API_KEY_SECRET_ID = "ReportApiKeySecret"
API_KEY_LENGTH = 43
FAILURE_QUEUE_URL_VARIABLE = "DALET_FAILURE_QUEUE_URL"


def log_group_name(stage: Stage, function: str) -> str:
    """Where Lambda writes the function's logs (for the API function: `/aws/lambda/app-stage`)."""
    return f"/aws/lambda/{stage.function_name(function)}"


def log_retention_days(stage: Stage) -> int:
    return stage.log_retention_days or DEFAULT_LOG_RETENTION_DAYS


def log_metric_namespace(stage: Stage) -> str:
    """The CloudWatch namespace of the metrics the stage's log metric filters publish."""
    return f"Dalet/{stage.name}"


@dataclass(frozen=True)
class LogMetric:
    """A metric counted from log lines (a CloudWatch Logs metric filter on each function's log group).

    A filter publishes only when a line matches, so a quiet month costs nothing.
    """
    name: str                    # the metric's name, and the filter's suffix
    pattern: str                 # a CloudWatch Logs filter pattern: one quoted phrase
    functions: tuple[str, ...]   # whose log groups carry the line


LOG_METRICS = (
    # Both doors serve /track and /v1/*: every ingest 503 logs `... answered 503 stream_unavailable: ...`.
    LogMetric("IngestRefusals", f'"{refusal_log_mark(STREAM_UNAVAILABLE)}"', (API_HANDLER, TRACK)),
    LogMetric("DeadLetters", f'"{DEAD_LETTER_LOG_MARK}"', (WRITER,)),
)


def metric_filter_name(stage: Stage, metric: LogMetric) -> str:
    return f"{stage.app_name}-{stage.name}-{metric.name}"


def metric_filter_settings(stage: Stage, metric: LogMetric, group: str) -> dict[str, Any]:
    """The filter as CloudWatch Logs' PutMetricFilter takes it (and CloudFormation, but for the group)."""
    return {
        "logGroupName": group,
        "filterName": metric_filter_name(stage, metric),
        "filterPattern": metric.pattern,
        "metricTransformations": [{"metricName": metric.name, "metricNamespace": log_metric_namespace(stage),
                                   "metricValue": "1"}],
    }


# What missing data means to an alarm: most metrics are only published when something happens
# (an error, a throttle, a matching log line), so no data is good news; the stream's reads are
# published whenever anything reads it, so no data means nothing does.
NOT_BREACHING = "notBreaching"
BREACHING = "breaching"


@dataclass(frozen=True)
class Alarm:
    """A CloudWatch alarm on one metric, rendered for both paths."""
    logical_id: str
    suffix: str                  # the alarm's name is `app-stage-suffix`
    description: str
    namespace: str               # LOG_METRIC_TARGET's alarms: the stage's log_metric_namespace
    metric: str
    dimension: str | None        # FunctionName, QueueName, StreamName; None for a log metric
    target: str                  # a function (stage.py's name for it), QUEUE_TARGET, STREAM_TARGET, LOG_METRIC_TARGET
    statistic: str
    threshold: float
    period_seconds: int = 300
    evaluation_periods: int = 1
    treat_missing_data: str = NOT_BREACHING


QUEUE_TARGET = "failed-batch queue"
STREAM_TARGET = "stream"
LOG_METRIC_TARGET = "log metric"
TEN_MINUTES_MS = 600_000
ALARMS = (
    # Lambda reads every shard about once a second while the trigger is on, idle stream or not, so
    # this metric always has data then (0 when caught up): none means nothing reads the stream (the
    # trigger is disabled or deleted), which must page, not silence the alarm.
    Alarm("WriterIteratorAgeAlarm", "writer-behind",
          "Nothing has read the stream for 10 minutes, or what is read is over 10 minutes old: the writer's "
          "trigger is off, or the writer is behind (BigQuery failing or too slow)",
          "AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "StreamName", STREAM_TARGET, "Maximum",
          TEN_MINUTES_MS, evaluation_periods=2, treat_missing_data=BREACHING),
    # Lambda publishes IteratorAge only when it calls the writer: no data is an idle stream (a quiet
    # night), which writer-behind tells apart from a trigger that is off.
    Alarm("WriterRetryingAlarm", "writer-retrying",
          "The writer's batches are over 10 minutes old when it gets them: it keeps retrying a failing batch "
          "(see its log group), or is too slow",
          "AWS/Lambda", "IteratorAge", "FunctionName", WRITER, "Maximum", TEN_MINUTES_MS, evaluation_periods=2),
    Alarm("FailedBatchesAlarm", "batches-parked",
          "Batches were parked in the failed-batch queue: fix the cause, then run `replay`",
          "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", QUEUE_TARGET, "Maximum", 1),
    Alarm("DeadLettersAlarm", "dead-letters",
          "The writer put records in the dead_letters table (undecodable, or refused by BigQuery for good): "
          "see the table's reasons",
          "", "DeadLetters", None, LOG_METRIC_TARGET, "Sum", 1),
    Alarm("IngestRefusedAlarm", "ingest-refused",
          "/track or /v1/* answered 503 (the stream throttled, unreachable or not writable by the function): "
          "clients retry, but see the function's log group",
          "", "IngestRefusals", None, LOG_METRIC_TARGET, "Sum", 1),
    Alarm("StreamThrottledAlarm", "stream-throttled",
          "Kinesis refused writes beyond the stream's capacity: add shards (--shards, ShardCount) or use ON_DEMAND",
          "AWS/Kinesis", "WriteProvisionedThroughputExceeded", "StreamName", STREAM_TARGET, "Sum", 1),
    Alarm("ApiErrorsAlarm", "api-errors", "The REST API's function failed (see its log group)",
          "AWS/Lambda", "Errors", "FunctionName", API_HANDLER, "Sum", 1),
    Alarm("TrackErrorsAlarm", "track-errors", "The front door's function failed (see its log group)",
          "AWS/Lambda", "Errors", "FunctionName", TRACK, "Sum", 1),
    Alarm("WriterErrorsAlarm", "writer-errors", "The writer failed a batch; Lambda retries it (see its log group)",
          "AWS/Lambda", "Errors", "FunctionName", WRITER, "Sum", 1),
    Alarm("TrackThrottlesAlarm", "track-throttled",
          "The front door hit its reserved concurrency: a flood, or traffic has outgrown the bound",
          "AWS/Lambda", "Throttles", "FunctionName", TRACK, "Sum", 1),
)


def alarm_name(stage: Stage, alarm: Alarm) -> str:
    return f"{stage.app_name}-{stage.name}-{alarm.suffix}"


def alarm_topic_name(stage: Stage) -> str:
    return f"{stage.app_name}-{stage.name}-alarms"


def alarm_target_name(stage: Stage, alarm: Alarm) -> str:
    if alarm.target == QUEUE_TARGET:
        return stage.failure_queue_name
    if alarm.target == STREAM_TARGET:
        return stage.settings.stream_name
    return stage.function_name(alarm.target)


def alarm_namespace(stage: Stage, alarm: Alarm) -> str:
    return log_metric_namespace(stage) if alarm.target == LOG_METRIC_TARGET else alarm.namespace


def alarm_settings(stage: Stage, alarm: Alarm) -> dict[str, Any]:
    """The alarm as CloudWatch's PutMetricAlarm takes it (and CloudFormation, but for the topic)."""
    dimensions = [] if alarm.dimension is None else [{"Name": alarm.dimension,
                                                       "Value": alarm_target_name(stage, alarm)}]
    return {
        "AlarmName": alarm_name(stage, alarm),
        "AlarmDescription": f"Dalet {stage.name}: {alarm.description}",
        "Namespace": alarm_namespace(stage, alarm),
        "MetricName": alarm.metric,
        "Dimensions": dimensions,
        "Statistic": alarm.statistic,
        "Period": alarm.period_seconds,
        "EvaluationPeriods": alarm.evaluation_periods,
        "Threshold": alarm.threshold,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": alarm.treat_missing_data,
    }


def template_resources(stage: Stage) -> iam_policies.StageResources:
    """The stage's resources as CloudFormation references."""
    return iam_policies.StageResources(
        location=iam_policies.TEMPLATE_LOCATION,
        stream=f"${{{STREAM_ID}.Arn}}",
        failure_queue=f"${{{QUEUE_ID}.Arn}}",
        api_key_secret=f"${{{API_KEY_SECRET_ID}}}" if _template_creates_api_key_secret(stage) else None,
    )


def merge_template(stage: Stage) -> dict[str, Any]:
    """What `chalice package --merge-template` adds to and overrides in Chalice's template.

    Chalice's merge is deep for objects and replaces everything else, so the event
    source's `Stream` (a Fn::Sub in Chalice's output) is overridden with a Fn::Sub too.
    """
    settings = stage.settings
    policies = iam_policies.policy_documents(stage, template_resources(stage))
    resources: dict[str, Any] = {
        STREAM_ID: _stream(settings.stream_name),
        QUEUE_ID: _failure_queue(stage.failure_queue_name),
    }
    if _template_creates_api_key_secret(stage):
        resources[API_KEY_SECRET_ID] = _api_key_secret(stage, settings.api_key_secret or "")
    for function, (function_id, role_id) in CHALICE_IDS.items():
        resources[function_id] = {"Properties": {"FunctionName": stage.function_name(function),
                                                 "LoggingConfig": dict(LOGGING_CONFIG)}}
        # Named as `chalice deploy` names them, so Google's workload identity pool can admit
        # `assumed-role/<name>` whichever way the stage was deployed.
        resources[role_id] = {"Properties": {"RoleName": stage.role_name(function), "Policies": [{
            "PolicyName": f"{role_id}Policy",
            "PolicyDocument": iam_policies.with_substitutions(policies[function]),
        }]}}
    # Chalice names the API's log group after `ApiHandler`, a resource it renames to APIHandler.
    resources[CHALICE_LOG_GROUP_IDS[API_HANDLER]] = {"Properties": {"LogGroupName": {
        "Fn::Sub": f"/aws/lambda/${{{CHALICE_IDS[API_HANDLER][0]}}}"}}}
    resources.update(_front_door())
    resources[CHALICE_IDS[API_HANDLER][0]]["Properties"]["Environment"] = {"Variables": {
        "DALET_TRACK_URL": _front_door_track_url()}}
    resources[REST_API_ID] = {"Properties": {"MethodSettings": [{
        "ResourcePath": "/*", "HttpMethod": "*",
        "ThrottlingRateLimit": REST_API_RATE_LIMIT, "ThrottlingBurstLimit": REST_API_BURST_LIMIT}]}}
    resources.update(_alarms(stage))
    resources.update(_metric_filters(stage))
    writer_id = CHALICE_IDS[WRITER][0]
    # Where the writer parks the records of a batch the warehouse keeps refusing (Ref: the queue's URL).
    resources[writer_id]["Properties"]["Environment"] = {"Variables": {
        FAILURE_QUEUE_URL_VARIABLE: {"Ref": QUEUE_ID}}}
    resources[writer_id]["Properties"]["Events"] = {WRITER_EVENT_SOURCE_ID: {"Properties": {
        "Stream": {"Fn::Sub": f"${{{STREAM_ID}.Arn}}"},
        **TRIGGER_SETTINGS,
        "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": [QUEUE_ID, "Arn"]}}},
    }}}
    return {
        "Parameters": _parameters(),
        "Conditions": {"ProvisionedStream": {"Fn::Equals": [{"Ref": "StreamMode"}, "PROVISIONED"]},
                       "HasAlarmEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}},
        "Resources": resources,
        "Outputs": _outputs(stage),
    }


def _template_creates_api_key_secret(stage: Stage) -> bool:
    configured = stage.settings.api_key_secret
    if not configured:
        return False
    reference = parse_reference(configured, "DALET_API_KEY_SECRET")
    return reference.store == SECRETS_MANAGER and not reference.name.startswith("arn:")


def _parameters() -> dict[str, Any]:
    return {
        "StreamMode": {
            "Type": "String", "AllowedValues": list(STREAM_MODES), "Default": DEFAULT_STREAM_MODE,
            "Description": "PROVISIONED (pay per shard-hour; 1 shard takes 1,000 records/s) or ON_DEMAND "
                           "(pay per GB, scales by itself; for spiky or large traffic)",
        },
        "ShardCount": {
            "Type": "Number", "Default": DEFAULT_SHARDS, "MinValue": 1,
            "Description": "Shards when StreamMode is PROVISIONED (each takes 1,000 records/s or 1 MiB/s)",
        },
        "RetentionPeriodHours": {
            "Type": "Number", "Default": STREAM_RETENTION_HOURS, "MinValue": MIN_STREAM_RETENTION_HOURS,
            "MaxValue": MAX_STREAM_RETENTION_HOURS,
            "Description": f"How long the stream keeps records, so parked batches can be replayed (at least "
                           f"{MIN_STREAM_RETENTION_HOURS}: batches are parked when their records are "
                           f"{MAX_RECORD_AGE_HOURS} h old; beyond 24 h costs $0.02 per shard-hour)",
        },
        "AlarmEmail": {
            "Type": "String", "Default": "",
            "Description": "An email address the alarm topic notifies (confirm the subscription email); empty: none",
        },
    }


def _stream(name: str) -> dict[str, Any]:
    return {
        "Type": "AWS::Kinesis::Stream",
        "Properties": {
            "Name": name,
            "StreamModeDetails": {"StreamMode": {"Ref": "StreamMode"}},
            "ShardCount": {"Fn::If": ["ProvisionedStream", {"Ref": "ShardCount"}, {"Ref": "AWS::NoValue"}]},
            "RetentionPeriodHours": {"Ref": "RetentionPeriodHours"},
            "StreamEncryption": {"EncryptionType": "KMS", "KeyId": STREAM_ENCRYPTION_KEY},
        },
    }


def _failure_queue(name: str) -> dict[str, Any]:
    return {
        "Type": "AWS::SQS::Queue",
        "Properties": {
            "QueueName": name,
            "MessageRetentionPeriod": FAILURE_QUEUE_RETENTION_SECONDS,
            "SqsManagedSseEnabled": True,
        },
    }


def _api_key_secret(stage: Stage, name: str) -> dict[str, Any]:
    return {
        "Type": "AWS::SecretsManager::Secret",
        "Properties": {
            "Name": name,
            "Description": f"Dalet {stage.name}: the x-api-key for the report routes",
            "GenerateSecretString": {"PasswordLength": API_KEY_LENGTH, "ExcludePunctuation": True},
        },
    }


def _front_door() -> dict[str, Any]:
    track_id = CHALICE_IDS[TRACK][0]
    return {
        FRONT_DOOR_URL_ID: {"Type": "AWS::Lambda::Url", "Properties": {
            "TargetFunctionArn": {"Fn::GetAtt": [track_id, "Arn"]},
            "AuthType": FRONT_DOOR_AUTH,
            "Cors": FRONT_DOOR_CORS,
        }},
        **{FRONT_DOOR_PERMISSION_IDS[action]: {"Type": "AWS::Lambda::Permission", "Properties": {
            "FunctionName": {"Ref": track_id}, "Action": action, "Principal": "*", **condition}}
           for _, action, condition in FRONT_DOOR_PERMISSIONS},
    }


def _front_door_track_url() -> dict[str, Any]:
    # The function URL ends with "/".
    return {"Fn::Join": ["", [{"Fn::GetAtt": [FRONT_DOOR_URL_ID, "FunctionUrl"]}, "track"]]}


def _alarms(stage: Stage) -> dict[str, Any]:
    resources: dict[str, Any] = {
        ALARM_TOPIC_ID: {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": alarm_topic_name(stage)}},
        ALARM_SUBSCRIPTION_ID: {"Type": "AWS::SNS::Subscription", "Condition": "HasAlarmEmail", "Properties": {
            "TopicArn": {"Ref": ALARM_TOPIC_ID}, "Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}},
    }
    for alarm in ALARMS:
        properties = alarm_settings(stage, alarm)
        if alarm.dimension is not None:       # by reference, so the alarm follows its resource
            properties["Dimensions"] = [{"Name": alarm.dimension, "Value": _dimension_reference(alarm)}]
        properties["AlarmActions"] = [{"Ref": ALARM_TOPIC_ID}]
        resources[alarm.logical_id] = {"Type": "AWS::CloudWatch::Alarm", "Properties": properties}
    return resources


def _dimension_reference(alarm: Alarm) -> dict[str, Any]:
    if alarm.target == QUEUE_TARGET:
        return {"Fn::GetAtt": [QUEUE_ID, "QueueName"]}
    if alarm.target == STREAM_TARGET:
        return {"Ref": STREAM_ID}
    return {"Ref": CHALICE_IDS[alarm.target][0]}


def _metric_filters(stage: Stage) -> dict[str, Any]:
    """The log metric filters, on the log groups `chalice package` creates (Ref: the group's name)."""
    resources: dict[str, Any] = {}
    for metric in LOG_METRICS:
        for function in metric.functions:
            settings = metric_filter_settings(stage, metric, group="")
            (transformation,) = settings["metricTransformations"]
            resources[f"{CHALICE_IDS[function][0]}{metric.name}Filter"] = {
                "Type": "AWS::Logs::MetricFilter",
                "Properties": {
                    "LogGroupName": {"Ref": CHALICE_LOG_GROUP_IDS[function]},
                    "FilterName": settings["filterName"],
                    "FilterPattern": settings["filterPattern"],
                    "MetricTransformations": [{key[0].upper() + key[1:]: value
                                               for key, value in transformation.items()}],
                },
            }
    return resources


def _outputs(stage: Stage) -> dict[str, Any]:
    api_url = "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/api"
    outputs: dict[str, Any] = {
        "TrackURL": {"Description": "Where AlephBet sends events: the front door (a Lambda function URL)",
                     "Value": _front_door_track_url()},
        "ApiURL": {"Description": "The REST API: reports, dashboard, snippet", "Value": {"Fn::Sub": f"{api_url}/"}},
        "AlarmTopicArn": {"Value": {"Ref": ALARM_TOPIC_ID}},
        "DashboardURL": {"Value": {"Fn::Sub": f"{api_url}/dashboard"}},
        "EventStreamArn": {"Value": {"Fn::GetAtt": [STREAM_ID, "Arn"]}},
        "FailedBatchQueueUrl": {"Value": {"Ref": QUEUE_ID}},
    }
    if _template_creates_api_key_secret(stage):
        outputs["ReportApiKeySecretArn"] = {"Value": {"Ref": API_KEY_SECRET_ID}}
    return outputs
