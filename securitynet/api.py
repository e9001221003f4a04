"""Top-level conveniences that join the catalogue and the loader.

    >>> import securitynet as sn
    >>> m = sn.load("timm:resnet50.a1_in1k")          # LoadedNet: .net, .transform, .labels
    >>> logits = m.net(m.transform(img).unsqueeze(0))

It sits above ``catalogue`` and ``loader`` (neither imports the other).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from securitynet.catalogue.api import Catalogue

if TYPE_CHECKING:
    import torch

    from securitynet.loader import LoadedNet


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
    loaded = load_entry(record, device=device, offline=offline, settings=cat.settings)
    pin_downloads(cat, loaded)
    return loaded


def pin_downloads(cat: Catalogue, loaded: LoadedNet) -> int:
    """Write the full sha256 (and size) of the files ``loaded`` was read from back to the
    catalogue, where it had only what the source publishes (a hash prefix, a sha1 of an
    archive member, nothing): after the first verified download the file is pinned whole."""
    downloads = [f for f in loaded.files if f.kind == "download" and f.url]
    return cat.record_verified_files(loaded.entry.id, downloads) if downloads else 0
