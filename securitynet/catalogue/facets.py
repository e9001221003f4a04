"""Facet counts for a faceted search: the total, and per facet its commonest values.

    >>> with cat.session() as s:
    ...     counts = count_facets(s, EntryFilter(dataset="CIFAR-10", min_top1=90), FACETS)
    >>> counts.total, counts.facets["family"][:3]

Each facet is counted under every filter but its own (picking one data set still lists the
others to switch to). The facets whose own filter is not set share one filter: under a data-set filter, one
``GROUP BY`` over their columns together answers all of them and the total in a single
pass over the matching rows (with ``ix_entry_browse_dataset`` of migration 0006, a pass
over one range of the index alone); otherwise, and for a facet whose own filter is set,
each facet gets a query of its own. Where the values
combine into more than :data:`MAX_COMBINATIONS` groups (a broad query on a varied
catalogue), each facet is counted on its own instead, so memory stays bounded.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from securitynet.catalogue import queries
from securitynet.catalogue.models import Entry
from securitynet.catalogue.queries import EntryFilter

#: Facets that can be counted: name -> entry column (and EntryFilter field of that name).
FACETS: dict[str, Any] = {
    "dataset": Entry.dataset,
    "family": Entry.family,
    "source": Entry.source,
    "licence": Entry.licence,
}
MAX_COMBINATIONS = 5000


@dataclasses.dataclass(frozen=True)
class FacetCounts:
    total: int
    facets: dict[str, list[tuple[str, int]]]


def _top(counter: Counter[Any], limit: int) -> list[tuple[str, int]]:
    ranked = sorted(((v, n) for v, n in counter.items() if v is not None), key=lambda vn: (-vn[1], vn[0]))
    return [(str(v), int(n)) for v, n in ranked[:limit]]


def facet_values(session: Session, flt: EntryFilter, facet: str, *, limit: int) -> list[tuple[str, int]]:
    """The commonest values of ``facet`` among the entries ``flt`` matches when its own
    filter is left out, with their counts (one ``GROUP BY``)."""
    column = FACETS[facet]
    cleared: dict[str, Any] = {facet: None}
    others = dataclasses.replace(flt, **cleared)
    n = func.count().label("n")
    stmt = (
        select(column, n)
        .where(*queries.conditions(others), column.is_not(None))
        .group_by(column)
        .order_by(n.desc(), column)
        .limit(limit)
    )
    return [(str(value), int(count)) for value, count in session.execute(stmt)]


def count_facets(session: Session, flt: EntryFilter, facets: Sequence[str], *, limit: int) -> FacetCounts:
    """The number of entries ``flt`` matches and the ``limit`` commonest values of each of
    ``facets`` (see the module docstring for how they are counted)."""
    shared = [f for f in facets if getattr(flt, f) is None]
    out: dict[str, list[tuple[str, int]]] = {}
    total: int | None = None
    # one pass only over one data set's rows (a range of the covering index): over a whole
    # catalogue, grouping by four columns at once costs more than four single GROUP BYs
    if shared and flt.dataset:
        columns = [FACETS[f] for f in shared]
        combos = session.execute(
            select(*columns, func.count())
            .where(*queries.conditions(flt))
            .group_by(*columns)
            .limit(MAX_COMBINATIONS + 1)
        ).all()
        if len(combos) <= MAX_COMBINATIONS:
            total = sum(int(row[-1]) for row in combos)
            for i, facet in enumerate(shared):
                counter: Counter[Any] = Counter()
                for row in combos:
                    counter[row[i]] += int(row[-1])
                out[facet] = _top(counter, limit)
        else:
            out.update({f: facet_values(session, flt, f, limit=limit) for f in shared})
    if total is None:
        total = queries.count(session, flt)
    for facet in facets:
        if facet not in out:
            out[facet] = facet_values(session, flt, facet, limit=limit)
    return FacetCounts(total=total, facets={f: out[f] for f in facets})


__all__ = ["FACETS", "MAX_COMBINATIONS", "FacetCounts", "count_facets", "facet_values"]
