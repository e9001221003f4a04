"""Catalogue commands: sync, list, show, stats, sql, export, db.

Each command parses its options, calls the library and prints; errors are raised as our own
and printed by the one error boundary in :mod:`securitynet.cli.app`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from securitynet.cli.app import app
from securitynet.cli.render import (
    TableFormat,
    TextFormat,
    cell,
    emit_json,
    emit_rows,
    emit_table,
    human_count,
    note,
)
from securitynet.errors import UpstreamError

if TYPE_CHECKING:
    from securitynet.catalogue.api import Catalogue

db_app = typer.Typer(
    help="The catalogue database: upgrade its schema, or show its revision.", no_args_is_help=True
)
app.add_typer(db_app, name="db")

# --- options shared by list, stats and export ------------------------------------------------

SourceOpt = Annotated[
    str | None,
    typer.Option(
        "--source", help="Only entries of this source: timm, torchvision, imgclsmob, hf, ..."
    ),
]
DatasetOpt = Annotated[
    str | None,
    typer.Option("--dataset", help="Final training data set, e.g. CIFAR-10 (cifar10 works too)."),
]
FamilyOpt = Annotated[
    str | None, typer.Option("--family", help="Architecture family, e.g. resnet.")
]
ArchitectureOpt = Annotated[
    str | None, typer.Option("--architecture", help="Architecture, e.g. resnet50.")
]
LicenceOpt = Annotated[str | None, typer.Option("--licence", help="Licence, e.g. apache-2.0.")]
MinParamsOpt = Annotated[
    str | None, typer.Option("--min-params", help="At least this many parameters: 25M, 1.5B, 300k.")
]
MaxParamsOpt = Annotated[
    str | None, typer.Option("--max-params", help="At most this many parameters.")
]
MinTop1Opt = Annotated[
    float | None, typer.Option("--min-top1", help="Top-1 accuracy (%) at least this.")
]
SearchOpt = Annotated[
    str | None, typer.Option("--search", help="Text in the id or the architecture.")
]
IncludeRemovedOpt = Annotated[
    bool,
    typer.Option(
        "--include-removed", help="Also entries that vanished upstream (kept, never deleted)."
    ),
]
SharedWeightsOpt = Annotated[
    bool,
    typer.Option(
        "--shared-weights",
        help="Every name of a weight file several entries load (default: each file once).",
    ),
]
TestNetsOpt = Annotated[
    bool, typer.Option("--test-nets", help="Also the nets libraries register for their own tests.")
]
TableFormatOpt = Annotated[TableFormat, typer.Option("--format", "-f", help="Output format.")]
TextFormatOpt = Annotated[TextFormat, typer.Option("--format", "-f", help="Output format.")]


def _filters(
    *,
    source: str | None = None,
    dataset: str | None = None,
    family: str | None = None,
    architecture: str | None = None,
    licence: str | None = None,
    min_params: str | None = None,
    max_params: str | None = None,
    min_top1: float | None = None,
    search: str | None = None,
    include_removed: bool = False,
    shared_weights: bool = False,
    test_nets: bool = False,
) -> dict[str, Any]:
    """Keyword arguments for ``Catalogue.search`` from the options given."""
    from securitynet.catalogue.filters import parse_count

    given = {
        "source": source,
        "dataset": dataset,
        "family": family,
        "architecture": architecture,
        "licence": licence,
        "min_params": parse_count(min_params) if min_params is not None else None,
        "max_params": parse_count(max_params) if max_params is not None else None,
        "min_top1": min_top1,
        "text": search,
    }
    return {k: v for k, v in given.items() if v is not None} | {
        "include_removed": include_removed,
        "include_shared_weights": shared_weights,
        "include_test_nets": test_nets,
    }


EMPTY_HINT = "Fill it with 'securitynet sync' (torchvision, timm and imgclsmob work offline)."


def empty_note(url: str) -> str:
    """What ``list``, ``stats`` and ``show`` say on a catalogue with no entry at all."""
    return f"The catalogue at {_safe_url(url)} is empty. {EMPTY_HINT}"


def _catalogue(**settings: Any) -> Catalogue:
    from securitynet.catalogue.api import Catalogue
    from securitynet.settings import get_settings

    return Catalogue(settings=get_settings(**settings))


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
    from securitynet.catalogue.stats import OVERVIEW_QUERY
    from securitynet.progress import set_enabled

    overrides: dict[str, Any] = {}
    if offline:
        overrides["offline"] = True
    if timm_results is not None:
        overrides["timm_results"] = timm_results
    if fmt is TextFormat.JSON:
        set_enabled(False)
    with _catalogue(**overrides) as cat:
        options = {"timm_results": str(timm_results)} if timm_results is not None else None
        summaries = cat.sync(source or None, limit=limit, options=options, full=full)
        overview = cat.sql(OVERVIEW_QUERY).records()  # a few rows: no pandas for a table

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


# --- list ------------------------------------------------------------------------------------

LIST_TABLE_COLUMNS = ("id", "dataset", "top1", "params", "family", "licence")


@app.command("list")
def list_entries(
    source: SourceOpt = None,
    dataset: DatasetOpt = None,
    family: FamilyOpt = None,
    architecture: ArchitectureOpt = None,
    licence: LicenceOpt = None,
    min_params: MinParamsOpt = None,
    max_params: MaxParamsOpt = None,
    min_top1: MinTop1Opt = None,
    search: SearchOpt = None,
    include_removed: IncludeRemovedOpt = False,
    shared_weights: SharedWeightsOpt = False,
    test_nets: TestNetsOpt = False,
    sort: Annotated[
        str,
        typer.Option(
            help="Sort key: top1, params, gflops, num_classes, first_seen, last_seen (largest first) or "
            "id, name, source, dataset, family (A to Z); prefix - for descending, + for ascending."
        ),
    ] = "top1",
    limit: Annotated[int, typer.Option(min=0, help="Show at most N entries (0: all).")] = 50,
    fmt: TableFormatOpt = TableFormat.TABLE,
) -> None:
    """List entries matching every filter, best top-1 first."""
    from securitynet.catalogue.filters import parse_sort

    filters = _filters(
        source=source,
        dataset=dataset,
        family=family,
        architecture=architecture,
        licence=licence,
        min_params=min_params,
        max_params=max_params,
        min_top1=min_top1,
        search=search,
        include_removed=include_removed,
        shared_weights=shared_weights,
        test_nets=test_nets,
    )
    key, descending = parse_sort(sort)
    from securitynet.catalogue.lite import open_lite

    with open_lite() as lite:  # the lean path: a SQLite catalogue at the current revision
        if lite is not None:
            found = lite.search(filters, sort=key, descending=descending, limit=limit or None)
            if found:
                total = lite.count(filters) if limit and len(found) == limit else len(found)
                _emit_listing(found, fmt, total)
                return
    # the full path: PostgreSQL, a schema to migrate, or nothing found (explained below)
    from securitynet.catalogue.api import make_filter
    from securitynet.catalogue.filters import check_facets

    with _catalogue() as cat:
        rows = cat.search(sort=key, descending=descending, limit=limit or None, **filters)
        if not rows and cat.count(include_removed=True) == 0:
            note(empty_note(cat.url))
        elif not rows:
            with cat.session() as session:
                check_facets(
                    session, make_filter(**filters)
                )  # a typo gets a hint, not an empty table
        total = cat.count(**filters) if limit and len(rows) == limit else len(rows)
    _emit_listing([r.model_dump() for r in rows], fmt, total)


def _emit_listing(rows: list[dict[str, Any]], fmt: TableFormat, total: int) -> None:
    from securitynet.catalogue.lite import SUMMARY_COLUMNS

    emit_rows(
        rows,
        fmt,
        columns=SUMMARY_COLUMNS,
        table_columns=LIST_TABLE_COLUMNS,
        formatters={"params": human_count},
    )
    if total > len(rows):
        note(f"{len(rows)} of {total:,} entries; --limit 0 shows all.")


# --- show ------------------------------------------------------------------------------------


def _digest(file: Any) -> str | None:
    if file.sha256:
        return f"sha256:{file.sha256}"
    return f"{file.checksum_algo or 'checksum'}:{file.checksum}" if file.checksum else None


def _as_row(item: Any) -> dict[str, Any]:
    """A child row as a dict: a pydantic record's dump, or already one (the lean path)."""
    return item if isinstance(item, dict) else dict(item.model_dump())


