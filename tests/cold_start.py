"""A fresh Python process running the Lambda package's first request, against a local cloud.

Used by tests/test_deploy.py and bench/coldstart.py. The process runs as Lambda runs an
unzipped .zip package: `python -I -S -B` (no site-packages, so only what the package holds
loads; no bytecode written beside the source, as /var/task is read-only), the package
folder first on sys.path. It imports app.py and calls the handler once, as Lambda does:

- "track": `app.app(event, context)` with an API Gateway GET /track event; Kinesis is a
  moto server on loopback (real botocore calls through AWS_ENDPOINT_URL_KINESIS);
- "front-door": the same GET /track as a Lambda function URL event (payload format 2.0),
  through `app.track_front_door`, when the app has that front door;
- "writer": `app.write_events(event, context)` with a Kinesis batch; BigQuery is the
  stand-in (tests/bigquery_standin.py) reached by the real client through
  BIGQUERY_EMULATOR_HOST, with Application Default Credentials from a service-account key
  file whose token endpoint is a loopback server (so the key is loaded and a JWT signed,
  as with a real key).
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

STREAM = "dalet-events"
REGION = "us-east-1"
# Modules the first /track must not load: S3 helpers, the report and BigQuery code, the embedded storage.
NOT_ON_THE_TRACK_PATH = ("s3transfer", "boto3", "google", "chalicelib.reports.experiments", "chalicelib.reports.results",
                         "chalicelib.reports.daily", "chalicelib.reports.deletion", "chalicelib.reports.breakdown",
                         "chalicelib.reports.segment_results", "chalicelib.reports.analytics", "chalicelib.reports.stats",
                         "chalicelib.storage.bigquery_warehouse", "chalicelib.ingest.local_stream", "sqlite3")

PROBE = """
import time
started = time.perf_counter()
import json, sys
sys.path.insert(0, ".")
mode, event_file = sys.argv[1], sys.argv[2]
with open(event_file) as opened:
    event = json.load(opened)

class Context:
    function_name = "dalet-cold-start"
    memory_limit_in_mb = 256
    aws_request_id = "cold-start"
    def get_remaining_time_in_millis(self):
        return 29000

import app
imported = time.perf_counter()
if mode == "track":
    answer = app.app(event, Context())
elif mode == "front-door":
    answer = app.track_front_door(event, Context())
else:
    answer = app.write_events(event, Context())
answered = time.perf_counter()
print(json.dumps({"answer": answer, "import_seconds": imported - started, "call_seconds": answered - imported,
                  "cpu_seconds": time.process_time(), "modules": sorted(sys.modules)}), flush=True)
"""


@dataclass(frozen=True)
class ColdRun:
    seconds: float            # from spawning the process to its answer (interpreter start included)
    cpu_seconds: float        # the process's CPU time up to the answer: what a busy machine does not inflate
    import_seconds: float     # import app
    call_seconds: float       # the first call of the handler
    answer: Any
    modules: list[str]

    def loaded(self, names: tuple[str, ...]) -> list[str]:
        return sorted({name for name in names for module in self.modules
                       if module == name or module.startswith(name + ".")})


def run_cold(package_dir: Path, mode: str, event_file: Path, environment: dict[str, str],
             timeout: float = 120) -> ColdRun:
    """One fresh process; its first handler call, timed."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-I", "-S", "-B", "-c", PROBE, mode, str(event_file)],
                               cwd=package_dir, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    assert process.stdout is not None
    printed = []          # what the app printed before its answer (Chalice logs errors to stdout)
    line = ""
    for line in process.stdout:
        if line.startswith('{"answer"'):
            break
        printed.append(line)
    seconds = time.perf_counter() - started
    _, errors = process.communicate(timeout=timeout)
    if process.returncode != 0 or not line.startswith('{"answer"'):
        raise RuntimeError(f"the cold {mode} process failed ({process.returncode}): {''.join(printed)}{errors[-3000:]}")
    found = json.loads(line)
    return ColdRun(seconds, found["cpu_seconds"], found["import_seconds"], found["call_seconds"], found["answer"], found["modules"])


