"""Fixtures for the scraper tests: a SyncContext with explicit settings (never the user's),
a collector that checks a scraper yields each id once, and a loopback Hub serving the real
recordings with the environment that points the hf source at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from securitynet.records import EntryRecord
from securitynet.scrapers.base import Scraper, SyncContext
from securitynet.settings import Settings
from tests.fakehub import FakeHub, shared_models


@pytest.fixture(scope="session")
def make_ctx(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., SyncContext]:
    home = tmp_path_factory.mktemp("scraper-home")

    def make(*, limit: int | None = None, options: dict[str, Any] | None = None, **settings: Any) -> SyncContext:
        values: dict[str, Any] = {"home": home, "offline": True, "timm_results": None, **settings}
        return SyncContext(settings=Settings(**values), limit=limit, options=options or {})

    return make


def _collect(scraper: Scraper, ctx: SyncContext) -> dict[str, EntryRecord]:
    records: dict[str, EntryRecord] = {}
    for item in scraper.iter_records(ctx):
        assert isinstance(item, EntryRecord)
        assert item.id not in records, f"{item.id} yielded twice"
        records[item.id] = item
    return records


@pytest.fixture(scope="session")
def collect() -> Callable[[Scraper, SyncContext], dict[str, EntryRecord]]:
    return _collect


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
    fake.add_lfs_weights()
    with fake:
        monkeypatch.setenv("SECURITYNET_HF_ENDPOINT", fake.url)
        monkeypatch.setenv("SECURITYNET_HTTP_BACKOFF", "0.01")
        for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "SECURITYNET_HF_TOKEN"):
            monkeypatch.delenv(var, raising=False)
        yield fake
