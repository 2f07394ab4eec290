"""GET /health (no key, no internals), `/` and `/favicon.ico`: through Chalice's test client, on the
embedded default and on the cloud backend (BigQuery is the stand-in), and through a running `make run`."""
from __future__ import annotations

import json
import threading

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from chalicelib import google_credentials, health, landing, runtime
from chalicelib.storage.bigquery_warehouse import BigQueryWarehouse
from tests.bigquery_standin import PROJECT, bigquery_standin  # noqa: F401
from tests.local_server import LocalServer, free_port


def get_health(client) -> tuple[int, dict]:
    response = client.http.get("/health")
    assert response.headers["Content-Type"] == "application/json"
    return response.status_code, json.loads(response.body)


def test_health_answers_without_a_key_with_the_stream_lag_and_the_warehouse(client):
    status, document = get_health(client)

    assert status == 200
    assert document["ok"] is True
    assert document["stream"]["lag_seconds"] >= 0 and "as_of" in document["stream"]
    assert document["warehouse"]["reachable"] is True


def test_an_unusable_data_folder_answers_503_without_naming_the_folder(client, monkeypatch, tmp_path, caplog):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    monkeypatch.setenv("DALET_DATA_DIR", str(not_a_folder / "data"))
    runtime.shutdown()

    status, document = get_health(client)

    assert status == 503 and document["ok"] is False
    assert document["stream"]["lag_seconds"] is None and document["warehouse"]["reachable"] is False
    assert "a-file" not in json.dumps(document) and "Error" not in json.dumps(document)
    assert "a-file" in caplog.text           # the cause is in the log


# ---- the cloud backend -------------------------------------------------------------------------


@pytest.fixture
def cloud(client, monkeypatch):
    monkeypatch.setenv("DALET_BACKEND", "aws")
    monkeypatch.setenv("DALET_STREAM_NAME", "dalet-events")
    monkeypatch.setenv("DALET_BQ_DATASET", "analytics")
    monkeypatch.setenv("DALET_BQ_TABLE", "events")
    runtime.shutdown()
    yield client
    runtime.shutdown()


@pytest.fixture
def deployed(cloud, bigquery_standin, monkeypatch):
    monkeypatch.setattr(google_credentials, "bigquery_client", lambda settings: bigquery_standin.client)
    BigQueryWarehouse(bigquery_standin.client, "analytics", "events").ensure_report_tables()    # what setup did
    bigquery_standin.calls.clear()
    return cloud


def test_deployed_health_checks_bigquery_without_a_query_and_says_why_the_lag_is_unknown(deployed, bigquery_standin):
    status, document = get_health(deployed)

    assert status == 200 and document["ok"] is True
    assert document["warehouse"]["reachable"] is True
    assert document["stream"]["lag_seconds"] is None and "status --stage" in document["stream"]["reason"]
    assert bigquery_standin.queries == []                   # a metadata read: nothing billed
    assert [call.path for call in bigquery_standin.calls] == [f"/projects/{PROJECT}/datasets/analytics/tables/events"]


def test_asking_health_in_a_loop_checks_bigquery_once_per_ttl(deployed, bigquery_standin, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(health, "monotonic", lambda: clock[0])

    for _ in range(20):
        assert get_health(deployed)[0] == 200
    clock[0] += health.WAREHOUSE_CHECK_TTL_SECONDS
    assert get_health(deployed)[0] == 200

    assert len(bigquery_standin.calls) == 2


def test_unreachable_bigquery_answers_503_without_internals(cloud, monkeypatch, caplog):
    nowhere = bigquery.Client(project="secret-project", credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": f"http://127.0.0.1:{free_port()}"})
    monkeypatch.setattr(google_credentials, "bigquery_client", lambda settings: nowhere)

    status, document = get_health(cloud)

    assert status == 503 and document["ok"] is False
    assert document["warehouse"]["reachable"] is False and "log" in document["warehouse"]["reason"]
    text = json.dumps(document)
    assert not any(internal in text for internal in ("secret-project", "analytics", "127.0.0.1", "Connection"))
    assert "Connection" in caplog.text


@pytest.mark.parametrize("hangs", ["while built (e.g. reading its credentials' secret)", "while checked"])
def test_a_warehouse_that_does_not_answer_in_time_is_reported_unreachable(cloud, monkeypatch, hangs):
    released = threading.Event()

    class Hanging:
        def __init__(self) -> None:
            if hangs.startswith("while built"):
                released.wait(30)

        def check_reachable(self, timeout: float) -> None:
            released.wait(30)

    monkeypatch.setattr(runtime, "warehouse", Hanging)
    monkeypatch.setattr(health, "WAREHOUSE_DEADLINE_SECONDS", 0.2)
    try:
        status, document = get_health(cloud)
    finally:
        released.set()

    assert status == 503 and document["warehouse"] == {"reachable": False, "checked_seconds_ago": 0.0,
                                                       "reason": "no answer within 0.2 s"}


def test_a_misconfigured_cloud_backend_answers_503_and_says_so_generically(client, monkeypatch):
    monkeypatch.setenv("DALET_BACKEND", "aws")         # without the stream, dataset and table names
    runtime.shutdown()

    status, document = get_health(client)

    assert status == 503 and document["warehouse"]["reason"] == health.MISCONFIGURED
    assert document["stream"]["reason"] == health.MISCONFIGURED
    assert "DALET_" not in json.dumps(document)


# ---- `/` and `/favicon.ico` --------------------------------------------------------------------


def test_the_root_redirects_to_the_dashboard(client):
    response = client.http.get("/")

    assert response.status_code == 302 and response.headers["Location"] == "/dashboard"
    assert json.loads(response.body) == {"dashboard": "/dashboard", "health": "/health"}


@pytest.mark.parametrize("context, base", [
    ({"path": "/"}, ""),                                              # chalice local
    ({"path": "/api/", "resourcePath": "/", "stage": "api"}, "/api"),  # API Gateway's stage URL
    ({"path": "/api", "resourcePath": "/", "stage": "api"}, "/api"),   # ... without the final slash
    ({"path": "/dalet/", "resourcePath": "/", "stage": "api"}, "/dalet"),  # a custom domain's base path
])
def test_the_dashboard_is_found_under_the_deployments_base_path(context, base):
    assert landing.to_dashboard(context).headers["Location"] == f"{base}/dashboard"


def test_the_favicon_is_answered_with_no_content(client):
    response = client.http.get("/favicon.ico")

    assert response.status_code == 204 and response.body == b""


# ---- through `make run` ------------------------------------------------------------------------


def test_make_run_answers_health_the_root_and_the_favicon_without_a_key(tmp_path):
    with LocalServer.start(tmp_path / "data", via_make_run=True) as server:
        health_reply = server.request("GET", "/health")
        root = server.request("GET", "/")                      # urllib follows the redirect
        favicon = server.request("GET", "/favicon.ico")

    assert health_reply.status == 200 and health_reply.json()["ok"] is True
    assert str(tmp_path) not in health_reply.text
    assert root.status == 200 and root.headers["content-type"].startswith("text/html")
    assert favicon.status == 204
