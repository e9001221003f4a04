"""Talking to the Hugging Face Hub: the listing, small files, file metadata.

:class:`HubClient` pages through ``/api/models`` (``expand=`` asks for every field the
annotators read, so a new model costs no request of its own), reads single small files
(README.md, config.json) and ``HEAD``s weight files for their LFS size and sha256. It uses
huggingface_hub's HTTP session, URL builder, headers (token, user agent) and
``ModelInfo`` record, and its own one retry layer with pacing by the Hub's rate-limit
headers (:mod:`securitynet.scrapers.hubpace`): no request is retried by two layers.
Errors come out as securitynet's, each saying whether a later try may succeed
(``transient``).

Where the Hub is, and who we are to it, follow huggingface_hub's rules, read when the
client is made (not at import): ``SECURITYNET_HF_ENDPOINT``, else ``HF_ENDPOINT``, else
huggingface_hub's default; ``SECURITYNET_HF_TOKEN``, else whatever huggingface_hub finds
(``HF_TOKEN``, a stored login).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from securitynet import __version__
from securitynet.errors import (
    MalformedUpstreamError,
    NotFoundError,
    RateLimitedError,
    SecurityNetError,
    SourceUnavailableError,
    UpstreamError,
)
from securitynet.scrapers.hubpace import HubPacer, bucket_of, parse_rate_limit, retry_after
from securitynet.settings import Settings

if TYPE_CHECKING:
    from huggingface_hub import ModelInfo

log = logging.getLogger(__name__)

#: Listing fields the hf source reads (``expand=``). ``model-index`` is asked for apart from
#: ``cardData`` because huggingface_hub drops a model-index it cannot parse from the card data.
LISTING_FIELDS: tuple[str, ...] = (
    "author",
    "sha",
    "lastModified",
    "createdAt",
    "private",
    "disabled",
    "gated",
    "downloads",
    "likes",
    "library_name",
    "pipeline_tag",
    "tags",
    "cardData",
    "model-index",
    "config",
    "siblings",
    "safetensors",
)

#: The most a small file (card, config) may weigh; a bigger one is not read.
MAX_FILE_BYTES = 4 * 1024 * 1024
#: Models a listing page asks for (the most the Hub gives per page).
PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class HubQuery:
    """One ``list_models`` filter: a pipeline tag and/or a tag (a library name is a tag)."""

    pipeline_tag: str | None = None
    filter: str | None = None

    def __str__(self) -> str:
        parts = [
            f"pipeline_tag={self.pipeline_tag}" if self.pipeline_tag else "",
            f"filter={self.filter}" if self.filter else "",
        ]
        return " ".join(p for p in parts if p) or "all models"


def resolve_endpoint(settings: Settings) -> str:
    """The Hub URL: our setting, else ``HF_ENDPOINT`` as it is now, else huggingface_hub's."""
    from huggingface_hub import constants

    endpoint = settings.hf_endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    return endpoint.rstrip("/")


def offline_reason(settings: Settings) -> str | None:
    """Why the Hub may not be used now, or None."""
    if settings.offline:
        return "offline (SECURITYNET_OFFLINE)"
    from huggingface_hub import constants

    if constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").lower() in (
        "1",
        "true",
        "yes",
        "on",
    ):
        return "offline (HF_HUB_OFFLINE)"
    return None


