"""Every membership attack on one net and one member / non-member protocol.

    >>> result = run_membership(query, members, nonmembers, MembershipConfig(attacks=["all"]),
    ...                         mean=(0.1307,), std=(0.3081,))
    >>> result.metrics["confidence"].auc.value

``members`` and ``nonmembers`` are zero-argument callables that yield ``(inputs, labels)``
batches (already through the entry's transform); they are called again for each pass over
the data (clean posteriors, PGD, LiRA's pool). A failing attack is recorded in
``errors`` and the others still run. An attack that came in through a group (``all``)
and does not apply to the net (the verified ones, without a certified epsilon or on a net
interval bounds cannot pass through) is ``skipped``, with the reason, instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from securitynet.attacks.membership.learned import learned_attack
from securitynet.attacks.membership.lira import (
    ShadowPool,
    ShadowRecipe,
    ShadowSet,
    lira_attack,
    train_shadows,
)
from securitynet.attacks.membership.metrics import (
    AttackMetrics,
    ScoredMembership,
    evaluate_scores,
    roc_curve,
)
from securitynet.attacks.membership.query import NetQuery
from securitynet.attacks.membership.robust import PGDConfig, adversarial_batches
from securitynet.attacks.membership.signals import (
    SIGNALS,
    MembershipPosteriors,
    Posteriors,
    metric_attack,
)
from securitynet.attacks.membership.verified import VerifiedConfig, verified_posteriors
from securitynet.errors import AttackError, SecurityNetError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

Batches = Callable[[], Iterable[tuple["torch.Tensor", "torch.Tensor"]]]

METRIC = SIGNALS
LEARNED = ("mlp_sorted", "mlp_top3")
ROBUST = tuple(f"adv_{s}" for s in SIGNALS)
LIRA = ("lira_online", "lira_offline")
VERIFIED = tuple(f"verified_{s}" for s in SIGNALS)
GROUPS: dict[str, tuple[str, ...]] = {
    "metric": METRIC,
    "learned": LEARNED,
    "robust": ROBUST,
    "verified": VERIFIED,
    "lira": LIRA,
    "all": METRIC + LEARNED + ROBUST + VERIFIED + LIRA,
}
ATTACKS: tuple[str, ...] = GROUPS["all"]


def expand_attacks(names: Iterable[str]) -> list[str]:
    """Attack and group names (``all``, ``metric``, ``learned``, ``robust``, ``verified``,
    ``lira``) -> attacks, in order."""
    out: list[str] = []
    for raw in names:
        for name in (n.strip() for n in raw.split(",")):
            if not name:
                continue
            group = GROUPS.get(name, (name,) if name in ATTACKS else None)
            if group is None:
                raise AttackError(
                    f"unknown membership attack {name!r}; known: {', '.join((*GROUPS, *ATTACKS))}",
                    attack=name,
                )
            out.extend(a for a in group if a not in out)
    if not out:
        raise AttackError("no membership attack named")
    return out


class MembershipConfig(BaseModel):
    """Everything that changes a membership result (stored with it, part of the reuse key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attacks: list[str] = Field(default_factory=lambda: list(METRIC + LEARNED))
    seed: int = 0
    bootstrap: int = Field(default=200, ge=0)
    pgd: PGDConfig = Field(default_factory=PGDConfig)
    verified: VerifiedConfig = Field(default_factory=VerifiedConfig)
    shadow: ShadowRecipe = Field(default_factory=ShadowRecipe)
    budget_s: float | None = Field(
        default=1800.0, gt=0, description="Refuse LiRA above this estimate."
    )
    threshold_source: str = "cross-fit"
    conditional: list[str] = Field(
        default_factory=list,
        description="Attacks that came in only through ``all``: skipped, with the reason, "
        "where they do not apply (filled from ``attacks``).",
    )

    @model_validator(mode="before")
    @classmethod
    def _conditional(cls, data: object) -> object:
        if not isinstance(data, dict) or "conditional" in data:
            return data
        named = {n.strip() for raw in data.get("attacks", ()) for n in str(raw).split(",")}
        if "all" not in named or named & {"verified", *VERIFIED}:
            return data
        return {**data, "conditional": list(VERIFIED)}

    @field_validator("attacks")
    @classmethod
    def _expand(cls, value: list[str]) -> list[str]:
        return expand_attacks(value)


@dataclass
class MembershipResult:
    metrics: dict[str, AttackMetrics] = field(default_factory=dict)
    roc: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)


def run_membership(
    query: NetQuery,
    members: Batches,
    nonmembers: Batches,
    config: MembershipConfig,
    *,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    architecture: str = "",
    cache_dir: Path | None = None,
) -> MembershipResult:
    """Run ``config.attacks`` on ``query``; ``mean``/``std`` (the entry's normalisation)
    are needed by the robustness-aware and verified attacks, ``cache_dir`` keeps LiRA's
    shadow nets."""
    run = _Run(query, members, nonmembers, config, mean, std, architecture, cache_dir)
    return run.all()


