"""The verified attacks through the harness: a tiny IBP-trained digits net, served from a
loopback server as a catalogued entry annotated with its certified-training epsilon, gets
its verified figures stored (the epsilon taken from the entry); `all` on a net without one
skips them with the reason and stores the rest."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from securitynet.attacks.membership.run import METRIC, VERIFIED, MembershipConfig
from securitynet.catalogue.api import Catalogue
from securitynet.data import load_dataset
from securitynet.evaluate import DataSpec, MembershipRequest, evaluate
from securitynet.records import EntryRecord, FileRef, LoadSpec
from securitynet.settings import get_settings
from tests.attacks.conftest import ibp_fit, normalise, small_net
from tests.loader.conftest import LoopbackServer

LAYERS = [
    {"op": "flatten"},
    {"op": "linear", "name": "1", "in_features": 64, "out_features": 64},
    {"op": "relu"},
    {"op": "linear", "name": "3", "in_features": 64, "out_features": 10},
]
EPS = 0.1


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    server = LoopbackServer().start()
    try:
        yield server
    finally:
        server.stop()


def _entry(server: LoopbackServer, entry_id: str, net: torch.nn.Module, facts: dict[str, object]) -> EntryRecord:
    from safetensors.torch import save

    body = save({k: v.contiguous() for k, v in net.state_dict().items()})
    url = server.add(f"/{entry_id.split(':')[1]}.safetensors", body)
    return EntryRecord(
        id=entry_id,
        files=[FileRef(url=url, sha256=hashlib.sha256(body).hexdigest(), format="safetensors")],
        load=LoadSpec(
            builder="state-dict", kwargs={"layers": LAYERS}, input_size=(1, 8, 8), mean=(0.5,), std=(0.5,),
            crop_pct=1.0, num_classes=10, output="logits",
        ),
        extra_facts=facts,
    )


def test_verified_figures_are_stored_with_the_entrys_epsilon(server: LoopbackServer, tmp_path: Path) -> None:
    train = load_dataset("digits", "train")
    assert train.images is not None
    x, y = normalise(torch.from_numpy(train.images[:200])), torch.from_numpy(train.labels[:200])
    certified = ibp_fit(small_net(3), x, y, eps=EPS, epochs=60)
    plain = small_net(4).eval()  # any net without a certified epsilon (untrained: faster)
    cat = Catalogue(settings=get_settings(home=tmp_path, offline=False))
    cat.add(
        [
            _entry(server, "local:ibp-digits-mlp", certified, {"certified_training": "ibp", "epsilon": EPS}),
            _entry(server, "local:digits-mlp", plain, {}),
        ],
        origin="local",
    )

    def request(attacks: list[str]) -> MembershipRequest:
        return MembershipRequest(
            data=DataSpec(name="digits", batch_size=64), members="train[:200]", nonmembers="test[:200]",
            config=MembershipConfig(attacks=attacks, bootstrap=20),
        )

    report = evaluate(request(["confidence", "verified"]), entries=["local:ibp-digits-mlp"], catalogue=cat)
    assert report.failed == 0 and report.stored == 5
    (outcome,) = report.outcomes
    by_variant = {ev.variant: ev for ev in outcome.evaluations}
    assert by_variant["verified_confidence"].config["verified"] == {"eps": EPS}  # from the entry's facts
    stored = {r.variant: r.value for r in cat.results(entry_id="local:ibp-digits-mlp", attack="mia", metric="auc")}
    assert set(stored) == {"confidence", *VERIFIED} and all(0.5 < v < 1 for v in stored.values())
    again = evaluate(request(["verified"]), entries=["local:ibp-digits-mlp"], catalogue=cat)
    assert again.reused == 4 and again.stored == 0

    # `all` (cut to the metric and verified attacks, to keep it short) on the natural twin: no
    # certified epsilon, so the verified attacks are skipped with the reason; the rest is stored
    config = MembershipConfig(attacks=["all"], bootstrap=20)
    assert config.conditional == list(VERIFIED)
    config = config.model_copy(update={"attacks": [a for a in config.attacks if a in (*METRIC, *VERIFIED)]})
    without = MembershipRequest(
        data=DataSpec(name="digits", batch_size=64), members="train[:200]", nonmembers="test[:200]", config=config
    )
    report = evaluate(without, entries=["local:digits-mlp"], catalogue=cat)
    assert report.failed == 0 and report.stored == len(config.attacks) - len(VERIFIED)
    skipped = report.outcomes[0].extra["skipped"]
    assert set(skipped) == set(VERIFIED) and "certified epsilon" in skipped["verified_entropy"]
    assert not any(r.variant in VERIFIED for r in cat.results(entry_id="local:digits-mlp", attack="mia"))
