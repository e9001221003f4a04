"""Writing meta-device architecture facts into a real SQLite catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from securitynet.annotate.archfacts import ArchFactsCache, compute_arch_facts
from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.archfacts import ORIGIN, SOURCE, apply_arch_facts
from securitynet.catalogue.ingest import write_records
from securitynet.catalogue.models import AnnotationError, Entry, Fact
from securitynet.records import EntryRecord, LoadSpec


def _records() -> list[EntryRecord]:
    return [
        # two timm tags of one architecture at one size: measured once
        EntryRecord(
            id="timm:test_resnet.r160_in1k",
            architecture="test_resnet",
            num_classes=1000,
            load=LoadSpec(
                builder="timm",
                architecture="test_resnet.r160_in1k",
                input_size=(3, 160, 160),
                num_classes=1000,
            ),
        ),
        EntryRecord(
            id="timm:test_resnet.other_in1k",
            load=LoadSpec(
                builder="timm",
                architecture="test_resnet.other_in1k",
                input_size=(3, 160, 160),
                num_classes=1000,
            ),
        ),
        # the source claims params (deliberately not what the net has) but gives no FLOPs
        EntryRecord(
            id="torchvision:mobilenet_v3_small.IMAGENET1K_V1",
            params=2_000_000,
            evidence={"params": "meta['num_params']"},
            load=LoadSpec(
                builder="torchvision", architecture="mobilenet_v3_small", input_size=(3, 224, 224)
            ),
        ),
        # the source claims both: left alone unless every entry is asked for
        EntryRecord(
            id="imgclsmob:resnet20_cifar10",
            params=272474,
            gflops=0.041,
            load=LoadSpec(
                builder="pytorchcv",
                architecture="resnet20_cifar10",
                input_size=(3, 32, 32),
                num_classes=10,
            ),
        ),
        # an architecture that cannot be built
        EntryRecord(
            id="timm:no_such_net.x", load=LoadSpec(builder="timm", architecture="no_such_net.x")
        ),
        # nothing we can build
        EntryRecord(
            id="hf:someone/some-net",
            load=LoadSpec(builder="transformers", architecture="ViTForImageClassification"),
        ),
        EntryRecord(id="github:owner/repo/model.pt"),
    ]


@pytest.fixture
def catalogue(tmp_path: Path) -> Catalogue:
    cat = Catalogue(url=f"sqlite:///{tmp_path / 'catalogue.db'}")
    by_source: dict[str, list[EntryRecord]] = {}
    for record in _records():
        by_source.setdefault(record.source, []).append(record)
    with Session(cat.engine) as session, session.begin():
        for source, records in by_source.items():
            write_records(session, records, origin=source)
    return cat


def _facts(cat: Catalogue, entry_id: str) -> dict[tuple[str, str], object]:
    with Session(cat.engine) as session:
        rows = session.execute(
            select(Fact.key, Fact.source, Fact.value).where(
                Fact.entry_id == entry_id, Fact.key.in_(("params", "gflops"))
            )
        ).all()
    return {(r.key, r.source): r.value for r in rows}


def test_fills_only_missing_values_and_keeps_every_source_word(catalogue: Catalogue) -> None:
    summary = apply_arch_facts(catalogue.engine, progress=False)

    resnet = compute_arch_facts("timm", "test_resnet", input_size=160, num_classes=1000)
    mobilenet = compute_arch_facts("torchvision", "mobilenet_v3_small", input_size=224)
    assert summary.architectures == 3  # test_resnet@160 (two tags), mobilenet_v3_small, no_such_net
    assert summary.entries == 4 and summary.failed == 1 and summary.unsupported == 2
    assert summary.filled_params == 2 and summary.filled_gflops == 3

    for eid in ("timm:test_resnet.r160_in1k", "timm:test_resnet.other_in1k"):
        entry = catalogue.get(eid)
        assert (entry.params, entry.gflops) == (resnet.params, resnet.gflops)
        assert _facts(catalogue, eid) == {
            ("params", SOURCE): resnet.params,
            ("gflops", SOURCE): resnet.gflops,
        }

    # the source's params stay in the column; ours sits beside them as a second fact
    entry = catalogue.get("torchvision:mobilenet_v3_small.IMAGENET1K_V1")
    assert entry.params == 2_000_000 and entry.gflops == pytest.approx(mobilenet.gflops)
    facts = _facts(catalogue, entry.id)
    assert (
        facts[("params", "torchvision")] == 2_000_000
        and facts[("params", SOURCE)] == mobilenet.params
    )
    evidence = next(f.evidence for f in entry.facts if f.key == "gflops" and f.source == SOURCE)
    assert (
        evidence is not None
        and "torchvision 0." in evidence
        and "2 FLOPs" in evidence
        and "224x224" in evidence
    )

    # claimed in full: not measured at all
    assert ("params", SOURCE) not in _facts(catalogue, "imgclsmob:resnet20_cifar10")
    assert catalogue.get("imgclsmob:resnet20_cifar10").gflops == 0.041

    with Session(catalogue.engine) as session:
        errors = session.execute(
            select(AnnotationError.entry_id, AnnotationError.message).where(
                AnnotationError.origin == ORIGIN
            )
        ).all()
    assert [(e.entry_id, "Unknown model" in e.message) for e in errors] == [
        ("timm:no_such_net.x", True)
    ]
    assert catalogue.get("timm:no_such_net.x").params is None


def test_running_again_replaces_its_own_rows_from_the_cache(catalogue: Catalogue) -> None:
    first = apply_arch_facts(catalogue.engine, progress=False)
    with Session(catalogue.engine) as session:
        count = session.scalar(select(func.count()).select_from(Fact).where(Fact.origin == ORIGIN))
    second = apply_arch_facts(catalogue.engine, progress=False)
    with Session(catalogue.engine) as session:
        again = session.scalar(select(func.count()).select_from(Fact).where(Fact.origin == ORIGIN))
        errors = session.scalar(
            select(func.count())
            .select_from(AnnotationError)
            .where(AnnotationError.origin == ORIGIN)
        )
    assert first.computed == 3 and second.computed == 0 and second.cached == 3
    assert count == again == first.facts and errors == 1
    # our own earlier values are not mistaken for a source's claim
    assert (
        second.filled_params == first.filled_params and second.filled_gflops == first.filled_gflops
    )


def test_all_measures_claimed_entries_without_overwriting_them(catalogue: Catalogue) -> None:
    summary = apply_arch_facts(
        catalogue.engine, sources=["imgclsmob"], only_missing=False, progress=False
    )
    assert summary.entries == 1 and summary.filled_params == 0 and summary.filled_gflops == 0
    entry = catalogue.get("imgclsmob:resnet20_cifar10")
    assert (entry.params, entry.gflops) == (272474, 0.041)
    facts = _facts(catalogue, entry.id)
    assert facts[("params", SOURCE)] == 272474  # agrees with the source
    assert facts[("gflops", "imgclsmob")] == 0.041
    assert facts[("gflops", SOURCE)] == pytest.approx(
        0.0816, rel=0.01
    )  # 2 x 0.041 GMACs: units differ


def test_limit_caps_distinct_architectures_and_sources_filter(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    cache = ArchFactsCache(tmp_path / "cache")
    summary = apply_arch_facts(
        catalogue.engine, sources=["timm"], limit=2, cache=cache, progress=False
    )
    # in id order: no_such_net, then test_resnet@160, whose two tags both get facts
    assert summary.architectures == 2 and summary.entries == 3 and summary.failed == 1
    assert catalogue.get("timm:test_resnet.other_in1k").params is not None
    assert catalogue.get("torchvision:mobilenet_v3_small.IMAGENET1K_V1").gflops is None
    assert list((tmp_path / "cache").glob("arch-facts-timm-*.json"))


def test_a_spent_budget_writes_nothing_for_what_it_skipped(catalogue: Catalogue) -> None:
    summary = apply_arch_facts(catalogue.engine, budget_s=0, progress=False)
    assert summary.skipped == 3 and summary.entries == 0 and summary.facts == 0
    with Session(catalogue.engine) as session:
        assert (
            session.scalar(select(func.count()).select_from(Fact).where(Fact.origin == ORIGIN)) == 0
        )
        assert (
            session.scalar(select(func.count()).select_from(Entry).where(Entry.gflops.is_not(None)))
            == 1
        )


def test_cli_prints_one_summary_line(
    catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from securitynet.cli.app import main

    monkeypatch.setenv("SECURITYNET_DATABASE_URL", catalogue.url)
    main(["annotate", "arch-facts", "--source", "timm", "--limit", "2"])
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(
        "arch facts: 3 entries, 2 architectures (2 computed, 0 cached, 1 failed)"
    )
    assert catalogue.get("timm:test_resnet.r160_in1k").params is not None


def test_measured_flops_agree_with_torchvision_in_the_same_units(tmp_path: Path) -> None:
    from torchvision.models import ResNet50_Weights

    from securitynet.scrapers.torchvision import build_record

    cat = Catalogue(url=f"sqlite:///{tmp_path / 'tv.db'}")
    with Session(cat.engine) as session, session.begin():
        write_records(
            session,
            [build_record("resnet50", ResNet50_Weights.IMAGENET1K_V2)],
            origin="torchvision",
        )
    apply_arch_facts(cat.engine, only_missing=False, progress=False)
    facts = _facts(cat, "torchvision:resnet50.IMAGENET1K_V2")
    assert facts[("params", SOURCE)] == facts[("params", "torchvision")] == 25_557_032
    assert facts[("gflops", SOURCE)] == pytest.approx(facts[("gflops", "torchvision")], rel=0.002)
