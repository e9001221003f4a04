"""Active query selection and catalogue-architecture surrogates (fast, pure: tiny tensors,
tiny nets)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from securitynet.attacks.stealing import (
    StealingConfig,
    active_order,
    build_surrogate,
    describe_adaptation,
    run_stealing,
)
from securitynet.attacks.stealing.selection import (
    GradientBandit,
    kcenter_greedy,
    kmeans,
    least_confident,
)
from securitynet.errors import AttackError


def test_uncertainty_picks_the_least_confident_rows() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.6, 0.4], [0.99, 0.01]])
    assert least_confident(probs, 2).tolist() == [1, 2]


def test_k_center_picks_the_farthest_point_each_time() -> None:
    points = torch.tensor([[0.0], [0.1], [5.0], [10.0], [10.2]])
    # from a center at 0: 10.2 is farthest, then 5 (5 from both), then 0.1 ...
    assert kcenter_greedy(points, torch.tensor([[0.0]]), 2).tolist() == [4, 2]
    # no centers yet: the first pick is any point, then the farthest from it
    first, second = kcenter_greedy(points, torch.empty(0, 1), 2).tolist()
    assert abs(points[first] - points[second]).item() >= 10.0
    with pytest.raises(AttackError, match="k-center"):
        kcenter_greedy(points, torch.empty(0, 1), 6)


def test_k_means_separates_two_blobs() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(50, 2, generator=gen), torch.randn(50, 2, generator=gen) + 20])
    assign = kmeans(x, 2, seed=0)
    assert assign[:50].unique().numel() == 1 and assign[50:].unique().numel() == 1
    assert assign[0] != assign[50]


def test_the_gradient_bandit_learns_the_rewarding_arm() -> None:
    bandit = GradientBandit(4)
    gen = torch.Generator().manual_seed(0)
    everything = torch.ones(4, dtype=torch.bool)
    for _ in range(400):
        arm = bandit.draw(everything, gen)
        bandit.update(arm, 1.0 if arm == 2 else 0.0, everything)
    assert bandit.policy(everything).argmax() == 2 and bandit.policy(everything)[2] > 0.7
    # an exhausted arm is never drawn
    mask = torch.tensor([True, True, False, True])
    assert all(bandit.draw(mask, gen) != 2 for _ in range(50))


class _Quadrant(nn.Module):
    """A fixed 4-class 'target' over 2 x 4 x 4 images: the quadrant holding the brightest pixel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x[:, 0].flatten(1)
        pos = flat.argmax(1)
        row, col = pos // 4, pos % 4
        label = (row >= 2).long() * 2 + (col >= 2).long()
        return torch.nn.functional.one_hot(label, 4).float() * 8


@pytest.mark.parametrize("policy", ["uncertainty", "kcenter", "adaptive"])
def test_an_active_policy_sends_each_candidate_once_in_rounds(policy: str) -> None:
    candidates = torch.rand(300, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    sent: list[int] = []
    refined: list[int] = []

    def answer(x: torch.Tensor) -> torch.Tensor:
        sent.append(len(x))
        return torch.softmax(_Quadrant()(x), 1)

    def refine(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        refined.append(len(x))

    order, answers = active_order(
        policy, candidates, 130, answer, round_size=50, arms=4, seed=0,
        make_selector=lambda: build_surrogate("small_cnn", (2, 4, 4), 4, seed=0), refine=refine,
    )
    assert sent == [50, 50, 30] and refined == [50, 100]
    assert len(order) == 130 and order.unique().numel() == 130
    assert torch.allclose(answers, torch.softmax(_Quadrant()(candidates[order]), 1))


def test_uncertainty_sends_what_the_selector_is_unsure_of() -> None:
    """With a selector that is sure of every image but the dim ones, the second round is
    exactly the dim images."""
    candidates = torch.ones(200, 1, 4, 4)
    candidates[100:] = 0.01  # 100 dim images

    class Sure(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            bright = x.flatten(1).mean(1, keepdim=True)
            return torch.cat([bright * 20, torch.zeros_like(bright)], 1)

    order, _ = active_order(
        "uncertainty", candidates, 80, lambda x: torch.full((len(x), 2), 0.5), round_size=40, arms=2,
        seed=3, make_selector=Sure, refine=lambda *a: None,
    )
    first, second = set(order[:40].tolist()), set(order[40:].tolist())
    assert second <= set(range(100, 200)) and not first & second


def test_run_stealing_with_a_policy_scores_every_budget() -> None:
    from securitynet.attacks.membership.query import NetQuery

    torch.manual_seed(0)
    target = nn.Sequential(nn.Flatten(), nn.Linear(32, 4)).eval()  # a fixed linear 'target'
    with torch.no_grad():
        target[1].weight.mul_(10)
    pool = torch.rand(400, 2, 4, 4, generator=torch.Generator().manual_seed(2)) - 0.5
    test_x = torch.rand(200, 2, 4, 4, generator=torch.Generator().manual_seed(3)) - 0.5
    config = StealingConfig(
        budgets=[60, 150], policy="kcenter", round_size=30, candidates=300, epochs=40, lr=1e-2
    )
    result = run_stealing(
        NetQuery(target), lambda idx: pool[torch.from_numpy(idx)], len(pool), test_x,
        target(test_x).argmax(1), config,
    )
    assert [b.budget for b in result.budgets] == [60, 150] and result.queries == 150
    assert result.target_accuracy == 100.0
    # well above chance (25 %) for 4 classes
    assert result.budgets[1].median_agreement > 40


def test_registry_surrogates_take_grey_28x28_images() -> None:
    timm_net = build_surrogate("resnet18", (1, 28, 28), 10, seed=0)
    assert describe_adaptation(timm_net) == "as they are"  # timm builds a 1-channel stem
    assert timm_net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    tv_net = build_surrogate("squeezenet1_0", (1, 28, 28), 7, seed=0)
    assert describe_adaptation(tv_net) == "channels repeated to 3"
    assert tv_net(torch.zeros(2, 1, 28, 28)).shape == (2, 7)
    vit = build_surrogate("test_vit", (1, 28, 28), 10, seed=0)  # a fixed input size
    assert describe_adaptation(vit).startswith("resized to")
    # untrained and seeded: the same seed gives the same weights
    again = build_surrogate("resnet18", (1, 28, 28), 10, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(timm_net.parameters(), again.parameters(), strict=True))


def test_unknown_surrogates_are_refused() -> None:
    with pytest.raises(AttackError, match="unknown surrogate 'resnet9000'"):
        build_surrogate("resnet9000", (1, 28, 28), 10, seed=0)
    with pytest.raises(AttackError, match="catalogue entry id"):
        build_surrogate("github:someone/repo/net.pt", (1, 28, 28), 10, seed=0)
    with pytest.raises(AttackError, match="at least 4 x 4"):
        build_surrogate("small_cnn", (1, 2, 2), 10, seed=0)


def test_policies_are_checked() -> None:
    with pytest.raises(ValueError, match="policy"):
        StealingConfig(policy="greedy")  # type: ignore[arg-type]
    with pytest.raises(AttackError, match="unknown active policy"):
        active_order("random", torch.zeros(4, 1, 4, 4), 2, lambda x: x, round_size=1, arms=2, seed=0,
                     make_selector=nn.Identity, refine=lambda *a: None)
