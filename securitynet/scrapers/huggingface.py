"""The Hugging Face Hub source: every public image classifier on the Hub.

What is crawled is in the manifest ``scrapers/huggingface.yaml`` (queries, order, which
files to read). The crawl:

1. lists each query with :meth:`HfApi.list_models`, ``expand=`` asking for sha, tags,
   library, card metadata, trimmed config, file names and safetensors parameter counts;
2. yields :class:`Unchanged` for a model whose commit sha is the one the catalogue pinned
   (no request at all), so a re-sync of an unchanged Hub costs the listing pages only;
3. for a new or changed model, reads the few small files the listing lacks
   (README.md only when the card metadata is not enough, config.json,
   preprocessor_config.json), several models at a time, and annotates it
   (:mod:`securitynet.annotate.cards`, :mod:`securitynet.annotate.hfconfig`).

A failed read is an annotation error of that entry, never the end of the crawl; if it may
pass (429, 5xx, timeout) the entry is listed in the resume state and read again by the
next sync even though its sha did not change. After a 429 that outlasted the retries the
crawl stops reading files for the rest of the run and keeps cataloguing from the listing.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from securitynet.annotate.cards import CardAnnotation, card_needs_body, parse_card
from securitynet.annotate.hfconfig import (
    ConfigFacts,
    config_is_complete,
    is_timm_config,
    read_timm_config,
    read_transformers_config,
)
from securitynet.errors import (
    ConfigurationError,
    InvalidIdError,
    NotFoundError,
    RateLimitedError,
    SecurityNetError,
)
from securitynet.ids import format_id
from securitynet.records import EntryRecord, FileRef, LoadSpec
from securitynet.resources import resource_dir
from securitynet.scrapers.base import SyncContext, Unchanged
from securitynet.scrapers.hubclient import HubClient, HubQuery, offline_reason
from securitynet.settings import Settings

if TYPE_CHECKING:
    from huggingface_hub import ModelInfo
    from huggingface_hub.hf_api import RepoSibling

log = logging.getLogger(__name__)

SOURCE = "hf"
README, CONFIG, PREPROCESSOR = "README.md", "config.json", "preprocessor_config.json"


# --- the manifest ------------------------------------------------------------------------------


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pipeline_tag: str | None = None
    filter: str | None = None


class FilePolicy(BaseModel):
    """Which files a new or changed model costs."""

    model_config = ConfigDict(extra="forbid")
    card: Literal["auto", "always", "never"] = "auto"
    config: bool = True
    preprocessor: bool = True


class HubManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queries: list[_Query] = Field(min_length=1)
    sort: Literal["downloads", "likes", "created_at", "last_modified", "trending_score"] | None = (
        "downloads"
    )
    files: FilePolicy = Field(default_factory=FilePolicy)

    def hub_queries(self) -> list[HubQuery]:
        return [HubQuery(pipeline_tag=q.pipeline_tag, filter=q.filter) for q in self.queries]


def load_manifest(options: Mapping[str, Any] | None = None) -> HubManifest:
    """``scrapers/huggingface.yaml``, with ``options`` (``queries``, ``sort``, ``files``,
    as in the file) laid over it."""
    path = resource_dir("scrapers") / "huggingface.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        data.update({k: v for k, v in (options or {}).items() if k in HubManifest.model_fields})
        return HubManifest.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigurationError(f"bad hf source manifest or options ({path}): {exc}") from exc


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
        files=weight_files(repo, sha, info.siblings),
        load=_load_spec(repo, facts, timm=timm),
        evidence=evidence,
        errors=[*errors, *card.errors, *facts.errors],
        raw=_raw(info),
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


# --- the crawl -----------------------------------------------------------------------------------


@dataclass
class _Annotated:
    record: EntryRecord
    retry: bool  # a read failed in a way the next sync may get past
    reads: int  # files asked for
    card_read: bool = False


@dataclass
class _Crawl:
    ctx: SyncContext
    manifest: HubManifest
    client: HubClient
    stats: Counter[str] = field(default_factory=Counter)
    throttled: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.retry: set[str] = set(self.ctx.state.get("retry") or [])
        self.listed: set[str] = set()

    # -- which models
    def _listing(self) -> Iterator[ModelInfo]:
        limit = self.ctx.limit
        for query in self.manifest.hub_queries():
            remaining = None if limit is None else limit - len(self.listed)
            if remaining is not None and remaining <= 0:
                return
            for info in self.client.iter_models(query, limit=remaining, sort=self.manifest.sort):
                if info.id in self.listed:
                    continue
                self.listed.add(info.id)
                yield info
                if limit is not None and len(self.listed) >= limit:
                    return

    # -- one model (runs in a worker thread)
    def annotate(self, info: ModelInfo) -> _Annotated:
        try:
            return self._annotate(info)
        except Exception as exc:  # one model's surprise must not end the crawl
            log.exception("annotating %s failed", info.id)
            record = EntryRecord(
                id=format_id(SOURCE, info.id),
                revision=info.sha,
                upstream_url=f"{self.client.endpoint}/{info.id}",
                errors=[f"annotation failed: {type(exc).__name__}: {exc}"],
            )
            return _Annotated(record, retry=True, reads=0)

    def _annotate(self, info: ModelInfo) -> _Annotated:
        repo, sha, policy = info.id, info.sha, self.manifest.files
        names = {s.rfilename for s in info.siblings} if info.siblings is not None else None
        errors: list[str] = []
        retry = False
        reads = 0

        def read(filename: str, as_json: bool) -> Any:
            nonlocal retry, reads
            if names is not None and filename not in names:
                return None
            if self.throttled.is_set():
                errors.append(
                    f"{filename} not read: the Hub rate-limited this sync; the next sync reads it"
                )
                retry = True
                return None
            reads += 1
            try:
                if as_json:
                    return self.client.read_json(repo, filename, revision=sha)
                return self.client.read_file(repo, filename, revision=sha).decode(
                    "utf-8", errors="replace"
                )
            except NotFoundError as exc:
                if names is not None:  # listed but absent: worth saying
                    errors.append(str(exc))
                return None
            except RateLimitedError as exc:
                self.throttled.set()
                log.warning(
                    "the Hub rate-limited us; files are not read for the rest of this sync (%s)",
                    exc,
                )
                errors.append(str(exc))
                retry = True
                return None
            except SecurityNetError as exc:
                errors.append(str(exc))
                retry = retry or bool(getattr(exc, "transient", False))
                return None

        url = (
            f"{self.client.endpoint}/{repo}/blob/{sha}/{README}"
            if sha
            else f"{self.client.endpoint}/{repo}"
        )
        meta = listing_metadata(info)
        card = parse_card(None, repo_id=repo, metadata=meta, source=SOURCE, url=url)
        text: str | None = None
        if policy.card == "always" or (
            policy.card == "auto" and card_needs_body(card, info.tags or ())
        ):
            text = read(README, as_json=False)
            if text is not None:
                card = parse_card(text, repo_id=repo, metadata=meta, source=SOURCE, url=url)
        timm = is_timm_model(info)
        config: Mapping[str, Any] | None = info.config if isinstance(info.config, Mapping) else None
        if policy.config and not config_is_complete(config, timm=timm):
            config = read(CONFIG, as_json=True) or config
        preprocessor = None
        if policy.preprocessor and not timm and not is_timm_config(config):
            preprocessor = read(PREPROCESSOR, as_json=True)
        record = build_record(
            info,
            endpoint=self.client.endpoint,
            card=card,
            config=config,
            preprocessor=preprocessor,
            errors=errors,
        )
        return _Annotated(record, retry=retry, reads=reads, card_read=text is not None)

    # -- bookkeeping
    def _finish(self, item: Future[_Annotated] | Unchanged) -> EntryRecord | Unchanged:
        return item if isinstance(item, Unchanged) else self._done(item.result())

    def _done(self, result: _Annotated) -> EntryRecord:
        rid = result.record.id
        before = len(self.retry)
        if result.retry:
            self.retry.add(rid)
        else:
            self.retry.discard(rid)
        if len(self.retry) != before or result.retry:
            self.ctx.state["retry"] = sorted(self.retry)
        self.stats["files read"] += result.reads
        self.stats["cards read"] += result.card_read
        self.stats["annotated"] += 1
        self.stats["with errors"] += bool(result.record.errors)
        return result.record

    def run(self) -> Iterator[EntryRecord | Unchanged]:
        workers = self.ctx.settings.hf_workers
        window: deque[Future[_Annotated] | Unchanged] = deque()
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="securitynet-hf")
        quiet = _DropInvalidModelIndexWarning()
        card_data_log = logging.getLogger("huggingface_hub.repocard_data")
        card_data_log.addFilter(quiet)
        failure: SecurityNetError | None = None
        try:
            listing = self._listing()
            while True:
                try:
                    info = next(listing, None)
                except SecurityNetError as exc:  # the listing broke: hand out what was read first
                    failure = exc
                    break
                if info is None:
                    break
                try:
                    eid = format_id(SOURCE, info.id)
                except InvalidIdError:
                    log.warning("skipping a Hub model whose id we cannot use: %r", info.id)
                    continue
                if info.sha and self.ctx.known.get(eid) == info.sha and eid not in self.retry:
                    window.append(Unchanged(eid))
                    self.stats["unchanged"] += 1
                else:
                    window.append(pool.submit(self.annotate, info))
                # hand out, in listing order, what is ready; wait once the window is full
                while window and (len(window) > 4 * workers or _ready(window[0])):
                    yield self._finish(window.popleft())
            while window:
                yield self._finish(window.popleft())
            if failure is not None:
                raise failure
            if self.ctx.limit is None:  # a complete listing: forget retries of models gone
                self.retry &= {format_id(SOURCE, i) for i in self.listed}
                self.ctx.state["retry"] = sorted(self.retry)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            card_data_log.removeFilter(quiet)
            log.info(
                "hf: %d listed, %d unchanged, %d annotated (%d with errors), %d cards and %d files read",
                len(self.listed), self.stats["unchanged"], self.stats["annotated"], self.stats["with errors"],
                self.stats["cards read"], self.stats["files read"],
            )  # fmt: skip


def _ready(item: Future[_Annotated] | Unchanged) -> bool:
    return isinstance(item, Unchanged) or item.done()


class _DropInvalidModelIndexWarning(logging.Filter):
    """huggingface_hub warns, once per listed model, that it cannot parse a card's
    model-index; the crawl reads such a model-index itself (and records what it cannot
    read as the entry's annotation error), so the warning is noise here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Invalid model-index")


class HuggingFaceScraper:
    """Public image classifiers on the Hugging Face Hub (needs the network).

    ``client_factory`` makes the :class:`HubClient` a crawl talks through (a benchmark
    passes one that fetches differently; the registry uses the default).
    """

    name = SOURCE
    needs_network = True

    def __init__(self, *, client_factory: Callable[[Settings], HubClient] = HubClient) -> None:
        self.client_factory = client_factory

    def unavailable_reason(self, ctx: SyncContext) -> str | None:
        try:
            import huggingface_hub  # noqa: F401
        except ImportError:
            return "huggingface_hub is not installed"
        return offline_reason(ctx.settings)

    def iter_records(self, ctx: SyncContext) -> Iterator[EntryRecord | Unchanged]:
        manifest = load_manifest(ctx.options)
        crawl = _Crawl(ctx=ctx, manifest=manifest, client=self.client_factory(ctx.settings))
        yield from crawl.run()
