"""Writing back what a source read on demand for an entry its sync left pending.

The hf source does not read a new model's config.json or weight-file metadata at sync: the
entry's ``raw["pending"]`` says what is missing, and the first ``load`` or ``show`` of the
entry reads it (:meth:`securitynet.catalogue.api.Catalogue.fill_pending`). This module
writes the result, an :class:`EntryFill`, over the stored entry: the scalar columns it
states and their fact rows, the load spec, the weight files' size and sha256, its errors;
and what is still pending. The content hash is left alone: the next sync of an unchanged
model keeps what was filled.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from securitynet.catalogue.models import AnnotationError, Entry, Fact, WeightFile, utcnow
from securitynet.errors import EntryNotFoundError
from securitynet.records import EntryFill

log = logging.getLogger(__name__)

#: Entry columns a fill may state.
FILL_FIELDS = ("architecture", "family", "num_classes", "input_size")


def pending_of(raw: object) -> list[str]:
    """What an entry's ``raw`` payload lists as pending (empty when nothing is)."""
    if not isinstance(raw, dict):
        return []
    pending = raw.get("pending")
    return [str(p) for p in pending] if isinstance(pending, list) else []


def apply_fill(session: Session, fill: EntryFill, *, origin: str) -> None:
    """Write ``fill`` (from the writer ``origin``) over entry ``fill.id``. Does not commit."""
    entry = session.get(Entry, fill.id)
    if entry is None:
        raise EntryNotFoundError(f"no entry {fill.id!r} to fill", entry_id=fill.id)
    now = utcnow()
    common = {"entry_id": fill.id, "origin": origin, "recorded_at": now, "source": origin}
    stated = {k: getattr(fill, k) for k in FILL_FIELDS if getattr(fill, k) is not None}
    for key, value in stated.items():
        setattr(entry, key, value)
    if stated:
        session.execute(
            delete(Fact).where(
                Fact.entry_id == fill.id, Fact.origin == origin, Fact.key.in_(list(stated))
            )
        )
        session.execute(
            insert(Fact),
            [
                {**common, "key": k, "value": v, "evidence": fill.evidence.get(k)}
                for k, v in stated.items()
            ],
        )
    if fill.load is not None:
        entry.load_spec = fill.load.model_dump(mode="json")
    pins = {f.url: f for f in fill.files}
    rows = session.scalars(
        select(WeightFile).where(WeightFile.entry_id == fill.id, WeightFile.origin == origin)
    )
    for row in rows:
        ref = pins.get(row.url)
        if ref is None:
            continue
        row.size = row.size or ref.size
        if ref.sha256 and not row.sha256:
            row.sha256, row.checksum, row.checksum_algo = ref.sha256, ref.sha256, "sha256"
            row.evidence = "Hub file metadata (X-Linked-Etag: the LFS object's sha256)"
    if fill.errors:
        session.execute(
            insert(AnnotationError),
            [{**common, "message": m, "evidence": None} for m in fill.errors],
        )
    raw = dict(entry.raw or {})
    if fill.pending:
        raw["pending"] = list(fill.pending)
    else:
        raw.pop("pending", None)
    entry.raw = raw
    log.info("filled %s (%s)", fill.id, ", ".join(stated) or "pins only")
