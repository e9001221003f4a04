"""Check a torch zip checkpoint's container before torch's own zip reader sees it.

torch's reader (miniz) and Python's :mod:`zipfile` are different parsers; a zip crafted so
that they disagree (a local header naming another file than the central directory, two
members of the same name, overlapping members, data hidden between them) is how a checker
and a loader end up looking at different bytes. So we require a zip that both would read
the same way, and the layout ``torch.save`` writes:

``<prefix>/data.pkl``, ``<prefix>/data/<n>``, ``<prefix>/version``, ``<prefix>/byteorder``,
``<prefix>/.format_version``, ``<prefix>/.storage_alignment``, ``<prefix>/.data/version``,
``<prefix>/.data/serialization_id`` and nothing else. ``code/`` or ``constants.pkl`` means
TorchScript, refused: loading it runs the archive's code.

Every member's CRC is verified (torch does not check them). Members may be stored (what
``torch.save`` writes) or deflated (a checkpoint re-zipped by hand); a deflated member is
inflated under a cap so a deflate bomb is refused, never expanded.
"""

from __future__ import annotations

import mmap
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from securitynet.loader import _sniff
from securitynet.loader._refusal import Refusal

MAX_MEMBERS = 1_000_000
MAX_DATA_PKL = 512 * 2**20
MAX_SMALL_RECORD = 64
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
    def of(cls, info: zipfile.ZipInfo, data_offset: int) -> ZipRecord:
        return cls(
            name=info.filename,
            data_offset=data_offset,
            size=info.file_size,
            compressed_size=info.compress_size,
            deflated=info.compress_type == zipfile.ZIP_DEFLATED,
            crc=info.CRC,
        )


@dataclass(frozen=True)
class ZipLayout:
    prefix: str
    data_pkl: bytes
    storages: dict[str, ZipRecord]  # storage key -> its data record
    byteorder: str
    all_stored: bool


def check_zip(f: BinaryIO, *, size: int, verify_storages: bool = True) -> ZipLayout:
    """Validate the zip ``f`` of ``size`` bytes as a torch checkpoint; raise Refusal.

    With ``verify_storages=False`` the CRCs of the ``data/<n>`` records (the bulk of the
    file, plain tensor bytes) are left to :func:`verify_records`, so a caller can run them
    beside torch's read; every other check, data.pkl's CRC included, is done here.
    """
    f.seek(0)
    try:
        zf = zipfile.ZipFile(f)
        infos = zf.infolist()
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,
        ValueError,
        EOFError,
    ) as exc:
        raise Refusal("zip-malformed", f"not a readable zip: {exc}") from exc
    if not infos:
        raise Refusal("zip-empty", "the zip has no members", format=_sniff.ZIP)
    if len(infos) > MAX_MEMBERS:
        raise Refusal("zip-too-many-members", f"{len(infos)} members (limit {MAX_MEMBERS})")

    central_dir_start = _central_dir_start(zf, infos, size)
    names = [info.filename for info in infos]
    _check_names(names)
    spans = [_check_member(f, info, central_dir_start) for info in infos]
    _check_tiling(spans, names, central_dir_start)

    prefix = names[0].split("/", 1)[0]
    relative: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        head, sep, rest = info.filename.partition("/")
        if not sep or head != prefix or not rest:
            raise Refusal(
                "zip-unexpected-record",
                f"member {info.filename!r} is outside the archive folder {prefix + '/'!r}",
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

    records = {
        info.filename: ZipRecord.of(info, span[2]) for info, span in zip(infos, spans, strict=True)
    }
    for record in records.values():
        _check_ratio(record)
    storages: dict[str, ZipRecord] = {}
    small: dict[str, ZipRecord] = {}
    for rest, info in relative.items():
        match = _DATA_RECORD.fullmatch(rest)
        if match:
            storages[match.group(1)] = records[info.filename]
        elif rest in _SMALL_RECORDS or rest == "data.pkl":
            limit = MAX_DATA_PKL if rest == "data.pkl" else MAX_SMALL_RECORD
            if info.file_size > limit:
                raise Refusal(
                    "zip-record-too-large", f"record {rest!r} is {info.file_size} bytes long"
                )
            small[rest] = records[info.filename]
        else:
            raise Refusal("zip-unexpected-record", f"unexpected record {info.filename!r}")

    # Every CRC, with bounded reads and bounded inflation.
    contents = {rest: verify_record(f, record, keep=True) for rest, record in small.items()}
    if verify_storages:
        verify_records(f, storages.values())
    byteorder = contents.get("byteorder", b"little").decode("ascii", "replace")
    if byteorder not in ("little", "big"):
        raise Refusal("zip-bad-record", f"byteorder record says {byteorder!r}")
    version = contents.get("version", b"3").strip()
    if not version.isdigit():
        raise Refusal("zip-bad-record", f"version record says {version[:16]!r}")
    return ZipLayout(
        prefix=prefix,
        data_pkl=contents["data.pkl"],
        storages=storages,
        byteorder=byteorder,
        all_stored=all(info.compress_type == zipfile.ZIP_STORED for info in infos),
    )


def verify_records(f: BinaryIO, records: Iterable[ZipRecord]) -> None:
    """Check the CRC of each record; safe to run in a thread while another reads ``f``.

    Reads go through a private read-only map of the file, never through ``f``'s position.
    """
    try:
        fileno = f.fileno()
    except (OSError, ValueError):  # an in-memory file: read it in place, here
        for record in records:
            verify_record(f, record, keep=False)
        return
    with mmap.mmap(fileno, 0, access=mmap.ACCESS_READ) as mapped:
        for record in records:
            verify_record(mapped, record, keep=False)


def _central_dir_start(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], size: int) -> int:
    # zipfile keeps the central directory's offset (adjusted for prepended data) here.
    start = getattr(zf, "start_dir", None)
    if not isinstance(start, int) or not 0 < start <= size:
        raise Refusal("zip-malformed", "cannot locate the central directory")
    if min(info.header_offset for info in infos) != 0:
        raise Refusal("zip-malformed", "bytes before the first member")
    return start


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


