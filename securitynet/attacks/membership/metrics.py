"""Membership-inference metrics over scores (higher = "member"), numpy only.

AUC is the Mann-Whitney statistic with ties counted half; the ROC curve steps through
every distinct score; TPR at a fixed FPR is the best TPR whose FPR does not exceed it
(LiRA's convention, so a low-FPR figure is never flattered by interpolation). Intervals
are percentile bootstraps that resample members and non-members separately.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict

from securitynet.errors import AttackError

#: The low false-positive rates every attack reports a TPR at.
LOW_FPRS: tuple[float, ...] = (0.001, 0.01)


def _check(member: np.ndarray, nonmember: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(member, dtype=np.float64).ravel()
    n = np.asarray(nonmember, dtype=np.float64).ravel()
    if len(m) == 0 or len(n) == 0:
        raise AttackError("a membership metric needs at least one member and one non-member score")
    if not (np.isfinite(m).all() and np.isfinite(n).all()):
        raise AttackError("membership scores contain NaN or infinity")
    return m, n


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(values)]))
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + e + 1) / 2.0  # 1-based average rank of the tie group
    return ranks


def auc(member: np.ndarray, nonmember: np.ndarray) -> float:
    """Probability that a random member scores above a random non-member (ties: half)."""
    m, n = _check(member, nonmember)
    ranks = _average_ranks(np.concatenate((m, n)))
    u = ranks[: len(m)].sum() - len(m) * (len(m) + 1) / 2.0
    return float(u / (len(m) * len(n)))


def roc_curve(
    member: np.ndarray, nonmember: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)``: predicting "member" when score >= threshold, from
    the strictest threshold (+inf: nothing flagged) down to the loosest."""
    m, n = _check(member, nonmember)
    scores = np.concatenate((m, n))
    is_member = np.concatenate((np.ones(len(m)), np.zeros(len(n))))
    order = np.argsort(-scores, kind="mergesort")
    scores, is_member = scores[order], is_member[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tp = np.cumsum(is_member)[last_of_group]
    fp = (last_of_group + 1) - tp
    tpr = np.r_[0.0, tp / len(m)]
    fpr = np.r_[0.0, fp / len(n)]
    thresholds = np.r_[np.inf, scores[last_of_group]]
    return fpr, tpr, thresholds


def tpr_at_fpr(member: np.ndarray, nonmember: np.ndarray, fpr_max: float) -> float:
    """The highest TPR among thresholds whose FPR is at most ``fpr_max``."""
    fpr, tpr, _ = roc_curve(member, nonmember)
    return float(tpr[fpr <= fpr_max + 1e-12].max())


def best_balanced_accuracy(member: np.ndarray, nonmember: np.ndarray) -> tuple[float, float]:
    """``(accuracy, threshold)``: the threshold with the best (TPR + TNR) / 2."""
    fpr, tpr, thresholds = roc_curve(member, nonmember)
    bal = (tpr + 1.0 - fpr) / 2.0
    i = int(np.argmax(bal))
    return float(bal[i]), float(thresholds[i])


def balanced_accuracy(predicted_member: np.ndarray, predicted_nonmember: np.ndarray) -> float:
    """(TPR + TNR) / 2 of hard decisions (True = "member") on members and non-members."""
    p_m = np.asarray(predicted_member, dtype=bool)
    p_n = np.asarray(predicted_nonmember, dtype=bool)
    if len(p_m) == 0 or len(p_n) == 0:
        raise AttackError("balanced accuracy needs members and non-members")
    return float((p_m.mean() + (1.0 - p_n.mean())) / 2.0)


class Interval(BaseModel):
    """A point estimate with a percentile-bootstrap interval."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float
    low: float
    high: float


class AttackMetrics(BaseModel):
    """Every figure one attack reports. ``balanced_accuracy`` is measured with hard
    decisions where the attack makes them (thresholds fit on other data), else at the
    best threshold on the evaluation data (an optimistic figure, flagged by ``bacc_oracle``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    auc: Interval
    balanced_accuracy: Interval
    tpr_at_0_1_fpr: Interval
    tpr_at_1_fpr: Interval
    bacc_oracle: bool
    members: int
    nonmembers: int

    def flat(self) -> dict[str, float]:
        """One number per metric name, as the results table stores them."""
        out: dict[str, float] = {}
        for name in ("auc", "balanced_accuracy", "tpr_at_0_1_fpr", "tpr_at_1_fpr"):
            iv: Interval = getattr(self, name)
            out[name] = iv.value
            out[f"{name}_low"] = iv.low
            out[f"{name}_high"] = iv.high
        return out


@dataclass(frozen=True)
class ScoredMembership:
    """One attack's output on one protocol: a score per member and non-member, and the
    hard decisions where the attack makes them."""

    member: np.ndarray
    nonmember: np.ndarray
    decided_member: np.ndarray | None = None
    decided_nonmember: np.ndarray | None = None


def _roc_figures(m: np.ndarray, n: np.ndarray) -> tuple[float, float, float, float]:
    """AUC (trapezoids over the step ROC: the Mann-Whitney statistic, ties half), best
    balanced accuracy and the two low-FPR TPRs, from one sort."""
    fpr, tpr, _ = roc_curve(m, n)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
    bal = float(np.max((tpr + 1.0 - fpr) / 2.0))
    low = [float(tpr[fpr <= f + 1e-12].max()) for f in LOW_FPRS]
    return area, bal, low[0], low[1]


def evaluate_scores(
    scored: ScoredMembership, *, bootstrap: int = 200, level: float = 0.95, seed: int = 0
) -> AttackMetrics:
    """AUC, balanced accuracy and TPR at 0.1 % / 1 % FPR, each with a bootstrap interval."""
    m, n = _check(scored.member, scored.nonmember)
    dm, dn = scored.decided_member, scored.decided_nonmember
    hard = dm is not None and dn is not None

    def figures(mi: np.ndarray | slice, ni: np.ndarray | slice) -> list[float]:
        area, bal, t01, t1 = _roc_figures(m[mi], n[ni])
        if dm is not None and dn is not None:
            bal = balanced_accuracy(dm[mi], dn[ni])
        return [area, bal, t01, t1]

    point = figures(slice(None), slice(None))
    rng = np.random.default_rng(seed)
    draws = np.array(
        [
            figures(rng.integers(0, len(m), len(m)), rng.integers(0, len(n), len(n)))
            for _ in range(bootstrap)
        ]
    ).reshape(bootstrap, 4)
    alpha = (1.0 - level) / 2.0
    names = ("auc", "balanced_accuracy", "tpr_at_0_1_fpr", "tpr_at_1_fpr")
    intervals = {
        name: Interval(
            value=point[k],
            low=float(np.quantile(draws[:, k], alpha)) if bootstrap else point[k],
            high=float(np.quantile(draws[:, k], 1.0 - alpha)) if bootstrap else point[k],
        )
        for k, name in enumerate(names)
    }
    return AttackMetrics(**intervals, bacc_oracle=not hard, members=len(m), nonmembers=len(n))
