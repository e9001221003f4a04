"""A loopback GitHub: the REST routes the github source uses, plus its raw, LFS and
release-download hosts, on one stdlib HTTP server (127.0.0.1, a random port, a thread).

Two kinds of answers, kept apart:

* **Recorded** (:meth:`FakeGithub.load_recorded`): the 15 real responses in
  ``../shared/fixtures/github/recorded-responses.json`` (PyGithub's replay data): repository
  info, releases and assets with a ``digest``, ``/rate_limit``, repository search with
  ``Link`` pagination, contents, and a 500 followed by a 200 for the same path. Served
  as recorded (status, headers, body), in order when a path was recorded twice; the
  ``https://api.github.com`` in ``Link`` headers is pointed at this server.
* **Built to GitHub's documented shapes**, for what the recording lacks
  (https://docs.github.com/en/rest): repositories made with :meth:`FakeGithub.add_repo`
  (``GET /repos/{o}/{r}`` and ``/branches/{b}`` with the recorded repository as template,
  ``/git/trees/{sha}?recursive=1``, ``/releases`` paginated with ``Link``, assets in the
  recorded asset's shape), raw files, Git LFS pointers and their media, code search
  (``/search/code``), ``304 Not Modified`` for a matching ``If-None-Match``, and injected
  faults: 403/429 with ``Retry-After`` (secondary limit), 403 with
  ``X-RateLimit-Remaining: 0`` and ``X-RateLimit-Reset`` (primary limit), 5xx.

Every request is logged (method, path, status, whether it was conditional).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

RECORDED = "fixtures/github/recorded-responses.json"


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    pattern: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    status: int
    conditional: bool


def _key(path: str) -> str:
    """A path with its query sorted (the order a client writes parameters in is free)."""
    parts = urlsplit(path)
    query = sorted(parse_qsl(parts.query, keep_blank_values=True))
    return parts.path + ("?" + urlencode(query) if query else "")


def _etag(body: bytes) -> str:
    return 'W/"' + hashlib.sha256(body).hexdigest()[:40] + '"'


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def lfs_pointer(body: bytes) -> bytes:
    return (
        "version https://git-lfs.github.com/spec/v1\n"
        f"oid sha256:{hashlib.sha256(body).hexdigest()}\nsize {len(body)}\n"
    ).encode()


class FakeGithub:
    def __init__(self, *, page_size: int = 2, rate_limit: int = 5000) -> None:
        self.routes: dict[str, list[Answer]] = {}
        self.faults: list[Fault] = []
        self.hits: list[Hit] = []
        self.page_size = page_size
        self.rate_limit = rate_limit
        self.remaining = rate_limit
        self.templates: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def settings_env(self) -> dict[str, str]:
        """SECURITYNET_GITHUB_* variables pointing every GitHub host at this server."""
        return {
            "SECURITYNET_GITHUB_API_URL": f"{self.url}/api",
            "SECURITYNET_GITHUB_RAW_URL": f"{self.url}/raw",
            "SECURITYNET_GITHUB_LFS_URL": f"{self.url}/lfs",
            "SECURITYNET_GITHUB_DOWNLOAD_URL": f"{self.url}/dl",
        }

    def __enter__(self) -> FakeGithub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- content ----------------------------------------------------------------------------

    def set(self, path: str, body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        """Serve ``body`` (JSON-encoded unless bytes) at ``path`` (API paths start ``/api``)."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.routes[_key(path)] = [Answer(status, raw, dict(headers or {}))]

    def load_recorded(self, shared_dir: Path) -> list[dict[str, Any]]:
        """Serve every recorded response under ``/api`` (a path recorded twice: in order)."""
        recorded = json.loads((shared_dir / RECORDED).read_text(encoding="utf-8"))
        for item in recorded:
            answer = Answer(int(item["status"]), json.dumps(item["body"]).encode(),
                            {str(k): str(v) for k, v in item["headers"].items() if k.lower() != "status"})
            self.routes.setdefault(_key("/api" + item["path"]), []).append(answer)
        for item in recorded:
            if item["path"] == "/repos/stellarcarbon/sorocarbon":
                self.templates["repo"] = item["body"]
            if item["path"].startswith("/repos/stellarcarbon/sorocarbon/releases/assets/"):
                self.templates["asset"] = item["body"]
            if item["path"] == "/repos/stellarcarbon/sorocarbon/releases/223668595":
                self.templates["release"] = item["body"]
        return list(recorded)

    def add_repo(
        self,
        full_name: str,
        files: Mapping[str, bytes],
        *,
        lfs: Mapping[str, bytes] | None = None,
        releases: Mapping[str, Mapping[str, bytes]] | None = None,
        digests: bool = True,
        branch: str = "main",
        licence: str | None = "MIT",
        stars: int = 7,
    ) -> str:
        """A repository at a new commit (returned): ``files`` in the tree, ``lfs`` files
        committed as LFS pointers (the objects served by the media host), ``releases``
        (tag -> asset name -> bytes; ``digests``: with GitHub's sha256 ``digest``)."""
        if "repo" not in self.templates:
            raise RuntimeError("load_recorded() first: built answers take the recorded shapes")
        owner, name = full_name.split("/")
        lfs = dict(lfs or {})
        commit = _sha(json.dumps([full_name, sorted(files), sorted(lfs), time.time_ns()]))
        info = copy.deepcopy(self.templates["repo"])
        info.update(name=name, full_name=full_name, default_branch=branch, stargazers_count=stars,
                    html_url=f"https://github.com/{full_name}")
        info["owner"]["login"] = owner
        info["license"] = None if licence is None else {**info["license"], "spdx_id": licence, "key": licence.lower()}
        self.set(f"/api/repos/{full_name}", info)
        self.set(f"/api/repos/{full_name}/branches/{branch}",
                 {"name": branch, "commit": {"sha": commit, "url": f"/repos/{full_name}/commits/{commit}"}})
        tree = []
        committed = {**files, **{p: lfs_pointer(b) for p, b in lfs.items()}}
        for path, body in sorted(committed.items()):
            blob = hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()  # git's blob id
            tree.append({"path": path, "mode": "100644", "type": "blob", "sha": blob, "size": len(body),
                         "url": f"/repos/{full_name}/git/blobs/{blob}"})
            self.set(f"/raw/{full_name}/{commit}/{path}", body, headers={"Content-Type": "text/plain"})
        for path, body in lfs.items():
            self.set(f"/lfs/{full_name}/{commit}/{path}", body, headers={"Content-Type": "application/octet-stream"})
        self.set(f"/api/repos/{full_name}/git/trees/{commit}?recursive=1",
                 {"sha": commit, "url": "", "tree": tree, "truncated": False})
        rel_items = []
        for i, (tag, assets) in enumerate((releases or {}).items()):
            release = copy.deepcopy(self.templates["release"])
            release.update(id=1000 + i, tag_name=tag, name=tag, draft=False,
                           html_url=f"https://github.com/{full_name}/releases/tag/{tag}")
            release["assets"] = []
            for j, (asset_name, body) in enumerate(assets.items()):
                asset = copy.deepcopy(self.templates["asset"])
                asset.update(id=5000 + 10 * i + j, name=asset_name, size=len(body),
                             content_type="application/octet-stream",
                             browser_download_url=f"https://github.com/{full_name}/releases/download/{tag}/{asset_name}")
                if digests:
                    asset["digest"] = "sha256:" + hashlib.sha256(body).hexdigest()
                else:
                    asset.pop("digest", None)
                release["assets"].append(asset)
                self.set(f"/dl/{full_name}/releases/download/{tag}/{asset_name}", body)
            rel_items.append(release)
        self._paginate(f"/api/repos/{full_name}/releases", {"per_page": "100"}, rel_items)
        return commit

    def _paginate(self, path: str, params: dict[str, str], items: list[Any], *, key: str | None = None) -> None:
        pages = [items[i : i + self.page_size] for i in range(0, len(items), self.page_size)] or [[]]
        for n, chunk in enumerate(pages, start=1):
            query = dict(params) if n == 1 else {**params, "page": str(n)}
            headers = {}
            if n < len(pages):
                headers["Link"] = (f'<{self.url}{path}?{urlencode({**params, "page": str(n + 1)})}>; rel="next", '
                                   f'<{self.url}{path}?{urlencode({**params, "page": str(len(pages))})}>; rel="last"')
            body = {"total_count": len(items), "incomplete_results": False, key: chunk} if key else chunk
            self.set(f"{path}?{urlencode(query)}", body, headers=headers)

    def set_search(self, kind: str, q: str, items: list[dict[str, Any]], **params: str) -> None:
        """``/search/{kind}?q=...`` answers (repositories or code), paginated like GitHub."""
        self._paginate(f"/api/search/{kind}", {"q": q, **params}, items, key="items")

    # --- faults -----------------------------------------------------------------------------

    def inject(self, pattern: str, status: int, *, times: int = 1, headers: Mapping[str, str] | None = None) -> None:
        self.faults.append(Fault(re.compile(pattern), status, times, dict(headers or {})))

    def count(self, *, status: int | None = None, conditional: bool | None = None, prefix: str = "") -> int:
        return sum(
            1 for h in self.hits
            if (status is None or h.status == status)
            and (conditional is None or h.conditional == conditional)
            and h.path.startswith(prefix)
        )

    # --- serving ----------------------------------------------------------------------------

    def answer(self, path: str, headers: Mapping[str, str]) -> tuple[Answer, bool]:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.pattern.search(path):
                    fault.times -= 1
                    body = json.dumps({"message": "You have exceeded a secondary rate limit."
                                       if fault.status in (403, 429) else "Server Error"}).encode()
                    return Answer(fault.status, body, dict(fault.headers)), False
            queue = self.routes.get(_key(path))
            if not queue:
                return Answer(404, b'{"message": "Not Found"}'), False
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
        conditional = "If-None-Match" in headers
        out = Answer(answer.status, answer.body, dict(answer.headers))
        if out.status == 200:
            etag = next((v for k, v in out.headers.items() if k.lower() == "etag"), None) or _etag(out.body)
            out.headers = {k: v for k, v in out.headers.items() if k.lower() != "etag"} | {"ETag": etag}
            if headers.get("If-None-Match") == etag:
                return Answer(304, b"", {"ETag": etag}), conditional
            if path.startswith("/api/") and not any(k.lower() == "x-ratelimit-remaining" for k in out.headers):
                with self._lock:
                    self.remaining = max(self.remaining - 1, 0)
                    out.headers.update({"X-RateLimit-Limit": str(self.rate_limit),
                                        "X-RateLimit-Remaining": str(self.remaining),
                                        "X-RateLimit-Reset": str(int(time.time()) + 3600),
                                        "X-RateLimit-Resource": "search" if "/search/" in path else "core"})
        link = next((k for k in out.headers if k.lower() == "link"), None)
        if link:
            out.headers[link] = out.headers[link].replace("https://api.github.com", f"{self.url}/api")
        return out, conditional


def _handler(fake: FakeGithub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # silence
            pass

        def do_GET(self) -> None:
            answer, conditional = fake.answer(self.path, {k: v for k, v in self.headers.items()})
            with fake._lock:
                fake.hits.append(Hit("GET", self.path, answer.status, conditional))
            self.send_response(answer.status)
            for key, value in answer.headers.items():
                self.send_header(key, value)
            if not any(k.lower() == "content-type" for k in answer.headers):
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if answer.status != 304:
                self.wfile.write(answer.body)

    return Handler
