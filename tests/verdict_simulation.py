"""Simulated experiments judged by the real verdict: counts -> `results.results_view` -> `decision.decide`.

Shared by tests/test_verdict_simulation.py (short, seeded) and bench/verdict.py (long runs). Each
simulated experiment gets `daily_total` new people a day, assigned to arms at random by `split` (so
the participant counts wobble as a real split does, and the SRM check sees that wobble); each new
participant converts on each goal with their arm's rate. At every daily look the cumulative counts
are shaped by `results_view` (tuned to the plan: `planned_participants` = the experiment's planned
total) and the primary goal and guardrails are chosen and ordered as `verdict.with_verdict` does,
then `decision.decide` gives the verdict in both modes.

The Bayesian chances (`stats.chance_to_beat`, `stats.chance_to_be_best`) cost two thirds of a
results view and the verdict never reads them: `without_bayesian_chances` replaces them by None
while simulating (`decisions_unchanged_without_bayes` checks that the verdict is the same either way).
"""
from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chalicelib.ingest.events import PARTICIPATE
from chalicelib.reports import decision, ordering, results, stats

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
PRIMARY = "buy"
GUARDRAIL = "keep"
MODES: tuple[decision.Mode, ...] = ("sequential", "fixed")


@dataclass(frozen=True)
class Scenario:
    """One kind of experiment. `rates[goal][arm]`; `split` is how people are really assigned,
    `planned_split` what the experimenter declared (the view's `weights`; None: an equal split)."""
    name: str
    daily_total: int
    split: Mapping[str, float]
    rates: Mapping[str, Mapping[str, float]]
    looks: int = 30
    guardrails: tuple[str, ...] = ()
    planned_split: Mapping[str, float] | None = None

    @property
    def labels(self) -> list[str]:
        return list(self.split)

    @property
    def planned_participants(self) -> int:
        return self.daily_total * self.looks


@dataclass
class Tally:
    """Per mode: experiments where some look said each (verdict, variant); the last look's verdicts;
    and experiments that said "ship" at some look before their last look said "stop" or "dont_trust"."""
    experiments: int = 0
    ever: dict[str, Counter[tuple[str, str | None]]] = field(
        default_factory=lambda: {mode: Counter() for mode in MODES})
    last: dict[str, Counter[tuple[str, str | None]]] = field(
        default_factory=lambda: {mode: Counter() for mode in MODES})
    shipped_then_not: dict[str, int] = field(default_factory=lambda: {mode: 0 for mode in MODES})

    def ever_said(self, verdict: str, variant: str | None = None, mode: str = "sequential") -> int:
        return sum(count for (said, label), count in self.ever[mode].items()
                   if said == verdict and (variant is None or label == variant))

    def last_said(self, verdict: str, variant: str | None = None, mode: str = "sequential") -> int:
        return sum(count for (said, label), count in self.last[mode].items()
                   if said == verdict and (variant is None or label == variant))


@contextlib.contextmanager
def without_bayesian_chances() -> Iterator[None]:
    saved = stats.chance_to_beat, stats.chance_to_be_best
    stats.chance_to_beat = lambda control, variant: None  # type: ignore[assignment]
    stats.chance_to_be_best = lambda arms: {label: None for label in arms}  # type: ignore[assignment]
    try:
        yield
    finally:
        stats.chance_to_beat, stats.chance_to_be_best = saved


def daily_counts(rng: np.random.Generator, scenario: Scenario, experiments: int
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Cumulative participants (experiments, looks, arms) and, per goal, cumulative successes alike."""
    shares = np.array([scenario.split[label] for label in scenario.labels], dtype=float)
    new = rng.multinomial(scenario.daily_total, shares / shares.sum(), size=(experiments, scenario.looks))
    successes = {}
    for goal, by_arm in scenario.rates.items():
        rates = np.array([by_arm[label] for label in scenario.labels], dtype=float)
        successes[goal] = rng.binomial(new, rates).cumsum(axis=1)
    return new.cumsum(axis=1), successes


def view_at(scenario: Scenario, participants: np.ndarray, successes: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The results view of one experiment's cumulative counts at one look (1-d arrays over arms)."""
    rows = [results.DecisionRow(label, PARTICIPATE, int(participants[arm]), 0, 0.0, 0.0)
            for arm, label in enumerate(scenario.labels)]
    rows += [results.DecisionRow(label, goal, int(counts[arm]), 0, 0.0, 0.0)
             for goal, counts in successes.items() for arm, label in enumerate(scenario.labels)]
    return results.results_view("ns", "exp", rows, control="control", confidence=CONFIDENCE,
                                weights=scenario.planned_split, planned_participants=scenario.planned_participants)


def verdicts(scenario: Scenario, view: dict[str, Any], look: int) -> dict[str, dict[str, Any]]:
    """`verdict.with_verdict`'s steps without its warehouse: today's traffic is the simulation's."""
    primary = ordering.choose_primary(view["goals"], PRIMARY, scenario.guardrails)
    ordering.check_guardrails(view["goals"], scenario.guardrails, primary)
    ordering.order_view(view, primary, scenario.guardrails)
    per_day = sum(variant["participants"] for variant in view["variants"]) / (look + 1)
    return {mode: decision.decide(view, primary=primary, guardrails=scenario.guardrails, mode=mode,
                                  participants_per_day=per_day) for mode in MODES}


def simulate(rng: np.random.Generator, scenario: Scenario, experiments: int) -> Tally:
    participants, successes = daily_counts(rng, scenario, experiments)
    tally = Tally(experiments=experiments)
    with without_bayesian_chances():
        for k in range(experiments):
            said: dict[str, set[tuple[str, str | None]]] = {mode: set() for mode in MODES}
            for look in range(scenario.looks):
                view = view_at(scenario, participants[k, look], {goal: s[k, look] for goal, s in successes.items()})
                for mode, answer in verdicts(scenario, view, look).items():
                    said[mode].add((answer["verdict"], answer["variant"]))
                    if look == scenario.looks - 1:
                        tally.last[mode][answer["verdict"], answer["variant"]] += 1
                        shipped = any(verdict == "ship" for verdict, _ in said[mode])
                        tally.shipped_then_not[mode] += shipped and answer["verdict"] in ("stop", "dont_trust")
            for mode in MODES:
                tally.ever[mode].update(said[mode])
    return tally


def decisions_unchanged_without_bayes(rng: np.random.Generator, scenario: Scenario, experiments: int) -> bool:
    """The verdict at the last look is the same with and without the Bayesian chances computed."""
    participants, successes = daily_counts(rng, scenario, experiments)
    last = scenario.looks - 1
    for k in range(experiments):
        counts = {goal: s[k, last] for goal, s in successes.items()}
        with without_bayesian_chances():
            quick = verdicts(scenario, view_at(scenario, participants[k, last], counts), last)
        whole = verdicts(scenario, view_at(scenario, participants[k, last], counts), last)
        if quick != whole:
            return False
    return True


def two_arms(name: str, daily_total: int, control_rate: float, relative_effect: float = 0.0, *,
             split: tuple[float, float] = (0.5, 0.5), planned: tuple[float, float] | None = None,
             looks: int = 30) -> Scenario:
    """Control against one variant on the primary goal; `planned` is the declared split (default: the true one)."""
    shares = {"control": split[0], "variant": split[1]}
    declared = planned or split
    planned_split = None if declared[0] == declared[1] else {"control": declared[0], "variant": declared[1]}
    return Scenario(name, daily_total, shares,
                    {PRIMARY: {"control": control_rate, "variant": control_rate * (1 + relative_effect)}},
                    looks=looks, planned_split=planned_split)
