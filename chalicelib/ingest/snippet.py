"""The snippets a user pastes into their site: AlephBet's, pointed at this deployment's /track,
and Segment's analytics.js (analytics-next), pointed at its /v1 routes with a namespace's write key.

The /track URL is rebuilt from the request itself: scheme from X-Forwarded-Proto
(API Gateway sets it; `chalice local` does not, and serves plain http), host from the
Host header, and the path prefix the request arrived under. Behind API Gateway the
stage name prefixes every path (`/api/snippet`), but a custom domain may map the API to
another base path or none, and `chalice local` reports no stage and serves at the root.
So the prefix is read off the request: the requested path minus the route's own path.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from string import Template
from typing import Any
from urllib.parse import urlsplit

from chalicelib.ingest.events import DEFAULT_NAMESPACE, MAX_TEXT_LENGTH, FieldError, InvalidEvent, validate_name
from chalicelib.ingest.text_rules import name_rule_broken
from chalicelib.ingest.track import NamespaceOwned

TRACK_PATH = "/track"
SEGMENT_PATH = "/v1"
ALEPHBET_VERSION = "0.27.0"
ANALYTICS_NEXT_VERSION = "1.84.3"
KINDS = ("alephbet", "segment")
WRITE_KEY_PLACEHOLDER = "WRITE_KEY"
_HOST = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
_SCHEMES = ("http", "https")


class InvalidRequest(ValueError):
    """The request's headers cannot describe a URL; `header` names the culprit."""

    def __init__(self, header: str, rule: str):
        self.header = header
        self.rule = rule
        super().__init__(f"the {header} header {rule}")


@dataclass(frozen=True)
class Snippet:
    namespace: str
    track_url: str
    text: str

    def to_json(self) -> dict[str, str]:
        return {"namespace": self.namespace, "track_url": self.track_url, "snippet": self.text}


def _js_string(text: str) -> str:
    """A JavaScript string literal that cannot close the surrounding <script> element."""
    literal = json.dumps(text, ensure_ascii=False)
    return (literal.replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


_TEMPLATE = Template("""<!-- Dalet A/B testing: the AlephBet client reporting to this deployment.
     Host alephbet.min.js yourself (no CDN is assumed): `npm install alephbet@${alephbet_version}`,
     then serve node_modules/alephbet/dist/alephbet.min.js from your site and fix the src below. -->
<script src="/js/alephbet.min.js"></script>
<script>
  var tracking_adapter = new AlephBet.GimelAdapter(${track_url}, ${namespace});
  // Then, for each experiment:
  // var experiment = new AlephBet.Experiment({
  //   name: "button color",
  //   variants: {red: {activate: function () {}}, blue: {activate: function () {}}},
  //   tracking_adapter: tracking_adapter
  // });
  // experiment.add_goal(new AlephBet.Goal("button clicked"));
</script>
""")


def render_snippet(track_url: str, namespace: str) -> str:
    """The HTML to paste into a page: load AlephBet, then send its events to `track_url`."""
    return _TEMPLATE.substitute(alephbet_version=ALEPHBET_VERSION, track_url=_js_string(track_url),
                                namespace=_js_string(namespace))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return value.strip() if value else None


def _scheme(headers: Mapping[str, str]) -> str:
    forwarded = _header(headers, "x-forwarded-proto")
    if forwarded is None:
        return "http"
    scheme = forwarded.split(",")[0].strip().lower()
    if scheme not in _SCHEMES:
        raise InvalidRequest("X-Forwarded-Proto", f"must be http or https (got {forwarded!r})")
    return scheme


def _host(headers: Mapping[str, str]) -> str:
    host = _header(headers, "host")
    if host is None:
        raise InvalidRequest("Host", "is required to build the /track URL")
    if not _HOST.match(host):
        raise InvalidRequest("Host", f"is not a host name with an optional port (got {host!r})")
    return host


def _path_prefix(context: Mapping[str, Any]) -> str:
    """What precedes the route's own path in the URL the browser used.

    API Gateway: path "/api/snippet", resourcePath "/snippet" -> "/api".
    chalice local and chalice.test.Client: path "/snippet" -> "".
    """
    requested = str(context.get("path") or "")
    route = str(context.get("resourcePath") or "")
    if route and requested.endswith(route):
        return requested[: len(requested) - len(route)].rstrip("/")
    stage = context.get("stage")
    return f"/{stage}" if stage else ""


def track_url(headers: Mapping[str, str], context: Mapping[str, Any]) -> str:
    """This deployment's /track URL, as the browser that sent the request reaches it."""
    return f"{_scheme(headers)}://{_host(headers)}{_path_prefix(context)}{TRACK_PATH}"


def snippet_for_request(namespace: str | None, headers: Mapping[str, str], context: Mapping[str, Any],
                        configured_track_url: str | None = None,
                        owned_namespaces: AbstractSet[str] = frozenset()) -> Snippet:
    """Raises InvalidEvent for a bad namespace, NamespaceOwned for a write key's (/track would refuse
    every event), InvalidRequest for unusable headers.

    `configured_track_url` (DALET_TRACK_URL: the front door, a Lambda function URL) wins
    over the URL rebuilt from the request: events then skip API Gateway's per-request price.
    """
    chosen, rule = name_rule_broken(DEFAULT_NAMESPACE if namespace is None else namespace, MAX_TEXT_LENGTH)
    if chosen is None:
        raise InvalidEvent([FieldError("namespace", str(rule))])
    if chosen in owned_namespaces:
        raise NamespaceOwned(chosen)
    url = configured_track_url or track_url(headers, context)
    return Snippet(namespace=chosen, track_url=url, text=render_snippet(url, chosen))


def wants_json(accept: str | None) -> bool:
    return "application/json" in (accept or "").lower()


# ---------- Segment's analytics.js (@segment/analytics-next), script-tag form ----------

class UnknownKind(ValueError):
    def __init__(self, kind: str):
        self.kind = kind
        super().__init__(f"kind must be one of {', '.join(KINDS)} (got {kind!r})")


def chosen_kind(kind: str | None) -> str:
    """`alephbet` when absent; UnknownKind for anything but KINDS."""
    if kind is None:
        return KINDS[0]
    if kind not in KINDS:
        raise UnknownKind(kind)
    return kind


@dataclass(frozen=True)
class SegmentSnippet:
    namespace: str
    api_host: str          # host and path without a scheme, as analytics-next's apiHost wants it
    protocol: str          # "http" locally (make run), "https" deployed
    has_write_key: bool
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": "segment", "namespace": self.namespace, "api_host": self.api_host,
                "protocol": self.protocol, "write_key_included": self.has_write_key, "snippet": self.text}


