"""What `serve` (`make run`) prints once it listens: where the dashboard is and one thing to try."""
from __future__ import annotations

from urllib.parse import urlencode

WILDCARD_HOSTS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}
FIRST_EVENT = {"experiment": "hello", "variant": "a", "event": "participate",
               "uuid": "newcomer-1"}


def browsable_url(host: str, port: int) -> str:
    """The server's base URL as a browser on this machine opens it (a wildcard bind is reached on loopback)."""
    shown = WILDCARD_HOSTS.get(host, host)
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def banner(base_url: str) -> str:
    """The dashboard's URL with the key hint, and a copy-pasteable first event."""
    track = f"{base_url}/track?{urlencode(FIRST_EVENT)}"
    return "\n".join([
        f"Dashboard: {base_url}/dashboard  (paste the report API key printed above)",
        f"Try it:    curl '{track}'",
        f"           then reload the dashboard: experiment {FIRST_EVENT['experiment']!r} has one participant",
        f"Health:    {base_url}/health    Stop: Ctrl-C",
    ])
