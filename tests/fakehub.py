"""A loopback Hugging Face Hub: the routes huggingface_hub uses, served from real recordings.

``FakeHub`` is a stdlib HTTP server on 127.0.0.1 (a random port, a thread) that answers

* ``GET /api/models?...`` - the listing, with ``pipeline_tag`` / ``filter`` / ``sort`` /
  ``limit`` / ``expand`` and GitHub-style ``Link: <...>; rel="next"`` pagination;
* ``GET /api/models/<owner>/<name>[/revision/<rev>]`` - model info (the full record);
* ``GET|HEAD /<owner>/<name>/resolve/<rev>/<file>`` - file resolution, with the
  ``X-Repo-Commit`` and ``ETag`` headers the Hub sends (and its ``X-Error-Code`` on 404);

and counts every request. Faults are injected per path: a status (429 with
``Retry-After``, 500, ...), a body cut short inside valid HTTP (truncated JSON), a
connection dropped mid-body, a stall.

Like the Hub, it can limit clients per fixed window in separate buckets (``api`` for
``/api/``, ``resolvers`` for ``/resolve/``; :meth:`FakeHub.limit`), announcing the state in
``RateLimit`` / ``RateLimit-Policy`` headers and answering 429 once a window is spent. A
weight file registered with :meth:`FakeHub.add_lfs` answers ``HEAD`` as an LFS file does:
a redirect carrying ``X-Linked-Size`` and ``X-Linked-Etag`` (the sha256). Stopping the hub
ends its stalled handlers and joins every handler thread.

:func:`hub_from_shared` fills one with ``../shared/fixtures/hf``: the real recorded
``google/vit-base-patch16-224`` model info, and one listing record per real card,
synthesised in that record's shape from the card's own front matter. Nothing from
``../shared`` is copied into the repository; it is read where it lies.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import json
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import yaml

VIT_ID = "google/vit-base-patch16-224"
DEFAULT_LISTING = (
    "id",
    "likes",
    "downloads",
    "tags",
    "pipeline_tag",
    "library_name",
    "createdAt",
    "modelId",
)


@dataclass
class Fault:
    pattern: re.Pattern[str]
    kind: str  # status | truncate | cut | stall
    times: int
    method: str | None = None
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0


@dataclass
class _Window:
    quota: int
    window: float
    start: float = 0.0
    used: int = 0


@dataclass
class Request:
    method: str
    path: str  # with the query string
    headers: Mapping[str, str] = field(default_factory=dict, compare=False)
    at: float = field(default=0.0, compare=False)  # time.monotonic() when it arrived
    status: int = field(default=0, compare=False)  # the status answered (0: none yet)

    @property
    def route(self) -> str:
        path = urlsplit(self.path).path
        if path == "/api/models":
            return "listing"
        if path.startswith("/api/models/"):
            return "model-info"
        if "/resolve/" in path:
            return "file"
        return "other"


class StoppableServer(ThreadingHTTPServer):
    """A threading HTTP server whose handler threads end with it. :meth:`stop` hangs up every
    open connection (a kept-alive client holds its handler thread in a read forever) and
    joins the threads: none outlives the test to write to a closed socket later."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: set[Any] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def stop(self) -> None:
        self.shutdown()
        with self._open_lock:
            still_open = list(self._open)
        for sock in still_open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.server_close()  # joins the handler threads


