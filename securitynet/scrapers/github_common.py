"""What the GitHub source's online and local-clone readers share: repository names,
entry ids, the URLs a file is fetched from, which files are checkpoints, LFS pointers.

Ids are ``github:OWNER/REPO/PATH`` for a file committed in the tree and
``github:OWNER/REPO/releases/TAG/ASSET`` for a release asset; the commit (or the release's
commit) is the entry's revision, stored beside the id.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from securitynet.errors import InvalidIdError, InvalidQueryError
from securitynet.ids import format_id

#: Files taken for checkpoints, by (lower-case) suffix; ``.bin`` only as transformers names it.
CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pth.tar", ".pt", ".pth", ".ckpt", ".safetensors")
CHECKPOINT_NAMES: frozenset[str] = frozenset({"pytorch_model.bin"})
#: A Git LFS pointer file is small text starting with this line.
LFS_PREFIX = b"version https://git-lfs.github.com/spec/v1"
_LFS_MAX = 1024
_OID = re.compile(rb"^oid sha256:([0-9a-f]{64})$", re.M)
_SIZE = re.compile(rb"^size ([0-9]+)$", re.M)
_PART = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True, slots=True)
class RepoRef:
    """``owner/repo`` on GitHub."""

    owner: str
    repo: str

    def __str__(self) -> str:
        return f"{self.owner}/{self.repo}"

    @classmethod
    def parse(cls, value: str) -> RepoRef:
        """``owner/repo`` (a trailing ``.git`` is dropped); InvalidQueryError otherwise."""
        parts = value.strip().strip("/").split("/")
        if len(parts) != 2 or not all(_PART.match(p) for p in parts) or parts[0].startswith("."):
            raise InvalidQueryError(f"not a GitHub repository: {value!r} (expected OWNER/REPO)", value=value)
        repo = parts[1].removesuffix(".git")
        if not repo or repo in (".", ".."):
            raise InvalidQueryError(f"not a GitHub repository: {value!r}", value=value)
        return cls(parts[0], repo)

    @classmethod
    def from_remote(cls, url: str) -> RepoRef:
        """The repository a git remote URL points at: ``https://github.com/o/r(.git)``,
        ``git@github.com:o/r.git``, ``ssh://git@github.com/o/r``. Other hosts are refused
        (their files would get ids of a GitHub repository they are not)."""
        url = url.strip()
        scp = re.match(r"^[A-Za-z0-9_.-]+@([A-Za-z0-9.-]+):(.+)$", url)
        if scp and "://" not in url:
            host, path = scp.group(1), scp.group(2)
        else:
            parts = urlsplit(url)
            host, path = parts.hostname or "", parts.path
        if host.lower() not in ("github.com", "www.github.com"):
            raise InvalidQueryError(
                f"the clone's origin {url!r} is not a github.com repository",
                hint="Entries of a local clone take the ids of its GitHub origin.",
                value=url,
            )
        return cls.parse(path)


def is_checkpoint(path: str) -> bool:
    name = path.rsplit("/", 1)[-1].lower()
    return name in CHECKPOINT_NAMES or name.endswith(CHECKPOINT_SUFFIXES)


def checkpoint_format(path: str) -> str:
    return "safetensors" if path.lower().endswith(".safetensors") else "pytorch"


def tree_entry_id(repo: RepoRef, path: str) -> str:
    """``github:owner/repo/path``; InvalidIdError for a path an id cannot hold."""
    return format_id("github", f"{repo}/{path}")


def release_entry_id(repo: RepoRef, tag: str, asset: str) -> str:
    return format_id("github", f"{repo}/releases/{tag}/{asset}")


def find_id(make: Callable[..., str], *args: object) -> str | None:
    """``make(*args)``, or None when the name cannot be an id (odd characters)."""
    try:
        return make(*args)
    except InvalidIdError:
        return None


def file_url(base: str, repo: RepoRef, commit: str, path: str) -> str:
    """``{base}/owner/repo/commit/path`` (raw files and LFS media share this shape)."""
    return f"{base.rstrip('/')}/{repo}/{commit}/{quote(path)}"


def blob_url(repo: RepoRef, commit: str, path: str) -> str:
    return f"https://github.com/{repo}/blob/{commit}/{quote(path)}"


def release_download_url(base: str, repo: RepoRef, tag: str, asset: str) -> str:
    return f"{base.rstrip('/')}/{repo}/releases/download/{quote(tag)}/{quote(asset)}"


@dataclass(frozen=True, slots=True)
class LfsPointer:
    oid: str  # sha256 of the real file
    size: int


def parse_lfs_pointer(data: bytes) -> LfsPointer | None:
    """The object a Git LFS pointer file names, or None if ``data`` is not a pointer."""
    if len(data) > _LFS_MAX or not data.startswith(LFS_PREFIX):
        return None
    oid, size = _OID.search(data), _SIZE.search(data)
    if oid is None or size is None:
        return None
    return LfsPointer(oid.group(1).decode(), int(size.group(1)))
