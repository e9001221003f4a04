"""Where a timm sync's results tables come from, and the fingerprint of that choice.

The tables are an optional input: the registry facts sync without them. But a sync that
cannot read them must never take away the accuracies the catalogue already holds, so the
choice is explicit and recorded in the run's state (``state["timm_results"]``):

1. a folder given now (``--timm-results DIR`` / ``SECURITYNET_TIMM_RESULTS``): it must be
   readable, or the timm sync fails and changes nothing;
2. online: timm's tables fetched from ``settings.timm_results_url``, and kept in
   ``$SECURITYNET_HOME/timm-results/`` for later offline syncs (a failed fetch falls
   through to the next choices);
3. the folder the last sync read, while it is still there (gone: the sync fails, with the
   fix in the hint, rather than falling back to older tables);
4. the copy of the last fetch in ``$SECURITYNET_HOME/timm-results/``;
5. the snapshot shipped inside the package (``securitynet/_timm_results``: timm's own files
   from ``huggingface/pytorch-image-models`` @aa4b585, Apache-2.0).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securitynet.annotate.timm_results import (
    METADATA_FILE,
    RESULTS_FILES,
    TimmResults,
    read_results_dir,
    results_from_texts,
)
from securitynet.errors import (
    ConfigurationError,
    NotFoundError,
    RateLimitedError,
    SecurityNetError,
    UpstreamError,
)
from securitynet.network import check_reachable, is_offline_error
from securitynet.scrapers._common import files_digest
from securitynet.scrapers.base import SyncContext
from securitynet.settings import Settings

log = logging.getLogger(__name__)

#: timm's tables as shipped with securitynet (see PROVENANCE.md beside them).
SNAPSHOT_DIR = Path(__file__).resolve().parents[1] / "_timm_results"
SNAPSHOT_REVISION = "huggingface/pytorch-image-models@aa4b585"
#: Under ``settings.home``: the tables of the last successful online fetch.
FETCHED_DIRNAME = "timm-results"


@dataclass(frozen=True, slots=True)
class TablesChoice:
    """Which tables a sync reads: ``kind`` is folder, online, fetched or snapshot."""

    kind: str
    location: str

    def digest(self) -> str:
        """Digest of the tables (a folder's CSV files; a URL's only by fetching it)."""
        if self.kind == "online":
            return "fetched at sync"
        return files_digest(p for p in Path(self.location).glob("*.csv") if p.is_file())


def _explicit_folder(ctx: SyncContext) -> Path | None:
    option = ctx.options.get("timm_results")
    return Path(option).expanduser() if option else ctx.settings.timm_results


def fetched_dir(settings: Settings) -> Path:
    return settings.home / FETCHED_DIRNAME


def _has_tables(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("results-*.csv"))


def choose_tables(ctx: SyncContext) -> TablesChoice:
    """The tables this sync reads (see the module's docstring for the order).

    Raises :class:`NotFoundError` when a folder given now, or read by the last sync, is not
    there: falling back to older tables would replace newer accuracies.
    """
    explicit = _explicit_folder(ctx)
    if explicit is not None:
        if not _has_tables(explicit):
            raise NotFoundError(
                f"no timm results-*.csv table in {explicit}",
                hint="Give the folder that holds timm's results-imagenet.csv, or leave "
                "--timm-results / SECURITYNET_TIMM_RESULTS unset to use the tables shipped "
                "with securitynet.",
                path=str(explicit),
            )
        return TablesChoice("folder", str(explicit.resolve()))
    if not ctx.settings.offline:
        return TablesChoice("online", ctx.settings.timm_results_url.rstrip("/"))
    return _offline_choice(ctx)


def _offline_choice(ctx: SyncContext) -> TablesChoice:
    previous = ctx.state.get("timm_results") or {}
    if previous.get("kind") == "folder" and previous.get("origin"):
        folder = Path(str(previous["origin"]))
        if _has_tables(folder):
            return TablesChoice("folder", str(folder))
        raise NotFoundError(
            f"the timm results folder the last sync read ({folder}) is gone; "
            "the catalogue's timm accuracies were left as they are",
            hint=f"Pass --timm-results DIR with timm's tables (those shipped with securitynet "
            f"are in {SNAPSHOT_DIR}).",
            path=str(folder),
        )
    fetched = fetched_dir(ctx.settings)
    if _has_tables(fetched):
        return TablesChoice("fetched", str(fetched))
    if not _has_tables(SNAPSHOT_DIR):
        raise ConfigurationError(
            f"timm's results tables are missing from this installation ({SNAPSHOT_DIR})",
            hint="Reinstall securitynet, or pass --timm-results DIR.",
        )
    return TablesChoice("snapshot", str(SNAPSHOT_DIR))


def tables_fingerprint(ctx: SyncContext) -> str | None:
    """What the tables part of timm's fingerprint is: which tables, and their digest.

    None when they would be fetched (only fetching tells what they hold) or cannot be chosen
    (the sync itself then fails with the reason).
    """
    try:
        choice = choose_tables(ctx)
    except SecurityNetError:
        return None
    if choice.kind == "online":
        return None
    return f"{choice.kind} {choice.digest()}"


def load_results(ctx: SyncContext) -> TimmResults:
    """The results tables for this sync; records the choice in ``ctx.state["timm_results"]``."""
    choice = choose_tables(ctx)
    note: str | None = None
    results: TimmResults | None = None
    if choice.kind == "online":
        try:
            texts = fetch_texts(ctx.settings)
        except SecurityNetError as exc:
            note = f"fetching timm's tables failed ({exc})"
            choice = _offline_choice(ctx)
            instead = "the snapshot shipped with securitynet" if choice.kind == "snapshot" else "the last copy"
            log.warning("timm: %s; reading %s instead", note, instead)
        else:
            results = results_from_texts(texts, origin=choice.location)
            _keep_copy(texts, fetched_dir(ctx.settings))
    if results is None:
        results = read_results_dir(Path(choice.location))
        if choice.kind == "snapshot":
            results.origin = f"{SNAPSHOT_REVISION} (shipped with securitynet)"
    if not results.has_imagenet:
        log.warning("timm: %s has no results-imagenet.csv; ImageNet-1k claims are missing", results.origin)
    state: dict[str, Any] = {
        "status": "ok",
        "kind": choice.kind,
        "origin": choice.location if choice.kind == "folder" else results.origin,
        "tables": [t.filename for t in results.tables],
        "rows": sum(len(t.rows) for t in results.tables),
    }
    if note:
        state["note"] = note
    ctx.state["timm_results"] = state
    return results


def _keep_copy(texts: dict[str, str], folder: Path) -> None:
    """Write the fetched tables to ``folder`` (each file replaced atomically)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(tmp, folder / name)
    except OSError as exc:  # a read-only home only costs the offline copy
        log.warning("timm: could not keep a copy of the fetched tables in %s: %s", folder, exc)


def fetch_texts(settings: Settings) -> dict[str, str]:
    """timm's published tables from ``settings.timm_results_url`` as ``{file name: text}``
    (a table missing upstream is skipped); NotFoundError when none could be fetched."""
    base = settings.timm_results_url.rstrip("/")
    check_reachable(base)
    texts: dict[str, str] = {}
    for filename in (*RESULTS_FILES, METADATA_FILE):
        text = _get_text(f"{base}/{filename}", settings)
        if text is not None:
            texts[filename] = text
    if not any(name.startswith("results-") for name in texts):
        raise NotFoundError(f"no timm results table could be fetched from {base}", url=base)
    return texts


def _get_text(url: str, settings: Settings) -> str | None:
    """GET ``url`` as text; None on 404; typed errors otherwise (retrying 5xx and timeouts)."""
    attempts = max(1, min(settings.http_retries, 5) + 1)
    request = urllib.request.Request(url, headers={"User-Agent": "securitynet", "Accept": "text/csv, */*"})
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(request, timeout=settings.http_timeout) as response:
                body: bytes = response.read()
                return body.decode("utf-8")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                log.debug("timm results: %s not found upstream", url)
                return None
            if exc.code == 429 or (exc.code == 403 and exc.headers.get("X-RateLimit-Remaining") == "0"):
                raise RateLimitedError(f"{url}: HTTP {exc.code}", url=url, status=exc.code) from exc
            if exc.code < 500 or attempt == attempts - 1:
                raise UpstreamError(f"{url}: HTTP {exc.code}", url=url, status=exc.code) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            if attempt == attempts - 1 or is_offline_error(exc, url):
                raise UpstreamError(f"{url}: {exc}", url=url) from exc
        except UnicodeDecodeError as exc:
            raise UpstreamError(f"{url}: not UTF-8 text", url=url) from exc
        time.sleep(min(0.25 * 2**attempt, 4.0))
    raise AssertionError("unreachable")  # the loop returns or raises
