"""What Dalet costs a month, from sizes and durations measured here and the deployed template's settings.

Measured in this run, per event (a realistic AlephBet mix: 36-character uuids, short names):
- the Kinesis record: the bytes PutRecord sends (data + partition key), captured through the
  real botocore client talking to a moto server on loopback;
- the BigQuery row: the insertAll JSON bytes per row the real client sends to the stand-in
  (tests/bigquery_standin.py), and the row's logical storage size (BigQuery's sizes per
  type: STRING 2 + UTF-8 bytes, FLOAT64/TIMESTAMP 8, NULL 0);
- the log bytes each invocation writes at the template's log level (Lambda's text format:
  level, time, request id, message, plus CloudWatch's 26 bytes per log event), plus
  Lambda's START/END/REPORT lines unless the template's LoggingConfig drops them;
- the handler durations through the Lambda entry: GET /track (`app.app(event, context)`
  with one PutRecord to moto over HTTP), and the writer (`app.write_events`) per batch of
  1..500 records against the stand-in: a fixed part and a part per record (smallest and largest batch).

Read from the template `chalice package --stage prod --merge-template ...` builds (so the
model follows the code): the front door (REST API, HTTP API or Lambda function URL), the
stream mode, shard count and retention defaults, the writer's batch size and batching
window, memory sizes and architecture, log level and retention, alarms, secrets.

Priced with PRICES below (list prices, us-east-1, no free tiers, dated; each names its
source) at 1M, 15M, 100M and 1B events a month, next to the same deployment behind the
REST API front door and the two anchors.

The headline is all-in: the write path above, plus the experiment catalog's upkeep and the dashboard's
reads (bench/reads.py: each load the page's own reads, priced from their BigQuery text) at --dashboard-loads a
month (default 2,000: 10 people x 10 loads a working day) after a year of events.

    .venv/bin/python bench/cost.py [--quick] [--peak-factor 4] [--dashboard-loads 2000] [--template sam.json]
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from _common import LambdaContext, clear_dalet_environment, emit, proxy_event
from reads import maintenance_usd, prod_results_max_age_minutes, reads_usd
from tqdm import tqdm

from tests.cold_start import kinesis_batch, moto_kinesis
from tests.lambda_package import build_package

PRICES_AS_OF = "2025-06"
HOURS_PER_MONTH = 730
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
GB = 1e9
TIB = 2 ** 40
VOLUMES = (1_000_000, 15_000_000, 100_000_000, 1_000_000_000)
GOAL_MONTHLY_AT_15M = 25.0          # all-in: writes + catalog upkeep + reads (issue 16)
GOAL_PER_MILLION_AT_1B = 0.60       # all-in, after a year, 2,000 loads a month (issue 16)
REDIS_ANCHOR_AT_15M = 100.0        # the Redis version, per its author
KINESIS_BIGQUERY_ANCHOR = 11.0     # the Kinesis + BigQuery version per month, plus its REST API requests


@dataclass(frozen=True)
class Price:
    usd: float
    per: str
    source: str


# List prices, us-east-1, as published on the pages named (checked PRICES_AS_OF); free tiers left out.
PRICES: dict[str, Price] = {
    "rest_api_request": Price(3.50 / 1e6, "request (first 333M a month)", "https://aws.amazon.com/api-gateway/pricing/"),
    "http_api_request": Price(1.00 / 1e6, "request (first 300M a month)", "https://aws.amazon.com/api-gateway/pricing/"),
    "function_url_request": Price(0.0, "request (function URLs cost nothing beyond the invocation)",
                                  "https://aws.amazon.com/lambda/pricing/"),
    "lambda_request": Price(0.20 / 1e6, "invocation", "https://aws.amazon.com/lambda/pricing/"),
    "lambda_gb_second_x86_64": Price(0.0000166667, "GB-second (x86_64, 1 ms billing)",
                                     "https://aws.amazon.com/lambda/pricing/"),
    "lambda_gb_second_arm64": Price(0.0000133334, "GB-second (arm64, 1 ms billing)",
                                    "https://aws.amazon.com/lambda/pricing/"),
    "kinesis_shard_hour": Price(0.015, "shard-hour (provisioned)", "https://aws.amazon.com/kinesis/data-streams/pricing/"),
    "kinesis_put_unit": Price(0.014 / 1e6, "PUT payload unit of 25 KB (provisioned)",
                              "https://aws.amazon.com/kinesis/data-streams/pricing/"),
    "kinesis_extended_retention_shard_hour": Price(
        0.020, "shard-hour of retention beyond 24 h, up to 7 days (provisioned)",
        "https://aws.amazon.com/kinesis/data-streams/pricing/"),
    "kinesis_on_demand_stream_hour": Price(0.04, "stream-hour (on-demand)",
                                           "https://aws.amazon.com/kinesis/data-streams/pricing/"),
    "kinesis_on_demand_ingest_gb": Price(0.08, "GB written, each record rounded up to 1 KB (on-demand)",
                                         "https://aws.amazon.com/kinesis/data-streams/pricing/"),
    "kinesis_on_demand_retrieval_gb": Price(0.04, "GB read (on-demand)",
                                            "https://aws.amazon.com/kinesis/data-streams/pricing/"),
    "kinesis_on_demand_retention_gb_month": Price(0.10, "GB-month kept beyond 24 h (on-demand)",
                                                  "https://aws.amazon.com/kinesis/data-streams/pricing/"),
    "kms_request": Price(0.03 / 10_000, "request (the stream's server-side encryption)",
                         "https://aws.amazon.com/kms/pricing/"),
    "logs_ingest_gb": Price(0.50, "GB ingested (standard class; 26 bytes of metadata per event count)",
                            "https://aws.amazon.com/cloudwatch/pricing/"),
    "logs_storage_gb_month": Price(0.03, "GB-month archived", "https://aws.amazon.com/cloudwatch/pricing/"),
    "alarm_month": Price(0.10, "standard-resolution alarm-month", "https://aws.amazon.com/cloudwatch/pricing/"),
    "secret_month": Price(0.40, "secret-month", "https://aws.amazon.com/secrets-manager/pricing/"),
    "transfer_out_gb": Price(0.09, "GB out to the internet, AWS to Google (first 10 TB a month)",
                             "https://aws.amazon.com/ec2/pricing/on-demand/#Data_Transfer"),
    "bigquery_streaming_200mb": Price(0.01, "200 MB of streaming inserts (insertAll; 1 KB minimum per row)",
                                      "https://cloud.google.com/bigquery/pricing#data_ingestion_pricing"),
    "bigquery_active_storage_gb_month": Price(0.02, "GB-month, active logical storage (first 90 days)",
                                              "https://cloud.google.com/bigquery/pricing#storage"),
    "bigquery_long_term_storage_gb_month": Price(0.01, "GB-month, long-term logical storage (after 90 days)",
                                                 "https://cloud.google.com/bigquery/pricing#storage"),
    "bigquery_query_tib": Price(6.25, "TiB scanned (on-demand; 10 MB minimum per table a query references)",
                                "https://cloud.google.com/bigquery/pricing#on_demand_pricing"),
}

# Lambda's platform lines per invocation (text format), as printed in Lambda's documentation
# (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs.html); their lengths are what is billed.
PLATFORM_LINES = (
    "START RequestId: 6bc28136-xmpl-4365-b021-0ce6b2e64ab0 Version: $LATEST\n",
    "END RequestId: 6bc28136-xmpl-4365-b021-0ce6b2e64ab0\n",
    "REPORT RequestId: 6bc28136-xmpl-4365-b021-0ce6b2e64ab0\tDuration: 12.35 ms\tBilled Duration: 13 ms\t"
    "Memory Size: 256 MB\tMax Memory Used: 78 MB\t\n",
)
CLOUDWATCH_EVENT_OVERHEAD = 26
KINESIS_RECORDS_PER_SHARD_SECOND = 1000
KINESIS_BYTES_PER_SHARD_SECOND = 1024 * 1024
STORED_MONTHS = 12                  # events kept a year: BigQuery storage priced at its one-year level
KMS_REQUESTS_PER_KEY_USER_HOUR = 12  # a data key is reused about 5 minutes per producer and consumer


# ---- what the template deploys -------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    front_door: str                 # "function URL", "HTTP API" or "REST API"
    track_function: str             # the function /track runs in (Chalice's name)
    stream_mode: str
    shard_count: int
    retention_hours: int
    batch_size: int
    batching_window_seconds: float
    track_memory_mb: int
    writer_memory_mb: int
    architecture: str
    application_log_level: str      # what the functions' loggers let through
    platform_lines: bool            # START/END/REPORT written per invocation
    log_retention_days: int | None  # None: kept forever
    alarms: int
    secrets: int


def _default(parameters: dict[str, Any], value: Any) -> Any:
    """A template value, with `{"Ref": Parameter}` read as the parameter's default."""
    if isinstance(value, dict) and "Ref" in value and value["Ref"] in parameters:
        return parameters[value["Ref"]].get("Default")
    return value


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: resource for name, resource in resources.items() if resource.get("Type") == kind}


