"""Our membership attacks against the Adversarial Robustness Toolbox's on the same nets and data.

Two real checkpoints of ../shared, loaded through our loader from a catalogue (as a user
gets them): john-samurai's deliberately overfitted MNIST CNN with its 50 reconstructed
members (``random_split:42:50``) against test images, and the normally trained
``mnist_cnn.pt`` (members from the train split). Both libraries see the same preprocessed
images and labels; the learned attacks of both are trained and scored on the same two
cross-fitting halves (each half scored by a model trained on the other). Pairs:

- ART ``MembershipInferenceBlackBoxRuleBased`` (member = correctly classified) vs our
  ``correctness`` attack (the same rule) and our ``confidence`` attack;
- ART ``MembershipInferenceBlackBox`` (its learned attack: the default ``nn`` model on the
  posterior and the one-hot label, its default 100 epochs, no class weighting) vs our
  ML-Leaks MLPs ``mlp_sorted`` and ``mlp_top3``.

Each side is timed from images to membership scores (forward passes included; ours with
``bootstrap=0``: ART reports no intervals), median of ``--repeat`` runs. The AUCs of both
sides come from the same metric code (``evaluate_scores``, 95 % bootstrap intervals).

    pip install -c constraints.txt '.[bench]'   # ART, for this benchmark only
    PYTHONPATH=. python benchmarks/bench_mia_art.py [--repeat 3] [--normal-samples 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import securitynet as sn
from securitynet.attacks.membership import (
    MembershipPosteriors,
    NetQuery,
    Posteriors,
    ScoredMembership,
    evaluate_scores,
    metric_attack,
)
from securitynet.attacks.membership.learned import learned_attack
from securitynet.attacks.membership.signals import cross_fit_halves
from securitynet.catalogue.api import Catalogue
from securitynet.data.sets import iter_batches, load_dataset
from securitynet.evaluate import DataSpec, MembershipRequest
from securitynet.evaluate.tasks import membership_protocol
from securitynet.loader import load_entry
from securitynet.settings import get_settings
from tests.githubclones import clone_shared_checkpoints

REPO = "github:john-samurai/AttackDefenseMNIST-trainedModel"
BATCH = 128  # ART's predict default; ours is given the same
SEED = 0


class Probabilities(nn.Module):
    """The net with its output turned into class probabilities, what ART's attacks read."""

    def __init__(self, net: nn.Module, output: str) -> None:
        super().__init__()
        self.net, self.output = net, output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if self.output == "softmax":
            return out
        return out.exp() if self.output == "log_softmax" else out.softmax(dim=-1)


def batches(x: np.ndarray, y: np.ndarray) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    return ((tx[i : i + BATCH], ty[i : i + BATCH]) for i in range(0, len(ty), BATCH))


def images(cat: Catalogue, loaded: Any, request: MembershipRequest) -> tuple[np.ndarray, ...]:
    """Members' and non-members' preprocessed images and labels, as numpy arrays."""
    _, members, nonmembers = membership_protocol(request)
    out: list[np.ndarray] = []
    for sel in (members, nonmembers):
        data = load_dataset("mnist", sel.split, settings=cat.settings)
        xs, ys = zip(*iter_batches(data, sel.indices, loaded.transform, batch_size=1024), strict=True)
        out += [torch.cat(xs).numpy().astype(np.float32), torch.cat(ys).numpy().astype(np.int64)]
    return tuple(out)


