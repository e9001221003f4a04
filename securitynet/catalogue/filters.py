"""What a user types, turned into filters and sort orders the queries understand.

    >>> parse_count("25M"), parse_count("1.5B"), parse_count("300k")
    (25000000, 1500000000, 300000)
    >>> parse_sort("top1"), parse_sort("params"), parse_sort("+params"), parse_sort("id")
    (('top1', True), ('params', True), ('params', False), ('id', False))

:func:`check_facets` explains an empty result: a data set, family, architecture or licence
that no entry has is a typo more often than a real question, so it names the close ones.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from securitynet.catalogue.lite import SORT_COLUMNS
from securitynet.errors import InvalidQueryError

if TYPE_CHECKING:  # the parsers run on the CLI's lean path: no SQLAlchemy at import
    from sqlalchemy.orm import Session

    from securitynet.catalogue.queries import EntryFilter

_SUFFIXES = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9, "t": 10**12}
_COUNT = re.compile(r"^\s*(\d+(?:_\d+)*(?:\.\d*)?(?:e[+-]?\d+)?)\s*([kmgbt]?)\s*$", re.IGNORECASE)

#: Sort keys whose natural order is largest first; the others (names) sort A to Z.
DESCENDING_BY_DEFAULT = frozenset(
    {"top1", "params", "gflops", "num_classes", "first_seen", "last_seen"}
)

#: Facets :func:`check_facets` looks up (each an ``entry`` column of the same name).
TEXT_FACETS: tuple[str, ...] = ("dataset", "family", "architecture", "licence")


def parse_count(text: str | int) -> int:
    """A count written as a person would: ``25000000``, ``25_000_000``, ``25M``, ``1.5B``, ``300k``."""
    if isinstance(text, int):
        return text
    match = _COUNT.match(text)
    if not match:
        raise InvalidQueryError(
            f"not a parameter count: {text!r}",
            hint="Write it as 25000000, 25M, 1.5B or 300k.",
            value=text,
        )
    number, suffix = match.groups()
    return round(float(number.replace("_", "")) * _SUFFIXES[suffix.lower()])


def parse_sort(spec: str) -> tuple[str, bool]:
    """``KEY`` in its natural order (numbers largest first, names A to Z); ``-KEY`` descending,
    ``+KEY`` ascending. Returns ``(key, descending)``."""
    text = spec.strip()
    sign, key = (text[0], text[1:]) if text[:1] in "+-" else ("", text)
    key = key.lower()
    if key not in SORT_COLUMNS:
        raise InvalidQueryError(
            f"unknown sort key {spec!r}",
            hint=f"Sort by one of: {', '.join(SORT_COLUMNS)} (prefix - or + to flip).",
            value=spec,
        )
    descending = sign == "-" if sign else key in DESCENDING_BY_DEFAULT
    return key, descending


def check_facets(session: Session, flt: EntryFilter) -> None:
    """Raise :class:`InvalidQueryError` when a text facet of ``flt`` matches no entry at all,
    naming the closest values the catalogue has."""
    from difflib import get_close_matches

    from sqlalchemy import func, select

    from securitynet.catalogue.models import Entry
    from securitynet.catalogue.queries import resolve_dataset, resolve_licence

    for facet in TEXT_FACETS:
        column: Any = getattr(Entry, facet)
        wanted = getattr(flt, facet)
        if not wanted:
            continue
        resolve = {"dataset": resolve_dataset, "licence": resolve_licence}.get(facet, str.strip)
        value = resolve(wanted)
        if (
            session.scalar(select(Entry.id).where(func.lower(column) == value.lower()).limit(1))
            is not None
        ):
            continue
        known = [
            v for v in session.scalars(select(column).distinct().where(column.is_not(None))) if v
        ]
        by_lower = {v.lower(): v for v in known}
        close = [
            by_lower[m]
            for m in get_close_matches(value.lower(), list(by_lower), n=3, cutoff=0.6)
        ]
        hint = (
            f"Did you mean {', '.join(close)}?"
            if close
            else f"'securitynet stats --by {facet}' lists them."
        )
        raise InvalidQueryError(
            f"no entry has {facet} {wanted!r}", hint=hint, facet=facet, value=wanted
        )
