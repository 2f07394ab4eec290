"""The results view's defaults, apart from the statistics so the HTTP layer reads them without
loading them (a cold /track never loads the report modules)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.reports.stats import Correction

CONTROL_NAME = "control"
DEFAULT_CONFIDENCE = 0.95
DEFAULT_CORRECTION: Correction = "holm"
