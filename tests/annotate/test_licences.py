"""Licence spellings -> SPDX identifiers."""

from __future__ import annotations

import pytest

from securitynet.annotate.licences import spdx_licence


@pytest.mark.parametrize(
    ("raw", "spdx"),
    [
        ("mit", "MIT"),
        ("MIT", "MIT"),
        ("bsd-3-clause", "BSD-3-Clause"),
        ("BSD-3-Clause", "BSD-3-Clause"),
        ("apache-2.0", "Apache-2.0"),
        ("cc-by-nc-4.0", "CC-BY-NC-4.0"),
        ("gpl-3.0", "GPL-3.0-only"),
        ("openrail", "LicenseRef-openrail"),
        ("apple-ascl", "LicenseRef-apple-ascl"),
        ("unknown", None),
        ("", None),
        (None, None),
    ],
)
def test_licences_normalise_to_spdx(raw: str | None, spdx: str | None) -> None:
    assert spdx_licence(raw) == spdx
