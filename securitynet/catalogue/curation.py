"""Apply curated annotation files to the catalogue (origin ``curated``).

Runs after every sync: curated rows are replaced wholesale, entry columns they set are
overwritten (the scraper's own value stays as a ``fact`` row), and the merged view
(``entry.dataset``, ``entry.top1``) is recomputed for the entries they touch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.orm import Session

from securitynet.annotate.licences import spdx_licence
from securitynet.annotate.overrides import CuratedAnnotations, load_annotations
from securitynet.catalogue.models import (
    AccuracyClaimRow,
    Dataset,
    Entry,
    EntryDataset,
    Fact,
    utcnow,
)
from securitynet.records import Metric, Stage, top1_figures

log = logging.getLogger(__name__)
ORIGIN = "curated"


def refresh_merged_view(session: Session, entry_ids: list[str]) -> None:
    """Recompute ``entry.dataset`` (end of the training chain, curated chain first) and the
    top-1 figures on it (at the loader's input size, and the best at any size) from the
    child rows."""
    for eid in entry_ids:
        links = session.execute(
            select(
                EntryDataset.dataset, EntryDataset.stage, EntryDataset.origin, EntryDataset.position
            )
            .where(EntryDataset.entry_id == eid)
            .order_by(EntryDataset.position, EntryDataset.id)
        ).all()
        curated = [r for r in links if r.origin == ORIGIN]
        chain = curated or links
        trained = [r for r in chain if r.stage == Stage.TRAIN] or list(chain)
        dataset = trained[-1].dataset if trained else None
        pairs = session.execute(
            select(AccuracyClaimRow.value, AccuracyClaimRow.img_size).where(
                AccuracyClaimRow.entry_id == eid,
                AccuracyClaimRow.metric == Metric.TOP1,
                AccuracyClaimRow.dataset == dataset,
            )
        ).all()
        figures = top1_figures(pairs, _loader_size(session, eid))
        session.execute(
            update(Entry)
            .where(Entry.id == eid)
            .values(
                dataset=dataset,
                top1=figures.top1,
                top1_size=figures.top1_size,
                top1_best=figures.best,
                top1_best_size=figures.best_size,
            )
        )


def _with_input_size(session: Session, eid: str, size: int) -> dict[str, Any] | None:
    spec = session.scalar(select(Entry.load_spec).where(Entry.id == eid))
    if not spec:
        return spec
    channels = (spec.get("input_size") or [3])[0]
    return {**spec, "input_size": [channels, int(size), int(size)]}


def _loader_size(session: Session, eid: str) -> int | None:
    """The input size the loader uses for ``eid``: its load spec's, else the entry's column."""
    row = session.execute(select(Entry.load_spec, Entry.input_size).where(Entry.id == eid)).one()
    size = (row.load_spec or {}).get("input_size")
    return int(size[-1]) if size else row.input_size


def apply_curated_annotations(
    engine: Engine, files: list[CuratedAnnotations] | None = None, folder: Path | None = None
) -> int:
    """Apply every curated file; returns how many entries they touched."""
    files = files if files is not None else load_annotations(folder)
    now = utcnow()
    with Session(engine) as session, session.begin():
        previously = set(
            session.scalars(select(EntryDataset.entry_id).where(EntryDataset.origin == ORIGIN))
        )
        previously |= set(
            session.scalars(
                select(AccuracyClaimRow.entry_id).where(AccuracyClaimRow.origin == ORIGIN)
            )
        )
        for table in (Fact, EntryDataset, AccuracyClaimRow):
            session.execute(delete(table).where(table.origin == ORIGIN))
        rows = [
            dict(r._mapping)
            for r in session.execute(
                select(Entry.id, Entry.source, Entry.name, Entry.architecture, Entry.family)
            )
        ]
        by_id = {r["id"]: r for r in rows}
        known_datasets = set(session.scalars(select(Dataset.name)))
        touched: set[str] = set()
        for ann in files:
            for item in ann.content.items:
                targets: list[str]
                if item.id is not None:
                    targets = [item.id] if item.id in by_id else []
                else:
                    targets = [
                        r["id"] for r in rows if item.match is not None and item.match.matches(r)
                    ]
                if not targets:
                    log.info("%s: no entry matches %s", ann.source, item.id or item.match)
                common: dict[str, Any] = {"origin": ORIGIN, "recorded_at": now}
                links, claims = ann.dataset_links(item), ann.accuracy_claims(item)
                for name in {x.dataset for x in links} | {c.dataset for c in claims}:
                    if name not in known_datasets:
                        session.execute(
                            insert(Dataset), [{"name": name, "canonical": False, "aliases": []}]
                        )
                        known_datasets.add(name)
                for eid in targets:
                    touched.add(eid)
                    if item.set:
                        values = dict(item.set)
                        if "licence" in values:
                            values["licence"] = spdx_licence(values["licence"])
                        if "input_size" in values:  # the loader follows a curated size
                            values["load_spec"] = _with_input_size(session, eid, values["input_size"])
                        session.execute(update(Entry).where(Entry.id == eid).values(**values))
                        session.execute(
                            insert(Fact),
                            [
                                {
                                    **common,
                                    "entry_id": eid,
                                    "key": k,
                                    "value": v,
                                    "source": ann.source,
                                    "evidence": item.evidence,
                                }
                                for k, v in item.set.items()
                            ],
                        )
                    if links:
                        session.execute(
                            insert(EntryDataset),
                            [
                                {
                                    **common,
                                    "entry_id": eid,
                                    "dataset": d.dataset,
                                    "raw_name": d.raw_name,
                                    "stage": d.stage,
                                    "position": i,
                                    "source": d.source,
                                    "evidence": d.evidence,
                                }
                                for i, d in enumerate(links)
                            ],
                        )
                    if claims:
                        session.execute(
                            insert(AccuracyClaimRow),
                            [{**common, "entry_id": eid, **c.model_dump()} for c in claims],
                        )
        refresh_merged_view(session, sorted(touched | (previously & set(by_id))))
    return len(touched)
