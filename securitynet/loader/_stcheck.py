"""Check a safetensors header ourselves before the ``safetensors`` library parses it.

The layout is ``u64 little-endian N`` + ``N`` bytes of JSON + a data buffer. We bound N
before reading it, refuse duplicate keys, odd names and unknown dtypes, and require the
tensors' byte ranges to be in bounds, the size their shape and dtype say, non-overlapping
and together covering the buffer exactly (no hidden bytes).
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from securitynet.loader._refusal import Refusal
from securitynet.loader._sniff import MAX_SAFETENSORS_HEADER

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

MAX_TENSORS = 1_000_000
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
    if header_length > MAX_SAFETENSORS_HEADER:
        raise Refusal(
            "safetensors-header-too-large",
            f"the header claims {header_length} bytes (limit {MAX_SAFETENSORS_HEADER})",
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
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
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
