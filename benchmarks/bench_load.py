"""Time to a ready net from a warm cache, against timm's own loading of the same file.

For ResNet-50 and ViT-B/16 (random weights, saved once as safetensors in a temp folder):

- ours:  ``load_entry(record)`` with the file already in the cache: index lookup, sha256 of
  the blob (verification on load is on), safe read, ``timm.create_model(pretrained=False)``
  on the meta device, checked ``load_state_dict(assign=True)``, eval mode, transform, labels;
- ours, eager: the same with ``lazy_init=False`` (random init first, then copy, as timm
  does), which isolates what verification and the safe read cost;
- timm:  ``timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=dict(file=F))``
  on the same file (timm reads it with safetensors, no hashing), then ``.eval()``.

The two calls take turns, ``--repeat`` times each, so a busy machine slows both alike;
medians are reported, and their ratio (aim: <= 1.1). Then the cost of verification: sha256
over a file of ``--hash-mib`` MiB (page-cached, as on a warm load), in seconds per GB.

    PYTHONPATH=. python benchmarks/bench_load.py [--repeat 7] [--arch resnet50 ...]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def serve(folder: Path) -> tuple[ThreadingHTTPServer, str]:
    """A loopback HTTP server for ``folder`` (the first, cold load downloads through it)."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    host, port = httpd.server_address[:2]
    return httpd, f"http://{host}:{port}"


def bench_arch(arch: str, folder: Path, base_url: str, repeat: int) -> dict[str, float]:
    import timm
    import torch
    from safetensors.torch import save_file

    from securitynet.loader import load_entry
    from securitynet.records import EntryRecord, FileRef, LoadSpec

    torch.manual_seed(0)
    net = timm.create_model(arch, pretrained=False)
    path = folder / f"{arch}.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    del net
    body_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    size = path.stat().st_size
    record = EntryRecord(
        id=f"timm:{arch}",
        files=[FileRef(url=f"{base_url}/{path.name}", sha256=body_sha, size=size)],
        load=LoadSpec(builder="timm", architecture=arch, label_set="ImageNet-1k"),
    )
    cold = time.perf_counter()
    load_entry(record)  # download + verify into the cache
    cold = time.perf_counter() - cold

    calls = {
        "ours": lambda: load_entry(record, offline=True),
        "ours_eager": lambda: load_entry(record, offline=True, lazy_init=False),
        "timm": lambda: timm.create_model(arch, pretrained=True, pretrained_cfg_overlay={"file": str(path)}).eval(),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    for fn in calls.values():
        fn()  # warm every path (imports, allocator, page cache)
    for _ in range(repeat):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    result = {name: statistics.median(t) for name, t in times.items()}
    return {**result, "cold": cold, "size": size}


def hash_cost(folder: Path, mib: int) -> float:
    """Seconds per GB (1e9 bytes) of sha256 over a page-cached file, as the cache does it."""
    from securitynet.loader.cache import hash_file

    path = folder / "hash.bin"
    block = os.urandom(1024 * 1024)
    with open(path, "wb") as fh:
        for _ in range(mib):
            fh.write(block)
    hash_file(path)  # into the page cache
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        hash_file(path)
        runs.append(time.perf_counter() - start)
    path.unlink()
    return min(runs) / (mib * 1024 * 1024 / 1e9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["resnet50", "vit_base_patch16_224"])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--hash-mib", type=int, default=1024)
    args = parser.parse_args()

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "files"
        folder.mkdir()
        os.environ["SECURITYNET_HOME"] = str(Path(tmp) / "home")
        httpd, url = serve(folder)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cpus; "
              f"median of {args.repeat}", file=sys.stderr)
        try:
            rows = [(arch, bench_arch(arch, folder, url, args.repeat)) for arch in args.arch]
        finally:
            httpd.shutdown()
        per_gb = hash_cost(folder, args.hash_mib)
        for arch, r in rows:
            print(f"{arch:<21} {r['size'] / 1e6:6.1f} MB  timm pretrained file {r['timm']:6.3f} s | "
                  f"ours, warm cache, verified: {r['ours']:6.3f} s = {r['ours'] / r['timm']:4.2f}x "
                  f"(with random init first, as timm: {r['ours_eager']:6.3f} s = {r['ours_eager'] / r['timm']:4.2f}x) | "
                  f"sha256 of the file alone {r['size'] / 1e9 * per_gb:5.3f} s | first load with download {r['cold']:.2f} s")
        print(f"sha256 verification: {per_gb:.3f} s per GB ({1 / per_gb:.2f} GB/s)")


if __name__ == "__main__":
    main()
