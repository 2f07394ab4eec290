"""The deployed stack as `chalice deploy` really builds it, and the hardening around it.

Chalice's own deploy planner (its application graph) says which functions, names and
roles `chalice deploy` creates; the policy files `setup` writes must fit those names.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from dalet_ops import cli
from dalet_ops.stage import PROJECT_DIR
from tests.aws_moto import ACCOUNT, REGION, aws  # noqa: F401
from tests.bigquery_standin import bigquery_standin  # noqa: F401


@pytest.fixture
def project(tmp_path) -> Path:
    (tmp_path / ".chalice").mkdir()
    shutil.copy(PROJECT_DIR / ".chalice" / "config.json", tmp_path / ".chalice" / "config.json")
    return tmp_path


@pytest.fixture
def bigquery(bigquery_standin, monkeypatch):
    from chalicelib import google_credentials

    monkeypatch.setattr(google_credentials, "bigquery_client", lambda settings: bigquery_standin.client)
    return bigquery_standin


def run(capsys, *arguments: str) -> tuple[int, str]:
    code = cli.main(list(arguments))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def chalice_deploy_functions(project: Path) -> Iterator[Any]:
    """The Lambda functions `chalice deploy --stage prod` would create for this project."""
    from chalice.cli.factory import CLIFactory
    from chalice.deploy import models
    from chalice.deploy.appgraph import ApplicationGraphBuilder

    shutil.copy(PROJECT_DIR / "app.py", project / "app.py")
    shutil.copytree(PROJECT_DIR / "chalicelib", project / "chalicelib", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    config = CLIFactory(project_dir=str(project)).create_config_obj(chalice_stage_name="prod")
    pending = [ApplicationGraphBuilder().build(config, "prod")]
    while pending:
        resource = pending.pop()
        if isinstance(resource, models.LambdaFunction):
            yield resource
        pending.extend(resource.dependencies())


def log_groups_allowed(policy: dict[str, Any]) -> set[str]:
    return {resource for statement in policy["Statement"] if statement["Action"][0].startswith("logs:")
            for resource in statement["Resource"]}


def test_every_function_chalice_deploy_creates_may_write_its_own_log_group(aws, bigquery, project, capsys):
    code, output = run(capsys, "setup", "--stage", "prod", "--project-dir", str(project))
    assert code == 0, output

    functions = list(chalice_deploy_functions(project))

    assert functions
    for function in functions:
        policy = json.loads(Path(function.role.policy.filename).read_text())
        group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{function.function_name}"
        assert {group, f"{group}:*"} <= log_groups_allowed(policy), function.function_name


# ---- a public 503 hides AWS's internals ----------------------------------------------


def test_a_503_from_track_never_shows_the_account_or_role_aws_named(aws, monkeypatch, caplog):
    """AWS's own error text names the account and the role; the answer must not repeat it."""
    from chalice.test import Client

    from chalicelib import runtime

    for name, value in {"DALET_BACKEND": "aws", "DALET_STREAM_NAME": "missing-stream", "DALET_BQ_DATASET": "dalet",
                        "DALET_BQ_TABLE": "events"}.items():
        monkeypatch.setenv(name, value)
    runtime.shutdown()
    import app

    with Client(app.app) as client:
        response = client.http.get("/track?experiment=e&variant=a&event=participate&uuid=u")
    runtime.shutdown()

    assert response.status_code == 503
    assert json.loads(response.body) == {"error": "the event stream is unavailable; retry later",
                                         "reason": "stream_unavailable"}
    assert f"account {ACCOUNT}" in caplog.text       # the operator still sees AWS's words in the log


def test_a_report_503_before_the_key_is_checked_never_shows_the_secret_aws_refused(aws, monkeypatch, caplog):
    """Anyone may call a report route; if the key's secret cannot be read, the answer stays generic."""
    from chalice.test import Client

    from chalicelib import runtime

    for name, value in {"DALET_BACKEND": "aws", "DALET_STREAM_NAME": "dalet-events", "DALET_BQ_DATASET": "dalet",
                        "DALET_BQ_TABLE": "events", "DALET_API_KEY_SECRET": "internal/secret-name"}.items():
        monkeypatch.setenv(name, value)
    runtime.shutdown()
    import app

    with Client(app.app) as client:
        response = client.http.get("/experiments", headers={"x-api-key": "a guess"})
    runtime.shutdown()

    assert response.status_code == 503
    assert json.loads(response.body) == {"error": "the warehouse is unavailable; retry later",
                                         "reason": "server_misconfigured"}
    assert "internal/secret-name" in caplog.text
