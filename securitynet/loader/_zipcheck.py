"""Check a torch zip checkpoint's container and read its records: the one zip parser.

torch's reader (miniz) and Python's :mod:`zipfile` are different parsers; a zip crafted so
that they disagree (a zip64 locator pointing elsewhere, a local header naming another file
than the central directory, two members of the same name, overlapping members, data hidden
between them or after a deflate stream) is how a checker and a loader end up looking at
different bytes. So the directory is parsed by :mod:`_zipdir`, the records are read here,
and the safe reader builds its tensors from exactly these bytes: no other zip parser ever
sees the file. Any zip that two parsers could read differently is refused, and we require
the layout ``torch.save`` writes:

``<prefix>/data.pkl``, ``<prefix>/data/<n>``, ``<prefix>/version``, ``<prefix>/byteorder``,
``<prefix>/.format_version``, ``<prefix>/.storage_alignment``, ``<prefix>/.data/version``,
``<prefix>/.data/serialization_id`` and nothing else. ``code/`` or ``constants.pkl`` means
TorchScript, refused: loading it runs the archive's code.

Every member's CRC is verified on the very bytes that become tensors. Members may be stored (what
``torch.save`` writes) or deflated (a checkpoint re-zipped by hand); a deflated member is
inflated under a cap so a deflate bomb is refused, never expanded.
"""

from __future__ import annotations

import mmap
import re
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

import torch

from securitynet.loader import _sniff, _zipdir
from securitynet.loader._refusal import Refusal

#: Largest data.pkl (inflated) we read: its opcode scan must stay well under a second or
#: two. A ResNet-50 state dict's is 39 KB; a training checkpoint with optimiser state and
#: EMA weights a few hundred KB.
MAX_DATA_PKL = 2 * 2**20
MAX_SMALL_RECORD = 64
_STORED, _DEFLATED = 0, 8
#: A deflated member may expand at most this much (a large zero-filled buffer reaches ~1000x).
MAX_DEFLATE_RATIO = 100
#: ... unless it is this small in total.
DEFLATE_RATIO_FLOOR = 1 * 2**20
CHUNK = 8 * 2**20

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_DESCRIPTOR_SIGNATURE = b"PK\x07\x08"
_FLAG_ENCRYPTED = 0x1
_FLAG_DESCRIPTOR = 0x8
_FLAG_UTF8 = 0x800

_SMALL_RECORDS = frozenset(
    {
        "version",
        "byteorder",
        ".format_version",
        ".storage_alignment",
        ".data/version",
        ".data/serialization_id",
    }
)
_DATA_RECORD = re.compile(r"data/([0-9]{1,20})")
_TORCHSCRIPT_MARKERS = (
    "code/",
    "constants.pkl",
    "extra/",
    ".data/ts_code/",
    "model.json",
    "attributes.pkl",
)


@dataclass(frozen=True)
class ZipRecord:
    name: str
    data_offset: int
    size: int  # uncompressed
    compressed_size: int
    deflated: bool
    crc: int

    @classmethod
    def of(cls, info: _zipdir.CentralEntry, data_offset: int) -> ZipRecord:
        return cls(
            name=info.name,
            data_offset=data_offset,
            size=info.size,
            compressed_size=info.compressed_size,
            deflated=info.method == _DEFLATED,
            crc=info.crc,
        )


@dataclass(frozen=True)
class ZipLayout:
    prefix: str
    data_pkl: bytes
    storages: dict[str, ZipRecord]  # storage key -> its data record
    byteorder: str
    records: dict[str, bytes]  # every small record (data.pkl, version, ...) by relative name


