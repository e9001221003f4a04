"""The harness on the real GitHub MNIST checkpoints: results stored in the catalogue and
reused, a reconstruction the net does not recognise failing loudly without stopping the
batch, --where through the read-only guard, measured accuracy stored as a claim.

The overfitted net's 50 members are reconstructed from PROVENANCE.md's recipe
(``torch.manual_seed(42)`` then ``random_split``): it is 96 % right on them."""

from __future__ import annotations

import pytest

from securitynet.attacks.membership.run import MembershipConfig
from securitynet.catalogue.api import Catalogue
from securitynet.errors import InvalidQueryError, ReadOnlyViolationError
from securitynet.evaluate import (
    AccuracyRequest,
    DataSpec,
    MembershipRequest,
    evaluate,
    list_failures,
)
from tests.evaluate.conftest import NORMAL, OVERFITTED


def _request(**kw: object) -> MembershipRequest:
    base: dict[str, object] = {
        "data": DataSpec(name="mnist"),
        "members": "random_split:42:50",
        "nonmembers": "test",
        "max_samples": 1000,
        "expect_member_accuracy": 0.96,
        "config": MembershipConfig(attacks=["metric", "mlp_top3"], bootstrap=50),
    }
    return MembershipRequest(**{**base, **kw})  # type: ignore[arg-type]


def test_the_overfitted_net_leaks_and_a_second_run_reuses_the_stored_results(mnist_catalogue: Catalogue) -> None:
    report = evaluate(_request(), entries=[OVERFITTED], catalogue=mnist_catalogue)
    assert report.failed == 0 and report.stored == 5 and report.reused == 0
    (outcome,) = report.outcomes
    assert outcome.extra["target_accuracy"]["members"] == pytest.approx(0.96)
    assert 0.5 < outcome.extra["target_accuracy"]["nonmembers"] < 0.65  # 58.93 % on the full test split
    by_variant = {ev.variant: ev for ev in outcome.evaluations}
    for variant in ("confidence", "modified_entropy"):
        auc = next(m for m in by_variant[variant].metrics if m.metric == "auc")
        assert auc.value > 0.75 and auc.lower is not None and auc.lower > 0.65
    correctness = by_variant["correctness"]
    assert correctness.metric("auc") == pytest.approx(0.5 + (0.96 - outcome.extra["target_accuracy"]["nonmembers"]) / 2)
    assert correctness.protocol["members"]["size"] == 50 and correctness.protocol["digest"]
    stored = mnist_catalogue.results(entry_id=OVERFITTED, attack="mia", metric="auc")
    assert {r.variant for r in stored} == {"correctness", "confidence", "entropy", "modified_entropy", "mlp_top3"}
    assert all(r.dataset == "MNIST" and r.source == "evaluate" for r in stored)

    again = evaluate(_request(), entries=[OVERFITTED], catalogue=mnist_catalogue)
    assert again.reused == 5 and again.stored == 0
    assert {ev.metric("auc") for ev in again.outcomes[0].evaluations} == {ev.metric("auc") for ev in outcome.evaluations}
    other_seed = evaluate(
        _request(config=MembershipConfig(attacks=["confidence"], bootstrap=50, seed=1)), entries=[OVERFITTED],
        catalogue=mnist_catalogue,
    )
    assert other_seed.reused == 0 and other_seed.stored == 1  # another protocol sample: not reused
    forced = evaluate(_request(config=MembershipConfig(attacks=["confidence"], bootstrap=50)), entries=[OVERFITTED],
                      catalogue=mnist_catalogue, force=True)
    assert forced.stored == 1 and forced.reused == 0


def test_a_reconstruction_the_net_does_not_recognise_fails_loudly_and_the_batch_goes_on(mnist_catalogue: Catalogue) -> None:
    # seed 43 draws 50 other train images: the net is ~60 % right on them, not 96 %
    report = evaluate(_request(members="random_split:43:50"), entries=[OVERFITTED, NORMAL], catalogue=mnist_catalogue, force=True)
    failed = [ev for o in report.outcomes if o.entry_id == OVERFITTED for ev in o.evaluations]
    assert failed and all(ev.status == "failed" and "not its training set" in (ev.error or "") for ev in failed)
    normal = next(o for o in report.outcomes if o.entry_id == NORMAL)  # 96 % is close enough to its ~99 %
    assert all(ev.status == "ok" for ev in normal.evaluations)
    (failure,) = list_failures(mnist_catalogue, entry_id=OVERFITTED, variant="confidence")
    assert failure.error and "ProtocolError" in failure.error


def test_where_runs_through_the_read_only_guard(mnist_catalogue: Catalogue) -> None:
    request = _request(config=MembershipConfig(attacks=["correctness"], bootstrap=0), expect_member_accuracy=None)
    report = evaluate(request, where="id LIKE '%overfitted%'", catalogue=mnist_catalogue, force=True)
    assert [o.entry_id for o in report.outcomes] == [OVERFITTED]
    with pytest.raises(InvalidQueryError):
        evaluate(request, where="1=1; DELETE FROM entry", catalogue=mnist_catalogue)
    with pytest.raises((ReadOnlyViolationError, InvalidQueryError)):
        evaluate(request, where="id IN (SELECT id FROM entry) OR (SELECT load_extension('x'))", catalogue=mnist_catalogue)
    assert mnist_catalogue.count(source="github") == 6


def test_measured_accuracy_is_stored_beside_the_published_claims(mnist_catalogue: Catalogue) -> None:
    request = AccuracyRequest(data=DataSpec(name="mnist"), split="test", max_samples=3000)
    report = evaluate(request, entries=[OVERFITTED], catalogue=mnist_catalogue)
    (ev,) = report.outcomes[0].evaluations
    top1 = ev.metric("top1")
    assert top1 == pytest.approx(58.93, abs=2.5)  # PROVENANCE.md: 58.93 % on all 10,000
    measured = [c for c in mnist_catalogue.get(OVERFITTED).claims if c.kind == "measured" and c.source == "securitynet-eval"]
    assert len(measured) == 1 and measured[0].value == pytest.approx(top1, abs=1e-3) and measured[0].split == "test"
    evaluate(request, entries=[OVERFITTED], catalogue=mnist_catalogue, force=True)
    assert len([c for c in mnist_catalogue.get(OVERFITTED).claims if c.source == "securitynet-eval"]) == 1
