"""Evaluation results: storing an evaluation with one row per metric, and reading figures back.

    >>> cat.add_evaluation("imgclsmob:resnet20_cifar10", EvaluationRecord(
    ...     attack="mia", variant="modified-entropy", dataset="CIFAR-10",
    ...     metrics=[MetricResult(metric="auc", value=0.61, lower=0.59, upper=0.63)]))
    >>> cat.results(attack="mia", metric="auc")            # rows of the v_results view

Who produced a figure is the evaluation's ``source`` (``evaluate`` for our harness, a
publication such as ``securitynet-release``); an importer replaces only its own source's
evaluations (:func:`replace_evaluations`). Accuracy is in percent; AUC, agreement and rates
are fractions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, insert, select
from sqlalchemy.orm import Session, selectinload

from securitynet.annotate.datasets import dataset_name
from securitynet.catalogue.models import Dataset, Entry, Evaluation, EvaluationMetric, utcnow
from securitynet.errors import CatalogueError, EntryNotFoundError, InvalidQueryError
from securitynet.ids import parse_id
from securitynet.records import EvaluationRecord, ResultRecord


@dataclass(frozen=True, slots=True)
class ResultFilter:
    """Which figures :func:`list_results` returns; every given field must match."""

    entry_id: str | None = None
    attack: str | None = None
    variant: str | None = None
    metric: str | None = None
    dataset: str | None = None
    source: str | None = None
    status: str | None = "ok"
    include_removed: bool = False

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def _ensure_dataset(session: Session, name: str | None) -> str | None:
    if name is None:
        return None
    name = dataset_name(name)
    if session.get(Dataset, name) is None:
        session.execute(insert(Dataset), [{"name": name, "canonical": False, "aliases": []}])
    return name


def _evaluation_row(entry_id: str, record: EvaluationRecord, dataset: str | None) -> dict[str, Any]:
    row = record.model_dump(exclude={"id", "metrics", "created_at"})
    row.update(entry_id=entry_id, dataset=dataset, created_at=record.created_at or utcnow())
    return row


def add_evaluations(session: Session, items: Iterable[tuple[str, EvaluationRecord]]) -> list[int]:
    """Store each ``(entry_id, record)`` with its metric rows; return the new evaluation ids.

    Raises :class:`EntryNotFoundError` for an entry that is not catalogued. Does not commit.
    """
    items = [(str(parse_id(eid)), record) for eid, record in items]
    wanted = sorted({eid for eid, _ in items})
    present: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        present.update(session.scalars(select(Entry.id).where(Entry.id.in_(chunk))))
    missing = [eid for eid in wanted if eid not in present]
    if missing:
        raise EntryNotFoundError(
            f"no entry {missing[0]!r} in the catalogue"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
            entry_id=missing[0],
            missing=missing,
        )
    datasets: dict[str | None, str | None] = {}
    ids: list[int] = []
    for eid, record in items:
        if record.dataset not in datasets:
            datasets[record.dataset] = _ensure_dataset(session, record.dataset)
        row = _evaluation_row(eid, record, datasets[record.dataset])
        new_id = session.execute(insert(Evaluation).returning(Evaluation.id), [row]).scalar_one()
        ids.append(new_id)
        if record.metrics:
            session.execute(
                insert(EvaluationMetric),
                [{"evaluation_id": new_id, **m.model_dump()} for m in record.metrics],
            )
    return ids


def replace_evaluations(
    session: Session,
    items: Sequence[tuple[str, EvaluationRecord]],
    *,
    source: str,
    entry_ids: Iterable[str] | None = None,
) -> list[int]:
    """Replace ``source``'s evaluations (of ``entry_ids``, default: every entry) by ``items``.

    Other sources' evaluations are never touched. Does not commit."""
    if any(record.source != source for _, record in items):
        raise CatalogueError(f"every replaced evaluation must come from {source!r}", source=source)
    stmt = delete(Evaluation).where(Evaluation.source == source)
    if entry_ids is None:
        session.execute(stmt)
    else:
        ids = sorted({str(parse_id(e)) for e in entry_ids})
        for start in range(0, len(ids), 500):
            session.execute(stmt.where(Evaluation.entry_id.in_(ids[start : start + 500])))
    return add_evaluations(session, items)


def _conditions(flt: ResultFilter) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if flt.entry_id is not None:
        conds.append(Evaluation.entry_id == str(parse_id(flt.entry_id)))
    for column, value in (
        (Evaluation.attack, flt.attack),
        (Evaluation.variant, flt.variant),
        (EvaluationMetric.metric, flt.metric),
        (Evaluation.source, flt.source),
        (Evaluation.status, flt.status),
    ):
        if value is not None:
            conds.append(column == value)
    if flt.dataset is not None:
        conds.append(Evaluation.dataset == dataset_name(flt.dataset))
    if not flt.include_removed:
        conds.append(Entry.removed_upstream.is_(False))
    return conds


def results_statement(flt: ResultFilter) -> Select[Any]:
    """The ``v_results`` columns a :class:`ResultRecord` holds, as an ORM statement."""
    columns: list[Any] = [Evaluation.id.label("evaluation_id")]
    for name in ResultRecord.model_fields:
        if name != "evaluation_id":
            model = (
                EvaluationMetric if name in ("metric", "value", "lower", "upper") else Evaluation
            )
            columns.append(getattr(model, name))
    return (
        select(*columns)
        .select_from(EvaluationMetric)
        .join(Evaluation, Evaluation.id == EvaluationMetric.evaluation_id)
        .join(Entry, Entry.id == Evaluation.entry_id)
        .where(*_conditions(flt))
        .order_by(Evaluation.entry_id, Evaluation.id, EvaluationMetric.id)
    )


def list_results(
    session: Session, flt: ResultFilter, *, limit: int | None = None
) -> list[ResultRecord]:
    stmt = results_statement(flt)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [ResultRecord.model_validate(dict(row._mapping)) for row in session.execute(stmt)]


def find_evaluation(
    session: Session,
    entry_id: str,
    *,
    attack: str,
    config_digest: str,
    statuses: Sequence[str] = ("ok",),
) -> EvaluationRecord | None:
    """The newest evaluation of ``entry_id`` by ``attack`` with this ``config_digest`` (and a
    status in ``statuses``), or None: what a harness reuses instead of running again."""
    row = session.scalars(
        select(Evaluation)
        .where(
            Evaluation.entry_id == str(parse_id(entry_id)),
            Evaluation.attack == attack,
            Evaluation.config_digest == config_digest,
            Evaluation.status.in_(list(statuses)),
        )
        .options(selectinload(Evaluation.metrics))
        .order_by(Evaluation.created_at.desc(), Evaluation.id.desc())
        .limit(1)
    ).one_or_none()
    return EvaluationRecord.model_validate(row, from_attributes=True) if row else None


def result_filter(**filters: Any) -> ResultFilter:
    """A :class:`ResultFilter` from keyword arguments, refusing unknown names."""
    unknown = sorted(set(filters) - set(ResultFilter.names()))
    if unknown:
        raise InvalidQueryError(
            f"unknown result filter(s): {', '.join(unknown)}",
            hint=f"Filters: {', '.join(ResultFilter.names())}.",
            value=unknown,
        )
    return ResultFilter(**filters)


__all__ = [
    "ResultFilter",
    "add_evaluations",
    "find_evaluation",
    "list_results",
    "replace_evaluations",
    "result_filter",
    "results_statement",
]
