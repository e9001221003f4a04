"""Where entry tasks run: in this process (default) or on a Ray cluster (extra ``ray``).

Both yield each task's result as soon as it is done, so the harness stores results while
the batch goes on. Ray gets one task per entry, with one GPU each when the cluster has GPUs.
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
    ) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.gpus_per_task = gpus_per_task

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
        remote = ray.remote(num_cpus=1, num_gpus=gpus)(fn)
        pending = [remote.remote(*item) for item in items]
        log.info("submitted %d tasks to Ray (%s GPU each)", len(pending), gpus)

        def done_refs() -> Iterator[Any]:
            refs = list(pending)
            while refs:
                ready, refs = ray.wait(refs, num_returns=1)
                yield ready[0]

        for ref in progress.track(done_refs(), description=description, total=len(pending)):
            yield ray.get(ref)


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
