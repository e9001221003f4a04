"""Neural Cleanse: time to a verdict with early stopping against the fixed schedule of the
same method on the same nets (the verdicts must agree), and labels batched against one
label at a time.

    python benchmarks/bench_neural_cleanse.py --shared ../shared --seeds 0 1 2

Per seed it trains the test suite's pair on real MNIST (3,000 train images; a small CNN
with a white 4 x 4 BadNets patch, 10 % poisoned, target 7, and its clean twin: see
``tests/attacks/mnist_backdoor.py``) and scans every label of both nets on 512 clean test
images with the tests' configuration (steps of 4 mini-batches of 32, at most 60 steps).
Prints per run the suspect (the flagged label with the highest anomaly index: the
verdict compared), the flagged labels, the target's anomaly index, the largest index among
labels below the median norm (the candidates), the steps and seconds; then the ratios
fixed / early-stopped and one-at-a-time / batched.
Torch runs on ``--threads`` threads (1 by default: these nets are too small to gain from
more, and a shared machine's other load does not skew the ratio as much).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from securitynet.attacks.backdoor import CleanseConfig, CleanseResult, neural_cleanse
from securitynet.attacks.membership.query import NetQuery
from tests.attacks.mnist_backdoor import TARGET, backdoor_pair, load_mnist

CONFIG = CleanseConfig(max_steps=60, batches_per_step=4, patience=3, early_stop_patience=6)


def line(name: str, result: CleanseResult) -> str:
    median = float(np.median(result.norms))
    below = [a for a, n in zip(result.anomaly_index, result.norms, strict=True) if n < median]
    target = result.anomaly_index[result.labels.index(TARGET)]
    return (
        f"  {name:<31} suspect={result.suspect!s:<4} flagged={result.flagged!s:<7} "
        f"index[{TARGET}]={target:5.2f} max index below the median={max(below):5.2f} "
        f"steps={result.total_steps:4d} seconds={result.seconds:7.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clean", type=int, default=512, help="clean test images scanned with")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_mnist(args.shared)
    clean = data.x_test[: args.clean]
    fixed_config = CONFIG.model_copy(update={"early_stop": False})
    totals = {"early": 0.0, "fixed": 0.0, "batched": 0.0, "single": 0.0}
    agree = True
    for seed in args.seeds:
        pair = backdoor_pair(data, seed)
        print(
            f"seed {seed}: backdoored net {pair.accuracy:.1%} clean accuracy, "
            f"{pair.attack_success:.1%} attack success; twin {pair.twin_accuracy:.1%}"
        )
        for name, net in (("backdoored", pair.net), ("clean twin", pair.twin)):
            early = neural_cleanse(NetQuery(net), clean, CONFIG)
            fixed = neural_cleanse(NetQuery(net), clean, fixed_config)
            print(line(f"{name}, early stopping", early))
            print(line(f"{name}, fixed schedule", fixed))
            totals["early"] += early.seconds
            totals["fixed"] += fixed.seconds
            agree &= early.suspect == fixed.suspect
            if name == "backdoored":
                single = neural_cleanse(
                    NetQuery(net), clean, CONFIG.model_copy(update={"labels_per_batch": 1})
                )
                print(line(f"{name}, one label at a time", single))
                totals["batched"] += early.seconds
                totals["single"] += single.seconds
                agree &= single.suspect == early.suspect
    print(
        f"time to a verdict: early stopping {totals['early']:.1f} s, fixed schedule "
        f"{totals['fixed']:.1f} s: {totals['fixed'] / totals['early']:.2f}x faster"
    )
    print(
        f"labels batched ({CONFIG.memory_budget_mb:.0f} MB budget) {totals['batched']:.1f} s, one at a time "
        f"{totals['single']:.1f} s: {totals['single'] / totals['batched']:.2f}x faster"
    )
    print("verdicts (the suspect label) agree" if agree else "VERDICTS DIFFER")


if __name__ == "__main__":
    main()
