"""A dry run of a checkpoint's pickle through an allowlist unpickler that builds nothing.

First :mod:`_opscan` scans the opcodes (where the pickle ends, how deep it nests) without
building anything. Then we unpickle the same bytes with :class:`DryRunUnpickler`: every global the pickle names is looked up in a short,
exact allowlist (``(module, name)`` pairs, no prefixes, no dotted names), and what it
resolves to is one of our own inert stand-ins. ``_rebuild_tensor_v2`` yields a
:class:`TensorRef` describing the tensor, a persistent id yields a :class:`StorageRef`
describing the storage; no torch object, no callable of anybody else's, is ever reached.

That gives the facts to check before any storage is allocated (each storage's size fits
its record, each tensor view lies inside its storage) and is, at the same time, the only
reading of the pickle: :mod:`_build` makes the returned tensors from these descriptions,
so what was checked is what is returned. torch's own unpickler never sees the file. State
that torch would apply and a description would drop (a tensor's or parameter's rebuild
state, ``_rebuild_tensor_v2`` metadata, ``BUILD`` on an ``OrderedDict`` beyond the
``_metadata`` that ``state_dict()`` writes) is refused. The stand-ins that copy (``set``,
``OrderedDict``, ``_codecs.encode``) draw on a budget proportional to the pickle's size, so
a short pickle cannot make them copy gigabytes.
"""

from __future__ import annotations

import contextvars
import io
import math
import pickle
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import torch

from securitynet.loader import _opscan
from securitynet.loader._refusal import Refusal
from securitynet.loader._sniff import LEGACY_MAGIC_NUMBER

LEGACY_PROTOCOL_VERSION = 1001
#: Most dimensions a tensor may have.
MAX_DIMS = 64
#: Largest size, stride or offset (elements); torch's own limit is 2**63.
MAX_EXTENT = 2**48
#: Most tensors one checkpoint may describe (each costs ~1 KB once built).
MAX_TENSORS = 100_000
#: Largest pickle of a legacy (pre-1.6) stream we read; data.pkl has its own cap in _zipcheck.
MAX_PICKLE = 2 * 2**20
#: Elements the copying stand-ins may copy in all, per byte of pickle (plus a floor).
COPY_BUDGET_PER_BYTE = 4
COPY_BUDGET_FLOOR = 1_000_000

_budget: contextvars.ContextVar[list[int]] = contextvars.ContextVar("securitynet_copy_budget")


def _charge(elements: int) -> None:
    budget = _budget.get(None)
    if budget is None:
        return
    budget[0] -= elements
    if budget[0] < 0:
        raise Refusal(
            "pickle-copy-budget",
            "the pickle makes its allowlisted functions copy far more than it holds (a memory bomb)",
        )


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
    """Stand-in for OrderedDict; a state dict's ``_metadata`` arrives through BUILD.

    That is the only state allowed: ``{"_metadata": {module prefix: {"version": int}}}``,
    what ``nn.Module.state_dict()`` writes. It is checked and dropped.
    """

    def __setstate__(self, state: object) -> None:
        if not _is_state_dict_metadata(state):
            raise Refusal(
                "pickle-odict-state",
                "BUILD on an OrderedDict with state other than a state dict's _metadata",
            )