@dataclass(frozen=True, slots=True)
class FileMetadata:
    """What a ``HEAD`` of a repository file says: the commit it resolves to, its size, and
    its sha256 when it is stored in LFS (the LFS object id)."""

    commit: str | None
    size: int | None
    sha256: str | None


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class HubClient:
    """Listing and small-file reads against one Hub endpoint. Safe to share between threads.

    One retry layer, ours: requests go through huggingface_hub's HTTP session (its headers,
    token, user agent) but never through its retrying helpers. Each request

    * waits for its Hub bucket (:class:`~securitynet.scrapers.hubpace.HubPacer`);
    * on a 429, pauses that bucket for as long as the Hub says and asks again, for up to
      ``hf_max_wait`` seconds of pauses in all (then :class:`RateLimitedError`);
    * on a 5xx, a timeout or a broken connection, tries again after ``http_backoff``
      seconds (doubling, at most 8 s), at most ``http_retries`` times and within
      ``2 * http_timeout`` seconds in all (rate-limit pauses apart);
    * when the Hub cannot be reached at all (no name resolution, no route, connection
      refused) before it ever answered, or after a whole retry sequence, raises
      :class:`SourceUnavailableError` at once, and so does every later request.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        pacer: HubPacer | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if (reason := offline_reason(settings)) is not None:
            raise SourceUnavailableError(f"the Hugging Face Hub cannot be used: {reason}")
        self.endpoint = resolve_endpoint(settings)
        self.token = settings.hf_token
        self.timeout = settings.http_timeout
        self.retries = settings.http_retries
        self.backoff = settings.http_backoff
        self.max_wait = settings.hf_max_wait
        self.pacer = pacer or HubPacer(sleep=sleep)
        self._sleep = sleep
        self._headers: dict[str, str] | None = None  # built once: it resolves the token
        self._answered = False  # the Hub answered once: a connect error is no longer "no network"
        self._down: SourceUnavailableError | None = None
        self.requests = 0

    def _request_headers(self) -> dict[str, str]:
        from huggingface_hub.utils import build_hf_headers

        if self._headers is None:
            self._headers = build_hf_headers(
                token=self.token, library_name="securitynet", library_version=__version__
            )
        return dict(self._headers)

    # --- the one retry layer -----------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: Mapping[str, Any] | None = None,
        follow_redirects: bool = True,
        accept: Callable[[Any], bool] | None = None,
    ) -> Any:
        """One Hub request (an ``httpx2.Response``), paced and retried as the class says.

        ``accept(response)`` may refuse an answer that arrived whole in HTTP terms but is
        unusable (a JSON page cut short): it is then retried like a broken connection.
        """
        import httpx2

        if self._down is not None:
            raise self._down
        bucket = bucket_of(url)
        started = time.monotonic()
        deadline = started + 2 * self.timeout
        paused = 0.0
        failures = 0
        while True:
            error: SecurityNetError
            try:
                response = self._send(
                    bucket,
                    method,
                    url,
                    params=dict(params) if params is not None else None,
                    follow_redirects=follow_redirects,
                )
            except httpx2.ConnectError as exc:
                if not self._answered:
                    raise self._unreachable(exc) from exc
                error = UpstreamError(f"{what}: {_reason(exc)}", transient=True)
                error.__cause__ = exc
            except httpx2.TransportError as exc:  # timeouts, resets, a body cut short
                error = UpstreamError(f"{what}: {_reason(exc)}", transient=True)
                error.__cause__ = exc
            else:
                self._answered = True
                self.pacer.observe(bucket, response.headers)
                if response.status_code == 429:
                    pause = self.pacer.throttled(bucket, response.headers)
                    paused += pause
                    if paused > self.max_wait:
                        raise translate_status(response, what=what)
                    if pause >= self.backoff:
                        continue  # a real pause: acquire() waits it out; no try is spent
                    error = translate_status(response, what=what)  # "now": an ordinary retry
                elif response.status_code < 400 and (accept is None or accept(response)):
                    return response
                elif response.status_code < 400:
                    error = MalformedUpstreamError(
                        f"{what}: the answer was cut short", transient=True
                    )
                else:
                    error = translate_status(response, what=what)
                    if not getattr(error, "transient", False):
                        raise error
            failures += 1
            wait = min(self.backoff * 2 ** (failures - 1), 8.0)
            if failures > self.retries or time.monotonic() + wait > deadline + paused:
                if isinstance(error.__cause__, httpx2.ConnectError):
                    self._down = self._unreachable(error.__cause__)
                    raise self._down from error.__cause__
                raise error
            log.debug("%s failed (%s); trying again in %.2f s", what, error, wait)
            self._sleep(wait)

    def _send(self, bucket: str, method: str, url: str, **kwargs: Any) -> Any:
        """One HTTP exchange through huggingface_hub's session, paced by ``bucket``."""
        from huggingface_hub.utils import get_session

        self.pacer.acquire(bucket)
        self.requests += 1
        try:
            return get_session().request(
                method, url, headers=self._request_headers(), timeout=self.timeout, **kwargs
            )
        finally:
            self.pacer.release(bucket)

    def _unreachable(self, exc: Exception) -> SourceUnavailableError:
        return SourceUnavailableError(
            f"the Hugging Face Hub ({self.endpoint}) cannot be reached: {_reason(exc)}",
            hint="Check the network (or SECURITYNET_HF_ENDPOINT); "
            "SECURITYNET_OFFLINE=1 skips the sources that need it.",
            transient=True,
        )

    # --- listing -----------------------------------------------------------------------------

    def iter_models(
        self, query: HubQuery, *, limit: int | None = None, sort: str | None = "downloads"
    ) -> Iterator[ModelInfo]:
        """Every model ``query`` lists, each once, following the ``Link`` pagination.

        A page that fails, or arrives cut short (invalid JSON), is asked for again (the
        retry layer above); the pages already read are not.
        """
        from huggingface_hub import ModelInfo

        first: dict[str, Any] = {"expand": list(LISTING_FIELDS)}
        if query.pipeline_tag:
            first["pipeline_tag"] = query.pipeline_tag
        if query.filter:
            first["filter"] = query.filter
        if sort:
            first["sort"] = _SORT_KEYS.get(sort, sort)
        if limit is not None:
            first["limit"] = min(limit, PAGE_SIZE)
        params: dict[str, Any] | None = first
        url: str | None = f"{self.endpoint}/api/models"
        given: set[str] = set()
        what = f"listing {query}"
        while url is not None:
            response = self.request(
                "GET", url, what=what, params=params, accept=_parses_as_json_list
            )
            params = None  # the next link carries them
            url = response.links.get("next", {}).get("url")
            for item in response.json():
                try:
                    item.setdefault("siblings", None)
                    info = ModelInfo(**item)
                except (TypeError, ValueError, KeyError, AttributeError) as exc:
                    log.warning("%s: skipping a listed model that does not parse: %s", what, exc)
                    continue
                if info.id in given:
                    continue
                given.add(info.id)
                yield info
                if limit is not None and len(given) >= limit:
                    return

    # --- files -------------------------------------------------------------------------------

    def read_file(self, repo_id: str, filename: str, *, revision: str | None) -> bytes:
        """The bytes of one small file of a model repository at ``revision``.

        Raises NotFoundError (404), RateLimitedError (429 past ``hf_max_wait``),
        UpstreamError (other HTTP errors, timeouts, broken connections; ``transient`` says
        whether trying later may help), SourceUnavailableError (the Hub is unreachable).
        """
        from huggingface_hub import hf_hub_url

        url = hf_hub_url(repo_id, filename, revision=revision, endpoint=self.endpoint)
        what = f"{repo_id}/{filename}"
        body: bytes = self.request("GET", url, what=what).content
        if len(body) > MAX_FILE_BYTES:
            raise MalformedUpstreamError(
                f"{what} is {len(body)} bytes, more than {MAX_FILE_BYTES} allowed"
            )
        return body

    def read_json(self, repo_id: str, filename: str, *, revision: str | None) -> dict[str, Any]:
        body = self.read_file(repo_id, filename, revision=revision)
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedUpstreamError(f"{repo_id}/{filename} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise MalformedUpstreamError(
                f"{repo_id}/{filename} is a JSON {type(data).__name__}, not an object"
            )
        return data

    def file_metadata(self, repo_id: str, filename: str, *, revision: str | None) -> FileMetadata:
        """``HEAD`` one file: the commit, the size and (LFS files) the sha256, from the
        ``X-Linked-Size`` / ``X-Linked-Etag`` headers of the first answer (an LFS file's
        answer redirects to storage; the redirect is not followed)."""
        from huggingface_hub import hf_hub_url

        url = hf_hub_url(repo_id, filename, revision=revision, endpoint=self.endpoint)
        response = self.request("HEAD", url, what=f"{repo_id}/{filename}", follow_redirects=False)
        headers = response.headers
        etag = (headers.get("X-Linked-Etag") or headers.get("ETag") or "").strip('W/"').lower()
        size = headers.get("X-Linked-Size") or (
            None if response.is_redirect else headers.get("Content-Length")
        )
        return FileMetadata(
            commit=headers.get("X-Repo-Commit"),
            size=int(size) if size and size.isdigit() else None,
            sha256=etag if _SHA256.match(etag) else None,
        )


