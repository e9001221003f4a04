"""Statistics, DataFrames and exports of a synthetic 1,000,000-entry catalogue, each against the
best alternative on the same engine, as ratios (ours / theirs; under 3 is the aim).

    python benchmarks/bench_stats.py                    # SQLite (a temporary file)
    python benchmarks/bench_stats.py --rows 200000      # smaller, for a quick look
    python benchmarks/bench_stats.py --pg-url postgresql://user@host/db   # PostgreSQL too

Pairs measured (median of ``--repeat`` runs after one warm-up), on each engine:

- ``v_accuracy_per_dataset`` (the quartile view; it reads ``accuracy_statistics``) against,
  on SQLite, pandas over sqlite3 (``dataset, top1`` read and ``groupby().quantile``) and, on
  PostgreSQL, one ``percentile_cont`` query on ``entry``.
- ``accuracy_stats(cat, by="dataset")`` against the same figure.
- ``Catalogue.refresh_statistics()``, what a sync that changed rows now pays (all five
  groupings), against that figure times five (one per grouping).
- ``Catalogue.to_dataframe()`` against ``pd.read_sql`` of the same columns on a plain driver
  connection.
- ``securitynet export x.parquet`` (``export_catalogue``) against one query streamed into
  pyarrow in batches; each runs in a fresh process so its peak memory (max RSS) is its own.

The catalogue is filled as in ``bench_query.py`` (entries generated inside the database).
The machine's load changes the figures: compare the ratios, and say what the machine was
doing when you quote them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_query import fill
from sqlalchemy import text

from securitynet.catalogue.api import Catalogue

PANDAS_QUARTILES = "SELECT dataset, top1 FROM entry WHERE top1 IS NOT NULL AND NOT removed_upstream"
PG_QUARTILES = """
    SELECT dataset, COUNT(*), MIN(top1),
           percentile_cont(0.25) WITHIN GROUP (ORDER BY top1),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY top1),
           percentile_cont(0.75) WITHIN GROUP (ORDER BY top1),
           MAX(top1), AVG(top1)
    FROM entry WHERE top1 IS NOT NULL AND NOT removed_upstream GROUP BY dataset
