"""Builders for crafted checkpoints: a zip writer with every knob, pickles opcode by opcode.

Shared by the per-reason tests and the fuzz test. ``write_zip`` lays a zip out the way
``torch.save`` does (local headers with data descriptors, a zip64 end record and locator)
unless told to lie somewhere; ``data_pkl`` spells a state dict in protocol-2 opcodes.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

PROTO2 = b"\x80\x02"
MARK, TUPLE, REDUCE, STOP, EMPTY_DICT, SETITEM, SETITEMS = b"(", b"t", b"R", b".", b"}", b"s", b"u"
EMPTY_TUPLE, NEWFALSE, NEWTRUE, BINPERSID, BUILD = b")", b"\x89", b"\x88", b"Q", b"b"


def glob(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def text(value: str) -> bytes:
    raw = value.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def integer(value: int) -> bytes:
    if 0 <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def tup(values: Sequence[int]) -> bytes:
    return MARK + b"".join(integer(v) for v in values) + TUPLE


def call(fn: bytes, *args: bytes) -> bytes:
    return fn + MARK + b"".join(args) + TUPLE + REDUCE


def ordered_dict() -> bytes:
    return call(glob("collections", "OrderedDict"))


def storage(key: str, numel: int, kind: str = "FloatStorage") -> bytes:
    return (
        MARK
        + text("storage")
        + glob("torch", kind)
        + text(key)
        + text("cpu")
        + integer(numel)
        + TUPLE
        + BINPERSID
    )


def tensor_v2(
    key: str,
    numel: int,
    size: Sequence[int],
    stride: Sequence[int] | None = None,
    *,
    offset: int = 0,
    extra: bytes = b"",
    kind: str = "FloatStorage",
) -> bytes:
    """``_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()[, extra])``."""
    if stride is None:
        stride = [int(torch.tensor(size[i + 1 :]).prod()) for i in range(len(size))]
    return call(
        glob("torch._utils", "_rebuild_tensor_v2"),
        storage(key, numel, kind),
        integer(offset),
        tup(size),
        tup(stride),
        NEWFALSE,
        ordered_dict(),
        extra,
    )


def state_dict(entries: dict[str, bytes]) -> bytes:
    """A pickle of ``{name: <value opcodes>}`` (a plain dict)."""
    body = b"".join(text(k) + v for k, v in entries.items())
    return PROTO2 + EMPTY_DICT + MARK + body + SETITEMS + STOP


# --- zips ---------------------------------------------------------------------------------------


@dataclass
class Member:
    name: str
    data: bytes
    method: int = 0  # 0 stored, 8 deflated
    flags: int = 0x808  # UTF-8 names, data descriptor (what torch writes)
    crc: int | None = None
    size: int | None = None  # uncompressed size in the central directory
    compressed: bytes | None = None  # the bytes on disk (default: data, deflated if method 8)
    local_name: bytes | None = None
    local_flags: int | None = None
    raw_name: bytes | None = None
    external: int = 0  # external attributes (DOS attributes, Unix mode << 16)


@dataclass
class ZipKnobs:
    zip64: bool = True
    locator_delta: int = 0  # add to the zip64 locator's offset field
    comment: bytes = b""
    gap_after: dict[int, bytes] = field(default_factory=dict)  # member index -> bytes after it
    before_directory: bytes = b""
    directory_tail: bytes = b""  # bytes inside the central directory after the entries
    count_delta: int = 0
    trailing: bytes = b""


def write_zip(members: list[Member], knobs: ZipKnobs | None = None) -> bytes:
    knobs = knobs or ZipKnobs()
    out = bytearray()
    central = bytearray()
    for i, m in enumerate(members):
        name = m.raw_name if m.raw_name is not None else m.name.encode()
        if m.compressed is not None:
            body = m.compressed
        elif m.method == 8:
            packer = zlib.compressobj(6, zlib.DEFLATED, -15)
            body = packer.compress(m.data) + packer.flush()
        else:
            body = m.data
        crc = zlib.crc32(m.data) if m.crc is None else m.crc
        size = len(m.data) if m.size is None else m.size
        flags = m.flags
        local_flags = flags if m.local_flags is None else m.local_flags
        offset = len(out)
        descriptor = bool(local_flags & 0x8)
        out += struct.pack(
            "<4sHHHHHIIIHH",
            b"PK\x03\x04",
            45,
            local_flags,
            m.method,
            0,
            0,
            0 if descriptor else crc,
            0 if descriptor else len(body),
            0 if descriptor else size,
            len(m.local_name if m.local_name is not None else name),
            0,
        )
        out += m.local_name if m.local_name is not None else name
        out += body
        if descriptor:
            out += b"PK\x07\x08" + struct.pack("<III", crc, len(body), size)
        out += knobs.gap_after.get(i, b"")
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            45,
            45,
            flags,
            m.method,
            0,
            0,
            crc,
            len(body),
            size,
            len(name),
            0,
            0,
            0,
            0,
            m.external,
            offset,
        )
        central += name
    out += knobs.before_directory
    cd_offset = len(out)
    central += knobs.directory_tail
    out += central
    count = len(members) + knobs.count_delta
    if knobs.zip64:
        record_at = len(out)
        out += struct.pack(
            "<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(central), cd_offset
        )
        out += struct.pack("<4sIQI", b"PK\x06\x07", 0, record_at + knobs.locator_delta, 1)
    out += struct.pack(
        "<4sHHHHIIH",
        b"PK\x05\x06",
        0,
        0,
        min(count, 0xFFFF),
        min(count, 0xFFFF),
        len(central),
        cd_offset,
        len(knobs.comment),
    )
    return bytes(out + knobs.comment + knobs.trailing)


def torch_members(records: dict[str, bytes], *, prefix: str = "archive") -> list[Member]:
    return [Member(f"{prefix}/{name}", data) for name, data in records.items()]


def checkpoint_records(data_pkl: bytes, storages: dict[str, bytes]) -> dict[str, bytes]:
    records = {"data.pkl": data_pkl, "byteorder": b"little"}
    records |= {f"data/{k}": v for k, v in storages.items()}
    records["version"] = b"3\n"
    return records


def saved_records(obj: object) -> dict[str, bytes]:
    """What ``torch.save(obj)`` writes, record by record (names without the prefix)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        return {n.split("/", 1)[1]: zf.read(n) for n in zf.namelist()}


def floats(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)
