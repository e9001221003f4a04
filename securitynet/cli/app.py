"""The Typer application and the CLI's one error boundary.

A :class:`SecurityNetError` prints one line (plus its hint) and exits 1;
``SECURITYNET_DEBUG=1`` shows the traceback instead. Locals are never printed. The lean path
of :mod:`securitynet.cli.lean` hands its errors to the same boundary (:func:`report`).
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from securitynet import __version__
from securitynet.cli.lean import configure_logging
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
    configure_logging(verbose=verbose)


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
    """Entry point of the ``securitynet`` script (see :func:`securitynet.cli.main`)."""
    from securitynet.cli import main as entry

    entry(argv)


def run_typer(argv: list[str] | None) -> None:
    """Parse ``argv`` with Typer and run the command, inside the error boundary."""
    _register_commands()
    try:
        # standalone_mode=False hands typer.Exit(n) back as a return value, not an exception
        code = app(args=argv, standalone_mode=False)
    except (Exception, KeyboardInterrupt) as exc:
        report(exc)
    if isinstance(code, int) and code:
        raise SystemExit(code)


def report(exc: BaseException) -> None:
    """The one error boundary: print ``exc`` as one line (and its hint) and exit with its
    code; an error that is not ours nor a usage error is raised on."""
    if isinstance(exc, SecurityNetError):
        if _debug():
            raise exc
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        if exc.hint:
            typer.echo(f"hint: {exc.hint}", err=True)
        raise SystemExit(1) from None
    if isinstance(exc, typer.Exit):
        raise SystemExit(exc.exit_code) from None
    if isinstance(exc, typer.Abort):
        typer.echo("aborted", err=True)
        raise SystemExit(130) from None
    if isinstance(exc, KeyboardInterrupt):
        typer.echo("interrupted", err=True)
        raise SystemExit(130) from None
    if isinstance(exc, _click_exceptions()):  # click usage errors
        exc.show()  # type: ignore[attr-defined]
        raise SystemExit(exc.exit_code) from None  # type: ignore[attr-defined]
    import click

    if isinstance(exc, click.exceptions.Exit):
        raise SystemExit(exc.exit_code) from None
    raise exc


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
