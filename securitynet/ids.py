"""Entry ids: ``source:name``. The only place that splits or joins id strings.

``timm:resnet50.a1_in1k``, ``torchvision:resnet50.IMAGENET1K_V2``,
``imgclsmob:resnet20_cifar10``, ``hf:google/vit-base-patch16-224``,
``github:owner/repo/path/to/file.pt``. A revision pin is stored beside the id, never in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from securitynet.errors import InvalidIdError

#: Sources we know. A new scraper adds its prefix here.
SOURCES: tuple[str, ...] = (
    "timm",
    "torchvision",
    "imgclsmob",
    "hf",
    "github",
    "securitynet",
    "robustbench",
    "zenodo",
    "local",
)

#: Long names a user may type for a source.
SOURCE_ALIASES: dict[str, str] = {
    "huggingface": "hf",
    "hugging-face": "hf",
    "hf-hub": "hf",
    "pytorchcv": "imgclsmob",
    "osmr": "imgclsmob",
}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/+@=~]*$")


def normalise_source(source: str) -> str:
    """Canonical source prefix for ``source`` (accepts aliases such as ``huggingface``)."""
    key = source.strip().lower()
    key = SOURCE_ALIASES.get(key, key)
    if key not in SOURCES:
        raise InvalidIdError(
            f"unknown source {source!r}",
            hint=f"Known sources: {', '.join(SOURCES)}.",
            value=source,
        )
    return key


@dataclass(frozen=True, slots=True)
class EntryId:
    source: str
    name: str

    def __str__(self) -> str:
        return f"{self.source}:{self.name}"


def parse_id(value: str) -> EntryId:
    """Split ``source:name``; raise :class:`InvalidIdError` on anything else."""
    if not isinstance(value, str) or ":" not in value:
        raise InvalidIdError(f"not an entry id: {value!r} (expected 'source:name')", value=value)
    source, _, name = value.strip().partition(":")
    source = normalise_source(source)
    if not name or not _NAME_RE.match(name) or ".." in name.split("/"):
        raise InvalidIdError(f"not an entry id: {value!r} (bad name {name!r})", value=value)
    return EntryId(source, name)


def format_id(source: str, name: str) -> str:
    """Join a source and a name into an id, validating both."""
    return str(parse_id(f"{source}:{name}"))
