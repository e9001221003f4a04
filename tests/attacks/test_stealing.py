"""Model stealing: what an API returns, and the attack's refusals (fast, pure)."""

from __future__ import annotations

import pytest
import torch

from securitynet.attacks.stealing import (
    StealingConfig,
    api_answer,
    build_surrogate,
    score_surrogate,
)
from securitynet.errors import AttackError

PROBS = torch.tensor([[0.1, 0.6, 0.2, 0.1], [0.4, 0.05, 0.05, 0.5]])


def test_soft_answers_are_the_probabilities_and_hard_ones_the_top_label() -> None:
    assert torch.equal(api_answer(PROBS, "soft"), PROBS)
    assert api_answer(PROBS, "hard").tolist() == [[0, 1, 0, 0], [0, 0, 0, 1]]


def test_top_k_answers_keep_k_classes_renormalised() -> None:
    out = api_answer(PROBS, "topk", top_k=2)
    assert (out > 0).sum(1).tolist() == [2, 2]
    assert torch.allclose(out.sum(1), torch.ones(2))
    assert out[0, 1] == pytest.approx(0.6 / 0.8) and out[1, 0] == pytest.approx(0.4 / 0.9)


def test_budgets_are_sorted_and_must_be_positive() -> None:
    assert StealingConfig(budgets=[1000, 500, 1000]).budgets == [500, 1000]
    with pytest.raises(ValueError, match="positive"):
        StealingConfig(budgets=[0])


def test_scores_are_percent_accuracy_and_agreement() -> None:
    truth = torch.tensor([0, 1, 2, 3])
    target = torch.tensor([0, 1, 2, 0])
    surrogate = torch.tensor([0, 1, 0, 0])
    assert score_surrogate(target, surrogate, truth) == (50.0, 75.0)
    with pytest.raises(AttackError, match="aligned"):
        score_surrogate(target, surrogate[:2], truth)


def test_a_surrogate_fits_the_input_and_unknown_ones_are_refused() -> None:
    net = build_surrogate("small_cnn", (3, 32, 32), 100, seed=0)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 100)
    with pytest.raises(AttackError, match="unknown surrogate"):
        build_surrogate("resnet9000", (1, 28, 28), 10, seed=0)
    with pytest.raises(AttackError, match="C x H x W"):
        build_surrogate("small_cnn", (784,), 10, seed=0)


def test_a_budget_above_the_query_pool_is_refused() -> None:
    from securitynet.attacks.membership.query import NetQuery
    from securitynet.attacks.stealing import run_stealing

    net = build_surrogate("small_cnn", (1, 8, 8), 10, seed=0).eval()
    with pytest.raises(AttackError, match="exceeds the 100 images"):
        run_stealing(
            NetQuery(net), lambda idx: torch.zeros(len(idx), 1, 8, 8), 100,
            torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long), StealingConfig(budgets=[500]),
        )
