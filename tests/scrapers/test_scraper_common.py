"""Helpers shared by the registry scrapers, and the plug-in protocol they implement."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

import pytest

from securitynet.records import Metric
from securitynet.scrapers import DEFAULT_SOURCES, Scraper, get_scraper
from securitynet.scrapers._common import hash_prefix, jsonable, url_filename


@pytest.mark.parametrize(
    ("filename", "prefix"),
    [
        ("resnet50-11ad3fa6.pth", "11ad3fa6"),
        ("alexnet-owt-7be5be79.pth", "7be5be79"),
        ("seresnext26_32x4d-65ebdb501.pth", "65ebdb501"),
        ("IN1K-vit.h.14-300e.pth.tar", None),  # an epoch count, not a hash
        ("model.safetensors", None),
        (None, None),
    ],
)
def test_hash_prefix(filename: str | None, prefix: str | None) -> None:
    assert hash_prefix(filename) == prefix


def test_url_filename() -> None:
    assert url_filename("https://download.pytorch.org/models/resnet50-0676ba61.pth") == "resnet50-0676ba61.pth"
    assert url_filename("https://example.org/dir/") is None


def test_jsonable_makes_registry_payloads_serialisable() -> None:
    value = jsonable({"size": (3, 224, 224), "path": PurePosixPath("/x"), "acc": math.nan, "m": Metric.TOP1, 1: {2}})
    assert value == {"size": [3, 224, 224], "path": "/x", "acc": None, "m": "top1", "1": [2]}
    json.dumps(value, allow_nan=False)


@pytest.mark.parametrize("name", DEFAULT_SOURCES)
def test_offline_sources_implement_the_protocol(name: str, make_ctx: Callable[..., Any]) -> None:
    scraper = get_scraper(name)
    assert isinstance(scraper, Scraper)
    assert scraper.name == name
    assert scraper.needs_network is False
    assert scraper.unavailable_reason(make_ctx()) is None
