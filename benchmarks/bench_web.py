"""The web view at scale: server time of each page on a synthetic catalogue of 1,000,000
entries, against the same questions asked through ``securitynet sql``'s guard
(``Catalogue.sql``: one statement per question, in a read-only child process on SQLite).

    python benchmarks/bench_web.py                                   # SQLite (a temporary file)
    python benchmarks/bench_web.py --database-url postgresql://user@host/db   # and PostgreSQL
    python benchmarks/bench_web.py --sqlite-file /tmp/1m.db --keep   # fill once, measure again
    python benchmarks/bench_web.py --sqlite-file /tmp/1m.db --keep --more   # and broad ranges, searches

Pages: ``/browse.json`` with a data set and a top-1 range (the page, its total and six
facet counts, counted over the matching entries), ``/browse.json`` with facet filters alone
(a data set and a source: counted from the stored ``facet_count``), ``/browse.json``
unfiltered, ``/index.json`` (home: counts per source, data set, family),
``/entry/<id>.json``, a text search (``q``: from the trigram index), and a broad range (top-1 >= 1: nine in ten entries match, every one
counted). Each is measured **cold** (an app that keeps nothing: every request counts
afresh) and **warm** (the app's counts kept per catalogue state, as ``securitynet serve``
runs). The catalogue is :func:`bench_query.fill`'s (12 data sets, 4 sources, skewed), with
a pre-training data set for one entry in ten; after
the fill the stored facet counts are rebuilt, as every write of the catalogue API does, and
that rebuild is timed too. Requests go through Starlette's TestClient (in-process ASGI, no
socket), so a figure is server time plus a small constant of the test client. Each figure
is the median of ``--repeat`` runs after a warm-up.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))
from bench_query import fill, timed

from securitynet.catalogue.api import Catalogue
from securitynet.web.app import create_app

BROWSE = {"dataset": "CIFAR-10", "min_top1": "90", "sort": "top1"}
FACETED = {"dataset": "CIFAR-10", "source": "timm", "sort": "top1"}
BROAD = {"min_top1": "1", "sort": "top1"}
SEARCH = {"q": "synthetic-12345", "sort": "top1"}
VISIBLE = "NOT entry.removed_upstream AND entry.same_weights_as IS NULL AND NOT entry.test_net"


def _questions(filters: dict[str, str], order: str) -> list[str]:
    """What a browse page asks, as the SQL a user of ``securitynet sql`` would write: the
    page, the total, and each facet's 15 commonest values under every filter but its own."""

    def where(leave_out: str | None = None) -> str:
        return " AND ".join([c for facet, c in filters.items() if facet != leave_out] + [VISIBLE])

    facets = [
        f"SELECT {col}, count(*) AS n FROM entry WHERE {where(col)} AND entry.{col} IS NOT NULL "
        "GROUP BY 1 ORDER BY n DESC LIMIT 15"
        for col in ("dataset", "family", "source", "licence", "task")
    ]
    pretrain = (
        "SELECT d.dataset, count(DISTINCT d.entry_id) AS n FROM entry_dataset AS d "
        f"JOIN entry ON entry.id = d.entry_id WHERE d.stage = 'pretrain' AND {where('pretrain')} "
        "GROUP BY 1 ORDER BY n DESC LIMIT 15"
    )
    return [
        f"SELECT id, top1 FROM entry WHERE {where()} ORDER BY {order}, id LIMIT 50",
        f"SELECT count(*) FROM entry WHERE {where()}",
        *facets,
        pretrain,
    ]


#: The same questions through ``securitynet sql``, per page that has them.
PAGE_SQL = {
    "browse CIFAR-10, top-1 >= 90": _questions({"dataset": "entry.dataset = 'CIFAR-10'", "top1": "top1 >= 90"}, "top1 DESC"),
    "browse CIFAR-10, timm": _questions({"dataset": "entry.dataset = 'CIFAR-10'", "source": "entry.source = 'timm'"}, "top1 DESC NULLS LAST"),
    "browse, no filter": _questions({}, "top1 DESC NULLS LAST"),
    "browse, search 'synthetic-12345'": _questions(
        {"text": "(lower(entry.id) LIKE '%synthetic-12345%' OR lower(entry.architecture) LIKE '%synthetic-12345%')"},
        "top1 DESC NULLS LAST",
    ),
}  # fmt: skip


#: ``--more``: further browse pages, cold only (no ``sql`` comparison): broad and narrow
#: ranges, a pre-training filter, the deepest page, sorts, a narrow and a broad search.
MORE = [
    {"min_top1": "50"}, {"min_params": "1M"}, {"dataset": "ImageNet-1k", "min_top1": "50"},
    {"pretrain": "LAION-2B"}, {"pretrain": "LAION-2B", "min_top1": "90"}, {"page": "200"},
    {"sort": "name", "page": "100"}, {"sort": "-gflops"}, {"q": "arch99"}, {"q": "synthetic"},
]  # fmt: skip


