"""CUPED (on by default) at small, zero and lopsided counts: issue 14 item 1's promises still hold.

Each arm is a list of people (Y: converted after exposure, X: how often they did the goal in the
days before); their moments are what `cuped_queries.segment_cuped_moments` returns, and go through
`results.results_view` with the `CupedAdjustment` hook, as the Segment results route does.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from scipy.stats import fisher_exact

from chalicelib.ingest.events import PARTICIPATE
from chalicelib.reports import results
from chalicelib.reports.cuped_results import CupedAdjustment

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
GOAL = "buy"

Person = tuple[float, float]  # (Y after exposure, X before)


def people(count: int, converted: int, with_history: int) -> list[Person]:
    """`count` people: the first `converted` converted, the first `with_history` did the goal once before."""
    return [(float(k < converted), float(k < with_history)) for k in range(count)]


def moments(label: str, arm: Sequence[Person]) -> dict[str, Any]:
    y, x = np.array([p[0] for p in arm]), np.array([p[1] for p in arm])
    return {"variant": label, "event": GOAL, "active": len(arm), "sum_y_rate": y.sum(), "sum_x_rate": x.sum(),
            "m2_y_rate": ((y - y.mean()) ** 2).sum(), "m2_x_rate": ((x - x.mean()) ** 2).sum(),
            "c_xy_rate": ((y - y.mean()) * (x - x.mean())).sum()}


def cuped_view(arms: Mapping[str, Sequence[Person]], cuped: bool = True) -> dict[str, Any]:
    rows, cuped_rows = [], []
    for label, arm in arms.items():
        rows += [results.DecisionRow(label, PARTICIPATE, len(arm), 0, 0.0, 0.0),
                 results.DecisionRow(label, GOAL, int(sum(p[0] for p in arm)), 0, 0.0, 0.0)]
        cuped_rows += [{"variant": label, "event": PARTICIPATE, "active": len(arm)}, moments(label, arm)]
    return results.results_view("ns", "exp", rows, control="control", confidence=CONFIDENCE, weights=None,
                                adjust_goals=CupedAdjustment(cuped_rows, CONFIDENCE) if cuped else None)


def variant_figures(view: dict[str, Any]) -> dict[str, Any]:
    return next(arm for arm in view["goals"][0]["variants"] if arm["label"] == "variant")


def shown_interval(figures: Mapping[str, Any]) -> list[float] | None:
    """The interval shown: relative, else absolute where the relative is undefined."""
    for interval in (figures.get("relative_ci"), figures.get("absolute_ci")):
        if interval and None not in interval:
            return interval
    return None


def p_values(view: dict[str, Any]) -> tuple[float, float]:
    arm = variant_figures(view)
    return arm["p_value"], arm["sequential"]["p_value"]


def test_cuped_adjusts_arms_with_history():
    view = cuped_view({"control": people(200, 20, 40), "variant": people(200, 30, 40)})
    assert view["goals"][0]["cuped"]["applied"]


def test_identical_zero_rates_with_history_are_not_significant():
    view = cuped_view({"control": people(20, 0, 2), "variant": people(20_000, 0, 2_000)})
    assert min(p_values(view)) >= ALPHA


def test_identical_rates_and_histories_are_not_significant():
    view = cuped_view({"control": people(20, 1, 2), "variant": people(20_000, 1_000, 2_000)})
    assert min(p_values(view)) >= ALPHA
    assert variant_figures(view)["direction"] is None


def population(rng: np.random.Generator, count: int, rate: float) -> list[Person]:
    """People whose history predicts their conversion: a shared propensity drives both."""
    propensity = rng.gamma(0.5, 2.0, size=count)
    history = rng.poisson(3 * propensity)
    converted = rng.random(count) < np.clip(rate * propensity, 0, 1)
    return [(float(y), float(x)) for y, x in zip(converted, history, strict=True)]


SMALL_CASES = [(5, 5, 0.2), (20, 20, 0.05), (20, 20, 0.2), (100, 100, 0.01), (20, 1_980, 0.05), (1_980, 20, 0.05)]


@pytest.mark.parametrize(("n_control", "n_variant", "rate"), SMALL_CASES)
def test_each_modes_interval_excludes_zero_exactly_when_p_is_below_alpha(n_control, n_variant, rate):
    rng = np.random.default_rng(n_control * 7 + n_variant)
    for _ in range(60):
        arm = variant_figures(cuped_view({"control": population(rng, n_control, rate),
                                          "variant": population(rng, n_variant, rate * 1.5)}))
        for figures, p in ((arm["uplift"], arm["p_value"]), (arm["sequential"], arm["sequential"]["p_value"])):
            interval = shown_interval(figures)
            if interval is not None and p is not None:
                assert (interval[0] > 0 or interval[1] < 0) == (p < ALPHA), (figures, p)


@pytest.mark.parametrize(("n_control", "n_variant", "rate"), SMALL_CASES)
def test_the_sequential_interval_is_never_narrower_than_the_fixed_one(n_control, n_variant, rate):
    rng = np.random.default_rng(n_control * 11 + n_variant)
    for _ in range(60):
        arm = variant_figures(cuped_view({"control": population(rng, n_control, rate),
                                          "variant": population(rng, n_variant, rate * 1.5)}))
        fixed, sequential = arm["uplift"]["absolute_ci"], arm["sequential"]["absolute_ci"]
        if fixed and sequential and None not in fixed and None not in sequential:
            assert sequential[1] - sequential[0] >= fixed[1] - fixed[0] - 1e-12


def test_equal_arms_of_twenty_rarely_differ():
    rng = np.random.default_rng(20)
    runs = 400
    significant = sum(min(p_values(cuped_view({"control": population(rng, 20, 0.2),
                                               "variant": population(rng, 20, 0.2)}))) < ALPHA
                      for _ in range(runs))
    assert significant <= ALPHA * runs


def test_equal_arms_split_1_to_99_rarely_differ():
    """Measured on this branch: 20 vs 1,980 at a 5% base rate, one look, fixed p < 0.05 in about a third
    of A/A experiments (sequential: a quarter); the exact test (cuped=off) stays below 5%."""
    rng = np.random.default_rng(99)
    runs = 200
    significant = sum(min(p_values(cuped_view({"control": population(rng, 20, 0.05),
                                               "variant": population(rng, 1_980, 0.05)}))) < ALPHA
                      for _ in range(runs))
    assert significant <= ALPHA * runs


def test_without_cuped_the_same_lopsided_a_a_rarely_differs():
    rng = np.random.default_rng(99)
    runs = 200
    significant = sum(min(p_values(cuped_view({"control": population(rng, 20, 0.05),
                                               "variant": population(rng, 1_980, 0.05)}, cuped=False))) < ALPHA
                      for _ in range(runs))
    assert significant <= ALPHA * runs


def test_a_control_of_twenty_without_conversions_is_not_significant_against_the_same_rate():
    """0/20 against 99/1,980 (5% both, history alike): Fisher's p is about 0.6; CUPED's Welch gave 0.043."""
    arms = {"control": people(20, 0, 4), "variant": people(1_980, 99, 396)}
    assert fisher_exact([[0, 20], [99, 1_881]]).pvalue > 0.5
    assert min(p_values(cuped_view(arms))) >= ALPHA


def test_two_people_each_are_never_significant():
    """2/2 against 0/2: Fisher's p = 1/3; CUPED's constant arms gave p = 0 and a "stop"."""
    arms = {"control": people(2, 2, 1), "variant": people(2, 0, 1)}
    assert fisher_exact([[2, 0], [0, 2]]).pvalue > 0.3
    assert min(p_values(cuped_view(arms))) >= ALPHA
