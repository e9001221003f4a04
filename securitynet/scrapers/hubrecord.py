"""One Hub listing item -> one :class:`EntryRecord`, and what is left to read on demand.

The listing (``expand=``) carries the card metadata, the raw model-index, a trimmed config
(``architectures`` / ``model_type``; timm's full config where the Hub keeps it), the file
names and the safetensors parameter count. What only a repository's files say (the number
of classes, the labels, the preprocessing; a weight file's LFS size and sha256) is not read
by the sync: the record lists it under ``raw["pending"]`` and :func:`fill_pending` reads it
on the entry's first ``load`` or ``show`` (one ``config.json`` read, a
``preprocessor_config.json`` read for transformers models that have one, one ``HEAD`` per
weight file), for the catalogue to write back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from securitynet.annotate.cards import CardAnnotation
from securitynet.annotate.hfconfig import (
    ConfigFacts,
    config_is_complete,
    is_timm_config,
    read_timm_config,
    read_transformers_config,
)
from securitynet.errors import NotFoundError, SecurityNetError, SourceUnavailableError
from securitynet.ids import format_id
from securitynet.records import EntryFill, EntryRecord, FileRef, LoadSpec

if TYPE_CHECKING:
    from huggingface_hub import ModelInfo
    from huggingface_hub.hf_api import RepoSibling

    from securitynet.scrapers.hubclient import HubClient

SOURCE = "hf"
README, CONFIG, PREPROCESSOR = "README.md", "config.json", "preprocessor_config.json"
#: What ``raw["pending"]`` may list.
PENDING_CONFIG, PENDING_PREPROCESSOR, PENDING_FILES = "config", "preprocessor", "file-pins"


# --- files and load specs -----------------------------------------------------------------------


def _file_ref(
    repo_id: str, revision: str | None, sibling: RepoSibling, *, fmt: str, role: str
) -> FileRef:
    lfs = sibling.lfs
    sha256 = lfs.sha256 if lfs is not None and lfs.sha256 else None
    return FileRef(
        url=f"hf://{repo_id}/{sibling.rfilename}",
        filename=sibling.rfilename,
        revision=revision,
        size=lfs.size if lfs is not None else sibling.size,
        sha256=sha256,
        checksum=sha256,
        checksum_algo="sha256" if sha256 else None,
        format=fmt,
        role=role,
    )


def weight_files(
    repo_id: str, revision: str | None, siblings: Iterable[RepoSibling] | None
) -> list[FileRef]:
    """The files a net's weights load from: safetensors before pickled PyTorch, a single file
    before a sharded set (its index first); sizes and sha256 where the listing gave LFS info."""
    by_name = {s.rfilename: s for s in siblings or ()}
    for stem, ext, fmt in (
        ("model", "safetensors", "safetensors"),
        ("pytorch_model", "bin", "pytorch"),
    ):
        single, index = f"{stem}.{ext}", f"{stem}.{ext}.index.json"
        if single in by_name:
            return [_file_ref(repo_id, revision, by_name[single], fmt=fmt, role="weights")]
        if index in by_name:
            shard = re.compile(rf"{re.escape(stem)}-\d{{5}}-of-\d{{5}}\.{ext}")
            shards = sorted(n for n in by_name if shard.fullmatch(n))
            return [_file_ref(repo_id, revision, by_name[index], fmt="json", role="index")] + [
                _file_ref(repo_id, revision, by_name[n], fmt=fmt, role="weights") for n in shards
            ]
    lone = [n for n in by_name if "/" not in n and n.endswith(".safetensors")]
    if len(lone) == 1:
        return [_file_ref(repo_id, revision, by_name[lone[0]], fmt="safetensors", role="weights")]
    return []


def _load_spec(repo_id: str, facts: ConfigFacts, *, timm: bool) -> LoadSpec | None:
    if not timm and facts.architecture is None:
        return None
    return LoadSpec(
        builder="timm" if timm else "transformers",
        architecture=f"hf-hub:{repo_id}" if timm else facts.architecture,
        input_size=facts.input_size,
        mean=facts.mean,
        std=facts.std,
        interpolation=facts.interpolation,
        crop_pct=facts.crop_pct,
        crop_mode=facts.crop_mode,
        num_classes=facts.num_classes,
        labels=facts.labels,
        output="logits",
    )


# --- one model -> one record ---------------------------------------------------------------------


def listing_metadata(info: ModelInfo) -> dict[str, Any]:
    """The card metadata the listing carried: huggingface_hub's ``card_data`` with the raw
    ``model-index`` put back (huggingface_hub drops one it cannot parse)."""
    meta: dict[str, Any] = info.card_data.to_dict() if info.card_data is not None else {}
    raw_index = getattr(info, "model_index", None)
    if raw_index:
        meta["model-index"] = raw_index
    return meta


def is_timm_model(info: ModelInfo, config: Mapping[str, Any] | None = None) -> bool:
    if config:
        return is_timm_config(config)
    return info.library_name == "timm" or (
        info.library_name is None and "timm" in (info.tags or ())
    )


def build_record(
    info: ModelInfo,
    *,
    endpoint: str,
    card: CardAnnotation,
    config: Mapping[str, Any] | None,
    preprocessor: Mapping[str, Any] | None = None,
    errors: Iterable[str] = (),
) -> EntryRecord:
    """Everything the listing, the card and the configs say about one model (no I/O)."""
    repo, sha = info.id, info.sha
    tags = list(info.tags or [])
    timm = is_timm_model(info, config)
    facts = read_timm_config(config) if timm else read_transformers_config(config, preprocessor)
    listed_config = info.config if isinstance(info.config, Mapping) else {}
    evidence: dict[str, str] = {**card.evidence, **facts.evidence}
    if facts.architecture is None and not timm:
        trimmed = read_transformers_config(listed_config)
        facts.architecture, facts.family = trimmed.architecture, facts.family or trimmed.family
        evidence.update(
            {
                k: f"Hub listing {v}"
                for k, v in trimmed.evidence.items()
                if k in ("architecture", "family")
            }
        )
    if facts.family is None and isinstance(listed_config.get("model_type"), str):
        facts.family = listed_config["model_type"]
        evidence["family"] = "Hub listing config.json: model_type"

    params = info.safetensors.total if info.safetensors is not None else None
    if params is not None:
        evidence["params"] = "Hub listing: safetensors.total"
    licence = card.licence
    if licence is None:
        licence = next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), None)
        if licence:
            evidence["licence"] = f"Hub tag license:{licence}"
    arxiv = [t.split(":", 1)[1] for t in tags if t.startswith("arxiv:")]
    paper = None
    if arxiv:
        paper, evidence["paper"] = f"arXiv:{arxiv[0]}", f"Hub tag arxiv:{arxiv[0]}"
    elif card.arxiv:
        paper, evidence["paper"] = (
            f"arXiv:{card.arxiv[0]}",
            f"card links arxiv.org/abs/{card.arxiv[0]}",
        )
    for base in card.base_models:
        tag = f"base_model:{base.id}"
        if tag not in tags:
            tags.append(tag)
        evidence.setdefault("base_model", base.evidence)
    if info.gated:
        tags.append(f"gated:{info.gated}")
    if info.disabled:
        tags.append("disabled")
    if sha:
        evidence["revision"] = "Hub listing: sha"

    files = weight_files(repo, sha, info.siblings)
    raw = _raw(info)
    names = {s.rfilename for s in info.siblings} if info.siblings is not None else None
    if pending := pending_reads(
        names, config=config, timm=timm, preprocessor=preprocessor, files=files
    ):
        raw["pending"] = pending

    return EntryRecord(
        id=format_id(SOURCE, repo),
        task=info.pipeline_tag or "image-classification",
        architecture=facts.architecture,
        family=facts.family,
        num_classes=facts.num_classes,
        input_size=facts.input_size[1] if facts.input_size else None,
        params=params,
        licence=licence,
        paper=paper,
        library=info.library_name or ("timm" if timm else None),
        upstream_url=f"{endpoint}/{repo}",
        revision=sha,
        upstream_modified=info.last_modified,
        tags=tags,
        datasets=card.datasets,
        claims=card.claims,
        files=files,
        load=_load_spec(repo, facts, timm=timm),
        evidence=evidence,
        errors=[*errors, *card.errors, *facts.errors],
        raw=raw,
    )


def pending_reads(
    names: set[str] | None,
    *,
    config: Mapping[str, Any] | None,
    timm: bool,
    preprocessor: Mapping[str, Any] | None,
    files: Iterable[FileRef],
) -> list[str]:
    """What the record lacks that a repository file would say (``raw["pending"]``)."""
    out: list[str] = []
    if not config_is_complete(config, timm=timm) and (names is None or CONFIG in names):
        out.append(PENDING_CONFIG)
    if (
        not timm
        and preprocessor is None
        and not is_timm_config(config)
        and names is not None
        and PREPROCESSOR in names
    ):
        out.append(PENDING_PREPROCESSOR)
    if any(f.role == "weights" and (f.sha256 is None or f.size is None) for f in files):
        out.append(PENDING_FILES)
    return out


def fill_pending(client: HubClient, entry: EntryRecord) -> EntryFill:
    """Read what ``entry`` (an hf record the sync stored) lists as pending, at its revision.

    Raises SourceUnavailableError when the Hub cannot be reached; any other failure is an
    error of the fill, and a transient one leaves its part pending for the next try.
    """
    repo, sha = entry.name, entry.revision
    raw = entry.raw or {}
    pending = set(raw.get("pending") or ())
    timm = entry.library == "timm" or (entry.load is not None and entry.load.builder == "timm")
    listed = raw.get("config") if isinstance(raw.get("config"), Mapping) else None
    errors: list[str] = []
    still: list[str] = []

    def read(filename: str, part: str) -> dict[str, Any] | None:
        try:
            return client.read_json(repo, filename, revision=sha)
        except SourceUnavailableError:
            raise
        except NotFoundError as exc:
            errors.append(str(exc))
        except SecurityNetError as exc:
            errors.append(str(exc))
            if getattr(exc, "transient", False):
                still.append(part)
        return None

    config = read(CONFIG, PENDING_CONFIG) if PENDING_CONFIG in pending else None
    config = config or listed
    timm = timm or is_timm_config(config)
    preprocessor = None
    if PENDING_PREPROCESSOR in pending and not timm:
        preprocessor = read(PREPROCESSOR, PENDING_PREPROCESSOR)
    facts = read_timm_config(config) if timm else read_transformers_config(config, preprocessor)
    evidence = dict(facts.evidence)
    errors.extend(facts.errors)

    files = [f.model_copy() for f in entry.files]
    if PENDING_FILES in pending:
        for i, ref in enumerate(files):
            if ref.role != "weights" or (ref.sha256 and ref.size):
                continue
            try:
                meta = client.file_metadata(repo, ref.filename or "", revision=sha)
            except SourceUnavailableError:
                raise
            except SecurityNetError as exc:
                errors.append(str(exc))
                if getattr(exc, "transient", False) and PENDING_FILES not in still:
                    still.append(PENDING_FILES)
                continue
            sha256 = ref.sha256 or meta.sha256
            files[i] = ref.model_copy(
                update={
                    "size": ref.size or meta.size,
                    "sha256": sha256,
                    "checksum": ref.checksum or sha256,
                    "checksum_algo": ref.checksum_algo or ("sha256" if sha256 else None),
                }
            )

    return EntryFill(
        id=entry.id,
        architecture=facts.architecture,
        family=facts.family,
        num_classes=facts.num_classes,
        input_size=facts.input_size[1] if facts.input_size else None,
        load=_load_spec(repo, facts, timm=timm) or entry.load,
        files=files,
        evidence=evidence,
        errors=errors,
        pending=sorted(still),
    )


def _raw(info: ModelInfo) -> dict[str, Any]:
    """The listing's own words, compact (no card text, no widget data)."""
    return {
        "sha": info.sha,
        "lastModified": info.last_modified.isoformat() if info.last_modified else None,
        "downloads": info.downloads,
        "likes": info.likes,
        "library_name": info.library_name,
        "pipeline_tag": info.pipeline_tag,
        "gated": info.gated,
        "config": info.config,
        "safetensors": {"parameters": info.safetensors.parameters, "total": info.safetensors.total}
        if info.safetensors is not None
        else None,
        "siblings": [s.rfilename for s in info.siblings] if info.siblings is not None else None,
    }
