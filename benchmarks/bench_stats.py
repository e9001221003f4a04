"""Statistics, DataFrames and exports of a synthetic 1,000,000-entry catalogue, each against the
best alternative on the same engine, as ratios (ours / theirs; under 3 is the aim).

    python benchmarks/bench_stats.py                    # SQLite (a temporary file)
    python benchmarks/bench_stats.py --rows 200000      # smaller, for a quick look
    python benchmarks/bench_stats.py --pg-url postgresql://user@host/db   # PostgreSQL too

Pairs measured (median of ``--repeat`` runs after one warm-up):

- ``v_accuracy_per_dataset`` (the quartile view) against, on SQLite, pandas over sqlite3
  (``dataset, top1`` read and ``groupby().quantile``) and, on PostgreSQL, one
  ``percentile_cont`` query on ``entry``.
- ``accuracy_stats(cat, by="dataset")`` against the same pandas-over-sqlite3 figure.
- ``Catalogue.to_dataframe()`` against ``pd.read_sql`` of the same columns on a plain sqlite3
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


def _pandas_quartiles(path: str) -> Any:
    import sqlite3

    import pandas as pd

    with sqlite3.connect(path) as conn:
        frame = pd.read_sql(PANDAS_QUARTILES, conn)
    return frame.groupby("dataset")["top1"].describe()


def _pandas_frame(path: str) -> Any:
    import sqlite3

    import pandas as pd

    from securitynet.catalogue.queries import SUMMARY_COLUMNS

    with sqlite3.connect(path) as conn:
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
        import sqlite3

        import pyarrow as pa
        import pyarrow.parquet as pq

        from securitynet.catalogue.export import EXPORT_COLUMNS, _arrow_schema

        entry_columns = [c for c in EXPORT_COLUMNS if c not in ("training_chain", "claims", "weights_url", "weights_sha256")]
        schema = _arrow_schema()
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn, pq.ParquetWriter(out, schema) as writer:
            cursor = conn.execute(f"SELECT {', '.join(entry_columns)} FROM entry ORDER BY id")
            while rows := cursor.fetchmany(5000):
                columns = list(zip(*rows, strict=True))
                data = {c: list(v) for c, v in zip(entry_columns, columns, strict=True)}
                n = len(rows)
                data.update(training_chain=[None] * n, claims=[0] * n, weights_url=[None] * n, weights_sha256=[None] * n)
                for key in ("first_seen", "last_seen"):
                    naive = pa.array(data[key], pa.string()).cast(pa.timestamp("us"))
                    data[key] = naive.cast(pa.timestamp("us", tz="UTC"))  # stored as UTC
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


def bench_sqlite(rows: int, repeat: int) -> None:
    from securitynet.catalogue.stats import accuracy_stats

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/catalogue.db"
        url = f"sqlite:///{path}"
        with Catalogue(url) as cat:
            print(f"sqlite: filled {rows:,} entries in {fill(cat, rows):.1f} s")
            view = timed(lambda: cat.sql("SELECT * FROM v_accuracy_per_dataset", max_rows=100, timeout=600), repeat)
            pandas_q = timed(lambda: _pandas_quartiles(path), repeat)
            stats = timed(lambda: accuracy_stats(cat, by="dataset"), repeat)
            frame = timed(cat.to_dataframe, repeat)
            pandas_f = timed(lambda: _pandas_frame(path), repeat)
        theirs = _export("streamed", url, Path(tmp) / "theirs.parquet")
        ours = _export("ours", url, Path(tmp) / "ours.parquet")
    print(f"sqlite quartile view       {view:7.2f} s   pandas over sqlite3 {pandas_q:6.2f} s   ratio {view / pandas_q:5.2f}")
    print(f"sqlite accuracy_stats      {stats:7.2f} s   pandas over sqlite3 {pandas_q:6.2f} s   ratio {stats / pandas_q:5.2f}")
    print(f"sqlite to_dataframe        {frame:7.2f} s   pd.read_sql         {pandas_f:6.2f} s   ratio {frame / pandas_f:5.2f}")
    print(
        f"sqlite export parquet      {ours['seconds']:7.2f} s {ours['max_rss_mb']:6.0f} MB   "
        f"one streamed query {theirs['seconds']:6.2f} s {theirs['max_rss_mb']:6.0f} MB   "
        f"ratio {ours['seconds'] / theirs['seconds']:5.2f} (memory {ours['max_rss_mb'] / theirs['max_rss_mb']:.2f})"
    )


def bench_postgres(url: str, rows: int, repeat: int) -> None:
    from sqlalchemy import text

    with Catalogue(url) as cat:
        print(f"postgresql: filled {rows:,} entries in {fill(cat, rows):.1f} s")

        def plain() -> Any:
            with cat.engine.connect() as conn:
                return conn.execute(text(PG_QUARTILES)).all()

        view = timed(lambda: cat.sql("SELECT * FROM v_accuracy_per_dataset", max_rows=100, timeout=600), repeat)
        pct = timed(plain, repeat)
    print(f"postgresql quartile view   {view:7.2f} s   percentile_cont     {pct:6.2f} s   ratio {view / pct:5.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-url", help="Also measure on this PostgreSQL database (emptied and refilled).")
    parser.add_argument("--export-child", choices=("ours", "streamed"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export_child:
        _export_child(args.export_child, args.url, args.out)
        return 0
    bench_sqlite(args.rows, args.repeat)
    if args.pg_url:
        bench_postgres(args.pg_url, args.rows, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
