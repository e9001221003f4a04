"""Backdoor detection. STRIP (:mod:`.strip`): entropy of predictions on superimposed inputs,
detection rates at a chosen false-rejection rate. Neural Cleanse is not implemented yet.

Nothing here imports torch at import time, and nothing imports the catalogue."""

from __future__ import annotations

from securitynet.attacks.backdoor.strip import detection_rate, strip_entropy, threshold_at_frr

__all__ = ["detection_rate", "strip_entropy", "threshold_at_frr"]