def read_deployment(template: dict[str, Any]) -> Deployment:
    resources, parameters = template["Resources"], template.get("Parameters", {})
    functions = _of_type(resources, "AWS::Serverless::Function") | _of_type(resources, "AWS::Lambda::Function")
    urls = _of_type(resources, "AWS::Lambda::Url")
    # The events' function: the one behind the function URL front door, else the API's.
    track_function = next((url["Properties"]["TargetFunctionArn"]["Fn::GetAtt"][0] for url in urls.values()
                           if "Fn::GetAtt" in url["Properties"].get("TargetFunctionArn", {})), "APIHandler")
    track = functions[track_function]["Properties"]
    writer = functions["WriteEvents"]["Properties"]
    kinesis = next(source["Properties"] for source in writer.get("Events", {}).values() if source["Type"] == "Kinesis")
    stream = _of_type(resources, "AWS::Kinesis::Stream")["EventStream"]["Properties"]
    mode = _default(parameters, stream.get("StreamModeDetails", {}).get("StreamMode", "PROVISIONED"))
    shards = stream.get("ShardCount", 1)
    if isinstance(shards, dict) and "Fn::If" in shards:
        shards = shards["Fn::If"][1]
    logging_config = track.get("LoggingConfig") or template.get("Globals", {}).get("Function", {}).get("LoggingConfig") or {}
    log_groups = _of_type(resources, "AWS::Logs::LogGroup")
    retention_days = [_default(parameters, group["Properties"].get("RetentionInDays")) for group in log_groups.values()]
    if urls:
        front_door = "function URL"
    elif _of_type(resources, "AWS::ApiGatewayV2::Api") or _of_type(resources, "AWS::Serverless::HttpApi"):
        front_door = "HTTP API"
    else:
        front_door = "REST API"
    application_level = _default(parameters, logging_config.get("ApplicationLogLevel", "WARN"))
    system_level = _default(parameters, logging_config.get("SystemLogLevel", "INFO"))
    return Deployment(
        front_door=front_door,
        track_function="api_handler" if track_function == "APIHandler" else track_function.lower(),
        stream_mode=str(mode),
        shard_count=int(_default(parameters, shards) or 1),
        retention_hours=int(_default(parameters, stream.get("RetentionPeriodHours", 24))),
        batch_size=int(kinesis.get("BatchSize", 100)),
        batching_window_seconds=float(kinesis.get("MaximumBatchingWindowInSeconds", 0)),
        track_memory_mb=int(track.get("MemorySize", 128)),
        writer_memory_mb=int(writer.get("MemorySize", 128)),
        architecture=(track.get("Architectures") or ["x86_64"])[0],
        application_log_level=str(application_level).upper(),
        platform_lines=str(system_level).upper() in ("DEBUG", "INFO"),
        log_retention_days=min(int(days) for days in retention_days) if retention_days and all(retention_days) else None,
        alarms=len(_of_type(resources, "AWS::CloudWatch::Alarm")),
        secrets=len(_of_type(resources, "AWS::SecretsManager::Secret")),
    )


