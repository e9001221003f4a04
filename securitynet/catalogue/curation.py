"""Apply curated annotation files to the catalogue (origin ``curated``).

Runs after every sync: curated rows are replaced wholesale, entry columns they set are
overwritten (the scraper's own value stays as a ``fact`` row), and the merged view
(``entry.dataset``, ``entry.top1``) is recomputed for the entries they touch.

A sync does not re-apply files that did not change when no entry changed: each application
is recorded as a ``sync_run`` of the source ``curated`` whose state holds the digest of the
files (and of this code); the same digest, with no sync run since that wrote an entry, is a
no-op.
The application itself is set-based: one UPDATE per annotation item, one INSERT per table,
and the merged view recomputed by two UPDATE statements per chunk of entries.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Engine, bindparam, delete, exists, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from securitynet.annotate.licences import spdx_licence
from securitynet.annotate.overrides import CuratedAnnotations, load_annotations
from securitynet.catalogue.models import (
    AccuracyClaimRow,
    Dataset,
    Entry,
    EntryDataset,
    Fact,
    SyncRun,
    WeightFile,
    utcnow,
)
from securitynet.records import LoadSpec, Metric, Stage, top1_figures

if TYPE_CHECKING:
    from sqlalchemy import Table

log = logging.getLogger(__name__)
ORIGIN = "curated"
_CHUNK = 500


def refresh_merged_view(session: Session, entry_ids: list[str]) -> None:
    """Recompute ``entry.dataset`` (end of the training chain, curated chain first) and the
    top-1 figures on it (at the loader's input size, and the best at any size) from the
    child rows: per chunk of entries one UPDATE for the data set, one read of the claims and
    one executemany UPDATE for the figures."""
    link = aliased(EntryDataset)
    curated = aliased(EntryDataset)
    chain_end = (
        select(link.dataset)
        .where(
            link.entry_id == Entry.id,
            or_(
                link.origin == ORIGIN,
                ~exists()
                .where(curated.entry_id == Entry.id, curated.origin == ORIGIN)
                .correlate(Entry),
            ),
        )
        # the last training step of the chain, else its last step
        .order_by((link.stage == Stage.TRAIN.value).desc(), link.position.desc(), link.id.desc())
        .limit(1)
        .correlate(Entry)
        .scalar_subquery()
    )
    for start in range(0, len(entry_ids), _CHUNK):
        chunk = entry_ids[start : start + _CHUNK]
        session.execute(
            update(Entry).where(Entry.id.in_(chunk)).values(dataset=chain_end),
            execution_options={"synchronize_session": False},
        )
        _refresh_top1(session, chunk)


_ENTRY_TABLE = cast("Table", Entry.__table__)
_TOP1_UPDATE = (
    update(_ENTRY_TABLE)
    .where(_ENTRY_TABLE.c.id == bindparam("b_id"))
    .values(
        top1=bindparam("b_top1"),
        top1_size=bindparam("b_top1_size"),
        top1_best=bindparam("b_best"),
        top1_best_size=bindparam("b_best_size"),
    )
)


def _refresh_top1(session: Session, chunk: list[str]) -> None:
    entries = session.execute(
        select(Entry.id, Entry.load_spec, Entry.input_size).where(Entry.id.in_(chunk))
    ).all()
    claims = session.execute(
        select(
            AccuracyClaimRow.entry_id,
            AccuracyClaimRow.value,
            AccuracyClaimRow.img_size,
            AccuracyClaimRow.split,
        )
        .join(Entry, Entry.id == AccuracyClaimRow.entry_id)
        .where(
            AccuracyClaimRow.entry_id.in_(chunk),
            AccuracyClaimRow.metric == Metric.TOP1,
            AccuracyClaimRow.dataset == Entry.dataset,
        )
    ).all()
    held_out: dict[str, list[tuple[float, int | None]]] = defaultdict(list)
    on_train: dict[str, list[tuple[float, int | None]]] = defaultdict(list)
    for claim in claims:  # training-set figures only where nothing else is stated
        bucket = on_train if claim.split == "train" else held_out
        bucket[claim.entry_id].append((claim.value, claim.img_size))
    pairs = {eid: held_out.get(eid) or on_train[eid] for eid in {*held_out, *on_train}}
    params = []
    for row in entries:
        figures = top1_figures(pairs.get(row.id, []), _loader_size(row.load_spec, row.input_size))
        params.append(
            {
                "b_id": row.id,
                "b_top1": figures.top1,
                "b_top1_size": figures.top1_size,
                "b_best": figures.best,
                "b_best_size": figures.best_size,
            }
        )
    if params:
        session.execute(_TOP1_UPDATE, params)


def _loader_size(load_spec: dict[str, Any] | None, input_size: int | None) -> int | None:
    """The input size the loader uses: its load spec's, else the entry's column."""
    size = (load_spec or {}).get("input_size")
    return int(size[-1]) if size else input_size


def _with_input_size(session: Session, eid: str, size: int) -> dict[str, Any] | None:
    spec = session.scalar(select(Entry.load_spec).where(Entry.id == eid))
    if not spec:
        return spec
    channels = (spec.get("input_size") or [3])[0]
    return {**spec, "input_size": [channels, int(size), int(size)]}


def _default_files_digest(folder: Path | None) -> tuple[str, Path]:
    from securitynet.resources import resource_dir

    folder = folder if folder is not None else resource_dir("annotations")
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for path in sorted(folder.glob("*.yaml")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:32], folder


def _parsed_files_digest(files: list[CuratedAnnotations]) -> str:
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for ann in files:
        digest.update(ann.source.encode())
        digest.update(ann.content.model_dump_json().encode())
    return digest.hexdigest()[:32]


def _up_to_date(session: Session, digest: str) -> bool:
    """Whether the last application used the files of ``digest`` and no sync since then
    wrote an entry (a sync killed before its curation step counts: its run row has the
    counts of every batch it committed)."""
    last = session.execute(
        select(SyncRun.id, SyncRun.state)
        .where(SyncRun.source == ORIGIN, SyncRun.status == "ok")
        .order_by(SyncRun.id.desc())
        .limit(1)
    ).first()
    if last is None or (last.state or {}).get("digest") != digest:
        return False
    wrote = session.scalar(
        select(SyncRun.id)
        .where(
            SyncRun.id > last.id,
            SyncRun.source != ORIGIN,
            or_(SyncRun.added > 0, SyncRun.updated > 0, SyncRun.removed > 0),
        )
        .limit(1)
    )
    return wrote is None


def apply_curated_annotations(
    engine: Engine,
    files: list[CuratedAnnotations] | None = None,
    folder: Path | None = None,
    *,
    force: bool = True,
) -> int:
    """Apply every curated file; returns how many entries they touched (0 when skipped).

    ``force=False`` skips the application when its files are those of the last one and no
    sync wrote an entry since (recorded in ``sync_run``): nothing it would write can differ.
    """
    if files is None:
        digest, folder = _default_files_digest(folder)
    else:
        digest = _parsed_files_digest(files)
    if not force:
        with Session(engine) as session:
            if _up_to_date(session, digest):
                log.info("curated annotations unchanged, and no entry changed: not re-applied")
                return 0
    if files is None:
        files = load_annotations(folder)
    started = utcnow()
    with Session(engine) as session, session.begin():
        touched = _apply(session, files)
        session.add(
            SyncRun(
                source=ORIGIN,
                status="ok",
                complete=True,
                started_at=started,
                finished_at=utcnow(),
                seen=len(touched),
                updated=len(touched),
                state={"digest": digest, "files": [ann.source for ann in files]},
            )
        )
    return len(touched)


def _apply(session: Session, files: list[CuratedAnnotations]) -> set[str]:
    now = utcnow()
    previously = set(
        session.scalars(select(EntryDataset.entry_id).where(EntryDataset.origin == ORIGIN))
    )
    previously |= set(
        session.scalars(select(AccuracyClaimRow.entry_id).where(AccuracyClaimRow.origin == ORIGIN))
    )
    for table in (Fact, EntryDataset, AccuracyClaimRow):
        session.execute(delete(table).where(table.origin == ORIGIN))
    rows = [
        dict(r._mapping)
        for r in session.execute(
            select(
                Entry.id,
                Entry.source,
                Entry.name,
                Entry.architecture,
                Entry.family,
                Entry.load_spec,
            )
        )
    ]
    by_id = {r["id"]: r for r in rows}
    known_datasets = set(session.scalars(select(Dataset.name)))
    new_datasets: list[str] = []
    children: dict[type, list[dict[str, Any]]] = {Fact: [], EntryDataset: [], AccuracyClaimRow: []}
    touched: set[str] = set()
    common: dict[str, Any] = {"origin": ORIGIN, "recorded_at": now}
    for ann in files:
        for item in ann.content.items:
            if item.id is not None:
                targets = [item.id] if item.id in by_id else []
            else:
                targets = [
                    r["id"] for r in rows if item.match is not None and item.match.matches(r)
                ]
            links, claims = ann.dataset_links(item), ann.accuracy_claims(item)
            for name in sorted({x.dataset for x in links} | {c.dataset for c in claims}):
                if name not in known_datasets:
                    new_datasets.append(name)
                    known_datasets.add(name)
            if item.sha256 is not None:
                targets = [
                    t for t in targets if _describes_weights(session, t, item.sha256, ann.source)
                ]
            if not targets:
                log.info("%s: no entry matches %s", ann.source, item.id or item.match)
                continue
            touched.update(targets)
            load_fields = item.load_fields()
            if load_fields:
                for eid in targets:
                    _merge_load_spec(session, by_id[eid], load_fields, ann.source)
            if item.set:
                set_values = dict(item.set)
                if "licence" in set_values:
                    set_values["licence"] = spdx_licence(set_values["licence"])
                for start in range(0, len(targets), _CHUNK):
                    session.execute(
                        update(Entry)
                        .where(Entry.id.in_(targets[start : start + _CHUNK]))
                        .values(**set_values),
                        execution_options={"synchronize_session": False},
                    )
                if "input_size" in set_values:  # the loader follows a curated size
                    for eid in targets:
                        session.execute(
                            update(Entry)
                            .where(Entry.id == eid)
                            .values(load_spec=_with_input_size(session, eid, set_values["input_size"])),
                            execution_options={"synchronize_session": False},
                        )
            claim_rows = [c.model_dump() for c in claims]
            for eid in targets:
                children[Fact].extend(
                    {
                        **common,
                        "entry_id": eid,
                        "key": k,
                        "value": v,
                        "source": ann.source,
                        "evidence": item.evidence,
                    }
                    for k, v in item.set.items()
                )
                children[EntryDataset].extend(
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
                )
                children[AccuracyClaimRow].extend(
                    {**common, "entry_id": eid, **c} for c in claim_rows
                )
    if new_datasets:
        session.execute(
            insert(Dataset), [{"name": n, "canonical": False, "aliases": []} for n in new_datasets]
        )
    for child, values in children.items():
        if values:
            session.execute(insert(child), values)
    refresh_merged_view(session, sorted(touched | (previously & set(by_id))))
    return touched


def _describes_weights(session: Session, entry_id: str, sha256: str, source: str) -> bool:
    """Whether the entry's weights file is the one a curated item describes (by sha256).

    A weights file listed without a sha256 (a file in a GitHub tree: the API gives only
    git's blob id) takes the curated one as its pin, so a download of other bytes fails
    verification instead of being described by facts about another file."""
    stored = session.execute(
        select(WeightFile.id, WeightFile.sha256).where(
            WeightFile.entry_id == entry_id, WeightFile.role == "weights"
        )
    ).all()
    if any(row.sha256 == sha256 for row in stored):
        return True
    if stored and all(row.sha256 is None for row in stored):
        session.execute(
            update(WeightFile).where(WeightFile.id == stored[0].id).values(sha256=sha256)
        )
        log.info("%s: %s's weights are pinned to its sha256 %s...", source, entry_id, sha256[:12])
        return True
    log.warning(
        "%s: %s's weights are not the file it describes (sha256 %s...); not applied",
        source,
        entry_id,
        sha256[:12],
    )
    return False


def _merge_load_spec(
    session: Session, row: dict[str, Any], fields: dict[str, Any], source: str
) -> None:
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
