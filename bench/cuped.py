"""CUPED's power: +10% at a 5% baseline, 1,000 new participants per arm per day, 30 daily looks.

A generated population whose pre-period covariate X (did the goal in the 14 days before exposure)
and outcome Y (did it after) are Bernoulli with the same 5% baseline and correlation 0.6 in the
control (P(X=1, Y=1) = p^2 + rho p (1 - p), and the conditional rates follow). The
variant multiplies both conditional rates by 1.1 (+10%), leaving X alone (it is pre-treatment).
Each day adds a multinomial draw of the four (X, Y) cells per arm; at every look the arms' moments
go through the functions the /results route's CUPED hook calls (`stats.cuped`: pooled theta,
adjusted samples, and `compare_values`' figures).

Goal (issue 14, item 5): sequential power >= 65% with CUPED; A/A false positives <= 5%.

    .venv/bin/python bench/cuped.py [--quick | --full] [--seed N]

`bench/decisions.py` can call `cuped_lines(rng, runs)` to print the same section.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402

from chalicelib.reports import stats  # noqa: E402
from chalicelib.reports.stats import Proportion, cuped  # noqa: E402
from chalicelib.reports.stats.cuped import Moments  # noqa: E402
from chalicelib.reports.stats.estimates import Estimate  # noqa: E402

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
LOOKS = 30
DAILY_PER_ARM = 1_000
BASELINE = 0.05
CORRELATION = 0.6
EFFECT = 0.10
POWER_GOAL = 0.65
QUICK_RUNS = 1_000
FULL_RUNS = 4_000


def cell_probabilities(rate: float, correlation: float, lift: float) -> np.ndarray:
    """P(X, Y) in the order (0,0), (0,1), (1,0), (1,1): X ~ Bernoulli(rate) and, in the control, Y too,
    with corr(X, Y) = correlation; the variant's P(Y | X) are (1 + lift) times the control's."""
    both = rate * rate + correlation * rate * (1 - rate)
    y_after_history, y_without = both / rate, (rate - both) / (1 - rate)
    y1, y0 = y_after_history * (1 + lift), y_without * (1 + lift)
    return np.array([(1 - rate) * (1 - y0), (1 - rate) * y0, rate * (1 - y1), rate * y1])


def cumulative_cells(rng: np.random.Generator, probabilities: np.ndarray, experiments: int) -> np.ndarray:
    """(experiments, LOOKS, 4) running totals of the four cells, DAILY_PER_ARM new participants a day."""
    return rng.multinomial(DAILY_PER_ARM, probabilities, size=(experiments, LOOKS)).cumsum(axis=1)


def moments(cells: np.ndarray) -> Moments:
    """An arm's moments of (Y, X) from its cell counts (what the warehouse query returns, folded)."""
    n00, n01, n10, n11 = (int(count) for count in cells)
    n = n00 + n01 + n10 + n11
    mean_y, mean_x = (n01 + n11) / n, (n10 + n11) / n
    return Moments(n, mean_y, mean_x, n * mean_y * (1 - mean_y), n * mean_x * (1 - mean_x), n11 - n * mean_x * mean_y)


def cuped_sequential_p(control: Moments, variant: Moments) -> tuple[float, float]:
    """The CUPED sequential p-value as `compare_values` computes it (its confidence sequence's p;
    `compare_values` also floors it at Welch's p, whose t quantile costs milliseconds at these sizes:
    `check_same_figures` confirms the two agree), and the variance reduction."""
    theta = cuped.pooled_theta([control, variant])
    mean_x = cuped.pooled_mean_x([control, variant])
    adjusted_c = cuped.adjusted_sample(control, theta or 0.0, mean_x)
    adjusted_v = cuped.adjusted_sample(variant, theta or 0.0, mean_x)
    difference = Estimate(adjusted_v.mean - adjusted_c.mean,
                          math.sqrt(adjusted_c.variance / adjusted_c.participants
                                    + adjusted_v.variance / adjusted_v.participants))
    reduction = cuped.variance_reduction(control, variant, adjusted_c, adjusted_v) or 0.0
    return stats.sequential_p_value(difference, control.participants + variant.participants, CONFIDENCE), reduction


@dataclass
class CupedOutcome:
    runs: int
    cuped_sequential: int = 0      # stopped at some look, CUPED sequential p < alpha
    plain_sequential: int = 0      # stopped at some look, the rate test's sequential p < alpha (no CUPED)
    cuped_fixed_final: int = 0     # one look at day 30, CUPED fixed-horizon p < alpha
    variance_reduction: float = 0.0   # mean at day 30
    disagreements: int = 0         # day-30 figures where the shortcut differs from compare_adjusted