_SEGMENT_TEMPLATE = Template("""<!-- Dalet via Segment's analytics.js (analytics-next), sending to this deployment's /v1 routes,
     namespace ${namespace_comment}. Host the library yourself: `npm install @segment/analytics-next@${version}`,
     then serve node_modules/@segment/analytics-next/dist/umd/ from your site and fix the src below.
     ${write_key_comment}
     The settings are inline, so the library never asks Segment's CDN for them. apiHost is host and path
     without a scheme; protocol is "http" for `make run` (plain HTTP) and "https" for a deployment. -->
<script src="/js/analytics-next/index.js"></script>
<script>
  var writeKey = ${write_key};
  var apiHost = ${api_host}, protocol = ${protocol};
  var analytics = AnalyticsNext.AnalyticsBrowser.load(
    { writeKey: writeKey, cdnSettings: { integrations: { "Segment.io": { apiKey: writeKey, apiHost: apiHost, protocol: protocol } } } },
    { integrations: { "Segment.io": { apiHost: apiHost, protocol: protocol } } });
  // An exposure, when a user sees a variant (Segment's A/B testing spec), then any later event is a goal:
  // analytics.track("Experiment Viewed", { experiment_id: "checkout", variation_id: "red" });
  // analytics.track("Order Completed", { revenue: 42.5 });
</script>
""")


def render_segment_snippet(api_host: str, protocol: str, namespace: str, write_key: str | None) -> str:
    """The HTML to paste: load analytics-next, then send to `protocol`://`api_host` with `write_key`."""
    if write_key is None:
        key_comment = (f"Replace {WRITE_KEY_PLACEHOLDER} with the namespace's write key (printed by `make run`; "
                       "deployed: DALET_WRITE_KEYS_SECRET), "
                       "or ask /snippet with the x-api-key header to get it filled in.")
    else:
        key_comment = "The write key below is public by design: it can only send events to this namespace."
    return _SEGMENT_TEMPLATE.substitute(
        version=ANALYTICS_NEXT_VERSION, namespace_comment=_html_comment_text(namespace), write_key_comment=key_comment,
        write_key=_js_string(write_key or WRITE_KEY_PLACEHOLDER), api_host=_js_string(api_host),
        protocol=_js_string(protocol))


def _html_comment_text(text: str) -> str:
    """Text that cannot end the surrounding HTML comment."""
    return json.dumps(text, ensure_ascii=True).replace("<", "\\u003c").replace(">", "\\u003e").replace("--", "-\\u002d")


def segment_endpoint(headers: Mapping[str, str], context: Mapping[str, Any],
                     configured_track_url: str | None = None) -> tuple[str, str]:
    """(apiHost, protocol) of this deployment's Segment routes, as the browser reaches them.

    The front door (DALET_TRACK_URL) serves every route under /v1 too, so when it is set its
    host and base path win, as for AlephBet's /track.
    """
    if configured_track_url:
        parts = urlsplit(configured_track_url)
        base = parts.path[: -len(TRACK_PATH)] if parts.path.endswith(TRACK_PATH) else parts.path.rstrip("/")
        return f"{parts.netloc}{base}{SEGMENT_PATH}", parts.scheme
    return f"{_host(headers)}{_path_prefix(context)}{SEGMENT_PATH}", _scheme(headers)


def segment_snippet_for_request(namespace: str, headers: Mapping[str, str], context: Mapping[str, Any],
                                configured_track_url: str | None, write_key: str | None) -> SegmentSnippet:
    """Raises InvalidEvent for a bad namespace, InvalidRequest for unusable headers."""
    chosen = validate_name("namespace", namespace)
    api_host, protocol = segment_endpoint(headers, context, configured_track_url)
    return SegmentSnippet(namespace=chosen, api_host=api_host, protocol=protocol, has_write_key=write_key is not None,
                          text=render_segment_snippet(api_host, protocol, chosen, write_key))
