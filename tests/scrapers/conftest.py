"""A loopback Hub serving the real recordings, and the environment that points at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakehub import FakeHub, shared_models


@pytest.fixture(scope="session")
def hub_models(shared_dir: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return shared_models(shared_dir)


@pytest.fixture
def hub(
    hub_models: list[tuple[dict[str, Any], dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeHub]:
    """The recorded ViT and the 120 real cards on a loopback Hub (50 models a page)."""
    fake = FakeHub(page_size=50)
    for record, files in hub_models:
        fake.add_model(record, files)
    with fake:
        monkeypatch.setenv("SECURITYNET_HF_ENDPOINT", fake.url)
        monkeypatch.setenv("SECURITYNET_HTTP_BACKOFF", "0.01")
        for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "SECURITYNET_HF_TOKEN"):
            monkeypatch.delenv(var, raising=False)
        yield fake
