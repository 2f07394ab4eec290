"""The deploy subcommands of `python -m dalet_ops.cli`: setup, preflight, replay, snippet, template, teardown."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chalicelib import config
from chalicelib.ingest import snippet
from chalicelib.ingest.events import DEFAULT_NAMESPACE, InvalidEvent, validate_name
from chalicelib.secrets import SSM, parse_reference
from dalet_ops import infrastructure, preflight, provision, replay
from dalet_ops.stage import API_HANDLER, FUNCTIONS, PROJECT_DIR, TRACK, Stage, load_stage

ADC_HELP = ("use your own Application Default Credentials for BigQuery instead of the stage's "
            "(workload identity federation admits only the Lambda roles)")


def add_commands(commands: Any) -> None:
    setup = commands.add_parser("setup", help="create the stream, queue, API key secret, BigQuery tables and "
                                              "IAM policy files for a stage (idempotent)")
    _stage_options(setup)
    setup.add_argument("--stream-mode", choices=infrastructure.STREAM_MODES, default=infrastructure.DEFAULT_STREAM_MODE,
                       help=f"capacity mode of a new stream (default {infrastructure.DEFAULT_STREAM_MODE}; "
                            "ON_DEMAND for spiky or large traffic)")
    setup.add_argument("--shards", type=int, default=infrastructure.DEFAULT_SHARDS,
                       help=f"shards of a new PROVISIONED stream (default {infrastructure.DEFAULT_SHARDS}; "
                            "each takes 1,000 records/s)")
    setup.add_argument("--alarm-email", help="subscribe this address to the alarm topic (AWS emails a confirmation)")
    setup.add_argument("--retention-hours", type=int, default=infrastructure.STREAM_RETENTION_HOURS,
                       help=f"keep records this long, so failed batches can be replayed (at least "
                            f"{infrastructure.MIN_STREAM_RETENTION_HOURS}, default "
                            f"{infrastructure.STREAM_RETENTION_HOURS})")
    setup.add_argument("--show-key", action="store_true", help="also print the report API key itself")
    setup.set_defaults(run=run_setup)

    check = commands.add_parser("preflight", help="check that a deployed stage is ready; exit 1 if not")
    _stage_options(check)
    check.set_defaults(run=run_preflight)

    again = commands.add_parser("replay", help="write the batches the writer gave up on (from the failed-batch "
                                               "queue), then remove them from the queue")
    _stage_options(again)
    again.set_defaults(run=run_replay)

    paste = commands.add_parser("snippet", help="print the AlephBet snippet for a deployment's /track")
    where = paste.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="the API's URL (https://.../api/) or its /track URL")
    where.add_argument("--stage", help="this stage's front door (DALET_TRACK_URL, or the track function's URL), "
                                       "else the REST API URL `chalice deploy` recorded")
    paste.add_argument("--namespace", default=DEFAULT_NAMESPACE,
                       help=f"the namespace the snippet's events go to (default {DEFAULT_NAMESPACE})")
    paste.add_argument("--region", help="AWS region (default: your AWS configuration)")
    paste.add_argument("--profile", help="AWS profile (default: AWS_PROFILE or the default profile)")
    _project_option(paste)
    paste.set_defaults(run=run_snippet)

    template = commands.add_parser("template", help="write .chalice/merge-template-STAGE.json for "
                                                    "`chalice package --merge-template`")
    template.add_argument("--stage", required=True, help="a stage of .chalice/config.json, e.g. prod")
    template.add_argument("--check", action="store_true", help="only check the file is up to date (exit 1 if not)")
    _project_option(template)
    template.set_defaults(run=run_template)

    teardown = commands.add_parser("teardown", help="print the commands that remove a stage (runs nothing)")
    teardown.add_argument("--stage", required=True, help="a stage of .chalice/config.json, e.g. prod")
    _project_option(teardown)
    teardown.set_defaults(run=run_teardown)


def _stage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", required=True, help="a stage of .chalice/config.json, e.g. prod")
    _project_option(parser)
    parser.add_argument("--region", help="AWS region (default: your AWS configuration)")
    parser.add_argument("--profile", help="AWS profile (default: AWS_PROFILE or the default profile)")
    parser.add_argument("--adc", action="store_true", help=ADC_HELP)


def _project_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project-dir", type=Path, default=PROJECT_DIR,
                        help="the folder holding app.py and .chalice/ (default: this checkout)")


def _load(arguments: argparse.Namespace) -> Stage:
    return load_stage(arguments.stage, arguments.project_dir)


def _fail(message: str) -> int:
    print(f"dalet: {message}", file=sys.stderr)
    return 1


def aws_session(arguments: argparse.Namespace) -> Any:
    """The boto3 session of `--profile` and `--region`."""
    import boto3

    return boto3.session.Session(profile_name=arguments.profile, region_name=arguments.region)


def bigquery_settings(stage: Stage, arguments: argparse.Namespace) -> config.Settings:
    """The settings BigQuery is reached with: the stage's, or Application Default Credentials with `--adc`."""
    settings = stage.settings
    return provision.without_stage_google_credentials(settings) if arguments.adc else settings


