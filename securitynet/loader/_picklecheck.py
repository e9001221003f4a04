"""A dry run of a checkpoint's pickle through an allowlist unpickler that builds nothing.

Before torch's weights-only unpickler materialises anything, we unpickle the same bytes
with :class:`DryRunUnpickler`: every global the pickle names is looked up in a short,
exact allowlist (``(module, name)`` pairs, no prefixes, no dotted names), and what it
resolves to is one of our own inert stand-ins. ``_rebuild_tensor_v2`` yields a
:class:`TensorRef` describing the tensor, a persistent id yields a :class:`StorageRef`
describing the storage; no torch object, no callable of anybody else's, is ever reached.

That gives a second, independent gate (a global torch would allow but we do not, e.g.
one added with ``torch.serialization.add_safe_globals`` elsewhere in the process, is
refused) and the facts to check before any storage is allocated: each storage's size
fits its record, each tensor view lies inside its storage.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import torch

from securitynet.loader._refusal import Refusal
from securitynet.loader._sniff import LEGACY_MAGIC_NUMBER

LEGACY_PROTOCOL_VERSION = 1001
MAX_DIMS = 64


class _Inert:
    """Base of everything the dry run can hand to a pickle: BUILD on it is a refusal.

    Without this, a pickle's BUILD opcode could write into a stand-in's ``__dict__`` (even a
    frozen dataclass's) and so change how later files are checked in this process.
    """

    __slots__ = ()

    def __setstate__(self, state: object) -> None:
        raise Refusal(
            "pickle-bad-value", f"the pickle tries to set the state of a {type(self).__name__}"
        )


@dataclass(frozen=True)
class StorageRef(_Inert):
    key: str
    dtype: torch.dtype | None  # None: an UntypedStorage (bytes; the tensor names the dtype)
    numel: int  # elements of ``dtype`` (bytes when untyped)
    location: str

    @property
    def nbytes(self) -> int:
        return self.numel * (_itemsize(self.dtype) if self.dtype is not None else 1)


@dataclass(frozen=True)
class TensorRef(_Inert):
    storage: StorageRef
    dtype: torch.dtype
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.size)


@dataclass(frozen=True)
class _StorageType(_Inert):
    dtype: torch.dtype | None


@dataclass(frozen=True)
class _Dtype(_Inert):
    dtype: torch.dtype


@dataclass(frozen=True)
class _TensorType(_Inert):
    name: str


class _ODict(dict[Any, Any]):
    """Stand-in for OrderedDict; a state dict's ``_metadata`` arrives through BUILD."""

    def __setstate__(self, state: object) -> None:
        pass


def _itemsize(dtype: torch.dtype) -> int:
    return int(dtype.itemsize)


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Refusal("pickle-bad-tensor", f"{what} is a {type(value).__name__}, not an int")
    return value


def _ints(value: object, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) > MAX_DIMS:
        raise Refusal("pickle-bad-tensor", f"{what} is not a short tuple of ints")
    return tuple(_int(v, what) for v in value)


def _no_hooks(hooks: object) -> None:
    if not isinstance(hooks, Mapping) or hooks:
        raise Refusal("pickle-bad-tensor", "a tensor carries backward hooks")


def _tensor(
    storage: object, offset: object, size: object, stride: object, dtype: torch.dtype | None
) -> TensorRef:
    if not isinstance(storage, StorageRef):
        raise Refusal(
            "pickle-bad-tensor", "a tensor is rebuilt from something that is not a stored storage"
        )
    dtype = dtype if dtype is not None else storage.dtype
    if dtype is None:
        raise Refusal("pickle-bad-tensor", "a tensor on an untyped storage names no dtype")
    if storage.dtype is not None and storage.dtype != dtype:
        raise Refusal("pickle-bad-tensor", f"a {dtype} tensor on a {storage.dtype} storage")
    ref = TensorRef(
        storage=storage,
        dtype=dtype,
        offset=_int(offset, "a storage offset"),
        size=_ints(size, "a tensor size"),
        stride=_ints(stride, "a tensor stride"),
    )
    if len(ref.size) != len(ref.stride):
        raise Refusal("pickle-bad-tensor", "a tensor's size and stride differ in length")
    return ref


def _rebuild_tensor(storage: object, offset: object, size: object, stride: object) -> TensorRef:
    return _tensor(storage, offset, size, stride, None)


def _rebuild_tensor_v2(
    storage: object,
    offset: object,
    size: object,
    stride: object,
    requires_grad: object,
    backward_hooks: object,
    metadata: object = None,
) -> TensorRef:
    _no_hooks(backward_hooks)
    return _tensor(storage, offset, size, stride, None)


def _rebuild_tensor_v3(
    storage: object,
    offset: object,
    size: object,
    stride: object,
    requires_grad: object,
    backward_hooks: object,
    dtype: object,
    metadata: object = None,
) -> TensorRef:
    _no_hooks(backward_hooks)
    if not isinstance(dtype, _Dtype):
        raise Refusal("pickle-bad-tensor", "a tensor's dtype is not a torch dtype")
    return _tensor(storage, offset, size, stride, dtype.dtype)


def _rebuild_parameter(data: object, requires_grad: object, backward_hooks: object) -> TensorRef:
    _no_hooks(backward_hooks)
    if not isinstance(data, TensorRef):
        raise Refusal("pickle-bad-tensor", "a parameter wraps something that is not a tensor")
    return data


def _rebuild_parameter_with_state(
    data: object, requires_grad: object, backward_hooks: object, state: object
) -> TensorRef:
    return _rebuild_parameter(data, requires_grad, backward_hooks)


_REBUILDERS = frozenset(
    {_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter}
)


def _rebuild_from_type_v2(func: object, new_type: object, args: object, state: object) -> TensorRef:
    # torch uses this for a plain Tensor/Parameter that has Python attributes.
    if (
        not isinstance(func, _Global)
        or func.fn not in _REBUILDERS
        or not isinstance(new_type, _TensorType)
        or not isinstance(args, tuple)
    ):
        raise Refusal(
            "pickle-bad-tensor", "a tensor rebuilt through an unexpected function or type"
        )
    result = func(*args)
    if not isinstance(result, TensorRef):
        raise Refusal("pickle-bad-tensor", "a tensor rebuilt into something else")
    return result


def _ordered_dict(*args: object) -> _ODict:
    if len(args) > 1 or (args and not isinstance(args[0], (list, tuple, dict))):
        raise Refusal("pickle-bad-value", "OrderedDict called with unexpected arguments")
    return _ODict(*args)


def _size(dims: object = ()) -> tuple[int, ...]:
    return _ints(dims, "a torch.Size")


def _device(kind: object, index: object = None) -> str:
    if not isinstance(kind, str) or (index is not None and not isinstance(index, int)):
        raise Refusal("pickle-bad-value", "torch.device called with unexpected arguments")
    return kind if index is None else f"{kind}:{index}"


def _encode(text: object, encoding: object = "utf-8") -> bytes:
    # How protocol-2 pickles spell bytes: _codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise Refusal("pickle-bad-value", "_codecs.encode called with unexpected arguments")
    return text.encode("latin1")


def _set(items: object = ()) -> list[Any]:
    if not isinstance(items, (list, tuple)):
        raise Refusal("pickle-bad-value", "set() called with unexpected arguments")
    return list(items)


@dataclass(frozen=True)
class _Global(_Inert):
    """An allowlisted global as the pickle sees it: calls our stand-in, nothing else."""

    name: str
    fn: Callable[..., Any]

    def __call__(self, *args: object) -> Any:
        return self.fn(*args)


def _allowlist() -> dict[tuple[str, str], object]:
    functions: dict[tuple[str, str], Callable[..., Any]] = {
        ("collections", "OrderedDict"): _ordered_dict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch", "Size"): _size,
        ("torch", "device"): _device,
        ("_codecs", "encode"): _encode,
        ("builtins", "set"): _set,
        ("builtins", "frozenset"): _set,
    }
    allowed: dict[tuple[str, str], object] = {
        key: _Global(f"{key[0]}.{key[1]}", fn) for key, fn in functions.items()
    }
    allowed |= {
        ("torch", "Tensor"): _TensorType("Tensor"),
        ("torch._tensor", "Tensor"): _TensorType("Tensor"),
        ("torch.nn.parameter", "Parameter"): _TensorType("Parameter"),
        ("torch.storage", "UntypedStorage"): _StorageType(None),
        ("torch", "UntypedStorage"): _StorageType(None),
    }
    for dtype, storage_name in _LEGACY_STORAGES.items():
        allowed[("torch", storage_name)] = _StorageType(dtype)
    for name in _DTYPE_NAMES:
        found = getattr(torch, name, None)
        if isinstance(found, torch.dtype):
            allowed[("torch", name)] = _Dtype(found)
    return allowed


_LEGACY_STORAGES: dict[torch.dtype, str] = {
    torch.float64: "DoubleStorage",
    torch.float32: "FloatStorage",
    torch.float16: "HalfStorage",
    torch.bfloat16: "BFloat16Storage",
    torch.int64: "LongStorage",
    torch.int32: "IntStorage",
    torch.int16: "ShortStorage",
    torch.int8: "CharStorage",
    torch.uint8: "ByteStorage",
    torch.bool: "BoolStorage",
    torch.complex64: "ComplexFloatStorage",
    torch.complex128: "ComplexDoubleStorage",
}
_DTYPE_NAMES = (
    "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8",
    "uint16", "uint32", "uint64", "bool", "complex64", "complex128",
    "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
)  # fmt: skip

_ALLOWED: dict[tuple[str, str], object] | None = None


def allowed_globals() -> dict[tuple[str, str], object]:
    global _ALLOWED
    if _ALLOWED is None:
        _ALLOWED = _allowlist()
    return _ALLOWED


class DryRunUnpickler(pickle.Unpickler):
    """Unpickles into inert stand-ins; any global outside the allowlist is a refusal."""

    def __init__(self, file: BinaryIO, *, persistent_load: Callable[[object], object]) -> None:
        super().__init__(file, encoding="utf-8")
        self._persistent = persistent_load

    def find_class(self, module: str, name: str) -> Any:
        target = allowed_globals().get((module, name))
        if target is None:
            raise Refusal(
                "global-not-allowed",
                f"the pickle reaches for {module}.{name}, which is not a tensor-rebuilding global",
            )
        return target

    def persistent_load(self, pid: object) -> object:
        return self._persistent(pid)


def dry_run(data: BinaryIO, *, persistent_load: Callable[[object], object], what: str) -> object:
    """Unpickle one pickle from ``data`` through :class:`DryRunUnpickler`; raise Refusal."""
    try:
        return DryRunUnpickler(data, persistent_load=persistent_load).load()
    except Refusal:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        KeyError,
        IndexError,
        OverflowError,
        UnicodeDecodeError,
        RecursionError,
        MemoryError,
        struct.error,
    ) as exc:
        raise Refusal(
            "pickle-malformed", f"{what} is not a well-formed pickle: {type(exc).__name__}: {exc}"
        ) from exc


