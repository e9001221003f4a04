"""Membership metrics and the metric-based and learned attacks, on arrays built here."""

from __future__ import annotations

import numpy as np
import pytest

from securitynet.attacks.membership import (
    MembershipPosteriors,
    Posteriors,
    ScoredMembership,
    auc,
    evaluate_scores,
    metric_attack,
    roc_curve,
    signal,
    tpr_at_fpr,
)
from securitynet.attacks.membership.learned import features, learned_attack
from securitynet.attacks.membership.run import expand_attacks
from securitynet.errors import AttackError


def test_auc_matches_scikit_learn_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    m, n = rng.integers(0, 6, 700).astype(float) + 0.5 * (rng.random(700) < 0.3), rng.integers(0, 6, 1300).astype(float)
    expected = roc_auc_score(np.r_[np.ones(700), np.zeros(1300)], np.r_[m, n])
    assert auc(m, n) == pytest.approx(expected, abs=1e-12)
    assert evaluate_scores(ScoredMembership(m, n), bootstrap=0).auc.value == pytest.approx(expected, abs=1e-12)
    assert auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert auc(np.ones(5), np.ones(9)) == 0.5


def test_tpr_at_low_fpr_never_interpolates() -> None:
    n = np.arange(1000, dtype=float)  # non-members 0..999
    m = np.array([999.5, 998.5, 997.5, 5.0])
    assert tpr_at_fpr(m, n, 0.0) == 0.25  # only 999.5 is above every non-member
    assert tpr_at_fpr(m, n, 0.001) == 0.5  # flagging 998.5 also flags 999: 0.1 % FPR
    assert tpr_at_fpr(m, n, 0.0015) == 0.5  # not 0.625: no interpolation toward 0.2 %
    assert tpr_at_fpr(m, n, 0.002) == 0.75
    fpr, tpr, thresholds = roc_curve(m, n)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and np.isinf(thresholds[0])


def test_bootstrap_intervals_bracket_the_estimate_and_shrink_with_data() -> None:
    rng = np.random.default_rng(1)
    small = evaluate_scores(ScoredMembership(rng.normal(1, 1, 50), rng.normal(0, 1, 50)), seed=0)
    large = evaluate_scores(ScoredMembership(rng.normal(1, 1, 5000), rng.normal(0, 1, 5000)), seed=0)
    for result in (small, large):
        for name in ("auc", "balanced_accuracy", "tpr_at_0_1_fpr", "tpr_at_1_fpr"):
            iv = getattr(result, name)
            assert iv.low <= iv.value <= iv.high
    assert large.auc.value == pytest.approx(0.76, abs=0.02)  # Phi(1 / sqrt 2)
    assert (large.auc.high - large.auc.low) < (small.auc.high - small.auc.low) / 5
    assert small.bacc_oracle and set(small.flat()) >= {"auc", "auc_low", "tpr_at_1_fpr_high"}


def test_bad_scores_are_refused() -> None:
    with pytest.raises(AttackError):
        auc(np.array([]), np.array([1.0]))
    with pytest.raises(AttackError, match="NaN"):
        auc(np.array([np.nan]), np.array([1.0]))
    with pytest.raises(AttackError):
        Posteriors(np.ones((3, 2)) / 2, np.array([0, 1, 2]))


def _posteriors(rng: np.random.Generator, n: int, accuracy: float, sharpness: float) -> Posteriors:
    """n 10-class posteriors whose argmax is right with probability ``accuracy``."""
    labels = rng.integers(0, 10, n)
    top = np.where(rng.random(n) < accuracy, labels, (labels + rng.integers(1, 10, n)) % 10)
    logits = rng.normal(0, 1, (n, 10))
    logits[np.arange(n), top] += sharpness
    p = np.exp(logits)
    return Posteriors(p / p.sum(1, keepdims=True), labels)


