"""One person across Segment ids: the SQL that maps every linked id to the person it belongs to.

Defined once in BigQuery SQL (rendered for DuckDB by queries.render), used by the Segment
experiment queries. The rule (docs/statistics.md, "One person across ids"):

- A link joins two ids: every Segment message carrying both a `userId` and an `anonymousId`
  (identify, and any other call) links the anonymousId to the userId; an `alias` links its
  `previousId` (kept in `properties`) to its `userId`.
- Each id follows one link only, its earliest by the message's time (skew-corrected
  `timestamp`, else arrival), ties broken by the smaller userId: an anonymousId that later
  meets a second userId stays with the first. Deterministic, whatever order rows arrive in.
- Links chain (an anonymousId to a userId that was aliased to a newer userId): an id's person
  is the end of its chain, followed for at most LINK_DEPTH links. A longer chain or a cycle
  (hostile or broken clients) resolves to the smallest id among the first LINK_DEPTH + 1
  steps, so the members of a cycle agree.
- An id without links is a person of its own; a message's id is its userId, else its anonymousId.

Only links in the namespace (and in the report's window of `received_at`) count.
"""
from __future__ import annotations

from chalicelib.reports.queries import Window, window_filter

LINK_DEPTH = 3
MESSAGE_TIME = "COALESCE(e.timestamp, e.received_at)"
MESSAGE_ID = "COALESCE(e.user_id, e.anonymous_id)"
PREVIOUS_ID = "JSON_VALUE(e.properties, '$.previousId')"


def identity_ctes(window: Window) -> str:
    """The CTEs `links`, `first_links` and `people` (id, person), each followed by ",\\n".

    Reads `@namespace` and the window's parameters; `people` lists only ids that have a link.
    """
    return _links(window) + _first_links() + _people()


def catalog_identity_ctes() -> str:
    """`identity_ctes` over all time from the Segment catalog's link rows (chalicelib/storage/segment_catalog.py),
    not from history: each row is a (from_id, to_id) with its earliest time in one batch, and `first_links`
    keeps only each link's earliest time anyway, so the people are the same."""
    return (
        "links AS (\n"
        "  SELECT l.from_id, l.to_id, l.linked_at\n"
        "  FROM {segment_links} AS l\n"
        "  WHERE l.namespace = @namespace\n"
        "),\n"
    ) + _first_links() + _people()


def person_join(alias: str = "e", id_column: str | None = None) -> str:
    """The join that finds a message's person; pair with `person_of`. `id_column`: a column of `alias`
    holding the message's id already (a catalog row), instead of its user and anonymous ids."""
    key = f"{alias}.{id_column}" if id_column else f"COALESCE({alias}.user_id, {alias}.anonymous_id)"
    return f"  LEFT JOIN people AS p_{alias} ON p_{alias}.id = {key}\n"


def person_of(alias: str = "e", id_column: str | None = None) -> str:
    """The person a message (aliased `alias`) belongs to: its id's person, else its id."""
    if id_column:
        return f"COALESCE(p_{alias}.person, {alias}.{id_column})"
    return f"COALESCE(p_{alias}.person, {alias}.user_id, {alias}.anonymous_id)"


def link_messages(source: str, where: str = "", columns: str = "") -> str:
    """A SELECT of the links (from_id, to_id, linked_at) carried by `source`'s messages (aliased `e`) that
    meet `where` (conditions each opening with AND), each with `columns` first.

    The one definition of what links two ids: the reports read it from the events (`identity_ctes`),
    the Segment catalog from each written batch and in its backfill."""
    return (
        f"  SELECT {columns}e.anonymous_id AS from_id, e.user_id AS to_id, {MESSAGE_TIME} AS linked_at\n"
        f"  FROM {source} AS e\n"
        "  WHERE e.user_id IS NOT NULL AND e.anonymous_id IS NOT NULL\n"
        f"    AND e.anonymous_id <> e.user_id{where}\n"
        "  UNION ALL\n"
        f"  SELECT {columns}{PREVIOUS_ID} AS from_id, e.user_id AS to_id, {MESSAGE_TIME} AS linked_at\n"
        f"  FROM {source} AS e\n"
        "  WHERE e.type = 'alias' AND e.user_id IS NOT NULL\n"
        f"    AND {PREVIOUS_ID} <> e.user_id{where}\n"
    )


def link_spans(source: str, where: str = "") -> str:
    """A SELECT of one row per (namespace, from_id, to_id) of `source`'s links with its earliest time: the
    Segment catalog's `segment_links` rows."""
    return (
        "SELECT namespace, from_id, to_id, MIN(linked_at) AS linked_at\n"
        "FROM (\n" + link_messages(source, where, columns="e.namespace, ") + ")\n"
        "GROUP BY namespace, from_id, to_id"
    )


def _links(window: Window) -> str:
    where = "\n    AND e.namespace = @namespace" + window_filter(window)
    return "links AS (\n" + link_messages("{events}", where) + "),\n"


def _first_links() -> str:
    return (
        "first_links AS (\n"
        "  SELECT from_id, to_id\n"
        "  FROM (\n"
        "    SELECT from_id, to_id, ROW_NUMBER() OVER (PARTITION BY from_id ORDER BY linked_at, to_id) AS link_rank\n"
        "    FROM (\n"
        # Every message carrying both ids repeats its link: one row per link (its earliest) before ranking.
        "      SELECT from_id, to_id, MIN(linked_at) AS linked_at FROM links GROUP BY from_id, to_id\n"
        "    )\n"
        "  )\n"
        "  WHERE link_rank = 1\n"
        "),\n"
    )


def _people() -> str:
    """Each linked id's chain, hop by hop: `l1.to_id` is one link away, `l{LINK_DEPTH + 1}` one too many."""
    hops = range(1, LINK_DEPTH + 2)
    joins = "".join(f"  LEFT JOIN first_links AS l{hop} ON l{hop}.from_id = l{hop - 1}.to_id\n" for hop in hops[1:])
    ends = "".join(f"    WHEN l{hop + 1}.to_id IS NULL THEN l{hop}.to_id\n" for hop in hops[:-1])
    path = ", ".join(["l1.from_id"] + [f"l{hop}.to_id" for hop in hops])
    return (
        "people AS (\n"
        "  SELECT l1.from_id AS id, CASE\n"
        f"{ends}"
        f"    ELSE LEAST({path})\n"
        "  END AS person\n"
        "  FROM first_links AS l1\n"
        f"{joins}"
        "),\n"
    )
