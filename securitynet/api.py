"""Top-level conveniences that join the catalogue and the loader.

    >>> import securitynet as sn
    >>> m = sn.load("timm:resnet50.a1_in1k")          # LoadedNet: .net, .transform, .labels
    >>> logits = m.net(m.transform(img).unsqueeze(0))

It sits above ``catalogue`` and ``loader`` (neither imports the other).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from securitynet.catalogue.api import Catalogue

if TYPE_CHECKING:
    import torch

    from securitynet.loader import LoadedNet
    from securitynet.records import SyncSummary


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
    record = cat.get(entry_id)
    return load_entry(record, device=device, offline=offline, settings=cat.settings)


def add_github(target: str | Path, *, catalogue: Catalogue | None = None) -> SyncSummary:
    """Catalogue the checkpoints of one GitHub repository: ``OWNER/REPO`` (read through the
    REST API, pinned to the default branch's current commit) or a local git clone (its
    ``origin`` and HEAD give the same ids and pins; its files go into the weight cache, so
    the entries load with no network)."""
    cat = catalogue or Catalogue()
    path = Path(target)
    if isinstance(target, Path) or path.exists() or str(target).startswith((".", "/", "~")):
        return _add_clone(path, cat)
    from securitynet.scrapers.github import GithubScraper

    records = list(GithubScraper().iter_repo_records(str(target), cat.settings))
    return cat.add(records, origin="github")


def _add_clone(path: Path, cat: Catalogue) -> SyncSummary:
    from securitynet.loader.cache import Cache
    from securitynet.loader.download import store_local
    from securitynet.scrapers.github_clone import iter_clone_records, open_clone

    clone = open_clone(path)
    cache = Cache(cat.settings.resolved_cache_dir)
    records = []
    for record, file in iter_clone_records(clone, cat.settings):
        for ref in record.files:
            store_local(ref, clone.read(file), cache=cache, revision=record.revision)
        records.append(record)
    return cat.add(records, origin="github")
