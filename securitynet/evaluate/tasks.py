"""One entry's evaluation, from its catalogue record to result records. Runs in the calling
process or in a Ray worker: it reads the entry's files and data, never the catalogue.

Any failure (the entry does not load, the data does not fit it, a reconstructed member
set that the net does not recognise) becomes an evaluation with ``status="failed"``; it
never escapes to stop the batch.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from securitynet.data.protocol import MembershipProtocol, Selection, check_disjoint, parse_selection
from securitynet.data.sets import (
    CATALOGUE_NAMES,
    ImageSet,
    canonical_name,
    iter_batches,
    load_dataset,
    split_sizes,
)
from securitynet.errors import ProtocolError
from securitynet.evaluate.spec import (
    SOURCE,
    AccuracyRequest,
    EntryOutcome,
    MembershipRequest,
    library_versions,
)
from securitynet.records import EntryRecord, EvaluationRecord, MetricResult, config_digest

if TYPE_CHECKING:
    import torch

    from securitynet.attacks.membership.run import MembershipResult
    from securitynet.loader import LoadedNet
    from securitynet.settings import Settings

log = logging.getLogger(__name__)


#: AttackMetrics field -> the metric name stored in ``evaluation_metric`` (schema/catalogue.md).
STORED_NAMES = {
    "auc": "auc",
    "balanced_accuracy": "balanced_accuracy",
    "tpr_at_0_1_fpr": "tpr_at_0_1pct_fpr",
    "tpr_at_1_fpr": "tpr_at_1pct_fpr",
}


# --- identities (computed before dispatch, to decide what can be reused) ---------------------


def weights_identity(record: EntryRecord) -> list[str]:
    """The entry's weight files as pinned: sha256 where known, else URL and revision."""
    return sorted(f.sha256 or f"{f.url}@{record.revision or ''}" for f in record.files)


def dataset_label(name: str) -> str:
    key = canonical_name(name)
    return CATALOGUE_NAMES.get(key, key)


def membership_protocol(
    request: MembershipRequest,
) -> tuple[MembershipProtocol, Selection, Selection]:
    """The protocol (with digests) and the two selections, sampled to ``max_samples``."""
    sizes = split_sizes(request.data.name)
    members = parse_selection(request.members, sizes=sizes).sample(
        request.max_samples, seed=request.config.seed
    )
    nonmembers = parse_selection(request.nonmembers, sizes=sizes).sample(
        request.max_samples, seed=request.config.seed + 1
    )
    check_disjoint(members, nonmembers)
    protocol = MembershipProtocol(
        dataset=dataset_label(request.data.name),
        members=members.summary(),
        nonmembers=nonmembers.summary(),
        seed=request.config.seed,
        members_are_training_set=request.members_are_training_set,
    )
    return protocol, members, nonmembers


def entry_facts(record: EntryRecord) -> dict[str, Any]:
    """The entry's scalar facts: those it was ingested with, and (a catalogue entry) every
    stored fact row."""
    facts = dict(record.extra_facts)
    for fact in getattr(record, "facts", ()):
        facts.setdefault(fact.key, fact.value)
    return facts


def for_entry(record: EntryRecord, request: MembershipRequest) -> MembershipRequest:
    """``request`` with what comes from the entry filled in: the verified attacks' epsilon,
    when the user gave none, from the entry's certified-training facts."""
    from securitynet.attacks.membership.run import VERIFIED
    from securitynet.attacks.membership.verified import certified_epsilon

    config = request.config
    if config.verified.eps is not None or not set(VERIFIED) & set(config.attacks):
        return request
    eps, _ = certified_epsilon(entry_facts(record))
    if eps is None:
        return request
    verified = config.verified.model_copy(update={"eps": eps})
    return request.model_copy(update={"config": config.model_copy(update={"verified": verified})})


def variant_config(request: MembershipRequest, variant: str) -> dict[str, Any]:
    """What changes one attack's figures (the attack list itself does not)."""
    config = request.config.model_dump(mode="json", exclude={"attacks", "conditional"})
    if not variant.startswith("verified_"):
        config.pop("verified")
    if not variant.startswith("adv_"):
        config.pop("pgd")
    if not variant.startswith("lira"):
        config.pop("shadow")
        config.pop("budget_s")
    config["batch_size"] = request.data.batch_size
    return config


def load_membership_sets(
    request: MembershipRequest, settings: Settings | None = None
) -> dict[str, ImageSet] | None:
    """The splits a membership request reads, loaded once for the whole batch (every entry
    shares them; Ray ships them to its object store once). ``None`` when they do not load:
    each entry then tries itself and records the failure, as it would without sharing."""
    from securitynet.errors import SecurityNetError

    _, members, nonmembers = membership_protocol(request)
    data = request.data
    try:
        return {
            split: load_dataset(data.name, split, data_dir=data.data_dir, settings=settings)
            for split in sorted({members.split, nonmembers.split})
        }
    except SecurityNetError as exc:
        log.warning("%s does not load (%s): each entry will record the failure", data.name, exc)
        return None


