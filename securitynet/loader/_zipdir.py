"""Our own strict reading of a zip's end records and central directory.

Python's :mod:`zipfile` and torch's reader (miniz) locate a zip's directory differently:
zipfile finds the zip64 end record just before its locator and ignores the locator's
offset field, miniz follows the offset; zipfile searches backwards through a comment for
the end record, and so on. A file built to exploit that is two archives at once. So the
safe reader parses the directory itself and accepts only the one unambiguous layout that
``torch.save`` writes: no comment, the end record in the file's last 22 bytes, a zip64
end record (when there is one) exactly where its locator says and exactly before it, the
central directory exactly before that, and central entries that fill it exactly.
Anything else is refused rather than resolved.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from securitynet.loader._refusal import Refusal

_EOCD = struct.Struct("<4sHHHHIIH")  # 22 bytes
_EOCD_SIGNATURE = b"PK\x05\x06"
_LOCATOR = struct.Struct("<4sIQI")  # 20 bytes
_LOCATOR_SIGNATURE = b"PK\x06\x07"
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")  # 56 bytes
_EOCD64_SIGNATURE = b"PK\x06\x06"
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")  # 46 bytes
_CENTRAL_SIGNATURE = b"PK\x01\x02"
_ZIP64_EXTRA = 0x0001
_DOS_DIRECTORY = 0x10
_U16, _U32 = 0xFFFF, 0xFFFFFFFF

#: Most members a checkpoint zip may have (a state dict has one record per storage).
MAX_MEMBERS = 200_000
#: Longest central directory we read (bytes): MAX_MEMBERS entries with short names.
MAX_CENTRAL_DIRECTORY = MAX_MEMBERS * 128


@dataclass(frozen=True)
class CentralEntry:
    raw_name: bytes
    name: str
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int


@dataclass(frozen=True)
class Directory:
    entries: list[CentralEntry]
    start: int  # offset of the central directory = end of the member area


def read_directory(f: BinaryIO, *, size: int) -> Directory:
    """The central directory of the zip ``f`` (``size`` bytes); raise Refusal."""
    if size < _EOCD.size:
        raise Refusal("zip-malformed", "too short to be a zip")
    f.seek(size - _EOCD.size)
    (sig, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, comment_len) = _EOCD.unpack(
        f.read(_EOCD.size)
    )
    if sig != _EOCD_SIGNATURE:
        raise Refusal(
            "zip-malformed",
            "no end-of-central-directory record in the last 22 bytes (a comment or trailing data)",
        )
    if comment_len:
        raise Refusal("zip-hidden-data", f"the end record announces a {comment_len}-byte comment")
    if disk or cd_disk or n_disk != n_total:
        raise Refusal("zip-malformed", "a multi-disk zip")
    end_of_cd = size - _EOCD.size
    locator_at = end_of_cd - _LOCATOR.size
    locator = b""
    if locator_at >= 0:
        f.seek(locator_at)
        locator = f.read(_LOCATOR.size)
    if locator[:4] == _LOCATOR_SIGNATURE:
        n_total, cd_size, cd_offset, end_of_cd = _zip64(
            f, locator, locator_at, (n_total, cd_size, cd_offset)
        )
    elif n_total == _U16 or _U32 in (cd_size, cd_offset):
        raise Refusal("zip-malformed", "zip64 markers in the end record but no zip64 locator")
    if cd_offset + cd_size != end_of_cd:
        raise Refusal(
            "zip-hidden-data",
            f"the central directory ({cd_offset}+{cd_size}) does not end where the end records "
            f"start ({end_of_cd})",
        )
    if n_total > MAX_MEMBERS or cd_size > MAX_CENTRAL_DIRECTORY:
        raise Refusal("zip-too-many-members", f"{n_total} members (limit {MAX_MEMBERS})")
    if n_total == 0:
        raise Refusal("zip-empty", "the zip has no members")
    f.seek(cd_offset)
    raw = f.read(cd_size)
    if len(raw) != cd_size:
        raise Refusal("zip-malformed", "the central directory is truncated")
    entries = _entries(raw, n_total)
    return Directory(entries=entries, start=cd_offset)


def _zip64(
    f: BinaryIO, locator: bytes, locator_at: int, small: tuple[int, int, int]
) -> tuple[int, int, int, int]:
    (_, disk, record_at, disks) = _LOCATOR.unpack(locator)
    expected_at = locator_at - _EOCD64.size
    if disk != 0 or disks != 1:
        raise Refusal("zip-malformed", "a multi-disk zip64 locator")
    if record_at != expected_at:
        # zipfile reads the zip64 record just before the locator, miniz where the locator
        # points: two parsers, two archives.
        raise Refusal(
            "zip-zip64-mismatch",
            f"the zip64 locator points at {record_at}, not at the record before it ({expected_at})",
        )
    f.seek(record_at)
    raw = f.read(_EOCD64.size)
    if len(raw) != _EOCD64.size:
        raise Refusal("zip-zip64-mismatch", "the zip64 end record is truncated")
    (sig, record_size, _made, _need, disk, cd_disk, n_disk, n_total, cd_size, cd_offset) = (
        _EOCD64.unpack(raw)
    )
    if sig != _EOCD64_SIGNATURE or record_size != _EOCD64.size - 12:
        raise Refusal("zip-zip64-mismatch", "no plain zip64 end record before the locator")
    if disk or cd_disk or n_disk != n_total:
        raise Refusal("zip-malformed", "a multi-disk zip")
    for value, short, marker in zip(
        (n_total, cd_size, cd_offset), small, (_U16, _U32, _U32), strict=True
    ):
        if short not in (value, marker):
            raise Refusal("zip-zip64-mismatch", "the zip64 end record and the end record disagree")
    return n_total, cd_size, cd_offset, record_at


def _entries(raw: bytes, count: int) -> list[CentralEntry]:
    entries: list[CentralEntry] = []
    pos = 0
    for _ in range(count):
        if pos + _CENTRAL.size > len(raw):
            raise Refusal("zip-malformed", "the central directory is shorter than its count")
        (
            sig, _made, _need, flags, method, _time, _date, crc, csize, usize,
            name_len, extra_len, comment_len, disk, _internal, external, offset,
        ) = _CENTRAL.unpack_from(raw, pos)  # fmt: skip
        if sig != _CENTRAL_SIGNATURE:
            raise Refusal("zip-malformed", f"no central header at directory offset {pos}")
        pos += _CENTRAL.size
        raw_name = raw[pos : pos + name_len]
        extra = raw[pos + name_len : pos + name_len + extra_len]
        pos += name_len + extra_len + comment_len
        if pos > len(raw):
            raise Refusal("zip-malformed", "a central header runs past the directory")
        if comment_len:
            raise Refusal("zip-hidden-data", f"member {raw_name[:80]!r} carries a comment")
        if disk not in (0, _U16):
            raise Refusal("zip-malformed", "a multi-disk zip")
        if external & _DOS_DIRECTORY or (external >> 16) & 0o170000 not in (0, 0o100000):
            # miniz reads an entry with the directory attribute as a directory, not as its
            # bytes (found by the fuzz test): a file is a plain file in both readers or refused.
            raise Refusal(
                "zip-unexpected-record", f"member {raw_name[:80]!r} is marked as a directory or link"
            )
        usize, csize, offset = _zip64_extra(extra, raw_name, usize, csize, offset)
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Refusal("zip-bad-name", f"member name {raw_name[:80]!r} is not UTF-8") from exc
        entries.append(
            CentralEntry(
                raw_name=raw_name,
                name=name,
                flags=flags,
                method=method,
                crc=crc,
                compressed_size=csize,
                size=usize,
                header_offset=offset,
            )
        )
    if pos != len(raw):
        raise Refusal(
            "zip-hidden-data", f"{len(raw) - pos} bytes in the central directory after its entries"
        )
    return entries


def _zip64_extra(
    extra: bytes, name: bytes, usize: int, csize: int, offset: int
) -> tuple[int, int, int]:
    """Replace the 0xFFFFFFFF markers by the zip64 extra field's values (in the spec's order)."""
    pos = 0
    found: bytes | None = None
    while pos < len(extra):
        if pos + 4 > len(extra):
            raise Refusal("zip-malformed", f"member {name[:80]!r} has a truncated extra field")
        tag, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + length]
        if len(body) != length:
            raise Refusal("zip-malformed", f"member {name[:80]!r} has a truncated extra field")
        if tag == _ZIP64_EXTRA:
            if found is not None:
                raise Refusal("zip-zip64-mismatch", f"member {name[:80]!r} has two zip64 fields")
            found = body
        pos += 4 + length
    values = [usize, csize, offset]
    needed = [v == _U32 for v in values]
    if not any(needed):
        return usize, csize, offset
    if found is None or len(found) < 8 * sum(needed):
        raise Refusal("zip-zip64-mismatch", f"member {name[:80]!r} lacks its zip64 sizes")
    at = 0
    for i, need in enumerate(needed):
        if need:
            (values[i],) = struct.unpack_from("<Q", found, at)
            at += 8
    return values[0], values[1], values[2]
