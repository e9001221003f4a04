"""Active query selection for model stealing: which pool images to send to the target next.

Queries are spent in rounds of ``round_size``. The first round is a random draw (there is
no surrogate yet); after each round a *selector* surrogate is refined (warm start, a few
epochs on every answer so far) and picks the next round from the candidates not yet sent:

- ``uncertainty``: the candidates the selector is least confident about (lowest top-1
  probability);
- ``kcenter``: greedy core-set (Sener & Savarese 2018) in the selector's posterior space:
  each pick is the candidate farthest from everything already sent;
- ``adaptive``: Knockoff Nets' gradient bandit (Orekondy et al. 2019). The arms are
  clusters of the candidates (k-means on 8 x 8 thumbnails: the pool is unlabelled); each
  query's arm is drawn from the softmax of the arms' preferences, and its reward (the
  selector's cross-entropy against the target's answer plus the answer's L1 distance from
  its arm's mean answer, each scaled by its largest value so far) moves the preferences
  against the running mean reward.

The order in which images are sent is what nested budgets use: the surrogate for budget
``b`` trains on the first ``b`` answers. Pure torch; the target is reached only through the
``answer`` callable.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from securitynet.errors import AttackError

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

POLICIES = ("random", "uncertainty", "kcenter", "adaptive")
#: Step size of the bandit's preference updates (Knockoff's gradient bandit).
BANDIT_LR = 0.1


def least_confident(probs: torch.Tensor, k: int) -> torch.Tensor:
    """Rows of ``probs`` (N x C) with the ``k`` lowest top-1 probabilities (ties: first)."""
    import torch

    confidence = probs.max(1).values
    return torch.sort(confidence, stable=True).indices[:k]


def kcenter_greedy(points: torch.Tensor, centers: torch.Tensor, k: int, *, chunk: int = 4096) -> torch.Tensor:
    """``k`` rows of ``points`` picked greedily, each the farthest (L2) from ``centers`` and
    the rows picked before it."""
    import torch

    if len(points) < k:
        raise AttackError(f"k-center: {k} picks from {len(points)} points")
    if len(centers):
        nearest = torch.cat([torch.cdist(p, centers).min(1).values for p in points.split(chunk)])
    else:
        nearest = torch.full((len(points),), math.inf)
    picks = []
    for _ in range(k):
        i = int(nearest.argmax())
        picks.append(i)
        nearest = torch.minimum(nearest, (points - points[i]).norm(dim=1))
        nearest[i] = -1.0
    return torch.tensor(picks, dtype=torch.long)


def kmeans(x: torch.Tensor, k: int, *, seed: int, iters: int = 25) -> torch.Tensor:
    """Cluster of each row of ``x`` (N x D) after Lloyd's iterations from ``k`` random rows."""
    import torch

    if len(x) < k:
        raise AttackError(f"k-means: {k} clusters of {len(x)} points")
    gen = torch.Generator().manual_seed(seed)
    centers = x[torch.randperm(len(x), generator=gen)[:k]].clone()
    assign = torch.zeros(len(x), dtype=torch.long)
    for _ in range(iters):
        new = torch.cdist(x, centers).argmin(1)
        if torch.equal(new, assign):
            break
        assign = new
        for c in range(k):
            members = x[assign == c]
            if len(members):
                centers[c] = members.mean(0)
    return assign


def thumbnails(x: torch.Tensor, side: int = 8) -> torch.Tensor:
    """Images (N x C x H x W) as flat ``side`` x ``side`` average-pooled thumbnails."""
    from torch import nn

    return nn.functional.adaptive_avg_pool2d(x.float(), min(side, x.shape[-1])).flatten(1)


class GradientBandit:
    """Preferences over ``arms``; draws from their softmax, updates towards rewarded arms."""

    def __init__(self, arms: int, *, lr: float = BANDIT_LR) -> None:
        import torch

        self.preferences = torch.zeros(arms, dtype=torch.float64)
        self.lr = lr
        self.baseline = 0.0
        self.steps = 0

    def policy(self, available: torch.Tensor) -> torch.Tensor:
        """Probabilities of the arms, 0 for those not ``available`` (bool mask)."""
        import torch

        logits = self.preferences.masked_fill(~available, -math.inf)
        return torch.softmax(logits, 0)

    def draw(self, available: torch.Tensor, gen: torch.Generator) -> int:
        import torch

        return int(torch.multinomial(self.policy(available), 1, generator=gen))

    def update(self, arm: int, reward: float, available: torch.Tensor) -> None:
        """One gradient-bandit step: H += lr (r - mean r) (1[arm] - pi)."""
        pi = self.policy(available)
        self.steps += 1
        self.baseline += (reward - self.baseline) / self.steps
        step = self.lr * (reward - self.baseline)
        self.preferences -= step * pi
        self.preferences[arm] += step


