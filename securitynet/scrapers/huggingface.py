"""The Hugging Face Hub source: every public image classifier on the Hub.

What is crawled is in the manifest ``scrapers/huggingface.yaml`` (queries, order, which
files to read). The crawl:

1. lists each query (``/api/models`` with ``expand=``: sha, tags, library, card metadata,
   raw model-index, trimmed config, file names, safetensors parameter counts), a thousand
   models a page;
2. yields :class:`Unchanged` for a model whose commit sha is the one the catalogue pinned
   (no request at all), so a re-sync of an unchanged Hub costs the listing pages only;
3. builds a new or changed model's record from its listing item
   (:mod:`securitynet.scrapers.hubrecord`), reading its README.md only where the listing
   shows an accuracy claim may sit in the body and nowhere else
   (:func:`securitynet.annotate.cards.card_needs_body`), several models at a time;
4. leaves what only config.json, preprocessor_config.json and a weight file's LFS
   metadata say pending (``raw["pending"]``), for :meth:`HuggingFaceScraper.fill_pending`
   on the entry's first ``load`` or ``show``.

Requests are paced by the Hub's rate-limit headers, and a 429 pauses the crawl until the
window resets, then it resumes (:mod:`securitynet.scrapers.hubclient`). A failed read is an
annotation error of that entry, never the end of the crawl; if it may pass (429 past
``hf_max_wait``, 5xx, timeout) the entry is listed in the resume state and read again by
the next sync even though its sha did not change. A Hub that cannot be reached ends the
crawl at once with one error.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from securitynet.annotate.cards import card_body_signalled, card_needs_body, parse_card
from securitynet.annotate.hfconfig import config_is_complete, is_timm_config
from securitynet.errors import (
    ConfigurationError,
    InvalidIdError,
    NotFoundError,
    SecurityNetError,
    SourceUnavailableError,
)
from securitynet.ids import format_id
from securitynet.records import EntryFill, EntryRecord
from securitynet.resources import resource_dir
from securitynet.scrapers.base import SyncContext, Unchanged
from securitynet.scrapers.hubclient import HubClient, HubQuery, offline_reason
from securitynet.scrapers.hubrecord import (
    CONFIG,
    PREPROCESSOR,
    README,
    SOURCE,
    build_record,
    fill_pending,
    is_timm_model,
    listing_metadata,
    weight_files,
)
from securitynet.settings import Settings

if TYPE_CHECKING:
    from huggingface_hub import ModelInfo

__all__ = ["HubManifest", "HuggingFaceScraper", "build_record", "load_manifest", "weight_files"]

log = logging.getLogger(__name__)


# --- the manifest ------------------------------------------------------------------------------


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pipeline_tag: str | None = None
    filter: str | None = None


class FilePolicy(BaseModel):
    """Which files a new or changed model costs at sync (the rest is read on demand)."""

    model_config = ConfigDict(extra="forbid")
    card: Literal["auto", "signalled", "always", "never"] = "auto"
    config: bool = False
    preprocessor: bool = False


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
        except SourceUnavailableError:  # the Hub is gone: the crawl ends, not just this entry
            raise
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
            except SourceUnavailableError:
                raise
            except SecurityNetError as exc:  # a 429 past hf_max_wait, a 5xx, a timeout
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
        tags = info.tags or ()
        if (
            policy.card == "always"
            or (policy.card == "auto" and card_needs_body(card, tags))
            or (policy.card == "signalled" and card_body_signalled(card, tags))
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
            pacer = self.client.pacer
            log.info(
                "hf: %d listed, %d unchanged, %d annotated (%d with errors), %d cards and %d files "
                "read, %d requests, %.1f s paced (%d rate-limit pauses)",
                len(self.listed), self.stats["unchanged"], self.stats["annotated"], self.stats["with errors"],
                self.stats["cards read"], self.stats["files read"], self.client.requests,
                pacer.waited, pacer.pauses,
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

    def fill_pending(self, entry: EntryRecord, settings: Settings) -> EntryFill:
        """Read what the sync left pending for ``entry`` (its ``raw["pending"]``): classes,
        labels and preprocessing from config.json (and preprocessor_config.json), the weight
        files' LFS size and sha256. Raises SourceUnavailableError when offline or unreachable."""
        return fill_pending(self.client_factory(settings), entry)
