"""Crafting a malicious primitive (Ji et al., "Model-Reuse Attacks on Deep Learning Systems",
CCS 2018): perturb few parameters of a benign feature extractor so that a target input's
features move to those of a chosen class, while other inputs' features barely change.

1. The aim: the centroid of the features of a few reference inputs of the target class
   (the adversary holds them), pushed past it by ``overshoot`` of the shift.
2. Saliency: per parameter, the impact on the target's distance to the aim (gradient
   magnitude) over its impact on the other inputs' features (the Jacobian column norm over
   the adversary's clean inputs, estimated with random Rademacher projections). Only the
   ``param_fraction`` of highest ratio may change.
3. Bounded perturbation: those parameters descend the target loss plus a stealth loss
   (relative feature change on clean inputs), each kept within ``max_change`` of its
   tensor's standard deviation; the stealth weight grows while the drift on the clean
   inputs exceeds ``max_drift``. The state kept is the one nearest the aim among those
   within the drift bound.

Imports torch at import time: only the attack's code paths import this module."""

from __future__ import annotations

import copy
import logging
import math

import torch

from securitynet.attacks.reuse.config import CraftReport, ReuseConfig
from securitynet.attacks.reuse.primitive import FeatureExtractor, features
from securitynet.errors import AttackError

log = logging.getLogger(__name__)

#: Random projections estimating each parameter's impact on the clean inputs' features.
PROJECTIONS = 8
#: Stop early once the target is this near its aim (relative to where it started).
GOAL_DISTANCE = 0.05


def relative_drift(before: torch.Tensor, after: torch.Tensor) -> float:
    """Mean L2 feature change over mean L2 feature norm (0 = unchanged)."""
    norm = float(before.norm(dim=1).mean())
    if norm == 0:
        return 0.0 if bool(torch.equal(before, after)) else math.inf
    return float((after - before).norm(dim=1).mean()) / norm


def _saliency_masks(
    mal: FeatureExtractor,
    params: list[torch.nn.Parameter],
    target_loss: torch.Tensor,
    clean_x: torch.Tensor,
    *,
    fraction: float,
    seed: int,
) -> list[torch.Tensor]:
    g_target = torch.autograd.grad(target_loss, params)
    out = mal(clean_x)
    gen = torch.Generator().manual_seed(seed)
    impact = [torch.zeros_like(p) for p in params]
    for k in range(PROJECTIONS):
        r = torch.randint(0, 2, out.shape, generator=gen).to(out) * 2 - 1
        grads = torch.autograd.grad(
            (out * r).sum() / len(clean_x), params, retain_graph=k < PROJECTIONS - 1
        )
        for acc, g in zip(impact, grads, strict=True):
            acc += g.detach() ** 2
    others = [(acc / PROJECTIONS).sqrt() for acc in impact]
    floor = 1e-3 * float(torch.cat([o.flatten() for o in others]).mean()) + 1e-12
    ratios = [g.detach().abs() / (o + floor) for g, o in zip(g_target, others, strict=True)]
    flat = torch.cat([r.flatten() for r in ratios])
    k = max(1, math.ceil(fraction * flat.numel()))
    cut = torch.topk(flat, k, sorted=True).values[-1]
    return [(r >= cut) & (r > 0) for r in ratios]


def craft_malicious(
    extractor: FeatureExtractor,
    target_x: torch.Tensor,
    reference_x: torch.Tensor,
    clean_x: torch.Tensor,
    config: ReuseConfig,
) -> tuple[FeatureExtractor, CraftReport]:
    """A perturbed copy of ``extractor`` that maps ``target_x`` near the features of
    ``reference_x`` (inputs of the target class), with the features of ``clean_x`` kept."""
    if len(target_x) == 0 or len(reference_x) == 0 or len(clean_x) == 0:
        raise AttackError("the model-reuse attack needs target, reference and clean inputs")
    mal = copy.deepcopy(extractor).eval()
    for p in mal.parameters():
        p.requires_grad_(False)
    named = [(n, p) for n, p in mal.trainable() if p.is_floating_point()]
    if not named:
        raise AttackError("the primitive has no parameters to perturb")
    params = [p for _, p in named]
    f0_target = features(mal, target_x)
    f0_clean = features(mal, clean_x)
    centroid = features(mal, reference_x).mean(0, keepdim=True)
    aim = centroid + config.overshoot * (centroid - f0_target)
    start = float(((f0_target - aim) ** 2).sum(1).mean())
    if start == 0:
        raise AttackError("the target's features already sit at the target class's aim")
    clean_norm = float((f0_clean**2).sum(1).mean()) or 1.0
    for p in params:
        p.requires_grad_(True)

    def target_loss() -> torch.Tensor:
        return ((mal(target_x) - aim) ** 2).sum(1).mean() / start

    masks = _saliency_masks(
        mal, params, target_loss(), clean_x, fraction=config.param_fraction, seed=config.seed
    )
    base = [p.detach().clone() for p in params]
    bounds = [
        config.max_change * (float(b.std()) if b.numel() > 1 else float(b.abs().mean()) or 1.0)
        for b in base
    ]
    opt = torch.optim.Adam(params, lr=config.lr)
    weight = 1.0
    best: tuple[float, float, list[torch.Tensor]] | None = None
    distance, drift, steps = 1.0, 0.0, 0
    for step in range(1, config.steps + 1):
        steps = step
        opt.zero_grad()
        stealth = ((mal(clean_x) - f0_clean) ** 2).sum(1).mean() / clean_norm
        (target_loss() + weight * stealth).backward()
        for p, m in zip(params, masks, strict=True):
            if p.grad is not None:
                p.grad.mul_(m)
        opt.step()
        with torch.no_grad():
            for p, b, m, bound in zip(params, base, masks, bounds, strict=True):
                p.copy_(b + ((p - b) * m).clamp(-bound, bound))
            distance = float(target_loss())
            drift = relative_drift(f0_clean, mal(clean_x))
        if drift <= config.max_drift:
            weight = max(weight / 1.2, 1e-3)
            if best is None or distance < best[0]:
                best = (distance, drift, [p.detach().clone() for p in params])
            if distance <= GOAL_DISTANCE:
                break
        else:
            weight *= 1.5
    if best is None:
        raise AttackError(
            f"no perturbation kept the clean features within the drift bound {config.max_drift}",
            hint="Raise max_drift, or lower max_change / param_fraction.",
        )
    distance, drift, kept = best
    with torch.no_grad():
        for p, value in zip(params, kept, strict=True):
            p.copy_(value)
    for p in mal.parameters():
        p.requires_grad_(False)
    changed = sum(int((p != b).sum()) for p, b in zip(params, base, strict=True))
    report = CraftReport(
        steps=steps,
        perturbed_params=changed,
        params=sum(p.numel() for p in params),
        target_distance=distance,
        adversary_drift=drift,
        max_abs_change=max(float((p - b).abs().max()) for p, b in zip(params, base, strict=True)),
    )
    log.info(
        "malicious primitive: %d of %d parameters changed, target at %.3f of its start distance, "
        "clean drift %.4f, %d steps",
        report.perturbed_params,
        report.params,
        distance,
        drift,
        steps,
    )
    return mal, report
