"""Read a safetensors file ourselves: check the header, refuse polyglots, read the tensors.

The layout is ``u64 little-endian N`` + ``N`` bytes of JSON + a data buffer. We bound N
before reading it, refuse duplicate keys, odd names, unknown dtypes and too many
dimensions, and require the tensors' byte ranges to be in bounds, the size their shape
and dtype say, non-overlapping and together covering the buffer exactly (no hidden
bytes). The tensors are then read from the same open file, at the offsets just checked:
no second parser (the ``safetensors`` library) reopens the file by name.

A safetensors file whose bytes also parse as a pickle, or that also holds a zip end
record or a tar header, is a polyglot: harmless here, but it would run its payload under
``pickle.load`` or another loader, so it is no safe file to keep or share. Refused.
"""

from __future__ import annotations

import json
import math
import mmap
import re
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

import torch

from securitynet.loader import _opscan
from securitynet.loader._refusal import Refusal

#: Largest JSON header we parse (bytes): ~80 bytes per tensor, so MAX_TENSORS fit easily.
MAX_HEADER = 8 * 2**20
#: Most dimensions a tensor may have (the pickle path's cap too).
MAX_DIMS = 64
#: Largest product of a shape's non-zero dimensions (a zero-element tensor could otherwise
#: claim a shape whose strides overflow).
MAX_DIM = 2**48
#: How far into the file we look for a pickle reading of the bytes (polyglot check); a run
#: of valid opcodes this long is refused even without its STOP.
POLYGLOT_WINDOW = 256 * 2**10
#: Where a zip reader looks for its end record: the last 22 bytes plus a 64 KiB comment.
_ZIP_TAIL = 22 + 0xFFFF

#: dtype name in the header -> bytes per element (the dtypes torch can hold).
DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
    "C64": 8,
}

#: safetensors dtype name -> torch dtype (the dtypes torch can hold).
TORCH_DTYPES: dict[str, torch.dtype] = {
    "BOOL": torch.bool,
    "U8": torch.uint8,
    "I8": torch.int8,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I16": torch.int16,
    "U16": torch.uint16,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I32": torch.int32,
    "U32": torch.uint32,
    "F32": torch.float32,
    "I64": torch.int64,
    "U64": torch.uint64,
    "F64": torch.float64,
    "C64": torch.complex64,
}

MAX_TENSORS = 100_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME_LENGTH = 4096


@dataclass(frozen=True)
class SafetensorsHeader:
    header_length: int
    tensors: dict[str, tuple[str, tuple[int, ...], int, int]]  # name -> dtype, shape, begin, end
    metadata: dict[str, str]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise Refusal("safetensors-duplicate-name", f"the header names {key!r} twice")
        out[key] = value
    return out