def membership_digest(
    record: EntryRecord, request: MembershipRequest, protocol: MembershipProtocol, variant: str
) -> str:
    request = for_entry(record, request)
    return config_digest(
        {
            "kind": "mia",
            "variant": variant,
            "weights": weights_identity(record),
            "config": variant_config(request, variant),
            "protocol": protocol.digest,
            "expect_member_accuracy": request.expect_member_accuracy,
            "versions": library_versions(),
        }
    )


def accuracy_digest(record: EntryRecord, request: AccuracyRequest) -> str:
    return config_digest(
        {
            "kind": "accuracy",
            "weights": weights_identity(record),
            "request": request.model_dump(mode="json", exclude={"data": {"device", "data_dir"}}),
            "versions": library_versions(),
        }
    )


# --- the tasks -----------------------------------------------------------------------------


def _failed(
    entry_id: str,
    kind: str,
    variant: str | None,
    exc: BaseException,
    *,
    dataset: str | None,
    digest: str | None,
    protocol: dict[str, Any] | None = None,
) -> EvaluationRecord:
    from securitynet.errors import SecurityNetError

    if not isinstance(exc, SecurityNetError):
        log.warning(
            "%s: %s failed unexpectedly:\n%s",
            entry_id,
            kind,
            "".join(traceback.format_exception(exc)),
        )
    return EvaluationRecord(
        attack=kind,
        variant=variant,
        source=SOURCE,
        dataset=dataset,
        protocol=protocol or {},
        config_digest=digest,
        versions=library_versions(),
        status="failed",
        error=f"{type(exc).__name__}: {exc}"[:4000],
    )


def _load(record: EntryRecord, device: str, settings: Settings | None) -> LoadedNet:
    from securitynet.loader import load_entry

    return load_entry(record, device=device, settings=settings)


