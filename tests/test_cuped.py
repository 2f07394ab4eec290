"""CUPED (docs/statistics.md, "CUPED"): the statistics against numpy/scipy from per-person data,
the warehouse's sufficient statistics on DuckDB and on BigQuery's text (the real client against the
stand-in answering from the same rows), and the results route with pre-period events.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import numpy as np
import pytest
from scipy import stats as scipy_stats

from chalicelib.ingest.events import Event, stamp
from chalicelib.reports import cuped_queries, experiments, segment_results
from chalicelib.reports.cuped_results import CupedSettings, arm_moments
from chalicelib.reports.dimensions import parse_json_path
from chalicelib.reports.fetch import fetch, target_of
from chalicelib.reports.queries import Window
from chalicelib.reports.stats import cuped
from chalicelib.reports.stats.cuped import Moments
from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse
from tests.bigquery_standin import bigquery_standin  # noqa: F401
from tests.helpers import KEY_HEADER, report_client  # noqa: F401
from tests.segment_rows import exposure, track
from tests.standin_sql import each_warehouse  # noqa: F401

NS = "default"
EXPOSED = datetime(2024, 5, 20, 12, tzinfo=timezone.utc)


def days_before(days: float) -> datetime:
    return EXPOSED - timedelta(days=days)


def moments_of(y: np.ndarray, x: np.ndarray) -> Moments:
    """An arm's moments as the warehouse gives them: over the active people, zeros folded in after."""
    active = (y != 0) | (x != 0)
    ya, xa = y[active], x[active]
    if not active.any():
        return cuped.with_zeros(len(y), cuped.EMPTY)
    part = Moments(int(active.sum()), ya.mean(), xa.mean(), ((ya - ya.mean()) ** 2).sum(),
                   ((xa - xa.mean()) ** 2).sum(), ((xa - xa.mean()) * (ya - ya.mean())).sum())
    return cuped.with_zeros(len(y), part)


