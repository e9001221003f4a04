"""The safe checkpoint reader: untrusted file in, ``name -> tensor`` out, or a typed refusal.

    >>> ckpt = read_checkpoint("downloaded/model.pt")
    >>> ckpt.tensors["conv1.weight"].shape, ckpt.format, ckpt.wrapper_key, ckpt.metadata

Nothing in a checkpoint is ever executed. The format is decided by content, never by the
file name. Each format is checked by us before a library parses it:

* **safetensors**: header length bound, JSON with unique keys, names, dtypes, offsets in
  bounds, sized by shape, non-overlapping and covering the buffer; then ``safetensors``.
* **PyTorch zip** (``torch.save`` since 1.6): the zip structure (local vs central records,
  duplicates, sizes, CRCs, compression ratio, the torch record layout, no TorchScript), then
  ``data.pkl`` is run through our own allowlist unpickler that builds nothing (it only
  describes tensors and storages, so each storage is checked against its record), then
  ``torch.load(weights_only=True)`` passed explicitly materialises the tensors.
* **PyTorch legacy** (pre-1.6 pickle stream): refused unless ``allow_legacy=True``; then the
  same allowlist dry run over every pickle in the stream and the storage layout, then
  ``torch.load(weights_only=True)``.

Everything else (raw pickles whatever their name, TorchScript, 7z, tar, garbage) is refused
with :class:`~securitynet.errors.UnsafeCheckpointError`, whose ``reason`` is a stable code.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import stat
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch

from securitynet.errors import LoaderError, UnsafeCheckpointError
from securitynet.loader import _picklecheck, _sniff, _stcheck, _torchguard, _unwrap, _zipcheck
from securitynet.loader._refusal import Refusal
from securitynet.loader.scan import ScanVerdict, scan_file, scan_paths

logger = logging.getLogger(__name__)

__all__ = [
    "Checkpoint",
    "ScanVerdict",
    "read_checkpoint",
    "save_safetensors",
    "scan_file",
    "scan_paths",
    "sniff_format",
]


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint file held, reduced to data.

    ``tensors`` maps flat names to dense CPU tensors, unwrapped from ``state_dict`` /
    ``model_state_dict`` / ``model`` / ``net`` / ``module`` if the file wrapped them (name
    prefixes such as ``module.`` are kept as found; ``notes`` says so). ``metadata`` holds
    the plain values found beside the tensors (numbers, strings, lists and dicts of them).
    """

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, Any]
    format: str
    wrapper_key: str | None
    notes: tuple[str, ...] = field(default=())


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
    checkpoints, still only through the allowlist dry run and the weights-only unpickler.
    Raises :class:`UnsafeCheckpointError` (with ``reason``, ``path``, ``format``).
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
                result = _read_safetensors(f, path, size=size, key=key)
            else:
                result = _unwrap.unwrap(
                    _read_pickled(f, size=size, fmt=fmt, allow_legacy=allow_legacy), key=key
                )
    except Refusal as refusal:
        raise _unsafe(path, refusal.format or fmt, refusal) from refusal
    except OSError as exc:
        raise LoaderError(f"{path}: cannot read: {exc.strerror or exc}", path=str(path)) from exc
    return Checkpoint(
        tensors=result.tensors,
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
    """Check the torch checkpoint ``f`` and return what the weights-only unpickler built."""
    if fmt == _sniff.PYTORCH_ZIP:
        return _read_torch(f, size=size, legacy=False)
    if fmt == _sniff.PYTORCH_LEGACY:
        if not allow_legacy:
            raise Refusal(
                "legacy-refused",
                "a legacy (pre-1.6, non-zip) torch pickle",
                hint="Legacy checkpoints are read only on request: allow_legacy=True "
                "(securitynet scan --allow-legacy); they still go through the restricted path.",
            )
        return _read_torch(f, size=size, legacy=True)
    if fmt in (_sniff.UNKNOWN, _sniff.PICKLE) and not _sniff.may_be_pickle(f, size=size):
        raise Refusal(
            _sniff.NOT_A_CHECKPOINT,
            "no checkpoint: no container format we know, and not a pickle",
            format=_sniff.UNKNOWN,
        )
    raise Refusal(
        f"format-{fmt}",
        _REFUSED_FORMATS.get(fmt, f"a {fmt} file is not a checkpoint format we read"),
    )


_REFUSED_FORMATS = {
    _sniff.PICKLE: "a raw pickle (not a torch checkpoint container); pickles can run code when read",
    _sniff.PYTORCH_LEGACY_TAR: "a pre-0.4 torch tar checkpoint (or a pickle/tar polyglot)",
    _sniff.SEVEN_ZIP: "a 7z archive, not a checkpoint",
    _sniff.TAR: "a tar archive, not a checkpoint",
    _sniff.EMPTY: "the file is empty",
    _sniff.UNKNOWN: "not a format we recognise (neither safetensors nor a torch zip)",
}


def _read_safetensors(f: BinaryIO, path: Path, *, size: int, key: str | None) -> _unwrap.Unwrapped:
    import safetensors.torch

    header = _stcheck.check_header(f, size=size)
    try:
        tensors = safetensors.torch.load_file(path, device="cpu")
    except Exception as exc:  # safetensors raises its own SafetensorError and others
        raise Refusal("safetensors-unreadable", f"safetensors could not read it: {exc}") from exc
    # load_file opened the path again: make sure it read the file we checked.
    if set(tensors) != set(header.tensors) or any(
        tuple(tensors[n].shape) != shape for n, (_, shape, _, _) in header.tensors.items()
    ):
        raise Refusal("safetensors-changed", "the file changed while it was being read")
    metadata: dict[str, Any] = dict(header.metadata)
    wrapper_key: str | None = None
    ours = metadata.pop(_META_KEY, None)
    if ours is not None:
        try:
            recorded = json.loads(ours)
            metadata = {**metadata, **recorded["metadata"]}
            wrapper_key = recorded["wrapper_key"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
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


def _read_torch(f: BinaryIO, *, size: int, legacy: bool) -> object:
    """Check a torch checkpoint (container, dry run of its pickle), then let torch read it."""
    _torchguard.require_safe_torch()
    if legacy:
        described = _picklecheck.check_legacy_stream(f, size=size)
        return _torch_load(f, described, crc_check=None)
    layout = _zipcheck.check_zip(f, size=size, verify_storages=False)
    described, _ = _picklecheck.check_zip_pickle(
        layout.data_pkl, {key: record.size for key, record in layout.storages.items()}
    )
    # The tensor records' CRCs (plain bytes, most of the file) are checked beside torch's read
    # rather than before it: everything torch *interprets* (the zip structure, data.pkl) is
    # already verified, and a bad CRC still refuses the whole checkpoint.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="securitynet-crc") as pool:
        crc_check = pool.submit(_zipcheck.verify_records, f, list(layout.storages.values()))
        return _torch_load(f, described, crc_check=crc_check)


def _torch_load(f: BinaryIO, described: object, *, crc_check: Future[None] | None) -> object:
    f.seek(0)
    try:
        # weights_only=True always passed explicitly: TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD only
        # overrides calls that leave it unset. The same open file torch reads is the one we
        # checked, so swapping the path in between changes nothing.
        loaded = torch.load(f, map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError as exc:
        raise Refusal("weights-only-refused", _weights_only_detail(str(exc))) from exc
    except (RuntimeError, ValueError, EOFError, KeyError, TypeError, OSError) as exc:
        raise Refusal(
            "torch-unreadable", f"torch could not read it: {_first_line(str(exc))}"
        ) from exc
    finally:
        if crc_check is not None:
            crc_check.result()  # raises the Refusal of a bad CRC, after torch is done
    _same_tensors(described, loaded)
    return loaded


def _same_tensors(described: object, loaded: object) -> None:
    """torch must have built exactly the tensors our dry run described (no parser differential)."""
    want = [(ref.size, ref.dtype) for ref in _picklecheck.iter_tensor_refs(described)]
    got = [(tuple(t.shape), t.dtype) for t in _iter_tensors(loaded)]
    if want != got:
        raise Refusal(
            "parser-differential",
            f"torch read {len(got)} tensors where the checked pickle describes {len(want)}, or they differ",
        )


def _iter_tensors(obj: object, depth: int = 0) -> Iterator[torch.Tensor]:
    if depth > 64:
        return
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _iter_tensors(value, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _iter_tensors(value, depth + 1)


def _weights_only_detail(message: str) -> str:
    """What torch's weights-only unpickler refused, without its advice to set weights_only=False."""
    boilerplate = (
        "weights only load failed",
        "weights_only",
        "check the documentation",
        "please file an issue",
    )
    facts = [
        re.sub(r"^.*WeightsUnpickler error:\s*", "", line).strip()
        for line in message.splitlines()
        if line.strip() and not any(b in line.lower() for b in boilerplate)
    ]
    return "torch's weights-only unpickler refused it" + (f": {facts[0]}" if facts else "")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "(no message)"


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
    for name, tensor in checkpoint.tensors.items():
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