# --- zip checkpoints --------------------------------------------------------------------------


class _StorageTable:
    def __init__(self) -> None:
        self.storages: dict[str, StorageRef] = {}

    def add(self, ref: StorageRef) -> StorageRef:
        known = self.storages.setdefault(ref.key, ref)
        if known != ref:
            raise Refusal(
                "pickle-bad-storage", f"storage {ref.key!r} is described twice, differently"
            )
        return known


def _storage_ref(kind: object, key: object, location: object, numel: object) -> StorageRef:
    if (
        not isinstance(kind, _StorageType)
        or not isinstance(key, str)
        or not isinstance(location, str)
    ):
        raise Refusal("pickle-bad-storage", "a persistent id that does not describe a storage")
    return StorageRef(
        key=key, dtype=kind.dtype, numel=_int(numel, "a storage size"), location=location
    )


def check_zip_pickle(
    data_pkl: bytes, record_sizes: Mapping[str, int]
) -> tuple[object, dict[str, StorageRef]]:
    """Dry-run ``data.pkl`` of a zip checkpoint; check storages against their records."""
    table = _StorageTable()

    def persistent_load(pid: object) -> object:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise Refusal("pickle-bad-storage", f"unexpected persistent id {_short(pid)}")
        return table.add(_storage_ref(*pid[1:]))

    stream = io.BytesIO(data_pkl)
    obj = dry_run(stream, persistent_load=persistent_load, what="data.pkl")
    if stream.tell() != len(data_pkl):
        raise Refusal(
            "pickle-trailing-data",
            f"{len(data_pkl) - stream.tell()} bytes follow the pickle's STOP",
        )
    for key, ref in table.storages.items():
        if key not in record_sizes:
            raise Refusal("zip-missing-record", f"storage {key!r} has no data/{key} record")
        if ref.nbytes > record_sizes[key]:
            raise Refusal(
                "storage-exceeds-record",
                f"storage {key!r} claims {ref.numel} elements ({ref.nbytes} bytes) but its record holds "
                f"{record_sizes[key]} bytes",
            )
    unused = sorted(set(record_sizes) - set(table.storages))
    if unused:
        raise Refusal("zip-unexpected-record", f"data/{unused[0]} is not used by any tensor")
    check_tensors(obj)
    return obj, table.storages


