"""Knockoff-style model stealing: query a target with images of a public data set, keep what
an API would return (full probabilities, top-k, or the top-1 label only), train a surrogate
on those answers, and score it on the target's test data by its accuracy and its agreement
with the target (the two figures the SecurityNet release publishes).

Budgets are nested: per seed, ``max(budgets)`` query images are sent to the target once, and
the surrogate for budget ``b`` trains on the first ``b`` answers. So a list of budgets costs
the largest one in queries, and "agreement against budget" is one run. The images are a
random draw from the pool (``policy="random"``), or chosen in rounds by an active policy
from a random candidate set of the pool (:mod:`securitynet.attacks.stealing.selection`).

The target is touched only through :class:`~securitynet.attacks.membership.query.NetQuery`.
"""

from __future__ import annotations

import functools
import logging
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from securitynet.attacks.stealing.selection import active_order
from securitynet.attacks.stealing.surrogates import SMALL_CNN, build_surrogate
from securitynet.errors import AttackError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from securitynet.attacks.membership.query import NetQuery

log = logging.getLogger(__name__)

LABEL_KINDS = ("soft", "topk", "hard")


class StealingConfig(BaseModel):
    """How the attacker queries and trains (part of the result's reuse key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    budgets: list[int] = Field(default=[1000], min_length=1, description="Query budgets, one run.")
    labels: Literal["soft", "topk", "hard"] = Field(
        default="soft",
        description="What the API returns: full probabilities, the top-k renormalised, top-1 only.",
    )
    top_k: int = Field(default=3, ge=1)
    surrogate: str = Field(
        default=SMALL_CNN,
        min_length=1,
        description="small_cnn, a timm / torchvision architecture, or a catalogue entry id.",
    )
    policy: Literal["random", "uncertainty", "kcenter", "adaptive"] = Field(
        default="random", description="How query images are chosen (selection.py)."
    )
    round_size: int = Field(default=100, ge=1, description="Queries per round (active policies).")
    refine_epochs: int = Field(default=5, ge=1, description="Selector epochs between rounds.")
    candidates: int = Field(
        default=10_000, ge=1, description="Random pool images an active policy picks from."
    )
    arms: int = Field(default=10, ge=2, description="Pool clusters, the adaptive policy's arms.")
    epochs: int = Field(default=20, ge=1)
    batch_size: int = Field(default=64, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    seeds: int = Field(default=1, ge=1, le=20, description="Repeats; figures are their median.")
    seed: int = 0

    @field_validator("budgets")
    @classmethod
    def _positive_sorted(cls, budgets: list[int]) -> list[int]:
        if any(b <= 0 for b in budgets):
            raise ValueError("query budgets must be positive")
        return sorted(set(budgets))


class BudgetResult(BaseModel):
    """One budget's figures, per seed and as the median over seeds (percent)."""

    model_config = ConfigDict(extra="forbid")

    budget: int
    agreement: list[float]
    accuracy: list[float]

    @property
    def median_agreement(self) -> float:
        return statistics.median(self.agreement)

    @property
    def median_accuracy(self) -> float:
        return statistics.median(self.accuracy)


class StealingResult(BaseModel):
    """Every budget's figures, the target's own accuracy, and the query cost."""

    model_config = ConfigDict(extra="forbid")

    budgets: list[BudgetResult]
    target_accuracy: float
    queries: int  #: images sent to the target, all seeds together
    query_seconds: float  #: the target's forward passes
    train_seconds: float  #: the surrogates' training, one per budget and seed
    select_seconds: float = 0.0  #: an active policy choosing queries (selector refinement included)

    @property
    def queries_per_second(self) -> float:
        """Target queries per second of the target's own forward passes."""
        return self.queries / self.query_seconds if self.query_seconds > 0 else float("inf")

    @property
    def chosen_per_second(self) -> float:
        """Queries chosen and answered per second (selection included)."""
        spent = self.query_seconds + self.select_seconds
        return self.queries / spent if spent > 0 else float("inf")


def api_answer(probs: torch.Tensor, labels: str, top_k: int = 3) -> torch.Tensor:
    """What an API returning ``labels`` hands back for class probabilities ``probs`` (N x C):
    the probabilities, the top-k kept and renormalised, or the one-hot top-1 label."""
    import torch

    if labels == "soft":
        return probs
    if labels == "hard":
        return torch.nn.functional.one_hot(probs.argmax(1), probs.shape[1]).to(probs.dtype)
    if labels == "topk":
        k = min(top_k, probs.shape[1])
        values, index = probs.topk(k, dim=1)
        out = torch.zeros_like(probs).scatter_(1, index, values)
        return out / out.sum(1, keepdim=True).clamp_min(1e-12)
    raise AttackError(f"unknown label kind {labels!r}; known: {', '.join(LABEL_KINDS)}")


