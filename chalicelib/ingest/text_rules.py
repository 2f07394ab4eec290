"""The rules a name or id keeps, for AlephBet events and Segment messages alike."""
from __future__ import annotations

import re
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


# Characters a name may not hold because they change how it reads without being seen: an event
# named "refund\u200b-\u202etset" shows as "refund-test". Zero-width joiners (U+200C, U+200D) and
# variation selectors stay allowed: emoji sequences and some scripts (Persian, Indic) need them.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"          # Unicode's Bidi_Control property
INVISIBLE = "\u00ad\u180e\u200b\u2060-\u2064\ufeff"                    # soft hyphen, zero-width space, BOM...
TAGS = "\U000e0000-\U000e007f"                                        # the tag block (invisible ASCII)
NONCHARACTERS = "\ufdd0-\ufdef" + "".join(f"{chr(plane * 0x10000 + 0xfffe)}{chr(plane * 0x10000 + 0xffff)}"
                                          for plane in range(17))   # Unicode 15, section 23.7
_HIDDEN = re.compile(f"[{BIDI_CONTROLS}{INVISIBLE}{TAGS}{NONCHARACTERS}]")
_HIDDEN_KINDS = ((re.compile(f"[{BIDI_CONTROLS}]"), "a bidirectional control character"),
                 (re.compile(f"[{INVISIBLE}]"), "an invisible character"),
                 (re.compile(f"[{TAGS}]"), "a tag character"), (re.compile(f"[{NONCHARACTERS}]"), "a non-character"))
HIDDEN_CHARACTER_RULE = "must not contain invisible, bidirectional control, tag or non-characters"


def hidden_character_rule_broken(name: str) -> str | None:
    """The rule a name breaks by holding a character that changes how it reads unseen, or None."""
    found = _HIDDEN.search(name)
    if found is None:
        return None
    character = found.group()
    kind = next(kind for pattern, kind in _HIDDEN_KINDS if pattern.fullmatch(character))
    return f"{HIDDEN_CHARACTER_RULE} (found U+{ord(character):04X}, {kind})"


def normalized_name(name: str) -> str:
    """The name in Unicode Normalization Form C, so "Café" typed either way is one name (UAX #15).

    An ASCII name, and any name already in NFC, is returned as it is: its event id is unchanged.
    """
    return name if name.isascii() else unicodedata.normalize("NFC", name)


def kept_as_sent(name: str) -> bool:
    """Whether a name that keeps text_rule_broken's rules is kept as sent: nothing hidden, already NFC
    (C calls only)."""
    return name.isascii() or (name.isprintable() and unicodedata.is_normalized("NFC", name))


def name_rule_broken(raw: Any, limit: int) -> tuple[str, None] | tuple[None, str]:
    """A name as Dalet keeps it (NFC) and None, or None and the rule it breaks.

    Names are event, experiment, variant and namespace names (and goals): what reports group
    by and show. Ids (uuid, userId, messageId) keep only text_rule_broken's rules.
    """
    rule = text_rule_broken(raw, limit)
    if rule is None and not raw.isascii():
        if not raw.isprintable():     # every hidden character is a format character or unassigned: never printable
            rule = hidden_character_rule_broken(raw)
        if rule is None and not unicodedata.is_normalized("NFC", raw):
            raw = unicodedata.normalize("NFC", raw)
            rule = text_rule_broken(raw, limit)     # NFC can lengthen a name (rarely)
    return (None, rule) if rule else (raw, None)
