"""Small helpers the registry scrapers share: file-name checksums, JSON-able payloads."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from pathlib import PurePath
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
