"""A local git clone of a GitHub repository as a source of entries (air-gapped ``add``).

The clone is identified by its ``origin`` remote and its HEAD commit, so its entries carry
the ids and revision pins they would get online; their files point at the URLs GitHub
serves them from, pinned by size and sha256 computed here from the committed blobs (not
the working tree, which may hold edits). :meth:`Clone.read` streams a blob so the caller
can put it in the weight cache: loading then needs no network.

The clone is untrusted: git is run only for plumbing reads (``rev-parse``, ``ls-tree``,
``cat-file``), with hooks and fsmonitor off and no other process started; nothing in the
repository is imported or executed.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from securitynet.errors import NotFoundError, SourceUnavailableError
from securitynet.records import EntryRecord, FileRef
from securitynet.scrapers.github_common import (
    LfsPointer,
    RepoRef,
    blob_url,
    checkpoint_format,
    file_url,
    find_id,
    is_checkpoint,
    parse_lfs_pointer,
    tree_entry_id,
)
from securitynet.settings import Settings

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
_GIT_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class CloneFile:
    """A checkpoint committed at HEAD: its path, blob id and size (of the blob itself)."""

    path: str
    blob: str
    size: int


@dataclass(frozen=True)
class Clone:
    root: Path
    repo: RepoRef
    commit: str
    files: tuple[CloneFile, ...]

    def read(self, file: CloneFile) -> Iterator[bytes]:
        """The committed bytes of ``file`` (for an LFS pointer: the object, when the clone
        has it in ``.git/lfs/objects``), in chunks."""
        pointer = self.lfs_pointer(file)
        if pointer is not None:
            obj = self.lfs_object(pointer)
            if obj is None:
                raise NotFoundError(f"{self.repo}/{file.path}: the LFS object is not in the clone", path=file.path)
            with open(obj, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    yield chunk
            return
        proc = subprocess.Popen(
            [*_git_base(self.root), "cat-file", "blob", file.blob],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        if proc.stdout is None:  # pragma: no cover - Popen with PIPE always has it
            raise SourceUnavailableError("git gave no output pipe")
        try:
            while chunk := proc.stdout.read(CHUNK):
                yield chunk
        finally:
            proc.stdout.close()
            if proc.wait(timeout=_GIT_TIMEOUT) != 0:
                raise SourceUnavailableError(f"git could not read {file.path} from {self.root}")

    def lfs_pointer(self, file: CloneFile) -> LfsPointer | None:
        if file.size > 1024:
            return None
        return parse_lfs_pointer(run_git(self.root, "cat-file", "blob", file.blob).stdout)

    def lfs_object(self, pointer: LfsPointer) -> Path | None:
        oid = pointer.oid
        path = self.root / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
        return path if path.is_file() else None


def _git_base(root: Path) -> list[str]:
    return [
        "git",
        "-c",
        f"safe.directory={root}",
        "-c",
        "core.fsmonitor=false",
        "-c",
        "core.hooksPath=/dev/null",
        "-C",
        str(root),
    ]


def run_git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run(
            [*_git_base(root), *args],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=_GIT_TIMEOUT,
            check=False,
        )
    except FileNotFoundError as exc:
        raise SourceUnavailableError("git is not installed; a local clone cannot be read") from exc
    except subprocess.TimeoutExpired as exc:
        raise SourceUnavailableError(f"git took too long reading {root}") from exc
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise SourceUnavailableError(
            f"git {args[0]} failed in {root}: {message[-1] if message else proc.returncode}",
            hint="Give the top folder of a git clone whose origin is a GitHub repository.",
        )
    return proc


def open_clone(path: Path) -> Clone:
    """The clone at ``path``: its GitHub repository (from ``origin``), HEAD and checkpoints."""
    root = path.expanduser().resolve()
    if not root.is_dir():
        raise NotFoundError(f"{path} is not a folder", path=str(path))
    top = Path(run_git(root, "rev-parse", "--show-toplevel").stdout.decode().strip())
    remote = run_git(top, "remote", "get-url", "origin").stdout.decode().strip()
    repo = RepoRef.from_remote(remote)
    commit = run_git(top, "rev-parse", "HEAD^{commit}").stdout.decode().strip()
    listing = run_git(top, "ls-tree", "-r", "-l", "-z", "--full-tree", commit).stdout
    files = []
    for line in listing.split(b"\0"):
        if not line:
            continue
        meta, _, name = line.partition(b"\t")
        mode, kind, blob, size = meta.split()
        rel = name.decode("utf-8", errors="replace")
        if kind != b"blob" or mode == b"120000" or not is_checkpoint(rel):
            continue
        files.append(CloneFile(rel, blob.decode(), int(size)))
    return Clone(top, repo, commit, tuple(files))


def iter_clone_records(clone: Clone, settings: Settings) -> Iterator[tuple[EntryRecord, CloneFile]]:
    """One entry per checkpoint committed at HEAD, with the file it is read from."""
    for file in clone.files:
        eid = find_id(tree_entry_id, clone.repo, file.path)
        if eid is None:
            log.warning("%s: %r cannot be an entry id; skipped", clone.repo, file.path)
            continue
        pointer = clone.lfs_pointer(file)
        if pointer is not None:
            url = file_url(settings.github_lfs_url, clone.repo, clone.commit, file.path)
            sha256, size, kind = pointer.oid, pointer.size, "lfs"
        else:
            url = file_url(settings.github_raw_url, clone.repo, clone.commit, file.path)
            digest = hashlib.sha256()
            for chunk in clone.read(file):
                digest.update(chunk)
            sha256, size, kind = digest.hexdigest(), file.size, "tree"
        ref = FileRef(
            url=url,
            filename=file.path.rsplit("/", 1)[-1],
            revision=clone.commit,
            size=size,
            sha256=sha256,
            format=checkpoint_format(file.path),
        )
        record = EntryRecord(
            id=eid,
            revision=clone.commit,
            upstream_url=blob_url(clone.repo, clone.commit, file.path),
            files=[ref],
            arch_resolution="unresolved",
            raw={
                "repo": str(clone.repo),
                "path": file.path,
                "blob": file.blob,
                "kind": kind,
                "architecture": {"status": "unresolved", "reason": "a bare checkpoint: not matched"},
            },
        )
        yield record, file