def check_header(f: BinaryIO, *, size: int) -> SafetensorsHeader:
    """Validate the header of the safetensors file ``f`` (``size`` bytes); raise Refusal."""
    f.seek(0)
    raw_len = f.read(8)
    if len(raw_len) < 8:
        raise Refusal(
            "safetensors-truncated", "the file is shorter than a safetensors length prefix"
        )
    (header_length,) = struct.unpack("<Q", raw_len)
    if header_length > MAX_HEADER:
        raise Refusal(
            "safetensors-header-too-large",
            f"the header claims {header_length} bytes (limit {MAX_HEADER})",
        )
    if header_length > size - 8:
        raise Refusal(
            "safetensors-header-out-of-bounds",
            f"the header claims {header_length} bytes but the file has {size - 8} after the prefix",
        )
    raw = f.read(header_length)
    try:
        text = raw.decode("utf-8")
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: 5000 digits
        raise Refusal("safetensors-header-invalid", f"the header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise Refusal("safetensors-header-invalid", "the header is not a JSON object")

    metadata_raw = header.pop("__metadata__", {})
    if not isinstance(metadata_raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata_raw.items()
    ):
        raise Refusal("safetensors-header-invalid", "__metadata__ must map strings to strings")
    if len(header) > MAX_TENSORS:
        raise Refusal("safetensors-header-invalid", f"{len(header)} tensors (limit {MAX_TENSORS})")

    data_size = size - 8 - header_length
    tensors: dict[str, tuple[str, tuple[int, ...], int, int]] = {}
    for name, info in header.items():
        _check_name(name)
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise Refusal(
                "safetensors-header-invalid",
                f"tensor {name!r} must have exactly dtype, shape and data_offsets",
            )
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPE_SIZES:
            raise Refusal("safetensors-bad-dtype", f"tensor {name!r} has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_nonneg_int(d) for d in shape):
            raise Refusal("safetensors-header-invalid", f"tensor {name!r} has a malformed shape")
        if len(shape) > MAX_DIMS or math.prod(max(d, 1) for d in shape) > MAX_DIM:
            raise Refusal(
                "safetensors-too-many-dims",
                f"tensor {name!r} has {len(shape)} dimensions (limit {MAX_DIMS}) or spans more "
                f"than {MAX_DIM} elements",
            )
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(_is_nonneg_int(o) for o in offsets)
        ):
            raise Refusal(
                "safetensors-header-invalid", f"tensor {name!r} has malformed data_offsets"
            )
        begin, end = offsets
        if begin > end or end > data_size:
            raise Refusal(
                "safetensors-offsets-out-of-bounds",
                f"tensor {name!r} spans bytes {begin}..{end} of a {data_size}-byte buffer",
            )
        expected = math.prod(shape) * DTYPE_SIZES[dtype]
        if end - begin != expected:
            raise Refusal(
                "safetensors-size-mismatch",
                f"tensor {name!r} ({dtype} {shape}) needs {expected} bytes but spans {end - begin}",
            )
        tensors[name] = (dtype, tuple(shape), begin, end)

    cursor = 0
    for name, (_, _, begin, end) in sorted(
        tensors.items(), key=lambda item: (item[1][2], item[1][3])
    ):
        if begin < cursor:
            raise Refusal(
                "safetensors-offsets-overlap", f"tensor {name!r} overlaps the previous tensor"
            )
        if begin > cursor:
            raise Refusal(
                "safetensors-offsets-gap",
                f"{begin - cursor} unaccounted bytes before tensor {name!r}",
            )
        cursor = end
    if cursor != data_size:
        raise Refusal(
            "safetensors-offsets-gap",
            f"{data_size - cursor} bytes after the last tensor belong to none",
        )
    return SafetensorsHeader(
        header_length=header_length, tensors=tensors, metadata=dict(metadata_raw)
    )


def _is_nonneg_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_name(name: str) -> None:
    if not name:
        raise Refusal("safetensors-bad-name", "a tensor has an empty name")
    if len(name) > MAX_NAME_LENGTH:
        raise Refusal("safetensors-bad-name", f"a tensor name is {len(name)} characters long")
    if _CONTROL.search(name):
        raise Refusal(
            "safetensors-bad-name", f"tensor name {name!r} contains a NUL or control character"
        )


def check_not_polyglot(f: BinaryIO, *, size: int) -> None:
    """Refuse a safetensors file that other readers would take for a pickle, zip or tar."""
    f.seek(0)
    head = f.read(min(size, POLYGLOT_WINDOW))
    try:
        _opscan.scan(head)
    except _opscan.NotAPickle as exc:
        if exc.truncated and len(head) < size:
            raise Refusal(
                "polyglot",
                f"the first {len(head)} bytes also read as a run of pickle opcodes",
            ) from exc
    except Refusal as exc:  # too deep: still a pickle
        raise Refusal("polyglot", "the bytes also parse as a pickle") from exc
    else:
        raise Refusal("polyglot", "the bytes also parse as a pickle (pickle.load would run it)")
    if len(head) >= 262 and head[257:262] == b"ustar":
        raise Refusal("polyglot", "the bytes also carry a tar header")
    tail_at = max(0, size - _ZIP_TAIL)
    f.seek(tail_at)
    if b"PK\x05\x06" in f.read(size - tail_at):
        raise Refusal("polyglot", "the bytes also end in a zip end-of-central-directory record")


def read_tensors(
    f: BinaryIO, header: SafetensorsHeader, mapped: mmap.mmap | None = None
) -> dict[str, torch.Tensor]:
    """Each tensor of ``header`` from ``f`` (the file whose header it is): over the pages of
    ``mapped`` (a copy-on-write map of ``f``) when given, else read into its own buffer."""
    base = 8 + header.header_length
    out: dict[str, torch.Tensor] = {}
    for name, (dtype_name, shape, begin, end) in header.tensors.items():
        dtype = TORCH_DTYPES[dtype_name]
        if end == begin:
            out[name] = torch.empty(shape, dtype=dtype)
            continue
        if mapped is not None:
            if base + end > len(mapped):
                raise Refusal("safetensors-truncated", f"tensor {name!r} is cut short")
            count = (end - begin) // DTYPE_SIZES[dtype_name]
            out[name] = torch.frombuffer(
                mapped, dtype=dtype, count=count, offset=base + begin
            ).reshape(shape)
            continue
        buf = bytearray(end - begin)
        f.seek(base + begin)
        if f.readinto(buf) != len(buf):  # type: ignore[attr-defined]
            raise Refusal("safetensors-truncated", f"tensor {name!r} is cut short")
        out[name] = torch.frombuffer(buf, dtype=dtype).reshape(shape)
    return out
