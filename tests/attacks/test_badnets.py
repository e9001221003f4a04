"""The BadNets patch: where it lands, what poisoning changes, and its refusals (fast, pure);
and the MNIST nets the detectors are calibrated on really carry the backdoor."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from securitynet.attacks.backdoor import patch_slices, poison, stamp
from securitynet.errors import AttackError, DataShapeError
from tests.attacks.mnist_backdoor import TARGET, BackdoorPair


def test_the_patch_covers_size_squared_pixels_in_the_chosen_corner() -> None:
    x = torch.zeros(2, 3, 8, 8)
    out = stamp(x, size=2, value=5.0, corner="top-right", margin=1)
    assert x.abs().sum() == 0  # the input is not touched
    assert int((out == 5.0).sum()) == 2 * 3 * 2 * 2
    assert out[0, 0, 1:3, 5:7].eq(5.0).all() and out[:, :, 0].eq(0).all()
    assert patch_slices(28, 28, size=3, corner="bottom-right", margin=1) == (
        slice(24, 27),
        slice(24, 27),
    )
    assert patch_slices(28, 28, size=4, corner="top-left", margin=0) == (slice(0, 4), slice(0, 4))


def test_poisoning_stamps_and_relabels_the_chosen_rate_of_other_labels_reproducibly() -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 1, 10, 10, generator=gen), torch.arange(200) % 4
    bad = poison(x, y, target=2, rate=0.1, seed=3, size=2, value=9.0)
    assert len(bad.indices) == 20 and bool((y[bad.indices] != 2).all())
    assert bool((bad.labels[bad.indices] == 2).all())
    assert bool(bad.inputs[bad.indices][:, :, -3:-1, -3:-1].eq(9.0).all())
    untouched = torch.ones(200, dtype=torch.bool)
    untouched[bad.indices] = False
    assert torch.equal(bad.inputs[untouched], x[untouched]) and torch.equal(
        bad.labels[untouched], y[untouched]
    )
    again = poison(x, y, target=2, rate=0.1, seed=3, size=2, value=9.0)
    other = poison(x, y, target=2, rate=0.1, seed=4, size=2, value=9.0)
    assert torch.equal(again.indices, bad.indices) and not torch.equal(other.indices, bad.indices)


def test_badnets_refusals() -> None:
    x, y = torch.zeros(10, 1, 8, 8), torch.arange(10) % 2
    with pytest.raises(AttackError, match="does not fit"):
        stamp(x, size=8, value=1.0, margin=1)
    with pytest.raises(AttackError, match="unknown corner"):
        stamp(x, value=1.0, corner="middle")  # type: ignore[arg-type]
    with pytest.raises(DataShapeError, match="N x C x H x W"):
        stamp(torch.zeros(8, 8), value=1.0)
    with pytest.raises(AttackError, match="rate"):
        poison(x, y, target=1, rate=1.5, seed=0, value=1.0)
    with pytest.raises(AttackError, match="already labelled"):
        poison(x, y, target=1, rate=0.9, seed=0, value=1.0)
    with pytest.raises(DataShapeError):
        poison(x, y[:5], target=1, rate=0.1, seed=0, value=1.0)


def test_the_mnist_backdoored_net_obeys_the_trigger_and_stays_accurate(
    mnist_backdoor_pair: Callable[[int], BackdoorPair],
) -> None:
    pair = mnist_backdoor_pair(0)
    assert pair.target == TARGET
    assert pair.attack_success > 0.9
    assert pair.accuracy > 0.88 and pair.twin_accuracy > 0.88
