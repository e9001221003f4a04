"""Entries x attacks -> results in the catalogue.

    >>> from securitynet.evaluate import evaluate, MembershipRequest, DataSpec
    >>> report = evaluate(MembershipRequest(data=DataSpec(name="mnist"), members="train[:1000]"),
    ...                   entries=["github:john-samurai/AttackDefenseMNIST-trainedModel/mnist_cnn.pt"])

Entries come by id or through ``where`` (an SQL condition on the ``entry`` table, run by the
read-only SQL guard). For each entry and attack variant a configuration digest (weights
hash, configuration, protocol digest, library versions) is looked up first: a stored
successful result with the same digest is reused unless ``force``. The rest runs on the
executor, one task per entry; each outcome is stored as soon as it arrives, failures
included, and never stops the batch. ``eval accuracy`` also stores a measured accuracy
claim beside the published ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from securitynet.errors import InvalidQueryError
from securitynet.evaluate.backdoor import ATTACK as BACKDOOR
from securitynet.evaluate.backdoor import BackdoorRequest, backdoor_digest, run_backdoor_task
from securitynet.evaluate.executors import Executor, InProcessExecutor
from securitynet.evaluate.reuse import ATTACK as REUSE
from securitynet.evaluate.reuse import ReuseRequest, reuse_digest, run_reuse_task
from securitynet.evaluate.spec import AccuracyRequest, EntryOutcome, MembershipRequest
from securitynet.evaluate.stealing import ATTACK as STEALING
from securitynet.evaluate.stealing import StealingRequest, run_stealing_task, stealing_digest
from securitynet.evaluate.tasks import (
    accuracy_digest,
    load_membership_sets,
    membership_digest,
    membership_protocol,
    run_accuracy,
    run_membership_task,
)
from securitynet.records import EvaluationRecord

if TYPE_CHECKING:
    from securitynet.catalogue.api import Catalogue
    from securitynet.data.sets import ImageSet

log = logging.getLogger(__name__)


@dataclass
class BatchReport:
    """What a batch did: per entry, the evaluations (new or reused) and the ROC curves."""

    outcomes: list[EntryOutcome] = field(default_factory=list)
    stored: int = 0
    reused: int = 0
    failed: int = 0
    seconds: float = 0.0
    executor: str = "local"

    def rows(self) -> list[dict[str, Any]]:
        """One row per evaluation and metric, for a table or JSON."""
        out = []
        for o in self.outcomes:
            for ev in o.evaluations:
                base: dict[str, Any] = {
                    "entry_id": o.entry_id,
                    "attack": ev.attack,
                    "variant": ev.variant,
                    "status": ev.status,
                    "reused": ev.variant in o.reused,
                }
                if ev.status != "ok":
                    out.append(
                        {
                            **base,
                            "metric": None,
                            "value": None,
                            "lower": None,
                            "upper": None,
                            "error": ev.error,
                        }
                    )
                for m in ev.metrics:
                    out.append(
                        {
                            **base,
                            "metric": m.metric,
                            "value": m.value,
                            "lower": m.lower,
                            "upper": m.upper,
                            "error": None,
                        }
                    )
        return out


def select_entries(cat: Catalogue, entries: Sequence[str], where: str | None) -> list[str]:
    """The ids given, then those ``where`` selects (read-only SQL), without repeats."""
    ids = list(dict.fromkeys(entries))
    if where:
        if ";" in where:
            raise InvalidQueryError("--where takes one SQL condition, without ';'")
        result = cat.sql(f"SELECT id FROM entry WHERE ({where}) ORDER BY id")
        if result.truncated:
            log.warning(
                "--where matched more than %d entries; the rest are left out", len(result.rows)
            )
        ids.extend(str(row[0]) for row in result.rows if str(row[0]) not in ids)
    if not ids:
        raise InvalidQueryError(
            "no entries to evaluate", hint="Give entry ids or a --where condition."
        )
    return ids


Request = AccuracyRequest | MembershipRequest | StealingRequest | BackdoorRequest | ReuseRequest


def evaluate(
    request: Request,
    *,
    entries: Sequence[str] = (),
    where: str | None = None,
    catalogue: Catalogue | None = None,
    executor: Executor | None = None,
    force: bool = False,
) -> BatchReport:
    """Run ``request`` on every selected entry and store the results in the catalogue."""
    from securitynet.catalogue.api import Catalogue

    cat = catalogue or Catalogue()
    executor = executor or InProcessExecutor()
    started = time.perf_counter()
    report = BatchReport(executor=executor.name)
    ids = select_entries(cat, entries, where)
    records = {eid: cat.get(eid) for eid in ids}
    if isinstance(request, MembershipRequest):
        if request.config.shadow and request.cache_dir is None:
            request = request.model_copy(
                update={"cache_dir": cat.settings.resolved_cache_dir / "shadows"}
            )
        protocol, _, _ = membership_protocol(request)  # a bad protocol fails here, before any entry
        sets: dict[str, ImageSet] | None = None
        sets_tried = False
        jobs: list[tuple[Any, ...]] = []
        for eid, record in records.items():
            digests = {
                v: membership_digest(record, request, protocol, v) for v in request.config.attacks
            }
            reused = _reuse(cat, eid, "mia", digests, force)
            todo = {v: d for v, d in digests.items() if v not in reused}
            if todo:
                if not sets_tried:  # the data once for the batch, only if anything runs
                    sets, sets_tried = load_membership_sets(request, cat.settings), True
                jobs.append((record, request, todo, cat.settings, sets))
            if reused:
                report.outcomes.append(
                    EntryOutcome(
                        entry_id=eid, evaluations=list(reused.values()), reused=list(reused)
                    )
                )
        fn: Any = run_membership_task
    elif isinstance(request, StealingRequest):
        if ":" in request.config.surrogate and request.surrogate_entry is None:
            # a catalogue entry as the surrogate's architecture: its record travels with the task
            request = request.model_copy(
                update={"surrogate_entry": cat.get(request.config.surrogate)}
            )
        jobs = []
        for eid, record in records.items():
            digests = {v: stealing_digest(record, request, b) for v, b in request.variants().items()}
            reused = _reuse(cat, eid, STEALING, digests, force)
            todo = {v: d for v, d in digests.items() if v not in reused}
            if todo:
                jobs.append((record, request, todo, cat.settings))
            if reused:
                report.outcomes.append(
                    EntryOutcome(
                        entry_id=eid, evaluations=list(reused.values()), reused=list(reused)
                    )
                )
        fn = run_stealing_task
    elif isinstance(request, ReuseRequest):
        jobs = []
        variant = request.variant()
        for eid, record in records.items():
            digest = reuse_digest(record, request)
            reused = _reuse(cat, eid, REUSE, {variant: digest}, force)
            if reused:
                report.outcomes.append(
                    EntryOutcome(entry_id=eid, evaluations=list(reused.values()), reused=[variant])
                )
            else:
                jobs.append((record, request, digest, cat.settings))
        fn = run_reuse_task
    elif isinstance(request, BackdoorRequest):
        jobs = []
        for eid, record in records.items():
            digest = backdoor_digest(record, request)
            reused = _reuse(cat, eid, BACKDOOR, {request.method: digest}, force)
            if reused:
                report.outcomes.append(
                    EntryOutcome(entry_id=eid, evaluations=list(reused.values()), reused=list(reused))
                )
            else:
                jobs.append((record, request, digest, cat.settings))
        fn = run_backdoor_task
    else:
        jobs = []
        for eid, record in records.items():
            digest = accuracy_digest(record, request)
            reused = _reuse(cat, eid, "accuracy", {"top1": digest}, force)
            if reused:
                report.outcomes.append(
                    EntryOutcome(entry_id=eid, evaluations=list(reused.values()), reused=["top1"])
                )
            else:
                jobs.append((record, request, digest, cat.settings))
        fn = run_accuracy
    report.reused = sum(len(o.reused) for o in report.outcomes)
    for outcome in executor.map(fn, jobs, description=f"eval {request.kind}"):
        _store(cat, outcome, request)
        report.stored += len(outcome.evaluations)
        report.failed += sum(ev.status != "ok" for ev in outcome.evaluations)
        _merge(report, outcome)
    report.seconds = time.perf_counter() - started
    return report


def _reuse(
    cat: Catalogue, entry_id: str, attack: str, digests: dict[str, str], force: bool
) -> dict[str, EvaluationRecord]:
    if force:
        return {}
    found = {}
    for variant, digest in digests.items():
        hit = cat.find_evaluation(entry_id, attack=attack, config_digest=digest)
        if hit is not None:
            found[variant] = hit
    return found


def _merge(report: BatchReport, outcome: EntryOutcome) -> None:
    for existing in report.outcomes:
        if existing.entry_id == outcome.entry_id:
            existing.evaluations.extend(outcome.evaluations)
            existing.roc.update(outcome.roc)
            existing.extra.update(outcome.extra)
            return
    report.outcomes.append(outcome)


def _store(
    cat: Catalogue,
    outcome: EntryOutcome,
    request: Request,
) -> None:
    from securitynet.catalogue.results import add_evaluations

    with cat.session() as session, session.begin():
        add_evaluations(session, [(outcome.entry_id, ev) for ev in outcome.evaluations])
        if isinstance(request, AccuracyRequest):
            for ev in outcome.evaluations:
                if ev.status == "ok":
                    _measured_claim(session, outcome.entry_id, ev, request)


def _measured_claim(
    session: Any, entry_id: str, ev: EvaluationRecord, request: AccuracyRequest
) -> None:
    """The measured top-1 as an accuracy claim (kind ``measured``), beside the published ones;
    an earlier measurement of ours on the same data set and split is replaced."""
    from sqlalchemy import delete

    from securitynet.catalogue.models import AccuracyClaimRow
    from securitynet.records import ClaimKind, Metric

    top1 = ev.metric("top1")
    assert top1 is not None and ev.dataset is not None  # a successful accuracy run has both
    session.execute(
        delete(AccuracyClaimRow).where(
            AccuracyClaimRow.entry_id == entry_id,
            AccuracyClaimRow.origin == "evaluate",
            AccuracyClaimRow.dataset == ev.dataset,
            AccuracyClaimRow.split == request.split,
        )
    )
    session.add(
        AccuracyClaimRow(
            entry_id=entry_id,
            dataset=ev.dataset,
            split=request.split,
            metric=Metric.TOP1,
            value=round(top1, 4),
            kind=ClaimKind.MEASURED,
            source="securitynet-eval",
            evidence=f"securitynet eval accuracy: {int(ev.metric('samples') or 0)} images of {ev.dataset} {request.split}",
            origin="evaluate",
        )
    )


def list_failures(
    cat: Catalogue,
    *,
    entry_id: str | None = None,
    attack: str | None = None,
    variant: str | None = None,
    limit: int | None = None,
) -> list[EvaluationRecord]:
    """Failed evaluations (they have no figures, so ``v_results`` does not show them), newest first."""
    from sqlalchemy import select

    from securitynet.catalogue.models import Evaluation

    stmt = select(Evaluation).where(Evaluation.status == "failed")
    for column, value in ((Evaluation.entry_id, entry_id), (Evaluation.attack, attack), (Evaluation.variant, variant)):
        if value is not None:
            stmt = stmt.where(column == value)
    stmt = stmt.order_by(Evaluation.created_at.desc(), Evaluation.id.desc()).limit(limit)
    with cat.session() as session:
        return [EvaluationRecord.model_validate(row, from_attributes=True) for row in session.scalars(stmt)]


def plot_outcomes(report: BatchReport, path: Path) -> Path:
    """One ROC figure: every attack of a single entry, or each entry's attacks prefixed by id."""
    from securitynet.attacks.membership.plot import plot_roc

    curves: dict[str, tuple[Any, Any]] = {}
    single = len(report.outcomes) == 1
    for o in report.outcomes:
        for variant, (fpr, tpr) in o.roc.items():
            curves[variant if single else f"{o.entry_id.split('/')[-1]} {variant}"] = (fpr, tpr)
    title = report.outcomes[0].entry_id if single and report.outcomes else ""
    import numpy as np

    return plot_roc(
        {k: (np.asarray(f), np.asarray(t)) for k, (f, t) in curves.items()}, path, title=title
    )
