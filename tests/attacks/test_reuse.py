"""Model-reuse mechanics on small nets built here: cutting the head off any classifier, and
crafting a malicious primitive on the digits net (scikit-learn's digits, in the wheel)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from securitynet.attacks.reuse import ReuseConfig
from securitynet.attacks.reuse.craft import craft_malicious, relative_drift
from securitynet.attacks.reuse.host import HostData, run_reuse
from securitynet.attacks.reuse.primitive import feature_extractor, features, find_head
from securitynet.errors import AttackError
from tests.attacks.conftest import Digits

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class LogSoftmaxNet(nn.Module):
    """A head registered first but applied last, then a log-softmax (as the loader's nets)."""

    def __init__(self) -> None:
        super().__init__()
        self.out = nn.Linear(16, 3)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.out(self.body(x)), 1)


def test_the_head_is_the_last_linear_layer_applied_not_the_last_registered() -> None:
    net = LogSoftmaxNet()
    x = torch.randn(5, 3, 2, 2)
    assert find_head(net, x) == "out"
    extractor = feature_extractor(net, x)
    assert torch.equal(extractor(x), net.body(x))  # the head's input, before the log-softmax


def test_torchvision_and_sequential_heads() -> None:
    from torchvision.models import resnet18

    net = resnet18(num_classes=7).eval()
    x = torch.randn(2, 3, 32, 32)
    assert find_head(net, x) == "fc"
    assert feature_extractor(net, x)(x).shape == (2, 512)
    seq = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    assert find_head(seq, torch.randn(1, 4)) == "3"


def test_a_net_without_a_linear_head_is_a_typed_error() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(AttackError, match="no linear layer"):
        find_head(net, torch.randn(1, 1, 8, 8))
    with pytest.raises(AttackError, match="no module named 'fc'"):
        feature_extractor(net, torch.randn(1, 1, 8, 8), head="fc")


def test_a_copied_extractor_is_independent() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(3, 4)
    original = feature_extractor(net, x)
    twin = copy.deepcopy(original)
    with torch.no_grad():
        twin.net[1].weight.add_(1.0)
    assert not torch.equal(twin(x), original(x))
    assert torch.equal(original(x), net[2](net[1](x)))


def _digits_setup(digits: Digits, target_class: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The digits net as primitive; a test digit not of ``target_class``, references of it
    (train images 300+, unseen by the net), clean train images of other classes."""
    extractor = feature_extractor(digits.net, digits.x_test[:1])
    target_idx = int((digits.y_test != target_class).nonzero()[0])
    spare_x, spare_y = digits.x_train[300:], digits.y_train[300:]
    references = spare_x[spare_y == target_class][:10]
    clean = spare_x[spare_y != target_class][:200]
    return extractor, digits.x_test[target_idx : target_idx + 1], references, clean


def test_crafting_moves_the_target_within_the_bounds(digits: Digits) -> None:
    extractor, target, references, clean = _digits_setup(digits, target_class=3)
    config = ReuseConfig(param_fraction=0.1, max_drift=0.1, steps=150)
    before = [p.detach().clone() for p in extractor.parameters()]
    malicious, report = craft_malicious(extractor, target, references, clean, config)
    assert all(torch.equal(p, b) for p, b in zip(extractor.parameters(), before, strict=True))
    assert report.perturbed_params <= 0.1 * report.params + 1
    assert report.adversary_drift <= 0.1 and relative_drift(features(extractor, clean), features(malicious, clean)) <= 0.1
    centroid = features(extractor, references).mean(0)
    start = float((features(extractor, target) - centroid).norm())
    assert float((features(malicious, target) - centroid).norm()) < 0.6 * start
    assert report.target_distance < 0.5  # squared distance to the aim (past the centroid), relative
    head_bias = f"net.{extractor.head}.bias"
    assert head_bias not in dict(malicious.named_parameters()) or torch.equal(
        dict(malicious.named_parameters())[head_bias], dict(extractor.named_parameters())[head_bias]
    )


def test_crafting_refuses_an_impossible_drift_bound(digits: Digits) -> None:
    extractor, target, references, clean = _digits_setup(digits, target_class=3)
    with pytest.raises(AttackError, match="drift bound"):
        craft_malicious(extractor, target, references, clean, ReuseConfig(max_drift=1e-9, steps=5))


def test_hosts_on_digits_see_the_target_class_only_with_the_malicious_primitive(digits: Digits) -> None:
    extractor, target, references, clean = _digits_setup(digits, target_class=3)
    host = HostData(digits.x_train[:300], digits.y_train[:300], digits.x_test, digits.y_test, classes=10)
    config = ReuseConfig(
        param_fraction=0.1, max_drift=0.1, host_seeds=2, host_epochs=30, steps=200, strip_copies=10
    )
    result, _ = run_reuse(
        extractor, host, target_x=target, target_class=3, reference_x=references, clean_x=clean,
        config=config, strip_inputs=100,
    )
    assert result.benign_success == 0.0 and result.attack_success == 1.0
    assert abs(result.clean_accuracy_delta) < 2.0 and result.clean_accuracy_benign > 85
    assert result.strip_malicious is not None and result.strip_malicious.frr == 0.01
    assert max(result.target_scores_malicious) == result.target_scores_malicious[3]
    with pytest.raises(AttackError, match="not one of the host's 10 classes"):
        run_reuse(extractor, host, target_x=target, target_class=10, reference_x=references,
                  clean_x=clean, config=config)
