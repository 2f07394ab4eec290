"""The browser family of real User-Agent strings (chalicelib/ingest/useragent.py)."""
from __future__ import annotations

import pytest

from chalicelib.ingest.useragent import FAMILIES, browser_family

USER_AGENTS = [
    ("Chrome", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/126.0.0.0 Safari/537.36"),
    ("Chrome", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.122 "
               "Mobile Safari/537.36"),
    ("Chrome", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
               "CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1"),
    ("Firefox", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("Firefox", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                "FxiOS/127.0 Mobile/15E148 Safari/605.1.15"),
    ("Safari", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
               "Version/17.5 Safari/605.1.15"),
    ("Safari", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
               "Version/17.5 Mobile/15E148 Safari/604.1"),
    ("Edge", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
             "Safari/537.36 Edg/126.0.2592.87"),
    ("Edge", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 "
             "Safari/537.36 Edge/18.19582"),
    ("Opera", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 "
              "Safari/537.36 OPR/111.0.0.0"),
    ("Samsung Internet", "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
                         "SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36"),
    ("IE", "Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko"),
    ("IE", "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Trident/4.0)"),
    ("Bot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
    ("Bot", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; "
            "+http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36"),
    ("Bot", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 "
            "Safari/537.36"),
    ("Bot", "curl/8.5.0"),
    ("Other", "analytics-python/2.4.0"),
    ("Other", "Mozilla/5.0"),
]


@pytest.mark.parametrize("family, user_agent", USER_AGENTS, ids=[f"{f}-{n}" for n, (f, _) in enumerate(USER_AGENTS)])
def test_each_browser_is_named_by_its_family(family, user_agent):
    assert browser_family(user_agent) == family


@pytest.mark.parametrize("missing", [None, ""])
def test_no_user_agent_has_no_family(missing):
    assert browser_family(missing) is None


def test_every_family_the_classifier_names_is_listed():
    assert {family for family, _ in USER_AGENTS} == set(FAMILIES)


def test_an_enormous_user_agent_is_classified_by_its_start():
    assert browser_family("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0" + "x" * 100_000) \
        == "Firefox"
