"""Wall time of the everyday read commands, each in a fresh process, against the same
question asked in plain Python with ``sqlite3``.

    python benchmarks/bench_startup.py                     # syncs a catalogue offline first
    python benchmarks/bench_startup.py --database PATH     # an already synced SQLite file

For each of ``list``, ``show timm:resnet50.a1_in1k``, ``sql "select 1"`` and ``db current``
it starts ``python -m securitynet ...`` ``--repeat`` times (after one warm-up run, so the
file cache is warm) and prints the median wall time; the baseline is
``python -c "import sqlite3; ...select the first 50 rows of entry..."``. The last line is
the comparable figure: the slowest command's median and its ratio to the baseline. Beside
each wall time is the median CPU time (user + system) of the process, which a loaded
machine inflates less than it does the wall time.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS: dict[str, list[str]] = {
    "list": ["list"],
    "show": ["show", "timm:resnet50.a1_in1k"],
    "sql": ["sql", "select 1"],
    "db current": ["db", "current"],
}
BASELINE = (
    "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
    "rows = c.execute('select id, dataset, top1 from entry order by top1 desc limit 50').fetchall(); "
    "print(len(rows))"
)


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _median(argv: list[str], env: dict[str, str], repeat: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``repeat`` fresh processes."""
    subprocess.run(argv, env=env, check=True, capture_output=True)  # warm the file cache
    times, cpu = [], []
    for _ in range(repeat):
        started, cpu_before = time.perf_counter(), _cpu()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
        cpu.append(_cpu() - cpu_before)
    return statistics.median(times), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", type=Path, help="A synced SQLite catalogue file.")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith("SECURITYNET_")}
    with tempfile.TemporaryDirectory() as tmp:
        database = args.database
        if database is None:
            database = Path(tmp) / "catalogue.db"
            print("syncing torchvision, timm and imgclsmob offline into a temporary catalogue ...")
            sync_env = {**env, "SECURITYNET_DATABASE_URL": f"sqlite:///{database}"}
            subprocess.run(
                [sys.executable, "-m", "securitynet", "sync", "--offline"],
                env=sync_env,
                check=True,
                capture_output=True,
            )
        env["SECURITYNET_DATABASE_URL"] = f"sqlite:///{database.resolve()}"
        env["SECURITYNET_HOME"] = tmp
        baseline, baseline_cpu = _median(
            [sys.executable, "-c", BASELINE, str(database)], env, args.repeat
        )
        print(
            f"{'plain python + sqlite3':>24}: {baseline * 1000:7.0f} ms wall "
            f"{baseline_cpu * 1000:5.0f} ms CPU (medians of {args.repeat})"
        )
        medians = {}
        for label, argv in COMMANDS.items():
            medians[label], cpu = _median(
                [sys.executable, "-m", "securitynet", *argv], env, args.repeat
            )
            print(
                f"{'securitynet ' + label:>24}: {medians[label] * 1000:7.0f} ms wall "
                f"{cpu * 1000:5.0f} ms CPU ({medians[label] / baseline:.1f}x wall)"
            )
        slowest = max(medians, key=lambda k: medians[k])
        print(
            f"slowest everyday command: {slowest} {medians[slowest] * 1000:.0f} ms median wall, "
            f"{medians[slowest] / baseline:.1f}x plain sqlite3 ({baseline * 1000:.0f} ms)"
        )


if __name__ == "__main__":
    main()
