"""Metric-based membership attacks against a bare batched forward pass over the same inputs.

The net is the real GianMan89 MNIST CNN architecture (random weights: speed does not depend
on them); the inputs are N preprocessed MNIST images split into members and non-members.

- bare:   ``net(x)`` over the batches under ``torch.no_grad()``, nothing else;
- attack: ``run_membership`` with the four metric attacks (class-dependent thresholds,
          cross-fitted), ``bootstrap=0``: the forward pass plus all scoring;
- attack + bootstrap: the same with the default 200 bootstrap resamples (the intervals);
- scoring only: the four attacks with their 200-resample intervals on posteriors computed
          beforehand: what the attacks add, measured directly (the differences above are
          within the noise of a loaded machine).

They take turns ``--repeat`` times; medians and the overhead ratio (aim: under 10 %), by
the wall clock and by this process's CPU time (the steadier figure on a shared machine;
with ``--threads 1`` it counts no thread spinning).

    PYTHONPATH=. python benchmarks/bench_mia_overhead.py [--n 10000] [--repeat 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from securitynet.attacks.membership import (
    GROUPS,
    MembershipConfig,
    MembershipPosteriors,
    NetQuery,
    Posteriors,
    evaluate_scores,
    metric_attack,
    roc_curve,
    run_membership,
)
from securitynet.data import load_dataset


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10),
    ).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    test = load_dataset("mnist", "test", data_dir=args.data_dir)
    x = (torch.from_numpy(test.images[: args.n].copy()).float() / 255 - 0.1307) / 0.3081
    y = torch.from_numpy(test.labels[: args.n])
    half = args.n // 2
    model = net()
    query = NetQuery(model, "logits")

    def batches(lo: int, hi: int):  # type: ignore[no-untyped-def]
        return lambda: ((x[i : i + args.batch_size], y[i : i + args.batch_size]) for i in range(lo, hi, args.batch_size))

    def bare() -> None:
        with torch.no_grad():
            for xb, _ in batches(0, args.n)():
                model(xb)

    def attack(bootstrap: int) -> None:
        config = MembershipConfig(attacks=["metric"], bootstrap=bootstrap)
        run_membership(query, batches(0, half), batches(half, args.n), config)

    clean = MembershipPosteriors(Posteriors(*query.posteriors(batches(0, half)())),
                                 Posteriors(*query.posteriors(batches(half, args.n)())))

    def scoring() -> None:  # what the attacks add to the forward pass, measured directly
        for name in GROUPS["metric"]:
            scored = metric_attack(name, clean)
            evaluate_scores(scored, bootstrap=200)
            roc_curve(scored.member, scored.nonmember)

    names = ("bare", "attack", "attack+bootstrap", "scoring only")
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    bare()  # warm-up
    for _ in range(args.repeat):
        for name, fn in zip(names, (bare, lambda: attack(0), lambda: attack(200), scoring), strict=True):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    print(f"{args.n} MNIST images, batch {args.batch_size}, {torch.get_num_threads()} threads, median of {args.repeat}")
    for clock, runs in (("wall", wall), ("CPU", cpu)):
        med = {k: statistics.median(v) for k, v in runs.items()}
        print(f"{clock} clock:")
        for name, seconds in med.items():
            print(f"  {name:18s} {seconds:7.3f} s  {args.n / seconds:9.0f} images/s")
        print(f"  overhead of the four metric attacks over the bare forward pass: {100 * (med['attack'] / med['bare'] - 1):+.1f} %")
        print(f"  with 200 bootstrap resamples per attack:                       {100 * (med['attack+bootstrap'] / med['bare'] - 1):+.1f} %")
        print(f"  scoring alone (four attacks, 200 resamples each) / bare pass:  {100 * med['scoring only'] / med['bare']:.1f} %")

if __name__ == "__main__":
    main()
