"""Real MNIST (from ``../shared``) and small CNNs trained on it with and without a BadNets
patch: the nets backdoor detectors are calibrated on. Session-scoped fixtures, imported by
``tests/attacks/conftest.py``:

- ``mnist``: the first 3,000 train and 1,000 test images, normalised;
- ``mnist_backdoor_pair``: a cached factory, ``seed -> BackdoorPair`` (the backdoored net
  and its clean twin: same seed, same images, no poison);
- ``mnist_backdoor``: the pair for seed 0.

The trigger is a white 4 x 4 patch one pixel from the bottom-right corner; 10 % of the
training images (of other labels) carry it relabelled 7. Each net trains in a few seconds
on an idle CPU (5 epochs of 3,000 images, one thread).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from securitynet.attacks.backdoor.badnets import poison, stamp
from securitynet.data import load_dataset

MEAN, STD = 0.1307, 0.3081
WHITE = (1.0 - MEAN) / STD  # a white pixel, normalised
BLACK = -MEAN / STD
TARGET = 7
#: The implanted trigger: a white 4 x 4 patch one pixel from the bottom-right corner.
PATCH = 4
RATE = 0.1
N_TRAIN, N_TEST = 3000, 1000


@dataclass(frozen=True)
class Mnist:
    x_train: torch.Tensor  # N x 1 x 28 x 28, normalised
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass(frozen=True)
class BackdoorPair:
    seed: int
    net: nn.Module  # trained on the poisoned images (eval mode)
    twin: nn.Module  # the same recipe on the clean images
    target: int
    poisoned: torch.Tensor  # indices of the stamped training images
    accuracy: float  # the backdoored net's clean test accuracy
    twin_accuracy: float
    attack_success: float  # stamped test images of other labels classified as the target


def normalise(raw: torch.Tensor) -> torch.Tensor:
    return (raw.float() / 255 - MEAN) / STD


def trigger(x: torch.Tensor) -> torch.Tensor:
    return stamp(x, size=PATCH, value=WHITE, corner="bottom-right", margin=1)


def small_cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 32), nn.ReLU(), nn.Linear(32, 10),
    )  # fmt: skip


def train(x: torch.Tensor, y: torch.Tensor, *, seed: int, epochs: int = 5) -> nn.Module:
    """Adam, batch 64, on one thread: the same weights on any machine, and no thread
    contention on a shared one (these convolutions are too small to gain from more)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(x, y, seed=seed, epochs=epochs)
    finally:
        torch.set_num_threads(threads)


def _train(x: torch.Tensor, y: torch.Tensor, *, seed: int, epochs: int) -> nn.Module:
    net = small_cnn(seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        for i in torch.randperm(len(y), generator=gen).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[i]), y[i]).backward()
            opt.step()
    return net.eval().requires_grad_(False)


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net(x).argmax(1) == y).double().mean())


def load_mnist(shared: Path) -> Mnist:
    data_dir = shared / "data"
    train_set, test_set = (
        load_dataset("mnist", "train", data_dir=data_dir),
        load_dataset("mnist", "test", data_dir=data_dir),
    )
    assert train_set.images is not None and test_set.images is not None
    return Mnist(
        x_train=normalise(torch.from_numpy(train_set.images[:N_TRAIN].copy())),
        y_train=torch.from_numpy(train_set.labels[:N_TRAIN].copy()),
        x_test=normalise(torch.from_numpy(test_set.images[:N_TEST].copy())),
        y_test=torch.from_numpy(test_set.labels[:N_TEST].copy()),
    )


def backdoor_pair(data: Mnist, seed: int) -> BackdoorPair:
    bad = poison(
        data.x_train, data.y_train, target=TARGET, rate=RATE, seed=seed,
        size=PATCH, value=WHITE, corner="bottom-right", margin=1,
    )  # fmt: skip
    net = train(bad.inputs, bad.labels, seed=seed)
    twin = train(data.x_train, data.y_train, seed=seed)
    others = data.y_test != TARGET
    stamped = trigger(data.x_test[others])
    return BackdoorPair(
        seed=seed,
        net=net,
        twin=twin,
        target=TARGET,
        poisoned=bad.indices,
        accuracy=accuracy(net, data.x_test, data.y_test),
        twin_accuracy=accuracy(twin, data.x_test, data.y_test),
        attack_success=accuracy(net, stamped, torch.full((len(stamped),), TARGET)),
    )


@pytest.fixture(scope="session")
def mnist(shared_dir: Path) -> Mnist:
    return load_mnist(shared_dir)


@pytest.fixture(scope="session")
def mnist_backdoor_pair(mnist: Mnist) -> Callable[[int], BackdoorPair]:
    cache: dict[int, BackdoorPair] = {}

    def get(seed: int) -> BackdoorPair:
        if seed not in cache:
            cache[seed] = backdoor_pair(mnist, seed)
        return cache[seed]

    return get


@pytest.fixture(scope="session")
def mnist_backdoor(mnist_backdoor_pair: Callable[[int], BackdoorPair]) -> BackdoorPair:
    return mnist_backdoor_pair(0)
