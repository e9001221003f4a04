"""Write architecture facts measured on the meta device into the catalogue (origin ``archfacts``).

Not part of ``securitynet sync``: computing every timm architecture takes minutes, so it
runs on demand (``securitynet annotate arch-facts``) and reads its results from the cache
of :mod:`securitynet.annotate.archfacts` once computed.

Each entry's ``load_spec`` names its net (builder, architecture, input size, classes);
entries sharing a net (many timm tags share an architecture) are measured once. For each
entry measured this writes ``fact`` rows (``params``, ``gflops``) with source
``measured:meta-device`` beside whatever its source claimed, and an ``annotation_error`` row
when the net could not be measured. The entry's own ``params`` / ``gflops`` columns are filled
only where no source gave a value; a source's claim is never overwritten. Running it again
replaces its own rows and nothing else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.orm import Session

from securitynet.annotate.archfacts import (
    ArchFacts,
    ArchFactsCache,
    ArchSpec,
    compute_arch_facts_batch,
    find_builder,
)
from securitynet.catalogue.models import AnnotationError, Entry, Fact, utcnow
from securitynet.errors import InvalidQueryError
from securitynet.ids import normalise_source
from securitynet.records import LoadSpec

log = logging.getLogger(__name__)

ORIGIN = "archfacts"
SOURCE = "measured:meta-device"
KEYS = ("params", "gflops")
_CHUNK = 500


@dataclass
class ArchFactsSummary:
    """What :func:`apply_arch_facts` did."""

    entries: int = 0  # entries measured (their facts written)
    architectures: int = 0  # distinct nets among them
    computed: int = 0
    cached: int = 0
    failed: int = 0  # distinct nets that could not be (fully) measured
    skipped: int = 0  # distinct nets left out by the time budget
    unsupported: int = 0  # entries whose load spec names no builder we know
    filled_params: int = 0  # entries whose params column came from us
    filled_gflops: int = 0
    facts: int = 0  # fact rows written
    seconds: float = 0.0

    def line(self) -> str:
        text = (
            f"arch facts: {self.entries} entries, {self.architectures} architectures "
            f"({self.computed} computed, {self.cached} cached, {self.failed} failed"
        )
        if self.skipped:
            text += f", {self.skipped} left for the next run (time budget)"
        text += (
            f"); {self.facts} facts written, params filled on {self.filled_params} entries, "
            f"gflops on {self.filled_gflops}"
        )
        if self.unsupported:
            text += f"; {self.unsupported} entries with no buildable load spec"
        return text + f" ({self.seconds:.1f} s)"


def spec_of(load_spec: dict[str, Any] | None, *, num_classes: int | None = None) -> ArchSpec | None:
    """The :class:`ArchSpec` of an entry's stored load spec; None when no builder we know
    builds it. ``num_classes`` (the entry's column) is used when the load spec has none."""
    if not load_spec:
        return None
    try:
        load = LoadSpec.model_validate(load_spec)
    except ValidationError:
        return None
    if load.architecture is None or find_builder(load.builder) is None:
        return None
    try:
        return ArchSpec.of(
            load.builder,
            load.architecture,
            input_size=load.input_size,
            num_classes=load.num_classes if load.num_classes is not None else num_classes,
            kwargs=load.kwargs,
        )
    except InvalidQueryError:  # constructor arguments that are not JSON values
        return None


def _evidence(key: str, spec: ArchSpec, facts: ArchFacts) -> str:
    size = "x".join(map(str, facts.input_size)) if facts.input_size else "default"
    built = f"{facts.library} '{spec.architecture}' built with pretrained=False on torch's meta device ({facts.method})"
    if key == "params":
        return f"{built}, {facts.num_classes} classes; every parameter counted (trainable or not), buffers not"
    return (
        f"{built}; FLOPs of one {size} image, eval mode, counted by torch {facts.torch} FlopCounterMode "
        f"(1 multiply-accumulate = 2 FLOPs; GMACs = gflops / 2)"
    )


def apply_arch_facts(
    engine: Engine,
    *,
    sources: Sequence[str] | None = None,
    only_missing: bool = True,
    limit: int | None = None,
    workers: int = 1,
    budget_s: float | None = None,
    cache: ArchFactsCache | None = None,
    refresh: bool = False,
    progress: bool = True,
) -> ArchFactsSummary:
    """Measure the nets of catalogue entries on the meta device and record the results.

    ``sources`` restricts to entries of those sources (default: all). With ``only_missing``
    (the default) only entries lacking a source's ``params`` or ``gflops`` are measured;
    otherwise every entry with a buildable load spec is (its facts sit beside the source's).
    ``limit`` caps the number of distinct architectures measured (in entry-id order); every
    entry sharing one of them is written. ``workers``, ``budget_s`` and ``refresh`` are those
    of :func:`~securitynet.annotate.archfacts.compute_arch_facts_batch`; ``cache`` defaults
    to the cache in the securitynet home.
    """
    started = time.monotonic()
    summary = ArchFactsSummary()
    wanted_sources = [normalise_source(s) for s in sources] if sources else None

    with Session(engine) as session:
        stmt = select(
            Entry.id, Entry.params, Entry.gflops, Entry.num_classes, Entry.load_spec
        ).where(Entry.removed_upstream.is_(False))
        if wanted_sources:
            stmt = stmt.where(Entry.source.in_(wanted_sources))
        rows = session.execute(stmt.order_by(Entry.id)).all()
        # (entry, key) pairs some writer other than us has stated: those columns are theirs
        claimed = {
            (eid, key)
            for eid, key in session.execute(
                select(Fact.entry_id, Fact.key).where(Fact.key.in_(KEYS), Fact.origin != ORIGIN)
            )
        }
        ours = {
            (eid, key)
            for eid, key in session.execute(
                select(Fact.entry_id, Fact.key).where(Fact.key.in_(KEYS), Fact.origin == ORIGIN)
            )
        }

    def has_claim(eid: str, key: str, column: object) -> bool:
        # a value in the column that we did not put there is a claim too (written without facts)
        return (eid, key) in claimed or (column is not None and (eid, key) not in ours)

    plan: dict[str, tuple[ArchSpec, dict[str, bool]]] = {}  # entry id -> spec, key -> claimed
    chosen: dict[ArchSpec, None] = {}
    for row in rows:
        spec = spec_of(row.load_spec, num_classes=row.num_classes)
        if spec is None:
            summary.unsupported += 1
            continue
        claims = {
            "params": has_claim(row.id, "params", row.params),
            "gflops": has_claim(row.id, "gflops", row.gflops),
        }
        if only_missing and all(claims.values()):
            continue
        if spec not in chosen:
            if limit is not None and len(chosen) >= limit:
                continue
            chosen[spec] = None
        plan[row.id] = (spec, claims)

    batch = compute_arch_facts_batch(
        list(chosen),
        cache=cache if cache is not None else ArchFactsCache.default(),
        workers=workers,
        budget_s=budget_s,
        refresh=refresh,
        progress=progress,
    )
    summary.architectures = len(chosen)
    summary.computed, summary.cached, summary.failed = batch.computed, batch.cached, batch.failed
    summary.skipped = len(batch.skipped)

    now = utcnow()
    done = [(eid, spec, claims) for eid, (spec, claims) in plan.items() if spec in batch.facts]
    with Session(engine) as session, session.begin():
        for start in range(0, len(done), _CHUNK):
            chunk = done[start : start + _CHUNK]
            ids = [eid for eid, _, _ in chunk]
            for table in (Fact, AnnotationError):
                session.execute(
                    delete(table).where(table.entry_id.in_(ids), table.origin == ORIGIN)
                )
            facts_rows: list[dict[str, Any]] = []
            error_rows: list[dict[str, Any]] = []
            column_rows: list[dict[str, Any]] = []
            for eid, spec, claims in chunk:
                facts = batch.facts[spec]
                common = {"entry_id": eid, "source": SOURCE, "origin": ORIGIN, "recorded_at": now}
                values = {"params": facts.params, "gflops": facts.gflops}
                for key, value in values.items():
                    if value is not None:
                        facts_rows.append(
                            {
                                **common,
                                "key": key,
                                "value": value,
                                "evidence": _evidence(key, spec, facts),
                            }
                        )
                if facts.error:
                    error_rows.append(
                        {**common, "message": facts.error, "evidence": f"{facts.library} {spec}"}
                    )
                fill = {key: value for key, value in values.items() if not claims[key]}
                if fill:
                    column_rows.append({"id": eid, **fill})
                    summary.filled_params += fill.get("params") is not None
                    summary.filled_gflops += fill.get("gflops") is not None
            if column_rows:  # bulk UPDATE by primary key, batched per set of columns
                session.execute(update(Entry), column_rows)
            if facts_rows:
                session.execute(insert(Fact), facts_rows)
            if error_rows:
                session.execute(insert(AnnotationError), error_rows)
            summary.facts += len(facts_rows)
    summary.entries = len(done)
    summary.seconds = time.monotonic() - started
    log.info(summary.line())
    return summary
