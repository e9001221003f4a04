"""One module per upstream source; each yields records and never touches the database.

Scrapers are looked up by name and imported lazily (timm and torchvision are slow to import).
"""

from __future__ import annotations

import importlib

from securitynet.errors import InvalidQueryError
from securitynet.scrapers.base import Importer, Scraper, SyncContext, Unchanged

#: name -> "module:Class". Order is the order ``securitynet sync`` runs them in.
REGISTRY: dict[str, str] = {
    "torchvision": "securitynet.scrapers.torchvision:TorchvisionScraper",
    "timm": "securitynet.scrapers.timm:TimmScraper",
    "imgclsmob": "securitynet.scrapers.imgclsmob:ImgclsmobScraper",
    "hf": "securitynet.scrapers.huggingface:HuggingFaceScraper",
    "zenodo": "securitynet.scrapers.zenodo:ZenodoScraper",
    "github": "securitynet.scrapers.github:GithubScraper",
}

#: Sources ``securitynet sync`` runs when none is named: the ones that work offline.
DEFAULT_SOURCES: tuple[str, ...] = ("torchvision", "timm", "imgclsmob")


#: name -> "module:Class" of the importers (``securitynet import NAME [PATH|URL]``).
IMPORTERS: dict[str, str] = {
    "securitynet-release": "securitynet.scrapers.securitynet_release:SecurityNetReleaseImporter",
    "robustbench": "securitynet.scrapers.robustbench:RobustBenchImporter",
}


def get_importer(name: str) -> Importer:
    key = name.strip().lower()
    if key not in IMPORTERS:
        raise InvalidQueryError(
            f"no importer {name!r}", hint=f"Importers: {', '.join(IMPORTERS)}.", value=name
        )
    module_name, _, cls_name = IMPORTERS[key].partition(":")
    importer: Importer = getattr(importlib.import_module(module_name), cls_name)()
    return importer


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


__all__ = [
    "DEFAULT_SOURCES",
    "IMPORTERS",
    "REGISTRY",
    "Importer",
    "Scraper",
    "SyncContext",
    "Unchanged",
    "get_importer",
    "get_scraper",
]
