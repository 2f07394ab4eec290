"""Which protocol an experiment was tracked with, when a request does not say (`source=` absent).

AlephBet is read first (Gimel's clients never send `source`, and its check costs one query on
the clustered `experiment` column); if it has no such experiment, Segment is read. The answer
says which it read in `source`; an experiment neither knows is a 404.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.reports import queries
from chalicelib.reports.errors import BadParameter, UnknownExperiment
from chalicelib.reports.fetch import ReportWarehouse, fetch, target_of
from chalicelib.reports.segment_queries import SOURCE as SEGMENT

ALEPHBET = "alephbet"
DETECTION_ORDER = (ALEPHBET, SEGMENT)

Reader = Callable[[], Any]


def detected(chosen: str | None, readers: Mapping[str, Reader]) -> Any:
    """The chosen source's answer, or the first source of DETECTION_ORDER that knows the experiment."""
    if chosen is not None:
        return with_source(chosen, readers[chosen]())
    for source in DETECTION_ORDER[:-1]:
        try:
            return with_source(source, readers[source]())
        except UnknownExperiment:
            continue
    last = DETECTION_ORDER[-1]
    return with_source(last, readers[last]())


def with_source(source: str, answer: Any) -> Any:
    """A document answer leads with `source`; a list (the pickers) is answered as it is."""
    if isinstance(answer, dict):
        return {"source": source, **{key: value for key, value in answer.items() if key != "source"}}
    return answer


def alephbet_reader(warehouse: ReportWarehouse, namespace: str, experiment: str, refusal: BadParameter | None,
                    read: Reader) -> Reader:
    """`read`, unless the request carries Segment-only parameters (`refusal`): then their 400 if the
    experiment is AlephBet's, or unknown here (so detection reads Segment next)."""
    def reader() -> Any:
        if refusal is None:
            return read()
        if fetch(warehouse, queries.experiment_exists(target_of(warehouse), namespace, experiment)):
            raise refusal
        raise UnknownExperiment(namespace, experiment)
    return reader
