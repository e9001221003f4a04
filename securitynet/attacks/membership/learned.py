"""Learned membership inference: ML-Leaks (Salem et al., NDSS 2019), adversary 1.

An MLP reads the posterior sorted in descending order (``sorted``: the whole vector,
capped at ``max_features`` entries; ``top3``: the three largest) and says member or not.
It is trained on shadow data (the shadow model's members and non-members) or, without a
shadow model, by 2-fold cross-fitting on the evaluation data: each half is scored by an
MLP trained on the other half. Classes are weighted so that 60,000 members against 10,000
non-members do not teach it to answer "member" always.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from securitynet.attacks.membership.metrics import ScoredMembership
from securitynet.attacks.membership.signals import MembershipPosteriors, Posteriors
from securitynet.errors import AttackError

if TYPE_CHECKING:
    from torch import nn

FEATURES: dict[str, int | None] = {"sorted": None, "top3": 3}


def features(post: Posteriors, kind: str, *, max_features: int = 100) -> np.ndarray:
    """The sorted (descending) posterior, cut to ``top3`` or to ``max_features``."""
    if kind not in FEATURES:
        raise AttackError(f"unknown learned-attack features {kind!r}; known: {', '.join(FEATURES)}")
    k = FEATURES[kind] or max_features
    ranked = -np.sort(-post.probs.astype(np.float32), axis=1)
    out = ranked[:, : min(k, ranked.shape[1])]
    if out.shape[1] < k and kind == "top3":
        out = np.pad(out, ((0, 0), (0, k - out.shape[1])))
    return out


def _train_mlp(x_in: np.ndarray, x_out: np.ndarray, *, seed: int, epochs: int, hidden: int) -> nn.Module:
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.concatenate((x_in, x_out))).float()
    y = torch.cat((torch.ones(len(x_in)), torch.zeros(len(x_out))))
    weight = torch.where(y > 0, 0.5 / len(x_in), 0.5 / len(x_out))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mlp = nn.Sequential(
            nn.Linear(x.shape[1], hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )
    opt = torch.optim.Adam(mlp.parameters(), lr=1e-2)
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    batch = 4096
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), batch):
            i = order[start : start + batch]
            opt.zero_grad()
            loss = (loss_fn(mlp(x[i]).squeeze(1), y[i]) * weight[i]).sum() * (len(x) / len(i))
            loss.backward()
            opt.step()
    mlp.eval()
    return mlp


def _predict(mlp: nn.Module, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return torch.sigmoid(mlp(torch.from_numpy(x).float()).squeeze(1)).double().numpy()


def learned_attack(
    kind: str,
    target: MembershipPosteriors,
    *,
    shadow: MembershipPosteriors | None = None,
    seed: int = 0,
    epochs: int = 60,
    hidden: int = 64,
) -> ScoredMembership:
    """ML-Leaks scores (the MLP's member probability) and decisions (> 0.5) on ``target``."""
    fm, fn = features(target.member, kind), features(target.nonmember, kind)
    if shadow is not None:
        mlp = _train_mlp(
            features(shadow.member, kind),
            features(shadow.nonmember, kind),
            seed=seed,
            epochs=epochs,
            hidden=hidden,
        )
        sm, sn = _predict(mlp, fm), _predict(mlp, fn)
        return ScoredMembership(sm, sn, sm > 0.5, sn > 0.5)
    if min(len(fm), len(fn)) < 2:
        raise AttackError(
            "a learned attack without a shadow model needs at least 2 members and 2 non-members"
        )
    sm, sn = np.zeros(len(fm)), np.zeros(len(fn))
    halves = target.halves(seed)
    for (fit_m, fit_n), (use_m, use_n) in (halves, halves[::-1]):
        mlp = _train_mlp(fm[fit_m], fn[fit_n], seed=seed, epochs=epochs, hidden=hidden)
        sm[use_m], sn[use_n] = _predict(mlp, fm[use_m]), _predict(mlp, fn[use_n])
    return ScoredMembership(sm, sn, sm > 0.5, sn > 0.5)
