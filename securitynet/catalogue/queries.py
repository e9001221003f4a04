"""Typed lookups and faceted searches over the catalogue."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    column,
    func,
    literal_column,
    or_,
    select,
    table,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.types import Boolean

from securitynet.annotate.datasets import canonical_dataset
from securitynet.annotate.licences import spdx_licence
from securitynet.catalogue import textsearch
from securitynet.catalogue.models import Entry, EntryDataset, Evaluation, FacetCount, FacetPretrain
from securitynet.errors import EntryNotFoundError, InvalidQueryError
from securitynet.ids import normalise_source, parse_id
from securitynet.records import (
    ANNOTATED_FIELDS,
    UPSTREAM_FIELDS,
    AccuracyClaim,
    CatalogueEntry,
    DatasetLink,
    EntrySummary,
    EvaluationRecord,
    FactRecord,
    FileRef,
    LoadSpec,
    Stage,
)

#: Sort keys a user may name, and the column each sorts on.
SORT_KEYS: dict[str, Any] = {
    "top1": Entry.top1,
    "params": Entry.params,
    "gflops": Entry.gflops,
    "id": Entry.id,
    "name": Entry.name,
    "source": Entry.source,
    "dataset": Entry.dataset,
    "family": Entry.family,
    "num_classes": Entry.num_classes,
    "first_seen": Entry.first_seen,
    "last_seen": Entry.last_seen,
}

SUMMARY_COLUMNS = tuple(f for f in EntrySummary.model_fields)


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """A faceted search. Every field is optional; all given ones must hold."""

    source: str | None = None
    dataset: str | None = None
    family: str | None = None
    architecture: str | None = None
    licence: str | None = None
    num_classes: int | None = None
    min_params: int | None = None
    max_params: int | None = None
    min_top1: float | None = None
    max_top1: float | None = None
    task: str | None = None
    #: a pre-training data set anywhere in the entry's training chain
    pretrain: str | None = None
    min_input_size: int | None = None
    max_input_size: int | None = None
    text: str | None = None
    #: only these entry ids (what :func:`resolve_text` turns a narrow text search into)
    among: frozenset[str] | None = None
    include_removed: bool = False
    #: every entry that loads a weight file another entry also loads (default: one per file)
    include_shared_weights: bool = False
    #: nets a library registers for its own tests (timm's ``test_*``)
    include_test_nets: bool = False

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def resolve_dataset(name: str) -> str:
    """The stored data-set name for what a user typed (canonical when we know it)."""
    return canonical_dataset(name) or name.strip()


def resolve_licence(name: str) -> str:
    """The stored licence for what a user typed (``mit`` -> ``MIT``; see :mod:`~securitynet.annotate.licences`)."""
    return spdx_licence(name) or name.strip()


def conditions(flt: EntryFilter) -> list[ColumnElement[bool]]:
    """The WHERE conditions of ``flt`` on ``entry``."""
    return _conditions(flt)


#: Fields the stored facet counts (``facet_count``) can answer: the others (top-1 and
#: parameter ranges, text, architecture, classes) need the entries themselves.
COUNTED_FIELDS = frozenset(
    {"source", "dataset", "family", "licence", "task", "pretrain", "min_input_size", "max_input_size",
     "include_removed", "include_shared_weights", "include_test_nets"}
)  # fmt: skip


def counted_conditions(flt: EntryFilter) -> list[ColumnElement[bool]]:
    """The WHERE conditions of ``flt`` on ``facet_count`` (each row a combination of facet
    values with its number of entries); ``flt`` may set only :data:`COUNTED_FIELDS`."""
    asked = {f.name for f in fields(flt) if getattr(flt, f.name) is not None and getattr(flt, f.name) is not False}
    if not asked <= COUNTED_FIELDS:
        raise ValueError(f"facet_count cannot answer {sorted(asked - COUNTED_FIELDS)}")
    cond = _shared_conditions(flt, FacetCount)
    if flt.pretrain:
        keys = select(FacetPretrain.pretrain).where(
            _dataset_match(FacetPretrain.dataset, flt.pretrain)
        )
        cond.append(FacetCount.pretrain.in_(keys))
    if not flt.include_shared_weights:
        cond.append(FacetCount.shared_weights.is_(False))
    return cond


def _dataset_match(column: Any, name: str) -> ColumnElement[bool]:
    """``column`` names the data set a user typed (its canonical name when we know it)."""
    wanted = resolve_dataset(name)
    if canonical_dataset(name):
        return column == wanted
    return func.lower(column) == wanted.lower()


def _shared_conditions(flt: EntryFilter, table: Any) -> list[ColumnElement[bool]]:
    """The conditions ``entry`` and ``facet_count`` share (their columns have one name)."""
    cond: list[ColumnElement[bool]] = []
    if flt.source:
        cond.append(table.source == normalise_source(flt.source))
    if flt.dataset:
        cond.append(_dataset_match(table.dataset, flt.dataset))
    for name in ("family", "task"):
        if wanted := getattr(flt, name):
            cond.append(func.lower(getattr(table, name)) == wanted.strip().lower())
    if flt.licence:
        cond.append(func.lower(table.licence) == resolve_licence(flt.licence).lower())
    if flt.min_input_size is not None:
        cond.append(table.input_size >= flt.min_input_size)
    if flt.max_input_size is not None:
        cond.append(table.input_size <= flt.max_input_size)
    if not flt.include_removed:
        cond.append(table.removed_upstream.is_(False))
    if not flt.include_test_nets:
        cond.append(table.test_net.is_(False))
    return cond


def _conditions(flt: EntryFilter) -> list[ColumnElement[bool]]:
    cond = _shared_conditions(flt, Entry)
    if flt.architecture:
        cond.append(func.lower(Entry.architecture) == flt.architecture.strip().lower())
    if flt.pretrain:
        pretrained = select(EntryDataset.entry_id).where(
            EntryDataset.stage == Stage.PRETRAIN, _dataset_match(EntryDataset.dataset, flt.pretrain)
        )
        cond.append(Entry.id.in_(pretrained))
    if flt.num_classes is not None:
        cond.append(Entry.num_classes == flt.num_classes)
    if flt.min_params is not None:
        cond.append(Entry.params >= flt.min_params)
    if flt.max_params is not None:
        cond.append(Entry.params <= flt.max_params)
    if flt.min_top1 is not None:
        cond.append(Entry.top1 >= flt.min_top1)
    if flt.max_top1 is not None:
        cond.append(Entry.top1 <= flt.max_top1)
    if flt.text and flt.text.strip():
        cond.append(TextMatch(Entry.id, Entry.architecture, flt.text))
    if flt.among is not None:
        cond.append(Entry.id.in_(sorted(flt.among)))
    if not flt.include_shared_weights:
        cond.append(Entry.same_weights_as.is_(None))
    return cond


class TextMatch(ColumnElement[bool]):
    """The entries whose id or architecture contain ``text``: from the trigram index where
    the database has one (:mod:`~securitynet.catalogue.textsearch`), compiled per database."""

    inherit_cache = False
    type = Boolean()
    # a predicate: put in a WHERE as it is (else SQLite gets "(...) = 1", which no index
    # answers: a scan of every entry)
    _is_implicitly_boolean = True

    def __init__(self, id_column: Any, architecture_column: Any, text: str) -> None:
        self.id_column = id_column
        self.architecture_column = architecture_column
        self.text = text

    def condition(self) -> ColumnElement[bool]:
        """The ``LIKE`` on both columns, in parentheses (it is compiled on its own, then
        put among the other conditions)."""
        pattern = textsearch.like_pattern(self.text)
        return or_(
            func.lower(self.id_column).like(pattern, escape="/"),
            func.lower(self.architecture_column).like(pattern, escape="/"),
        ).self_group()


@compiles(TextMatch)
def _compile_like(element: TextMatch, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.condition(), **kw))


@compiles(TextMatch, "sqlite")
def _compile_sqlite(element: TextMatch, compiler: Any, **kw: Any) -> str:
    if not (getattr(compiler.dialect, textsearch.DIALECT_FLAG, False) and textsearch.indexed(element.text)):
        return str(compiler.process(element.condition(), **kw))
    rowid: Any = literal_column(f"{element.id_column.table.name}.rowid")
    candidates = and_(rowid.in_(_fts_rowids(element.text)), element.condition()).self_group()
    return str(compiler.process(candidates, **kw))


def _fts_rowids(text: str) -> Select[Any]:
    search = table(textsearch.SEARCH_TABLE, column("rowid"))
    matches = literal_column(textsearch.SEARCH_TABLE).op("MATCH")(bindparam(None, textsearch.fts_phrase(text)))
    return select(search.c.rowid).where(matches)


#: A text search matching at most this many entries is looked up once per page.
RESOLVED_TEXT = 2000


def resolve_text(session: Session, flt: EntryFilter) -> EntryFilter:
    """``flt`` with a narrow text search replaced by the ids it matches, looked up once: a
    browse page asks its question eight times (the page, the total, six facets), and on
    PostgreSQL each trigram look-up costs tens of milliseconds where a common trigram
    (``net``, ``vit``) names most entries. A broad search (more than
    :data:`RESOLVED_TEXT` entries) is left as it is."""
    if not (flt.text and flt.text.strip()):
        return flt
    found = session.scalars(
        select(Entry.id).where(TextMatch(Entry.id, Entry.architecture, flt.text)).limit(RESOLVED_TEXT + 1)
    ).all()
    if len(found) > RESOLVED_TEXT:
        return flt
    return replace(flt, text=None, among=frozenset(found))


#: Filters that leave out the NULLs of a sort column.
_BOUNDS: dict[str, tuple[str, ...]] = {
    "top1": ("min_top1", "max_top1"),
    "params": ("min_params", "max_params"),
}


def _may_be_null(column: Any, flt: EntryFilter) -> bool:
    if not column.nullable:
        return False
    return all(getattr(flt, bound) is None for bound in _BOUNDS.get(column.key, ()))


def search_statement(
    flt: EntryFilter,
    *,
    sort: str | None = "top1",
    descending: bool = True,
    limit: int | None = None,
    offset: int = 0,
    columns: Sequence[str] = SUMMARY_COLUMNS,
    nulls: bool = True,
) -> Select[Any]:
    """``flt``'s entries in ``sort`` order (NULLs last); ``nulls=False``: only those with a
    value to sort on (then the order needs no NULLS LAST, which an index can give)."""
    stmt = select(*(getattr(Entry, c) for c in columns)).where(*_conditions(flt))
    if sort:
        key = sort.lstrip("-")
        if key not in SORT_KEYS:
            raise InvalidQueryError(
                f"unknown sort key {sort!r}",
                hint=f"Sort by one of: {', '.join(SORT_KEYS)}.",
                value=sort,
            )
        column = SORT_KEYS[key]
        desc = descending if not sort.startswith("-") else True
        order = column.desc() if desc else column.asc()
        if not nulls:
            stmt = stmt.where(column.is_not(None))
        elif _may_be_null(column, flt):
            # NULLs last either way, so "best first" lists start with real figures. Said as
            # NULLS LAST (not as a sort on "column IS NULL") so an index can still give the order.
            order = order.nulls_last()
        stmt = stmt.order_by(order, Entry.id)
    if limit is not None:
        if limit < 0:
            raise InvalidQueryError("limit must be >= 0", value=limit)
        stmt = stmt.limit(limit)
    if offset:
        stmt = stmt.offset(offset)
    return stmt


def search(
    session: Session,
    flt: EntryFilter,
    *,
    sort: str | None = "top1",
    descending: bool = True,
    limit: int | None = None,
    offset: int = 0,
) -> list[EntrySummary]:
    rows = session.execute(
        search_statement(flt, sort=sort, descending=descending, limit=limit, offset=offset)
    )
    return [EntrySummary.model_validate(dict(row._mapping)) for row in rows]


def search_page(
    session: Session,
    flt: EntryFilter,
    *,
    sort: str = "top1",
    descending: bool = True,
    limit: int,
    offset: int = 0,
) -> list[EntrySummary]:
    """What :func:`search` returns for one page, asked so that an index gives the order on
    PostgreSQL too: a sort on a column with NULLs (NULLs last) is asked as the page of
    non-NULL values first, then, only where that page runs short, the NULL rows after them.
    (PostgreSQL's btree index gives ``DESC NULLS FIRST``, not ``DESC NULLS LAST``: asked in
    one statement, a million rows would be sorted for the first page.)"""
    column = SORT_KEYS.get(sort.lstrip("+-"))
    if column is None or not _may_be_null(column, flt):
        return search(session, flt, sort=sort, descending=descending, limit=limit, offset=offset)

    def page(stmt: Select[Any]) -> list[EntrySummary]:
        return [EntrySummary.model_validate(dict(r._mapping)) for r in session.execute(stmt)]

    rated = page(
        search_statement(
            flt, sort=sort, descending=descending, limit=limit, offset=offset, nulls=False
        )
    )
    if len(rated) == limit:
        return rated
    # rated rows end inside this page (or before it): that tells how many there are
    if rated or offset == 0:
        before = offset + len(rated)
    else:
        stmt = select(func.count()).select_from(Entry).where(*_conditions(flt), column.is_not(None))
        before = int(session.scalar(stmt) or 0)
    # the NULL rows, in the order search gives them (the sort column is equal: by id)
    unrated = (
        select(*(getattr(Entry, c) for c in SUMMARY_COLUMNS))
        .where(*_conditions(flt), column.is_(None))
        .order_by(Entry.id)
        .limit(limit - len(rated))
        .offset(max(0, offset - before))
    )
    return rated + page(unrated)


def count(session: Session, flt: EntryFilter) -> int:
    return int(
        session.scalar(select(func.count()).select_from(Entry).where(*_conditions(flt))) or 0
    )


def _load_spec(e: Entry) -> LoadSpec | None:
    """The entry's load spec with its class names put back from ``label_set``."""
    if not e.load_spec:
        return None
    spec = LoadSpec.model_validate(e.load_spec)
    if e.label_set is not None and not spec.labels:
        spec.labels = [str(n) for n in e.label_set.labels]
    return spec


