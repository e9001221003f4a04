"""Licence names as upstream spells them -> SPDX identifiers.

Sources write licences their own way (timm and the Hub: ``apache-2.0``, ``mit``,
``bsd-3-clause``; torchvision: ``BSD-3-Clause``). The catalogue's ``entry.licence`` holds the
SPDX identifier (https://spdx.org/licenses/, its case), so ``MIT`` and ``mit`` are one
group; a licence SPDX has no identifier for (``openrail``, ``apple-ascl``) becomes
``LicenseRef-<name>``, the form SPDX prescribes for such licences; "unknown" and empty
spellings mean no licence is known (None). The spelling as received stays in the entry's
``fact`` rows, so nothing is lost.

    >>> spdx_licence("mit"), spdx_licence("bsd-3-clause"), spdx_licence("openrail")
    ('MIT', 'BSD-3-Clause', 'LicenseRef-openrail')
    >>> spdx_licence("unknown") is None, spdx_licence("Apache License 2.0")
    (True, 'Apache-2.0')
"""

from __future__ import annotations

import re

#: SPDX identifiers the sources use (the Hub's licence list and timm's), in SPDX's case.
SPDX_IDS: tuple[str, ...] = (
    "0BSD", "AFL-3.0", "AGPL-3.0-only", "AGPL-3.0-or-later", "Apache-2.0", "Artistic-2.0",
    "BSD-2-Clause", "BSD-3-Clause", "BSD-3-Clause-Clear", "BSL-1.0", "CC0-1.0", "CC-BY-2.0",
    "CC-BY-2.5", "CC-BY-3.0", "CC-BY-4.0", "CC-BY-NC-2.0", "CC-BY-NC-3.0", "CC-BY-NC-4.0",
    "CC-BY-NC-ND-3.0", "CC-BY-NC-ND-4.0", "CC-BY-NC-SA-2.0", "CC-BY-NC-SA-3.0", "CC-BY-NC-SA-4.0",
    "CC-BY-ND-4.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "CDLA-Permissive-1.0", "CDLA-Permissive-2.0",
    "CDLA-Sharing-1.0", "ECL-2.0", "EPL-1.0", "EPL-2.0", "etalab-2.0", "EUPL-1.1", "EUPL-1.2",
    "GPL-2.0-only", "GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later", "ISC", "LGPL-2.1-only",
    "LGPL-2.1-or-later", "LGPL-3.0-only", "LGPL-3.0-or-later", "LPPL-1.3c", "MIT", "MPL-2.0",
    "MS-PL", "NCSA", "ODbL-1.0", "ODC-By-1.0", "OFL-1.1", "OSL-3.0", "PDDL-1.0", "PostgreSQL",
    "Unlicense", "WTFPL", "Zlib",
)  # fmt: skip

#: Spellings that are not the identifier itself (the Hub's short names, prose names).
ALIASES: dict[str, str] = {
    "apache2": "Apache-2.0",
    "apache20": "Apache-2.0",
    "apachelicense20": "Apache-2.0",
    "apachelicenseversion20": "Apache-2.0",
    "bsd3": "BSD-3-Clause",
    "bsd2": "BSD-2-Clause",
    "mitlicense": "MIT",
    "agpl30": "AGPL-3.0-only",
    "gpl20": "GPL-2.0-only",
    "gpl30": "GPL-3.0-only",
    "lgpl21": "LGPL-2.1-only",
    "lgpl30": "LGPL-3.0-only",
    "odbl": "ODbL-1.0",
    "odcby": "ODC-By-1.0",
    "pddl": "PDDL-1.0",
    "cc0": "CC0-1.0",
}

#: Spellings that say no licence is known.
UNKNOWN: frozenset[str] = frozenset(
    {"", "unknown", "none", "na", "n/a", "noassertion", "unlicensed?"}
)

_REF = re.compile(r"[^A-Za-z0-9.-]+")


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


_BY_KEY: dict[str, str] = {_key(i): i for i in SPDX_IDS} | ALIASES


def spdx_licence(raw: str | None) -> str | None:
    """The SPDX identifier of ``raw``; ``LicenseRef-<name>`` for a licence SPDX has none
    for; None when ``raw`` says nothing (missing, "unknown")."""
    if raw is None:
        return None
    text = raw.strip()
    if text.lower() in UNKNOWN:
        return None
    if text.startswith("LicenseRef-"):
        return text
    found = _BY_KEY.get(_key(text))
    if found is not None:
        return found
    return "LicenseRef-" + (_REF.sub("-", text).strip("-") or "unnamed")
