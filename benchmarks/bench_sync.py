"""Full offline sync and no-op re-sync of the three registry sources, timed.

    python benchmarks/bench_sync.py [--timm-results ../shared/fixtures/timm] [--url sqlite:///...]

Compares against the obvious alternative: a naive re-sync that deletes and rewrites every
entry (what "just reload the table" costs), printing the ratio to our incremental no-op;
also times a forced full re-read (``sync --full``: every record re-built and compared), and
the curated annotations re-applied in full (what every re-sync did before they were skipped
when neither the files nor any entry changed).
Aims: full sync < 30 s on 2 cores (issue 3), no-op re-sync < 1 s (issue 13).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sqlalchemy import delete
from sqlalchemy.orm import Session


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_results = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "timm"
    parser.add_argument(
        "--timm-results", type=Path, default=default_results if default_results.is_dir() else None
    )
    parser.add_argument("--url", default=None, help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()

    from securitynet.catalogue.api import Catalogue
    from securitynet.catalogue.ingest import sync_sources
    from securitynet.catalogue.models import Entry
    from securitynet.settings import get_settings

    tmp = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    url = args.url or f"sqlite:///{tmp / 'catalogue.db'}"
    settings = get_settings(home=tmp)
    options = {"timm_results": str(args.timm_results)} if args.timm_results else {}
    cat = Catalogue(url, settings=settings)
    cat.engine  # migrate outside the timing  # noqa: B018

    t0 = time.perf_counter()
    summaries = cat.sync(options=options)
    full = time.perf_counter() - t0
    for s in summaries:
        print("  " + s.line())
    total = cat.count()

    t0 = time.perf_counter()
    again = cat.sync(options=options)
    noop = time.perf_counter() - t0
    changed = sum(s.added + s.updated for s in again)

    t0 = time.perf_counter()
    cat.sync(options=options, full=True)
    reread = time.perf_counter() - t0

    from securitynet.catalogue.curation import apply_curated_annotations

    t0 = time.perf_counter()
    curated = apply_curated_annotations(cat.engine, entries_changed=True)
    reapply = time.perf_counter() - t0

    # the obvious alternative: throw the table away and write everything again
    with Session(cat.engine) as s, s.begin():
        s.execute(delete(Entry))
    t0 = time.perf_counter()
    sync_sources(cat.engine, None, settings=settings, options=options, full=True)
    rewrite = time.perf_counter() - t0

    print(f"entries: {total}")
    print(f"full offline sync:   {full:6.2f} s  (aim < 30 s)")
    print(f"no-op re-sync:       {noop:6.2f} s  (aim < 1 s; {changed} entries changed)")
    print(f"forced full re-read: {reread:6.2f} s  (every record re-built and compared)")
    print(f"curation re-applied: {reapply:6.2f} s  ({curated} entries; skipped by a no-op re-sync)")
    print(f"delete + rewrite:    {rewrite:6.2f} s  (the obvious alternative)")
    print(f"ratio rewrite / no-op re-sync: {rewrite / noop:.1f}x")


if __name__ == "__main__":
    main()
