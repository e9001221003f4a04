"""Where entry tasks run: in this process (default) or on a Ray cluster (extra ``ray``).

Both yield each task's result as soon as it is done, so the harness stores results while
the batch goes on. Ray gets one task per entry, with one GPU each when the cluster has GPUs.

What Ray costs and how it is kept down: an argument that several tasks share (the data
set of a batch, the request) goes to the object store once, not once per task, and a
worker reads its arrays without copying them; torch in each task uses as many threads as
the task has CPUs (never one per core of the machine under every task at once). What
remains is fixed: starting the cluster and, in each worker process, importing torch and
the model libraries, so Ray pays off with more entries than one process gets through in
that time, or with several machines or GPUs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from securitynet import progress
from securitynet.errors import ConfigurationError, SourceUnavailableError

log = logging.getLogger(__name__)

R = TypeVar("R")


class Executor(Protocol):
    name: str

    def map(
        self, fn: Callable[..., R], items: Sequence[tuple[Any, ...]], *, description: str
    ) -> Iterator[R]:
        """``fn(*item)`` for every item, yielded in completion order."""
        ...


class InProcessExecutor:
    name = "local"

    def map(
        self, fn: Callable[..., R], items: Sequence[tuple[Any, ...]], *, description: str
    ) -> Iterator[R]:
        for item in progress.track(items, description=description, total=len(items)):
            yield fn(*item)


class RayExecutor:
    """Tasks on Ray: a local cluster started here, or ``address`` (``ray://...``, ``auto``)."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        gpus_per_task: float | None = None,
        cpus_per_task: int = 1,
    ) -> None:
        if cpus_per_task < 1:
            raise ConfigurationError(f"a Ray task needs at least one CPU, not {cpus_per_task}")
        self.address = address
        self.num_cpus = num_cpus
        self.gpus_per_task = gpus_per_task
        self.cpus_per_task = cpus_per_task

    def map(
        self, fn: Callable[..., R], items: Sequence[tuple[Any, ...]], *, description: str
    ) -> Iterator[R]:
        try:
            import ray
        except ImportError as exc:
            raise SourceUnavailableError(
                "the Ray executor needs ray", hint="pip install 'securitynet[ray]'"
            ) from exc
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is None and self.num_cpus is not None:
                kwargs["num_cpus"] = self.num_cpus
            try:
                ray.init(address=self.address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigurationError(
                    f"cannot reach a Ray cluster at {self.address or 'local'}: {exc}"
                ) from exc
        gpus = self.gpus_per_task
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
        remote = ray.remote(num_cpus=self.cpus_per_task, num_gpus=gpus)(run_with_threads)
        args = share_arguments(items, ray.put)
        pending = [remote.remote(fn, self.cpus_per_task, *item) for item in args]
        log.info(
            "submitted %d tasks to Ray (%d CPU, %s GPU each)", len(pending), self.cpus_per_task, gpus
        )

        def done_refs() -> Iterator[Any]:
            refs = list(pending)
            while refs:
                ready, refs = ray.wait(refs, num_returns=1)
                yield ready[0]

        for ref in progress.track(done_refs(), description=description, total=len(pending)):
            yield ray.get(ref)


def share_arguments(
    items: Sequence[tuple[Any, ...]], put: Callable[[Any], Any]
) -> list[tuple[Any, ...]]:
    """``items`` with every argument that more than one item holds (the same object)
    replaced by ``put(argument)``, called once per such object."""
    seen: dict[int, int] = {}
    for item in items:
        for arg in item:
            seen[id(arg)] = seen.get(id(arg), 0) + 1
    refs: dict[int, Any] = {}
    out = []
    for item in items:
        args = []
        for arg in item:
            if seen[id(arg)] > 1 and arg is not None:
                if id(arg) not in refs:
                    refs[id(arg)] = put(arg)
                arg = refs[id(arg)]
            args.append(arg)
        out.append(tuple(args))
    return out


def run_with_threads(fn: Callable[..., R], threads: int, *args: Any) -> R:
    """``fn(*args)`` with torch using ``threads`` threads (a Ray task's CPU share)."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return fn(*args)


def make_executor(name: str, *, address: str | None = None) -> Executor:
    if name == "local":
        if address:
            raise ConfigurationError("--address is for the Ray executor")
        return InProcessExecutor()
    if name == "ray":
        return RayExecutor(address)
    raise ConfigurationError(
        f"unknown executor {name!r}", hint="Use --executor local or --executor ray."
    )