def _result_rows(evaluations: list[Any]) -> list[dict[str, Any]]:
    """One row per figure of each evaluation (an evaluation without figures: one row)."""
    rows: list[dict[str, Any]] = []
    for evaluation in evaluations:
        base = _as_row(evaluation)
        figures = base.pop("metrics", None) or []
        rows.extend({**base, **_as_row(m)} for m in figures)
        if not figures:
            rows.append(base)
    return rows


def _top1_text(entry: Any) -> str | None:
    """``80.38 at 224 px (best 81.24 at 288 px)``: the figure at the loader's size first."""
    def at(value: float | None, size: int | None) -> str:
        return f"{cell(value)}" + (f" at {size} px" if size else "")

    if entry.top1 is None and entry.top1_best is None:
        return None
    text = at(entry.top1, entry.top1_size) if entry.top1 is not None else "none at the input size"
    if entry.top1_best is not None and (entry.top1_best, entry.top1_best_size) != (
        entry.top1,
        entry.top1_size,
    ):
        text += f" (best {at(entry.top1_best, entry.top1_best_size)})"
    return text


def _pending_note(entry: Any) -> str | None:
    """What a sync left unread for the entry (the Hub's configs and pins), in words."""
    pending = (entry.raw or {}).get("pending") if isinstance(entry.raw, dict) else None
    if not pending:
        return None
    return f"{', '.join(pending)} (read on the first show or load with the network)"


