"""timm: every pretrained ``arch.tag`` in the installed registry, with timm's published accuracy.

Registry facts (input size, crop, mean/std, licence, paper, hub id, weight URL) come from
each tag's ``PretrainedCfg``; the training chain from the tag grammar
(:mod:`securitynet.annotate.timm_tags`); accuracy claims and parameter counts from timm's
``results-*.csv`` tables (:mod:`securitynet.annotate.timm_results`): a folder given
(``--timm-results DIR`` / ``SECURITYNET_TIMM_RESULTS``), online the published ones, else the
last ones read or the snapshot shipped in the package (:mod:`securitynet.scrapers.timm_tables`
chooses, and never falls back to older tables than the catalogue holds).

No net is instantiated: parameter counts of tags without a results row stay unknown here.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from dataclasses import fields
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from securitynet.annotate.datasets import DATASETS, dataset_info, dataset_variant, training_traits
from securitynet.annotate.families import family_of
from securitynet.annotate.timm_results import (
    ResultRow,
    ResultsTable,
    params_from_millions,
)
from securitynet.annotate.timm_tags import ChainStep, TagInfo, chain_links, parse_tag
from securitynet.records import (
    TEST_NET_TAG,
    AccuracyClaim,
    EntryRecord,
    FileRef,
    LoadSpec,
    Metric,
    Stage,
)
from securitynet.scrapers._common import (
    code_digest,
    hash_prefix,
    jsonable,
    limit_reached,
    package_version,
    url_filename,
)
from securitynet.scrapers.base import SyncContext, Unchanged
from securitynet.scrapers.timm_tables import load_results, tables_fingerprint

if TYPE_CHECKING:
    from timm.models import PretrainedCfg

log = logging.getLogger(__name__)

SOURCE = "timm"
CLAIM_SOURCE = "timm-results"
FEATURE_TASK = "image-feature-extraction"
#: timm registers tiny ``test_*`` nets for its own unit tests; they are tagged and left out
#: of listings and statistics unless asked for.
TEST_NET_PREFIX = "test_"


class TimmScraper:
    name = SOURCE
    needs_network = False

    def unavailable_reason(self, ctx: SyncContext) -> str | None:
        if importlib.util.find_spec("timm") is None:
            return "timm is not installed"
        return None

    def fingerprint(self, ctx: SyncContext) -> str | None:
        """timm's version, which results tables and their digest, and our code's; None when
        the tables would be fetched (their content is only known by fetching them)."""
        tables = tables_fingerprint(ctx)
        if tables is None:
            return None
        return f"timm {package_version('timm')}; results {tables}; code {code_digest()}"

    def iter_records(self, ctx: SyncContext) -> Iterator[EntryRecord | Unchanged]:
        import timm
        from timm.models import get_pretrained_cfg, list_pretrained

        results = load_results(ctx)
        by_model = results.by_model()
        legacy = _legacy_metadata(results.pretrain)
        version = timm.__version__
        count = 0
        for name in list_pretrained():
            if limit_reached(count, ctx.limit):
                return
            cfg = get_pretrained_cfg(name)
            if cfg is None:  # listed but without a config: nothing to say about it
                log.debug("timm lists %s but has no pretrained config", name)
                continue
            yield build_record(name, cfg, rows=by_model.get(name, []), metadata=legacy.get(name), version=version)
            count += 1


# --- results tables (chosen and read by securitynet.scrapers.timm_tables) ----------------


def _legacy_metadata(pretrain: dict[str, str]) -> dict[str, tuple[str, str]]:
    """``model_metadata-in1k.csv`` keyed by today's ``arch.tag`` -> (name as written, pretrain).

    The file predates tags: ``ig_resnext101_32x8d`` is today's
    ``resnext101_32x8d.fb_wsl_ig1b_ft_in1k`` (timm's deprecation map). An untagged
    architecture name is matched only when the architecture has a single pretrained tag:
    default tags changed since (``convnext_nano`` now defaults to an ImageNet-12k run), so
    for several tags the row cannot be told apart.
    """
    if not pretrain:
        return {}
    from timm.models import get_deprecated_models, list_pretrained

    deprecated = get_deprecated_models()
    tags_of: dict[str, list[str]] = {}
    for name in list_pretrained():
        tags_of.setdefault(name.partition(".")[0], []).append(name)
    out: dict[str, tuple[str, str]] = {}
    for old, label in pretrain.items():
        current = deprecated.get(old)
        if current is None and len(tags_of.get(old, ())) == 1:
            current = tags_of[old][0]
        if current:
            out[current] = (old, label)
    return out


# --- one record ------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _labelled_sizes() -> dict[int, str]:
    """Label-set size -> the one labelled data set of that size (1000 -> ImageNet-1k; 10 is ambiguous)."""
    by_size: dict[int, list[str]] = {}
    for info in DATASETS:
        if info.kind == "images" and info.num_classes:
            by_size.setdefault(info.num_classes, []).append(info.name)
    return {size: names[0] for size, names in by_size.items() if len(names) == 1}


def _dataset_for_classes(num_classes: int) -> str | None:
    return _labelled_sizes().get(num_classes)


def _chain(tag: TagInfo, cfg: PretrainedCfg, evidence: dict[str, str]) -> tuple[list[ChainStep], bool]:
    """The training chain and whether the net's head is a classifier over its final data set."""
    steps = list(tag.chain)
    num_classes = cfg.num_classes or 0
    if not steps and num_classes > 0:
        inferred = _dataset_for_classes(num_classes)
        if inferred is not None:
            steps = [ChainStep(inferred, f"num_classes={num_classes}", Stage.TRAIN)]
            evidence["datasets"] = (
                f"tag '{tag.tag}' names no data set; pretrained_cfg.num_classes={num_classes} is {inferred}'s label set"
            )
    final = steps[-1].dataset if steps else None
    variant = dataset_variant(final, num_classes or None) if final else None
    if final and variant and variant != final:  # miil_in21k heads: 11,221 classes, ImageNet-21K-P
        last = steps[-1]
        steps[-1] = ChainStep(variant, last.raw_name, last.stage, last.implied_by)
        evidence["datasets"] = (
            f"pretrained tag '{tag.tag}' (timm tag grammar); pretrained_cfg.num_classes={num_classes} "
            f"is the {variant} release of {final}"
        )
        final = variant
    info = dataset_info(final) if final else None
    classifier = num_classes > 0 and final is not None and (info is None or info.kind != "image-text")
    return steps, classifier


def build_record(
    name: str,
    cfg: PretrainedCfg,
    *,
    rows: list[tuple[ResultsTable, ResultRow]],
    metadata: tuple[str, str] | None = None,
    version: str | None = None,
) -> EntryRecord:
    """The entry for one pretrained tag ``name`` (``arch.tag``)."""
    arch, _, tag_text = name.partition(".")
    arch = cfg.architecture or arch
    tag = parse_tag(cfg.tag or tag_text)
    evidence: dict[str, str] = {
        "architecture": "timm architecture name (before the '.')",
        "family": f"family rules on '{arch}'",
        "input_size": "pretrained_cfg.input_size",
        "datasets": f"pretrained tag '{tag.tag}' (timm tag grammar)",
    }
    steps, classifier = _chain(tag, cfg, evidence)
    datasets = chain_links(steps, source=SOURCE, evidence=evidence["datasets"])
    final = steps[-1].dataset if steps else None

    if classifier:
        evidence["num_classes"] = "pretrained_cfg.num_classes"
    elif cfg.num_classes:
        evidence["task"] = (
            f"pretrained_cfg.num_classes={cfg.num_classes} is an embedding head "
            f"({'image-text training' if final else 'no labelled data set in the tag'}), not a label set"
        )
    else:
        evidence["task"] = "pretrained_cfg.num_classes=0: no classifier head"

    claims = [claim for table, row in rows for claim in _claims(table, row)]
    params = next((params_from_millions(r.param_count_m) for _, r in rows if r.param_count_m is not None), None)
    if params is not None:
        first = next(f"{t.filename} row ({r.model}, {r.img_size})" for t, r in rows if r.param_count_m is not None)
        evidence["params"] = f"{first} param_count (millions, 2 decimals)"

    licence = cfg.license or None
    if licence:
        evidence["licence"] = "pretrained_cfg.license"
    paper_ids = cfg.paper_ids if isinstance(cfg.paper_ids, str) else ", ".join(cfg.paper_ids or ())
    paper = paper_ids or cfg.paper_name or None
    if paper:
        evidence["paper"] = "pretrained_cfg.paper_ids" if paper_ids else "pretrained_cfg.paper_name"
    upstream = f"https://huggingface.co/{cfg.hf_hub_id.split('@', 1)[0]}" if cfg.hf_hub_id else cfg.origin_url
    if upstream:
        evidence["upstream_url"] = "pretrained_cfg.hf_hub_id" if cfg.hf_hub_id else "pretrained_cfg.origin_url"

    traits = list(tag.traits)
    for trait, why in training_traits([s.dataset for s in steps]).items():
        if trait not in traits:
            traits.append(trait)
            evidence["tags"] = why
    if arch.startswith(TEST_NET_PREFIX):
        traits.append(TEST_NET_TAG)
        evidence["tags"] = f"'{arch}' is one of timm's test_* nets (tiny, for timm's own tests)"
    if "distilled" in parse_tag(arch).traits and "distilled" not in traits:  # deit_*_distilled_*
        traits.append("distilled")
        evidence["tags"] = f"'distilled' from the architecture name '{arch}'"
    raw: dict[str, Any] = {"pretrained_cfg": _cfg_payload(cfg), "timm_version": version}
    if metadata is not None:
        legacy_name, pretrain = metadata
        raw["model_metadata"] = {"model": legacy_name, "pretrain": pretrain}
        if pretrain.endswith(("-adv", "-ap")) and "adversarial-training" not in traits:
            traits.append("adversarial-training")

    input_size = tuple(cfg.input_size) if cfg.input_size else None
    load = LoadSpec(
        builder="timm",
        architecture=name,
        input_size=(input_size[0], input_size[1], input_size[2]) if input_size and len(input_size) == 3 else None,
        mean=tuple(cfg.mean) if cfg.mean else None,
        std=tuple(cfg.std) if cfg.std else None,
        interpolation=cfg.interpolation or None,
        crop_pct=cfg.crop_pct,
        crop_mode=cfg.crop_mode,
        num_classes=cfg.num_classes,
        label_set=final if classifier else None,
    )
    return EntryRecord(
        id=f"{SOURCE}:{name}",
        task="image-classification" if classifier else FEATURE_TASK,
        architecture=arch,
        family=family_of(arch),
        num_classes=cfg.num_classes if classifier else None,
        input_size=input_size[-1] if input_size else None,
        params=params,
        licence=licence,
        paper=paper,
        library="timm",
        upstream_url=upstream,
        tags=traits,
        datasets=datasets,
        claims=claims,
        files=_files(cfg, evidence),
        load=load,
        evidence=evidence,
        raw=raw,
    )


def _cfg_payload(cfg: PretrainedCfg) -> dict[str, Any]:
    """The config's set fields, JSON-able (what ``PretrainedCfg.to_dict`` gives, without its deep copy)."""
    return {f.name: jsonable(v) for f in fields(cfg) if (v := getattr(cfg, f.name)) is not None}


def _claims(table: ResultsTable, row: ResultRow) -> list[AccuracyClaim]:
    evidence = f"{table.filename} row ({row.model}, {row.img_size})"
    out = [
        AccuracyClaim(
            dataset=table.dataset,
            split=table.split,
            metric=Metric.TOP1,
            value=row.top1,
            img_size=row.img_size,
            crop_pct=row.crop_pct,
            source=CLAIM_SOURCE,
            evidence=f"{evidence} top1",
        )
    ]
    if row.top5 is not None:
        out.append(out[0].model_copy(update={"metric": Metric.TOP5, "value": row.top5, "evidence": f"{evidence} top5"}))
    return out


def _files(cfg: PretrainedCfg, evidence: dict[str, str]) -> list[FileRef]:
    if cfg.hf_hub_id:
        repo, _, revision = cfg.hf_hub_id.partition("@")
        hub_file = cfg.hf_hub_filename or "model.safetensors"
        evidence["files"] = "pretrained_cfg.hf_hub_id (timm prefers model.safetensors in the hub repository)"
        return [
            FileRef(
                url=f"hf://{repo}/{hub_file}",
                filename=hub_file,
                revision=revision or None,
                format="safetensors" if hub_file.endswith(".safetensors") else None,
            )
        ]
    url = cfg.url if isinstance(cfg.url, str) else (cfg.url[0] if cfg.url else None)
    if url:
        filename = url_filename(url)
        prefix = hash_prefix(filename)
        evidence["files"] = "pretrained_cfg.url" + (" (sha256 prefix from the file name)" if prefix else "")
        return [
            FileRef(
                url=url,
                filename=filename,
                checksum=prefix,
                checksum_algo="sha256-prefix" if prefix else None,
                format="npz" if filename and filename.endswith(".npz") else "pytorch",
            )
        ]
    return []
