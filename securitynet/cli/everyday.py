"""The everyday read commands: ``list``, ``show``, ``sql`` and ``db current``.

Their bodies live here, free of Typer (and of pydantic, SQLAlchemy and pandas until a path
needs them): ``python -m securitynet list`` calls them straight from the lean parser of
:mod:`securitynet.cli.options`, and the Typer commands of
:mod:`securitynet.cli.commands_catalogue` call the same functions with the same keyword
arguments, so both print the same thing. On a SQLite catalogue at the current revision they
answer through :mod:`securitynet.catalogue.lite`; anything else takes the Catalogue API.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from securitynet.cli.render import (
    TableFormat,
    TextFormat,
    cell,
    echo,
    emit_json,
    emit_rows,
    emit_table,
    human_count,
    note,
)

if TYPE_CHECKING:
    from securitynet.catalogue.api import Catalogue


def search_filters(
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
    return f"The catalogue at {safe_url(url)} is empty. {EMPTY_HINT}"


def open_catalogue(**settings: Any) -> Catalogue:
    from securitynet.catalogue.api import Catalogue
    from securitynet.settings import get_settings

    return Catalogue(settings=get_settings(**settings))


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --- list ------------------------------------------------------------------------------------

LIST_TABLE_COLUMNS = ("id", "dataset", "top1", "params", "family", "licence")


def list_entries(
    *, sort: str = "top1", limit: int = 50, fmt: TableFormat = TableFormat.TABLE, **options: Any
) -> None:
    """List entries matching every filter (``options``: those :func:`search_filters` takes),
    best top-1 first."""
    from securitynet.catalogue.filters import parse_sort

    filters = search_filters(**options)
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

    with open_catalogue() as cat:
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
        echo(f"{key.ljust(width)}  {value}")

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
            echo("")
            emit_table(rows, columns, title=title)
    if entry.files:
        echo("\nFiles")
        for f in entry.files:
            details = [
                _digest(f),
                f"{human_count(f.size)}B" if f.size else None,
                f.format,
                f.role if f.role != "weights" else None,
            ]
            echo(f"  {f.url}\n    {'  '.join(d for d in details if d) or '(no checksum)'}")
    for message in entry.errors:
        note(f"annotation problem: {message}")


def show(entry_id: str, *, fmt: TextFormat = TextFormat.TEXT) -> None:
    """``securitynet show``: the lean reader for text on a SQLite catalogue, else the API
    (which reads a Hub entry's pending configs on its first show)."""
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
    with open_catalogue() as cat:
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


# --- sql -------------------------------------------------------------------------------------


def sql(
    query: str,
    *,
    max_rows: int | None = None,
    timeout: float | None = None,
    fmt: TableFormat = TableFormat.TABLE,
) -> None:
    """``securitynet sql``: on a SQLite catalogue the statement runs in the read-only child of
    :mod:`securitynet.catalogue.sqlite_readonly` without SQLAlchemy; else through the API."""
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
    else:  # PostgreSQL (or a schema to migrate): an engine, not the Catalogue and its ORM
        from securitynet.catalogue.engine import open_engine
        from securitynet.catalogue.sql import run_sql
        from securitynet.settings import get_settings

        settings = get_settings()
        engine = open_engine(
            settings.resolved_database_url, create_folder=settings.database_url is None
        )
        try:  # the defaults of Catalogue.sql
            result = run_sql(
                engine,
                statement,
                max_rows=settings.sql_max_rows if max_rows is None else max_rows,
                timeout=settings.sql_timeout if timeout is None else timeout,
                reader_url=settings.sql_database_url,
            )
        finally:
            engine.dispose()
    emit_rows(result.records(), fmt, columns=unique_names(result.columns))
    if result.truncated:
        note(f"stopped at {len(result.rows):,} rows; --max-rows raises the cap.")
    elif fmt is TableFormat.TABLE:
        note(f"{len(result.rows):,} rows in {result.elapsed * 1000:.1f} ms")


# --- db current -----------------------------------------------------------------------------


def db_current(*, fmt: TextFormat = TextFormat.TEXT) -> None:
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
            url = safe_url(cat.url)
        head = head_revision()
    if fmt is TextFormat.JSON:
        emit_json(
            {"database": url, "current": current, "head": head, "up_to_date": current == head}
        )
        return
    echo(f"database: {url}")
    echo(f"current:  {current or '(empty: no schema yet)'}")
    echo(f"head:     {head}")
    if current != head:
        note("Run 'securitynet db upgrade' (or any command that reads the catalogue) to migrate.")