def check_zip(f: BinaryIO, *, size: int, verify_storages: bool = True) -> ZipLayout:
    """Validate the zip ``f`` of ``size`` bytes as a torch checkpoint; raise Refusal.

    With ``verify_storages=False`` the CRCs of the ``data/<n>`` records (the bulk of the
    file, plain tensor bytes) are left to :func:`verify_records`, so a caller can run them
    beside torch's read; every other check, data.pkl's CRC included, is done here.
    """
    directory = _zipdir.read_directory(f, size=size)
    infos = directory.entries
    central_dir_start = directory.start
    names = [info.name for info in infos]
    _check_names(names)
    spans = [_check_member(f, info, central_dir_start) for info in infos]
    _check_tiling(spans, names, central_dir_start)

    prefix = names[0].split("/", 1)[0]
    relative: dict[str, _zipdir.CentralEntry] = {}
    for info in infos:
        head, sep, rest = info.name.partition("/")
        if not sep or head != prefix or not rest:
            raise Refusal(
                "zip-unexpected-record",
                f"member {info.name!r} is outside the archive folder {prefix + '/'!r}",
            )
        relative[rest] = info
    if any(rest.startswith(_TORCHSCRIPT_MARKERS) for rest in relative):
        raise Refusal(
            "torchscript",
            "a TorchScript archive (it holds code/ and constants.pkl); loading it runs its code",
            format=_sniff.TORCHSCRIPT,
        )
    if "data.pkl" not in relative:
        raise Refusal(
            "zip-not-torch", "a zip without data.pkl is not a torch checkpoint", format=_sniff.ZIP
        )
    if "version" not in relative:  # torch's reader requires it: a file it would not read
        raise Refusal("zip-missing-record", "the zip has no version record")

    records = {
        info.name: ZipRecord.of(info, span[2]) for info, span in zip(infos, spans, strict=True)
    }
    for record in records.values():
        _check_ratio(record)
    storages: dict[str, ZipRecord] = {}
    small: dict[str, ZipRecord] = {}
    for rest, info in relative.items():
        match = _DATA_RECORD.fullmatch(rest)
        if match:
            storages[match.group(1)] = records[info.name]
        elif rest in _SMALL_RECORDS or rest == "data.pkl":
            limit = MAX_DATA_PKL if rest == "data.pkl" else MAX_SMALL_RECORD
            if info.size > limit:
                raise Refusal(
                    "zip-record-too-large",
                    f"record {rest!r} is {info.size} bytes long (limit {limit})",
                )
            small[rest] = records[info.name]
        else:
            raise Refusal("zip-unexpected-record", f"unexpected record {info.name!r}")

    # Every CRC, with bounded reads and bounded inflation.
    contents = {rest: verify_record(f, record, keep=True) for rest, record in small.items()}
    if verify_storages:
        verify_records(f, storages.values())
    byteorder = contents.get("byteorder", b"little").decode("ascii", "replace")
    if byteorder not in ("little", "big"):
        raise Refusal("zip-bad-record", f"byteorder record says {byteorder!r}")
    for name in ("version", ".data/version"):
        version = contents.get(name, b"3").strip()
        if not (version.isascii() and version.isdigit() and 1 <= int(version) <= 9):
            raise Refusal("zip-bad-record", f"{name} record says {version[:16]!r}")
    return ZipLayout(
        prefix=prefix,
        data_pkl=contents["data.pkl"],
        storages=storages,
        byteorder=byteorder,
        records=contents,
    )


def verify_records(f: BinaryIO, records: Iterable[ZipRecord]) -> None:
    """Check the CRC of each record (bounded reads and inflation)."""
    for record in records:
        verify_record(f, record, keep=False)


def read_record(f: BinaryIO, record: ZipRecord, mapped: mmap.mmap | None = None) -> torch.Tensor:
    """The content of ``record`` as a uint8 tensor, its CRC checked on those very bytes.

    With ``mapped`` (a private, copy-on-write map of ``f``) a stored record is not copied:
    the CRC reads the mapped pages and the tensor is built over them.
    """
    if record.deflated:
        return _tensor_of(bytearray(verify_record(f, record, keep=True)))
    if mapped is not None:
        end = record.data_offset + record.size
        if end > len(mapped):
            raise Refusal("zip-out-of-bounds", f"member {record.name!r} is truncated")
        with memoryview(mapped) as view, view[record.data_offset : end] as window:
            crc = zlib.crc32(window)
        _check_crc(record, crc)
        if not record.size:
            return torch.empty(0, dtype=torch.uint8)
        return torch.frombuffer(
            mapped, dtype=torch.uint8, count=record.size, offset=record.data_offset
        )
    buf = bytearray(record.size)
    f.seek(record.data_offset)
    if f.readinto(buf) != record.size:  # type: ignore[attr-defined]
        raise Refusal("zip-out-of-bounds", f"member {record.name!r} is truncated")
    _check_crc(record, zlib.crc32(buf))
    return _tensor_of(buf)


