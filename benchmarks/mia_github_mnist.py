"""The done-means of the membership harness on the six real GitHub MNIST checkpoints of
../shared, through the catalogue like any entry (added from local clones, results stored).

Membership as PROVENANCE.md describes it:
- normally trained nets (GianMan89, john-samurai mnist_cnn, the stolen surrogate; the
  Fashion-MNIST one on Fashion-MNIST): members = the train split, non-members = the test split;
- the overfitted net: its 50 members reconstructed (``random_split:42:50``), checked
  against the net (96 % right on them) before use;
- the defended net: its 3,000 members reconstructed as PROVENANCE.md says (seed 42, the
  net built and Xavier re-initialised, then the first 3,000 of ``randperm(60000)``), checked
  against the net (94.83 % right on them), given as an ``@FILE`` index list.

Prints every attack's AUC and TPR at 1 % FPR with 95 % bootstrap intervals.

    PYTHONPATH=. python benchmarks/mia_github_mnist.py [--max-samples 5000] [--attacks metric,learned,robust]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import securitynet as sn
from securitynet.attacks.membership.run import MembershipConfig
from securitynet.catalogue.api import Catalogue
from securitynet.evaluate import DataSpec, MembershipRequest, evaluate
from securitynet.settings import get_settings
from tests.githubclones import clone_shared_checkpoints

REPO = "github:john-samurai/AttackDefenseMNIST-trainedModel"


def defended_members(path: Path) -> Path:
    """PROVENANCE.md's recipe for the defended net's 3,000 training images, as an index file."""
    import torch
    from torch import nn

    torch.manual_seed(42)
    layers = [nn.Conv2d(1, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1), nn.Linear(3136, 128), nn.Linear(128, 10)]
    for layer in layers:
        nn.init.xavier_uniform_(layer.weight)
    indices = torch.randperm(60000)[:3000].tolist()
    path.write_text("\n".join(map(str, indices)) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--max-samples", type=int, default=5000)
    parser.add_argument("--attacks", default="metric,learned,robust")
    parser.add_argument("--overfitted-attacks", default="all")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sn-mia-"))
    clones = clone_shared_checkpoints(args.shared, work / "clones")
    cat = Catalogue(settings=get_settings(home=work / "home", offline=True, data_dir=args.shared / "data"))
    for clone in clones.values():
        sn.add_github(clone, catalogue=cat)
    config = MembershipConfig(attacks=[args.attacks])
    runs = [
        ("GianMan89 (normal)", "github:GianMan89/MNIST_handwritten_digits_classifier/mnist_cnn.pt", "mnist", "train", None, config),
        ("john-samurai mnist_cnn (normal)", f"{REPO}/mnist_cnn.pt", "mnist", "train", None, config),
        ("surrogate (normal, stolen)", f"{REPO}/stolen_models/attacker_surrogate_simple_cnn_1000samples.pt", "mnist", "train", None, config),
        ("Zhuzhenghao (Fashion-MNIST)", "github:Zhuzhenghao/mnist-data/mnist_cnn.pt", "fashion-mnist", "train", None, config),
        ("defended (3,000 members)", f"{REPO}/full_MIA-defense_model.pt", "mnist", f"@{defended_members(work / 'defended.txt')}", 0.9483, config),
        ("overfitted (50 members)", f"{REPO}/mnist_cnn_overfitted.pt", "mnist", "random_split:42:50", 0.96,
         MembershipConfig(attacks=[args.overfitted_attacks], shadow={"n_shadow": 16, "epochs": 30, "batch_size": 16})),
    ]
    print(f"{'net':34s} {'attack':18s} {'AUC [95 % CI]':>24s} {'TPR@1%FPR [95 % CI]':>24s}  members/non-members")
    for label, entry_id, data, members, expect, cfg in runs:
        request = MembershipRequest(
            data=DataSpec(name=data), members=members, nonmembers="test", max_samples=args.max_samples,
            expect_member_accuracy=expect, expect_tolerance=0.005 if expect else 0.05, config=cfg,
            members_are_training_set=True if expect else None,
        )
        t0 = time.perf_counter()
        report = evaluate(request, entries=[entry_id], catalogue=cat, force=True)
        for ev in report.outcomes[0].evaluations:
            if ev.status != "ok":
                print(f"{label:34s} {ev.variant:18s} FAILED: {ev.error}")
                continue
            auc = next(m for m in ev.metrics if m.metric == "auc")
            tpr = next(m for m in ev.metrics if m.metric == "tpr_at_1pct_fpr")
            print(f"{label:34s} {ev.variant:18s} {auc.value:.3f} [{auc.lower:.3f}, {auc.upper:.3f}]"
                  f"      {tpr.value:.3f} [{tpr.lower:.3f}, {tpr.upper:.3f}]   {ev.metric('members'):.0f}/{ev.metric('nonmembers'):.0f}")
        acc = report.outcomes[0].extra.get("target_accuracy", {})
        print(f"   ({time.perf_counter() - t0:.0f} s; accuracy on members {acc.get('members', float('nan')):.4f}, "
              f"non-members {acc.get('nonmembers', float('nan')):.4f})")


if __name__ == "__main__":
    main()
