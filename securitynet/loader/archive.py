"""Release archives (imgclsmob's ``<name>-<err>-<sha1>.pth.zip``): the one file inside, safely.

Nothing is written under a name taken from the archive (so no path can escape), exactly one
regular file member is accepted, its declared size is bounded, the bytes written are
capped at that declared size while streaming (a deflate bomb cannot grow past it), and the
CRC is checked by :mod:`zipfile` when the member has been read to the end.
"""

from __future__ import annotations

import hashlib
import logging
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from securitynet.errors import UnsafeCheckpointError

log = logging.getLogger(__name__)

#: Largest member we extract (bytes). The biggest imgclsmob asset is well under 1 GiB.
MAX_MEMBER_SIZE = 4 * 1024**3
#: A member this many times larger than its compressed size is treated as a bomb
#: (tensors compress poorly; real checkpoints stay far below 10x).
MAX_RATIO = 200
#: Extensions the single member may have.
MEMBER_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


@dataclass(frozen=True)
class ExtractedMember:
    name: str
    size: int
    digests: dict[str, str]


def extract_single_member(
    archive: Path,
    dest: Path,
    *,
    algos: tuple[str, ...] = ("sha256",),
    max_size: int = MAX_MEMBER_SIZE,
    label: str | None = None,
) -> ExtractedMember:
    """Write the one file in ``archive`` to ``dest`` and return its name, size and digests.
    ``label`` names the archive in errors (default: its file name)."""

    def refuse(reason: str) -> UnsafeCheckpointError:
        dest.unlink(missing_ok=True)
        return UnsafeCheckpointError(
            f"archive {label or archive.name}: {reason}", path=str(archive), reason=reason
        )

    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise refuse(f"not a readable zip archive ({exc})") from exc
    with zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise refuse("duplicate member names")
        files = [i for i in infos if not i.is_dir()]
        if len(files) != 1:
            raise refuse(f"expected exactly one file, found {len(files)}")
        info = files[0]
        name = info.filename
        mode = info.external_attr >> 16
        base = name.rsplit("/", 1)[-1]
        if name.startswith("/") or "\\" in name or "\x00" in name or ".." in name.split("/"):
            raise refuse(f"member name {name!r} is not a plain relative file name")
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # a symlink, device, ...
            raise refuse(f"member {name!r} is not a regular file")
        if not base.endswith(MEMBER_SUFFIXES):
            raise refuse(f"member {name!r} is not a checkpoint file ({', '.join(MEMBER_SUFFIXES)})")
        if info.flag_bits & 0x1:
            raise refuse("member is encrypted")
        if info.file_size > max_size:
            raise refuse(f"member declares {info.file_size} bytes, more than the limit {max_size}")
        if info.compress_size and info.file_size > MAX_RATIO * info.compress_size and info.file_size > 1024**2:
            raise refuse(f"member expands {info.file_size // max(info.compress_size, 1)}x (a zip bomb?)")
        hashers = {a: hashlib.new(a) for a in algos}
        written = 0
        try:
            with zf.open(info) as src, open(dest, "wb") as out:
                while True:
                    chunk = src.read(1024 * 1024)
                    if not chunk:
                        break
                    written += len(chunk)
                    if written > info.file_size:
                        raise refuse("member is longer than its declared size")
                    out.write(chunk)
                    for h in hashers.values():
                        h.update(chunk)
        except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, OSError) as exc:
            raise refuse(f"member {name!r} cannot be read ({exc})") from exc
        if written != info.file_size:
            raise refuse(f"member {name!r} has {written} bytes, declares {info.file_size}")
    log.debug("extracted %s (%d bytes) from %s", name, written, archive.name)
    return ExtractedMember(name, written, {a: h.hexdigest() for a, h in hashers.items()})
