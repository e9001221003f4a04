"""Querying a net: batched posteriors, and log-probabilities with gradients for PGD.

The only place where the membership attacks touch a net. Everything else in this package
scores arrays.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from securitynet.errors import AttackError

if TYPE_CHECKING:
    import torch
    from torch import nn

OUTPUT_KINDS = ("logits", "log_softmax", "softmax")


@dataclass(frozen=True)
class NetQuery:
    """A net in eval mode, what its output is, and the device its batches go to."""

    net: nn.Module
    output: str = "logits"
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.output not in OUTPUT_KINDS:
            raise AttackError(
                f"unknown net output kind {self.output!r}; known: {', '.join(OUTPUT_KINDS)}"
            )

    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Log class probabilities of a preprocessed batch (differentiable)."""
        import torch

        out = self.net(x.to(self.device))
        if self.output == "log_softmax":
            return out
        if self.output == "softmax":
            return torch.log(out.clamp_min(1e-30))
        return torch.log_softmax(out, dim=-1)

    def posteriors(
        self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(probs N x C float32, labels N int64)`` over ``batches`` of ``(inputs, labels)``."""
        import torch

        probs: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        for x, y in batches:  # the batches may need gradients (PGD): no_grad only around our call
            with torch.no_grad():
                probs.append(self.log_probs(x).exp().float().cpu().numpy())
            labels.append(y.cpu().numpy().astype(np.int64))
        if not probs:
            raise AttackError("no images to query the net with")
        return np.concatenate(probs), np.concatenate(labels)