# ---- what was measured ------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    record_bytes: float             # Kinesis data + partition key per event
    insert_bytes: float             # insertAll request bytes per row (the body divided by its rows)
    row_bytes: float                # BigQuery logical storage per row
    column_bytes: dict[str, float]  # BigQuery logical bytes per column per row
    track_seconds: float            # GET /track through the Lambda entry, median
    track_log_bytes: float          # per track invocation, at the template's level (platform lines apart)
    writer_fixed_seconds: float     # writer duration = fixed + per_record x records
    writer_per_record_seconds: float
    writer_log_bytes: float


_LEVELS = {"TRACE": logging.DEBUG, "DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING,
           "WARNING": logging.WARNING, "ERROR": logging.ERROR, "FATAL": logging.CRITICAL}


class LambdaLogBytes(logging.Handler):
    """Counts what Lambda's Python runtime would write for each record (text format)."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def emit(self, record: logging.LogRecord) -> None:
        line = f"[{record.levelname}]\t2025-06-01T12:00:00.000Z\t6bc28136-xmpl-4365-b021-0ce6b2e64ab0\t{record.getMessage()}\n"
        self.bytes += len(line.encode()) + CLOUDWATCH_EVENT_OVERHEAD


def logged_bytes(level: str, call: Callable[[], Any]) -> tuple[Any, int]:
    """Bytes the call logs through `logging` at `level` and prints to stdout/stderr."""
    counter = LambdaLogBytes()
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, root.handlers[:]
    root.handlers = [counter]
    root.setLevel(_LEVELS.get(level, logging.WARNING))
    chalice_log = logging.getLogger("dalet")     # Chalice's app.log: its own stdout handler, no propagation
    chalice_log.addHandler(counter)
    printed = io.StringIO()
    try:
        with redirect_stdout(printed), redirect_stderr(printed):
            result = call()
    finally:
        chalice_log.removeHandler(counter)
        root.handlers = saved_handlers
        root.setLevel(saved_level)
    lines = [line for line in printed.getvalue().splitlines() if line]
    return result, counter.bytes + sum(len(line.encode()) + 1 + CLOUDWATCH_EVENT_OVERHEAD for line in lines)


def track_query(n: int) -> dict[str, str]:
    return {"namespace": "alephbet", "experiment": ("checkout flow", "pricing page", "my a/b test")[n % 3],
            "variant": ("control", "red", "blue")[n % 3], "event": ("participate", "participate", "purchase")[n % 3],
            "uuid": str(uuid.UUID(int=n + 1, version=4))}


def measure_track(calls: int, log_level: str, progress: Any) -> tuple[float, float, float]:
    """(Kinesis bytes per record, median seconds per GET /track, log bytes per call), against moto."""
    import app as dalet
    from chalicelib import runtime

    client = runtime.publisher().client
    sizes: list[int] = []
    client.meta.events.register(
        "before-parameter-build.kinesis.PutRecord",
        lambda params, **_: sizes.append(len(params["Data"]) + len(params["PartitionKey"].encode())))
    context = LambdaContext()
    durations, log_bytes = [], []
    for n in range(calls):
        event = proxy_event("GET", "/track", track_query(n))
        started = time.perf_counter()
        response, logged = logged_bytes(log_level, lambda: dalet.app(event, context))
        durations.append(time.perf_counter() - started)
        log_bytes.append(logged)
        if response["statusCode"] != 200:
            sys.exit(f"the benchmark's /track failed: {response}")
        progress.update(1)
    return statistics.mean(sizes), statistics.median(durations[calls // 10:]), statistics.mean(log_bytes)


def measure_writer(standin: Any, log_level: str, rounds: int, progress: Any) -> tuple[float, float, float, float]:
    """(insertAll bytes per row, fixed seconds, seconds per record, log bytes per batch), against the stand-in."""
    import app as dalet

    sizes = (1, 50, 200, 500)
    medians, log_bytes = [], []
    batch_number = 0
    for size in sizes:
        durations = []
        for _ in range(rounds):
            batch_number += 1
            event = kinesis_batch(size, prefix=f"cost-{batch_number}")
            started = time.perf_counter()
            answer, logged = logged_bytes(log_level, lambda: dalet.write_events(event, LambdaContext()))
            durations.append(time.perf_counter() - started)
            log_bytes.append(logged)
            if answer != {"batchItemFailures": []}:
                sys.exit(f"the benchmark's writer failed: {answer}")
            progress.update(1)
        medians.append(statistics.median(durations[1:]))
    # The line through the smallest and the largest batch: the fixed cost, and each record's share.
    slope = (medians[-1] - medians[0]) / (sizes[-1] - sizes[0])
    intercept = medians[0] - slope * sizes[0]
    inserts = [call for call in standin.calls if call.table is not None and call.table.endswith("events")]
    per_row = sum(call.size for call in inserts) / sum(len(call.body["rows"]) for call in inserts)
    return per_row, max(intercept, 0.0), max(slope, 0.0), statistics.mean(log_bytes)


def logical_bytes(rows: list[dict[str, Any]]) -> dict[str, float]:
    """BigQuery's logical size per column, averaged over `rows` (https://cloud.google.com/bigquery/pricing#data)."""
    from chalicelib.storage.schema import EVENTS

    sizes: dict[str, float] = {}
    for column in EVENTS.columns:
        total = 0
        for row in rows:
            value = row.get(column.name)
            if value is None:
                continue
            total += 2 + len(str(value).encode()) if column.type in ("STRING", "BYTES") else 8
        sizes[column.name] = total / len(rows)
    return sizes