@dataclass
class _Run:
    """One run: the clean posteriors, and the adversarial and worst-case posteriors, LiRA
    pool and shadow nets built the first time an attack needs them."""

    query: NetQuery
    members: Batches
    nonmembers: Batches
    config: MembershipConfig
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    architecture: str
    cache_dir: Path | None
    result: MembershipResult = field(default_factory=MembershipResult)
    _adversarial: MembershipPosteriors | None = None
    _verified: MembershipPosteriors | SecurityNetError | None = None
    _pool: ShadowPool | None = None
    _shadows: ShadowSet | None = None

    def all(self) -> MembershipResult:
        started = time.perf_counter()
        q = self.query
        self.clean = MembershipPosteriors(
            Posteriors(*q.posteriors(self.members())), Posteriors(*q.posteriors(self.nonmembers()))
        )
        self.result.extra["target_accuracy"] = {
            "members": float(
                (self.clean.member.probs.argmax(1) == self.clean.member.labels).mean()
            ),
            "nonmembers": float(
                (self.clean.nonmember.probs.argmax(1) == self.clean.nonmember.labels).mean()
            ),
        }
        self.result.extra["query_seconds"] = time.perf_counter() - started
        for name in self.config.attacks:
            t0 = time.perf_counter()
            try:
                scored = self.scores(name)
                self.result.metrics[name] = evaluate_scores(
                    scored, bootstrap=self.config.bootstrap, seed=self.config.seed
                )
                fpr, tpr, _ = roc_curve(scored.member, scored.nonmember)
                self.result.roc[name] = (fpr, tpr)
            except SecurityNetError as exc:
                if name in self.config.conditional:
                    log.info("membership attack %s skipped: %s", name, exc)
                    self.result.skipped[name] = str(exc)
                else:
                    log.warning("membership attack %s failed: %s", name, exc)
                    self.result.errors[name] = f"{type(exc).__name__}: {exc}"
            self.result.seconds[name] = time.perf_counter() - t0
        return self.result

    def scores(self, name: str) -> ScoredMembership:
        seed = self.config.seed
        if name in METRIC:
            return metric_attack(name, self.clean, seed=seed)
        if name in LEARNED:
            return learned_attack(name.removeprefix("mlp_"), self.clean, seed=seed)
        if name in ROBUST:
            return metric_attack(name.removeprefix("adv_"), self.adversarial(), seed=seed)
        if name in VERIFIED:
            return metric_attack(name.removeprefix("verified_"), self.worst_case(), seed=seed)
        pool, shadows = self.shadows()
        n_m = len(self.clean.member)
        rows_m, rows_n = np.arange(n_m), np.arange(n_m, len(pool))
        return lira_attack(self.query, pool, rows_m, rows_n, shadows, online=name == "lira_online")

    def adversarial(self) -> MembershipPosteriors:
        if self._adversarial is None:
            if self.mean is None or self.std is None:
                raise AttackError("the robustness-aware attacks need the entry's mean and std")
            q, pgd, mean, std = self.query, self.config.pgd, self.mean, self.std
            adv_m = q.posteriors(adversarial_batches(q, self.members(), pgd, mean=mean, std=std))
            adv_n = q.posteriors(adversarial_batches(q, self.nonmembers(), pgd, mean=mean, std=std))
            self._adversarial = MembershipPosteriors(Posteriors(*adv_m), Posteriors(*adv_n))
        return self._adversarial

    def worst_case(self) -> MembershipPosteriors:
        """The verified worst-case posteriors (computed once; a refusal is kept and raised
        again for every verified attack)."""
        if self._verified is None:
            try:
                self._verified = self._bound()
            except SecurityNetError as exc:
                self._verified = exc
        if isinstance(self._verified, SecurityNetError):
            raise self._verified
        return self._verified

    def _bound(self) -> MembershipPosteriors:
        eps = self.config.verified.eps
        if eps is None:
            raise AttackError(
                "the verified attacks need a certified epsilon: the entry's (facts "
                "'certified_training' and 'epsilon') or one given (--verified-eps)"
            )
        if self.mean is None or self.std is None:
            raise AttackError("the verified attacks need the entry's mean and std")
        q, mean, std = self.query, self.mean, self.std
        member = verified_posteriors(q, self.members(), eps, mean=mean, std=std)
        nonmember = verified_posteriors(q, self.nonmembers(), eps, mean=mean, std=std)
        return MembershipPosteriors(Posteriors(*member), Posteriors(*nonmember))

    def shadows(self) -> tuple[ShadowPool, ShadowSet]:
        """LiRA's pool (members, then non-members) and its shadow nets."""
        import torch

        if self._pool is None:
            xs, ys = [], []
            for source in (self.members, self.nonmembers):
                for x, y in source():
                    xs.append(x)
                    ys.append(y)
            self._pool = ShadowPool(torch.cat(xs), torch.cat(ys))
        if self._shadows is None:
            self._shadows = train_shadows(
                self.query,
                self._pool,
                self.config.shadow,
                architecture=self.architecture,
                cache_dir=self.cache_dir,
                budget_s=self.config.budget_s,
            )
            self.result.extra["lira_cost_estimate"] = self._shadows.estimate.model_dump()
        return self._pool, self._shadows
