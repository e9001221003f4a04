"""Small helpers the registry scrapers share: file-name checksums, JSON-able payloads,
fingerprints of what a sync would read."""

from __future__ import annotations

import enum
import functools
import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import unquote, urlsplit

#: torch.hub's convention: ``name-<sha256 prefix>.ext`` (``resnet50-11ad3fa6.pth``). At
#: least 8 hex digits, so an epoch count such as ``-600e.pth.tar`` is not mistaken for one.
_HASH_PREFIX = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z][A-Za-z0-9.]*$")


def url_filename(url: str) -> str | None:
    """The last path component of ``url`` (``None`` when the path ends in ``/``)."""
    name = unquote(urlsplit(url).path).rsplit("/", 1)[-1]
    return name or None


def hash_prefix(filename: str | None) -> str | None:
    """The sha256 prefix torch.hub puts in a file name, or None.

    >>> hash_prefix("resnet50-11ad3fa6.pth"), hash_prefix("IN1K-vit.h.14-300e.pth.tar")
    ('11ad3fa6', None)
    """
    if not filename:
        return None
    match = _HASH_PREFIX.search(filename)
    return match.group(1) if match else None


def jsonable(value: Any) -> Any:
    """``value`` with tuples, paths, enums and non-finite floats made JSON-safe (recursively)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v) for v in items]
    return str(value)


def limit_reached(count: int, limit: int | None) -> bool:
    return limit is not None and count >= limit


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """Digest of the code that turns upstream data into records (scrapers and annotators).

    Part of every registry fingerprint, so a new securitynet that annotates differently
    re-reads sources whose upstream did not change.
    """
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for folder in ("scrapers", "annotate"):
        for path in sorted((package / folder).glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def package_version(name: str) -> str | None:
    """An installed distribution's version, without importing it (torch takes seconds)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def files_digest(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
