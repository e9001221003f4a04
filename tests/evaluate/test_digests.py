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
