"""Interval bound propagation (IBP, Gowal et al. 2018) through a net's traced graph.

Given a box of inputs (every input within ``eps`` of an image in pixel space), IBP pushes
a lower and an upper bound through every layer: affine layers (linear, convolution,
batch norm in eval mode, constant shifts and scalings such as a normalisation written
in ``forward``) through centre and radius, monotone layers (ReLU, tanh, sigmoid, max and
average pooling) through both ends, shape operations (flatten, view, reshape) and
dropout (identity in eval) unchanged. The bounds are sound: no input in the box gives a
logit outside them. They are differentiable, so the same code trains an IBP net.

The margin bounds of the true class ``y`` fold the last linear layer into the
specification (Gowal et al.'s "elision"): for every class ``j`` the lower bound of
``z_y - z_j`` comes from the row ``W_y - W_j`` over the last hidden layer's box, tighter
than ``lo_y - hi_j``.

The net is traced with ``torch.fx`` (no code of its own runs beyond what its forward
does symbolically); a layer IBP cannot bound is refused with
:class:`~securitynet.errors.UnsupportedLayerError` naming every such layer.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from securitynet.errors import AttackError, UnsupportedLayerError

if TYPE_CHECKING:
    import torch
    from torch import fx, nn


@dataclass(frozen=True)
class Box:
    """Elementwise lower and upper bounds of one tensor (same shape)."""

    lo: torch.Tensor
    hi: torch.Tensor

    @property
    def mid(self) -> torch.Tensor:
        return (self.lo + self.hi) / 2

    @property
    def rad(self) -> torch.Tensor:
        return (self.hi - self.lo) / 2

    @classmethod
    def around(cls, mid: torch.Tensor, rad: torch.Tensor) -> Box:
        return cls(mid - rad, mid + rad)

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Box:
        """Through a monotone non-decreasing ``fn`` (or a shape operation)."""
        return Box(fn(self.lo), fn(self.hi))


def input_box(
    x: torch.Tensor, eps: float, *, mean: Sequence[float], std: Sequence[float]
) -> Box:
    """The normalised inputs whose images lie within ``eps`` of ``x``'s images (L-inf,
    pixel units) and inside [0, 1]; ``x`` is a normalised N x C x H x W batch."""
    import torch

    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    pixels = (x * s + m).clamp(0.0, 1.0)
    return Box(((pixels - eps).clamp_min(0.0) - m) / s, ((pixels + eps).clamp_max(1.0) - m) / s)


@functools.cache
def _ops() -> tuple[dict[type, str], dict[Any, str], frozenset[str]]:
    """(module class -> rule, function -> rule, method names), built on first use (torch)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    modules: dict[type, str] = {
        nn.Linear: "linear",
        nn.Conv1d: "conv",
        nn.Conv2d: "conv",
        nn.BatchNorm1d: "batchnorm",
        nn.BatchNorm2d: "batchnorm",
        nn.Dropout: "identity",
        nn.Dropout2d: "identity",
        nn.Identity: "identity",
        nn.Flatten: "monotone",
        nn.Unflatten: "monotone",
        nn.ReLU: "monotone",
        nn.ReLU6: "monotone",
        nn.Tanh: "monotone",
        nn.Sigmoid: "monotone",
        nn.Hardtanh: "monotone",
        nn.MaxPool1d: "monotone",
        nn.MaxPool2d: "monotone",
        nn.AvgPool1d: "monotone",
        nn.AvgPool2d: "monotone",
        nn.AdaptiveAvgPool2d: "monotone",
        nn.AdaptiveMaxPool2d: "monotone",
        nn.LeakyReLU: "leaky",
        nn.Softmax: "final",
        nn.LogSoftmax: "final",
    }
    functions: dict[Any, str] = {
        F.relu: "monotone",
        torch.relu: "monotone",
        F.relu6: "monotone",
        torch.tanh: "monotone",
        torch.sigmoid: "monotone",
        F.max_pool2d: "monotone",
        F.avg_pool2d: "monotone",
        F.adaptive_avg_pool2d: "monotone",
        torch.flatten: "monotone",
        torch.reshape: "monotone",
        F.dropout: "identity",
        operator.add: "add",
        torch.add: "add",
        operator.sub: "sub",
        torch.sub: "sub",
        operator.mul: "mul",
        torch.mul: "mul",
        operator.truediv: "div",
        torch.div: "div",
        F.softmax: "final",
        F.log_softmax: "final",
        torch.softmax: "final",
        torch.log_softmax: "final",
    }
    methods = frozenset({"view", "reshape", "flatten", "contiguous", "relu"})
    return modules, functions, methods


_FINAL_METHODS = frozenset({"softmax", "log_softmax"})


