"""Top-level conveniences that join the catalogue and the loader.

    >>> import securitynet as sn
    >>> m = sn.load("timm:resnet50.a1_in1k")          # LoadedNet: .net, .transform, .labels
    >>> logits = m.net(m.transform(img).unsqueeze(0))

It sits above ``catalogue`` and ``loader`` (neither imports the other).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from securitynet.catalogue.api import Catalogue
from securitynet.errors import NotFoundError

if TYPE_CHECKING:
    import torch

    from securitynet.annotate.archsig import SignatureIndex
    from securitynet.loader import LoadedNet
    from securitynet.records import EntryRecord, SyncSummary

log = logging.getLogger(__name__)


def load(
    entry_id: str,
    *,
    device: str | torch.device = "cpu",
    offline: bool | None = None,
    catalogue: Catalogue | None = None,
) -> LoadedNet:
    """Look ``entry_id`` up in the catalogue (default database unless given) and load it:
    verified, cached weights, read without executing code, into a net in eval mode."""
    from securitynet.loader import load_entry

    cat = catalogue or Catalogue()
    if not (cat.settings.offline if offline is None else offline):
        cat.fill_pending(entry_id)  # the Hub's config and pins, on an entry's first load
    record = cat.get(entry_id)
    if record.load is None:
        _raise_unresolved(record)
    loaded = load_entry(record, device=device, offline=offline, settings=cat.settings)
    pin_downloads(cat, loaded)
    return loaded


def _raise_unresolved(record: EntryRecord) -> None:
    """An entry without a load specification: say what resolving its architecture found."""
    from securitynet.errors import UnsupportedEntryError

    found = record.raw.get("architecture") if isinstance(record.raw, dict) else None
    if not isinstance(found, dict):
        raise UnsupportedEntryError(f"{record.id} has no load specification", id=record.id)
    candidates = ", ".join(found.get("candidates") or [])
    raise UnsupportedEntryError(
        f"{record.id} has no load specification: architecture {found.get('status', 'unresolved')}"
        + (f" ({found['reason']})" if found.get("reason") else "")
        + (f"; candidates: {candidates}" if candidates else ""),
        hint="Declare it in an annotations/*.yaml file (architecture_spec, or load with a builder).",
        id=record.id,
        status=found.get("status"),
    )


def add_github(
    target: str | Path,
    *,
    catalogue: Catalogue | None = None,
    resolve: bool = True,
    index: SignatureIndex | None = None,
) -> SyncSummary:
    """Catalogue the checkpoints of one GitHub repository: ``OWNER/REPO`` (read through the
    REST API, pinned to the default branch's current commit) or a local git clone (its
    ``origin`` and HEAD give the same ids and pins; its files go into the weight cache, so
    the entries load with no network).

    With ``resolve``, each bare checkpoint that no curated file declares (online: those up to
    200 MB, downloaded and verified into the weight cache) is matched against the registry
    architectures (``index``; default: every registry, built once on the meta device and
    cached), see :mod:`securitynet.annotate.archsig`.
    """
    cat = catalogue or Catalogue()
    path = Path(target)
    if isinstance(target, Path) or path.exists() or str(target).startswith((".", "/", "~")):
        return _add_clone(path, cat, resolve=resolve, index=index)
    from securitynet.scrapers.github import GithubScraper

    repo, _, ref = str(target).partition("@")
    records = list(GithubScraper().iter_repo_records(repo, cat.settings, ref=ref or None))
    if resolve:
        records = _resolve_downloads(records, cat, index)
    return cat.add(records, origin="github")


#: ``add github OWNER/REPO`` downloads checkpoints up to this size to match their tensors.
RESOLVE_MAX_BYTES = 200 * 1024 * 1024


def _resolve_downloads(records: list[EntryRecord], cat: Catalogue, index: SignatureIndex | None) -> list[EntryRecord]:
    """Records with the architecture of each bare checkpoint (up to RESOLVE_MAX_BYTES, no
    curated declaration) matched after a verified download into the weight cache."""
    from securitynet.annotate.overrides import declared_sha256s
    from securitynet.errors import SecurityNetError
    from securitynet.loader.cache import Cache
    from securitynet.loader.download import fetch, verified_path

    declared = declared_sha256s()
    cache = Cache(cat.settings.resolved_cache_dir)
    out = []
    for record in records:
        ref = record.files[0] if record.files else None
        if ref is None or ref.size is None or ref.size > RESOLVE_MAX_BYTES or ref.sha256 in declared:
            out.append(record)
            continue
        try:
            path = verified_path(cache, fetch(ref, cache=cache, offline=False, revision=record.revision))
        except SecurityNetError as exc:
            log.warning("%s: not resolved (%s)", record.id, exc)
            out.append(record)
            continue
        if index is None:
            from securitynet.annotate.archsig import SignatureCache, build_index

            index = build_index(cache=SignatureCache.default(cat.settings)).index
        out.append(_resolved(record, path, index))
    return out


def _add_clone(path: Path, cat: Catalogue, *, resolve: bool, index: SignatureIndex | None) -> SyncSummary:
    from securitynet.annotate.overrides import declared_sha256s
    from securitynet.loader.cache import Cache
    from securitynet.loader.download import store_local
    from securitynet.scrapers.github_clone import iter_clone_records, open_clone

    clone = open_clone(path)
    cache = Cache(cat.settings.resolved_cache_dir)
    declared = declared_sha256s() if resolve else set()
    records = []
    for record, file in iter_clone_records(clone, cat.settings):
        try:
            stored = [store_local(ref, clone.read(file), cache=cache, revision=record.revision) for ref in record.files]
        except NotFoundError as exc:  # an LFS object the clone never fetched: it loads online
            log.warning("%s", exc)
            records.append(record)
            continue
        if record.files[0].sha256 in declared:
            record.raw["architecture"] = {"status": "declared", "reason": "a curated file declares it"}
            record.arch_resolution = "declared"
        elif resolve:
            if index is None:
                from securitynet.annotate.archsig import SignatureCache, build_index

                index = build_index(cache=SignatureCache.default(cat.settings)).index
            record = _resolved(record, stored[0].path, index)
        records.append(record)
    return cat.add(records, origin="github")


def _resolved(record: EntryRecord, path: Path, index: SignatureIndex) -> EntryRecord:
    """``record`` with what a signature match of its checkpoint concluded."""
    from securitynet.annotate.archsig import resolve_file
    from securitynet.records import LoadSpec

    resolution = resolve_file(path, index)
    update: dict[str, object] = {
        "raw": {**record.raw, "architecture": resolution.to_json()},
        "arch_resolution": resolution.status,
    }
    chosen = resolution.resolved
    if chosen is not None:
        update.update(
            load=LoadSpec(**resolution.load_fields()),
            architecture=chosen.architecture,
            num_classes=chosen.num_classes,
            evidence={**record.evidence, "architecture": f"signature match against {index.size} registry nets"},
        )
    return record.model_copy(update=update)


def pin_downloads(cat: Catalogue, loaded: LoadedNet) -> int:
    """Write the full sha256 (and size) of the files ``loaded`` was read from back to the
    catalogue, where it had only what the source publishes (a hash prefix, a sha1 of an
    archive member, nothing): after the first verified download the file is pinned whole."""
    downloads = [f for f in loaded.files if f.kind == "download" and f.url]
    return cat.record_verified_files(loaded.entry.id, downloads) if downloads else 0