def train_surrogate(
    net: nn.Module,
    x: torch.Tensor,
    answers: torch.Tensor,
    config: StealingConfig,
    *,
    seed: int,
    epochs: int | None = None,
) -> nn.Module:
    """Fit ``net`` to the API's ``answers`` with soft-label cross-entropy (KL up to a constant),
    for ``epochs`` (default ``config.epochs``)."""
    import torch

    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(config.epochs if epochs is None else epochs):
        for idx in torch.randperm(len(x), generator=gen).split(config.batch_size):
            opt.zero_grad()
            logp = torch.log_softmax(net(x[idx]), dim=1)
            loss = -(answers[idx] * logp).sum(1).mean()
            loss.backward()
            opt.step()
    return net.eval()


def predict(net: nn.Module, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """Top-1 labels of ``net`` on ``x``."""
    import torch

    with torch.no_grad():
        return torch.cat([net(chunk).argmax(1) for chunk in x.split(batch_size)])


def score_surrogate(
    target_labels: torch.Tensor, surrogate_labels: torch.Tensor, truth: torch.Tensor
) -> tuple[float, float]:
    """``(accuracy, agreement)`` in percent of a surrogate's predictions on a test set."""
    if not (len(target_labels) == len(surrogate_labels) == len(truth)) or len(truth) == 0:
        raise AttackError("target, surrogate and test labels must be non-empty and aligned")
    accuracy = 100.0 * float((surrogate_labels == truth).double().mean())
    agreement = 100.0 * float((surrogate_labels == target_labels).double().mean())
    return accuracy, agreement


def run_stealing(
    target: NetQuery,
    fetch: Callable[[np.ndarray], torch.Tensor],
    pool_size: int,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    config: StealingConfig,
    *,
    surrogate: Callable[[int], nn.Module] | None = None,
) -> StealingResult:
    """Steal ``target`` at every budget of ``config``, ``config.seeds`` times.

    ``fetch(indices)`` returns the preprocessed query images at those positions of a pool
    of ``pool_size`` (the attacker's data, never the target's test set). ``surrogate(seed)``
    builds a fresh surrogate (default: :func:`build_surrogate` of ``config.surrogate`` for
    the images' shape; a catalogue entry needs its factory given here)."""
    import torch

    top = config.budgets[-1]
    if top > pool_size:
        raise AttackError(
            f"budget {top} exceeds the {pool_size} images available to query with",
            budget=top,
            pool=pool_size,
        )
    with torch.no_grad():
        target_test = torch.cat(
            [target.log_probs(chunk).argmax(1).cpu() for chunk in test_x.split(1024)]
        )
    target_accuracy = 100.0 * float((target_test == test_y).double().mean())
    classes = int(target.log_probs(test_x[:1]).shape[1])
    per_budget = {b: BudgetResult(budget=b, agreement=[], accuracy=[]) for b in config.budgets}
    query_s = train_s = select_s = 0.0

    def ask(x: torch.Tensor) -> torch.Tensor:
        """What the API answers for images ``x`` (timed: the query cost)."""
        nonlocal query_s
        started = time.perf_counter()
        with torch.no_grad():
            probs = torch.cat([target.log_probs(c).exp().cpu() for c in x.split(1024)])
        query_s += time.perf_counter() - started
        return api_answer(probs.float(), config.labels, config.top_k)

    def fresh(seed: int) -> nn.Module:
        if surrogate is not None:
            return surrogate(seed)
        return build_surrogate(config.surrogate, tuple(test_x.shape[1:]), classes, seed=seed)

    for repeat in range(config.seeds):
        seed = config.seed + repeat
        rng = np.random.default_rng(seed)
        if config.policy == "random":
            x = fetch(rng.choice(pool_size, top, replace=False)).cpu()
            answers = ask(x)
        else:
            pool = rng.choice(pool_size, min(pool_size, max(config.candidates, top)), replace=False)
            candidates = fetch(np.sort(pool)).cpu()
            started, asked = time.perf_counter(), query_s
            order, answers = active_order(
                config.policy,
                candidates,
                top,
                ask,
                round_size=config.round_size,
                arms=config.arms,
                seed=seed,
                make_selector=functools.partial(fresh, seed),
                refine=functools.partial(_refine, config=config, seed=seed),
            )
            select_s += time.perf_counter() - started - (query_s - asked)
            x = candidates[order]
        for budget in config.budgets:
            started = time.perf_counter()
            net = fresh(seed)
            train_surrogate(net, x[:budget], answers[:budget], config, seed=seed)
            train_s += time.perf_counter() - started
            accuracy, agreement = score_surrogate(target_test, predict(net, test_x), test_y)
            per_budget[budget].accuracy.append(accuracy)
            per_budget[budget].agreement.append(agreement)
            log.info("seed %d budget %d: agreement %.2f %%, accuracy %.2f %%", seed, budget, agreement, accuracy)
    return StealingResult(
        budgets=list(per_budget.values()),
        target_accuracy=target_accuracy,
        queries=top * config.seeds,
        query_seconds=query_s,
        train_seconds=train_s,
        select_seconds=select_s,
    )


def _refine(net: nn.Module, x: torch.Tensor, answers: torch.Tensor, config: StealingConfig, *, seed: int) -> None:
    """A selector's warm-started refinement between rounds."""
    train_surrogate(net, x, answers, config, seed=seed, epochs=config.refine_epochs)
