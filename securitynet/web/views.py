"""What each page shows, read from the catalogue: plain data (dicts and records) that the
templates render and the ``.json`` / ``.csv`` variants serialise. No web types here.

Facet counts follow the faceted-search convention: each facet is counted under every other
filter but its own, so picking one data set still shows the others to switch to
(:mod:`securitynet.catalogue.facets` counts them, in one pass where it can); the app keeps
them per catalogue state, so a page seen again does not count again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text

from securitynet.catalogue import facets, queries
from securitynet.catalogue.filters import DESCENDING_BY_DEFAULT, parse_count
from securitynet.catalogue.models import Entry, SyncRun
from securitynet.catalogue.queries import EntryFilter
from securitynet.errors import InvalidQueryError
from securitynet.web.cache import StateCache, catalogue_state

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from securitynet.catalogue.api import Catalogue

#: Facets shown on the browse page, each a query parameter (and EntryFilter field).
FACETS: tuple[str, ...] = facets.FACETS
#: How a facet is headed on the page.
FACET_TITLES = {"dataset": "data set", "pretrain": "pre-training data"}
#: Range filters: query parameter -> how its text is read.
RANGES: dict[str, Any] = {
    "min_params": parse_count,
    "max_params": parse_count,
    "min_top1": float,
    "max_top1": float,
    "min_input_size": int,
    "max_input_size": int,
}
PAGE_SIZE = 50
FACET_VALUES = 15  # values listed per facet, most entries first
#: Pages go this deep (10,000 entries): a page further down would make the database skip
#: every entry above it (seconds at a million); a narrower query, ``securitynet list`` or
#: SQL reaches the rest.
MAX_PAGE = 200
RELATED = 50  # entries listed as sharing the weights or the architecture


@dataclasses.dataclass(frozen=True)
class BrowseQuery:
    """A browse page's whole query, read from (and written back to) its URL."""

    flt: EntryFilter
    sort: str
    page: int
    params: dict[str, str]  # the non-empty parameters, as given (for links)

    def url_with(self, **changes: str | None) -> dict[str, str]:
        """The parameters with ``changes`` applied (None drops one); the page resets to 1
        unless it is among the changes."""
        params = {k: v for k, v in self.params.items() if k != "page"}
        for key, value in changes.items():
            if value is None:
                params.pop(key, None)
            else:
                params[key] = value
        return params


def parse_browse(args: Mapping[str, str]) -> BrowseQuery:
    """The browse query in ``args`` (a request's query parameters), or InvalidQueryError."""
    params = {k: v.strip() for k, v in args.items() if v and v.strip()}
    values: dict[str, Any] = {name: params[name] for name in FACETS if name in params}
    for name, read in RANGES.items():
        if name in params:
            try:
                values[name] = read(params[name])
            except ValueError as exc:
                raise InvalidQueryError(
                    f"not a number: {name}={params[name]!r}", value=params[name]
                ) from exc
    if "q" in params:
        values["text"] = params["q"]
    sort = params.get("sort", "top1")
    if sort.lstrip("+-") not in queries.SORT_KEYS:
        raise InvalidQueryError(
            f"unknown sort key {sort!r}", hint=f"Sort by one of: {', '.join(queries.SORT_KEYS)}."
        )
    try:
        page = int(params.get("page", "1"))
    except ValueError as exc:
        raise InvalidQueryError(f"not a page number: {params['page']!r}") from exc
    if not 1 <= page <= MAX_PAGE:
        raise InvalidQueryError(
            f"page must be between 1 and {MAX_PAGE}",
            hint=f"Pages go {MAX_PAGE * PAGE_SIZE:,} entries deep: narrow the query with a facet "
            "or a range, or list them all with 'securitynet list --limit 0'.",
            value=page,
        )
    return BrowseQuery(EntryFilter(**values), sort, page, params)


def _sort_order(sort: str) -> tuple[str, bool]:
    key = sort.lstrip("+-")
    if sort.startswith("-"):
        return key, True
    if sort.startswith("+"):
        return key, False
    return key, key in DESCENDING_BY_DEFAULT


def facet_counts(session: Session, flt: EntryFilter, facet: str, *, limit: int = FACET_VALUES) -> list[tuple[str, int]]:
    """The commonest values of ``facet`` among the entries ``flt`` matches when its own
    ``facet`` filter is left out, with their counts."""
    return facets.facet_values(session, flt, facet, limit=limit)


