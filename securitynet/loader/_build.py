"""Make the returned objects from the dry run's descriptions and the verified storage bytes.

This replaces ``torch.load``: the tensors are built here, with the same calls torch's own
``_rebuild_tensor`` makes (an empty tensor ``set_`` onto an untyped storage), from the
storage bytes whose CRC (zip) or layout (legacy) was just checked, following the
:class:`~securitynet.loader._picklecheck.TensorRef` that passed the bounds checks. So no
second parser reads the file and nothing the checks did not see can reach the result.

Each storage becomes one ``torch.UntypedStorage`` (tensors sharing it in the file share it
here, as with ``torch.load``); each tensor is a plain ``torch.Tensor`` with
``requires_grad=False`` and no attributes. Dicts, lists and tuples become plain ones, each
shared container built once; dtypes become ``torch.dtype``. Anything else the dry run
could hand back (a bare storage, a global) is refused.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import torch

from securitynet.loader._picklecheck import StorageRef, TensorRef, _Dtype, _Inert
from securitynet.loader._refusal import Refusal


def storages_from(
    buffers: Mapping[str, torch.Tensor],
    refs: Mapping[str, StorageRef],
    *,
    obj: object,
    byteorder: str,
) -> dict[str, torch.UntypedStorage]:
    """One untyped storage per key, over its verified bytes (a uint8 tensor each; no copy)."""
    from securitynet.loader._picklecheck import iter_tensor_refs

    storages = {key: buffers[key].untyped_storage() for key in refs}
    if byteorder != sys.byteorder:
        itemsizes: dict[str, set[int]] = {}
        for tensor in iter_tensor_refs(obj):
            itemsizes.setdefault(tensor.storage.key, set()).add(_swap_size(tensor.dtype))
        for key, sizes in itemsizes.items():
            if len(sizes) != 1:
                raise Refusal(
                    "pickle-bad-storage", f"storage {key!r} is viewed with several element sizes"
                )
            size = sizes.pop()
            if size > 1:
                storages[key]._byteswap(size)  # what torch.load does for a big-endian file
    return storages


def _swap_size(dtype: torch.dtype) -> int:
    size = int(dtype.itemsize)
    return max(size // 2, 1) if dtype.is_complex else size


def materialize(obj: object, storages: Mapping[str, torch.UntypedStorage]) -> object:
    """The dry run's result with every description replaced by the real thing."""
    return _Materializer(storages).build(obj)


class _Materializer:
    def __init__(self, storages: Mapping[str, torch.UntypedStorage]) -> None:
        self.storages = storages
        self.done: dict[int, Any] = {}

    def build(self, obj: object) -> Any:
        # Depth is bounded by the opcode scan (_opscan.MAX_DEPTH), far below the recursion limit.
        if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
            return obj
        key = id(obj)
        if key in self.done:
            return self.done[key]
        result: Any
        if isinstance(obj, TensorRef):
            result = self._tensor(obj)
        elif isinstance(obj, _Dtype):
            result = obj.dtype
        elif isinstance(obj, dict):
            result = {self.build(k): self.build(v) for k, v in obj.items()}
        elif isinstance(obj, list):
            result = [self.build(v) for v in obj]
        elif isinstance(obj, tuple):
            result = tuple(self.build(v) for v in obj)
        elif isinstance(obj, (set, frozenset)):
            result = [self.build(v) for v in obj]
        elif isinstance(obj, bytearray):
            result = bytes(obj)
        elif isinstance(obj, StorageRef):
            raise Refusal("pickle-bad-value", f"storage {obj.key!r} appears outside any tensor")
        elif isinstance(obj, _Inert):
            raise Refusal(
                "pickle-bad-value", f"a bare {type(obj).__name__.lstrip('_')} among the values"
            )
        else:
            raise Refusal(
                "pickle-bad-value", f"an unexpected {type(obj).__name__} among the values"
            )
        self.done[key] = result
        return result

    def _tensor(self, ref: TensorRef) -> torch.Tensor:
        storage = self.storages[ref.storage.key]
        tensor = torch.empty((0,), dtype=ref.dtype)
        try:
            # The bounds were checked by _picklecheck.check_tensors; set_ checks them again.
            tensor.set_(storage, ref.offset, ref.size, ref.stride)
        except RuntimeError as exc:
            raise Refusal("tensor-out-of-bounds", f"torch refused the view: {exc}") from exc
        return tensor
