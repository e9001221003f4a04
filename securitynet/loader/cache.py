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

**Confinement.** The index is data anyone with write access to the cache folder (or a bug)
may have altered, so nothing in it becomes a path unchecked: a record's ``sha256`` (and
``parent``) must be 64 lowercase hex digits, or the record is invalid (a miss; ``prune``
removes its index file). Every path the cache reads, changes or deletes is built from the
root and checked to stay under it with no symbolic link on the way (the root itself may be
a link); a link found inside the cache is never followed: reads refuse it, ``prune``
removes the link itself. So ``verify`` and ``prune`` cannot delete anything outside the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import stat
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

_SHA256 = re.compile(r"[0-9a-f]{64}")


def is_sha256(value: object) -> bool:
    """Whether ``value`` is a sha256 hex digest as the cache names blobs (lowercase, 64 digits)."""
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


SECONDS_PER_DAY = 86_400

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

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not is_sha256(self.sha256):
            raise ValueError(f"not a sha256 digest: {self.sha256!r}")
        if self.parent is not None and not is_sha256(self.parent):
            raise ValueError(f"parent is not a sha256 digest: {self.parent!r}")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise ValueError(f"size is not a byte count: {self.size!r}")
        if not isinstance(self.digests, dict):
            raise ValueError("digests is not a mapping")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CacheRecord:
        """The record in an index file's JSON; ValueError or TypeError when it is not one."""
        if not isinstance(data, dict):
            raise ValueError("an index entry is a JSON object")
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
        """Where the blob ``sha256`` lives; IntegrityError when ``sha256`` is no digest."""
        if not is_sha256(sha256):
            raise IntegrityError(
                f"not a sha256 digest: {sha256!r}",
                sha256=sha256,
                hint="Run 'securitynet cache prune'.",
            )
        return self.blobs_dir / sha256[:2] / sha256

    def confined(self, path: Path) -> bool:
        """Whether ``path`` (built from the root) lies under the root with no link on the way:
        its real path is the root's real path plus the same parts."""
        try:
            parts = Path(path).relative_to(self.root).parts
        except ValueError:
            return False
        if any(part in ("..", ".", "") for part in parts):
            return False
        real_root = os.path.realpath(self.root)
        return os.path.realpath(path) == os.path.join(real_root, *parts)

    def _regular_file(self, path: Path) -> bool:
        """A regular file, not a link, under the root (nothing is followed to decide)."""
        try:
            return stat.S_ISREG(os.lstat(path).st_mode) and self.confined(path)
        except OSError:
            return False

    def _remove(self, path: Path) -> bool:
        """Delete the entry ``path`` in the cache: a file, or a link itself (never its target),
        or a folder with what is under it. Refused (False, logged) unless its folder is confined."""
        path = Path(path)
        if path.name in ("", ".", "..") or not self.confined(path.parent):
            log.warning("refusing to delete %s: it is not inside the cache %s", path, self.root)
            return False
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(mode):
            shutil.rmtree(path, ignore_errors=True)  # rmtree never follows links inside
        else:
            if stat.S_ISREG(mode):
                with contextlib.suppress(OSError):
                    os.chmod(path, 0o644)  # read-only blobs (matters on Windows)
            path.unlink(missing_ok=True)
        return True

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
        if not self.confined(locks):
            raise IntegrityError(f"{locks} is a link out of the cache", path=str(locks))
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
            self._remove(path)
            return None
        if record.key != key:  # a digest collision is not going to happen; a hand edit might
            return None
        if not self.has_blob(record.sha256):
            self._remove(path)
            return None
        return record

    def has_blob(self, sha256: str) -> bool:
        """Whether the blob ``sha256`` is stored (a regular file in the cache, not a link)."""
        return is_sha256(sha256) and self._regular_file(self.blob_path(sha256))

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
        if not self.confined(dest.parent):
            raise IntegrityError(f"{dest.parent} is a link out of the cache", path=str(dest.parent))
        if self._regular_file(dest):
            if src != dest:
                src.unlink(missing_ok=True)  # same content already stored
        else:
            os.chmod(src, 0o444)
            os.replace(src, dest)
        if not record.created:
            record = replace(
                record, created=datetime.now(timezone.utc).isoformat(timespec="seconds")
            )
        self._write_index(record)
        return record

    def alias(self, record: CacheRecord, key: str, **changes: Any) -> CacheRecord:
        """Index an already stored blob under another key."""
        new = replace(record, key=key, created="", **changes)
        return self.put(self.blob_path(record.sha256), new)

    def touch(self, record: CacheRecord) -> None:
        """Mark ``record`` as used now (its index file's mtime; ``prune --older-than`` reads it)."""
        path = self.index_path(record.key)
        if self._regular_file(path):
            with contextlib.suppress(OSError):
                os.utime(path)

    # --- verification -----------------------------------------------------------------------

    def check(self, record: CacheRecord) -> bool:
        """True when the blob's bytes still have the recorded size and sha256."""
        path = self.blob_path(record.sha256)
        if not self._regular_file(path):  # absent, or a link: never followed
            return False
        try:
            if path.stat().st_size != record.size:
                return False
            return hash_file(path)["sha256"] == record.sha256
        except OSError:
            return False

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
        blob = self.blob_path(sha256)  # IntegrityError when sha256 is no digest
        removed = 0
        derived: list[str] = []
        for path, record in self._iter_index():
            if record.sha256 == sha256:
                self._remove(path)
                removed += 1
            elif record.parent == sha256 and record.sha256 != sha256:
                derived.append(record.sha256)
        self._remove(blob)
        for child in derived:
            removed += self.discard(child)
        return removed

    # --- listing, verify, prune -------------------------------------------------------------

    def _iter_index(self) -> Iterator[tuple[Path, CacheRecord]]:
        for path, record in self._iter_index_files():
            if record is not None:
                yield path, record

    def _iter_index_files(self) -> Iterator[tuple[Path, CacheRecord | None]]:
        """Every index file (regular, inside the cache) with its record, None when invalid."""
        if not self.index_dir.is_dir() or not self.confined(self.index_dir):
            return
        for path in sorted(self.index_dir.glob("*.json")):
            if not self._regular_file(path):
                log.warning("cache index entry %s is not a plain file; ignored", path.name)
                yield path, None
                continue
            try:
                yield path, CacheRecord.from_json(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("cache index entry %s is unreadable (%s)", path.name, exc)
                yield path, None

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
                self._remove(path)
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
                log.warning(
                    "cached blob %s (%s) does not match its sha256; discarded", sha[:16], record.key
                )
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
        max_age = None if older_than_days is None else older_than_days * SECONDS_PER_DAY
        records = n_blobs = n_partials = freed = 0
        keep_blobs: set[str] = set()
        for path, record in self._iter_index_files():
            stale = everything or record is None or not self.has_blob(record.sha256)
            if not stale and max_age is not None:
                with contextlib.suppress(OSError):
                    stale = now - os.lstat(path).st_mtime > max_age
            if stale:
                records += 1
                if not dry_run:
                    self._remove(path)
            elif record is not None:
                keep_blobs.add(record.sha256)
        for blob, size in self._iter_blob_entries():
            if (
                blob.name in keep_blobs
                and self._regular_file(blob)
                and blob == self.blob_path(blob.name)
            ):
                continue
            n_blobs += 1
            freed += size
            if not dry_run:
                self._remove(blob)
        for folder in (self.partial_dir, self.tmp_dir):
            if not folder.is_dir() or not self.confined(folder):
                continue
            for item in folder.iterdir():
                try:
                    info = os.lstat(item)
                except OSError:
                    continue
                if not everything and now - info.st_mtime < IN_FLIGHT_SECONDS:
                    continue  # probably a download running in another process
                n_partials += 1
                freed += info.st_size if stat.S_ISREG(info.st_mode) else 0
                if not dry_run:
                    self._remove(item)
        return PruneReport(records, n_blobs, n_partials, freed)

    def _iter_blob_entries(self) -> Iterator[tuple[Path, int]]:
        """Everything in the blob store two levels down, links and strays included (never
        followed), with the bytes each frees: ``(path, size)``."""
        if not self.blobs_dir.is_dir() or not self.confined(self.blobs_dir):
            return
        for top in sorted(self.blobs_dir.iterdir()):
            if top.is_symlink() or not top.is_dir():
                yield top, 0 if top.is_symlink() else _lsize(top)
                continue
            for blob in sorted(top.iterdir()):
                yield blob, _lsize(blob)


def _lsize(path: Path) -> int:
    """Bytes of the regular file ``path`` (0 for a link or anything else)."""
    try:
        info = os.lstat(path)
    except OSError:
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0
