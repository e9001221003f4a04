"""torchvision: every weight enum of the image-classification builders in ``torchvision.models``.

Detection, segmentation, video, optical-flow and quantized builders live in sub-modules of
``torchvision.models`` and are not listed by ``list_models(module=torchvision.models)``;
they are out of scope (quantized weights would need a quantized engine to load and are the
same training runs as their float counterparts).

Everything comes from the weights enum as data: ``meta`` (categories, ``num_params``,
``_ops`` GFLOPS, ``_metrics`` per data set, ``recipe``, ``_docs``, ``license``), the URL
(its file name carries a sha256 prefix) and ``transforms()`` (crop, resize, mean/std,
interpolation). No weights are downloaded or unpickled.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import re
from collections.abc import Iterator
from enum import Enum
from typing import Any

from securitynet.annotate.datasets import dataset_name
from securitynet.annotate.families import family_of
from securitynet.annotate.timm_tags import ChainStep, chain_links, parse_tag
from securitynet.records import AccuracyClaim, EntryRecord, FileRef, LoadSpec, Metric, Stage
from securitynet.scrapers._common import (
    code_digest,
    hash_prefix,
    jsonable,
    limit_reached,
    package_version,
    url_filename,
)
from securitynet.scrapers.base import SyncContext, Unchanged

log = logging.getLogger(__name__)

SOURCE = "torchvision"
#: torchvision's own licence, for weights whose meta names none (package metadata: BSD).
DEFAULT_LICENCE = "BSD-3-Clause"
#: Licence pages that ``weights.meta["license"]`` points to -> SPDX identifier.
LICENCE_URLS: dict[str, str] = {
    "https://github.com/facebookresearch/SWAG/blob/main/LICENSE": "CC-BY-NC-4.0",
}
_METRICS: tuple[tuple[str, Metric], ...] = (("acc@1", Metric.TOP1), ("acc@5", Metric.TOP5))
_ARXIV = re.compile(r"arxiv\.org/(?:abs|pdf)/(\d{4}\.\d{4,5})")


class TorchvisionScraper:
    name = SOURCE
    needs_network = False

    def unavailable_reason(self, ctx: SyncContext) -> str | None:
        if importlib.util.find_spec("torchvision") is None:
            return "torchvision is not installed"
        return None

    def fingerprint(self, ctx: SyncContext) -> str | None:
        return f"torchvision {package_version('torchvision')}; code {code_digest()}"

    def iter_records(self, ctx: SyncContext) -> Iterator[EntryRecord | Unchanged]:
        import torchvision
        import torchvision.models as tvm

        count = 0
        for builder in sorted(tvm.list_models(module=tvm)):
            for weights in tvm.get_model_weights(builder):
                if limit_reached(count, ctx.limit):
                    return
                yield build_record(builder, weights, builder_doc=tvm.get_model_builder(builder).__doc__,
                                   version=torchvision.__version__)
                count += 1


def _transforms(weights: Any) -> dict[str, Any]:
    """Crop/resize/normalisation of ``weights.transforms()`` (an ``ImageClassification`` preset)."""
    preset = weights.transforms()
    out: dict[str, Any] = {"preset": type(preset).__name__}
    for key in ("crop_size", "resize_size", "mean", "std"):
        value = getattr(preset, key, None)
        out[key] = list(value) if value is not None else None
    interpolation = getattr(preset, "interpolation", None)
    out["interpolation"] = getattr(interpolation, "value", interpolation)
    return out


def _first_arxiv(*texts: str | None) -> tuple[str, int] | None:
    for n, text in enumerate(texts):
        match = _ARXIV.search(text or "")
        if match:
            return f"arXiv:{match.group(1)}", n
    return None


def build_record(builder: str, weights: Enum, *, builder_doc: str | None = None, version: str | None = None) -> EntryRecord:
    """The entry for one weights enum member (``ResNet50_Weights.IMAGENET1K_V2``)."""
    meta: dict[str, Any] = weights.meta  # type: ignore[attr-defined]
    url: str = weights.url  # type: ignore[attr-defined]
    name = f"{builder}.{weights.name}"
    evidence: dict[str, str] = {
        "architecture": "torchvision builder name",
        "family": f"family rules on '{builder}'",
        "params": "weights.meta['num_params']",
        "gflops": "weights.meta['_ops']",
        "upstream_url": "weights.meta['recipe']",
    }
    categories: list[str] | None = meta.get("categories")
    tf = _transforms(weights)
    crop = tf["crop_size"][0] if tf.get("crop_size") else None
    resize = tf["resize_size"][0] if tf.get("resize_size") else None
    crop_pct = crop / resize if crop and resize else None
    evidence["input_size"] = "weights.transforms().crop_size"

    # training chain: the enum names the final data set; method tokens (SWAG) name pre-training
    tag = parse_tag(weights.name)
    ordered = [s for s in tag.chain if s.implied_by] + [s for s in tag.chain if not s.implied_by]
    steps = [
        ChainStep(s.dataset, s.raw_name, Stage.TRAIN if i == len(ordered) - 1 else Stage.PRETRAIN, s.implied_by)
        for i, s in enumerate(ordered)
    ]
    datasets = chain_links(steps, source=SOURCE, evidence=f"weights name '{weights.name}'")
    final = steps[-1].dataset if steps else None

    claims: list[AccuracyClaim] = []
    for raw_set, figures in (meta.get("_metrics") or {}).items():
        for key, metric in _METRICS:
            value = figures.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                claims.append(
                    AccuracyClaim(
                        dataset=dataset_name(raw_set),
                        split="validation",
                        metric=metric,
                        value=float(value),
                        img_size=crop,
                        crop_pct=crop_pct,
                        source=SOURCE,
                        evidence=f"weights.meta['_metrics']['{raw_set}']['{key}']",
                        url=meta.get("recipe"),
                    )
                )
    classifier = bool(categories) and bool(claims)
    if classifier:
        evidence["num_classes"] = "len(weights.meta['categories'])"
    else:
        evidence["task"] = "weights.meta has no categories or only NaN metrics (see meta['_docs'])"

    if meta.get("license"):
        licence = LICENCE_URLS.get(meta["license"], meta["license"])
        evidence["licence"] = f"weights.meta['license'] = {meta['license']}"
    else:
        licence = DEFAULT_LICENCE
        evidence["licence"] = "no weights.meta['license']: torchvision's own licence (BSD-3-Clause)"
    paper = _first_arxiv(meta.get("_docs"), builder_doc)
    if paper is not None:
        evidence["paper"] = ("weights.meta['_docs']", "builder docstring")[paper[1]] + " (first arXiv link)"

    filename = url_filename(url)
    prefix = hash_prefix(filename)
    evidence["files"] = "weights.url" + (" (sha256 prefix from the file name)" if prefix else "")
    load = LoadSpec(
        builder="torchvision",
        architecture=builder,
        input_size=(3, crop, crop) if crop else None,
        mean=tuple(tf["mean"]) if tf.get("mean") else None,
        std=tuple(tf["std"]) if tf.get("std") else None,
        interpolation=tf.get("interpolation"),
        crop_pct=crop_pct,
        crop_mode="center",
        num_classes=len(categories) if categories else None,
        label_set=final if classifier else None,
        labels=list(categories) if categories else None,
    )
    raw = {
        "builder": builder,
        "weights": f"{type(weights).__name__}.{weights.name}",
        "url": url,
        "meta": jsonable({k: v for k, v in meta.items() if k != "categories"}),
        "transforms": jsonable(tf),
        "torchvision_version": version,
    }
    return EntryRecord(
        id=f"{SOURCE}:{name}",
        task="image-classification" if classifier else "image-feature-extraction",
        architecture=builder,
        family=family_of(builder),
        num_classes=len(categories) if classifier and categories else None,
        input_size=crop,
        params=meta.get("num_params"),
        gflops=meta.get("_ops"),
        licence=licence,
        paper=paper[0] if paper else None,
        library="torchvision",
        upstream_url=meta.get("recipe"),
        tags=list(tag.traits),
        datasets=datasets,
        claims=claims,
        files=[
            FileRef(
                url=url,
                filename=filename,
                checksum=prefix,
                checksum_algo="sha256-prefix" if prefix else None,
                format="pytorch",
            )
        ],
        load=load,
        evidence=evidence,
        raw=raw,
    )
