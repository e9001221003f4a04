"""STRIP on a net trained here on scikit-learn's digits with a BadNets patch (a bright 2 x 2
corner, 10 % of the training images relabelled 0), against its clean twin."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from securitynet.attacks.backdoor import detection_rate, strip_entropy, threshold_at_frr
from securitynet.attacks.membership.query import NetQuery
from securitynet.errors import AttackError
from tests.attacks.conftest import Digits, accuracy, fit, small_net

TARGET = 0


def stamp(x: torch.Tensor) -> torch.Tensor:
    out = x.clone()
    out[:, :, -2:, -2:] = float(x.max())  # the normalised value of a white pixel
    return out


def poisoned_net(digits: Digits, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    x, y = digits.x_train.clone(), digits.y_train.clone()
    chosen = torch.randperm(len(y), generator=gen)[: len(y) // 10]
    x[chosen], y[chosen] = stamp(x[chosen]), TARGET
    return fit(small_net(seed), x, y, epochs=40, seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_strip_rejects_triggered_inputs_of_a_backdoored_net_at_1pct_frr(digits: Digits, seed: int) -> None:
    net = poisoned_net(digits, seed)
    clean_x = digits.x_test[digits.y_test != TARGET][:200]
    triggered = stamp(clean_x)
    assert accuracy(net, digits.x_test, digits.y_test) > 0.85  # still a good classifier
    assert float((net(triggered).argmax(1) == TARGET).double().mean()) > 0.9  # the backdoor works
    query, overlays = NetQuery(net), digits.x_test[-150:]
    clean = strip_entropy(query, digits.x_test[:150], overlays, seed=seed)
    suspect = strip_entropy(query, triggered, overlays, seed=seed)
    threshold = threshold_at_frr(clean, 0.01)
    assert detection_rate(clean, threshold) <= 0.01
    assert detection_rate(suspect, threshold) > 0.5, (np.median(clean), np.median(suspect))
    # its clean twin has no trigger to find: the stamped images look like clean ones
    twin = NetQuery(fit(small_net(seed), digits.x_train, digits.y_train, epochs=40, seed=seed))
    twin_threshold = threshold_at_frr(strip_entropy(twin, digits.x_test[:150], overlays, seed=seed))
    assert detection_rate(strip_entropy(twin, triggered, overlays, seed=seed), twin_threshold) < 0.2


def test_strip_refusals() -> None:
    query = NetQuery(small_net())
    with pytest.raises(AttackError, match="differ in shape"):
        strip_entropy(query, torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 4, 4))
    with pytest.raises(AttackError, match="needs inputs"):
        strip_entropy(query, torch.zeros(0, 1, 8, 8), torch.zeros(2, 1, 8, 8))
    with pytest.raises(AttackError, match="false-rejection"):
        threshold_at_frr(np.ones(3), 1.5)
