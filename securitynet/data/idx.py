"""IDX files (the MNIST family's format), read into numpy without any third-party reader.

An IDX file is a 4-byte magic (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the values. Files may be gzip-compressed.
Anything else is a :class:`MalformedDataError` naming the file.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from securitynet.errors import MalformedDataError

#: IDX type code -> numpy dtype (big-endian where it matters).
_TYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def read_idx(path: Path) -> np.ndarray:
    """The array stored in the IDX file at ``path`` (``.gz`` or plain)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as fh:
            data: bytes = fh.read()
    except (OSError, EOFError) as exc:
        raise MalformedDataError(f"cannot read IDX file {path}: {exc}", path=str(path)) from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _TYPES:
        raise MalformedDataError(f"{path} is not an IDX file (bad magic)", path=str(path))
    ndim = data[3]
    if ndim == 0 or len(data) < 4 + 4 * ndim:
        raise MalformedDataError(f"{path}: truncated IDX header", path=str(path))
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_TYPES[data[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) - offset != expected:
        raise MalformedDataError(
            f"{path}: header says {dims} ({expected} bytes of values), file holds {len(data) - offset}",
            path=str(path),
        )
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(dims)
