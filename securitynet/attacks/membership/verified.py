"""Membership inference on verified worst-case predictions (Song, Shokri & Mittal, CCS 2019).

For a net trained with a verifiable defence (IBP, Gowal et al. 2018; Wong & Kolter's
convex outer bound), the paper runs the metric-based tests on the *verified worst-case
prediction*: within the L-infinity ball of radius ``eps`` around an image (pixel units,
the ball the net was certified for), the certified lower bound ``m_j`` of every margin
``z_y - z_j`` gives the worst-case logit vector ``z_worst = -m`` (``z_worst_y = 0``, Gowal
et al.'s specification), and its softmax the worst-case posterior. Members, on which the
certified training loss was minimised, keep a higher worst-case confidence than
non-members: the attacks ``verified_confidence``, ``verified_entropy``,
``verified_modified_entropy`` and ``verified_correctness`` (1 where the prediction is
certified robust) score it like :mod:`.signals` scores a clean posterior.

The bounds come from :mod:`.ibp`. The epsilon is the user's, or the entry's annotated
certified-training epsilon (facts ``certified_training`` and ``epsilon``); without one,
the attack does not apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from securitynet.attacks.membership.ibp import IntervalNet, input_box
from securitynet.attacks.membership.query import NetQuery
from securitynet.errors import AttackError

if TYPE_CHECKING:
    import torch

#: Entry facts that say a net was trained with a verifiable defence, and for which ball.
DEFENCE_FACT = "certified_training"
EPSILON_FACT = "epsilon"


class VerifiedConfig(BaseModel):
    """The certified ball of the verified attacks (pixel units, L-infinity)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    eps: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Default: the entry's certified-training epsilon; none known, the attack does not apply.",
    )


def worst_case_logits(
    bounded: IntervalNet,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    mean: Sequence[float],
    std: Sequence[float],
) -> torch.Tensor:
    """N x C worst-case logits ``-m`` (``m``: certified lower bounds of ``z_y - z_j``)
    of the normalised batch ``x``; differentiable, so it also trains an IBP net."""
    return -bounded.margins(input_box(x, eps, mean=mean, std=std), y)


def ibp_train(
    net: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    epochs: int,
    mean: Sequence[float],
    std: Sequence[float],
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> torch.nn.Module:
    """Certified training with IBP (Gowal et al. 2018), to build the verifiably defended
    twin of a net (or a shadow of one): over the first half of the epochs ``eps`` ramps up
    from 0 and the loss moves from the natural cross-entropy to an even mix of it and the
    worst-case one; seeded batch order. Returns ``net`` in eval mode."""
    import torch
    from torch.nn import functional

    bounded = IntervalNet(net)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    plan = [torch.randperm(len(y), generator=gen).split(batch_size) for _ in range(epochs)]
    total, step = sum(len(p) for p in plan), 0
    net.train()
    for batches in plan:
        for i in batches:
            ramp = min(1.0, 2 * step / total)
            worst = worst_case_logits(bounded, x[i], y[i], eps * ramp, mean=mean, std=std)
            natural = functional.cross_entropy(net(x[i]), y[i])
            loss = (1 - ramp / 2) * natural + ramp / 2 * functional.cross_entropy(worst, y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    return net.eval()


def verified_posteriors(
    query: NetQuery,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    eps: float,
    *,
    mean: Sequence[float],
    std: Sequence[float],
) -> tuple[np.ndarray, np.ndarray]:
    """``(probs N x C, labels N)``: the softmax of every image's worst-case logits."""
    import torch

    bounded = IntervalNet(query.net)
    if query.output != "logits" and bounded.final is None:
        raise AttackError(
            f"the net's output is declared {query.output!r} but its graph ends in no softmax: "
            "its logits cannot be bounded"
        )
    probs: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    with torch.no_grad():
        for x, y in batches:
            x, y = x.to(query.device), y.to(query.device)
            z = worst_case_logits(bounded, x, y, eps, mean=mean, std=std)
            probs.append(torch.softmax(z.double(), dim=1).float().cpu().numpy())
            labels.append(y.cpu().numpy().astype(np.int64))
    if not probs:
        raise AttackError("no images to bound the net's predictions on")
    return np.concatenate(probs), np.concatenate(labels)


def certified_epsilon(facts: dict[str, object]) -> tuple[float | None, str]:
    """The entry's certified-training epsilon from its facts, or ``None`` and why not."""
    defence = facts.get(DEFENCE_FACT)
    if not defence:
        return None, (
            f"the entry was not annotated as trained with a verifiable defence (fact {DEFENCE_FACT!r}) "
            "and no --verified-eps was given"
        )
    threat = facts.get("threat_model")
    if threat is not None and str(threat).lower() not in ("linf", "l-inf", "l_inf"):
        return None, f"the entry's certified threat model is {threat!r}, not L-inf"
    eps = facts.get(EPSILON_FACT)
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 <= eps <= 1:
        return None, f"the entry's {defence} training has no usable epsilon (fact {EPSILON_FACT!r}: {eps!r})"
    return float(eps), f"the entry's {defence} training epsilon"
