"""Surrogate nets for model stealing: the standard small CNN, or any architecture a registry
(timm, torchvision) or a catalogue entry names, built untrained for the target's classes
and fed the target's query images.

Adapting the query images to an architecture (a 1-channel 28 x 28 MNIST image to a
network made for 3 x 224 x 224, say) goes in this order, and stops at the first that runs:

1. timm architectures are built with ``in_chans`` = the images' channels (timm makes the
   stem that wide itself); every architecture gets ``num_classes`` = the target's;
2. the images as they are;
3. grey images repeated to 3 channels (torchvision's stems take 3);
4. those resized (bilinear) to the architecture's default input size (nets with a fixed
   input size, such as ViTs).

:func:`describe_adaptation` names what was done. Nothing here reads weights: the surrogate
is trained from scratch on the target's answers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from securitynet.errors import AttackError, SecurityNetError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from securitynet.records import EntryRecord
    from securitynet.settings import Settings

log = logging.getLogger(__name__)

#: The standard surrogate: two 3x3 conv blocks (16, 32 channels), a 64-unit layer.
SMALL_CNN = "small_cnn"
SURROGATES = (SMALL_CNN,)


def small_cnn(shape: tuple[int, ...], classes: int) -> nn.Module:
    """The standard surrogate for C x H x W inputs (any size of at least 4 x 4)."""
    from torch import nn

    channels, height, width = shape
    if height < 4 or width < 4:
        raise AttackError(f"small_cnn needs inputs of at least 4 x 4, got {height} x {width}")
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * (height // 4) * (width // 4), 64),
        nn.ReLU(),
        nn.Linear(64, classes),
    )


def build_surrogate(
    name: str,
    shape: tuple[int, ...],
    classes: int,
    *,
    seed: int,
    entry: EntryRecord | None = None,
    settings: Settings | None = None,
) -> nn.Module:
    """A fresh surrogate (logits out) for inputs of ``shape`` (C x H x W) and ``classes``.

    ``name`` is ``small_cnn``, a timm or torchvision architecture (timm's registry first:
    ``resnet18`` is timm's), or a catalogue entry id whose record is ``entry`` (its
    architecture is built untrained, its weights never read)."""
    import torch

    if len(shape) != 3 or min(shape) < 1:
        raise AttackError(f"the surrogate needs C x H x W inputs, got shape {tuple(shape)}")
    torch.manual_seed(seed)
    if name == SMALL_CNN:
        return small_cnn(shape, classes)
    record = entry if entry is not None else _registry_record(name)
    kwargs = {"in_chans": shape[0]} if record.load is not None and record.load.builder == "timm" else {}
    from securitynet.loader import build_untrained

    try:
        net, spec = build_untrained(record, num_classes=classes, kwargs=kwargs, settings=settings)
    except AttackError:
        raise
    except SecurityNetError as exc:
        raise AttackError(f"cannot build surrogate {name!r}: {exc}") from exc
    except Exception as exc:  # a library's constructor refusing the arguments
        raise AttackError(f"cannot build surrogate {name!r}: {type(exc).__name__}: {exc}") from exc
    return adapt_input(net, shape, classes, output=spec.output or "logits", size=spec.input_size, name=name)


def _registry_record(name: str) -> EntryRecord:
    """A record naming registry architecture ``name``: timm's registry first, then torchvision's."""
    from securitynet.records import EntryRecord, LoadSpec

    if ":" in name:
        raise AttackError(
            f"surrogate {name!r} looks like a catalogue entry id; evaluate() looks it up "
            "(build_surrogate needs its record as entry=)"
        )
    import timm
    from torchvision import models

    if timm.is_model(name):
        builder = "timm"
    elif name in models.list_models(module=models):
        builder = "torchvision"
    else:
        raise AttackError(
            f"unknown surrogate {name!r}",
            hint="small_cnn, a timm or torchvision architecture (resnet18), or a catalogue entry id.",
        )
    return EntryRecord(id=f"{builder}:{name}", load=LoadSpec(builder=builder, architecture=name))


def adapt_input(
    net: nn.Module,
    shape: tuple[int, ...],
    classes: int,
    *,
    output: str = "logits",
    size: tuple[int, int, int] | None = None,
    name: str = "",
) -> nn.Module:
    """``net`` behind the first input adaptation that runs on ``shape`` (module docstring),
    returning logits (or log-probabilities) with ``classes`` columns."""
    import torch

    channels, height, width = shape
    tries: list[tuple[int, tuple[int, int] | None]] = [(channels, None)]
    if channels == 1:
        tries.append((3, None))
    if size is not None and tuple(size[-2:]) != (height, width):
        tries += [(c, (int(size[-2]), int(size[-1]))) for c, _ in list(tries)]
    errors = []
    for repeat_to, resize in tries:
        adapted = _adapter_class()(net, repeat_to if repeat_to != channels else None, resize, output)
        try:
            with torch.no_grad():
                out = adapted.eval()(torch.zeros(2, channels, height, width))
        except (RuntimeError, ValueError, AssertionError) as exc:  # shapes the net refuses
            errors.append(f"{repeat_to} channels{f' at {resize[0]}x{resize[1]}' if resize else ''}: {exc}")
            continue
        if out.ndim != 2 or out.shape[1] != classes:
            raise AttackError(
                f"surrogate {name!r} returns shape {tuple(out.shape[1:])} per image, not {classes} classes"
            )
        log.info("surrogate %s on %s inputs: %s", name, "x".join(map(str, shape)), describe_adaptation(adapted))
        return adapted.train()
    raise AttackError(
        f"surrogate {name!r} does not run on {'x'.join(map(str, shape))} inputs: " + "; ".join(errors)[:800]
    )


def describe_adaptation(net: nn.Module) -> str:
    """What :func:`adapt_input` does to the images before ``net`` sees them."""
    steps = []
    repeat_to = getattr(net, "repeat_to", None)
    resize = getattr(net, "resize", None)
    if repeat_to:
        steps.append(f"channels repeated to {repeat_to}")
    if resize:
        steps.append(f"resized to {resize[0]}x{resize[1]}")
    return ", ".join(steps) or "as they are"


_ADAPTER: Any = None


def _adapter_class() -> Any:
    """The adapter module class (defined on first use, so that importing needs no torch)."""
    global _ADAPTER
    if _ADAPTER is not None:
        return _ADAPTER
    import torch
    from torch import nn

    class InputAdapter(nn.Module):
        """Repeat grey channels and resize before ``net``; log of a softmax output."""

        def __init__(
            self, net: nn.Module, repeat_to: int | None, resize: tuple[int, int] | None, output: str
        ) -> None:
            super().__init__()
            self.net = net
            self.repeat_to = repeat_to
            self.resize = resize
            self.output = output

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.repeat_to is not None:
                x = x.expand(-1, self.repeat_to, -1, -1)
            if self.resize is not None:
                x = nn.functional.interpolate(x, size=self.resize, mode="bilinear", align_corners=False)
            out = self.net(x)
            if self.output == "softmax":  # log-probabilities are logits up to a constant
                return torch.log(out.clamp_min(1e-30))
            return out

    _ADAPTER = InputAdapter
    return _ADAPTER