def bare_interpreter_seconds() -> tuple[float, float]:
    """A bare `python -I -S -B` printing one line, as the probe does: wall seconds, CPU seconds to the print."""
    started = time.perf_counter()
    finished = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", "import time; print(time.process_time())"],
                              check=True, capture_output=True, text=True)
    return time.perf_counter() - started, float(finished.stdout)


def lambda_environment(**extra: str) -> dict[str, str]:
    """What the prod stage's functions see (DALET_* from .chalice/config.json), and nothing of this machine's."""
    return {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8", "DALET_BACKEND": "aws",
            "DALET_STREAM_NAME": STREAM, "DALET_BQ_DATASET": "dalet", "DALET_BQ_TABLE": "events",
            "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
            "AWS_LAMBDA_FUNCTION_NAME": "dalet-prod-cold-start", **extra}


TRACK_QUERY = {"namespace": "alephbet", "experiment": "my a/b test", "variant": "red", "event": "participate",
               "uuid": "6f1c9b1e-8a53-4bb0-9a35-0f2f0a4f8b11"}
TRACK_HEADERS = {"Accept": "*/*", "Origin": "https://shop.example", "User-Agent": "Mozilla/5.0 (cold start)"}


def track_event() -> dict[str, Any]:
    """GET /track as API Gateway's REST API hands it to the api_handler function."""
    from tests.lambda_events import api_gateway_event

    headers = {"Host": "abc123.execute-api.us-east-1.amazonaws.com", **TRACK_HEADERS}
    return api_gateway_event("GET", "/api/track", "/track", "api", headers, TRACK_QUERY)


def first_track_request(package_dir: Path) -> tuple[str, dict[str, Any]]:
    """The probe mode and event of the events' own front door: the function URL's when the app
    has one (`track_front_door`), else the REST API's."""
    from urllib.parse import urlencode

    from tests import lambda_events

    front_door = "def track_front_door" in (package_dir / "app.py").read_text()
    if front_door and hasattr(lambda_events, "function_url_event"):
        headers = {"Host": "abcdefghij.lambda-url.us-east-1.on.aws", **TRACK_HEADERS}
        return "front-door", lambda_events.function_url_event("GET", "/track", headers, urlencode(TRACK_QUERY))
    return "track", track_event()


def kinesis_batch(count: int, prefix: str) -> dict[str, Any]:
    """A Kinesis event as Lambda delivers it: `count` distinct events."""
    from chalicelib.ingest.events import Event, stamp
    from chalicelib.ingest.records import encode_record

    arrival = datetime.now(timezone.utc)
    records = []
    for n in range(count):
        data = encode_record(stamp(Event("alephbet", "my a/b test", ("red", "blue")[n % 2],
                                         ("participate", "purchase")[n % 3 == 0], f"{prefix}-{n}"), arrival))
        records.append({
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": f"{prefix}-{n}",
                        "sequenceNumber": str(49600000000000000000000000000000000000000000000000000000 + n),
                        "data": base64.b64encode(data).decode(), "approximateArrivalTimestamp": arrival.timestamp()},
            "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventName": "aws:kinesis:record",
            "eventID": f"shardId-000000000000:{n}", "awsRegion": REGION,
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/dalet-prod-write_events",
            "eventSourceARN": f"arn:aws:kinesis:{REGION}:123456789012:stream/{STREAM}"})
    return {"Records": records}


@contextmanager
def moto_kinesis() -> Iterator[str]:
    """A moto server on loopback with the stream; its URL (for AWS_ENDPOINT_URL_KINESIS)."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        # moto keeps its accounts per process, not per server: start from none, as a fresh account.
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).close()
        boto3.client("kinesis", endpoint_url=url, region_name=REGION, aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_stream(StreamName=STREAM, ShardCount=1)
        yield url
    finally:
        server.stop()


class _TokenHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"access_token": "cold-start-token", "expires_in": 3600, "token_type": "Bearer"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@contextmanager
def google_token_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/token"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def service_account_key_file(folder: Path, token_uri: str, project: str) -> Path:
    """A service-account key (a fresh RSA key) whose token endpoint is `token_uri`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    path = folder / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": project, "private_key_id": "cold-start", "private_key": pem,
        "client_email": f"dalet@{project}.iam.gserviceaccount.com", "client_id": "1", "token_uri": token_uri}))
    return path
