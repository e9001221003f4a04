"""Text search over entry ids and architectures, answered from an index on both databases.

A search is a case-insensitive substring of the id or the architecture (``resnet50.a1``,
``vit_base``), taken literally: ``%`` and ``_`` are characters, not wildcards. Said as
``lower(id) LIKE '%...%'`` alone, every search reads every entry (seconds at a million).
Migration 0008 adds a trigram index on each database:

- **SQLite** (3.34 or newer, with FTS5; otherwise no index): ``entry_search``, an FTS5 table with the trigram tokenizer over ``entry``'s
  ``id`` and ``architecture`` (external content: it stores the index, not the text), kept
  current by triggers. A search of three characters or more asks it for candidate rows
  (``entry.rowid IN (... MATCH ...)``); the ``LIKE`` is still checked on each candidate,
  so a row the index names wrongly never shows. The index knows rows by ``rowid``: a
  migration that copies ``entry`` must rebuild it
  (``INSERT INTO entry_search(entry_search) VALUES ('rebuild')``).
- **PostgreSQL**: GIN indexes with ``pg_trgm``'s ``gin_trgm_ops`` on ``lower(id)`` and
  ``lower(architecture)``, which the planner uses for the same ``LIKE`` by itself. Where the
  extension cannot be created (a managed server that refuses it), the migration says so and
  searches read every entry.

:class:`securitynet.catalogue.queries.TextMatch` says it for SQLAlchemy, per database;
:func:`sqlite_match` as SQL text, for the CLI's lean path (this module imports no
SQLAlchemy).
"""

from __future__ import annotations

from typing import Any

#: The SQLite FTS5 table (and the prefix of its shadow tables).
SEARCH_TABLE = "entry_search"
#: PostgreSQL's trigram indexes.
PG_INDEXES = {"ix_entry_search_id": "id", "ix_entry_search_architecture": "architecture"}
#: A trigram index finds substrings of at least this many characters.
MIN_INDEXED = 3


def like_pattern(text: str) -> str:
    """``text`` (lower-cased, stripped) as a ``LIKE`` pattern with ``/`` as the escape."""
    literal = text.strip().lower().replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{literal}%"


def fts_phrase(text: str) -> str:
    """``text`` as one FTS5 phrase (a substring, for the trigram tokenizer)."""
    return '"' + text.strip().replace('"', '""') + '"'


def indexed(text: str) -> bool:
    return len(text.strip()) >= MIN_INDEXED


#: Where the catalogue notes on its engine's dialect whether ``entry_search`` exists
#: (a SQLite built without FTS5 or older than 3.34 has no trigram tokenizer: the
#: migration then makes no index, and searches read every entry).
DIALECT_FLAG = "securitynet_text_index"
HAS_INDEX_SQL = f"SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{SEARCH_TABLE}'"


def sqlite_match(text: str, *, index: bool = True) -> tuple[str, list[str]]:
    """:class:`~securitynet.catalogue.queries.TextMatch` for SQLite as SQL text on ``entry``
    and its arguments (``index``: whether ``entry_search`` exists)."""
    like = "(lower(id) LIKE ? ESCAPE '/' OR lower(architecture) LIKE ? ESCAPE '/')"
    pattern = like_pattern(text)
    if not (index and indexed(text)):
        return like, [pattern, pattern]
    return (
        f"(rowid IN (SELECT rowid FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH ?) AND {like})",
        [fts_phrase(text), pattern, pattern],
    )


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic's ``include_name``: False for the search index's tables and indexes, which
    the migrations make and the ORM does not describe."""
    if type_ == "table" and name and name.startswith(SEARCH_TABLE):
        return False
    return not (type_ == "index" and name in PG_INDEXES)


__all__ = ["DIALECT_FLAG", "HAS_INDEX_SQL", "MIN_INDEXED", "PG_INDEXES", "SEARCH_TABLE", "fts_phrase", "include_name", "indexed", "like_pattern", "sqlite_match"]
