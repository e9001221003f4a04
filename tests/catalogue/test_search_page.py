"""``queries.search_page`` (the web view's page, asked so that an index gives the order)
returns exactly what ``queries.search`` returns, across the boundary where the sort
column's values end and its NULLs begin."""

from __future__ import annotations

import pytest

from securitynet.catalogue import queries
from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.queries import EntryFilter


@pytest.mark.parametrize("sort", ["top1", "params", "name"])
@pytest.mark.parametrize("descending", [True, False])
def test_every_page_is_the_one_search_gives(catalogue: Catalogue, sort: str, descending: bool) -> None:
    flt = EntryFilter(include_removed=True)
    with catalogue.session() as s:
        everything = queries.search(s, flt, sort=sort, descending=descending)
        values = [getattr(e, sort) for e in everything]
        if sort != "name":  # values, then NULLs: the boundary the pages cross
            assert values[0] is not None and values[-1] is None
        for size in (1, 3, 7):
            for offset in range(0, len(everything) + 2 * size, size):
                page = queries.search_page(s, flt, sort=sort, descending=descending, limit=size, offset=offset)
                assert [e.id for e in page] == [e.id for e in everything[offset : offset + size]], (size, offset)
