"""An offline AWS account (moto) for tests that make real boto3 calls.

    from tests.aws_moto import aws  # noqa: F401

    def test_something(aws):
        boto3.client("kinesis").create_stream(...)
"""
from __future__ import annotations

from typing import Iterator

import pytest
from moto import mock_aws

REGION = "us-east-1"
ACCOUNT = "123456789012"    # moto's account


@pytest.fixture
def aws(monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    with mock_aws():
        yield