def _pretraining(cat: Catalogue) -> None:
    """A pre-training step for one entry in ten (ImageNet-21k, or LAION-2B for one in a
    hundred), so the pre-training facet has something to count."""
    from sqlalchemy.orm import Session

    from securitynet.catalogue.ingest import seed_datasets

    with Session(cat.engine) as session, session.begin():
        seed_datasets(session)
        session.execute(
            text(
                "INSERT INTO entry_dataset (entry_id, dataset, stage, position, source, origin, recorded_at) "
                "SELECT id, CASE WHEN id LIKE '%13' THEN 'LAION-2B' ELSE 'ImageNet-21k' END, 'pretrain', 0, "
                "'bench', 'bench', CURRENT_TIMESTAMP FROM entry WHERE id LIKE '%3'"
            )
        )


def _get(client: TestClient, path: str, params: dict[str, str] | None = None) -> Callable[[], Any]:
    def call() -> Any:
        response = client.get(path, params=params)
        response.raise_for_status()
        return response.json()

    return call


def more(cat: Catalogue, repeat: int) -> None:
    """The :data:`MORE` pages, cold, each the median of ``repeat`` runs after a warm-up."""
    backend = cat.engine.url.get_backend_name()
    with TestClient(create_app(cat, cache=False)) as client:
        for params in MORE:
            seconds, answer = timed(_get(client, "/browse.json", params), repeat)
            shown = "&".join(f"{k}={v}" for k, v in params.items())
            print(f"[{backend}] web browse {shown:<36} (cold) {seconds * 1000:9.1f} ms ({answer['total']:,} match)", flush=True)


def bench(url: str, rows: int, repeat: int, *, refill: bool = True) -> dict[str, float]:
    with Catalogue(url) as cat:
        backend = cat.engine.url.get_backend_name()
        if refill:
            print(f"[{backend}] filling {rows:,} entries ...", flush=True)
            print(f"[{backend}] filled in {fill(cat, rows):.1f} s", flush=True)
            _pretraining(cat)
            print(f"[{backend}] facet counts rebuilt in {cat.refresh_facet_counts():.1f} s", flush=True)
            if backend == "postgresql":  # as autovacuum would, soon: index-only scans need it
                with cat.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(text("VACUUM (ANALYZE) entry"))
        entry_id = cat.search(dataset="CIFAR-10", limit=1)[0].id
        pages = {
            "browse CIFAR-10, top-1 >= 90": ("/browse.json", BROWSE),
            "browse CIFAR-10, timm": ("/browse.json", FACETED),
            "browse, no filter": ("/browse.json", {}),
            "home": ("/index.json", None),
            "entry": (f"/entry/{entry_id}.json", None),
            "browse, search 'synthetic-12345'": ("/browse.json", SEARCH),
            "browse, top-1 >= 1 (broad)": ("/browse.json", BROAD),
        }
        figures: dict[str, float] = {}
        for mode, cache in (("cold", False), ("warm", True)):
            with TestClient(create_app(cat, cache=cache)) as client:
                for name, (path, params) in pages.items():
                    seconds, answer = timed(_get(client, path, params), repeat)
                    figures[f"{name} ({mode})"] = seconds * 1000
                    matched = f" ({answer['total']:,} match)" if name.startswith("browse") else ""
                    print(f"[{backend}] web {name} ({mode}): {seconds * 1000:.1f} ms{matched}", flush=True)
        if backend == "postgresql" and not cat.settings.sql_database_url:
            # securitynet sql refuses the superuser: the README's reader role, as the tests make it
            from tests.catalogue.pgreader import create_reader

            cat.settings = cat.settings.model_copy(update={"sql_database_url": create_reader(url)})
        sql = {
            name: (timed(lambda qs=qs: [cat.sql(q, timeout=300) for q in qs], max(1, repeat // 5))[0], f"the same {len(qs)} questions")
            for name, qs in PAGE_SQL.items()
        }  # fmt: skip
        entry_sql, _ = timed(lambda: cat.sql(f"SELECT * FROM entry WHERE id = '{entry_id}'"), max(1, repeat // 5))
        sql["entry"] = (entry_sql, "its entry row alone")
    for name, ms in figures.items():
        base = name.rsplit(" (", 1)[0]
        line = f"[{backend}] {name:<38} {ms:8.1f} ms"
        if base in sql:
            seconds, what = sql[base]
            line += f" | {what} via sql {seconds * 1000:8.1f} ms | sql / web = {seconds * 1000 / ms:.1f}x"
        print(line)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument(
        "--database-url", "--pg-url", dest="database_url",
        help="also run on this (PostgreSQL) database: its entries are replaced",
    )  # fmt: skip
    parser.add_argument("--sqlite-file", type=Path, help="the SQLite file to fill (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="measure the catalogues as they are: no refill")
    parser.add_argument("--no-sqlite", action="store_true", help="only the --database-url run")
    parser.add_argument("--more", action="store_true", help="also the MORE pages (broad ranges, searches), cold")
    args = parser.parse_args()
    urls = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_sqlite:
            urls.append(f"sqlite:///{args.sqlite_file or Path(tmp) / 'bench.db'}")
        if args.database_url:
            urls.append(args.database_url)
        for url in urls:
            bench(url, args.rows, args.repeat, refill=not args.keep)
            if args.more:
                with Catalogue(url, upgrade=False) as cat:
                    more(cat, max(1, args.repeat // 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