# ---- the model --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    item: str
    usd: float
    fixed: bool
    arithmetic: str


def _billed_seconds(seconds: float) -> float:
    return math.ceil(seconds * 1000) / 1000


def _gb_second_price(deployment: Deployment) -> float:
    return PRICES[f"lambda_gb_second_{deployment.architecture.replace('-', '_')}"].usd


def shards_needed(deployment: Deployment, measured: Measured, events: float, peak_factor: float) -> int:
    peak = events / SECONDS_PER_MONTH * peak_factor
    return max(deployment.shard_count, math.ceil(peak / KINESIS_RECORDS_PER_SHARD_SECOND),
               math.ceil(peak * measured.record_bytes / KINESIS_BYTES_PER_SHARD_SECOND))


def writer_invocations(deployment: Deployment, shards: int, events: float) -> tuple[float, float]:
    """(invocations a month, records per invocation): each shard's poller invokes when its batching
    window closes with records in it (Poisson arrivals), or when a batch is full."""
    per_shard_rate = events / SECONDS_PER_MONTH / shards
    window = max(deployment.batching_window_seconds, 1.0)   # without a window Lambda polls about once a second
    if per_shard_rate * window >= deployment.batch_size:
        invocations = events / deployment.batch_size
    else:
        invocations = shards * SECONDS_PER_MONTH / window * (1 - math.exp(-per_shard_rate * window))
    return invocations, events / invocations


