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
    """Add the ``add`` and ``discover`` groups to ``app`` (once; calling again is a no-op)."""
    if any(g.name == "add" for g in app.registered_groups):
        return
    add_app = typer.Typer(help="Catalogue one repository of a source.", no_args_is_help=True)
    app.add_typer(add_app, name="add")
    discover_app = typer.Typer(help="Find candidate repositories (never entries).", no_args_is_help=True)
    app.add_typer(discover_app, name="discover")

    @discover_app.command("github")
    def discover_github(
        query: Annotated[str, typer.Argument(help='GitHub search words, e.g. "cifar10 resnet pretrained".')],
        limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many candidates.")] = 50,
        evidence: Annotated[
            bool, typer.Option("--evidence/--no-evidence", help="Read each candidate's releases and README.")
        ] = True,
        fmt: FormatOption = "text",
    ) -> None:
        """Search GitHub for repositories that publish image-classifier checkpoints, print
        them with their evidence (stars, checkpoint files, licence, paper) and store them
        for review. Promote one with: securitynet add github OWNER/REPO."""
        _check_format(fmt)
        from securitynet.cli.render import emit_table
        from securitynet.scrapers.github_client import GithubClient
        from securitynet.scrapers.github_discover import discover, store_candidates
        from securitynet.settings import get_settings

        settings = get_settings()
        with GithubClient(settings) as client:
            found = discover(client, query, limit=limit, evidence=evidence)
        path = store_candidates(found, settings)
        if fmt == "json":
            typer.echo(json.dumps([c.model_dump(mode="json") for c in found], indent=2))
            return
        rows = [
            {"repo": c.repo, "stars": c.stars, "files": len(c.files), "hubconf": "yes" if c.hubconf else "",
             "licence": c.licence or "", "paper": c.paper or ""}
            for c in found
        ]
        emit_table(rows, ("repo", "stars", "files", "hubconf", "licence", "paper"),
                   title=f"{len(found)} candidates for {query!r} (stored in {path})")
        typer.echo("Next: securitynet add github OWNER/REPO", err=True)

    @add_app.command("github")
    def add_github(
        target: Annotated[
            str, typer.Argument(metavar="OWNER/REPO|PATH", help="A GitHub repository, or a local git clone of one.")
        ],
        resolve: Annotated[
            bool,
            typer.Option(
                "--resolve/--no-resolve",
                help="Match a clone's bare checkpoints against the registry architectures "
                "(the first time builds the signature index: minutes, then cached).",
            ),
        ] = True,
        fmt: FormatOption = "text",
    ) -> None:
        """Catalogue a repository's checkpoints (release assets, files in the tree, hubconf.py
        weights), pinned to a commit (OWNER/REPO@REF pins another). A local clone gives the
        same ids from its origin and HEAD, and its files go into the weight cache: no
        network needed to load them."""
        _check_format(fmt)
        from securitynet.api import add_github as add

        summary = add(target, resolve=resolve)
        if fmt == "json":
            typer.echo(json.dumps(summary.model_dump(mode="json"), indent=2))
            return
        typer.echo(summary.line())
        typer.echo("Next: securitynet list --source github; securitynet load ID", err=True)