def _check_member(f: BinaryIO, info: zipfile.ZipInfo, limit: int) -> tuple[int, int, int]:
    """Compare the local header with the central one; return (start, end, data offset)."""
    if info.flag_bits & _FLAG_ENCRYPTED:
        raise Refusal("zip-encrypted", f"member {info.filename!r} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise Refusal(
            "zip-compression",
            f"member {info.filename!r} uses compression method {info.compress_type}",
        )
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise Refusal(
            "zip-size-mismatch", f"stored member {info.filename!r} has two different sizes"
        )
    if info.header_offset + _LOCAL_HEADER.size > limit:
        raise Refusal("zip-out-of-bounds", f"member {info.filename!r} starts past the member area")
    f.seek(info.header_offset)
    raw = f.read(_LOCAL_HEADER.size)
    if len(raw) < _LOCAL_HEADER.size:
        raise Refusal("zip-out-of-bounds", f"member {info.filename!r} is truncated")
    (sig, _ver, flags, method, _t, _d, crc, csize, usize, name_len, extra_len) = (
        _LOCAL_HEADER.unpack(raw)
    )
    if sig != _LOCAL_SIGNATURE:
        raise Refusal("zip-malformed", f"no local header where {info.filename!r} should start")
    raw_name = f.read(name_len)
    local_name = raw_name.decode("utf-8" if flags & _FLAG_UTF8 else "cp437", "replace")
    if local_name != info.filename:
        raise Refusal(
            "zip-name-mismatch",
            f"the local header names {local_name!r} but the central directory {info.filename!r}",
        )
    if method != info.compress_type or (flags & _FLAG_ENCRYPTED):
        raise Refusal(
            "zip-header-mismatch", f"local and central headers of {info.filename!r} disagree"
        )
    if not flags & _FLAG_DESCRIPTOR:
        for local, central in (
            (crc, info.CRC),
            (csize, info.compress_size),
            (usize, info.file_size),
        ):
            if local not in (central, 0xFFFFFFFF):
                raise Refusal(
                    "zip-header-mismatch",
                    f"local and central headers of {info.filename!r} disagree",
                )
    data_offset = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
    end = data_offset + info.compress_size
    if flags & _FLAG_DESCRIPTOR:
        end = _check_descriptor(f, info, end, limit)
    if end > limit:
        raise Refusal(
            "zip-out-of-bounds",
            f"member {info.filename!r} runs past the member area ({end} > {limit})",
        )
    return info.header_offset, end, data_offset


def _check_descriptor(f: BinaryIO, info: zipfile.ZipInfo, at: int, limit: int) -> int:
    f.seek(at)
    raw = f.read(24)
    if raw[:4] == _DESCRIPTOR_SIGNATURE:
        raw, at = raw[4:], at + 4
    want = (info.CRC, info.compress_size, info.file_size)
    # The descriptor has 4-byte sizes, or 8-byte ones when the member is a zip64 one; torch
    # writes zip64 for large files, so accept whichever layout matches the central record.
    for fmt, length in (("<III", 12), ("<IQQ", 20)):
        if len(raw) >= length and at + length <= limit and struct.unpack(fmt, raw[:length]) == want:
            return at + length
    raise Refusal(
        "zip-header-mismatch",
        f"the data descriptor of {info.filename!r} disagrees with the central directory",
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