def monthly_lines(deployment: Deployment, measured: Measured, events: float, peak_factor: float) -> list[Line]:
    p = {name: price.usd for name, price in PRICES.items()}
    gb_second = _gb_second_price(deployment)
    lines: list[Line] = []
    millions = events / 1e6

    door_price = {"REST API": p["rest_api_request"], "HTTP API": p["http_api_request"],
                  "function URL": p["function_url_request"]}[deployment.front_door]
    lines.append(Line(f"front door: {deployment.front_door}", events * door_price, False,
                      f"{millions:,.0f}M requests x ${door_price * 1e6:.2f}/M"))

    track_gb_s = _billed_seconds(measured.track_seconds) * deployment.track_memory_mb / 1024
    lines.append(Line(f"Lambda {deployment.track_function} (/track)",
                      events * (p["lambda_request"] + track_gb_s * gb_second), False,
                      f"{millions:,.0f}M x ($0.20/M + {_billed_seconds(measured.track_seconds) * 1000:.0f} ms x "
                      f"{deployment.track_memory_mb} MB)"))

    shards = shards_needed(deployment, measured, events, peak_factor)
    if deployment.stream_mode == "PROVISIONED":
        lines.append(Line("Kinesis provisioned shards", shards * HOURS_PER_MONTH * p["kinesis_shard_hour"], True,
                          f"{shards} x {HOURS_PER_MONTH} h x ${p['kinesis_shard_hour']}"))
        units = math.ceil(measured.record_bytes / 25_000)
        lines.append(Line("Kinesis PUT payload units", events * units * p["kinesis_put_unit"], False,
                          f"{millions:,.0f}M x {units} unit x $0.014/M"))
        if deployment.retention_hours > 24:
            lines.append(Line(f"Kinesis retention {deployment.retention_hours} h (beyond 24 h)",
                              shards * HOURS_PER_MONTH * p["kinesis_extended_retention_shard_hour"], True,
                              f"{shards} x {HOURS_PER_MONTH} h x ${p['kinesis_extended_retention_shard_hour']}"))
    else:
        ingested_gb = events * math.ceil(measured.record_bytes / 1024) * 1024 / GB
        lines.append(Line("Kinesis on-demand stream", HOURS_PER_MONTH * p["kinesis_on_demand_stream_hour"], True,
                          f"{HOURS_PER_MONTH} h x ${p['kinesis_on_demand_stream_hour']}"))
        lines.append(Line("Kinesis on-demand ingest (1 KB per record)", ingested_gb * p["kinesis_on_demand_ingest_gb"],
                          False, f"{ingested_gb:,.2f} GB x $0.08"))
        lines.append(Line("Kinesis on-demand retrieval", events * measured.record_bytes / GB *
                          p["kinesis_on_demand_retrieval_gb"], False, "record bytes x $0.04/GB"))
        if deployment.retention_hours > 24:
            kept = ingested_gb * (deployment.retention_hours - 24) / HOURS_PER_MONTH
            lines.append(Line(f"Kinesis retention {deployment.retention_hours} h", kept *
                              p["kinesis_on_demand_retention_gb_month"], False, f"{kept:,.2f} GB-month x $0.10"))
    lines.append(Line("KMS (stream encryption)", shards * 2 * KMS_REQUESTS_PER_KEY_USER_HOUR * HOURS_PER_MONTH *
                      p["kms_request"], True, "2 key users x 12/h per shard x $0.03/10k"))

    invocations, per_batch = writer_invocations(deployment, shards, events)
    batch_seconds = _billed_seconds(measured.writer_fixed_seconds + measured.writer_per_record_seconds * per_batch)
    lines.append(Line("Lambda write_events", invocations * (p["lambda_request"] + batch_seconds *
                                                            deployment.writer_memory_mb / 1024 * gb_second), False,
                      f"{invocations:,.0f} batches of {per_batch:,.0f} x ($0.20/M + {batch_seconds * 1000:.0f} ms x "
                      f"{deployment.writer_memory_mb} MB)"))

    per_invocation_platform = (sum(len(line) + CLOUDWATCH_EVENT_OVERHEAD for line in PLATFORM_LINES)
                               if deployment.platform_lines else 0)
    log_gb = (events * (measured.track_log_bytes + per_invocation_platform)
              + invocations * (measured.writer_log_bytes + per_invocation_platform)) / GB
    kept_months = (deployment.log_retention_days / 30) if deployment.log_retention_days else STORED_MONTHS
    lines.append(Line(f"CloudWatch Logs ({deployment.application_log_level}, platform lines "
                      f"{'on' if deployment.platform_lines else 'off'})",
                      log_gb * (p["logs_ingest_gb"] + kept_months * p["logs_storage_gb_month"]), False,
                      f"{log_gb:,.3f} GB x ($0.50 + {kept_months:.1f} months x $0.03)"))

    streamed_gb = events * max(1024, measured.row_bytes) / GB
    lines.append(Line("BigQuery streaming inserts (1 KB minimum a row)", streamed_gb / 0.2 *
                      p["bigquery_streaming_200mb"], False, f"{streamed_gb:,.2f} GB / 200 MB x $0.01"))
    monthly_gb = events * measured.row_bytes / GB
    storage = monthly_gb * (3 * p["bigquery_active_storage_gb_month"] +
                            (STORED_MONTHS - 3) * p["bigquery_long_term_storage_gb_month"])
    lines.append(Line(f"BigQuery storage ({STORED_MONTHS} months of events kept)", storage, False,
                      f"{monthly_gb:,.2f} GB/month: 3 months active, {STORED_MONTHS - 3} long-term"))
    out_gb = events * measured.insert_bytes / GB
    lines.append(Line("data out, AWS to BigQuery", out_gb * p["transfer_out_gb"], False,
                      f"{out_gb:,.2f} GB of insertAll x $0.09"))
    lines.append(Line(f"Secrets Manager ({deployment.secrets} secret)", deployment.secrets * p["secret_month"], True,
                      f"{deployment.secrets} x $0.40"))
    if deployment.alarms:
        lines.append(Line(f"CloudWatch alarms ({deployment.alarms})", deployment.alarms * p["alarm_month"], True,
                          f"{deployment.alarms} x $0.10"))
    return lines


