"""Catalogue commands: sync, list, show, stats, sql, export, db.

Each command parses its options, calls the library and prints; errors are raised as our own
and printed by the one error boundary in :mod:`securitynet.cli.app`. The everyday read
commands (list, show, sql, db current) are thin here: their options are defined in
:mod:`securitynet.cli.options` and their bodies live in :mod:`securitynet.cli.everyday`, which
the CLI also reaches without importing Typer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from securitynet.cli import everyday
from securitynet.cli import options as o
from securitynet.cli.app import app
from securitynet.cli.everyday import empty_note, open_catalogue, search_filters
from securitynet.cli.render import (
    TableFormat,
    TextFormat,
    cell,
    emit_json,
    emit_rows,
    emit_table,
    note,
)
from securitynet.errors import UpstreamError

db_app = typer.Typer(
    help="The catalogue database: upgrade its schema, or show its revision.", no_args_is_help=True
)
app.add_typer(db_app, name="db")

# --- options: defined once in securitynet.cli.options (the lean parser reads them too) --------

SourceOpt = Annotated[str | None, o.typer_param(o.SOURCE)]
DatasetOpt = Annotated[str | None, o.typer_param(o.DATASET)]
FamilyOpt = Annotated[str | None, o.typer_param(o.FAMILY)]
ArchitectureOpt = Annotated[str | None, o.typer_param(o.ARCHITECTURE)]
LicenceOpt = Annotated[str | None, o.typer_param(o.LICENCE)]
MinParamsOpt = Annotated[str | None, o.typer_param(o.MIN_PARAMS)]
MaxParamsOpt = Annotated[str | None, o.typer_param(o.MAX_PARAMS)]
MinTop1Opt = Annotated[float | None, o.typer_param(o.MIN_TOP1)]
SearchOpt = Annotated[str | None, o.typer_param(o.SEARCH)]
IncludeRemovedOpt = Annotated[bool, o.typer_param(o.INCLUDE_REMOVED)]
SharedWeightsOpt = Annotated[bool, o.typer_param(o.SHARED_WEIGHTS)]
TestNetsOpt = Annotated[bool, o.typer_param(o.TEST_NETS)]
TableFormatOpt = Annotated[TableFormat, o.typer_param(o.TABLE_FORMAT)]
TextFormatOpt = Annotated[TextFormat, o.typer_param(o.TEXT_FORMAT)]


# --- sync ------------------------------------------------------------------------------------

OVERVIEW_COLUMNS = ("source", "entries", "with_top1", "datasets", "families", "removed")


@app.command()
def sync(
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            "-s",
            help="A source to sync (repeat for more). Default: every source that works offline.",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1, help="Stop each source after N entries (a partial sync marks nothing removed)."
        ),
    ] = None,
    timm_results: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            exists=True,
            help="Folder of timm's results-*.csv; wins over the fetched and the shipped tables.",
        ),
    ] = None,
    offline: Annotated[bool, typer.Option("--offline", help="Never touch the network.")] = False,
    full: Annotated[
        bool,
        typer.Option(
            "--full", help="Re-read every source, even one whose upstream looks unchanged."
        ),
    ] = False,
    fmt: TextFormatOpt = TextFormat.TEXT,
) -> None:
    """Fill or refresh the catalogue from upstream sources, then show what it holds.

    Exits 1 when a source failed (the others are synced all the same)."""
    from securitynet.progress import set_enabled

    overrides: dict[str, Any] = {}
    if offline:
        overrides["offline"] = True
    if timm_results is not None:
        overrides["timm_results"] = timm_results
    if fmt is TextFormat.JSON:
        set_enabled(False)
    with open_catalogue(**overrides) as cat:
        options = {"timm_results": str(timm_results)} if timm_results is not None else None
        summaries = cat.sync(source or None, limit=limit, options=options, full=full)
        overview = cat.overview()  # a few rows: no pandas for a table

    if fmt is TextFormat.JSON:
        emit_json(
            {"sources": [s.model_dump(mode="json") for s in summaries], "catalogue": overview}
        )
    else:
        for summary in summaries:
            typer.echo(summary.line())
        total = sum(int(r["entries"]) for r in overview)
        typer.echo("")
        emit_table(overview, OVERVIEW_COLUMNS, title=f"The catalogue holds {total:,} entries.")
        note(
            "Next: securitynet list --dataset ImageNet-1k --sort top1 --limit 20; securitynet stats --by dataset"
        )
    failed = [s.source for s in summaries if s.status == "failed"]
    if failed:
        raise UpstreamError(
            f"sync failed for {', '.join(failed)}",
            hint="The line above says why; the other sources were synced. -v shows more.",
            sources=failed,
        )


# --- list, show (the bodies: securitynet.cli.everyday) ----------------------------------------


@app.command("list")
def list_entries(
    source: SourceOpt = o.SOURCE.default,
    dataset: DatasetOpt = o.DATASET.default,
    family: FamilyOpt = o.FAMILY.default,
    architecture: ArchitectureOpt = o.ARCHITECTURE.default,
    licence: LicenceOpt = o.LICENCE.default,
    min_params: MinParamsOpt = o.MIN_PARAMS.default,
    max_params: MaxParamsOpt = o.MAX_PARAMS.default,
    min_top1: MinTop1Opt = o.MIN_TOP1.default,
    search: SearchOpt = o.SEARCH.default,
    include_removed: IncludeRemovedOpt = o.INCLUDE_REMOVED.default,
    shared_weights: SharedWeightsOpt = o.SHARED_WEIGHTS.default,
    test_nets: TestNetsOpt = o.TEST_NETS.default,
    sort: Annotated[str, o.typer_param(o.SORT)] = o.SORT.default,
    limit: Annotated[int, o.typer_param(o.LIMIT)] = o.LIMIT.default,
    fmt: TableFormatOpt = o.TABLE_FORMAT.default,
) -> None:
    """List entries matching every filter, best top-1 first."""
    everyday.list_entries(**locals())


@app.command()
def show(
    entry_id: Annotated[str, o.typer_param(o.ENTRY_ID)],
    fmt: TextFormatOpt = o.TEXT_FORMAT.default,
) -> None:
    """Show one entry with every claim, data set, file and fact, and who said each.

    A Hub entry's classes, labels, preprocessing and file pins are read on its first show."""
    everyday.show(entry_id, fmt=fmt)


