"""Can a result be acted on while people watch it? Simulated experiments, looked at every day.

Simulates experiments day by day (numpy draws the counts) and asks, at every daily look,
the same statistics functions the /results route calls (`stats.compare_rates`,
`stats.adjust_p_values`); a check at the start confirms that `results.results_view` gives the
very same figures for a simulated experiment.

- A/A: two arms, no difference, baseline rate 1%-20%, 30 daily looks, stopped at the first
  look with p < 0.05. False-positive rate of the fixed-horizon p-value (peeking) vs the
  sequential one. Goal: sequential <= 5%.
- Coverage: the share of experiments whose confidence sequence holds the true uplift at
  every one of the 30 looks (relative and absolute). Goal: >= 95%.
- A/B: +10% relative at a 5% baseline. Power by day 30 and median day of detection:
  sequential (looked at daily) vs fixed horizon (one look, day 30).
- Family-wise error: 4 variants x 3 goals, all null, looked at daily, stopped at the first
  Holm-adjusted sequential p < 0.05. Goal: <= 5%.

    .venv/bin/python bench/decisions.py [--quick | --full] [--seed N]

Error rates are printed with their Monte-Carlo standard error. The JSON lines' `ratio` is
the measured error rate over the nominal 5% (goal: <= 1).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402
from cuped import cuped_lines  # noqa: E402

from chalicelib.ingest.events import PARTICIPATE  # noqa: E402
from chalicelib.reports import results, stats  # noqa: E402
from chalicelib.reports.stats import Proportion  # noqa: E402

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
LOOKS = 30
DAILY_PER_ARM = 1_000


@dataclass(frozen=True)
class Sizes:
    aa: int
    ab: int
    family: int


QUICK = Sizes(aa=2_000, ab=1_000, family=600)
FULL = Sizes(aa=10_000, ab=4_000, family=3_000)


def cumulative_successes(rng: np.random.Generator, rate: float | np.ndarray, experiments: int) -> np.ndarray:
    """(experiments, LOOKS) running totals of successes, DAILY_PER_ARM new participants per day."""
    rates = np.broadcast_to(np.asarray(rate, dtype=float).reshape(-1, 1), (experiments, LOOKS))
    return rng.binomial(DAILY_PER_ARM, rates).cumsum(axis=1)


def trials_at(look: int) -> int:
    return DAILY_PER_ARM * (look + 1)


def standard_error(share: float, runs: int) -> float:
    return math.sqrt(share * (1 - share) / runs)


def contains(interval: tuple[float, float] | None, value: float) -> bool:
    return interval is not None and interval[0] <= value <= interval[1]


# ---------------------------------------------------------------------------
# The simulations
# ---------------------------------------------------------------------------

@dataclass
class TwoArmOutcome:
    fixed_peeking_stopped: int = 0       # stopped at some look with the fixed-horizon p < alpha
    sequential_stopped: int = 0          # stopped at some look with the sequential p < alpha
    fixed_final_rejected: int = 0        # one look at day 30, fixed-horizon p < alpha
    relative_covered: int = 0            # the relative confidence sequence held the truth at every look
    absolute_covered: int = 0
    detection_days: list[int] | None = None


def run_two_arms(rng: np.random.Generator, experiments: int, control_rate: np.ndarray,
                 relative_effect: float) -> TwoArmOutcome:
    variant_rate = control_rate * (1 + relative_effect)
    control = cumulative_successes(rng, control_rate, experiments)
    variant = cumulative_successes(rng, variant_rate, experiments)
    outcome = TwoArmOutcome(detection_days=[])
    for k in range(experiments):
        true_absolute = variant_rate[k] - control_rate[k]
        fixed_stopped = sequential_stopped = False
        relative_held = absolute_held = True
        for look in range(LOOKS):
            n = trials_at(look)
            comparison = stats.compare_rates(Proportion(n, int(control[k, look])), Proportion(n, int(variant[k, look])),
                                             CONFIDENCE)
            if not fixed_stopped and comparison.fixed.p_value < ALPHA:
                fixed_stopped = True
            if not sequential_stopped and comparison.sequential.p_value < ALPHA:
                sequential_stopped = True
                outcome.detection_days.append(look + 1)
            relative_held &= contains(comparison.sequential.relative_ci, relative_effect)
            absolute_held &= contains(comparison.sequential.absolute_ci, true_absolute)
            if look == LOOKS - 1 and comparison.fixed.p_value < ALPHA:
                outcome.fixed_final_rejected += 1
        outcome.fixed_peeking_stopped += fixed_stopped
        outcome.sequential_stopped += sequential_stopped
        outcome.relative_covered += relative_held
        outcome.absolute_covered += absolute_held
    return outcome


@dataclass
class FamilyOutcome:
    holm_sequential: int = 0     # any Holm-adjusted sequential p < alpha at any look
    raw_sequential: int = 0      # any unadjusted sequential p < alpha at any look
    holm_fixed_final: int = 0    # one look at day 30, any Holm-adjusted fixed-horizon p < alpha


def run_family(rng: np.random.Generator, experiments: int, variants: int = 4, goals: int = 3) -> FamilyOutcome:
    outcome = FamilyOutcome()
    rates = rng.uniform(0.01, 0.20, size=(experiments, goals))
    # successes[arm][goal]: (experiments, LOOKS); arm 0 is the control. All arms share each goal's rate.
    successes = [[cumulative_successes(rng, rates[:, g], experiments) for g in range(goals)]
                 for _ in range(variants + 1)]
    for k in range(experiments):
        holm_hit = raw_hit = False
        for look in range(LOOKS):
            n = trials_at(look)
            comparisons = [
                stats.compare_rates(Proportion(n, int(successes[0][g][k, look])),
                                    Proportion(n, int(successes[v][g][k, look])), CONFIDENCE)
                for v in range(1, variants + 1) for g in range(goals)
            ]
            sequential = [c.sequential.p_value for c in comparisons]
            holm_hit |= any(p < ALPHA for p in stats.adjust_p_values(sequential, "holm"))
            raw_hit |= any(p < ALPHA for p in sequential)
            if look == LOOKS - 1:
                fixed = stats.adjust_p_values([c.fixed.p_value for c in comparisons], "holm")
                outcome.holm_fixed_final += any(p < ALPHA for p in fixed)
        outcome.holm_sequential += holm_hit
        outcome.raw_sequential += raw_hit
    return outcome


def check_same_figures_as_results_view(rng: np.random.Generator) -> None:
    """The simulation's figures are the /results view's: one simulated experiment through results.results_view."""
    control, variant = cumulative_successes(rng, np.array([0.05]), 1), cumulative_successes(rng, np.array([0.055]), 1)
    n = trials_at(LOOKS - 1)
    rows = [results.DecisionRow("control", PARTICIPATE, n, 0, 0.0, 0.0), results.DecisionRow("variant", PARTICIPATE, n, 0, 0.0, 0.0),
            results.DecisionRow("control", "buy", int(control[0, -1]), 0, 0.0, 0.0),
            results.DecisionRow("variant", "buy", int(variant[0, -1]), 0, 0.0, 0.0)]
    shown = results.results_view("ns", "exp", rows, control="control", confidence=CONFIDENCE, weights=None)
    arm = shown["goals"][0]["variants"][1]
    simulated = stats.compare_rates(Proportion(n, int(control[0, -1])), Proportion(n, int(variant[0, -1])), CONFIDENCE)
    assert arm["sequential"]["p_value"] == simulated.sequential.p_value
    assert arm["sequential"]["relative_ci"] == list(simulated.sequential.relative_ci)
    assert arm["p_value"] == simulated.fixed.p_value


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def share_line(name: str, count: int, runs: int) -> str:
    share = count / runs
    return f"  {name:<62} {share:7.2%}  (± {standard_error(share, runs):.2%} MC SE, {count}/{runs})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="the sizes make bench runs (default)")
    size.add_argument("--full", action="store_true", help="larger simulations (a few minutes)")
    parser.add_argument("--seed", type=int, default=20260530)
    arguments = parser.parse_args(argv)
    sizes = FULL if arguments.full else QUICK
    rng = np.random.default_rng(arguments.seed)
    started = time.monotonic()
    check_same_figures_as_results_view(rng)
    print(f"{LOOKS} daily looks, {DAILY_PER_ARM:,} new participants per arm per day, confidence {CONFIDENCE:.0%}; "
          f"sequential: {results.SEQUENTIAL_METHOD}, tuned for {stats.SEQUENTIAL_TUNING_PARTICIPANTS:,} participants")

    aa_runs = sizes.aa
    aa = run_two_arms(rng, aa_runs, rng.uniform(0.01, 0.20, aa_runs), 0.0)
    print(f"A/A, baseline 1%-20% ({aa_runs:,} experiments): stopped at the first look with p < {ALPHA:.2f}")
    print(share_line("false positives, fixed-horizon p (peeking daily)", aa.fixed_peeking_stopped, aa_runs))
    print(share_line("false positives, fixed-horizon p (one look at day 30)", aa.fixed_final_rejected, aa_runs))
    print(share_line("false positives, sequential p (peeking daily)", aa.sequential_stopped, aa_runs))
    print(share_line("relative confidence sequence held 0 at all 30 looks", aa.relative_covered, aa_runs))
    print(share_line("absolute confidence sequence held 0 at all 30 looks", aa.absolute_covered, aa_runs))

    ab_runs = sizes.ab
    ab = run_two_arms(rng, ab_runs, np.full(ab_runs, 0.05), 0.10)
    days = ab.detection_days or []
    median_day = statistics.median(days) if days else None
    print(f"A/B, +10% relative at a 5% baseline ({ab_runs:,} experiments)")
    print(share_line("power by day 30, sequential (looked at daily)", ab.sequential_stopped, ab_runs))
    print(share_line("power at day 30, fixed horizon (one look)", ab.fixed_final_rejected, ab_runs))
    print(f"  {'median day of detection, sequential (of those detected)':<62} {median_day if median_day else '-'}"
          f"  (fixed horizon: day {LOOKS})")
    print(share_line("relative confidence sequence held +10% at all 30 looks", ab.relative_covered, ab_runs))

    family_runs = sizes.family
    family = run_family(rng, family_runs)
    print(f"4 variants x 3 goals, all null ({family_runs:,} experiments), looked at daily")
    print(share_line("family-wise error, Holm-adjusted sequential p", family.holm_sequential, family_runs))
    print(share_line("family-wise error, unadjusted sequential p", family.raw_sequential, family_runs))
    print(share_line("family-wise error, Holm-adjusted fixed-horizon p, one look", family.holm_fixed_final, family_runs))
    print("\n".join(cuped_lines(rng, sizes.ab)[0]))  # bench/cuped.py: the CUPED scenario, in a file of its own
    print(f"({time.monotonic() - started:.0f} s)")

    fpr_sequential, fpr_fixed = aa.sequential_stopped / aa_runs, aa.fixed_peeking_stopped / aa_runs
    emit("A/A false positives, 30 daily looks: sequential vs fixed-horizon p", fpr_sequential, fpr_fixed, 1, "",
         measured_ratio=fpr_sequential / ALPHA)
    miscoverage = max(1 - aa.relative_covered / aa_runs, 1 - aa.absolute_covered / aa_runs,
                      1 - ab.relative_covered / ab_runs)
    emit("confidence sequences holding the truth at every look (worst of A/A rel/abs, A/B rel)", 1 - miscoverage,
         None, 1, "", measured_ratio=miscoverage / ALPHA)
    emit("A/B +10% at 5%: power by day 30, sequential vs fixed horizon", ab.sequential_stopped / ab_runs,
         ab.fixed_final_rejected / ab_runs, None, "")
    emit("A/B +10% at 5%: median day of detection, sequential vs fixed horizon", median_day or math.nan, LOOKS, None,
         "days")
    emit("family-wise error, 4 variants x 3 goals, Holm, sequential, daily looks", family.holm_sequential / family_runs,
         family.raw_sequential / family_runs, 1, "", measured_ratio=family.holm_sequential / family_runs / ALPHA)
    return 0


if __name__ == "__main__":
    sys.exit(main())
