"""``securitynet scan PATH...``: a verdict per checkpoint file, safe or refused with the reason.

A thin skin over :func:`securitynet.loader.safe.scan_file`; exit status 1 if any file is refused.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer


class ScanFormat(str, Enum):
    table = "table"
    json = "json"


def register(app: typer.Typer) -> None:
    """Add the ``scan`` command to ``app`` (once, however often it is called)."""
    if not any(info.callback is scan for info in app.registered_commands):
        app.command("scan")(scan)


def scan(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Checkpoint files, or folders to walk recursively.", show_default=False
        ),
    ],
    output: Annotated[
        ScanFormat, typer.Option("--format", "-f", help="table or json.")
    ] = ScanFormat.table,
    allow_legacy: Annotated[
        bool,
        typer.Option(
            "--allow-legacy", help="Read pre-1.6 torch pickles (through the restricted path)."
        ),
    ] = False,
) -> None:
    """Check checkpoint files without running anything in them: safe, or refused and why."""
    from securitynet import progress
    from securitynet.loader.safe import iter_scan_targets, scan_file

    as_json = output is ScanFormat.json
    if as_json:
        progress.set_enabled(False)
    targets = list(iter_scan_targets(paths))
    verdicts = [
        scan_file(path, allow_legacy=allow_legacy)
        for path in progress.track(targets, description="scanning", total=len(targets))
    ]
    if as_json:
        typer.echo(json.dumps([v.as_dict() for v in verdicts], indent=2))
    elif not verdicts:
        typer.echo("no files to scan", err=True)
    else:
        width = max(len(v.path) for v in verdicts)
        for v in verdicts:
            if v.safe:
                what = f"{v.format}, {v.tensors} tensors, {v.parameters:,} values"
                if v.wrapper_key:
                    what += f", under {v.wrapper_key!r}"
                typer.echo(f"{v.path:<{width}}  safe ({what})")
            else:
                typer.echo(f"{v.path:<{width}}  refused: {v.reason}: {v.detail}")
        refused = sum(not v.safe for v in verdicts)
        typer.echo(
            f"{len(verdicts)} files: {len(verdicts) - refused} safe, {refused} refused", err=True
        )
    if any(not v.safe for v in verdicts):
        # Not typer.Exit(1): app.main() runs click with standalone_mode=False, where click
        # turns Exit into a return value that main() drops (the process would exit 0).
        raise SystemExit(1)
