"""Ingesting an importer's output: entries it owns, and attachments to other sources' entries.

An importer (``securitynet import securitynet-release``, ``robustbench``) reads one
published document and yields :class:`EntryRecord` values for the entries it owns (ids
with its own prefix) and :class:`Attachment` values: claims, facts and evaluation figures
about entries that may belong to another source (the release's imgclsmob rows attach to
the ``imgclsmob:`` entries). Everything is written in one transaction with the importer's
name as ``origin``, replacing only that importer's earlier rows, so importing again is
idempotent and never counts a figure twice. An attachment to an entry that is not
catalogued is reported (``missing``), not invented.

Entry columns an attachment fills (``purpose``, ``venue``, ...; only where empty) are the
merged view: a later sync that rewrites the entry from its own source empties them again
until the next import (their ``fact`` rows stay), as a curated value would be re-applied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from enum import Enum
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.orm import Session

from securitynet.catalogue.ingest import _ensure_datasets, seed_datasets, write_records
from securitynet.catalogue.models import AccuracyClaimRow, Entry, Fact, utcnow
from securitynet.catalogue.results import replace_evaluations
from securitynet.records import ANNOTATED_FIELDS, Attachment, EntryRecord, ImportSummary

log = logging.getLogger(__name__)

_CHUNK = 500


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def import_items(
    engine: Engine,
    items: Iterable[EntryRecord | Attachment],
    *,
    importer: str,
    entry_source: str,
    location: str,
    complete: bool = True,
) -> ImportSummary:
    """Store ``items`` (everything ``importer`` read from ``location``).

    ``entry_source`` is the id prefix of the entries the importer owns; when ``complete``,
    its entries that were not read again are marked removed upstream (never deleted), and
    the importer's evaluations of entries it did not read again are dropped."""
    started = time.monotonic()
    records: dict[str, EntryRecord] = {}
    attachments: list[Attachment] = []
    for item in items:
        if isinstance(item, EntryRecord):
            if item.id in records:
                log.warning("%s yielded %s twice; keeping the first", importer, item.id)
                continue
            records[item.id] = item
        else:
            attachments.append(item)
    summary = ImportSummary(importer=importer, location=location)
    now = utcnow()
    with Session(engine) as session, session.begin():
        seed_datasets(session)
        known: set[str] = set()
        counts = write_records(session, list(records.values()), origin=importer, dataset_names=known)
        summary.added, summary.updated, summary.unchanged = (
            counts["added"],
            counts["updated"],
            counts["unchanged"],
        )
        summary.claims = sum(len(r.claims) for r in records.values())

        wanted = sorted({a.entry_id for a in attachments})
        present: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(wanted):
            for row in session.execute(
                select(Entry.id, Entry.source, *(getattr(Entry, f) for f in ANNOTATED_FIELDS)).where(
                    Entry.id.in_(chunk)
                )
            ):
                present[row.id] = dict(row._mapping)
        summary.missing = [eid for eid in wanted if eid not in present]
        for eid in summary.missing:
            log.warning("%s: %s is not in the catalogue; its figures are not stored", importer, eid)
        foreign = sorted(eid for eid, row in present.items() if row["source"] != entry_source)
        summary.attached = len({a.entry_id for a in attachments if a.entry_id in foreign})
        for chunk in _chunks(foreign):
            for table in (AccuracyClaimRow, Fact):
                session.execute(
                    delete(table).where(table.entry_id.in_(chunk), table.origin == importer)
                )
        kept = [a for a in attachments if a.entry_id in present]
        _write_attachments(session, kept, importer=importer, present=present, known=known, now=now)
        summary.claims += sum(len(a.claims) for a in kept)

        evaluations = [(a.entry_id, e) for a in kept for e in a.evaluations]
        scope = None if complete else sorted({a.entry_id for a in kept})
        replace_evaluations(session, evaluations, source=importer, entry_ids=scope)
        summary.evaluations = len(evaluations)
        summary.figures = sum(len(e.metrics) for _, e in evaluations)

        if complete:
            stored = session.scalars(
                select(Entry.id).where(Entry.source == entry_source, Entry.removed_upstream.is_(False))
            ).all()
            gone = [eid for eid in stored if eid not in records]
            for chunk in _chunks(gone):
                session.execute(
                    update(Entry).where(Entry.id.in_(chunk)).values(removed_upstream=True, removed_at=now)
                )
            summary.removed = len(gone)
    summary.seconds = time.monotonic() - started
    return summary


def _write_attachments(
    session: Session,
    attachments: list[Attachment],
    *,
    importer: str,
    present: dict[str, dict[str, Any]],
    known: set[str],
    now: Any,
) -> None:
    common = {"origin": importer, "recorded_at": now}
    claims = [
        {**common, "entry_id": a.entry_id, **c.model_dump()} for a in attachments for c in a.claims
    ]
    facts = [
        {
            **common,
            "entry_id": a.entry_id,
            "key": key,
            "value": value.value if isinstance(value, Enum) else value,
            "source": a.source,
            "evidence": a.evidence,
        }
        for a in attachments
        for key, value in a.facts.items()
        if value is not None
    ]
    _ensure_datasets(session, [c["dataset"] for c in claims], known)
    if claims:
        session.execute(insert(AccuracyClaimRow), claims)
    if facts:
        session.execute(insert(Fact), facts)
    # fill the entry columns users filter on where the entry says nothing yet
    for a in attachments:
        row = present[a.entry_id]
        fill = {
            k: v
            for k, v in a.facts.items()
            if k in ANNOTATED_FIELDS and v is not None and row.get(k) is None
        }
        if fill:
            session.execute(update(Entry).where(Entry.id == a.entry_id).values(**fill))
            row.update(fill)
