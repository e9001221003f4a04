"""Do the backdoor detectors notice a model-reuse attack? The real public ``mnist_cnn.pt`` is
the benign primitive; the README's attack (target ``mnist:test[17]`` into class 3) crafts the
malicious copy; a host head is trained over each (same seed), and Neural Cleanse and STRIP
run on both hosts. Prints each detector's verdict on each host.

    PYTHONPATH=. python benchmarks/reuse_detectors.py --shared ../shared

Neural Cleanse looks for a small input patch that sends every input to one class; the reuse
attack plants no input trigger (it moves one input's features), so there is no reason to
expect a flag: this measures it rather than assuming it."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import securitynet as sn
from securitynet.attacks.backdoor import CleanseConfig, neural_cleanse
from securitynet.attacks.membership.query import NetQuery
from securitynet.attacks.reuse.config import ReuseConfig
from securitynet.attacks.reuse.host import HostData, run_reuse, train_host
from securitynet.attacks.reuse.primitive import feature_extractor
from securitynet.catalogue.api import Catalogue
from securitynet.data.sets import load_dataset
from securitynet.evaluate.reuse import TargetInput
from securitynet.evaluate.stealing import fetch_from
from securitynet.settings import get_settings
from tests.githubclones import clone_shared_checkpoints

ENTRY = "github:john-samurai/AttackDefenseMNIST-trainedModel/mnist_cnn.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--target", default="mnist:test[17]")
    parser.add_argument("--target-class", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="sn-reuse-"))
    settings = get_settings(home=work / "home", offline=True, data_dir=args.shared / "data")
    cat = Catalogue(settings=settings)
    for clone in clone_shared_checkpoints(args.shared, work / "clones").values():
        sn.add_github(clone, catalogue=cat)
    loaded = sn.load(ENTRY, catalogue=cat)
    config = ReuseConfig(host_train=2000, host_test=1000, host_seeds=1, steps=120)
    train = load_dataset("mnist", "train", data_dir=settings.data_dir, settings=settings)
    test = load_dataset("mnist", "test", data_dir=settings.data_dir, settings=settings)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(train))
    host_idx, rest = order[: config.host_train], order[config.host_train :]
    references = rest[train.labels[rest] == args.target_class][: config.references]
    clean = rest[train.labels[rest] != args.target_class][: config.clean_inputs]
    test_idx = np.sort(rng.permutation(len(test))[: config.host_test])

    def fetch(images: object, idx: np.ndarray) -> torch.Tensor:
        return fetch_from(images, idx, loaded.transform, batch_size=512)

    raw = TargetInput.parse(args.target).load_raw(data_dir=settings.data_dir, settings=settings)
    target_x = loaded.transform(raw) if isinstance(raw, torch.Tensor) else loaded.transform(raw).unsqueeze(0)
    host = HostData(
        train_x=fetch(train, host_idx), train_y=torch.from_numpy(train.labels[host_idx]),
        test_x=fetch(test, test_idx), test_y=torch.from_numpy(test.labels[test_idx]), classes=10,
    )
    extractor = feature_extractor(loaded.net, target_x)
    result, malicious = run_reuse(
        extractor, host, target_x=target_x, target_class=args.target_class,
        reference_x=fetch(train, references), clean_x=fetch(train, clean), config=config,
    )
    print(f"attack success {result.attack_success:.2f}, clean accuracy change "
          f"{result.clean_accuracy_delta:+.2f} points, feature drift {result.feature_drift:.3f}")
    for name, primitive, strip in (
        ("benign", extractor, result.strip_benign), ("malicious", malicious, result.strip_malicious),
    ):
        net = train_host(primitive, host, config, seed=config.seed)
        t0 = time.perf_counter()
        nc = neural_cleanse(NetQuery(net, "logits"), host.test_x[:512], CleanseConfig())
        index = nc.anomaly_index[nc.labels.index(args.target_class)]
        assert strip is not None
        print(f"{name:9s} host: Neural Cleanse flags {nc.flagged or 'nothing'} (index of class "
              f"{args.target_class}: {index:.2f}, max {max(nc.anomaly_index):.2f}; "
              f"{time.perf_counter() - t0:.0f} s); STRIP rejects the target: {strip.flagged} "
              f"(entropy {strip.target_entropy:.3f} vs threshold {strip.threshold:.3f})")


if __name__ == "__main__":
    main()
