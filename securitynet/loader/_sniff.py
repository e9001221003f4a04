"""Recognise a checkpoint's container format from its first bytes, never from its name.

A public file called ``model.pt`` may be a zip, a raw pickle, a 7z archive or anything
else; a file called ``model.safetensors`` may be a pickle. The name is attacker-chosen, so
only content decides which reader (if any) touches the file.
"""

from __future__ import annotations

import struct
import tarfile
from typing import BinaryIO

# Formats we read.
SAFETENSORS = "safetensors"
PYTORCH_ZIP = "pytorch-zip"
PYTORCH_LEGACY = "pytorch-legacy"
# Formats we recognise only to refuse them with a precise reason.
TORCHSCRIPT = "torchscript"  # decided after looking at the zip members (see _zipcheck)
PYTORCH_LEGACY_TAR = "pytorch-legacy-tar"
PICKLE = "pickle"
ZIP = "zip"  # reported by _zipcheck when a zip does not have a torch layout
SEVEN_ZIP = "7z"
GZIP = "gzip"
BZIP2 = "bzip2"
XZ = "xz"
ZSTD = "zstd"
RAR = "rar"
TAR = "tar"
NUMPY = "numpy"
HDF5 = "hdf5"
GGUF = "gguf"
EMPTY = "empty"
UNKNOWN = "unknown"

#: The reader's refusal code for bytes that are no container and no pickle (a README).
NOT_A_CHECKPOINT = "not-a-checkpoint"

READABLE_FORMATS = frozenset({SAFETENSORS, PYTORCH_ZIP, PYTORCH_LEGACY})

#: ``torch.save(..., _use_new_zipfile_serialization=False)`` opens with a protocol-2 pickle
#: of this LONG1 (``torch.serialization.MAGIC_NUMBER``).
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PREFIX = b"\x80\x02\x8a\x0a" + LEGACY_MAGIC_NUMBER.to_bytes(10, "little") + b"."

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"7z\xbc\xaf\x27\x1c", SEVEN_ZIP),
    (b"\x1f\x8b", GZIP),
    (b"BZh", BZIP2),
    (b"\xfd7zXZ\x00", XZ),
    (b"\x28\xb5\x2f\xfd", ZSTD),
    (b"Rar!\x1a\x07", RAR),
    (b"\x93NUMPY", NUMPY),
    (b"\x89HDF\r\n\x1a\n", HDF5),
    (b"GGUF", GGUF),
)

#: safetensors refuses headers above 100 MB; so do we, before reading one.
MAX_SAFETENSORS_HEADER = 100_000_000
SNIFF_BYTES = 512


def sniff_bytes(head: bytes, *, size: int) -> str:
    """The format of a file of ``size`` bytes whose first bytes are ``head``."""
    if size == 0:
        return EMPTY
    if head.startswith(b"PK\x03\x04"):
        return PYTORCH_ZIP  # the zip checks may still call it TorchScript or a plain zip
    if head.startswith(LEGACY_PREFIX):
        return PYTORCH_LEGACY
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        # A safetensors header is a JSON object right after its 8-byte length.
        if head[8:9] == b"{" and header_len >= 2:
            return SAFETENSORS
    if len(head) >= 262 and head[257:262] == b"ustar":
        return TAR
    if head[:1] == b"\x80" and len(head) >= 2 and 2 <= head[1] <= 5:
        return PICKLE
    if head[:1] in (b"(", b"c", b"]", b"}", b"I", b"S", b"V", b"N", b"F", b"L") and b"." in head:
        # Protocol 0/1 pickles have no PROTO opcode; these openers plus a STOP are enough
        # to say "looks like a pickle" in a refusal message. Nothing here is executed.
        return PICKLE
    return UNKNOWN


def sniff_file(f: BinaryIO, *, size: int) -> str:
    """Sniff an open binary file (its position is restored)."""
    position = f.tell()
    try:
        f.seek(0)
        head = f.read(SNIFF_BYTES)
        fmt = sniff_bytes(head, size=size)
        if fmt == PYTORCH_LEGACY and _is_tar(f):
            # torch's legacy reader tries tarfile first: a pickle/tar polyglot would be read
            # as the (pre-0.4) tar layout by torch while we checked it as a pickle stream.
            return PYTORCH_LEGACY_TAR
        return fmt
    finally:
        f.seek(position)


def _is_tar(f: BinaryIO) -> bool:
    f.seek(0)
    try:
        with tarfile.open(fileobj=f, mode="r:"):
            return True
    except (tarfile.TarError, OSError, ValueError, EOFError):
        return False
    finally:
        f.seek(0)
