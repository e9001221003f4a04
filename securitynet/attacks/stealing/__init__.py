"""Model stealing (Knockoff Nets style): query a target, train a surrogate on its answers,
report the surrogate's accuracy and its agreement with the target, for a list of budgets.

Nothing here imports torch at import time, and nothing imports the catalogue."""

from __future__ import annotations

from securitynet.attacks.stealing.knockoff import (
    LABEL_KINDS,
    BudgetResult,
    StealingConfig,
    StealingResult,
    api_answer,
    predict,
    run_stealing,
    score_surrogate,
    train_surrogate,
)
from securitynet.attacks.stealing.selection import POLICIES, active_order
from securitynet.attacks.stealing.surrogates import SURROGATES, build_surrogate, describe_adaptation

__all__ = [
    "LABEL_KINDS",
    "POLICIES",
    "SURROGATES",
    "BudgetResult",
    "StealingConfig",
    "StealingResult",
    "active_order",
    "api_answer",
    "build_surrogate",
    "describe_adaptation",
    "predict",
    "run_stealing",
    "score_surrogate",
    "train_surrogate",
]