def _to_record(e: Entry) -> CatalogueEntry:
    return CatalogueEntry(
        id=e.id,
        **{f: getattr(e, f) for f in ANNOTATED_FIELDS},
        **{f: getattr(e, f) for f in UPSTREAM_FIELDS},
        upstream_modified=e.upstream_modified,
        tags=list(e.tags or []),
        datasets=[DatasetLink.model_validate(d, from_attributes=True) for d in e.datasets],
        claims=[AccuracyClaim.model_validate(c, from_attributes=True) for c in e.claims],
        files=[FileRef.model_validate(f, from_attributes=True) for f in e.files],
        load=_load_spec(e),
        errors=[a.message for a in e.errors],
        raw=dict(e.raw or {}),
        dataset=e.dataset,
        top1=e.top1,
        top1_size=e.top1_size,
        top1_best=e.top1_best,
        top1_best_size=e.top1_best_size,
        same_weights_as=e.same_weights_as,
        test_net=e.test_net,
        first_seen=e.first_seen,
        last_seen=e.last_seen,
        removed_upstream=e.removed_upstream,
        facts=[FactRecord.model_validate(f, from_attributes=True) for f in e.facts],
        evaluations=[
            EvaluationRecord.model_validate(v, from_attributes=True) for v in e.evaluations
        ],
    )


