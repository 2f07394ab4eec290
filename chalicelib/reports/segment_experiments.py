"""A Segment experiment's daily series and its goal and value pickers (people resolved across ids).

- daily: the AlephBet daily shape (`daily.daily_view`): each person counted on the UTC day of their
  first exposure, and for a goal on the day of their first such event at or after it.
- goals: [{"goal", "users"}] the track events the exposed people did at or after exposure, most people first.
- values: [{"property": "properties.<path>", "users"}] the numeric properties of those events, found in
  a sample of them (`segment_queries.VALUE_SAMPLE_ROWS`) and counted exactly, most people first.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

from chalicelib.reports import segment_queries
from chalicelib.reports.daily import daily_view
from chalicelib.reports.dimensions import Dimension, InvalidPath, parse_json_path
from chalicelib.reports.errors import UnknownExperiment
from chalicelib.reports.fetch import ReportWarehouse, fetch, target_of
from chalicelib.reports.queries import ALL_TIME, Window
from chalicelib.reports.segment_queries import SOURCE

MAX_VALUE_PROPERTIES = 20
MAX_NUMBERS_PER_DOCUMENT = 200
MAX_CANDIDATE_PATHS = 1000


def experiment_daily(warehouse: ReportWarehouse, namespace: str, experiment: str, *,
                     goals: Sequence[str] | None = None, window: Window = ALL_TIME) -> dict[str, Any]:
    rows = fetch(warehouse, segment_queries.daily_first_seen(target_of(warehouse), namespace, experiment,
                                                             goals=goals, window=window))
    require_exposed(warehouse, namespace, experiment, window, found=bool(rows))
    return {"source": SOURCE, "namespace": namespace, "experiment": experiment, **daily_view(rows)}


def goal_picker(warehouse: ReportWarehouse, namespace: str, experiment: str,
                window: Window = ALL_TIME) -> list[dict[str, Any]]:
    target = target_of(warehouse)
    rows = fetch(warehouse, segment_queries.exposed_goals(target, namespace, experiment, window))
    if not rows:
        require_seen(warehouse, namespace, experiment)
    return [{"goal": row["goal"], "users": int(row["users"])} for row in rows]


def value_picker(warehouse: ReportWarehouse, namespace: str, experiment: str, *,
                 goals: Sequence[str] | None = None, window: Window = ALL_TIME) -> list[dict[str, Any]]:
    target = target_of(warehouse)
    sample = fetch(warehouse, segment_queries.exposed_properties_sample(target, namespace, experiment,
                                                                         goals=goals, window=window))
    if not sample:
        require_seen(warehouse, namespace, experiment)
    paths = numeric_paths(row["properties"] for row in sample)
    if not paths:
        return []
    [counted] = fetch(warehouse, segment_queries.value_property_users(target, namespace, experiment, paths,
                                                                      goals=goals, window=window))
    picked = [{"property": path.name, "users": int(counted[f"users_{index}"])} for index, path in enumerate(paths)]
    return sorted((item for item in picked if item["users"]), key=lambda item: (-item["users"], item["property"]))


def numeric_paths(documents: Iterator[Any] | Sequence[Any], limit: int = MAX_VALUE_PROPERTIES) -> list[Dimension]:
    """Up to `limit` `properties.<path>` paths holding a finite number in any document, most frequent first.

    The work is bounded whatever the events carry: the first MAX_NUMBERS_PER_DOCUMENT numbers of each
    document are read and at most MAX_CANDIDATE_PATHS distinct paths tallied (2,000 sampled events of
    2,500 numeric keys each took 100 s of CPU when every path was tallied and parsed).
    """
    seen: dict[str, int] = {}
    for document in documents:
        parsed = json.loads(document) if isinstance(document, str) else document
        for path in set(islice(_number_paths(parsed, ()), MAX_NUMBERS_PER_DOCUMENT)):
            if path in seen or len(seen) < MAX_CANDIDATE_PATHS:
                seen[path] = seen.get(path, 0) + 1
    found: list[Dimension] = []
    for text in sorted(seen, key=lambda path: (-seen[path], path)):
        if len(found) == limit:
            break
        try:
            found.append(parse_json_path(text, columns=("properties",)))
        except InvalidPath:
            continue    # a key outside the path grammar cannot be asked for as a value
    return found


def _number_paths(value: Any, keys: tuple[str, ...]) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _number_paths(inner, (*keys, str(key)))
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and keys:
        yield "properties." + ".".join(keys)


def require_exposed(warehouse: ReportWarehouse, namespace: str, experiment: str, window: Window,
                    found: bool) -> None:
    """404 unless someone was ever exposed; an empty date window alone is not a 404."""
    if found:
        return
    if window == ALL_TIME:
        raise UnknownExperiment(namespace, experiment)
    require_seen(warehouse, namespace, experiment)


def require_seen(warehouse: ReportWarehouse, namespace: str, experiment: str) -> None:
    """404 unless someone was ever exposed to the experiment."""
    if not fetch(warehouse, segment_queries.experiment_seen(target_of(warehouse), namespace, experiment)):
        raise UnknownExperiment(namespace, experiment)
