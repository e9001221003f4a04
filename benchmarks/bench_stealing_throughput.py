"""Stealing throughput: target queries per second inside ``run_stealing`` against a bare
forward pass of the same net over the same images, per query-selection policy.

    python benchmarks/bench_stealing_throughput.py --queries 5000
    python benchmarks/bench_stealing_throughput.py --queries 500 --policies random,uncertainty,kcenter,adaptive

The target has the layout of the public ``mnist_cnn.pt`` (LeNet-style, PROVENANCE.md in
../shared/checkpoints/github-mnist) with random weights: throughput does not depend on
them. The images are random 1 x 28 x 28 tensors, already preprocessed. The stealing run
trains one surrogate for one epoch at the full budget (its training time is not counted).
Per policy it prints the target's query rate and its ratio to the bare pass (1.0 means no
querying overhead), and the rate of queries chosen and answered (an active policy's
selector refinement and scoring included) with its ratio to the bare pass.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from securitynet.attacks.membership.query import NetQuery
from securitynet.attacks.stealing import StealingConfig, run_stealing


def lenet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        nn.LogSoftmax(dim=1),
    ).eval()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--policies", default="random", help="comma-separated: random,uncertainty,kcenter,adaptive")
    parser.add_argument("--round-size", type=int, default=100)
    args = parser.parse_args()
    torch.manual_seed(0)
    net = lenet()
    pool = torch.rand(max(args.queries, 10_000), 1, 28, 28)
    test_x, test_y = torch.rand(256, 1, 28, 28), torch.randint(0, 10, (256,))

    with torch.no_grad():
        net(pool[:1024])  # warm-up, so neither side pays the first call
    started = time.perf_counter()
    with torch.no_grad():
        for chunk in pool[: args.queries].split(1024):
            net(chunk).exp()
    bare = args.queries / (time.perf_counter() - started)
    print(f"bare forward pass: {bare:,.0f} images/s")

    for policy in args.policies.split(","):
        result = run_stealing(
            NetQuery(net, output="log_softmax"),
            lambda idx: pool[torch.from_numpy(np.asarray(idx))],
            len(pool),
            test_x,
            test_y,
            StealingConfig(budgets=[args.queries], epochs=1, policy=policy, round_size=args.round_size),
        )
        print(
            f"{policy}: run_stealing queries {result.queries_per_second:,.0f}/s "
            f"(ratio stealing / bare {result.queries_per_second / bare:.2f}); "
            f"chosen and answered {result.chosen_per_second:,.0f}/s "
            f"(ratio {result.chosen_per_second / bare:.3f})"
        )


if __name__ == "__main__":
    main()
