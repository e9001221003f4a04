"""imgclsmob: the osmr/imgclsmob GitHub release zoo, as registered in pytorchcv's
``models/common/model_metainfos.csv``.

Columns: ``model_name, net_weights, error_value, checksum, repo_release_tag,
model_caption, arxiv_paper, test_dataset, img_size, img_scale, test_batch, remark``.

What the columns mean was checked against imgclsmob itself:

- ``test_dataset`` is imgclsmob's data-set code. :data:`TEST_SETS` lists the codes and
  their task (imgclsmob's ``DatasetMetaInfo.ml_type``); only image-classification codes
  become entries (segmentation, detection, pose and speech rows are skipped). ``cf`` is the
  CIFAR family: the data set is the model name's suffix (``_cifar10``, ``_cifar100``,
  ``_svhn``), exactly as pytorchcv builds those nets.
- ``error_value`` is the error in hundredths of a percent that imgclsmob writes into the
  weight file name, i.e. the validation metric at ``saver_acc_ind``. For ImageNet-1k that
  is the **top-5** error (``ImageNet1KMetaInfo.saver_acc_ind = 1`` -> ``err-top5``; e.g.
  ``alexnet`` 1664 = 16.64 % in pytorch/README.md's Top5 column, whose Top1 is 38.50 %).
  For CIFAR-10/100, SVHN and CUB-200-2011 it is the (top-1) error (their tables' single
  "Error, %" column, ``Top1Error`` metric). So ImageNet rows carry a top-5 claim only.
- ``checksum`` is the sha1 of the unzipped ``<name>-<error>-<sha1[:8]>.pth``; the release
  asset is that file zipped (pytorchcv ``model_store.get_model_file``).
- Rows without an error value have no released weights and are skipped.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata, resources

from securitynet.annotate.datasets import canonical_dataset, dataset_info
from securitynet.annotate.families import family_of
from securitynet.errors import MalformedUpstreamError
from securitynet.records import (
    AccuracyClaim,
    DatasetLink,
    EntryRecord,
    FileRef,
    LoadSpec,
    Metric,
    Stage,
)
from securitynet.scrapers._common import code_digest, limit_reached
from securitynet.scrapers.base import SyncContext, Unchanged

log = logging.getLogger(__name__)

SOURCE = "imgclsmob"
REPO_URL = "https://github.com/osmr/imgclsmob"
METAINFO = "models/common/model_metainfos.csv"
#: The osmr/imgclsmob repository licence; the release zoo states no separate weight licence.
LICENCE = "MIT"
_NA = "NA"
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_ERROR = re.compile(r"^\d{4}$")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


@dataclass(frozen=True, slots=True)
class TestSet:
    """What an imgclsmob ``test_dataset`` code means (from imgclsmob's ``*_dataset.py`` metainfo)."""

    task: str  # imgclsmob ml_type: imgcls | imgseg | hpe | asr | ...
    dataset: str | None = None  # None: named by the model-name suffix (the CIFAR family)
    metric: Metric = Metric.TOP1  # what ``error_value`` is the error of
    split: str = "test"
    input_size: int | None = None
    crop_pct: float | None = None
    interpolation: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


TEST_SETS: dict[str, TestSet] = {
    # ImageNet1KMetaInfo: 224, resize_inv_factor 0.875, bilinear, saver_acc_ind=1 (err-top5)
    "in1k": TestSet("imgcls", "ImageNet-1k", Metric.TOP5, "validation", 224, 0.875, "bilinear",
                    IMAGENET_MEAN, IMAGENET_STD),
    # CIFAR10MetaInfo (SVHN and CIFAR-100 inherit it): 32x32, ToTensor+Normalize, Top1Error
    "cf": TestSet("imgcls", None, Metric.TOP1, "test", 32, None, None, CIFAR_MEAN, CIFAR_STD),
    # CUB200MetaInfo(ImageNet1KMetaInfo): ImageNet preprocessing, Top1Error
    "cub": TestSet("imgcls", "CUB-200-2011", Metric.TOP1, "test", 224, 0.875, "bilinear",
                   IMAGENET_MEAN, IMAGENET_STD),
    "voc": TestSet("imgseg"),
    "ade20k": TestSet("imgseg"),
    "cs": TestSet("imgseg"),
    "cocoseg": TestSet("imgseg"),
    "coco": TestSet("imgseg"),
    "cocohpe": TestSet("hpe"),
    "mcv": TestSet("asr"),
}


class ImgclsmobScraper:
    name = SOURCE
    needs_network = False

    def unavailable_reason(self, ctx: SyncContext) -> str | None:
        if importlib.util.find_spec("pytorchcv") is None:
            return "pytorchcv is not installed (it ships imgclsmob's model_metainfos.csv)"
        return None

    def fingerprint(self, ctx: SyncContext) -> str | None:
        text, version = load_metainfo()
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        return f"pytorchcv {version}; metainfo {digest}; code {code_digest()}"

    def iter_records(self, ctx: SyncContext) -> Iterator[EntryRecord | Unchanged]:
        text, version = load_metainfo()
        count = 0
        seen: set[str] = set()
        for row in parse_metainfo(text):
            if limit_reached(count, ctx.limit):
                return
            name = row["model_name"]
            if name in seen:
                log.debug("imgclsmob: %s listed again, later row ignored", name)
                continue
            record = build_record(row, version=version)
            if record is None:
                continue
            seen.add(name)
            yield record
            count += 1


def load_metainfo() -> tuple[str, str | None]:
    """The text of pytorchcv's ``model_metainfos.csv`` and the pytorchcv version."""
    package = resources.files("pytorchcv")
    text = package.joinpath(METAINFO).read_text(encoding="utf-8")
    try:
        return text, metadata.version("pytorchcv")
    except metadata.PackageNotFoundError:  # a source checkout of pytorchcv: no dist metadata
        return text, None


def parse_metainfo(text: str) -> Iterator[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    needed = {"model_name", "net_weights", "error_value", "checksum", "repo_release_tag", "test_dataset"}
    missing = needed - set(reader.fieldnames or ())
    if missing:
        raise MalformedUpstreamError(f"{METAINFO} lacks column(s) {', '.join(sorted(missing))}", missing=sorted(missing))
    for row in reader:
        yield {k: (v or "").strip() for k, v in row.items() if k is not None}


def _value(row: dict[str, str], key: str) -> str | None:
    value = row.get(key, "")
    return None if value in ("", _NA) else value


def _dataset(row: dict[str, str], test: TestSet) -> tuple[str, str] | None:
    """(canonical data set, raw name) of a classification row."""
    if test.dataset is not None:
        return test.dataset, row["test_dataset"]
    suffix = row["model_name"].rsplit("_", 1)[-1]
    canonical = canonical_dataset(suffix)
    return (canonical, suffix) if canonical else None


def build_record(row: dict[str, str], *, version: str | None = None) -> EntryRecord | None:
    """The entry of one ``model_metainfos.csv`` row, or None when it is not a released classifier."""
    name = row["model_name"]
    test = TEST_SETS.get(row.get("test_dataset", ""))
    if test is None or test.task != "imgcls":
        return None
    error, sha1, release = _value(row, "error_value"), _value(row, "checksum"), _value(row, "repo_release_tag")
    if error is None or sha1 is None or release is None:
        return None  # registered architecture without released weights
    target = _dataset(row, test)
    if target is None or not _ERROR.match(error) or not _SHA1.match(sha1):
        log.warning("imgclsmob: row %s does not parse (dataset/error/checksum), skipped", name)
        return None
    dataset, raw_dataset = target
    info = dataset_info(dataset)
    num_classes = info.num_classes if info else None

    base, _, suffix = name.rpartition("_")
    architecture = base if base and canonical_dataset(suffix) == dataset else name
    evidence: dict[str, str] = {
        "architecture": "model_metainfos.csv model_name (pytorchcv builder name)"
        + (f" without its data-set suffix '_{suffix}'" if architecture != name else ""),
        "family": f"family rules on '{architecture}'",
        "params": "model_metainfos.csv net_weights",
        "licence": "osmr/imgclsmob repository licence (MIT); no separate weight licence",
        "upstream_url": "model_metainfos.csv repo_release_tag",
        "files": "pytorchcv model_store.get_model_file: <name>-<error>-<sha1[:8]>.pth.zip; sha1 of the unzipped .pth",
        "datasets": f"model_metainfos.csv test_dataset={row['test_dataset']}"
        + (f", model-name suffix '_{raw_dataset}'" if test.dataset is None else ""),
    }
    if num_classes:
        evidence["num_classes"] = f"{dataset} label set (imgclsmob builds the net for it)"

    stated_size = int(row["img_size"]) if (row.get("img_size") or "").isdigit() else None
    # the data set's default where the metainfo states none; a net whose own default differs
    # (ntsnet_cub: 448) is corrected by a curated annotation (annotations/imgclsmob-input-size.yaml)
    img_size = stated_size or test.input_size
    scale = _value(row, "img_scale")
    crop_pct = float(scale) if scale else test.crop_pct
    evidence["input_size"] = "model_metainfos.csv img_size" if _value(row, "img_size") else f"imgclsmob's {dataset} default"

    err = int(error) / 100.0
    what = "top-5 error" if test.metric is Metric.TOP5 else "top-1 error"
    claims = [
        AccuracyClaim(
            dataset=dataset,
            split=test.split,
            metric=test.metric,
            value=round(100.0 - err, 2),
            img_size=stated_size,
            crop_pct=crop_pct,
            source=SOURCE,
            evidence=f"model_metainfos.csv error_value={error} ({dataset} {what}, 1/100 %)",
            url=f"{REPO_URL}/releases/tag/{release}",
        )
    ]
    arxiv = _value(row, "arxiv_paper")
    if arxiv:
        evidence["paper"] = "model_metainfos.csv arxiv_paper"

    tags: list[str] = []
    errors: list[str] = []
    remark = _value(row, "remark")
    if remark and remark.endswith("*"):
        tags.append("nonstandard-preprocessing")
        errors.append(
            f"remark {remark!r}: imgclsmob marks non-standard preprocessing for this net; the "
            "load spec's mean/std/crop are imgclsmob's defaults and may not match its training log"
        )

    filename = f"{name}-{error}-{sha1[:8]}.pth"
    return EntryRecord(
        id=f"{SOURCE}:{name}",
        architecture=architecture,
        family=family_of(architecture),
        num_classes=num_classes,
        input_size=img_size,
        params=int(row["net_weights"]) if row.get("net_weights", "").isdigit() else None,
        licence=LICENCE,
        paper=f"arXiv:{arxiv}" if arxiv else None,
        library="pytorchcv",
        upstream_url=f"{REPO_URL}/releases/tag/{release}",
        revision=release,
        tags=tags,
        datasets=[DatasetLink(dataset=dataset, raw_name=raw_dataset, stage=Stage.TRAIN, source=SOURCE,
                              evidence=evidence["datasets"])],
        claims=claims,
        files=[
            FileRef(
                url=f"{REPO_URL}/releases/download/{release}/{filename}.zip",
                filename=filename,
                revision=release,
                checksum=sha1,
                checksum_algo="sha1",
                format="zip",
            )
        ],
        load=LoadSpec(
            builder="pytorchcv",
            architecture=name,
            input_size=(3, img_size, img_size) if img_size else None,
            mean=test.mean,
            std=test.std,
            interpolation=test.interpolation,
            crop_pct=crop_pct,
            crop_mode="center" if crop_pct else None,
            num_classes=num_classes,
            label_set=dataset,
        ),
        evidence=evidence,
        errors=errors,
        raw={"row": dict(row), "pytorchcv_version": version},
    )
