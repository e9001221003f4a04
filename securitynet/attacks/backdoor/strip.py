"""STRIP (Gao et al., ACSAC 2019): an input carrying a backdoor trigger keeps its (target)
prediction when blended with other clean images, so the entropy of the net's predictions on
such superimposed copies is low; a clean input's predictions scatter and their entropy is
high. The threshold is set on clean inputs at a chosen false-rejection rate (FRR).

    >>> result = run_strip(query, calibration=x_cal, clean=x_test, overlays=x_over,
    ...                    triggered=stamped(x_test), config=StripConfig(frr=0.01))
    >>> result.detection_rate, result.clean_rejected

Pure apart from :func:`strip_entropy`, which queries the net through ``NetQuery``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from securitynet.errors import AttackError

if TYPE_CHECKING:
    import torch

    from securitynet.attacks.membership.query import NetQuery


class StripConfig(BaseModel):
    """How STRIP blends and where it sets its threshold (part of a result's reuse key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frr: float = Field(
        default=0.01, ge=0, lt=1, description="Clean inputs falsely rejected at the threshold."
    )
    copies: int = Field(default=20, ge=1, description="Overlays blended onto each input.")
    seed: int = 0


class StripResult(BaseModel):
    """Entropies (nats) of the three sets and the rates at the threshold."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(description="Entropy below which an input is rejected as triggered.")
    clean_rejected: float = Field(description="Fraction of the held-out clean inputs rejected.")
    detection_rate: float | None = Field(
        default=None, description="Fraction of the triggered inputs rejected (None: no trigger)."
    )
    calibration_entropy: list[float]
    clean_entropy: list[float]
    triggered_entropy: list[float] | None = None


def strip_entropy(
    query: NetQuery,
    inputs: torch.Tensor,
    overlays: torch.Tensor,
    *,
    copies: int = 20,
    seed: int = 0,
    batch_size: int = 2048,
) -> np.ndarray:
    """Mean prediction entropy (nats) of each input superimposed on ``copies`` overlays drawn
    (seeded) from ``overlays`` (held-out clean images, same preprocessing as ``inputs``).

    Superimposition is the paper's ``addWeighted(x, 1, o, 1)``: the sum, saturated at the
    images' own value range (as uint8 pixels saturate at 255), so a bright trigger survives.
    Several inputs' blends go through the net together, ``batch_size`` images at a time."""
    import torch

    if len(overlays) == 0 or len(inputs) == 0:
        raise AttackError("STRIP needs inputs and clean overlay images")
    if inputs.shape[1:] != overlays.shape[1:]:
        raise AttackError(
            f"inputs {tuple(inputs.shape[1:])} and overlays {tuple(overlays.shape[1:])} differ in shape"
        )
    if copies < 1:
        raise AttackError(f"STRIP needs at least one overlay per input, got {copies}")
    low = float(min(inputs.min(), overlays.min()))
    high = float(max(inputs.max(), overlays.max()))
    gen = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(overlays), (len(inputs), copies), generator=gen)
    per_batch = max(1, batch_size // copies)
    out = np.empty(len(inputs))
    with torch.no_grad():
        for start in range(0, len(inputs), per_batch):
            x = inputs[start : start + per_batch]
            blended = (x.unsqueeze(1) + overlays[picks[start : start + len(x)]] - low).clamp(
                low, high
            )
            logp = query.log_probs(blended.flatten(0, 1)).float().cpu()
            entropy = -(logp.exp() * logp).nan_to_num().sum(1)
            out[start : start + len(x)] = entropy.view(len(x), copies).mean(1).double().numpy()
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


def run_strip(
    query: NetQuery,
    *,
    calibration: torch.Tensor,
    clean: torch.Tensor,
    overlays: torch.Tensor,
    triggered: torch.Tensor | None = None,
    config: StripConfig | None = None,
) -> StripResult:
    """The threshold at ``config.frr`` on ``calibration`` (clean, held out), then the rate at
    which it rejects other ``clean`` inputs and, where given, ``triggered`` ones. All three
    sets and ``overlays`` are preprocessed batches; keep them disjoint."""
    config = config or StripConfig()

    def entropy(x: torch.Tensor, offset: int) -> np.ndarray:
        return strip_entropy(query, x, overlays, copies=config.copies, seed=config.seed + offset)

    cal = entropy(calibration, 0)
    threshold = threshold_at_frr(cal, config.frr)
    test = entropy(clean, 1)
    suspect = entropy(triggered, 2) if triggered is not None else None
    return StripResult(
        threshold=threshold,
        clean_rejected=detection_rate(test, threshold),
        detection_rate=detection_rate(suspect, threshold) if suspect is not None else None,
        calibration_entropy=cal.tolist(),
        clean_entropy=test.tolist(),
        triggered_entropy=suspect.tolist() if suspect is not None else None,
    )
