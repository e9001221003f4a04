"""One module per upstream source; each yields records and never touches the database.

Scrapers are looked up by name and imported lazily (timm and torchvision are slow to import).
"""

from __future__ import annotations

import importlib

from securitynet.errors import InvalidQueryError
from securitynet.scrapers.base import Scraper, SyncContext, Unchanged

#: name -> "module:Class". Order is the order ``securitynet sync`` runs them in.
REGISTRY: dict[str, str] = {
    "torchvision": "securitynet.scrapers.torchvision:TorchvisionScraper",
    "timm": "securitynet.scrapers.timm:TimmScraper",
    "imgclsmob": "securitynet.scrapers.imgclsmob:ImgclsmobScraper",
    "hf": "securitynet.scrapers.huggingface:HuggingFaceScraper",
}

#: Sources ``securitynet sync`` runs when none is named: the ones that work offline.
DEFAULT_SOURCES: tuple[str, ...] = ("torchvision", "timm", "imgclsmob")


def get_scraper(name: str) -> Scraper:
    from securitynet.errors import InvalidIdError
    from securitynet.ids import normalise_source

    try:
        key = normalise_source(name)
    except InvalidIdError:
        key = name  # not even an id prefix: the same answer, naming what can be synced
    if key not in REGISTRY:
        raise InvalidQueryError(
            f"no scraper for source {name!r}", hint=f"Sources that can be synced: {', '.join(REGISTRY)}."
        )
    module_name, _, cls_name = REGISTRY[key].partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    scraper: Scraper = cls()
    return scraper


__all__ = ["DEFAULT_SOURCES", "REGISTRY", "Scraper", "SyncContext", "Unchanged", "get_scraper"]