def population(rng: np.random.Generator, n: int, rate: float, lift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per person: pre-period goal count x, and conversion y that depends on it."""
    x = rng.poisson(0.3, n).astype(float)
    y = (rng.random(n) < np.clip(rate * (1 + lift) * (0.4 + 2 * x), 0, 1)).astype(float)
    return y, x


# ---- the statistics, against numpy and scipy from per-person data ----------------------------------

def test_theta_and_the_adjusted_variances_equal_a_direct_numpy_computation():
    rng = np.random.default_rng(7)
    arms = {label: population(rng, n, 0.1, lift) for label, n, lift in
            (("control", 3000, 0.0), ("b", 2500, 0.1), ("c", 2800, -0.05))}
    moments = {label: moments_of(y, x) for label, (y, x) in arms.items()}
    y_all = np.concatenate([y for y, _ in arms.values()])
    x_all = np.concatenate([x for _, x in arms.values()])

    theta = cuped.pooled_theta(list(moments.values()))
    assert theta == pytest.approx(np.cov(y_all, x_all, ddof=1)[0, 1] / np.var(x_all, ddof=1), rel=1e-12)
    mean_x = cuped.pooled_mean_x(list(moments.values()))
    for label, (y, x) in arms.items():
        adjusted = y - theta * (x - x_all.mean())
        sample = cuped.adjusted_sample(moments[label], theta, mean_x)
        assert sample.mean == pytest.approx(adjusted.mean(), rel=1e-12)
        assert sample.variance == pytest.approx(np.var(adjusted, ddof=1), rel=1e-10)


def test_the_adjusted_comparison_is_welchs_test_on_the_adjusted_values_and_reports_the_variance_removed():
    rng = np.random.default_rng(11)
    (yc, xc), (yv, xv) = population(rng, 4000, 0.08), population(rng, 4000, 0.08, lift=0.15)
    control, variant = moments_of(yc, xc), moments_of(yv, xv)
    theta = cuped.pooled_theta([control, variant])
    mean_x = np.concatenate([xc, xv]).mean()
    result = cuped.compare_adjusted(control, variant, theta, mean_x, 0.95)

    adjusted_c, adjusted_v = yc - theta * (xc - mean_x), yv - theta * (xv - mean_x)
    assert result.comparison.fixed.p_value == pytest.approx(
        scipy_stats.ttest_ind(adjusted_v, adjusted_c, equal_var=False).pvalue, rel=1e-6)
    before = np.var(yc, ddof=1) / len(yc) + np.var(yv, ddof=1) / len(yv)
    after = np.var(adjusted_c, ddof=1) / len(yc) + np.var(adjusted_v, ddof=1) / len(yv)
    assert result.variance_reduction == pytest.approx(1 - after / before, rel=1e-9)
    assert result.variance_reduction > 0.1  # the history predicts conversion here
    unadjusted = cuped.compare_adjusted(control, variant, 0.0, mean_x, 0.95)
    assert unadjusted.variance_reduction == pytest.approx(0.0, abs=1e-12)
    # The confidence sequence narrows by sqrt(1 - variance reduction), at the same boundary.
    width = lambda decision: decision.absolute_ci[1] - decision.absolute_ci[0]  # noqa: E731
    assert width(result.comparison.sequential) / width(unadjusted.comparison.sequential) == pytest.approx(
        np.sqrt(1 - result.variance_reduction), rel=1e-9)


def test_without_history_there_is_no_theta():
    nobody = cuped.with_zeros(100, Moments(10, 1.0, 0.0, 0.0, 0.0, 0.0))
    assert cuped.pooled_theta([nobody, nobody]) is None


# ---- the warehouse's sufficient statistics ------------------------------------------------------------

@pytest.fixture
def warehouse(each_warehouse):
    return each_warehouse


def people_rows(rng: np.random.Generator, label: str, n: int) -> tuple[list, np.ndarray, np.ndarray, np.ndarray,
                                                                     np.ndarray]:
    """Segment rows for n people: history (count and revenue) in the 14 days before exposure, and after."""
    rows, y_rate, x_rate, y_value, x_value = [], np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    for person in range(n):
        user = f"{label}-{person}"
        rows.append(exposure("exp", label, user, EXPOSED))
        for day in range(int(rng.integers(0, 3))):
            revenue = float(rng.integers(1, 50))
            rows.append(track("Buy", user, days_before(day + 1.5), properties={"revenue": revenue}))
            x_rate[person] += 1
            x_value[person] += revenue
        if rng.random() < 0.2 + 0.2 * x_rate[person]:
            revenue = float(rng.integers(1, 50))
            rows.append(track("Buy", user, EXPOSED + timedelta(days=1), properties={"revenue": revenue}))
            y_rate[person], y_value[person] = 1.0, revenue
    return rows, y_rate, x_rate, y_value, x_value


def test_both_warehouses_give_the_sufficient_statistics_numpy_computes_from_the_same_rows(warehouse):
    rng = np.random.default_rng(3)
    data = {label: people_rows(rng, label, 40) for label in ("control", "b")}
    warehouse.insert_events([row for rows, *_ in data.values() for row in rows])
    query = cuped_queries.segment_cuped_moments(target_of(warehouse), NS, "exp", goals=["Buy"],
                                                value=parse_json_path("properties.revenue"))
    rows = fetch(warehouse, query)
    for metric, (y_at, x_at) in (("rate", (1, 2)), ("value", (3, 4))):
        got = arm_moments(rows, metric)["Buy"]
        for label, figures in data.items():
            expected = moments_of(figures[y_at], figures[x_at])
            assert got[label].participants == expected.participants == 40
            for name in ("mean_y", "mean_x", "m2_y", "m2_x", "c_xy"):
                assert getattr(got[label], name) == pytest.approx(getattr(expected, name), rel=1e-9, abs=1e-9), name


def one_person_moments(warehouse, **options) -> Moments:
    rows = fetch(warehouse, cuped_queries.segment_cuped_moments(
        target_of(warehouse), NS, "exp", goals=["Buy"], value=parse_json_path("properties.revenue"), **options))
    return arm_moments(rows, "value")["Buy"]["a"]


def test_events_after_exposure_or_before_the_pre_period_never_count_in_the_covariate(warehouse):
    warehouse.insert_events([
        exposure("exp", "a", "u1", EXPOSED), exposure("exp", "a", "u1", EXPOSED + timedelta(days=2)),
        track("Buy", "u1", days_before(1), properties={"revenue": 5}),       # history
        track("Buy", "u1", days_before(15), properties={"revenue": 100}),    # before the 14 days
        track("Buy", "u1", EXPOSED, properties={"revenue": 7}),              # at exposure: Y only
        track("Buy", "u1", EXPOSED + timedelta(days=3), properties={"revenue": 11}),   # after the 2nd exposure
        exposure("exp", "a", "u2", EXPOSED),
    ])
    moments = one_person_moments(warehouse)
    assert moments.participants == 2
    assert (moments.mean_x * 2, moments.mean_y * 2) == (5.0, 18.0)   # 7 + 11
    assert one_person_moments(warehouse, pre_days=16).mean_x * 2 == 105.0


def test_participants_and_conversions_are_the_decision_views_and_history_ignores_the_date_window(warehouse):
    late = EXPOSED + timedelta(days=3)
    warehouse.insert_events([
        exposure("exp", "a", "u1", EXPOSED), track("Buy", "u1", days_before(2)), track("Buy", "u1", late),
        exposure("exp", "b", "u2", EXPOSED), track("Buy", "u2", EXPOSED + timedelta(hours=1)),
        exposure("exp", "b", "u3", EXPOSED, received_at=EXPOSED + timedelta(days=9)),   # arrived after the window
        exposure("exp", "b", "u4", EXPOSED), track("Buy", "u4", days_before(1)),
    ])
    window = Window(EXPOSED.date(), late.date() - timedelta(days=1))                      # u1's goal is outside
    view = segment_results.experiment_results(warehouse, NS, "exp", goals=["Buy"], window=window,
                                              cuped=CupedSettings(enabled=False))
    rows = fetch(warehouse, cuped_queries.segment_cuped_moments(target_of(warehouse), NS, "exp", goals=["Buy"],
                                                                window=window))
    got = arm_moments(rows, "rate")["Buy"]
    for arm in view["goals"][0]["variants"]:
        moments = got[arm["label"]]
        assert (moments.participants, round(moments.mean_y * moments.participants)) == (arm["trials"], arm["successes"])
    assert (got["a"].mean_x, got["b"].mean_x * 2) == (1.0, 1.0)   # the history before the window counts


def test_people_without_history_have_covariate_zero(warehouse):
    warehouse.insert_events([
        exposure("exp", "a", "new", EXPOSED), track("Buy", "new", EXPOSED + timedelta(hours=1),
                                                    properties={"revenue": 4}),
        exposure("exp", "a", "returning", EXPOSED), track("Buy", "returning", days_before(2),
                                                          properties={"revenue": 6}),
        exposure("exp", "a", "idle", EXPOSED),
    ])
    moments = one_person_moments(warehouse)
    # x = (0, 6, 0): mean 2, squared deviations 4 + 16 + 4
    assert (moments.participants, moments.mean_x, moments.m2_x) == (3, 2.0, pytest.approx(24.0))


# ---- the results ------------------------------------------------------------------------------------

def seeded(rng: np.random.Generator, n: int = 300) -> list:
    rows = []
    for label, lift in (("control", 0.0), ("b", 0.3)):
        for person in range(n):
            user = f"{label}-{person}"
            habit = rng.poisson(1.0)
            rows.append(exposure("exp", label, user, EXPOSED))
            rows += [track("Buy", user, days_before(day + 1)) for day in range(habit)]
            if rng.random() < min(1.0, 0.1 * (1 + lift) * (0.3 + habit)):
                rows.append(track("Buy", user, EXPOSED + timedelta(days=1)))
    return rows


def arm(view, label: str, goal: int = 0) -> dict:
    return next(variant for variant in view["goals"][goal]["variants"] if variant["label"] == label)


def get(client, path: str, **query: str):
    reply = client.http.get(f"{path}?{urlencode(query)}", headers=KEY_HEADER)
    return reply.status_code, json.loads(reply.body)


def test_a_deployment_with_cuped_off_by_default_answers_plain_results_and_says_how_to_ask(report_client,
                                                                                         monkeypatch):
    from chalicelib import runtime

    monkeypatch.setenv("DALET_CUPED_DEFAULT", "off")
    runtime.warehouse().insert_events(seeded(np.random.default_rng(5)))
    status, by_default = get(report_client, "/experiments/exp/results", namespace=NS, source="segment", goals="Buy")
    assert status == 200, by_default
    assert by_default["cuped"]["applied"] is False
    assert "DALET_CUPED_DEFAULT=off" in by_default["cuped"]["reason"] and "cuped=on" in by_default["cuped"]["reason"]
    assert "cuped" not in arm(by_default, "b")
    status, asked = get(report_client, "/experiments/exp/results", namespace=NS, source="segment", goals="Buy",
                        cuped="on")
    assert status == 200, asked
    assert asked["cuped"]["applied"] and arm(asked, "b")["cuped"]["variance_reduction"] > 0.1


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, True),
    ({"DALET_BACKEND": "aws"}, False),
    ({"DALET_CUPED_DEFAULT": "off"}, False),
    ({"DALET_BACKEND": "aws", "DALET_CUPED_DEFAULT": "on"}, True),
    ({"DALET_CUPED_DEFAULT": " ON "}, True),
])
def test_cuped_is_on_by_default_locally_and_off_on_aws_unless_set(environ, expected):
    from chalicelib import config

    assert config._cuped_by_default(environ, (environ.get("DALET_BACKEND") or "local")) is expected


def test_a_cuped_default_that_is_neither_on_nor_off_is_refused_by_name():
    from chalicelib import config

    with pytest.raises(config.ConfigError, match="DALET_CUPED_DEFAULT must be on or off, got 'maybe'"):
        config.load_settings({"DALET_CUPED_DEFAULT": "maybe"})


def test_the_results_route_adjusts_segment_comparisons_with_the_pre_period(report_client):
    from chalicelib import runtime

    runtime.warehouse().insert_events(seeded(np.random.default_rng(5)))
    status, on = get(report_client, "/experiments/exp/results", namespace=NS, source="segment", goals="Buy")
    assert status == 200, on
    status, plain = get(report_client, "/experiments/exp/results", namespace=NS, source="segment", goals="Buy",
                        cuped="off")
    assert status == 200, plain
    assert on["cuped"]["applied"] and on["cuped"]["pre_days"] == 14 and on["cuped"]["goals"] == ["Buy"]
    assert plain["cuped"] == {**plain["cuped"], "applied": False, "reason": "turned off (cuped=off)"}
    adjusted, unadjusted = arm(on, "b"), arm(plain, "b")
    assert adjusted["successes"] == unadjusted["successes"]
    assert adjusted["cuped"]["variance_reduction"] > 0.1 and "cuped" not in unadjusted
    width = lambda interval: interval[1] - interval[0]  # noqa: E731
    assert width(adjusted["sequential"]["absolute_ci"]) < width(unadjusted["sequential"]["absolute_ci"])
    assert width(adjusted["uplift"]["absolute_ci"]) < width(unadjusted["uplift"]["absolute_ci"])
    assert adjusted["p_value_adjusted"] is not None


def test_a_goal_nobody_did_before_exposure_is_left_unadjusted_and_says_why(tmp_path):
    store = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    store.insert_events([exposure("exp", label, f"{label}{n}", EXPOSED) for label in "ab" for n in range(5)]
                        + [track("Buy", "a1", EXPOSED + timedelta(hours=1))])
    view = segment_results.experiment_results(store, NS, "exp")
    store.close()
    assert view["cuped"]["applied"] is False and "14 days before" in view["cuped"]["reason"]
    assert view["goals"][0]["cuped"]["applied"] is False and "cuped" not in arm(view, "b")


def test_alephbet_experiments_use_the_same_uuids_history_in_other_experiments(tmp_path):
    rng = np.random.default_rng(9)
    store = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    rows = []
    for label, lift in (("red", 0.0), ("blue", 0.3)):
        for person in range(300):
            uuid = f"{label}-{person}"
            habit = rng.random() < 0.4
            if habit:  # bought under another experiment the week before
                rows.append(stamp(Event("alephbet", "older", "x", "buy", uuid), days_before(3)))
            rows.append(stamp(Event("alephbet", "exp", label, "participate", uuid), EXPOSED))
            if rng.random() < 0.1 * (1 + lift) * (0.5 + 3 * habit):
                rows.append(stamp(Event("alephbet", "exp", label, "buy", uuid), EXPOSED + timedelta(hours=2)))
    store.insert_events(rows)
    on = experiments.experiment_results(store, "alephbet", "exp", control="red")
    off = experiments.experiment_results(store, "alephbet", "exp", control="red", cuped=CupedSettings(enabled=False))
    store.close()
    blue, plain = arm(on, "blue"), arm(off, "blue")
    assert on["cuped"]["applied"] and blue["cuped"]["variance_reduction"] > 0.05
    assert blue["successes"] == plain["successes"]
    assert blue["uplift"]["absolute"] == pytest.approx(plain["uplift"]["absolute"], abs=0.03)


@pytest.mark.parametrize("query, parameter", [
    ({"cuped": "maybe"}, "cuped"),
    ({"pre_days": "0"}, "pre_days"),
    ({"pre_days": "91"}, "pre_days"),
    ({"pre_days": "two"}, "pre_days"),
    ({"pre_days": "1.5"}, "pre_days"),
])
def test_bad_cuped_parameters_are_a_400_naming_them(report_client, query, parameter):
    status, body = get(report_client, "/experiments/exp/results", namespace=NS, source="segment", **query)
    assert status == 400, body
    assert body["parameter"] == parameter


def test_cuped_stands_aside_when_its_participants_are_not_the_views():
    from chalicelib.reports.cuped_results import CupedAdjustment

    rows = [{"variant": label, "event": "participate", "active": 10} for label in ("a", "b")] + [
        {"variant": label, "event": "Buy", "active": 4, "sum_y_rate": 2.0, "sum_x_rate": 3.0, "m2_y_rate": 1.0,
         "m2_x_rate": 1.5, "c_xy_rate": 0.5} for label in ("a", "b")]
    goals = [{"goal": "Buy", "value": None, "variants": [
        {"label": "a", "trials": 10, "successes": 2, "p_value": 0.5},
        {"label": "b", "trials": 11, "successes": 2, "p_value": 0.5}]}]
    adjustment = CupedAdjustment(rows, 0.95)
    adjustment(goals, "a")
    assert goals[0]["cuped"]["applied"] is False and "participants of b differ" in goals[0]["cuped"]["reason"]
    assert goals[0]["variants"][1]["p_value"] == 0.5 and "cuped" not in goals[0]["variants"][1]
    assert adjustment.summary()["applied"] is False and "differ" in adjustment.summary()["reason"]


# ---- CUPED keeps the rate test's promises (issue 14 item 1) -----------------------------------------

def arms_with_history(arms: dict[str, tuple[int, int, int]], *, converters_have_history: bool = False) -> list:
    """{label: (participants, converters, people with one pre-period Buy)}: converters first, history first."""
    rows = []
    for label, (people, converters, with_history) in arms.items():
        for person in range(people):
            user = f"{label}-{person}"
            rows.append(exposure("exp", label, user, EXPOSED))
            if person < with_history:
                rows.append(track("Buy", user, days_before(3)))
            if person < converters:
                rows.append(track("Buy", user, EXPOSED + timedelta(hours=5)))
    return rows


def results_of(client, rows: list, **query: str) -> tuple[dict, dict]:
    """The variant "b" against "control" with cuped on (the default) and off."""
    from chalicelib import runtime

    runtime.warehouse().insert_events(rows)
    views = []
    for cuped_setting in ("on", "off"):
        status, view = get(client, "/experiments/exp/results", namespace=NS, source="segment", goals="Buy",
                           control="control", cuped=cuped_setting, **query)
        assert status == 200, view
        views.append(arm(view, "b"))
    return views[0], views[1]


@pytest.mark.parametrize("arms", [
    {"control": (20, 0, 5), "b": (20_000, 0, 3_000)},       # identical zero rates, 1:1000 allocation
    {"control": (20, 0, 5), "b": (20_000, 1, 3_000)},       # one conversion in 20,000 against none in 20
    {"control": (1_000, 41, 300), "b": (1_000, 3, 300)},    # a nearly broken variant: 3 successes
    {"control": (40, 35, 20), "b": (40, 38, 20)},            # nearly everyone converts: 2 non-successes
], ids=["zero-vs-zero", "one-in-20000", "three-successes", "two-non-successes"])
def test_a_rate_below_the_success_failure_condition_keeps_its_exact_test_and_says_why(report_client, arms):
    adjusted, exact = results_of(report_client, arms_with_history(arms))
    assert adjusted["cuped"]["applied"] is False and "exact test stands" in adjusted["cuped"]["reason"]
    assert adjusted["cuped"]["variance_reduction"] is None
    for figure in ("p_value", "uplift", "sequential", "direction"):
        assert adjusted[figure] == exact[figure]


def test_identical_rates_are_never_significant_however_the_histories_differ(report_client):
    # Control's converters all bought before; the variant's never did: the adjusted means differ a lot.
    rows = arms_with_history({"control": (400, 100, 100), "b": (400, 100, 0)})
    adjusted, exact = results_of(report_client, rows)
    assert adjusted["cuped"]["applied"] is False and "identical" in adjusted["cuped"]["reason"]
    assert adjusted["p_value"] == adjusted["sequential"]["p_value"] == 1.0
    assert adjusted["direction"] is None and {**adjusted, "cuped": None} == {**exact, "cuped": None}


def test_adjusted_values_that_do_not_vary_never_make_a_difference_certain(report_client):
    # Exactly the people with a pre-period Buy buy again: theta = 1 and every adjusted value is the same.
    rows = arms_with_history({"control": (100, 20, 20), "b": (100, 30, 30)})
    adjusted, exact = results_of(report_client, rows)
    assert adjusted["cuped"]["applied"] is False and "do not vary" in adjusted["cuped"]["reason"]
    assert adjusted["p_value"] == exact["p_value"] > 0


def shown_interval(figures: dict) -> list:
    """The interval a mode shows: relative, absolute where the relative is undefined."""
    relative = figures["relative_ci"]
    return relative if relative and None not in relative else figures["absolute_ci"]


def excludes_zero(interval: list) -> bool:
    return interval[0] > 0 or interval[1] < 0


@pytest.mark.parametrize("seed", [5, 6, 7, 8])
def test_where_cuped_applies_to_a_rate_the_decision_promises_hold(report_client, seed):
    adjusted, _ = results_of(report_client, seeded(np.random.default_rng(seed)), correction="none")
    assert adjusted["cuped"]["applied"] is True
    fixed = {**adjusted["uplift"], "p_value": adjusted["p_value"]}
    sequential = adjusted["sequential"]
    for figures in (fixed, sequential):
        assert excludes_zero(shown_interval(figures)) == (figures["p_value"] < 0.05)
    assert sequential["p_value"] >= fixed["p_value"]
    for name in ("absolute_ci", "relative_ci"):
        if sequential[name] and fixed[name] and None not in sequential[name] + fixed[name]:
            assert sequential[name][0] <= fixed[name][0] and sequential[name][1] >= fixed[name][1]
    difference = adjusted["uplift"]["absolute"]
    assert adjusted["direction"] == ("better" if difference > 0 else "worse")


def test_cuped_sequential_figures_are_tuned_to_the_plan(report_client):
    from chalicelib import runtime

    runtime.warehouse().insert_events(seeded(np.random.default_rng(5)))
    views = {}
    for planned in ("600", "1000000"):
        status, view = get(report_client, "/experiments/exp/results", namespace=NS, source="segment", goals="Buy",
                           control="control", planned_participants=planned)
        assert status == 200, view
        views[planned] = arm(view, "b")
    tuned, mistuned = views["600"], views["1000000"]
    # The fixed figures do not depend on the plan (to the last bits DuckDB's parallel sums leave).
    assert tuned["cuped"]["applied"] and tuned["p_value"] == pytest.approx(mistuned["p_value"], rel=1e-9)
    width = lambda interval: interval[1] - interval[0]  # noqa: E731
    assert width(tuned["sequential"]["absolute_ci"]) < width(mistuned["sequential"]["absolute_ci"])
