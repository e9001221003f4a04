"""A small GitHub REST client: conditional requests, pagination, rate limits, retries.

- **Token** from ``SECURITYNET_GITHUB_TOKEN``, else ``GITHUB_TOKEN`` (read when the client is
  made); never logged. **Base URLs** are settings (GitHub Enterprise, mirrors, tests).
- **ETags**: every JSON answer is kept on disk with its ``ETag`` (``<cache>/api/github``);
  the next request for the same URL sends ``If-None-Match`` and a ``304 Not Modified``
  replays the stored body. GitHub does not count a 304 against the rate limit, so a
  re-sync of unchanged repositories costs no quota.
- **Pagination** follows ``Link: <...>; rel="next"``.
- **Rate limits**: a 403/429 with ``X-RateLimit-Remaining: 0`` (primary limit) waits until
  ``X-RateLimit-Reset``; one with ``Retry-After`` (secondary limit) waits that long, and
  one with neither at least a minute, as GitHub's documentation asks. A response that
  leaves ``X-RateLimit-Remaining`` at 0 makes the next request wait for the reset first.
  Search has its own, smaller limit (``X-RateLimit-Resource: search``), tracked apart.
- **Retries**: 5xx and broken connections are retried with exponential backoff
  (``http_retries``, ``http_backoff``). Every wait counts against one budget per client
  (``github_max_seconds``): a wait that would overrun it raises
  :class:`~securitynet.errors.RateLimitedError` (or ``UpstreamError``) at once instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin

from securitynet import __version__
from securitynet.errors import (
    MalformedUpstreamError,
    NotFoundError,
    RateLimitedError,
    SourceUnavailableError,
    UpstreamError,
)
from securitynet.settings import Settings

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

#: The most bytes one JSON answer (or small raw file) may have.
MAX_BODY_BYTES = 32 * 1024 * 1024
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
#: GitHub's documentation: without Retry-After, wait at least a minute after a secondary limit.
SECONDARY_DEFAULT_WAIT = 60.0


def github_token(settings: Settings) -> str | None:
    return settings.github_token or os.environ.get("GITHUB_TOKEN") or None


def offline_reason(settings: Settings) -> str | None:
    return "offline (SECURITYNET_OFFLINE)" if settings.offline else None


@dataclass
class RequestStats:
    """What a client sent and got back (per status), for reports and tests."""

    requests: int = 0
    not_modified: int = 0
    retries: int = 0
    waited: float = 0.0
    by_status: dict[int, int] = field(default_factory=dict)

    @property
    def unconditional(self) -> int:
        """Requests that GitHub answered with a full body (they cost rate limit)."""
        return self.requests - self.not_modified - sum(v for k, v in self.by_status.items() if k >= 400)


class EtagStore:
    """URL -> (ETag, body, Link header) on disk, one small JSON file per URL."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, url: str) -> Path:
        return self.root / f"{hashlib.sha256(url.encode()).hexdigest()}.json"

    def get(self, url: str) -> tuple[str, bytes, str | None] | None:
        try:
            data = json.loads(self._path(url).read_text())
            if data.get("url") != url:
                return None
            return str(data["etag"]), str(data["body"]).encode("latin-1"), data.get("link")
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, url: str, etag: str, body: bytes, link: str | None = None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(url)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"url": url, "etag": etag, "link": link, "body": body.decode("latin-1")}))
        os.replace(tmp, path)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: Mapping[str, str]
    url: str
    cached: bool  # replayed from the ETag store after a 304

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedUpstreamError(f"{self.url}: not JSON ({exc})", url=self.url) from exc

    @property
    def next_url(self) -> str | None:
        match = _LINK_NEXT.search(self.headers.get("Link", ""))
        return match.group(1) if match else None


