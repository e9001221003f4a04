"""The web view at scale: server time of ``/browse.json`` with a facet and a range (the page,
its total and four facet counts) and of ``/entry/<id>.json``, on a synthetic catalogue of
1,000,000 entries, against the same questions asked through ``securitynet sql``'s guard
(``Catalogue.sql``: one statement per question, in a read-only child process on SQLite).

    python benchmarks/bench_web.py                        # SQLite (a temporary file)
    python benchmarks/bench_web.py --pg-url postgresql://user@host/db   # and PostgreSQL

The catalogue is :func:`bench_query.fill`'s (12 data sets, 4 sources, skewed). Requests go
through Starlette's TestClient (in-process ASGI, no socket), so the figure is server time
plus a small constant of the test client. Each figure is the median of ``--repeat`` runs
after a warm-up; the last line per backend is the comparable figure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))
from bench_query import fill, timed

from securitynet.catalogue.api import Catalogue
from securitynet.web.app import create_app

BROWSE = {"dataset": "CIFAR-10", "min_top1": "90", "sort": "top1"}
#: What the browse page asks, as the SQL a user of ``securitynet sql`` would write.
BROWSE_SQL = [
    "SELECT id, top1 FROM entry WHERE dataset = 'CIFAR-10' AND top1 >= 90 AND NOT removed_upstream "
    "AND same_weights_as IS NULL AND NOT test_net ORDER BY top1 DESC, id LIMIT 50",
    "SELECT count(*) FROM entry WHERE dataset = 'CIFAR-10' AND top1 >= 90 AND NOT removed_upstream "
    "AND same_weights_as IS NULL AND NOT test_net",
] + [
    f"SELECT {col}, count(*) AS n FROM entry WHERE {cond} top1 >= 90 AND NOT removed_upstream "
    f"AND same_weights_as IS NULL AND NOT test_net AND {col} IS NOT NULL GROUP BY {col} "
    "ORDER BY n DESC LIMIT 15"
    for col, cond in [
        ("dataset", ""),
        ("family", "dataset = 'CIFAR-10' AND"),
        ("source", "dataset = 'CIFAR-10' AND"),
        ("licence", "dataset = 'CIFAR-10' AND"),
    ]
]


def bench(url: str, rows: int, repeat: int) -> dict[str, float]:
    with Catalogue(url) as cat:
        backend = cat.engine.url.get_backend_name()
        print(f"[{backend}] filling {rows:,} entries ...", flush=True)
        print(f"[{backend}] filled in {fill(cat, rows):.1f} s", flush=True)
        entry_id = cat.search(dataset="CIFAR-10", limit=1)[0].id
        with TestClient(create_app(cat)) as client:

            def browse() -> object:
                response = client.get("/browse.json", params=BROWSE)
                response.raise_for_status()
                return response.json()

            def entry() -> object:
                response = client.get(f"/entry/{entry_id}.json")
                response.raise_for_status()
                return response.json()

            browse_s, page = timed(browse, repeat)
            entry_s, _ = timed(entry, repeat)
        sql_s, _ = timed(lambda: [cat.sql(q) for q in BROWSE_SQL], max(1, repeat // 5))
        entry_sql_s, _ = timed(
            lambda: cat.sql(f"SELECT * FROM entry WHERE id = '{entry_id}'"), max(1, repeat // 5)
        )
    print(f"[{backend}] browse: {page['total']:,} entries match")  # type: ignore[index]
    print(
        f"[{backend}] browse page {browse_s * 1000:.1f} ms | same 6 queries via sql "
        f"{sql_s * 1000:.1f} ms | sql / web = {sql_s / browse_s:.1f}x"
    )
    print(
        f"[{backend}] entry page {entry_s * 1000:.1f} ms | entry row via sql "
        f"{entry_sql_s * 1000:.1f} ms | sql / web = {entry_sql_s / entry_s:.1f}x"
    )
    return {"browse_ms": browse_s * 1000, "entry_ms": entry_s * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--pg-url", help="also run on this PostgreSQL database (emptied first)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench(f"sqlite:///{Path(tmp) / 'bench.db'}", args.rows, args.repeat)
    if args.pg_url:
        bench(args.pg_url, args.rows, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