def _print_entry(entry: Any) -> None:
    params = f"{human_count(entry.params)} ({entry.params:,})" if entry.params is not None else None
    fields = [
        ("id", entry.id),
        ("architecture", entry.architecture),
        ("family", entry.family),
        ("data set", entry.dataset),
        ("top-1", _top1_text(entry)),
        ("params", params),
        ("GFLOPs", cell(entry.gflops)),
        ("input size", entry.input_size),
        ("classes", entry.num_classes),
        ("licence", entry.licence),
        ("paper", entry.paper),
        ("library", entry.library),
        ("upstream", entry.upstream_url),
        ("revision", entry.revision),
        ("tags", ", ".join(entry.tags)),
        ("first seen", cell(entry.first_seen)),
        ("last seen", cell(entry.last_seen)),
        ("removed upstream", "yes" if entry.removed_upstream else None),
        ("same weights as", entry.same_weights_as),
        ("test net", "yes (left out of list and stats unless --test-nets)" if entry.test_net else None),
        ("pending", _pending_note(entry)),
    ]
    shown = [(k, v) for k, v in fields if v not in (None, "")]
    width = max(len(k) for k, _ in shown)
    for key, value in shown:
        typer.echo(f"{key.ljust(width)}  {value}")

    sections: list[tuple[str, list[dict[str, Any]], tuple[str, ...]]] = [
        (
            "Training chain",
            [_as_row(x) for x in entry.datasets],
            ("stage", "dataset", "raw_name", "source", "evidence"),
        ),
        (
            "Accuracy claims",
            [_as_row(x) for x in entry.claims],
            ("dataset", "split", "metric", "value", "img_size", "kind", "source", "evidence"),
        ),
        (
            "Facts (every source's word)",
            [_as_row(x) for x in entry.facts],
            ("key", "value", "source", "evidence"),
        ),
        (
            "Results (one row per figure)",
            _result_rows(entry.evaluations),
            ("attack", "variant", "metric", "value", "lower", "upper", "dataset", "source", "status"),
        ),
    ]
    for title, rows, columns in sections:
        if rows:
            typer.echo("")
            emit_table(rows, columns, title=title)
    if entry.files:
        typer.echo("\nFiles")
        for f in entry.files:
            details = [
                _digest(f),
                f"{human_count(f.size)}B" if f.size else None,
                f.format,
                f.role if f.role != "weights" else None,
            ]
            typer.echo(f"  {f.url}\n    {'  '.join(d for d in details if d) or '(no checksum)'}")
    for message in entry.errors:
        note(f"annotation problem: {message}")


