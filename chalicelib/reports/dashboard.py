"""The results dashboard: one self-contained HTML page shipped inside the deployment package.

Everything under chalicelib/ is packaged by Chalice, so the page lives next to this module.
Its Content-Security-Policy allows only the page's own inline script (by hash) and
requests to its own origin: even if markup from an experiment's name ever reached the
DOM, an injected handler would not run, and nothing is fetched from elsewhere.
"""
from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from pathlib import Path

PAGE = Path(__file__).resolve().parent / "dashboard.html"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


@lru_cache(maxsize=1)
def page() -> str:
    return PAGE.read_text(encoding="utf-8")


def _script_hashes(html: str) -> list[str]:
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"
        for script in _INLINE_SCRIPT.findall(html)
    ]


@lru_cache(maxsize=1)
def headers() -> dict[str, str]:
    policy = "; ".join([
        "default-src 'none'",
        "script-src " + " ".join(_script_hashes(page())),
        "style-src 'unsafe-inline'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])
    return {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
