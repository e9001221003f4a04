"""The reuse key of a stored result: what changes it and what does not."""

from __future__ import annotations

import pytest

from securitynet.attacks.membership.run import MembershipConfig
from securitynet.evaluate import DataSpec, MembershipRequest
from securitynet.evaluate.tasks import membership_digest, membership_protocol, wilson
from securitynet.records import EntryRecord, FileRef


def _record(sha: str) -> EntryRecord:
    return EntryRecord(id="github:o/r/net.pt", files=[FileRef(url="https://example.org/net.pt", sha256=sha * 64, size=1)])


def _digest(record: EntryRecord, variant: str = "confidence", **kw: object) -> str:
    fields: dict[str, object] = {"data": DataSpec(name="digits"), "members": "train[:200]", "nonmembers": "test[:200]"}
    request = MembershipRequest(**{**fields, **kw})  # type: ignore[arg-type]
    protocol, _, _ = membership_protocol(request)
    return membership_digest(record, request, protocol, variant)


def test_the_digest_follows_weights_protocol_and_the_attacks_own_settings() -> None:
    a, b = _record("a"), _record("b")
    base = _digest(a)
    assert base == _digest(a) and base != _digest(b)
    assert base != _digest(a, "entropy")
    assert base != _digest(a, config=MembershipConfig(seed=1))  # another sample of the protocol
    assert base != _digest(a, max_samples=100)
    # settings another attack uses, and the list of attacks run beside it, do not matter
    assert base == _digest(a, config=MembershipConfig(attacks=["all"], pgd={"eps": 0.1}, shadow={"n_shadow": 4}))
    assert _digest(a, "adv_confidence") != _digest(a, "adv_confidence", config=MembershipConfig(pgd={"eps": 0.1}))
    assert base != _digest(a, data=DataSpec(name="digits", batch_size=64))


def test_wilson_interval() -> None:
    low, high = wilson(96, 100)
    assert low == pytest.approx(0.9016, abs=1e-3) and high == pytest.approx(0.9843, abs=1e-3)
    assert wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12) and wilson(10, 10)[1] == pytest.approx(1.0)
    # the bounds never cross the proportion itself (a figure's interval must contain it)
    assert wilson(0, 300)[0] == 0.0 and wilson(300, 300)[1] == 1.0


def test_a_stealing_policy_is_in_the_key_and_names_the_variant() -> None:
    from securitynet.attacks.stealing import StealingConfig
    from securitynet.evaluate import StealingRequest
    from securitynet.evaluate.stealing import stealing_digest

    def request(**kw: object) -> StealingRequest:
        return StealingRequest(data=DataSpec(name="mnist"), config=StealingConfig(budgets=[500, 1000], **kw))  # type: ignore[arg-type]

    random = request()
    assert random.variants() == {"soft_500": 500, "soft_1000": 1000}
    # a random-policy key is what it was before policies existed: the active settings are not in it
    assert not {"policy", "round_size", "candidates", "arms"} & set(random.variant_config(500))
    assert stealing_digest(_record("a"), random, 500) == stealing_digest(_record("a"), request(round_size=7), 500)
    kcenter = request(policy="kcenter")
    assert kcenter.variants() == {"soft_kcenter_500": 500, "soft_kcenter_1000": 1000}
    keys = {stealing_digest(_record("a"), r, 500) for r in (random, kcenter, request(policy="kcenter", round_size=50))}
    assert len(keys) == 3
    # the bandit's arms matter to the adaptive policy only
    assert stealing_digest(_record("a"), kcenter, 500) == stealing_digest(_record("a"), request(policy="kcenter", arms=5), 500)
    assert stealing_digest(_record("a"), request(policy="adaptive"), 500) != stealing_digest(
        _record("a"), request(policy="adaptive", arms=5), 500
    )
    assert stealing_digest(_record("a"), random, 500) != stealing_digest(_record("a"), request(surrogate="resnet18"), 500)


def test_budget_curves_read_a_report_of_stored_figures() -> None:
    from securitynet.evaluate import BatchReport, EntryOutcome, budget_curves
    from securitynet.records import EvaluationRecord, MetricResult

    def ev(variant: str, budget: int, agreement: float) -> EvaluationRecord:
        return EvaluationRecord(
            attack="model-stealing", variant=variant, source="evaluate", config_digest=variant,
            metrics=[
                MetricResult(metric="agreement", value=agreement, lower=agreement - 1, upper=agreement + 1),
                MetricResult(metric="accuracy", value=agreement - 0.5),
                MetricResult(metric="queries", value=float(budget)),
            ],
        )

    report = BatchReport(outcomes=[EntryOutcome(entry_id="github:o/r/net.pt", evaluations=[
        ev("soft_kcenter_1000", 1000, 95.0), ev("soft_kcenter_500", 500, 92.0),
    ])])
    (name, points), = budget_curves(report).items()
    assert name == "soft kcenter" and [p.budget for p in points] == [500, 1000]
    assert points[0].agreement_range == (91.0, 93.0) and points[0].accuracy_range is None