def active_order(
    policy: str,
    candidates: torch.Tensor,
    top: int,
    answer: Callable[[torch.Tensor], torch.Tensor],
    *,
    round_size: int,
    arms: int,
    seed: int,
    make_selector: Callable[[], nn.Module],
    refine: Callable[[nn.Module, torch.Tensor, torch.Tensor], None],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Send ``top`` of ``candidates`` to ``answer`` in rounds chosen by ``policy``.

    Returns ``(positions, answers)``: the candidates' positions in the order they were sent,
    and the answers in that order."""
    import torch

    if policy not in POLICIES or policy == "random":
        raise AttackError(f"unknown active policy {policy!r}; known: {', '.join(POLICIES[1:])}")
    n = len(candidates)
    if top > n:
        raise AttackError(f"{top} queries from {n} candidates", budget=top, candidates=n)
    gen = torch.Generator().manual_seed(seed)
    taken = torch.zeros(n, dtype=torch.bool)
    order: list[torch.Tensor] = []
    answers: list[torch.Tensor] = []

    def send(picks: torch.Tensor) -> torch.Tensor:
        taken[picks] = True
        order.append(picks)
        got = answer(candidates[picks])
        answers.append(got)
        return got

    send(torch.randperm(n, generator=gen)[: min(round_size, top)])
    clusters = bandit = None
    if policy == "adaptive":
        clusters = kmeans(thumbnails(candidates), arms, seed=seed)
        bandit = _ArmRewards(clusters, arms)
    selector = make_selector()
    rounds = 1
    while sum(len(o) for o in order) < top:
        k = min(round_size, top - sum(len(o) for o in order))
        refine(selector, candidates[torch.cat(order)], torch.cat(answers))
        free = (~taken).nonzero().squeeze(1)
        if policy == "uncertainty":
            picks = free[least_confident(_probs(selector, candidates[free]), k)]
        elif policy == "kcenter":
            probs = _probs(selector, candidates)
            picks = free[kcenter_greedy(probs[free], probs[taken], k)]
        else:
            assert bandit is not None  # set above for this policy
            picks = bandit.pick(taken, k, gen)
            got = send(picks)
            bandit.reward(picks, got, _probs(selector, candidates[picks]))
            rounds += 1
            continue
        send(picks)
        rounds += 1
    if bandit is not None:
        log.info("adaptive: arm preferences after %d rounds: %s", rounds, bandit.bandit.preferences.tolist())
    return torch.cat(order), torch.cat(answers)


def _probs(net: nn.Module, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    import torch

    net.eval()
    with torch.no_grad():
        return torch.cat([torch.softmax(net(c), 1) for c in x.split(batch_size)])


class _ArmRewards:
    """The adaptive policy's state: clusters as arms, the bandit, each arm's mean answer and
    the largest rewards seen (to scale the two reward terms alike)."""

    def __init__(self, clusters: torch.Tensor, arms: int) -> None:
        self.clusters = clusters
        self.arms = arms
        self.bandit = GradientBandit(arms)
        self.mean_answer: dict[int, torch.Tensor] = {}
        self.seen: dict[int, int] = {}
        self.top_loss = self.top_diversity = 1e-12

    def pick(self, taken: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
        import torch

        free = ~taken.clone()
        picks = []
        for _ in range(k):
            available = torch.zeros(self.arms, dtype=torch.bool)
            available[self.clusters[free].unique()] = True
            arm = self.bandit.draw(available, gen)
            in_arm = (free & (self.clusters == arm)).nonzero().squeeze(1)
            choice = int(in_arm[torch.randint(len(in_arm), (1,), generator=gen)])
            free[choice] = False
            picks.append(choice)
        return torch.tensor(picks, dtype=torch.long)

    def reward(self, picks: torch.Tensor, answers: torch.Tensor, selector_probs: torch.Tensor) -> None:
        import torch

        loss = -(answers * torch.log(selector_probs.clamp_min(1e-12))).sum(1)
        everything = torch.ones(self.arms, dtype=torch.bool)
        for i, pos in enumerate(picks.tolist()):
            arm = int(self.clusters[pos])
            mean = self.mean_answer.get(arm)
            diversity = 1.0 if mean is None else float((answers[i] - mean).abs().sum()) / 2
            self.top_loss = max(self.top_loss, float(loss[i]))
            self.top_diversity = max(self.top_diversity, diversity)
            reward = float(loss[i]) / self.top_loss + diversity / self.top_diversity
            self.bandit.update(arm, reward, everything)
            seen = self.seen.get(arm, 0) + 1
            self.seen[arm] = seen
            self.mean_answer[arm] = answers[i].clone() if mean is None else mean + (answers[i] - mean) / seen
