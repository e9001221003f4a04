"""Import commands: ``securitynet import securitynet-release|robustbench [PATH|URL]``.

Thin: a location in, one library call, one summary line out (or JSON).
"""

from __future__ import annotations

from typing import Annotated

import typer

LocationArg = Annotated[
    str | None,
    typer.Argument(
        metavar="[PATH|URL]", help="A local copy or a URL; default: the upstream document."
    ),
]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="Never touch the network.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")]


def _run(importer: str, location: str | None, *, offline: bool, as_json: bool) -> None:
    from securitynet.catalogue.api import Catalogue
    from securitynet.cli.render import emit_json
    from securitynet.settings import get_settings

    settings = get_settings(offline=True) if offline else get_settings()
    with Catalogue(settings=settings) as catalogue:
        summary = catalogue.import_from(importer, location)
    if as_json:
        emit_json(summary.model_dump(mode="json"))
        return
    typer.echo(summary.line())
    if summary.missing:
        shown = ", ".join(summary.missing[:5]) + (" ..." if len(summary.missing) > 5 else "")
        typer.echo(f"not attached: {shown}", err=True)
        typer.echo("hint: sync their sources first (securitynet sync), then import again.", err=True)


def securitynet_release(
    location: LocationArg = None, offline: OfflineOpt = False, as_json: JsonOpt = False
) -> None:
    """The released SecurityNet database: its models as entries (ids
    securitynet:<data>/<model>), train/test accuracy as claims, every attack figure as a
    result (source securitynet-release); its osmr/imgclsmob rows attach to the imgclsmob
    entries (sync imgclsmob first)."""
    _run("securitynet-release", location, offline=offline, as_json=as_json)


def robustbench(
    location: LocationArg = None, offline: OfflineOpt = False, as_json: JsonOpt = False
) -> None:
    """RobustBench's model_info annotations (default: GitHub's .tar.gz of the repository; or
    a local model_info folder, or one file's URL): threat model, epsilon, clean / AutoAttack /
    reported robust accuracy, architecture, venue, paper; weights not resolved."""
    _run("robustbench", location, offline=offline, as_json=as_json)


def register(app: typer.Typer) -> None:
    """Add the ``import`` command group to ``app`` (once, however often it is called)."""
    if any(group.name == "import" for group in app.registered_groups):
        return
    import_app = typer.Typer(
        help="Import published model databases into the catalogue.", no_args_is_help=True
    )
    import_app.command("securitynet-release")(securitynet_release)
    import_app.command("robustbench")(robustbench)
    app.add_typer(import_app, name="import")
