"""The curated top-1 of imgclsmob's ImageNet-1k weights (annotations/imgclsmob-imagenet-top1.yaml)
lands beside the registry's top-5 claim when the real imgclsmob source is synced."""

from __future__ import annotations

from pathlib import Path

from securitynet.catalogue.api import Catalogue
from securitynet.records import Metric

CURATED = "curated:imgclsmob-imagenet-top1.yaml"


def test_imagenet_entries_get_the_published_top1_beside_the_registry_top5(tmp_path: Path) -> None:
    with Catalogue(f"sqlite:///{tmp_path / 'catalogue.db'}") as cat:
        cat.sync("imgclsmob")

        # pytorch/README.md ImageNet-1K table: AlexNet Top1 38.50 / Top5 16.64,
        # ResNet-50 Top1 22.28 / Top5 6.33 (errors, %).
        for entry_id, top1, top5 in (
            ("imgclsmob:alexnet", 61.50, 83.36),
            ("imgclsmob:resnet50", 77.72, 93.67),
        ):
            entry = cat.get(entry_id)
            assert entry.top1 == top1
            claims = {(c.metric, c.source): c for c in entry.claims}
            assert claims.keys() == {(Metric.TOP5, "imgclsmob"), (Metric.TOP1, CURATED)}
            curated = claims[Metric.TOP1, CURATED]
            assert curated.source.startswith("curated:")
            assert (curated.dataset, curated.split, curated.value) == (
                "ImageNet-1k",
                "validation",
                top1,
            )
            assert "pytorch/README.md" in (curated.evidence or "")
            assert claims[Metric.TOP5, "imgclsmob"].value == top5

        imagenet = cat.search(source="imgclsmob", dataset="ImageNet-1k")
        assert len(imagenet) >= 323  # pytorchcv 0.0.74 has 323; a newer registry may add more
        import yaml

        from securitynet.resources import resource_dir

        curated_ids = {
            item["id"]
            for item in yaml.safe_load(
                (resource_dir("annotations") / "imgclsmob-imagenet-top1.yaml").read_text()
            )["items"]
        }
        assert len(curated_ids) == 323
        assert [e.id for e in imagenet if e.id in curated_ids and e.top1 is None] == []
        # A CIFAR entry keeps its own (registry) top-1; the file touches ImageNet-1k only.
        cifar = cat.get("imgclsmob:resnet20_cifar10")
        assert [c.source for c in cifar.claims] == ["imgclsmob"]

        # the net's own input size, recorded once in annotations/imgclsmob-input-size.yaml
        nts = cat.get("imgclsmob:ntsnet_cub")
        assert nts.input_size == 448 and nts.load is not None and nts.load.input_size == (3, 448, 448)
        assert nts.top1 == 87.23 and nts.architecture == "ntsnet"
        assert [f.value for f in nts.facts if f.key == "input_size"] == [224, 448]  # scraper, curated

        # GFLOPs from imgclsmob's README (FLOPs/2 column, doubled: one unit with timm and arch facts)
        assert cat.get("imgclsmob:resnet50").gflops == 7.7559  # "FLOPs/2 3,877.95M"
        assert cat.get("imgclsmob:resnet20_cifar10").gflops == 0.0826  # "FLOPs/2 41.29M"
        everything = cat.search(source="imgclsmob", limit=None)
        assert sum(e.gflops is not None for e in everything) >= len(everything) - 1
