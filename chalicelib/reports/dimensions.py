"""What a report may split or measure by: `browser`, or a path into an event's JSON.

A path is `properties.<key>[.<key>...]` or `context.<key>[.<key>...]`, each key an identifier
(letters, digits, underscores; not starting with a digit), at most MAX_DEPTH keys and
MAX_PATH_LENGTH characters. The column comes from this allow-list and the JSONPath
(`$.page.path`) travels as a query parameter: BigQuery takes a JSONPath from a string
literal or a query parameter, and DuckDB's JSON_VALUE takes any string, so nothing a
user sends is ever pasted into SQL text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

BROWSER = "browser"
JSON_COLUMNS = ("properties", "context")
MAX_DEPTH = 8
MAX_PATH_LENGTH = 200
_KEY = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_PATH = re.compile(rf"({'|'.join(JSON_COLUMNS)})((?:\.{_KEY}){{1,{MAX_DEPTH}}})")


class InvalidPath(ValueError):
    """The text is not a path the grammar allows; the message says what is."""


@dataclass(frozen=True)
class Dimension:
    """A column (`browser`) or a JSON column plus the JSONPath into it."""
    column: str
    json_path: str | None = None

    @property
    def name(self) -> str:
        return self.column if self.json_path is None else self.column + self.json_path[1:]

    def sql(self, alias: str, parameter: str) -> str:
        """The SQL expression: the column from the allow-list, the path as `@parameter`."""
        if self.json_path is None:
            return f"{alias}{self.column}"
        return f"JSON_VALUE({alias}{self.column}, @{parameter})"

    def params(self, parameter: str) -> dict[str, str]:
        return {} if self.json_path is None else {parameter: self.json_path}


def parse_dimension(text: str, columns: tuple[str, ...] = JSON_COLUMNS) -> Dimension:
    """`browser`, or a path into one of `columns` (none: `browser` only)."""
    if text == BROWSER:
        return Dimension(BROWSER)
    if not columns:
        raise InvalidPath(f"must be {BROWSER} here (got {_shown(text)})")
    return parse_json_path(text, columns, extra=f"{BROWSER} or ")


def parse_json_path(text: str, columns: tuple[str, ...] = JSON_COLUMNS, extra: str = "") -> Dimension:
    """A `<column>.<key>[.<key>...]` path into one of `columns`."""
    if len(text) > MAX_PATH_LENGTH:
        raise InvalidPath(f"must be at most {MAX_PATH_LENGTH} characters (got {len(text)})")
    match = _PATH.fullmatch(text)
    if match is None or match.group(1) not in columns:
        shapes = " or ".join(f"{column}.<key>" for column in columns)
        raise InvalidPath(f"must be {extra}{shapes}, keys made of letters, digits and underscores, "
                          f"at most {MAX_DEPTH} deep, like {columns[0]}.plan (got {_shown(text)})")
    return Dimension(match.group(1), "$" + match.group(2))


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")
