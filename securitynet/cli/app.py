"""The Typer application and the CLI's one error boundary.

A :class:`SecurityNetError` prints one line (plus its hint) and exits 1;
``SECURITYNET_DEBUG=1`` shows the traceback instead. Locals are never printed.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Annotated

import typer

from securitynet import __version__
from securitynet.errors import SecurityNetError

app = typer.Typer(
    name="securitynet",
    help="Public image-classification checkpoints, catalogued for security and privacy research.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"securitynet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens (to stderr).")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _register_commands() -> None:
    # Each module adds its commands to ``app``; imported here, never at package import.
    from securitynet.cli import commands_catalogue  # noqa: F401
    from securitynet.cli.commands_annotate import register as register_annotate
    from securitynet.cli.commands_annotations import register as register_annotations
    from securitynet.cli.commands_eval import register as register_eval
    from securitynet.cli.commands_github import register as register_github
    from securitynet.cli.commands_import import register as register_import
    from securitynet.cli.commands_loader import register as register_loader
    from securitynet.cli.commands_loader_scan import register as register_scan
    from securitynet.cli.commands_serve import register as register_serve

    register_scan(app)
    register_loader(app)
    register_annotate(app)
    register_import(app)
    register_annotations(app)
    register_eval(app)
    register_github(app)
    register_serve(app)


def _debug() -> bool:
    return os.environ.get("SECURITYNET_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``securitynet`` script."""
    # `securitynet list | head` ends quietly, like any Unix tool. The handler is put back on
    # the way out: main() also runs inside other processes (the tests, a notebook), where
    # SIG_DFL left behind kills the whole process the next time any thread writes to a
    # socket whose peer hung up (an HTTP server in the test suite, for one).
    previous = signal.signal(signal.SIGPIPE, signal.SIG_DFL) if hasattr(signal, "SIGPIPE") else None
    try:
        _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGPIPE, previous)


def _main(argv: list[str] | None) -> None:
    _register_commands()
    try:
        # standalone_mode=False hands typer.Exit(n) back as a return value, not an exception
        code = app(args=argv, standalone_mode=False)
    except SecurityNetError as exc:
        if _debug():
            raise
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        if exc.hint:
            typer.echo(f"hint: {exc.hint}", err=True)
        raise SystemExit(1) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        typer.echo("aborted", err=True)
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise SystemExit(130) from None
    except Exception as exc:  # click usage errors
        if isinstance(exc, _click_exceptions()):
            exc.show()  # type: ignore[attr-defined]
            raise SystemExit(exc.exit_code) from None  # type: ignore[attr-defined]
        import click

        if isinstance(exc, click.exceptions.Exit):
            raise SystemExit(exc.exit_code) from None
        raise
    if isinstance(code, int) and code:
        raise SystemExit(code)


def _click_exceptions() -> tuple[type[Exception], ...]:
    """Click's usage-error base: from click, and from the copy of click that typer >= 0.2x
    vendors (its BadParameter and UsageError do not derive from click's)."""
    import click

    found: list[type[Exception]] = [click.exceptions.ClickException]
    try:
        from typer._click.exceptions import ClickException as VendoredClickException
    except ImportError:
        return tuple(found)
    return (*found, VendoredClickException)
