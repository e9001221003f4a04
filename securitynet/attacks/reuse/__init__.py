"""The model-reuse attack (Ji et al., CCS 2018): a benign primitive (a catalogued net with its
head cut off) is perturbed, few parameters within a bound, so that a host system built on it
(a fresh head trained on the host's task) classifies a chosen target input as a chosen class
while other inputs' features barely move.

- :mod:`.primitive`: cut any classifier's head off (the last linear layer as executed);
- :mod:`.craft`: saliency-guided, bounded perturbation under a feature-drift bound;
- :mod:`.host`: host training over several seeds, attack success, clean-accuracy change,
  feature drift, and STRIP's verdict on the target;
- :mod:`.plot`: the target image and its class scores on the benign and malicious host.

Only the configuration and result records load here; the rest imports torch when called."""

from __future__ import annotations

from securitynet.attacks.reuse.config import CraftReport, ReuseConfig, ReuseResult, StripVerdict

__all__ = ["CraftReport", "ReuseConfig", "ReuseResult", "StripVerdict"]
