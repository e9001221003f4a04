"""The weight cache: content-addressed blobs plus an index of where each came from.

Layout under ``settings.resolved_cache_dir``::

    blobs/sha256/ab/abcdef...      the bytes, named by their sha256 (read-only once written)
    index/<sha256(key)>.json       one small JSON file per key -> blob (a CacheRecord)
    partial/<sha256(key)>.part     an interrupted download (resumed, never read as weights)
    tmp/                           files being written (moved into blobs/ by an atomic rename)
    locks/<sha256(key)>.lock       advisory lock held while a key is fetched or derived

A *key* says where a blob came from: ``<url>@<revision>`` for a download, or
``derived:<kind>:<parent sha256>:<detail>`` for a file made from another blob (the member
extracted from a zip, the safetensors conversion of a pickle-based checkpoint). The index
is one file per key so that concurrent processes never rewrite each other's entries;
every write is a temp file plus ``os.replace``.

A blob's sha256 is recorded when it enters the cache and checked again every time the blob
is used (:meth:`Cache.open_verified`); a blob whose bytes no longer match is deleted with
every index entry that points at it, and :class:`~securitynet.errors.IntegrityError` is raised.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from securitynet.errors import IntegrityError

log = logging.getLogger(__name__)

#: Read size for hashing; large enough that hashlib releases the GIL and syscalls are few.
HASH_CHUNK = 8 * 1024 * 1024

#: Digest names accepted in ``FileRef.checksum_algo`` (``sha256-prefix`` is a prefix of sha256).
KNOWN_ALGOS = ("sha256", "sha1", "md5")

INDEX_VERSION = 1

#: ``prune`` leaves partial and temp files younger than this alone (another process may be
#: writing them) unless told to remove everything.
IN_FLIGHT_SECONDS = 600


def key_for(url: str, revision: str | None) -> str:
    """The index key of a downloaded file."""
    return f"{url}@{revision or ''}"


def derived_key(kind: str, parent_sha256: str, detail: str = "") -> str:
    """The index key of a file derived from the blob ``parent_sha256``."""
    return f"derived:{kind}:{parent_sha256}:{detail}"


def _key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def hash_file(path: Path, algos: tuple[str, ...] = ("sha256",)) -> dict[str, str]:
    """Hex digests of ``path`` for each algorithm in ``algos``, reading the file once."""
    hashers = {a: hashlib.new(a) for a in algos}
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(HASH_CHUNK)
        view = memoryview(buf)
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            for h in hashers.values():
                h.update(view[:n])
    return {a: h.hexdigest() for a, h in hashers.items()}


@dataclass(frozen=True)
class CacheRecord:
    """One index entry: a key and the blob it resolves to."""

    key: str
    sha256: str
    size: int
    kind: str = "download"  # download | extract | convert
    url: str | None = None
    revision: str | None = None
    #: The commit a Hub file was served from (``X-Repo-Commit``), when known.
    commit: str | None = None
    filename: str | None = None
    #: Other digests computed when the blob entered the cache (``sha1``, ``md5``).
    digests: dict[str, str] = field(default_factory=dict)
    #: Blob this one was made from (``extract`` / ``convert``).
    parent: str | None = None
    created: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"version": INDEX_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CacheRecord:
        data = {k: v for k, v in data.items() if k != "version"}
        return cls(**data)

    def digest(self, algo: str) -> str | None:
        if algo == "sha256":
            return self.sha256
        return self.digests.get(algo)


@dataclass(frozen=True)
class VerifyReport:
    """What :meth:`Cache.verify` found."""

    checked: int
    bad: tuple[str, ...]  # sha256 of blobs whose bytes did not match (now deleted)
    dangling: int  # index entries whose blob was missing (now deleted)
    seconds: float
    bytes: int


@dataclass(frozen=True)
class PruneReport:
    """What :meth:`Cache.prune` removed (or would remove, with ``dry_run``)."""

    records: int
    blobs: int
    partials: int
    bytes: int


class Cache:
    """The content-addressed cache rooted at ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # --- paths ------------------------------------------------------------------------------

    @property
    def blobs_dir(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def partial_dir(self) -> Path:
        return self.root / "partial"

    def blob_path(self, sha256: str) -> Path:
        return self.blobs_dir / sha256[:2] / sha256

    def index_path(self, key: str) -> Path:
        return self.index_dir / f"{_key_digest(key)}.json"

    def partial_path(self, key: str) -> Path:
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        return self.partial_dir / f"{_key_digest(key)}.part"

    def temp_file(self, suffix: str = "") -> Path:
        """A fresh, empty file in the cache's own temp folder (same filesystem as blobs)."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.tmp_dir, suffix=suffix)
        os.close(fd)
        return Path(name)

    # --- locking ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Hold an exclusive advisory lock on ``key`` (a no-op where ``fcntl`` is absent)."""
        try:
            import fcntl
        except ImportError:  # Windows: downloads still land atomically, just possibly twice
            yield
            return
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{_key_digest(key)}.lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # --- index ------------------------------------------------------------------------------

    def find(self, key: str) -> CacheRecord | None:
        """The record of ``key`` whose blob is present, or None."""
        path = self.index_path(key)
        try:
            data = json.loads(path.read_text())
            record = CacheRecord.from_json(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            log.warning("cache index entry %s is unreadable (%s); ignoring it", path.name, exc)
            path.unlink(missing_ok=True)
            return None
        if record.key != key:  # a digest collision is not going to happen; a hand edit might
            return None
        if not self.blob_path(record.sha256).is_file():
            path.unlink(missing_ok=True)
            return None
        return record

    def has_blob(self, sha256: str) -> bool:
        return self.blob_path(sha256).is_file()

    def _write_index(self, record: CacheRecord) -> None:
        self.index_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.temp_file(".json")
        tmp.write_text(json.dumps(record.to_json(), sort_keys=True, indent=1))
        os.replace(tmp, self.index_path(record.key))

    def put(self, src: Path, record: CacheRecord) -> CacheRecord:
        """Move the verified file ``src`` into the blob store and index it under ``record.key``.

        ``record.sha256`` must be the digest of ``src`` (the caller computed it while writing).
        """
        dest = self.blob_path(record.sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_file():
            if src != dest:
                src.unlink(missing_ok=True)  # same content already stored
        else:
            os.chmod(src, 0o444)
            os.replace(src, dest)
        if not record.created:
            record = replace(record, created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        self._write_index(record)
        return record

    def alias(self, record: CacheRecord, key: str, **changes: Any) -> CacheRecord:
        """Index an already stored blob under another key."""
        new = replace(record, key=key, created="", **changes)
        return self.put(self.blob_path(record.sha256), new)

    def touch(self, record: CacheRecord) -> None:
        """Mark ``record`` as used now (its index file's mtime; ``prune --older-than`` reads it)."""
        with contextlib.suppress(OSError):
            os.utime(self.index_path(record.key))

    # --- verification -----------------------------------------------------------------------

    def check(self, record: CacheRecord) -> bool:
        """True when the blob's bytes still have the recorded size and sha256."""
        path = self.blob_path(record.sha256)
        try:
            if path.stat().st_size != record.size:
                return False
        except FileNotFoundError:
            return False
        return hash_file(path)["sha256"] == record.sha256

    def open_verified(self, record: CacheRecord) -> Path:
        """The blob of ``record`` after re-hashing it; on a mismatch the blob is discarded."""
        if not self.check(record):
            self.discard(record.sha256)
            raise IntegrityError(
                f"cached file for {record.url or record.key} was altered after it was stored "
                f"(sha256 no longer {record.sha256[:16]}...)",
                key=record.key,
                sha256=record.sha256,
            )
        self.touch(record)
        return self.blob_path(record.sha256)

    def discard(self, sha256: str) -> int:
        """Delete the blob ``sha256``, every index entry that points at it and, recursively,
        everything derived from it. Returns the number of index entries removed."""
        removed = 0
        derived: list[str] = []
        for path, record in self._iter_index():
            if record.sha256 == sha256:
                path.unlink(missing_ok=True)
                removed += 1
            elif record.parent == sha256:
                derived.append(record.sha256)
        blob = self.blob_path(sha256)
        if blob.exists():
            os.chmod(blob, 0o644)
            blob.unlink(missing_ok=True)
        for child in derived:
            removed += self.discard(child)
        return removed

    # --- listing, verify, prune -------------------------------------------------------------

    def _iter_index(self) -> Iterator[tuple[Path, CacheRecord]]:
        if not self.index_dir.is_dir():
            return
        for path in sorted(self.index_dir.glob("*.json")):
            try:
                yield path, CacheRecord.from_json(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("cache index entry %s is unreadable (%s)", path.name, exc)

    def list_records(self) -> list[CacheRecord]:
        """Every index entry whose blob is present, oldest first."""
        records = [r for _, r in self._iter_index() if self.has_blob(r.sha256)]
        return sorted(records, key=lambda r: (r.created, r.key))

    def last_used(self, record: CacheRecord) -> float | None:
        try:
            return self.index_path(record.key).stat().st_mtime
        except FileNotFoundError:
            return None

    def verify(self) -> VerifyReport:
        """Re-hash every blob the index points at; discard the ones that no longer match."""
        start = time.perf_counter()
        by_blob: dict[str, CacheRecord] = {}
        dangling = 0
        for path, record in self._iter_index():
            if not self.has_blob(record.sha256):
                path.unlink(missing_ok=True)
                dangling += 1
                continue
            by_blob.setdefault(record.sha256, record)
        bad: list[str] = []
        total = 0
        from securitynet.progress import track

        for sha, record in track(list(by_blob.items()), description="verifying cache"):
            if not self.has_blob(sha):  # discarded as a child of an earlier bad blob
                continue
            total += record.size
            if not self.check(record):
                log.warning("cached blob %s (%s) does not match its sha256; discarded", sha[:16], record.key)
                self.discard(sha)
                bad.append(sha)
        return VerifyReport(len(by_blob), tuple(bad), dangling, time.perf_counter() - start, total)

    def prune(
        self,
        *,
        older_than_days: float | None = None,
        everything: bool = False,
        dry_run: bool = False,
    ) -> PruneReport:
        """Remove what is not needed.

        Always: interrupted downloads, temp files, index entries without a blob and blobs
        no index entry points at. With ``older_than_days``: also entries not used for that
        long (and their blobs, once nothing else points at them). With ``everything``: all.
        """
        now = time.time()
        records = n_blobs = n_partials = freed = 0
        keep_blobs: set[str] = set()
        for path, record in self._iter_index():
            stale = everything or not self.has_blob(record.sha256)
            if not stale and older_than_days is not None:
                mtime = path.stat().st_mtime
                stale = (now - mtime) > older_than_days * 86400
            if stale:
                records += 1
                if not dry_run:
                    path.unlink(missing_ok=True)
            else:
                keep_blobs.add(record.sha256)
        if self.blobs_dir.is_dir():
            for blob in self.blobs_dir.glob("*/*"):
                if blob.name in keep_blobs:
                    continue
                n_blobs += 1
                freed += blob.stat().st_size
                if not dry_run:
                    os.chmod(blob, 0o644)
                    blob.unlink(missing_ok=True)
        for folder in (self.partial_dir, self.tmp_dir):
            if not folder.is_dir():
                continue
            for item in folder.iterdir():
                with contextlib.suppress(OSError):
                    if not everything and now - item.stat().st_mtime < IN_FLIGHT_SECONDS:
                        continue  # probably a download running in another process
                n_partials += 1
                with contextlib.suppress(OSError):
                    freed += item.stat().st_size
                if not dry_run:
                    if item.is_dir():
                        shutil.rmtree(item, ignore_errors=True)
                    else:
                        item.unlink(missing_ok=True)
        return PruneReport(records, n_blobs, n_partials, freed)
