"""Curated annotation files: ``securitynet annotations validate [FILE...]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def validate(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            exists=True, dir_okay=False, help="Files to check; default: every annotations/*.yaml."
        ),
    ] = None,
) -> None:
    """Check curated annotation files against schema/annotations.schema.json and the entry
    fields they set; print each problem, exit 1 if there is one."""
    from securitynet.annotate.validate import validate_annotations

    count, problems = validate_annotations(files or None)
    for problem in problems:
        typer.echo(problem.line())
    if problems:
        typer.echo(f"{len(problems)} problem(s) in {count} file(s)", err=True)
        raise typer.Exit(1)
    typer.echo(f"{count} annotation file(s) valid")


def register(app: typer.Typer) -> None:
    """Add the ``annotations`` command group to ``app`` (once)."""
    if any(group.name == "annotations" for group in app.registered_groups):
        return
    group = typer.Typer(help="Curated annotation files (annotations/*.yaml).", no_args_is_help=True)
    group.command("validate")(validate)
    app.add_typer(group, name="annotations")
