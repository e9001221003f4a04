"""The scientific checks of the membership attacks, seeded, on CPU, on real MNIST:

1. overfit vs regularised twin: an MLP trained to 100 % on 500 members leaks (confidence
   AUC), its twin with weight decay, dropout and few epochs much less;
2. adversarial training (Song, Shokri & Mittal, CCS 2019): a PGD-trained CNN leaks more
   than its naturally trained twin, and on it the attack on PGD examples (adv_confidence)
   beats the clean-input one;
3. LiRA beats the metric attacks at 1 % FPR on an overfit net with thousands of non-members.

Each prints its figures and the ratio or difference that decides it.

    PYTHONPATH=. python benchmarks/mia_scientific.py [--data-dir ../shared/data] [--checks 1 2 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from securitynet.attacks.membership import MembershipConfig, NetQuery, run_membership
from securitynet.attacks.membership.robust import PGDConfig, pgd
from securitynet.data import load_dataset

MEAN, STD = (0.1307,), (0.3081,)


def tensors(images, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(images.images[indices]).float() / 255
    return (x - MEAN[0]) / STD[0], torch.from_numpy(images.labels[indices])


def mlp(seed: int, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Dropout(dropout), nn.Linear(256, 10))


def cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, stride=2, padding=2), nn.ReLU(), nn.Conv2d(16, 32, 5, stride=2, padding=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 100), nn.ReLU(), nn.Linear(100, 10),
    )


def fit(net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float = 1e-3, wd: float = 0.0,
          adversarial: PGDConfig | None = None, seed: int = 0) -> nn.Module:
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=wd)
    gen = torch.Generator().manual_seed(seed)
    query = NetQuery(net, "logits")
    for _ in range(epochs):
        net.train()
        for i in torch.randperm(len(y), generator=gen).split(64):
            xb, yb = x[i], y[i]
            if adversarial is not None:
                net.eval()
                xb = pgd(query, xb, yb, adversarial, mean=MEAN, std=STD)
                net.train()
            opt.zero_grad()
            nn.functional.cross_entropy(net(xb), yb).backward()
            opt.step()
    return net.eval()


def attack(net: nn.Module, members, nonmembers, attacks: list[str], **config) -> dict:
    result = run_membership(
        NetQuery(net, "logits"), lambda: iter([members]), lambda: iter([nonmembers]),
        MembershipConfig(attacks=attacks, bootstrap=100, **config), mean=MEAN, std=STD,
    )
    if result.errors:
        raise SystemExit(f"attack errors: {result.errors}")
    return result.metrics


def split(train, test, n_members: int, n_nonmembers: int, seed: int):
    rng = np.random.default_rng(seed)
    m = rng.choice(len(train), n_members, replace=False)
    n = rng.choice(len(test), n_nonmembers, replace=False)
    return tensors(train, m), tensors(test, n)


def check_overfit(train, test, seeds: list[int]) -> None:
    print("1. overfit vs regularised twin (MLP, 100 members / 1000 non-members, confidence AUC)")
    for seed in seeds:
        members, nonmembers = split(train, test, 100, 1000, seed)
        over = fit(mlp(seed), *members, epochs=100, seed=seed)
        reg = fit(mlp(seed, dropout=0.5), *members, epochs=4, wd=0.5, seed=seed)
        a = attack(over, members, nonmembers, ["confidence"])["confidence"].auc
        b = attack(reg, members, nonmembers, ["confidence"])["confidence"].auc
        print(f"   seed {seed}: overfit {a.value:.3f} [{a.low:.3f}, {a.high:.3f}]  regularised {b.value:.3f} "
              f"[{b.low:.3f}, {b.high:.3f}]  difference {a.value - b.value:+.3f}")


def check_adversarial(train, test, seeds: list[int], n: int, epochs: int, eps: float) -> None:
    print(f"2. PGD-trained vs natural CNN ({n} members / {n} non-members, eps {eps}, {epochs} epochs)")
    pgd_train = PGDConfig(eps=eps, steps=5, step_size=2.5 * eps / 5)
    for seed in seeds:
        members, nonmembers = split(train, test, n, n, seed)
        t0 = time.perf_counter()
        natural = fit(cnn(seed), *members, epochs=epochs, seed=seed)
        robust = fit(cnn(seed), *members, epochs=epochs, seed=seed, adversarial=pgd_train)
        names = ["confidence", "adv_confidence"]
        nat = attack(natural, members, nonmembers, names, pgd={"eps": eps, "steps": 10})
        rob = attack(robust, members, nonmembers, names, pgd={"eps": eps, "steps": 10})
        print(f"   seed {seed} ({time.perf_counter() - t0:.0f} s): natural clean {nat['confidence'].auc.value:.3f} "
              f"adv {nat['adv_confidence'].auc.value:.3f} | PGD-trained clean {rob['confidence'].auc.value:.3f} "
              f"adv {rob['adv_confidence'].auc.value:.3f} [{rob['adv_confidence'].auc.low:.3f}, {rob['adv_confidence'].auc.high:.3f}]"
              f"  best(robust) - best(natural) {max(rob['confidence'].auc.value, rob['adv_confidence'].auc.value) - max(nat['confidence'].auc.value, nat['adv_confidence'].auc.value):+.3f}")


def check_lira(train, test, seed: int, n_members: int, n_nonmembers: int, shadows: int) -> None:
    print(f"3. LiRA vs metric attacks at 1 % FPR (MLP overfit on {n_members}, {n_nonmembers} non-members, {shadows} shadows)")
    members, nonmembers = split(train, test, n_members, n_nonmembers, seed)
    target = fit(mlp(seed), *members, epochs=60, seed=seed)
    t0 = time.perf_counter()
    metrics = attack(target, members, nonmembers, ["metric", "lira"],
                     shadow={"n_shadow": shadows, "epochs": 60, "batch_size": 64, "lr": 1e-3}, budget_s=3600)
    for name, m in metrics.items():
        print(f"   {name:18s} AUC {m.auc.value:.3f}  TPR@1%FPR {m.tpr_at_1_fpr.value:.3f} [{m.tpr_at_1_fpr.low:.3f}, {m.tpr_at_1_fpr.high:.3f}]"
              f"  TPR@0.1%FPR {m.tpr_at_0_1_fpr.value:.3f}")
    best_metric = max(metrics[n].tpr_at_1_fpr.value for n in ("confidence", "entropy", "modified_entropy"))
    print(f"   LiRA online / best metric attack at 1 % FPR: {metrics['lira_online'].tpr_at_1_fpr.value / max(best_metric, 1e-9):.2f}x "
          f"({time.perf_counter() - t0:.0f} s with shadow training)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--checks", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--adv-n", type=int, default=1000)
    parser.add_argument("--adv-epochs", type=int, default=20)
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--shadows", type=int, default=16)
    parser.add_argument("--lira-members", type=int, default=1000)
    parser.add_argument("--lira-nonmembers", type=int, default=5000)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    train_set, test_set = load_dataset("mnist", "train", data_dir=args.data_dir), load_dataset("mnist", "test", data_dir=args.data_dir)
    if 1 in args.checks:
        check_overfit(train_set, test_set, args.seeds)
    if 2 in args.checks:
        check_adversarial(train_set, test_set, args.seeds, args.adv_n, args.adv_epochs, args.eps)
    if 3 in args.checks:
        check_lira(train_set, test_set, args.seeds[0], args.lira_members, args.lira_nonmembers, args.shadows)


if __name__ == "__main__":
    main()
