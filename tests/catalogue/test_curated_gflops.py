"""GFLOPs after a sync, in one unit (1 multiply-accumulate = 2 FLOPs): timm's from its
inference benchmark table, imgclsmob's from its README (annotations/*-gflops.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy.orm import Session

from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.curation import apply_curated_annotations
from securitynet.catalogue.ingest import seed_datasets, write_records
from securitynet.resources import resource_dir


def test_timm_tags_get_their_gflops_from_the_curated_table(tmp_path: Path) -> None:
    from timm.models import get_pretrained_cfg

    from securitynet.scrapers.timm import build_record

    names = ("resnet50.a1_in1k", "vit_base_patch16_224.augreg2_in21k_ft_in1k")
    records = [build_record(n, get_pretrained_cfg(n), rows=[]) for n in names]
    with Catalogue(f"sqlite:///{tmp_path / 'catalogue.db'}") as cat:
        with Session(cat.engine) as session, session.begin():
            seed_datasets(session)
            write_records(session, records, origin="timm")
        apply_curated_annotations(cat.engine)
        entry = cat.get("timm:resnet50.a1_in1k")
        assert entry.gflops == 8.22  # infer_gmacs 4.11 at 224, doubled
        (fact,) = [f for f in entry.facts if f.key == "gflops"]
        assert fact.source == "curated:timm-gflops.yaml" and "infer_gmacs 4.11" in (fact.evidence or "")
        assert cat.get("timm:vit_base_patch16_224.augreg2_in21k_ft_in1k").gflops == 35.16


def test_the_timm_table_covers_the_registry() -> None:
    import timm

    items = yaml.safe_load((resource_dir("annotations") / "timm-gflops.yaml").read_text())["items"]
    ids = {item["id"] for item in items}
    registry = {f"timm:{n}" for n in timm.list_pretrained()}
    assert len(ids & registry) > 0.9 * len(registry)
    assert all(item["set"]["gflops"] > 0 for item in items)


@pytest.mark.slow
def test_a_timm_sync_fills_gflops(tmp_path: Path) -> None:
    with Catalogue(f"sqlite:///{tmp_path / 'catalogue.db'}") as cat:
        cat.sync("timm")
        everything = cat.search(source="timm", limit=None, include_test_nets=True, include_shared_weights=True)
        assert sum(e.gflops is not None for e in everything) > 0.9 * len(everything)
