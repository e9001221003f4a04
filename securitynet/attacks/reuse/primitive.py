"""A primitive (feature extractor) cut from any classifier net: its features are the input
of the net's last linear layer *as executed*, found by running one batch through the net.
That cuts torchvision (``fc``, ``classifier[-1]``), timm (``head.fc``), ``nn.Sequential``
and the loader's layer nets alike, and ignores whatever the net does after its head
(a log-softmax, a softmax).

Imports torch at import time: only the attack's code paths import this module."""

from __future__ import annotations

import torch
from torch import nn

from securitynet.errors import AttackError


def find_head(net: nn.Module, example: torch.Tensor) -> str:
    """The name of the last ``nn.Linear`` that ``net`` applies to ``example``."""
    order: list[str] = []
    handles = [
        module.register_forward_hook(lambda _m, _i, _o, name=name: order.append(name))
        for name, module in net.named_modules()
        if isinstance(module, nn.Linear)
    ]
    try:
        with torch.no_grad():
            net(example[:1])
    finally:
        for h in handles:
            h.remove()
    if not order:
        raise AttackError(
            "the net applies no linear layer: there is no classifier head to cut off",
            hint="Name the head module yourself (ReuseConfig.head).",
        )
    return order[-1]


class FeatureExtractor(nn.Module):
    """``net`` up to its head: returns the (flattened) input of module ``head``.

    The whole net runs (the head's own output is discarded), so any net whose head is an
    ``nn.Module`` works without knowing its ``forward``. ``copy.deepcopy`` gives an
    independent extractor (the capturing hook is rebound to the copy)."""

    def __init__(self, net: nn.Module, head: str) -> None:
        super().__init__()
        modules = dict(net.named_modules())
        if head not in modules or head == "":
            raise AttackError(f"the net has no module named {head!r} to cut off as its head")
        self.net = net
        self.head = head
        self._captured: list[torch.Tensor] = []
        modules[head].register_forward_pre_hook(self._capture)

    def _capture(self, _module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self._captured.append(inputs[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._captured.clear()
        self.net(x)
        if not self._captured:
            raise AttackError(f"module {self.head!r} was not applied to the input")
        out = self._captured[-1].flatten(1)
        self._captured.clear()
        return out

    def trainable(self) -> list[tuple[str, nn.Parameter]]:
        """The parameters outside the head (the head's own never shape the features)."""
        prefix = f"net.{self.head}."
        return [(n, p) for n, p in self.named_parameters() if not n.startswith(prefix)]


def feature_extractor(
    net: nn.Module, example: torch.Tensor, *, head: str | None = None
) -> FeatureExtractor:
    """``net`` as a primitive returning the features its head reads (batch x d). ``head``
    names the head module; by default the last linear layer applied to ``example``."""
    return FeatureExtractor(net, head or find_head(net, example))


@torch.no_grad()
def features(extractor: nn.Module, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """``extractor``'s features of ``x``, batched, without gradients."""
    extractor.eval()
    return torch.cat([extractor(b) for b in x.split(batch_size)])