def run_setup(arguments: argparse.Namespace) -> int:
    try:
        stage = _load(arguments)
        options = provision.StreamOptions(arguments.stream_mode, arguments.shards, arguments.retention_hours)
        outcome = provision.run_setup(stage, aws_session(arguments), print, options, arguments.show_key,
                                      bigquery_settings(stage, arguments), arguments.alarm_email)
    except (provision.SetupError, config.ConfigError) as error:
        return _fail(str(error))
    except Exception as error:
        return _fail(f"setup stopped: {type(error).__name__}: {error} (setup is idempotent: fix and run it again)")
    if outcome.failed_steps:
        return _fail(f"{len(outcome.failed_steps)} step(s) failed ({', '.join(outcome.failed_steps)}); the others "
                     "are done. Fix what the FAILED lines say and run setup again (it is idempotent)")
    print(next_step(stage, outcome.deployment))
    return 0


def next_step(stage: Stage, deployment: provision.Deployment) -> str:
    preflight_command = f"python -m dalet_ops.cli preflight --stage {stage.name}"
    if deployment.deployed:
        return f"Next: {preflight_command}"
    return (f"Next: chalice deploy --stage {stage.name}, then setup again (it then tunes the writer's trigger, "
            f"opens the front door, throttles the REST API, gives the log groups their retention and creates the "
            f"alarms), then {preflight_command}. "
            "(Or deploy the packaged CloudFormation template, docs/deploy.md section 4b, then run setup once more.)")


def run_preflight(arguments: argparse.Namespace) -> int:
    try:
        stage = _load(arguments)
        checks = preflight.run_preflight(stage, aws_session(arguments), bigquery_settings(stage, arguments))
        failed = 0
        for check in checks:
            print(check.line())
            failed += not check.ok
    except config.ConfigError as error:
        return _fail(str(error))
    except Exception as error:    # each check reports AWS's and Google's errors itself; this is a bug
        return _fail(f"preflight stopped: {type(error).__name__}: {error}")
    print(f"{failed} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0


def run_replay(arguments: argparse.Namespace) -> int:
    from chalicelib.storage.bigquery_warehouse import BigQueryWarehouse

    try:
        stage = _load(arguments)
        session = aws_session(arguments)
        provision.aws_identity(session)
        sqs, kinesis = session.client("sqs"), session.client("kinesis")
        settings = bigquery_settings(stage, arguments)
        warehouse = BigQueryWarehouse.from_settings(settings)
        queue_url = sqs.get_queue_url(QueueName=stage.failure_queue_name)["QueueUrl"]
        stream_arn = kinesis.describe_stream_summary(
            StreamName=settings.stream_name)["StreamDescriptionSummary"]["StreamARN"]
        summary = replay.replay_parked_batches(sqs, queue_url, kinesis, settings.stream_name, stream_arn,
                                               warehouse, print)
    except (provision.SetupError, config.ConfigError) as error:
        return _fail(str(error))
    except Exception as error:
        return _fail(f"replay stopped: {type(error).__name__}: {error} (what was not written stays on the queue)")
    print(f"{summary.written} batch(es), {summary.records} record(s) written; {summary.kept} left on the queue")
    return 1 if summary.kept else 0


def run_snippet(arguments: argparse.Namespace) -> int:
    try:
        url = track_url(arguments.url) if arguments.url else stage_track_url(_load(arguments), arguments)
        namespace = validate_name("namespace", arguments.namespace)
    except InvalidEvent as invalid:
        return _fail(f"--namespace {invalid}")
    except (ValueError, config.ConfigError) as error:
        return _fail(str(error))
    print(snippet.render_snippet(url, namespace))
    return 0


def track_url(url: str) -> str:
    """The /track URL from the API's URL or the /track URL itself."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"--url must be an http(s) URL such as https://abc123.execute-api.us-east-1."
                         f"amazonaws.com/api/, got {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith(snippet.TRACK_PATH):
        path += snippet.TRACK_PATH
    return f"{parts.scheme}://{parts.netloc}{path}"


def stage_track_url(stage: Stage, arguments: argparse.Namespace) -> str:
    """The front door's /track URL (DALET_TRACK_URL, else the track function's URL), else the REST API's /track."""
    if stage.environment.get("DALET_TRACK_URL"):
        return stage.environment["DALET_TRACK_URL"]
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        session = aws_session(arguments)
        answer = session.client("lambda").get_function_url_config(FunctionName=stage.function_name(TRACK))
        return provision.front_door_track_url(answer["FunctionUrl"])
    except (BotoCoreError, ClientError) as error:
        print(f"dalet: no front door found ({type(error).__name__}: {error}); using the REST API's /track, "
              "which costs API Gateway's price per event", file=sys.stderr)
    return track_url(deployed_api_url(stage))


