"""The cache never reads through, or deletes outside, its own folder, whatever its index says.

Each test plants what a hand edit, a bug or another user could leave in the cache folder
(an index record whose sha256 is a path, a blob folder that is a link, ``..`` in a digest,
linked index files and blobs) and shows ``verify`` / ``prune`` leave the outside intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from securitynet.cli.app import _register_commands, app
from securitynet.errors import IntegrityError
from securitynet.loader.cache import SECONDS_PER_DAY, Cache, CacheRecord, is_sha256

BODY = b"weights" * 100
SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the cache holding files nobody may delete."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "victim.txt").write_text("keep me")
    (folder / SHA).write_bytes(BODY)  # named like a blob, with the right bytes even
    return folder


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    c = Cache(tmp_path / "cache")
    src = c.temp_file()
    src.write_bytes(BODY)
    c.put(src, CacheRecord("https://example.org/w.bin@", SHA, len(BODY)))
    return c


def _plant_index(c: Cache, name: str, record: dict[str, object]) -> Path:
    path = c.index_dir / f"{name}.json"
    path.write_text(json.dumps({"version": 1, **record}))
    return path


def _untouched(outside: Path) -> bool:
    return (outside / "victim.txt").read_text() == "keep me" and (
        outside / SHA
    ).read_bytes() == BODY


@pytest.mark.parametrize("where", ["absolute", "dotdot"])
def test_a_sha256_that_is_a_path_deletes_nothing(cache: Cache, outside: Path, where: str) -> None:
    victim = outside / "victim.txt"
    bogus = str(victim) if where == "absolute" else os.path.relpath(victim, cache.blobs_dir / "xx")
    planted = _plant_index(cache, "bogus", {"key": "k", "sha256": bogus, "size": 7})
    report = cache.verify()
    assert report.bad == () and report.checked == 1  # the good blob; the bogus record is no record
    assert cache.prune(older_than_days=0).records == 2  # both index entries (the good one aged 0)
    assert _untouched(outside)
    assert not planted.exists()


def test_discard_refuses_a_digest_that_is_a_path(cache: Cache, outside: Path) -> None:
    with pytest.raises(IntegrityError, match=r"^not a sha256 digest: '/"):
        cache.discard(str(outside / "victim.txt"))
    with pytest.raises(IntegrityError):
        cache.blob_path("../" * 6 + "etc/passwd")
    assert not cache.has_blob(str(outside / SHA))
    assert _untouched(outside)


def test_a_symlinked_blob_folder_is_never_followed(cache: Cache, outside: Path) -> None:
    prefix = cache.blobs_dir / SHA[:2]
    for blob in prefix.iterdir():
        os.chmod(blob, 0o644)
        blob.unlink()
    prefix.rmdir()
    prefix.symlink_to(outside, target_is_directory=True)  # blobs/sha256/ab -> outside/
    # the record's blob now "exists" through the link, with the right bytes: still refused
    assert not cache.has_blob(SHA)
    assert cache.list_records() == []
    record = CacheRecord("k", SHA, len(BODY))
    assert not cache.check(record)
    with pytest.raises(IntegrityError):
        cache.open_verified(record)
    assert cache.verify().dangling in (0, 1)
    report = cache.prune(everything=True)
    assert report.blobs == 1  # the link itself, not what it points at
    assert not prefix.is_symlink() and not prefix.exists()
    assert _untouched(outside)


def test_a_blob_that_is_a_link_is_removed_as_a_link(cache: Cache, outside: Path) -> None:
    blob = cache.blob_path(SHA)
    os.chmod(blob, 0o644)
    blob.unlink()
    blob.symlink_to(outside / SHA)
    assert cache.find("https://example.org/w.bin@") is None
    assert cache.verify().checked == 0
    cache.prune()
    assert not blob.is_symlink()
    assert _untouched(outside)


@pytest.mark.parametrize("folder", ["blobs", "index", "partial", "tmp"])
def test_a_cache_folder_that_is_a_link_out_is_left_alone(
    cache: Cache, outside: Path, folder: str
) -> None:
    target = cache.root / folder
    if target.exists():
        for path in sorted(target.rglob("*"), reverse=True):
            os.chmod(path, 0o755)
            path.rmdir() if path.is_dir() else path.unlink()
        target.rmdir()
    target.symlink_to(outside, target_is_directory=True)
    old = time.time() - 30 * SECONDS_PER_DAY
    for path in outside.iterdir():
        os.utime(path, (old, old))
    cache.verify()
    cache.prune(everything=True)
    cache.prune(older_than_days=1)
    assert _untouched(outside)
    assert sorted(p.name for p in outside.iterdir()) == sorted([SHA, "victim.txt"])


def test_an_index_file_that_is_a_link_is_not_read_or_followed(cache: Cache, outside: Path) -> None:
    (outside / "record.json").write_text(
        json.dumps({"version": 1, "key": "k", "sha256": SHA, "size": len(BODY)})
    )
    link = cache.index_dir / "planted.json"
    link.symlink_to(outside / "record.json")
    assert [r.key for r in cache.list_records()] == ["https://example.org/w.bin@"]
    assert cache.prune().records == 1
    assert not link.is_symlink()
    assert (outside / "record.json").exists()


def test_a_cache_root_that_is_itself_a_link_works(tmp_path: Path) -> None:
    real = tmp_path / "real-cache"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    c = Cache(tmp_path / "link")
    src = c.temp_file()
    src.write_bytes(BODY)
    record = c.put(src, CacheRecord("k", SHA, len(BODY)))
    assert c.find("k") == record
    assert c.open_verified(record).read_bytes() == BODY
    assert c.verify().checked == 1 and c.prune().blobs == 0


def test_stray_files_in_the_blob_store_are_pruned(cache: Cache) -> None:
    misplaced = cache.blobs_dir / "00" / SHA  # right name, wrong folder
    misplaced.parent.mkdir()
    misplaced.write_bytes(BODY)
    loose = cache.blobs_dir / "loose-file"
    loose.write_bytes(b"12345")
    report = cache.prune()
    assert report.blobs == 2 and report.bytes == len(BODY) + 5
    assert not misplaced.exists() and not loose.exists()
    assert cache.has_blob(SHA)


def _age(cache: Cache, key: str, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(cache.index_path(key), (when, when))


@pytest.mark.parametrize(
    ("age_seconds", "older_than_days", "pruned"),
    [
        (2 * SECONDS_PER_DAY, 1, True),
        (SECONDS_PER_DAY + 600, 1, True),
        (SECONDS_PER_DAY - 600, 1, False),
        (23 * 3600, 1, False),  # hours are not days
        (13 * 3600, 0.5, True),  # fractions of a day
        (11 * 3600, 0.5, False),
        (6 * SECONDS_PER_DAY, 7, False),
        (8 * SECONDS_PER_DAY, 7, True),
    ],
)
def test_prune_older_than_counts_days(
    cache: Cache, age_seconds: float, older_than_days: float, pruned: bool
) -> None:
    _age(cache, "https://example.org/w.bin@", age_seconds)
    report = cache.prune(older_than_days=older_than_days)
    assert report.records == int(pruned)
    assert cache.has_blob(SHA) is not pruned
    assert report.blobs == int(pruned) and report.bytes == (len(BODY) if pruned else 0)


def test_dry_run_counts_but_removes_nothing(cache: Cache) -> None:
    _age(cache, "https://example.org/w.bin@", 3 * SECONDS_PER_DAY)
    stale = cache.partial_path("x")
    stale.write_bytes(b"abc")
    os.utime(stale, (time.time() - 3600,) * 2)
    report = cache.prune(older_than_days=1, dry_run=True)
    assert (report.records, report.blobs, report.partials) == (1, 1, 1)
    assert report.bytes == len(BODY) + 3
    assert cache.has_blob(SHA) and stale.exists() and len(cache.list_records()) == 1


@pytest.mark.parametrize(
    "record",
    [
        {"key": "k", "sha256": SHA.upper(), "size": 1},
        {"key": "k", "sha256": SHA[:63], "size": 1},
        {"key": "k", "sha256": SHA[:63] + "g", "size": 1},
        {"key": "k", "sha256": "/etc/passwd", "size": 1},
        {"key": "k", "sha256": SHA + "\n", "size": 1},
        {"key": "k", "sha256": 12, "size": 1},
        {"key": "k", "sha256": SHA, "size": -1},
        {"key": "k", "sha256": SHA, "size": True},
        {"key": "k", "sha256": SHA, "size": "7"},
        {"key": 5, "sha256": SHA, "size": 1},
        {"key": "k", "sha256": SHA, "size": 1, "parent": "../x"},
        {"key": "k", "sha256": SHA, "size": 1, "digests": ["sha1"]},
        {"key": "k", "sha256": SHA, "size": 1, "unknown_field": 1},
    ],
)
def test_invalid_index_records_are_refused(record: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        CacheRecord.from_json({"version": 1, **record})


def test_valid_records_round_trip() -> None:
    record = CacheRecord("k", SHA, 3, parent=SHA, digests={"sha1": "ab"})
    assert CacheRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    assert is_sha256(SHA) and not is_sha256(SHA.upper()) and not is_sha256(None)
    with pytest.raises(ValueError):
        CacheRecord.from_json([SHA])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^not a sha256 digest: '/etc/passwd'$"):
        CacheRecord("k", "/etc/passwd", 1)
    with pytest.raises(ValueError, match=r"^parent is not a sha256 digest: '\.\./x'$"):
        CacheRecord("k", SHA, 1, parent="../x")
    with pytest.raises(ValueError, match=r"^size is not a byte count: -1$"):
        CacheRecord("k", SHA, -1)
    with pytest.raises(ValueError, match=r"^digests is not a mapping$"):
        CacheRecord("k", SHA, 1, digests=["sha1"])  # type: ignore[arg-type]


def test_the_cli_prunes_and_verifies_without_leaving_the_cache(
    tmp_path: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register_commands()
    c = Cache(tmp_path / "cli-cache")
    monkeypatch.setenv("SECURITYNET_CACHE_DIR", str(c.root))
    c.index_dir.mkdir(parents=True)
    _plant_index(c, "bogus", {"key": "k", "sha256": str(outside / "victim.txt"), "size": 7})
    c.blobs_dir.mkdir(parents=True)
    (c.blobs_dir / SHA[:2]).symlink_to(outside, target_is_directory=True)
    runner = CliRunner()
    verify = runner.invoke(app, ["cache", "verify"])
    assert verify.exit_code == 0, verify.output
    prune = runner.invoke(app, ["cache", "prune", "--all"])
    assert prune.exit_code == 0, prune.output
    assert "removed 1 entries, 1 files" in prune.stdout
    assert _untouched(outside)


# --- keys, digests, records: the small contracts the rest of the loader relies on -----------


def test_keys_name_their_origin() -> None:
    from securitynet.loader.cache import derived_key, key_for

    assert key_for("https://h/w.bin", None) == "https://h/w.bin@"
    assert key_for("https://h/w.bin", "abc") == "https://h/w.bin@abc"
    assert derived_key("convert", SHA) == f"derived:convert:{SHA}:"
    assert derived_key("extract", SHA, "m/x.pt") == f"derived:extract:{SHA}:m/x.pt"


def test_hash_file_reads_once_for_every_algorithm(tmp_path: Path) -> None:
    from securitynet.loader.cache import HASH_CHUNK, KNOWN_ALGOS, hash_file

    assert KNOWN_ALGOS == ("sha256", "sha1", "md5")
    body = os.urandom(HASH_CHUNK + 12345)  # more than one read
    path = tmp_path / "blob"
    path.write_bytes(body)
    assert hash_file(path, KNOWN_ALGOS) == {
        a: hashlib.new(a, body).hexdigest() for a in KNOWN_ALGOS
    }
    assert hash_file(path) == {"sha256": hashlib.sha256(body).hexdigest()}
    (tmp_path / "empty").write_bytes(b"")
    assert hash_file(tmp_path / "empty")["sha256"] == hashlib.sha256(b"").hexdigest()


def test_index_files_carry_their_version_and_digests(cache: Cache) -> None:
    (path,) = cache.index_dir.glob("*.json")
    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["sha256"] == SHA and data["kind"] == "download"
    record = CacheRecord("k", SHA, 3, digests={"sha1": "ab", "md5": "cd"})
    assert (record.digest("sha256"), record.digest("sha1"), record.digest("md5")) == (
        SHA,
        "ab",
        "cd",
    )
    assert record.digest("crc32") is None


@pytest.mark.parametrize(("age", "removed"), [(500, False), (700, True)])
def test_prune_leaves_recent_partial_downloads_to_their_writer(
    cache: Cache, age: float, removed: bool
) -> None:
    from securitynet.loader.cache import IN_FLIGHT_SECONDS

    assert IN_FLIGHT_SECONDS == 600
    partial = cache.partial_path("https://example.org/big@")
    partial.write_bytes(b"1234")
    os.utime(partial, (time.time() - age,) * 2)
    report = cache.prune()
    assert report.partials == int(removed) and partial.exists() is not removed
    assert cache.prune(everything=True).partials == int(not removed)
    assert not partial.exists()


def test_find_drops_an_entry_whose_blob_is_gone(cache: Cache) -> None:
    key = "https://example.org/w.bin@"
    blob = cache.blob_path(SHA)
    os.chmod(blob, 0o644)
    blob.unlink()
    assert cache.find(key) is None
    assert not cache.index_path(key).exists()
    assert cache.find("never stored") is None


def test_put_of_a_blob_already_stored_keeps_one_copy_and_removes_the_source(cache: Cache) -> None:
    src = cache.temp_file()
    src.write_bytes(BODY)
    record = cache.put(src, CacheRecord("second key", SHA, len(BODY)))
    assert not src.exists() and record.created
    assert oct(os.stat(cache.blob_path(SHA)).st_mode & 0o777) == "0o444"
    alias = cache.alias(record, "third key", filename="w.bin")
    assert alias.filename == "w.bin" and cache.find("third key") == alias
    assert {r.key for r in cache.list_records()} == {
        "https://example.org/w.bin@",
        "second key",
        "third key",
    }


def test_discard_removes_what_was_derived_from_a_blob(cache: Cache) -> None:
    child_body = b"converted" * 10
    child_sha = hashlib.sha256(child_body).hexdigest()
    src = cache.temp_file()
    src.write_bytes(child_body)
    cache.put(src, CacheRecord("derived", child_sha, len(child_body), kind="convert", parent=SHA))
    assert cache.discard(SHA) == 2
    assert not cache.has_blob(SHA) and not cache.has_blob(child_sha)
    assert cache.list_records() == []


def test_open_verified_checks_size_and_bytes(cache: Cache) -> None:
    record = cache.find("https://example.org/w.bin@")
    assert record is not None
    assert cache.open_verified(record) == cache.blob_path(SHA)
    assert not cache.check(CacheRecord("k", SHA, len(BODY) + 1))  # size differs
    blob = cache.blob_path(SHA)
    os.chmod(blob, 0o644)
    blob.write_bytes(BODY[:-1] + b"X")  # same size, other bytes
    with pytest.raises(IntegrityError, match="altered"):
        cache.open_verified(record)
    assert not blob.exists() and cache.find(record.key) is None


def test_verify_reports_dangling_entries_and_bytes(cache: Cache) -> None:
    _plant_index(cache, "dangling", {"key": "gone", "sha256": "e" * 64, "size": 5})
    report = cache.verify()
    assert (report.checked, report.dangling, report.bytes, report.bad) == (1, 1, len(BODY), ())
    assert not (cache.index_dir / "dangling.json").exists()


def test_lock_serialises_holders(cache: Cache) -> None:
    with cache.lock("k"):
        assert (cache.root / "locks").is_dir()
    with cache.lock("k"):  # released, so it can be taken again
        pass


def test_discard_counts_every_index_entry_of_the_blob(cache: Cache) -> None:
    cache.alias(CacheRecord("https://example.org/w.bin@", SHA, len(BODY)), "mirror@")
    assert cache.discard(SHA) == 2


def test_a_link_among_partial_downloads_frees_no_bytes(cache: Cache, outside: Path) -> None:
    link = cache.partial_dir / "link.part"
    cache.partial_dir.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside / "victim.txt")
    report = cache.prune(everything=True, dry_run=True)
    assert report.partials == 1 and report.bytes == len(BODY)  # the blob's bytes, not the link's
    cache.prune(everything=True)
    assert not link.is_symlink() and _untouched(outside)


def test_an_altered_blob_is_named_in_the_error(cache: Cache) -> None:
    record = cache.find("https://example.org/w.bin@")
    assert record is not None
    blob = cache.blob_path(SHA)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"x" * len(BODY))
    with pytest.raises(
        IntegrityError, match=rf"w\.bin@ was altered .*no longer {SHA[:16]}\.\.\.\)"
    ):
        cache.open_verified(record)