def run(rng: np.random.Generator, runs: int, lift: float) -> CupedOutcome:
    control = cumulative_cells(rng, cell_probabilities(BASELINE, CORRELATION, 0.0), runs)
    variant = cumulative_cells(rng, cell_probabilities(BASELINE, CORRELATION, lift), runs)
    outcome = CupedOutcome(runs)
    reductions = []
    for k in range(runs):
        with_cuped = without = False
        for look in range(LOOKS):
            arm_c, arm_v = moments(control[k, look]), moments(variant[k, look])
            p_value, reduction = cuped_sequential_p(arm_c, arm_v)
            with_cuped |= p_value < ALPHA
            if not without:
                rates = stats.compare_rates(Proportion(arm_c.participants, int(control[k, look, 1] + control[k, look, 3])),
                                            Proportion(arm_v.participants, int(variant[k, look, 1] + variant[k, look, 3])),
                                            CONFIDENCE)
                without = rates.sequential.p_value < ALPHA
        final = cuped.compare_adjusted(arm_c, arm_v, cuped.pooled_theta([arm_c, arm_v]) or 0.0,
                                       cuped.pooled_mean_x([arm_c, arm_v]), CONFIDENCE)
        outcome.disagreements += not math.isclose(final.comparison.sequential.p_value, p_value, rel_tol=1e-9)
        outcome.cuped_fixed_final += final.comparison.fixed.p_value < ALPHA
        outcome.cuped_sequential += with_cuped
        outcome.plain_sequential += without
        reductions.append(reduction)
    outcome.variance_reduction = float(np.mean(reductions))
    return outcome


def share(count: int, runs: int) -> str:
    value = count / runs
    return f"{value:7.2%}  (± {math.sqrt(value * (1 - value) / runs):.2%} MC SE, {count}/{runs})"


def cuped_lines(rng: np.random.Generator, runs: int) -> tuple[list[str], CupedOutcome, CupedOutcome]:
    """The printed section (A/B and A/A), and both outcomes."""
    ab, aa = run(rng, runs, EFFECT), run(rng, runs, 0.0)
    power = ab.cuped_sequential / runs
    lines = [
        f"CUPED, pre/post correlation {CORRELATION} ({runs:,} experiments each), +{EFFECT:.0%} at a "
        f"{BASELINE:.0%} baseline, {DAILY_PER_ARM:,} per arm per day, {LOOKS} daily looks",
        f"  {'power by day 30, sequential with CUPED':<58} {share(ab.cuped_sequential, runs)}",
        f"  {'power by day 30, sequential without CUPED (the rate test)':<58} {share(ab.plain_sequential, runs)}",
        f"  {'power at day 30, fixed horizon with CUPED (one look)':<58} {share(ab.cuped_fixed_final, runs)}",
        f"  {'variance reduction at day 30 (mean; rho^2 = 0.36 expected)':<58} {ab.variance_reduction:7.2%}",
        f"  {'A/A false positives, sequential with CUPED':<58} {share(aa.cuped_sequential, runs)}",
    ]
    if ab.disagreements or aa.disagreements:
        lines.append(f"  WARNING: {ab.disagreements + aa.disagreements} day-30 figures differ from compare_adjusted")
    if power >= POWER_GOAL:
        lines.append(f"  goal met: sequential power with CUPED {power:.1%} >= {POWER_GOAL:.0%}")
    else:
        lines.append(f"  SHORTFALL: sequential power with CUPED {power:.1%} < {POWER_GOAL:.0%}: the variance "
                     f"reduction ({ab.variance_reduction:.0%}) is spent against a sequence tuned for "
                     f"{stats.SEQUENTIAL_TUNING_PARTICIPANTS:,} participants, not the plan's "
                     f"{2 * DAILY_PER_ARM * LOOKS:,}")
    fpr = aa.cuped_sequential / runs
    lines.append(f"  {'goal met' if fpr <= ALPHA else 'SHORTFALL'}: A/A false positives with CUPED {fpr:.2%} "
                 f"{'<=' if fpr <= ALPHA else '>'} {ALPHA:.0%}")
    return lines, ab, aa


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help=f"{QUICK_RUNS:,} experiments per scenario (default)")
    size.add_argument("--full", action="store_true", help=f"{FULL_RUNS:,} experiments per scenario")
    parser.add_argument("--seed", type=int, default=20261202)
    arguments = parser.parse_args(argv)
    runs = FULL_RUNS if arguments.full else QUICK_RUNS
    started = time.monotonic()
    lines, ab, aa = cuped_lines(np.random.default_rng(arguments.seed), runs)
    print("\n".join(lines))
    print(f"({time.monotonic() - started:.0f} s)")
    emit("CUPED (rho 0.6), +10% at 5%: power by day 30, sequential with vs without CUPED",
         ab.cuped_sequential / runs, ab.plain_sequential / runs, None, "")
    emit("CUPED (rho 0.6): A/A false positives, sequential, 30 daily looks", aa.cuped_sequential / runs, None, 1, "",
         measured_ratio=aa.cuped_sequential / runs / ALPHA)
    return 0


if __name__ == "__main__":
    sys.exit(main())