"""


def timed(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _connect(url: str) -> Any:
    """A plain DB-API connection (sqlite3 or psycopg) to the catalogue at ``url``."""
    if url.startswith("sqlite"):
        import sqlite3

        return sqlite3.connect(url.removeprefix("sqlite:///"))
    import psycopg
    from sqlalchemy.engine import make_url

    return psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))


def _pandas_quartiles(url: str) -> Any:
    import warnings

    import pandas as pd

    with _connect(url) as conn, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pandas prefers SQLAlchemy for psycopg
        frame = pd.read_sql(PANDAS_QUARTILES, conn)
    return frame.groupby("dataset")["top1"].describe()


def _pandas_frame(url: str) -> Any:
    import warnings

    import pandas as pd

    from securitynet.catalogue.queries import SUMMARY_COLUMNS

    with _connect(url) as conn, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return pd.read_sql(f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM entry ORDER BY id", conn)


def _export_child(mode: str, url: str, out: str) -> None:
    """Run one export in this (fresh) process; print seconds and max RSS as JSON."""
    import resource

    started = time.perf_counter()
    if mode == "ours":
        from securitynet.catalogue.export import export_catalogue

        with Catalogue(url) as cat:
            export_catalogue(cat, out, include_removed=True)
    else:  # one query, streamed into pyarrow in batches
        import pyarrow as pa
        import pyarrow.parquet as pq

        from securitynet.catalogue.export import EXPORT_COLUMNS, _arrow_schema

        entry_columns = [c for c in EXPORT_COLUMNS if c not in ("training_chain", "claims", "weights_url", "weights_sha256")]
        schema = _arrow_schema()
        sqlite = url.startswith("sqlite")
        with _connect(url) as conn, pq.ParquetWriter(out, schema) as writer:
            # PostgreSQL: a server-side cursor, so that the client holds one batch at a time
            cursor = conn.cursor() if sqlite else conn.cursor(name="export")
            cursor.execute(f"SELECT {', '.join(entry_columns)} FROM entry ORDER BY id")
            while rows := cursor.fetchmany(5000):
                columns = list(zip(*rows, strict=True))
                data = {c: list(v) for c, v in zip(entry_columns, columns, strict=True)}
                n = len(rows)
                data.update(training_chain=[None] * n, claims=[0] * n, weights_url=[None] * n, weights_sha256=[None] * n)
                for key in ("first_seen", "last_seen"):
                    if sqlite:  # text without an offset, stored as UTC
                        naive = pa.array(data[key], pa.string()).cast(pa.timestamp("us"))
                        data[key] = naive.cast(pa.timestamp("us", tz="UTC"))
                data["removed_upstream"] = [bool(v) for v in data["removed_upstream"]]
                writer.write_batch(pa.RecordBatch.from_pydict({c: data[c] for c in EXPORT_COLUMNS}, schema=schema))
    seconds = time.perf_counter() - started
    # VmHWM: this process's peak (ru_maxrss survives exec and would report the parent's)
    status = Path("/proc/self/status")
    hwm = [line for line in status.read_text().splitlines() if line.startswith("VmHWM:")] if status.exists() else []
    rss_mb = int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "max_rss_mb": rss_mb, "bytes": Path(out).stat().st_size}))


def _export(mode: str, url: str, out: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--export-child", mode, "--url", url, "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bench(url: str, rows: int, repeat: int, workdir: Path) -> None:
    from securitynet.catalogue.stats import accuracy_stats

    with Catalogue(url) as cat:
        engine = cat.engine.url.get_backend_name()
        print(f"{engine}: filled {rows:,} entries in {fill(cat, rows):.1f} s", flush=True)
        refresh = timed(cat.refresh_statistics, repeat)
        view = timed(lambda: cat.sql("SELECT * FROM v_accuracy_per_dataset", max_rows=100, timeout=600), repeat)
        stats = timed(lambda: accuracy_stats(cat, by="dataset"), repeat)
        frame = timed(cat.to_dataframe, repeat)
        pandas_f = timed(lambda: _pandas_frame(url), repeat)
        if engine == "sqlite":
            best, best_label = timed(lambda: _pandas_quartiles(url), repeat), "pandas over sqlite3"
        else:

            def plain() -> Any:
                with cat.engine.connect() as conn:
                    return conn.execute(text(PG_QUARTILES)).all()

            best, best_label = timed(plain, repeat), "percentile_cont"
    theirs = _export("streamed", url, workdir / "theirs.parquet")
    ours = _export("ours", url, workdir / "ours.parquet")
    print(f"{engine} quartile view       {view:7.2f} s   {best_label:<19} {best:6.2f} s   ratio {view / best:5.2f}")
    print(f"{engine} accuracy_stats      {stats:7.2f} s   {best_label:<19} {best:6.2f} s   ratio {stats / best:5.2f}")
    print(
        f"{engine} refresh (at sync)   {refresh:7.2f} s   5 x {best_label:<15} {5 * best:6.2f} s   "
        f"ratio {refresh / (5 * best):5.2f}"
    )
    print(f"{engine} to_dataframe        {frame:7.2f} s   pd.read_sql         {pandas_f:6.2f} s   ratio {frame / pandas_f:5.2f}")
    print(
        f"{engine} export parquet      {ours['seconds']:7.2f} s {ours['max_rss_mb']:6.0f} MB   "
        f"one streamed query {theirs['seconds']:6.2f} s {theirs['max_rss_mb']:6.0f} MB   "
        f"ratio {ours['seconds'] / theirs['seconds']:5.2f} (memory {ours['max_rss_mb'] / theirs['max_rss_mb']:.2f})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-url", help="Also measure on this PostgreSQL database (emptied and refilled).")
    parser.add_argument("--skip-sqlite", action="store_true", help="Only the PostgreSQL figures.")
    parser.add_argument("--export-child", choices=("ours", "streamed"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        _export_child(args.export_child, args.url, args.out)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_sqlite:
            bench(f"sqlite:///{tmp}/catalogue.db", args.rows, args.repeat, Path(tmp))
        if args.pg_url:
            bench(args.pg_url, args.rows, args.repeat, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
