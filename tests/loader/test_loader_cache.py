"""The content-addressed cache: tampering is detected on load, list / verify / prune."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from pathlib import Path

import pytest
import torch

from securitynet.errors import IntegrityError
from securitynet.loader import load_entry
from securitynet.loader.cache import Cache, CacheRecord, key_for
from securitynet.loader.download import RetryPolicy, fetch
from securitynet.records import EntryRecord, FileRef, LoadSpec
from securitynet.settings import get_settings


def tamper(path: Path) -> None:
    """Flip one byte of a (read-only) cached blob, as a user or another program might."""
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def tiny_entry(http_server, *, pickle: bool = False) -> tuple[EntryRecord, torch.nn.Module, str]:
    import timm
    from safetensors.torch import save

    torch.manual_seed(0)
    net = timm.create_model("test_resnet", pretrained=False, num_classes=3).eval()
    if pickle:
        buf = io.BytesIO()
        torch.save(net.state_dict(), buf)
        body = buf.getvalue()
    else:
        body = save({k: v.contiguous() for k, v in net.state_dict().items()})
    path = "/tiny.pth" if pickle else "/tiny.safetensors"
    url = http_server.add(path, body)
    record = EntryRecord(
        id="timm:test_resnet.tiny",
        files=[FileRef(url=url, sha256=hashlib.sha256(body).hexdigest(), size=len(body))],
        load=LoadSpec(builder="timm", architecture="test_resnet", num_classes=3),
    )
    return record, net, path


def cache() -> Cache:
    return Cache(get_settings().resolved_cache_dir)


def test_cached_file_altered_after_download_is_refused_then_refetched(http_server) -> None:
    record, net, path = tiny_entry(http_server)
    load_entry(record)
    (blob,) = [cache().blob_path(r.sha256) for r in cache().list_records()]
    tamper(blob)
    with pytest.raises(IntegrityError, match="altered"):
        load_entry(record, offline=True)
    assert not blob.exists()  # discarded, never used
    loaded = load_entry(record)  # online again: fetched afresh
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(loaded.net(x), net(x))
    assert len(http_server.gets(path)) == 2


def test_altered_converted_copy_is_remade_from_the_original(http_server) -> None:
    record, net, path = tiny_entry(http_server, pickle=True)
    first = load_entry(record)
    download, converted = first.files
    assert (download.kind, converted.kind) == ("download", "convert") and converted.parent == download.sha256
    tamper(cache().blob_path(converted.sha256))
    with pytest.raises(IntegrityError):
        load_entry(record, offline=True)
    again = load_entry(record, offline=True)  # the original is still good: converted again
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(again.net(x), net(x))
    assert len(http_server.gets(path)) == 1


def test_verify_finds_and_discards_bad_blobs(http_server) -> None:
    record, _, _ = tiny_entry(http_server, pickle=True)
    load_entry(record)
    c = cache()
    report = c.verify()
    assert report.checked == 2 and report.bad == () and report.bytes > 0
    download = next(r for r in c.list_records() if r.kind == "download")
    tamper(c.blob_path(download.sha256))
    report = c.verify()
    assert report.bad == (download.sha256,)
    assert c.list_records() == []  # the converted copy goes with the original it came from


def test_prune(http_server, tmp_path: Path) -> None:
    record, _, _ = tiny_entry(http_server)
    load_entry(record)
    c = cache()
    # An orphan blob, a stale partial download, a stale temp file.
    orphan = c.blob_path("f" * 64)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"x" * 10)
    stale = c.partial_path("http://example/x@")
    stale.write_bytes(b"y" * 20)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    fresh = c.partial_path("http://example/in-flight@")
    fresh.write_bytes(b"z")

    dry = c.prune(dry_run=True)
    assert (dry.blobs, dry.partials) == (1, 1) and orphan.exists()
    report = c.prune()
    assert (report.records, report.blobs, report.partials) == (0, 1, 1)
    assert not orphan.exists() and not stale.exists() and fresh.exists()
    assert len(c.list_records()) == 1

    (rec,) = c.list_records()
    os.utime(c.index_path(rec.key), (old - 86400 * 30, old - 86400 * 30))
    assert c.prune(older_than_days=7).records == 1
    assert c.list_records() == [] and not c.has_blob(rec.sha256)


def test_loading_marks_the_entry_as_used(http_server) -> None:
    record, _, _ = tiny_entry(http_server)
    load_entry(record)
    c = cache()
    (rec,) = c.list_records()
    old = time.time() - 86400 * 30
    os.utime(c.index_path(rec.key), (old, old))
    load_entry(record, offline=True)
    assert c.prune(older_than_days=7).records == 0


def test_unreadable_index_entry_is_a_miss_not_a_crash(tmp_path: Path) -> None:
    c = Cache(tmp_path)
    c.index_dir.mkdir(parents=True)
    c.index_path("k").write_text("{not json")
    assert c.find("k") is None
    assert c.list_records() == []


def test_put_is_content_addressed(tmp_path: Path) -> None:
    c = Cache(tmp_path)
    for key in ("a", "b"):
        src = c.temp_file()
        src.write_bytes(b"same bytes")
        sha = hashlib.sha256(b"same bytes").hexdigest()
        c.put(src, CacheRecord(key, sha, 10))
    assert {r.key for r in c.list_records()} == {"a", "b"}
    assert len(list(c.blobs_dir.glob("*/*"))) == 1


def test_concurrent_fetches_of_one_file_download_it_once(http_server, tmp_path: Path) -> None:
    body = os.urandom(2_000_000)
    url = http_server.add("/big.bin", body)
    ref = FileRef(url=url, sha256=hashlib.sha256(body).hexdigest())
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:  # separate Cache objects, as in separate processes; the lock is a file lock
            results.append(fetch(ref, cache=Cache(tmp_path / "c"), offline=False, policy=RetryPolicy()).record.sha256)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1 and len(results) == 4
    assert len(http_server.gets("/big.bin")) == 1
    assert Cache(tmp_path / "c").find(key_for(url, None)) is not None
