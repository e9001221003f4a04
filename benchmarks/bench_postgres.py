"""The statistics, DataFrame and export figures of ``bench_stats.py`` and the start-up of
``securitynet sql`` on a throwaway PostgreSQL server (the test suite's: the distribution's
binaries, loopback only, ``runuser -u postgres`` as root), filled with synthetic entries.

    python benchmarks/bench_postgres.py                 # 1,000,000 entries
    python benchmarks/bench_postgres.py --rows 100000   # a quick look

``securitynet sql`` refuses a superuser, so its start-up runs as the README's read-only role
(``SECURITYNET_SQL_DATABASE_URL``); the baseline is the same ``select 1`` from a fresh
``python -c "import psycopg; ..."``. Medians of ``--repeat`` fresh processes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_stats import bench  # noqa: E402

from tests.catalogue.pgreader import create_reader  # noqa: E402
from tests.pgserver import throwaway_server  # noqa: E402

BASELINE = "import psycopg, sys; c = psycopg.connect(sys.argv[1]); print(c.execute('select 1').fetchall())"


def _median(argv: list[str], env: dict[str, str], repeat: int) -> float:
    subprocess.run(argv, env=env, check=True, capture_output=True)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--startup-repeat", type=int, default=5)
    args = parser.parse_args()
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    with throwaway_server() as server, tempfile.TemporaryDirectory() as tmp:
        admin = create_engine(
            server.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text('CREATE DATABASE "bench"'))
        admin.dispose()
        url = make_url(server).set(database="bench").render_as_string(hide_password=False)
        from securitynet.catalogue.api import Catalogue

        with Catalogue(url):  # migrated, so that the reader's grants cover every table
            pass
        reader = create_reader(url)
        os.environ["SECURITYNET_SQL_DATABASE_URL"] = reader
        bench(url, args.rows, args.repeat, Path(tmp))

        env = {k: v for k, v in os.environ.items() if not k.startswith("SECURITYNET_")}
        env |= {
            "SECURITYNET_DATABASE_URL": url,
            "SECURITYNET_SQL_DATABASE_URL": reader,
            "SECURITYNET_HOME": tmp,
            "PYTHONPATH": str(ROOT),
        }
        plain = make_url(reader).set(drivername="postgresql").render_as_string(hide_password=False)
        baseline = _median([sys.executable, "-c", BASELINE, plain], env, args.startup_repeat)
        ours = _median(
            [sys.executable, "-m", "securitynet", "sql", "select 1"], env, args.startup_repeat
        )
        print(
            f"postgresql start-up: securitynet sql 'select 1' {ours * 1000:.0f} ms, "
            f"plain python + psycopg {baseline * 1000:.0f} ms, ratio {ours / baseline:.1f} "
            f"(medians of {args.startup_repeat})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