def test_correctness_auc_is_half_plus_half_the_generalisation_gap() -> None:
    rng = np.random.default_rng(2)
    for acc_m, acc_n in ((0.99, 0.6), (0.9, 0.9), (0.7, 0.8)):
        target = MembershipPosteriors(_posteriors(rng, 800, acc_m, 6), _posteriors(rng, 1200, acc_n, 6))
        train_acc = (target.member.probs.argmax(1) == target.member.labels).mean()
        test_acc = (target.nonmember.probs.argmax(1) == target.nonmember.labels).mean()
        scored = metric_attack("correctness", target)
        assert auc(scored.member, scored.nonmember) == pytest.approx(0.5 + (train_acc - test_acc) / 2, abs=1e-12)
        assert evaluate_scores(scored, bootstrap=0).balanced_accuracy.value == pytest.approx(0.5 + (train_acc - test_acc) / 2)


def test_modified_entropy_formula() -> None:
    p = np.array([[0.7, 0.2, 0.1]])
    y = np.array([0])
    expected = -(1 - 0.7) * np.log(0.7) - 0.2 * np.log(1 - 0.2) - 0.1 * np.log(1 - 0.1)
    assert signal("modified_entropy", Posteriors(p, y)) == pytest.approx(-expected)
    wrong = Posteriors(p, np.array([2]))  # a confident wrong answer is the least member-like
    assert signal("modified_entropy", wrong) < signal("modified_entropy", Posteriors(p, y))
    assert signal("entropy", Posteriors(p, y)) == pytest.approx(np.sum(p * np.log(p)))
    with pytest.raises(AttackError, match="unknown membership signal"):
        signal("loss", Posteriors(p, y))


def test_thresholded_attacks_separate_sharp_members_and_use_shadow_thresholds() -> None:
    rng = np.random.default_rng(3)
    target = MembershipPosteriors(_posteriors(rng, 600, 1.0, 8), _posteriors(rng, 600, 0.8, 3))
    shadow = MembershipPosteriors(_posteriors(rng, 600, 1.0, 8), _posteriors(rng, 600, 0.8, 3))
    for name in ("confidence", "entropy", "modified_entropy"):
        cross = evaluate_scores(metric_attack(name, target), bootstrap=0)
        shadowed = evaluate_scores(metric_attack(name, target, shadow=shadow), bootstrap=0)
        assert cross.auc.value > 0.85 and not cross.bacc_oracle
        assert shadowed.balanced_accuracy.value > 0.75 and cross.balanced_accuracy.value > 0.75
    same = MembershipPosteriors(_posteriors(rng, 600, 0.9, 4), _posteriors(rng, 600, 0.9, 4))
    assert abs(evaluate_scores(metric_attack("confidence", same), bootstrap=0).balanced_accuracy.value - 0.5) < 0.06


def test_ml_leaks_mlp_learns_sharpness_and_finds_nothing_where_there_is_none() -> None:
    rng = np.random.default_rng(4)
    target = MembershipPosteriors(_posteriors(rng, 500, 0.95, 7), _posteriors(rng, 500, 0.95, 3))
    assert features(target.member, "top3").shape == (500, 3)
    assert np.all(np.diff(features(target.member, "sorted"), axis=1) <= 0)
    for kind in ("sorted", "top3"):
        result = evaluate_scores(learned_attack(kind, target, seed=0, epochs=30), bootstrap=0)
        assert result.auc.value > 0.8 and result.balanced_accuracy.value > 0.7
    same = MembershipPosteriors(_posteriors(rng, 500, 0.9, 4), _posteriors(rng, 500, 0.9, 4))
    assert abs(evaluate_scores(learned_attack("top3", same, epochs=30), bootstrap=0).auc.value - 0.5) < 0.07


def test_attack_names_and_groups() -> None:
    assert expand_attacks(["metric"]) == ["correctness", "confidence", "entropy", "modified_entropy"]
    assert expand_attacks(["confidence,lira", "confidence"]) == ["confidence", "lira_online", "lira_offline"]
    assert len(expand_attacks(["all"])) == 16  # 4 metric, 2 learned, 4 PGD, 4 verified, 2 LiRA
    assert expand_attacks(["verified"]) == ["verified_correctness", "verified_confidence", "verified_entropy", "verified_modified_entropy"]
    with pytest.raises(AttackError, match="unknown membership attack"):
        expand_attacks(["shokri"])