@app.command()
def show(
    entry_id: Annotated[
        str, typer.Argument(metavar="ID", help="Entry id, e.g. timm:resnet50.a1_in1k.")
    ],
    fmt: TextFormatOpt = TextFormat.TEXT,
) -> None:
    """Show one entry with every claim, data set, file and fact, and who said each.

    A Hub entry's classes, labels, preprocessing and file pins are read on its first show."""
    from securitynet.errors import EntryNotFoundError

    if fmt is TextFormat.TEXT:
        from securitynet.catalogue.lite import open_lite
        from securitynet.ids import parse_id

        eid = str(parse_id(entry_id))
        with open_lite() as lite:
            view = lite.find(eid) if lite is not None else None
        if view is not None and _pending_note(view) is None:
            _print_entry(view)
            return
    with _catalogue() as cat:
        try:
            cat.fill_pending(entry_id)
            entry = cat.get(entry_id)
        except EntryNotFoundError as exc:
            if cat.count(include_removed=True) == 0:
                exc.hint = empty_note(cat.url)
            raise
    if fmt is TextFormat.JSON:
        emit_json(entry.model_dump(mode="json"))
    else:
        _print_entry(entry)


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
    from securitynet.catalogue.stats import STAT_COLUMNS, UNKNOWN_GROUP, summarise

    filters = _filters(
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
    with _catalogue() as cat:  # only the columns the table and the figure use
        columns = list(dict.fromkeys((key, "dataset", "top1")))
        frame = cat.to_dataframe(columns=columns, ordered=False, **filters)
        empty = frame.empty and cat.count(include_removed=True) == 0
    if empty:
        note(empty_note(cat.url))
    table = summarise(frame, key)
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
    query: Annotated[
        str,
        typer.Argument(
            help="One SELECT / WITH / VALUES / EXPLAIN statement; '-' reads it from stdin."
        ),
    ],
    max_rows: Annotated[
        int | None,
        typer.Option(
            min=1, help="Return at most N rows (default: SECURITYNET_SQL_MAX_ROWS, 10000)."
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            min=0.001, help="Stop after S seconds (default: SECURITYNET_SQL_TIMEOUT, 10)."
        ),
    ] = None,
    fmt: TableFormatOpt = TableFormat.TABLE,
) -> None:
    """Run a read-only SQL query on the catalogue (views: v_entries_per_dataset, v_claims, ...;
    see schema/catalogue.md). Writes are refused; rows and time are capped."""
    from securitynet.catalogue.lite import open_lite, sql_limits
    from securitynet.catalogue.sql import run_sql_file, unique_names

    statement = sys.stdin.read() if query == "-" else query
    with open_lite() as lite:
        path = lite.path if lite is not None else None
    if path is not None:
        default_rows, default_timeout = sql_limits()
        result = run_sql_file(
            path,
            statement,
            max_rows=default_rows if max_rows is None else max_rows,
            timeout=default_timeout if timeout is None else timeout,
        )
    else:
        with _catalogue() as cat:
            result = cat.sql(statement, max_rows=max_rows, timeout=timeout)
    emit_rows(result.records(), fmt, columns=unique_names(result.columns))
    if result.truncated:
        note(f"stopped at {len(result.rows):,} rows; --max-rows raises the cap.")
    elif fmt is TableFormat.TABLE:
        note(f"{len(result.rows):,} rows in {result.elapsed * 1000:.1f} ms")


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

    filters = _filters(
        source=source,
        dataset=dataset,
        family=family,
        licence=licence,
        include_removed=include_removed,
        shared_weights=shared_weights,
        test_nets=test_nets,
    )
    with _catalogue() as cat:
        result = export_catalogue(cat, path, format=fmt, full=full, **filters)
    note(
        f"wrote {result.rows:,} {'full ' if result.full else ''}entries to {result.path} ({result.format})"
    )


# --- db --------------------------------------------------------------------------------------


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the catalogue database to the newest schema (it also happens on first use)."""
    from securitynet.catalogue.api import Catalogue
    from securitynet.catalogue.engine import current_revision, ensure_schema

    with Catalogue(upgrade=False) as cat:
        ensure_schema(cat.engine)
        reached = current_revision(cat.engine)
        typer.echo(f"{_safe_url(cat.url)} is at revision {reached} (head)")


@db_app.command("current")
def db_current(fmt: TextFormatOpt = TextFormat.TEXT) -> None:
    """Show the database's schema revision and the newest one this securitynet knows."""
    from securitynet.catalogue import lite

    with lite.open_lite() as reader:  # at head: answered without Alembic
        current = head = lite.head_revision() if reader is not None else None
        url = reader.url if reader is not None else None
    if current is None or head is None or url is None:
        from securitynet.catalogue.api import Catalogue
        from securitynet.catalogue.engine import current_revision, head_revision

        with Catalogue(upgrade=False) as cat:
            current = current_revision(cat.engine)
            url = _safe_url(cat.url)
        head = head_revision()
    if fmt is TextFormat.JSON:
        emit_json(
            {"database": url, "current": current, "head": head, "up_to_date": current == head}
        )
        return
    typer.echo(f"database: {url}")
    typer.echo(f"current:  {current or '(empty: no schema yet)'}")
    typer.echo(f"head:     {head}")
    if current != head:
        note("Run 'securitynet db upgrade' (or any command that reads the catalogue) to migrate.")
