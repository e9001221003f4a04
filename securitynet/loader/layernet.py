"""Nets described as data: the ``state-dict`` builder.

Small custom nets (the MNIST CNNs security papers train) have no library architecture:
the entry describes the net as a list of torch layers, each named by the state-dict
prefix of its tensors. Curated files write the list as an architecture spec
(:mod:`securitynet.annotate.archspec`); the loader receives it as plain data in
``LoadSpec.kwargs["layers"]`` and builds it here. Nothing of the checkpoint's own code is
run: only ``torch.nn`` classes named in :data:`LAYER_OPS` can appear.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from securitynet.errors import UnsupportedEntryError
from securitynet.loader.builders import BuildContext, BuiltNet, construct, plain_json
from securitynet.records import EntryRecord, FileRef, LoadSpec

if TYPE_CHECKING:
    from torch import nn

#: op name -> torch.nn class name. Only these can appear in a ``state-dict`` layer list.
LAYER_OPS: dict[str, str] = {
    "conv1d": "Conv1d",
    "conv2d": "Conv2d",
    "linear": "Linear",
    "batch_norm1d": "BatchNorm1d",
    "batch_norm2d": "BatchNorm2d",
    "layer_norm": "LayerNorm",
    "relu": "ReLU",
    "leaky_relu": "LeakyReLU",
    "gelu": "GELU",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "max_pool2d": "MaxPool2d",
    "avg_pool2d": "AvgPool2d",
    "adaptive_avg_pool2d": "AdaptiveAvgPool2d",
    "flatten": "Flatten",
    "dropout": "Dropout",
    "dropout2d": "Dropout2d",
    "identity": "Identity",
    "log_softmax": "LogSoftmax",
    "softmax": "Softmax",
}

#: Ops whose module holds parameters or buffers (they need a ``name``).
WEIGHTED_OPS: frozenset[str] = frozenset(
    {"conv1d", "conv2d", "linear", "batch_norm1d", "batch_norm2d", "layer_norm"}
)


def _layer_net_class() -> type:
    from torch import nn

    class LayerNet(nn.Module):
        """Layers applied in order; each named layer sits at its (dotted) state-dict path."""

        def __init__(self, layers: list[tuple[str | None, nn.Module]]) -> None:
            super().__init__()
            self._order: list[str] = []
            unnamed = nn.ModuleList()
            for name, module in layers:
                if name is None:
                    unnamed.append(module)
                    self._order.append(f"_unnamed.{len(unnamed) - 1}")
                    continue
                parent: nn.Module = self
                *path, leaf = name.split(".")
                for part in path:
                    child = parent._modules.get(part)
                    if child is None:
                        child = nn.Module()
                        parent.add_module(part, child)
                    parent = child
                if leaf in parent._modules:
                    raise UnsupportedEntryError(f"layer name {name!r} used twice")
                parent.add_module(leaf, module)
                self._order.append(name)
            if len(unnamed):
                self.add_module("_unnamed", unnamed)

        def forward(self, x: Any) -> Any:
            for name in self._order:
                x = self.get_submodule(name)(x)
            return x

    return LayerNet


def build_layer_net(layers: Any) -> nn.Module:
    """An ``nn.Module`` from a list of layer descriptions::

        [{"op": "conv2d", "name": "conv1", "in_channels": 1, "out_channels": 20, "kernel_size": 5},
         {"op": "relu"}, {"op": "max_pool2d", "kernel_size": 2}, {"op": "flatten"},
         {"op": "linear", "name": "fc1", "in_features": 800, "out_features": 500}, ...]

    Arguments are the torch.nn constructor's own, checked against its signature; values
    must be numbers, strings, booleans or lists of them. A layer with parameters or
    buffers needs a ``name`` (its state-dict prefix, dotted for nesting: ``features.0``).
    """
    from torch import nn

    if not isinstance(layers, list) or not layers:
        raise UnsupportedEntryError("state-dict builder needs LoadSpec.kwargs['layers']: a non-empty list")
    built: list[tuple[str | None, nn.Module]] = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict) or not isinstance(layer.get("op"), str):
            raise UnsupportedEntryError(f"layer {i}: expected a mapping with an 'op'")
        args = {k: v for k, v in layer.items() if k not in ("op", "name")}
        op, name = layer["op"], layer.get("name")
        if op not in LAYER_OPS:
            raise UnsupportedEntryError(f"layer {i}: unknown op {op!r}", hint=f"Known: {', '.join(LAYER_OPS)}.")
        cls = getattr(nn, LAYER_OPS[op])
        accepted = set(inspect.signature(cls).parameters) - {"device", "dtype"}
        unknown = set(args) - accepted
        if unknown:
            raise UnsupportedEntryError(f"layer {i} ({op}): unknown arguments {sorted(unknown)}")
        for key, value in args.items():
            if not plain_json(value) or isinstance(value, dict):
                raise UnsupportedEntryError(f"layer {i} ({op}): argument {key!r} is not a plain value")
        if name is not None and (not isinstance(name, str) or not all(p.isidentifier() or p.isdigit() for p in name.split("."))):
            raise UnsupportedEntryError(f"layer {i}: bad name {name!r}")
        try:
            module = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in args.items()})
        except (TypeError, ValueError) as exc:
            raise UnsupportedEntryError(f"layer {i} ({op}): {exc}") from exc
        if name is None and (any(True for _ in module.parameters()) or any(True for _ in module.buffers())):
            raise UnsupportedEntryError(f"layer {i} ({op}) has weights and needs a 'name'")
        built.append((name, module))
    net: nn.Module = _layer_net_class()(built)
    return net


class StateDictBuilder:
    """Plain state dicts of small nets whose architecture is data on the entry
    (``LoadSpec.kwargs["layers"]``, see :func:`build_layer_net`)."""

    name = "state-dict"

    def companion_files(self, record: EntryRecord, spec: LoadSpec) -> dict[str, FileRef]:
        return {}

    def build(self, ctx: BuildContext) -> BuiltNet:
        unknown = set(ctx.spec.kwargs) - {"layers"}
        if unknown:
            raise UnsupportedEntryError(f"state-dict builder: unknown kwargs {sorted(unknown)}")
        net = construct(ctx, lambda: build_layer_net(ctx.spec.kwargs.get("layers")))
        return BuiltNet(net, {})
