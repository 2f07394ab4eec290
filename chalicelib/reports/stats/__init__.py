"""Statistics for experiment reports.

Pure functions over frozen dataclasses, standard library only (this package
ships inside the Lambda package, so no numpy/scipy; see `distributions`).

Conventions:
- one decision statistic per mode. A variant's conversion rate is compared with
  the control's by the continuity-corrected Miettinen-Nurminen score test
  (fixed horizon, `score`): its p-value tests equal rates, and the relative and
  absolute intervals invert the same test for the ratio and the difference, so
  at confidence c, p < 1 - c exactly when an interval excludes 0. Sequential
  mode (`anytime`) is an exact anytime-valid test of which arm the converters
  are in (Lindon & Malek 2022), tuned to the planned participants, joined with
  the fixed horizon's figures so that it never claims more than one look;
- every comparison carries `direction`, the sign of its decision statistic;
- the Bayesian figures use independent Beta(1 + successes, 1 + failures)
  posteriors (a flat prior);
- per-participant values are compared with Welch's t-test (fixed horizon)
  and an asymptotic confidence sequence for the difference of means; constant
  arms give a definite answer, too little data a `reason`;
- many comparisons are corrected with Holm's step-down or the
  Benjamini-Hochberg step-up procedure;
- sample ratio mismatch is a chi-square goodness-of-fit test.

Modules: `rates` (frequentist conversion rates, built on `score` and
`anytime`), `bayes` (chance to beat / be
best), `values` (per-participant values), `sequential` (confidence sequences),
`srm`, `corrections`, `planning` (participants and days to detect an effect),
`estimates` (the shared estimate/decision types) and `distributions` (the
special functions). Callers import from this package.
"""

from chalicelib.reports.stats.bayes import chance_to_be_best, chance_to_beat
from chalicelib.reports.stats.corrections import CORRECTIONS, Correction, adjust_p_values
from chalicelib.reports.stats.estimates import Comparison, Decision, Estimate
from chalicelib.reports.stats.planning import Baseline, Horizon, Plan, PlanRequest, plan
from chalicelib.reports.stats.rates import Proportion, compare_rates, newcombe_difference_ci, rate_ci, rate_p_values
from chalicelib.reports.stats.sequential import (
    SEQUENTIAL_TUNING_PARTICIPANTS,
    sequential_p_value,
    sequential_rho_squared,
)
from chalicelib.reports.stats.srm import SRM_THRESHOLD, SrmResult, srm
from chalicelib.reports.stats.values import MeanDifference, ValueSample, compare_values, mean_difference

__all__ = [
    "CORRECTIONS",
    "SEQUENTIAL_TUNING_PARTICIPANTS",
    "SRM_THRESHOLD",
    "Baseline",
    "Comparison",
    "Correction",
    "Decision",
    "Estimate",
    "Horizon",
    "MeanDifference",
    "Plan",
    "PlanRequest",
    "Proportion",
    "SrmResult",
    "ValueSample",
    "adjust_p_values",
    "chance_to_be_best",
    "chance_to_beat",
    "compare_rates",
    "compare_values",
    "mean_difference",
    "newcombe_difference_ci",
    "plan",
    "rate_ci",
    "rate_p_values",
    "sequential_p_value",
    "sequential_rho_squared",
    "srm",
]
