"""The browser family of a User-Agent string, for breaking results down by browser.

Families: Chrome, Firefox, Safari, Edge, Opera, Samsung Internet, IE, Other, and Bot
(crawlers, and headless browsers driven by automation, whose clicks are not a person's).
No User-Agent at all gives None.

Browsers borrow each other's tokens (every Chromium-based browser says "Chrome" and
"Safari"), so the distinctive tokens are looked for first. The answer depends on the
string alone and User-Agents repeat endlessly, so answers are memoised: /track pays
one dictionary lookup per event.
"""
from __future__ import annotations

from functools import lru_cache

BOT = "Bot"
OTHER = "Other"
FAMILIES = ("Chrome", "Firefox", "Safari", "Edge", "Opera", "Samsung Internet", "IE", OTHER, BOT)
MAX_USER_AGENT_LENGTH = 1024   # longer strings are classified by their first KiB (and still memoised cheaply)

# Plain substring tests (C string search): a regex per family costs a hundred times more on a miss
# of the memo, which a stream of made-up User-Agents would make every request pay.
_BOT_TOKENS = ("bot/", "bot-", "bot;", "bot)", "bot ", "crawler", "spider", "slurp", "headless", "lighthouse",
               "phantomjs", "facebookexternalhit", "python-requests", "curl/", "wget/")
# First match wins: the order is what makes e.g. Edge (which also says Chrome and Safari) come out as Edge.
_FAMILY_TOKENS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Samsung Internet", ("SamsungBrowser/",)),
    ("Opera", ("OPR/", "OPT/", "Opera", "OPiOS/")),
    ("Edge", ("Edg/", "Edge/", "EdgA/", "EdgiOS/")),
    ("IE", ("MSIE ", "Trident/")),
    ("Firefox", ("Firefox/", "FxiOS/")),
    ("Chrome", ("Chrome/", "CriOS/", "Chromium/")),
)


def browser_family(user_agent: str | None) -> str | None:
    """The family of `user_agent` (one of FAMILIES), or None when there is none."""
    if not user_agent or not isinstance(user_agent, str):
        return None
    return _classify(user_agent[:MAX_USER_AGENT_LENGTH])


@lru_cache(maxsize=4096)
def _classify(user_agent: str) -> str:
    lowered = user_agent.lower()
    if lowered.endswith("bot") or any(token in lowered for token in _BOT_TOKENS):
        return BOT
    for family, tokens in _FAMILY_TOKENS:
        if any(token in user_agent for token in tokens):
            return family
    if "AppleWebKit/" in user_agent and ("Version/" in user_agent or "Mobile/" in user_agent):
        return "Safari"      # Safari, and the iOS web views of apps, which leave out the Safari token
    return OTHER
