"""GitHub commands: ``add github OWNER/REPO|PATH`` and ``discover github QUERY``. Thin: the
work is in :mod:`securitynet.api` and :mod:`securitynet.scrapers.github`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

FormatOption = Annotated[str, typer.Option("--format", "-f", help="text or json.")]


def _check_format(fmt: str) -> None:
    from securitynet.errors import InvalidQueryError

    if fmt not in ("text", "json"):
        raise InvalidQueryError(f"unknown format {fmt!r}", hint="Use --format text or --format json.")
    if fmt == "json":
        from securitynet import progress

        progress.set_enabled(False)


def register(app: typer.Typer) -> None:
    """Add the ``add`` group (``add github``) to ``app`` (once; calling again is a no-op)."""
    if any(g.name == "add" for g in app.registered_groups):
        return
    add_app = typer.Typer(help="Catalogue one repository of a source.", no_args_is_help=True)
    app.add_typer(add_app, name="add")

    @add_app.command("github")
    def add_github(
        target: Annotated[
            str, typer.Argument(metavar="OWNER/REPO|PATH", help="A GitHub repository, or a local git clone of one.")
        ],
        fmt: FormatOption = "text",
    ) -> None:
        """Catalogue a repository's checkpoints (release assets, files in the tree, hubconf.py
        weights), pinned to a commit. A local clone gives the same ids from its origin and
        HEAD, and its files go into the weight cache: no network needed to load them."""
        _check_format(fmt)
        from securitynet.api import add_github as add

        summary = add(target)
        if fmt == "json":
            typer.echo(json.dumps(summary.model_dump(mode="json"), indent=2))
            return
        typer.echo(summary.line())
        typer.echo("Next: securitynet list --source github; securitynet load ID", err=True)