def deployed_api_url(stage: Stage) -> str:
    """The REST API URL `chalice deploy` recorded in .chalice/deployed/STAGE.json."""
    record = stage.project_dir / ".chalice" / "deployed" / f"{stage.name}.json"
    try:
        resources = json.loads(record.read_text())["resources"]
    except (OSError, ValueError, KeyError):
        raise ValueError(f"no deployment recorded in {record}: run chalice deploy --stage {stage.name}, "
                         "or pass --url") from None
    for resource in resources:
        if resource.get("resource_type") == "rest_api" and resource.get("rest_api_url"):
            return resource["rest_api_url"]
    raise ValueError(f"{record} records no REST API: pass --url")


def run_template(arguments: argparse.Namespace) -> int:
    try:
        stage = _load(arguments)
        text = render_merge_template(stage)
    except config.ConfigError as error:
        return _fail(str(error))
    path: Path = stage.merge_template_file
    if arguments.check:
        current = path.read_text() if path.exists() else ""
        if current != text:
            return _fail(f"{path} is out of date: run python -m dalet_ops.cli template --stage {stage.name}")
        print(f"{path} is up to date")
        return 0
    path.write_text(text)
    print(f"wrote {path}; package with: chalice package --stage {stage.name} "
          f"--merge-template {path.relative_to(stage.project_dir)} out/")
    return 0


def render_merge_template(stage: Stage) -> str:
    return json.dumps(infrastructure.merge_template(stage), indent=2) + "\n"



def run_teardown(arguments: argparse.Namespace) -> int:
    try:
        stage = _load(arguments)
        print(teardown_commands(stage))
    except config.ConfigError as error:
        return _fail(str(error))
    return 0


def teardown_commands(stage: Stage) -> str:
    settings = stage.settings
    groups = [infrastructure.log_group_name(stage, function) for function in FUNCTIONS]
    lines = [
        "# Dalet teardown: nothing is run for you. Review, then run what applies.",
        "# 1. Functions (the front door's URL goes with its function), roles and the API:",
        f"chalice delete --stage {stage.name}",
        "#    (or, if you deployed the packaged template: aws cloudformation delete-stack --stack-name STACK;",
        "#     that also deletes the stream, the queue, the API key secret, the log groups and the alarms, so skip",
        "#     step 2; then empty and remove the bucket you gave `aws cloudformation package --s3-bucket`, which",
        "#     holds the packaged deployment.zip: aws s3 rm s3://YOUR_BUCKET --recursive && aws s3 rb s3://YOUR_BUCKET)",
        "# 2. What setup created:",
        "aws cloudwatch delete-alarms --alarm-names "
        + " ".join(infrastructure.alarm_name(stage, alarm) for alarm in infrastructure.ALARMS),
        f"aws sns delete-topic --topic-arn \"$(aws sns create-topic --name {infrastructure.alarm_topic_name(stage)} "
        "--query TopicArn --output text)\"",
        f"#    the functions' log groups and their metric filters (`chalice delete` removes the groups it made, but "
        f"not {infrastructure.log_group_name(stage, API_HANDLER)}; a group already gone answers ResourceNotFound):",
        *(f"aws logs delete-log-group --log-group-name {group}" for group in groups),
        f"aws kinesis delete-stream --stream-name {settings.stream_name} --enforce-consumer-deletion",
        f"aws sqs delete-queue --queue-url \"$(aws sqs get-queue-url --queue-name {stage.failure_queue_name} "
        "--query QueueUrl --output text)\"",
    ]
    lines += [_delete_secret(value, variable) for value, variable in (
        (settings.api_key_secret, "DALET_API_KEY_SECRET"), (settings.write_keys_secret, "DALET_WRITE_KEYS_SECRET"))
        if value]
    project = settings.bq_project or "PROJECT"
    lines += [
        "# 3. The data (irreversible: every event and result is gone):",
        f"bq rm -r -f --dataset {project}:{settings.bq_dataset}",
    ]
    return "\n".join(lines)


def _delete_secret(value: str, variable: str) -> str:
    reference = parse_reference(value, variable)
    if reference.store == SSM:
        return f"aws ssm delete-parameter --name {reference.name}"
    return f"aws secretsmanager delete-secret --secret-id {reference.name} --recovery-window-in-days 7"
