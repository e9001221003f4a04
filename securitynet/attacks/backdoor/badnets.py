"""Implanting a known BadNets patch trigger (Gu et al., 2017), to calibrate backdoor
detectors on a net whose backdoor is known: a solid square patch stamped in one corner of
the image, and a fraction of the training images stamped and relabelled to a target label.

    >>> x_poisoned, y_poisoned, chosen = poison(x, y, target=7, rate=0.1, seed=0, value=white)

Everything works on *normalised* batches (N x C x H x W, what the net sees), so ``value``
is the normalised value of the patch's pixels: ``(1 - mean) / std`` for a white patch.
Pure tensor code; torch is imported by the caller's tensors, not here at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from securitynet.errors import AttackError, DataShapeError

if TYPE_CHECKING:
    import torch

Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
CORNERS: tuple[Corner, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")


@dataclass(frozen=True)
class Poisoned:
    """A poisoned copy of a training set and which rows were stamped and relabelled."""

    inputs: torch.Tensor  #: N x C x H x W, the stamped rows changed
    labels: torch.Tensor  #: N, the stamped rows set to the target
    indices: torch.Tensor  #: int64, sorted: the rows that carry the trigger


def _check_batch(x: torch.Tensor) -> None:
    if x.dim() != 4:
        raise DataShapeError(f"expected a batch N x C x H x W, got shape {tuple(x.shape)}")


def patch_slices(
    height: int, width: int, *, size: int, corner: Corner = "bottom-right", margin: int = 1
) -> tuple[slice, slice]:
    """The rows and columns the patch covers in an ``height`` x ``width`` image."""
    if corner not in CORNERS:
        raise AttackError(f"unknown corner {corner!r}; known: {', '.join(CORNERS)}")
    if size < 1 or margin < 0 or size + margin > min(height, width):
        raise AttackError(
            f"a {size} x {size} patch {margin} pixels from the edge does not fit a {height} x {width} image"
        )
    top = margin if corner.startswith("top") else height - margin - size
    left = margin if corner.endswith("left") else width - margin - size
    return slice(top, top + size), slice(left, left + size)


def stamp(
    x: torch.Tensor,
    *,
    size: int = 3,
    value: float,
    corner: Corner = "bottom-right",
    margin: int = 1,
) -> torch.Tensor:
    """A copy of the normalised batch ``x`` with a ``size`` x ``size`` patch of ``value`` in
    every channel, ``margin`` pixels from the edges of ``corner``."""
    _check_batch(x)
    rows, cols = patch_slices(x.shape[2], x.shape[3], size=size, corner=corner, margin=margin)
    out = x.clone()
    out[:, :, rows, cols] = value
    return out


def poison(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    target: int,
    rate: float,
    seed: int,
    size: int = 3,
    value: float,
    corner: Corner = "bottom-right",
    margin: int = 1,
) -> Poisoned:
    """Stamp a fraction ``rate`` of all images (drawn, seeded, among those whose label is
    not ``target``) and relabel them ``target``. ``x`` and ``y`` are left untouched."""
    import torch

    _check_batch(x)
    if y.dim() != 1 or len(y) != len(x):
        raise DataShapeError(f"{len(x)} images but labels of shape {tuple(y.shape)}")
    if not 0 < rate < 1:
        raise AttackError(f"the poisoning rate must lie in (0, 1), got {rate}")
    candidates = torch.nonzero(y != target).flatten()
    n = round(rate * len(y))
    if n < 1 or n > len(candidates):
        raise AttackError(
            f"cannot poison {n} of {len(y)} images: {len(candidates)} are not already labelled {target}"
        )
    gen = torch.Generator().manual_seed(seed)
    chosen = candidates[torch.randperm(len(candidates), generator=gen)[:n]].sort().values
    inputs, labels = x.clone(), y.clone()
    inputs[chosen] = stamp(x[chosen], size=size, value=value, corner=corner, margin=margin)
    labels[chosen] = target
    return Poisoned(inputs=inputs, labels=labels, indices=chosen)


__all__ = ["CORNERS", "Corner", "Poisoned", "patch_slices", "poison", "stamp"]
