"""STRIP on real MNIST (../shared): a small CNN with an implanted BadNets patch (white 4 x 4,
bottom-right, 10 % of its training images relabelled 7) against its clean twin, at 1 % FRR.
The held-out clean images are split as the evaluation splits them: overlays, calibration
(the threshold), held-out clean inputs; the triggered inputs are those stamped."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from securitynet.attacks.backdoor.strip import StripConfig, StripResult, run_strip
from securitynet.attacks.membership.query import NetQuery
from tests.attacks.mnist_backdoor import BackdoorPair, Mnist, trigger

FRR = 0.01


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def strip_both(mnist: Mnist, pair: BackdoorPair) -> tuple[StripResult, StripResult]:
    overlays, calibration = mnist.x_test[:300], mnist.x_test[300:600]
    held_out, labels = mnist.x_test[600:], mnist.y_test[600:]
    stamped = trigger(held_out[labels != pair.target])  # images already of the target prove nothing
    config = StripConfig(frr=FRR, seed=pair.seed)
    return tuple(  # type: ignore[return-value]
        run_strip(NetQuery(net), calibration=calibration, clean=held_out, overlays=overlays,
                  triggered=stamped, config=config)
        for net in (pair.net, pair.twin)
    )  # fmt: skip


@pytest.mark.timeout(900)  # two nets to train per seed; a loaded machine takes minutes
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_strip_catches_the_badnets_trigger_and_not_on_the_clean_twin(
    mnist: Mnist, mnist_backdoor_pair: Callable[[int], BackdoorPair], seed: int
) -> None:
    pair = mnist_backdoor_pair(seed)
    assert pair.attack_success > 0.9 and pair.accuracy > 0.9  # the backdoor is there, the net is good
    bad, twin = strip_both(mnist, pair)
    figures = (bad.detection_rate, bad.clean_rejected, twin.detection_rate, twin.clean_rejected)
    # the threshold holds its false-rejection rate on clean images it was not set on
    assert bad.clean_rejected <= 0.04 and twin.clean_rejected <= 0.04, figures
    # bounded by the attack success (a stamped image the net does not send to 7 blends like a clean one)
    assert bad.detection_rate is not None and bad.detection_rate >= 0.8, figures
    # the clean twin ignores the patch: stamped images blend like clean ones
    assert twin.detection_rate is not None and twin.detection_rate <= 0.1, figures
    assert bad.threshold > 0 and len(bad.triggered_entropy or []) == int((mnist.y_test[600:] != pair.target).sum())
