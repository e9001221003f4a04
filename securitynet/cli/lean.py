"""The everyday read commands without Typer: parse with :mod:`securitynet.cli.options`, run
the body from :mod:`securitynet.cli.everyday`, hand any error to the one error boundary.

Typer, click, rich and pydantic together take several hundred milliseconds to import, more
than ``list``, ``show``, ``sql`` or ``db current`` take to answer on a SQLite catalogue. A
command line this module does not understand whole returns False and Typer reads it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from securitynet.cli import options


def configure_logging(*, verbose: bool = False) -> None:
    """Log records to stderr as ``LEVEL logger: message`` (INFO and up with ``--verbose``)."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _body(command: options.Command) -> Callable[..., None]:
    from securitynet.cli import everyday

    bodies: dict[options.Command, Callable[..., None]] = {
        options.LIST: everyday.list_entries,
        options.SHOW: everyday.show,
        options.SQL: everyday.sql,
        options.DB_CURRENT: everyday.db_current,
    }
    return bodies[command]


def run_lean(argv: list[str]) -> bool:
    """Run ``argv`` if it is an everyday command understood whole; False if Typer must."""
    parsed = options.parse(argv)
    if parsed is None:
        return False
    configure_logging()
    body = _body(parsed.command)
    kwargs: dict[str, Any] = dict(parsed.kwargs)
    try:
        body(**kwargs)
    except (Exception, KeyboardInterrupt) as exc:
        from securitynet.cli.app import report  # Typer, only to print the error as it does

        report(exc)
    return True
