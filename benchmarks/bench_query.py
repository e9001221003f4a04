"""A faceted query on a synthetic catalogue of 1,000,000 entries: ``Catalogue.search`` against
the same question asked of a pandas DataFrame holding the same rows.

    python benchmarks/bench_query.py                      # SQLite (a temporary file)
    python benchmarks/bench_query.py --pg-url postgresql://user@host/db   # and PostgreSQL

The question: entries trained on CIFAR-10 with top-1 >= 90 %, best first, 20 of them,
i.e. ``cat.search(dataset="CIFAR-10", min_top1=90, sort="top1", limit=20)`` and
``df[(df.dataset == "CIFAR-10") & (df.top1 >= 90)].nlargest(20, "top1")``.

The entries are generated inside the database (a recursive CTE on SQLite,
generate_series on PostgreSQL): deterministic, skewed across 12 data sets and 4 sources,
10 % without a top-1. The DataFrame is ``Catalogue.to_dataframe()`` of the same catalogue.
The PostgreSQL database given is used as is: its ``entry`` table is emptied and refilled.
Each figure is the median of ``--repeat`` runs after a warm-up; the last line is the one
comparable figure per backend.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from securitynet.catalogue.api import Catalogue
from securitynet.catalogue.models import Entry

#: (data set, share of entries in percent); the shares add up to 100.
DATASETS = (
    ("ImageNet-1k", 40),
    ("CIFAR-10", 15),
    ("CIFAR-100", 10),
    ("ImageNet-21k", 5),
    ("SVHN", 5),
    ("MNIST", 5),
    ("CUB-200-2011", 4),
    ("Fashion-MNIST", 4),
    ("LAION-2B", 4),
    ("ImageNet-12k", 4),
    ("JFT-300M", 2),
    ("WebLI", 2),
)
QUERY = {"dataset": "CIFAR-10", "min_top1": 90.0}
LIMIT = 20


def _slots() -> str:
    """VALUES rows mapping each of 100 slots to a data set by its share."""
    names = [name for name, share in DATASETS for _ in range(share)]
    assert len(names) == 100
    return ", ".join(f"({k}, '{name}')" for k, name in enumerate(names))


# Integer arithmetic only, so both databases generate the same rows.
_COLUMNS = "id, source, name, task, architecture, family, num_classes, params, dataset, top1, tags, first_seen, last_seen, removed_upstream"
_SELECT = """
    SELECT CASE seq.i % 4 WHEN 0 THEN 'timm' WHEN 1 THEN 'hf' WHEN 2 THEN 'imgclsmob' ELSE 'torchvision' END
               || ':' || 'synthetic-' || seq.i,
           CASE seq.i % 4 WHEN 0 THEN 'timm' WHEN 1 THEN 'hf' WHEN 2 THEN 'imgclsmob' ELSE 'torchvision' END,
           'synthetic-' || seq.i,
           'image-classification',
           'arch' || (seq.i % 997),
           'family' || (seq.i % 61),
           1000,
           100000 + (seq.i * 104729) % 500000000,
           slots.name,
           CASE WHEN seq.i % 10 = 0 THEN NULL ELSE ((seq.i * 7919) % 10007) / 100.07 END,
           '[]',
           CURRENT_TIMESTAMP,
           CURRENT_TIMESTAMP,
           (1 = 0)
