"""Fixtures for tests of the deploy and operations commands: a project folder with the stage's
configuration, BigQuery answered by the stand-in, and the command line run in-process."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from chalicelib import google_credentials
from dalet_ops import cli
from dalet_ops.stage import PROJECT_DIR


@pytest.fixture
def project(tmp_path) -> Path:
    (tmp_path / ".chalice").mkdir()
    shutil.copy(PROJECT_DIR / ".chalice" / "config.json", tmp_path / ".chalice" / "config.json")
    return tmp_path


@pytest.fixture
def bigquery(bigquery_standin, monkeypatch):
    """The stage's BigQuery client is the stand-in's (credential loading is tested on its own)."""
    monkeypatch.setattr(google_credentials, "bigquery_client", lambda settings: bigquery_standin.client)
    return bigquery_standin


def run(capsys, *arguments: str) -> tuple[int, str]:
    code = cli.main(list(arguments))
    captured = capsys.readouterr()
    return code, captured.out + captured.err
