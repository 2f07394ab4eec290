"""attack2: probes of stored answers (chalicelib/reports/stored_answers.py)."""
from __future__ import annotations

import time

from chalicelib.storage.bigquery_warehouse import BigQueryWarehouse
from tests.bigquery_standin import bigquery_standin  # noqa: F401
from tests.standin_sql import answer_from_stored_rows
from tests.test_stored_answers import Computations, ask, prepared


def test_attack2_a_failing_answer_store_does_not_hold_back_the_computed_answer(bigquery_standin):
    """Storage is "a saving, never a dependency": a computed answer must not wait out the insert retry
    deadline (30 s, beyond API Gateway's 29 s) while BigQuery's streaming insert keeps answering 503."""
    bigquery_standin.answer_queries(answer_from_stored_rows(bigquery_standin))
    warehouse, computations = prepared(BigQueryWarehouse(bigquery_standin.client, "analytics", "events")), \
        Computations()
    bigquery_standin.fail_inserts(503, times=None, table="analytics.report_answers")
    started = time.monotonic()
    answered = ask(warehouse, computations)
    took = time.monotonic() - started
    assert answered["computed"] == 1
    assert took < 10, f"the computed answer waited {took:.1f} s for a failing store"
