"""Stealing throughput: target queries per second inside ``run_stealing`` against a bare
forward pass of the same net over the same images.

    python benchmarks/bench_stealing_throughput.py --queries 5000

The target has the layout of the public ``mnist_cnn.pt`` (LeNet-style, PROVENANCE.md in
../shared/checkpoints/github-mnist) with random weights: throughput does not depend on
them. The images are random 1 x 28 x 28 tensors, already preprocessed. The stealing run
trains one surrogate for one epoch at the full budget (its training time is not counted
in the query rate). Prints both rates and the ratio (1.0 means no querying overhead).
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
    args = parser.parse_args()
    torch.manual_seed(0)
    net = lenet()
    pool = torch.rand(args.queries, 1, 28, 28)
    test_x, test_y = torch.rand(256, 1, 28, 28), torch.randint(0, 10, (256,))

    with torch.no_grad():
        net(pool[:1024])  # warm-up, so neither side pays the first call
    started = time.perf_counter()
    with torch.no_grad():
        for chunk in pool.split(1024):
            net(chunk).exp()
    bare = args.queries / (time.perf_counter() - started)

    result = run_stealing(
        NetQuery(net, output="log_softmax"),
        lambda idx: pool[torch.from_numpy(np.asarray(idx))],
        args.queries,
        test_x,
        test_y,
        StealingConfig(budgets=[args.queries], epochs=1),
    )
    print(f"bare forward pass: {bare:,.0f} images/s")
    print(f"run_stealing queries: {result.queries_per_second:,.0f} queries/s")
    print(f"ratio (stealing / bare): {result.queries_per_second / bare:.2f}")


if __name__ == "__main__":
    main()
