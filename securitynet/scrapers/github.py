"""The ``github`` source: checkpoints published in GitHub repositories.

``securitynet sync --source github`` crawls the repositories listed in
``scrapers/github.yaml``; ``securitynet add github OWNER/REPO`` crawls one. Each repository
yields entries from

- **files committed in the tree** that are checkpoints (``.pt``, ``.pth``, ``.ckpt``,
  ``.safetensors``, ...), read from the git trees API at the default branch's current
  commit (the entry's revision); a Git LFS pointer is read and resolved to its object id
  (the file's sha256) and size, served from the LFS media host;
- **release assets** that are checkpoints, pinned by GitHub's ``digest`` (sha256) where it
  gives one, else by the sha256 prefix in names such as ``resnet20-4118986f.pt``;
- **``hubconf.py`` entrypoints**, read statically (:mod:`securitynet.scrapers.github_hubconf`)
  with the weight URL each one uses.

Ids: ``github:OWNER/REPO/PATH``, ``github:OWNER/REPO/releases/TAG/ASSET`` and
``github:OWNER/REPO/hubconf/ENTRYPOINT``. Nothing a repository holds is run. The
architecture of a bare state dict is not known from the listing: such entries are
catalogued with their files and marked unresolved until a curated file declares it or
their tensors are matched (``add`` from a local clone).

Every request is conditional once its answer is stored (ETags, see
:mod:`securitynet.scrapers.github_client`): a re-sync of unchanged repositories costs
only ``304 Not Modified`` answers, which GitHub does not count against the rate limit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from securitynet.errors import ConfigurationError, NotFoundError, RateLimitedError, UpstreamError
from securitynet.records import EntryRecord, FileRef
from securitynet.scrapers._common import hash_prefix
from securitynet.scrapers.base import SyncContext, Unchanged
from securitynet.scrapers.github_client import GithubClient, offline_reason
from securitynet.scrapers.github_common import (
    RepoRef,
    blob_url,
    checkpoint_format,
    file_url,
    find_id,
    is_checkpoint,
    parse_lfs_pointer,
    release_download_url,
    release_entry_id,
    tree_entry_id,
)
from securitynet.scrapers.github_hubconf import parse_hubconf
from securitynet.settings import Settings

log = logging.getLogger(__name__)

UNRESOLVED = "unresolved"
#: Committed checkpoints smaller than this are read: they may be Git LFS pointers.
POINTER_MAX = 1024


class GithubManifest(BaseModel):
    """``scrapers/github.yaml``: which repositories ``sync --source github`` crawls."""

    model_config = ConfigDict(extra="forbid")
    repositories: list[str] = Field(default_factory=list)
    tree: bool = True
    releases: bool = True
    hubconf: bool = True

    def repos(self) -> list[RepoRef]:
        return [RepoRef.parse(r) for r in self.repositories]


def load_manifest(options: Mapping[str, Any] | None = None) -> GithubManifest:
    """The manifest (``options["manifest"]``: another file; ``options["repositories"]``: a list)."""
    from securitynet.resources import resource_dir

    options = dict(options or {})
    path = Path(options.pop("manifest", None) or resource_dir("scrapers") / "github.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        data.update({k: v for k, v in options.items() if k in GithubManifest.model_fields})
        return GithubManifest.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigurationError(f"bad github source manifest ({path}): {exc}") from exc


def _licence(info: Mapping[str, Any]) -> str | None:
    lic = info.get("license")
    spdx = lic.get("spdx_id") if isinstance(lic, dict) else None
    return spdx.lower() if isinstance(spdx, str) and spdx and spdx != "NOASSERTION" else None


class RepoReader:
    """Reads one repository at one commit through a :class:`GithubClient`."""

    def __init__(self, client: GithubClient, settings: Settings, repo: RepoRef, *, ref: str | None = None) -> None:
        self.client, self.settings = client, settings
        info = client.get_json(f"repos/{repo}")
        if not isinstance(info, dict):
            raise UpstreamError(f"{repo}: unexpected repository answer")
        self.info = info
        self.repo = RepoRef.parse(str(info.get("full_name") or repo))
        branch = ref or str(info.get("default_branch") or "main")
        self.commit = branch if _is_sha(branch) else self._branch_commit(branch)
        self.common: dict[str, Any] = {"licence": _licence(info), "raw_repo": {
            "repo": str(self.repo), "stars": info.get("stargazers_count"), "description": info.get("description"),
        }}

    def _branch_commit(self, branch: str) -> str:
        data = self.client.get_json(f"repos/{self.repo}/branches/{quote(branch, safe='')}")
        sha = (data or {}).get("commit", {}).get("sha") if isinstance(data, dict) else None
        if not isinstance(sha, str) or not _is_sha(sha):
            raise UpstreamError(f"{self.repo}: branch {branch!r} has no commit")
        return sha

    def _record(self, eid: str, files: list[FileRef], *, kind: str, revision: str, upstream: str,
                **raw: Any) -> EntryRecord:
        return EntryRecord(
            id=eid,
            licence=self.common["licence"],
            revision=revision,
            upstream_url=upstream,
            files=files,
            arch_resolution=UNRESOLVED,
            tags=["github", kind],
            raw={**self.common["raw_repo"], "kind": kind, "commit": self.commit,
                 "architecture": {"status": UNRESOLVED, "reason": "a bare checkpoint: no architecture is declared"},
                 **raw},
        )

    # --- the tree ---------------------------------------------------------------------------

    def tree(self) -> list[dict[str, Any]]:
        data = self.client.get_json(f"repos/{self.repo}/git/trees/{self.commit}", {"recursive": "1"})
        if not isinstance(data, dict) or not isinstance(data.get("tree"), list):
            raise UpstreamError(f"{self.repo}: unexpected tree answer")
        if data.get("truncated"):
            log.warning("%s: GitHub truncated the tree listing; deep files may be missing", self.repo)
        return [e for e in data["tree"] if isinstance(e, dict) and e.get("type") == "blob"]

    def iter_tree_records(self, blobs: list[dict[str, Any]]) -> Iterator[EntryRecord]:
        for blob in blobs:
            path = str(blob.get("path") or "")
            if not is_checkpoint(path):
                continue
            eid = find_id(tree_entry_id, self.repo, path)
            if eid is None:
                log.warning("%s: %r cannot be an entry id; skipped", self.repo, path)
                continue
            size = int(blob.get("size") or 0)
            name = path.rsplit("/", 1)[-1]
            ref = FileRef(
                url=file_url(self.settings.github_raw_url, self.repo, self.commit, path),
                filename=name,
                revision=self.commit,
                size=size,
                format=checkpoint_format(path),
            )
            kind = "tree"
            if size <= POINTER_MAX:
                reply = self.client.get(ref.url, accept="*/*")
                pointer = parse_lfs_pointer(reply.body) if reply is not None else None
                if pointer is not None:
                    kind = "lfs"
                    ref = ref.model_copy(update={
                        "url": file_url(self.settings.github_lfs_url, self.repo, self.commit, path),
                        "size": pointer.size,
                        "sha256": pointer.oid,
                    })
            if ref.sha256 is None and (prefix := hash_prefix(name)):
                ref = ref.model_copy(update={"checksum": prefix, "checksum_algo": "sha256-prefix"})
            yield self._record(eid, [ref], kind=kind, revision=self.commit,
                               upstream=blob_url(self.repo, self.commit, path), path=path, blob=blob.get("sha"))

    # --- hubconf.py -------------------------------------------------------------------------

    def iter_hubconf_records(self, blobs: list[dict[str, Any]]) -> Iterator[EntryRecord]:
        if not any(b.get("path") == "hubconf.py" for b in blobs):
            return
        reply = self.client.get(file_url(self.settings.github_raw_url, self.repo, self.commit, "hubconf.py"),
                                accept="*/*", not_found_ok=True)
        if reply is None:
            return
        for ep in parse_hubconf(reply.body):
            eid = find_id(lambda r, n: f"github:{r}/hubconf/{n}", self.repo, ep.name)
            if eid is None or ep.url is None:
                log.info("%s hubconf.py %s: no single weight URL (%s)", self.repo, ep.name, ep.note)
                continue
            name = ep.url.rsplit("/", 1)[-1]
            prefix = hash_prefix(name)
            ref = FileRef(url=ep.url, filename=name, format=checkpoint_format(name),
                          checksum=prefix, checksum_algo="sha256-prefix" if prefix else None)
            yield self._record(
                eid, [ref], kind="hubconf", revision=self.commit,
                upstream=f"{blob_url(self.repo, self.commit, 'hubconf.py')}#L{ep.line}",
                entrypoint=ep.name, doc=ep.doc,
            )

    # --- releases ---------------------------------------------------------------------------

    def iter_release_records(self) -> Iterator[EntryRecord]:
        for release in self.client.iter_pages(f"repos/{self.repo}/releases", {"per_page": 100}):
            if not isinstance(release, dict) or release.get("draft"):
                continue
            tag = str(release.get("tag_name") or "")
            for asset in release.get("assets") or []:
                name = str(asset.get("name") or "")
                if not tag or not is_checkpoint(name):
                    continue
                eid = find_id(release_entry_id, self.repo, tag, name)
                if eid is None:
                    log.warning("%s: release asset %s/%s cannot be an entry id; skipped", self.repo, tag, name)
                    continue
                digest = str(asset.get("digest") or "")
                sha256 = digest.removeprefix("sha256:") if digest.startswith("sha256:") else None
                prefix = None if sha256 else hash_prefix(name)
                ref = FileRef(
                    url=release_download_url(self.settings.github_download_url, self.repo, tag, name),
                    filename=name,
                    size=asset.get("size"),
                    sha256=sha256,
                    checksum=prefix,
                    checksum_algo="sha256-prefix" if prefix else None,
                    format=checkpoint_format(name),
                )
                yield self._record(
                    eid, [ref], kind="release", revision=digest if sha256 else tag,
                    upstream=str(release.get("html_url") or ""), tag=tag, asset=name,
                    asset_id=asset.get("id"), updated_at=asset.get("updated_at"),
                )

    def iter_records(self, manifest: GithubManifest) -> Iterator[EntryRecord]:
        blobs = self.tree() if manifest.tree or manifest.hubconf else []
        if manifest.tree:
            yield from self.iter_tree_records(blobs)
        if manifest.hubconf:
            yield from self.iter_hubconf_records(blobs)
        if manifest.releases:
            yield from self.iter_release_records()


def _is_sha(value: str) -> bool:
    return len(value) == 40 and all(c in "0123456789abcdef" for c in value)


class GithubScraper:
    name = "github"
    needs_network = True

    def __init__(self, *, client: GithubClient | None = None) -> None:
        self.client = client

    def unavailable_reason(self, ctx: SyncContext) -> str | None:
        return offline_reason(ctx.settings)

    def iter_records(self, ctx: SyncContext) -> Iterator[EntryRecord | Unchanged]:
        manifest = load_manifest(ctx.options)
        client = self.client or GithubClient(ctx.settings)
        try:
            for repo in manifest.repos():
                try:
                    yield from RepoReader(client, ctx.settings, repo).iter_records(manifest)
                except RateLimitedError:
                    raise
                except NotFoundError as exc:  # gone upstream: its entries are marked removed
                    log.warning("%s: %s", repo, exc)
                except UpstreamError as exc:
                    if getattr(exc, "status", 0) is None:  # no connection at all: the others fail too
                        raise
                    # keep what the catalogue knows of it: one broken repository is not a removal
                    log.warning("%s: %s; its entries are kept as they were", repo, exc)
                    prefix = f"github:{repo}/".lower()
                    yield from (Unchanged(i) for i in ctx.known if i.lower().startswith(prefix))
            # entries of repositories added by hand (not in the manifest) are not this crawl's
            # to remove: they stay as they are
            crawled = {str(r).lower() for r in manifest.repos()}
            for eid in ctx.known:
                owner_repo = "/".join(eid.removeprefix("github:").split("/", 2)[:2]).lower()
                if owner_repo not in crawled:
                    yield Unchanged(eid)
            ctx.state["requests"] = client.stats.requests
            ctx.state["not_modified"] = client.stats.not_modified
        finally:
            if self.client is None:
                client.close()

    def iter_repo_records(self, repo: str, settings: Settings, *, ref: str | None = None) -> Iterator[EntryRecord]:
        """The entries of one repository (``add github OWNER/REPO``), at ``ref`` (a branch,
        tag or commit; default: the default branch's current commit)."""
        manifest = GithubManifest(repositories=[repo])
        client = self.client or GithubClient(settings)
        try:
            yield from RepoReader(client, settings, RepoRef.parse(repo), ref=ref).iter_records(manifest)
        finally:
            if self.client is None:
                client.close()
