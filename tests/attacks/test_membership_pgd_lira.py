"""PGD stays in its ball and hurts a natural net; LiRA's shadow nets are balanced, cached,
and refused over budget before any training. The target is a tiny net trained on 300
scikit-learn digits (see conftest)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from securitynet.attacks.membership import MembershipConfig, NetQuery, run_membership
from securitynet.attacks.membership.lira import (
    ShadowPool,
    ShadowRecipe,
    balanced_masks,
    fresh_copy,
    train_shadows,
)
from securitynet.attacks.membership.robust import PGDConfig, pgd, pgd_train
from securitynet.errors import AttackBudgetError
from tests.attacks.conftest import MEAN, STD, Digits, accuracy, small_net


def test_pgd_stays_in_the_pixel_ball_and_fools_a_natural_net(digits: Digits) -> None:
    x, y = digits.x_test[:200], digits.y_test[:200]
    query = NetQuery(digits.net, "logits")
    clean = accuracy(digits.net, x, y)
    adv = pgd(query, x, y, PGDConfig(eps=0.2, steps=10), mean=MEAN, std=STD)
    pixels, adv_pixels = x * STD[0] + MEAN[0], adv * STD[0] + MEAN[0]
    assert float((adv_pixels - pixels).abs().max()) <= 0.2 + 1e-5
    assert float(adv_pixels.min()) >= -1e-6 and float(adv_pixels.max()) <= 1 + 1e-6
    assert clean > 0.8 and accuracy(digits.net, adv, y) < clean - 0.4
    untouched = pgd(query, x, y, PGDConfig(eps=0.0), mean=MEAN, std=STD)
    assert torch.allclose(untouched, x, atol=1e-6)
    assert all(p.requires_grad for p in digits.net.parameters())  # left as found


def test_pgd_training_makes_a_net_that_holds_up_under_the_attack(digits: Digits) -> None:
    x, y = digits.x_train[:600], digits.y_train[:600]
    attack = PGDConfig(eps=0.15, steps=5)
    natural = pgd_train(small_net(1), x, y, epochs=15, mean=MEAN, std=STD, seed=1)
    robust = pgd_train(small_net(1), x, y, epochs=15, mean=MEAN, std=STD, seed=1, adversarial=attack)
    assert not natural.training and not robust.training
    tx, ty = digits.x_test[:300], digits.y_test[:300]

    def under_attack(net: torch.nn.Module) -> float:
        return accuracy(net, pgd(NetQuery(net, "logits"), tx, ty, attack, mean=MEAN, std=STD), ty)

    assert accuracy(natural, tx, ty) > 0.8
    # measured: 0.41 against 0.25 under attack
    assert under_attack(robust) > under_attack(natural) + 0.1


def test_balanced_masks_and_fresh_copies(digits: Digits) -> None:
    masks = balanced_masks(8, 100, seed=0)
    assert masks.shape == (8, 100) and (masks.sum(axis=0) == 4).all()
    assert not np.array_equal(masks, balanced_masks(8, 100, seed=1))
    copy_a, copy_b = fresh_copy(digits.net, seed=1), fresh_copy(digits.net, seed=1)
    sa, sb, st = copy_a.state_dict(), copy_b.state_dict(), digits.net.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa) and not torch.equal(sa["1.weight"], st["1.weight"])


def _pool(digits: Digits, n: int = 160) -> ShadowPool:
    return ShadowPool(torch.cat([digits.x_train[:n // 2], digits.x_test[:n // 2]]), torch.cat([digits.y_train[:n // 2], digits.y_test[:n // 2]]))


def test_shadow_nets_are_cached_and_a_second_run_trains_nothing(digits: Digits, tmp_path: Path) -> None:
    query, pool = NetQuery(digits.net, "logits"), _pool(digits)
    recipe = ShadowRecipe(n_shadow=4, epochs=3, batch_size=32)
    first = train_shadows(query, pool, recipe, architecture="mlp-64", cache_dir=tmp_path)
    assert first.estimate.cached == 0 and first.estimate.seconds > 0 and first.estimate.forward_flops
    assert first.cache_dir is not None and len(list(first.cache_dir.glob("shadow_*.safetensors"))) == 4
    start = time.perf_counter()
    second = train_shadows(query, pool, recipe, architecture="mlp-64", cache_dir=tmp_path)
    assert second.estimate.cached == 4 and np.array_equal(first.phi, second.phi)
    assert second.cache_dir == first.cache_dir and time.perf_counter() - start < 30
    other = train_shadows(query, pool, recipe.model_copy(update={"seed": 1}), architecture="mlp-64", cache_dir=tmp_path)
    assert other.cache_dir != first.cache_dir and other.estimate.cached == 0


def test_lira_is_refused_over_budget_before_training(digits: Digits, tmp_path: Path) -> None:
    query, pool = NetQuery(digits.net, "logits"), _pool(digits)
    with pytest.raises(AttackBudgetError, match="over the budget") as info:
        train_shadows(query, pool, ShadowRecipe(n_shadow=64, epochs=500), architecture="mlp-64", cache_dir=tmp_path, budget_s=1.0)
    assert info.value.estimate_s > 1.0 and info.value.hint
    assert not list(tmp_path.rglob("*.npy"))  # nothing trained, nothing written
    # in a run, the refusal is recorded for the LiRA attacks and the others still report
    members = lambda: iter([(digits.x_train[:80], digits.y_train[:80])])  # noqa: E731
    nonmembers = lambda: iter([(digits.x_test[:80], digits.y_test[:80])])  # noqa: E731
    config = MembershipConfig(attacks=["confidence", "lira_online"], shadow={"n_shadow": 64, "epochs": 500}, budget_s=1.0, bootstrap=10)
    result = run_membership(query, members, nonmembers, config, mean=MEAN, std=STD, cache_dir=tmp_path)
    assert set(result.metrics) == {"confidence"} and "AttackBudgetError" in result.errors["lira_online"]


def test_lira_online_finds_the_members_of_an_overfit_net(digits: Digits, tmp_path: Path) -> None:
    """80 members the target memorised, 80 non-members: LiRA separates them."""
    from tests.attacks.conftest import fit, small_net

    x_m, y_m = digits.x_train[:80], digits.y_train[:80]
    target = fit(small_net(5), x_m, y_m, epochs=150)
    members = lambda: iter([(x_m, y_m)])  # noqa: E731
    nonmembers = lambda: iter([(digits.x_test[:80], digits.y_test[:80])])  # noqa: E731
    config = MembershipConfig(attacks=["lira", "confidence"], shadow={"n_shadow": 8, "epochs": 150, "batch_size": 64, "lr": 1e-2}, bootstrap=50)
    result = run_membership(NetQuery(target, "logits"), members, nonmembers, config, mean=MEAN, std=STD, cache_dir=tmp_path)
    assert not result.errors
    assert result.metrics["lira_online"].auc.value > 0.75
    assert result.metrics["lira_offline"].auc.value > 0.6
