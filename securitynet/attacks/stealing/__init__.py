"""Model stealing (Knockoff Nets style): query a target, train a surrogate on its answers,
report the surrogate's accuracy and its agreement with the target, for a list of budgets.

Nothing here imports torch at import time, and nothing imports the catalogue."""

from __future__ import annotations

from securitynet.attacks.stealing.knockoff import (
    LABEL_KINDS,
    SURROGATES,
    BudgetResult,
    StealingConfig,
    StealingResult,
    api_answer,
    build_surrogate,
    predict,
    run_stealing,
    score_surrogate,
    train_surrogate,
)

__all__ = [
    "LABEL_KINDS",
    "SURROGATES",
    "BudgetResult",
    "StealingConfig",
    "StealingResult",
    "api_answer",
    "build_surrogate",
    "predict",
    "run_stealing",
    "score_surrogate",
    "train_surrogate",
]