LEAN = {"front_door": "function URL", "stream_mode": "PROVISIONED", "retention_hours": 24, "platform_lines": False,
        "log_retention_days": 14, "batching_window_seconds": 60.0}


def what_ifs(deployment: Deployment) -> list[tuple[str, Deployment]]:
    """Each cost lever flipped from what is deployed, then every lean choice together (and with 48 h)."""
    flips = [
        ("front door: REST API", {"front_door": "REST API"}) if deployment.front_door == "function URL"
        else ("front door: Lambda function URL", {"front_door": "function URL"}),
        ("front door: HTTP API", {"front_door": "HTTP API"}),
        ("stream: ON_DEMAND", {"stream_mode": "ON_DEMAND"}) if deployment.stream_mode == "PROVISIONED"
        else ("stream: PROVISIONED, shards by peak rate", {"stream_mode": "PROVISIONED"}),
        ("stream retention 168 h", {"retention_hours": 168}) if deployment.retention_hours <= 24
        else ("stream retention 24 h", {"retention_hours": 24}),
        ("platform log lines on", {"platform_lines": True}) if not deployment.platform_lines
        else ("platform log lines off (SystemLogLevel WARN)", {"platform_lines": False}),
        ("logs kept forever", {"log_retention_days": None}) if deployment.log_retention_days
        else ("log retention 14 days", {"log_retention_days": 14}),
        ("writer batching window 5 s", {"batching_window_seconds": 5.0}),
        ("writer batching window 60 s", {"batching_window_seconds": 60.0}),
    ]
    chosen = [(label, replace(deployment, **change)) for label, change in flips]
    chosen.append(("all the lean choices together", replace(deployment, **LEAN)))
    chosen.append(("the same, stream kept 48 h", replace(deployment, **{**LEAN, "retention_hours": 48})))
    return chosen


def total(lines: list[Line]) -> float:
    return sum(line.usd for line in lines)


# ---- measuring and printing -------------------------------------------------------------------


