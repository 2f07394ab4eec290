"""The results dashboard: one HTML page and its script, shipped inside the deployment package.

Everything under chalicelib/ is packaged by Chalice, so both files live next to this module.
The page's Content-Security-Policy runs only scripts from its own origin (no inline script,
no inline handler) and sends requests only there: even if markup from an experiment's name
ever reached the DOM, an injected handler would not run, and nothing is fetched from elsewhere.
The page names its script by a digest of the script's content, so browsers may keep the
script for a year: a changed script is a new URL.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

PAGE = Path(__file__).resolve().parent / "dashboard.html"
SCRIPT = Path(__file__).resolve().parent / "dashboard.js"
SCRIPT_TAG = '<script src="dashboard.js"></script>'
SCRIPT_MEDIA_TYPE = "text/javascript; charset=utf-8"


@lru_cache(maxsize=1)
def script() -> str:
    return SCRIPT.read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def page() -> str:
    html = PAGE.read_text(encoding="utf-8")
    if html.count(SCRIPT_TAG) != 1:
        raise RuntimeError(f"{PAGE.name} must load its script exactly once as {SCRIPT_TAG}")
    version = hashlib.sha256(script().encode("utf-8")).hexdigest()[:16]
    return html.replace(SCRIPT_TAG, f'<script src="dashboard.js?v={version}"></script>')


@lru_cache(maxsize=1)
def headers() -> dict[str, str]:
    policy = "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'unsafe-inline'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])
    return {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def script_headers() -> dict[str, str]:
    # nosniff: a browser runs this response as a script only because it is labelled JavaScript.
    return {"Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"}