def browse(catalogue: Catalogue, query: BrowseQuery, *, cache: StateCache | None = None) -> dict[str, Any]:
    """One page of entries for ``query``, the total, and the facet counts (those kept in
    ``cache`` while the catalogue's state is unchanged)."""
    key, descending = _sort_order(query.sort)
    with catalogue.session() as s:
        flt = queries.resolve_text(s, query.flt)
        counts = _counts(s, flt, list(FACETS), FACET_VALUES, cache)
        entries = queries.search_page(
            s,
            flt,
            sort=key,
            descending=descending,
            limit=PAGE_SIZE,
            offset=(query.page - 1) * PAGE_SIZE,
        )
    total = counts.total
    pages = max(1, -(-total // PAGE_SIZE))
    return {
        "total": total,
        "page": query.page,
        "pages": min(pages, MAX_PAGE),
        "deeper": pages > MAX_PAGE,  # entries beyond the last page a browse goes to
        "page_size": PAGE_SIZE,
        "entries": [e.model_dump(mode="json") for e in entries],
        "facets": {name: [{"value": v, "count": c} for v, c in values] for name, values in counts.facets.items()},
        "query": query.params,
    }


def _counts(
    session: Session, flt: EntryFilter, names: list[str], limit: int, cache: StateCache | None
) -> facets.FacetCounts:
    if cache is None:
        return facets.count_facets(session, flt, names, limit=limit)
    key = ("facets", flt, tuple(names), limit, catalogue_state(session))
    found = cache.get(key)
    if found is None:
        found = facets.count_facets(session, flt, names, limit=limit)
        cache.put(key, found)
    return found


def home(catalogue: Catalogue, *, cache: StateCache | None = None) -> dict[str, Any]:
    """What the catalogue holds: entries per source, data set and family; the last syncs."""
    with catalogue.session() as s:
        found = _counts(s, EntryFilter(), ["source", "dataset", "family"], 20, cache)
        total = found.total
        counts = {
            name: [{"value": v, "count": c} for v, c in values] for name, values in found.facets.items()
        }
        runs = s.scalars(select(SyncRun).order_by(SyncRun.started_at.desc(), SyncRun.id.desc()).limit(20))
        syncs = [
            {
                "source": r.source,
                "started_at": r.started_at.isoformat() if r.started_at else None,
                "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                "status": r.status,
                "seen": r.seen,
                "added": r.added,
                "updated": r.updated,
                "removed": r.removed,
                "error": r.error,
            }
            for r in runs
        ]
    return {"entries": total, "counts": counts, "syncs": syncs}


def entry(catalogue: Catalogue, entry_id: str) -> dict[str, Any]:
    """Everything about ``entry_id`` (EntryNotFoundError if absent), entries that share its
    weights or architecture, and the lines that load it."""
    record = catalogue.get(entry_id)
    with catalogue.session() as s:
        # each look-up on one indexed column, capped, unordered in SQL: an OR across columns
        # or an ORDER BY over a popular architecture would scan or sort a million rows
        anchor = record.same_weights_as or record.id
        # SQLite's planner, told by ANALYZE that the column is nearly all NULL, would scan
        # the table for any value; the index answers in microseconds
        shared: Any = select(Entry.id).where(Entry.same_weights_as == anchor).limit(RELATED + 1)
        if s.get_bind().dialect.name == "sqlite":
            shared = text(
                "SELECT id FROM entry INDEXED BY ix_entry_same_weights_as "
                "WHERE same_weights_as = :anchor LIMIT :n"
            ).bindparams(anchor=anchor, n=RELATED + 1)
        same_weights = set(s.scalars(shared))
        if record.same_weights_as:
            same_weights.add(record.same_weights_as)
        same_weights.discard(record.id)
        same_arch: set[str] = set()
        if record.architecture:
            same_arch = set(
                s.scalars(
                    select(Entry.id).where(Entry.architecture == record.architecture).limit(RELATED + 1)
                )
            )
            same_arch.discard(record.id)
    data = record.model_dump(mode="json", exclude={"raw"})
    data["boards"] = {
        "datasets": sorted({c.dataset for c in record.claims if c.metric == "top1"}),
        "attacks": sorted({ev.attack for ev in record.evaluations if ev.status == "ok"}),
    }
    data["same_weights"] = sorted(same_weights)[:RELATED]
    data["same_architecture"] = sorted(same_arch)[:RELATED]
    data["python"] = (
        f"import securitynet as sn\nm = sn.load({record.id!r})  # .net, .transform, .labels"
    )
    data["cli"] = f"securitynet load {_shell_quote(record.id)}"
    return data


#: The entry page as CSV: one row per thing said about the entry, with who said it.
FACT_COLUMNS = ("section", "key", "value", "source", "evidence", "recorded_at")
SUMMARY_KEYS = (
    "source", "name", "architecture", "family", "task", "num_classes", "input_size", "params",
    "gflops", "licence", "dataset", "top1", "library", "revision", "year", "venue", "paper",
    "upstream_url", "same_weights_as",
)  # fmt: skip


def entry_facts(data: dict[str, Any]) -> list[list[Any]]:
    """The rows of the entry page's CSV (``data`` as :func:`entry` returns it): the merged
    summary (said by the entry's source), every fact, the training chain, the accuracy
    claims, the files and the evaluation figures."""
    rows: list[list[Any]] = [
        ["summary", key, data[key], data["source"], None, None]
        for key in SUMMARY_KEYS
        if data.get(key) not in (None, "")
    ]
    rows += [["fact", f["key"], f["value"], f["source"], f["evidence"], f["recorded_at"]] for f in data["facts"]]
    rows += [
        ["training", f"{i}:{d['stage']}", d["dataset"], d["source"], d["evidence"], None]
        for i, d in enumerate(data["datasets"], 1)
    ]
    for c in data["claims"]:
        key = f"{c['metric']} {c['dataset']} {c['split']}" + (f" @{c['img_size']}" if c["img_size"] else "")
        rows.append([f"claim:{c['kind']}", key, c["value"], c["source"], c["evidence"], None])
    rows += [["file", f["role"], f["url"], None, f["sha256"] or f["checksum"], None] for f in data["files"]]
    for ev in data["evaluations"]:
        name = ev["attack"] + (f"/{ev['variant']}" if ev["variant"] else "")
        on = f" on {ev['dataset']}" if ev["dataset"] else ""
        rows += [
            ["evaluation", f"{name} {m['metric']}{on}", m["value"], ev["source"], ev.get("evidence"), ev.get("created_at")]
            for m in ev["metrics"]
        ]
    return rows


def sql(catalogue: Catalogue, statement: str) -> dict[str, Any]:
    """``statement`` through the read-only guard of ``securitynet sql`` (its limits too)."""
    result = catalogue.sql(statement)
    return {
        "columns": list(result.columns),
        "rows": [list(row) for row in result.rows],
        "truncated": result.truncated,
        "elapsed": result.elapsed,
    }


def _shell_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