def measure(quick: bool, log_level: str) -> Measured:
    from chalicelib import google_credentials, runtime
    from tests.bigquery_standin import serving_standin

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    calls, rounds = (200, 4) if quick else (1000, 8)
    clear_dalet_environment()
    os.environ.update({"DALET_BACKEND": "aws", "DALET_STREAM_NAME": "dalet-events", "DALET_BQ_DATASET": "dalet",
                       "DALET_BQ_TABLE": "events", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"})
    os.environ.pop("AWS_PROFILE", None)
    with tqdm(total=calls + 4 * rounds, desc="cost.py", unit="call", file=sys.stderr) as progress:
        with moto_kinesis() as kinesis_url, serving_standin() as standin:
            os.environ["AWS_ENDPOINT_URL_KINESIS"] = kinesis_url
            google_credentials.bigquery_client = lambda settings: standin.client   # type: ignore[assignment]
            runtime.shutdown()
            record_bytes, track_seconds, track_log = measure_track(calls, log_level, progress)
            insert_bytes, fixed, per_record, writer_log = measure_writer(standin, log_level, rounds, progress)
            rows = [row for row in standin.rows("dalet.events")]
            runtime.shutdown()
        columns = logical_bytes(rows)
    return Measured(record_bytes, insert_bytes, sum(columns.values()), columns, track_seconds, track_log,
                    fixed, per_record, writer_log)


def _money(usd: float) -> str:
    return f"{usd:,.2f}" if usd >= 0.995 or usd == 0 else f"{usd:.3f}"


def print_month_table(deployment: Deployment, measured: Measured, peak_factor: float) -> dict[int, list[Line]]:
    by_volume = {events: monthly_lines(deployment, measured, events, peak_factor) for events in VOLUMES}
    items = [line.item for line in by_volume[VOLUMES[-1]]]
    for lines in by_volume.values():
        items += [line.item for line in lines if line.item not in items]
    header = f"{'USD per month':52}" + "".join(f"{_volume(v):>12}" for v in VOLUMES)
    print(header)
    print("-" * len(header))
    for item in items:
        cells = []
        for events in VOLUMES:
            match = [line for line in by_volume[events] if line.item == item]
            cells.append(_money(match[0].usd) if match else "-")
        fixed = any(line.fixed for lines in by_volume.values() for line in lines if line.item == item)
        print(f"{(item + (' [fixed]' if fixed else '')):52}" + "".join(f"{cell:>12}" for cell in cells))
    print("-" * len(header))
    print(f"{'total per month':52}" + "".join(f"{_money(total(by_volume[v])):>12}" for v in VOLUMES))
    print(f"{'  of which fixed':52}" + "".join(
        f"{_money(sum(l.usd for l in by_volume[v] if l.fixed)):>12}" for v in VOLUMES))
    print(f"{'per million events':52}" + "".join(f"{_money(total(by_volume[v]) / (v / 1e6)):>12}" for v in VOLUMES))
    print(f"{'  (shards, provisioned)':52}" + "".join(
        f"{shards_needed(deployment, measured, v, peak_factor):>12}" for v in VOLUMES))
    return by_volume


def all_in_lines(writes: list[Line], events: float, loads: int) -> list[Line]:
    """The write path's lines, then the catalog's upkeep (3 lines) and the month's dashboard reads."""
    upkeep = [Line(f"catalog: {item}", usd, False, "bench/reads.py maintenance_usd")
              for item, usd in maintenance_usd(events).items()]
    return writes + upkeep + [Line("dashboard reads", reads_usd(events, loads), False,
                                   f"{loads} loads x (list, chips, one experiment's results and daily)")]


def _volume(events: float) -> str:
    return f"{events / 1e9:g}B/month" if events >= 1e9 else f"{events / 1e6:g}M/month"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer timed calls (for bench/run.py)")
    parser.add_argument("--peak-factor", type=float, default=4.0,
                        help="peak rate / average rate, for the shards a provisioned stream needs (default 4)")
    parser.add_argument("--dashboard-loads", type=int, default=2000,
                        help="dashboard loads a month (default 2,000: 10 people x 10 a working day)")
    parser.add_argument("--template", type=Path, help="price this packaged template (sam.json) instead of packaging "
                                                      "the checkout")
    arguments = parser.parse_args(argv)

    if arguments.template:
        print(f"reading the deployed settings from {arguments.template}", flush=True)
        template = json.loads(arguments.template.read_text())
    else:
        with tempfile.TemporaryDirectory(prefix="dalet-cost-package-") as folder:
            print("reading the deployed settings: chalice package --stage prod --merge-template ...", flush=True)
            template = json.loads((build_package(Path(folder)) / "sam.json").read_text())
    deployment = read_deployment(template)
    measured = measure(arguments.quick, deployment.application_log_level)

    print(f"\nprices: list, us-east-1, as of {PRICES_AS_OF}, no free tiers (sources in bench/cost.py)")
    print("as deployed by the template: " + ", ".join(f"{key}={value}" for key, value in vars(deployment).items()))
    print(f"measured per event: Kinesis record {measured.record_bytes:.0f} B; insertAll {measured.insert_bytes:.0f} B "
          f"a row; BigQuery storage {measured.row_bytes:.0f} B a row; /track {measured.track_seconds * 1000:.2f} ms "
          f"(median, PutRecord to moto on loopback; each 10 ms more of Kinesis latency adds "
          f"${0.01 * deployment.track_memory_mb / 1024 * _gb_second_price(deployment) * 1e6:.3f} per million); "
          f"writer {measured.writer_fixed_seconds * 1000:.1f} ms + {measured.writer_per_record_seconds * 1e6:.0f} us "
          f"a record; logs {measured.track_log_bytes:.0f} B a /track, {measured.writer_log_bytes:.0f} B a batch "
          f"(+{sum(len(l) + CLOUDWATCH_EVENT_OVERHEAD for l in PLATFORM_LINES)} B of platform lines each when on)")
    print(f"\nas deployed ({deployment.front_door} front door), peak rate = {arguments.peak_factor:g} x average:")
    ours = print_month_table(deployment, measured, arguments.peak_factor)
    rest = {v: monthly_lines(replace(deployment, front_door="REST API"), measured, v, arguments.peak_factor)
            for v in VOLUMES}
    print(f"{'same behind the REST API front door':52}" + "".join(f"{_money(total(rest[v])):>12}" for v in VOLUMES))
    print(f"{'  per million':52}" + "".join(f"{_money(total(rest[v]) / (v / 1e6)):>12}" for v in VOLUMES))
    print("\neach setting flipped alone from the deployed one, then the lean ones together (per month; per million):")
    for label, changed in what_ifs(deployment):
        lines = {v: monthly_lines(changed, measured, v, arguments.peak_factor) for v in VOLUMES}
        print(f"    {label:48}" + "".join(f"{_money(total(lines[v])):>12}" for v in VOLUMES)
              + "   (" + ", ".join(f"{total(lines[v]) / (v / 1e6):.3f}" for v in VOLUMES) + " per M)")
    at_15m = 15_000_000
    print(f"anchors at 15M/month: Redis version ~${REDIS_ANCHOR_AT_15M:.0f}; Kinesis + BigQuery version "
          f"~${KINESIS_BIGQUERY_ANCHOR:.0f} + REST API requests ${at_15m * PRICES['rest_api_request'].usd:.2f} = "
          f"${KINESIS_BIGQUERY_ANCHOR + at_15m * PRICES['rest_api_request'].usd:.2f}")

    all_in = {v: all_in_lines(ours[v], v, arguments.dashboard_loads) for v in VOLUMES}
    print(f"\nall-in after a year, {arguments.dashboard_loads:,} dashboard loads a month (bench/reads.py: the page's "
          f"own reads as deployed, CUPED off, stored answers of {prod_results_max_age_minutes()} min):")
    for item in [line.item for line in all_in[at_15m][-4:]]:
        print(f"    {item:48}" + "".join(f"{_money(next(l.usd for l in all_in[v] if l.item == item)):>12}"
                                         for v in VOLUMES))
    print(f"    {'all-in':48}" + "".join(f"{_money(total(all_in[v])):>12}" for v in VOLUMES))
    print(f"    {'  per million':48}" + "".join(f"{_money(total(all_in[v]) / (v / 1e6)):>12}" for v in VOLUMES))

    monthly_15m = total(all_in[at_15m])
    per_million = {v: total(all_in[v]) / (v / 1e6) for v in VOLUMES if v >= 100_000_000}
    at_1b = 1_000_000_000
    met_monthly = monthly_15m <= GOAL_MONTHLY_AT_15M
    met_per_million = per_million[at_1b] <= GOAL_PER_MILLION_AT_1B
    print(f"\ngoal <= ${GOAL_MONTHLY_AT_15M:.0f}/month all-in at 15M events: ${monthly_15m:.2f} "
          f"({'met' if met_monthly else 'SHORTFALL'})")
    print(f"goal <= ${GOAL_PER_MILLION_AT_1B:.2f} per million all-in at 1B: ${per_million[at_1b]:.3f} "
          f"({'met' if met_per_million else 'SHORTFALL'}; 100M: ${per_million[100_000_000]:.3f})")
    for volume, met in ((at_15m, met_monthly), (at_1b, met_per_million)):
        if not met:
            added = all_in[volume][len(ours[volume]):]
            print(f"  cause at {_volume(volume)}: the write path ${total(ours[volume]):,.2f}, then " +
                  "; ".join(f"{line.item} ${line.usd:,.2f}" for line in sorted(added, key=lambda l: -l.usd)))

    emit("cost: all-in per month at 15M events", monthly_15m, REDIS_ANCHOR_AT_15M,
         f"ours <= {GOAL_MONTHLY_AT_15M:g}", "$/month")
    for events, value in per_million.items():
        emit(f"cost: all-in per million events at {_volume(events)}", value, total(rest[events]) / (events / 1e6),
             f"ours <= {GOAL_PER_MILLION_AT_1B:g}" if events == at_1b else None, "$/M")
    return 0


if __name__ == "__main__":
    sys.exit(main())
