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
    if not (cat.settings.offline if offline is None else offline):
        cat.fill_pending(entry_id)  # the Hub's config and pins, on an entry's first load
    record = cat.get(entry_id)
    return load_entry(record, device=device, offline=offline, settings=cat.settings)
