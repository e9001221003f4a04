"""Downloads against the loopback server: resume, retries, Retry-After, pins, offline."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from securitynet.errors import (
    IntegrityError,
    NotFoundError,
    OfflineError,
    RateLimitedError,
    UnsupportedEntryError,
    UpstreamError,
)
from securitynet.loader.cache import Cache
from securitynet.loader.download import RetryPolicy, fetch, http_download, parse_retry_after
from securitynet.records import FileRef

BODY = os.urandom(3 * 1024 * 1024 + 123)  # a few chunks, not a multiple of the chunk size
SHA = hashlib.sha256(BODY).hexdigest()


class Sleeps:
    """Records the waits instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def policy(sleeps: Sleeps) -> RetryPolicy:
    return RetryPolicy(retries=3, timeout=5, sleep=sleeps)


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "cache")


def test_download_is_verified_and_stored_by_content(http_server, cache: Cache, policy: RetryPolicy) -> None:
    url = http_server.add("/w.bin", BODY)
    got = fetch(FileRef(url=url, sha256=SHA, size=len(BODY)), cache=cache, offline=False, policy=policy)
    assert got.record.sha256 == SHA and got.path.read_bytes() == BODY
    assert got.path == cache.blob_path(SHA)
    # A second fetch is served from the cache: no request at all.
    again = fetch(FileRef(url=url, sha256=SHA), cache=cache, offline=True, policy=policy)
    assert again.record.sha256 == SHA and len(http_server.gets("/w.bin")) == 1


def test_truncated_download_is_resumed_with_range(http_server, cache: Cache, policy: RetryPolicy) -> None:
    url = http_server.add("/w.bin", BODY)
    http_server.fault("/w.bin", "truncate", 1_000_000)
    got = fetch(FileRef(url=url, sha256=SHA), cache=cache, offline=False, policy=policy)
    assert got.path.read_bytes() == BODY
    first, second = http_server.gets("/w.bin")
    assert first.range is None and second.status == 206
    # Resumed from what had been written (up to the last whole read before the cut).
    assert second.range is not None and 0 < int(second.range[6:-1]) <= 1_000_000


def test_partial_file_left_by_an_earlier_process_is_resumed(http_server, cache: Cache, policy: RetryPolicy) -> None:
    url = http_server.add("/w.bin", BODY)
    part = cache.partial_path(f"{url}@")
    part.write_bytes(BODY[:2_000_000])
    fetch(FileRef(url=url, sha256=SHA), cache=cache, offline=False, policy=policy)
    (hit,) = http_server.gets("/w.bin")
    assert hit.range == "bytes=2000000-"
    assert not part.exists()


def test_server_ignoring_range_restarts_cleanly(http_server, cache: Cache, policy: RetryPolicy) -> None:
    url = http_server.add("/w.bin", BODY)
    http_server.fault("/w.bin", "truncate", 500_000)
    http_server.fault("/w.bin", "ignore-range")
    got = fetch(FileRef(url=url, sha256=SHA), cache=cache, offline=False, policy=policy)
    assert got.path.read_bytes() == BODY
    assert [h.status for h in http_server.gets("/w.bin")] == [200, 200]


def test_changed_upstream_file_is_not_spliced(http_server, cache: Cache, policy: RetryPolicy, tmp_path: Path) -> None:
    """If-Range: a resume against a file that changed gets the whole new file."""
    class Killed(Exception):
        pass

    def killed(_: float) -> None:
        raise Killed  # the process dies between the cut and the retry

    url = http_server.add("/w.bin", BODY)
    http_server.fault("/w.bin", "truncate", 700_000)
    part = tmp_path / "x.part"
    with pytest.raises(Killed):
        http_download(url, part, policy=RetryPolicy(sleep=killed))
    assert 0 < part.stat().st_size <= 700_000
    new = os.urandom(len(BODY))
    http_server.add("/w.bin", new)
    http_download(url, part, policy=policy)
    assert part.read_bytes() == new
    last = http_server.gets("/w.bin")[-1]
    assert last.range is not None and last.status == 200  # asked to resume, got the new file whole


def test_429_retry_after_is_honoured(http_server, cache: Cache, policy: RetryPolicy, sleeps: Sleeps) -> None:
    url = http_server.add("/w.bin", BODY)
    http_server.fault("/w.bin", "status", 429, **{"Retry-After": "7"})
    http_server.fault("/w.bin", "status", 503)
    fetch(FileRef(url=url, sha256=SHA), cache=cache, offline=False, policy=policy)
    assert sleeps.calls[0] == 7.0
    assert 0 < sleeps.calls[1] <= 2 * policy.base_delay  # second failure: backoff, no Retry-After
    assert [h.status for h in http_server.gets("/w.bin")] == [429, 503, 200]


