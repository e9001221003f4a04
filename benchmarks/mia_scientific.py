"""The scientific checks of the membership attacks, seeded, on CPU, on real MNIST:

1. overfit vs regularised twin: an MLP trained to 100 % on 500 members leaks (confidence
   AUC), its twin with weight decay, dropout and few epochs much less;
2. adversarial training (Song, Shokri & Mittal, CCS 2019): a PGD-trained CNN leaks more
   than its naturally trained twin, and on it the attack on PGD examples (adv_confidence)
   beats the clean-input one (the gain with a paired-bootstrap interval: both AUCs on the
   same resampled members and non-members);
3. LiRA beats the metric attacks at 1 % FPR on an overfit net with thousands of non-members;
4. verifiable defence (the same paper): an IBP-trained MLP and its natural twin, the
   attack on verified worst-case predictions (verified_confidence) against the clean one.

Each prints its figures and the ratio or difference that decides it.

    PYTHONPATH=. python benchmarks/mia_scientific.py [--data-dir ../shared/data] [--checks 1 2 3 4]
        [--dataset mnist|fashion-mnist] [--adv-n 200 --adv-nonmembers 1000 --adv-epochs 60 --eps 0.1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from securitynet.attacks.membership import MembershipConfig, NetQuery, auc, run_membership
from securitynet.attacks.membership.robust import PGDConfig, adversarial_batches, pgd_train
from securitynet.attacks.membership.signals import Posteriors, signal
from securitynet.attacks.membership.verified import (
    ibp_train,
    verified_posteriors,
)
from securitynet.data import load_dataset

MEAN, STD = (0.1307,), (0.3081,)
NORMALISATION = {"mnist": ((0.1307,), (0.3081,)), "fashion-mnist": ((0.2860,), (0.3530,))}


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
    """The library's training loop (PGD examples per batch where ``adversarial`` is given)."""
    return pgd_train(net, x, y, epochs=epochs, mean=MEAN, std=STD, adversarial=adversarial, lr=lr,
                     weight_decay=wd, seed=seed)


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


def paired_gain(scores: dict[str, tuple[np.ndarray, np.ndarray]], better: str, base: str, draws: int = 300) -> tuple[float, float, float]:
    """AUC(better) - AUC(base) with a 95 % bootstrap interval, both AUCs on the same resample."""
    (bm, bn), (cm, cn) = scores[better], scores[base]
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(draws):
        i, j = rng.integers(0, len(bm), len(bm)), rng.integers(0, len(bn), len(bn))
        diffs.append(auc(bm[i], bn[j]) - auc(cm[i], cn[j]))
    return auc(bm, bn) - auc(cm, cn), float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))


