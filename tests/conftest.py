"""Shared fixtures: every test gets its own data folder and a fresh runtime."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests: CI (CI set, as .ci/run has it) draws the same examples on every run, so a red run
# can be re-run and a green one means the same thing each time; a developer's run keeps exploring.
# Loaded before any test module builds its own settings, which inherit the profile's. Choose one by
# name with HYPOTHESIS_PROFILE=ci|dev.
# Both name their parent: Hypothesis may already have loaded its own "ci" profile when CI is set at all.
settings.register_profile("ci", settings.get_profile("default"), derandomize=True, database=None, deadline=None,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", settings.get_profile("default"), print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Settings of the test run itself, not of the app (see tests/tmpfs.py).
TEST_RUN_SETTINGS = {"DALET_ALLOW_NO_TMPFS"}
for _name in list(os.environ):
    if _name.startswith("DALET_") and _name not in TEST_RUN_SETTINGS:
        del os.environ[_name]


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "dalet-data"
    monkeypatch.setenv("DALET_DATA_DIR", str(folder))
    monkeypatch.setenv("DALET_BACKEND", "local")
    from chalicelib import runtime

    runtime.shutdown()
    yield folder
    runtime.shutdown()


@pytest.fixture
def client(data_dir):
    from chalice.test import Client

    import app as dalet_app

    with Client(dalet_app.app) as test_client:
        yield test_client
