"""Metric-based membership inference (Song & Mittal, USENIX Security 2021).

Four signals of a posterior vector ``p`` and true label ``y``, each oriented so that a
higher value means "more likely a member":

- ``correctness``: 1 if ``argmax p == y`` else 0;
- ``confidence``: ``p_y``;
- ``entropy``: ``-H(p)``;
- ``modified_entropy``: ``-Mentr(p, y)`` with
  ``Mentr = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)``.

The threshold-free AUC is taken over the raw signal. Hard decisions use class-dependent
thresholds (one per true label, as in the paper) chosen on shadow data: the shadow model's
own members and non-members, or, when the attacker has no shadow model, the other half of
the evaluation data (2-fold cross-fitting: no image is decided by a threshold fit on it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from securitynet.attacks.membership.metrics import ScoredMembership, roc_curve
from securitynet.errors import AttackError

SIGNALS: tuple[str, ...] = ("correctness", "confidence", "entropy", "modified_entropy")
_EPS = 1e-30


@dataclass(frozen=True)
class Posteriors:
    """Class probabilities (N x C) and true labels (N) of one group of images."""

    probs: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.probs.ndim != 2 or self.labels.shape != (self.probs.shape[0],):
            raise AttackError(
                f"posteriors {self.probs.shape} and labels {self.labels.shape} do not pair up"
            )
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= self.probs.shape[1]):
            raise AttackError(
                f"labels outside 0..{self.probs.shape[1] - 1} for a {self.probs.shape[1]}-class net"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray) -> Posteriors:
        return Posteriors(self.probs[idx], self.labels[idx])


@dataclass(frozen=True)
class MembershipPosteriors:
    """Posteriors of the members and of the non-members of one net."""

    member: Posteriors
    nonmember: Posteriors

    def halves(
        self, seed: int
    ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """Two disjoint (member idx, non-member idx) halves, drawn with ``seed``."""
        return cross_fit_halves(len(self.member), len(self.nonmember), seed)


def cross_fit_halves(
    members: int, nonmembers: int, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The two (member idx, non-member idx) halves the attacks without a shadow model fit
    on and score by turns; another library's attack compared with ours gets the same."""
    rng = np.random.default_rng(seed)
    pm, pn = rng.permutation(members), rng.permutation(nonmembers)
    hm, hn = members // 2, nonmembers // 2
    return (pm[:hm], pn[:hn]), (pm[hm:], pn[hn:])


def signal(name: str, post: Posteriors) -> np.ndarray:
    """One signal per image (higher = more member-like)."""
    p = np.clip(post.probs.astype(np.float64), 0.0, 1.0)
    y = post.labels
    rows = np.arange(len(y))
    p_y = p[rows, y]
    if name == "correctness":
        return (p.argmax(axis=1) == y).astype(np.float64)
    if name == "confidence":
        return p_y
    if name == "entropy":
        return np.sum(p * np.log(np.maximum(p, _EPS)), axis=1)
    if name == "modified_entropy":
        log_p = np.log(np.maximum(p, _EPS))
        log_1mp = np.log(np.maximum(1.0 - p, _EPS))
        terms = -p * log_1mp
        terms[rows, y] = -(1.0 - p_y) * log_p[rows, y]
        return -terms.sum(axis=1)
    raise AttackError(
        f"unknown membership signal {name!r}; known: {', '.join(SIGNALS)}", signal=name
    )


def _best_threshold(member: np.ndarray, nonmember: np.ndarray) -> float:
    fpr, tpr, thresholds = roc_curve(member, nonmember)
    bal = tpr + 1.0 - fpr
    i = int(np.argmax(bal[1:])) + 1  # never the +inf "flag nothing" threshold
    return float(thresholds[i])


@dataclass(frozen=True)
class ClassThresholds:
    """A threshold per true label ("member" when signal >= threshold), with a global one
    for labels the shadow data lacks on either side."""

    per_class: dict[int, float]
    fallback: float

    @classmethod
    def fit(
        cls,
        member: np.ndarray,
        member_labels: np.ndarray,
        nonmember: np.ndarray,
        nonmember_labels: np.ndarray,
    ) -> ClassThresholds:
        fallback = _best_threshold(member, nonmember)
        per_class: dict[int, float] = {}
        for c in np.union1d(member_labels, nonmember_labels):
            mi, ni = member_labels == c, nonmember_labels == c
            if mi.any() and ni.any():
                per_class[int(c)] = _best_threshold(member[mi], nonmember[ni])
        return cls(per_class=per_class, fallback=fallback)

    def decide(self, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
        t = np.full(len(labels), self.fallback, dtype=np.float64)
        for c, threshold in self.per_class.items():
            t[labels == c] = threshold
        return scores >= t


def metric_attack(
    name: str,
    target: MembershipPosteriors,
    *,
    shadow: MembershipPosteriors | None = None,
    seed: int = 0,
) -> ScoredMembership:
    """Scores and hard decisions of one metric-based attack on ``target``."""
    sm, sn = signal(name, target.member), signal(name, target.nonmember)
    if name == "correctness":  # a correct prediction *is* the decision
        return ScoredMembership(sm, sn, sm >= 0.5, sn >= 0.5)
    ym, yn = target.member.labels, target.nonmember.labels
    if shadow is not None:
        th = ClassThresholds.fit(
            signal(name, shadow.member),
            shadow.member.labels,
            signal(name, shadow.nonmember),
            shadow.nonmember.labels,
        )
        return ScoredMembership(sm, sn, th.decide(sm, ym), th.decide(sn, yn))
    if min(len(sm), len(sn)) < 2:
        raise AttackError(
            "thresholds without a shadow model need at least 2 members and 2 non-members"
        )
    dm, dn = np.zeros(len(sm), dtype=bool), np.zeros(len(sn), dtype=bool)
    halves = target.halves(seed)
    for (fit_m, fit_n), (use_m, use_n) in (halves, halves[::-1]):
        th = ClassThresholds.fit(sm[fit_m], ym[fit_m], sn[fit_n], yn[fit_n])
        dm[use_m] = th.decide(sm[use_m], ym[use_m])
        dn[use_n] = th.decide(sn[use_n], yn[use_n])
    return ScoredMembership(sm, sn, dm, dn)
