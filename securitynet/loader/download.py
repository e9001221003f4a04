"""Fetching a :class:`~securitynet.records.FileRef` into the cache, verified against its pins.

:func:`fetch` is the one way a file gets into the cache from the network:

1. resolve the reference (``hf://`` through :mod:`securitynet.loader.hub`, or a plain URL)
   and compute its cache key (``url@revision``);
2. a cached blob whose recorded digests satisfy the pins is returned as is (the reader
   re-hashes it before use); offline, a miss is :class:`~securitynet.errors.OfflineError`
   and the network is never touched;
3. otherwise the file is downloaded into ``partial/`` with :func:`http_download`, which
   resumes with ``Range`` (guarded by ``If-Range``), retries with exponential backoff and
   honours ``Retry-After``; the finished file is hashed and checked against the pins
   (size, sha256, a sha256 prefix, sha1, md5), and only then moved into the blob store.

A file that fails its pins is deleted, never used. A failure after a resumed download is
retried once from scratch (the two halves may come from different upstream versions).
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from securitynet.errors import (
    IntegrityError,
    NotFoundError,
    OfflineError,
    RateLimitedError,
    UnsupportedEntryError,
    UpstreamError,
)
from securitynet.loader import hub
from securitynet.loader.cache import KNOWN_ALGOS, Cache, CacheRecord, hash_file, key_for
from securitynet.network import check_reachable, is_offline_error, no_network

if TYPE_CHECKING:
    import requests

    from securitynet.records import FileRef
    from securitynet.settings import Settings

log = logging.getLogger(__name__)

CHUNK = 64 * 1024


# --- pins ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pins:
    """What the catalogue says a file must be: its size and digests (full or prefix)."""

    size: int | None = None
    digests: dict[str, str] = field(default_factory=dict)  # algo -> full hex
    prefixes: dict[str, str] = field(default_factory=dict)  # algo -> hex prefix

    @classmethod
    def from_ref(cls, ref: FileRef) -> Pins:
        """Pins of the file at ``ref.url`` itself.

        For ``format="zip"`` the upstream ``checksum`` covers the single file inside the
        archive (imgclsmob's convention: the sha1 of the extracted ``.pth``), so it is not
        a pin of the download; see :func:`member_pins`.
        """
        digests: dict[str, str] = {}
        prefixes: dict[str, str] = {}
        if ref.sha256:
            digests["sha256"] = ref.sha256
        if ref.checksum and ref.format != "zip":
            _add_checksum(ref, digests, prefixes)
        return cls(ref.size, digests, prefixes)

    @property
    def algos(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(("sha256", *self.digests, *self.prefixes)))

    @property
    def empty(self) -> bool:
        return self.size is None and not self.digests and not self.prefixes

    def merged(self, *, size: int | None = None, sha256: str | None = None) -> Pins:
        digests = dict(self.digests)
        if sha256 and "sha256" not in digests:
            digests["sha256"] = sha256
        return Pins(self.size if self.size is not None else size, digests, self.prefixes)

    def mismatch(self, size: int | None, digests: dict[str, str]) -> str | None:
        """Why a file with ``size`` and ``digests`` fails these pins, or None if it passes.
        A digest the caller did not compute counts as a failure (never silently skipped)."""
        if self.size is not None and size is not None and size != self.size:
            return f"size {size} bytes, expected {self.size}"
        for algo, want in self.digests.items():
            got = digests.get(algo)
            if got != want:
                return f"{algo} {(got or 'not computed')[:16]}..., expected {want[:16]}..."
        for algo, prefix in self.prefixes.items():
            got = digests.get(algo)
            if got is None or not got.startswith(prefix):
                return f"{algo} {(got or 'not computed')[:16]}..., expected a digest starting {prefix}"
        return None


def _add_checksum(ref: FileRef, digests: dict[str, str], prefixes: dict[str, str]) -> None:
    algo = (ref.checksum_algo or "").lower()
    value = (ref.checksum or "").lower()
    if not value or any(c not in "0123456789abcdef" for c in value):
        raise UnsupportedEntryError(f"checksum {ref.checksum!r} of {ref.url} is not hex", url=ref.url)
    if algo.endswith("-prefix"):
        base = algo.removesuffix("-prefix")
        if base not in KNOWN_ALGOS or len(value) < 8:
            raise UnsupportedEntryError(f"cannot check checksum {algo}:{value} of {ref.url}", url=ref.url)
        prefixes[base] = value
    elif algo in KNOWN_ALGOS:
        digests[algo] = value
    else:
        raise UnsupportedEntryError(
            f"unknown checksum algorithm {ref.checksum_algo!r} for {ref.url}",
            hint="Known: sha256, sha256-prefix, sha1, md5.",
            url=ref.url,
        )


def member_pins(ref: FileRef) -> Pins:
    """Pins of the file inside a ``format="zip"`` archive (its upstream ``checksum``)."""
    digests: dict[str, str] = {}
    prefixes: dict[str, str] = {}
    if ref.checksum:
        _add_checksum(ref, digests, prefixes)
    return Pins(None, digests, prefixes)


# --- retry policy -------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How :func:`http_download` retries. ``sleep`` is injectable so tests need not wait."""

    retries: int = 5
    timeout: float = 30.0
    base_delay: float = 0.5
    max_delay: float = 30.0
    #: A ``Retry-After`` longer than this is not waited out: RateLimitedError instead.
    max_retry_after: float = 120.0
    #: Seconds of waiting between attempts, all retries together, before giving up.
    max_waiting: float = 120.0
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(retries=settings.http_retries, timeout=settings.http_timeout)

    def backoff(self, attempt: int) -> float:
        delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)


