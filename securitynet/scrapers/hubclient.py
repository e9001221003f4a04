"""Talking to the Hugging Face Hub, through huggingface_hub only.

:class:`HubClient` lists models with :meth:`HfApi.list_models` (``expand=`` asks for every
field the annotators read, so no request per model is needed for them) and reads single
small files (README.md, config.json) with huggingface_hub's own URL builder, headers
(token, user agent), retrying HTTP helper and error mapping. huggingface_hub's errors are
translated into securitynet's (``raise ... from``), each saying whether a later try may
succeed (``transient``).

Where the Hub is, and who we are to it, follow huggingface_hub's rules, read when the
client is made (not at import): ``SECURITYNET_HF_ENDPOINT``, else ``HF_ENDPOINT``, else
huggingface_hub's default; ``SECURITYNET_HF_TOKEN``, else whatever huggingface_hub finds
(``HF_TOKEN``, a stored login).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
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


def _transport_errors() -> tuple[type[Exception], ...]:
    import httpx2  # huggingface_hub's HTTP client

    return (httpx2.TransportError,)


class HubClient:
    """Listing and small-file reads against one Hub endpoint. Safe to share between threads."""

    def __init__(self, settings: Settings) -> None:
        from huggingface_hub import HfApi

        if (reason := offline_reason(settings)) is not None:
            raise SourceUnavailableError(f"the Hugging Face Hub cannot be used: {reason}")
        self.endpoint = resolve_endpoint(settings)
        self.token = settings.hf_token
        self.timeout = settings.http_timeout
        self.retries = settings.http_retries
        self.backoff = settings.http_backoff
        self.api = HfApi(
            endpoint=self.endpoint,
            token=self.token,
            library_name="securitynet",
            library_version=__version__,
        )
        self._headers: dict[str, str] | None = None  # built once: it resolves the token

    def _file_headers(self) -> dict[str, str]:
        from huggingface_hub.utils import build_hf_headers

        if self._headers is None:
            self._headers = build_hf_headers(
                token=self.token, library_name="securitynet", library_version=__version__
            )
        return dict(self._headers)

    # --- listing -----------------------------------------------------------------------------

    def iter_models(
        self, query: HubQuery, *, limit: int | None = None, sort: str | None = "downloads"
    ) -> Iterator[ModelInfo]:
        """Every model ``query`` lists, each once, following the ``Link`` pagination.

        huggingface_hub retries a page on 429 (honouring ``Retry-After``), 5xx and broken
        connections. A page that still fails, or arrives cut short (invalid JSON), ends
        huggingface_hub's iterator; the listing is then started again, up to
        ``http_retries`` times, skipping models already given.
        """
        from huggingface_hub.errors import HfHubHTTPError

        given: set[str] = set()
        transport = _transport_errors()
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                wait = min(self.backoff * 2 ** (attempt - 1), 30.0)
                log.warning(
                    "listing %s broke (%s); starting again in %.1f s (%d given so far)",
                    query,
                    last,
                    wait,
                    len(given),
                )
                time.sleep(wait)
            remaining = None if limit is None else max(limit - len(given), 0)
            if remaining == 0:
                return
            pages = self.api.list_models(
                pipeline_tag=query.pipeline_tag,
                filter=query.filter,
                sort=sort,  # type: ignore[arg-type]
                expand=list(LISTING_FIELDS),  # type: ignore[arg-type]
                limit=limit if attempt == 0 else None,  # a restart skips what it gave, so no cap
            )
            iterator = iter(pages)
            while True:
                try:
                    info = next(iterator)
                except StopIteration:
                    return
                except HfHubHTTPError as exc:
                    error = translate_http_error(exc, what=f"listing {query}")
                    # a 429 outlasted huggingface_hub's waits: starting the listing again
                    # would only ask more of a Hub that asked us to stop
                    transient = getattr(error, "transient", False)
                    if isinstance(error, RateLimitedError) or not transient:
                        raise error from exc
                    last = exc
                    break
                except transport as exc:
                    last = exc
                    break
                except (
                    ValueError,
                    KeyError,
                    TypeError,
                ) as exc:  # a page cut mid-stream, a malformed item
                    last = exc
                    break
                if info.id in given:
                    continue
                given.add(info.id)
                yield info
                if limit is not None and len(given) >= limit:
                    return
        if isinstance(last, HfHubHTTPError):
            raise translate_http_error(last, what=f"listing {query}") from last
        if isinstance(last, transport):
            raise UpstreamError(
                f"the Hub's listing ({query}) kept failing: {last}", transient=True
            ) from last
        raise MalformedUpstreamError(
            f"the Hub's listing ({query}) kept breaking: {last}", transient=True
        ) from last

    # --- files -------------------------------------------------------------------------------

    def read_file(self, repo_id: str, filename: str, *, revision: str | None) -> bytes:
        """The bytes of one small file of a model repository at ``revision``.

        Raises NotFoundError (404), RateLimitedError (429 after the retries),
        UpstreamError (other HTTP errors, timeouts, broken connections; ``transient`` says
        whether trying later may help).
        """
        from huggingface_hub import hf_hub_url
        from huggingface_hub.errors import HfHubHTTPError
        from huggingface_hub.utils import hf_raise_for_status, http_backoff

        url = hf_hub_url(repo_id, filename, revision=revision, endpoint=self.endpoint)
        headers = self._file_headers()
        what = f"{repo_id}/{filename}"
        try:
            response = http_backoff(
                "GET",
                url,
                headers=headers,
                timeout=self.timeout,
                max_retries=self.retries,
                base_wait_time=self.backoff,
                max_wait_time=max(self.backoff, 8.0),
            )
            hf_raise_for_status(response)
        except HfHubHTTPError as exc:
            raise translate_http_error(exc, what=what) from exc
        except _transport_errors() as exc:
            raise UpstreamError(f"{what}: {type(exc).__name__}: {exc}", transient=True) from exc
        body = response.content
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


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def translate_http_error(exc: Exception, *, what: str) -> SecurityNetError:
    """huggingface_hub's HTTP error -> ours, with ``status`` and ``transient``."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    headers = getattr(response, "headers", None)
    if status == 404:
        return NotFoundError(f"{what}: not found (404)", status=404, transient=False)
    if status == 429:
        return RateLimitedError(
            f"{what}: the Hub is rate-limiting us (429)",
            status=429,
            transient=True,
            retry_after=_retry_after(headers),
        )
    if status in (401, 403):
        return UpstreamError(
            f"{what}: access denied ({status}; gated or private)", status=status, transient=False
        )
    transient = status is None or status == 408 or status >= 500
    return UpstreamError(f"{what}: HTTP {status}", status=status, transient=transient)
