"""Where the data folders that ship with securitynet live.

``migrations/``, ``annotations/``, ``scrapers/`` and ``schema/`` sit at the top of a source
checkout and inside the wheel under ``securitynet/_data/`` (see pyproject's force-include).
"""

from __future__ import annotations

from pathlib import Path

from securitynet.errors import ConfigurationError

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The folder ``name`` (``migrations``, ``annotations``, ``scrapers``, ``schema``)."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise ConfigurationError(f"securitynet's {name}/ folder is missing from this installation")
