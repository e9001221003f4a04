"""Facet counts for a faceted search: the total, and per facet its commonest values.

    >>> with cat.session() as s:
    ...     counts = count_facets(s, EntryFilter(dataset="CIFAR-10", min_top1=90), FACETS)
    >>> counts.total, counts.facets["family"][:3]

Each facet is counted under every filter but its own (picking one data set still lists the
others to switch to). Pre-training data is a set per entry: an entry counts once under each
data set it was pre-trained on, so those counts may add up to more than the total.

Where the filter names facets alone (data set, family, source, licence, task, pre-training
data, input size), the counts come from ``facet_count``, stored at write time
(:mod:`~securitynet.catalogue.facet_table`): a ``GROUP BY`` over one row per combination of
facet values, whatever the number of entries. Where it also names a top-1 or parameter
range, text, an architecture or a number of classes, or the stored counts are stale, they
are counted over the matching entries, from a covering index (migrations 0006, 0008; the
pre-training facet from the key ``entry.pretrain`` keeps on each row): under a data-set
filter, one ``GROUP BY`` over the facets together answers all of them and the total in one
pass over the matching rows (a range of ``ix_entry_browse_dataset``); otherwise each facet
gets a query of its own. Where the values combine into more than :data:`MAX_COMBINATIONS`
groups, SQLite counts each facet on its own instead, so memory stays bounded (PostgreSQL
groups them all: at most the combinations ``facet_count`` holds).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.orm import Session

from securitynet.catalogue import queries
from securitynet.catalogue.facet_table import counts_are_fresh, parse_key
from securitynet.catalogue.models import Entry, FacetCount, FacetPretrain
from securitynet.catalogue.queries import EntryFilter

#: Facets: name -> the entry column counted (and the EntryFilter field of that name).
COLUMN_FACETS: dict[str, Any] = {
    "dataset": Entry.dataset,
    "family": Entry.family,
    "source": Entry.source,
    "licence": Entry.licence,
    "task": Entry.task,
    # the set of pre-training data sets of the entry's chain, as a key: each group counts
    # under every name in its key (see :mod:`~securitynet.catalogue.facet_table`)
    "pretrain": Entry.pretrain,
}
#: Every facet that can be counted (each an EntryFilter field of that name).
FACETS: tuple[str, ...] = tuple(COLUMN_FACETS)
#: Facets whose value is a set (a key naming several values).
SET_FACETS = frozenset({"pretrain"})
MAX_COMBINATIONS = 5000


@dataclasses.dataclass(frozen=True)
class FacetCounts:
    total: int
    facets: dict[str, list[tuple[str, int]]]
    #: whether the stored counts answered (else the entries were counted)
    stored: bool = False


def _top(counter: Counter[Any], limit: int) -> list[tuple[str, int]]:
    ranked = sorted(((v, n) for v, n in counter.items() if v is not None), key=lambda vn: (-vn[1], vn[0]))
    return [(str(v), int(n)) for v, n in ranked[:limit]]


def _without(flt: EntryFilter, facet: str) -> EntryFilter:
    cleared: dict[str, Any] = {facet: None}
    return dataclasses.replace(flt, **cleared)


def answers_from_storage(flt: EntryFilter) -> bool:
    """Whether ``facet_count`` can answer ``flt`` (it names facets alone)."""
    return all(
        f.name in queries.COUNTED_FIELDS or getattr(flt, f.name) is None or getattr(flt, f.name) is False
        for f in dataclasses.fields(flt)
    )


def _group_key(session: Session, column: Any) -> Any:
    """What to ``GROUP BY`` for ``column``. SQLite would read the groups in order through the
    column's own index, a table look-up per matching row (16 s for six counts over a million
    entries); ``+column``, the same value without that path, has it count from a covering
    browse index instead (a temporary b-tree of a few thousand groups)."""
    if session.get_bind().dialect.name == "sqlite" and column is not Entry.dataset:
        # (the data set leads a covering index, which gives its groups in order)
        return literal_column(f"+{column.table.name}.{column.name}")
    return column


def _counter(facet: str, rows: Any, at: int = 0) -> Counter[Any]:
    """Entries per value of ``facet`` from ``(value, ..., count)`` rows (``value`` at
    ``at``); a set-valued facet's key counts under each of its names."""
    counter: Counter[Any] = Counter()
    for row in rows:
        value, n = row[at], int(row[-1])
        if value is None:
            continue
        if facet in SET_FACETS:
            for name in dict.fromkeys(parse_key(value)):
                counter[name] += n
        else:
            counter[value] += n
    return counter


