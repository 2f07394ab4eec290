"""The rules a name or id keeps, for AlephBet events and Segment messages alike."""
from __future__ import annotations

import unicodedata
from typing import Any

# Control characters, surrogates and line/paragraph separators are never part of a name.
FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
# What a lenient UTF-8 decoder put in place of an undecodable byte sequence.
REPLACEMENT_CHARACTER = "\ufffd"


def text_rule_broken(raw: Any, limit: int) -> str | None:
    """The rule `raw` breaks as a name of at most `limit` characters, or None if it keeps them all."""
    if not isinstance(raw, str):
        return "must be a string"
    if not raw or raw.isspace():
        return f"must be 1-{limit} characters, not blank"
    if len(raw) > limit:
        return f"must be at most {limit} characters (got {len(raw)})"
    if REPLACEMENT_CHARACTER in raw:
        return "must be valid UTF-8 (found an undecodable byte sequence)"
    if raw.isprintable():  # the common case, checked in C: no forbidden category can be present
        return None
    for character in raw:
        if unicodedata.category(character) in FORBIDDEN_CATEGORIES:
            return f"must not contain control characters (found U+{ord(character):04X})"
    return None
