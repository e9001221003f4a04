"""Membership-inference metrics over scores (higher = "member"), numpy only.

AUC is the Mann-Whitney statistic with ties counted half; the ROC curve steps through
every distinct score; TPR at a fixed FPR is the best TPR whose FPR does not exceed it
(LiRA's convention, so a low-FPR figure is never flattered by interpolation). Intervals
are percentile bootstraps that resample members and non-members separately.

The bootstrap never sorts a resample: the scores are sorted once into groups of equal
value, a resample is a count per group (``bincount`` of its drawn indices), and every
figure follows from cumulative counts, for a block of resamples at a time. A group a
resample does not draw adds a repeated ROC point, which changes no figure, so the
intervals equal those of scoring each resample from scratch.
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
    # every member of a tie group gets its 1-based average rank
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
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


#: Resample-by-group cells (resamples x (draws + groups)) held at once by the bootstrap.
_BLOCK_CELLS = 1_000_000


def _score_groups(m: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Each score's group (0 = the highest distinct value) and the number of groups."""
    scores = np.concatenate((m, n))
    order = np.argsort(-scores, kind="mergesort")
    starts = np.r_[True, np.diff(scores[order]) != 0]
    group = np.empty(len(scores), dtype=np.int64)
    group[order] = np.cumsum(starts) - 1
    return group[: len(m)], group[len(m) :], int(starts.sum())


def _group_counts(groups: np.ndarray, draws: np.ndarray, n_groups: int) -> np.ndarray:
    """``draws`` (resamples x size, indices into ``groups``) -> counts (resamples x groups)."""
    rows = len(draws)
    cells = groups[draws] + (np.arange(rows) * n_groups)[:, None]
    return np.bincount(cells.ravel(), minlength=rows * n_groups).reshape(rows, n_groups)


def _bootstrap_figures(
    m: np.ndarray,
    n: np.ndarray,
    dm: np.ndarray | None,
    dn: np.ndarray | None,
    rng: np.random.Generator,
    bootstrap: int,
) -> np.ndarray:
    """``bootstrap`` x 4 figures (AUC, balanced accuracy, TPR at the two low FPRs) of
    resamples drawn from ``rng`` in the order a resample-at-a-time loop draws them
    (members, then non-members, per resample)."""
    n_m, n_n = len(m), len(n)
    out = np.empty((bootstrap, 4))
    if bootstrap == 0:
        return out
    gm, gn, n_groups = _score_groups(m, n)
    block = max(1, _BLOCK_CELLS // (n_m + n_n + 2 * n_groups))
    for lo in range(0, bootstrap, block):
        rows = min(block, bootstrap - lo)
        draw_m = np.empty((rows, n_m), dtype=np.int64)
        draw_n = np.empty((rows, n_n), dtype=np.int64)
        for r in range(rows):
            draw_m[r] = rng.integers(0, n_m, n_m)
            draw_n[r] = rng.integers(0, n_n, n_n)
        tp = _group_counts(gm, draw_m, n_groups)
        fp = _group_counts(gn, draw_n, n_groups)
        tp_cum, fp_cum = np.cumsum(tp, axis=1), np.cumsum(fp, axis=1)
        # Mann-Whitney U, ties half, in exact integers: 2U = sum_g fp_g (2 TP_above_g + tp_g)
        twice_u = np.sum(fp * (2 * (tp_cum - tp) + tp), axis=1)
        out[lo : lo + rows, 0] = twice_u / (2.0 * n_m * n_n)
        # the ROC points after each group; the (0, 0) point before them is the floor
        tpr, fpr = tp_cum / n_m, fp_cum / n_n
        if dm is not None and dn is not None:
            hits_m = dm[draw_m].sum(axis=1, dtype=np.float64)
            hits_n = dn[draw_n].sum(axis=1, dtype=np.float64)
            out[lo : lo + rows, 1] = (hits_m / n_m + (1.0 - hits_n / n_n)) / 2.0
        else:
            out[lo : lo + rows, 1] = np.maximum(np.max((tpr + 1.0 - fpr) / 2.0, axis=1), 0.5)
        for k, f in enumerate(LOW_FPRS):
            out[lo : lo + rows, 2 + k] = np.max(np.where(fpr <= f + 1e-12, tpr, 0.0), axis=1)
    return out


def evaluate_scores(
    scored: ScoredMembership, *, bootstrap: int = 200, level: float = 0.95, seed: int = 0
) -> AttackMetrics:
    """AUC, balanced accuracy and TPR at 0.1 % / 1 % FPR, each with a bootstrap interval."""
    m, n = _check(scored.member, scored.nonmember)
    dm, dn = scored.decided_member, scored.decided_nonmember
    hard = dm is not None and dn is not None
    area, bal, t01, t1 = _roc_figures(m, n)
    if dm is not None and dn is not None:
        dm, dn = np.asarray(dm, dtype=bool), np.asarray(dn, dtype=bool)
        bal = balanced_accuracy(dm, dn)
    point = [area, bal, t01, t1]
    rng = np.random.default_rng(seed)
    draws = _bootstrap_figures(m, n, dm, dn, rng, bootstrap)
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
