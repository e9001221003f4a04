"""Sync: run scrapers and write what they yield into the catalogue.

Idempotent and incremental. Each record's content hash is compared with the stored one, so
a re-sync writes only what changed; entries a complete run did not see are marked
``removed_upstream`` (never deleted). Every batch commits in its own transaction, with the
run's counters and the scraper's resume state, so a sync killed at any moment leaves a
consistent catalogue and the next sync completes it. A source that fails is recorded in
its run and does not stop the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.orm import Session

from securitynet import __version__
from securitynet.annotate.datasets import DATASETS, training_traits
from securitynet.annotate.licences import spdx_licence
from securitynet.catalogue.models import (
    AccuracyClaimRow,
    AnnotationError,
    Dataset,
    Entry,
    EntryDataset,
    Fact,
    LabelSet,
    SyncRun,
    WeightFile,
    utcnow,
)
from securitynet.errors import SecurityNetError
from securitynet.progress import track
from securitynet.records import (
    ANNOTATED_FIELDS,
    TEST_NET_TAG,
    UPSTREAM_FIELDS,
    EntryRecord,
    SyncSummary,
)
from securitynet.scrapers import DEFAULT_SOURCES, get_scraper
from securitynet.scrapers.base import Fingerprinted, Scraper, SyncContext, Unchanged
from securitynet.settings import Settings

log = logging.getLogger(__name__)

#: Entry columns a record sets directly; each non-empty one is also kept as a ``fact`` row.
SCALAR_FIELDS: tuple[str, ...] = (*ANNOTATED_FIELDS, *UPSTREAM_FIELDS)
_FACT_FIELDS = tuple(f for f in SCALAR_FIELDS if f not in ("task", "upstream_url", "revision"))
_CHILD_TABLES = (WeightFile, EntryDataset, AccuracyClaimRow, Fact, AnnotationError)
#: Bumped when what an entry row derives from its record changes (SPDX licences, top-1 at
#: the loader's size, ...): part of each stored content hash, so the next sync rewrites
#: every row once instead of skipping records whose upstream text did not change.
DERIVATION = "2"


def stored_hash(record: EntryRecord) -> str:
    """The content hash stored for ``record``: its own, under this ingest's derivation."""
    return hashlib.sha256(f"{DERIVATION}:{record.content_hash()}".encode()).hexdigest()


# --- writing records ------------------------------------------------------------------------


def seed_datasets(session: Session) -> None:
    """Make sure every data set of the taxonomy has its row (idempotent)."""
    existing = set(session.scalars(select(Dataset.name)))
    rows = [
        {
            "name": info.name,
            "canonical": True,
            "num_classes": info.num_classes,
            "kind": info.kind,
            "url": info.url,
            "aliases": list(info.aliases),
        }
        for info in DATASETS
        if info.name not in existing
    ]
    if rows:
        session.execute(insert(Dataset), rows)


def _ensure_datasets(session: Session, names: Iterable[str], known: set[str]) -> None:
    missing = sorted({n for n in names if n not in known})
    if missing:
        present = set(session.scalars(select(Dataset.name).where(Dataset.name.in_(missing))))
        new = [n for n in missing if n not in present]
        if new:
            session.execute(
                insert(Dataset), [{"name": n, "canonical": False, "aliases": []} for n in new]
            )
        known.update(missing)