class IntervalNet:
    """A traced net that bounds its logits over a box of inputs.

    >>> bounded = IntervalNet(net)          # refuses layers it cannot bound
    >>> box = bounded.bounds(input_box(x, 0.1, mean=(0.5,), std=(0.5,)))
    >>> lower = bounded.margins(input_box(...), labels)   # N x C lower bounds of z_y - z_j
    """

    def __init__(self, net: nn.Module) -> None:
        import torch.fx

        self.net = net
        try:
            self.graph: fx.GraphModule = torch.fx.symbolic_trace(net)
        except Exception as exc:  # fx raises many kinds for untraceable forwards
            raise UnsupportedLayerError(
                f"the net's forward cannot be traced for interval bounds: {type(exc).__name__}: {exc}",
                layers=[],
            ) from exc
        self._modules = dict(self.graph.named_modules())
        self._check()

    # --- the graph ---------------------------------------------------------------------------

    def _rule(self, node: fx.Node) -> str | None:
        modules, functions, methods = _ops()
        if node.op == "call_module":
            return modules.get(type(self._modules[str(node.target)]))
        if node.op == "call_function":
            return functions.get(node.target)
        if node.op == "call_method":
            if node.target in _FINAL_METHODS:
                return "final"
            return "monotone" if node.target in methods else None
        return "identity"

    def _describe(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return f"{type(self._modules[str(node.target)]).__name__} ({node.target})"
        target = node.target
        return f"{getattr(target, '__name__', str(target))} ({node.name})"

    def _check(self) -> None:
        """Which nodes carry an interval (depend on the input), and whether IBP can pass
        through each; find the logits (before a final softmax) and a last linear layer."""
        import torch.fx

        nodes = list(self.graph.graph.nodes)
        inputs = [n for n in nodes if n.op == "placeholder"]
        if len(inputs) != 1:
            raise UnsupportedLayerError(
                f"interval bounds need a net with one input, this one takes {len(inputs)}",
                layers=[],
            )
        outputs = [n for n in nodes if n.op == "output"]
        result = outputs[0].args[0]
        if not isinstance(result, torch.fx.Node):
            raise UnsupportedLayerError("the net does not return one tensor", layers=[])
        self.final: str | None = None
        logits = result
        if self._rule(logits) == "final":
            self.final = self._describe(logits)
            logits = logits.args[0]  # type: ignore[assignment]
        self.logits: fx.Node = logits
        self.interval: set[fx.Node] = set(inputs)
        self.shapes: set[fx.Node] = set()  # x.size(), x.dim(): plain values, from either end
        bad: list[str] = []
        for node in nodes:
            if node.op in ("placeholder", "output", "get_attr"):
                continue
            if not any(a in self.interval for a in node.all_input_nodes):
                continue  # shapes, constants: evaluated as the forward would
            if node.op == "call_method" and node.target in ("size", "dim"):
                self.shapes.add(node)
                continue
            self.interval.add(node)
            if node is result and self.final is not None:
                continue
            rule = self._rule(node)
            if node.op == "call_module":
                module = self._modules[str(node.target)]
                if rule == "leaky" and getattr(module, "negative_slope", -1.0) < 0:
                    rule = None
                if rule == "batchnorm" and getattr(module, "running_mean", None) is None:
                    rule = None
            if rule is None or rule == "final":
                bad.append(self._describe(node))
        if bad:
            raise UnsupportedLayerError(
                f"interval bounds cannot pass through: {', '.join(bad)}",
                layers=bad,
                hint="Supported: linear, conv, batch norm (eval), ReLU-like and monotone "
                "activations, max/avg pooling, flatten/view, dropout, constant shifts and scalings.",
            )
        self.elided = (
            logits.op == "call_module"
            and isinstance(self._modules[str(logits.target)], _linear_type())
        )

    # --- propagation -------------------------------------------------------------------------

    def _run(self, box: Box, stop: fx.Node) -> Any:
        env: dict[fx.Node, Any] = {}
        for node in self.graph.graph.nodes:
            if node.op == "placeholder":
                env[node] = box
            elif node.op == "get_attr":
                env[node] = _fetch(self.graph, str(node.target))
            elif node.op == "output":
                break
            elif node in self.shapes:
                obj, *rest = fx_map(node.args, env)
                env[node] = getattr(obj.lo, str(node.target))(*rest)
            elif node not in self.interval:
                env[node] = _concrete(self.graph, node, env)
            else:
                env[node] = self._step(node, env)
            if node is stop:
                return env[node]
        raise AttackError("interval bounds: the logits node was never reached")

    def _step(self, node: fx.Node, env: dict[fx.Node, Any]) -> Any:
        import torch

        args = fx_map(node.args, env)
        kwargs = fx_map(node.kwargs, env)
        rule = self._rule(node)
        if node.op == "call_module":
            module = self._modules[str(node.target)]
            x: Box = args[0]
            if rule == "identity":
                return x
            if rule == "linear":
                return Box.around(module(x.mid), torch.nn.functional.linear(x.rad, module.weight.abs()))
            if rule == "conv":
                rad = module._conv_forward(x.rad, module.weight.abs(), None)
                return Box.around(module(x.mid), rad)
            if rule == "batchnorm":
                scale = 1.0 / torch.sqrt(module.running_var + module.eps)
                if module.weight is not None:
                    scale = scale * module.weight
                shift = -module.running_mean * scale
                if module.bias is not None:
                    shift = shift + module.bias
                shape = (1, -1) + (1,) * (x.lo.dim() - 2)
                s, b = scale.view(shape), shift.view(shape)
                return Box.around(x.mid * s + b, x.rad * s.abs())
            if getattr(module, "inplace", False):  # never write into a shared bound
                return x.map(lambda t: module(t.clone()))
            return x.map(module)  # monotone, leaky (slope >= 0)
        if node.op == "call_method":
            name = str(node.target)
            return _both_ends(lambda obj, *a, **k: getattr(obj, name)(*a, **k), args, kwargs)
        if rule == "identity":
            return args[0]
        if rule in ("add", "sub", "mul", "div"):
            return _arithmetic(rule, args[0], args[1], node)
        return _both_ends(node.target, args, kwargs)  # type: ignore[arg-type]

    def bounds(self, box: Box) -> Box:
        """Bounds of every logit over ``box`` (before a final softmax / log-softmax)."""
        out = self._run(box, self.logits)
        if not isinstance(out, Box):
            raise AttackError("interval bounds: the logits do not depend on the input")
        return out

    def margins(self, box: Box, labels: torch.Tensor) -> torch.Tensor:
        """N x C lower bounds of ``z_y - z_j`` over ``box`` (0 in column ``y``)."""
        import torch

        y = labels.to(box.lo.device).long()
        if self.elided:
            hidden = self._run(box, self.logits.args[0])  # type: ignore[arg-type]
            layer = self._modules[str(self.logits.target)]
            if isinstance(hidden, Box) and hidden.lo.dim() == 2:
                w, b = layer.weight, layer.bias
                diff = w[y].unsqueeze(1) - w.unsqueeze(0)  # N x C x D
                lower = torch.einsum("ncd,nd->nc", diff, hidden.mid) - torch.einsum(
                    "ncd,nd->nc", diff.abs(), hidden.rad
                )
                if b is not None:
                    lower = lower + b[y].unsqueeze(1) - b.unsqueeze(0)
                return lower.scatter(1, y.unsqueeze(1), 0.0)
        out = self.bounds(box)
        lower = out.lo.gather(1, y.unsqueeze(1)) - out.hi
        return lower.scatter(1, y.unsqueeze(1), 0.0)


def _linear_type() -> type:
    from torch import nn

    return nn.Linear


def fx_map(value: Any, env: dict[Any, Any]) -> Any:
    """``value`` (node args) with every graph node replaced by what ``env`` holds for it."""
    import torch.fx

    return torch.fx.node.map_aggregate(
        value, lambda a: env[a] if isinstance(a, torch.fx.Node) else a
    )


def _fetch(graph: fx.GraphModule, target: str) -> Any:
    obj: Any = graph
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _concrete(graph: fx.GraphModule, node: fx.Node, env: dict[fx.Node, Any]) -> Any:
    """A node that does not depend on the input (a shape, a constant), run as is."""
    args, kwargs = fx_map(node.args, env), fx_map(node.kwargs, env)
    if node.op == "call_module":
        return graph.get_submodule(str(node.target))(*args, **kwargs)
    if node.op == "call_method":
        obj, *rest = args
        return getattr(obj, str(node.target))(*rest, **kwargs)
    return node.target(*args, **kwargs)  # type: ignore[operator]


def _both_ends(fn: Callable[..., Any], args: Any, kwargs: Any) -> Box:
    """A monotone non-decreasing or shape operation, applied to the lower ends of its Box
    arguments, then to the upper ends."""
    import torch.fx

    kwargs = {**kwargs, "inplace": False} if "inplace" in kwargs else kwargs

    def call(end: str) -> Any:
        pick = lambda a: getattr(a, end) if isinstance(a, Box) else a  # noqa: E731
        return fn(*torch.fx.node.map_aggregate(args, pick), **torch.fx.node.map_aggregate(kwargs, pick))

    return Box(call("lo"), call("hi"))


def _arithmetic(rule: str, a: Any, b: Any, node: fx.Node) -> Box:
    """``a op b`` where at least one side is a Box and the other is a Box (add, sub) or a
    constant."""
    if isinstance(a, Box) and isinstance(b, Box):
        if rule == "add":
            return Box(a.lo + b.lo, a.hi + b.hi)
        if rule == "sub":
            return Box(a.lo - b.hi, a.hi - b.lo)
        raise UnsupportedLayerError(
            f"interval bounds cannot pass through a product of two inputs ({node.name})",
            layers=[node.name],
        )
    if rule == "add":
        return Box(a.lo + b, a.hi + b) if isinstance(a, Box) else Box(a + b.lo, a + b.hi)
    if rule == "sub":
        return Box(a.lo - b, a.hi - b) if isinstance(a, Box) else Box(a - b.hi, a - b.lo)
    if rule == "mul":
        box, c = (a, b) if isinstance(a, Box) else (b, a)
        return Box.around(box.mid * c, box.rad * abs(c))
    if isinstance(a, Box):  # division by a constant
        return Box.around(a.mid / b, a.rad / abs(b))
    raise UnsupportedLayerError(
        f"interval bounds cannot pass through a division by the input ({node.name})",
        layers=[node.name],
    )