def map_private(f: BinaryIO) -> mmap.mmap | None:
    """A copy-on-write map of ``f`` (its pages are the file's until written), or None where
    the file cannot be mapped (no descriptor, or a limit on private mappings)."""
    try:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    except (OSError, ValueError):
        return None


def _tensor_of(buf: bytearray) -> torch.Tensor:
    return torch.frombuffer(buf, dtype=torch.uint8) if buf else torch.empty(0, dtype=torch.uint8)


def _check_crc(record: ZipRecord, crc: int) -> None:
    if crc != record.crc:
        raise Refusal(
            "zip-bad-crc", f"member {record.name!r} fails its CRC check (corrupted or altered)"
        )


def _check_names(names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise Refusal("zip-duplicate-member", f"the zip holds {name!r} twice")
        seen.add(name)
        if (
            not name
            or "\x00" in name
            or "\\" in name
            or name.startswith("/")
            or ".." in name.split("/")
        ):
            raise Refusal("zip-bad-name", f"member name {name!r} is not a plain relative path")
        if name.endswith("/"):
            raise Refusal("zip-unexpected-record", f"directory entry {name!r}")


def _check_member(f: BinaryIO, info: _zipdir.CentralEntry, limit: int) -> tuple[int, int, int]:
    """Compare the local header with the central one; return (start, end, data offset)."""
    name = info.name
    if info.flags & _FLAG_ENCRYPTED:
        raise Refusal("zip-encrypted", f"member {name!r} is encrypted")
    if info.method not in (_STORED, _DEFLATED):
        raise Refusal("zip-compression", f"member {name!r} uses compression method {info.method}")
    if info.method == _STORED and info.compressed_size != info.size:
        raise Refusal("zip-size-mismatch", f"stored member {name!r} has two different sizes")
    if info.header_offset + _LOCAL_HEADER.size > limit:
        raise Refusal("zip-out-of-bounds", f"member {name!r} starts past the member area")
    f.seek(info.header_offset)
    raw = f.read(_LOCAL_HEADER.size)
    (sig, _ver, flags, method, _t, _d, crc, csize, usize, name_len, extra_len) = (
        _LOCAL_HEADER.unpack(raw)
    )
    if sig != _LOCAL_SIGNATURE:
        raise Refusal("zip-malformed", f"no local header where {name!r} should start")
    raw_name = f.read(name_len)
    if raw_name != info.raw_name:
        raise Refusal(
            "zip-name-mismatch",
            f"the local header names {raw_name[:80]!r} but the central directory {name!r}",
        )
    if method != info.method or flags != info.flags:
        raise Refusal("zip-header-mismatch", f"local and central headers of {name!r} disagree")
    if not flags & _FLAG_DESCRIPTOR:
        for local, central in (
            (crc, info.crc),
            (csize, info.compressed_size),
            (usize, info.size),
        ):
            if local not in (central, 0xFFFFFFFF):
                raise Refusal(
                    "zip-header-mismatch", f"local and central headers of {name!r} disagree"
                )
    data_offset = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
    end = data_offset + info.compressed_size
    if flags & _FLAG_DESCRIPTOR:
        end = _check_descriptor(f, info, end, limit)
    if end > limit:
        raise Refusal(
            "zip-out-of-bounds", f"member {name!r} runs past the member area ({end} > {limit})"
        )
    return info.header_offset, end, data_offset


def _check_descriptor(f: BinaryIO, info: _zipdir.CentralEntry, at: int, limit: int) -> int:
    f.seek(at)
    raw = f.read(24)
    if raw[:4] == _DESCRIPTOR_SIGNATURE:
        raw, at = raw[4:], at + 4
    want = (info.crc, info.compressed_size, info.size)
    # The descriptor has 4-byte sizes, or 8-byte ones when the member is a zip64 one; torch
    # writes zip64 for large files, so accept whichever layout matches the central record.
    for fmt, length in (("<III", 12), ("<IQQ", 20)):
        if len(raw) >= length and at + length <= limit and struct.unpack(fmt, raw[:length]) == want:
            return at + length
    raise Refusal(
        "zip-header-mismatch",
        f"the data descriptor of {info.name!r} disagrees with the central directory",
    )


def _check_tiling(
    spans: list[tuple[int, int, int]], names: list[str], central_dir_start: int
) -> None:
    """Members must not overlap, nor leave bytes between them that belong to no member."""
    order = sorted(range(len(spans)), key=lambda i: spans[i][0])
    cursor = 0
    for i in order:
        start, end, _ = spans[i]
        if start < cursor:
            raise Refusal(
                "zip-overlapping-members", f"member {names[i]!r} overlaps the member before it"
            )
        if start > cursor:
            raise Refusal(
                "zip-hidden-data",
                f"{start - cursor} bytes before member {names[i]!r} belong to no member",
            )
        cursor = end
    if cursor != central_dir_start:
        raise Refusal(
            "zip-hidden-data",
            f"{central_dir_start - cursor} bytes between the last member and the central directory",
        )


def _check_ratio(record: ZipRecord) -> None:
    if (
        record.deflated
        and record.size > DEFLATE_RATIO_FLOOR
        and record.size > MAX_DEFLATE_RATIO * max(record.compressed_size, 1)
    ):
        raise Refusal(
            "zip-compression-ratio",
            f"member {record.name!r} claims to inflate {record.compressed_size} bytes to {record.size} "
            f"(more than {MAX_DEFLATE_RATIO}x): a deflate bomb",
        )


def verify_record(source: BinaryIO | mmap.mmap, record: ZipRecord, *, keep: bool) -> bytes:
    """Check one record's CRC (inflating under a cap); return its content if ``keep``."""
    end = record.data_offset + record.compressed_size
    if isinstance(source, mmap.mmap) and not record.deflated:
        if end > len(source):
            raise Refusal("zip-out-of-bounds", f"member {record.name!r} is truncated")
        with memoryview(source) as view, view[record.data_offset : end] as window:
            crc = zlib.crc32(window)  # no copy: zlib reads the mapped pages
            kept = bytes(window) if keep else b""
        if crc != record.crc:
            raise Refusal(
                "zip-bad-crc", f"member {record.name!r} fails its CRC check (corrupted or altered)"
            )
        return kept
    crc = 0
    produced = 0
    pieces: list[bytes] = []
    inflater = zlib.decompressobj(-15) if record.deflated else None
    position = record.data_offset
    while position < end:
        n = min(CHUNK, end - position)
        if isinstance(source, mmap.mmap):
            chunk = source[position : position + n]
        else:
            source.seek(position)
            chunk = source.read(n)
        if len(chunk) < n:
            raise Refusal("zip-out-of-bounds", f"member {record.name!r} is truncated")
        position += n
        outputs = [chunk]
        if inflater is not None:
            outputs = []
            data = chunk
            while data:
                try:
                    # Never inflate more than the declared size (+1 to notice a lie).
                    out = inflater.decompress(data, record.size - produced + 1)
                except zlib.error as exc:
                    raise Refusal(
                        "zip-malformed", f"member {record.name!r} does not inflate: {exc}"
                    ) from exc
                produced += len(out)
                if inflater.eof and (inflater.unused_data or position < end):
                    raise Refusal(
                        "zip-deflate-trailing-data",
                        f"member {record.name!r} holds bytes after the end of its deflate stream",
                    )
                if produced > record.size:
                    raise Refusal(
                        "zip-compression-ratio",
                        f"member {record.name!r} inflates past its declared {record.size} bytes",
                    )
                outputs.append(out)
                data = inflater.unconsumed_tail
        for out in outputs:
            crc = zlib.crc32(out, crc)
            if keep:
                pieces.append(out)
    if inflater is not None:
        try:
            tail = inflater.flush()
        except zlib.error as exc:
            raise Refusal(
                "zip-malformed", f"member {record.name!r} does not inflate: {exc}"
            ) from exc
        produced += len(tail)
        crc = zlib.crc32(tail, crc)
        pieces.append(tail)
        if produced != record.size or not inflater.eof:
            raise Refusal(
                "zip-size-mismatch",
                f"member {record.name!r} inflates to {produced} bytes, not {record.size}",
            )
    if crc != record.crc:
        raise Refusal(
            "zip-bad-crc", f"member {record.name!r} fails its CRC check (corrupted or altered)"
        )
    return b"".join(pieces) if keep else b""
