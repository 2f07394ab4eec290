"""GET /snippet: the AlephBet snippet, pointed at the /track URL the browser reaches this deployment at."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from chalicelib.ingest.snippet import render_snippet
from tests.lambda_events import api_gateway_event
from tests.local_server import local_servers  # noqa: F401  (a fixture)

ADAPTER_CALL = re.compile(r"new AlephBet\.GimelAdapter\((\".*?(?<!\\)\"), (\".*?(?<!\\)\")\)")


def adapter_arguments(snippet: str) -> tuple[str, str]:
    """The track URL and namespace as JavaScript will see them."""
    match = ADAPTER_CALL.search(snippet)
    assert match, snippet
    return json.loads(match.group(1)), json.loads(match.group(2))


class ScriptCounter(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self._inside = False

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts.append("")
            self._inside = True

    def handle_endtag(self, tag):
        if tag == "script":
            self._inside = False

    def handle_data(self, data):
        if self._inside:
            self.scripts[-1] += data


def scripts_in(html: str) -> list[str]:
    parser = ScriptCounter()
    parser.feed(html)
    return parser.scripts


def content_type(response) -> str:
    return {name.lower(): value for name, value in response.headers.items()}["content-type"]


def invoke_deployed(event: dict) -> dict:
    import app as dalet_app

    return dalet_app.app(event, None)


def test_snippet_points_alephbet_at_this_hosts_track_url_with_the_default_namespace(client):
    response = client.http.get("/snippet", headers={"host": "ab.example.com"})

    assert response.status_code == 200
    assert content_type(response) == "text/plain; charset=utf-8"
    assert adapter_arguments(response.body.decode()) == ("http://ab.example.com/track", "alephbet")


def test_snippet_uses_the_requested_namespace(client):
    response = client.http.get("/snippet?namespace=shop-staging", headers={"host": "ab.example.com"})

    assert adapter_arguments(response.body.decode())[1] == "shop-staging"


def test_snippet_follows_the_forwarded_scheme(client):
    response = client.http.get("/snippet", headers={"host": "ab.example.com", "x-forwarded-proto": "https"})

    assert adapter_arguments(response.body.decode())[0] == "https://ab.example.com/track"


def test_snippet_says_where_to_get_the_alephbet_build_and_loads_it_before_the_adapter(client):
    snippet = client.http.get("/snippet", headers={"host": "ab.example.com"}).body.decode()

    assert "npm install alephbet@" in snippet
    assert "node_modules/alephbet/dist/alephbet.min.js" in snippet
    assert snippet.index('<script src="') < snippet.index("new AlephBet.GimelAdapter(")


def test_snippet_as_json_when_asked(client):
    response = client.http.get("/snippet?namespace=shop",
                               headers={"host": "ab.example.com", "accept": "application/json"})

    body = json.loads(response.body)
    assert content_type(response) == "application/json"
    assert body["namespace"] == "shop"
    assert body["track_url"] == "http://ab.example.com/track"
    assert adapter_arguments(body["snippet"]) == ("http://ab.example.com/track", "shop")


def test_behind_api_gateway_the_track_url_carries_the_stage_prefix():
    event = api_gateway_event("GET", "/api/snippet", "/snippet", "api",
                              {"Host": "abc123.execute-api.eu-west-1.amazonaws.com", "X-Forwarded-Proto": "https"},
                              {"namespace": "shop"})

    response = invoke_deployed(event)

    assert response["statusCode"] == 200
    assert adapter_arguments(response["body"]) == (
        "https://abc123.execute-api.eu-west-1.amazonaws.com/api/track", "shop")


@pytest.mark.parametrize("request_path, expected_track_url", [
    ("/snippet", "https://ab.example.com/track"),               # custom domain mapped at its root
    ("/experiments/snippet", "https://ab.example.com/experiments/track"),  # mapped under a base path
])
def test_behind_a_custom_domain_the_track_url_follows_the_path_the_browser_used(request_path, expected_track_url):
    event = api_gateway_event("GET", request_path, "/snippet", "api", {"Host": "ab.example.com", "X-Forwarded-Proto": "https"})

    assert adapter_arguments(invoke_deployed(event)["body"])[0] == expected_track_url


@pytest.mark.parametrize("namespace, rule", [
    ("", "not blank"),
    ("   ", "not blank"),
    ("x" * 257, "at most 256"),
    ("line\nbreak", "control characters"),
])
def test_an_invalid_namespace_is_a_400_naming_it(client, namespace, rule):
    from urllib.parse import quote

    response = client.http.get(f"/snippet?namespace={quote(namespace)}", headers={"host": "ab.example.com"})

    body = json.loads(response.body)
    assert response.status_code == 400
    assert body["errors"][0]["field"] == "namespace"
    assert rule in body["errors"][0]["rule"]


@pytest.mark.parametrize("headers, named", [
    ({}, "Host"),
    ({"host": "evil.example/<script>"}, "Host"),
    ({"host": "ab.example.com", "x-forwarded-proto": "javascript"}, "X-Forwarded-Proto"),
])
def test_headers_that_cannot_make_a_url_are_a_400_naming_the_header(client, headers, named):
    response = client.http.get("/snippet", headers=headers)

    assert response.status_code == 400
    assert json.loads(response.body)["header"] == named


def test_a_hostile_namespace_stays_a_javascript_string_and_cannot_break_out_of_the_script():
    hostile = '"); alert(1); //</script><script>alert(2)</script>\u2028'

    snippet = render_snippet("https://ab.example.com/api/track", hostile)

    scripts = scripts_in(snippet)
    assert len(scripts) == 2
    assert adapter_arguments(scripts[1]) == ("https://ab.example.com/api/track", hostile)


def test_under_chalice_local_the_track_url_has_no_stage_prefix_and_accepts_events(local_servers, tmp_path):
    server = local_servers(tmp_path / "data", env={"DALET_API_KEY": "snippet-test-key"})

    answer = server.request("GET", "/snippet", query={"namespace": "shop"}, headers={"Accept": "application/json"})
    track_url = answer.json()["track_url"]
    tracked = server.request("GET", track_url.removeprefix(server.base_url), query={
        "namespace": "shop", "experiment": "hero", "variant": "a", "event": "participate", "uuid": "u-1"})

    assert track_url == f"http://127.0.0.1:{server.port}/track"
    assert tracked.status == 200


# ---------- kind=segment: Segment's analytics.js (analytics-next) ----------

SEGMENT_SETTINGS = re.compile(r'var writeKey = (".*?(?<!\\)");\n\s*var apiHost = (".*?(?<!\\)"), protocol = (".*?(?<!\\)");')
WRITE_KEY = "snippet-write-key"
REPORT_KEY = "snippet-report-key"


def segment_settings(snippet: str) -> tuple[str, str, str]:
    """The write key, apiHost and protocol as JavaScript will see them."""
    match = SEGMENT_SETTINGS.search(snippet)
    assert match, snippet
    return json.loads(match.group(1)), json.loads(match.group(2)), json.loads(match.group(3))


@pytest.fixture
def keyed(monkeypatch, client):
    monkeypatch.setenv("DALET_WRITE_KEYS", f"{WRITE_KEY}=web,other-key=ios")
    monkeypatch.setenv("DALET_API_KEY", REPORT_KEY)
    from chalicelib import runtime

    runtime.shutdown()       # settings are read again with the keys
    return client


def test_the_segment_snippet_points_analytics_next_at_this_hosts_v1_over_plain_http_locally(keyed):
    response = keyed.http.get("/snippet?kind=segment&namespace=web", headers={"host": "localhost:8000"})

    assert response.status_code == 200
    snippet = response.body.decode()
    assert segment_settings(snippet) == ("WRITE_KEY", "localhost:8000/v1", "http")
    assert "npm install @segment/analytics-next@" in snippet
    assert snippet.index('<script src="') < snippet.index("AnalyticsNext.AnalyticsBrowser.load(")


def test_without_the_report_key_the_segment_snippet_holds_a_placeholder_not_the_write_key(keyed):
    snippet = keyed.http.get("/snippet?kind=segment&namespace=web", headers={"host": "ab.example.com"}).body.decode()

    assert WRITE_KEY not in snippet
    assert "Replace WRITE_KEY" in snippet


def test_with_the_report_key_the_segment_snippet_carries_the_namespaces_write_key(keyed):
    response = keyed.http.get("/snippet?kind=segment&namespace=web",
                              headers={"host": "ab.example.com", "x-api-key": REPORT_KEY, "accept": "application/json"})

    body = json.loads(response.body)
    assert (body["kind"], body["namespace"], body["api_host"], body["protocol"], body["write_key_included"]) == (
        "segment", "web", "ab.example.com/v1", "http", True)
    assert segment_settings(body["snippet"])[0] == WRITE_KEY


def test_a_wrong_report_key_is_403_and_a_namespace_without_a_write_key_is_404_naming_it(keyed):
    wrong = keyed.http.get("/snippet?kind=segment&namespace=web", headers={"host": "ab.example.com", "x-api-key": "nope"})
    keyless = keyed.http.get("/snippet?kind=segment&namespace=shop",
                             headers={"host": "ab.example.com", "x-api-key": REPORT_KEY})

    assert wrong.status_code == 403
    assert keyless.status_code == 404
    assert json.loads(keyless.body)["parameter"] == "namespace"
    assert "'shop'" in json.loads(keyless.body)["error"]


def test_the_segment_snippets_namespace_defaults_to_the_local_write_keys(client):
    response = client.http.get("/snippet?kind=segment", headers={"host": "localhost:8000", "accept": "application/json"})

    assert json.loads(response.body)["namespace"] == "default"


def test_an_unknown_kind_is_a_400_naming_kind(client):
    response = client.http.get("/snippet?kind=gtm", headers={"host": "ab.example.com"})

    assert response.status_code == 400
    assert json.loads(response.body)["parameter"] == "kind"


def test_deployed_the_segment_snippet_uses_https_and_the_stage_prefix():
    event = api_gateway_event("GET", "/api/snippet", "/snippet", "api",
                              {"Host": "abc123.execute-api.eu-west-1.amazonaws.com", "X-Forwarded-Proto": "https"},
                              {"namespace": "web", "kind": "segment"})

    response = invoke_deployed(event)

    assert response["statusCode"] == 200
    assert segment_settings(response["body"])[1:] == ("abc123.execute-api.eu-west-1.amazonaws.com/api/v1", "https")


def test_with_a_front_door_the_segment_snippet_sends_to_its_v1(monkeypatch, client):
    monkeypatch.setenv("DALET_TRACK_URL", "https://xyz.lambda-url.eu-west-1.on.aws/track")
    from chalicelib import runtime

    runtime.shutdown()
    response = client.http.get("/snippet?kind=segment", headers={"host": "ab.example.com"})

    assert segment_settings(response.body.decode())[1:] == ("xyz.lambda-url.eu-west-1.on.aws/v1", "https")


def test_a_hostile_namespace_cannot_close_the_segment_snippets_comment_or_script():
    from chalicelib.ingest.snippet import render_segment_snippet

    hostile = '--> "); alert(1); //</script><script>alert(2)</script>'

    snippet = render_segment_snippet("ab.example.com/v1", "https", hostile, None)

    assert snippet.count("-->") == 1
    assert len(scripts_in(snippet)) == 2
    assert segment_settings(scripts_in(snippet)[1]) == ("WRITE_KEY", "ab.example.com/v1", "https")