def test_retry_after_longer_than_we_wait_is_a_rate_limit(http_server, cache: Cache, policy: RetryPolicy) -> None:
    url = http_server.add("/w.bin", BODY)
    http_server.fault("/w.bin", "status", 429, **{"Retry-After": "3600"})
    with pytest.raises(RateLimitedError) as info:
        fetch(FileRef(url=url, sha256=SHA), cache=cache, offline=False, policy=policy)
    assert info.value.retry_after == 3600


def test_retries_give_up(http_server, cache: Cache, policy: RetryPolicy, sleeps: Sleeps) -> None:
    url = http_server.add("/w.bin", BODY)
    for _ in range(10):
        http_server.fault("/w.bin", "status", 500)
    with pytest.raises(UpstreamError, match="HTTP 500"):
        fetch(FileRef(url=url, sha256=SHA), cache=cache, offline=False, policy=policy)
    assert len(sleeps.calls) == policy.retries
    assert sleeps.calls == sorted(sleeps.calls) or len(set(sleeps.calls)) > 1  # growing backoff (with jitter)
    assert not cache.list_records()


def test_missing_file_is_not_found(http_server, cache: Cache, policy: RetryPolicy) -> None:
    with pytest.raises(NotFoundError):
        fetch(FileRef(url=http_server.url + "/nope.bin"), cache=cache, offline=False, policy=policy)


def test_wrong_size_from_upstream(http_server, cache: Cache, policy: RetryPolicy) -> None:
    url = http_server.add("/w.bin", BODY)
    with pytest.raises(IntegrityError, match="serves") as info:
        fetch(FileRef(url=url, size=len(BODY) - 1), cache=cache, offline=False, policy=policy)
    assert info.value.actual_size == len(BODY)
    assert not cache.list_records() and not list(cache.partial_dir.iterdir())


@pytest.mark.parametrize(
    "pin",
    [
        {"sha256": "0" * 64},
        {"checksum": "deadbeef", "checksum_algo": "sha256-prefix"},
        {"checksum": "0" * 40, "checksum_algo": "sha1"},
        {"checksum": "0" * 32, "checksum_algo": "md5"},
    ],
)
def test_wrong_hash_from_upstream_is_discarded(pin: dict, http_server, cache: Cache, policy: RetryPolicy) -> None:
    url = http_server.add("/w.bin", BODY)
    with pytest.raises(IntegrityError, match="does not match"):
        fetch(FileRef(url=url, **pin), cache=cache, offline=False, policy=policy)
    assert not cache.list_records() and not cache.has_blob(SHA)
    assert not list(cache.partial_dir.iterdir())


def test_corrupted_resume_is_redownloaded_whole(http_server, cache: Cache, policy: RetryPolicy) -> None:
    url = http_server.add("/w.bin", BODY)
    http_server.fault("/w.bin", "truncate", 1_500_000)
    http_server.fault("/w.bin", "corrupt")  # the resumed half arrives damaged
    got = fetch(FileRef(url=url, sha256=SHA), cache=cache, offline=False, policy=policy)
    assert got.path.read_bytes() == BODY
    ranges = [h.range for h in http_server.gets("/w.bin")]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=") and ranges[2] is None


def test_good_pins_of_every_kind_pass(http_server, cache: Cache, policy: RetryPolicy) -> None:
    url = http_server.add("/w.bin", BODY)
    ref = FileRef(url=url, checksum=hashlib.md5(BODY).hexdigest(), checksum_algo="md5")
    got = fetch(ref, cache=cache, offline=False, policy=policy)
    assert got.record.digests["md5"] == hashlib.md5(BODY).hexdigest()
    # Cached under the same url with a pin it does not satisfy: fetched again, not trusted.
    ref2 = FileRef(url=url, checksum=hashlib.sha1(BODY).hexdigest(), checksum_algo="sha1")
    fetch(ref2, cache=cache, offline=False, policy=policy)
    assert len(http_server.gets("/w.bin")) == 2


def test_unknown_checksum_algorithm_is_refused(cache: Cache) -> None:
    with pytest.raises(UnsupportedEntryError, match="unknown checksum"):
        fetch(FileRef(url="http://127.0.0.1:9/x", checksum="abcd1234", checksum_algo="crc32"), cache=cache, offline=True)


