"""`preflight`: is a deployed stage ready for traffic? One line per check, with the fix when not.

Checks only read: nothing is created or changed (that is `setup`'s job).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from chalicelib import google_credentials, provision, schema
from chalicelib.config import Settings
from chalicelib.secrets import SSM, parse_reference
from chalicelib.stage import WRITER, Stage

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
    setup_fix = f"python -m chalicelib.cli setup --stage {stage.name}"
    try:
        identity = provision.aws_identity(session)
    except provision.SetupError as error:
        yield Check("AWS credentials", False, error.problem, error.fix)
    else:
        yield Check("AWS credentials", True, f"account {identity.account}, region {identity.region}, "
                                             f"as {identity.principal}")
        yield from _aws_checks(stage, session, setup_fix)
    yield from _bigquery_checks(bigquery_settings or settings, setup_fix)


def _aws_checks(stage: Stage, session: Any, setup_fix: str) -> Iterator[Check]:
    settings = stage.settings
    stream = _check_stream(session.client("kinesis"), settings.stream_name, setup_fix)
    yield stream
    queue_arn, queue_check = _check_queue(session.client("sqs"), stage.failure_queue_name, stage.name, setup_fix)
    yield queue_check
    yield _check_api_key(session, settings, setup_fix)
    if settings.google_credentials_secret:
        yield _check_secret_exists(session, settings.google_credentials_secret, "DALET_GOOGLE_CREDENTIALS_SECRET",
                                   "Google service-account key", "store the key file there with "
                                   "`aws secretsmanager create-secret --secret-string file://key.json`")
    if stream.ok and queue_arn:
        yield _check_trigger(session, stage, queue_arn, setup_fix)


def _check_stream(kinesis: Any, name: str, setup_fix: str) -> Check:
    label = f"stream {name}"
    try:
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    except kinesis.exceptions.ResourceNotFoundException:
        return Check(label, False, "not found in this account and region", setup_fix)
    status = summary["StreamStatus"]
    mode = summary.get("StreamModeDetails", {}).get("StreamMode", "PROVISIONED")
    if status != "ACTIVE":
        return Check(label, False, f"is {status}, not ACTIVE", f"wait for it, then run preflight again ({setup_fix} waits)")
    return Check(label, True, f"ACTIVE, {mode}, {summary['RetentionPeriodHours']} h retention")


def _check_queue(sqs: Any, name: str, stage_name: str, setup_fix: str) -> tuple[str | None, Check]:
    label = f"failed-batch queue {name}"
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except sqs.exceptions.QueueDoesNotExist:
        return None, Check(label, False, "not found", setup_fix)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "ApproximateNumberOfMessages"])
    parked = int(attributes["Attributes"].get("ApproximateNumberOfMessages", "0"))
    arn = attributes["Attributes"]["QueueArn"]
    if parked:
        return arn, Check(label, False, f"{parked} failed batch(es) parked, not yet in BigQuery",
                          f"fix the cause (see the writer's logs), then python -m chalicelib.cli replay --stage {stage_name}")
    return arn, Check(label, True, "exists, no failed batches parked")


def _check_api_key(session: Any, settings: Settings, setup_fix: str) -> Check:
    if not settings.api_key_secret:
        if settings.api_key:
            return Check("report API key", True, "DALET_API_KEY is set in .chalice/config.json "
                                                 "(a secret, DALET_API_KEY_SECRET, is safer)")
        return Check("report API key", False, "neither DALET_API_KEY_SECRET nor DALET_API_KEY is set",
                     "set DALET_API_KEY_SECRET in the stage's environment_variables, then " + setup_fix)
    return _check_secret_exists(session, settings.api_key_secret, "DALET_API_KEY_SECRET", "report API key", setup_fix)


def _check_secret_exists(session: Any, value: str, variable: str, label: str, fix: str) -> Check:
    """The secret exists (its value is not read)."""
    reference = parse_reference(value, variable)
    try:
        if reference.store == SSM:
            session.client(SSM).get_parameter(Name=reference.name)
        else:
            session.client("secretsmanager").describe_secret(SecretId=reference.name)
    except Exception as error:
        code = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
        return Check(label, False, f"{reference}: {code}", fix)
    return Check(label, True, f"{reference} exists")


def _check_trigger(session: Any, stage: Stage, queue_arn: str, setup_fix: str) -> Check:
    function_name = stage.function_name(WRITER)
    kinesis = session.client("kinesis")
    stream_arn = kinesis.describe_stream_summary(StreamName=stage.settings.stream_name)["StreamDescriptionSummary"]["StreamARN"]
    mapping = provision.writer_trigger(session.client("lambda"), function_name, stream_arn)
    label = f"writer trigger ({function_name})"
    if mapping is None:
        return Check(label, False, "the writer is not deployed or has no trigger on the stream",
                     f"chalice deploy --stage {stage.name}, then {setup_fix}")
    problems = provision.trigger_problems(mapping, queue_arn)
    if problems:
        return Check(label, False, "; ".join(problems), setup_fix)
    return Check(label, True, f"{mapping.get('State', 'Enabled')}, partial batch responses, bisect on error, "
                              f"{mapping['MaximumRetryAttempts']} retries, failed batches to the queue")


def _bigquery_checks(settings: Settings, setup_fix: str) -> Iterator[Check]:
    source = google_credentials.source_label(settings)
    try:
        client = google_credentials.bigquery_client(settings)
    except google_credentials.GoogleCredentialsError as error:
        yield Check("Google credentials", False, source, str(error))
        return
    except Exception as error:    # a secret that cannot be read, a broken key...
        yield Check("Google credentials", False, f"{source}: {error}", "see docs/deploy.md, Google credentials")
        return
    yield Check("Google credentials", True, f"{source}, project {client.project}")
    for name, table in provision.warehouse_tables(settings):
        yield _check_table(client, settings, name, table, setup_fix)


def _check_table(client: Any, settings: Settings, name: str, spec: schema.Table, setup_fix: str) -> Check:
    from google.api_core import exceptions as google_errors

    table_id = f"{client.project}.{settings.bq_dataset}.{name}"
    label = f"BigQuery table {table_id}"
    try:
        table = client.get_table(table_id)
    except google_errors.NotFound:
        return Check(label, False, "not found", setup_fix)
    except google_errors.GoogleAPIError as error:
        return Check(label, False, f"not reachable: {error}",
                     "give the identity the BigQuery Data Editor and Job User roles on the project")
    except Exception as error:    # token exchange and transport failures
        return Check(label, False, f"not reachable: {error}", "check the Google credentials configuration")
    problems = schema_problems(table, spec)
    if problems:
        return Check(label, False, "; ".join(problems),
                     f"the table predates this version of Dalet: migrate it to chalicelib/schema.py's {spec.name} "
                     "layout (or drop it and rerun setup)")
    return Check(label, True, "reachable, schema matches")


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

