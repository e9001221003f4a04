"""A tiny net trained here on scikit-learn's digits (in the wheel): the target of the
PGD and LiRA mechanics tests; IBP training for the verified attacks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from securitynet.data import load_dataset
from tests.attacks.mnist_backdoor import mnist, mnist_backdoor, mnist_backdoor_pair

MEAN, STD = (0.5,), (0.5,)


@dataclass
class Digits:
    net: nn.Module
    x_train: torch.Tensor  # normalised, N x 1 x 8 x 8
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def normalise(raw: torch.Tensor) -> torch.Tensor:
    return (raw.float() / 255 - MEAN[0]) / STD[0]


def small_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def fit(net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, seed: int = 0) -> nn.Module:
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        for i in torch.randperm(len(y), generator=gen).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[i]), y[i]).backward()
            opt.step()
    return net.eval()


def ibp_fit(net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, epochs: int, seed: int = 0) -> nn.Module:
    """IBP training on digits (Gowal et al.), as the library does it, with this file's recipe."""
    from securitynet.attacks.membership.verified import ibp_train

    return ibp_train(net, x, y, eps=eps, epochs=epochs, mean=MEAN, std=STD, lr=1e-2, batch_size=50, seed=seed)


@pytest.fixture(scope="session")
def digits() -> Digits:
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert train.images is not None and test.images is not None
    x_tr, x_te = normalise(torch.from_numpy(train.images)), normalise(torch.from_numpy(test.images))
    y_tr, y_te = torch.from_numpy(train.labels), torch.from_numpy(test.labels)
    net = fit(small_net(), x_tr[:300], y_tr[:300], epochs=60)
    return Digits(net, x_tr, y_tr, x_te, y_te)


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net(x).argmax(1) == y).double().mean())


__all__ = [
    "MEAN",
    "STD",
    "Digits",
    "accuracy",
    "fit",
    "ibp_fit",
    "mnist",
    "mnist_backdoor",
    "mnist_backdoor_pair",
    "normalise",
    "np",
    "small_net",
]
