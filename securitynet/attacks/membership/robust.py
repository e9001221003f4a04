"""Robustness-aware membership inference (Song, Shokri & Mittal, CCS 2019).

Adversarially robust training makes a net's behaviour *around* its training points
distinctive. The attack runs the metric-based tests on the posteriors of adversarial
examples: an untargeted L-infinity PGD perturbation of every image within the epsilon
ball the target was trained for (or one the user gives), measured in pixel space
([0, 1]) whatever the entry's normalisation.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from securitynet.attacks.membership.query import NetQuery

if TYPE_CHECKING:
    import torch


class PGDConfig(BaseModel):
    """L-infinity PGD, in pixel units (``eps=0.3`` is the usual MNIST ball)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    eps: float = Field(default=0.3, ge=0.0, le=1.0)
    steps: int = Field(default=10, ge=1, le=1000)
    step_size: float | None = Field(default=None, gt=0, description="Default: 2.5 x eps / steps.")
    random_start: bool = True
    seed: int = 0


def pgd(
    query: NetQuery,
    x: torch.Tensor,
    y: torch.Tensor,
    config: PGDConfig,
    *,
    mean: Sequence[float],
    std: Sequence[float],
) -> torch.Tensor:
    """Adversarial versions of the normalised batch ``x`` (returned normalised as well),
    each within ``eps`` of its image in pixel space and inside [0, 1]."""
    import torch

    device = query.device
    x = x.to(device)
    y = y.to(device)
    m = torch.tensor(mean, dtype=x.dtype, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=device).view(1, -1, 1, 1)
    pixels = (x * s + m).clamp(0.0, 1.0)
    step = config.step_size or 2.5 * config.eps / config.steps
    adv = pixels.clone()
    if config.random_start and config.eps > 0:
        gen = torch.Generator(device=device).manual_seed(config.seed)
        noise = torch.rand(pixels.shape, generator=gen, device=device, dtype=x.dtype)
        adv = (adv + (2 * noise - 1) * config.eps).clamp(0.0, 1.0)
    requires = [p.requires_grad for p in query.net.parameters()]
    for p in query.net.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(config.steps if config.eps > 0 else 0):
            adv.requires_grad_(True)
            loss = torch.nn.functional.nll_loss(query.log_probs((adv - m) / s), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, adv)
            with torch.no_grad():
                adv = adv + step * grad.sign()
                adv = torch.min(torch.max(adv, pixels - config.eps), pixels + config.eps).clamp(
                    0.0, 1.0
                )
    finally:
        for p, r in zip(query.net.parameters(), requires, strict=True):
            p.requires_grad_(r)
    return (adv.detach() - m) / s


def pgd_train(
    net: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    mean: Sequence[float],
    std: Sequence[float],
    adversarial: PGDConfig | None = None,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    batch_size: int = 64,
    seed: int = 0,
) -> torch.nn.Module:
    """Train ``net`` on the normalised ``x``, ``y`` with AdamW in seeded batch order, each
    batch replaced by its :func:`pgd` examples when ``adversarial`` is given (Madry et al.'s
    adversarial training: the robust twin the robustness-aware attacks are tested on), the
    plain batch otherwise (its natural twin). Returns ``net`` in eval mode."""
    import torch

    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    query = NetQuery(net, "logits")
    for _ in range(epochs):
        net.train()
        for i in torch.randperm(len(y), generator=gen).split(batch_size):
            xb, yb = x[i], y[i]
            if adversarial is not None:
                net.eval()  # the attack sees the net as it is evaluated
                xb = pgd(query, xb, yb, adversarial, mean=mean, std=std)
                net.train()
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xb), yb).backward()
            opt.step()
    return net.eval()


def adversarial_batches(
    query: NetQuery,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    config: PGDConfig,
    *,
    mean: Sequence[float],
    std: Sequence[float],
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``batches`` with every input replaced by its PGD adversarial example."""
    for x, y in batches:
        yield pgd(query, x, y, config, mean=mean, std=std), y
