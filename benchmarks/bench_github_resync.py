"""Requests per entry for a GitHub sync, first and again with nothing changed upstream.

    python benchmarks/bench_github_resync.py --shared ../shared --repos 20

A loopback GitHub (tests/fakegithub.py: ../shared's recorded responses as templates) serves
``--repos`` repositories, each with three committed checkpoints, one Git LFS checkpoint,
a hubconf.py entrypoint and two releases of two checkpoint assets; ``securitynet sync
--source github`` runs twice. Prints the requests per entry of each run, how many of the
second were conditional (answered 304, free of GitHub's rate limit), and the ratio of
rate-limited requests between the runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HUBCONF = b'''
urls = {"a": "https://github.com/{repo}/releases/download/v2/a-0123abcd.pt"}
def net_a(pretrained=False):
    return urls["a"]
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--repos", type=int, default=20)
    args = parser.parse_args()

    from tests.fakegithub import FakeGithub

    with tempfile.TemporaryDirectory() as home, FakeGithub(page_size=1) as fake:
        fake.load_recorded(args.shared)
        os.environ.update(fake.settings_env(), SECURITYNET_HOME=home)
        names = [f"lab{i}/nets" for i in range(args.repos)]
        for i, name in enumerate(names):
            fake.add_repo(
                name,
                {f"ckpt/m{j}.pt": bytes([i, j]) * 2000 for j in range(3)} | {"hubconf.py": HUBCONF},
                lfs={"big/model.pth": bytes([i]) * 5000},
                releases={tag: {f"{tag}-{k}.pth": bytes([i, k]) * 1000 for k in range(2)} for tag in ("v1", "v2")},
            )
        from securitynet.catalogue.api import Catalogue

        cat = Catalogue()
        runs = []
        for label in ("first sync", "re-sync, unchanged"):
            before = len(fake.hits)
            started = time.perf_counter()
            (summary,) = cat.sync(["github"], options={"repositories": names})
            hits = fake.hits[before:]
            runs.append(hits)
            full = sum(1 for h in hits if h.status == 200)
            print(f"{label}: {summary.seen} entries, {len(hits)} requests ({len(hits) / summary.seen:.2f} per entry), "
                  f"{full} answered in full, {sum(1 for h in hits if h.status == 304)} with 304; "
                  f"{time.perf_counter() - started:.1f} s")
        costly = [sum(1 for h in run if h.status == 200 and "/api/" in h.path) for run in runs]
        print(f"rate-limited API requests: {costly[0]} then {costly[1]} "
              f"(ratio {costly[0] / max(costly[1], 1):.0f}x; conditional only: {costly[1] == 0})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