# --- stats -----------------------------------------------------------------------------------


@app.command()
def stats(
    by: Annotated[
        str, typer.Option(help="Group by dataset, source, family, licence or architecture.")
    ] = "dataset",
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Also draw top-1 per group to this file (.png, or vector .svg / .pdf); "
            "grouped by anything but the data set, one panel per data set."
        ),
    ] = None,
    order: Annotated[
        str,
        typer.Option(help="Order the plot's groups by median, mean, max, count or name."),
    ] = "median",
    max_groups: Annotated[
        int, typer.Option(min=1, help="Draw at most N groups per panel (the best by --order).")
    ] = 25,
    title: Annotated[
        str | None, typer.Option(help="A title drawn into the figure (default: none).")
    ] = None,
    source: SourceOpt = None,
    dataset: DatasetOpt = None,
    family: FamilyOpt = None,
    licence: LicenceOpt = None,
    include_removed: IncludeRemovedOpt = False,
    shared_weights: SharedWeightsOpt = False,
    test_nets: TestNetsOpt = False,
    fmt: TableFormatOpt = TableFormat.TABLE,
) -> None:
    """Entries and top-1 spread (min, quartiles, max, mean) per group."""
    from securitynet.catalogue.plots import plot_frame
    from securitynet.catalogue.stats import STAT_COLUMNS, UNKNOWN_GROUP, accuracy_stats, summarise

    filters = search_filters(
        source=source,
        dataset=dataset,
        family=family,
        licence=licence,
        include_removed=include_removed,
        shared_weights=shared_weights,
        test_nets=test_nets,
    )
    from securitynet.catalogue.stats import check_by

    key = check_by(by)
    with open_catalogue() as cat:
        if plot is None:  # the stored figures, where no filter changes what counts
            table = accuracy_stats(cat, by=key, **filters)
        else:  # only the columns the table and the figure use
            columns = list(dict.fromkeys((key, "dataset", "top1")))
            frame = cat.to_dataframe(columns=columns, ordered=False, **filters)
            table = summarise(frame, key)
        empty = table.empty and cat.count(include_removed=True) == 0
    if empty:
        note(empty_note(cat.url))
    if plot is not None:  # before printing: a reader that closes the pipe early still gets the file
        drawn = plot_frame(frame, plot, by=key, order=order, max_groups=max_groups, title=title)
        note(f"wrote {drawn.path}")
        for line in drawn.notes():
            note(line)
    emit_rows(
        table.to_dict("records"),
        fmt,
        columns=(key, *STAT_COLUMNS),
        table_columns=(
            key,
            "entries",
            "with_top1",
            "top1_min",
            "top1_median",
            "top1_max",
            "top1_mean",
        ),
        formatters={key: lambda v: cell(v) or UNKNOWN_GROUP},
    )


