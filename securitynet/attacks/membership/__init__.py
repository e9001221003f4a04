"""Membership inference: metric-based, learned (ML-Leaks), robustness-aware (CCS 2019) and
likelihood-ratio (LiRA) attacks, with AUC, balanced accuracy, TPR at low FPR and
bootstrap intervals. Pure scoring over arrays, apart from :mod:`.query` (posteriors),
:mod:`.robust` (PGD) and :mod:`.lira` (shadow training), which touch a net.

Nothing here imports torch at import time, and nothing imports the catalogue."""

from __future__ import annotations

from securitynet.attacks.membership.metrics import (
    AttackMetrics,
    Interval,
    ScoredMembership,
    auc,
    evaluate_scores,
    roc_curve,
    tpr_at_fpr,
)
from securitynet.attacks.membership.query import NetQuery
from securitynet.attacks.membership.run import (
    ATTACKS,
    GROUPS,
    MembershipConfig,
    MembershipResult,
    expand_attacks,
    run_membership,
)
from securitynet.attacks.membership.signals import (
    MembershipPosteriors,
    Posteriors,
    metric_attack,
    signal,
)

__all__ = [
    "ATTACKS",
    "GROUPS",
    "AttackMetrics",
    "Interval",
    "MembershipConfig",
    "MembershipPosteriors",
    "MembershipResult",
    "NetQuery",
    "Posteriors",
    "ScoredMembership",
    "auc",
    "evaluate_scores",
    "expand_attacks",
    "metric_attack",
    "roc_curve",
    "run_membership",
    "signal",
    "tpr_at_fpr",
]
