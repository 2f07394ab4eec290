"""Bad input on the Segment results, breakdown and event routes: never a 5xx, always JSON."""
from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import quote, urlencode

from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import KEY_HEADER, report_client  # noqa: F401
from tests.segment_rows import exposure, track
from tests.test_report_fuzz import FUZZ, PARAMETER_VALUES, assert_json_and_not_5xx

PATHS = st.sampled_from(["browser", "properties.plan", "context.page.path", "properties.a.b.c.d.e.f.g.h",
                         "properties.a.b.c.d.e.f.g.h.i", "properties.$", "properties.a-b", "properties..a",
                         "traits.plan", "properties.revenue", "properties.\u00e9", "properties.a[0]"])
VALUES = st.one_of(PARAMETER_VALUES, PATHS, st.sampled_from(["segment", "alephbet", "day", "hour", "Buy,Buy",
                                                             "Buy,Experiment Viewed", "Buy, Signed Up"]))
PARAMETERS = ("namespace", "from", "to", "control", "confidence", "weights", "source", "goals", "value",
              "dimension", "event", "interval", "group_by")
ROUTES = st.sampled_from(["/experiments/{e}/results", "/events", "/events/names"])
WHEN = datetime(2024, 5, 1, tzinfo=timezone.utc)


def seeded(client) -> None:
    from chalicelib import runtime

    runtime.warehouse().insert_events([
        exposure("exp", "a", "u1", WHEN, namespace="alephbet", properties={"plan": "pro"}),
        exposure("exp", "b", "u2", WHEN, namespace="alephbet", context={"page": {"path": "/x"}}),
        track("Buy", "u1", WHEN, namespace="alephbet", properties={"revenue": 1e308}),
    ])


@FUZZ
@given(route=ROUTES, experiment=PARAMETER_VALUES.filter(bool),
       query=st.dictionaries(st.sampled_from(PARAMETERS), VALUES, max_size=6))
def test_any_segment_or_event_query_gets_json_and_never_a_5xx(report_client, route, experiment, query):
    if not getattr(report_client, "_seeded", False):
        seeded(report_client)
        report_client._seeded = True
    path = route.format(e=quote(experiment, safe=""))
    reply = report_client.http.get(f"{path}?{urlencode(query)}", headers=KEY_HEADER)
    assert_json_and_not_5xx(reply)
