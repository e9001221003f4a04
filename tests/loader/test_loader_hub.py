"""``loader.hub.file_metadata``: the HEAD that pins a Hub weight file, with one retry layer."""

from __future__ import annotations

import time

import pytest

from securitynet.errors import UpstreamError
from securitynet.loader.hub import HubFile, file_metadata

BODY = b"weights" * 100
COMMIT = "c" * 40


def test_head_gives_commit_size_and_lfs_sha256(hf_endpoint) -> None:
    import hashlib

    hf_endpoint.add_hub_file("o/r", "model.safetensors", BODY, commit=COMMIT)
    meta = file_metadata(HubFile("o/r", "model.safetensors", COMMIT), timeout=5)
    assert (meta.commit, meta.size, meta.sha256) == (
        COMMIT,
        len(BODY),
        hashlib.sha256(BODY).hexdigest(),
    )


def test_an_unreachable_hub_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    slept: list[float] = []
    start = time.monotonic()
    with pytest.raises(UpstreamError, match="could not reach the Hub") as caught:
        file_metadata(HubFile("o/r", "model.safetensors", COMMIT), timeout=5, sleep=slept.append)
    assert slept == [] and time.monotonic() - start < 2
    assert caught.value.hint and "--offline" in caught.value.hint
