"""The AWS resources around the functions, defined once for `setup` and for CloudFormation.

`chalice deploy` creates functions, roles and the API but no stream; `setup` creates
the rest with boto3. `chalice package --merge-template` instead gets the rest from the
merge template rendered here, so both ways deploy the same stream, trigger settings,
queue and policies.
"""
from __future__ import annotations

from typing import Any

from dalet_ops import iam_policies
from chalicelib.secrets import SECRETS_MANAGER, parse_reference
from dalet_ops.stage import API_HANDLER, TRACK, WRITER, Stage

STREAM_MODES = ("ON_DEMAND", "PROVISIONED")
# The writer's trigger gives up on a batch whose records are this old (or after its retries)
# and parks it (its shard and sequence numbers) in SQS.
MAX_RECORD_AGE_HOURS = 24
# A parked batch is replayed from the stream (`python -m dalet_ops.cli replay`), so the
# stream must keep records well past the age at which they are parked: at least a day
# longer, a week by default.
MIN_STREAM_RETENTION_HOURS = MAX_RECORD_AGE_HOURS + 24
STREAM_RETENTION_HOURS = 168
MAX_STREAM_RETENTION_HOURS = 8760                 # Kinesis's maximum
STREAM_ENCRYPTION_KEY = "alias/aws/kinesis"      # the AWS-managed key needs no IAM permission
FAILURE_QUEUE_RETENTION_SECONDS = 14 * 24 * 3600  # SQS's maximum
# The writer's trigger: report partial failures, split failing batches, give up on a
# batch after bounded retries or MAX_RECORD_AGE_HOURS, and park it in SQS.
TRIGGER_SETTINGS: dict[str, Any] = {
    "FunctionResponseTypes": ["ReportBatchItemFailures"],
    "BisectBatchOnFunctionError": True,
    "MaximumRetryAttempts": 20,
    "MaximumRecordAgeInSeconds": MAX_RECORD_AGE_HOURS * 3600,
}

# Logical IDs Chalice gives its resources in `chalice package` output.
CHALICE_IDS = {
    API_HANDLER: ("APIHandler", "ApiHandlerRole"),
    TRACK: ("Track", "TrackRole"),
    WRITER: ("WriteEvents", "WriteEventsRole"),
}
WRITER_EVENT_SOURCE_ID = "WriteEventsKinesisEventSource"
STREAM_ID = "EventStream"
QUEUE_ID = "FailedBatchQueue"
API_KEY_SECRET_ID = "ReportApiKeySecret"
API_KEY_LENGTH = 43


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
        resources[function_id] = {"Properties": {"FunctionName": stage.function_name(function)}}
        # Named as `chalice deploy` names them, so Google's workload identity pool can admit
        # `assumed-role/<name>` whichever way the stage was deployed.
        resources[role_id] = {"Properties": {"RoleName": stage.role_name(function), "Policies": [{
            "PolicyName": f"{role_id}Policy",
            "PolicyDocument": iam_policies.with_substitutions(policies[function]),
        }]}}
    writer_id = CHALICE_IDS[WRITER][0]
    resources[writer_id]["Properties"]["Events"] = {WRITER_EVENT_SOURCE_ID: {"Properties": {
        "Stream": {"Fn::Sub": f"${{{STREAM_ID}.Arn}}"},
        **TRIGGER_SETTINGS,
        "DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": [QUEUE_ID, "Arn"]}}},
    }}}
    return {
        "Parameters": _parameters(),
        "Conditions": {"ProvisionedStream": {"Fn::Equals": [{"Ref": "StreamMode"}, "PROVISIONED"]}},
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
            "Type": "String", "AllowedValues": list(STREAM_MODES), "Default": "ON_DEMAND",
            "Description": "ON_DEMAND (pay per GB, scales by itself) or PROVISIONED (pay per shard-hour)",
        },
        "ShardCount": {
            "Type": "Number", "Default": 1, "MinValue": 1,
            "Description": "Shards when StreamMode is PROVISIONED (each takes 1,000 records/s or 1 MiB/s)",
        },
        "RetentionPeriodHours": {
            "Type": "Number", "Default": STREAM_RETENTION_HOURS, "MinValue": MIN_STREAM_RETENTION_HOURS,
            "MaxValue": MAX_STREAM_RETENTION_HOURS,
            "Description": f"How long the stream keeps records, so parked batches can be replayed (at least "
                           f"{MIN_STREAM_RETENTION_HOURS}: batches are parked when their records are "
                           f"{MAX_RECORD_AGE_HOURS} h old)",
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


def _outputs(stage: Stage) -> dict[str, Any]:
    api_url = "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/api"
    outputs: dict[str, Any] = {
        "TrackURL": {"Value": {"Fn::Sub": f"{api_url}/track"}},
        "DashboardURL": {"Value": {"Fn::Sub": f"{api_url}/dashboard"}},
        "EventStreamArn": {"Value": {"Fn::GetAtt": [STREAM_ID, "Arn"]}},
        "FailedBatchQueueUrl": {"Value": {"Ref": QUEUE_ID}},
    }
    if _template_creates_api_key_secret(stage):
        outputs["ReportApiKeySecretArn"] = {"Value": {"Ref": API_KEY_SECRET_ID}}
    return outputs
