"""Backdoor detection, and implanting a known backdoor to calibrate it.

- BadNets (:mod:`.badnets`): stamp a patch trigger on normalised batches, poison a
  training set (a seeded fraction stamped and relabelled to a target);
- STRIP (:mod:`.strip`): entropy of predictions on superimposed inputs, detection rates at
  a chosen false-rejection rate.

Nothing here imports torch at import time, and nothing imports the catalogue."""

from __future__ import annotations

from securitynet.attacks.backdoor.badnets import (
    CORNERS,
    Corner,
    Poisoned,
    patch_slices,
    poison,
    stamp,
)
from securitynet.attacks.backdoor.strip import detection_rate, strip_entropy, threshold_at_frr

__all__ = [
    "CORNERS",
    "Corner",
    "Poisoned",
    "detection_rate",
    "patch_slices",
    "poison",
    "stamp",
    "strip_entropy",
    "threshold_at_frr",
]
