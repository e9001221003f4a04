"""A fast way through a net on the meta device, counting FLOPs as torch's FlopCounterMode does.

Most meta kernels in recent torch are Python reference implementations (``torch._refs``):
a ReLU on meta tensors costs about a millisecond, a ``clamp_`` of weight initialisation
several, so building and running a deep net on meta takes seconds. Everything a meta
kernel computes is metadata (shape, strides, dtype), a pure function of the metadata of its
inputs and of its other arguments, so :class:`MetaCounter` takes two exact shortcuts:

* an in-place pointwise or random operation on a meta tensor (weight initialisers:
  ``uniform_``, ``erfinv_``, ``clamp_``, ``mul_``...) cannot change it: it is skipped;
* a functional operation (no mutated argument, no aliased output) is run once per distinct
  input metadata; repeats (every block of a deep net) get fresh empty meta tensors of the
  remembered shape, strides and dtype.

FLOPs are counted with the formulas of ``torch.utils.flop_counter.flop_registry``, and an
operation without a formula is decomposed first, exactly as ``FlopCounterMode`` does, but
without its per-module attribution (hooks on every module call), which cost more than
the rest of the pass. The test suite checks the totals against ``FlopCounterMode``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_unflatten
from torch.utils.flop_counter import flop_registry

_SKIP, _MEMO, _RUN = "skip", "memo", "run"
_ALWAYS_SKIPPABLE = frozenset({"fill_", "zero_", "copy_"})
_KINDS: dict[Any, str] = {}

#: (op, input metadata) -> (output leaves as (shape, stride, dtype) or None, pytree spec)
_MEMO_TABLE: dict[Any, tuple[list[Any], Any]] = {}
_MEMO_LIMIT = 200_000


def _kind(func: torch._ops.OpOverload) -> str:
    kind = _KINDS.get(func)
    if kind is None:
        schema = func._schema
        writes = [a.alias_info is not None and a.alias_info.is_write for a in schema.arguments]
        aliased = any(r.alias_info is not None for r in schema.returns)
        name = schema.name.rsplit("::", 1)[-1]
        value_only = (
            torch.Tag.pointwise in func.tags
            or torch.Tag.nondeterministic_seeded in func.tags
            or name in _ALWAYS_SKIPPABLE
        )
        if writes and writes[0] and not any(writes[1:]) and name.endswith("_") and value_only:
            kind = _SKIP  # in place on its first argument, shape untouched
        elif not any(writes) and not aliased:
            kind = _MEMO
        else:
            kind = _RUN  # views, resize_, out= variants: run for real
        _KINDS[func] = kind
    return kind


def _key(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return (
            "T",
            tuple(value.shape),
            value.stride(),
            value.dtype,
            value.device.type,
            value.storage_offset(),
        )
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, *(_key(v) for v in value))
    if isinstance(value, dict):
        return ("D", *sorted((k, _key(v)) for k, v in value.items()))
    return value


class MetaCounter(TorchDispatchMode):
    """Dispatch mode: meta shortcuts (above) and a FLOP count in :attr:`flops`."""

    def __init__(self, *, count: bool = True) -> None:
        super().__init__()
        self.count = count
        self.flops = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        kind = _kind(func)
        if kind == _SKIP and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            return args[0]
        formula = flop_registry.get(func._overloadpacket)
        if formula is None and self.count:
            with self:  # as FlopCounterMode: decompose what has no formula, count the parts
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        out = self._run(func, kind, args, kwargs)
        if formula is not None and self.count:
            self.flops += int(formula(*args, **kwargs, out_val=out))
        return out

    @staticmethod
    def _run(func: Any, kind: str, args: Any, kwargs: Any) -> Any:
        if kind != _MEMO:
            return func(*args, **kwargs)
        try:
            key = (func, _key(args), _key(kwargs))
            hit = _MEMO_TABLE.get(key)
        except TypeError:  # an unhashable argument
            return func(*args, **kwargs)
        if hit is not None:
            leaves, spec = hit
            fresh = [
                None
                if leaf is None
                else torch.empty_strided(leaf[0], leaf[1], dtype=leaf[2], device="meta")
                for leaf in leaves
            ]
            return tree_unflatten(fresh, spec)
        out = func(*args, **kwargs)
        leaves, spec = tree_flatten(out)
        if all(
            leaf is None
            or (isinstance(leaf, torch.Tensor) and leaf.is_meta and leaf.storage_offset() == 0)
            for leaf in leaves
        ):
            if len(_MEMO_TABLE) >= _MEMO_LIMIT:
                _MEMO_TABLE.clear()
            _MEMO_TABLE[key] = (
                [
                    None if leaf is None else (tuple(leaf.shape), leaf.stride(), leaf.dtype)
                    for leaf in leaves
                ],
                spec,
            )
        return out