def label_digest(labels: Sequence[str]) -> str:
    """The ``label_set`` key of a list of class names: sha256 of its compact JSON."""
    text = json.dumps(list(labels), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _load_spec_row(record: EntryRecord, label_sets: dict[str, list[str]]) -> tuple[dict[str, Any] | None, str | None]:
    """The stored load spec, its class names moved to ``label_sets`` (digest -> names)."""
    if record.load is None:
        return None, None
    spec = record.load.model_dump(mode="json")
    labels = spec.get("labels")
    if not labels:
        return spec, None
    digest = label_digest(labels)
    label_sets.setdefault(digest, labels)
    spec["labels"] = None  # stored once in label_set, put back when the entry is read
    return spec, digest


def _store_label_sets(session: Session, label_sets: dict[str, list[str]]) -> None:
    if not label_sets:
        return
    digests = list(label_sets)
    present = set(session.scalars(select(LabelSet.digest).where(LabelSet.digest.in_(digests))))
    new = [{"digest": d, "size": len(label_sets[d]), "labels": label_sets[d]} for d in digests if d not in present]
    if new:
        session.execute(insert(LabelSet), new)


def _entry_row(
    record: EntryRecord, now: datetime, content_hash: str, label_sets: dict[str, list[str]]
) -> dict[str, Any]:
    row: dict[str, Any] = {f: getattr(record, f) for f in SCALAR_FIELDS}
    load_spec, digest = _load_spec_row(record, label_sets)
    tags = list(record.tags)
    tags += [t for t in training_traits([d.dataset for d in record.datasets]) if t not in tags]
    figures = record.top1_figures()
    row.update(
        licence=spdx_licence(record.licence),  # the spelling as received stays a fact row
        id=record.id,
        source=record.source,
        name=record.name,
        upstream_modified=record.upstream_modified,
        dataset=record.final_dataset,
        top1=figures.top1,
        top1_size=figures.top1_size,
        top1_best=figures.best,
        top1_best_size=figures.best_size,
        test_net=TEST_NET_TAG in tags,
        tags=tags,
        load_spec=load_spec,
        label_set_digest=digest,
        raw=record.raw or None,
        content_hash=content_hash,
        last_seen=now,
        removed_upstream=False,
        removed_at=None,
    )
    return row


def _child_rows(
    record: EntryRecord, origin: str, now: datetime
) -> dict[type, list[dict[str, Any]]]:
    eid, who = record.id, record.provenance
    common = {"entry_id": eid, "origin": origin, "recorded_at": now}
    out: dict[type, list[dict[str, Any]]] = {t: [] for t in _CHILD_TABLES}
    for f in record.files:
        out[WeightFile].append({**common, **f.model_dump(), "source": who, "evidence": None})
    for pos, d in enumerate(record.datasets):
        out[EntryDataset].append(
            {
                **common,
                "dataset": d.dataset,
                "raw_name": d.raw_name,
                "stage": d.stage,
                "position": pos,
                "source": d.source,
                "evidence": d.evidence,
            }
        )
    for c in record.claims:
        out[AccuracyClaimRow].append({**common, **c.model_dump()})
    for key in _FACT_FIELDS:
        value = getattr(record, key)
        if value is not None:
            out[Fact].append(
                {
                    **common,
                    "key": key,
                    "value": value,
                    "source": who,
                    "evidence": record.evidence.get(key),
                }
            )
    for key, value in record.extra_facts.items():
        if value is not None:
            out[Fact].append(
                {**common, "key": key, "value": value, "source": who, "evidence": record.evidence.get(key)}
            )
    for message in record.errors:
        out[AnnotationError].append({**common, "message": message, "source": who, "evidence": None})
    return out


def write_records(
    session: Session,
    records: Sequence[EntryRecord | Unchanged],
    *,
    origin: str,
    hashes: dict[str, str | None] | None = None,
    dataset_names: set[str] | None = None,
) -> dict[str, int]:
    """Insert or update ``records`` (all from the writer ``origin``) in ``session``.

    ``hashes`` (id -> stored content hash) lets a caller that already loaded them skip a
    query per batch; it is updated in place. Returns counts: added, updated, unchanged,
    errors. Does not commit.
    """
    now = utcnow()
    counts = {"added": 0, "updated": 0, "unchanged": 0, "errors": 0}
    touched: list[str] = []
    records = list(records)
    ids = [r.id for r in records]
    if hashes is None:
        found = session.execute(select(Entry.id, Entry.content_hash).where(Entry.id.in_(ids)))
        hashes = {row.id: row.content_hash for row in found}
    known_datasets = dataset_names if dataset_names is not None else set()

    new_rows: list[dict[str, Any]] = []
    changed_rows: list[dict[str, Any]] = []
    children: dict[type, list[dict[str, Any]]] = {t: [] for t in _CHILD_TABLES}
    seen_in_batch: set[str] = set()
    label_sets: dict[str, list[str]] = {}
    for item in records:
        if item.id in seen_in_batch:
            log.warning("%s yielded %s twice in one batch; keeping the first", origin, item.id)
            continue
        seen_in_batch.add(item.id)
        if isinstance(item, Unchanged):
            touched.append(item.id)
            counts["unchanged"] += 1
            continue
        digest = stored_hash(item)
        stored = hashes.get(item.id, False)
        if stored == digest:
            touched.append(item.id)
            counts["unchanged"] += 1
            continue
        row = _entry_row(item, now, digest, label_sets)
        if stored is False:
            row["first_seen"] = now
            new_rows.append(row)
            counts["added"] += 1
        else:
            changed_rows.append(row)
            counts["updated"] += 1
        counts["errors"] += bool(item.errors)
        hashes[item.id] = digest
        for table, rows in _child_rows(item, origin, now).items():
            children[table].extend(rows)

    _ensure_datasets(
        session,
        [r["dataset"] for r in children[EntryDataset]]
        + [r["dataset"] for r in children[AccuracyClaimRow]],
        known_datasets,
    )
    _store_label_sets(session, label_sets)
    if changed_rows:
        changed_ids = [r["id"] for r in changed_rows]
        for table in _CHILD_TABLES:
            session.execute(
                delete(table).where(table.entry_id.in_(changed_ids), table.origin == origin)
            )
        session.execute(update(Entry), changed_rows)
    if new_rows:
        session.execute(insert(Entry), new_rows)
    for table in _CHILD_TABLES:
        if children[table]:
            session.execute(insert(table), children[table])
    if touched:
        session.execute(
            update(Entry)
            .where(Entry.id.in_(touched))
            .values(last_seen=now, removed_upstream=False, removed_at=None)
        )
    return counts


# --- running a sync -------------------------------------------------------------------------


def _close_stale_runs(session: Session, source: str) -> None:
    """Runs left 'running' by a killed process are recorded as interrupted."""
    session.execute(
        update(SyncRun)
        .where(SyncRun.source == source, SyncRun.status == "running")
        .values(
            status="interrupted",
            finished_at=utcnow(),
            error="the process ended before the run finished",
        )
    )


def _last_state(session: Session, source: str) -> dict[str, Any]:
    state = session.scalar(
        select(SyncRun.state)
        .where(SyncRun.source == source, SyncRun.state.is_not(None))
        .order_by(SyncRun.id.desc())
        .limit(1)
    )
    return dict(state or {})


def _last_complete_fingerprint(session: Session, source: str) -> tuple[str | None, int]:
    """The fingerprint of the source's last complete run, and how many entries it saw."""
    row = session.execute(
        select(SyncRun.state, SyncRun.seen)
        .where(SyncRun.source == source, SyncRun.status == "ok", SyncRun.complete.is_(True))
        .order_by(SyncRun.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None, 0
    value = (row.state or {}).get("fingerprint")
    return (str(value) if value is not None else None), int(row.seen)


def sync_source(
    engine: Engine,
    scraper: Scraper,
    *,
    settings: Settings,
    limit: int | None = None,
    options: dict[str, Any] | None = None,
    full: bool = False,
) -> SyncSummary:
    """Run one scraper to completion (or failure) and record the run.

    ``full`` re-reads the source even when its fingerprint says nothing changed.
    """
    started = time.perf_counter()
    source = scraper.name
    summary = SyncSummary(source=source)
    with Session(engine) as session, session.begin():
        seed_datasets(session)
        _close_stale_runs(session, source)
        state = _last_state(session, source)
        rows = session.execute(
            select(Entry.id, Entry.revision, Entry.content_hash, Entry.removed_upstream).where(
                Entry.source == source
            )
        ).all()
        dataset_names = set(session.scalars(select(Dataset.name)))
    known = {r.id: r.revision for r in rows if not r.removed_upstream}
    hashes: dict[str, str | None] = {r.id: r.content_hash for r in rows}
    ctx = SyncContext(
        settings=settings,
        # a full sync hides what is stored, so no scraper takes its "unchanged" shortcut
        known={} if full else known,
        limit=limit,
        state=state,
        options=dict(options or {}),
        full=full,
    )

    reason = scraper.unavailable_reason(ctx)
    if reason:
        summary.status, summary.error = "skipped", reason
        log.info("%s skipped: %s", source, reason)
        return summary

    fingerprint = scraper.fingerprint(ctx) if isinstance(scraper, Fingerprinted) else None
    if fingerprint is not None and limit is None and not full:
        with Session(engine) as session:
            previous, previous_seen = _last_complete_fingerprint(session, source)
        # skip only while the catalogue still holds exactly what that run stored
        if previous == fingerprint and previous_seen == len(known):
            return _record_unchanged_run(engine, source, known, fingerprint, started, state)

    with Session(engine) as session, session.begin():
        run = SyncRun(
            source=source,
            status="running",
            options={"limit": limit, **ctx.options},
            version=__version__,
            state=state,
        )
        session.add(run)
        session.flush()
        run_id = run.id

    seen: set[str] = set()
    batch: list[EntryRecord | Unchanged] = []

    def flush() -> None:
        if not batch:
            return
        with Session(engine) as session, session.begin():
            counts = write_records(
                session, batch, origin=source, hashes=hashes, dataset_names=dataset_names
            )
            for key, value in counts.items():
                setattr(summary, key, getattr(summary, key) + value)
            summary.seen += len(batch)
            session.execute(
                update(SyncRun)
                .where(SyncRun.id == run_id)
                .values(
                    seen=summary.seen,
                    added=summary.added,
                    updated=summary.updated,
                    unchanged=summary.unchanged,
                    errors=summary.errors,
                    state=dict(ctx.state),
                )
            )
        batch.clear()

    status, error = "ok", None
    try:
        items = scraper.iter_records(ctx)
        total = None if limit is not None else (len(known) or None)
        for item in track(items, description=f"sync {source}", total=total):
            if item.id in seen:
                log.debug("%s yielded %s twice; ignoring the repeat", source, item.id)
                continue
            seen.add(item.id)
            batch.append(item)
            if len(batch) >= settings.sync_batch_size:
                flush()
            if limit is not None and len(seen) >= limit:
                break
        flush()
    except (KeyboardInterrupt, SystemExit):
        with Session(engine) as session, session.begin():
            session.execute(
                update(SyncRun)
                .where(SyncRun.id == run_id)
                .values(status="interrupted", finished_at=utcnow(), error="interrupted")
            )
        raise
    except SecurityNetError as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a broken source must not stop the others
        log.exception("sync of %s failed", source)
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    if status == "failed" and batch:
        # keep what the scraper delivered before it failed: those reads are not repeated
        try:
            flush()
        except Exception:
            log.exception("could not store the last %d records of %s", len(batch), source)

    complete = status == "ok" and limit is None
    if complete and fingerprint is not None:
        ctx.state["fingerprint"] = fingerprint
    with Session(engine) as session, session.begin():
        if complete:
            gone = [i for i, r in known.items() if i not in seen]
            if gone:
                now = utcnow()
                for start in range(0, len(gone), 500):
                    session.execute(
                        update(Entry)
                        .where(Entry.id.in_(gone[start : start + 500]))
                        .values(removed_upstream=True, removed_at=now)
                    )
            summary.removed = len(gone)
        if status == "ok" and not complete:
            status = "partial"
        session.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id)
            .values(
                status=status,
                complete=complete,
                finished_at=utcnow(),
                removed=summary.removed,
                error=error,
                state=dict(ctx.state),
            )
        )
    summary.status, summary.error = status, error
    summary.seconds = time.perf_counter() - started
    log.info(summary.line())
    return summary


def _record_unchanged_run(
    engine: Engine,
    source: str,
    known: dict[str, str | None],
    fingerprint: str,
    started: float,
    state: dict[str, Any],
) -> SyncSummary:
    """Upstream is byte-for-byte what the last complete run saw: touch, don't re-read."""
    now = utcnow()
    ids = list(known)
    with Session(engine) as session, session.begin():
        for start in range(0, len(ids), 1000):
            session.execute(
                update(Entry).where(Entry.id.in_(ids[start : start + 1000])).values(last_seen=now)
            )
        session.add(
            SyncRun(
                source=source,
                status="ok",
                complete=True,
                started_at=now,
                finished_at=utcnow(),
                seen=len(ids),
                unchanged=len(ids),
                version=__version__,
                state={**state, "fingerprint": fingerprint},
                options={"skipped": "fingerprint unchanged"},
            )
        )
    summary = SyncSummary(source=source, seen=len(ids), unchanged=len(ids))
    summary.seconds = time.perf_counter() - started
    log.info("%s: upstream unchanged (%s); %d entries touched", source, fingerprint, len(ids))
    return summary


def sync_sources(
    engine: Engine,
    sources: Sequence[str] | None = None,
    *,
    settings: Settings,
    limit: int | None = None,
    options: dict[str, Any] | None = None,
    full: bool = False,
) -> list[SyncSummary]:
    """Sync each source in turn (default: every offline-capable one)."""
    names = list(sources) if sources else list(DEFAULT_SOURCES)
    summaries: list[SyncSummary] = []
    for name in names:
        try:
            scraper = get_scraper(name)
        except SecurityNetError:
            raise
        except Exception as exc:  # the scraper's module could not even be imported
            log.exception("cannot load the %s scraper", name)
            summaries.append(
                SyncSummary(source=name, status="failed", error=f"{type(exc).__name__}: {exc}")
            )
            continue
        if scraper.needs_network and settings.offline:
            summaries.append(SyncSummary(source=scraper.name, status="skipped", error="offline"))
            continue
        summaries.append(
            sync_source(
                engine, scraper, settings=settings, limit=limit, options=options, full=full
            )
        )
    return summaries
