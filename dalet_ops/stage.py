"""A Chalice stage as the deploy commands see it: its settings and the names of its AWS resources.

The stage's environment variables come from `.chalice/config.json`, merged the way
Chalice merges them for a deployed function (top level, then the stage), so `setup`
and `preflight` look at exactly what the Lambda functions will see.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib import config

PROJECT_DIR = Path(__file__).resolve().parent.parent
CONFIG_FILE = Path(".chalice") / "config.json"
# Chalice puts every route in one Lambda function named api_handler (the REST API's).
API_HANDLER = "api_handler"
# The ingest routes again, behind a Lambda function URL (app.py's `track_front_door`).
TRACK = "track"
WRITER = "write_events"
FUNCTIONS = (API_HANDLER, TRACK, WRITER)


@dataclass(frozen=True)
class Stage:
    name: str
    app_name: str
    project_dir: Path
    environment: dict[str, str]
    api_gateway_stage: str = "api"
    log_retention_days: int | None = None     # the stage's `log_retention_in_days`, if any

    @property
    def settings(self) -> config.Settings:
        return config.load_settings(self.environment)

    def function_name(self, function: str) -> str:
        """The deployed function's name, as `chalice deploy` names it and the template keeps it.

        Chalice names the REST API's function `app-stage` (for backward compatibility, without
        the `-api_handler` suffix every other function gets), so its log group is
        /aws/lambda/app-stage.
        """
        if function == API_HANDLER:
            return f"{self.app_name}-{self.name}"
        return f"{self.app_name}-{self.name}-{function}"

    def role_name(self, function: str) -> str:
        """The function's IAM role: `app-stage-function` for every function, the API's included."""
        return f"{self.app_name}-{self.name}-{function}"

    @property
    def failure_queue_name(self) -> str:
        """Where the writer's trigger parks a batch that keeps failing."""
        return f"{self.app_name}-{self.name}-failed-batches"

    def policy_file(self, function: str) -> Path:
        return self.project_dir / ".chalice" / self.policy_file_name(function)

    def policy_file_name(self, function: str) -> str:
        return f"policy-{self.name}-{function}.json"

    @property
    def merge_template_file(self) -> Path:
        return self.project_dir / ".chalice" / f"merge-template-{self.name}.json"


class StageError(config.ConfigError):
    """The stage is missing from .chalice/config.json or the file is unreadable."""


def load_stage(name: str, project_dir: Path = PROJECT_DIR) -> Stage:
    path = project_dir / CONFIG_FILE
    try:
        chalice_config: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise StageError(f"cannot read {path}: {error}") from error
    stages = chalice_config.get("stages", {})
    if name not in stages:
        raise StageError(f"stage {name!r} is not in {path} (stages: {', '.join(sorted(stages)) or 'none'})")
    environment = {
        **chalice_config.get("environment_variables", {}),
        **stages[name].get("environment_variables", {}),
    }
    return Stage(
        name=name,
        app_name=chalice_config.get("app_name", "dalet"),
        project_dir=project_dir,
        environment={key: str(value) for key, value in environment.items()},
        api_gateway_stage=stages[name].get("api_gateway_stage", chalice_config.get("api_gateway_stage", "api")),
        log_retention_days=stages[name].get("log_retention_in_days", chalice_config.get("log_retention_in_days")),
    )
