"""Fixtures for the scraper tests: a SyncContext with explicit settings (never the user's),
and a collector that checks a scraper yields each id once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from securitynet.records import EntryRecord
from securitynet.scrapers.base import Scraper, SyncContext
from securitynet.settings import Settings


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
