"""The Ray executor against the in-process one on the same batch: the five real MNIST
checkpoints of ../shared (selected with --where, as a user would), the metric attacks on
N members and N non-members each (200 bootstrap resamples), results stored in a fresh
catalogue (``--force``).

Ray's cost is mostly fixed: starting the local cluster (``--cpus`` CPUs), then, in the
first batch, each worker process starting and importing torch and the model libraries
(seconds of CPU each; the in-process executor pays those imports once too, in its first
batch). So each executor runs the batch twice: the first batch of a session, and a later
one (Ray on the warm cluster). The in-process executor runs with torch's own threads;
each Ray task gets one CPU and one torch thread. The data set is loaded once
per batch and, on Ray, put in the object store once.

    PYTHONPATH=. python benchmarks/bench_eval_ray.py [--cpus 2] [--samples 2000]
"""

from __future__ import annotations

import argparse
import os
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
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    import ray

    work = Path(tempfile.mkdtemp(prefix="sn-ray-"))
    clones = clone_shared_checkpoints(args.shared, work / "clones")
    cat = Catalogue(settings=get_settings(home=work / "home", offline=True, data_dir=args.shared / "data"))
    for clone in clones.values():
        sn.add_github(clone, catalogue=cat)
    request = MembershipRequest(
        data=DataSpec(name="mnist"), members="train", nonmembers="test", max_samples=args.samples,
        config=MembershipConfig(attacks=["metric"]),
    )

    def batch(name: str, executor: InProcessExecutor | RayExecutor) -> float:
        t0 = time.perf_counter()
        report = evaluate(request, where="dataset = 'MNIST'", catalogue=cat, executor=executor, force=True)
        seconds = time.perf_counter() - t0
        print(f"{name:22s} {len(report.outcomes)} entries, {report.stored} results, {report.failed} failed: {seconds:6.1f} s")
        return seconds

    local_first = batch("in-process, first", InProcessExecutor())  # imports torch, timm, ... here
    local = batch("in-process, again", InProcessExecutor())
    t0 = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    start = time.perf_counter() - t0
    print(f"{'ray cluster start':22s} {start:6.1f} s ({args.cpus} CPUs)")
    first = batch("ray, first batch", RayExecutor())
    warm = batch("ray, warm cluster", RayExecutor())
    ray.shutdown()
    print(f"{os.cpu_count()} cores on this machine, {args.cpus} Ray CPUs, {args.samples} members + {args.samples} non-members per entry")
    print(f"first batch of a session, in-process / ray (cluster start included): {local_first / (start + first):.2f}x")
    print(f"first batch of a session, in-process / ray (cluster already up):     {local_first / first:.2f}x")
    print(f"a later batch, in-process / ray on the warm cluster:                 {local / warm:.2f}x")


if __name__ == "__main__":
    main()
