"""The likelihood-ratio attack, LiRA (Carlini et al., IEEE S&P 2022).

N shadow nets of the target's architecture (a copy of the target with every layer
re-initialised) are trained on random halves of the attacker's data pool, balanced so that
every pool image is IN for exactly half of them. For each image the attack fits Gaussians
to the shadow nets' logit-scaled confidence ``phi = log p_y - log(1 - p_y)``:

- **online**: ``log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out)``;
- **offline**: only the OUT nets, one-sided: ``log Phi((phi - mu_out) / s_out)``.

With fewer than 64 shadow nets the variances are pooled over all images (the paper's
"fixed variance" variant, more stable for small N). Shadow nets are cached under
``<cache>/shadows/<key>/`` (key: architecture, recipe, pool digest, N, seed): a second run
with the same key trains nothing. Before training, :func:`estimate_cost` times a few real
training steps and the attack refuses (:class:`AttackBudgetError`) when the estimate
exceeds the budget.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from securitynet.attacks.membership.metrics import ScoredMembership
from securitynet.attacks.membership.query import NetQuery
from securitynet.errors import AttackBudgetError, AttackError

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

#: Below this many shadow nets the per-image variances are replaced by a pooled one.
FIXED_VARIANCE_BELOW = 64


class ShadowRecipe(BaseModel):
    """How shadow nets are trained. Defaults: 16 nets, Adam lr 1e-3, 20 epochs, batch 128."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_shadow: int = Field(default=16, ge=2, le=1024)
    epochs: int = Field(default=20, ge=1)
    batch_size: int = Field(default=128, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    optimizer: str = Field(default="adam", pattern="^(adam|sgd)$")
    seed: int = 0


class CostEstimate(BaseModel):
    """What training and querying the shadow nets will take, before it starts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_shadow: int
    train_samples: int = Field(description="Images each shadow net trains on, per epoch.")
    epochs: int
    forward_flops: int | None = Field(description="FLOPs of one image's forward pass.")
    seconds_per_train_sample: float
    seconds: float = Field(description="Estimated wall time for every shadow net not cached.")
    cached: int = 0


@dataclass(frozen=True)
class ShadowPool:
    """The attacker's data: preprocessed images and labels (pool index = row)."""

    inputs: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        h.update(self.inputs.detach().cpu().contiguous().numpy().tobytes())
        h.update(self.labels.detach().cpu().numpy().astype("<i8").tobytes())
        return h.hexdigest()


def fresh_copy(net: nn.Module, *, seed: int) -> nn.Module:
    """The target's architecture with every layer re-initialised (seeded)."""
    import copy

    import torch

    clone = copy.deepcopy(net)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        touched = 0
        for module in clone.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
                touched += 1
    if touched == 0:
        raise AttackError(
            "cannot re-initialise the target's layers (no reset_parameters): no shadow nets"
        )
    return clone


def balanced_masks(n_shadow: int, n_points: int, *, seed: int) -> np.ndarray:
    """``n_shadow x n_points`` booleans, each column True in exactly half the rows."""
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random((n_shadow, n_points)), axis=0)
    return order < n_shadow // 2


def logit_confidence(
    query: NetQuery, inputs: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 1024
) -> np.ndarray:
    """``phi = log p_y - log(sum_{i != y} p_i)`` per image, computed stably."""
    import torch

    out: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, len(labels), batch_size):
            lp = query.log_probs(inputs[start : start + batch_size]).double()
            y = labels[start : start + batch_size].to(lp.device)
            lp_y = lp.gather(1, y.view(-1, 1)).squeeze(1)
            others = lp.scatter(1, y.view(-1, 1), float("-inf")).logsumexp(dim=1)
            out.append((lp_y - others).cpu().numpy())
    return np.concatenate(out)


def _train(
    net: nn.Module,
    query_output: str,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    recipe: ShadowRecipe,
    *,
    seed: int,
    device: str,
    steps: int | None = None,
) -> None:
    import torch

    query = NetQuery(net, query_output, device)
    params = [p for p in net.parameters() if p.requires_grad]
    opt: torch.optim.Optimizer
    if recipe.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=recipe.lr, momentum=0.9, weight_decay=recipe.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    done = 0
    for _ in range(recipe.epochs):
        order = torch.randperm(len(labels), generator=gen)
        for start in range(0, len(labels), recipe.batch_size):
            i = order[start : start + recipe.batch_size]
            opt.zero_grad()
            loss = torch.nn.functional.nll_loss(
                query.log_probs(inputs[i].to(device)), labels[i].to(device)
            )
            loss.backward()
            opt.step()
            done += 1
            if steps is not None and done >= steps:
                net.eval()
                return
    net.eval()


def _forward_flops(net: nn.Module, sample: torch.Tensor) -> int | None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(sample)
        return int(counter.get_total_flops())
    except Exception:  # some ops have no flop formula; the timing below still stands
        return None


def estimate_cost(
    target: NetQuery,
    pool: ShadowPool,
    recipe: ShadowRecipe,
    *,
    cached: int = 0,
    probe_steps: int = 3,
) -> CostEstimate:
    """Time ``probe_steps`` real training steps of a fresh copy and scale up."""
    import torch

    net = fresh_copy(target.net, seed=recipe.seed).to(target.device)
    batch = min(recipe.batch_size, len(pool))
    flops = _forward_flops(net, pool.inputs[:1].to(target.device))
    probe = ShadowRecipe(**{**recipe.model_dump(), "epochs": 1})
    inputs, labels = pool.inputs[:batch], pool.labels[:batch]
    step = probe.model_copy(update={"batch_size": batch})
    start = time.perf_counter()
    for i in range(probe_steps + 1):  # the first step warms up and is not timed
        _train(net, target.output, inputs, labels, step, seed=0, device=target.device, steps=1)
        if i == 0:
            if target.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
    if target.device.startswith("cuda"):
        torch.cuda.synchronize()
    per_sample = (time.perf_counter() - start) / (probe_steps * batch)
    train_samples = len(pool) // 2
    todo = max(recipe.n_shadow - cached, 0)
    # training, plus one inference pass over the pool per net (about a third of a step)
    seconds = todo * per_sample * (train_samples * recipe.epochs + len(pool) / 3.0)
    return CostEstimate(
        n_shadow=recipe.n_shadow,
        train_samples=train_samples,
        epochs=recipe.epochs,
        forward_flops=flops,
        seconds_per_train_sample=per_sample,
        seconds=seconds,
        cached=cached,
    )