def facet_values(session: Session, flt: EntryFilter, facet: str, *, limit: int) -> list[tuple[str, int]]:
    """The commonest values of ``facet`` among the entries ``flt`` matches when its own
    filter is left out, with their counts (one ``GROUP BY`` over the entries)."""
    others = _without(flt, facet)
    column = COLUMN_FACETS[facet]
    n = func.count().label("n")
    stmt = select(column, n).where(*queries.conditions(others), column.is_not(None))
    stmt = stmt.group_by(_group_key(session, column))
    if facet in SET_FACETS:  # every key, each spelled out into its names (a few hundred)
        return _top(_counter(facet, session.execute(stmt)), limit)
    stmt = stmt.order_by(n.desc(), column).limit(limit)
    return [(str(value), int(count)) for value, count in session.execute(stmt)]


def stored_values(session: Session, flt: EntryFilter, facet: str, *, limit: int) -> list[tuple[str, int]]:
    """:func:`facet_values` from ``facet_count`` (``flt`` must name facets alone)."""
    others = queries.counted_conditions(_without(flt, facet))
    n = func.sum(FacetCount.entries).label("n")
    if facet == "pretrain":
        column: Any = FacetPretrain.dataset
        stmt = select(column, n).join(FacetPretrain, FacetPretrain.pretrain == FacetCount.pretrain).where(*others)
    else:
        column = getattr(FacetCount, facet)
        stmt = select(column, n).where(*others, column.is_not(None))
    stmt = stmt.group_by(column).order_by(n.desc(), column).limit(limit)
    return [(str(value), int(count)) for value, count in session.execute(stmt)]


def count_facets(session: Session, flt: EntryFilter, facets: Sequence[str], *, limit: int) -> FacetCounts:
    """The number of entries ``flt`` matches and the ``limit`` commonest values of each of
    ``facets`` (see the module docstring for how they are counted)."""
    if answers_from_storage(flt) and counts_are_fresh(session.connection()):
        stored = session.scalar(
            select(func.coalesce(func.sum(FacetCount.entries), 0)).where(*queries.counted_conditions(flt))
        )
        found = {f: stored_values(session, flt, f, limit=limit) for f in facets}
        return FacetCounts(total=int(stored or 0), facets=found, stored=True)
    shared = [f for f in facets if f in COLUMN_FACETS and getattr(flt, f) is None]
    out: dict[str, list[tuple[str, int]]] = {}
    total: int | None = None
    # one pass only over one data set's rows (a range of the covering index): over a whole
    # catalogue, grouping by four columns at once costs more than four single GROUP BYs
    if shared and flt.dataset:
        columns = [COLUMN_FACETS[f] for f in shared]
        stmt = (
            select(*columns, func.count())
            .where(*queries.conditions(flt))
            .group_by(*(_group_key(session, c) for c in columns))
        )
        if session.get_bind().dialect.name == "sqlite":
            stmt = stmt.limit(MAX_COMBINATIONS + 1)
        # (no LIMIT on PostgreSQL: it would pick a sorted GROUP BY that can stop early,
        # 3.7 s for 180,000 rows against 0.4 s hashed; the groups are at most the
        # combinations ``facet_count`` holds)
        combos = session.execute(stmt).all()
        if len(combos) <= MAX_COMBINATIONS or session.get_bind().dialect.name != "sqlite":
            total = sum(int(row[-1]) for row in combos)
            for i, facet in enumerate(shared):
                out[facet] = _top(_counter(facet, combos, i), limit)
    if total is None:
        total = queries.count(session, flt)
    for facet in facets:
        if facet not in out:
            out[facet] = facet_values(session, flt, facet, limit=limit)
    return FacetCounts(total=total, facets={f: out[f] for f in facets})


__all__ = [
    "COLUMN_FACETS",
    "FACETS",
    "MAX_COMBINATIONS",
    "SET_FACETS",
    "FacetCounts",
    "answers_from_storage",
    "count_facets",
    "facet_values",
    "stored_values",
]
