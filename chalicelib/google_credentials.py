"""Google credentials for BigQuery, built once per container."""
from __future__ import annotations

from typing import Any

from chalicelib.config import Settings


def bigquery_client(settings: Settings) -> Any:
    """A BigQuery client; Application Default Credentials unless configured otherwise."""
    from google.cloud import bigquery

    return bigquery.Client(project=settings.bq_project)