def iter_tensor_refs(obj: object, *, depth: int = 0) -> Iterator[TensorRef]:
    if depth > 64:
        raise Refusal("pickle-too-deep", "the checkpoint nests deeper than 64 levels")
    if isinstance(obj, TensorRef):
        yield obj
    elif isinstance(obj, Mapping):
        for value in obj.values():
            yield from iter_tensor_refs(value, depth=depth + 1)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from iter_tensor_refs(value, depth=depth + 1)


def check_tensors(obj: object) -> None:
    """Every tensor view must lie inside its storage and not be larger than it."""
    seen: set[int] = set()
    for ref in iter_tensor_refs(obj):
        if id(ref) in seen:
            continue
        seen.add(id(ref))
        storage_elements = ref.storage.nbytes // _itemsize(ref.dtype)
        if ref.offset < 0 or any(d < 0 for d in ref.size) or any(s < 0 for s in ref.stride):
            raise Refusal("pickle-bad-tensor", "a tensor with a negative size, stride or offset")
        if ref.numel == 0:
            continue
        last = ref.offset + sum((d - 1) * s for d, s in zip(ref.size, ref.stride, strict=True))
        if last >= storage_elements:
            raise Refusal(
                "tensor-out-of-bounds",
                f"a tensor of size {list(ref.size)} reaches element {last} of a {storage_elements}-element storage",
            )
        if ref.numel > storage_elements:
            raise Refusal(
                "tensor-overlapping-view",
                f"a tensor of {ref.numel} elements views a storage of {storage_elements} (overlapping strides)",
            )


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- legacy (pre-1.6) checkpoints ---------------------------------------------------------------


