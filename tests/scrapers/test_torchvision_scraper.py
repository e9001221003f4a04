"""The torchvision scraper against the installed torchvision registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from securitynet.records import EntryRecord, Metric, Stage
from securitynet.scrapers.torchvision import TorchvisionScraper


@pytest.fixture(scope="module")
def records(make_ctx: Callable[..., Any], collect: Callable[..., Any]) -> dict[str, EntryRecord]:
    result: dict[str, EntryRecord] = collect(TorchvisionScraper(), make_ctx())
    return result


def _claim(record: EntryRecord, metric: Metric, dataset: str = "ImageNet-1k") -> float:
    (value,) = [c.value for c in record.claims if c.metric is metric and c.dataset == dataset]
    return value


def test_every_classification_weight_enum_is_an_entry(records: dict[str, EntryRecord]) -> None:
    import torchvision.models as tvm

    expected = {f"torchvision:{b}.{w.name}" for b in tvm.list_models(module=tvm) for w in tvm.get_model_weights(b)}
    assert len(records) >= 100
    assert set(records) == expected
    # detection/segmentation/video/quantized builders live in sub-modules and are not entries
    assert not any(r.architecture not in tvm.list_models(module=tvm) for r in records.values())


def test_resnet50_v1(records: dict[str, EntryRecord]) -> None:
    r = records["torchvision:resnet50.IMAGENET1K_V1"]
    assert _claim(r, Metric.TOP1) == 76.13
    assert _claim(r, Metric.TOP5) == 92.862
    top1 = next(c for c in r.claims if c.metric is Metric.TOP1)
    assert (top1.split, top1.img_size, top1.crop_pct, top1.source) == ("validation", 224, 0.875, "torchvision")
    assert r.best_top1() == 76.13
    assert (r.architecture, r.family, r.num_classes, r.input_size) == ("resnet50", "resnet", 1000, 224)
    assert (r.params, r.gflops) == (25_557_032, 4.089)
    assert r.licence == "BSD-3-Clause"
    assert r.paper == "arXiv:1512.03385"  # from the builder's docstring
    assert [(d.dataset, d.stage) for d in r.datasets] == [("ImageNet-1k", Stage.TRAIN)]
    (f,) = r.files
    assert (f.url, f.filename) == ("https://download.pytorch.org/models/resnet50-0676ba61.pth", "resnet50-0676ba61.pth")
    assert (f.checksum, f.checksum_algo, f.format) == ("0676ba61", "sha256-prefix", "pytorch")
    assert r.load is not None
    assert (r.load.builder, r.load.architecture, r.load.input_size) == ("torchvision", "resnet50", (3, 224, 224))
    assert (r.load.interpolation, r.load.crop_pct, r.load.label_set) == ("bilinear", 0.875, "ImageNet-1k")
    assert r.load.mean == (0.485, 0.456, 0.406)
    assert r.load.labels is not None and len(r.load.labels) == 1000 and r.load.labels[0] == "tench"
    assert r.evidence["params"] == "weights.meta['num_params']"


def test_resnet50_v2_has_its_own_file_and_resize(records: dict[str, EntryRecord]) -> None:
    r = records["torchvision:resnet50.IMAGENET1K_V2"]
    assert r.files[0].checksum == "11ad3fa6"
    assert _claim(r, Metric.TOP1) == 80.858
    assert r.load is not None and r.load.crop_pct == pytest.approx(224 / 232)
    assert r.raw["transforms"]["resize_size"] == [232]


def test_swag_weights_were_pretrained_on_instagram(records: dict[str, EntryRecord]) -> None:
    for name in ("vit_h_14.IMAGENET1K_SWAG_E2E_V1", "regnet_y_16gf.IMAGENET1K_SWAG_LINEAR_V1"):
        r = records[f"torchvision:{name}"]
        assert [(d.dataset, d.stage) for d in r.datasets] == [
            ("Instagram-3.6B", Stage.PRETRAIN),
            ("ImageNet-1k", Stage.TRAIN),
        ]
        assert r.final_dataset == "ImageNet-1k"
        assert r.licence == "CC-BY-NC-4.0"
        assert "SWAG/blob/main/LICENSE" in r.evidence["licence"]
        assert r.paper == "arXiv:2201.08371"
    vit_h = records["torchvision:vit_h_14.IMAGENET1K_SWAG_E2E_V1"]
    assert vit_h.input_size == 518
    assert vit_h.load is not None and vit_h.load.interpolation == "bicubic"


def test_features_only_weights_are_not_a_classifier(records: dict[str, EntryRecord]) -> None:
    r = records["torchvision:vgg16.IMAGENET1K_FEATURES"]
    assert r.task == "image-feature-extraction"
    assert r.claims == []  # its metrics are NaN
    assert r.num_classes is None


def test_every_entry_is_complete_and_json_clean(records: dict[str, EntryRecord]) -> None:
    for r in records.values():
        assert r.family and r.params and r.files and r.load is not None
        assert r.files[0].checksum and r.files[0].checksum_algo == "sha256-prefix"
        json.dumps(r.raw, allow_nan=False)
        if r.task == "image-classification":
            assert r.best_top1() is not None, r.id


def test_limit_is_honoured(make_ctx: Callable[..., Any]) -> None:
    assert len(list(TorchvisionScraper().iter_records(make_ctx(limit=5)))) == 5
