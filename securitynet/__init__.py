"""securitynet: public image-classification checkpoints, catalogued for security research.

    >>> from securitynet import Catalogue
    >>> cat = Catalogue()                      # the default embedded database
    >>> cat.search(dataset="CIFAR-10", min_top1=90.0)

Heavy parts (torch, timm) are imported only when used: ``import securitynet`` is cheap and
does nothing at import time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Catalogue": "securitynet.catalogue.api",
    "load": "securitynet.api",
    "add_github": "securitynet.api",
    "LoadedNet": "securitynet.loader",
    "read_checkpoint": "securitynet.loader.safe",
    "get_settings": "securitynet.settings",
    "Settings": "securitynet.settings",
    "EntryRecord": "securitynet.records",
    "AccuracyClaim": "securitynet.records",
    "FileRef": "securitynet.records",
    "LoadSpec": "securitynet.records",
}

if TYPE_CHECKING:
    from securitynet.catalogue.api import Catalogue
    from securitynet.records import AccuracyClaim, EntryRecord, FileRef, LoadSpec
    from securitynet.settings import Settings, get_settings


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'securitynet' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "AccuracyClaim",
    "Catalogue",
    "EntryRecord",
    "FileRef",
    "LoadSpec",
    "Settings",
    "__version__",
    "get_settings",
]