def wilson(correct: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion."""
    if total == 0:
        return 0.0, 1.0
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    # at 0 or ``total`` the bound is the proportion itself (rounding must not cross it)
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == total else min(1.0, centre + half)
    return low, high


def run_accuracy(
    record: EntryRecord, request: AccuracyRequest, digest: str, settings: Settings | None = None
) -> EntryOutcome:
    """Top-1 accuracy of ``record`` on ``request.split`` (percent, Wilson interval)."""
    from securitynet.attacks.membership.query import NetQuery

    dataset = dataset_label(request.data.name)
    started = time.perf_counter()
    try:
        loaded = _load(record, request.data.device, settings)
        images = load_dataset(
            request.data.name, request.split, data_dir=request.data.data_dir, settings=settings
        )
        indices = np.arange(len(images))
        if request.max_samples is not None and request.max_samples < len(indices):
            indices = np.sort(
                np.random.default_rng(request.seed).choice(
                    indices, request.max_samples, replace=False
                )
            )
        query = NetQuery(loaded.net, loaded.spec.output or "logits", request.data.device)
        probs, labels = query.posteriors(
            iter_batches(images, indices, loaded.transform, batch_size=request.data.batch_size)
        )
        correct, total = int((probs.argmax(1) == labels).sum()), len(labels)
        low, high = wilson(correct, total)
        evaluation = EvaluationRecord(
            attack="accuracy",
            variant="top1",
            source=SOURCE,
            dataset=dataset,
            config={
                "split": request.split,
                "max_samples": request.max_samples,
                "batch_size": request.data.batch_size,
            },
            protocol={
                "dataset": dataset,
                "split": request.split,
                "size": total,
                "seed": request.seed,
            },
            seed=request.seed,
            config_digest=digest,
            versions=library_versions(),
            device=request.data.device,
            duration_s=time.perf_counter() - started,
            metrics=[
                MetricResult(
                    metric="top1",
                    value=100.0 * correct / total,
                    lower=100.0 * low,
                    upper=100.0 * high,
                ),
                MetricResult(metric="samples", value=float(total)),
            ],
        )
    except Exception as exc:  # the batch boundary: recorded, never raised
        evaluation = _failed(record.id, "accuracy", "top1", exc, dataset=dataset, digest=digest)
    return EntryOutcome(entry_id=record.id, evaluations=[evaluation])


def run_membership_task(
    record: EntryRecord,
    request: MembershipRequest,
    digests: dict[str, str],
    settings: Settings | None = None,
    sets: dict[str, ImageSet] | None = None,
) -> EntryOutcome:
    """The membership attacks named in ``digests`` (variant -> config digest) on ``record``;
    ``sets`` (from :func:`load_membership_sets`) saves loading the data again. An attack
    skipped as not applicable (see :mod:`securitynet.attacks.membership.run`) stores nothing;
    its reason is in ``extra["skipped"]``."""
    request = for_entry(record, request)
    variants = list(digests)
    dataset = dataset_label(request.data.name)
    outcome = EntryOutcome(entry_id=record.id)
    protocol_json: dict[str, Any] | None = None
    started = time.perf_counter()
    try:
        protocol, members, nonmembers = membership_protocol(request)
        protocol_json = {**protocol.model_dump(mode="json"), "digest": protocol.digest}
        loaded = _load(record, request.data.device, settings)
        result, extra = _attack(loaded, request, members, nonmembers, variants, settings, sets)
    except Exception as exc:  # the batch boundary: every asked variant is recorded as failed
        outcome.evaluations = [
            _failed(
                record.id, "mia", v, exc, dataset=dataset, digest=digests[v], protocol=protocol_json
            )
            for v in variants
        ]
        outcome.extra["seconds"] = time.perf_counter() - started
        return outcome
    versions = library_versions()
    for variant in variants:
        if variant in result.skipped:
            continue
        base = EvaluationRecord(
            attack="mia",
            variant=variant,
            source=SOURCE,
            dataset=dataset,
            config=variant_config(request, variant),
            protocol=protocol_json or {},
            seed=request.config.seed,
            config_digest=digests[variant],
            versions=versions,
            device=request.data.device,
            duration_s=result.seconds.get(variant),
        )
        if variant in result.errors:
            base.status, base.error = "failed", result.errors[variant]
        else:
            m = result.metrics[variant]
            base.metrics = [
                MetricResult(
                    metric=STORED_NAMES[name],
                    value=getattr(m, name).value,
                    lower=getattr(m, name).low,
                    upper=getattr(m, name).high,
                )
                for name in ("auc", "balanced_accuracy", "tpr_at_0_1_fpr", "tpr_at_1_fpr")
            ] + [
                MetricResult(metric="members", value=float(m.members)),
                MetricResult(metric="nonmembers", value=float(m.nonmembers)),
                MetricResult(metric="member_accuracy", value=100.0 * extra["members"]),
                MetricResult(metric="nonmember_accuracy", value=100.0 * extra["nonmembers"]),
            ]
            fpr, tpr = result.roc[variant]
            outcome.roc[variant] = (fpr.tolist(), tpr.tolist())
        outcome.evaluations.append(base)
    outcome.extra = {k: v for k, v in result.extra.items() if k != "target_accuracy"} | {
        "target_accuracy": extra
    }
    if result.skipped:
        outcome.extra["skipped"] = dict(result.skipped)
    return outcome


def _attack(
    loaded: LoadedNet,
    request: MembershipRequest,
    members: Selection,
    nonmembers: Selection,
    variants: list[str],
    settings: Settings | None,
    shared: dict[str, ImageSet] | None,
) -> tuple[MembershipResult, dict[str, float]]:
    import json

    from securitynet.attacks.membership.query import NetQuery
    from securitynet.attacks.membership.run import run_membership

    data = request.data
    sets = dict(shared or {})
    for split in {members.split, nonmembers.split} - set(sets):
        sets[split] = load_dataset(data.name, split, data_dir=data.data_dir, settings=settings)
    query = NetQuery(loaded.net, loaded.spec.output or "logits", data.device)

    def batches(sel: Selection) -> Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
        return lambda: iter_batches(
            sets[sel.split], sel.indices, loaded.transform, batch_size=data.batch_size
        )

    if request.expect_member_accuracy is not None:
        # checked on the whole member selection, before any sampling
        full = parse_selection(request.members, sizes=split_sizes(data.name))
        probs, labels = query.posteriors(batches(full)())
        measured = float((probs.argmax(1) == labels).mean())
        if abs(measured - request.expect_member_accuracy) > request.expect_tolerance:
            raise ProtocolError(
                f"the net is {100 * measured:.2f} % right on the {len(full)} members {full.spec!r}, "
                f"expected {100 * request.expect_member_accuracy:.1f} % ± {100 * request.expect_tolerance:.1f}: "
                "this is not its training set",
                measured=measured,
            )
    config = request.config.model_copy(update={"attacks": variants})
    architecture = json.dumps(loaded.spec.model_dump(mode="json"), sort_keys=True)
    result = run_membership(
        query,
        batches(members),
        batches(nonmembers),
        config,
        mean=tuple(loaded.spec.mean) if loaded.spec.mean else None,
        std=tuple(loaded.spec.std) if loaded.spec.std else None,
        architecture=architecture,
        cache_dir=request.cache_dir,
    )
    accuracy: dict[str, float] = result.extra["target_accuracy"]  # type: ignore[assignment]
    return result, accuracy
