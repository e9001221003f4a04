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

from securitynet.annotate.overrides import CuratedAnnotations, load_annotations
from securitynet.catalogue.models import (
    AccuracyClaimRow,
    Dataset,
    Entry,
    EntryDataset,
    Fact,
    WeightFile,
    utcnow,
)
from securitynet.records import LoadSpec, Metric, Stage

log = logging.getLogger(__name__)
ORIGIN = "curated"


def refresh_merged_view(session: Session, entry_ids: list[str]) -> None:
    """Recompute ``entry.dataset`` (end of the training chain, curated chain first) and
    ``entry.top1`` (best top-1 claim on it) from the child rows."""
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
        values = session.scalars(
            select(AccuracyClaimRow.value).where(
                AccuracyClaimRow.entry_id == eid,
                AccuracyClaimRow.metric == Metric.TOP1,
                AccuracyClaimRow.dataset == dataset,
            )
        ).all()
        session.execute(
            update(Entry)
            .where(Entry.id == eid)
            .values(dataset=dataset, top1=max(values) if values else None)
        )


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
                select(Entry.id, Entry.source, Entry.name, Entry.architecture, Entry.family, Entry.load_spec)
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
                if item.sha256 is not None:
                    targets = [t for t in targets if _describes_weights(session, t, item.sha256, ann.source)]
                load_fields = item.load_fields()
                for eid in targets:
                    touched.add(eid)
                    if load_fields:
                        _merge_load_spec(session, by_id[eid], load_fields, ann.source)
                    if item.set:
                        session.execute(update(Entry).where(Entry.id == eid).values(**item.set))
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


def _describes_weights(session: Session, entry_id: str, sha256: str, source: str) -> bool:
    """Whether the entry's weights file is the one a curated item describes (by sha256).

    A weights file listed without a sha256 (a file in a GitHub tree: the API gives only
    git's blob id) takes the curated one as its pin, so a download of other bytes fails
    verification instead of being described by facts about another file."""
    stored = session.execute(
        select(WeightFile.id, WeightFile.sha256).where(WeightFile.entry_id == entry_id, WeightFile.role == "weights")
    ).all()
    if any(row.sha256 == sha256 for row in stored):
        return True
    if stored and all(row.sha256 is None for row in stored):
        session.execute(update(WeightFile).where(WeightFile.id == stored[0].id).values(sha256=sha256))
        log.info("%s: %s's weights are pinned to its sha256 %s...", source, entry_id, sha256[:12])
        return True
    log.warning(
        "%s: %s's weights are not the file it describes (sha256 %s...); not applied",
        source,
        entry_id,
        sha256[:12],
    )
    return False


def _merge_load_spec(session: Session, row: dict[str, Any], fields: dict[str, Any], source: str) -> None:
    """The entry's load spec with the curated fields over it (an architecture spec replaces
    the builder, architecture and kwargs as a whole)."""
    merged = dict(row.get("load_spec") or {})
    if "builder" in fields:
        for key in ("builder", "architecture", "kwargs"):
            merged.pop(key, None)
    merged.update(fields)
    try:
        spec = LoadSpec.model_validate(merged)
    except ValueError as exc:
        log.warning("%s: cannot apply its load fields to %s: %s", source, row["id"], exc)
        return
    value = spec.model_dump(mode="json", exclude_defaults=True)
    row["load_spec"] = value
    changes: dict[str, Any] = {"load_spec": value}
    if "builder" in fields:
        changes["arch_resolution"] = "declared"
    session.execute(update(Entry).where(Entry.id == row["id"]).values(**changes))