"""


def fill(cat: Catalogue, rows: int) -> float:
    """Replace the catalogue's entries with ``rows`` synthetic ones; returns seconds taken."""
    started = time.perf_counter()
    backend = cat.engine.url.get_backend_name()
    if backend == "sqlite":
        statement = (
            f"INSERT INTO entry ({_COLUMNS}) "
            f"WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < {rows - 1}), "
            f"slots(k, name) AS (VALUES {_slots()}) "
            f"{_SELECT} FROM seq JOIN slots ON slots.k = (seq.i * 7) % 100"
        )
    else:
        statement = (
            f"INSERT INTO entry ({_COLUMNS}) {_SELECT} "
            f"FROM generate_series(CAST(0 AS BIGINT), {rows - 1}) AS seq(i) "
            f"JOIN (VALUES {_slots()}) AS slots(k, name) ON slots.k = (seq.i * 7) % 100"
        )
    indexes = sorted(Entry.__table__.indexes, key=lambda ix: str(ix.name))
    with cat.engine.begin() as conn:
        for table in (
            "evaluation",
            "annotation_error",
            "fact",
            "accuracy_claim",
            "entry_dataset",
            "weight_file",
            "entry",
        ):
            conn.execute(text(f"DELETE FROM {table}"))
        for index in indexes:  # a bulk load, then each index built in one sorted pass: much faster
            index.drop(conn)
        conn.execute(text(statement))
        for index in indexes:
            index.create(conn)
    with cat.engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    return time.perf_counter() - started


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median seconds of ``repeat`` calls after three warm-up calls, and the last result."""
    for _ in range(3):
        result = fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def bench(url: str, rows: int, repeat: int) -> dict[str, float]:
    with Catalogue(url) as cat:
        backend = cat.engine.url.get_backend_name()
        print(f"[{backend}] filling {rows:,} entries ...", flush=True)
        seconds = fill(cat, rows)
        print(f"[{backend}] filled in {seconds:.1f} s", flush=True)

        started = time.perf_counter()
        frame = cat.to_dataframe()
        print(
            f"[{backend}] to_dataframe: {len(frame):,} rows in {time.perf_counter() - started:.1f} s",
            flush=True,
        )

        sql_s, found = timed(lambda: cat.search(sort="top1", limit=LIMIT, **QUERY), repeat)
        pandas_s, expected = timed(
            lambda: frame[
                (frame.dataset == QUERY["dataset"]) & (frame.top1 >= QUERY["min_top1"])
            ].nlargest(LIMIT, "top1"),
            repeat,
        )
        matches = cat.count(**QUERY)
        # the same answer both ways (ties on top1 may be broken differently: compare the figures)
        if [e.top1 for e in found] != expected["top1"].tolist():
            sys.exit(f"[{backend}] the two answers differ")
        plan = _plan(cat)
    print(f"[{backend}] {matches:,} entries match; plan: {plan}")
    print(
        f"[{backend}] Catalogue.search {sql_s * 1000:.2f} ms | pandas {pandas_s * 1000:.2f} ms "
        f"| pandas / catalogue = {pandas_s / sql_s:.1f}x"
    )
    return {"catalogue_ms": sql_s * 1000, "pandas_ms": pandas_s * 1000}


def _plan(cat: Catalogue) -> str:
    """How the database answers the query (one line)."""
    from securitynet.catalogue.api import make_filter
    from securitynet.catalogue.queries import search_statement

    stmt = search_statement(make_filter(**QUERY), sort="top1", limit=LIMIT)
    compiled = stmt.compile(cat.engine, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if cat.engine.url.get_backend_name() == "sqlite" else "EXPLAIN "
    with cat.engine.connect() as conn:
        rows = conn.execute(text(prefix + str(compiled))).all()
    return " / ".join(str(r[-1]).strip() for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument(
        "--sqlite", type=Path, default=None, help="database file (default: a temporary one)"
    )
    parser.add_argument(
        "--pg-url",
        default=None,
        help="also run on this PostgreSQL database (its entries are replaced)",
    )
    args = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = args.sqlite or Path(tmp) / "bench.db"
        results["sqlite"] = bench(f"sqlite:///{path}", args.rows, args.repeat)
    if args.pg_url:
        results["postgresql"] = bench(args.pg_url, args.rows, args.repeat)
    for backend, r in results.items():
        print(
            f"faceted query on {args.rows:,} entries, {backend}: {r['catalogue_ms']:.2f} ms "
            f"(pandas {r['pandas_ms']:.2f} ms, {r['pandas_ms'] / r['catalogue_ms']:.1f}x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