class FakeHub:
    """A loopback Hub serving ``models`` (repo id -> model-info record) and ``files``."""

    def __init__(self, *, page_size: int = 100) -> None:
        self.page_size = page_size
        self.models: dict[str, dict[str, Any]] = {}
        self.files: dict[tuple[str, str], bytes] = {}
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()  # open client connections, to end on stop
        self.lfs: dict[tuple[str, str], tuple[int, str]] = {}  # (repo, file) -> (size, sha256)
        self.limits: dict[str, _Window] = {}

    # --- content ------------------------------------------------------------------------------

    def add_model(
        self, record: Mapping[str, Any], files: Mapping[str, bytes | str | Mapping[str, Any]] = ()
    ) -> None:  # type: ignore[assignment]
        record = copy.deepcopy(dict(record))
        repo = record["id"]
        with self._lock:
            self.models[repo] = record
            for name, content in dict(files).items():
                self.files[(repo, name)] = _bytes(content)

    def set_file(self, repo: str, name: str, content: bytes | str | Mapping[str, Any]) -> None:
        with self._lock:
            self.files[(repo, name)] = _bytes(content)

    def add_lfs(self, repo: str, name: str, *, size: int, sha256: str) -> None:
        """Serve ``name`` of ``repo`` as an LFS file of ``size`` bytes with content ``sha256``."""
        with self._lock:
            self.lfs[(repo, name)] = (size, sha256)

    def add_lfs_weights(self) -> None:
        """Serve every listed ``*.safetensors`` / ``*.bin`` file as LFS, with a size and sha256
        derived from its repository and name (nothing serves their bytes)."""
        with self._lock:
            models = list(self.models.values())
        for record in models:
            for sibling in record.get("siblings") or []:
                name = sibling["rfilename"]
                if name.endswith((".safetensors", ".bin")):
                    digest = hashlib.sha256(f"{record['id']}/{name}".encode()).hexdigest()
                    self.add_lfs(
                        record["id"], name, size=1_000_000 + int(digest[:4], 16), sha256=digest
                    )

    def limit(self, bucket: str, *, quota: int, window: float) -> None:
        """Allow ``quota`` requests to ``bucket`` (api, resolvers) per fixed ``window`` seconds."""
        with self._lock:
            self.limits[bucket] = _Window(quota=quota, window=window)

    def _take_quota(self, path: str) -> tuple[bool, dict[str, str]]:
        """Count one request against its bucket: (allowed, RateLimit headers)."""
        bucket = "resolvers" if "/resolve/" in path else "api"
        with self._lock:
            window = self.limits.get(bucket)
            if window is None:
                return True, {}
            now = time.monotonic()
            if now >= window.start + window.window:
                window.start, window.used = now, 0
            allowed = window.used < window.quota
            window.used += allowed
            left = max(window.start + window.window - now, 0.0)
            remaining = window.quota - window.used
        return allowed, {
            "RateLimit": f'"{bucket}";r={remaining};t={math.ceil(left)}',
            "RateLimit-Policy": f'"fixed window";"{bucket}";q={window.quota};w={math.ceil(window.window)}',
        }

    def remove_model(self, repo: str) -> None:
        with self._lock:
            self.models.pop(repo)

    def new_commit(self, repo: str, **changes: Any) -> str:
        """Give ``repo`` a new sha (and ``changes`` to its record); return the sha."""
        with self._lock:
            record = self.models[repo]
            record.update(changes)
            record["sha"] = hashlib.sha1(f"{record['sha']}+1".encode()).hexdigest()
            return str(record["sha"])

    # --- faults and counts -----------------------------------------------------------------------

    def inject(
        self,
        pattern: str,
        *,
        kind: str = "status",
        status: int = 500,
        headers: Mapping[str, str] | None = None,
        body: bytes | str = b"",
        times: int = 1,
        method: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` requests whose path (with query) matches ``pattern`` badly."""
        fault = Fault(
            re.compile(pattern),
            kind,
            times,
            method,
            status,
            dict(headers or {}),
            _bytes(body),
            delay,
        )
        with self._lock:
            self.faults.append(fault)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if (
                    fault.times > 0
                    and (fault.method in (None, method))
                    and fault.pattern.search(path)
                ):
                    fault.times -= 1
                    return fault
        return None

    def count(
        self, route: str | None = None, *, where: Callable[[Request], bool] | None = None
    ) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (route is None or r.route == route) and (where is None or where(r))
            )

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    # --- serving ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake hub is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.block_on_close = True  # server_close() joins the handler threads
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fakehub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: stalled handlers end at once (without answering), every handler
        thread is joined, then the listening socket is closed."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()  # no new connections
            with self._lock:
                connections = list(self._connections)
            for connection in connections:  # kept-alive ones: their handlers wait to read
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            self._server.server_close()  # joins the handler threads (block_on_close)
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- routes ----------------------------------------------------------------------------------

    def listing(self, query: Mapping[str, list[str]]) -> tuple[list[dict[str, Any]], str | None]:
        pipeline = query.get("pipeline_tag", [None])[0]
        filters = query.get("filter", [])
        expand = query.get("expand", [])
        sort = query.get("sort", [None])[0]
        offset = int(query.get("cursor", ["0"])[0])
        size = min(int(query.get("limit", [self.page_size])[0]), 1000)
        with self._lock:
            models = list(self.models.values())
        chosen = [
            m
            for m in models
            if (pipeline is None or m.get("pipeline_tag") == pipeline)
            and all(f in (m.get("tags") or []) or f == m.get("library_name") for f in filters)
        ]
        key = {
            "downloads": "downloads",
            "likes": "likes",
            "createdAt": "createdAt",
            "lastModified": "lastModified",
        }.get(sort or "")
        chosen.sort(key=lambda m: m["id"])
        if key:
            chosen.sort(key=lambda m: m.get(key) or 0, reverse=True)
        page = chosen[offset : offset + size]
        fields = ("_id", "id", *expand) if expand else DEFAULT_LISTING
        items = [{k: m[k] for k in fields if k in m} for m in page]
        next_url = None
        if offset + size < len(chosen):
            params = {k: v for k, v in query.items() if k != "cursor"}
            params["cursor"] = [str(offset + size)]
            next_url = f"{self.url}/api/models?{urlencode(params, doseq=True)}"
        return items, next_url


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"
    server_version = "fakehub/1"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK cost 40 ms a response on a kept-alive connection
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.hub._lock:
            self.hub._connections.add(self.connection)

    def finish(self) -> None:
        with self.hub._lock:
            self.hub._connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # silence
        return

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    # --------------------------------------------------------------------------------------------
    def _serve(self, method: str) -> None:
        hub = self.hub
        if self.path.startswith("/_fakehub/"):  # control routes, for a hub in another process
            self._control()
            return
        request = Request(
            method,
            self.path,
            {k.lower(): v for k, v in self.headers.items()},
            at=time.monotonic(),
        )
        with hub._lock:
            hub.requests.append(request)
        fault = hub._take_fault(method, self.path)
        if fault is not None and fault.kind == "stall":
            if hub._stopping.wait(fault.delay):  # the hub stops: leave without answering
                self.close_connection = True
                return
            fault = None
        allowed, limit_headers = hub._take_quota(self.path)
        if fault is not None and fault.kind == "status":
            body = fault.body or json.dumps({"error": f"injected {fault.status}"}).encode()
            request.status = fault.status
            self._send(
                method,
                fault.status,
                body,
                {"Content-Type": "application/json", **limit_headers, **fault.headers},
            )
            return
        if not allowed:
            request.status = 429
            body = b'{"error":"You have exceeded our rate limit"}'
            self._send(method, 429, body, {"Content-Type": "application/json", **limit_headers})
            return
        status, body, headers = self._route(method)
        headers = {**headers, **limit_headers}
        request.status = status
        if fault is not None and fault.kind == "truncate":
            body = body[: max(1, len(body) // 2)]
        if fault is not None and fault.kind == "cut":
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(method, status, body, headers)

    def _control(self) -> None:
        hub = self.hub
        if self.path == "/_fakehub/reset":
            hub.reset_counts()
        routes = ("listing", "model-info", "file", "other")
        counts = {route: hub.count(route) for route in routes}
        self._send("GET", 200, json.dumps(counts).encode(), {"Content-Type": "application/json"})

    def _send(self, method: str, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    def _route(self, method: str) -> tuple[int, bytes, dict[str, str]]:
        hub = self.hub
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = parse_qs(parts.query)
        as_json = {"Content-Type": "application/json; charset=utf-8"}
        if path == "/api/models":
            items, next_url = hub.listing(query)
            headers = dict(as_json)
            if next_url:
                headers["Link"] = f'<{next_url}>; rel="next"'
            return 200, json.dumps(items).encode(), headers
        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?", path)
        if match:
            record = hub.models.get(match.group(1))
            if record is None:
                return (
                    404,
                    b'{"error":"Repository not found"}',
                    {**as_json, "X-Error-Code": "RepoNotFound"},
                )
            return 200, json.dumps(record).encode(), as_json
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if match:
            repo, rev, name = match.groups()
            record = hub.models.get(repo)
            if record is None:
                return (
                    404,
                    b'{"error":"Repository not found"}',
                    {**as_json, "X-Error-Code": "RepoNotFound"},
                )
            if rev not in (record.get("sha"), "main"):
                return (
                    404,
                    b'{"error":"Invalid rev id"}',
                    {**as_json, "X-Error-Code": "RevisionNotFound"},
                )
            commit = {"X-Repo-Commit": str(record.get("sha"))}
            lfs = hub.lfs.get((repo, name))
            if lfs is not None:  # LFS: the Hub redirects to storage, naming size and sha256
                size, digest = lfs
                return (
                    302,
                    b"",
                    {
                        **commit,
                        "X-Linked-Size": str(size),
                        "X-Linked-Etag": f'"{digest}"',
                        "ETag": f'"{digest}"',
                        "Location": f"{hub.url}/_lfs/{digest}",
                    },
                )
            content = hub.files.get((repo, name))
            if content is None:
                return (
                    404,
                    b'{"error":"Entry not found"}',
                    {**as_json, **commit, "X-Error-Code": "EntryNotFound"},
                )
            etag = '"' + hashlib.sha1(content).hexdigest() + '"'
            kind = "text/markdown; charset=utf-8" if name.endswith(".md") else "application/json"
            return 200, content, {"Content-Type": kind, "ETag": etag, **commit}
        return 404, b'{"error":"Not found"}', as_json


def _bytes(content: bytes | str | Mapping[str, Any]) -> bytes:
    if isinstance(content, bytes):
        return content
    if isinstance(content, str):
        return content.encode("utf-8")
    return json.dumps(content).encode("utf-8")


# --- filling a hub from ../shared -------------------------------------------------------------------

_FRONT = re.compile(r"\A\s*---[ \t]*\r?\n(.*?)^---[ \t]*$", re.S | re.M)
_ARCHS = (  # name fragment -> (transformers class, model_type), for synthesised trimmed configs
    ("swin", ("SwinForImageClassification", "swin")),
    ("beit", ("BeitForImageClassification", "beit")),
    ("convnext", ("ConvNextForImageClassification", "convnext")),
    ("deit", ("ViTForImageClassification", "vit")),
    ("mobilenet", ("MobileNetV2ForImageClassification", "mobilenet_v2")),
    ("efficientformer", ("EfficientFormerForImageClassification", "efficientformer")),
    ("van", ("VanForImageClassification", "van")),
    ("resnet", ("ResNetForImageClassification", "resnet")),
)


def card_metadata(text: str) -> dict[str, Any] | None:
    """The card's front matter as the Hub's ``cardData`` (None when it does not parse)."""
    match = _FRONT.match(text)
    if not match:
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return json.loads(json.dumps(data, default=str)) if isinstance(data, dict) else None


def _library(meta: Mapping[str, Any], tags: list[str]) -> str:
    lib = meta.get("library_name") or meta.get("library_tag")
    if isinstance(lib, str) and lib not in ("generic",):
        return lib
    for candidate in ("timm", "keras", "fastai", "tf"):
        if candidate in tags:
            return "keras" if candidate == "tf" else candidate
    return "transformers"


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, (str, int))]
    return []


def listing_record(repo: str, card: str, *, template: Mapping[str, Any]) -> dict[str, Any]:
    """A model-info record for ``repo`` in ``template``'s (a real record's) shape, from its card."""
    meta = card_metadata(card)
    meta_d = meta or {}
    tags = _as_list(meta_d.get("tags"))
    library = _library(meta_d, tags)
    digest = hashlib.sha1(f"{repo}\n{card}".encode()).hexdigest()
    tags = list(dict.fromkeys([*([library] if library not in tags else []), *tags]))
    tags += [f"dataset:{d}" for d in _as_list(meta_d.get("datasets"))]
    if isinstance(meta_d.get("license"), str):
        tags.append(f"license:{meta_d['license']}")
    tags += [
        f"arxiv:{a}"
        for a in dict.fromkeys(re.findall(r"arxiv\.org/(?:abs|pdf)/(\d{4}\.\d{4,5})", card))
    ]
    tags.append("region:us")
    record: dict[str, Any] = {
        k: copy.deepcopy(v) for k, v in template.items() if k not in ("spaces", "widgetData")
    }
    siblings = [".gitattributes", "README.md"]
    config: dict[str, Any] | None = None
    if library == "transformers":
        name = repo.lower()
        arch, model_type = next(
            (a for frag, a in _ARCHS if frag in name), ("ViTForImageClassification", "vit")
        )
        config = {"architectures": [arch], "model_type": model_type}
        siblings += ["config.json", "pytorch_model.bin"]
    elif library == "timm":
        siblings += ["config.json", "model.safetensors", "pytorch_model.bin"]
    elif library == "keras":
        siblings += ["saved_model.pb", "keras_metadata.pb", "variables/variables.index"]
    record.update(
        {
            "_id": digest[:24],
            "id": repo,
            "modelId": repo,
            "author": repo.split("/", 1)[0],
            "sha": digest,
            "lastModified": f"2023-02-{1 + int(digest[:2], 16) % 28:02d}T12:00:00.000Z",
            "createdAt": "2022-11-01T09:30:00.000Z",
            "pipeline_tag": meta_d.get("pipeline_tag") or "image-classification",
            "library_name": library,
            "tags": tags,
            "downloads": int(digest[2:8], 16) % 50_000,
            "likes": int(digest[8:10], 16) % 40,
            "gated": False,
            "disabled": False,
            "model-index": meta_d.get("model-index"),
            "siblings": [{"rfilename": s} for s in siblings],
            "transformersInfo": template.get("transformersInfo")
            if library == "transformers"
            else None,
        }
    )
    if meta is not None:
        record["cardData"] = meta
    else:
        record.pop("cardData", None)
    if config is not None:
        record["config"] = config
    else:
        record.pop("config", None)
    record.pop("safetensors", None)
    params = re.search(r"Params \(M\):\s*([0-9.]+)", card)
    if (
        library == "timm" and params
    ):  # timm cards state the count the Hub reads from model.safetensors
        total = round(float(params.group(1)) * 1e6)
        record["safetensors"] = {"parameters": {"F32": total}, "total": total}
    return record


def timm_config(model_name: str) -> dict[str, Any] | None:
    """The ``config.json`` timm pushes for ``model_name`` (``arch.tag``), from timm's installed
    registry of pretrained configs; None when timm does not know it."""
    try:
        from timm.models import get_pretrained_cfg
    except ImportError:
        return None
    cfg = get_pretrained_cfg(model_name)
    if cfg is None:
        return None
    pretrained = {
        k: v
        for k, v in cfg.to_dict().items()
        if v is not None and k not in ("url", "hf_hub_id", "architecture", "file")
    }
    architecture = cfg.architecture or model_name.split(".", 1)[0]
    config = {
        "architecture": architecture,
        "num_classes": cfg.num_classes,
        "pretrained_cfg": pretrained,
    }
    return json.loads(json.dumps(config))


def imagenet_labels() -> list[str]:
    """ImageNet-1k's class names (WordNet lemmas) from the files timm ships, read without
    importing timm (which imports torch); numbered placeholders when timm is absent."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        return [f"class {i}" for i in range(1000)]
    info = Path(next(iter(spec.submodule_search_locations))) / "data" / "_info"
    synsets = (info / "imagenet_synsets.txt").read_text().split()
    lemmas = dict(
        line.split("\t", 1)
        for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines()
    )
    return [lemmas[s] for s in synsets]


def vit_files() -> dict[str, Any]:
    """config.json / preprocessor_config.json of google/vit-base-patch16-224 (their published
    content; the labels are ImageNet-1k's lemmas)."""
    labels = imagenet_labels()
    config = {
        "architectures": ["ViTForImageClassification"],
        "model_type": "vit",
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "image_size": 224,
        "patch_size": 16,
        "num_channels": 3,
        "id2label": {str(i): name for i, name in enumerate(labels)},
        "label2id": {name: i for i, name in enumerate(labels)},
    }
    preprocessor = {
        "do_normalize": True,
        "do_resize": True,
        "feature_extractor_type": "ViTFeatureExtractor",
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "resample": 2,
        "size": 224,
    }
    return {"config.json": config, "preprocessor_config.json": preprocessor}


def shared_models(
    shared: Path, *, timm_configs: bool = False
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(record, files) for the recorded ViT and the 120 real cards under ``shared``."""
    hf = shared / "fixtures" / "hf"
    vit = json.loads((hf / "model-info" / "google--vit-base-patch16-224.json").read_text())
    card_data = vit.get("cardData") or {}
    vit_card = (
        "---\n"
        + yaml.safe_dump(card_data, sort_keys=False)
        + "---\n\n# Vision Transformer (base-sized model)\n"
    )
    out: list[tuple[dict[str, Any], dict[str, Any]]] = [
        (vit, {"README.md": vit_card, **vit_files()})
    ]
    for path in sorted((hf / "cards").glob("*.md")):
        repo = path.stem.replace("--", "/", 1)
        card = path.read_text(encoding="utf-8")
        record = listing_record(repo, card, template=vit)
        files: dict[str, Any] = {"README.md": card}
        if record["library_name"] == "timm":
            config = (
                timm_config(repo.split("/", 1)[1])
                if timm_configs and repo.startswith("timm/")
                else None
            )
            files["config.json"] = config or {"architecture": repo.split("/", 1)[1].split(".")[0]}
        elif "config" in record:
            files["config.json"] = record["config"]
        out.append((record, files))
    return out


def hub_from_shared(shared: Path, *, page_size: int = 50, timm_configs: bool = False) -> FakeHub:
    hub = FakeHub(page_size=page_size)
    for record, files in shared_models(shared, timm_configs=timm_configs):
        hub.add_model(record, files)
    hub.add_lfs_weights()
    return hub


def synthetic_hub(
    template: Mapping[str, Any], cards: Iterable[str], n: int, *, page_size: int = 1000
) -> FakeHub:
    """``n`` listings built from the real ``template`` record (ids, shas and download counts
    varied), their READMEs taken in turn from ``cards``; files are shared, not copied."""
    hub = FakeHub(page_size=page_size)
    readmes = [_bytes(c) for c in cards]
    files = {name: _bytes(content) for name, content in vit_files().items()}
    base = {k: v for k, v in template.items() if k != "spaces"}
    for i in range(n):
        repo = f"synthetic-{i % 97:02d}/vit-finetune-{i:05d}"
        record = {
            **base,
            "id": repo,
            "modelId": repo,
            "author": repo.split("/")[0],
            "_id": f"{i:024x}",
            "sha": hashlib.sha1(repo.encode()).hexdigest(),
            "downloads": n - i,
            "likes": i % 50,
        }
        with hub._lock:
            hub.models[repo] = record
            hub.files[(repo, "README.md")] = readmes[i % len(readmes)]
            for name, content in files.items():
                hub.files[(repo, name)] = content
    return hub