def confidence_scores(net: nn.Module, members, nonmembers, *, pgd_eps: float | None = None,
                      verified_eps: float | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Confidence scores of members and non-members: clean, on PGD inputs, on the verified worst case."""
    query = NetQuery(net, "logits")
    out = {}
    sources = {"clean": lambda d: query.posteriors(iter([d]))}
    if pgd_eps is not None:
        sources["adv"] = lambda d: query.posteriors(adversarial_batches(query, iter([d]), PGDConfig(eps=pgd_eps, steps=10), mean=MEAN, std=STD))
    if verified_eps is not None:
        sources["verified"] = lambda d: verified_posteriors(query, iter([d]), verified_eps, mean=MEAN, std=STD)
    for name, posteriors in sources.items():
        m, n = (signal("confidence", Posteriors(*posteriors(d))) for d in (members, nonmembers))
        out[name] = (m, n)
    return out


def check_adversarial(train, test, seeds: list[int], n: int, n_non: int, epochs: int, eps: float) -> None:
    print(f"2. PGD-trained vs natural CNN ({n} members / {n_non} non-members, eps {eps}, {epochs} epochs; confidence AUC)")
    training_attack = PGDConfig(eps=eps, steps=5, step_size=2.5 * eps / 5)
    for seed in seeds:
        members, nonmembers = split(train, test, n, n_non, seed)
        t0 = time.perf_counter()
        natural = fit(cnn(seed), *members, epochs=epochs, seed=seed)
        robust = fit(cnn(seed), *members, epochs=epochs, seed=seed, adversarial=training_attack)
        nat = confidence_scores(natural, members, nonmembers, pgd_eps=eps)
        rob = confidence_scores(robust, members, nonmembers, pgd_eps=eps)
        gain, low, high = paired_gain(rob, "adv", "clean")
        best = max(auc(*rob["clean"]), auc(*rob["adv"])) - max(auc(*nat["clean"]), auc(*nat["adv"]))
        print(f"   seed {seed} ({time.perf_counter() - t0:.0f} s): natural clean {auc(*nat['clean']):.3f} adv {auc(*nat['adv']):.3f}"
              f" | PGD-trained clean {auc(*rob['clean']):.3f} adv {auc(*rob['adv']):.3f}, gain {gain:+.3f} [{low:+.3f}, {high:+.3f}]"
              f" | best(PGD-trained) - best(natural) {best:+.3f}")


def ibp_fit(net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, epochs: int, seed: int = 0) -> nn.Module:
    """IBP training (Gowal et al. 2018), the library's, at MNIST's normalisation."""
    return ibp_train(net, x, y, eps=eps, epochs=epochs, mean=MEAN, std=STD, seed=seed)


def check_verified(train, test, seeds: list[int], n: int, n_non: int, epochs: int, eps: float) -> None:
    print(f"4. IBP-trained vs natural MLP ({n} members / {n_non} non-members, eps {eps}, {epochs} epochs; confidence AUC)")
    for seed in seeds:
        members, nonmembers = split(train, test, n, n_non, seed)
        t0 = time.perf_counter()
        natural = fit(mlp(seed), *members, epochs=epochs, seed=seed)
        certified = ibp_fit(mlp(seed), *members, eps=eps, epochs=epochs, seed=seed)
        nat = confidence_scores(natural, members, nonmembers, verified_eps=eps)
        cer = confidence_scores(certified, members, nonmembers, verified_eps=eps)
        gain, low, high = paired_gain(cer, "verified", "clean")
        verified_acc = [float((s > 0.5).mean()) for s in cer["verified"]]
        print(f"   seed {seed} ({time.perf_counter() - t0:.0f} s): natural clean {auc(*nat['clean']):.3f} verified {auc(*nat['verified']):.3f}"
              f" | IBP-trained clean {auc(*cer['clean']):.3f} verified {auc(*cer['verified']):.3f}, gain {gain:+.3f} [{low:+.3f}, {high:+.3f}]"
              f" | worst-case confidence > 0.5 on members {verified_acc[0]:.2f}, non-members {verified_acc[1]:.2f}")


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
    parser.add_argument("--dataset", choices=sorted(NORMALISATION), default="mnist")
    parser.add_argument("--adv-n", type=int, default=200)
    parser.add_argument("--adv-nonmembers", type=int, default=1000)
    parser.add_argument("--adv-epochs", type=int, default=60)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--ibp-epochs", type=int, default=100)
    parser.add_argument("--shadows", type=int, default=16)
    parser.add_argument("--lira-members", type=int, default=1000)
    parser.add_argument("--lira-nonmembers", type=int, default=5000)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    global MEAN, STD
    MEAN, STD = NORMALISATION[args.dataset]
    train_set, test_set = load_dataset(args.dataset, "train", data_dir=args.data_dir), load_dataset(args.dataset, "test", data_dir=args.data_dir)
    if 1 in args.checks:
        check_overfit(train_set, test_set, args.seeds)
    if 2 in args.checks:
        check_adversarial(train_set, test_set, args.seeds, args.adv_n, args.adv_nonmembers, args.adv_epochs, args.eps)
    if 3 in args.checks:
        check_lira(train_set, test_set, args.seeds[0], args.lira_members, args.lira_nonmembers, args.shadows)
    if 4 in args.checks:
        check_verified(train_set, test_set, args.seeds, args.adv_n, args.adv_nonmembers, args.ibp_epochs, args.eps)


if __name__ == "__main__":
    main()
