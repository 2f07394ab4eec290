"""Stored answers under races and failures (chalicelib/reports/stored_answers.py): an attacker's probes, kept."""
from __future__ import annotations

import time

from chalicelib.storage.bigquery_warehouse import BigQueryWarehouse
from tests.bigquery_standin import bigquery_standin  # noqa: F401
from tests.helpers import report_client  # noqa: F401
from tests.standin_sql import answer_from_stored_rows, each_warehouse  # noqa: F401
from tests.test_stored_answers import Computations, ask, prepared


def test_a_failing_answer_store_does_not_hold_back_the_computed_answer(bigquery_standin):
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


def test_an_answer_computed_while_a_tombstone_was_landing_is_not_answered_after_the_deletion(
        report_client, monkeypatch):
    """A deletion's moment is taken before its tombstone is written (BigQuery: a streaming insert retried up
    to 30 s). A computation that begins in between reads the deleted events (no tombstone yet) and is
    stored with `stored_at` after `deleted_at`, so `deleted_at >= stored_at` passes it: the deleted
    experiment's results were answered from storage for up to the max age after the deletion."""
    from datetime import UTC, datetime

    from chalicelib.reports import deletion
    from tests.test_report_routes import ab, seed
    from tests.test_stored_answers import get

    monkeypatch.setenv("DALET_RESULTS_MAX_AGE_MINUTES", "60")
    seed(report_client, *ab("exp", red=3, blue=2))
    moment = datetime.now(UTC)                        # the deletion begins (its tombstone not yet written)
    time.sleep(0.01)
    assert get(report_client, "/experiments/exp/results")[0] == 200   # computed meanwhile, and stored
    monkeypatch.setattr(deletion, "now", lambda: moment)
    from tests.helpers import KEY_HEADER
    assert report_client.http.delete("/experiments/exp", headers=KEY_HEADER).status_code == 200  # it lands

    status, view = get(report_client, "/experiments/exp/results")
    assert status == 404, f"the deleted experiment answered from storage: {view.get('freshness')}"


def test_an_answer_stored_under_another_cuped_default_is_not_answered(report_client, monkeypatch):
    """DALET_CUPED_DEFAULT changes what /results answers without `cuped=`, but was not in the key: after a
    deploy that turns it on, the answers computed without CUPED were served as the new default's for up to
    the max age (and the other way round)."""
    from tests.test_report_routes import ab, seed
    from tests.test_stored_answers import get

    monkeypatch.setenv("DALET_RESULTS_MAX_AGE_MINUTES", "60")
    seed(report_client, *ab("exp", red=3, blue=2, red_goal=1))
    monkeypatch.setenv("DALET_CUPED_DEFAULT", "off")
    from chalicelib import runtime
    runtime._state.pop("settings", None)
    assert get(report_client, "/experiments/exp/results")[0] == 200
    monkeypatch.setenv("DALET_CUPED_DEFAULT", "on")
    from chalicelib import runtime
    runtime._state.pop("settings")                  # a new deploy's container reads its settings afresh
    status, view = get(report_client, "/experiments/exp/results")
    assert status == 200 and view["freshness"]["age_seconds"] == 0, view["freshness"]


def test_a_slow_computation_finishing_last_does_not_replace_a_newer_stored_answer(
        each_warehouse, monkeypatch):
    """Two computations of one key overlap: the newer (a Refresh) is stored first, the older (begun before)
    after it. The older must not become the answer: DuckDB's INSERT OR REPLACE kept whichever was stored
    last, so after a Refresh the page went back to the answer from before it."""
    from datetime import UTC, datetime, timedelta

    from chalicelib.reports import stored_answers

    warehouse, computations = prepared(each_warehouse), Computations()
    began = datetime.now(UTC)
    monkeypatch.setattr(stored_answers, "clock", lambda: began + timedelta(seconds=5))
    newer = ask(warehouse, computations, refresh=True)                 # the Refresh, begun later, stored first
    monkeypatch.setattr(stored_answers, "clock", lambda: began)
    ask(warehouse, computations, refresh=True)                         # the slow one, begun earlier, stored last
    monkeypatch.setattr(stored_answers, "clock", lambda: began + timedelta(seconds=6))
    assert ask(warehouse, computations)["freshness"]["answered_at"] == newer["freshness"]["answered_at"]
