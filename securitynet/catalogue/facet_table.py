"""Facet counts stored at write time, and whether they are still current.

A browse page counts, under its filter, the entries per data set, family, source, licence,
task and pre-training data set. Counted over the entries, an unfiltered page reads every
row (seconds at a million entries); counted over ``facet_count`` (one row per combination
of those facets that occurs, a few thousand on a million synthetic entries), the same
question is a ``GROUP BY`` over a few thousand rows. :func:`refresh_facet_counts` rebuilds
it after every write of the catalogue API that changed entries, beside the accuracy
statistics; :func:`counts_are_fresh` says whether it still describes the entries.

Freshness is kept by the database itself: migration 0008's triggers empty
``summary_state`` on any insert, delete or facet-column update of ``entry`` or
``entry_dataset``, whoever writes (an interrupted sync, an import, a hand-written
``UPDATE``), and a refresh puts its row back in the same transaction as the new counts.
A reader that finds no row counts over the entries instead: slower, never stale.

Pre-training data is a set per entry (a chain may pre-train on several): ``entry.pretrain``
holds it as one key, its names written ``<length>:<name>`` in name order and concatenated
(two different sets never share a key, whatever a name holds), kept by triggers on
``entry_dataset``; ``facet_pretrain`` lists each key's names.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

log = logging.getLogger(__name__)

#: The ``summary_state`` row that says ``facet_count`` is current.
STATE = "facet_count"
#: The entry columns counted, in ``facet_count`` order (then the key and the flags).
COLUMNS = ("dataset", "family", "source", "licence", "task", "input_size")


def fill_statement() -> str:
    """``INSERT INTO facet_count`` from every entry, in one pass."""
    columns = ", ".join(f"e.{c}" for c in COLUMNS)
    flags = "e.removed_upstream, (e.same_weights_as IS NOT NULL), e.test_net"
    return (
        f"INSERT INTO facet_count ({', '.join(COLUMNS)}, pretrain, removed_upstream, shared_weights, "
        f"test_net, entries) "
        f"SELECT {columns}, e.pretrain, {flags}, COUNT(*) FROM entry AS e "
        f"GROUP BY {columns}, e.pretrain, {flags}"
    )


#: ``INSERT INTO facet_pretrain``: each key with the names it is made of.
PRETRAIN_STATEMENT = (
    "INSERT INTO facet_pretrain (pretrain, dataset) SELECT DISTINCT e.pretrain, d.dataset "
    "FROM entry AS e JOIN entry_dataset AS d ON d.entry_id = e.id AND d.stage = 'pretrain' "
    "WHERE e.pretrain IS NOT NULL"
)


def parse_key(key: str) -> list[str]:
    """The names in a pre-training key (``"12:ImageNet-21k8:LAION-2B"`` -> both names);
    a key that is not one (written by hand) gives the names read before the fault."""
    names: list[str] = []
    at = 0
    while at < len(key):
        colon = key.find(":", at)
        if colon < 0 or not key[at:colon].isdigit():
            break
        end = colon + 1 + int(key[at:colon])
        names.append(key[colon + 1 : end])
        at = end
    return names


def refresh_facet_counts(engine: Engine) -> float:
    """Rebuild ``facet_count`` and ``facet_pretrain`` from the entries in one transaction
    (readers see the old counts or the new ones) and mark them fresh; returns seconds."""
    started = time.perf_counter()
    with engine.begin() as conn:
        rebuild(conn)
    seconds = time.perf_counter() - started
    log.info("facet counts refreshed in %.2f s", seconds)
    return seconds


def rebuild(conn: Connection) -> None:
    """:func:`refresh_facet_counts` inside the caller's transaction (the migration's too)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":  # no entry write may land between the count and the mark
        conn.execute(text("LOCK TABLE entry, entry_dataset IN SHARE MODE"))
    # on SQLite the first write takes the database's write lock: no writer gets in after it
    conn.execute(text("DELETE FROM summary_state WHERE name = :name"), {"name": STATE})
    conn.execute(text("DELETE FROM facet_pretrain"))
    conn.execute(text("DELETE FROM facet_count"))
    conn.execute(text(fill_statement()))
    conn.execute(text(PRETRAIN_STATEMENT))
    conn.execute(
        text("INSERT INTO summary_state (name, refreshed_at) VALUES (:name, CURRENT_TIMESTAMP)"),
        {"name": STATE},
    )


def counts_are_fresh(conn: Connection) -> bool:
    """Whether ``facet_count`` describes the entries as they are now."""
    found = conn.execute(text("SELECT 1 FROM summary_state WHERE name = :name"), {"name": STATE})
    return found.first() is not None


__all__ = [
    "PRETRAIN_STATEMENT",
    "STATE",
    "counts_are_fresh",
    "fill_statement",
    "parse_key",
    "rebuild",
    "refresh_facet_counts",
]
