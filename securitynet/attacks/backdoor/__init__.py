"""Backdoor detection, and implanting a known backdoor to calibrate it.

- BadNets (:mod:`.badnets`): stamp a patch trigger on normalised batches, poison a
  training set (a seeded fraction stamped and relabelled to a target);
- Neural Cleanse (:mod:`.cleanse`): per-label trigger reverse-engineering, L1 norms of
  the masks; the verdict (:mod:`.verdict`): anomaly index, flagged labels;
  :func:`save_trigger_grid` (:mod:`.plot`) draws the reversed triggers;
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
from securitynet.attacks.backdoor.cleanse import (
    CleanseConfig,
    CleanseCost,
    CleanseResult,
    choose_labels_per_batch,
    estimate_cleanse_cost,
    neural_cleanse,
)
from securitynet.attacks.backdoor.plot import save_trigger_grid
from securitynet.attacks.backdoor.strip import detection_rate, strip_entropy, threshold_at_frr
from securitynet.attacks.backdoor.verdict import ANOMALY_THRESHOLD, anomaly_index, flagged_labels

__all__ = [
    "ANOMALY_THRESHOLD",
    "CORNERS",
    "CleanseConfig",
    "CleanseCost",
    "CleanseResult",
    "Corner",
    "Poisoned",
    "anomaly_index",
    "choose_labels_per_batch",
    "detection_rate",
    "estimate_cleanse_cost",
    "flagged_labels",
    "neural_cleanse",
    "patch_slices",
    "poison",
    "save_trigger_grid",
    "stamp",
    "strip_entropy",
    "threshold_at_frr",
]