@dataclass(frozen=True)
class ShadowSet:
    """The shadow nets' ``phi`` on every pool image, and which images each trained on."""

    masks: np.ndarray  #: n_shadow x n_pool bool
    phi: np.ndarray  #: n_shadow x n_pool float64
    estimate: CostEstimate
    cache_dir: Path | None


def _cache_key(architecture: str, recipe: ShadowRecipe, pool: ShadowPool) -> str:
    payload = json.dumps(
        {"architecture": architecture, "recipe": recipe.model_dump(), "pool": pool.digest},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def train_shadows(
    target: NetQuery,
    pool: ShadowPool,
    recipe: ShadowRecipe,
    *,
    architecture: str,
    cache_dir: Path | None = None,
    budget_s: float | None = None,
) -> ShadowSet:
    """Train (or read from the cache) ``recipe.n_shadow`` shadow nets on halves of ``pool``.

    ``architecture`` identifies the target's architecture in the cache key (the entry's
    load specification, say). Raises :class:`AttackBudgetError` before any training when
    the estimate for the nets not cached exceeds ``budget_s``."""
    from safetensors.torch import save_file

    if len(pool) < 4:
        raise AttackError("LiRA needs an attacker pool of at least 4 images")
    folder = cache_dir / _cache_key(architecture, recipe, pool) if cache_dir is not None else None
    n = recipe.n_shadow
    masks = balanced_masks(n, len(pool), seed=recipe.seed)
    done = [folder is not None and (folder / f"phi_{i}.npy").is_file() for i in range(n)]
    estimate = estimate_cost(target, pool, recipe, cached=sum(done))
    log.info("LiRA: %d shadow nets (%d cached), estimated %.0f s", n, sum(done), estimate.seconds)
    if budget_s is not None and estimate.seconds > budget_s:
        raise AttackBudgetError(
            f"training {n - sum(done)} shadow nets would take about {estimate.seconds:.0f} s, over the budget of {budget_s:.0f} s",
            estimate_s=estimate.seconds,
            budget_s=budget_s,
        )
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "masks.npy", masks)
    phi = np.zeros((n, len(pool)))
    from securitynet import progress

    for i in progress.track(range(n), description="shadow nets", total=n):
        if folder is not None and done[i]:
            phi[i] = np.load(folder / f"phi_{i}.npy")
            continue
        net = fresh_copy(target.net, seed=recipe.seed * 100_003 + i).to(target.device)
        keep = np.flatnonzero(masks[i])
        _train(
            net,
            target.output,
            pool.inputs[keep],
            pool.labels[keep],
            recipe,
            seed=recipe.seed * 100_003 + i,
            device=target.device,
        )
        phi[i] = logit_confidence(
            NetQuery(net, target.output, target.device), pool.inputs, pool.labels
        )
        if folder is not None:
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
                str(folder / f"shadow_{i}.safetensors"),
            )
            np.save(folder / f"phi_{i}.npy", phi[i])
    return ShadowSet(masks=masks, phi=phi, estimate=estimate, cache_dir=folder)


def _log_normal(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd) - 0.5 * math.log(2 * math.pi)


def _masked_stats(phi: np.ndarray, mask: np.ndarray, fixed: bool) -> tuple[np.ndarray, np.ndarray]:
    count = mask.sum(axis=0)
    if (count == 0).any():
        raise AttackError("an image is IN (or OUT) for no shadow net; train more shadow nets")
    mu = (phi * mask).sum(axis=0) / count
    var = (((phi - mu) ** 2) * mask).sum(axis=0) / np.maximum(count - 1, 1)
    if fixed:
        var = np.full_like(var, var.mean())
    return mu, np.sqrt(np.maximum(var, 1e-12))


def lira_scores(target_phi: np.ndarray, shadows: ShadowSet, *, online: bool) -> np.ndarray:
    """One LiRA score per pool image (higher = more member-like)."""
    fixed = shadows.masks.shape[0] < FIXED_VARIANCE_BELOW
    mu_out, sd_out = _masked_stats(shadows.phi, ~shadows.masks, fixed)
    if not online:
        import torch

        z = torch.from_numpy((target_phi - mu_out) / sd_out)
        return torch.special.log_ndtr(z).numpy()
    mu_in, sd_in = _masked_stats(shadows.phi, shadows.masks, fixed)
    return _log_normal(target_phi, mu_in, sd_in) - _log_normal(target_phi, mu_out, sd_out)


def lira_attack(
    target: NetQuery,
    pool: ShadowPool,
    member_rows: np.ndarray,
    nonmember_rows: np.ndarray,
    shadows: ShadowSet,
    *,
    online: bool = True,
) -> ScoredMembership:
    """LiRA scores of the members and non-members (rows of ``pool``). No hard decisions:
    the balanced accuracy reported is the best threshold's."""
    phi = logit_confidence(target, pool.inputs, pool.labels)
    scores = lira_scores(phi, shadows, online=online)
    return ScoredMembership(scores[member_rows], scores[nonmember_rows])