class GithubClient:
    """GitHub's REST API (and its raw-file host) for one crawl. Not thread-safe."""

    def __init__(
        self,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        etags: EtagStore | None = None,
    ) -> None:
        import requests

        if (reason := offline_reason(settings)) is not None:
            raise SourceUnavailableError(f"GitHub cannot be used: {reason}")
        self.api_url = settings.github_api_url.rstrip("/")
        self.timeout = settings.http_timeout
        self.retries = settings.http_retries
        self.backoff = settings.http_backoff
        self.budget = settings.github_max_seconds
        self.session = session or requests.Session()
        self.sleep, self.clock = sleep, clock
        self.etags = etags if etags is not None else EtagStore(settings.resolved_cache_dir / "api" / "github")
        self.stats = RequestStats()
        self._token = github_token(settings)
        #: resource (core, search, ...) -> epoch second its quota resets, while exhausted
        self._exhausted: dict[str, float] = {}

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> GithubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests ---------------------------------------------------------------------------

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        url = path if path.startswith(("http://", "https://")) else f"{self.api_url}/{path.lstrip('/')}"
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        return url

    def _headers(self, url: str, etag: str | None, accept: str) -> dict[str, str]:
        headers = {
            "Accept": accept,
            "User-Agent": f"securitynet/{__version__}",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        if self._token and url.startswith(self.api_url):
            headers["Authorization"] = f"Bearer {self._token}"
        if etag:
            headers["If-None-Match"] = etag
        return headers

    def get(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        resource: str = "core",
        accept: str = "application/vnd.github+json",
        not_found_ok: bool = False,
    ) -> Reply | None:
        """GET ``path`` (relative to the API, or an absolute URL), conditionally when an
        answer is stored. Raises NotFoundError on 404 unless ``not_found_ok`` (then None)."""
        import requests

        url = self.url(path, params)
        stored = self.etags.get(url)
        failures = 0
        while True:
            self._wait_for_quota(resource, url)
            self.stats.requests += 1
            try:
                resp = self.session.get(
                    url, headers=self._headers(url, stored[0] if stored else None, accept), timeout=self.timeout
                )
                body = resp.content
            except (requests.ConnectionError, requests.Timeout) as exc:
                from securitynet.network import is_offline_error, no_network

                if is_offline_error(exc, url):  # no network: nothing to wait for
                    raise no_network(exc, url) from exc
                failures += 1
                self._retry_or_raise(url, failures, f"{type(exc).__name__}", None)
                continue
            status = resp.status_code
            self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
            headers = {k.title(): v for k, v in resp.headers.items()}
            self._note_quota(resource, headers)
            if status == 304 and stored is not None:
                self.stats.not_modified += 1
                if stored[2]:  # the page links of the stored answer (a 304 carries none)
                    headers["Link"] = stored[2]
                return Reply(200, stored[1], headers, url, cached=True)
            if status in (403, 429) and self._limited(resource, url, status, headers):
                continue
            if status >= 500:
                failures += 1
                self._retry_or_raise(url, failures, f"HTTP {status}", status)
                continue
            if status == 404:
                if not_found_ok:
                    return None
                raise NotFoundError(f"{url}: not found (404)", url=url, status=404)
            if status >= 400:
                raise UpstreamError(
                    f"{url}: HTTP {status}",
                    hint="A token (GITHUB_TOKEN) is needed for private repositories." if status in (401, 403) else None,
                    url=url,
                    status=status,
                )
            if len(body) > MAX_BODY_BYTES:
                raise MalformedUpstreamError(f"{url}: {len(body)} bytes, more than {MAX_BODY_BYTES}", url=url)
            etag = headers.get("Etag")
            if etag:
                self.etags.put(url, etag, body, headers.get("Link"))
            return Reply(status, body, headers, url, cached=False)

    def get_json(self, path: str, params: Mapping[str, Any] | None = None, **kw: Any) -> Any:
        reply = self.get(path, params, **kw)
        return None if reply is None else reply.json()

    def iter_pages(self, path: str, params: Mapping[str, Any] | None = None, *, resource: str = "core",
                   key: str | None = None, max_pages: int | None = None) -> Iterator[Any]:
        """Every item of a paginated listing (``key``: the list inside an object answer,
        as search's ``items``), following ``Link: rel="next"``."""
        url: str | None = self.url(path, params)
        pages = 0
        while url is not None:
            reply = self.get(url, resource=resource)
            if reply is None:  # pragma: no cover - get raises on 404 here
                return
            data = reply.json()
            items = data.get(key) if key is not None and isinstance(data, dict) else data
            if not isinstance(items, list):
                raise MalformedUpstreamError(f"{url}: expected a list of items", url=url)
            yield from items
            pages += 1
            if max_pages is not None and pages >= max_pages:
                return
            nxt = reply.next_url
            url = urljoin(url, nxt) if nxt else None

    # --- rate limits and retries --------------------------------------------------------------

    def _spend(self, seconds: float, url: str, why: str, *, limited: bool) -> None:
        if self.stats.waited + seconds > self.budget:
            error = RateLimitedError if limited else UpstreamError
            raise error(
                f"{url}: {why}; waiting {seconds:.0f} s more would pass the {self.budget:.0f} s budget",
                hint="Run it again later (or set GITHUB_TOKEN for a higher limit); what was read is kept.",
                url=url,
                retry_after=seconds,
            )
        log.info("%s: %s; waiting %.1f s", url, why, seconds)
        self.stats.waited += seconds
        self.sleep(seconds)

    def _note_quota(self, resource: str, headers: Mapping[str, str]) -> None:
        resource = headers.get("X-Ratelimit-Resource", resource)
        remaining, reset = headers.get("X-Ratelimit-Remaining"), headers.get("X-Ratelimit-Reset")
        if remaining is not None and remaining.strip() == "0" and reset and reset.strip().isdigit():
            self._exhausted[resource] = float(reset)
        else:
            self._exhausted.pop(resource, None)

    def _wait_for_quota(self, resource: str, url: str) -> None:
        reset = self._exhausted.get(resource)
        if reset is None:
            return
        wait = reset - self.clock()
        if wait > 0:
            self._spend(wait + 1, url, f"the {resource} rate limit is used up until its reset", limited=True)
        self._exhausted.pop(resource, None)

    def _limited(self, resource: str, url: str, status: int, headers: Mapping[str, str]) -> bool:
        """Handle a 403/429 that is a rate limit (wait, return True); False for a plain 403."""
        from securitynet.loader.download import parse_retry_after

        retry_after = parse_retry_after(headers.get("Retry-After"))
        remaining = (headers.get("X-Ratelimit-Remaining") or "").strip()
        if retry_after is not None:
            self.stats.retries += 1
            self._spend(retry_after, url, f"HTTP {status}, secondary rate limit (Retry-After)", limited=True)
            return True
        if remaining == "0":
            self.stats.retries += 1
            reset = headers.get("X-Ratelimit-Reset", "")
            wait = float(reset) - self.clock() + 1 if reset.strip().isdigit() else SECONDARY_DEFAULT_WAIT
            self._exhausted.pop(resource, None)
            self._spend(max(wait, 1.0), url, f"HTTP {status}, {resource} rate limit exhausted", limited=True)
            return True
        if status == 429:
            self.stats.retries += 1
            self._spend(SECONDARY_DEFAULT_WAIT, url, "HTTP 429 without Retry-After", limited=True)
            return True
        return False

    def _retry_or_raise(self, url: str, failures: int, why: str, status: int | None) -> None:
        if failures > self.retries:
            raise UpstreamError(
                f"{url}: {why} (gave up after {failures} attempts)",
                hint="Check the network, or run it again later.",
                url=url,
                status=status,
                transient=True,
            )
        self.stats.retries += 1
        delay = min(self.backoff * 2 ** (failures - 1), 8.0) * (0.5 + random.random() / 2)
        self._spend(delay, url, why, limited=False)
