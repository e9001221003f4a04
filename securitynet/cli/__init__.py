"""The ``securitynet`` command: a thin Typer skin over the library. No logic lives here.

:func:`main` answers the everyday read commands (``list``, ``show``, ``sql``, ``db current``)
without importing Typer when their command line is understood whole
(:mod:`securitynet.cli.options`); everything else, ``--help`` and every usage error
included, goes to the Typer application in :mod:`securitynet.cli.app`. Importing this
package imports neither.
"""

from __future__ import annotations

import signal
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from securitynet.cli.app import app

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``securitynet`` script (``argv`` without the program name)."""
    # `securitynet list | head` ends quietly, like any Unix tool. The handler is put back on
    # the way out: main() also runs inside other processes (the tests, a notebook), where
    # SIG_DFL left behind kills the whole process the next time any thread writes to a
    # socket whose peer hung up (an HTTP server in the test suite, for one).
    previous = signal.signal(signal.SIGPIPE, signal.SIG_DFL) if hasattr(signal, "SIGPIPE") else None
    try:
        from securitynet.cli.lean import run_lean

        args = list(sys.argv[1:] if argv is None else argv)
        if not run_lean(args):
            from securitynet.cli.app import run_typer

            run_typer(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGPIPE, previous)


def __getattr__(name: str) -> Any:
    if name == "app":  # the Typer application, imported on first use
        from securitynet.cli.app import app as typer_app

        return typer_app
    raise AttributeError(f"module 'securitynet.cli' has no attribute {name!r}")
