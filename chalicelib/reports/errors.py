"""The errors a report request can meet, apart from the report modules so the HTTP layer names them
without loading them (a cold /track never loads the report modules)."""
from __future__ import annotations


class BadParameter(ValueError):
    """A request parameter is invalid; `parameter` names it."""

    def __init__(self, parameter: str, message: str):
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


class UnknownExperiment(LookupError):
    """No visible events: never tracked, or deleted with nothing tracked since."""

    def __init__(self, namespace: str, experiment: str):
        super().__init__(f"no experiment {experiment!r} in namespace {namespace!r}")
        self.namespace = namespace
        self.experiment = experiment


class ConflictingHeader(ValueError):
    """A header given several times with different values; `header` names it."""

    def __init__(self, header: str, message: str):
        super().__init__(message)
        self.header = header


class TooManyComparisons(ValueError):
    """An experiment whose variants times goals exceed what one answer computes (`results.MAX_COMPARISONS`)."""

    def __init__(self, experiment: str, variants: int, goals: int, limit: int):
        super().__init__(f"experiment {experiment!r} has {variants:,} variants and {goals:,} goals: "
                         f"{(variants - 1) * goals:,} comparisons, more than the {limit:,} one answer computes")
        self.experiment, self.variants, self.goals, self.limit = experiment, variants, goals, limit
