"""Fixtures shared by the whole suite.

``../shared`` (real data nobody on this project wrote) is used by path; tests that need it
skip with a clear reason when it is absent, so a user's checkout still passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

#: Fixtures shared across test directories (catalogue_url, catalogue, ...).
pytest_plugins = ("tests.catalogue.fixtures",)

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared is absent ({SHARED}); real-data tests skipped")
    return SHARED


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own SECURITYNET_HOME: no test touches the user's catalogue or cache."""
    home = tmp_path_factory.mktemp("securitynet-home")
    monkeypatch.setenv("SECURITYNET_HOME", str(home))
    for var in ("SECURITYNET_DATABASE_URL", "SECURITYNET_CACHE_DIR", "SECURITYNET_OFFLINE", "SECURITYNET_TIMM_RESULTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield home
