"""Review probe (branch `review`): BigQuery's decision_counts deduping by (variant, event, uuid, message_id)
with spans equals the query before 482c35e (deduping by event_id), on rows stored more than once."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from chalicelib.ingest.events import parse_event, stamp
from chalicelib.reports import queries
from chalicelib.reports.dimensions import parse_dimension
from chalicelib.reports.fetch import target_of
from tests.catalog_warehouses import AppendOnlyWarehouse

START = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)


def _old_queries() -> Any:
    source = subprocess.run(["git", "show", "482c35e:chalicelib/reports/queries.py"], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).parent.parent).stdout
    path = Path("/tmp/review_old_queries.py")
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("review_old_queries", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["review_old_queries"] = module
    spec.loader.exec_module(module)
    return module


OLD = _old_queries()

event = st.tuples(
    st.sampled_from(["red", "blue"]),
    st.sampled_from(["participate", "buy"]),
    st.sampled_from(["u1", "u2", "u3", "u4"]),
    st.one_of(st.none(), st.integers(1, 9).map(float)),
    st.one_of(st.none(), st.sampled_from(["o1", "o2"])),
    st.sampled_from([None, "Chrome", "Firefox"]),
    st.integers(0, 3),   # copies stored (BigQuery's best-effort dedupe)
    st.integers(0, 3000),  # minutes
)


def _run(warehouse: Any, query: Any) -> list[dict[str, Any]]:
    return warehouse.fetch(query.sql, query.params)


def _sorted(rows: list[dict[str, Any]], drop: tuple[str, ...] = ()) -> list[tuple]:
    def cleaned(row):
        return tuple(sorted((k, round(v, 9) if isinstance(v, float) else v) for k, v in row.items() if k not in drop))
    return sorted((cleaned(row) for row in rows), key=repr)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event, min_size=1, max_size=25), st.sampled_from([None, 90, 50]), st.booleans())
def test_review_new_bigquery_dedupe_equals_the_old(events, cap, by_browser):
    warehouse = AppendOnlyWarehouse()
    try:
        stored = []
        for variant, name, uuid, value, client_id, browser, copies, minutes in events:
            fields = {"namespace": "shop", "experiment": "cart", "variant": variant, "event": name, "uuid": uuid}
            if value is not None:
                fields["value"] = value
            if client_id is not None:
                fields["id"] = client_id
            copy = stamp(parse_event(fields), START + timedelta(minutes=minutes), browser=browser)
            stored += [copy] * (copies + 1)
        warehouse.insert_events(stored)
        target = target_of(warehouse)
        dimension = parse_dimension("browser", columns=()) if by_browser else None
        old = _run(warehouse, OLD.decision_counts(target, "shop", "cart", dimension=dimension, cap=cap))
        new = _run(warehouse, queries.decision_counts(target, "shop", "cart", dimension=dimension, cap=cap))
        assert _sorted(new) == _sorted(old)
        if not by_browser:
            spanned = _run(warehouse, queries.decision_counts(target, "shop", "cart", cap=cap, spans=True))
            assert _sorted(spanned, ("first_at", "last_at")) == _sorted(old)
            (span,) = _run(warehouse, queries.exposure_span(target, "shop", "cart"))
            exposed = [(row["first_at"], row["last_at"]) for row in spanned if row["event"] == "participate"]
            assert (min((f for f, _ in exposed), default=None), max((l for _, l in exposed), default=None)) == \
                (span["first_at"], span["last_at"])
    finally:
        warehouse.close()
