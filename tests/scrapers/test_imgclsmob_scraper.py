"""The imgclsmob scraper against pytorchcv's real model_metainfos.csv."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import pytest

from securitynet.errors import MalformedUpstreamError
from securitynet.records import EntryRecord, Metric
from securitynet.scrapers.imgclsmob import (
    ImgclsmobScraper,
    build_record,
    load_metainfo,
    parse_metainfo,
)

CLASSIFICATION_SETS = {"ImageNet-1k", "CIFAR-10", "CIFAR-100", "SVHN", "CUB-200-2011"}


@pytest.fixture(scope="module")
def records(make_ctx: Callable[..., Any], collect: Callable[..., Any]) -> dict[str, EntryRecord]:
    result: dict[str, EntryRecord] = collect(ImgclsmobScraper(), make_ctx())
    return result


def _claims(record: EntryRecord) -> list[tuple[str, Metric, float]]:
    return [(c.dataset, c.metric, c.value) for c in record.claims]


def test_every_released_classifier_is_an_entry(records: dict[str, EntryRecord]) -> None:
    text, _ = load_metainfo()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) >= 780  # pytorchcv 0.0.74's registry; newer releases only add rows
    released = {
        r["model_name"] for r in rows if r["test_dataset"] in ("in1k", "cf", "cub") and r["error_value"] != "NA"
    }
    assert len(records) >= 500
    assert set(records) == {f"imgclsmob:{name}" for name in released}
    assert all(r.final_dataset in CLASSIFICATION_SETS for r in records.values())
    assert "imgclsmob:pspnet_resnetd101b_voc" not in records  # segmentation, has weights
    assert "imgclsmob:resnet200" not in records  # classification, but no released weights
    # irevnet301 is listed twice, once without weights: one entry, with its file
    assert records["imgclsmob:irevnet301"].files[0].checksum == "d378865f937472907a78b9832c46ec7fe8893fdc"


def test_resnet20_cifar10(records: dict[str, EntryRecord]) -> None:
    r = records["imgclsmob:resnet20_cifar10"]
    assert _claims(r) == [("CIFAR-10", Metric.TOP1, 94.03)]  # error 5.97 % in imgclsmob's CIFAR-10 table
    assert r.best_top1() == 94.03
    assert (r.num_classes, r.input_size, r.params, r.family) == (10, 32, 272_474, "resnet")
    assert r.architecture == "resnet20"  # the builder name without its data set
    assert r.claims[0].split == "test"
    (f,) = r.files
    assert f.url == (
        "https://github.com/osmr/imgclsmob/releases/download/v0.0.163/resnet20_cifar10-0597-9b0024ac.pth.zip"
    )
    assert f.filename == "resnet20_cifar10-0597-9b0024ac.pth"
    assert (f.checksum_algo, f.format, f.revision) == ("sha1", "zip", "v0.0.163")
    assert f.checksum is not None and len(f.checksum) == 40 and f.checksum.startswith("9b0024ac")
    assert r.load is not None
    assert (r.load.builder, r.load.architecture, r.load.input_size) == ("pytorchcv", "resnet20_cifar10", (3, 32, 32))
    assert (r.load.mean, r.load.crop_pct, r.load.label_set) == ((0.4914, 0.4822, 0.4465), None, "CIFAR-10")


@pytest.mark.parametrize(
    ("name", "dataset", "top1"),
    [
        ("resnet20_cifar100", "CIFAR-100", 70.36),
        ("resnet20_svhn", "SVHN", 96.57),
        ("resnet10_cub", "CUB-200-2011", 72.23),
        ("ntsnet_cub", "CUB-200-2011", 87.23),
    ],
)
def test_error_is_top1_error_outside_imagenet(
    records: dict[str, EntryRecord], name: str, dataset: str, top1: float
) -> None:
    assert _claims(records[f"imgclsmob:{name}"]) == [(dataset, Metric.TOP1, top1)]


def test_imagenet_error_is_the_top5_error(records: dict[str, EntryRecord]) -> None:
    # pytorch/README.md: AlexNet top-1 error 38.50, top-5 error 16.64; the row says 1664
    r = records["imgclsmob:alexnet"]
    assert _claims(r) == [("ImageNet-1k", Metric.TOP5, 83.36)]
    assert r.best_top1() is None  # the registry does not give a top-1 figure for ImageNet rows
    assert "top-5 error" in (r.claims[0].evidence or "")
    assert (r.paper, r.num_classes, r.input_size) == ("arXiv:1404.5997", 1000, 224)
    assert r.load is not None and (r.load.crop_pct, r.load.interpolation) == (0.875, "bilinear")
    assert all(c.metric is Metric.TOP5 for x in records.values() if x.final_dataset == "ImageNet-1k" for c in x.claims)


def test_input_size_comes_from_the_row(records: dict[str, EntryRecord]) -> None:
    r = records["imgclsmob:inceptionv3"]
    assert r.input_size == 299
    assert r.load is not None and r.load.input_size == (3, 299, 299)


def test_nonstandard_preprocessing_is_flagged(records: dict[str, EntryRecord]) -> None:
    flagged = [r for r in records.values() if r.raw["row"]["remark"].endswith("*")]
    assert flagged
    assert all("nonstandard-preprocessing" in r.tags and r.errors for r in flagged)


def test_every_entry_is_json_clean(records: dict[str, EntryRecord]) -> None:
    for r in records.values():
        json.dumps(r.raw, allow_nan=False)
        assert r.params and r.num_classes and r.family


def test_rows_that_are_not_released_classifiers_give_nothing() -> None:
    base = {
        "model_name": "resnet20_cifar10", "net_weights": "272474", "error_value": "0597",
        "checksum": "9b0024ac4c2f374cde2c5052e0d0344a75871cdb", "repo_release_tag": "v0.0.163",
        "model_caption": "NA", "arxiv_paper": "NA", "test_dataset": "cf", "img_size": "NA",
        "img_scale": "NA", "test_batch": "NA", "remark": "NA",
    }  # fmt: skip
    assert build_record(base) is not None
    assert build_record({**base, "error_value": "NA", "checksum": "NA", "repo_release_tag": "NA"}) is None
    assert build_record({**base, "test_dataset": "voc"}) is None
    assert build_record({**base, "test_dataset": "NA"}) is None
    assert build_record({**base, "model_name": "resnet20_unknownset"}) is None


def test_malformed_metainfo_is_a_typed_error() -> None:
    with pytest.raises(MalformedUpstreamError, match="checksum"):
        list(parse_metainfo("model_name,net_weights,error_value\nx,1,0001\n"))


def test_limit_is_honoured(make_ctx: Callable[..., Any]) -> None:
    assert len(list(ImgclsmobScraper().iter_records(make_ctx(limit=3)))) == 3


def test_architectures_carry_no_data_set(records: dict[str, EntryRecord]) -> None:
    from securitynet.annotate.datasets import canonical_dataset

    assert {records[f"imgclsmob:resnet20_{d}"].architecture for d in ("cifar10", "cifar100", "svhn")} == {
        "resnet20"
    }
    assert records["imgclsmob:ntsnet_cub"].architecture == "ntsnet"
    for r in records.values():
        assert r.architecture is not None and canonical_dataset(r.architecture.rsplit("_", 1)[-1]) is None, r.id
        assert r.load is not None and r.load.architecture == r.name  # pytorchcv builds it by its full name


def test_a_size_the_metainfo_does_not_state_is_not_claimed(records: dict[str, EntryRecord]) -> None:
    r = records["imgclsmob:ntsnet_cub"]
    (claim,) = r.claims
    assert claim.img_size is None  # imgclsmob's CUB (and CIFAR) rows give no image size
    assert records["imgclsmob:resnet50"].claims[0].img_size == 224
