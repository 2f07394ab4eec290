"""Value per participant: moments of per-user totals, zeros included, computed without cancellation."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from chalicelib.ingest.events import Event, stamp
from chalicelib.reports import queries
from chalicelib.reports.queries import Target
from chalicelib.reports.values import ValueMoments, value_moments
from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse

DUCK = Target(queries.DUCKDB, queries.DUCKDB_TABLES, unique_identities=True)
BIGQUERY_RENDERING = Target(queries.DUCKDB, queries.DUCKDB_TABLES, unique_identities=False)
WHEN = datetime(2024, 5, 2, 12, tzinfo=timezone.utc)


def reference(totals: list[float] | np.ndarray, participants: int) -> tuple[float, float]:
    """numpy's mean and sample variance over every participant, the non-spenders as 0."""
    everyone = np.concatenate([np.asarray(totals, dtype=float), np.zeros(participants - len(totals))])
    return float(everyone.mean()), float(everyone.var(ddof=1))


def moments_of(totals: list[float] | np.ndarray, participants: int) -> ValueMoments:
    """What the warehouse answers for the valued users, folded with the non-spenders."""
    totals = np.asarray(totals, dtype=float)
    variance = float(totals.var(ddof=1)) if len(totals) > 1 else None
    return value_moments(participants, len(totals), float(totals.sum()), variance)


# ---- the pure function -----------------------------------------------------------------------------

@pytest.mark.parametrize("valued, participants", [(1, 1), (1, 5), (2, 2), (3, 10), (50, 50), (37, 1000)])
def test_moments_count_participants_without_a_value_as_zero(valued, participants):
    totals = np.random.default_rng(valued * participants).lognormal(3, 1, valued)
    moments = moments_of(totals, participants)
    mean, variance = reference(totals, participants) if participants > 1 else (float(totals[0]), 0.0)
    assert moments.participants == participants
    assert moments.mean == pytest.approx(mean, rel=1e-12)
    assert moments.variance == pytest.approx(variance, rel=1e-12)


def test_refunds_make_negative_totals_and_still_fold_in_exactly():
    totals = [25.0, -10.0, 3.5]
    moments, (mean, variance) = moments_of(totals, 6), reference(totals, 6)
    assert (moments.mean, moments.variance) == pytest.approx((mean, variance), rel=1e-12)


def test_nobody_with_a_value_means_a_mean_and_variance_of_zero():
    assert value_moments(20, 0, 0.0, None) == ValueMoments(20, 0.0, 0.0)


@pytest.mark.parametrize("participants, valued", [(0, 0), (3, 4), (-1, 0)])
def test_impossible_inputs_are_refused(participants, valued):
    with pytest.raises(ValueError):
        value_moments(participants, valued, 1.0, None)


def test_totals_beyond_float_range_are_refused_rather_than_reported_as_inf():
    with pytest.raises(ValueError, match="range"):
        value_moments(4, 2, 1.7e308, 1e300)


# ---- large values through the warehouse, as the issue found them ------------------------------------

def purchases(variant: str, totals: np.ndarray, split: bool) -> tuple[list, list[float]]:
    """One participate per user and the user's purchase, or two purchases (distinct ids) adding up to it.

    Returns the events and the per-user totals exactly as a warehouse adds them up."""
    events, per_user = [], []
    for n, total in enumerate(totals):
        uuid = f"{variant}-{n}"
        events.append(stamp(Event("alephbet", "big", variant, "participate", uuid), WHEN))
        if split:
            first, second = float(total) - 1.25, 1.25
            events += [stamp(Event("alephbet", "big", variant, "buy", uuid, first, f"{uuid}-a"), WHEN),
                       stamp(Event("alephbet", "big", variant, "buy", uuid, second, f"{uuid}-b"), WHEN)]
            per_user.append(first + second)
        else:
            events.append(stamp(Event("alephbet", "big", variant, "buy", uuid, float(total), f"{uuid}-a"), WHEN))
            per_user.append(float(total))
    return events, per_user


@pytest.mark.parametrize("target", [DUCK, BIGQUERY_RENDERING], ids=["duckdb", "bigquery rendering"])
@pytest.mark.parametrize("split", [False, True], ids=["one purchase each", "two purchases each"])
@pytest.mark.parametrize("level", [1e8, 1e9])
def test_large_values_keep_their_spread_to_1e_9(tmp_path, level, split, target):
    rng = np.random.default_rng(int(level) % 97 + split)
    store = DuckDBWarehouse(tmp_path / "big.duckdb")
    try:
        totals_of = {}
        for variant, shift in (("control", 0.0), ("red", 0.05)):
            events, totals_of[variant] = purchases(variant, level + shift + rng.standard_normal(20_000), split)
            store.insert_events(events)
        query = queries.decision_counts(target, "alephbet", "big")
        rows = {(row["variant"], row["event"]): row for row in store.fetch(query.sql, query.params)}
    finally:
        store.close()
    for variant, totals in totals_of.items():
        participants, buy = rows[variant, "participate"]["uuids"], rows[variant, "buy"]
        assert (participants, buy["uuids"], buy["valued"]) == (20_000, 20_000, 20_000)
        moments = value_moments(participants, buy["valued"], buy["total"], buy["variance"])
        mean, variance = reference(totals, participants)
        assert moments.mean == pytest.approx(mean, rel=1e-9)
        assert moments.variance == pytest.approx(variance, rel=1e-9)
        assert moments.variance == pytest.approx(1.0, rel=0.05)    # the noise's own spread, not cancellation


def test_large_values_with_non_spenders_keep_their_spread(tmp_path):
    rng = np.random.default_rng(7)
    totals = 1e9 + rng.standard_normal(5_000)
    store = DuckDBWarehouse(tmp_path / "big.duckdb")
    try:
        events, per_user = purchases("red", totals, split=False)
        store.insert_events(events + [stamp(Event("alephbet", "big", "red", "participate", f"idle-{n}"), WHEN)
                                      for n in range(15_000)])
        query = queries.decision_counts(DUCK, "alephbet", "big")
        rows = {row["event"]: row for row in store.fetch(query.sql, query.params)}
    finally:
        store.close()
    moments = value_moments(rows["participate"]["uuids"], rows["buy"]["valued"], rows["buy"]["total"],
                            rows["buy"]["variance"])
    mean, variance = reference(per_user, 20_000)
    assert moments.mean == pytest.approx(mean, rel=1e-9)
    assert moments.variance == pytest.approx(variance, rel=1e-9)
