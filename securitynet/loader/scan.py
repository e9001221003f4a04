"""Verdicts on checkpoint files: ``safe``, ``refused`` (with a reason) or ``not a checkpoint``.

    >>> verdicts = scan_paths(["downloads/"], workers=2)
    >>> [(v.path, v.verdict, v.reason) for v in verdicts]

Each file is read by :func:`securitynet.loader.safe.read_checkpoint` in an isolated worker
process (:mod:`securitynet.loader.isolate`), with a time and a memory limit per file, so a
file that crashes the reader, runs forever or swells past its memory budget is one refused
verdict (``worker-crashed``, ``time-limit``, ``memory-limit``; ``reader-error`` for an
exception the reader let through) and every other file still
gets its own. Nothing here imports torch: only the workers do, once each.

A file that is no container we know and does not parse as a pickle (a README, a
``PROVENANCE.md`` beside the weights) is ``not a checkpoint``: reported, but not a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from securitynet.errors import LoaderError, UnsafeCheckpointError
from securitynet.loader import isolate
from securitynet.loader._sniff import NOT_A_CHECKPOINT

__all__ = [
    "NOT_A_CHECKPOINT",
    "ScanVerdict",
    "default_limits",
    "iter_scan",
    "iter_scan_targets",
    "scan_file",
    "scan_paths",
]

#: Reason codes of files the scan could not finish, by the pool's failure names.
LIMIT_REASONS = {
    isolate.CRASHED: "worker-crashed",
    isolate.TIME_LIMIT: "time-limit",
    isolate.MEMORY_LIMIT: "memory-limit",
    isolate.ERROR: "reader-error",  # an exception read_checkpoint should have typed
}

_UNKNOWN_FORMAT = "unknown"
_MIB = 1024 * 1024


@dataclass(frozen=True)
class ScanVerdict:
    """One file's verdict: ``safe`` (readable, with what it holds) or refused with a reason;
    a refusal whose reason is ``not-a-checkpoint`` is the third verdict, ``not a checkpoint``."""

    path: str
    safe: bool
    format: str
    reason: str | None = None  # stable code, e.g. "zip-bad-crc", "time-limit"
    detail: str | None = None  # one sentence for people
    tensors: int = 0
    parameters: int = 0
    wrapper_key: str | None = None

    @property
    def verdict(self) -> str:
        if self.safe:
            return "safe"
        return "not a checkpoint" if self.reason == NOT_A_CHECKPOINT else "refused"

    @property
    def refused(self) -> bool:
        """A refusal proper (a failure for ``scan``'s exit status)."""
        return self.verdict == "refused"

    def as_dict(self) -> dict[str, Any]:
        fields = asdict(self)
        return {"path": fields.pop("path"), "verdict": self.verdict, **fields}


def scan_file(path: str | os.PathLike[str], *, allow_legacy: bool = False) -> ScanVerdict:
    """Read ``path`` with :func:`read_checkpoint` in this process and report, never raising
    for a bad file (a file that crashes the reader still crashes this process: see
    :func:`scan_paths`)."""
    from securitynet.loader.safe import read_checkpoint

    try:
        ckpt = read_checkpoint(path, allow_legacy=allow_legacy)
    except UnsafeCheckpointError as exc:
        return ScanVerdict(
            path=str(path),
            safe=False,
            format=str(exc.fields.get("format", _UNKNOWN_FORMAT)),
            reason=str(exc.fields.get("reason", "refused")),
            detail=str(exc.fields.get("detail", exc.message)),
        )
    except LoaderError as exc:
        return ScanVerdict(
            path=str(path),
            safe=False,
            format=_UNKNOWN_FORMAT,
            reason="unreadable",
            detail=exc.message,
        )
    return ScanVerdict(
        path=str(path),
        safe=True,
        format=ckpt.format,
        tensors=len(ckpt.tensors),
        parameters=sum(t.numel() for t in ckpt.tensors.values()),
        wrapper_key=ckpt.wrapper_key,
    )


def scan_task(item: tuple[str, bool]) -> ScanVerdict:
    """The isolated workers' task: ``(path, allow_legacy)`` -> verdict."""
    path, allow_legacy = item
    return scan_file(path, allow_legacy=allow_legacy)


def warm_up(_: object) -> None:
    """Import what reading a checkpoint needs, so it counts in a worker's baseline memory."""
    import safetensors.torch  # noqa: F401

    import securitynet.loader.safe  # noqa: F401


def iter_scan_targets(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Files named, and every regular file under folders named (recursively, sorted; links
    inside folders are skipped, a link named on its own is followed)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            # os.walk does not follow symlinked folders (no loops, no escaping the tree).
            for folder, dirs, files in os.walk(path, followlinks=False):
                dirs.sort()
                for name in sorted(files):
                    child = Path(folder) / name
                    if child.is_file() and not child.is_symlink():
                        yield child
        else:
            yield path


def default_limits(
    path: str | os.PathLike[str], *, seconds: float | None = None, memory: int | None = None
) -> isolate.Limits:
    """The limits for reading ``path``: ``seconds`` and ``memory`` where given, else what a
    genuine checkpoint of its size needs with room to spare (60 s plus 1 s per 10 MiB;
    1 GiB plus three times its size, for the tensors, a copy and the reader)."""
    try:
        size = os.stat(path).st_size
    except OSError:
        size = 0
    return isolate.Limits(
        seconds=seconds if seconds is not None else 60.0 + size / (10 * _MIB),
        memory=memory if memory is not None else 1024 * _MIB + 3 * size,
    )


def iter_scan(
    targets: Iterable[str | os.PathLike[str]],
    *,
    allow_legacy: bool = False,
    workers: int | None = None,
    seconds: float | None = None,
    memory: int | None = None,
) -> Iterator[tuple[int, ScanVerdict]]:
    """``(position in targets, verdict)`` for each file, in the order the workers finish.

    ``seconds`` and ``memory`` (bytes) bound each file; default: :func:`default_limits`.
    ``workers``: processes reading at once (default: up to 2, fewer than the CPUs).
    """
    items = [(str(t), allow_legacy) for t in targets]
    n = workers if workers is not None else max(1, min(2, (os.cpu_count() or 2) - 1))
    pool = isolate.IsolatedPool(f"{__name__}:scan_task", workers=n, warm_up=f"{__name__}:warm_up")
    for outcome in pool.map(
        items, limits=lambda item: default_limits(item[0], seconds=seconds, memory=memory)
    ):
        path = items[outcome.index][0]
        if outcome.ok:
            yield outcome.index, outcome.value
        else:
            failure = outcome.failure or isolate.CRASHED
            yield (
                outcome.index,
                ScanVerdict(
                    path=path,
                    safe=False,
                    format=_UNKNOWN_FORMAT,
                    reason=LIMIT_REASONS.get(failure, failure),
                    detail=outcome.detail,
                ),
            )


def scan_paths(
    paths: Iterable[str | os.PathLike[str]],
    *,
    allow_legacy: bool = False,
    workers: int | None = None,
    seconds: float | None = None,
    memory: int | None = None,
) -> list[ScanVerdict]:
    """A verdict for every file in ``paths`` (folders walked recursively), in their order."""
    targets = list(iter_scan_targets(paths))
    found = dict(
        iter_scan(
            targets, allow_legacy=allow_legacy, workers=workers, seconds=seconds, memory=memory
        )
    )
    return [found[i] for i in range(len(targets))]
