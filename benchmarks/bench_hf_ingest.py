"""Hugging Face Hub ingest: throughput and requests per entry, against a loopback Hub.

    python benchmarks/bench_hf_ingest.py [--n 10000] [--workers 8] [--url sqlite:///...]

The loopback Hub (tests/fakehub.py) serves N synthetic listings built from the real recorded
``google/vit-base-patch16-224`` model info (ids, shas and download counts varied; READMEs
taken in turn from the 120 real cards; the ViT's config.json and preprocessor_config.json),
1000 models a listing page as the Hub does.

Measured: a first sync (every model new) and a re-sync of the unchanged Hub, each through
``sync_source`` into a fresh catalogue, for our crawl (one listing with ``expand=``; a
README only where the card metadata lacks a claim; configs and file pins left for the
first load or show) and for the obvious alternative (list ids, then one ``model_info`` call
per model, as many in flight as our crawl reads files). Printed: entries/s, requests per
entry by route, the alternative/ours ratios, and a projection of a first crawl of the
whole Hub from the Hub's published per-window limits and the share of the 120 real cards
(../shared/fixtures/hf/cards) whose body each card policy reads.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from huggingface_hub import ModelInfo

    from securitynet.records import SyncSummary
    from securitynet.scrapers.hubclient import HubClient, HubQuery
    from securitynet.settings import Settings


def per_model_info_client(settings: Settings) -> HubClient:
    """The alternative: the listing without ``expand=`` (ids only), then ``model_info`` per model."""
    from securitynet.scrapers.hubclient import HubClient

    class PerModelInfoClient(HubClient):
        def __init__(self, settings: Settings) -> None:
            from huggingface_hub import HfApi

            super().__init__(settings)
            self.api = HfApi(endpoint=self.endpoint, token=self.token, library_name="securitynet")

        def iter_models(
            self, query: HubQuery, *, limit: int | None = None, sort: str | None = "downloads"
        ) -> Iterator[ModelInfo]:
            ids = [
                m.id
                for m in self.api.list_models(
                    pipeline_tag=query.pipeline_tag,
                    filter=query.filter,
                    sort=sort,  # type: ignore[arg-type]
                    limit=limit,
                )
            ]
            with ThreadPoolExecutor(max_workers=settings.hf_workers) as pool:
                yield from pool.map(self.api.model_info, ids)

    return PerModelInfoClient(settings)


class RemoteHub:
    """The loopback Hub, served from a child process (so that it does not share the
    benchmark's interpreter lock), with its request counters read over HTTP."""

    def __init__(self, shared: Path, n: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        queue: multiprocessing.Queue[str] = ctx.Queue()
        self.process = ctx.Process(target=_serve, args=(queue, str(shared), n), daemon=True)
        self.process.start()
        self.url = queue.get(timeout=300)

    def counts(self, *, reset: bool = False) -> dict[str, int]:
        route = "reset" if reset else "counts"
        with urllib.request.urlopen(
            f"{self.url}/_fakehub/{route}", data=b"" if reset else None
        ) as r:
            return dict(json.load(r))

    def stop(self) -> None:
        self.process.kill()


def _serve(queue: multiprocessing.Queue[str], shared: str, n: int) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.fakehub import synthetic_hub

    hf = Path(shared) / "fixtures" / "hf"
    template = json.loads((hf / "model-info" / "google--vit-base-patch16-224.json").read_text())
    cards = [p.read_text(encoding="utf-8") for p in sorted((hf / "cards").glob("*.md"))]
    hub = synthetic_hub(template, cards, n, page_size=1000).start()
    queue.put(hub.url)
    threading.Event().wait()


def run(label: str, sync: Callable[[], SyncSummary], hub: RemoteHub, n: int) -> dict[str, float]:
    hub.counts(reset=True)
    t0 = time.perf_counter()
    summary = sync()
    seconds = time.perf_counter() - t0
    counts = hub.counts()
    total = counts["listing"] + counts["model-info"] + counts["file"]
    print(
        f"  {label:<32} {n / seconds:9.0f} {total / n:9.3f}   "
        f"{counts['listing']:>7} {counts['model-info']:>10} {counts['file']:>7}   {seconds:7.1f} s"
        f"   [{summary.status}: {summary.added} added, {summary.unchanged} unchanged]"
    )
    return {"seconds": seconds, "requests": total}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000, help="synthetic listings (default 10000)")
    parser.add_argument("--workers", type=int, default=8, help="concurrent reads (default 8)")
    parser.add_argument("--url", default=None, help="database URL (default: fresh SQLite files)")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = parser.parse_args()

    from securitynet.catalogue.engine import open_engine
    from securitynet.catalogue.ingest import sync_source
    from securitynet.scrapers.huggingface import HuggingFaceScraper
    from securitynet.settings import get_settings

    hub = RemoteHub(args.shared, args.n)
    tmp = Path(tempfile.mkdtemp(prefix="bench-hf-"))
    settings = get_settings(
        home=tmp, hf_endpoint=hub.url, hf_workers=args.workers, http_backoff=0.01
    )
    options = {"queries": [{"pipeline_tag": "image-classification"}]}

    print(
        f"hf ingest: {args.n} synthetic listings from the recorded google/vit-base-patch16-224 "
        f"record, loopback Hub in its own process, {args.workers} workers, {os.cpu_count()} CPUs"
    )
    print(
        f"  {'':<32} {'entries/s':>9} {'req/entry':>9}   {'listing':>7} {'model-info':>10} "
        f"{'files':>7}   {'time':>9}"
    )
    results = {}
    # warm up (imports, the first connections, the database schema) outside the timings
    warm = open_engine(f"sqlite:///{tmp / 'warm.db'}")
    sync_source(warm, HuggingFaceScraper(), settings=settings, options=options, limit=50)
    warm.dispose()

    for name, factory in (("ours", None), ("model_info", per_model_info_client)):
        url = args.url or f"sqlite:///{tmp / f'{name}.db'}"
        engine = open_engine(url)
        scraper = HuggingFaceScraper(client_factory=factory) if factory else HuggingFaceScraper()

        def sync() -> SyncSummary:
            return sync_source(engine, scraper, settings=settings, options=options)  # noqa: B023

        results[name, "first"] = run(f"first sync ({name})", sync, hub, args.n)
        results[name, "again"] = run(f"re-sync, unchanged ({name})", sync, hub, args.n)
        engine.dispose()
    hub.stop()

    for phase, what in (("first", "first sync"), ("again", "re-sync")):
        ours, alt = results["ours", phase], results["model_info", phase]
        print(
            f"{what}: model_info/ours requests {alt['requests'] / ours['requests']:.2f}x, "
            f"time {alt['seconds'] / ours['seconds']:.2f}x"
        )
    print(
        f"requests per new entry (ours, first sync): {results['ours', 'first']['requests'] / args.n:.3f}"
    )
    project(args.shared)


#: The Hub's published limits per 5-minute window (huggingface.co/docs/hub/rate-limits).
HUB_LIMITS = {
    "anonymous": {"api": 500, "resolvers": 3000},
    "free token": {"api": 1000, "resolvers": 5000},
}
HUB_IMAGE_CLASSIFIERS = 280_000


def card_body_shares(shared: Path) -> dict[str, float]:
    """Share of the real cards' listing items whose README each card policy reads."""
    from huggingface_hub import ModelInfo

    from securitynet.annotate.cards import card_body_signalled, card_needs_body, parse_card
    from securitynet.scrapers.hubrecord import listing_metadata
    from tests.fakehub import shared_models

    auto = signalled = total = 0
    for record, _ in shared_models(shared):
        info = ModelInfo(**{"siblings": None, **record})
        card = parse_card(
            None, repo_id=info.id, metadata=listing_metadata(info), source="hf", url=""
        )
        total += 1
        auto += card_needs_body(card, info.tags or ())
        signalled += card_body_signalled(card, info.tags or ())
    return {"auto": auto / total, "signalled": signalled / total}


def project(shared: Path) -> None:
    """A first crawl of the whole Hub: listing pages against the api bucket, README reads
    against the resolvers bucket, each at its window's pace; the slower bucket decides."""
    import logging

    logging.getLogger("huggingface_hub.repocard_data").setLevel(logging.ERROR)  # model-index noise
    shares = card_body_shares(shared)
    pages = -(-HUB_IMAGE_CLASSIFIERS // 1000)
    print(
        f"projection, first crawl of ~{HUB_IMAGE_CLASSIFIERS:,} image classifiers "
        f"({pages} listing pages; configs and pins read later, one entry at a time):"
    )
    for policy, share in shares.items():
        reads = share * HUB_IMAGE_CLASSIFIERS
        for who, limit in HUB_LIMITS.items():
            hours = max(pages / (limit["api"] / 300), reads / (limit["resolvers"] / 300)) / 3600
            print(
                f"  card: {policy:<9} README for {share:5.1%} of the real cards -> "
                f"{(pages + reads) / HUB_IMAGE_CLASSIFIERS:.2f} req/entry, {who:<10} {hours:4.1f} h"
            )


if __name__ == "__main__":
    main()
