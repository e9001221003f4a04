"""The Ray executor against the in-process one on the same batch: the five real MNIST
checkpoints of ../shared (selected with --where, as a user would), the metric attacks on
N members and N non-members each, results stored in a fresh catalogue (``--force``).

Ray's figure includes starting a local cluster (``--cpus`` workers); with more entries than
one process can keep busy it should win by about the number of CPUs.

    PYTHONPATH=. python benchmarks/bench_eval_ray.py [--cpus 4] [--samples 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import securitynet as sn
from securitynet.attacks.membership.run import MembershipConfig
from securitynet.catalogue.api import Catalogue
from securitynet.evaluate import (
    DataSpec,
    InProcessExecutor,
    MembershipRequest,
    RayExecutor,
    evaluate,
)
from securitynet.settings import get_settings
from tests.githubclones import clone_shared_checkpoints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--cpus", type=int, default=4)
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sn-ray-"))
    clones = clone_shared_checkpoints(args.shared, work / "clones")
    cat = Catalogue(settings=get_settings(home=work / "home", offline=True, data_dir=args.shared / "data"))
    for clone in clones.values():
        sn.add_github(clone, catalogue=cat)
    request = MembershipRequest(
        data=DataSpec(name="mnist"), members="train", nonmembers="test", max_samples=args.samples,
        config=MembershipConfig(attacks=["metric"]),
    )
    seconds = {}
    for name, executor in (("in-process", InProcessExecutor()), ("ray", RayExecutor(num_cpus=args.cpus))):
        t0 = time.perf_counter()
        report = evaluate(request, where="dataset = 'MNIST'", catalogue=cat, executor=executor, force=True)
        seconds[name] = time.perf_counter() - t0
        print(f"{name:10s} {len(report.outcomes)} entries, {report.stored} results, {report.failed} failed: {seconds[name]:.1f} s")
    print(f"in-process / ray: {seconds['in-process'] / seconds['ray']:.2f}x (ray with {args.cpus} CPUs, cluster start included)")


if __name__ == "__main__":
    main()
