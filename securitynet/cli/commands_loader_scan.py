"""``securitynet scan PATH...``: a verdict per file: safe, refused (and why), or not a checkpoint.

A thin skin over :func:`securitynet.loader.scan.iter_scan` (files read in isolated worker
processes with a time and memory limit each). Exit status 1 if any file is refused; files
that are no checkpoint at all (a README beside the weights) are reported but exit 0.
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
    time_limit: Annotated[
        float | None,
        typer.Option(
            "--time-limit",
            min=0.001,
            help="Seconds per file (default: 60 plus 1 per 10 MiB).",
            show_default=False,
        ),
    ] = None,
    memory_limit: Annotated[
        int | None,
        typer.Option(
            "--memory-limit",
            min=1,
            help="MiB per file (default: 1024 plus 3x the file's size).",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=1, help="Files read at once (default: up to 2).", show_default=False
        ),
    ] = None,
) -> None:
    """Check files without running anything in them: safe, refused and why, or not a checkpoint.

    Exit status 0: no file refused. Exit status 1: a file refused (crashes and limits too).
    """
    from securitynet import progress
    from securitynet.loader.scan import iter_scan, iter_scan_targets

    as_json = output is ScanFormat.json
    if as_json:
        progress.set_enabled(False)
    targets = list(iter_scan_targets(paths))
    found = dict(
        progress.track(
            iter_scan(
                targets,
                allow_legacy=allow_legacy,
                workers=workers,
                seconds=time_limit,
                memory=memory_limit * 1024 * 1024 if memory_limit is not None else None,
            ),
            description="scanning",
            total=len(targets),
        )
    )
    verdicts = [found[i] for i in range(len(targets))]
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
            elif v.refused:
                typer.echo(f"{v.path:<{width}}  refused: {v.reason}: {v.detail}")
            else:
                typer.echo(f"{v.path:<{width}}  not a checkpoint")
        safe = sum(v.safe for v in verdicts)
        refused = sum(v.refused for v in verdicts)
        other = len(verdicts) - safe - refused
        typer.echo(
            f"{len(verdicts)} files: {safe} safe, {refused} refused, {other} not checkpoints",
            err=True,
        )
    if any(v.refused for v in verdicts):
        # Not typer.Exit(1): app.main() runs click with standalone_mode=False, where click
        # turns Exit into a return value that main() drops (the process would exit 0).
        raise SystemExit(1)