def _is_state_dict_metadata(state: object) -> bool:
    if not (isinstance(state, dict) and set(state) == {"_metadata"}):
        return False
    metadata = state["_metadata"]
    return isinstance(metadata, dict) and all(
        isinstance(prefix, str)
        and isinstance(local, dict)
        and set(local) == {"version"}
        and _is_int(local["version"])
        for prefix, local in metadata.items()
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _empty_state(state: object) -> bool:
    """What ``torch._utils._get_obj_state`` returns for an object without attributes."""
    if state is None or (isinstance(state, dict) and not state):
        return True
    return (
        isinstance(state, tuple)
        and len(state) == 2
        and all(part is None or (isinstance(part, dict) and not part) for part in state)
    )


def _no_tensor_state(requires_grad: object, metadata: object = None) -> None:
    if not isinstance(requires_grad, bool):
        raise Refusal("pickle-bad-tensor", "a tensor's requires_grad is not a bool")
    if not (metadata is None or (isinstance(metadata, dict) and not metadata)):
        raise Refusal(
            "pickle-tensor-state",
            "a tensor carries rebuild metadata (it would change how torch builds it)",
        )


def _itemsize(dtype: torch.dtype) -> int:
    return int(dtype.itemsize)


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Refusal("pickle-bad-tensor", f"{what} is a {type(value).__name__}, not an int")
    if not -MAX_EXTENT <= value <= MAX_EXTENT:
        raise Refusal("pickle-bad-tensor", f"{what} of {str(value)[:30]} is out of range")
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
    _no_tensor_state(requires_grad, metadata)
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
    _no_tensor_state(requires_grad, metadata)
    if not isinstance(dtype, _Dtype):
        raise Refusal("pickle-bad-tensor", "a tensor's dtype is not a torch dtype")
    return _tensor(storage, offset, size, stride, dtype.dtype)


def _rebuild_parameter(data: object, requires_grad: object, backward_hooks: object) -> TensorRef:
    _no_hooks(backward_hooks)
    _no_tensor_state(requires_grad)
    if not isinstance(data, TensorRef):
        raise Refusal("pickle-bad-tensor", "a parameter wraps something that is not a tensor")
    return data


def _rebuild_parameter_with_state(
    data: object, requires_grad: object, backward_hooks: object, state: object
) -> TensorRef:
    if not _empty_state(state):
        raise Refusal(
            "pickle-tensor-state", "a parameter carries attributes (rebuild state) torch would set"
        )
    return _rebuild_parameter(data, requires_grad, backward_hooks)


_REBUILDERS = frozenset(
    {_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter}
)


def _rebuild_from_type_v2(func: object, new_type: object, args: object, state: object) -> TensorRef:
    # torch uses this for a tensor subclass or a tensor with Python attributes: neither is data.
    if not _empty_state(state):
        raise Refusal(
            "pickle-tensor-state", "a tensor carries attributes (rebuild state) torch would set"
        )
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
    if args:
        _charge(len(args[0]))  # type: ignore[arg-type]
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
    _charge(len(text))
    try:
        return text.encode("latin1")
    except UnicodeEncodeError as exc:
        raise Refusal("pickle-bad-value", "_codecs.encode of text that is not latin-1") from exc


def _set(items: object = ()) -> list[Any]:
    if not isinstance(items, (list, tuple)):
        raise Refusal("pickle-bad-value", "set() called with unexpected arguments")
    _charge(len(items))
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


def dry_run(
    data: bytes, *, persistent_load: Callable[[object], object], what: str, start: int = 0
) -> tuple[object, int]:
    """Scan, then unpickle, the pickle at ``data[start:]``; return it and where it ended.

    Raise Refusal for anything but a well-formed pickle of allowlisted globals.
    """
    try:
        scanned = _opscan.scan(data, start)
    except _opscan.NotAPickle as exc:
        raise Refusal("pickle-malformed", f"{what} is not a well-formed pickle: {exc}") from exc
    stream = io.BytesIO(data)
    stream.seek(start)
    token = _budget.set([COPY_BUDGET_FLOOR + COPY_BUDGET_PER_BYTE * (scanned.end - start)])
    try:
        obj = DryRunUnpickler(stream, persistent_load=persistent_load).load()
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
    finally:
        _budget.reset(token)
    if stream.tell() != scanned.end:  # the scan and the unpickler must agree on the end
        raise Refusal("pickle-malformed", f"{what} ends where the opcode scan did not expect")
    return obj, scanned.end


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
    elements = _int(numel, "a storage size")
    if elements < 0:
        raise Refusal("pickle-bad-storage", f"a storage of {elements} elements")
    return StorageRef(key=key, dtype=kind.dtype, numel=elements, location=location)


def check_zip_pickle(
    data_pkl: bytes, record_sizes: Mapping[str, int]
) -> tuple[object, dict[str, StorageRef]]:
    """Dry-run ``data.pkl`` of a zip checkpoint; check storages against their records."""
    table = _StorageTable()

    def persistent_load(pid: object) -> object:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise Refusal("pickle-bad-storage", f"unexpected persistent id {_short(pid)}")
        return table.add(_storage_ref(*pid[1:]))

    obj, end = dry_run(data_pkl, persistent_load=persistent_load, what="data.pkl")
    if end != len(data_pkl):
        raise Refusal("pickle-trailing-data", f"{len(data_pkl) - end} bytes follow the pickle's STOP")
    for key, ref in table.storages.items():
        if key not in record_sizes:
            raise Refusal("zip-missing-record", f"storage {key!r} has no data/{key} record")
        if ref.nbytes > record_sizes[key]:
            raise Refusal(
                "storage-exceeds-record",
                f"storage {key!r} claims {ref.numel} elements ({ref.nbytes} bytes) but its record holds "
                f"{record_sizes[key]} bytes",
            )
    unused = sorted(set(record_sizes) - set(table.storages))  # bytes no check would look at
    if unused:
        raise Refusal("zip-unexpected-record", f"data/{unused[0]} is not used by any tensor")
    check_tensors(obj)
    return obj, table.storages


def iter_tensor_refs(obj: object) -> Iterator[TensorRef]:
    """Each distinct tensor description in ``obj``, each shared container walked once."""
    seen: set[int] = set()
    todo = [obj]
    while todo:
        item = todo.pop()
        if isinstance(item, TensorRef):
            if id(item) not in seen:
                seen.add(id(item))
                yield item
        elif isinstance(item, (Mapping, list, tuple, set, frozenset)):
            if id(item) in seen:
                continue
            seen.add(id(item))
            values = item.values() if isinstance(item, Mapping) else item
            todo.extend(reversed(list(values)))


def check_tensors(obj: object) -> int:
    """Every tensor view must lie inside its storage and not be larger than it; return the
    number of tensors."""
    count = 0
    for ref in iter_tensor_refs(obj):
        count += 1
        if count > MAX_TENSORS:
            raise Refusal("too-many-tensors", f"more than {MAX_TENSORS} tensors")
        storage_elements = ref.storage.nbytes // _itemsize(ref.dtype)
        if ref.offset < 0 or any(d < 0 for d in ref.size) or any(s < 0 for s in ref.stride):
            raise Refusal("pickle-bad-tensor", "a tensor with a negative size, stride or offset")
        if ref.offset > storage_elements:
            raise Refusal(
                "tensor-out-of-bounds",
                f"a tensor starts at element {ref.offset} of a {storage_elements}-element storage",
            )
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
    return count


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- legacy (pre-1.6) checkpoints ---------------------------------------------------------------


@dataclass(frozen=True)
class LegacyStream:
    obj: object
    storages: dict[str, StorageRef]
    offsets: dict[str, int]  # storage key -> file offset of its bytes


def check_legacy_stream(f: BinaryIO, *, size: int) -> LegacyStream:
    """Dry-run every pickle of a legacy checkpoint and walk its storage section to the end."""
    f.seek(0)
    head = f.read(min(size, MAX_PICKLE * 2))
    position = 0

    def next_pickle(persistent_load: Callable[[object], object], what: str) -> object:
        nonlocal position
        obj, position = dry_run(head, persistent_load=persistent_load, what=what, start=position)
        return obj

    magic = next_pickle(_no_persistent, "the magic number")
    if magic != LEGACY_MAGIC_NUMBER:
        raise Refusal("legacy-malformed", "the magic number is wrong")
    protocol = next_pickle(_no_persistent, "the protocol version")
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise Refusal(
            "legacy-malformed",
            f"protocol version {_short(protocol)} (expected {LEGACY_PROTOCOL_VERSION})",
        )
    sys_info = next_pickle(_no_persistent, "the system info")
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

    obj = next_pickle(persistent_load, "the checkpoint pickle")
    keys = next_pickle(_no_persistent, "the storage key list")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise Refusal("legacy-malformed", "the storage key list is not a list of strings")
    if len(set(keys)) != len(keys) or set(keys) != set(table.storages):
        raise Refusal(
            "legacy-malformed", "the storage key list does not match the storages the pickle uses"
        )
    offsets: dict[str, int] = {}
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
        offsets[key] = position + 8
        position += 8 + ref.nbytes
        if position > size:
            raise Refusal(
                "storage-exceeds-record", f"storage {key!r} runs past the end of the file"
            )
    if position != size:
        raise Refusal("legacy-trailing-data", f"{size - position} bytes after the last storage")
    check_tensors(obj)
    return LegacyStream(obj=obj, storages=table.storages, offsets=offsets)


def _no_persistent(pid: object) -> object:
    raise Refusal("pickle-bad-storage", f"unexpected persistent id {_short(pid)}")
