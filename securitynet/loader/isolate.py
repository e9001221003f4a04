"""Run one function over many inputs in worker processes that no single input can take down.

    >>> pool = IsolatedPool("securitynet.loader.scan:scan_task", workers=2)
    >>> for outcome in pool.map(items, limits=lambda item: Limits(seconds=60)):
    ...     outcome.index, outcome.value, outcome.failure

Each worker is a fresh interpreter (``spawn``: nothing of the parent's state, threads or
open files leaks in) that imports the task's module once and then runs task after task,
so a folder of checkpoints costs one ``import torch`` per worker, not one per file.

A task that crashes its worker (a segfault in a C parser, ``os.abort``), runs past
its ``Limits.seconds`` or grows past its ``Limits.memory`` does not take the other inputs with it:
the worker is killed (``SIGKILL``), that input's :class:`Outcome` names the failure
(``crashed``, ``time-limit``, ``memory-limit``), and a new worker takes its place for the
inputs still waiting. Memory is bounded twice:

- **RLIMIT_DATA** in the worker, set before each task to what the worker already holds plus
  the budget: an allocation past it fails at once (``MemoryError``, or a crash of the C code
  that did not expect it), before any page is touched. ``RLIMIT_AS`` is not used: it counts
  address space that CUDA builds of torch reserve at import.
- an **RSS watchdog** in the parent, which reads ``/proc/<pid>/statm`` every
  ``IsolatedPool.poll`` seconds and kills a worker whose resident memory passed its baseline plus
  the budget (what RLIMIT_DATA does not count: file mappings, shared memory).

Both are Linux facilities; elsewhere only the time limit and crash isolation hold.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from securitynet.errors import ConfigurationError, LoaderError

log = logging.getLogger(__name__)

#: Why a task has no value: its worker died, was killed at a limit, or the task raised.
CRASHED = "crashed"
ERROR = "error"
TIME_LIMIT = "time-limit"
MEMORY_LIMIT = "memory-limit"

#: Seconds a worker may take to start (import its task's module) before the pool gives up.
START_TIMEOUT = 300.0

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class Limits:
    """What one task may use: wall-clock ``seconds`` and ``memory`` bytes above the worker's
    own baseline (the interpreter and its imports)."""

    seconds: float = 120.0
    memory: int = 2 * 1024**3

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.memory <= 0:
            raise ConfigurationError(
                "time and memory limits must be more than 0",
                seconds=self.seconds,
                memory=self.memory,
            )


@dataclass(frozen=True)
class Outcome:
    """What became of input number ``index``: its ``value``, or why it has none."""

    index: int
    value: Any = None
    failure: str | None = None  # CRASHED | TIME_LIMIT | MEMORY_LIMIT | ERROR
    detail: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure is None


def rss_bytes(pid: int) -> int | None:
    """Resident memory of process ``pid`` (Linux ``/proc``), or None where unknown."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def _data_bytes() -> int | None:
    """This process's data segment as RLIMIT_DATA counts it (``VmData``), or None."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmData:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _resolve(ref: str) -> Callable[[Any], Any]:
    module, _, name = ref.partition(":")
    fn: Callable[[Any], Any] = getattr(importlib.import_module(module), name)
    return fn


@contextlib.contextmanager
def _data_limit(budget: int) -> Iterator[None]:
    """RLIMIT_DATA at what this process holds now plus ``budget``, for the block."""
    try:
        import resource
    except ImportError:  # not POSIX: the parent's watchdog is all there is
        yield
        return
    used = _data_bytes()
    if used is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = used + budget
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def _worker_main(conn: Connection, task_ref: str, warm_up: str | None) -> None:
    """A worker's whole life: import the task, warm up, say ready, run tasks until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    task = _resolve(task_ref)
    if warm_up is not None:
        _resolve(warm_up)(None)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if message is None:
            return
        index, item, memory = message
        try:
            with _data_limit(memory):
                value = task(item)
        except MemoryError:
            conn.send(("memory", index, "an allocation failed at the memory limit"))
            return  # a MemoryError can leave the interpreter in any state: start afresh
        except Exception as exc:  # the task's own bug, not the input's doing
            conn.send(("error", index, f"{type(exc).__name__}: {exc}"))
            continue
        conn.send(("ok", index, value))


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    started: float
    ready: bool = False
    baseline: int = 0
    task: tuple[int, float, Limits] | None = None  # (index, started, limits)
    dead: bool = False  # as of the last look

    def kill(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.process.kill()
        self.process.join(5)
        with contextlib.suppress(OSError):
            self.conn.close()


@dataclass
class IsolatedPool:
    """Up to ``workers`` worker processes running ``task`` (``"module:function"``).

    ``task`` takes one picklable input and returns a picklable value; an exception it raises
    is reported as an ``error`` outcome with the exception's text (and its worker replaced).
    """

    task: str
    workers: int = 1
    #: ``"module:function"`` called once (with None) in each worker before its first task:
    #: imports and first-use costs belong to the worker's baseline, not to the first input.
    warm_up: str | None = None
    poll: float = 0.02  # seconds between two looks at the workers' memory and clocks

    def map(
        self, items: Iterable[Any], *, limits: Callable[[Any], Limits] | None = None
    ) -> Iterator[Outcome]:
        """One :class:`Outcome` per item, in the order they finish; ``limits(item)`` gives
        each item's limits (default: :class:`Limits`)."""
        limits_of = limits or (lambda _item: Limits())
        pending: deque[tuple[int, Any]] = deque(enumerate(items))
        if not pending:
            return
        ctx = multiprocessing.get_context("spawn")
        n_workers = max(1, min(self.workers, len(pending)))
        alive: list[_Worker] = []
        try:
            while pending or any(w.task for w in alive):
                while len(alive) < n_workers and pending:
                    alive.append(self._start(ctx))
                for worker in alive:
                    if worker.ready and worker.task is None and pending:
                        index, item = pending.popleft()
                        task_limits = limits_of(item)
                        try:
                            worker.conn.send((index, item, task_limits.memory))
                        except OSError:  # it died while idle: the next look removes it
                            pending.appendleft((index, item))
                            continue
                        worker.task = (index, time.monotonic(), task_limits)
                wait([w.conn for w in alive] + [w.process.sentinel for w in alive], self.poll)
                for worker in list(alive):
                    outcome = self._check(worker)
                    if outcome is not None:
                        yield outcome
                    if worker.dead or (outcome is not None and not outcome.ok):
                        worker.kill()
                        alive.remove(worker)
        finally:
            for worker in alive:
                with contextlib.suppress(OSError, ValueError):
                    worker.conn.send(None)
            for worker in alive:
                worker.process.join(1)
                worker.kill()

    def _start(self, ctx: Any) -> _Worker:
        parent, child = ctx.Pipe()
        process = ctx.Process(
            target=_worker_main,
            args=(child, self.task, self.warm_up),
            name="securitynet-isolated",
            daemon=True,
        )
        process.start()
        child.close()
        return _Worker(process=process, conn=parent, started=time.monotonic())

    def _check(self, worker: _Worker) -> Outcome | None:
        """Read what ``worker`` said, or judge its silence; an Outcome when its task ended."""
        now = time.monotonic()
        # Alive or not is decided once, before the pipe is read: a worker that died after
        # this look is judged on the next one, never dropped with its task unreported.
        worker.dead = not worker.process.is_alive()
        message: tuple[Any, ...] | None = None
        with contextlib.suppress(EOFError, OSError):
            if worker.conn.poll():
                message = worker.conn.recv()
        if message is not None and message[0] == "ready":
            worker.ready = True
            worker.baseline = rss_bytes(worker.process.pid or 0) or 0
            log.debug("worker %s ready in %.2f s", worker.process.pid, now - worker.started)
            return None
        if worker.task is None:
            if not worker.ready and (worker.dead or now - worker.started > START_TIMEOUT):
                worker.kill()
                raise LoaderError(
                    f"an isolated worker for {self.task} could not start "
                    f"(exit status {worker.process.exitcode})",
                    hint="Run with SECURITYNET_DEBUG=1 and look at the worker's stderr.",
                )
            return None
        index, started, limits = worker.task
        elapsed = now - started
        if message is not None:
            worker.task = None
            kind, _, payload = message
            if kind == "ok":
                return Outcome(index, value=payload, seconds=elapsed)
            if kind == "memory":
                return Outcome(index, failure=MEMORY_LIMIT, detail=payload, seconds=elapsed)
            return Outcome(index, failure=ERROR, detail=payload, seconds=elapsed)
        if worker.dead:
            worker.task = None
            return Outcome(
                index, failure=CRASHED, detail=_death(worker.process.exitcode), seconds=elapsed
            )
        if elapsed > limits.seconds:
            worker.task = None
            return Outcome(
                index,
                failure=TIME_LIMIT,
                detail=f"still running after {limits.seconds:g} s; stopped",
                seconds=elapsed,
            )
        rss = rss_bytes(worker.process.pid or 0)
        if rss is not None and rss - worker.baseline > limits.memory:
            worker.task = None
            return Outcome(
                index,
                failure=MEMORY_LIMIT,
                detail=f"used {_mib(rss - worker.baseline)} MiB, above the limit of "
                f"{_mib(limits.memory)} MiB; stopped",
                seconds=elapsed,
            )
        return None


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"the reader crashed ({signal.Signals(-exitcode).name})"
        return f"the reader crashed (signal {-exitcode})"
    return f"the reader exited unexpectedly (status {exitcode})"


def _mib(n: int) -> int:
    return n // (1024 * 1024)
