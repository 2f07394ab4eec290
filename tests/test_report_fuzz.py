"""Issue 5's bad input on the report routes: every parameter fuzzed, never a 5xx, always JSON."""
from __future__ import annotations

import json
from urllib.parse import quote, urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import KEY_HEADER, event, report_client, track, wait_until_written  # noqa: F401

PARAMETER_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "0", "1", "-1", "0.95", "1.5", "nan", "inf", "2026-02-30", "2026-01-01",
                     "9999-12-31", "0001-01-01", "red:50,blue:50", "red:0", "red:-1,blue:x", ",", "a,,b",
                     "'; DROP TABLE events; --", '" OR 1=1', "\\", "🧪" * 70, "x" * 300]),
)
PARAMETERS = ("namespace", "scope", "from", "to", "control", "confidence", "weights", "experiment")
ROUTES = st.sampled_from(["/experiments", "/experiments/{e}", "/experiments/{e}/results", "/experiments/{e}/daily"])
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def seeded(client) -> None:
    track(client, *[event("exp", variant, name, f"{variant}-{n}")
                    for variant in ("red", "blue") for n in range(4) for name in ("participate", "click")])
    wait_until_written()


def assert_json_and_not_5xx(reply) -> None:
    assert reply.status_code < 500, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    answer = json.loads(reply.body)
    if reply.status_code >= 400:
        assert answer["error"]


@FUZZ
@given(route=ROUTES, experiment=PARAMETER_VALUES.filter(bool),
       query=st.dictionaries(st.sampled_from(PARAMETERS), PARAMETER_VALUES, max_size=5))
def test_any_report_query_gets_json_and_never_a_5xx(report_client, route, experiment, query):
    if not getattr(report_client, "_seeded", False):
        seeded(report_client)
        report_client._seeded = True
    path = route.format(e=quote(experiment, safe=""))
    reply = report_client.http.get(f"{path}?{urlencode(query)}", headers=KEY_HEADER)
    assert_json_and_not_5xx(reply)


@FUZZ
@given(namespace=PARAMETER_VALUES, experiment=PARAMETER_VALUES.filter(bool))
def test_any_delete_gets_json_and_never_a_5xx(report_client, namespace, experiment):
    reply = report_client.http.delete(f"/experiments/{quote(experiment, safe='')}?{urlencode({'namespace': namespace})}",
                                      headers=KEY_HEADER)
    assert_json_and_not_5xx(reply)
    reply = report_client.http.delete(f"/delete?{urlencode({'namespace': namespace, 'experiment': experiment})}",
                                      headers=KEY_HEADER)
    assert_json_and_not_5xx(reply)


@FUZZ
@given(key=st.text(max_size=80))
def test_any_api_key_but_the_right_one_is_refused_with_json(report_client, key):
    reply = report_client.http.get("/experiments", headers={"x-api-key": key} if key else {})
    if key == KEY_HEADER["x-api-key"]:
        assert reply.status_code == 200
    else:
        assert reply.status_code in (401, 403)
        assert json.loads(reply.body)["error"]
