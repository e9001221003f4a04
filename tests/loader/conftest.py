"""A loopback HTTP server for the loader tests: plain files and a Hugging Face Hub look-alike.

It serves bytes the tests create, supports ``Range`` / ``If-Range`` (so resumable download
is exercised for real), and can inject faults per path: a truncated body, an HTTP status
(429 with ``Retry-After``, 503), corrupted bytes, or a server that ignores ``Range``.
The Hub part answers ``/{repo}/resolve/{revision}/{file}`` like huggingface.co: LFS files
redirect to a CDN path with ``X-Linked-Etag`` (the sha256) / ``X-Linked-Size`` /
``X-Repo-Commit`` headers; small files are served directly with a git-style ETag.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.fakehub import StoppableServer


@dataclass
class Fault:
    """One injected misbehaviour, used up by the next GET of its path."""

    kind: str  # truncate | status | corrupt | ignore-range
    value: int = 0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Served:
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    redirect: str | None = None

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'


@dataclass
class Hit:
    method: str
    path: str
    range: str | None
    status: int


class _Server(StoppableServer):
    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client hung up on purpose (a refused size, an aborted stream)
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class LoopbackServer:
    """Files by URL path, faults by URL path, and a log of every request."""

    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.faults: dict[str, list[Fault]] = {}
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        handler = self._handler()
        self.httpd = _Server(("127.0.0.1", 0), handler)  # stop() joins the handler threads
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def cdn_url(self) -> str:
        return f"http://localhost:{self.httpd.server_address[1]}"

    # --- content ------------------------------------------------------------------------

    def add(self, path: str, body: bytes, **headers: str) -> str:
        """Serve ``body`` at ``path``; returns its full URL."""
        self.files[path] = Served(body, dict(headers))
        return self.url + path

    def add_file(self, path: str, file: Path) -> str:
        return self.add(path, file.read_bytes())

    def add_hub_file(
        self,
        repo_id: str,
        filename: str,
        body: bytes,
        *,
        commit: str = "0" * 40,
        lfs: bool = True,
        revisions: tuple[str, ...] = ("main",),
    ) -> None:
        """Serve ``body`` as ``filename`` of Hub repository ``repo_id`` at ``commit`` (and
        at each name in ``revisions``)."""
        sha = hashlib.sha256(body).hexdigest()
        for rev in {commit, *revisions}:
            path = f"/{repo_id}/resolve/{rev}/{filename}"
            if lfs:
                cdn = f"/cdn/{sha}"
                self.files[cdn] = Served(body)
                self.files[path] = Served(
                    b"",
                    {"X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(body)), "X-Repo-Commit": commit},
                    redirect=cdn,
                )
            else:
                git = hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()
                self.files[path] = Served(body, {"ETag": f'"{git}"', "X-Repo-Commit": commit})

    def fault(self, path: str, kind: str, value: int = 0, **headers: str) -> None:
        self.faults.setdefault(path, []).append(Fault(kind, value, dict(headers)))

    def gets(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.method == "GET" and h.path == path]

    # --- serving ------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                return

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def do_GET(self) -> None:
                self._serve(head=False)

            def _record(self, status: int) -> None:
                with server._lock:
                    server.hits.append(Hit(self.command, self.path, self.headers.get("Range"), status))

            def _send(self, status: int, headers: dict[str, str], body: bytes = b"", *, length: int | None = None) -> None:
                self._record(status)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD" and body:
                    self.wfile.write(body)
                self.close_connection = True

            def _serve(self, *, head: bool) -> None:
                path = self.path.split("?", 1)[0]
                served = server.files.get(path)
                if served is None:
                    headers = {"X-Error-Code": "EntryNotFound"} if "/resolve/" in path else {}
                    self._send(404, headers, b"not found")
                    return
                fault = None
                if not head:
                    with server._lock:
                        queue = server.faults.get(path)
                        if queue:
                            fault = queue.pop(0)
                if fault is not None and fault.kind == "status":
                    self._send(fault.value, fault.headers, b"injected")
                    return
                if served.redirect is not None:
                    # The CDN is another host name for the same server, as on huggingface.co:
                    # huggingface_hub then reads the metadata from this very redirect.
                    self._send(302, {**served.headers, "Location": server.cdn_url + served.redirect})
                    return
                body = served.body
                if fault is not None and fault.kind == "corrupt":
                    pos = len(body) // 2
                    body = body[:pos] + bytes([body[pos] ^ 0xFF]) + body[pos + 1 :]
                headers = {"ETag": served.etag, "Accept-Ranges": "bytes", **served.headers}
                start = 0
                status = 200
                rng = self.headers.get("Range")
                if_range = self.headers.get("If-Range")
                honour = rng and (fault is None or fault.kind != "ignore-range") and (not if_range or if_range == headers["ETag"])
                if honour and rng is not None and rng.startswith("bytes="):
                    first, _, last = rng[6:].partition("-")
                    start = int(first)
                    end = int(last) if last else len(body) - 1
                    if start >= len(body):
                        self._send(416, {"Content-Range": f"bytes */{len(body)}"})
                        return
                    headers["Content-Range"] = f"bytes {start}-{end}/{len(body)}"
                    body = body[start : end + 1]
                    status = 206
                if fault is not None and fault.kind == "truncate":
                    # Announce the whole length, send only ``value`` bytes, hang up.
                    self._record(status)
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if not head:
                        self.wfile.write(body[: fault.value])
                        self.wfile.flush()
                    self.close_connection = True
                    return
                if head:
                    self._send(status, headers, b"", length=len(body))
                else:
                    self._send(status, headers, body)

        return Handler

    def start(self) -> LoopbackServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.stop()


@pytest.fixture
def http_server() -> Iterator[LoopbackServer]:
    server = LoopbackServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hf_endpoint(http_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> LoopbackServer:
    """The loopback server standing in for huggingface.co (``HF_ENDPOINT``)."""
    monkeypatch.setenv("HF_ENDPOINT", http_server.url)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    return http_server
