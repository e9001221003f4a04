"""Pacing requests to the Hugging Face Hub by what the Hub says of its own limits.

The Hub limits each client per five-minute window, in separate buckets: ``api`` (listings,
model info), ``resolvers`` (file downloads, ``/resolve/`` URLs) and ``pages``. Every answer
carries the state of its bucket in the IETF draft headers::

    RateLimit: "api";r=488;t=212                  (requests remaining; seconds to the reset)
    RateLimit-Policy: "fixed window";"api";q=500;w=300

:class:`HubPacer` keeps one token bucket per Hub bucket. Until a header is seen, a bucket
does not pace. Each header sets the bucket's refill rate to what remains of the window
spread evenly over the time left (``r / t``), so a crawl slows down before it runs out
instead of after; when ``r`` reaches a small reserve the bucket pauses until the reset.
A 429 pauses the bucket for the time the Hub names (``RateLimit``'s ``t`` when ``r=0``,
else ``Retry-After``, else a short backoff); every thread waits for it, then the crawl
resumes. Other buckets are not held up: a spent ``resolvers`` window does not stop listing
pages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

#: Requests kept back from each window for other clients of the same account or address.
RESERVE = 2
#: The most requests a bucket sends at once after a quiet spell.
BURST = 8
#: A 429 that names no wait pauses this long.
DEFAULT_PAUSE = 5.0


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One ``RateLimit`` header: the bucket, requests remaining, seconds to the reset."""

    bucket: str
    remaining: int
    reset: float
    quota: int | None = None
    window: float | None = None


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimit | None:
    """The ``RateLimit`` / ``RateLimit-Policy`` headers of a Hub answer, or None."""
    from huggingface_hub.utils import parse_ratelimit_headers

    info = parse_ratelimit_headers(headers)
    if info is None:
        return None
    return RateLimit(
        bucket=info.resource_type,
        remaining=info.remaining,
        reset=float(info.reset_in_seconds),
        quota=info.limit,
        window=float(info.window_seconds) if info.window_seconds is not None else None,
    )


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (the delay form; the Hub does not send dates)."""
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def bucket_of(url: str) -> str:
    """The Hub bucket a URL counts against."""
    if "/resolve/" in url:
        return "resolvers"
    if "/api/" in url:
        return "api"
    return "pages"


@dataclass
class _Bucket:
    name: str
    rate: float | None = None  # tokens a second; None: no limit known
    tokens: float = float(BURST)
    capacity: float = float(BURST)
    stamp: float = 0.0  # when tokens was last brought up to date
    paused_until: float = 0.0
    in_flight: int = 0  # taken and not yet answered: the Hub's count may not hold them yet
    lock: threading.Lock = field(default_factory=threading.Lock)


class HubPacer:
    """Token buckets for the Hub's rate-limit buckets, shared by a crawl's threads.

    ``clock`` and ``sleep`` are injectable for tests; ``waited`` sums the seconds threads
    spent waiting for a token or a pause (a crawl reports it).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock, self._sleep = clock, sleep
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self.waited = 0.0
        self.pauses = 0

    def _bucket(self, name: str) -> _Bucket:
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None:
                bucket = self._buckets[name] = _Bucket(name, stamp=self._clock())
            return bucket

    def acquire(self, name: str) -> float:
        """Take one request from bucket ``name``, waiting as long as its pace or a pause asks.
        Returns the seconds waited."""
        bucket = self._bucket(name)
        waited = 0.0
        while True:
            with bucket.lock:
                now = self._clock()
                if now < bucket.paused_until:
                    wait = bucket.paused_until - now
                elif bucket.rate is None:
                    break
                else:
                    elapsed = max(now - bucket.stamp, 0.0)
                    bucket.tokens = min(bucket.capacity, bucket.tokens + elapsed * bucket.rate)
                    bucket.stamp = now
                    if bucket.tokens >= 1.0 - 1e-9:  # rounding must not make a token unreachable
                        bucket.tokens = max(bucket.tokens - 1.0, 0.0)
                        break
                    wait = (1.0 - bucket.tokens) / bucket.rate if bucket.rate > 0 else 1.0
                    wait = max(wait, 1e-3)
            self._sleep(wait)
            waited += wait
        with bucket.lock:
            bucket.in_flight += 1
        if waited:
            with self._lock:
                self.waited += waited
        return waited

    def release(self, name: str) -> None:
        """The request taken from bucket ``name`` was answered (or failed)."""
        bucket = self._bucket(name)
        with bucket.lock:
            bucket.in_flight = max(bucket.in_flight - 1, 0)

    def observe(self, name: str, headers: Mapping[str, str]) -> RateLimit | None:
        """Fit the pace of a bucket to the ``RateLimit`` headers of an answer from it."""
        info = parse_rate_limit(headers)
        if info is None:
            return None
        bucket = self._bucket(info.bucket or name)
        with bucket.lock:
            now = self._clock()
            reset = max(info.reset, 1.0)
            # what is left to send: the remaining quota less the reserve and the requests
            # already on their way (sent before this answer; not all counted in it)
            usable = max(info.remaining - RESERVE - bucket.in_flight, 0)
            if info.remaining <= RESERVE:  # what is left is the reserve: wait for the next window
                bucket.paused_until = max(bucket.paused_until, now + reset)
                if info.quota and info.window:  # then go at the pace a whole window allows
                    bucket.rate = max(info.quota - RESERVE, 1) / info.window
                    bucket.capacity = float(max(1, min(BURST, info.quota - RESERVE)))
                bucket.tokens, bucket.stamp = bucket.capacity, bucket.paused_until  # a new window
                return info
            else:
                first = bucket.rate is None
                bucket.rate = max(usable, 1) / reset
                bucket.capacity = float(max(1, min(BURST, usable)))
                known = bucket.capacity if first else bucket.tokens
                bucket.tokens = min(known, bucket.capacity, float(usable))
            bucket.stamp = max(bucket.stamp, now)
        return info

    def throttled(self, name: str, headers: Mapping[str, str]) -> float:
        """A 429 from bucket ``name``: pause the bucket for as long as the Hub says; returns
        the pause in seconds (every thread that takes from the bucket waits it out)."""
        info = parse_rate_limit(headers)
        waited = retry_after(headers)
        if info is not None and info.remaining == 0:
            pause = info.reset
        else:
            pause = waited if waited is not None else DEFAULT_PAUSE
        bucket = self._bucket(info.bucket if info is not None else name)
        with bucket.lock:
            now = self._clock()
            start_new = bucket.paused_until <= now
            bucket.paused_until = max(bucket.paused_until, now + pause)
            if info is not None and info.remaining == 0 and info.quota and info.window:
                bucket.rate = max(info.quota - RESERVE, 1) / info.window
                bucket.capacity = float(max(1, min(BURST, info.quota - RESERVE)))
                bucket.tokens, bucket.stamp = bucket.capacity, bucket.paused_until  # a new window
        if start_new:
            with self._lock:
                self.pauses += 1
            log.warning(
                "the Hub's %r rate limit is spent: pausing requests to it for %.0f s, then resuming",
                bucket.name,
                pause,
            )
        return pause
