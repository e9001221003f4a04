"""A small, hand-checked catalogue for tests: records as scrapers would yield them.

The figures are chosen so that every statistic a test asserts can be worked out by hand.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import update
from sqlalchemy.orm import Session

from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.ingest import seed_datasets, write_records
from securitynet.catalogue.models import Entry
from securitynet.catalogue.results import add_evaluations
from securitynet.records import (
    AccuracyClaim,
    DatasetLink,
    EntryRecord,
    EvaluationRecord,
    FileRef,
    Metric,
    MetricResult,
    Purpose,
    Stage,
)


def sha_of(url: str) -> str:
    """A distinct sha256 per file (entries sharing one would be linked as one checkpoint)."""
    import hashlib

    return hashlib.sha256(url.encode()).hexdigest()


def _record(
    entry_id: str,
    *,
    architecture: str,
    family: str | None,
    params: int | None,
    licence: str | None,
    chain: Iterable[tuple[str, Stage]] = (),
    top1: Iterable[tuple[str, float]] = (),
    top5: Iterable[tuple[str, float]] = (),
    files: int = 1,
) -> EntryRecord:
    source = entry_id.split(":", 1)[0]
    return EntryRecord(
        id=entry_id,
        architecture=architecture,
        family=family,
        params=params,
        licence=licence,
        num_classes=100 if "cifar100" in entry_id else 10 if "cifar10" in entry_id else 1000,
        input_size=32 if "cifar" in entry_id else 224,
        library=source,
        datasets=[DatasetLink(dataset=d, stage=s, source=source, evidence="tag") for d, s in chain],
        claims=[
            AccuracyClaim(dataset=d, value=v, source=source, evidence="results table")
            for d, v in top1
        ]
        + [
            AccuracyClaim(
                dataset=d, value=v, metric=Metric.TOP5, source=source, evidence="results table"
            )
            for d, v in top5
        ],
        files=[
            FileRef(url=url, sha256=sha_of(url))
            for i in range(files)
            if (url := f"https://example.org/{entry_id.replace(':', '/')}/{i}.pth")
        ],
        evidence={"params": "registry"},
    )


IN1K = [("ImageNet-1k", Stage.TRAIN)]
C10 = [("CIFAR-10", Stage.TRAIN)]
C100 = [("CIFAR-100", Stage.TRAIN)]

RECORDS: list[EntryRecord] = [
    _record(
        "torchvision:resnet50.IMAGENET1K_V1",
        architecture="resnet50",
        family="resnet",
        params=25_557_032,
        licence="bsd-3-clause",
        chain=IN1K,
        top1=[("ImageNet-1k", 76.13)],
        top5=[("ImageNet-1k", 92.862)],
    ),
    _record(
        "timm:resnet50.a1_in1k",
        architecture="resnet50",
        family="resnet",
        params=25_557_032,
        licence="apache-2.0",
        chain=IN1K,
        top1=[("ImageNet-1k", 80.10), ("ImageNet-1k", 81.22)],
    ),
    _record(
        "timm:vit_base_patch16_224.augreg_in21k_ft_in1k",
        architecture="vit_base_patch16_224",
        family="vit",
        params=86_567_656,
        licence="apache-2.0",
        chain=[("ImageNet-21k", Stage.PRETRAIN), ("ImageNet-1k", Stage.TRAIN)],
        top1=[("ImageNet-1k", 84.50)],
    ),
    _record(
        "timm:vit_huge_patch14_clip_224.laion2b",
        architecture="vit_huge_patch14_clip_224",
        family="vit",
        params=1_500_000_000,
        licence="apache-2.0",
        chain=[("LAION-2B", Stage.TRAIN)],
        files=2,
    ),
    _record(
        "imgclsmob:resnet20_cifar10",
        architecture="resnet20",
        family="resnet",
        params=272_474,
        licence="MIT",
        chain=C10,
        top1=[("CIFAR-10", 94.00)],
    ),
    _record(
        "imgclsmob:resnet56_cifar10",
        architecture="resnet56",
        family="resnet",
        params=855_770,
        licence="mit",
        chain=C10,
        top1=[("CIFAR-10", 95.00)],
    ),
    _record(
        "imgclsmob:densenet40_k12_cifar10",
        architecture="densenet40_k12",
        family="densenet",
        params=1_056_426,
        licence="mit",
        chain=C10,
        top1=[("CIFAR-10", 96.00)],
    ),
    _record(
        "imgclsmob:wrn16_10_cifar10",
        architecture="wrn16_10",
        family="wrn",
        params=17_116_634,
        licence="mit",
        chain=C10,
        top1=[("CIFAR-10", 97.00)],
    ),
    _record(
        "imgclsmob:resnet20_cifar100",
        architecture="resnet20",
        family="resnet",
        params=278_324,
        licence="mit",
        chain=C100,
        top1=[("CIFAR-100", 70.00)],
    ),
    _record(
        "hf:someone/mystery-net",
        architecture="mystery",
        family=None,
        params=None,
        licence=None,
        files=0,
    ),
    _record(
        "timm:resnet18.gone_in1k",
        architecture="resnet18",
        family="resnet",
        params=11_689_512,
        licence="apache-2.0",
        chain=IN1K,
        top1=[("ImageNet-1k", 10.0)],
    ),
]


def _mia(
    entry_id: str, auc: float, *, source: str = "evaluate", seed: int = 0
) -> tuple[str, EvaluationRecord]:
    return entry_id, EvaluationRecord(
        attack="mia",
        variant="modified-entropy",
        source=source,
        dataset="cifar10",  # stored under its canonical name
        protocol={"members": "train[:1000]", "non_members": "test[:1000]"},
        seed=seed,
        config_digest=f"{seed:064x}",
        metrics=[
            MetricResult(metric="auc", value=auc, lower=auc - 0.02, upper=auc + 0.02),
            MetricResult(metric="tpr_at_1pct_fpr", value=auc / 50),
        ],
    )


#: Evaluations (one of them failed, without figures): v_results and Catalogue.results.
EVALUATIONS: list[tuple[str, EvaluationRecord]] = [
    _mia("imgclsmob:resnet20_cifar10", 0.52),
    _mia("imgclsmob:resnet56_cifar10", 0.56),
    _mia("imgclsmob:wrn16_10_cifar10", 0.60),
    _mia("imgclsmob:wrn16_10_cifar10", 0.58, source="securitynet-release"),
    (
        "imgclsmob:resnet20_cifar10",
        EvaluationRecord(
            attack="model-stealing",
            source="securitynet-release",
            dataset="CIFAR-10",
            evidence="Benchmark Models, row 3",
            metrics=[
                MetricResult(metric="accuracy", value=81.5),
                MetricResult(metric="agreement", value=0.86),
            ],
        ),
    ),
    (
        "imgclsmob:densenet40_k12_cifar10",
        EvaluationRecord(attack="mia", variant="lira", status="failed", error="out of memory"),
    ),
    _mia("timm:resnet18.gone_in1k", 0.9),
]

#: Curated annotations on two entries (the columns users filter on).
ANNOTATED = {
    "imgclsmob:wrn16_10_cifar10": {"purpose": Purpose.BENCHMARK, "venue": "BMVC", "year": 2016},
    "hf:someone/mystery-net": {"purpose": Purpose.SECURITY, "venue": "arXiv", "year": 2021},
}
for _r in RECORDS:
    for _key, _value in ANNOTATED.get(_r.id, {}).items():
        setattr(_r, _key, _value)

#: Marked removed upstream after writing: hidden unless --include-removed.
REMOVED = "timm:resnet18.gone_in1k"
LIVE = [r for r in RECORDS if r.id != REMOVED]


def fill(
    catalogue: Catalogue,
    records: Iterable[EntryRecord] = RECORDS,
    *,
    removed: Iterable[str] = (REMOVED,),
) -> None:
    """Write ``records`` as their scrapers' sync would (one origin per source)."""
    by_source: dict[str, list[EntryRecord]] = defaultdict(list)
    for record in records:
        by_source[record.source].append(record)
    with Session(catalogue.engine) as session, session.begin():
        seed_datasets(session)
        for source, batch in by_source.items():
            write_records(session, batch, origin=source)
        if records is RECORDS:
            add_evaluations(session, EVALUATIONS)
        session.execute(
            update(Entry).where(Entry.id.in_(list(removed))).values(removed_upstream=True)
        )
    catalogue.refresh_statistics()  # what the Catalogue API does after every write
