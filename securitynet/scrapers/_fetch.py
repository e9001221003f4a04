"""Reading one upstream document (a markdown table, a JSON file) from a path or a URL.

Importers take ``PATH|URL``: a local file (or folder) is read as is; a URL is fetched with
bounded retries (5xx, timeouts, dropped connections), a 429 becomes
:class:`RateLimitedError`, and offline (``SECURITYNET_OFFLINE``) a URL is refused with one
line and a hint, before any connection is tried.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

from securitynet.errors import (
    NotFoundError,
    RateLimitedError,
    SourceUnavailableError,
    UpstreamError,
)
from securitynet.settings import Settings

log = logging.getLogger(__name__)

_MAX_BYTES = 64 * 1024 * 1024


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def read_text(location: str, settings: Settings, *, what: str) -> str:
    """The text at ``location`` (a file path or an http(s) URL)."""
    if not is_url(location):
        path = Path(location).expanduser()
        if not path.is_file():
            raise NotFoundError(f"{what}: no file {path}", path=str(path))
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise UpstreamError(f"{what}: {path} is not UTF-8 text", path=str(path)) from exc
    return fetch_text(location, settings, what=what)


def fetch_text(url: str, settings: Settings, *, what: str) -> str:
    """GET ``url`` as UTF-8 text, retrying 5xx and network errors with backoff."""
    body = fetch_bytes(url, settings, what=what)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UpstreamError(f"{what}: {url} is not UTF-8 text", url=url) from exc


def fetch_bytes(url: str, settings: Settings, *, what: str) -> bytes:
    """GET ``url`` (at most 64 MiB), retrying 5xx and network errors with backoff."""
    if settings.offline:
        raise SourceUnavailableError(
            f"{what}: offline, not fetching {url}",
            hint="Give a local copy as PATH, or unset SECURITYNET_OFFLINE.",
            url=url,
        )
    attempts = settings.http_retries + 1
    request = urllib.request.Request(url, headers={"User-Agent": "securitynet"})
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(request, timeout=settings.http_timeout) as response:
                body: bytes = response.read(_MAX_BYTES + 1)
            if len(body) > _MAX_BYTES:
                raise UpstreamError(f"{what}: {url} is larger than {_MAX_BYTES} bytes", url=url)
            return body
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise NotFoundError(f"{what}: {url} not found (HTTP 404)", url=url) from exc
            if exc.code == 429 or (
                exc.code == 403 and exc.headers.get("X-RateLimit-Remaining") == "0"
            ):
                raise RateLimitedError(
                    f"{what}: {url}: HTTP {exc.code}", url=url, status=exc.code
                ) from exc
            if exc.code < 500 or attempt == attempts - 1:
                raise UpstreamError(
                    f"{what}: {url}: HTTP {exc.code}", url=url, status=exc.code
                ) from exc
            log.info("%s: HTTP %s from %s, retrying", what, exc.code, url)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            from securitynet.network import is_offline_error

            if attempt == attempts - 1 or is_offline_error(exc, url):  # no network: no retry
                reason = getattr(exc, "reason", exc)
                raise SourceUnavailableError(
                    f"{what}: cannot reach {url}: {reason}",
                    hint="Check the network, or give a local copy as PATH.",
                    url=url,
                ) from exc
            log.info("%s: %s from %s, retrying", what, exc, url)
        time.sleep(min(settings.http_backoff * 2**attempt, 8.0))
    raise UpstreamError(f"{what}: {url}: no answer after {attempts} attempts", url=url)