def test_offline_with_empty_cache_never_touches_the_network(http_server, cache: Cache) -> None:
    url = http_server.add("/w.bin", BODY)
    with pytest.raises(OfflineError):
        fetch(FileRef(url=url, sha256=SHA), cache=cache, offline=True)
    assert http_server.hits == []


def test_offline_setting_is_honoured_by_load_entry(http_server, monkeypatch: pytest.MonkeyPatch) -> None:
    from securitynet.loader import load_entry
    from securitynet.records import EntryRecord, LoadSpec

    monkeypatch.setenv("SECURITYNET_OFFLINE", "1")
    url = http_server.add("/w.safetensors", BODY)
    record = EntryRecord(id="local:x", files=[FileRef(url=url)], load=LoadSpec(builder="timm", architecture="test_resnet"))
    with pytest.raises(OfflineError, match="offline"):
        load_entry(record)
    assert http_server.hits == []


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None


# --- Hub files ----------------------------------------------------------------------------

COMMIT = "c" * 40


def test_hub_file_is_pinned_by_its_lfs_sha256(hf_endpoint, cache: Cache, policy: RetryPolicy) -> None:
    hf_endpoint.add_hub_file("o/r", "model.safetensors", BODY, commit=COMMIT)
    got = fetch(FileRef(url="hf://o/r/model.safetensors"), cache=cache, offline=False, revision=COMMIT, policy=policy)
    assert got.record.sha256 == SHA and got.record.commit == COMMIT
    heads = [h for h in hf_endpoint.hits if h.method == "HEAD"]
    assert heads and heads[0].path == f"/o/r/resolve/{COMMIT}/model.safetensors"
    assert len(hf_endpoint.gets(f"/cdn/{SHA}")) == 1  # redirected to the "CDN" like huggingface.co


def test_hub_serving_other_content_than_pinned_fails_before_download(hf_endpoint, cache: Cache, policy: RetryPolicy) -> None:
    hf_endpoint.add_hub_file("o/r", "model.safetensors", BODY, commit=COMMIT)
    ref = FileRef(url="hf://o/r/model.safetensors", sha256="1" * 64)
    with pytest.raises(IntegrityError, match="Hub serves"):
        fetch(ref, cache=cache, offline=False, revision=COMMIT, policy=policy)
    assert not hf_endpoint.gets(f"/cdn/{SHA}")


def test_hub_lfs_file_corrupted_in_transit(hf_endpoint, cache: Cache, policy: RetryPolicy) -> None:
    hf_endpoint.add_hub_file("o/r", "model.safetensors", BODY, commit=COMMIT)
    hf_endpoint.fault(f"/cdn/{SHA}", "corrupt")
    with pytest.raises(IntegrityError):
        fetch(FileRef(url="hf://o/r/model.safetensors"), cache=cache, offline=False, revision=COMMIT, policy=policy)
    assert not cache.has_blob(SHA)


def test_hub_url_revision_conflict_is_refused(cache: Cache) -> None:
    from securitynet.errors import UnsafeCheckpointError

    with pytest.raises(UnsafeCheckpointError, match="pins"):
        fetch(FileRef(url="hf://o/r@v1/model.safetensors", revision="v2"), cache=cache, offline=True)


def test_retries_stop_at_a_bounded_total_wait(http_server, tmp_path: Path, sleeps: Sleeps) -> None:
    url = http_server.add("/w.bin", BODY)
    for _ in range(20):
        http_server.fault("/w.bin", "status", 429, **{"Retry-After": "30"})
    patient = RetryPolicy(retries=50, timeout=5, sleep=sleeps, max_waiting=100)
    with pytest.raises(UpstreamError, match="gave up"):
        http_download(url, tmp_path / "w.part", policy=patient)
    assert sum(sleeps.calls) <= 100 and len(sleeps.calls) == 3


def test_an_archive_pinned_by_its_member_is_not_called_unpinned(
    http_server, cache: Cache, policy: RetryPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    url = http_server.add("/resnet20-0123-abcdef01.pth.zip", BODY)
    with caplog.at_level(logging.INFO, logger="securitynet"):
        fetch(
            FileRef(url=url, checksum="ab" * 20, checksum_algo="sha1", format="zip"),
            cache=cache,
            offline=False,
            policy=policy,
        )
    assert "no size or hash pin" not in caplog.text
    assert "pinned by the digest of the file inside it" in caplog.text
    bare = http_server.add("/bare.bin", BODY[:1000])
    with caplog.at_level(logging.WARNING, logger="securitynet"):
        fetch(FileRef(url=bare), cache=cache, offline=False, policy=policy)
    assert "no size or hash pin" in caplog.text
