"""One person across Segment ids, checked against a brute force of the documented rule.

Hypothesis generates small histories (anonymous ids, user ids, identify / any-message / alias
links, exposures and goal events); the warehouse's answer (DuckDB, through
`segment_results.experiment_results`) must equal a pure-Python reading of docs/statistics.md
"One person across ids" and segment_identity.py's docstring: participants per variant,
conversions per variant, and `multiple_exposures`. Exposure times are distinct (which of two
simultaneous exposures comes first is not part of the rule); link times may tie.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chalicelib.ingest.events import StoredEvent
from chalicelib.reports import segment_results
from chalicelib.reports.errors import UnknownExperiment
from chalicelib.reports.segment_identity import LINK_DEPTH
from chalicelib.storage.duckdb_warehouse import DuckDBWarehouse
from tests.segment_rows import EXPOSURE, segment_row

GOAL = "Goal"
START = datetime(2024, 5, 1, tzinfo=timezone.utc)
ANONYMOUS = ["a1", "a2", "a3", "a4"]
USERS = ["u1", "u2", "u3", "u4"]


@dataclass(frozen=True)
class Message:
    kind: str                    # "exposure", "goal", "identify", "page", "alias"
    hour: int
    user_id: str | None = None
    anonymous_id: str | None = None
    variant: str | None = None   # exposures
    previous_id: str | None = None  # aliases

    @property
    def id(self) -> str:
        return self.user_id or self.anonymous_id or ""

    def row(self, namespace: str) -> StoredEvent:
        at = START + timedelta(hours=self.hour)
        ids = {"user_id": self.user_id, "anonymous_id": self.anonymous_id, "at": at, "namespace": namespace}
        if self.kind == "exposure":
            return segment_row("track", EXPOSURE, properties={"experiment_id": "exp", "variation_id": self.variant},
                               **ids)
        if self.kind == "goal":
            return segment_row("track", GOAL, **ids)
        if self.kind == "alias":
            return segment_row("alias", None, properties={"previousId": self.previous_id}, **ids)
        return segment_row(self.kind, "Home" if self.kind == "page" else None, **ids)


# --- the documented rule, by brute force -------------------------------------------------------

def links(messages: Sequence[Message]) -> dict[str, tuple[int, str]]:
    """Each id's earliest link (time, userId); ties go to the smaller userId."""
    found: dict[str, list[tuple[int, str]]] = {}
    for message in messages:
        if message.user_id and message.anonymous_id and message.anonymous_id != message.user_id:
            found.setdefault(message.anonymous_id, []).append((message.hour, message.user_id))
        if message.kind == "alias" and message.user_id and message.previous_id \
                and message.previous_id != message.user_id:
            found.setdefault(message.previous_id, []).append((message.hour, message.user_id))
    return {source: min(targets) for source, targets in found.items()}


def person(identifier: str, first_link: Mapping[str, tuple[int, str]]) -> str:
    """The end of the chain, followed for at most LINK_DEPTH links; a longer chain or a cycle: the smallest
    id among the first LINK_DEPTH + 1 steps."""
    path = [identifier]
    while path[-1] in first_link and len(path) <= LINK_DEPTH + 1:
        path.append(first_link[path[-1]][1])
    if len(path) - 1 <= LINK_DEPTH:
        return path[-1]
    return min(path)


@dataclass
class Expected:
    participants: dict[str, int]
    conversions: dict[str, int]
    multiple: int


def brute_force(messages: Sequence[Message]) -> Expected | None:
    first_link = links(messages)
    exposures: dict[str, list[tuple[int, str]]] = {}
    for message in messages:
        if message.kind == "exposure":
            exposures.setdefault(person(message.id, first_link), []).append((message.hour, message.variant or ""))
    if not exposures:
        return None
    expected = Expected({}, {}, 0)
    for who, seen in exposures.items():
        first_hour, variant = min(seen)
        expected.participants[variant] = expected.participants.get(variant, 0) + 1
        expected.multiple += len({shown for _, shown in seen}) > 1
        converted = any(message.kind == "goal" and person(message.id, first_link) == who
                        and message.hour >= first_hour for message in messages)
        expected.conversions[variant] = expected.conversions.get(variant, 0) + converted
    return expected


def warehouse_answer(warehouse: DuckDBWarehouse, namespace: str) -> Expected | None:
    try:
        view = segment_results.experiment_results(warehouse, namespace, "exp", goals=[GOAL])
    except UnknownExperiment:
        return None
    participants = {arm["label"]: arm["participants"] for arm in view["variants"] if arm["participants"]}
    goal = next(goal for goal in view["goals"] if goal["goal"] == GOAL)
    conversions = {arm["label"]: arm["successes"] for arm in goal["variants"] if arm["label"] in participants}
    return Expected(participants, conversions, view["multiple_exposures"])


# --- generated histories -------------------------------------------------------------------------

some_id = st.sampled_from(ANONYMOUS + USERS)
ids_of_a_message = st.one_of(
    st.tuples(st.sampled_from(USERS), st.none()),
    st.tuples(st.none(), st.sampled_from(ANONYMOUS)),
    st.tuples(st.sampled_from(USERS), st.sampled_from(ANONYMOUS)),
)


@st.composite
def histories(draw: st.DrawFn) -> list[Message]:
    messages: list[Message] = []
    exposure_hours = draw(st.lists(st.integers(0, 40), min_size=1, max_size=5, unique=True))
    for hour in exposure_hours:
        user, anonymous = draw(ids_of_a_message)
        messages.append(Message("exposure", hour, user, anonymous, variant=draw(st.sampled_from(["A", "B"]))))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["identify", "page", "alias", "goal", "goal"]))
        hour = draw(st.integers(0, 40))
        if kind in ("identify", "page"):
            messages.append(Message(kind, hour, draw(st.sampled_from(USERS)), draw(st.sampled_from(ANONYMOUS))))
        elif kind == "alias":
            messages.append(Message(kind, hour, draw(st.sampled_from(USERS)), previous_id=draw(some_id)))
        else:
            user, anonymous = draw(ids_of_a_message)
            messages.append(Message(kind, hour, user, anonymous))
    return messages


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    store = DuckDBWarehouse(tmp_path_factory.mktemp("identity") / "warehouse.duckdb")
    yield store
    store.close()


namespaces = (f"history{number}" for number in itertools.count())


A_CYCLE = [Message("exposure", 0, anonymous_id="a1", variant="A"), Message("identify", 1, "u1", "a1"),
           Message("alias", 2, "u2", previous_id="u1"), Message("alias", 3, "u1", previous_id="u2"),
           Message("exposure", 4, "u2", variant="B"), Message("goal", 5, "u2")]
A_LONG_CHAIN = [Message("exposure", 0, anonymous_id="a1", variant="A"), Message("identify", 1, "u1", "a1"),
                Message("alias", 2, "u2", previous_id="u1"), Message("alias", 3, "u3", previous_id="u2"),
                Message("alias", 4, "u4", previous_id="u3"), Message("exposure", 5, "u4", variant="B"),
                Message("goal", 6, "u3"), Message("goal", 7, anonymous_id="a1")]


@settings(max_examples=40, deadline=None)
@given(history=histories())
@example(history=A_CYCLE)
@example(history=A_LONG_CHAIN)
def test_the_warehouse_resolves_people_as_the_documented_rule_does(warehouse, history):
    namespace = next(namespaces)
    warehouse.insert_events([message.row(namespace) for message in history])
    assert warehouse_answer(warehouse, namespace) == brute_force(history)