# --- sql -------------------------------------------------------------------------------------


@app.command()
def sql(
    query: Annotated[str, o.typer_param(o.QUERY)],
    max_rows: Annotated[int | None, o.typer_param(o.MAX_ROWS)] = o.MAX_ROWS.default,
    timeout: Annotated[float | None, o.typer_param(o.TIMEOUT)] = o.TIMEOUT.default,
    fmt: TableFormatOpt = o.TABLE_FORMAT.default,
) -> None:
    """Run a read-only SQL query on the catalogue (views: v_entries_per_dataset, v_claims, ...;
    see schema/catalogue.md). Writes are refused; rows and time are capped."""
    everyday.sql(query, max_rows=max_rows, timeout=timeout, fmt=fmt)


# --- export ----------------------------------------------------------------------------------


@app.command()
def export(
    path: Annotated[Path, typer.Argument(help="File to write: .csv, .json, .jsonl or .parquet.")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help="csv, json, jsonl or parquet (default: from the extension)."
        ),
    ] = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Every entry whole (claims, data sets, files, facts) as JSON lines or JSON.",
        ),
    ] = False,
    source: SourceOpt = None,
    dataset: DatasetOpt = None,
    family: FamilyOpt = None,
    licence: LicenceOpt = None,
    include_removed: IncludeRemovedOpt = False,
    shared_weights: SharedWeightsOpt = False,
    test_nets: TestNetsOpt = False,
) -> None:
    """Write the catalogue to a file: one flat row per entry, or --full entries."""
    from securitynet.catalogue.export import export_catalogue

    filters = search_filters(
        source=source,
        dataset=dataset,
        family=family,
        licence=licence,
        include_removed=include_removed,
        shared_weights=shared_weights,
        test_nets=test_nets,
    )
    with open_catalogue() as cat:
        result = export_catalogue(cat, path, format=fmt, full=full, **filters)
    note(
        f"wrote {result.rows:,} {'full ' if result.full else ''}entries to {result.path} ({result.format})"
    )


# --- db --------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the catalogue database to the newest schema (it also happens on first use)."""
    from securitynet.catalogue.api import Catalogue
    from securitynet.catalogue.engine import current_revision, ensure_schema

    with Catalogue(upgrade=False) as cat:
        ensure_schema(cat.engine)
        reached = current_revision(cat.engine)
        typer.echo(f"{everyday.safe_url(cat.url)} is at revision {reached} (head)")




@db_app.command("current")
def db_current(fmt: TextFormatOpt = o.TEXT_FORMAT.default) -> None:
    """Show the database's schema revision and the newest one this securitynet knows."""
    everyday.db_current(fmt=fmt)
