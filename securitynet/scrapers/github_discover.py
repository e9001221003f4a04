"""``securitynet discover github QUERY``: candidate repositories, never entries.

GitHub's search finds repositories that may publish image-classifier checkpoints; a
curator reviews the evidence and promotes the good ones with ``securitynet add github``
(or lists them in ``scrapers/github.yaml``). Nothing found here becomes an entry.

Per query: repository search (``/search/repositories``, by stars) and code search for
``hubconf.py`` files (``/search/code``), both within the search API's own rate limit.
Per candidate (core limit, conditional when repeated): its releases (checkpoint assets:
names and sizes) and its README (a paper link: arXiv, DOI, OpenReview, a proceedings
page). Candidates are ranked by evidence of weights, then stars.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from securitynet.errors import InvalidQueryError, NotFoundError, UpstreamError
from securitynet.scrapers.github_client import GithubClient
from securitynet.scrapers.github_common import RepoRef, is_checkpoint
from securitynet.settings import Settings

log = logging.getLogger(__name__)

_PAPER = re.compile(
    r"https?://(?:www\.)?(?:arxiv\.org/(?:abs|pdf)/[0-9]{4}\.[0-9]{4,5}|doi\.org/10\.[^\s)\]>\"']+|"
    r"openreview\.net/(?:forum|pdf)\?id=[A-Za-z0-9_-]+|proceedings\.[a-z.]+/[^\s)\]>\"']+|"
    r"openaccess\.thecvf\.com/[^\s)\]>\"']+|(?:www\.)?usenix\.org/conference/[^\s)\]>\"']+)",
    re.I,
)
MAX_FILES_SHOWN = 20


class DiscoveryCandidate(BaseModel):
    """One repository a search turned up, with what speaks for it."""

    repo: str
    url: str
    stars: int = 0
    licence: str | None = None
    description: str | None = None
    found_by: list[str] = Field(default_factory=list, description="'repositories' and/or 'code:hubconf.py'.")
    files: list[str] = Field(default_factory=list, description="Checkpoint release assets (tag/name, size).")
    hubconf: bool = False
    paper: str | None = None
    query: str = ""
    found_at: datetime | None = None

    @property
    def evidence_score(self) -> tuple[int, int]:
        return (len(self.files) + 5 * self.hubconf + 2 * bool(self.paper), self.stars)


def _licence(repo: dict[str, Any]) -> str | None:
    lic = repo.get("license")
    spdx = lic.get("spdx_id") if isinstance(lic, dict) else None
    return spdx.lower() if isinstance(spdx, str) and spdx != "NOASSERTION" else None


def _candidate(item: dict[str, Any], query: str, how: str) -> DiscoveryCandidate | None:
    name = item.get("full_name")
    if not isinstance(name, str):
        return None
    try:
        RepoRef.parse(name)
    except InvalidQueryError:  # an odd name we could not add anyway
        return None
    return DiscoveryCandidate(
        repo=name,
        url=str(item.get("html_url") or f"https://github.com/{name}"),
        stars=int(item.get("stargazers_count") or 0),
        licence=_licence(item),
        description=item.get("description"),
        found_by=[how],
        query=query,
    )


def discover(client: GithubClient, query: str, *, limit: int = 50, evidence: bool = True) -> list[DiscoveryCandidate]:
    """Up to ``limit`` candidates for ``query``, best evidence first."""
    found: dict[str, DiscoveryCandidate] = {}
    per_page = 100  # the most GitHub gives per page; iteration stops at `limit`
    for item in _take(client.iter_pages("search/repositories",
                                        {"q": query, "sort": "stars", "order": "desc", "per_page": per_page},
                                        resource="search", key="items"), limit):
        cand = _candidate(item, query, "repositories")
        if cand is not None:
            found.setdefault(cand.repo.lower(), cand)
    try:
        hits = client.iter_pages("search/code", {"q": f"{query} filename:hubconf.py", "per_page": per_page},
                                 resource="search", key="items")
        for hit in _take(hits, limit):
            repo = hit.get("repository") if isinstance(hit, dict) else None
            cand = _candidate(repo, query, "code:hubconf.py") if isinstance(repo, dict) else None
            if cand is None:
                continue
            known = found.setdefault(cand.repo.lower(), cand)
            known.hubconf = True
            if "code:hubconf.py" not in known.found_by:
                known.found_by.append("code:hubconf.py")
    except UpstreamError as exc:  # code search needs a token on github.com: say so, keep the rest
        log.warning("code search skipped: %s", exc)
    candidates = list(found.values())[:limit]
    if evidence:
        for cand in candidates:
            _gather(client, cand)
    now = datetime.now(timezone.utc)
    for cand in candidates:
        cand.found_at = now
    return sorted(candidates, key=lambda c: c.evidence_score, reverse=True)


def _take(items: Iterator[Any], n: int) -> Iterator[Any]:
    for i, item in enumerate(items):
        if i >= n:
            return
        yield item


def _gather(client: GithubClient, cand: DiscoveryCandidate) -> None:
    """Release assets that are checkpoints, and a paper link in the README."""
    try:
        for release in _take(client.iter_pages(f"repos/{cand.repo}/releases", {"per_page": 100}), 100):
            for asset in (release.get("assets") or []) if isinstance(release, dict) else []:
                name = str(asset.get("name") or "")
                if is_checkpoint(name) and len(cand.files) < MAX_FILES_SHOWN:
                    cand.files.append(f"{release.get('tag_name')}/{name} ({asset.get('size')} bytes)")
        readme = client.get_json(f"repos/{cand.repo}/readme", not_found_ok=True)
        if isinstance(readme, dict) and readme.get("encoding") == "base64":
            text = base64.b64decode(str(readme.get("content") or "")).decode("utf-8", errors="replace")
            match = _PAPER.search(text)
            cand.paper = match.group(0).rstrip(".,") if match else None
    except (NotFoundError, UpstreamError) as exc:
        log.info("%s: evidence incomplete (%s)", cand.repo, exc)


def store_candidates(candidates: list[DiscoveryCandidate], settings: Settings) -> Path:
    """Merge ``candidates`` into ``$SECURITYNET_HOME/discover/github.json`` (one record per
    repository; the latest evidence wins) and return the file's path."""
    path = settings.home / "discover" / "github.json"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stored = {}
    if not isinstance(stored, dict):
        stored = {}
    for cand in candidates:
        stored[cand.repo] = cand.model_dump(mode="json")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(sorted(stored.items())), indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
