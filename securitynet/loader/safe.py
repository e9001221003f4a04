"""The safe checkpoint reader: untrusted file in, ``name -> tensor`` out, or a typed refusal.

    >>> ckpt = read_checkpoint("downloaded/model.pt")
    >>> ckpt["conv1.weight"].shape, ckpt.format, ckpt.wrapper_key, ckpt.metadata
    >>> net.load_state_dict(ckpt)

Nothing in a checkpoint is ever executed, and no library parses the untrusted file: one
parser of ours reads each format, the checks run on what it read, and the returned tensors
are built from exactly the bytes that were checked. The format is decided by content,
never by the file name.

* **safetensors**: header length bound, JSON with unique keys, names, dtypes, dimensions,
  offsets in bounds, sized by shape, non-overlapping and covering the buffer; a file whose
  bytes also parse as a pickle or a zip (a polyglot) is refused. The tensors are read from
  the same open file, right after the header that was checked.
* **PyTorch zip** (``torch.save`` since 1.6): our own strict zip parser (:mod:`_zipdir`,
  :mod:`_zipcheck`; a zip two parsers could read differently is refused), a pure opcode
  scan of ``data.pkl`` (:mod:`_opscan`: size and nesting bound before anything is built),
  our allowlist unpickler that only describes tensors (:mod:`_picklecheck`), every record's
  CRC, then the tensors are made from the verified records (:mod:`_build`).
* **PyTorch legacy** (pre-1.6 pickle stream): refused unless ``allow_legacy=True``; then the
  same scan and dry run over every pickle in the stream, the storage layout, and the same
  building from the storage bytes that were walked.

Everything else (raw pickles whatever their name, TorchScript, 7z, tar, garbage) is refused
with :class:`~securitynet.errors.UnsafeCheckpointError`, whose ``reason`` is a stable code;
``not-a-checkpoint`` when no container signature matches and the bytes are no pickle either.
No file content makes :func:`read_checkpoint` raise anything else (I/O failures are a
:class:`~securitynet.errors.LoaderError`). The caps are listed in :data:`CAPS`.

The tensors of a zip or safetensors file are built over a private copy-on-write map of the
descriptor that was checked (no copy, no second open): replacing the file afterwards (a new
inode, as the cache publishes) leaves them as read; rewriting it in place while they are
alive is outside what a reader can defend, as with ``torch.load(mmap=True)``.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch

from securitynet.errors import LoaderError, UnsafeCheckpointError
from securitynet.loader import (
    _build,
    _opscan,
    _picklecheck,
    _sniff,
    _stcheck,
    _unwrap,
    _zipcheck,
    _zipdir,
)
from securitynet.loader._refusal import Refusal
from securitynet.loader.scan import ScanVerdict, scan_file, scan_paths

logger = logging.getLogger(__name__)

__all__ = [
    "CAPS",
    "Checkpoint",
    "ScanVerdict",
    "read_checkpoint",
    "save_safetensors",
    "scan_file",
    "scan_paths",
    "sniff_format",
]

#: Every bound the reader enforces, by name (documented in the README).
CAPS: dict[str, int] = {
    "data_pkl_bytes": _zipcheck.MAX_DATA_PKL,
    "legacy_pickle_bytes": _picklecheck.MAX_PICKLE,
    "pickle_depth": _opscan.MAX_DEPTH,
    "tensors": _picklecheck.MAX_TENSORS,
    "tensor_dims": _picklecheck.MAX_DIMS,
    "zip_members": _zipdir.MAX_MEMBERS,
    "deflate_ratio": _zipcheck.MAX_DEFLATE_RATIO,
    "safetensors_header_bytes": _stcheck.MAX_HEADER,
    "safetensors_tensors": _stcheck.MAX_TENSORS,
}


class Checkpoint(dict[str, torch.Tensor]):
    """What a checkpoint file held, reduced to data: a dict of names to plain CPU tensors.

    The tensors were unwrapped from ``state_dict`` / ``model_state_dict`` / ``model`` /
    ``net`` / ``module`` if the file wrapped them (name prefixes such as ``module.`` are kept
    as found; ``notes`` says so), so ``net.load_state_dict(ckpt)`` works. ``metadata`` holds
    the plain values found beside the tensors (numbers, strings, lists and dicts of them).
    Views are kept as the file holds them (shared storages, transposes, offsets), each inside
    its storage.
    """

    __slots__ = ("format", "metadata", "notes", "wrapper_key")

    def __init__(
        self,
        tensors: Mapping[str, torch.Tensor],
        *,
        metadata: dict[str, Any],
        format: str,
        wrapper_key: str | None,
        notes: tuple[str, ...] = (),
    ) -> None:
        super().__init__(tensors)
        self.metadata = metadata
        self.format = format
        self.wrapper_key = wrapper_key
        self.notes = notes

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        """The mapping itself (kept for code written against the earlier record)."""
        return self

    def __repr__(self) -> str:
        return (
            f"Checkpoint({len(self)} tensors, format={self.format!r}, "
            f"wrapper_key={self.wrapper_key!r}, metadata keys={sorted(self.metadata)!r})"
        )


def sniff_format(path: str | os.PathLike[str]) -> str:
    """The container format of ``path`` by content: one of the names in :mod:`_sniff`.

    A zip is reported as ``pytorch-zip`` here; its members decide later whether it is a
    torch checkpoint, TorchScript or some other zip.
    """
    with open(path, "rb") as f:
        return _sniff.sniff_file(f, size=os.fstat(f.fileno()).st_size)


def read_checkpoint(
    path: str | os.PathLike[str],
    *,
    allow_legacy: bool = False,
    key: str | None = None,
) -> Checkpoint:
    """Read an untrusted checkpoint file into tensors and plain metadata.

    ``key`` names the entry holding the tensors when the automatic unwrapping cannot tell
    (or to pick e.g. ``"state_dict_ema"``). ``allow_legacy`` admits pre-1.6 pickle-stream
    checkpoints, still only through the opcode scan, the allowlist dry run and our builder.
    Raises :class:`UnsafeCheckpointError` (with ``reason``, ``path``, ``format``) for any
    file content, :class:`LoaderError` when the file cannot be read.
    """
    path = Path(path)
    fmt = _sniff.UNKNOWN
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or a device would block or never end
            raise LoaderError(f"{path}: not a regular file", path=str(path))
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            fmt = _sniff.sniff_file(f, size=size)
            logger.debug("%s: sniffed %s (%d bytes)", path, fmt, size)
            if fmt == _sniff.SAFETENSORS:
                result = _read_safetensors(f, size=size, key=key)
            else:
                result = _unwrap.unwrap(
                    _read_pickled(f, size=size, fmt=fmt, allow_legacy=allow_legacy), key=key
                )
    except Refusal as refusal:
        raise _unsafe(path, refusal.format or fmt, refusal) from refusal
    except OSError as exc:
        raise LoaderError(f"{path}: cannot read: {exc.strerror or exc}", path=str(path)) from exc
    except (MemoryError, RecursionError) as exc:
        exhausted = Refusal("resource-exhausted", f"reading it ran out of {type(exc).__name__}")
        raise _unsafe(path, fmt, exhausted) from exc
    except LoaderError:
        raise
    except Exception as exc:  # a check that failed in a way we did not foresee: still a refusal
        logger.warning("%s: unexpected %s while checking it", path, type(exc).__name__, exc_info=True)
        failed = Refusal("check-failed", f"a check failed unexpectedly ({type(exc).__name__})")
        raise _unsafe(path, fmt, failed) from exc
    return Checkpoint(
        result.tensors,
        metadata=result.metadata,
        format=fmt,
        wrapper_key=result.wrapper_key,
        notes=result.notes,
    )


def _unsafe(path: Path, fmt: str, refusal: Refusal) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"{path}: refused ({fmt}): {refusal.detail}",
        hint=refusal.hint,
        reason=refusal.code,
        detail=refusal.detail,
        path=str(path),
        format=fmt,
    )


def _read_pickled(f: BinaryIO, *, size: int, fmt: str, allow_legacy: bool) -> object:
    """Check the torch checkpoint ``f`` and return what it holds, built from checked bytes."""
    if fmt == _sniff.PYTORCH_ZIP:
        return _read_torch_zip(f, size=size)
    if fmt == _sniff.PYTORCH_LEGACY:
        if not allow_legacy:
            raise Refusal(
                "legacy-refused",
                "a legacy (pre-1.6, non-zip) torch pickle",
                hint="Legacy checkpoints are read only on request: allow_legacy=True "
                "(securitynet scan --allow-legacy); they still go through the restricted path.",
            )
        return _read_torch_legacy(f, size=size)
    if fmt in (_sniff.UNKNOWN, _sniff.PICKLE, _sniff.EMPTY):
        if not _is_pickle(f, size=size):
            raise Refusal(
                "not-a-checkpoint",
                "no checkpoint container signature matches and the bytes are no pickle",
                format=_sniff.UNKNOWN,
            )
        fmt = _sniff.PICKLE
        raise Refusal("format-pickle", _REFUSED_FORMATS[fmt], format=fmt)
    raise Refusal(
        f"format-{fmt}",
        _REFUSED_FORMATS.get(fmt, f"a {fmt} file is not a checkpoint format we read"),
    )


def _is_pickle(f: BinaryIO, *, size: int) -> bool:
    f.seek(0)
    head = f.read(_picklecheck.MAX_PICKLE)
    return _opscan.is_pickle(head, limit_reached=len(head) < size)


_REFUSED_FORMATS = {
    _sniff.PICKLE: "a raw pickle (not a torch checkpoint container); pickles can run code when read",
    _sniff.PYTORCH_LEGACY_TAR: "a pre-0.4 torch tar checkpoint (or a pickle/tar polyglot)",
    _sniff.SEVEN_ZIP: "a 7z archive, not a checkpoint",
    _sniff.TAR: "a tar archive, not a checkpoint",
}


def _read_safetensors(f: BinaryIO, *, size: int, key: str | None) -> _unwrap.Unwrapped:
    header = _stcheck.check_header(f, size=size)
    _stcheck.check_not_polyglot(f, size=size)
    tensors = _stcheck.read_tensors(f, header, _zipcheck.map_private(f))
    metadata: dict[str, Any] = dict(header.metadata)
    wrapper_key: str | None = None
    ours = metadata.pop(_META_KEY, None)
    if ours is not None:
        try:
            recorded = json.loads(ours)
            metadata = {**metadata, **recorded["metadata"]}
            wrapper_key = recorded["wrapper_key"]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, RecursionError) as exc:
            raise Refusal("safetensors-header-invalid", f"{_META_KEY} is malformed: {exc}") from exc
        if not isinstance(wrapper_key, (str, type(None))) or not isinstance(
            recorded["metadata"], dict
        ):
            raise Refusal("safetensors-header-invalid", f"{_META_KEY} is malformed")
    if key is not None and key != wrapper_key:
        raise Refusal("key-not-found", f"a safetensors file is flat; it has no key {key!r}")
    notes = (
        ("tensor names carry a 'module.' prefix (saved from DataParallel)",)
        if any(n.startswith("module.") for n in tensors)
        else ()
    )
    return _unwrap.Unwrapped(
        tensors=tensors, metadata=metadata, wrapper_key=wrapper_key, notes=notes
    )


def _read_torch_zip(f: BinaryIO, *, size: int) -> object:
    """Check a torch zip (container, records, data.pkl), then build what it holds."""
    layout = _zipcheck.check_zip(f, size=size, verify_storages=False)
    described, refs = _picklecheck.check_zip_pickle(
        layout.data_pkl, {key: record.size for key, record in layout.storages.items()}
    )
    # Each record is read once, its CRC checked on the very bytes the tensors are built over
    # (mapped copy-on-write from the descriptor we checked: no second open, no copy).
    mapped = _zipcheck.map_private(f)
    buffers = {key: _zipcheck.read_record(f, layout.storages[key], mapped) for key in refs}
    storages = _build.storages_from(buffers, refs, obj=described, byteorder=layout.byteorder)
    return _build.materialize(described, storages)


def _read_torch_legacy(f: BinaryIO, *, size: int) -> object:
    stream = _picklecheck.check_legacy_stream(f, size=size)
    buffers: dict[str, torch.Tensor] = {}
    for key, ref in stream.storages.items():
        buf = bytearray(ref.nbytes)
        f.seek(stream.offsets[key])
        if f.readinto(buf) != ref.nbytes:  # type: ignore[attr-defined]
            raise Refusal("storage-exceeds-record", f"storage {key!r} is truncated")
        buffers[key] = torch.frombuffer(buf, dtype=torch.uint8) if buf else torch.empty(0, dtype=torch.uint8)
    storages = _build.storages_from(buffers, stream.storages, obj=stream.obj, byteorder="little")
    return _build.materialize(stream.obj, storages)


# --- conversion -----------------------------------------------------------------------------


def save_safetensors(checkpoint: Checkpoint, path: str | os.PathLike[str]) -> Path:
    """Write ``checkpoint`` as one safetensors file (atomically); return its path.

    Tensors sharing memory (tied weights) and non-contiguous views are copied into their
    own contiguous buffers, as safetensors requires. The metadata, source format and wrapper
    key travel in the header (``securitynet.checkpoint``) and come back on reading.
    """
    import safetensors.torch

    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[str, int]] = set()
    for name, tensor in checkpoint.items():
        t = tensor.detach().to("cpu")
        storage = t.untyped_storage()
        ident = (str(t.device), storage.data_ptr())
        if not t.is_contiguous() or ident in seen or storage.nbytes() != t.nbytes:
            t = t.contiguous().clone()
        else:
            seen.add(ident)
        out[name] = t
    header = {
        _META_KEY: json.dumps(
            {
                "metadata": checkpoint.metadata,
                "format": checkpoint.format,
                "wrapper_key": checkpoint.wrapper_key,
            },
            sort_keys=True,
        )
    }
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        safetensors.torch.save_file(out, str(tmp), metadata=header)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


_META_KEY = "securitynet.checkpoint"
