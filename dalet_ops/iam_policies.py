"""The IAM policy of each Lambda function, least privilege, rendered from one definition.

Chalice puts every route in one function (`api_handler`), so the routes share a
policy: put records on the one stream, read the report API key, the Segment write
keys and, when a key is used for Google, that secret. The function behind the
function URL (`track`) serves only the ingest routes (/v1/* included): it may put
records on the stream and read the Segment write keys, nothing else. The writer
(`write_events`) may read the one stream as Lambda's event source does, park failed
batches in the one queue and read the Google secret. Each function may write only
its own log group.

The same definition renders concrete ARNs for `chalice deploy` (the policy files
that `setup` writes) and `${...}` substitutions for the CloudFormation merge template.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.secrets import SECRETS_MANAGER, SecretReference, parse_reference
from dalet_ops.stage import API_HANDLER, TRACK, WRITER, Stage

POLICY_VERSION = "2012-10-17"
PUBLISH_ACTIONS = ["kinesis:PutRecord", "kinesis:PutRecords"]
# What Lambda's Kinesis event source needs (standard iterators; no enhanced fan-out).
EVENT_SOURCE_ACTIONS = [
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
]
LOG_ACTIONS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
PARK_ACTIONS = ["sqs:SendMessage"]
READ_ACTIONS = {SECRETS_MANAGER: ["secretsmanager:GetSecretValue"], "ssm": ["ssm:GetParameter"]}


@dataclass(frozen=True)
class AwsLocation:
    partition: str
    region: str
    account: str

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"

    def secret_arn(self, reference: SecretReference) -> str:
        """An ARN as given, or the one a secret/parameter of that name has.

        Secrets Manager appends six random characters to a secret's ARN; `-??????`
        matches exactly those, so no other secret's ARN can match.
        """
        if reference.name.startswith("arn:"):
            return reference.name
        if reference.store == SECRETS_MANAGER:
            return self.arn("secretsmanager", f"secret:{reference.name}-??????")
        return self.arn("ssm", f"parameter/{reference.name.lstrip('/')}")


# The location inside a CloudFormation template: every ARN becomes a Fn::Sub.
TEMPLATE_LOCATION = AwsLocation("${AWS::Partition}", "${AWS::Region}", "${AWS::AccountId}")


@dataclass(frozen=True)
class StageResources:
    """The ARNs a stage's functions may touch."""
    location: AwsLocation
    stream: str
    failure_queue: str
    api_key_secret: str | None = None          # exact ARN, when known better than by name
    google_credentials_secret: str | None = None


def policy_documents(stage: Stage, resources: StageResources) -> dict[str, dict[str, Any]]:
    """Each function's policy document, by Chalice function name."""
    settings = stage.settings
    google = _secret_statement("ReadTheGoogleCredentials", settings.google_credentials_secret,
                               "DALET_GOOGLE_CREDENTIALS_SECRET", resources.google_credentials_secret,
                               resources.location)
    api_key = _secret_statement("ReadTheReportApiKey", settings.api_key_secret, "DALET_API_KEY_SECRET",
                                resources.api_key_secret, resources.location)
    write_keys = _secret_statement("ReadTheSegmentWriteKeys", settings.write_keys_secret, "DALET_WRITE_KEYS_SECRET",
                                   None, resources.location)
    return {
        API_HANDLER: _document([
            _statement("PutEventsOnTheStream", PUBLISH_ACTIONS, [resources.stream]),
            api_key,
            write_keys,
            google,
            _log_statement(stage.function_name(API_HANDLER), resources.location),
        ]),
        TRACK: _document([      # the front door serves /v1/* too, so it reads the write keys
            _statement("PutEventsOnTheStream", PUBLISH_ACTIONS, [resources.stream]),
            write_keys,
            _log_statement(stage.function_name(TRACK), resources.location),
        ]),
        WRITER: _document([
            _statement("ReadTheStreamAsEventSource", EVENT_SOURCE_ACTIONS, [resources.stream]),
            _statement("ParkFailedBatches", PARK_ACTIONS, [resources.failure_queue]),
            google,
            _log_statement(stage.function_name(WRITER), resources.location),
        ]),
    }


def with_substitutions(document: Any) -> Any:
    """The document with every `${...}` string wrapped in Fn::Sub, for a CloudFormation template."""
    if isinstance(document, dict):
        return {key: with_substitutions(value) for key, value in document.items()}
    if isinstance(document, list):
        return [with_substitutions(value) for value in document]
    if isinstance(document, str) and "${" in document:
        return {"Fn::Sub": document}
    return document


def _document(statements: list[dict[str, Any] | None]) -> dict[str, Any]:
    return {"Version": POLICY_VERSION, "Statement": [s for s in statements if s is not None]}


def _statement(sid: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": list(resources)}


def _secret_statement(sid: str, configured: str | None, variable: str, exact_arn: str | None,
                      location: AwsLocation) -> dict[str, Any] | None:
    if not configured:
        return None
    reference = parse_reference(configured, variable)
    return _statement(sid, READ_ACTIONS[reference.store], [exact_arn or location.secret_arn(reference)])


def _log_statement(function_name: str, location: AwsLocation) -> dict[str, Any]:
    group = location.arn("logs", f"log-group:/aws/lambda/{function_name}")
    return _statement("WriteOwnLogs", LOG_ACTIONS, [group, f"{group}:*"])
