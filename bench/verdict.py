"""Can the verdict be acted on? Simulated experiments, looked at every day, through the real shaping code.

Each experiment's cumulative counts go through `results.results_view` (sequential tuned to the plan)
and `decision.decide` with the primary goal and guardrails chosen as `verdict.with_verdict` does
(tests/verdict_simulation.py), at every one of 30 daily looks, in both modes:

- A/A: how often any look says "ship" (goal: <= 5% in sequential mode), and "ship" or "stop" (any
  decision at all), at equal, small (20 per arm a day), zero-rate, lopsided 1:99 and 99:1
  allocations and a 0.1% base rate. The fixed mode's figures are printed beside, for contrast.
- A/B: control, a +10% variant and an unchanged one (5% base, 1,000 per arm a day): how often the
  +10% variant is shipped, the unchanged one ever shipped (goal <= 5%); a -10% variant never shipped.
- SRM: people split 52:48 where 50:50 was declared: "dont_trust" at the last look (goal >= 95%).
- Guardrail: +10% on the primary goal, -10% on a guardrail: "stop" at the last look (goal >= 95%),
  and how many experiments said "ship" at some earlier look (before the harm showed).

    .venv/bin/python bench/verdict.py [--quick | --full] [--seed N]

Shares are printed with their Monte-Carlo standard error.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Goal, emit, share_line  # noqa: E402

from tests.verdict_simulation import (ALPHA, GUARDRAIL, PRIMARY, Scenario, Tally,  # noqa: E402
                                      decisions_unchanged_without_bayes, simulate, two_arms)

QUICK, FULL = 300, 2_000
DAILY = 2_000   # new people a day, both arms together





def share_line_66(name: str, count: int, runs: int) -> str:
    return share_line(name, count, runs, width=66)


AA_SCENARIOS = [
    two_arms("equal allocation, 1,000 per arm a day, base 5%", DAILY, 0.05),
    two_arms("small: 20 per arm a day, base 5%", 40, 0.05),
    two_arms("zero rate: nobody converts, 1,000 per arm a day", DAILY, 0.0),
    two_arms("allocation 1:99 (20 vs 1,980 a day), base 5%", DAILY, 0.05, split=(0.01, 0.99)),
    two_arms("allocation 99:1 (1,980 vs 20 a day), base 5%", DAILY, 0.05, split=(0.99, 0.01)),
    two_arms("small and lopsided 1:99 (2 vs 198 a day), base 20%", 200, 0.20, split=(0.01, 0.99)),
    two_arms("low base rate 0.1%, 1,000 per arm a day", DAILY, 0.001),
]

THREE_ARMS = Scenario("control 5%, a +10% variant and an unchanged one, 1,000 per arm a day", 3_000,
                      {"control": 1.0, "better": 1.0, "same": 1.0},
                      {PRIMARY: {"control": 0.05, "better": 0.055, "same": 0.05}})
WORSE = two_arms("a -10% variant, 1,000 per arm a day, base 5%", DAILY, 0.05, -0.10)
SRM = two_arms("split 52:48 where 50:50 was declared, no effect, base 5%", DAILY, 0.05,
               split=(0.52, 0.48), planned=(0.5, 0.5))
HARMED = Scenario("+10% on the primary goal (5%), -10% on a guardrail (20%), 1,000 per arm a day", DAILY,
                  {"control": 0.5, "variant": 0.5},
                  {PRIMARY: {"control": 0.05, "variant": 0.055}, GUARDRAIL: {"control": 0.20, "variant": 0.18}},
                  guardrails=(GUARDRAIL,))


def aa_lines(tally: Tally) -> list[str]:
    runs = tally.experiments
    lines = []
    for mode in ("sequential", "fixed"):
        lines.append(share_line_66(f"{mode}: some look said ship", tally.ever_said("ship", mode=mode), runs))
        decided = sum(count for (said, _), count in tally.ever[mode].items() if said in ("ship", "stop"))
        lines.append(share_line_66(f"{mode}: some look said ship or stop", decided, runs))
    lines.append(share_line_66("some look said dont_trust (the SRM check, looked at daily)",
                            tally.ever_said("dont_trust"), runs))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help=f"{QUICK} experiments per scenario (default)")
    size.add_argument("--full", action="store_true", help=f"{FULL} experiments per scenario (an hour or more)")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--runs", type=int, help="experiments per scenario, overriding --quick/--full")
    arguments = parser.parse_args(argv)
    runs = arguments.runs or (FULL if arguments.full else QUICK)
    rng = np.random.default_rng(arguments.seed)
    started = time.monotonic()
    assert decisions_unchanged_without_bayes(rng, THREE_ARMS, 20), "the verdict read a Bayesian chance"
    goals: list[Goal] = []
    print(f"{runs:,} experiments per scenario, 30 daily looks, confidence {1 - ALPHA:.0%}, sequential tuned to the plan")

    print("A/A: the variant is the control")
    for scenario in AA_SCENARIOS:
        tally = simulate(rng, scenario, runs)
        print(f" {scenario.name}")
        print("\n".join(aa_lines(tally)))
        shipped = tally.ever_said("ship") / runs
        decided = sum(count for (said, _), count in tally.ever["sequential"].items() if said in ("ship", "stop")) / runs
        goals.append(Goal(f"A/A ship, sequential, {scenario.name} (<= 5%)", shipped <= ALPHA, f"{shipped:.2%}",
                          "the sequential p is not anytime-valid here"))
        goals.append(Goal(f"A/A ship or stop, sequential, {scenario.name} (<= 5%)", decided <= ALPHA,
                          f"{decided:.2%}", "the sequential p is not anytime-valid here"))
        if scenario is AA_SCENARIOS[0]:
            emit("A/A, 30 daily looks: some verdict said ship, sequential vs fixed mode", shipped,
                 tally.ever_said("ship", mode="fixed") / runs, 1, "", measured_ratio=shipped / ALPHA)

    three = simulate(rng, THREE_ARMS, runs)
    print(f"A/B: {THREE_ARMS.name}")
    for mode in ("sequential", "fixed"):
        print(share_line_66(f"{mode}: the last look says ship better", three.last_said("ship", "better", mode), runs))
        print(share_line_66(f"{mode}: some look said ship better", three.ever_said("ship", "better", mode), runs))
        print(share_line_66(f"{mode}: some look said ship same (the unchanged one)", three.ever_said("ship", "same", mode),
                         runs))
        print(share_line_66(f"{mode}: some look said stop", three.ever_said("stop", mode=mode), runs))
    power = three.last_said("ship", "better") / runs
    wrong = three.ever_said("ship", "same") / runs
    goals.append(Goal("A/B: the unchanged variant ever shipped, sequential (<= 5%)", wrong <= ALPHA, f"{wrong:.2%}",
                      "the verdict ships a null variant"))
    worse = simulate(rng, WORSE, runs)
    print(f"A/B: {WORSE.name}")
    print(share_line_66("sequential: some look said ship", worse.ever_said("ship"), runs))
    print(share_line_66("sequential: the last look says stop", worse.last_said("stop", "variant"), runs))
    goals.append(Goal("A/B: a -10% variant ever shipped, sequential (== 0)", worse.ever_said("ship") == 0,
                      str(worse.ever_said("ship")), "the verdict ships a worse variant"))

    srm = simulate(rng, SRM, runs)
    print(f"SRM: {SRM.name}")
    print(share_line_66("the last look says dont_trust", srm.last_said("dont_trust"), runs))
    print(share_line_66("some look said ship", srm.ever_said("ship"), runs))
    distrusted = srm.last_said("dont_trust") / runs
    goals.append(Goal("SRM 52:48 at 60,000 participants: dont_trust at the last look (>= 95%)",
                      distrusted >= 1 - ALPHA, f"{distrusted:.2%}", "the SRM check misses the split"))

    harmed = simulate(rng, HARMED, runs)
    print(f"Guardrail: {HARMED.name}")
    print(share_line_66("the last look says stop variant", harmed.last_said("stop", "variant"), runs))
    print(share_line_66("some look said ship variant", harmed.ever_said("ship", "variant"), runs))
    print(share_line_66("said ship at some look, then the last look said stop", harmed.shipped_then_not["sequential"],
                     runs))
    stopped = harmed.last_said("stop", "variant") / runs
    goals.append(Goal("guardrail -10% (20% base): stop at the last look (>= 95%)", stopped >= 1 - ALPHA,
                      f"{stopped:.2%}", "the guardrail harm is missed"))

    print("Goals:")
    for goal in goals:
        print(goal.line(84))
    print(f"({time.monotonic() - started:.0f} s)")
    emit("A/B +10% (1,000 per arm a day, 30 looks): shipped at the last look, sequential", power, None, None, "")
    emit("SRM 52:48: dont_trust at the last look", distrusted, None, None, "")
    emit("guardrail harmed: stop at the last look", stopped, None, None, "")
    return 0 if all(goal.met for goal in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