_FULL = (
    selectinload(Entry.files),
    selectinload(Entry.datasets),
    selectinload(Entry.claims),
    selectinload(Entry.facts),
    selectinload(Entry.errors),
    selectinload(Entry.evaluations).selectinload(Evaluation.metrics),
    selectinload(Entry.label_set),
)


def find_entry(session: Session, entry_id: str) -> CatalogueEntry | None:
    eid = str(parse_id(entry_id))
    entry = session.scalars(select(Entry).where(Entry.id == eid).options(*_FULL)).one_or_none()
    return _to_record(entry) if entry is not None else None


def get_entry(session: Session, entry_id: str) -> CatalogueEntry:
    found = find_entry(session, entry_id)
    if found is None:
        eid = str(parse_id(entry_id))
        similar = session.scalars(
            select(Entry.id)
            .where(func.lower(Entry.id).like(f"%{eid.split(':', 1)[1].lower()[:40]}%"))
            .limit(3)
        ).all()
        hint = f"Did you mean: {', '.join(similar)}?" if similar else None
        raise EntryNotFoundError(f"no entry {eid!r} in the catalogue", hint=hint, entry_id=eid)
    return found


def iter_entries(
    session: Session, entry_ids: Sequence[str], *, chunk_size: int = 500
) -> Iterator[CatalogueEntry]:
    """The full entries ``entry_ids`` (those that exist), loaded ``chunk_size`` at a time;
    in id order when ``entry_ids`` is sorted."""
    for start in range(0, len(entry_ids), chunk_size):
        chunk = entry_ids[start : start + chunk_size]
        entries = session.scalars(
            select(Entry).where(Entry.id.in_(chunk)).order_by(Entry.id).options(*_FULL)
        ).all()
        yield from (_to_record(e) for e in entries)
        session.expunge_all()  # keep memory flat over a whole-catalogue export


def get_entries(session: Session, entry_ids: Sequence[str]) -> list[CatalogueEntry]:
    return [get_entry(session, i) for i in entry_ids]
