"""Wall time of yielding every record of the offline registry scrapers (no database).

    python benchmarks/scrape_registries.py [TIMM_RESULTS_DIR]

Runs in a fresh interpreter, so the figure includes importing torch, torchvision and timm,
as the first sync does. Prints per-source counts and times on stderr and one figure on
stdout: total seconds.
"""

from __future__ import annotations

import sys
import time

START = time.perf_counter()


def main() -> None:
    from securitynet.scrapers import DEFAULT_SOURCES, get_scraper
    from securitynet.scrapers.base import SyncContext
    from securitynet.settings import get_settings

    options = {"timm_results": sys.argv[1]} if len(sys.argv) > 1 else {}
    settings = get_settings(offline=True)
    for name in DEFAULT_SOURCES:
        begin = time.perf_counter()
        count = sum(1 for _ in get_scraper(name).iter_records(SyncContext(settings=settings, options=options)))
        print(f"{name}: {count} records in {time.perf_counter() - begin:.2f} s", file=sys.stderr)
    print(f"{time.perf_counter() - START:.2f}")


if __name__ == "__main__":
    main()