def timed(fn: Callable[[], ScoredMembership], repeat: int) -> tuple[ScoredMembership, float, float]:
    """The last run's scores, and the median wall and CPU (this process, all threads) seconds."""
    wall, cpu, scored = [], [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        scored = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    assert scored is not None
    return scored, statistics.median(wall), statistics.median(cpu)


def compare(
    query: NetQuery, classifier: Any, xm: np.ndarray, ym: np.ndarray, xn: np.ndarray, yn: np.ndarray, *, repeat: int
) -> None:
    """Time and rate ART's attacks and ours on one net's members and non-members."""
    from art.attacks.inference.membership_inference import (
        MembershipInferenceBlackBox,
        MembershipInferenceBlackBoxRuleBased,
    )

    onehot_m, onehot_n = np.eye(10, dtype=np.float32)[ym], np.eye(10, dtype=np.float32)[yn]
    halves = cross_fit_halves(len(ym), len(yn), SEED)

    def ours(attack: str) -> ScoredMembership:
        """What run_membership scores for ``attack``: posteriors from the images, then the attack."""
        target = MembershipPosteriors(
            Posteriors(*query.posteriors(batches(xm, ym))), Posteriors(*query.posteriors(batches(xn, yn)))
        )
        if attack.startswith("mlp_"):
            return learned_attack(attack.removeprefix("mlp_"), target, seed=SEED)
        return metric_attack(attack, target, seed=SEED)

    def art_rule_based() -> ScoredMembership:
        attack = MembershipInferenceBlackBoxRuleBased(classifier)
        pm = attack.infer(xm, onehot_m, probabilities=True)[:, 1]
        pn = attack.infer(xn, onehot_n, probabilities=True)[:, 1]
        return ScoredMembership(pm.astype(np.float64), pn.astype(np.float64))

    def art_black_box() -> ScoredMembership:
        sm, sn_ = np.zeros(len(ym)), np.zeros(len(yn))
        for (fit_m, fit_n), (use_m, use_n) in (halves, halves[::-1]):
            torch.manual_seed(SEED)
            attack = MembershipInferenceBlackBox(classifier, attack_model_type="nn")
            attack.fit(x=xm[fit_m], y=onehot_m[fit_m], test_x=xn[fit_n], test_y=onehot_n[fit_n])
            sm[use_m] = attack.infer(xm[use_m], onehot_m[use_m], probabilities=True).ravel()
            sn_[use_n] = attack.infer(xn[use_n], onehot_n[use_n], probabilities=True).ravel()
        return ScoredMembership(sm, sn_)

    rows: list[tuple[str, float, float, Any]] = []
    for name, fn in (
        ("ART rule-based", art_rule_based),
        ("ours correctness", lambda: ours("correctness")),
        ("ours confidence", lambda: ours("confidence")),
        ("ART black-box (nn)", art_black_box),
        ("ours mlp_sorted", lambda: ours("mlp_sorted")),
        ("ours mlp_top3", lambda: ours("mlp_top3")),
    ):
        scored, wall, cpu = timed(fn, repeat)
        metrics = evaluate_scores(scored, seed=SEED)
        rows.append((name, wall, cpu, metrics))
        print(f"{'':24s} {name:22s} {wall:8.2f} {cpu:8.2f}  "
              f"{metrics.auc.value:.3f} [{metrics.auc.low:.3f}, {metrics.auc.high:.3f}]")
    by = {name: (w, c, m) for name, w, c, m in rows}
    for ours_name, art_name in (("ours correctness", "ART rule-based"), ("ours confidence", "ART rule-based"),
                                ("ours mlp_sorted", "ART black-box (nn)"), ("ours mlp_top3", "ART black-box (nn)")):
        (w_o, c_o, m_o), (w_a, c_a, m_a) = by[ours_name], by[art_name]
        print(f"{'':24s} {ours_name} vs {art_name}: ART time / ours {w_a / w_o:5.2f}x wall, {c_a / c_o:5.2f}x CPU; "
              f"AUC ours / ART {m_o.auc.value / m_a.auc.value:.3f} ({m_o.auc.value:.3f} vs {m_a.auc.value:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--overfitted-nonmembers", type=int, default=500)
    parser.add_argument("--normal-samples", type=int, default=2000, help="members and non-members of the normal net")
    args = parser.parse_args()
    try:
        from art.estimators.classification import PyTorchClassifier
    except ImportError:
        print("skipped: the Adversarial Robustness Toolbox is not installed "
              "(pip install -c constraints.txt '.[bench]' installs it for the benchmarks only)")
        sys.exit(0)
    import logging

    if args.threads:
        torch.set_num_threads(args.threads)

    logging.getLogger("art").setLevel(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="sn-art-"))
    clones = clone_shared_checkpoints(args.shared, work / "clones")
    cat = Catalogue(settings=get_settings(home=work / "home", offline=True, data_dir=args.shared / "data"))
    for clone in clones.values():
        sn.add_github(clone, catalogue=cat)
    nets = [
        ("overfitted (50 members)", f"{REPO}/mnist_cnn_overfitted.pt", "random_split:42:50", args.overfitted_nonmembers),
        ("normal (train split)", f"{REPO}/mnist_cnn.pt", "train", args.normal_samples),
    ]
    print(f"torch threads {torch.get_num_threads()}, median of {args.repeat} runs, seed {SEED}")
    print(f"{'net':24s} {'attack':22s} {'wall s':>8s} {'CPU s':>8s}  {'AUC [95 % CI]':>22s}")
    for label, entry_id, members, samples in nets:
        loaded = load_entry(cat.get(entry_id), device="cpu", settings=cat.settings)
        output = loaded.spec.output or "logits"
        request = MembershipRequest(data=DataSpec(name="mnist"), members=members, nonmembers="test", max_samples=samples)
        xm, ym, xn, yn = images(cat, loaded, request)
        query = NetQuery(loaded.net, output)
        classifier = PyTorchClassifier(
            model=Probabilities(loaded.net, output), loss=nn.CrossEntropyLoss(), input_shape=xm.shape[1:],
            nb_classes=10, device_type="cpu",
        )
        print(f"{label:24s} {len(ym)} members, {len(yn)} non-members; accuracy "
              f"{(classifier.predict(xm, batch_size=BATCH).argmax(1) == ym).mean():.3f} / "
              f"{(classifier.predict(xn, batch_size=BATCH).argmax(1) == yn).mean():.3f}")
        compare(query, classifier, xm, ym, xn, yn, repeat=args.repeat)


if __name__ == "__main__":
    main()
