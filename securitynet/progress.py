"""The one progress helper. Bars show on an interactive stderr only, and never when the
command's output is JSON (the CLI turns them off with :func:`set_enabled`)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")

_enabled: ContextVar[bool | None] = ContextVar("securitynet_progress", default=None)


def set_enabled(value: bool | None) -> None:
    """Force bars on or off (None: decide from the terminal)."""
    _enabled.set(value)


def enabled() -> bool:
    forced = _enabled.get()
    if forced is not None:
        return forced
    return sys.stderr.isatty()


def track(iterable: Iterable[T], *, description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``iterable``, drawing a bar on stderr when bars are enabled."""
    if not enabled():
        yield from iterable
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in iterable:
            yield item
            bar.advance(task)