def check_legacy_stream(f: BinaryIO, *, size: int) -> object:
    """Dry-run every pickle of a legacy checkpoint and walk its storage section to the end."""
    f.seek(0)
    magic = dry_run(f, persistent_load=_no_persistent, what="the magic number")
    if magic != LEGACY_MAGIC_NUMBER:
        raise Refusal("legacy-malformed", "the magic number is wrong")
    protocol = dry_run(f, persistent_load=_no_persistent, what="the protocol version")
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise Refusal(
            "legacy-malformed",
            f"protocol version {_short(protocol)} (expected {LEGACY_PROTOCOL_VERSION})",
        )
    sys_info = dry_run(f, persistent_load=_no_persistent, what="the system info")
    if not isinstance(sys_info, Mapping) or sys_info.get("little_endian") is not True:
        raise Refusal("legacy-malformed", "the system info is missing or not little-endian")

    table = _StorageTable()

    def persistent_load(pid: object) -> object:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise Refusal("pickle-bad-storage", f"unexpected persistent id {_short(pid)}")
        _, kind, key, location, numel, view = pid
        if view is not None:
            raise Refusal("legacy-storage-view", "legacy storage views are not supported")
        return table.add(_storage_ref(kind, key, location, numel))

    obj = dry_run(f, persistent_load=persistent_load, what="the checkpoint pickle")
    keys = dry_run(f, persistent_load=_no_persistent, what="the storage key list")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise Refusal("legacy-malformed", "the storage key list is not a list of strings")
    if len(set(keys)) != len(keys) or set(keys) != set(table.storages):
        raise Refusal(
            "legacy-malformed", "the storage key list does not match the storages the pickle uses"
        )
    position = f.tell()
    for key in keys:
        ref = table.storages[key]
        f.seek(position)
        raw = f.read(8)
        if len(raw) < 8:
            raise Refusal("storage-exceeds-record", f"storage {key!r} is missing from the file")
        (count,) = struct.unpack("<q", raw)
        if count != ref.numel:
            raise Refusal(
                "storage-exceeds-record",
                f"storage {key!r} is declared with {ref.numel} elements but stored with {count}",
            )
        position += 8 + ref.nbytes
        if position > size:
            raise Refusal(
                "storage-exceeds-record", f"storage {key!r} runs past the end of the file"
            )
    if position != size:
        raise Refusal("legacy-trailing-data", f"{size - position} bytes after the last storage")
    check_tensors(obj)
    return obj


def _no_persistent(pid: object) -> object:
    raise Refusal("pickle-bad-storage", f"unexpected persistent id {_short(pid)}")
