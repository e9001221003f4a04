"""STRIP (Gao et al., ACSAC 2019): an input carrying a backdoor trigger keeps its (target)
prediction when blended with other clean images, so the entropy of the net's predictions on
such superimposed copies is low; a clean input's predictions scatter and their entropy is
high. The threshold is set on clean inputs at a chosen false-rejection rate (FRR).

Pure apart from :func:`strip_entropy`, which queries the net through ``NetQuery``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from securitynet.errors import AttackError

if TYPE_CHECKING:
    import torch

    from securitynet.attacks.membership.query import NetQuery


def strip_entropy(
    query: NetQuery,
    inputs: torch.Tensor,
    overlays: torch.Tensor,
    *,
    copies: int = 20,
    seed: int = 0,
) -> np.ndarray:
    """Mean prediction entropy (nats) of each input superimposed on ``copies`` overlays drawn
    (seeded) from ``overlays`` (held-out clean images, same preprocessing as ``inputs``).

    Superimposition is the paper's ``addWeighted(x, 1, o, 1)``: the sum, saturated at the
    images' own value range (as uint8 pixels saturate at 255), so a bright trigger survives."""
    import torch

    if len(overlays) == 0 or len(inputs) == 0:
        raise AttackError("STRIP needs inputs and clean overlay images")
    if inputs.shape[1:] != overlays.shape[1:]:
        raise AttackError(
            f"inputs {tuple(inputs.shape[1:])} and overlays {tuple(overlays.shape[1:])} differ in shape"
        )
    low = float(min(inputs.min(), overlays.min()))
    high = float(max(inputs.max(), overlays.max()))
    gen = torch.Generator().manual_seed(seed)
    out = np.empty(len(inputs))
    with torch.no_grad():
        for i, x in enumerate(inputs):
            pick = torch.randint(len(overlays), (copies,), generator=gen)
            blended = (x.unsqueeze(0) + overlays[pick] - low).clamp(low, high)
            logp = query.log_probs(blended).float().cpu()
            out[i] = float(-(logp.exp() * logp).sum(1).mean())
    return out


def threshold_at_frr(clean: np.ndarray, frr: float = 0.01) -> float:
    """The entropy below which an input is rejected, so that a fraction ``frr`` of ``clean``
    inputs is (falsely) rejected, at most (never interpolated upwards)."""
    if len(clean) == 0:
        raise AttackError("no clean entropies to set the threshold on")
    if not 0 <= frr < 1:
        raise AttackError(f"the false-rejection rate must lie in [0, 1), got {frr}")
    return float(np.quantile(np.asarray(clean, dtype=np.float64), frr, method="lower"))


def detection_rate(suspect: np.ndarray, threshold: float) -> float:
    """Fraction of ``suspect`` entropies below ``threshold`` (rejected as triggered)."""
    if len(suspect) == 0:
        raise AttackError("no entropies to test")
    return float((np.asarray(suspect) < threshold).mean())
