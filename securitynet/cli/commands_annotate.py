"""Annotation commands: ``securitynet annotate arch-facts``.

Thin: options in, one library call, one summary line out.
"""

from __future__ import annotations

from typing import Annotated

import typer


def arch_facts(
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            help="Only entries of this source (repeatable): timm, torchvision, imgclsmob.",
        ),
    ] = None,
    all_entries: Annotated[
        bool,
        typer.Option(
            "--all", help="Measure every entry, not only those missing a source's params or FLOPs."
        ),
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most this many distinct architectures.")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Processes measuring in parallel.")
    ] = 1,
    budget: Annotated[
        float | None,
        typer.Option(
            "--budget",
            min=0,
            help="Start no measurement after this many seconds; the rest waits for the next run.",
        ),
    ] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Ignore the cache and measure again.")
    ] = False,
) -> None:
    """Parameters and FLOPs of entries' architectures, computed on the meta device (no weights).

    Results are cached per library version in the securitynet home, so a second run is quick.
    FLOPs are stored as gflops = 2 x GMACs.
    """
    from securitynet.catalogue.api import Catalogue
    from securitynet.catalogue.archfacts import apply_arch_facts

    with Catalogue() as catalogue:
        summary = apply_arch_facts(
            catalogue.engine,
            sources=source or None,
            only_missing=not all_entries,
            limit=limit,
            workers=workers,
            budget_s=budget,
            refresh=refresh,
        )
    typer.echo(summary.line())


def register(app: typer.Typer) -> None:
    """Add the ``annotate`` command group to ``app`` (once, however often it is called)."""
    if any(group.name == "annotate" for group in app.registered_groups):
        return
    annotate_app = typer.Typer(
        help="Annotate catalogue entries with facts no registry gives.", no_args_is_help=True
    )
    annotate_app.command("arch-facts")(arch_facts)
    app.add_typer(annotate_app, name="annotate")
