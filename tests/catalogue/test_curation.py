"""Curated annotations: applied set-based, undone when a file drops them, and not re-applied
after a sync that changed nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from securitynet.annotate.overrides import CuratedAnnotations, CuratedFile
from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.curation import apply_curated_annotations
from securitynet.catalogue.models import SyncRun

VIT = "timm:vit_base_patch16_224.augreg_in21k_ft_in1k"
R50 = "timm:resnet50.a1_in1k"


def _file(items: list[dict[str, object]], name: str = "test.yaml") -> CuratedAnnotations:
    content = CuratedFile.model_validate({"annotator": "tests", "items": items})
    return CuratedAnnotations(path=name, source=f"curated:{name}", content=content)


RETRAINED = _file(
    [
        {
            "id": VIT,
            "datasets": [
                {"dataset": "ImageNet-21k", "stage": "pretrain"},
                {"dataset": "CIFAR-10", "stage": "train"},
                {"dataset": "CIFAR-100", "stage": "distill"},
            ],
            "claims": [
                {"dataset": "CIFAR-10", "value": 98.5},
                {"dataset": "CIFAR-10", "value": 97.0},
                {"dataset": "CIFAR-100", "value": 91.0},
            ],
            "evidence": "a test",
        },
        {
            "match": {"family": "resnet", "source": "timm"},
            "set": {"gflops": 4.1},
            "claims": [{"dataset": "ImageNet-1k", "value": 99.0}],
            "evidence": "a test",
        },
    ]
)


def _runs(cat: Catalogue) -> int:
    with cat.session() as s:
        return int(s.scalar(select(func.count()).where(SyncRun.source == "curated")) or 0)


def test_curated_chain_and_claims_win_and_go_when_the_file_drops_them(catalogue: Catalogue) -> None:
    before = {e: (cat_entry.dataset, cat_entry.top1) for e in (VIT, R50) if (cat_entry := catalogue.get(e))}
    touched = apply_curated_annotations(catalogue.engine, [RETRAINED])
    vit, r50 = catalogue.get(VIT), catalogue.get(R50)
    assert (vit.dataset, vit.top1) == ("CIFAR-10", 98.5)  # last training step; best claim on it
    assert (r50.dataset, r50.top1, r50.gflops) == ("ImageNet-1k", 99.0, 4.1)
    assert touched >= 2
    assert any(f.key == "gflops" and f.source == "curated:test.yaml" for f in r50.facts)

    apply_curated_annotations(catalogue.engine, [])
    assert {e: (catalogue.get(e).dataset, catalogue.get(e).top1) for e in (VIT, R50)} == before
    assert not [c for c in catalogue.get(VIT).claims if c.source.startswith("curated")]


def test_no_change_and_the_same_files_is_a_noop(catalogue: Catalogue) -> None:
    apply_curated_annotations(catalogue.engine, [RETRAINED])
    assert _runs(catalogue) == 1
    assert apply_curated_annotations(catalogue.engine, [RETRAINED], force=False) == 0
    assert _runs(catalogue) == 1
    assert apply_curated_annotations(catalogue.engine, [RETRAINED], force=True) > 0
    other = _file([{"id": R50, "set": {"gflops": 5.0}, "evidence": "another"}])
    assert apply_curated_annotations(catalogue.engine, [other], force=False) == 1
    assert catalogue.get(R50).gflops == 5.0


def test_a_sync_that_wrote_entries_since_makes_it_apply_again(catalogue: Catalogue) -> None:
    from securitynet.catalogue.models import SyncRun

    apply_curated_annotations(catalogue.engine, [RETRAINED])
    with catalogue.session() as s, s.begin():  # a sync killed after a batch, before curation
        s.add(SyncRun(source="timm", status="interrupted", seen=10, updated=3))
    assert apply_curated_annotations(catalogue.engine, [RETRAINED], force=False) > 0
    assert apply_curated_annotations(catalogue.engine, [RETRAINED], force=False) == 0


def test_the_shipped_files_load_with_the_c_loader_when_there(tmp_path: Path) -> None:
    from securitynet.annotate.overrides import load_annotations

    (tmp_path / "a.yaml").write_text(
        yaml.safe_dump({"annotator": "t", "items": [{"id": R50, "set": {"gflops": 1.5}, "evidence": "e"}]})
    )
    (loaded,) = load_annotations(tmp_path)
    assert loaded.content.items[0].set == {"gflops": 1.5}


@pytest.mark.slow
def test_a_noop_resync_skips_the_curation(tmp_path: Path) -> None:
    from securitynet.settings import get_settings

    cat = Catalogue(f"sqlite:///{tmp_path / 'c.db'}", settings=get_settings(offline=True))
    cat.sync("imgclsmob")
    assert _runs(cat) == 1
    cat.sync("imgclsmob")
    assert _runs(cat) == 1, "nothing changed: the curated files were not re-applied"
    assert cat.get("imgclsmob:resnet18").top1 is not None
    cat.sync("imgclsmob", full=True)
    assert _runs(cat) == 2
    cat.close()
