"""``hf://owner/repo/path`` references: parsing, URL resolution and file metadata.

URLs are built with :func:`huggingface_hub.hf_hub_url` against the endpoint in
``HF_ENDPOINT`` (read when called, not when huggingface_hub was imported), and file
metadata comes from :func:`huggingface_hub.get_hf_file_metadata` (its retries off, ours on):
for an LFS file its ``etag`` is the sha256 of the content, which becomes a pin when the
catalogue has none (``securitynet show`` / ``load`` of a Hub entry records it first).
The body itself is fetched by :mod:`securitynet.loader.download` (resumable, verified,
into our own cache), not by ``hf_hub_download``: one code path for every source, and no
second cache to keep consistent.
"""

from __future__ import annotations

import os
import posixpath
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from securitynet.errors import NotFoundError, UnsafeCheckpointError, UpstreamError

if TYPE_CHECKING:
    from securitynet.records import FileRef

SCHEME = "hf://"
DEFAULT_ENDPOINT = "https://huggingface.co"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class HubFile:
    """A file in a Hub model repository."""

    repo_id: str
    filename: str
    revision: str | None = None

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.repo_id}/{self.filename}"

    def sibling(self, filename: str) -> HubFile:
        """Another file of the same repository at the same revision."""
        return HubFile(self.repo_id, filename, self.revision)


@dataclass(frozen=True)
class HubMetadata:
    commit: str | None
    sha256: str | None  # the LFS object id, when the file is stored in LFS
    size: int | None


def is_hub_url(url: str) -> bool:
    return url.startswith(SCHEME)


def parse_hub_url(url: str, *, revision: str | None = None) -> HubFile:
    """``hf://owner/repo[@rev]/path/in/repo`` -> :class:`HubFile` (``revision`` pins it)."""
    if not is_hub_url(url):
        raise ValueError(f"not an hf:// URL: {url!r}")
    parts = url[len(SCHEME) :].split("/")
    if len(parts) < 3 or not all(parts):
        raise UnsafeCheckpointError(f"malformed Hub URL {url!r} (expected hf://owner/repo/file)", url=url)
    owner, repo, rest = parts[0], parts[1], parts[2:]
    if "@" in repo:
        repo, _, url_rev = repo.partition("@")
        if revision and revision != url_rev:
            raise UnsafeCheckpointError(
                f"{url!r} names revision {url_rev!r} but the entry pins {revision!r}", url=url
            )
        revision = url_rev
    filename = "/".join(rest)
    check_repo_path(filename, what=url)
    return HubFile(f"{owner}/{repo}", filename, revision or None)


def check_repo_path(path: str, *, what: str, folder: str = "") -> str:
    """``folder/path`` normalised, after checking that ``path`` names a file inside ``folder``
    of a repository: relative, no ``..`` part, no backslash, NUL, drive letter or URL.
    Raises :class:`UnsafeCheckpointError`."""
    if (
        not path
        or path.startswith("/")
        or any(c in path for c in ("\\", "\x00"))
        or "://" in path
        or re.match(r"^[A-Za-z]:", path) is not None
        or ".." in path.split("/")
    ):
        raise UnsafeCheckpointError(
            f"{what}: file name {path!r} points outside its folder {folder or '/'!r}",
            path=path,
            folder=folder,
        )
    return posixpath.normpath(posixpath.join(folder, path))


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def resolve_url(file: HubFile) -> str:
    """The https URL of ``file`` on the current endpoint (``main`` when no revision is pinned)."""
    from huggingface_hub import hf_hub_url

    return hf_hub_url(file.repo_id, file.filename, revision=file.revision, endpoint=endpoint())


def request_headers() -> dict[str, str]:
    """Headers huggingface_hub would send (user agent; a token only if the user configured one)."""
    from huggingface_hub.utils import build_hf_headers

    return build_hf_headers(library_name="securitynet")


def file_metadata(
    file: HubFile,
    *,
    timeout: float,
    retries: int = 3,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> HubMetadata:
    """HEAD the file: commit it resolves to, LFS sha256 and size. 404 -> :class:`NotFoundError`.

    One retry layer (huggingface_hub's own is off): a 429, 5xx or timeout is tried again up
    to ``retries`` times (``backoff`` seconds, doubling; a 429's ``Retry-After`` when it
    names one); a Hub that cannot be reached at all (no name resolution, connection
    refused) is an :class:`UpstreamError` at once."""
    import httpx2
    from huggingface_hub import get_hf_file_metadata
    from huggingface_hub.errors import HfHubHTTPError

    url = resolve_url(file)
    failures = 0
    while True:
        try:
            meta = get_hf_file_metadata(
                url, timeout=timeout, endpoint=endpoint(), headers=request_headers(), retry_on_errors=False
            )
            break
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status == 404:
                raise NotFoundError(f"{file.uri} does not exist on the Hub", url=file.uri, status=404) from exc
            error = UpstreamError(f"Hub metadata request for {file.uri} failed: {exc}", url=file.uri, status=status)
            wait_for = _retry_after(exc.response) if status == 429 else None
            if status not in (408, 429) and (status is None or status < 500):
                raise error from exc
        except httpx2.ConnectError as exc:
            from securitynet.network import is_offline_error, no_network

            if is_offline_error(exc, url):
                raise no_network(exc, url) from exc
            raise UpstreamError(
                f"could not reach the Hub ({endpoint()}) for {file.uri}: {exc}",
                url=file.uri,
                hint="Check the network, or load with --offline from the cache.",
            ) from exc
        except (httpx2.TransportError, OSError) as exc:
            error, wait_for = UpstreamError(f"could not reach the Hub for {file.uri}: {exc}", url=file.uri), None
            error.__cause__ = exc
        failures += 1
        if failures > retries:
            raise error
        sleep(wait_for if wait_for is not None else min(backoff * 2 ** (failures - 1), 8.0))
    etag = (meta.etag or "").lower()
    return HubMetadata(
        commit=meta.commit_hash,
        sha256=etag if _SHA256_RE.match(etag) else None,
        size=meta.size,
    )


def _retry_after(response: object) -> float | None:
    value = getattr(response, "headers", {}).get("Retry-After")
    try:
        return min(max(float(value), 0.0), 120.0) if value is not None else None
    except ValueError:
        return None


def fallback_ref(ref: FileRef) -> FileRef | None:
    """The ``pytorch_model.bin`` beside a ``model.safetensors`` that does not exist
    (older Hub repositories have only the pickle-based file). Pins do not carry over."""
    if not is_hub_url(ref.url):
        return None
    head, _, name = ref.url.rpartition("/")
    if name != "model.safetensors":
        return None
    return ref.model_copy(
        update={
            "url": f"{head}/pytorch_model.bin",
            "filename": "pytorch_model.bin",
            "size": None,
            "sha256": None,
            "checksum": None,
            "checksum_algo": None,
            "format": None,
        }
    )