_SORT_KEYS = {
    "last_modified": "lastModified",
    "created_at": "createdAt",
    "trending_score": "trendingScore",
}


def _parses_as_json_list(response: Any) -> bool:
    try:
        return isinstance(response.json(), list)
    except ValueError:
        return False


def _reason(exc: BaseException) -> str:
    """A connection failure in words: the innermost cause, not the layers around it."""
    inner: BaseException = exc
    while inner.__cause__ is not None or inner.__context__ is not None:
        inner = inner.__cause__ or inner.__context__  # type: ignore[assignment]
    if isinstance(inner, socket.gaierror):
        return f"no network (the name does not resolve: {inner.strerror or inner})"
    if isinstance(inner, ConnectionRefusedError):
        return "connection refused"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def translate_status(response: Any, *, what: str) -> SecurityNetError:
    """An HTTP error answer -> ours, with ``status`` and ``transient``."""
    status = response.status_code
    if status == 404:
        return NotFoundError(f"{what}: not found (404)", status=404, transient=False)
    if status == 429:
        info = parse_rate_limit(response.headers)
        return RateLimitedError(
            f"{what}: the Hub is rate-limiting us (429)",
            status=429,
            transient=True,
            retry_after=info.reset if info is not None else retry_after(response.headers),
        )
    if status in (401, 403):
        return UpstreamError(
            f"{what}: access denied ({status}; gated or private)", status=status, transient=False
        )
    transient = status == 408 or status >= 500
    return UpstreamError(f"{what}: HTTP {status}", status=status, transient=transient)