class _Retry(Exception):
    """An attempt failed in a way worth retrying."""

    def __init__(
        self, reason: str, *, retry_after: float | None = None, status: int | None = None, received: int = 0
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.status = status
        self.received = received  # bytes this attempt added to the partial file


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError, IndexError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None


# --- HTTP ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadResult:
    size: int
    resumed: bool
    attempts: int


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total) from ``Content-Range: bytes a-b/total`` (or ``bytes */total``)."""
    if not value or not value.startswith("bytes "):
        return None, None
    span, _, total = value[6:].partition("/")
    first = int(span.split("-")[0]) if span and span != "*" and span.split("-")[0].isdigit() else None
    return first, int(total) if total.isdigit() else None


def http_download(
    url: str,
    part: Path,
    *,
    headers: dict[str, str] | None = None,
    expected_size: int | None = None,
    policy: RetryPolicy | None = None,
    description: str = "download",
    session: requests.Session | None = None,
) -> DownloadResult:
    """Download ``url`` into ``part``, resuming whatever ``part`` already holds.

    The validator (``ETag`` / ``Last-Modified``) of the response is kept beside ``part`` so
    that a later resume sends ``If-Range``: a server whose file changed answers 200 with the
    whole new file instead of splicing two versions. Raises :class:`NotFoundError` (404),
    :class:`RateLimitedError`, :class:`UpstreamError` and :class:`IntegrityError` (the
    server announces a size other than ``expected_size``; ``part`` is then deleted).
    """
    import requests

    policy = policy or RetryPolicy()
    own_session = session is None
    sess = session or requests.Session()
    validator_path = part.with_name(part.name + ".json")
    attempts = 0
    failures = 0
    waited = 0.0
    resumed = False
    try:
        while True:
            attempts += 1
            offset = part.stat().st_size if part.exists() else 0
            if expected_size is not None and offset > expected_size:
                log.info("partial download of %s is longer than expected; starting over", url)
                offset = _restart(part, validator_path)
            try:
                size, appended = _attempt(
                    sess, url, part, validator_path, offset, headers or {}, expected_size, policy, description
                )
            except _Retry as retry:
                # An attempt that moved the download forward resets the count: a flaky
                # connection that always makes progress finishes; a dead one gives up.
                failures = 0 if retry.received else failures + 1
                resumed = resumed or retry.received > 0
                if failures > policy.retries:
                    if retry.status == 429:
                        raise RateLimitedError(
                            f"{url}: still rate limited after {policy.retries} retries", url=url
                        ) from None
                    raise UpstreamError(
                        f"{url}: {retry.reason} (gave up after {attempts} attempts)",
                        hint="Check the network (a partial download is kept and resumed next time); "
                        "files already in the cache load with --offline.",
                        url=url,
                        status=retry.status,
                    ) from None
                if retry.retry_after is not None and retry.retry_after > policy.max_retry_after:
                    raise RateLimitedError(
                        f"{url}: server asks to wait {retry.retry_after:.0f} s",
                        url=url,
                        retry_after=retry.retry_after,
                    ) from None
                delay = retry.retry_after if retry.retry_after is not None else policy.backoff(failures or 1)
                if waited + delay > policy.max_waiting:
                    raise UpstreamError(
                        f"{url}: {retry.reason} (gave up after {attempts} attempts in "
                        f"{waited:.0f} s of waiting)",
                        hint="Check the network (a partial download is kept and resumed next time).",
                        url=url,
                        status=retry.status,
                    ) from None
                log.info("%s: %s; retrying in %.1f s", url, retry.reason, delay)
                policy.sleep(delay)
                waited += delay
                continue
            resumed = resumed or appended
            validator_path.unlink(missing_ok=True)
            return DownloadResult(size, resumed, attempts)
    finally:
        if own_session:
            sess.close()


def _restart(part: Path, validator_path: Path) -> int:
    part.unlink(missing_ok=True)
    validator_path.unlink(missing_ok=True)
    return 0


def _attempt(
    sess: requests.Session,
    url: str,
    part: Path,
    validator_path: Path,
    offset: int,
    headers: dict[str, str],
    expected_size: int | None,
    policy: RetryPolicy,
    description: str,
) -> tuple[int, bool]:
    """One GET. Returns (final size, whether the bytes were appended to a partial file)."""
    import requests

    req_headers = {**headers, "Accept-Encoding": "identity"}
    if offset:
        req_headers["Range"] = f"bytes={offset}-"
        with contextlib.suppress(OSError, ValueError):
            validator = json.loads(validator_path.read_text()).get("validator")
            if validator:
                req_headers["If-Range"] = validator
    try:
        resp = sess.get(url, headers=req_headers, stream=True, timeout=policy.timeout, allow_redirects=True)
    except (requests.ConnectionError, requests.Timeout) as exc:
        if is_offline_error(exc, url):  # no retry brings a network back
            raise no_network(exc, url) from exc
        raise _Retry(f"connection failed: {exc.__class__.__name__}") from exc
    with resp:
        status = resp.status_code
        if status == 416 and offset:
            _, total = _content_range(resp.headers.get("Content-Range"))
            if total is not None and total == offset:
                return offset, True
            _restart(part, validator_path)
            raise _Retry("requested range not satisfiable; starting over")
        if status == 429 or status >= 500:
            raise _Retry(
                f"HTTP {status}", retry_after=parse_retry_after(resp.headers.get("Retry-After")), status=status
            )
        if status == 404:
            raise NotFoundError(f"{url} does not exist (HTTP 404)", url=url, status=404)
        if status >= 400 or status not in (200, 206):
            raise UpstreamError(f"{url}: HTTP {status}", url=url, status=status)

        appending = status == 206
        if appending:
            first, total = _content_range(resp.headers.get("Content-Range"))
            if first != offset:
                _restart(part, validator_path)
                raise _Retry(f"server resumed at byte {first}, not {offset}")
        else:
            if offset:
                log.info("%s: server sent the whole file (no resume); starting over", url)
            offset = 0
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if expected_size is not None and total is not None and total != expected_size:
            _restart(part, validator_path)
            raise IntegrityError(
                f"{url}: upstream serves {total} bytes, the catalogue pins {expected_size}",
                url=url,
                expected_size=expected_size,
                actual_size=total,
            )
        validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
        if validator and not validator.startswith("W/"):
            validator_path.write_text(json.dumps({"url": url, "validator": validator}))

        received = 0
        try:
            with open(part, "ab" if appending else "wb") as out:
                for chunk in _progress(resp.iter_content(CHUNK), total, offset, description):
                    out.write(chunk)
                    received += len(chunk)
        except (requests.RequestException, OSError) as exc:
            raise _Retry(
                f"transfer interrupted after {offset + received} bytes: {exc.__class__.__name__}", received=received
            ) from exc
        size = offset + received
        if total is not None and size < total:
            raise _Retry(f"connection closed after {size} of {total} bytes", received=received)
        if total is not None and size > total:
            _restart(part, validator_path)
            raise _Retry(f"received {size} bytes, more than the announced {total}")
        return size, appending


def _progress(chunks: Iterator[bytes], total: int | None, offset: int, description: str) -> Iterator[bytes]:
    from securitynet.progress import track

    n = math.ceil((total - offset) / CHUNK) if total is not None else None
    return track(chunks, description=description, total=n)


# --- fetch into the cache -----------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    """A file in the cache. ``fresh``: hashed just now (no need to hash again before use)."""

    record: CacheRecord
    path: Path
    fresh: bool


def _satisfies(record: CacheRecord, pins: Pins) -> bool:
    digests = {"sha256": record.sha256, **record.digests}
    return pins.mismatch(record.size, digests) is None


def find_cached(cache: Cache, key: str, pins: Pins) -> CacheRecord | None:
    """The cached record of ``key`` if it satisfies ``pins`` (content not re-hashed here)."""
    record = cache.find(key)
    if record is not None and _satisfies(record, pins):
        return record
    if record is not None:
        log.info("cached copy of %s does not match the current pins; fetching again", key)
    return None


def check_network(ref: FileRef) -> None:
    """Raise :class:`~securitynet.errors.NoNetworkError` at once when the host serving
    ``ref`` does not resolve: offline, a load fails in a blink, not after a retry storm."""
    check_reachable(hub.endpoint() if hub.is_hub_url(ref.url) else ref.url)


def fetch(
    ref: FileRef,
    *,
    cache: Cache,
    offline: bool,
    revision: str | None = None,
    policy: RetryPolicy | None = None,
) -> Fetched:
    """``ref`` as a blob in ``cache``: from the cache, or downloaded and verified.

    ``revision`` is the entry's revision pin, used when ``ref`` has none of its own.
    """
    rev = ref.revision or revision
    hub_file = hub.parse_hub_url(ref.url, revision=rev) if hub.is_hub_url(ref.url) else None
    if hub_file is not None:
        rev = hub_file.revision
    key = key_for(hub_file.uri if hub_file else ref.url, rev)
    pins = Pins.from_ref(ref)
    name = ref.filename or ref.url.rstrip("/").rsplit("/", 1)[-1]

    cached = find_cached(cache, key, pins)
    if cached is not None:
        return Fetched(cached, cache.blob_path(cached.sha256), fresh=False)
    if offline:
        raise OfflineError(f"{ref.url} is not in the cache and securitynet is offline", url=ref.url)
    check_network(ref)

    with cache.lock(key):
        cached = find_cached(cache, key, pins)  # another process may have fetched it meanwhile
        if cached is not None:
            return Fetched(cached, cache.blob_path(cached.sha256), fresh=False)
        policy = policy or RetryPolicy()
        commit: str | None = None
        headers: dict[str, str] = {}
        if hub_file is not None:
            meta = hub.file_metadata(hub_file, timeout=policy.timeout)
            commit = meta.commit
            _check_upstream(ref.url, pins, meta.size, meta.sha256)
            pins = pins.merged(size=meta.size, sha256=meta.sha256)
            url = hub.resolve_url(hub_file)
            headers = hub.request_headers()
        else:
            url = ref.url
        if pins.empty and not member_pins(ref).digests:
            log.warning("%s has no size or hash pin; trusting what the server sends", ref.url)
        elif pins.empty:  # imgclsmob: the sha1 pins the .pth inside, checked when extracted
            log.info("%s is pinned by the digest of the file inside it", ref.url)

        # Content-addressed: the pinned bytes may already be here under another key.
        sha = pins.digests.get("sha256")
        if sha and cache.has_blob(sha):
            stored = cache.blob_path(sha)
            record = CacheRecord(key, sha, stored.stat().st_size, url=ref.url, revision=rev, commit=commit, filename=name)
            digests = hash_file(stored, pins.algos)
            if pins.mismatch(record.size, digests) is None:
                record = cache.put(stored, _with_digests(record, digests))
                return Fetched(record, stored, fresh=True)
            cache.discard(sha)

        part = cache.partial_path(key)
        for fresh_start in (False, True):
            if fresh_start:
                part.unlink(missing_ok=True)
            result = http_download(
                url, part, headers=headers, expected_size=pins.size, policy=policy, description=f"fetching {name}"
            )
            digests = hash_file(part, pins.algos)
            reason = pins.mismatch(result.size, digests)
            if reason is None:
                break
            part.unlink(missing_ok=True)
            if result.resumed and not fresh_start:
                log.warning("%s: resumed download fails its pins (%s); downloading it again whole", url, reason)
                continue
            raise IntegrityError(
                f"{ref.url}: downloaded file does not match the catalogue ({reason}); it was discarded",
                url=ref.url,
                reason=reason,
            )
        record = CacheRecord(
            key, digests["sha256"], result.size, url=ref.url, revision=rev, commit=commit, filename=name
        )
        record = cache.put(part, _with_digests(record, digests))
        log.info("fetched %s (%d bytes, sha256 %s)", ref.url, record.size, record.sha256[:16])
        return Fetched(record, cache.blob_path(record.sha256), fresh=True)


def store_local(
    ref: FileRef,
    chunks: Iterable[bytes],
    *,
    cache: Cache,
    revision: str | None = None,
) -> Fetched:
    """Put the bytes of ``ref`` read from a local copy (a git clone) into ``cache``, under
    the key a download of ``ref`` would have, after checking them against its pins.

    A later :func:`fetch` of ``ref`` then finds the file without touching the network.
    Raises :class:`IntegrityError` (the bytes are not the pinned file; nothing is stored).
    """
    rev = ref.revision or revision
    key = key_for(ref.url, rev)
    pins = Pins.from_ref(ref)
    if pins.empty:
        raise IntegrityError(f"{ref.url}: a local file is only cached against a size or hash pin", url=ref.url)
    name = ref.filename or ref.url.rstrip("/").rsplit("/", 1)[-1]
    with cache.lock(key):
        cached = find_cached(cache, key, pins)
        if cached is not None:
            return Fetched(cached, cache.blob_path(cached.sha256), fresh=False)
        tmp = cache.temp_file()
        try:
            size = 0
            with open(tmp, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    size += len(chunk)
            digests = hash_file(tmp, pins.algos)
            reason = pins.mismatch(size, digests)
            if reason is not None:
                raise IntegrityError(f"{ref.url}: the local copy does not match the catalogue ({reason})", url=ref.url, reason=reason)
            record = CacheRecord(key, digests["sha256"], size, url=ref.url, revision=rev, commit=rev, filename=name)
            record = cache.put(tmp, _with_digests(record, digests))
        finally:
            tmp.unlink(missing_ok=True)
    log.info("stored %s from a local copy (%d bytes)", ref.url, size)
    return Fetched(record, cache.blob_path(record.sha256), fresh=True)


def _with_digests(record: CacheRecord, digests: dict[str, str]) -> CacheRecord:
    from dataclasses import replace

    return replace(record, digests={a: d for a, d in digests.items() if a != "sha256"})


def _check_upstream(url: str, pins: Pins, size: int | None, sha256: str | None) -> None:
    """Fail before downloading when the Hub already says the file is not the pinned one."""
    want = pins.digests.get("sha256")
    if want and sha256 and want != sha256:
        raise IntegrityError(
            f"{url}: the Hub serves sha256 {sha256[:16]}..., the catalogue pins {want[:16]}...",
            url=url,
            reason="sha256",
        )
    if pins.size is not None and size is not None and pins.size != size:
        raise IntegrityError(
            f"{url}: the Hub serves {size} bytes, the catalogue pins {pins.size}",
            url=url,
            reason="size",
        )


def verified_path(cache: Cache, fetched: Fetched) -> Path:
    """The blob of ``fetched``, re-hashed unless it was hashed just now."""
    if fetched.fresh:
        return fetched.path
    return cache.open_verified(fetched.record)


def describe(fetched: Fetched) -> dict[str, Any]:
    r = fetched.record
    return {"url": r.url, "revision": r.revision, "commit": r.commit, "sha256": r.sha256, "size": r.size}