def _evaluate_scores_one_resample_at_a_time(
    scored: ScoredMembership, *, bootstrap: int, seed: int
) -> np.ndarray:
    """The bootstrap as it was first written (each resample sorted and scored from scratch):
    the reference the vectorised one must reproduce. Returns point + draws, (1 + B) x 4."""
    from securitynet.attacks.membership.metrics import LOW_FPRS, balanced_accuracy

    m, n = np.asarray(scored.member, dtype=float), np.asarray(scored.nonmember, dtype=float)
    dm, dn = scored.decided_member, scored.decided_nonmember

    def figures(mi: np.ndarray | slice, ni: np.ndarray | slice) -> list[float]:
        fpr, tpr, _ = roc_curve(m[mi], n[ni])
        area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
        bal = float(np.max((tpr + 1.0 - fpr) / 2.0))
        low = [float(tpr[fpr <= f + 1e-12].max()) for f in LOW_FPRS]
        if dm is not None and dn is not None:
            bal = balanced_accuracy(dm[mi], dn[ni])
        return [area, bal, *low]

    rng = np.random.default_rng(seed)
    draws = [figures(slice(None), slice(None))]
    for _ in range(bootstrap):
        draws.append(figures(rng.integers(0, len(m), len(m)), rng.integers(0, len(n), len(n))))
    return np.array(draws)


@pytest.mark.parametrize(
    "case", ["continuous", "ties", "correctness", "hard_decisions", "tiny", "unbalanced"]
)
def test_vectorised_bootstrap_reproduces_scoring_each_resample_from_scratch(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import securitynet.attacks.membership.metrics as metrics

    rng = np.random.default_rng(11)
    n_m, n_n = {"tiny": (1, 3), "unbalanced": (2000, 70)}.get(case, (400, 600))
    m, n = rng.normal(0.4, 1, n_m), rng.normal(0, 1, n_n)
    dm = dn = None
    if case == "ties":
        m, n = np.round(m * 2), np.round(n * 2)
    if case == "correctness":
        m, n = (m > -0.8).astype(float), (n > -0.4).astype(float)
    if case == "hard_decisions":
        dm, dn = m > 0.3, n > 0.3
    scored = ScoredMembership(m, n, dm, dn)
    # small blocks, so several blocks of resamples (and a short last one) are exercised
    monkeypatch.setattr(metrics, "_BLOCK_CELLS", 7 * (n_m + n_n) * 3)
    for seed in (0, 5):
        expected = _evaluate_scores_one_resample_at_a_time(scored, bootstrap=57, seed=seed)
        rng_now = np.random.default_rng(seed)
        draws = metrics._bootstrap_figures(m, n, dm, dn, rng_now, 57)
        np.testing.assert_allclose(draws, expected[1:], rtol=0, atol=1e-12)
        result = evaluate_scores(scored, bootstrap=57, seed=seed)
        for k, name in enumerate(("auc", "balanced_accuracy", "tpr_at_0_1_fpr", "tpr_at_1_fpr")):
            iv = getattr(result, name)
            assert iv.value == pytest.approx(expected[0, k], abs=1e-12)
            assert iv.low == pytest.approx(np.quantile(expected[1:, k], 0.025), abs=1e-12)
            assert iv.high == pytest.approx(np.quantile(expected[1:, k], 0.975), abs=1e-12)
    assert len(metrics._bootstrap_figures(m, n, dm, dn, np.random.default_rng(0), 0)) == 0


def test_average_ranks_average_over_ties() -> None:
    from securitynet.attacks.membership.metrics import _average_ranks

    ranks = _average_ranks(np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0]))
    assert ranks.tolist() == [5.0, 1.5, 5.0, 3.0, 5.0, 1.5]
