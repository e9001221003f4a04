"""Post-load schema check: turn what a checkpoint held into ``name -> tensor`` plus metadata.

Real checkpoints wrap their tensors: ``{"state_dict": {...}, "epoch": 90, "arch": "resnet50"}``,
``{"model_state_dict": {...}, "config": {...}}``, ``{"net": {...}, "acc": 93.1}``. We accept a
bare mapping of names to tensors, or one such mapping under a well-known wrapper key (or the
key the caller names) with plain metadata beside it. Anything else is refused with the reason.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from securitynet.loader._refusal import Refusal

logger = logging.getLogger(__name__)

#: Keys whose value is the tensor mapping in common training scripts, in the order tried.
WRAPPER_KEYS: tuple[str, ...] = ("state_dict", "model_state_dict", "model", "net", "module")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: How deep plain metadata may nest (``{"config": {"optim": {"lr": [0.1]}}}`` is 3).
MAX_METADATA_DEPTH = 8
#: How many scalar leaves plain metadata may hold in all (a training history is a few thousand).
MAX_METADATA_LEAVES = 1_000_000


@dataclass(frozen=True)
class Unwrapped:
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, Any]
    wrapper_key: str | None
    notes: tuple[str, ...]


def unwrap(obj: object, *, key: str | None = None) -> Unwrapped:
    """Find the tensor mapping in ``obj`` (what the unpickler returned); raise Refusal."""
    if not isinstance(obj, Mapping):
        raise Refusal(
            "not-a-mapping",
            f"the checkpoint holds a {_kind(obj)}, not a mapping of names to tensors",
        )
    _check_keys(obj, where="the checkpoint")
    notes: list[str] = []

    if key is not None:
        if key not in obj:
            raise Refusal("key-not-found", f"no key {key!r}; top-level keys: {_key_list(obj)}")
        wrapper_key: str | None = key
    elif _is_tensor_mapping(obj):
        wrapper_key = None
    else:
        candidates = [k for k in WRAPPER_KEYS if k in obj and _is_tensor_mapping(obj[k])]
        if not candidates and any(isinstance(v, torch.Tensor) for v in obj.values()):
            return _split_top_level(obj)
        if not candidates:
            raise Refusal(
                "no-tensor-mapping",
                "found neither a mapping of names to tensors nor one under "
                f"{', '.join(WRAPPER_KEYS)}; top-level keys: {_key_list(obj)}",
            )
        if len(candidates) > 1:
            raise Refusal(
                "ambiguous-wrapper",
                f"several tensor mappings ({', '.join(candidates)}); name one with key=",
            )
        wrapper_key = candidates[0]

    inner = obj if wrapper_key is None else obj[wrapper_key]
    tensors = _tensor_mapping(inner, where=repr(wrapper_key) if wrapper_key else "the checkpoint")
    siblings = {} if wrapper_key is None else {k: v for k, v in obj.items() if k != wrapper_key}
    return _finish(tensors, siblings, wrapper_key=wrapper_key, notes=notes)


def _split_top_level(obj: Mapping[str, Any]) -> Unwrapped:
    """``{"fc.weight": T, ..., "epoch": 3}``: tensors and plain values side by side."""
    found = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if all(t.dim() == 0 for t in found.values()):  # only numbers, e.g. {"best_acc": tensor(0.9)}
        raise Refusal("no-tensor-mapping", f"no weights among the top-level keys {_key_list(obj)}")
    tensors = _tensor_mapping(found, where="the checkpoint")  # 0-dim ones too: num_batches_tracked
    siblings = {k: v for k, v in obj.items() if k not in tensors}
    notes = [f"{len(siblings)} non-tensor value(s) beside the tensors kept as metadata"]
    return _finish(tensors, siblings, wrapper_key=None, notes=notes)


def _finish(
    tensors: dict[str, torch.Tensor],
    siblings: Mapping[str, Any],
    *,
    wrapper_key: str | None,
    notes: list[str],
) -> Unwrapped:
    """Sort the values beside the tensors into metadata, left-out tensor data, or a refusal."""
    metadata: dict[str, Any] = {}
    for name, value in siblings.items():
        plain = _plain(value, depth=0, budget=[MAX_METADATA_LEAVES])
        if plain is not _NOT_PLAIN:
            metadata[name] = plain
        elif _only_tensors_and_plain(value, depth=0, budget=[MAX_METADATA_LEAVES]):
            # Optimiser state, EMA weights, a second copy: safe data we do not return.
            notes.append(f"left out {name!r} (holds tensors; not the net's state)")
        else:
            raise Refusal(
                "non-plain-metadata",
                f"{name!r} beside the tensors is a {_kind(value)}, not plain metadata",
            )
    if any(name.startswith("module.") for name in tensors):
        notes.append("tensor names carry a 'module.' prefix (saved from DataParallel)")
    for note in notes:
        logger.info("checkpoint: %s", note)
    return Unwrapped(
        tensors=tensors, metadata=metadata, wrapper_key=wrapper_key, notes=tuple(notes)
    )


def _kind(obj: object) -> str:
    return (
        type(obj).__module__ + "." + type(obj).__qualname__
        if not isinstance(obj, (dict, list))
        else type(obj).__name__
    )


def _key_list(obj: Mapping[Any, Any], limit: int = 12) -> str:
    keys = [repr(k) for k in list(obj)[:limit]]
    return ", ".join(keys) + (", ..." if len(obj) > limit else "") if keys else "(none)"


def _check_keys(obj: Mapping[Any, Any], *, where: str) -> None:
    bad = [k for k in obj if not isinstance(k, str)]
    if bad:
        raise Refusal("non-string-key", f"{where} has a non-string key {bad[0]!r}")


def _is_tensor_mapping(obj: object) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _tensor_mapping(obj: object, *, where: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        raise Refusal(
            "not-a-mapping", f"{where} is a {_kind(obj)}, not a mapping of names to tensors"
        )
    if not obj:
        raise Refusal("no-tensors", f"{where} holds no tensors")
    out: dict[str, torch.Tensor] = {}
    for name, value in obj.items():
        if not isinstance(name, str):
            raise Refusal("non-string-key", f"{where} has a non-string key {name!r}")
        if not name or _CONTROL.search(name):
            raise Refusal(
                "bad-name",
                f"{where} has a tensor name {name[:80]!r} that is empty or holds a control character",
            )
        if not isinstance(value, torch.Tensor):
            raise Refusal(
                "non-tensor-value", f"{name!r} in {where} is a {_kind(value)}, not a tensor"
            )
        if type(value) not in (torch.Tensor, torch.nn.Parameter):
            raise Refusal("tensor-subclass", f"{name!r} is a {_kind(value)}, a tensor subclass")
        if value.layout != torch.strided or value.is_quantized or value.is_nested:
            raise Refusal("unsupported-tensor", f"{name!r} is not a dense tensor ({value.layout})")
        out[name] = value.detach() if isinstance(value, torch.nn.Parameter) else value
    return out


class _NotPlain:
    pass


_NOT_PLAIN: Any = _NotPlain()


def _plain(value: object, *, depth: int, budget: list[int]) -> Any:
    """``value`` as plain JSON-like data (tuples become lists), or _NOT_PLAIN."""
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_METADATA_DEPTH:
        return _NOT_PLAIN
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, torch.Tensor):
        # A 0-dim tensor beside the weights is a number (best_acc1 in the ImageNet example).
        if type(value) is torch.Tensor and value.dim() == 0 and not value.is_complex():
            return _plain(value.item(), depth=depth, budget=budget)
        return _NOT_PLAIN
    if isinstance(value, (torch.dtype, torch.device)):
        return str(value)
    if isinstance(value, (list, tuple)):
        items = [_plain(v, depth=depth + 1, budget=budget) for v in value]
        return _NOT_PLAIN if any(i is _NOT_PLAIN for i in items) else items
    if isinstance(value, Mapping):
        if not all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in value):
            return _NOT_PLAIN
        out = {}
        for k, v in value.items():
            item = _plain(v, depth=depth + 1, budget=budget)
            if item is _NOT_PLAIN:
                return _NOT_PLAIN
            out[str(k) if isinstance(k, int) else k] = item
        return out
    return _NOT_PLAIN


def _only_tensors_and_plain(value: object, *, depth: int, budget: list[int]) -> bool:
    budget[0] -= 1
    if depth > MAX_METADATA_DEPTH or budget[0] < 0:
        return False
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (list, tuple)):
        return all(_only_tensors_and_plain(v, depth=depth + 1, budget=budget) for v in value)
    if isinstance(value, Mapping):
        return all(
            isinstance(k, (str, int)) and _only_tensors_and_plain(v, depth=depth + 1, budget=budget)
            for k, v in value.items()
        )
    return _plain(value, depth=depth, budget=budget) is not _NOT_PLAIN
